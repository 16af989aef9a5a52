"""Evaluation suites: a TOML spec of victims x attacks x budgets x seeds x seats, run as resumable cells.

A suite spec (see ``docs/suites.md`` and ``examples/suites/rps.toml``)::

    [suite]
    name = "rps-smoke"
    executor = "local"                 # any registered executor; options in [suite.executor_options]
    out = "results/rps-smoke"          # relative to the spec file's folder unless absolute

    [[victims]]
    name = "pure-rock"
    checkpoint = "victims/pure-rock"   # or: train = "configs/x.toml" (trained once, into out/victims/)

    [[attacks]]
    name = "best-response"             # an attack plugin; label = "..." tells two entries apart
    seats = [1]                        # any [grid] key can be overridden per attack

    [[attacks]]
    name = "ppo-adversary"
    options = { lr = 0.05 }

    [grid]
    budgets = [2000, 8000]
    seeds = [0, 1]
    seats = [1, 2]                     # the victim's agent 1 and agent 2 (the attacker plays the other)
    games = 200

    [[robustness]]                     # optional: ipo_robust.evals.robustness.sweep per victim/seed/seat
    parameter = "alpha"
    values = [0.0, 0.5, 1.0]

:func:`load_suite` reads and validates the whole spec before any work (a bad key, path, name or value
raises :class:`~ipo_robust.errors.ConfigError` naming the key) and expands it into :class:`Cell` s,
each identified by a hash of its canonical JSON. :func:`run_suite` runs the cells that have no result
yet through an executor plugin; every cell writes ``out/cells/<id>.json`` atomically the moment it
finishes (in the worker), so a killed suite resumes where it stopped and recomputes nothing that
finished. At the end the rows, in cell order, go to ``out/results.csv`` and ``out/results.parquet``
(and ``out/robustness.*`` for sweeps).

A cell's result depends only on its spec: the attack gets the cell's seed, the global RNGs are seeded
from it and torch runs single-threaded inside the cell.

Where each part lives: the schema (the specs, :class:`Cell`, :class:`Suite`) in :mod:`.spec`, reading
and validating a spec file in :mod:`.validation`, the cell store (one atomic JSON file per finished
cell) in :mod:`.cells`, running in :mod:`.runner`. Every name is importable from
``ipo_robust.evals.suite`` itself.
"""

from __future__ import annotations

from ipo_robust.evals.suite.cells import pending_cells, read_cell, save_cell
from ipo_robust.evals.suite.runner import (
    CellTask,
    SuiteResult,
    TrainTask,
    load_victim,
    make_executor,
    run_cell,
    run_suite,
    train_victim,
    write_table,
)
from ipo_robust.evals.suite.spec import (
    CELL_FORMAT,
    DEFAULT_EXECUTOR,
    DEFAULT_GAMES,
    DEFAULT_SWEEP_ENVS,
    SEATS,
    AttackSpec,
    Cell,
    RobustnessSpec,
    Suite,
    SuiteError,
    VictimSpec,
    canonical_json,
    cell_id,
)
from ipo_robust.evals.suite.validation import apply_override, load_suite, suite_from_dict

__all__ = ["CELL_FORMAT", "DEFAULT_EXECUTOR", "DEFAULT_GAMES", "DEFAULT_SWEEP_ENVS", "SEATS", "AttackSpec", "Cell",
           "CellTask", "RobustnessSpec", "Suite", "SuiteError", "SuiteResult", "TrainTask", "VictimSpec",
           "apply_override", "canonical_json", "cell_id", "load_suite", "load_victim", "make_executor",
           "pending_cells", "read_cell", "run_cell", "run_suite", "save_cell", "suite_from_dict", "train_victim",
           "write_table"]
