"""An env of independent streams, collected in worker processes (both cores busy without the GIL).

``StreamedEnv(name, num_envs, seed, streams=S, workers=W)`` holds the ``num_envs`` copies as ``S``
independent envs of the registered env ``name`` (near-equal sizes, stream ``k`` seeded from
``SeedSequence(seed).spawn(S)[k]``). :func:`ipo_robust.rollout.collect` collects it stream by stream, each
stream with its own action generator seeded from the caller's generator, and puts the streams' batches side
by side. A stream's batch depends on its env's random state, its seed and the policies only, never on where
it runs: with ``W > 1`` the streams are collected by ``W`` worker processes (each steps whole streams with
one thread), and the batch has the same bits as with ``W = 1`` (in this process). ``S`` is part of the run
(a different ``S`` gives other random streams); ``W`` only sets the speed.

Why processes: at 32-64 copies the env layer's NumPy work and the policies' forward passes hold the GIL
for most of a step, so threads that each step a whole stream ran slower than one thread. On 2 CPUs, two
processes collect sumo-pushers 1.19x faster than one env on two threads; one CPU running two streams is
15% slower than one env, hence ``streams = 1`` unless set (``benchmarks/RESULTS.md``, issue 15).

What a worker sees: the env is rebuilt in it from ``(name, options)`` (registered through the installed
plugins); before each collect it is sent the policies (CPU copies), every stream's random state, and the
latest call of each ``set_*`` method made on this object (``set_superpower``, ``set_shaping``: the
settings the training loop changes between phases), which it replays. It returns the arrays and the new
random states, which this object keeps: checkpoints and resumes see them. The envs in this process (the
"mirrors") get every ``set_*`` call too, step on :meth:`step` as usual, and serve every attribute the
streams share (spaces, ``body_ids``, ``holder``...); their physics is not the workers'.

Loading a checkpoint never goes through these pipes: they carry this run's own objects between its own
processes (pickled by ``multiprocessing``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
import weakref
from collections.abc import Sequence

import numpy as np
import torch

from ipo_robust import host
from ipo_robust.envs.base import StepResult
from ipo_robust.rollout import collect_arrays
from ipo_robust.threads import available_cpus

__all__ = ["StreamedEnv", "stream_sizes"]


def stream_sizes(num_envs: int, streams: int) -> list[int]:
    """Copies per stream: ``num_envs`` split into ``streams`` near-equal contiguous parts, larger ones first."""
    if isinstance(streams, bool) or not isinstance(streams, (int, np.integer)) or streams < 1:
        raise ValueError(f"streams must be a positive int (independent env streams), got {streams!r}")
    if streams > num_envs:
        raise ValueError(f"streams = {streams} exceeds num_envs = {num_envs}: every stream needs at least one copy")
    base, extra = divmod(int(num_envs), int(streams))
    return [base + (k < extra) for k in range(int(streams))]


def _stream_env_seeds(seed: int | None, streams: int) -> list[int | None]:
    if seed is None:
        return [None] * streams
    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(streams)]


class StreamedEnv:
    """``num_envs`` copies of env ``name`` as ``streams`` independent envs (module docstring).

    :param workers: processes collecting the streams (``None``: the CPUs available, at most one per stream;
        1: this process). Results do not depend on it.
    :param options: the env factory's options (as :func:`ipo_robust.make_env` takes them).
    """

    def __init__(self, name: str, num_envs: int, seed: int | None, streams: int, workers: int | None = None,
                 **options):
        self.name, self.options = name, dict(options)
        self.sizes = stream_sizes(num_envs, streams)
        self.num_envs, self.num_streams = int(num_envs), len(self.sizes)
        self.seed = seed
        self._env_seeds = _stream_env_seeds(seed, self.num_streams)
        self.envs = [host.create("env", name, num_envs=n, seed=s, **options)
                     for n, s in zip(self.sizes, self._env_seeds, strict=True)]
        first = self.envs[0]
        self.observation_spaces, self.action_spaces = first.observation_spaces, first.action_spaces
        self._settings: dict[str, tuple[tuple, dict]] = {}  # method name -> its latest (args, kwargs)
        self._pool: _WorkerPool | None = None
        self.set_workers(workers)

    # ------------------------------------------------------------------------------------ workers
    @property
    def workers(self) -> int:
        return self._workers

    def set_workers(self, workers: int | None) -> None:
        """Collect on ``workers`` processes (``None``: :func:`~ipo_robust.threads.available_cpus`, at most one per
        stream; 1: this process). Results do not depend on it."""
        if workers is None:
            workers = available_cpus()
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive int (processes collecting the streams) or None, "
                             f"got {workers!r}")
        workers = min(int(workers), self.num_streams)
        if self._pool is not None and self._pool.size != workers:
            self._pool.close()
            self._pool = None
        self._workers = workers

    # ------------------------------------------------------------------------------------ collection
    def collect_streams(self, agents: Sequence[torch.nn.Module], steps: int, seeds: Sequence[int],
                        dtypes) -> list[dict[str, np.ndarray]]:
        """Every stream's rollout arrays (:func:`ipo_robust.rollout.collect_arrays`), stream ``k`` with actions
        from a generator seeded with ``seeds[k]``; in the worker processes when there are several."""
        if len(seeds) != self.num_streams:
            raise ValueError(f"collect_streams needs one seed per stream ({self.num_streams}), got {len(seeds)}")
        if self._workers == 1:
            return [_collect_stream(env, agents, steps, seed, dtypes)
                    for env, seed in zip(self.envs, seeds, strict=True)]
        if self._pool is None:
            self._pool = _WorkerPool(self.name, self.options, self.sizes, self._env_seeds, self._workers)
        cpu_agents = [_cpu_copy(a) for a in agents]
        states = [env.rng.bit_generator.state for env in self.envs]
        try:
            results = self._pool.collect(self._settings, cpu_agents, steps, list(seeds), states, dtypes)
        except RuntimeError:
            self._pool = None  # closed by the failure; the next collect starts new workers
            raise
        parts = []
        for env, (arrays, state, blowups) in zip(self.envs, results, strict=True):
            env.rng.bit_generator.state = state
            if blowups and hasattr(env, "blowup_count"):
                env.blowup_count += blowups
            parts.append(arrays)
        return parts

    # ------------------------------------------------------------------------------------ env protocol
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reset every stream (``seed``: re-seed them as the constructor does); returns (obs1, obs2)."""
        seeds = _stream_env_seeds(seed, self.num_streams) if seed is not None else [None] * self.num_streams
        if seed is not None:
            self.seed = seed
        parts = [env.reset(seed=s) for env, s in zip(self.envs, seeds, strict=True)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def step(self, action1, action2) -> StepResult:
        """Step every stream in this process (the mirrors); rows are the streams' copies in order."""
        edges = np.cumsum([0, *self.sizes])
        results = [env.step(action1[lo:hi], action2[lo:hi])
                   for env, lo, hi in zip(self.envs, edges[:-1], edges[1:], strict=True)]
        join = _concatenate
        return StepResult(tuple(join([r.obs[i] for r in results]) for i in (0, 1)),
                          tuple(join([r.rewards[i] for r in results]) for i in (0, 1)),
                          join([r.terminated for r in results]), join([r.truncated for r in results]),
                          join([r.info for r in results]))

    def rng_states(self) -> list[dict]:
        """Every stream's NumPy generator state (what a checkpoint records)."""
        return [env.rng.bit_generator.state for env in self.envs]

    def set_rng_states(self, states: Sequence[dict]) -> None:
        if len(states) != self.num_streams:
            raise ValueError(f"{len(states)} random states for {self.num_streams} streams")
        for env, state in zip(self.envs, states, strict=True):
            env.rng.bit_generator.state = state

    @property
    def datas(self) -> list:
        """Every copy's ``MjData`` (the mirrors': in this process, not the workers')."""
        return [d for env in self.envs for d in env.datas]

    @property
    def models(self) -> list:
        return [m for env in self.envs for m in env.models]

    @property
    def elapsed_steps(self) -> np.ndarray:
        return np.concatenate([env.elapsed_steps for env in self.envs])

    @property
    def blowup_count(self) -> int:
        return sum(getattr(env, "blowup_count", 0) for env in self.envs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for env in self.envs:
            env.close()

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("envs", "_settings", "_pool", "_env_seeds", "_workers"):
            raise AttributeError(name)
        value = getattr(self.envs[0], name)
        if name.startswith("set_") and callable(value):
            def broadcast(*args, **kwargs):
                for env in self.envs:
                    getattr(env, name)(*args, **kwargs)
                self._settings[name] = (args, kwargs)
            return broadcast
        return value

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pool"] = None  # processes are not copied; a copy starts its own
        return state

    def __repr__(self) -> str:
        return (f"StreamedEnv({self.name!r}, num_envs={self.num_envs}, streams={self.num_streams}, "
                f"workers={self._workers})")


def _concatenate(parts: list):
    """Join per-stream results along the copies: arrays, and tuples/dicts of them, recursively."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: _concatenate([p[key] for p in parts]) for key in first}
    if isinstance(first, tuple):
        return tuple(_concatenate([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate([np.asarray(p) for p in parts])


def _collect_stream(env, agents, steps: int, seed: int, dtypes) -> dict[str, np.ndarray]:
    """One stream's rollout: its actions from a generator seeded with ``seed`` (here or in a worker alike)."""
    return collect_arrays(env, agents, steps, torch.Generator().manual_seed(seed), dtypes)


def _cpu_copy(agent: torch.nn.Module) -> torch.nn.Module:
    import copy

    params = list(agent.parameters())
    if params and params[0].device.type != "cpu":
        return copy.deepcopy(agent).cpu()
    return agent


# --------------------------------------------------------------------------------------------- workers
class _WorkerPool:
    """``size`` spawned processes; worker ``w`` owns the contiguous streams ``assignment[w]``."""

    def __init__(self, name: str, options: dict, sizes: list[int], seeds: list[int | None], size: int):
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        edges = np.linspace(0, len(sizes), size + 1).round().astype(int)
        self.assignment = [list(range(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        self.size = size
        self.connections, self.processes = [], []
        for streams in self.assignment:
            ours, theirs = context.Pipe()
            owned = [(sizes[k], seeds[k]) for k in streams]
            process = context.Process(target=_worker_main, args=(theirs, name, options, owned), daemon=True,
                                      name="ipo-robust-collect")
            process.start()
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)
        self._finalizer = weakref.finalize(self, _shutdown, self.connections, self.processes)

    def collect(self, settings, agents, steps, seeds, states, dtypes) -> list[tuple]:
        """Every worker's streams collected; a worker that died or failed closes the pool and raises one
        RuntimeError naming it."""
        for w, (connection, streams) in enumerate(zip(self.connections, self.assignment, strict=True)):
            try:
                connection.send(("collect", settings, agents, steps, [seeds[k] for k in streams],
                                 [states[k] for k in streams], dtypes))
            except (OSError, ValueError):
                self._fail(f"collect worker {w} exited (exit code {self.processes[w].exitcode})")
        results = []
        for w, connection in enumerate(self.connections):
            try:
                status, payload = connection.recv()
            except (EOFError, OSError):
                self._fail(f"collect worker {w} exited (exit code {self.processes[w].exitcode})")
            if status != "ok":
                self._fail(f"collect worker {w} failed: {payload}")
            results.extend(payload)
        return results

    def _fail(self, reason: str):
        self.close()
        raise RuntimeError(reason) from None

    def close(self) -> None:
        self._finalizer()


def _shutdown(connections: list, processes: list) -> None:
    """Ask the workers to exit, then make sure they have (also run when a pool is garbage collected)."""
    for connection in connections:
        try:
            connection.send(("close",))
            connection.close()
        except (OSError, ValueError):
            pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    connections.clear()
    processes.clear()


def _worker_main(connection, name: str, options: dict, streams: list[tuple[int, int | None]]) -> None:
    """A collect worker: its streams' envs, rebuilt here as the parent built them ((copies, seed) each); one
    message per collect (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it checkpoints, then stops us)
    torch.set_num_threads(1)
    os.environ.setdefault("MUJOCO_GL", "disable")
    envs = [host.create("env", name, num_envs=n, seed=seed, **options) for n, seed in streams]
    for env in envs:
        if hasattr(env, "set_workers"):
            env.set_workers(1)
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "close":
            return
        _, settings, agents, steps, seeds, states, dtypes = message
        try:
            out = []
            for env, seed, state in zip(envs, seeds, states, strict=True):
                for method, (args, kwargs) in settings.items():
                    getattr(env, method)(*args, **kwargs)
                env.rng.bit_generator.state = state
                before = getattr(env, "blowup_count", 0)
                arrays = _collect_stream(env, agents, steps, seed, dtypes)
                out.append((arrays, env.rng.bit_generator.state, getattr(env, "blowup_count", 0) - before))
            connection.send(("ok", out))
        except Exception as error:  # reported in the parent, which raises
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            connection.send(("error", last))

