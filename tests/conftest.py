import functools
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "disable")  # before any dm_control import: no GLFW warnings in tests
# small tensors: extra BLAS threads only contend on a 2-core machine, so one thread, unless OMP_NUM_THREADS
# asks for more (the suite must pass with 1 and 2: OMP_NUM_THREADS=2 python -m pytest)
_threads = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
torch.set_num_threads(int(_threads) if _threads.isdigit() and int(_threads) > 0 else 1)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _torch_threads_left_as_found():
    """A test that leaves torch's thread count changed gives every later test's one-thread run more threads,
    and the bit-identity tests other bits (as a leak of 3 threads once did to tests/test_threads.py): such a
    test errors by name, and the count is put back for the rest of the run."""
    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch's intra-op thread count at {after} (it found {before})")


def write_distribution(root: Path, name: str, version: str, entry_points: dict[str, str],
                       modules: dict[str, str]) -> Path:
    """Write an installed-looking distribution (dist-info + modules) under ``root``.

    importlib.metadata discovers it from sys.path exactly as it discovers a pip-installed package.
    """
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[ipo_robust]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A throwaway site directory on sys.path for fake plugin distributions."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()

    def add(name, version="1.0", entry_points=None, modules=None):
        write_distribution(root, name, version, entry_points or {}, modules or {})
        importlib.invalidate_caches()
        return root

    add.root = root
    yield add
    for module in [m for m in sys.modules if m.startswith("fake_plugin")]:
        del sys.modules[module]


ISOLATED = "IPO_ROBUST_TEST_ISOLATED"


def in_own_process(test):
    """Run this test in a fresh pytest process (its fixtures too) and pass or fail with it.

    For tests that start and stop a Ray cluster: one start/stop per process is how the CLI uses Ray,
    while several in one long-lived process now and then make Ray's driver exit the whole process,
    which would take the rest of the test run with it.
    """

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if os.environ.get(ISOLATED) == "1":
            return test(*args, **kwargs)
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", node],
                                cwd=REPO, env={**os.environ, ISOLATED: "1"}, capture_output=True, text=True,
                                timeout=600)
        output = result.stdout[-4000:] + result.stderr[-2000:]
        assert result.returncode == 0, f"{node} failed in its own process:\n{output}"

    return wrapper
