"""The ``ipo-robust`` command line.

Every subcommand is a module of :mod:`ipo_robust.commands` with ``add_<name>_command(commands)`` and
``run_<name>(args) -> int``, added to the parser in :func:`build_parser`. A usage error or bad input
prints one line to stderr and exits 2; ``--debug`` shows the traceback.

The CLI sits on top: it imports the subcommands, and no subcommand imports it (what they share is in
:mod:`ipo_robust.commands.common`, the ``--set`` parser in :mod:`ipo_robust.overrides`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ipo_robust import __version__, host
from ipo_robust.commands.common import EXIT_USAGE, OneLineParser, format_table
from ipo_robust.commands.compare import add_compare_command
from ipo_robust.commands.demo import add_demo_command
from ipo_robust.commands.eval import add_eval_command
from ipo_robust.commands.game import add_game_command, parse_optimizer_overrides, run_game
from ipo_robust.commands.plugins import add_plugins_command, run_plugins
from ipo_robust.commands.render import add_render_command
from ipo_robust.commands.train import add_train_command
from ipo_robust.errors import IpoRobustError
from ipo_robust.overrides import parse_value

# the names this module had before the subcommands moved to ipo_robust.commands; kept importable from here
parse_overrides = parse_optimizer_overrides
__all__ = ["EXIT_USAGE", "OneLineParser", "build_parser", "entry", "format_table", "main", "parse_overrides",
           "parse_value", "run_game", "run_plugins"]

_SUBCOMMANDS: list = [add_plugins_command, add_game_command, add_train_command, add_eval_command, add_render_command,
                      add_compare_command, add_demo_command]


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
    for add in _SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Headless by default, chosen before anything imports mujoco (nothing does while parsing): dm_control would
    # otherwise try GLFW (an X display). Only `render` draws, and it needs EGL; every other command simulates
    # only, so it asks for no OpenGL at all and runs on machines without libEGL.
    os.environ.setdefault("MUJOCO_GL", "egl" if args.command == "render" else "disable")
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
