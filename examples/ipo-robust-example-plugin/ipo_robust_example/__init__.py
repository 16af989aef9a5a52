"""An example ipo-robust plugin: optimistic gradient ascent and an observation-bias perturbation."""

from __future__ import annotations

import numpy as np
import torch

from ipo_robust.hookspecs import hookimpl
from ipo_robust.optim import LocalGame, Step


class OptimisticGradient:
    """Optimistic gradient ascent: delta_i = lr * (2 g_i - g_i_previous) (Daskalakis et al., 2018).

    On the first call the previous gradient is taken equal to the current one (plain gradient ascent).
    """

    def __init__(self, agents=None, lr: float = 0.1):
        if not lr > 0:
            raise ValueError(f"x-opt: lr must be > 0, got {lr!r}")
        self.agents, self.lr = agents, float(lr)
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, game: LocalGame) -> Step:
        previous1, previous2 = self._previous or (game.g1, game.g2)
        self._previous = (game.g1.detach().clone(), game.g2.detach().clone())
        delta1 = self.lr * (2 * game.g1 - previous1)
        delta2 = self.lr * (2 * game.g2 - previous2)
        return Step(delta1, delta2, iterations=0, residual=0.0, converged=True, matvecs=0, info={})


class ObservationBias:
    """Adds ``bias`` to every observation of the targeted agent (agent index 0 or 1)."""

    def __init__(self, bias: float = 0.1, target: int = 1):
        if target not in (0, 1):
            raise ValueError(f"observation-bias: target must be 0 or 1, got {target!r}")
        self.bias, self.target = float(bias), target

    def perturb_observations(self, observations: tuple[np.ndarray, np.ndarray], rng: np.random.Generator):
        observations = list(observations)
        observations[self.target] = observations[self.target] + self.bias
        return tuple(observations)


@hookimpl
def register_optimizers(register):
    register("x-opt", OptimisticGradient)


@hookimpl
def register_perturbations(register):
    register("observation-bias", ObservationBias)
