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
from ipo_robust.policies import placement as parameter_placement
from ipo_robust.policies import sample_action

__all__ = ["Batch", "collect", "reverse_segment_cumsum", "segment_cumsum"]


def _env_action(a: np.ndarray, space) -> np.ndarray:
    """The action the environment receives: integers for Discrete, clipped to the bounds for a Box."""
    if hasattr(space, "low") and hasattr(space, "high"):
        return np.clip(a.astype(np.float64), space.low, space.high)
    return a


def _sampler_of(policy, device: torch.device):
    """``policy.sampler()`` (see :meth:`ipo_robust.policies.Policy.sampler`; it takes CPU observations), or
    the distribution path for any module with only ``distribution(obs)`` (handed them on ``device``)."""
    make = getattr(policy, "sampler", None)
    if callable(make):
        return make()

    def sample(obs, generator):
        dist = policy.distribution(obs.to(device))
        action = sample_action(dist, generator)
        return action, dist.log_prob(action)

    return sample


def collect(env, agents: Sequence[torch.nn.Module], steps: int,
            generator: torch.Generator | None = None) -> Batch:
    """Reset ``env`` and run ``steps`` moves in each of its ``num_envs`` copies; return the Batch.

    agents: (policy1, policy2), modules with ``distribution(obs)`` (and, for speed, ``sampler()``).
    Actions are drawn from ``generator`` (``torch.Generator``; ``None`` uses the global torch RNG), the
    environment's randomness comes from its own seeded generator: a seeded env and a seeded generator
    give identical batches. No gradients are recorded. Floating tensors of agent i are stored in that
    agent's parameter dtype, on its parameters' device, the episode markers on agent 1's (the env stays on
    the CPU, and so do the project's samplers: a CUDA policy samples from CPU copies of its weights, from
    the same generator stream, so the batch is moved to the device once, at the end).

    The batch is written in place into time-major buffers allocated once; per step the work is each
    agent's sampler (one forward pass), the env step, and copies into the buffers.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int (time steps per environment copy), got {steps!r}")
    agents = tuple(agents)
    if len(agents) != 2:
        raise ValueError(f"collect needs two agents (policy1, policy2), got {len(agents)}")
    T, N = int(steps), env.num_envs
    placement = [parameter_placement(a) for a in agents]
    samplers = [_sampler_of(a, device) for a, (_, device) in zip(agents, placement, strict=True)]
    spaces = env.action_spaces
    obs = env.reset()
    # NumPy buffers (the env is on the CPU), viewed as tensors at the end without a copy
    obs_buf = [np.empty((T + 1, N, *np.shape(o)[1:]), dtype=_numpy_dtype(d))
               for o, (d, _) in zip(obs, placement, strict=True)]
    next_buf = [np.empty((T, N, *np.shape(o)[1:]), dtype=_numpy_dtype(d))
                for o, (d, _) in zip(obs, placement, strict=True)]
    act_buf: list[np.ndarray | None] = [None, None]
    logp_buf = [np.empty((T, N), dtype=_numpy_dtype(d)) for d, _ in placement]
    rew = np.empty((2, T, N))
    terminated, truncated = np.empty((T, N), dtype=bool), np.empty((T, N), dtype=bool)
    for i in range(2):
        obs_buf[i][0] = obs[i]
    with torch.no_grad():
        for t in range(T):
            env_acts = []
            for i in range(2):
                action, log_prob = samplers[i](torch.from_numpy(obs_buf[i][t]), generator)
                action = action.cpu().numpy()
                if act_buf[i] is None:
                    dtype = obs_buf[i].dtype if np.issubdtype(action.dtype, np.floating) else action.dtype
                    act_buf[i] = np.empty((T, *action.shape), dtype=dtype)
                act_buf[i][t] = action
                logp_buf[i][t] = log_prob.cpu().numpy()
                env_acts.append(_env_action(action, spaces[i]))
            result = env.step(env_acts[0], env_acts[1])
            for i in range(2):
                rew[i, t] = result.rewards[i]
                next_buf[i][t] = result.info["final_obs"][i]
                obs_buf[i][t + 1] = result.obs[i]
            terminated[t], truncated[t] = result.terminated, result.truncated
    done = terminated | truncated
    first = np.empty((T, N), dtype=bool)
    first[0], first[1:] = True, done[:-1]
    # step index within the episode: steps since the latest first step
    index = np.arange(T)[:, None]
    t_in_episode = index - np.maximum.accumulate(np.where(first, index, 0), axis=0)

    def agent_tensor(array: np.ndarray, i: int) -> torch.Tensor:
        dtype, device = placement[i]
        tensor = torch.from_numpy(array)
        return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)

    def marker(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(placement[0][1])

    return Batch(obs1=agent_tensor(obs_buf[0][:T], 0), obs2=agent_tensor(obs_buf[1][:T], 1),
                 act1=agent_tensor(act_buf[0], 0), act2=agent_tensor(act_buf[1], 1),
                 logp1=agent_tensor(logp_buf[0], 0), logp2=agent_tensor(logp_buf[1], 1),
                 rew1=agent_tensor(rew[0], 0), rew2=agent_tensor(rew[1], 1),
                 done=marker(done), first=marker(first), t=marker(t_in_episode.astype(np.int64)),
                 next_obs1=agent_tensor(next_buf[0], 0), next_obs2=agent_tensor(next_buf[1], 1),
                 terminated=marker(terminated), truncated=marker(truncated))


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a floating torch dtype (float16/32/64; a rollout buffer's element type)."""
    try:
        return torch.empty((), dtype=dtype).numpy().dtype
    except TypeError:
        raise ValueError(f"collect stores floats as NumPy arrays: policies in {dtype} are not supported "
                         "(use float16, float32 or float64)") from None
