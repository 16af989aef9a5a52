"""What every subcommand shares: the one-line usage-error parser, the exit code of a usage error, the
checks of output paths, and plain-text tables. It sits below the subcommands and :mod:`ipo_robust.cli`
(which imports them), so no subcommand imports the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ipo_robust.errors import ConfigError

EXIT_USAGE = 2
"""The exit status of a usage error or a bad value (one line on stderr)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` if a command can make it its output directory (it is one, or it can be created, and it is
    writable); else a one-line :class:`~ipo_robust.errors.ConfigError` naming ``option``, the path and the problem.

    Refused: a regular file at ``path``, a regular file where a parent directory of it would go, no write
    permission in ``path`` or in the nearest existing directory above it. Run before any work (before an env
    is built or anything trained), so that a directory that cannot be written fails in a second, not after
    the work. Nothing is created.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a file, not a directory: remove it or choose another {option}")
    _check_writable(out, path, option)
    return out


def check_output_path(path: str | os.PathLike, option: str = "--out", suffixes: Sequence[str] = ()) -> Path:
    """``path`` if a command can write it as a file (one of ``suffixes``, if given; not a directory; its parent
    directory exists or can be created, and is writable); else a one-line ConfigError, as :func:`check_output_dir`.
    """
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if out.is_dir():
        example = out / f"episode{suffixes[0] if suffixes else ''}"
        raise ConfigError(f"{option} {str(path)!r} is a directory; give a file name, e.g. {str(example)!r}")
    _check_writable(out.parent, path, option)
    return out


def _check_writable(directory: Path, path, option: str) -> None:
    """Refuse (ConfigError) when ``directory`` cannot be created or written: the nearest of it and its parents
    that exists (a dangling link counts) must be a directory with write permission. Paths stay as given
    (relative ones relative), so the message names what the user typed."""
    nearest = directory
    while not (nearest.exists() or nearest.is_symlink()) and nearest != nearest.parent:
        nearest = nearest.parent
    verb = "written" if nearest == directory else "created"
    if not nearest.is_dir():
        what = "a file, not a directory" if nearest.is_file() else "not a directory"
        raise ConfigError(f"{option} {str(path)!r} cannot be {verb}: {str(nearest)!r} is {what}")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r} cannot be {verb}: no write permission in {str(nearest)!r}")


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the header first) as left-aligned columns two spaces apart, without trailing spaces."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def print_solve_failures(counts: Mapping[str, int], what: str) -> None:
    """After a command's training: one line on stderr naming the optimizers whose Krylov solves stopped short
    of their tolerance, with how many (``counts``: optimizer name -> failed solves); nothing if none did.
    The training itself prints no solver warning per update (:mod:`ipo_robust.train`)."""
    failed = {name: int(n) for name, n in counts.items() if n and n == n}
    if failed:
        listed = ", ".join(f"{name} {n}" for name, n in failed.items())
        print(f"solver: Krylov solves that stopped short of their tolerance in {what}: {listed} "
              "(optim/solve_failures in the runs' metrics.csv); raise the optimizer's max_iter or loosen its rtol",
              file=sys.stderr)
