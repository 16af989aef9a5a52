"""Rollouts: a batched two-agent environment and two policies -> a time-major :class:`Batch`.

``collect(env, (policy1, policy2), steps)`` resets the environment, then runs ``steps`` simultaneous
moves in each of the env's ``num_envs`` copies, sampling both actions from the policies without
recording gradients. Every batch starts with fresh episodes, so the score sums of an episode never
reach back into a previous batch (collected under other parameters).

The batch's layout (episode markers, partial episodes) is documented in :mod:`ipo_robust.batch`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ipo_robust.batch import Batch, reverse_segment_cumsum, segment_cumsum
from ipo_robust.policies import sample_action

__all__ = ["Batch", "collect", "reverse_segment_cumsum", "segment_cumsum"]


def _env_action(action: torch.Tensor, space) -> np.ndarray:
    """The action the environment receives: integers for Discrete, clipped to the bounds for a Box."""
    a = action.detach().cpu().numpy()
    if hasattr(space, "low") and hasattr(space, "high"):
        return np.clip(a.astype(np.float64), space.low, space.high)
    return a


def _dtype_of(policy: torch.nn.Module) -> torch.dtype:
    for p in policy.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def collect(env, agents: Sequence[torch.nn.Module], steps: int,
            generator: torch.Generator | None = None) -> Batch:
    """Reset ``env`` and run ``steps`` moves in each of its ``num_envs`` copies; return the Batch.

    agents: (policy1, policy2), modules with ``distribution(obs)``. Actions are drawn from ``generator``
    (``torch.Generator``; ``None`` uses the global torch RNG), the environment's randomness comes from
    its own seeded generator: a seeded env and a seeded generator give identical batches. No gradients
    are recorded. Floating tensors of agent i are stored in that agent's parameter dtype.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int (time steps per environment copy), got {steps!r}")
    agents = tuple(agents)
    if len(agents) != 2:
        raise ValueError(f"collect needs two agents (policy1, policy2), got {len(agents)}")
    dtypes = tuple(_dtype_of(a) for a in agents)
    N = env.num_envs
    obs = env.reset()
    t_in_episode = np.zeros(N, dtype=np.int64)
    first = np.ones(N, dtype=bool)
    rows: dict[str, list] = {k: [] for k in ("obs1", "obs2", "act1", "act2", "logp1", "logp2", "rew1", "rew2",
                                             "done", "terminated", "truncated", "first", "t",
                                             "next_obs1", "next_obs2")}
    with torch.no_grad():
        for _ in range(int(steps)):
            acts, logps, env_acts = [], [], []
            for i, (policy, dtype) in enumerate(zip(agents, dtypes, strict=True)):
                o = torch.as_tensor(obs[i], dtype=dtype)
                dist = policy.distribution(o)
                a = sample_action(dist, generator)
                acts.append(a)
                logps.append(dist.log_prob(a).to(dtype))
                env_acts.append(_env_action(a, env.action_spaces[i]))
                rows[f"obs{i + 1}"].append(o)
            result = env.step(env_acts[0], env_acts[1])
            done = result.terminated | result.truncated
            for i in range(2):
                rows[f"act{i + 1}"].append(acts[i])
                rows[f"logp{i + 1}"].append(logps[i])
                rows[f"rew{i + 1}"].append(torch.as_tensor(result.rewards[i], dtype=dtypes[i]))
                rows[f"next_obs{i + 1}"].append(torch.as_tensor(result.info["final_obs"][i], dtype=dtypes[i]))
            rows["done"].append(torch.as_tensor(done))
            rows["terminated"].append(torch.as_tensor(result.terminated))
            rows["truncated"].append(torch.as_tensor(result.truncated))
            rows["first"].append(torch.as_tensor(first.copy()))
            rows["t"].append(torch.as_tensor(t_in_episode.copy()))
            t_in_episode = np.where(done, 0, t_in_episode + 1)
            first = done.copy()
            obs = result.obs
    return Batch(**{k: torch.stack(v) for k, v in rows.items()})
