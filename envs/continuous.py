"""One-step continuous games: the test bed of the deterministic-policy optimizers (``ipo-dpg``, ``maddpg``).

Each episode is one simultaneous move: player i chooses a_i in the Box [-bound, bound]^d (state-independent:
the observation is the constant ``[1.0]`` for both players), receives r_i(a1, a2), and the episode
terminates. So the action value is the reward itself, Q_i(s, a1, a2) = r_i(a1, a2), known in closed form
(:meth:`ContinuousGameEnv.exact_critics`), and its action derivatives are exact.

- ``continuous-bilinear`` (:func:`bilinear_game`): r1 = a1 . a2 = -r2 (zero-sum). The unique Nash
  equilibrium is (0, 0); simultaneous gradient ascent on mu_i = theta_i rotates around it and spirals out
  (factor sqrt(1 + lr^2) per step), competitive gradient descent spirals in.
- ``continuous-quadratic`` (:func:`quadratic_game`): the general-sum game
  r1 = -a1.a1 / 2 + b1 a1.a2 + c1 . a1,   r2 = -a2.a2 / 2 + b2 a1.a2 + c2 . a2,
  with best responses a1 = b1 a2 + c1, a2 = b2 a1 + c2 and the unique Nash equilibrium
  a1* = (c1 + b1 c2) / (1 - b1 b2), a2* = (c2 + b2 c1) / (1 - b1 b2) (for b1 b2 != 1).

Units: none (abstract games). The environment draws nothing at random.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from ipo_robust.envs.base import Box, TwoAgentEnv

Reward = Callable[[object, object], tuple[object, object]]  # (a1, a2) -> (r1, r2), numpy or torch


class ExactCritic(nn.Module):
    """Q_i(s, a1, a2) = r_i(a1, a2) of a one-step game, as a critic module (no parameters): ``forward(obs1,
    obs2, act1, act2)`` with actions (*B, d) returns (*B,), differentiable in the actions."""

    def __init__(self, reward: Reward, player: int):
        super().__init__()
        self.reward, self.player = reward, player

    def forward(self, obs1, obs2, act1, act2):
        return self.reward(act1, act2)[self.player - 1]


class ContinuousGameEnv(TwoAgentEnv):
    """A one-step game with continuous actions (module docstring). ``reward(a1, a2) -> (r1, r2)`` acts on
    arrays (num_envs, d) and must work on numpy arrays and torch tensors alike (it sums over the last axis)."""

    def __init__(self, reward: Reward, num_envs: int = 1, seed: int | None = None, action_dim: int = 1,
                 bound: float = 10.0, name: str = "continuous-game", nash=None):
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(f"action_dim must be a positive int, got {action_dim!r}")
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not bound > 0:
            raise ValueError(f"bound must be a number > 0 (actions lie in [-bound, bound]), got {bound!r}")
        self.reward, self.name, self.action_dim = reward, name, action_dim
        self._nash = nash
        obs_space = Box(1.0, 1.0, shape=(1,))
        act_space = Box(-float(bound), float(bound), shape=(action_dim,))
        super().__init__(num_envs, (obs_space, obs_space), (act_space, act_space), seed)

    def _reset_envs(self, mask):
        rows = int(mask.sum())
        return np.ones((rows, 1)), np.ones((rows, 1))

    def _step_envs(self, action1, action2):
        r1, r2 = self.reward(action1, action2)
        obs = (np.ones((self.num_envs, 1)), np.ones((self.num_envs, 1)))
        return obs, (r1, r2), np.ones(self.num_envs, dtype=bool), {}

    def exact_critics(self) -> tuple[ExactCritic, ExactCritic]:
        """(Q1, Q2) with Q_i(s, a1, a2) = r_i(a1, a2): exact for a one-step game."""
        return ExactCritic(self.reward, 1), ExactCritic(self.reward, 2)

    def nash(self) -> tuple[np.ndarray, np.ndarray]:
        """The unique Nash equilibrium (a1*, a2*)."""
        return self._nash


def _dot(a1, a2):
    return (a1 * a2).sum(-1)


def bilinear_game(num_envs: int = 1, seed: int | None = None, action_dim: int = 1, bound: float = 10.0):
    """r1 = a1 . a2 = -r2 (zero-sum); Nash (0, 0)."""
    def reward(a1, a2):
        r1 = _dot(a1, a2)
        return r1, -r1

    zero = np.zeros(action_dim)
    return ContinuousGameEnv(reward, num_envs, seed, action_dim, bound, "continuous-bilinear", (zero, zero))


def quadratic_game(num_envs: int = 1, seed: int | None = None, action_dim: int = 1, bound: float = 10.0,
                   b1: float = 1.5, b2: float = -1.0, c1: float = 0.5, c2: float = -0.25):
    """r1 = -|a1|^2 / 2 + b1 a1.a2 + c1 sum(a1), r2 = -|a2|^2 / 2 + b2 a1.a2 + c2 sum(a2) (general-sum)."""
    if abs(1.0 - b1 * b2) < 1e-12:
        raise ValueError(f"quadratic game needs b1 * b2 != 1 for a unique Nash equilibrium, got b1={b1}, b2={b2}")

    def reward(a1, a2):
        cross = _dot(a1, a2)
        return (-0.5 * _dot(a1, a1) + b1 * cross + c1 * a1.sum(-1),
                -0.5 * _dot(a2, a2) + b2 * cross + c2 * a2.sum(-1))

    det = 1.0 - b1 * b2
    nash = (np.full(action_dim, (c1 + b1 * c2) / det), np.full(action_dim, (c2 + b2 * c1) / det))
    env = ContinuousGameEnv(reward, num_envs, seed, action_dim, bound, "continuous-quadratic", nash)
    env.coefficients = {"b1": b1, "b2": b2, "c1": c1, "c2": c2}
    return env

