"""The *plain game* of a comparison (:mod:`ipo_robust.evals.compare`): the env every trained pair is judged in.

Entries of a comparison may train with a superpower (IPO-RARL, RARL: a perturbation plugin and a holder): their
env options name it and a holder's policy appends perturbation entries to its actions. In every evaluation game
nobody holds the superpower, so each pair is projected onto the env without those options
(:func:`plain_victim`), each agent given only the action entries that env takes (:class:`OwnActions`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.distributions import Independent, Normal

from ipo_robust import make_env
from ipo_robust.errors import ConfigError

#: env options of the superpower (a run's perturbation and who may hold it): nobody holds it in an evaluation
#: game, so they are dropped from every victim's env (:func:`plain_victim`)
SUPERPOWER_OPTIONS = ("perturbation", "holder", "alpha")
#: env options that act in training only: the superpower's, and the dense shaping every evaluation game
#: switches off. The remaining options are the game's (:func:`game_options`): equal for every entry.
TRAINING_ONLY_OPTIONS = (*SUPERPOWER_OPTIONS, "shaping")


def game_options(options: Mapping) -> dict:
    """The options of an env that decide the game itself: all but :data:`TRAINING_ONLY_OPTIONS`."""
    return {k: v for k, v in dict(options or {}).items() if k not in TRAINING_ONLY_OPTIONS}


def plain_options(options: Mapping) -> dict:
    """An env's options without the superpower's (:data:`SUPERPOWER_OPTIONS`): the plain game's env."""
    return {k: v for k, v in dict(options or {}).items() if k not in SUPERPOWER_OPTIONS}


class OwnActions(nn.Module):
    """A trained policy restricted to its first ``dims`` action entries: its own actuators, without the
    perturbation entries a superpower holder's policy appends (:mod:`ipo_robust.envs.mujoco.perturbations`).

    ``act`` draws the whole action exactly as the policy does (the same draws from the generator) and keeps
    the first ``dims`` entries: what an env with nobody holding the superpower does with them anyway.
    ``distribution`` is the marginal of those entries (a diagonal Gaussian's first entries)."""

    def __init__(self, policy: nn.Module, dims: int):
        super().__init__()
        self.policy, self.dims = policy, int(dims)

    def distribution(self, obs):
        dist = self.policy.distribution(obs)
        base = dist.base_dist if isinstance(dist, Independent) else dist
        if not isinstance(base, Normal):
            raise ConfigError(f"cannot restrict a {type(dist).__name__} policy to its first {self.dims} action "
                              "entries (a diagonal Gaussian can be)")
        return Independent(Normal(base.loc[..., :self.dims], base.scale[..., :self.dims]), 1)

    def act(self, obs, generator=None):
        return self.policy.act(obs, generator)[..., :self.dims]

    def sampler(self):
        make = getattr(self.policy, "sampler", None)
        if not callable(make):
            return lambda obs, generator: self._sample(obs, generator)
        inner = make()

        def sample(obs, generator):
            action, _ = inner(obs, generator)
            action = action[..., :self.dims]
            with torch.no_grad():
                dist = self.distribution(obs)
                return action, dist.log_prob(action.to(dist.base_dist.loc.device)).to(action.device)

        return sample

    def _sample(self, obs, generator):
        with torch.no_grad():
            action = self.act(obs, generator)
            dist = self.distribution(obs)
            return action, dist.log_prob(action.to(dist.base_dist.loc.device))


def _space_dims(space) -> int | None:
    """A Box's number of entries; None for a discrete space."""
    return None if hasattr(space, "n") and not hasattr(space, "low") else int(np.prod(space.shape))


def plain_victim(victim):
    """``victim`` (:class:`~ipo_robust.evals.attacks.Victim`) projected onto the plain game: its env without
    the superpower's options (:data:`SUPERPOWER_OPTIONS`; nobody holds it in an evaluation game anyway), each
    agent whose trained action space carries perturbation entries given only its own (:class:`OwnActions`).
    The victim itself when its env has no superpower options. ConfigError when the spaces do not fit (an
    observation space that changes, or an agent with no actions of its own)."""
    from ipo_robust.evals.attacks import Victim

    if not any(key in victim.env_options for key in SUPERPOWER_OPTIONS):
        return victim
    options = plain_options(victim.env_options)
    trained = victim.make_env(1, 0)
    plain = make_env(victim.env_name, num_envs=1, seed=0, **options)
    try:
        agents = [_own_actions(victim.env_name, i, agent, trained, plain)
                  for i, agent in enumerate(victim.agents)]
    finally:
        trained.close()
        plain.close()
    return Victim(tuple(agents), victim.env_name, options)


def _own_actions(env_name: str, i: int, agent, trained, plain):
    if tuple(trained.observation_spaces[i].shape) != tuple(plain.observation_spaces[i].shape):
        raise ConfigError(f"agent {i + 1} of {env_name!r} observes {tuple(trained.observation_spaces[i].shape)} "
                          f"entries in its training env but {tuple(plain.observation_spaces[i].shape)} in the plain "
                          "game: it cannot be judged there")
    full, own = _space_dims(trained.action_spaces[i]), _space_dims(plain.action_spaces[i])
    if full == own:
        return agent
    if full is None or own is None or own == 0 or full < own:
        raise ConfigError(f"agent {i + 1} of {env_name!r} has {own or 'no'} action entries of its own in the plain "
                          f"game (nobody holding the superpower), {full} in its training env: it cannot be judged "
                          "in the plain game")
    return OwnActions(agent, own)


def _check_plain_game(env: str, label: str, trained, plain) -> None:
    """Refuse (one line) an entry whose trained env does not project onto the plain game (:func:`plain_victim`)."""
    for i in (0, 1):
        try:
            _own_actions(env, i, None, trained, plain)
        except ConfigError as error:
            raise ConfigError(f"{label}: {error}") from None
