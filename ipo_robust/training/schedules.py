"""Schedules: which agent holds the superpower, with what alpha, and who learns, update by update.

``[schedule] kind`` (:class:`~ipo_robust.config.ScheduleSection`); per *update* ``u`` the schedule gives a
:class:`Phase`:

- ``self-play``: both agents updated every iteration by the optimizer; nobody holds the superpower
  unless ``holder`` names an agent (e.g. the adversary of an env whose second agent acts only by force).
- ``ipo-rarl`` (the seed's Algorithm 1): ``iterations`` outer iterations, each ``n1`` updates with
  agent 1 holding the superpower (amount ``alpha1``) then ``n2`` with agent 2 holding it (``alpha2``).
  Both agents are updated by the (interactive) optimizer in every update.
- ``rarl`` (Pinto et al. 2017): the adversary (``3 - protagonist``) always holds the superpower
  (``alpha``); each iteration has ``n1`` updates of the protagonist with the adversary frozen, then ``n2``
  of the adversary with the protagonist frozen.

Holder reward (:func:`holder_rewards`): ``task_weight * r_holder + fail_weight * (-r_victim)`` (the extra
reward for failing the opponent; for a zero-sum task the two terms agree). Alpha annealing over the outer
iterations ``k = 0 .. K-1``: ``alpha * f(k / K)``, with f = 1 (constant), 1 - x (linear),
(1 + cos(pi x)) / 2 (cosine); the env's shaping weight anneals the same way with ``shaping_anneal``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ipo_robust.batch import Batch
from ipo_robust.config import ScheduleSection


def anneal_factor(kind: str, k: int, total: int) -> float:
    """f(k / total) of the annealing schedule ``kind`` (1 at k = 0, towards 0 at k = total)."""
    x = k / total
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - x
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    raise ValueError(f"unknown annealing schedule {kind!r}")


@dataclass(frozen=True)
class Phase:
    """What update ``u`` does: outer iteration, superpower holder (0, 1 or None) and its alpha, and
    which agents learn (``trainable[i]``)."""

    update: int
    iteration: int
    holder: int | None
    alpha: float
    trainable: tuple[bool, bool]


class Schedule:
    """The update plan of a config's ``[schedule]`` (module docstring).

    :param schedule: the :class:`~ipo_robust.config.ScheduleSection`, or its table as a dict (parsed:
        missing keys take their defaults, bad values are refused).
    """

    def __init__(self, schedule: ScheduleSection | Mapping):
        if not isinstance(schedule, ScheduleSection):
            schedule = ScheduleSection.parse(schedule)
        self.config = schedule
        self.kind = schedule.kind
        self.iterations = schedule.iterations
        self.per_iteration = 1 if self.kind == "self-play" else schedule.n1 + schedule.n2

    @property
    def total_updates(self) -> int:
        return self.iterations * self.per_iteration

    def env_holder(self):
        """The ``holder`` option the env is built with: which agents carry the perturbation action."""
        s = self.config
        if self.kind == "ipo-rarl":
            if s.n1 and s.n2:
                return "both"
            return 0 if s.n1 else 1
        if self.kind == "rarl":
            return 2 - s.protagonist  # the adversary, 0-based
        return None if s.holder == "none" else s.holder - 1

    def phase(self, u: int) -> Phase:
        s = self.config
        k, j = divmod(u, self.per_iteration)
        if self.kind == "ipo-rarl":
            holder = 0 if j < s.n1 else 1
            alpha = (s.alpha1, s.alpha2)[holder] * anneal_factor(s.anneal, k, self.iterations)
            return Phase(u, k, holder, alpha, (True, True))
        if self.kind == "rarl":
            protagonist = s.protagonist - 1
            learner = protagonist if j < s.n1 else 1 - protagonist
            alpha = s.alpha * anneal_factor(s.anneal, k, self.iterations)
            return Phase(u, k, 1 - protagonist, alpha, (learner == 0, learner == 1))
        holder = None if s.holder == "none" else s.holder - 1
        alpha = 0.0 if holder is None else s.alpha * anneal_factor(s.anneal, k, self.iterations)
        return Phase(u, k, holder, alpha, (True, True))

    def shaping_factor(self, phase: Phase) -> float:
        """The factor of the env's dense shaping weight in ``phase`` (``shaping_anneal``)."""
        return anneal_factor(self.config.shaping_anneal, phase.iteration, self.iterations)


def holder_rewards(batch: Batch, phase: Phase, task_weight: float, fail_weight: float) -> Batch:
    """The batch with the holder's reward replaced by ``task_weight r_h + fail_weight (-r_victim)``."""
    if phase.holder is None:
        return batch
    values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch) if f.name != "complete"}
    own, other = (batch.rew1, batch.rew2) if phase.holder == 0 else (batch.rew2, batch.rew1)
    combined = task_weight * own - fail_weight * other
    values["rew1" if phase.holder == 0 else "rew2"] = combined.to(own.dtype)
    return Batch(**values)
