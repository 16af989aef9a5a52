"""Atomic writes (issue 17): the umask decides the mode, and a failed write leaves the old file."""

from __future__ import annotations

import os
import stat

import pytest

from ipo_robust.atomic import atomic_write_bytes, atomic_write_text

WRITERS = [pytest.param(atomic_write_bytes, b"data\n", id="bytes"),
           pytest.param(atomic_write_text, "data\n", id="text")]


@pytest.fixture
def set_umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask-022", "umask-077", "umask-002"])
@pytest.mark.parametrize("write,data", WRITERS)
def test_the_mode_is_what_open_would_give_under_the_umask(tmp_path, set_umask, write, data, umask, mode):
    set_umask(umask)
    new = write(tmp_path / "new.txt", data)
    (tmp_path / "old.txt").write_text("old")
    replaced = write(tmp_path / "old.txt", data)
    with open(tmp_path / "plain.txt", "w"):
        pass
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode
    assert stat.S_IMODE(new.stat().st_mode) == mode
    assert stat.S_IMODE(replaced.stat().st_mode) == mode


@pytest.mark.parametrize("write,data", WRITERS)
def test_a_write_replaces_the_file_through_a_temporary_beside_it(tmp_path, monkeypatch, write, data):
    target = tmp_path / "deep" / "out.txt"
    renames = []
    replace = os.replace

    def recording_replace(source, destination):
        renames.append((os.fspath(source), os.fspath(destination)))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    assert write(target, data) == target
    write(target, data * 2)
    assert target.read_bytes() == b"data\n" * 2
    assert [os.path.dirname(source) for source, _ in renames] == [str(target.parent)] * 2
    assert [destination for _, destination in renames] == [str(target)] * 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temporary left behind


@pytest.mark.parametrize("step", ["fsync", "replace"])
@pytest.mark.parametrize("write,data", WRITERS)
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, write, data, step):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(*args):
        raise OSError(f"{step} failed")

    monkeypatch.setattr(os, step, fail)
    with pytest.raises(OSError, match=f"{step} failed"):
        write(target, data)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
