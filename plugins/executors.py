"""Built-in executors: run independent work items (evaluation cells, seeds) in this process, a process
pool, or on a Ray cluster.

An executor is an object with ``map(function, items)`` that yields ``function(item)`` for each item,
in the order given, each as soon as it and every item before it are done. ``function`` must be a
picklable top-level function and the items picklable. Closing the generator early (an error, Ctrl-C)
cancels the work that has not started.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator

from ipo_robust.errors import ConfigError
from ipo_robust.hookspecs import hookimpl
from ipo_robust.threads import WORKERS_VARIABLE


class SerialExecutor:
    """Runs every item in the calling process, one after another (debugging, tiny suites)."""

    def map(self, function: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield function(item)


def _single_threaded_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one BLAS thread per worker process: the pool provides the parallelism
    os.environ[WORKERS_VARIABLE] = "1"  # and one thread stepping each env's copies


def _positive_int_option(executor: str, name: str, value) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"executor {executor!r}: {name} must be a positive integer, got {value!r}")
    return value


class LocalExecutor:
    """A pool of worker processes on this machine, each single-threaded.

    :param max_workers: number of processes (default: the number of CPUs).
    """

    def __init__(self, max_workers: int | None = None):
        _positive_int_option("local", "max_workers", max_workers)
        self.max_workers = max_workers or os.cpu_count() or 1

    def map(self, function: Callable, items: Iterable) -> Iterator:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(self.max_workers, initializer=_single_threaded_worker)
        try:
            futures = [pool.submit(function, item) for item in items]
            for future in futures:
                yield future.result()
        finally:  # on an error or an early close: let running items finish, drop the queued ones
            pool.shutdown(wait=True, cancel_futures=True)


def _ray_task(function_bytes: bytes, item_bytes: bytes, driver_sys_path: list[str]):
    """Runs inside a Ray worker: import from the driver's path first (as a spawned process pool would, so
    the worker finds the same modules and plugins), one torch thread, then the function.

    The thread count is set again after unpickling: a Ray worker imports the function's module on its first
    task, and that module's top level may set torch's threads (the test suite's conftest sets them from
    ``OMP_NUM_THREADS``, which Ray passes on to its workers).

    The pickles are this run's own work items on their way from the driver to its workers, as a
    process pool sends them; nothing read from disk or from elsewhere is ever unpickled."""
    if sys.path[:len(driver_sys_path)] != driver_sys_path:
        sys.path[:] = driver_sys_path + [entry for entry in sys.path if entry not in driver_sys_path]
    import torch

    torch.set_num_threads(1)
    os.environ[WORKERS_VARIABLE] = "1"
    function = pickle.loads(function_bytes)
    item = pickle.loads(item_bytes)
    torch.set_num_threads(1)
    return function(item)


class RayExecutor:
    """Ray tasks, one CPU each, on a local cluster started for the run or on an existing cluster.

    :param address: an existing cluster to connect to (``"auto"``, ``"ray://host:10001"``, ...);
        default: start a local cluster (or use the one this process already initialised).
    :param num_cpus: CPUs of the local cluster it starts (default: all of this machine's).
    :param max_pending: at most this many tasks submitted at once (default: all).

    Only a cluster this executor started (or connected to) is shut down (disconnected) afterwards.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_pending: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("executor 'ray' needs Ray: pip install 'ipo-robust[ray]'") from None
        if address is not None and (not isinstance(address, str) or not address):
            raise ConfigError(f"executor 'ray': address must be a non-empty string, got {address!r}")
        if address is not None and num_cpus is not None:
            raise ConfigError("executor 'ray': num_cpus applies to a local cluster; an existing cluster "
                              "(address=...) has its own")
        self.address = address
        self.num_cpus = _positive_int_option("ray", "num_cpus", num_cpus)
        self.max_pending = _positive_int_option("ray", "max_pending", max_pending)

    def _init(self) -> bool:
        """Initialise Ray unless it already is; True when this executor did it."""
        import logging

        import ray

        if ray.is_initialized():
            return False
        options = {"logging_level": logging.WARNING, "include_dashboard": False}
        if self.address is not None:
            ray.init(address=self.address, **options)
        else:
            ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1, **options)
        return True

    def map(self, function: Callable, items: Iterable) -> Iterator:
        import ray

        payloads = [pickle.dumps(item) for item in items]  # unpicklable items fail here, before Ray starts
        if not payloads:
            return
        function_bytes = pickle.dumps(function)
        started = self._init()
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        refs: list = []
        try:
            shared = ray.put(function_bytes)
            path = [entry or os.getcwd() for entry in sys.path]  # "" is the driver's working directory
            limit = self.max_pending or len(payloads) or 1
            submitted = 0

            def submit_up_to(count: int) -> None:
                nonlocal submitted
                while submitted < min(count, len(payloads)):
                    refs.append(remote.remote(shared, payloads[submitted], path))
                    submitted += 1

            submit_up_to(limit)
            for index in range(len(payloads)):
                result = ray.get(refs[index])
                refs[index] = None
                submit_up_to(index + 1 + limit)
                yield result
        finally:
            # Drop the work not yet done. Not force=True: force-killing a task that completes at the same
            # moment trips a check in Ray 2.x's task manager ("Tried to complete task that was not
            # pending") that aborts this driver process.
            pending = [ref for ref in refs if ref is not None]
            if pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:  # finished or gone in the meantime: nothing to cancel
                    pass
            if started:
                ray.shutdown()


@hookimpl
def register_executors(register):
    register("serial", SerialExecutor)
    register("local", LocalExecutor)
    register("ray", RayExecutor)
