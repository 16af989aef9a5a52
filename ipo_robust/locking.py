"""One writer per output directory: :func:`hold` takes ``<dir>/.ipo-robust.lock`` or refuses at once.

Every command that writes a run, suite or report directory holds its lock while it writes, so two
commands started at once into one directory cannot interleave their files (issue 17). The lock is an
OS-level lock (:mod:`filelock`): the kernel releases it when the holding process exits or is killed,
so a crashed run never blocks the next one. Beside it, ``.ipo-robust.lock.holder`` (JSON) names the
holder (pid, host, command, start time) for the refusal message; it is advisory only.

A command that is refused (or fails) while it holds a directory that :func:`hold` created for it leaves no
trace: when the ``with`` block raises and the directory holds nothing but the lock files, they and the
directory go, and so do the parents :func:`hold` created that are empty then. A directory that existed
before is never removed, nor one that holds anything else.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from ipo_robust.errors import IpoRobustError

LOCK = ".ipo-robust.lock"
HOLDER = LOCK + ".holder"
#: the files :func:`hold` keeps in a directory; not outputs of the command that holds it
LOCK_FILES = (LOCK, HOLDER)


class DirectoryInUseError(IpoRobustError):
    """Another process holds the directory's lock; the message names it."""


def _describe(holder_file: Path) -> str:
    try:
        holder = json.loads(holder_file.read_text())
        since = time.strftime("%H:%M:%S", time.localtime(float(holder["started"])))
        return f"pid {holder['pid']} on host {holder['host']} ({holder['command']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is between taking the lock and writing this
        return "another process"


def _command_line(argv: list[str]) -> str:
    """``ipo-robust train c.toml`` (or ``python -m ipo_robust train c.toml``) from ``sys.argv``."""
    if not argv:
        return "python"
    program = Path(argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return " ".join([name, *argv[1:]])


@contextmanager
def hold(directory: str | os.PathLike, command: str | None = None, what: str = "run directory",
         option: str = "--out") -> Iterator[Path]:
    """Hold ``directory``'s lock (creating the directory) for the ``with`` block; yields the directory.

    When the block raises, a directory created here that holds only the lock files is removed again, with
    the parents created here that are empty (a refused command leaves no empty directory behind).

    :param command: the holder's command line, for a later refusal (default: this process's argv).
    :param what: how the refusal names the directory (``run directory``, ``suite directory``, ...).
    :param option: the option that chooses another directory, for the refusal's fix.
    :raises DirectoryInUseError: at once, when another process (or another :func:`hold` in this one)
        holds the lock.
    """
    directory = Path(directory)
    created = _missing(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(directory / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise DirectoryInUseError(f"{what} {str(directory)!r} is in use by {_describe(directory / HOLDER)}; "
                                  f"wait for it or use another {option}") from None
    holder_file = directory / HOLDER
    failed = True
    try:
        if command is None:
            command = _command_line(sys.argv)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
        holder_file.write_text(json.dumps(holder) + "\n")
        yield directory
        failed = False
    finally:
        holder_file.unlink(missing_ok=True)
        empty = failed and bool(created) and _only_lock_files(directory)
        if empty:
            (directory / LOCK).unlink(missing_ok=True)  # still held: no other process locks this file meanwhile
        lock.release()
        if empty:
            _remove_empty(created)


def _missing(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, deepest first (what mkdir will create)."""
    missing = []
    path = directory
    while not (path.exists() or path.is_symlink()) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _only_lock_files(directory: Path) -> bool:
    try:
        return all(entry.name in LOCK_FILES for entry in directory.iterdir())
    except OSError:
        return False


def _remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) while they are empty; stop at the first that is not (another
    process may have written there meanwhile: rmdir removes only an empty directory)."""
    for path in directories:
        try:
            path.rmdir()
        except OSError:
            return
