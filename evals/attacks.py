"""Attacks on frozen agents: how much can a new opponent get out of a trained (victim) policy?

A :class:`Victim` is a frozen pair of policies with the environment they were trained in (usually from
a checkpoint). An attack targets one of the two agents, the *victim seat*; the attacker plays the other
seat. Every attack is a plugin (kind ``attack``); the built-ins are in :data:`ATTACKS`::

    victim = Victim.from_checkpoint("runs/sumo")
    attack = host.resolve("attack", "ppo-adversary")(lr=3e-4, num_envs=16)
    result = attack.run(victim, seat=0, budget=200_000, games=200, seed=0)
    result.as_row()   # flat scalars: win_rate with its Wilson 95 % interval, returns, exploitability, ...

Built-in attacks (``kind`` says how to read ``exploitability``):

- ``ppo-adversary`` (``lower-bound``): the adversarial-policy protocol of Gleave et al. (2020,
  "Adversarial Policies: Attacking Deep Reinforcement Learning"). The victim never changes (its weights
  are bit-identical afterwards); a fresh attacker policy is trained with PPO for ``budget`` env steps
  against it on the env's sparse win/loss reward (a sumo env's shaping is switched off), then both play
  ``games`` games with sampled actions. Exploitability estimate = the attacker's win rate against the
  victim minus the win rate of a *reference* attacker, trained with the same budget, seed and
  hyperparameters against a uniformly random policy in the victim's seat (``reference="random"``);
  ``details["return_gap"]`` is the same difference in mean episode return. ``reference="none"`` skips
  the reference and reports the raw win rate.
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
at their values of the episode's first step (Gleave et al.'s masked victim). Those entries are the
env's ``opponent_observation_indices`` attribute when it has one, else :data:`OPPONENT_OBSERVATION`
(``sumo-pushers``: opponent x, y, cos, sin, vx, vy, yaw rate and its distance to the edge, indices 7-13
and 15; ``sumo-ants``: the opponent's torso pose and velocity, 29-41, and its distance to the edge,
43). For any other env the victim's whole observation is frozen at the episode's first step.

Games: a game is one episode, played with the env's dense shaping switched off (:func:`game_env`);
a win when the attacker's episode return is larger than the victim's, a tie when equal
(:mod:`ipo_robust.evals.metrics`). Evaluation runs ``num_envs`` copies of the env and counts exactly
``games`` finished episodes: copy k plays its first ``games // n + (k < games % n)`` episodes
(n = min(num_envs, games)), so short episodes are not over-represented. Everything is seeded: the
same seed gives the same result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Uniform

from ipo_robust.errors import ConfigError
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

KINDS = ("exact", "lower-bound", "control")

OPPONENT_OBSERVATION: dict[str, tuple[int, ...]] = {
    "sumo-pushers": (*range(7, 14), 15),
    "sumo-ants": (*range(29, 42), 43),
}
"""Indices of the observation entries that describe the opponent, per env name (see the module doc)."""


# ------------------------------------------------------------------------------------------ victim
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
        from ipo_robust.checkpoint import CheckpointError, load_checkpoint

        checkpoint = load_checkpoint(path)
        spec = checkpoint.meta.get("env")
        if not spec or "name" not in spec:
            raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} records no environment to attack in")
        return cls(checkpoint.load_agents(), spec["name"], dict(spec.get("options", {})))

    def make_env(self, num_envs: int, seed: int):
        """The victim's env with ``num_envs`` copies, seeded; nobody holds the superpower."""
        from ipo_robust import make_env

        env = make_env(self.env_name, num_envs=num_envs, seed=seed, **self.env_options)
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


