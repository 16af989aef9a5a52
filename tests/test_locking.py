"""One writer per output directory: :func:`ipo_robust.locking.hold` (issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ipo_robust.errors import IpoRobustError
from ipo_robust.locking import HOLDER, LOCK, DirectoryInUseError, hold


def test_a_second_hold_is_refused_naming_the_holder(tmp_path):
    with hold(tmp_path / "run", command="ipo-robust train c.toml"):
        with pytest.raises(DirectoryInUseError) as refused:
            with hold(tmp_path / "run"):
                pass
    message = str(refused.value)
    assert isinstance(refused.value, IpoRobustError) and len(message.splitlines()) == 1
    assert f"is in use by pid {os.getpid()} on host " in message and "(ipo-robust train c.toml, since " in message
    assert message.endswith("; wait for it or use another --out")
    assert not (tmp_path / "run" / HOLDER).exists()  # released: the holder file goes with the lock
    with hold(tmp_path / "run"):  # and the directory can be held again
        pass


def test_a_killed_holders_lock_is_released(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom ipo_robust.locking import hold\n"
        f"with hold({str(tmp_path)!r}, command='child'):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryInUseError, match=f"pid {holder.pid} .*child"):
            with hold(tmp_path):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (tmp_path / LOCK).exists() and (tmp_path / HOLDER).exists()  # left behind by the killed process
    deadline = time.monotonic() + 5
    with hold(tmp_path, command="after"):  # the OS released the lock with the process: no stale lock
        assert time.monotonic() < deadline
        assert '"command": "after"' in (tmp_path / HOLDER).read_text()


# ------------------------------------------------- a refused command leaves nothing it created (issue 17)
def test_a_refused_command_removes_the_directories_it_created_and_nothing_else(tmp_path):
    from ipo_robust.errors import ConfigError

    (tmp_path / "kept").mkdir()
    with pytest.raises(ConfigError, match="refused"):
        with hold(tmp_path / "kept" / "new" / "run"):
            assert (tmp_path / "kept" / "new" / "run" / LOCK).exists()
            raise ConfigError("refused")
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "new").exists()  # only what hold created

    existed = tmp_path / "existed"
    existed.mkdir()
    with pytest.raises(ConfigError):
        with hold(existed):
            raise ConfigError("refused")
    assert existed.is_dir()  # a directory that existed before is never removed, even when empty

    outputs = tmp_path / "outputs" / "run"
    with pytest.raises(KeyboardInterrupt):
        with hold(outputs):
            (outputs / "metrics.csv").write_text("update\n0\n")
            raise KeyboardInterrupt
    assert (outputs / "metrics.csv").read_text() == "update\n0\n"  # nor one that holds an output
    assert not (outputs / HOLDER).exists()

    with hold(tmp_path / "done"):  # a command that finishes keeps its directory
        pass
    assert (tmp_path / "done").is_dir()


def test_a_refused_second_holder_leaves_the_first_holders_directory_alone(tmp_path):
    run = tmp_path / "new"
    with hold(run, command="first"):
        with pytest.raises(DirectoryInUseError):
            with hold(run):
                pass
        assert (run / LOCK).exists() and '"command": "first"' in (run / HOLDER).read_text()
