"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A reader (or a crash) sees either the old file or the new one, never a half-written one. The file gets
the permissions a plain ``open(path, "w")`` would give it (``0o666`` less the umask), not the ``0o600``
of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _create_beside(path: Path) -> tuple[int, Path]:
    """Create a new, empty, uniquely named file in ``path``'s directory; return its descriptor and path.

    Created with mode ``0o666`` so that the kernel applies the umask (and any default ACL) exactly as
    for ``open(path, "w")``; reading the umask instead would need ``os.umask``, which sets it
    process-wide for a moment and is not thread-safe.
    """
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, _FLAGS, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {str(path)!r}: 100 names were taken")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
