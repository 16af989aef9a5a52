"""Attacks on frozen agents: how much can a new opponent get out of a trained (victim) policy?

A :class:`Victim` is a frozen pair of policies with the environment they were trained in (usually from
a checkpoint). An attack targets one of the two agents, the *victim seat*; the attacker plays the other
seat. Here ``seat`` is the index into ``victim.agents`` (0: agent 1, 1: agent 2); suite specs, the tables
of ``ipo-robust eval`` and ``compare`` and their reports number the seats 1 and 2, as configs number agents.
Every attack is a plugin (kind ``attack``); the built-ins are in :data:`ATTACKS`::

    victim = Victim.from_checkpoint("runs/sumo")
    attack = host.create("attack", "ppo-adversary", lr=3e-4, num_envs=16)
    result = attack.run(victim, seat=0, budget=200_000, games=200, seed=0)
    result.as_row()   # flat scalars: win_rate with its Wilson 95 % interval, returns, exploitability, ...

Built-in attacks (``kind`` says how to read ``exploitability``):

- ``ppo-adversary`` (``lower-bound``): the adversarial-policy protocol of Gleave et al. (2020,
  "Adversarial Policies: Attacking Deep Reinforcement Learning"). The victim never changes (its weights
  are bit-identical afterwards); a fresh attacker policy is trained with PPO for ``budget`` env steps
  against it, on the env's dense shaping annealed linearly to the sparse win/loss reward by the end of the
  budget (``shaping``, 1.0 by default; 0 trains on the sparse reward throughout), then both play ``games``
  games with sampled actions and shaping off. Exploitability, in game units: the attacker's mean return
  minus the mean return the victim's own trained partner gets in that seat against it
  (``partner_return``). ``reference="random"`` adds ``details["reference_gap"]``: the attacker's win
  rate minus that of an attacker trained with the same budget against a uniformly random victim.
- ``best-response`` (``exact``): the exact best response to the victim in matrix games (one-shot or
  repeated) and iterated matrix games (an MDP over the memory-one states, solved by policy iteration on
  the exact discounted values, or by backward induction over the episode's horizon). Exploitability =
  the best-response value minus the value the victim's own partner (the pair's agent in the attacker's
  seat) gets against the victim. Averaged over both seats this is NashConv / 2
  (:mod:`ipo_robust.evals.exploitability`).
- Controls (``control``; ``exploitability`` is NaN): ``random`` (uniformly random actions: uniform over
  a Discrete space or over the bounds of a Box, standard normal on unbounded coordinates), ``zero``
  (action 0 for Discrete, zeros clipped into the bounds for Box) and ``masked-victim`` (the victim's
  partner plays a victim that cannot see it; masking below).

Masking of ``masked-victim``: the victim's observation entries that describe the opponent are frozen
at their values of the episode's first step (Gleave et al.'s masked victim). Which entries those are is
a fact of the env, given by the env protocol's ``env.opponent_observation_indices(agent)``
(:class:`ipo_robust.envs.base.TwoAgentEnv`; ``sumo-pushers``: the opponent's x, y, cos, sin, vx, vy,
yaw rate and its distance to the edge, indices 7-13 and 15; ``sumo-ants``: the opponent's torso pose
and velocity, 29-41, and its distance to the edge, 43). Where the env returns None the victim's whole
observation is frozen at the episode's first step; an env object without the method raises ConfigError.

Games: a game is one episode, played with the env's dense shaping switched off (:func:`game_env`);
a win when the attacker's episode return is larger than the victim's, a tie when equal
(:mod:`ipo_robust.evals.metrics`). Evaluation runs ``num_envs`` copies of the env and counts exactly
``games`` finished episodes: copy k plays its first ``games // n + (k < games % n)`` episodes
(n = min(num_envs, games)), so short episodes are not over-represented. Everything is seeded: the
same seed gives the same result.

Where each part lives: the victim (:mod:`.victim`), actors and games (:mod:`.play`), the base class
and result (:mod:`.base`), the attacker training of ``ppo-adversary`` (:mod:`.ppo_adversary`), the
exact best response (:mod:`.best_response`) and the controls (:mod:`.controls`). Every name is
importable from ``ipo_robust.evals.attacks`` itself.
"""

from __future__ import annotations

from ipo_robust.evals.attacks.base import KINDS, Attack, AttackResult
from ipo_robust.evals.attacks.best_response import BestResponse
from ipo_robust.evals.attacks.controls import MaskedVictim, RandomAttack, ZeroAttack, opponent_indices
from ipo_robust.evals.attacks.play import (
    Actor,
    MaskedActor,
    PolicyActor,
    RandomActor,
    TableActor,
    ZeroActor,
    play_games,
)
from ipo_robust.evals.attacks.ppo_adversary import PPOAdversary, UniformPolicy
from ipo_robust.evals.attacks.victim import Victim, game_env

__all__ = ["ATTACKS", "KINDS", "Actor", "Attack", "AttackResult", "BestResponse", "MaskedActor", "MaskedVictim",
           "PPOAdversary", "PolicyActor", "RandomActor", "RandomAttack", "TableActor", "UniformPolicy", "Victim",
           "ZeroActor", "ZeroAttack", "game_env", "opponent_indices", "play_games"]

ATTACKS: dict = {cls.name: cls for cls in (PPOAdversary, BestResponse, RandomAttack, ZeroAttack, MaskedVictim)}
"""The built-in attacks by name; ``plugins/attacks.py`` registers each one (kind ``attack``)."""
