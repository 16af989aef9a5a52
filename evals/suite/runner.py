"""Running a suite: :func:`run_suite` trains the victims that need it, runs every cell without a saved
result through an executor plugin (:func:`run_cell` in the worker saves each cell as it finishes, see
:mod:`.cells`), then writes the results tables."""

from __future__ import annotations

import functools
import io
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ipo_robust import host
from ipo_robust.atomic import atomic_write_bytes, atomic_write_text
from ipo_robust.checkpoint import LATEST, find_checkpoint
from ipo_robust.config import load_toml
from ipo_robust.errors import ConfigError, IpoRobustError
from ipo_robust.evals.attacks import Victim
from ipo_robust.evals.robustness import sweep
from ipo_robust.evals.suite.cells import from_json_scalar, json_scalar, pending_cells, read_cell, save_cell
from ipo_robust.evals.suite.spec import Cell, Suite, SuiteError
from ipo_robust.locking import hold
from ipo_robust.train import run_training


@dataclass(frozen=True)
class CellTask:
    """What a worker needs to run one cell (picklable)."""

    cell_id: str
    key: dict
    checkpoint: str
    out_file: str
    disabled_plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainTask:
    name: str
    config: str
    run_dir: str


@dataclass
class SuiteResult:
    """What :func:`run_suite` did: the results tables and how many cells were computed or reused."""

    suite: Suite
    results: object  # pandas.DataFrame: one row per attack cell, in cell order
    robustness: object | None  # pandas.DataFrame of the sweeps, or None
    computed: int
    reused: int
    seconds: float
    files: list[Path] = field(default_factory=list)


