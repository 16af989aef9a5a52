"""The frozen victim of an attack: a pair of policies with the environment they were trained in."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

import ipo_robust
from ipo_robust.checkpoint import CheckpointError, load_checkpoint
from ipo_robust.errors import ConfigError


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

