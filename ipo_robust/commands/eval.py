"""``ipo-robust eval SPEC``: run an evaluation suite (victims x attacks x budgets x seeds x seats).

The spec is validated completely before any work, by ``--dry-run`` as by a run: a bad key, path, attack
name or value, an attack that cannot attack a victim's env, or a ``suite.out`` that cannot be written exits
2 with one line. Finished cells are saved one by one under ``OUT/cells/`` and skipped on a re-run, so a
killed suite resumes where it stopped. Seats count from 1, as configs count agents: seat 1 is the victim's
agent 1, seat 2 its agent 2, in the spec, the printed tables and the results. See ``docs/suites.md``.
"""

from __future__ import annotations

import sys

from ipo_robust.commands.common import check_output_dir, format_table

EXIT_CELLS_FAILED = 1


def add_eval_command(commands) -> None:
    evaluate = commands.add_parser(
        "eval", help="run an evaluation suite (victims x attacks x budgets x seeds x seats), resumably",
        description="Run the cells of a suite spec (TOML) that have no saved result yet, through an executor "
        "plugin, then write OUT/results.csv and OUT/results.parquet and print a summary.",
    )
    evaluate.add_argument("spec", metavar="SPEC", help="suite spec (TOML), e.g. examples/suites/rps.toml")
    evaluate.add_argument("--executor", metavar="NAME",
                          help="executor plugin instead of the spec's suite.executor (serial, local, ray, ...)")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a spec value by its dotted key, e.g. grid.games=50, "
                          "suite.executor_options.max_workers=2, attacks.ppo-adversary.options.lr=0.1 "
                          "(repeatable; values are read as JSON)")
    evaluate.add_argument("--dry-run", action="store_true",
                          help="validate the spec and list its cells (done or to run); run nothing")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=run_eval)


def run_eval(args) -> int:
    # torch and pandas are heavy: the CLI's --help must start fast, so the suite loads only when it runs
    from ipo_robust.evals.suite import SuiteError, load_suite, make_executor, pending_cells, run_suite

    suite = load_suite(args.spec, overrides=args.set, executor=args.executor)
    check_output_dir(suite.out, "suite.out")  # results, cells and trained victims go there
    cells = suite.cells()
    todo = {cell.id for cell in pending_cells(suite, cells)}
    if args.dry_run:
        print(f"suite {suite.name}: {len(cells)} cells ({len(cells) - len(todo)} done, {len(todo)} to run), "
              f"executor {suite.executor}, out {suite.out}")
        rows = [("#", "CELL", "STATUS", "KIND", "VICTIM", "ATTACK", "BUDGET", "SEED", "SEAT", "GAMES")]
        for cell in cells:
            key = cell.key
            rows.append((str(cell.index), cell.id, "to run" if cell.id in todo else "done", cell.kind,
                         cell.victim, key["label"], str(key.get("budget", "-")), str(key["seed"]),
                         str(key["seat"]), str(key["games"])))
        print(format_table(rows))
        return 0
    executor = make_executor(suite)  # bad executor options fail before any work
    print(f"suite {suite.name}: {len(cells)} cells, {len(cells) - len(todo)} already done; "
          f"executor {suite.executor}", file=sys.stderr)
    try:
        result = run_suite(suite, executor=executor, progress=not args.no_progress)
    except SuiteError as error:
        print(f"ipo-robust: {error}", file=sys.stderr)
        return EXIT_CELLS_FAILED
    print(summary_table(result.results))
    if result.robustness is not None and len(result.robustness):
        print()
        print(robustness_table(result.robustness))
    print(f"\n{result.computed} cells computed, {result.reused} reused, {result.seconds:.1f} s; wrote "
          + ", ".join(str(path) for path in result.files))
    return 0


def summary_table(results) -> str:
    """Per victim, attack and budget: cells, mean win rate and mean exploitability over seeds and seats."""
    if results is None or not len(results):
        return "(no attack cells)"
    rows = [("VICTIM", "ATTACK", "BUDGET", "CELLS", "WIN RATE", "ATTACKER RETURN", "EXPLOITABILITY")]
    for (victim, label, budget), group in results.groupby(["victim", "label", "budget"], sort=False):
        rows.append((victim, label, str(budget), str(len(group)), _mean(group, "win_rate"),
                     _mean(group, "attacker_return"), _mean(group, "exploitability")))
    return format_table(rows)


def robustness_table(table) -> str:
    """Per victim and sweep (averaged over seeds and seats): the worst return and where it occurs, the
    mean, and the average over the parameter range (:func:`ipo_robust.evals.robustness.summarize`)."""
    from ipo_robust.evals.robustness import summarize  # torch is heavy: loaded when a table is printed

    rows = [("VICTIM", "SWEEP", "PARAMETER", "POINTS", "WORST RETURN", "AT", "MEAN RETURN", "AUC RETURN")]
    for (victim, label), group in table.groupby(["victim", "label"], sort=False):
        curve = group.groupby("value", as_index=False).agg(parameter=("parameter", "first"), **{
            "return": ("return", "mean")})
        summary = summarize(curve)
        nan = float("nan")
        rows.append((victim, label, summary["parameter"], str(summary["points"]),
                     f"{summary.get('worst_return', nan):.3g}", f"{summary.get('worst_value_return', nan):g}",
                     f"{summary.get('mean_return', nan):.3g}", f"{summary.get('auc_return', nan):.3g}"))
    return format_table(rows)


def _mean(group, column: str) -> str:
    if column not in group.columns:
        return "-"
    try:
        return f"{float(group[column].astype(float).mean()):.3g}"
    except (TypeError, ValueError):
        return "-"
