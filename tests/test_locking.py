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
