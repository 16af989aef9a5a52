"""``ipo-robust demo``: the project's main job on an embedded default, in about 4 minutes on two idle cores.

1. Rock-paper-scissors with exact gradients: simga, lookahead, cgd and ncgd from the seed paper's start,
   exact exploitability per iteration (:func:`ipo_robust.evals.exact_comparison.compare_on_matrix_game`).
2. Rock-paper-scissors from samples: ipo-vpg vs simga trained by self-play, attacked by the exact best
   response (:mod:`ipo_robust.evals.compare`).
3. ``sumo-pushers``: ipo-vpg, simga and ppo with equal samples, attacked by a PPO adversary (a lower
   bound), with robustness curves over body mass.

One report (report.md, report.html, PNG plots) goes to ``--out``; the data of parts 2 and 3 (and their
resumable work items) to ``OUT/rps`` and ``OUT/sumo-pushers``. ``--quick`` shrinks every budget so that
the whole demo takes about 10 s (used by the tests; its numbers mean nothing).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ipo_robust import host
from ipo_robust.atomic import atomic_write_text
from ipo_robust.commands.common import check_output_dir, format_table, print_solve_failures
from ipo_robust.commands.compare import print_leaderboard, solve_failure_counts

#: the embedded defaults: "full" is the demo, "quick" the smoke test
DEMO: dict[str, dict] = {
    "full": {
        "exact": {"optimizers": ["simga", "lookahead", "cgd", "ncgd"], "iterations": 1500, "lr": 0.5},
        "rps": {"optimizers": ["ipo-vpg", "simga"], "seeds": 3, "updates": 200, "games": 64, "set": []},
        "sumo": {"optimizers": ["ipo-vpg", "simga", "ppo"], "seeds": 2, "updates": 150, "attack_budget": 120_000,
                 "attacker_seeds": 1, "games": 64, "robustness_points": 5, "robustness_games": 32,
                 "set": ["env.options.max_episode_steps=100"]},
    },
    "quick": {
        "exact": {"optimizers": ["simga", "lookahead", "cgd", "ncgd"], "iterations": 60, "lr": 0.5},
        "rps": {"optimizers": ["ipo-vpg", "simga"], "seeds": 2, "updates": 5, "games": 8, "set": []},
        "sumo": {"optimizers": ["ipo-vpg", "simga", "ppo"], "seeds": 1, "updates": 2, "attack_budget": 256,
                 "attacker_seeds": 1, "games": 4, "robustness_points": 3, "robustness_games": 2,
                 "set": ["env.num_envs=2", "env.steps=30", "env.options.max_episode_steps=30", "agents.hidden=[8]"]},
    },
}


def add_demo_command(commands) -> None:
    demo = commands.add_parser(
        "demo", help="the main job in ~4 minutes on 2 idle cores: exact RPS comparison, then a small compare on "
        "sumo-pushers",
        description="Compare optimizers on rock-paper-scissors (exact gradients, exact exploitability; then from "
        "samples with the exact best-response attack) and on sumo-pushers (equal samples, a PPO adversary: lower "
        "bounds, robustness to mass), and write one report. Budgets are small: the report says how noisy.",
    )
    demo.add_argument("--out", default="demo-report", metavar="DIR", help="report directory (default demo-report/)")
    demo.add_argument("--quick", action="store_true", help="tiny budgets (about 10 s on 2 idle cores; a smoke test)")
    demo.add_argument("--executor", default="local", metavar="NAME",
                      help="executor plugin for the work items (local, serial, ray; default local)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from ipo_robust.locking import hold

    check_output_dir(args.out, "--out")
    with hold(Path(args.out), what="report directory", option="--out"):  # its parts lock their own subdirectories
        return _run_demo(args)


def _run_demo(args) -> int:
    # torch, pandas and matplotlib are heavy: the CLI's --help must start fast, so the evals load only when it runs
    from ipo_robust.evals.compare import make_spec, run_compare
    from ipo_robust.evals.exact_comparison import compare_on_matrix_game, make_matrix_game
    from ipo_robust.evals.report import (
        Report,
        compare_section,
        noise_note,
        plot_exact_curves,
    )

    began = time.perf_counter()
    plan = DEMO["quick" if args.quick else "full"]
    out = Path(args.out)
    # every name and value checked before any work
    rps_plan, sumo_plan, exact_plan = plan["rps"], plan["sumo"], plan["exact"]
    rps_spec = make_spec("rock-paper-scissors", rps_plan["optimizers"], seeds=rps_plan["seeds"],
                         updates=rps_plan["updates"], games=rps_plan["games"], out=out / "rps",
                         executor=args.executor, overrides=rps_plan["set"])
    sumo_spec = make_spec("sumo-pushers", sumo_plan["optimizers"], seeds=sumo_plan["seeds"],
                          updates=sumo_plan["updates"], attack_budget=sumo_plan["attack_budget"],
                          games=sumo_plan["games"], out=out / "sumo-pushers", executor=args.executor,
                          overrides=sumo_plan["set"], robustness_points=sumo_plan["robustness_points"],
                          robustness_games=sumo_plan["robustness_games"],
                          attacker_seeds=sumo_plan["attacker_seeds"])
    for name in exact_plan["optimizers"]:
        host.resolve("optimizer", name)
    out.mkdir(parents=True, exist_ok=True)

    # 1. exact gradients on rock-paper-scissors
    game = make_matrix_game("rock-paper-scissors")
    summary, curves = compare_on_matrix_game(game, exact_plan["optimizers"], exact_plan["iterations"],
                                             exact_plan["lr"], record_every=max(1, exact_plan["iterations"] // 300))
    summary = summary.sort_values("exploitability", kind="stable").reset_index(drop=True)
    atomic_write_text(out / "rps-exact.csv", summary.to_csv(index=False))
    atomic_write_text(out / "rps-exact-curves.csv", curves.to_csv(index=False))
    print(f"1. rock-paper-scissors, exact gradients, {exact_plan['iterations']} iterations, lr {exact_plan['lr']}: "
          "exact exploitability (NashConv / 2)")
    rows = [("OPTIMIZER", "EXPLOITABILITY", "P1", "P2")]
    rows += [(r.optimizer, f"{r.exploitability:.3g}", r.p1, r.p2) for r in summary.itertuples()]
    print(format_table(rows))

    # 2. and 3.: compare from samples
    print("\n2. rock-paper-scissors from samples, exact best-response attack", file=sys.stderr)
    rps = run_compare(rps_spec, progress=not args.no_progress, report=False)
    print()
    print_leaderboard(rps)
    print("\n3. sumo-pushers, PPO-adversary attack (lower bounds)", file=sys.stderr)
    sumo = run_compare(sumo_spec, progress=not args.no_progress, report=False)
    print()
    print_leaderboard(sumo)
    # failed solves of all three parts, once at the end of the training (never per update)
    print_solve_failures(dict(zip(summary["optimizer"], summary["solve_failures"], strict=True)),
                         "part 1 (exact rock-paper-scissors)")
    print_solve_failures(solve_failure_counts(rps), "part 2 (rock-paper-scissors from samples)")
    print_solve_failures(solve_failure_counts(sumo), "part 3 (sumo-pushers)")

    # the report
    seconds = time.perf_counter() - began
    report = Report("ipo-robust demo: how exploitable are the agents each optimizer trains?")
    report.paragraph(
        f"{'Quick smoke-test budgets (`--quick`): the numbers below mean nothing. ' if args.quick else ''}"
        f"Produced by `ipo-robust demo{' --quick' if args.quick else ''}` in {seconds:.0f} s. Three parts: exact "
        "gradients on rock-paper-scissors (no sampling: differences come from the update rules alone), the same "
        "game learned from samples and attacked by the exact best response, and a small self-play comparison on "
        "the MuJoCo game sumo-pushers attacked by a trained adversary (lower bounds).")
    report.heading("1. Rock-paper-scissors, exact gradients")
    report.paragraph(f"Every optimizer starts from the seed paper's start and takes {exact_plan['iterations']} "
                     f"exact steps with learning rate {exact_plan['lr']} (ncgd: fixed KL steps). Deterministic: "
                     "no seeds, no intervals. The unique Nash equilibrium is uniform play (exploitability 0).")
    report.table(summary[["optimizer", "exploitability", "nash_conv", "p1", "p2", "mean_solver_iterations"]],
                 "exact exploitability at the end, best first")
    exact_png = plot_exact_curves(curves, out / "rps-exact.png", "rock-paper-scissors: exact exploitability")
    report.image(exact_png, "Exact exploitability per iteration: simultaneous gradient ascent (simga) spirals away "
                 "from the equilibrium, look-ahead and CGD converge to it")
    report.heading("2. Rock-paper-scissors from samples")
    report.paragraph(noise_note(rps_spec))
    compare_section(report, rps, out, prefix="rps-", level=3)
    report.heading("3. sumo-pushers (MuJoCo)")
    report.paragraph(noise_note(sumo_spec))
    compare_section(report, sumo, out, prefix="sumo-", level=3)
    report.heading("Data")
    report.bullets(["`rps-exact.csv`, `rps-exact-curves.csv`: part 1",
                    "`rps/` and `sumo-pushers/`: results.csv (one row per optimizer x seed x seat), "
                    "leaderboard.csv, curves.csv, robustness.csv, items/*.json (a re-run skips finished items), "
                    "runs/ (checkpoints and metrics.csv of every training run)"])
    files = report.write(out)
    print(f"\ndemo finished in {time.perf_counter() - began:.0f} s; report: {files[0]} and {files[1]}")
    return 0
