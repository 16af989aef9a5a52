"""What every attack shares: the :class:`Attack` base class (options checked on construction, one
``run`` per victim seat), its :class:`AttackResult`, and the helpers that turn played games into one."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks.play import Actor
from ipo_robust.evals.attacks.victim import Victim
from ipo_robust.evals.metrics import Outcomes
from ipo_robust.hyperparameters import Hyperparameters, hyperparameter, positive_int

KINDS = ("exact", "lower-bound", "control")


# ------------------------------------------------------------------------------------------ result
@dataclass
class AttackResult:
    """The outcome of one attack, from the attacker's point of view.

    ``attacker_return`` / ``victim_return``: mean episode return (undiscounted sum of rewards) over the
    evaluation games. ``partner_return``: the mean return the victim's own trained partner gets in the
    attacker's seat against the same victim (NaN where not measured). ``exploitability``: see ``kind``
    (:mod:`ipo_robust.evals.attacks`), in game units: attacker return minus partner return; NaN for controls.
    ``details``: attack-specific extras (exact values, the reference attacker's rates, training info).
    """

    attack: str
    seat: int
    budget: int
    wins: int
    ties: int
    losses: int
    games: int
    attacker_return: float
    victim_return: float
    exploitability: float
    kind: str
    seconds: float
    details: dict = field(default_factory=dict)
    partner_return: float = math.nan
    policy: object = field(default=None, repr=False, compare=False)
    """the trained attacker policy (``ppo-adversary``), else None"""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"AttackResult.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(self.wins, self.ties, self.losses)

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else math.nan

    def as_row(self) -> dict:
        """Flat scalars only: counts, rates with Wilson 95 % intervals, returns, exploitability, kind."""
        row = {"attack": self.attack, "seat": int(self.seat), "budget": int(self.budget), "games": int(self.games),
               "wins": int(self.wins), "ties": int(self.ties), "losses": int(self.losses)}
        rates = self.outcomes.rates()
        for key in ("win", "tie", "loss"):
            row[f"{key}_rate"] = rates[f"{key}_rate"]
            row[f"{key}_low"] = rates[f"{key}_low"]
            row[f"{key}_high"] = rates[f"{key}_high"]
        row.update(attacker_return=float(self.attacker_return), victim_return=float(self.victim_return),
                   partner_return=float(self.partner_return), exploitability=float(self.exploitability),
                   kind=self.kind, seconds=float(self.seconds))
        return row


def _result(name: str, seat: int, budget: int, attacker: np.ndarray, victim: np.ndarray, exploitability: float,
            kind: str, start: float, details: dict) -> AttackResult:
    outcomes = Outcomes.from_returns(attacker, victim)
    return AttackResult(name, seat, budget, outcomes.wins, outcomes.ties, outcomes.losses, outcomes.games,
                        float(attacker.mean()), float(victim.mean()), float(exploitability), kind,
                        time.perf_counter() - start, details)


def _seat_returns(R1, R2, seat: int) -> tuple[np.ndarray, np.ndarray]:
    """(attacker returns, victim returns) when ``seat`` is the victim's."""
    return (R1, R2) if seat == 1 else (R2, R1)


def _pair(victim_actor: Actor, attacker_actor: Actor, seat: int) -> tuple[Actor, Actor]:
    return (victim_actor, attacker_actor) if seat == 0 else (attacker_actor, victim_actor)


# ------------------------------------------------------------------------------------------ attacks
def _integer(value) -> str | None:
    return None if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else "an integer"


class Attack:
    """Base class: ``Attack(**options)`` validates the options (a :class:`ConfigError` names a bad one);
    :meth:`run` attacks one seat of a victim. Subclasses set ``name``, ``Config`` and ``_run``."""

    name: ClassVar[str] = "attack"

    @dataclass
    class Config(Hyperparameters):
        num_envs: int = hyperparameter(16, positive_int, "env copies played in parallel")

    def __init__(self, **options):
        self.config = type(self).Config.build(**options)

    def run(self, victim: Victim, seat: int, budget: int, games: int, seed: int) -> AttackResult:
        """Attack agent ``seat`` of ``victim``, the index into ``victim.agents`` (0: agent 1, 1: agent 2; suite
        specs and result tables number the seats 1 and 2, as configs number agents); the attacker plays the
        other seat.

        ``budget``: attacker training env steps (ignored by attacks that do not train); ``games``:
        evaluation games; ``seed``: fixes every random draw.
        """
        self._check_arguments(victim, seat, budget, games, seed)
        return self._run(victim, int(seat), int(budget), int(games), int(seed))

    def _check_arguments(self, victim, seat, budget, games, seed) -> None:
        """ConfigError (one line) for arguments :meth:`run` cannot take."""
        if not isinstance(victim, Victim):
            raise ConfigError(f"attack {self.name!r}: victim must be an ipo_robust.evals.attacks.Victim, got "
                              f"{type(victim).__name__}")
        if seat not in (0, 1) or isinstance(seat, bool):
            raise ConfigError(f"attack {self.name!r}: seat must be 0 or 1 (the index of the victim's agent to "
                              f"attack: 0 for agent 1, 1 for agent 2), got {seat!r}")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
            raise ConfigError(f"attack {self.name!r}: budget must be an integer >= 0 (training env steps), "
                              f"got {budget!r}")
        if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
            raise ConfigError(f"attack {self.name!r}: games must be an integer >= 1, got {games!r}")
        if _integer(seed) is not None:
            raise ConfigError(f"attack {self.name!r}: seed must be an integer, got {seed!r}")

    def run_budgets(self, victim: Victim, seat: int, budgets, games: int, seed: int) -> list[AttackResult]:
        """One result per budget in ``budgets`` (increasing env-step counts): :meth:`run` for each by default;
        an attack that trains may instead evaluate one attacker at checkpoints along its training."""
        return [self.run(victim, seat, int(b), games, seed) for b in budgets]

    def check_env(self, env, env_name: str) -> None:
        """Refuse (:class:`ConfigError`, one line) a victim env this attack cannot attack; by default any env.

        ``env`` is the victim's env (any number of copies), ``env_name`` its registered name. A suite spec asks
        this of every attack and victim before any work (``ipo-robust eval --dry-run`` too), and :meth:`run`
        asks it again of the env it builds: one check, made before the work and where the work would fail.
        """

    def _run(self, victim: Victim, seat: int, budget: int, games: int, seed: int) -> AttackResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


@dataclass
class ControlConfig(Hyperparameters):
    """The hyperparameters every evaluation-only attack takes."""

    num_envs: int = hyperparameter(16, positive_int, "env copies for the evaluation games")

