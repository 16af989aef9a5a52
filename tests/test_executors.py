"""Executors: ordered results, single-threaded workers, early close, and Ray's cluster handling."""

import os
import sys
import time

import pytest

from ipo_robust import host
from ipo_robust.errors import ConfigError
from tests.conftest import in_own_process


def square(x):
    return x * x


def slow_identity(item):
    """Sleeps longer for earlier items, so that results finish out of order."""
    index, delay = item
    time.sleep(delay)
    return index


def threads_and_path(_):
    import torch

    return torch.get_num_threads(), list(sys.path)


def touch_then_sleep(item):
    folder, index = item
    open(os.path.join(folder, f"{index}.started"), "w").close()
    time.sleep(0.2)
    return index


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def make(name, **options):
    return host.resolve("executor", name)(**options)


@pytest.mark.parametrize("name, options", [("serial", {}), ("local", {"max_workers": 2})])
def test_results_come_back_in_order(name, options):
    items = [(i, 0.05 * (4 - i)) for i in range(5)]
    assert list(make(name, **options).map(slow_identity, items)) == [0, 1, 2, 3, 4]
    assert list(make(name, **options).map(square, [])) == []


def test_local_workers_are_single_threaded():
    threads, _ = next(make("local", max_workers=1).map(threads_and_path, [0]))
    assert threads == 1


def test_local_close_cancels_work_not_started(tmp_path):
    results = make("local", max_workers=1).map(touch_then_sleep, [(str(tmp_path), i) for i in range(20)])
    assert next(results) == 0
    results.close()  # as when the caller fails or is interrupted
    assert len(list(tmp_path.glob("*.started"))) < 6


def test_an_error_in_an_item_propagates():
    with pytest.raises(ValueError, match="three"):
        list(make("local", max_workers=2).map(fail_on_three, range(6)))


@pytest.mark.parametrize("name, options, message", [
    ("local", {"max_workers": 0}, "executor 'local': max_workers must be a positive integer, got 0"),
    ("ray", {"num_cpus": -1}, "executor 'ray': num_cpus must be a positive integer, got -1"),
    ("ray", {"address": "auto", "num_cpus": 2}, "num_cpus applies to a local cluster"),
    ("ray", {"max_pending": True}, "max_pending must be a positive integer"),
])
def test_bad_options_are_config_errors(name, options, message):
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match=message):
        make(name, **options)


def test_ray_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'ipo-robust\[ray\]'"):
        make("ray")


def test_a_ray_task_stays_single_threaded_when_importing_the_function_sets_threads(site, monkeypatch):
    """A Ray worker imports the function's module on its first task; a module whose top level sets torch's
    threads (as tests/conftest.py does from OMP_NUM_THREADS, which Ray passes on) must not leave the task
    running on more than one."""
    import pickle

    import torch

    from ipo_robust.plugins.executors import _ray_task
    from ipo_robust.threads import WORKERS_VARIABLE

    before = torch.get_num_threads()  # restored afterwards: importing the fake module sets it to 3
    site("fake-plugin-threads", modules={"fake_plugin_threads": """
        import torch

        torch.set_num_threads(3)

        def threads(_):
            return torch.get_num_threads()
        """})
    try:
        import fake_plugin_threads
    finally:
        torch.set_num_threads(before)
    function_bytes = pickle.dumps(fake_plugin_threads.threads)
    del sys.modules["fake_plugin_threads"]  # as in a fresh worker: unpickling imports it again
    monkeypatch.setenv(WORKERS_VARIABLE, "2")  # restored afterwards (the task sets it to 1)
    try:
        assert _ray_task(function_bytes, pickle.dumps(0), list(sys.path)) == 1
        assert "fake_plugin_threads" in sys.modules  # the import ran inside the task
    finally:
        torch.set_num_threads(before)


@in_own_process
def test_ray_starts_and_stops_its_own_local_cluster():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    executor = make("ray", num_cpus=2, max_pending=2)
    items = [(i, 0.05 * (4 - i)) for i in range(5)]
    assert list(executor.map(slow_identity, items)) == [0, 1, 2, 3, 4]
    assert not ray.is_initialized()  # it started the cluster, so it shut it down


@in_own_process
def test_ray_uses_an_existing_cluster_and_leaves_it_running():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        executor = make("ray")
        assert list(executor.map(square, range(6))) == [0, 1, 4, 9, 16, 25]
        (threads, path), = list(executor.map(threads_and_path, [0]))
        assert threads == 1 and path[:len(sys.path)] == [p or os.getcwd() for p in sys.path]  # the driver's path first
        with pytest.raises(ValueError, match="three"):
            list(executor.map(fail_on_three, range(6)))
        assert ray.is_initialized()
    finally:
        ray.shutdown()
