"""Evaluation games: actors that choose a batch of env actions, and :func:`play_games`, which plays
exactly ``games`` episodes between two of them.

A game is one episode, played with the env's dense shaping switched off (``game_env``); copy k of
the env contributes its first ``games // n + (k < games % n)`` episodes (n = min(num_envs, games)), so
short episodes are not over-represented. Everything is seeded: the same seed gives the same games.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ipo_robust.errors import ConfigError


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
    """Uniformly random actions: ``space.sample`` from a seeded numpy generator (:meth:`Space.sample` of
    :mod:`ipo_robust.envs.base`)."""

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

