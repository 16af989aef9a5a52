"""Controls: attacks whose attacker does not train, beside which a trained attack is read
(``exploitability`` is NaN, ``kind`` is ``control``).

- ``random``: uniformly random actions (uniform over a Discrete space or over the bounds of a Box,
  standard normal on unbounded coordinates);
- ``zero``: action 0 (Discrete) or zeros clipped into the bounds (Box);
- ``masked-victim``: the victim's partner plays a victim that cannot see it (Gleave et al. 2020): the
  victim's observation entries that describe its opponent are frozen at their values of the episode's
  first step. Which entries those are is a fact of the env, read through the env protocol's
  ``env.opponent_observation_indices(agent)`` (:func:`opponent_indices`); where the env returns None the
  victim's whole observation is frozen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks.base import Attack, ControlConfig, _pair, _result, _seat_returns
from ipo_robust.evals.attacks.play import Actor, MaskedActor, PolicyActor, RandomActor, ZeroActor, play_games
from ipo_robust.evals.attacks.victim import Victim, game_env
from ipo_robust.hyperparameters import hyperparameter, one_of


def opponent_indices(env, agent: int) -> tuple[int, ...] | None:
    """The entries of ``agent``'s observation that describe its opponent, as the env says through the
    env protocol's ``opponent_observation_indices(agent)`` (:class:`ipo_robust.envs.base.TwoAgentEnv`);
    None when the env does not single them out (then a masked agent sees nothing move).

    An env may also carry a plain sequence under that name (the same entries for both agents). An
    object without it does not follow the env protocol: :class:`ConfigError`.
    """
    describe = getattr(env, "opponent_observation_indices", None)
    if describe is None:
        raise ConfigError(f"{type(env).__name__} does not say which observation entries describe the opponent: "
                          "an env must provide opponent_observation_indices(agent) (the TwoAgentEnv protocol of "
                          "ipo_robust.envs.base; returning None freezes the whole observation)")
    indices = describe(agent) if callable(describe) else describe
    return None if indices is None else tuple(int(i) for i in indices)


class _Control(Attack):
    """A control: the attacker does not train; ``exploitability`` is NaN."""

    def _attacker(self, env, seat: int, seed: int, victim: Victim, generator: torch.Generator) -> Actor:
        raise NotImplementedError

    def _victim_actor(self, env, victim: Victim, seat: int, generator) -> Actor:
        return PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)

    def _run(self, victim, seat, budget, games, seed):
        start = time.perf_counter()
        env = game_env(victim, self.config.num_envs, seed)
        try:
            self.check_env(env, victim.env_name)
        except ConfigError:
            env.close()
            raise
        generator = torch.Generator().manual_seed(seed)
        actors = _pair(self._victim_actor(env, victim, seat, generator),
                       self._attacker(env, seat, seed, victim, generator), seat)
        R1, R2 = play_games(env, actors, games, seed)
        env.close()
        attacker_returns, victim_returns = _seat_returns(R1, R2, seat)
        return _result(self.name, seat, budget, attacker_returns, victim_returns, math.nan, "control", start, {})


class RandomAttack(_Control):
    """``random``: a uniformly random attacker (control)."""

    name = "random"

    Config = ControlConfig

    def _attacker(self, env, seat, seed, victim, generator):
        return RandomActor(env.action_spaces[1 - seat], np.random.default_rng(seed))


class ZeroAttack(_Control):
    """``zero``: a no-op attacker, zero action (Box) or action 0 (Discrete) (control)."""

    name = "zero"

    Config = ControlConfig

    def _attacker(self, env, seat, seed, victim, generator):
        return ZeroActor(env.action_spaces[1 - seat])


class MaskedVictim(_Control):
    """``masked-victim``: the victim cannot see its opponent (module docstring); the opponent is the
    victim's own partner by default (control)."""

    name = "masked-victim"

    @dataclass
    class Config(ControlConfig):
        opponent: str = hyperparameter("partner", one_of("partner", "random", "zero"),
                                       "who plays the masked victim: its own partner policy, random, or zero")

    def check_env(self, env, env_name):
        """The env must say which observation entries describe the opponent (:func:`opponent_indices`)."""
        for agent in (0, 1):
            opponent_indices(env, agent)

    def _victim_actor(self, env, victim, seat, generator):
        inner = PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)
        return MaskedActor(inner, opponent_indices(env, seat))

    def _attacker(self, env, seat, seed, victim, generator):
        space = env.action_spaces[1 - seat]
        if self.config.opponent == "random":
            return RandomActor(space, np.random.default_rng(seed))
        if self.config.opponent == "zero":
            return ZeroActor(space)
        return PolicyActor(victim.agents[1 - seat], space, generator)
