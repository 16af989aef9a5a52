"""``ppo-adversary``: the adversarial-policy attack of Gleave et al. (2020, "Adversarial Policies:
Attacking Deep Reinforcement Learning"), with its attacker trained by the optimizer plugin ``ppo``.

The victim never changes (its weights are bit-identical afterwards); a fresh attacker policy is trained
against it for ``budget`` env steps, then both play ``games`` games. The attacker's optimizer is
resolved through the plugin host (``host.resolve("optimizer", "ppo")``), never imported: with the
``ppo`` plugin disabled or absent, this attack raises :class:`ConfigError` saying so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Uniform

from ipo_robust import host
from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.evals.attacks.base import Attack, _pair, _result, _seat_returns
from ipo_robust.evals.attacks.play import PolicyActor, _is_discrete, play_games
from ipo_robust.evals.attacks.victim import Victim, game_env
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



class PPOAdversary(Attack):
    """``ppo-adversary``: Gleave et al. (2020) adversarial policy trained by PPO (module docstring)."""

    name = "ppo-adversary"

    @dataclass
    class Config(Hyperparameters):
        num_envs: int = hyperparameter(16, positive_int, "env copies for training and evaluation")
        steps: int = hyperparameter(64, positive_int, "steps per env copy in one PPO batch")
        lr: float = hyperparameter(1e-3, positive, "Adam learning rate of the attacker (and its critic)")
        hidden: tuple = hyperparameter((64, 64), hidden_sizes, "hidden widths of the attacker policy and critic")
        epochs: int = hyperparameter(4, positive_int, "PPO passes over each batch")
        minibatches: int = hyperparameter(4, positive_int, "PPO minibatches per pass")
        clip: float = hyperparameter(0.2, positive, "PPO clip range")
        gamma: float = hyperparameter(0.99, unit_interval, "discount of the attacker's PPO")
        gae_lambda: float = hyperparameter(0.95, unit_interval, "GAE lambda")
        ent_coef: float = hyperparameter(0.0, non_negative, "entropy bonus weight")
        reference: str = hyperparameter("random", one_of("random", "none"),
                                        "baseline attacker trained against a uniformly random policy in the "
                                        "victim's seat ('random'), or none")
        sparse: bool = hyperparameter(True, boolean,
                                      "switch off the env's dense shaping (set_shaping(0)): win/loss reward only")

    def __init__(self, **options):
        super().__init__(**options)
        attacker_optimizer()  # a disabled or missing ppo plugin fails here, before any work

    def _train(self, victim: Victim, opponent: nn.Module, seat: int, budget: int, seed: int) -> tuple:
        """A fresh attacker trained with PPO for ``budget`` env steps against the frozen ``opponent``
        sitting in ``seat``; returns (attacker, last training info)."""
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
        per_batch = c.num_envs * c.steps
        done = 0
        # The global torch RNG draws the actions during training (a uniform reference opponent has no
        # generator-based sampler); it is forked and seeded, so nothing leaks out and runs repeat.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            while done < budget:
                steps = min(c.steps, max(1, math.ceil((budget - done) / c.num_envs)))
                info = ppo.step(collect(env, agents, steps))
                done += steps * c.num_envs
        info["attack/train_steps"] = done
        info["attack/batches"] = math.ceil(budget / per_batch) if budget else 0
        env.close()
        return attacker, info

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
        start = time.perf_counter()
        frozen = victim.agents[seat]
        attacker, info = self._train(victim, frozen, seat, budget, seed)
        attacker_returns, victim_returns = self._evaluate(victim, frozen, attacker, seat, games, seed + 1)
        win_rate = float((attacker_returns > victim_returns).mean())
        details = {"train": info}
        exploitability, return_gap = win_rate, float(attacker_returns.mean())
        if self.config.reference == "random":
            probe_env = victim.make_env(1, seed)
            reference_opponent = UniformPolicy(probe_env.action_spaces[seat])
            probe_env.close()
            reference, _ = self._train(victim, reference_opponent, seat, budget, seed)
            ref_attacker, ref_victim = self._evaluate(victim, reference_opponent, reference, seat, games, seed + 1)
            ref_outcomes = Outcomes.from_returns(ref_attacker, ref_victim)
            details["reference"] = {"wins": ref_outcomes.wins, "ties": ref_outcomes.ties,
                                    "losses": ref_outcomes.losses, "win_rate": ref_outcomes.wins / games,
                                    "attacker_return": float(ref_attacker.mean()),
                                    "victim_return": float(ref_victim.mean())}
            exploitability = win_rate - details["reference"]["win_rate"]
            return_gap = float(attacker_returns.mean()) - details["reference"]["attacker_return"]
        details["return_gap"] = return_gap
        result = _result(self.name, seat, budget, attacker_returns, victim_returns, exploitability, "lower-bound",
                         start, details)
        result.policy = attacker
        return result

