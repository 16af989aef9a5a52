"""The frozen victim of an attack: a pair of policies with the environment they were trained in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal, Uniform

import ipo_robust
from ipo_robust.checkpoint import CheckpointError, load_checkpoint
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks.play import _is_discrete


@dataclass
class Victim:
    """A frozen pair of policies and the environment they play."""

    agents: tuple
    env_name: str
    env_options: dict = field(default_factory=dict)

    def __post_init__(self):
        self.agents = tuple(self.agents)
        if len(self.agents) != 2 or not all(isinstance(a, nn.Module) for a in self.agents):
            raise ConfigError("Victim.agents must be a pair (policy1, policy2) of torch.nn.Module policies")
        self.env_options = dict(self.env_options or {})

    @classmethod
    def from_checkpoint(cls, path) -> Victim:
        """The agents and env of a checkpoint (a run directory, a checkpoint directory or its files)."""
        checkpoint = load_checkpoint(path)
        spec = checkpoint.meta.get("env")
        if not spec or "name" not in spec:
            raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} records no environment to attack in")
        return cls(checkpoint.load_agents(), spec["name"], dict(spec.get("options", {})))

    def make_env(self, num_envs: int, seed: int):
        """The victim's env with ``num_envs`` copies, seeded; nobody holds the superpower."""
        env = ipo_robust.make_env(self.env_name, num_envs=num_envs, seed=seed, **self.env_options)
        if hasattr(env, "set_superpower"):
            env.set_superpower(None, 0.0)
        return env


def game_env(victim: Victim, num_envs: int, seed: int):
    """The env the evaluation games are played in: :meth:`Victim.make_env` with any dense shaping
    switched off (``set_shaping(0)``), so episode returns are the sparse win / loss reward."""
    env = victim.make_env(num_envs, seed)
    if hasattr(env, "set_shaping"):
        env.set_shaping(0.0)
    return env



class UniformPolicy(nn.Module):
    """A uniformly random policy for a space, as a torch policy (the reference opponent of
    ``ppo-adversary``): uniform over Discrete(n); uniform over the bounds of a Box, U(-1, 1) on its
    unbounded coordinates. Its only parameter is empty (it fixes the dtype; nothing is trained)."""

    def __init__(self, space):
        super().__init__()
        self.space = space
        self.anchor = nn.Parameter(torch.zeros(0))
        if _is_discrete(space):
            self.register_buffer("logits", torch.zeros(int(space.n)))
        else:
            low = torch.as_tensor(np.where(np.isfinite(space.low), space.low, -1.0), dtype=torch.float32)
            high = torch.as_tensor(np.where(np.isfinite(space.high), space.high, 1.0), dtype=torch.float32)
            self.register_buffer("low", low)
            self.register_buffer("high", torch.maximum(high, low + 1e-6))

    def distribution(self, obs):
        obs = torch.as_tensor(obs)
        batch = obs.shape[:-1]
        if _is_discrete(self.space):
            return Categorical(logits=self.logits.expand(*batch, self.logits.shape[0]))
        return Independent(Uniform(self.low.expand(*batch, -1), self.high.expand(*batch, -1)), 1)

    def act(self, obs, generator=None):
        obs = torch.as_tensor(obs)
        with torch.no_grad():
            if _is_discrete(self.space):
                return torch.randint(int(self.space.n), obs.shape[:-1], generator=generator)
            u = torch.rand(*obs.shape[:-1], self.low.shape[0], generator=generator)
            return self.low + (self.high - self.low) * u


class ZeroPolicy(nn.Module):
    """Always action 0 (Discrete) or the zero action clipped into the bounds (Box): a known-weak victim for
    positive controls. Its Box distribution is a Normal of std 1e-8 around that action (so samplers that
    need a distribution work); nothing is trained."""

    def __init__(self, space):
        super().__init__()
        self.space = space
        self.anchor = nn.Parameter(torch.zeros(0))
        if _is_discrete(space):
            logits = torch.full((int(space.n),), -1e9)
            logits[0] = 0.0
            self.register_buffer("logits", logits)
        else:
            self.register_buffer("zero", torch.as_tensor(np.clip(0.0, space.low, space.high), dtype=torch.float32))

    def distribution(self, obs):
        batch = torch.as_tensor(obs).shape[:-1]
        if _is_discrete(self.space):
            return Categorical(logits=self.logits.expand(*batch, self.logits.shape[0]))
        loc = self.zero.expand(*batch, -1)
        return Independent(Normal(loc, torch.full_like(loc, 1e-8)), 1)

    def act(self, obs, generator=None):
        batch = torch.as_tensor(obs).shape[:-1]
        with torch.no_grad():
            if _is_discrete(self.space):
                return torch.zeros(batch, dtype=torch.int64)
            return self.zero.expand(*batch, -1).clone()


KNOWN_WEAK = {"zero": ZeroPolicy, "random": UniformPolicy}
"""Known-weak victims of the positive controls: both agents of the pair play this way."""


def known_weak_victim(kind: str, env_name: str, env_options: dict | None = None) -> Victim:
    """A :class:`Victim` whose two agents are :data:`KNOWN_WEAK` ``kind`` policies, in ``env_name``."""
    if kind not in KNOWN_WEAK:
        raise ConfigError(f"known-weak victim must be one of {sorted(KNOWN_WEAK)}, got {kind!r}")
    probe = ipo_robust.make_env(env_name, num_envs=1, seed=0, **dict(env_options or {}))
    agents = tuple(KNOWN_WEAK[kind](space) for space in probe.action_spaces)
    probe.close()
    return Victim(agents, env_name, dict(env_options or {}))