def run_cell(task: CellTask) -> dict:
    """Run one cell and save it to ``task.out_file`` (atomically); return the saved record.

    An exception inside the cell is returned as ``{"id", "error"}`` (nothing saved) so that the other
    cells go on; :func:`run_suite` reports it at the end.
    """
    start = time.perf_counter()
    try:
        _ensure_host(task.disabled_plugins)
        with _single_threaded_and_seeded(int(task.key["seed"])):
            if task.key["kind"] == "attack":
                rows = [_attack_row(task)]
            else:
                rows = _robustness_rows(task)
    except Exception as error:  # reported by run_suite, with the traceback saved beside the cells
        return {"id": task.cell_id, "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()}
    record = {"id": task.cell_id, "key": task.key, "rows": rows, "seconds": time.perf_counter() - start}
    save_cell(task.out_file, record)
    return record


def _attack_row(task: CellTask) -> dict:
    key = task.key
    victim = load_victim(task.checkpoint, task.key["victim_identity"])
    attack = host.create("attack", key["attack"], **key["options"])
    # the cell's seat counts from 1 (agent 1 or 2, as configs do); the attack takes the index into victim.agents
    result = attack.run(victim, seat=key["seat"] - 1, budget=key["budget"], games=key["games"], seed=key["seed"])
    row = result.as_row() if hasattr(result, "as_row") else dict(result)
    cell = {"cell": task.cell_id, "victim": key["victim"], "label": key["label"], "attack": key["attack"],
            "seat": key["seat"], "budget": key["budget"], "seed": key["seed"], "games": key["games"]}  # seat 1 or 2
    extra = {k: json_scalar(v) for k, v in row.items() if k not in cell}
    return {**cell, **extra}


def _robustness_rows(task: CellTask) -> list[dict]:
    key = task.key
    victim = load_victim(task.checkpoint, key["victim_identity"])
    table = sweep(victim, key["parameter"], list(key["values"]), games=key["games"], seed=key["seed"],
                  seat=key["seat"] - 1, opponent=key["opponent"], num_envs=key["num_envs"])
    cell = {"cell": task.cell_id, "victim": key["victim"], "label": key["label"], "parameter": key["parameter"],
            "seed": key["seed"], "seat": key["seat"]}
    return [{**cell, **{k: json_scalar(v) for k, v in row.items() if k not in cell}}
            for row in table.to_dict(orient="records")]


@functools.lru_cache(maxsize=8)
def load_victim(checkpoint: str, identity: str = ""):
    """The victim of a checkpoint, cached per process by path and identity (the checkpoint's SHA-256),
    so cells of one victim share it and a rewritten checkpoint is loaded afresh; attacks must not modify
    it."""
    return Victim.from_checkpoint(checkpoint)


def _ensure_host(disabled: tuple[str, ...]) -> None:
    """A worker started fresh (spawn, Ray) builds its host without the CLI's --disable-plugin: apply it."""
    if disabled and not set(disabled) <= host.get_host().disabled:
        host.reload(disabled=disabled)


class _single_threaded_and_seeded:
    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        import numpy as np
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.rng = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        return self

    def __exit__(self, *exc):
        import numpy as np
        import torch

        torch.set_num_threads(self.threads)
        random.setstate(self.rng[0])
        np.random.set_state(self.rng[1])
        torch.random.set_rng_state(self.rng[2])
        return False


def train_victim(task: TrainTask) -> str:
    """Train one victim (resuming a killed training) and return its checkpoint path."""
    run_dir = Path(task.run_dir)
    # a victim's run without a checkpoint is this suite's own unfinished work: start it over
    result = run_training(load_toml(task.config), run_dir, progress=False, resume=(run_dir / LATEST).exists(),
                          overwrite=True)
    return str(result.checkpoint)


def make_executor(suite: Suite):
    factory = host.resolve("executor", suite.executor)
    try:
        return factory(**suite.executor_options)
    except IpoRobustError as error:
        raise ConfigError(f"suite.executor_options: {error}") from None
    except TypeError as error:
        raise ConfigError(f"suite.executor_options: executor {suite.executor!r} does not accept "
                          f"{sorted(suite.executor_options)} ({error})") from None


def run_suite(suite: Suite, executor=None, progress: bool = False,
              on_cell: Callable[[Cell, dict], None] | None = None) -> SuiteResult:
    """Run every cell without a saved result, then write the results tables.

    :param executor: an executor object (default: the suite's, built from its plugin and options).
    :param progress: show a progress bar (cells done / total) on stderr.
    :param on_cell: called with (cell, record) as each cell's result arrives.
    :raises SuiteError: when cells raised; the others are saved and the error files name the failures.
    :raises DirectoryInUseError: when another command is writing ``suite.out``.
    """
    with hold(suite.out, what="suite directory", option="suite.out"):
        return _run_suite(suite, executor, progress, on_cell)


def _run_suite(suite: Suite, executor, progress: bool, on_cell) -> SuiteResult:
    import pandas as pd

    start = time.perf_counter()
    executor = make_executor(suite) if executor is None else executor
    cells = suite.cells()
    todo = pending_cells(suite, cells)
    bar = _progress_bar(len(cells), len(cells) - len(todo), suite.name) if progress else None
    disabled = tuple(sorted(host.get_host().disabled))
    try:
        _train_missing_victims(suite, {cell.victim for cell in todo}, executor)
        tasks = [CellTask(cell.id, cell.key, str(suite.victim(cell.victim).checkpoint),
                          str(suite.cell_path(cell)), disabled) for cell in todo]
        failures = []
        for cell, record in zip(todo, executor.map(run_cell, tasks), strict=True):
            if "error" in record:
                failures.append((cell, record))
                atomic_write_text(suite.out / "errors" / f"{cell.id}.txt",
                                  f"{cell.describe()}\n\n{record.get('traceback', record['error'])}")
            elif read_cell(suite, cell) is None:  # a worker on another machine: save it here
                save_cell(suite.cell_path(cell), record)
            if bar is not None:
                bar.update(1)
            if on_cell is not None:
                on_cell(cell, record)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        cell, record = failures[0]
        raise SuiteError(f"{len(failures)} of {len(cells)} cells failed (first: {cell.describe()}: "
                         f"{record['error']}); tracebacks in {suite.out / 'errors'}; the finished cells are "
                         "saved and a re-run computes only the missing ones")
    for path in (suite.out / "errors").glob("*.txt"):
        path.unlink(missing_ok=True)

    attack_rows, sweep_rows = [], []
    for cell in cells:
        record = read_cell(suite, cell)
        if record is None:
            raise SuiteError(f"cell {cell.id} ({cell.describe()}) has no saved result after running")
        rows = [{k: from_json_scalar(v) for k, v in row.items()} for row in record["rows"]]
        (attack_rows if cell.kind == "attack" else sweep_rows).extend(rows)
    results = pd.DataFrame(attack_rows)
    files = write_table(results, suite.out / "results")
    sweeps = None
    if suite.robustness:
        sweeps = pd.DataFrame(sweep_rows)
        files += write_table(sweeps, suite.out / "robustness")
    atomic_write_text(suite.out / "suite.json", json.dumps(
        {"name": suite.name, "description": suite.description, "spec": str(suite.spec_path),
         "cells": [{"id": c.id, **c.key} for c in cells]}, indent=1) + "\n")
    return SuiteResult(suite, results, sweeps, computed=len(todo), reused=len(cells) - len(todo),
                       seconds=time.perf_counter() - start, files=files)


def _train_missing_victims(suite: Suite, needed: set[str], executor) -> None:
    tasks = []
    for victim in suite.victims:
        if victim.train is None or victim.name not in needed:
            continue
        done = victim.checkpoint / "suite-victim.json"
        try:
            if json.loads(done.read_text(encoding="utf-8")).get("identity") == victim.identity:
                continue
        except (OSError, ValueError):
            pass
        tasks.append((victim, TrainTask(victim.name, str(victim.train), str(victim.checkpoint))))
    if not tasks:
        return
    print(f"training {len(tasks)} victim(s): {', '.join(v.name for v, _ in tasks)}", file=sys.stderr)
    for (victim, _), checkpoint in zip(tasks, executor.map(train_victim, [t for _, t in tasks]), strict=True):
        find_checkpoint(checkpoint)
        atomic_write_text(victim.checkpoint / "suite-victim.json",
                          json.dumps({"identity": victim.identity, "checkpoint": str(checkpoint)}) + "\n")


def write_table(table, stem: Path) -> list[Path]:
    """``stem.csv`` and ``stem.parquet``, each written atomically."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return [atomic_write_text(stem.with_suffix(".csv"), table.to_csv(index=False)),
            atomic_write_bytes(stem.with_suffix(".parquet"), buffer.getvalue())]


def _progress_bar(total: int, done: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=name, unit="cell", file=sys.stderr, dynamic_ncols=True,
                disable=None)
