"""The ``ipo-robust`` command line.

Every subcommand is a function ``run_<name>(args) -> int`` registered in :func:`build_parser`.
A usage error or bad input prints one line to stderr and exits 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ipo_robust import __version__, host
from ipo_robust.atomic import atomic_write_text
from ipo_robust.commands.compare import add_compare_command
from ipo_robust.commands.demo import add_demo_command
from ipo_robust.commands.eval import add_eval_command
from ipo_robust.commands.render import add_render_command
from ipo_robust.commands.train import add_train_command
from ipo_robust.errors import ConfigError, IpoRobustError

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


def parse_overrides(items: Sequence[str]) -> dict[str, dict]:
    """``["cgd.depth=2", "simga.lr1=0.1"]`` -> ``{"cgd": {"depth": 2}, "simga": {"lr1": 0.1}}``.

    Values are read as JSON (numbers, true/false, null), ``none`` as None, anything else as a string;
    nothing is evaluated.
    """
    overrides: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        owner, dot, field = key.partition(".")
        if not sep or not dot or not owner or not field:
            raise ConfigError(f"--set expects OWNER.KEY=VALUE (e.g. cgd.depth=2), got {item!r}")
        overrides.setdefault(owner, {})[field] = parse_value(raw)
    return overrides


def parse_value(raw: str):
    if raw.lower() in ("none", "null"):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def add_game_command(commands) -> None:
    game = commands.add_parser(
        "game", help="compare optimizers on an exact matrix game (exact gradients, exact exploitability)",
        description="Train each optimizer with exact gradients from the same start and print the exact "
        "exploitability (NashConv / 2) each reaches.",
    )
    game.add_argument("--game", default="rock-paper-scissors",
                      help="named game (rock-paper-scissors/rps, matching-pennies/mp, prisoners-dilemma, "
                      "chicken, stag-hunt) or random-zero-sum / random-general-sum")
    game.add_argument("--optimizers", default="simga,cgd", help="comma-separated optimizer names (plugins)")
    game.add_argument("--iters", type=int, default=200, help="iterations per optimizer (default 200)")
    game.add_argument("--lr", type=float, default=0.5, help="learning rate of both players (default 0.5)")
    game.add_argument("--seed", type=int, default=0, help="seed of random games and random starts")
    game.add_argument("--size", type=int, default=3, help="actions per player of random games")
    game.add_argument("--set", action="append", default=[], metavar="OPT.KEY=VALUE",
                      help="optimizer hyperparameter, e.g. cgd.depth=1 or ncgd.kl=0.05 (repeatable)")
    game.add_argument("--csv", nargs="?", const="-", metavar="PATH",
                      help="write the table as CSV to PATH (atomically), or to stdout without PATH")
    game.add_argument("--curves", metavar="PATH", help="write per-iteration learning curves as CSV")
    game.set_defaults(run=run_game)


def run_game(args) -> int:
    from ipo_robust.evals.exact_comparison import compare_on_matrix_game, make_matrix_game

    if args.iters < 1:
        raise ConfigError(f"--iters must be >= 1, got {args.iters}")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    optimizers = [name.strip() for name in args.optimizers.split(",") if name.strip()]
    if not optimizers:
        raise ConfigError("--optimizers is empty: give at least one optimizer name")
    for name in optimizers:
        host.resolve("optimizer", name)  # unknown names fail before any work
    overrides = parse_overrides(args.set)
    for owner in overrides:
        if owner not in optimizers:
            raise ConfigError(f"--set names {owner!r}, which is not in --optimizers ({', '.join(optimizers)})")
    game = make_matrix_game(args.game, size=args.size, seed=args.seed)
    summary, curves = compare_on_matrix_game(game, optimizers, args.iters, args.lr, seed=args.seed,
                                             hyperparameters=overrides)
    if args.curves:
        atomic_write_text(args.curves, curves.to_csv(index=False))
    if args.csv == "-":
        print(summary.to_csv(index=False), end="")
        return 0
    if args.csv:
        atomic_write_text(args.csv, summary.to_csv(index=False))
    print(f"{game.name}: {args.iters} iterations, lr {args.lr}, exact gradients")
    rows = [("OPTIMIZER", "EXPLOITABILITY", "NASHCONV", "P1", "P2", "SOLVER ITERS/STEP", "SECONDS")]
    for row in summary.itertuples():
        rows.append((row.optimizer, f"{row.exploitability:.3g}", f"{row.nash_conv:.3g}", row.p1, row.p2,
                     f"{row.mean_solver_iterations:.1f}", f"{row.seconds:.2f}"))
    print(format_table(rows))
    return 0


_SUBCOMMANDS: list = [add_game_command, add_train_command, add_eval_command, add_render_command, add_compare_command,
                      add_demo_command]


def main(argv: Sequence[str] | None = None) -> int:
    # headless by default: dm_control otherwise tries GLFW (an X display) on import; render needs EGL anyway
    os.environ.setdefault("MUJOCO_GL", "egl")
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
