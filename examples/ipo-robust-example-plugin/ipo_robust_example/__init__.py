"""An example ipo-robust plugin: optimistic gradient ascent and an observation-bias perturbation.

Both are built from the project's own pieces, the way a built-in plugin is:

- ``x-opt`` is an :class:`~ipo_robust.optim.optimizer.Optimizer`: the project's sample estimator (seed
  eqs. 12-14) joined to a new update rule, :class:`OptimisticRule`; its capabilities are declared once.
- ``observation-bias`` is a :class:`~ipo_robust.envs.mujoco.perturbations.Perturbation` that implements
  the hook the MuJoCo envs call, ``perturb_observations(env, obs, rows, victim, rng)``.

The host knows the names these are registered under, so errors name their owner without the classes
repeating it (``optimizer 'x-opt': lr must be a finite number > 0, got -1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ipo_robust.envs.mujoco.perturbations import Perturbation
from ipo_robust.errors import ConfigError
from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import hyperparameter, positive
from ipo_robust.optim import LocalGame, Step
from ipo_robust.optim.optimizer import Capabilities, CriticConfig, Optimizer
from ipo_robust.optim.rules import UpdateRule


class OptimisticRule(UpdateRule):
    """Optimistic gradient ascent: delta_i = lr (2 g_i - g_i_previous) (Daskalakis et al., 2018).

    A rule with state: it remembers the last gradients. On the first call the previous gradient is taken
    equal to the current one (plain gradient ascent).
    """

    def __init__(self, lr: float):
        self.lr = float(lr)
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, game: LocalGame) -> Step:
        previous1, previous2 = self.previous or (game.g1, game.g2)
        self.previous = (game.g1.detach().clone(), game.g2.detach().clone())
        delta1 = self.lr * (2 * game.g1 - previous1)
        delta2 = self.lr * (2 * game.g2 - previous2)
        return Step(delta1, delta2, iterations=0, residual=0.0, converged=True, matvecs=0, info={})


@dataclass
class OptimisticConfig(CriticConfig):
    lr: float = hyperparameter(0.1, positive, "step size of both players")


class OptimisticGradient(Optimizer):
    """``x-opt``: the sample estimator joined to :class:`OptimisticRule`, steps applied as they are."""

    Config = OptimisticConfig
    capabilities = Capabilities()  # independent of the opponent's parameters; no Fisher operators
    no_opponent_model_reason = "its rule never uses the opponent's parameters"

    def make_rule(self) -> OptimisticRule:
        return OptimisticRule(self.config.lr)


class ObservationBias(Perturbation):
    """``observation-bias``: the victim's observation is offset by ``alpha * bias`` in every entry."""

    name = "observation-bias"

    def __init__(self, bias: float = 0.1):
        if not np.isfinite(bias):
            raise ConfigError(f"bias must be a finite number, got {bias!r}")
        self.bias = float(bias)

    def perturb_observations(self, env, obs, rows: np.ndarray, victim: int, rng: np.random.Generator):
        out = list(obs)
        out[victim] = obs[victim] + env.alpha * self.bias
        return tuple(out)


@hookimpl
def register_optimizers(register):
    register("x-opt", OptimisticGradient)


@hookimpl
def register_perturbations(register):
    register("observation-bias", ObservationBias)
