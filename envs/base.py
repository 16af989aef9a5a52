"""The batched two-agent environment protocol every environment of the project follows.

A :class:`TwoAgentEnv` runs ``num_envs`` independent copies of a two-player simultaneous-move game in
lock step, with numpy arrays in and out (leading dimension ``num_envs``):

    obs1, obs2 = env.reset(seed=0)                    # (num_envs, *obs_shape_i) each
    result = env.step(action1, action2)               # actions (num_envs, *action_shape_i)
    result.obs, result.rewards                        # tuples of 2: (num_envs, *obs_shape_i), (num_envs,)
    result.terminated, result.truncated               # (num_envs,) bool

Lifecycle (who calls what, with which random state):

- ``reset(seed)`` re-creates the environment's ``numpy.random.Generator`` from ``seed`` (``None`` keeps
  the current generator, so a sequence of resets continues one random stream) and resets every copy.
  Every random draw of the environment (initial states, chance outcomes) comes from that generator,
  so the same seed and the same actions give the same trajectories.
- ``step`` validates the actions (a clear ``ValueError`` for a wrong shape, a non-integer or
  out-of-range discrete action, a NaN or out-of-bounds continuous action), advances every copy, and
  *auto-resets* the copies whose episode ended: for those rows ``result.obs`` is already the first
  observation of the next episode, while ``result.info["final_obs"]`` (tuple of 2 arrays shaped like
  ``result.obs``) holds the true next observation of every row *before* any reset (for rows that did
  not end it equals ``result.obs``), and ``result.info["done_mask"]`` is ``terminated | truncated``.
- ``terminated`` means the game reached a terminal state (no value beyond it); ``truncated`` means the
  episode was cut by a time limit (``max_episode_steps``) of a game that would have gone on, so a critic
  should bootstrap from ``final_obs``.

Facts about the observations, for evaluations that need them:

- ``opponent_observation_indices(agent)``: the entries of ``agent``'s observation (indices into its last
  axis) that describe the opponent, or None when the env does not single them out (the default). The
  ``masked-victim`` control (:mod:`ipo_robust.evals.attacks`) freezes those entries so that a victim
  cannot see its opponent move; for None it freezes the whole observation.

Subclasses implement two hooks on whole batches, :meth:`TwoAgentEnv._reset_envs` and
:meth:`TwoAgentEnv._step_envs`; validation, time limits and auto-reset live here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _to_numpy(x) -> np.ndarray:
    """An array from a numpy array, a list, or a (CPU, detached or not) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class Space:
    """A set of single (unbatched) values with a shape, a dtype, ``sample`` and ``contains``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """One value (``size=None``) or ``size`` values stacked on a leading axis, drawn from ``rng``."""
        raise NotImplementedError

    def contains(self, x) -> bool:
        """Whether ``x`` is one (unbatched) element of the space."""
        raise NotImplementedError

    def check_batch(self, x, num_envs: int, name: str) -> np.ndarray:
        """Validate a batch of ``num_envs`` elements; return it as an array of the space's dtype."""
        raise NotImplementedError


