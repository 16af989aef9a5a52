"""Threads for independent work of the two players (PPO's two updates, both critics' regressions).

Torch releases the GIL inside its kernels, so two threads keep two cores busy on per-player work with
batches of a few thousand samples. Each item's arithmetic is the same on any thread, so results do not
depend on the thread count; work that draws random numbers must draw them before it is split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

WORKERS_VARIABLE = "IPO_ROBUST_ENV_WORKERS"
"""Threads per process for env copies and per-player work; process-pool executors set it to 1 in their
workers, which already fill the cores."""

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def available_cpus() -> int:
    """``IPO_ROBUST_ENV_WORKERS`` if set (a positive int, else ValueError), else the CPUs this process may run on."""
    value = os.environ.get(WORKERS_VARIABLE)
    if value:
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ValueError(f"{WORKERS_VARIABLE} must be a positive int, got {value!r}")
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_map(function: Callable, items: Iterable, threads: int | None = None) -> list:
    """``[function(item) for item in items]``, the items on up to ``threads`` threads (default
    :func:`available_cpus`); the calling thread takes the first item. Exceptions propagate."""
    items = list(items)
    threads = min(available_cpus() if threads is None else int(threads), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    pool = _helpers(threads - 1)
    with _one_intra_op_thread():
        futures = [pool.submit(function, item) for item in items[1:]]
        try:
            first = function(items[0])
        finally:
            rest = [future.result() for future in futures]  # waits for all even when the first item failed
    return [first, *rest]


@contextmanager
def _one_intra_op_thread():
    """Torch's intra-op pool at one thread while the items run side by side, restored after.

    Each calling thread would otherwise fan its large kernels out over all the cores too, so two items on two
    cores ran four busy threads: PPO's update on sumo-pushers (64 copies x 100 steps, 2 CPUs) took 0.14-0.17 s
    that way against 0.11-0.12 s with one intra-op thread (benchmarks/RESULTS.md, issue 15).
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _helpers(n: int) -> ThreadPoolExecutor:
    """The process's helper threads (kept between calls), at least ``n`` of them."""
    global _pool, _pool_size
    if _pool is None or _pool_size < n:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="ipo-robust"), n
    return _pool
