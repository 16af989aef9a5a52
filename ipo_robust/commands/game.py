"""``ipo-robust game --game rps --optimizers simga,cgd``: compare optimizers on an exact matrix game.

Every optimizer is trained with exact gradients from the same start; the table gives the exact
exploitability (NashConv / 2) each reaches (:mod:`ipo_robust.evals.exact_comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ipo_robust import host
from ipo_robust.atomic import atomic_write_text
from ipo_robust.commands.common import format_table, print_solve_failures
from ipo_robust.errors import ConfigError
from ipo_robust.overrides import parse_overrides

OPTIMIZER_USAGE = "OWNER.KEY=VALUE (e.g. cgd.depth=2)"


def parse_optimizer_overrides(items: Sequence[str]) -> dict[str, dict]:
    """``["cgd.depth=2", "simga.lr1=0.1"]`` -> ``{"cgd": {"depth": 2}, "simga": {"lr1": 0.1}}``.

    Values follow :func:`ipo_robust.overrides.parse_value` (TOML literals, else JSON, else the string;
    ``null`` is None); nothing is evaluated.
    """
    return parse_overrides(items, usage=OPTIMIZER_USAGE, min_depth=2, max_depth=2)


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
    # torch is heavy: the CLI's --help must start fast, so the exact comparison loads only when it runs
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
    overrides = parse_optimizer_overrides(args.set)
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
    print_solve_failures(dict(zip(summary["optimizer"], summary["solve_failures"], strict=True)), game.name)
    return 0
