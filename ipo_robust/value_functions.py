"""Centralised critics of the two-agent optimizers: one critic per agent, seeing both agents' observations
(and, for Q, both actions).

- :class:`ValueCritic`: V(s) (*B,), an MLP on [obs1, obs2] (baselines, PPO's critics).
- :class:`QCritic`: Q(s, a1, a2) (*B,), an MLP on [obs1, obs2, a1, a2]; discrete actions enter one-hot
  encoded (the critic form of eq. (14), the deterministic policy gradient's critics).
- :class:`NegatedCritic`: Q2 = -Q1, one critic for both players of a zero-sum game.

``features(...)`` gives a critic's MLP input, so that :mod:`ipo_robust.mlp_grad` can differentiate the
network by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ipo_robust.policies import Space, _flat_dim, _is_discrete, _is_flat_box, _mlp, _parameter_dtype


def _action_dim(space: Space, name: str) -> int:
    """Width of an action as a critic input: n for Discrete(n) (one-hot), d for Box (d,)."""
    if _is_discrete(space):
        return int(space.n)
    if _is_flat_box(space):
        return int(space.shape[0])
    raise ValueError(f"{name} must be Discrete or a flat Box, got {space!r}")


def _action_features(action: torch.Tensor, space: Space, dtype: torch.dtype) -> torch.Tensor:
    if _is_discrete(space):
        return nn.functional.one_hot(torch.as_tensor(action).long(), int(space.n)).to(dtype)
    return torch.as_tensor(action).to(dtype)


class ValueCritic(nn.Module):
    """Centralised state-value critic V(s) of one agent: MLP on the concatenation [obs1, obs2].

    ``forward(obs1, obs2)`` with obs_i (*B, d_i) returns (*B,).
    """

    def __init__(self, observation_spaces: tuple[Space, Space], hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh):
        super().__init__()
        self.observation_spaces = tuple(observation_spaces)
        d = sum(_flat_dim(s, f"observation_spaces[{i}]") for i, s in enumerate(self.observation_spaces))
        self.net = _mlp(d, 1, hidden, activation)

    def features(self, obs1: torch.Tensor, obs2: torch.Tensor) -> torch.Tensor:
        """The MLP's input [obs1, obs2] (*B, d1 + d2) in the parameters' dtype."""
        dtype = _parameter_dtype(self)
        return torch.cat([torch.as_tensor(obs1).to(dtype), torch.as_tensor(obs2).to(dtype)], dim=-1)

    def forward(self, obs1: torch.Tensor, obs2: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(obs1, obs2)).squeeze(-1)


class QCritic(nn.Module):
    """Centralised action-value critic Q(s, a1, a2) of one agent: MLP on [obs1, obs2, a1, a2].

    Discrete actions are one-hot encoded. ``forward(obs1, obs2, act1, act2)`` returns (*B,).
    """

    def __init__(self, observation_spaces: tuple[Space, Space], action_spaces: tuple[Space, Space],
                 hidden: Sequence[int] = (64, 64), activation: type[nn.Module] = nn.Tanh):
        super().__init__()
        self.observation_spaces, self.action_spaces = tuple(observation_spaces), tuple(action_spaces)
        d = sum(_flat_dim(s, f"observation_spaces[{i}]") for i, s in enumerate(self.observation_spaces))
        d += sum(_action_dim(s, f"action_spaces[{i}]") for i, s in enumerate(self.action_spaces))
        self.net = _mlp(d, 1, hidden, activation)

    def features(self, obs1, obs2, act1, act2) -> torch.Tensor:
        """The MLP's input [obs1, obs2, a1, a2] (*B, d) in the parameters' dtype, discrete actions one-hot."""
        dtype = _parameter_dtype(self)
        return torch.cat([torch.as_tensor(obs1).to(dtype), torch.as_tensor(obs2).to(dtype),
                          _action_features(act1, self.action_spaces[0], dtype),
                          _action_features(act2, self.action_spaces[1], dtype)], dim=-1)

    def forward(self, obs1, obs2, act1, act2) -> torch.Tensor:
        return self.net(self.features(obs1, obs2, act1, act2)).squeeze(-1)


class NegatedCritic(nn.Module):
    """Q2 = -Q1 (zero-sum games: one critic for both players)."""

    def __init__(self, critic: nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, obs1, obs2, act1, act2):
        return -self.critic(obs1, obs2, act1, act2)