# ------------------------------------------------------------------------------------------ result
@dataclass
class AttackResult:
    """The outcome of one attack, from the attacker's point of view.

    ``attacker_return`` / ``victim_return``: mean episode return (undiscounted sum of rewards) over the
    evaluation games. ``exploitability``: see ``kind`` (module docstring); NaN for controls.
    ``details``: attack-specific extras (exact values, the reference attacker's rates, training info).
    """

    attack: str
    seat: int
    budget: int
    wins: int
    ties: int
    losses: int
    games: int
    attacker_return: float
    victim_return: float
    exploitability: float
    kind: str
    seconds: float
    details: dict = field(default_factory=dict)
    policy: object = field(default=None, repr=False, compare=False)
    """the trained attacker policy (``ppo-adversary``), else None"""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"AttackResult.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(self.wins, self.ties, self.losses)

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else math.nan

    def as_row(self) -> dict:
        """Flat scalars only: counts, rates with Wilson 95 % intervals, returns, exploitability, kind."""
        row = {"attack": self.attack, "seat": int(self.seat), "budget": int(self.budget), "games": int(self.games),
               "wins": int(self.wins), "ties": int(self.ties), "losses": int(self.losses)}
        rates = self.outcomes.rates()
        for key in ("win", "tie", "loss"):
            row[f"{key}_rate"] = rates[f"{key}_rate"]
            row[f"{key}_low"] = rates[f"{key}_low"]
            row[f"{key}_high"] = rates[f"{key}_high"]
        row.update(attacker_return=float(self.attacker_return), victim_return=float(self.victim_return),
                   exploitability=float(self.exploitability), kind=self.kind, seconds=float(self.seconds))
        return row


# ------------------------------------------------------------------------------------------ actors
def _is_discrete(space) -> bool:
    return hasattr(space, "n") and not hasattr(space, "low")


def _to_env_action(action, space) -> np.ndarray:
    """What the env receives: int64 for Discrete, float64 clipped to the bounds for a Box."""
    a = action.detach().cpu().numpy() if isinstance(action, torch.Tensor) else np.asarray(action)
    if _is_discrete(space):
        return a.astype(np.int64)
    return np.clip(a.astype(np.float64), space.low, space.high)


