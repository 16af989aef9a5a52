"""What every subcommand shares: the one-line usage-error parser, the exit code of a usage error, and
plain-text tables. It sits below the subcommands and :mod:`ipo_robust.cli` (which imports them), so
no subcommand imports the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

EXIT_USAGE = 2
"""The exit status of a usage error or a bad value (one line on stderr)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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
