"""The ``ipo-robust`` command line.

Every subcommand is a function ``run_<name>(args) -> int`` registered in :func:`build_parser`.
A usage error or bad input prints one line to stderr and exits 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ipo_robust import __version__, host
from ipo_robust.errors import IpoRobustError

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ipo-robust",
        description="Train two-agent policies with Interactive Policy Optimization and measure how "
        "exploitable and robust they are.",
    )
    parser.add_argument("--version", action="version", version=f"ipo-robust {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "--disable-plugin", action="append", default=[], metavar="NAME",
        help=f"do not load the plugin with this entry-point name (repeatable; also {host.DISABLE_ENV_VAR})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(run=run_plugins)

    for add in _SUBCOMMANDS:
        add(commands)
    return parser


def run_plugins(args) -> int:
    records = host.get_host().plugins
    if args.json:
        print(json.dumps([record.as_dict() for record in records], indent=2))
        return 0
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "STATUS")]
    for record in records:
        status = record.status if record.status == "ok" else f"{record.status}: {record.reason}"
        registers = ", ".join(f"{kind}:{name}" for kind, name in record.registers) or "-"
        rows.append((record.name, record.distribution or "-", record.version or "-", registers, status))
    print(format_table(rows))
    return 0


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# Later capabilities append ``add(commands)`` functions here (see ipo_robust/commands/).
_SUBCOMMANDS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.disable_plugin:
            host.reload(disabled=args.disable_plugin)
        return args.run(args)
    except KeyboardInterrupt:
        print("ipo-robust: interrupted", file=sys.stderr)
        return 130
    except IpoRobustError as error:
        if args.debug:
            raise
        print(f"ipo-robust: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:
    sys.exit(main())
