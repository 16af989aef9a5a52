"""The batch: time-major samples of both agents, the data type between rollouts and estimators.

Episode boundaries inside a batch: a row of the batch holds several episodes one after another.
``first[t, n]`` marks the first step of an episode, ``done[t, n]`` its last (terminated or truncated),
and ``t[t, n]`` the step index within the episode (the exponent of gamma^t in eqs. (12)-(14)). Any sum
over an episode is a segmented sum along the time axis between ``first`` and ``done``
(:func:`segment_cumsum`, :func:`reverse_segment_cumsum`); nothing is carried across a ``done``.

Partial episodes at the end of a batch (rows whose last episode has not ended by step T - 1) are kept
in the batch but marked by ``complete = False``; the estimators of :mod:`ipo_robust.optim.estimators`
drop them (their returns are unknown), and ``next_obs1/2`` with ``terminated`` give what a critic
needs to bootstrap them or to fit TD targets.

:mod:`ipo_robust.rollout` fills batches; the estimators and optimizers read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """Time-major samples of T steps in each of N environment copies (all torch tensors).

    obs1, obs2: (T, N, d_i) observation before the step.
    act1, act2: (T, N) int64 for discrete actions, (T, N, a_i) for continuous ones (the raw policy sample;
        the environment saw it clipped to its Box).
    logp1, logp2: (T, N) log pi_i(act_i | obs_i) at collection time.
    rew1, rew2: (T, N) rewards of the step.
    done: (T, N) bool, the episode ended after this step (terminated | truncated).
    terminated, truncated: (T, N) bool (see ipo_robust.envs.base).
    first: (T, N) bool, the step is the first of its episode.
    t: (T, N) int64, step index within the episode (0 at ``first``).
    next_obs1, next_obs2: (T, N, d_i) observation after the step, before any auto-reset (for bootstrapping
        critics: V(next_obs) counts unless ``terminated``).
    complete: (T, N) bool, derived: the step's episode ends inside the batch.
    """

    obs1: torch.Tensor
    obs2: torch.Tensor
    act1: torch.Tensor
    act2: torch.Tensor
    logp1: torch.Tensor
    logp2: torch.Tensor
    rew1: torch.Tensor
    rew2: torch.Tensor
    done: torch.Tensor
    first: torch.Tensor
    t: torch.Tensor
    next_obs1: torch.Tensor
    next_obs2: torch.Tensor
    terminated: torch.Tensor | None = None
    truncated: torch.Tensor | None = None
    complete: torch.Tensor = field(init=False)

    def __post_init__(self):
        if self.terminated is None:
            self.terminated = self.done.clone()
        if self.truncated is None:
            self.truncated = self.done & ~self.terminated
        shape = tuple(self.done.shape)
        if len(shape) != 2:
            raise ValueError(f"Batch.done must be (T, N), got shape {shape}")
        for f in fields(self):
            if f.name == "complete":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"Batch.{f.name} must be a torch.Tensor, got {type(value).__name__}")
            if tuple(value.shape[:2]) != shape:
                raise ValueError(f"Batch.{f.name} has shape {tuple(value.shape)}; every field must start "
                                 f"with (T, N) = {shape}")
        for name in ("done", "first", "terminated", "truncated"):
            if getattr(self, name).dtype != torch.bool:
                raise ValueError(f"Batch.{name} must be a bool tensor, got {getattr(self, name).dtype}")
        # complete[t] = done[t] or complete[t + 1]: the first done at or after t lies inside the batch
        done = self.done.flip(0).to(torch.int64)
        self.complete = (torch.cumsum(done, 0) > 0).flip(0)
        boundary = self.first[1:] != self.done[:-1]
        if bool(boundary.any()):
            t, n = (int(i) for i in torch.nonzero(boundary)[0])
            raise ValueError(f"Batch episode markers disagree at step {t + 1}, row {n}: a step is the first of "
                             "an episode exactly when the previous step was done")

    @property
    def num_steps(self) -> int:
        """T."""
        return int(self.done.shape[0])

    @property
    def num_envs(self) -> int:
        """N."""
        return int(self.done.shape[1])

    @property
    def num_episodes(self) -> int:
        """Complete episodes in the batch (episodes that ended inside it)."""
        return int(self.done.sum())

    def select(self, steps=slice(None), envs=slice(None)) -> Batch:
        """The sub-batch of the given time steps and environment copies (slices or index tensors).

        Selecting copies keeps whole episodes. Cut the time axis only as ``steps=slice(0, k)``: the
        episodes running at the cut become partial (``complete=False``), whereas a sub-batch starting
        mid-episode would present the rest of an episode as if it were a whole one.
        """
        values = {f.name: getattr(self, f.name)[steps][:, envs] for f in fields(self) if f.name != "complete"}
        return Batch(**values)

    def discounted_returns(self, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_t gamma^t r_i,t of every complete episode, ordered by (start step, row); two float64
        tensors (num_episodes,)."""
        discount = float(gamma) ** self.t.to(torch.float64)
        out = []
        for rew in (self.rew1, self.rew2):
            from_end = reverse_segment_cumsum(discount * rew.to(torch.float64), self.done)
            starts = from_end[self.first & self.complete]
            out.append(starts)
        return out[0], out[1]


def segment_starts(first: torch.Tensor) -> torch.Tensor:
    """For each step, the time index of its episode's first step: (T, N) int64 from ``first`` (T, N) bool.
    Depends on the markers only, so a caller summing many vectors over one batch computes it once."""
    index = torch.arange(first.shape[0], device=first.device).unsqueeze(1).expand_as(first)
    return torch.where(first, index, torch.zeros_like(index)).cummax(0).values


def segment_cumsum(x: torch.Tensor, first: torch.Tensor, starts: torch.Tensor | None = None) -> torch.Tensor:
    """Cumulative sum along time (dim 0) restarting at every ``first`` step: y[t] = sum_{k in ep, k<=t} x[k].

    x: (T, N) float, first: (T, N) bool; ``starts``: ``segment_starts(first)`` if already at hand.
    Accumulates in float64; returns x's dtype.
    """
    x64 = x.to(torch.float64)
    total = torch.cumsum(x64, 0)
    start = segment_starts(first) if starts is None else starts
    before = torch.cat([torch.zeros_like(total[:1]), total], 0)  # before[k] = sum_{j<k} x[j]
    return (total - before.gather(0, start)).to(x.dtype)


def reverse_segment_cumsum(x: torch.Tensor, done: torch.Tensor, starts: torch.Tensor | None = None
                           ) -> torch.Tensor:
    """Sum to the end of the episode: y[t] = sum_{k in ep, k>=t} x[k] (episodes end at ``done``).

    x: (T, N), done: (T, N) bool; ``starts``: ``segment_starts(done.flip(0))`` if already at hand.
    A row's last, unfinished episode sums to the end of the batch.
    """
    return segment_cumsum(x.flip(0), done.flip(0), starts).flip(0)
