"""A replay buffer of transitions for the off-policy learners (``ipo-dpg``, ``maddpg``).

Each (t, n) of a :class:`~ipo_robust.batch.Batch` added is one row (one transition of one environment):
observations, actions, rewards, next observations and ``terminated`` of both players. The buffer is a
ring: once full, the oldest rows are overwritten. Rows are drawn uniformly with replacement from the
``torch.Generator`` passed in, so a seeded learner replays the same minibatches.
"""

from __future__ import annotations

import torch

from ipo_robust.batch import Batch


class ReplayBuffer:
    """A ring buffer of transitions (obs1, obs2, act1, act2, rew1, rew2, next_obs1, next_obs2, terminated),
    one row per (t, n) of the batches added; ``sample(size, generator)`` draws rows uniformly with replacement."""

    KEYS = ("obs1", "obs2", "act1", "act2", "rew1", "rew2", "next_obs1", "next_obs2", "terminated")

    def __init__(self, capacity: int):
        self.capacity, self.size, self.position = int(capacity), 0, 0
        self.data: dict[str, torch.Tensor] = {}

    def add(self, batch: Batch) -> None:
        """Store the batch's T x N transitions (only the latest ``capacity`` if it holds more)."""
        rows = {k: getattr(batch, k).reshape(-1, *getattr(batch, k).shape[2:]).detach() for k in self.KEYS}
        M = rows["obs1"].shape[0]
        if not self.data:  # on the batches' device
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=v.device)
                         for k, v in rows.items()}
        if M > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
            M = self.capacity
        index = (self.position + torch.arange(M, device=rows["obs1"].device)) % self.capacity
        for k, v in rows.items():
            self.data[k][index] = v.to(self.data[k].device, self.data[k].dtype)
        self.position = (self.position + M) % self.capacity
        self.size = min(self.size + M, self.capacity)

    def sample(self, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``size`` rows drawn uniformly with replacement: a dict of (size, ...) tensors keyed as ``KEYS``."""
        index = torch.randint(self.size, (int(size),), generator=generator)  # on the generator's device
        return {k: v[index.to(v.device)] for k, v in self.data.items()}
