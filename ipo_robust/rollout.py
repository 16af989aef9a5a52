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
from ipo_robust.policies import joint_sampler, sample_action
from ipo_robust.policies import placement as parameter_placement

__all__ = ["Batch", "collect", "collect_arrays", "reverse_segment_cumsum", "segment_cumsum", "stream_seeds"]


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

    The batch is written in place into time-major buffers allocated once; per step the work is one forward
    pass for both agents where both are the project's Gaussian MLPs of one layout and ``generator`` is a CPU
    generator (stacked weights, :func:`~ipo_robust.policies.joint_sampler`: the same bits as sampling them in
    turn), else each agent's sampler; then the env step, and copies into the buffers.

    An env made of independent streams (:class:`~ipo_robust.streams.StreamedEnv`) is collected stream by
    stream, each with its own action generator seeded from ``generator`` (one draw per stream), in worker
    processes where it has them: the batch is the streams' batches side by side, the same bits whatever the
    number of workers.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int (time steps per environment copy), got {steps!r}")
    agents = tuple(agents)
    if len(agents) != 2:
        raise ValueError(f"collect needs two agents (policy1, policy2), got {len(agents)}")
    placement = [parameter_placement(a) for a in agents]
    dtypes = tuple(_numpy_dtype(d) for d, _ in placement)
    collect_streams = getattr(env, "collect_streams", None)
    if callable(collect_streams):
        seeds = stream_seeds(generator, env.num_streams)
        parts = collect_streams(agents, int(steps), seeds, dtypes)
        arrays = {key: np.concatenate([part[key] for part in parts], axis=2 if key == "rew" else 1)
                  for key in parts[0]}
    else:
        arrays = collect_arrays(env, agents, int(steps), generator, dtypes)
    return _batch(arrays, placement)


def stream_seeds(generator: torch.Generator | None, streams: int) -> list[int]:
    """One action-generator seed per stream of a streamed env, drawn from ``generator`` (``None``: the global
    torch RNG): the draw, and so every stream's actions, does not depend on where the streams run."""
    return [int(s) for s in torch.randint(0, 2**62, (streams,), generator=generator).tolist()]


def collect_arrays(env, agents: Sequence[torch.nn.Module], steps: int, generator: torch.Generator | None,
                   dtypes: tuple[np.dtype, np.dtype]) -> dict[str, np.ndarray]:
    """Reset ``env`` and run ``steps`` moves; the rollout as NumPy arrays, time-major (see :func:`collect`).

    Keys: ``obs1``/``obs2`` (T + 1, N, ...), ``next_obs1``/``next_obs2``, ``act1``/``act2`` (T, N, ...),
    ``logp1``/``logp2``, ``terminated``/``truncated`` (T, N), ``rew`` (2, T, N); floating arrays of agent i
    in ``dtypes[i]``.
    """
    T, N = steps, env.num_envs
    # both players in one pass where both are the project's Gaussian MLPs (bit for bit the two samplers' draws)
    joint = joint_sampler(*agents) if isinstance(generator, torch.Generator) and generator.device.type == "cpu" \
        and dtypes[0] == dtypes[1] else None
    samplers = None if joint is not None else [_sampler_of(a, parameter_placement(a)[1]) for a in agents]
    spaces = env.action_spaces
    obs = env.reset()
    # NumPy buffers (the env is on the CPU), viewed as tensors at the end without a copy
    obs_buf = [np.empty((T + 1, N, *np.shape(o)[1:]), dtype=d) for o, d in zip(obs, dtypes, strict=True)]
    next_buf = [np.empty((T, N, *np.shape(o)[1:]), dtype=d) for o, d in zip(obs, dtypes, strict=True)]
    act_buf: list[np.ndarray | None] = [None, None]
    logp_buf = [np.empty((T, N), dtype=d) for d in dtypes]
    rew = np.empty((2, T, N))
    terminated, truncated = np.empty((T, N), dtype=bool), np.empty((T, N), dtype=bool)
    for i in range(2):
        obs_buf[i][0] = obs[i]
    with torch.no_grad():
        for t in range(T):
            env_acts = []
            if joint is not None:
                actions, log_probs = joint(obs_buf[0][t], obs_buf[1][t], generator)
            for i in range(2):
                if joint is None:
                    action, log_prob = samplers[i](torch.from_numpy(obs_buf[i][t]), generator)
                    action, log_prob = action.cpu().numpy(), log_prob.cpu().numpy()
                else:
                    action, log_prob = actions[i], log_probs[i]
                if act_buf[i] is None:
                    dtype = obs_buf[i].dtype if np.issubdtype(action.dtype, np.floating) else action.dtype
                    act_buf[i] = np.empty((T, *action.shape), dtype=dtype)
                act_buf[i][t] = action
                logp_buf[i][t] = log_prob
                env_acts.append(_env_action(action, spaces[i]))
            result = env.step(env_acts[0], env_acts[1])
            for i in range(2):
                rew[i, t] = result.rewards[i]
                next_buf[i][t] = result.info["final_obs"][i]
                obs_buf[i][t + 1] = result.obs[i]
            terminated[t], truncated[t] = result.terminated, result.truncated
    return {"obs1": obs_buf[0], "obs2": obs_buf[1], "next_obs1": next_buf[0], "next_obs2": next_buf[1],
            "act1": act_buf[0], "act2": act_buf[1], "logp1": logp_buf[0], "logp2": logp_buf[1], "rew": rew,
            "terminated": terminated, "truncated": truncated}


def _batch(arrays: dict[str, np.ndarray], placement) -> Batch:
    """The Batch of :func:`collect_arrays`' arrays: episode markers derived, tensors placed per agent."""
    terminated, truncated = arrays["terminated"], arrays["truncated"]
    T = terminated.shape[0]
    done = terminated | truncated
    first = np.empty_like(done)
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

    return Batch(obs1=agent_tensor(arrays["obs1"][:T], 0), obs2=agent_tensor(arrays["obs2"][:T], 1),
                 act1=agent_tensor(arrays["act1"], 0), act2=agent_tensor(arrays["act2"], 1),
                 logp1=agent_tensor(arrays["logp1"], 0), logp2=agent_tensor(arrays["logp2"], 1),
                 rew1=agent_tensor(arrays["rew"][0], 0), rew2=agent_tensor(arrays["rew"][1], 1),
                 done=marker(done), first=marker(first), t=marker(t_in_episode.astype(np.int64)),
                 next_obs1=agent_tensor(arrays["next_obs1"], 0), next_obs2=agent_tensor(arrays["next_obs2"], 1),
                 terminated=marker(terminated), truncated=marker(truncated))


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a floating torch dtype (float16/32/64; a rollout buffer's element type)."""
    try:
        return torch.empty((), dtype=dtype).numpy().dtype
    except TypeError:
        raise ValueError(f"collect stores floats as NumPy arrays: policies in {dtype} are not supported "
                         "(use float16, float32 or float64)") from None
