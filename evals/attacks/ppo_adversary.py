"""``ppo-adversary``: the adversarial-policy attack of Gleave et al. (2020, "Adversarial Policies:
Attacking Deep Reinforcement Learning"), with its attacker trained by the optimizer plugin ``ppo``.

The victim never changes (its weights are bit-identical afterwards); a fresh attacker policy is trained
against it for ``budget`` env steps, then both play ``games`` games (always sparse: the result is the win
rate in real games). On envs with ``set_shaping`` (the sumo games) the attacker's training reward starts
with the env's dense shaping at weight ``shaping`` (1 by default) annealed linearly to 0 at the end of
the training, as Gleave et al. do: a training aid only, the sparse win / loss reward is all that is left
at the end (``shaping=0``: sparse throughout). Each PPO batch is used for ``epochs`` x ``minibatches``
= 80 gradient steps by default (issue 16: with 16, and sparse, the attacker did not learn to push a
motionless zero-action sumo pusher out of the ring within 240,000 env steps; with 80 and the annealed
shaping, at 16 copies x 128 steps as compare runs it, it did within 120,000 on every seed measured,
benchmarks/RESULTS.md). Exploitability, in game units, is the attacker's mean return
minus the mean return the victim's own trained partner gets in the same seat against the same victim
(the partner's games use the same evaluation env and seed). It is a **lower bound**: a stronger attacker
could only find more. :meth:`PPOAdversary.run_budgets` gives a budget curve from one attacker, evaluated
at checkpoints along its training. The attacker's optimizer is resolved through the plugin host
(``host.resolve("optimizer", "ppo")``), never imported: with the ``ppo`` plugin disabled or absent, this
attack raises :class:`ConfigError` saying so.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ipo_robust import host
from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.evals.attacks.base import Attack, _pair, _result, _seat_returns
from ipo_robust.evals.attacks.play import PolicyActor, play_games
from ipo_robust.evals.attacks.victim import UniformPolicy, Victim, game_env
from ipo_robust.evals.metrics import Outcomes
from ipo_robust.hyperparameters import (
    Hyperparameters,
    boolean,
    hidden_sizes,
    hyperparameter,
    non_negative,
    one_of,
    positive,
    positive_int,
    unit_interval,
)
from ipo_robust.policies import make_policy
from ipo_robust.rollout import collect

ATTACKER_OPTIMIZER = "ppo"
"""The optimizer plugin that trains the attacker (resolved through the host)."""


def attacker_optimizer():
    """The factory of the optimizer plugin :data:`ATTACKER_OPTIMIZER`; ConfigError when it is not there."""
    try:
        return host.resolve("optimizer", ATTACKER_OPTIMIZER)
    except UnknownNameError as error:
        raise ConfigError(f"attack 'ppo-adversary' trains its attacker with the optimizer plugin "
                          f"{ATTACKER_OPTIMIZER!r}, which is not available (disabled or not installed: "
                          f"{error}); enable it, or use another attack") from None


class PPOAdversary(Attack):
    """``ppo-adversary``: Gleave et al. (2020) adversarial policy trained by PPO (module docstring)."""

    name = "ppo-adversary"

    @dataclass
    class Config(Hyperparameters):
        num_envs: int = hyperparameter(16, positive_int, "env copies for training and evaluation")
        steps: int = hyperparameter(64, positive_int, "steps per env copy in one PPO batch")
        lr: float = hyperparameter(1e-3, positive, "Adam learning rate of the attacker (and its critic)")
        hidden: tuple = hyperparameter((64, 64), hidden_sizes, "hidden widths of the attacker policy and critic")
        epochs: int = hyperparameter(10, positive_int, "PPO passes over each batch")
        minibatches: int = hyperparameter(8, positive_int, "PPO minibatches per pass")
        clip: float = hyperparameter(0.2, positive, "PPO clip range")
        gamma: float = hyperparameter(0.99, unit_interval, "discount of the attacker's PPO")
        gae_lambda: float = hyperparameter(0.95, unit_interval, "GAE lambda")
        ent_coef: float = hyperparameter(0.0, non_negative, "entropy bonus weight")
        reference: str = hyperparameter("none", one_of("random", "none"),
                                        "also train a baseline attacker against a uniformly random policy in the "
                                        "victim's seat and report win rate minus its win rate as reference_gap "
                                        "('random'; doubles the cost), or not ('none')")
        sparse: bool = hyperparameter(True, boolean,
                                      "switch off the env's dense shaping (set_shaping(0)): win/loss reward only")
        shaping: float = hyperparameter(1.0, non_negative,
                                        "dense shaping weight at the start of the attacker's training, annealed "
                                        "linearly to 0 at its largest budget (Gleave et al. 2020); envs with "
                                        "set_shaping only; 0: sparse throughout (with sparse=True)")

    def __init__(self, **options):
        super().__init__(**options)
        attacker_optimizer()  # a disabled or missing ppo plugin fails here, before any work

    def _train(self, victim: Victim, opponent: nn.Module, seat: int, budgets, seed: int):
        """Train a fresh attacker with PPO against the frozen ``opponent`` sitting in ``seat``, and yield
        ``(budget, attacker snapshot, last training info)`` as it reaches each of ``budgets`` (increasing env
        step counts; a batch is cut short where a budget falls inside it, so each budget is exact). The
        attacker at budget b is the same whatever larger budgets follow."""
        c = self.config
        env = victim.make_env(c.num_envs, seed)
        if c.sparse and hasattr(env, "set_shaping"):
            env.set_shaping(0.0)
        a = 1 - seat
        attacker = make_policy(env.observation_spaces[a], env.action_spaces[a], hidden=tuple(c.hidden), seed=seed)
        agents = (opponent, attacker) if seat == 0 else (attacker, opponent)
        ppo = attacker_optimizer()(agents, train=f"player{a + 1}", lr=c.lr, epochs=c.epochs,
                                   minibatches=c.minibatches, clip=c.clip, gamma=c.gamma, gae_lambda=c.gae_lambda,
                                   ent_coef=c.ent_coef, critic_hidden=tuple(c.hidden) or (64,), seed=seed)
        info: dict = {}
        done, batches = 0, 0
        # The global torch RNG draws the actions during training (a uniform reference opponent has no
        # generator-based sampler); it is forked and seeded, so nothing leaks out and runs repeat.
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                final = max(budgets, default=0)
                for budget in budgets:
                    while done < budget:
                        if c.shaping and hasattr(env, "set_shaping"):  # annealed to sparse (Gleave et al.)
                            env.set_shaping(c.shaping * max(0.0, 1.0 - done / final))
                        steps = min(c.steps, max(1, math.ceil((budget - done) / c.num_envs)))
                        info = ppo.step(collect(env, agents, steps))
                        done += steps * c.num_envs
                        batches += 1
                    snapshot = copy.deepcopy(attacker)
                    yield budget, snapshot, {**info, "attack/train_steps": done, "attack/batches": batches}
        finally:
            env.close()

    def _evaluate(self, victim: Victim, opponent: nn.Module, attacker: nn.Module, seat: int, games: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = game_env(victim, self.config.num_envs, seed)
        generator = torch.Generator().manual_seed(seed)
        a = 1 - seat
        actors = _pair(PolicyActor(opponent, env.action_spaces[seat], generator),
                       PolicyActor(attacker, env.action_spaces[a], generator), seat)
        R1, R2 = play_games(env, actors, games, seed)
        env.close()
        return _seat_returns(R1, R2, seat)

    def _run(self, victim, seat, budget, games, seed):
        return self.run_budgets(victim, seat, [budget], games, seed)[0]

    def run_budgets(self, victim, seat, budgets, games, seed):
        """Results at each budget of ``budgets`` from one attacker, evaluated at its checkpoints along its
        training (module docstring). Exploitability = attacker return - partner return (game units): the
        partner's games are played once, in the same evaluation env and seed as the attacker's."""
        for budget in budgets:
            self._check_arguments(victim, seat, budget, games, seed)
        budgets = sorted({int(b) for b in budgets})
        start = time.perf_counter()
        frozen, partner = victim.agents[seat], victim.agents[1 - seat]
        partner_returns, _ = self._evaluate(victim, frozen, partner, seat, games, seed + 1)
        references = {}
        if self.config.reference == "random":
            probe_env = victim.make_env(1, seed)
            reference_opponent = UniformPolicy(probe_env.action_spaces[seat])
            probe_env.close()
            for budget, reference, _ in self._train(victim, reference_opponent, seat, budgets, seed):
                ref_attacker, ref_victim = self._evaluate(victim, reference_opponent, reference, seat, games,
                                                          seed + 1)
                ref = Outcomes.from_returns(ref_attacker, ref_victim)
                references[budget] = {"wins": ref.wins, "ties": ref.ties, "losses": ref.losses,
                                      "win_rate": ref.wins / games, "attacker_return": float(ref_attacker.mean()),
                                      "victim_return": float(ref_victim.mean())}
        results = []
        for budget, attacker, info in self._train(victim, frozen, seat, budgets, seed):
            attacker_returns, victim_returns = self._evaluate(victim, frozen, attacker, seat, games, seed + 1)
            exploitability = float(attacker_returns.mean() - partner_returns.mean())
            details = {"train": info, "partner_return": float(partner_returns.mean())}
            if budget in references:
                # the earlier figure, kept as a labelled extra: win rate minus a reference attacker's
                details["reference"] = references[budget]
                details["reference_gap"] = float((attacker_returns > victim_returns).mean()) - \
                    references[budget]["win_rate"]
            result = _result(self.name, seat, budget, attacker_returns, victim_returns, exploitability,
                             "lower-bound", start, details)
            result.partner_return = float(partner_returns.mean())
            result.policy = attacker
            results.append(result)
        return results