class Discrete(Space):
    """The integers {0, ..., n - 1}; an element is a 0-d integer."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"Discrete(n) needs a positive int n, got {n!r}")
        self.n = int(n)
        self.shape = ()
        self.dtype = np.dtype(np.int64)

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        return rng.integers(self.n, size=size, dtype=np.int64)

    def contains(self, x) -> bool:
        a = _to_numpy(x)
        if a.shape != () or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            return False
        return bool(np.isfinite(a) and a == np.round(a) and 0 <= a < self.n)

    def check_batch(self, x, num_envs: int, name: str) -> np.ndarray:
        a = _to_numpy(x)
        if a.shape != (num_envs,):
            raise ValueError(f"{name} must have shape ({num_envs},) (one integer per environment copy), "
                             f"got shape {a.shape}")
        if np.issubdtype(a.dtype, np.floating):
            bad = ~np.isfinite(a) | (a != np.round(np.nan_to_num(a)))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{name} must hold integers in 0..{self.n - 1}; row {i} is {a[i]!r}")
            a = a.astype(np.int64)
        elif not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integers in 0..{self.n - 1}, got dtype {a.dtype}")
        out = (a < 0) | (a >= self.n)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(f"{name} out of range: row {i} is {int(a[i])}, allowed 0..{self.n - 1}")
        return a.astype(np.int64, copy=False)

    def __eq__(self, other) -> bool:
        return isinstance(other, Discrete) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("Discrete", self.n))

    def __repr__(self) -> str:
        return f"Discrete({self.n})"


class Box(Space):
    """The box {x : low <= x <= high} of float arrays of a given shape (bounds may be infinite).

    ``sample`` draws uniformly on bounded coordinates, standard normal on unbounded ones, and
    ``low + Exponential(1)`` / ``high - Exponential(1)`` on half-bounded ones.
    """

    def __init__(self, low, high, shape: tuple[int, ...] | None = None, dtype=np.float64):
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"Box dtype must be floating, got {self.dtype}")
        low, high = np.asarray(low, dtype=self.dtype), np.asarray(high, dtype=self.dtype)
        if shape is None:
            shape = np.broadcast_shapes(low.shape, high.shape)
        self.shape = tuple(int(s) for s in shape)
        try:
            self.low = np.broadcast_to(low, self.shape).copy()
            self.high = np.broadcast_to(high, self.shape).copy()
        except ValueError as err:
            raise ValueError(f"Box bounds of shapes {low.shape}, {high.shape} do not broadcast to "
                             f"shape {self.shape}") from err
        if np.isnan(self.low).any() or np.isnan(self.high).any() or (self.low > self.high).any():
            raise ValueError("Box needs low <= high everywhere (and no NaN bounds)")

    @property
    def bounded(self) -> bool:
        """Whether every coordinate has finite bounds on both sides."""
        return bool(np.isfinite(self.low).all() and np.isfinite(self.high).all())

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        shape = self.shape if size is None else (size, *self.shape)
        lo, hi = np.broadcast_to(self.low, shape), np.broadcast_to(self.high, shape)
        finite_lo, finite_hi = np.isfinite(lo), np.isfinite(hi)
        uniform, normal = rng.uniform(size=shape), rng.standard_normal(size=shape)
        exponential = rng.exponential(size=shape)
        x = np.array(normal, dtype=np.float64)  # unbounded coordinates
        both, only_lo, only_hi = finite_lo & finite_hi, finite_lo & ~finite_hi, ~finite_lo & finite_hi
        x[both] = lo[both] + uniform[both] * (hi[both] - lo[both])
        x[only_lo] = lo[only_lo] + exponential[only_lo]
        x[only_hi] = hi[only_hi] - exponential[only_hi]
        return x.astype(self.dtype)

    def contains(self, x) -> bool:
        a = _to_numpy(x)
        if a.shape != self.shape or not np.issubdtype(a.dtype, np.number):
            return False
        return bool(np.isfinite(a).all() and (a >= self.low).all() and (a <= self.high).all())

    def check_batch(self, x, num_envs: int, name: str) -> np.ndarray:
        a = _to_numpy(x)
        if a.shape != (num_envs, *self.shape):
            raise ValueError(f"{name} must have shape {(num_envs, *self.shape)}, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(self.dtype, copy=False)
        if not np.isfinite(a).all():
            i = int(np.flatnonzero(~np.isfinite(a).reshape(num_envs, -1).all(axis=1))[0])
            raise ValueError(f"{name} must be finite; row {i} holds NaN or inf: {a[i]!r}")
        out = ((a < self.low) | (a > self.high)).reshape(num_envs, -1).any(axis=1)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(f"{name} out of bounds in row {i}: {a[i]!r} not within "
                             f"[{self.low!r}, {self.high!r}] (clip continuous actions to the space first)")
        return a

    def __eq__(self, other) -> bool:
        return (isinstance(other, Box) and other.shape == self.shape and other.dtype == self.dtype
                and np.array_equal(other.low, self.low) and np.array_equal(other.high, self.high))

    def __hash__(self) -> int:
        return hash(("Box", self.shape))

    def __repr__(self) -> str:
        lo = self.low.min() if self.low.size else 0.0
        hi = self.high.max() if self.high.size else 0.0
        return f"Box({lo}, {hi}, shape={self.shape}, dtype={self.dtype})"


@dataclass
class StepResult:
    """What :meth:`TwoAgentEnv.step` returns.

    obs: (obs1, obs2), each (num_envs, *obs_shape_i); rows whose episode ended hold the reset observation.
    rewards: (r1, r2), each float64 (num_envs,): what each player received for this step.
    terminated: bool (num_envs,): the game reached a terminal state.
    truncated: bool (num_envs,): the episode was cut by a time limit (and not terminated).
    info: ``final_obs`` (tuple of 2 arrays like ``obs``: the next observation before any reset),
        ``done_mask`` (terminated | truncated), plus environment-specific entries.
    """

    obs: tuple[np.ndarray, np.ndarray]
    rewards: tuple[np.ndarray, np.ndarray]
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict = field(default_factory=dict)


class TwoAgentEnv:
    """Base class of batched two-player simultaneous-move environments (see the module docstring).

    Subclasses call ``super().__init__(num_envs, observation_spaces, action_spaces, seed,
    max_episode_steps)`` and implement:

    - ``_reset_envs(mask) -> (obs1, obs2)``: reset the rows where the bool ``mask`` (num_envs,) is true
      and return their first observations, shapes (mask.sum(), *obs_shape_i);
    - ``_step_envs(action1, action2) -> (obs, rewards, terminated, info)``: advance every row with
      validated actions; ``obs`` and ``rewards`` are tuples of 2 arrays over all rows, ``terminated``
      (num_envs,) bool, ``info`` a dict (may be empty).

    Random draws use ``self.rng`` only. The base class counts steps per row and truncates at
    ``max_episode_steps`` (``None``: no time limit).
    """

    def __init__(self, num_envs: int, observation_spaces: tuple[Space, Space],
                 action_spaces: tuple[Space, Space], seed: int | None = None,
                 max_episode_steps: int | None = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, (int, np.integer))
                                              or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.observation_spaces = tuple(observation_spaces)
        self.action_spaces = tuple(action_spaces)
        if len(self.observation_spaces) != 2 or len(self.action_spaces) != 2:
            raise ValueError("a two-agent environment needs exactly two observation and two action spaces")
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._has_reset = False

    # -- hooks -------------------------------------------------------------------------------------
    def _reset_envs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _step_envs(self, action1: np.ndarray, action2: np.ndarray):
        raise NotImplementedError

    # -- protocol ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reset every copy; ``seed`` (int) re-creates the random generator, ``None`` continues it.

        Returns (obs1, obs2), each (num_envs, *obs_shape_i).
        """
        if seed is not None:
            self.seed = seed
            self.rng = np.random.default_rng(seed)
        self.elapsed_steps[:] = 0
        self._has_reset = True
        obs1, obs2 = self._reset_envs(np.ones(self.num_envs, dtype=bool))
        return np.array(obs1), np.array(obs2)

    def step(self, action1, action2) -> StepResult:
        """Advance every copy by one simultaneous move (actions validated; auto-reset; see module doc)."""
        if not self._has_reset:
            raise RuntimeError(f"{type(self).__name__}.step called before reset(); call env.reset(seed=...) "
                               "first")
        a1 = self.action_spaces[0].check_batch(action1, self.num_envs, "action1")
        a2 = self.action_spaces[1].check_batch(action2, self.num_envs, "action2")
        obs, rewards, terminated, info = self._step_envs(a1, a2)
        obs = (np.array(obs[0]), np.array(obs[1]))
        rewards = (np.asarray(rewards[0], dtype=np.float64), np.asarray(rewards[1], dtype=np.float64))
        terminated = np.asarray(terminated, dtype=bool).copy()
        self.elapsed_steps += 1
        if self.max_episode_steps is not None:
            truncated = (self.elapsed_steps >= self.max_episode_steps) & ~terminated
        else:
            truncated = np.zeros(self.num_envs, dtype=bool)
        done = terminated | truncated
        info = dict(info)
        info["final_obs"] = (obs[0].copy(), obs[1].copy())
        info["done_mask"] = done
        if done.any():
            reset1, reset2 = self._reset_envs(done)
            obs[0][done] = reset1
            obs[1][done] = reset2
            self.elapsed_steps[done] = 0
        return StepResult(obs, rewards, terminated, truncated, info)

    def opponent_observation_indices(self, agent: int) -> tuple[int, ...] | None:
        """The entries of ``agent``'s observation (0 or 1) that describe its opponent, or None when this
        env does not single them out (the default; envs that know override it, e.g. the sumo games)."""
        if isinstance(agent, bool) or agent not in (0, 1):
            raise ValueError(f"agent must be 0 or 1, got {agent!r}")
        return None

    def close(self) -> None:
        """Release resources (nothing by default)."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_envs={self.num_envs}, observation_spaces={self.observation_spaces}, "
                f"action_spaces={self.action_spaces})")
