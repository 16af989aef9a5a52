"""Built-in executors: run independent work items (evaluation cells, seeds) in this process or a pool.

An executor is an object with ``map(function, items)`` that yields ``function(item)`` for each item,
in the order given. ``function`` and the items must be picklable for the process pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from ipo_robust.errors import ConfigError
from ipo_robust.hookspecs import hookimpl


class SerialExecutor:
    """Runs every item in the calling process, one after another (debugging, tiny suites)."""

    def map(self, function: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield function(item)


def _single_threaded_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one BLAS thread per worker process: the pool provides the parallelism


class LocalExecutor:
    """A pool of worker processes on this machine, each single-threaded.

    :param max_workers: number of processes (default: the number of CPUs).
    """

    def __init__(self, max_workers: int | None = None):
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ConfigError(f"executor 'local': max_workers must be a positive integer, got {max_workers!r}")
        self.max_workers = max_workers or os.cpu_count() or 1

    def map(self, function: Callable, items: Iterable) -> Iterator:
        with ProcessPoolExecutor(self.max_workers, initializer=_single_threaded_worker) as pool:
            yield from pool.map(function, items)


@hookimpl
def register_executors(register):
    register("serial", SerialExecutor)
    register("local", LocalExecutor)
