"""Metrics of evaluation games: Wilson score intervals for win / tie / loss rates, and outcome counts.

A *game* is one episode. From the attacker's point of view it is a win when the attacker's episode
return exceeds the victim's, a tie when they are equal, a loss otherwise (in a zero-sum game with a
sparse reward: the attacker's reward sum is > 0, = 0, < 0).

Wilson's score interval (Wilson 1927, "Probable inference, the law of succession, and statistical
inference") for k successes in n trials, p = k / n and z the normal quantile (1.96 for 95 %)::

    centre    = (p + z^2 / (2 n)) / (1 + z^2 / n)
    half      = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    interval  = [centre - half, centre + half]

It stays inside [0, 1] and is not degenerate at k = 0 or k = n (unlike the Wald interval), which is
what a 100 % win rate over a few games needs. It equals ``scipy.stats.binomtest(k, n)
.proportion_ci(method="wilson")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ipo_robust.errors import ConfigError


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (low, high) of a binomial proportion (module docstring).

    ``successes`` in 0..n, ``n`` >= 1 trials, ``z`` > 0 the two-sided normal quantile (1.96: 95 %).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"wilson_interval: n must be an integer >= 1 (the number of games), got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, (int, np.integer)) or not 0 <= successes <= n:
        raise ConfigError(f"wilson_interval: successes must be an integer in 0..{n}, got {successes!r}")
    if not (isinstance(z, (int, float)) and math.isfinite(z) and z > 0):
        raise ConfigError(f"wilson_interval: z must be a finite number > 0 (1.96 for 95 %), got {z!r}")
    n, p, z2 = int(n), int(successes) / int(n), float(z) ** 2
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = float(z) / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Outcomes:
    """Win / tie / loss counts of ``games`` games, from the first player's (the attacker's) side."""

    wins: int
    ties: int
    losses: int

    @property
    def games(self) -> int:
        return self.wins + self.ties + self.losses

    @classmethod
    def from_returns(cls, own: np.ndarray, other: np.ndarray) -> Outcomes:
        """Counts from per-game episode returns: win if own > other, tie if equal, loss otherwise."""
        own, other = np.asarray(own, dtype=np.float64), np.asarray(other, dtype=np.float64)
        return cls(int((own > other).sum()), int((own == other).sum()), int((own < other).sum()))

    def rates(self, z: float = 1.96) -> dict:
        """win/tie/loss rates with their Wilson intervals, flat: ``win_rate``, ``win_low``, ``win_high``..."""
        out: dict = {}
        n = self.games
        for key, count in (("win", self.wins), ("tie", self.ties), ("loss", self.losses)):
            if n == 0:
                out[f"{key}_rate"], out[f"{key}_low"], out[f"{key}_high"] = math.nan, math.nan, math.nan
                continue
            low, high = wilson_interval(count, n, z)
            out[f"{key}_rate"], out[f"{key}_low"], out[f"{key}_high"] = count / n, low, high
        return out
