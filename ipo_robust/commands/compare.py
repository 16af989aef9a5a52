"""``ipo-robust compare --env ENV --optimizers A,B --config LABEL=PATH --seeds N``: train every entry (an
optimizer by self-play, or a whole training config) x seed with equal env steps, attack each trained pair
with the same budget, print the exploitability leaderboard and write a report.

Everything is checked before any work (unknown names, bad values and an ``--out`` that cannot be written
exit 2 with one line). Finished work items are saved under ``OUT/items/`` and skipped on a re-run. See
``docs/compare.md`` and :mod:`ipo_robust.evals.compare`.
"""

from __future__ import annotations

import sys

from ipo_robust.commands.common import check_output_dir, format_table, print_solve_failures
from ipo_robust.errors import ConfigError

DEFAULT_OPTIMIZERS = "ipo-vpg,ipo-trpo,simga,ppo"


def add_compare_command(commands) -> None:
    compare = commands.add_parser(
        "compare", help="train optimizers or configs x seeds, attack each pair, print the exploitability leaderboard",
        description="For each entry (an optimizer trained by self-play, or a whole training config given with "
        "--config) and seed: train a pair with equal env steps, attack both agents with the same budget (exact "
        "best response in matrix games, a PPO adversary otherwise: a lower bound), then print the leaderboard (mean "
        "and 95% bootstrap interval over seeds) and write results.csv, leaderboard.csv, controls.csv, report.md, "
        "report.html and plots in --out. Re-running skips finished items.",
    )
    compare.add_argument("--env", help="registered environment, e.g. sumo-pushers, rock-paper-scissors (optional "
                         "when --config files are given: the env they all name)")
    compare.add_argument("--optimizers", metavar="LIST",
                         help="comma-separated optimizer names, each trained by self-play (default "
                         f"{DEFAULT_OPTIMIZERS} when no --config is given, else none)")
    compare.add_argument("--config", action="append", default=[], metavar="LABEL=PATH",
                         help="a whole training config (TOML, as for train) as one more entry, labelled LABEL in "
                         "every table (PATH alone: labelled by the file stem); repeatable. Every entry must train "
                         "the same env steps")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per entry: 0..N-1 (default 3)")
    compare.add_argument("--budget", type=int, metavar="UPDATES",
                         help="self-play updates of the --optimizers entries (default: 200 for matrix games, 50 for "
                         "iterated games, 100 otherwise); --config entries train their own schedule.iterations")
    compare.add_argument("--attack", metavar="NAME",
                         help="attack plugin (default: best-response in matrix games, ppo-adversary otherwise; "
                         "ppo-adversary works on matrix games too)")
    compare.add_argument("--attack-budget", metavar="BUDGET",
                         help="attacker training per seat: a multiple of the victim's training env steps (1x, "
                         "0.5x) or env steps (50000); default 1x for attacks that train (the leaderboard's budget)")
    compare.add_argument("--attack-budgets", metavar="LIST",
                         help="a budget curve, e.g. 0.25x,0.5x,1x,2x: one attacker per victim, seat and attacker "
                         "seed, evaluated at each budget along its training")
    compare.add_argument("--attacker-seeds", type=int, metavar="K",
                         help="attackers per victim and seat (default 3 for attacks that train): the lower bound "
                         "is the max over them, their mean is reported beside")
    compare.add_argument("--strength-games", type=int, metavar="N",
                         help="games per pairing and seat of the strength round robin among the trained pairs "
                         "(Bradley-Terry ratings) and against a random opponent (default: --games; 0: none)")
    compare.add_argument("--no-controls", action="store_true",
                         help="skip the positive controls (the attack against known-weak zero-action and uniformly "
                         "random victims; without them nothing certifies the attack and the ranking says so)")
    compare.add_argument("--games", type=int, metavar="N", help="evaluation games per attack (default 64)")
    compare.add_argument("--robustness-points", type=int, default=11, metavar="N",
                         help="MuJoCo envs: scales in 0.5..1.5 of each swept parameter for the robustness curves "
                              "(0: none; default 11)")
    compare.add_argument("--robustness-games", type=int, metavar="N", help="games per scale (default: --games)")
    compare.add_argument("--robustness-parameters", default="mass", metavar="LIST",
                         help="dynamics swept, comma-separated: mass, friction, gear (default mass); the leaderboard's "
                              "worst_case_win_rate is the lowest win rate over all of them")
    compare.add_argument("--robustness-opponent", default="random", choices=("random", "victim"),
                         help="who plays the swept agent: a uniformly random policy (default; the same for every "
                         "optimizer) or the pair's other agent")
    compare.add_argument("--out", default="compare", metavar="DIR", help="output directory (default compare/)")
    compare.add_argument("--executor", default="local", metavar="NAME",
                         help="executor plugin for the work items: local (process pool, default), serial, ray")
    compare.add_argument("--workers", type=int, metavar="N", help="local executor: worker processes (default: CPUs)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="OPTIMIZER.KEY=VALUE or LABEL.KEY=VALUE sets one entry's optimizer hyperparameter "
                         "(ppo.lr=3e-4); LABEL.SECTION.KEY=VALUE one entry's config key "
                         "(ipo-rarl.schedule.iterations=150); SECTION.KEY=VALUE any training-config key for all "
                         "(env.num_envs=32) (repeatable)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare.set_defaults(run=run_compare_command)


def run_compare_command(args) -> int:
    # torch and pandas are heavy: the CLI's --help must start fast, so the comparison loads only when it runs
    from ipo_robust.evals.compare import make_spec, pending, run_compare

    check_output_dir(args.out, "--out")
    executor_options = {}
    if args.workers is not None:
        if args.executor != "local":
            raise ConfigError(f"--workers applies to the local executor, not {args.executor!r}")
        executor_options["max_workers"] = args.workers
    optimizers = args.optimizers if args.optimizers is not None else ("" if args.config else DEFAULT_OPTIMIZERS)
    if args.env is None and not args.config:
        raise ConfigError("--env is required (or give --config files, which name their env)")
    spec = make_spec(args.env, optimizers.split(","), seeds=args.seeds, updates=args.budget, configs=args.config,
                     attack_budget=args.attack_budget, games=args.games, out=args.out, executor=args.executor,
                     overrides=args.set, robustness_points=args.robustness_points,
                     robustness_games=args.robustness_games, executor_options=executor_options,
                     robustness_parameters=args.robustness_parameters,
                     robustness_opponent=args.robustness_opponent, attack=args.attack,
                     attack_budgets=args.attack_budgets, attacker_seeds=args.attacker_seeds,
                     controls=not args.no_controls, strength_games=args.strength_games)
    todo, _ = pending(spec)
    kinds = "entries" if spec.sources else "optimizers"
    print(f"compare on {spec.env}: {len(spec.optimizers)} {kinds} x {len(spec.seeds)} seeds, "
          f"{len(spec.items()) - len(todo)} items already done; executor {spec.executor}", file=sys.stderr)
    result = run_compare(spec, progress=not args.no_progress)
    print_leaderboard(result)
    print(f"\n{result.computed} items computed, {result.reused} reused, {result.seconds:.1f} s; "
          f"report: {spec.out / 'report.html'}")
    print_solve_failures(solve_failure_counts(result), f"training on {spec.env}")
    return 0


def solve_failure_counts(result) -> dict[str, int]:
    """Failed Krylov solves per entry over all seeds of a comparison (results.csv's ``solve_failures``)."""
    frame = result.results
    if "solve_failures" not in frame:
        return {}
    per_run = frame.groupby(["optimizer", "seed"], sort=False)["solve_failures"].first()
    return {name: int(n) for name, n in per_run.groupby(level=0, sort=False).sum().items()}


def print_leaderboard(result) -> None:
    # pandas is heavy: loaded when a result is printed
    from ipo_robust.evals.leaderboard import conclusions, leaderboard_rows

    spec = result.spec
    bound = "exact (best response)" if spec.bound == "exact" else f"lower bound ({spec.attack})"
    budget = (f"; attack budget {spec.attack_budget:,} env steps = {spec.budget_multiple(spec.attack_budget):.3g}x "
              f"the victim's training, max over {spec.attacker_seeds} attacker seed"
              f"{'s' if spec.attacker_seeds != 1 else ''}") if spec.bound == "lower bound" else ""
    print(f"{spec.env}: exploitability in game units (attacker return - partner return), {bound}; equal training: "
          f"{spec.victim_steps:,} env steps per pair, {len(spec.seeds)} seed{'s' if len(spec.seeds) != 1 else ''}"
          f", 95% bootstrap interval over seeds{budget}")
    if spec.sources:  # entries that are whole configs: say what each label trains
        print("entries: " + "; ".join(f"{label} = {spec.method(label)}: {spec.training(label)}"
                                      for label in spec.optimizers))
    controls = result.controls
    if len(controls):
        at = controls[controls["budget"] == spec.attack_budget]
        print("positive controls (the same attack and budget against known-weak victims): " + ", ".join(
            f"{row.control} victim won {row.win_rate:.2f} [{row.win_low:.2f}, {row.win_high:.2f}]"
            for row in at.itertuples()))
        if result.certified is False:
            print("the attack won under 0.9 of its games against the zero-action victim: too weak to certify "
                  "anything at this budget, so no ranking is given")
    print(format_table(leaderboard_rows(result.leaderboard)))
    for sentence in conclusions(result.leaderboard):
        print(sentence)