class Actor:
    """Chooses a batch of env actions from a batch of observations; ``t`` (N,) is each copy's step
    index within its episode (0 on an episode's first step)."""

    def act(self, obs: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PolicyActor(Actor):
    """Samples from a policy (``distribution(obs)``) with a seeded torch generator."""

    def __init__(self, policy: nn.Module, space, generator: torch.Generator):
        self.policy, self.space, self.generator = policy, space, generator

    def act(self, obs, t):
        return _to_env_action(self.policy.act(torch.as_tensor(obs), self.generator), self.space)


class RandomActor(Actor):
    """Uniformly random actions: ``space.sample`` from a seeded numpy generator (module docstring)."""

    def __init__(self, space, rng: np.random.Generator):
        self.space, self.rng = space, rng

    def act(self, obs, t):
        return _to_env_action(self.space.sample(self.rng, size=obs.shape[0]), self.space)


class ZeroActor(Actor):
    """Action 0 (Discrete) or the zero vector clipped into the bounds (Box): a no-op opponent."""

    def __init__(self, space):
        self.space = space

    def act(self, obs, t):
        if _is_discrete(self.space):
            return np.zeros(obs.shape[0], dtype=np.int64)
        return _to_env_action(np.zeros((obs.shape[0], *self.space.shape)), self.space)


class TableActor(Actor):
    """Deterministic actions of a (possibly time-dependent) table over one-hot observations:
    ``table[s]`` (stationary) or ``table[t, s]`` (one row per step index, clamped to the last)."""

    def __init__(self, table: np.ndarray, stationary: bool = True):
        self.table, self.stationary = np.asarray(table, dtype=np.int64), stationary

    def act(self, obs, t):
        state = np.argmax(obs, axis=1)
        if self.stationary:
            return self.table[state]
        return self.table[np.minimum(t, self.table.shape[0] - 1), state]


class MaskedActor(Actor):
    """Feeds ``inner`` observations whose ``indices`` (None: all) are frozen at the episode's first step."""

    def __init__(self, inner: Actor, indices):
        self.inner = inner
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.frozen: np.ndarray | None = None

    def act(self, obs, t):
        obs = np.array(obs, dtype=np.float64)
        start = t == 0
        if self.frozen is None:
            self.frozen = obs.copy()
        self.frozen[start] = obs[start]
        if self.indices is None:
            masked = self.frozen.copy()
        else:
            masked = obs.copy()
            masked[:, self.indices] = self.frozen[:, self.indices]
        return self.inner.act(masked, t)


def opponent_indices(env, env_name: str):
    """The observation entries that describe the opponent (None: unknown, freeze everything)."""
    indices = getattr(env, "opponent_observation_indices", None)
    if indices is None:
        indices = OPPONENT_OBSERVATION.get(env_name)
    return None if indices is None else tuple(int(i) for i in indices)


# ------------------------------------------------------------------------------------------ games
def play_games(env, actors, games: int, seed: int, max_steps: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Play exactly ``games`` episodes; returns each game's episode returns (R1, R2), (games,) each.

    ``actors``: (actor of agent 1, actor of agent 2). The env is reset with ``seed``. Copy k contributes
    its first ``games // n + (k < games % n)`` episodes (n = min(num_envs, games)); games are ordered by
    copy, then episode. ``max_steps`` bounds the env steps (a game that never ends raises).
    """
    if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
        raise ConfigError(f"games must be an integer >= 1 (evaluation episodes), got {games!r}")
    N = env.num_envs
    n = min(N, int(games))
    quota = np.zeros(N, dtype=np.int64)
    quota[:n] = games // n + (np.arange(n) < games % n)
    results: list[list[tuple[float, float]]] = [[] for _ in range(N)]
    obs = env.reset(seed=seed)
    t = np.zeros(N, dtype=np.int64)
    running = np.zeros((N, 2))
    for _ in range(max_steps):
        if all(len(results[k]) >= quota[k] for k in range(N)):
            break
        a1 = actors[0].act(obs[0], t)
        a2 = actors[1].act(obs[1], t)
        step = env.step(a1, a2)
        running[:, 0] += step.rewards[0]
        running[:, 1] += step.rewards[1]
        done = step.terminated | step.truncated
        for k in np.flatnonzero(done):
            if len(results[k]) < quota[k]:
                results[k].append((float(running[k, 0]), float(running[k, 1])))
        running[done] = 0.0
        t = np.where(done, 0, t + 1)
        obs = step.obs
    else:
        raise RuntimeError(f"play_games: {games} games did not finish within {max_steps} steps per copy")
    flat = np.array([r for rows in results for r in rows], dtype=np.float64).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def _result(name: str, seat: int, budget: int, attacker: np.ndarray, victim: np.ndarray, exploitability: float,
            kind: str, start: float, details: dict) -> AttackResult:
    outcomes = Outcomes.from_returns(attacker, victim)
    return AttackResult(name, seat, budget, outcomes.wins, outcomes.ties, outcomes.losses, outcomes.games,
                        float(attacker.mean()), float(victim.mean()), float(exploitability), kind,
                        time.perf_counter() - start, details)


def _seat_returns(R1, R2, seat: int) -> tuple[np.ndarray, np.ndarray]:
    """(attacker returns, victim returns) when ``seat`` is the victim's."""
    return (R1, R2) if seat == 1 else (R2, R1)


def _pair(victim_actor: Actor, attacker_actor: Actor, seat: int) -> tuple[Actor, Actor]:
    return (victim_actor, attacker_actor) if seat == 0 else (attacker_actor, victim_actor)


# ------------------------------------------------------------------------------------------ attacks
def _integer(value) -> str | None:
    return None if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else "an integer"


class Attack:
    """Base class: ``Attack(**options)`` validates the options (a :class:`ConfigError` names a bad one);
    :meth:`run` attacks one seat of a victim. Subclasses set ``name``, ``Config`` and ``_run``."""

    name: ClassVar[str] = "attack"

    @dataclass
    class Config(Hyperparameters):
        OWNER = "attack"
        num_envs: int = hyperparameter(16, positive_int, "env copies played in parallel")

    def __init__(self, **options):
        self.config = type(self).Config.build(**options)

    def run(self, victim: Victim, seat: int, budget: int, games: int, seed: int) -> AttackResult:
        """Attack agent ``seat`` (0 or 1) of ``victim``; the attacker plays the other seat.

        ``budget``: attacker training env steps (ignored by attacks that do not train); ``games``:
        evaluation games; ``seed``: fixes every random draw.
        """
        if not isinstance(victim, Victim):
            raise ConfigError(f"attack {self.name!r}: victim must be an ipo_robust.evals.attacks.Victim, got "
                              f"{type(victim).__name__}")
        if seat not in (0, 1) or isinstance(seat, bool):
            raise ConfigError(f"attack {self.name!r}: seat must be 0 or 1 (the victim's agent to attack), "
                              f"got {seat!r}")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
            raise ConfigError(f"attack {self.name!r}: budget must be an integer >= 0 (training env steps), "
                              f"got {budget!r}")
        if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
            raise ConfigError(f"attack {self.name!r}: games must be an integer >= 1, got {games!r}")
        if _integer(seed) is not None:
            raise ConfigError(f"attack {self.name!r}: seed must be an integer, got {seed!r}")
        return self._run(victim, int(seat), int(budget), int(games), int(seed))

    def _run(self, victim: Victim, seat: int, budget: int, games: int, seed: int) -> AttackResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


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


def _control_config(name: str) -> type[Hyperparameters]:
    """The hyperparameters every evaluation-only attack takes, owned by attack ``name``."""

    @dataclass
    class Config(Hyperparameters):
        OWNER = f"attack '{name}'"
        num_envs: int = hyperparameter(16, positive_int, "env copies for the evaluation games")

    return Config


class PPOAdversary(Attack):
    """``ppo-adversary``: Gleave et al. (2020) adversarial policy trained by PPO (module docstring)."""

    name = "ppo-adversary"

    @dataclass
    class Config(Hyperparameters):
        OWNER = "attack 'ppo-adversary'"
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

    def _train(self, victim: Victim, opponent: nn.Module, seat: int, budget: int, seed: int) -> tuple:
        """A fresh attacker trained with PPO for ``budget`` env steps against the frozen ``opponent``
        sitting in ``seat``; returns (attacker, last training info)."""
        from ipo_robust.plugins.ppo import PPO
        from ipo_robust.policies import make_policy
        from ipo_robust.rollout import collect

        c = self.config
        env = victim.make_env(c.num_envs, seed)
        if c.sparse and hasattr(env, "set_shaping"):
            env.set_shaping(0.0)
        a = 1 - seat
        attacker = make_policy(env.observation_spaces[a], env.action_spaces[a], hidden=tuple(c.hidden), seed=seed)
        agents = (opponent, attacker) if seat == 0 else (attacker, opponent)
        ppo = PPO(agents, train=f"player{a + 1}", lr=c.lr, epochs=c.epochs, minibatches=c.minibatches, clip=c.clip,
                  gamma=c.gamma, gae_lambda=c.gae_lambda, ent_coef=c.ent_coef, critic_hidden=tuple(c.hidden) or (64,),
                  seed=seed)
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


class BestResponse(Attack):
    """``best-response``: the exact best response in matrix and iterated matrix games (module docstring)."""

    name = "best-response"

    @dataclass
    class Config(_control_config("best-response")):
        OWNER = "attack 'best-response'"
        horizon: str = hyperparameter("infinite", one_of("infinite", "episode"),
                                      "iterated games: best response to the infinite-horizon discounted value "
                                      "(the LOLA objective) or to the value of the env's episode horizon")

    def _run(self, victim, seat, budget, games, seed):
        from ipo_robust.envs.matrix import IteratedMatrixGameEnv, MatrixGameEnv

        start = time.perf_counter()
        env = victim.make_env(self.config.num_envs, seed)
        if isinstance(env, IteratedMatrixGameEnv):
            actor, exact = self._iterated(env, victim, seat)
        elif isinstance(env, MatrixGameEnv):
            actor, exact = self._matrix(env, victim, seat)
        else:
            raise ConfigError(f"attack 'best-response' needs a matrix game or an iterated matrix game (exact "
                              f"values); {victim.env_name!r} is a {type(env).__name__}. Use 'ppo-adversary' for "
                              "a lower bound instead.")
        generator = torch.Generator().manual_seed(seed)
        victim_actor = PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)
        R1, R2 = play_games(env, _pair(victim_actor, actor, seat), games, seed)
        env.close()
        attacker_returns, victim_returns = _seat_returns(R1, R2, seat)
        exploitability = exact["best_response_value"] - exact["partner_value"]
        return _result(self.name, seat, budget, attacker_returns, victim_returns, exploitability, "exact", start,
                       exact)

    @staticmethod
    def _probabilities(policy: nn.Module, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            probs = policy.distribution(torch.as_tensor(obs)).probs
        return probs.detach().to(torch.float64).cpu().numpy()

    def _matrix(self, env, victim: Victim, seat: int):
        """One stage game, repeated ``horizon`` times with a constant observation: the stationary best
        response plays the stage best response every move; values are undiscounted episode sums."""
        a = 1 - seat
        obs = np.ones((1, env.observation_spaces[0].shape[0]))
        q = self._probabilities(victim.agents[seat], obs)[0]  # the victim's mixed strategy
        p = self._probabilities(victim.agents[a], obs)[0]  # the partner's, in the attacker's seat
        payoff = env.payoff1 if a == 0 else env.payoff2.T  # rows: the attacker's actions
        action_values = payoff @ q
        best = int(np.argmax(action_values))
        victim_payoff = env.payoff2 if a == 0 else env.payoff1.T  # rows: attacker actions, cols: victim's
        H = env.horizon
        exact = {"best_response_value": H * float(action_values[best]), "partner_value": H * float(p @ action_values),
                 "victim_value": H * float(victim_payoff[best] @ q), "best_response": [best]}
        return TableActor(np.array([best])), exact

    def _iterated(self, env, victim: Victim, seat: int):
        """Best response over the memory-one states: the victim's table q(y | s) makes the attacker's
        problem an MDP with states s, actions x, reward payoff_a(joint) and next state 1 + a1 n2 + a2."""
        a = 1 - seat
        S = env.n_states
        states = env.state_observations()
        q = self._probabilities(victim.agents[seat], states)  # (S, n_victim)
        p = self._probabilities(victim.agents[a], states)  # (S, n_attacker)
        n1, n2 = env.payoff1.shape
        payoff_a = env.payoff1 if a == 0 else env.payoff2.T  # (n_attacker, n_victim)
        n_att, n_vic = payoff_a.shape
        joint = (lambda x, y: 1 + x * n2 + y) if a == 0 else (lambda x, y: 1 + y * n2 + x)
        nxt = np.array([[joint(x, y) for y in range(n_vic)] for x in range(n_att)])  # (n_att, n_vic)
        gamma = env.gamma

        def q_values(V):  # Q(s, x) = sum_y q(y|s) [payoff_a(x, y) + gamma V(next(x, y))]
            return np.einsum("sy,xy->sx", q, payoff_a + gamma * V[nxt])

        def table_probs(choice):  # one-hot (S, n_att) table of a deterministic stationary policy
            return np.eye(n_att)[choice]

        def values(probs_attacker, horizon):
            pa, pv = (probs_attacker, q) if a == 0 else (q, probs_attacker)
            J1, J2 = env.exact_values(pa, pv, horizon=horizon)
            return (float(J1), float(J2)) if a == 0 else (float(J2), float(J1))

        if self.config.horizon == "infinite":
            if gamma >= 1.0:
                raise ConfigError("attack 'best-response': horizon='infinite' needs the env's gamma < 1, got "
                                  f"{gamma}; use horizon='episode'")
            choice = np.zeros(S, dtype=np.int64)
            for _ in range(1000):  # policy iteration: exact evaluation, greedy improvement, finitely many steps
                P = np.zeros((S, S))
                r = np.zeros(S)
                for s in range(S):
                    x = choice[s]
                    r[s] = q[s] @ payoff_a[x]
                    np.add.at(P[s], nxt[x], q[s])
                V = np.linalg.solve(np.eye(S) - gamma * P, r)
                Q = q_values(V)
                improved = Q[np.arange(S), choice] + 1e-12 < Q.max(axis=1)
                if not improved.any():
                    break
                choice = np.where(improved, Q.argmax(axis=1), choice)
            actor = TableActor(choice)
            br_value, victim_value = values(table_probs(choice), None)
            partner_value = values(p, None)[0]
            exact = {"best_response": choice.tolist()}
        else:
            H = env.horizon
            V = np.zeros(S)
            tables = []
            for _ in range(H):  # backward induction: tables[k] acts with k + 1 moves left
                Q = q_values(V)
                tables.append(Q.argmax(axis=1))
                V = Q.max(axis=1)
            table = np.array(tables[::-1])  # row t: the move with H - t moves left
            actor = TableActor(table, stationary=False)
            br_value = float(V[0])
            partner_value = values(p, H)[0]
            victim_value = self._victim_value_finite(env, table, q, nxt, payoff_a, a, gamma)
            exact = {"best_response": table.tolist()}
        exact.update(best_response_value=float(br_value), partner_value=float(partner_value),
                     victim_value=float(victim_value), horizon=self.config.horizon)
        return actor, exact

    @staticmethod
    def _victim_value_finite(env, table, q, nxt, payoff_a, a, gamma) -> float:
        """The victim's H-step value against the non-stationary best response (backward recursion)."""
        payoff_v = env.payoff2 if a == 0 else env.payoff1.T  # (n_att, n_vic): the victim's payoff
        S = q.shape[0]
        W = np.zeros(S)
        for t in reversed(range(table.shape[0])):
            x = table[t]  # (S,)
            W = np.array([q[s] @ (payoff_v[x[s]] + gamma * W[nxt[x[s]]]) for s in range(S)])
        return float(W[0])


class _Control(Attack):
    """A control: the attacker does not train; ``exploitability`` is NaN."""

    def _attacker(self, env, seat: int, seed: int, victim: Victim, generator: torch.Generator) -> Actor:
        raise NotImplementedError

    def _victim_actor(self, env, victim: Victim, seat: int, generator) -> Actor:
        return PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)

    def _run(self, victim, seat, budget, games, seed):
        start = time.perf_counter()
        env = game_env(victim, self.config.num_envs, seed)
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

    Config = _control_config("random")

    def _attacker(self, env, seat, seed, victim, generator):
        return RandomActor(env.action_spaces[1 - seat], np.random.default_rng(seed))


class ZeroAttack(_Control):
    """``zero``: a no-op attacker, zero action (Box) or action 0 (Discrete) (control)."""

    name = "zero"

    Config = _control_config("zero")

    def _attacker(self, env, seat, seed, victim, generator):
        return ZeroActor(env.action_spaces[1 - seat])


class MaskedVictim(_Control):
    """``masked-victim``: the victim cannot see its opponent (module docstring); the opponent is the
    victim's own partner by default (control)."""

    name = "masked-victim"

    @dataclass
    class Config(_control_config("masked-victim")):
        OWNER = "attack 'masked-victim'"
        opponent: str = hyperparameter("partner", one_of("partner", "random", "zero"),
                                       "who plays the masked victim: its own partner policy, random, or zero")

    def _victim_actor(self, env, victim, seat, generator):
        inner = PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)
        return MaskedActor(inner, opponent_indices(env, victim.env_name))

    def _attacker(self, env, seat, seed, victim, generator):
        space = env.action_spaces[1 - seat]
        if self.config.opponent == "random":
            return RandomActor(space, np.random.default_rng(seed))
        if self.config.opponent == "zero":
            return ZeroActor(space)
        return PolicyActor(victim.agents[1 - seat], space, generator)


ATTACKS: dict = {cls.name: cls for cls in (PPOAdversary, BestResponse, RandomAttack, ZeroAttack, MaskedVictim)}
"""The built-in attacks by name; ``plugins/attacks.py`` registers each one (kind ``attack``)."""
