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
    seats = [0]                        # any [grid] key can be overridden per attack

    [[attacks]]
    name = "ppo-adversary"
    options = { lr = 0.05 }

    [grid]
    budgets = [2000, 8000]
    seeds = [0, 1]
    seats = [0, 1]
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
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import json
import math
import os
import random
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ipo_robust import host
from ipo_robust.atomic import atomic_write_bytes, atomic_write_text
from ipo_robust.errors import ConfigError, IpoRobustError, UnknownNameError

CELL_FORMAT = 1
DEFAULT_EXECUTOR = "local"
DEFAULT_GAMES = 100
SEATS = (0, 1)

_TOP_KEYS = ("suite", "victims", "attacks", "grid", "robustness")
_SUITE_KEYS = ("name", "description", "executor", "executor_options", "out")
_VICTIM_KEYS = ("name", "checkpoint", "train")
_GRID_KEYS = ("budgets", "seeds", "seats", "games")
_ATTACK_KEYS = ("name", "label", "options", *_GRID_KEYS)
_ROBUSTNESS_KEYS = ("label", "victims", "parameter", "values", "opponent", "num_envs", "games", "seeds", "seats")
DEFAULT_SWEEP_ENVS = 16
_OPPONENTS = ("victim", "random")


class SuiteError(IpoRobustError):
    """Some cells of a suite raised; the finished ones are saved and a re-run retries the others."""


# ------------------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class VictimSpec:
    """A victim: a checkpoint, or a train config whose checkpoint the suite produces first."""

    name: str
    checkpoint: Path | None = None  # absolute; for a train victim, where its checkpoint will be
    train: Path | None = None       # absolute path of the train config (TOML)
    identity: str = ""              # what the victim is: the checkpoint's sha256 or the config's hash


@dataclass(frozen=True)
class AttackSpec:
    name: str
    label: str
    options: dict
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    seats: tuple[int, ...]
    games: int


@dataclass(frozen=True)
class RobustnessSpec:
    label: str
    victims: tuple[str, ...]
    parameter: str
    values: tuple
    opponent: str
    num_envs: int
    games: int
    seeds: tuple[int, ...]
    seats: tuple[int, ...]


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``key`` is its canonical description (what its id hashes)."""

    index: int
    kind: str  # "attack" | "robustness"
    victim: str
    key: dict = field(compare=False)

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def describe(self) -> str:
        key = self.key
        if self.kind == "attack":
            return (f"victim={key['victim']} attack={key['label']} budget={key['budget']} seed={key['seed']} "
                    f"seat={key['seat']}")
        return f"victim={key['victim']} sweep={key['label']} seed={key['seed']} seat={key['seat']}"


def cell_id(key: dict) -> str:
    """A stable id: the first 16 hex digits of the SHA-256 of the key's canonical JSON."""
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()[:16]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass
class Suite:
    """A validated suite spec, ready to expand and run."""

    name: str
    spec_path: Path | None
    out: Path
    executor: str
    executor_options: dict
    victims: tuple[VictimSpec, ...]
    attacks: tuple[AttackSpec, ...]
    robustness: tuple[RobustnessSpec, ...]
    description: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    def victim(self, name: str) -> VictimSpec:
        return next(v for v in self.victims if v.name == name)

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order: attack cells (victim, attack, budget, seed, seat), then sweeps."""
        cells: list[Cell] = []
        for victim in self.victims:
            for attack in self.attacks:
                for budget in attack.budgets:
                    for seed in attack.seeds:
                        for seat in attack.seats:
                            key = {"format": CELL_FORMAT, "kind": "attack", "victim": victim.name,
                                   "victim_identity": victim.identity, "attack": attack.name,
                                   "label": attack.label, "options": attack.options, "budget": budget,
                                   "games": attack.games, "seed": seed, "seat": seat}
                            cells.append(Cell(len(cells), "attack", victim.name, key))
        for sweep in self.robustness:
            for name in sweep.victims:
                victim = self.victim(name)
                for seed in sweep.seeds:
                    for seat in sweep.seats:
                        key = {"format": CELL_FORMAT, "kind": "robustness", "victim": victim.name,
                               "victim_identity": victim.identity, "label": sweep.label,
                               "parameter": sweep.parameter, "values": list(sweep.values),
                               "opponent": sweep.opponent, "num_envs": sweep.num_envs, "games": sweep.games,
                               "seed": seed, "seat": seat}
                        cells.append(Cell(len(cells), "robustness", victim.name, key))
        return cells

    @property
    def cells_dir(self) -> Path:
        return self.out / "cells"

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.id}.json"


def load_suite(path: str | os.PathLike, overrides: Sequence[str] = (), executor: str | None = None) -> Suite:
    """Read, override (``["grid.games=50", ...]``) and validate a suite spec; nothing runs yet.

    :param executor: an executor name that replaces ``suite.executor`` (its options are kept only when
        the spec names the same executor).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read suite spec {str(path)!r}: {error.strerror or error}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"suite spec {str(path)!r} is not valid TOML: {error}") from None
    for item in overrides:
        apply_override(raw, item)
    if executor is not None:
        section = raw.setdefault("suite", {})
        if isinstance(section, dict):
            if section.get("executor", DEFAULT_EXECUTOR) != executor:
                section.pop("executor_options", None)
            section["executor"] = executor
    return suite_from_dict(raw, base=path.resolve().parent, spec_path=path, default_name=path.stem)


def apply_override(raw: dict, item: str) -> None:
    """``"grid.games=50"`` sets ``raw["grid"]["games"] = 50``; in a list of tables a segment is an
    index (``attacks.0.options.lr=0.1``) or an entry's label/name (``attacks.ppo-adversary.options.lr``).
    The value is read as JSON (numbers, lists, true/false), ``none`` as None, else as a string."""
    from ipo_robust.cli import parse_value

    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set expects KEY=VALUE with a dotted key (e.g. grid.games=50), got {item!r}")
    node = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = parse_value(value)
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = parse_value(value)
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth])} is a value, not a table")


def _list_index(entries: list, part: str, where: str) -> int:
    if part.isdigit():
        if int(part) >= len(entries):
            raise ConfigError(f"--set {where}: there are only {len(entries)} entries")
        return int(part)
    matches = [i for i, entry in enumerate(entries)
               if isinstance(entry, dict) and part in (entry.get("label"), entry.get("name"))]
    if len(matches) != 1:
        known = [str(e.get("label", e.get("name"))) for e in entries if isinstance(e, dict)]
        if matches:
            raise ConfigError(f"--set {where}: {part!r} names {len(matches)} entries; use an index")
        raise UnknownNameError(f"entry of {where.rsplit('.', 1)[0]}", part, known)
    return matches[0]


def suite_from_dict(raw: dict, base: str | os.PathLike = ".", spec_path: str | os.PathLike | None = None,
                    default_name: str = "suite") -> Suite:
    """Validate a parsed spec. Relative paths are taken from ``base`` (the spec file's folder)."""
    base = Path(base).resolve()
    where = f"suite spec {str(spec_path)!r}: " if spec_path is not None else "suite spec: "

    def fail(message: str):
        raise ConfigError(where + message)

    _check_keys(raw, _TOP_KEYS, "", fail)
    section = _table(raw.get("suite", {}), "suite", fail)
    _check_keys(section, _SUITE_KEYS, "suite.", fail)
    name = _string(section.get("name", default_name), "suite.name", fail)
    description = _string(section.get("description", ""), "suite.description", fail, allow_empty=True)
    executor = _string(section.get("executor", DEFAULT_EXECUTOR), "suite.executor", fail)
    try:
        host.resolve("executor", executor)
    except UnknownNameError as error:
        fail(f"suite.executor: {error}")
    executor_options = _table(section.get("executor_options", {}), "suite.executor_options", fail)
    out = Path(_string(section.get("out", f"results/{name}"), "suite.out", fail))
    out = out if out.is_absolute() else base / out

    grid = _table(raw.get("grid", {}), "grid", fail)
    _check_keys(grid, _GRID_KEYS, "grid.", fail)
    defaults = {
        "budgets": _positive_ints(grid["budgets"], "grid.budgets", fail) if "budgets" in grid else None,
        "seeds": _seeds(grid.get("seeds", [0]), "grid.seeds", fail),
        "seats": _seats(grid.get("seats", list(SEATS)), "grid.seats", fail),
        "games": _positive_int(grid.get("games", DEFAULT_GAMES), "grid.games", fail),
    }

    victims = []
    for i, entry in enumerate(_tables(raw.get("victims", []), "victims", fail)):
        key = f"victims[{i}]"
        _check_keys(entry, _VICTIM_KEYS, key + ".", fail)
        if "name" not in entry:
            fail(f"{key}.name is missing: every victim needs a name")
        vname = _label(entry["name"], f"{key}.name", fail)
        key = f"victims[{i}] ({vname!r})"
        if any(v.name == vname for v in victims):
            fail(f"{key}.name: two victims are named {vname!r}")
        if ("checkpoint" in entry) == ("train" in entry):
            fail(f"{key}: give exactly one of 'checkpoint' (a saved victim) or 'train' (a train config)")
        if "checkpoint" in entry:
            victims.append(_checkpoint_victim(vname, entry["checkpoint"], base, f"{key}.checkpoint", fail))
        else:
            victims.append(_train_victim(vname, entry["train"], base, out, f"{key}.train", fail))

    attacks = []
    for i, entry in enumerate(_tables(raw.get("attacks", []), "attacks", fail)):
        key = f"attacks[{i}]"
        _check_keys(entry, _ATTACK_KEYS, key + ".", fail)
        if "name" not in entry:
            fail(f"{key}.name is missing: name an attack plugin (ipo-robust plugins lists them)")
        aname = _string(entry["name"], f"{key}.name", fail)
        try:
            factory = host.resolve("attack", aname)
        except UnknownNameError as error:
            fail(f"{key}.name: {error}")
        label = _label(entry.get("label", aname), f"{key}.label", fail)
        key = f"attacks[{i}] ({label!r})"
        if any(a.label == label for a in attacks):
            fail(f"{key}: two attacks are labelled {label!r}; give one a distinct 'label'")
        options = _table(entry.get("options", {}), f"{key}.options", fail)
        _check_json(options, f"{key}.options", fail)
        try:
            factory(**options)  # bad options fail here, before any work
        except IpoRobustError as error:
            fail(f"{key}.options: {error}")
        except TypeError as error:
            fail(f"{key}.options: attack {aname!r} does not accept these options ({error})")
        budgets = _field(entry, "budgets", key, _positive_ints, defaults["budgets"], fail)
        if budgets is None:
            fail(f"grid.budgets is missing (needed by {key}): give a list of positive integers")
        attacks.append(AttackSpec(
            name=aname, label=label, options=options, budgets=budgets,
            seeds=_field(entry, "seeds", key, _seeds, defaults["seeds"], fail),
            seats=_field(entry, "seats", key, _seats, defaults["seats"], fail),
            games=_field(entry, "games", key, _positive_int, defaults["games"], fail),
        ))

    sweeps = []
    for i, entry in enumerate(_tables(raw.get("robustness", []), "robustness", fail)):
        key = f"robustness[{i}]"
        _check_keys(entry, _ROBUSTNESS_KEYS, key + ".", fail)
        if "parameter" not in entry:
            fail(f"{key}.parameter is missing: name the parameter to sweep (mass, friction, gear or force)")
        parameter = _string(entry["parameter"], f"{key}.parameter", fail)
        robustness = _robustness_module(fail)
        if parameter not in robustness.PARAMETERS:
            fail(f"{key}.parameter: {UnknownNameError('sweep parameter', parameter, list(robustness.PARAMETERS))}")
        label = _label(entry.get("label", parameter), f"{key}.label", fail)
        key = f"robustness[{i}] ({label!r})"
        if any(s.label == label for s in sweeps):
            fail(f"{key}: two sweeps are labelled {label!r}; give one a distinct 'label'")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list) or not values:
                fail(f"{key}.values must be a non-empty list of numbers, got {_show(values)}")
            for j, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    fail(f"{key}.values[{j}] must be a finite number, got {_show(value)}")
                low, high = (0.0, 1.0) if parameter == "force" else (0.0, math.inf)
                if not low <= value <= high:
                    fail(f"{key}.values[{j}] must be in [{low:g}, {high:g}] for a {parameter} sweep, got {value!r}")
        else:
            values = [float(v) for v in robustness.default_values(parameter)]
        opponent = _string(entry.get("opponent", "victim"), f"{key}.opponent", fail)
        if opponent not in _OPPONENTS:
            fail(f"{key}.opponent must be 'victim' (the pair's other agent) or 'random', got {opponent!r}")
        names = entry.get("victims", [v.name for v in victims])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            fail(f"{key}.victims must be a non-empty list of victim names, got {_show(names)}")
        for n in names:
            if not any(v.name == n for v in victims):
                fail(f"{key}.victims: {UnknownNameError('victim', n, [v.name for v in victims])}")
        sweeps.append(RobustnessSpec(
            label=label, victims=tuple(names), parameter=parameter, values=tuple(values), opponent=opponent,
            num_envs=_positive_int(entry.get("num_envs", DEFAULT_SWEEP_ENVS), f"{key}.num_envs", fail),
            games=_field(entry, "games", key, _positive_int, defaults["games"], fail),
            seeds=_field(entry, "seeds", key, _seeds, defaults["seeds"], fail),
            seats=_field(entry, "seats", key, _seats, (0,), fail),
        ))

    if not victims:
        fail("no [[victims]]: give at least one victim (name and checkpoint or train)")
    if not attacks and not sweeps:
        fail("nothing to run: give at least one [[attacks]] (or [[robustness]]) entry")
    return Suite(name=name, spec_path=Path(spec_path) if spec_path is not None else None, out=out,
                 executor=executor, executor_options=executor_options, victims=tuple(victims),
                 attacks=tuple(attacks), robustness=tuple(sweeps), description=description, raw=raw)


def _field(entry: dict, field: str, key: str, parse, default, fail):
    """The entry's own value for `field`, parsed and checked, or the grid-wide default."""
    return parse(entry[field], f"{key}.{field}", fail) if field in entry else default


def _checkpoint_victim(name: str, value, base: Path, key: str, fail) -> VictimSpec:
    from ipo_robust.checkpoint import load_checkpoint

    text = _string(value, key, fail)
    path = Path(text) if Path(text).is_absolute() else base / text
    if not path.exists():
        fail(f"{key}: no checkpoint at {str(path)!r} (the path does not exist)")
    try:
        checkpoint = load_checkpoint(path)
        checkpoint.load_agents()
    except IpoRobustError as error:
        fail(f"{key}: {error}")
    return VictimSpec(name=name, checkpoint=checkpoint.path, identity=str(checkpoint.meta.get("sha256", "")))


def _train_victim(name: str, value, base: Path, out: Path, key: str, fail) -> VictimSpec:
    text = _string(value, key, fail)
    path = Path(text) if Path(text).is_absolute() else base / text
    if not path.is_file():
        fail(f"{key}: no train config at {str(path)!r} (the file does not exist)")
    if _run_training() is None:
        fail(f"{key}: training victims needs ipo_robust.train.run_training, which this version lacks; "
             "train the victim yourself and give its 'checkpoint'")
    from ipo_robust.config import load_toml, validate

    try:
        config = validate(load_toml(path))
    except IpoRobustError as error:
        fail(f"{key}: {error}")
    # what the victim is: the resolved config, less the keys that do not change the trained agents
    run = {k: v for k, v in config.get("run", {}).items() if k not in ("out", "checkpoint_every", "keep")}
    identity = "train:" + hashlib.sha256(canonical_json({**config, "run": run}).encode("utf-8")).hexdigest()
    run_dir = out / "victims" / f"{name}-{identity[6:18]}"  # another config trains into another folder
    return VictimSpec(name=name, checkpoint=run_dir, train=path.resolve(), identity=identity)


def _run_training() -> Callable | None:
    try:
        from ipo_robust.train import run_training
    except ImportError:
        return None
    return run_training


def _robustness_module(fail):
    try:
        from ipo_robust.evals import robustness
    except ImportError as error:
        fail(f"robustness: [[robustness]] sweeps need ipo_robust.evals.robustness ({error})")
    return robustness


# -- small validators: each failure names the key and the value --------------------------------
def _check_keys(table: dict, known: Sequence[str], prefix: str, fail) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {prefix + close[0]!r}?" if close else f"; known: {', '.join(known)}"
            fail(f"unknown key {prefix + str(key)!r}{hint}")


def _table(value, key: str, fail) -> dict:
    if not isinstance(value, dict):
        fail(f"{key} must be a table, got {_show(value)}")
    return value


def _tables(value, key: str, fail) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        fail(f"{key} must be an array of tables ([[{key}]] entries), got {_show(value)}")
    return value


def _string(value, key: str, fail, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        fail(f"{key} must be a non-empty string, got {_show(value)}")
    return value


def _label(value, key: str, fail) -> str:
    text = _string(value, key, fail)
    if "/" in text or "\\" in text or text.startswith(".") or text != text.strip():
        fail(f"{key} {text!r} must not contain slashes, start with a dot or have surrounding spaces")
    return text


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value, key: str, fail) -> int:
    if not _is_int(value) or value < 1:
        fail(f"{key} must be a positive integer, got {_show(value)}")
    return value


def _int_list(value, key: str, fail) -> list:
    if not isinstance(value, list) or not value:
        fail(f"{key} must be a non-empty list of integers, got {_show(value)}")
    if len(set(map(repr, value))) != len(value):
        fail(f"{key} lists a value twice: {_show(value)}")
    return value


def _positive_ints(value, key: str, fail) -> tuple[int, ...]:
    for i, item in enumerate(_int_list(value, key, fail)):
        _positive_int(item, f"{key}[{i}]", fail)
    return tuple(value)


def _seeds(value, key: str, fail) -> tuple[int, ...]:
    for i, item in enumerate(_int_list(value, key, fail)):
        if not _is_int(item) or item < 0:
            fail(f"{key}[{i}] must be an integer >= 0, got {_show(item)}")
    return tuple(value)


def _seats(value, key: str, fail) -> tuple[int, ...]:
    for i, item in enumerate(_int_list(value, key, fail)):
        if not _is_int(item) or item not in SEATS:
            fail(f"{key}[{i}] must be 0 or 1 (the seat the attacker takes), got {_show(item)}")
    return tuple(value)


def _check_json(value, key: str, fail) -> None:
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        fail(f"{key} must hold only numbers, strings, booleans, lists and tables (no dates, no nan)")


def _show(value) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, str) else repr(value)


# ---------------------------------------------------------------------------------------- running
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
    attack = host.resolve("attack", key["attack"])(**key["options"])
    result = attack.run(victim, seat=key["seat"], budget=key["budget"], games=key["games"], seed=key["seed"])
    row = result.as_row() if hasattr(result, "as_row") else dict(result)
    cell = {"cell": task.cell_id, "victim": key["victim"], "label": key["label"], "attack": key["attack"],
            "seat": key["seat"], "budget": key["budget"], "seed": key["seed"], "games": key["games"]}
    extra = {k: _scalar(v) for k, v in row.items() if k not in cell}
    return {**cell, **extra}


def _robustness_rows(task: CellTask) -> list[dict]:
    from ipo_robust.evals.robustness import sweep

    key = task.key
    victim = load_victim(task.checkpoint, key["victim_identity"])
    table = sweep(victim, key["parameter"], list(key["values"]), games=key["games"], seed=key["seed"],
                  seat=key["seat"], opponent=key["opponent"], num_envs=key["num_envs"])
    cell = {"cell": task.cell_id, "victim": key["victim"], "label": key["label"], "parameter": key["parameter"],
            "seed": key["seed"], "seat": key["seat"]}
    return [{**cell, **{k: _scalar(v) for k, v in row.items() if k not in cell}}
            for row in table.to_dict(orient="records")]


def _scalar(value):
    """JSON-safe scalars (numpy and torch scalars to Python; nan/inf as strings JSON can hold)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _unscalar(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


@functools.lru_cache(maxsize=8)
def load_victim(checkpoint: str, identity: str = ""):
    """The victim of a checkpoint, cached per process by path and identity (the checkpoint's SHA-256),
    so cells of one victim share it and a rewritten checkpoint is loaded afresh; attacks must not modify
    it."""
    from ipo_robust.evals.attacks import Victim

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


def save_cell(path: str | os.PathLike, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")  # row columns keep their order


def read_cell(suite: Suite, cell: Cell) -> dict | None:
    """The saved record of a finished cell, or None (missing, unreadable, or for another spec)."""
    path = suite.cell_path(cell)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("key") != cell.key or not isinstance(record.get("rows"), list):
        return None
    return record


def train_victim(task: TrainTask) -> str:
    """Train one victim (resuming a killed training) and return its checkpoint path."""
    from ipo_robust.checkpoint import LATEST
    from ipo_robust.config import load_toml

    run_training = _run_training()
    run_dir = Path(task.run_dir)
    result = run_training(load_toml(task.config), run_dir, progress=False, resume=(run_dir / LATEST).exists())
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


def pending_cells(suite: Suite, cells: Iterable[Cell] | None = None) -> list[Cell]:
    """The cells without a saved result."""
    return [cell for cell in (suite.cells() if cells is None else cells) if read_cell(suite, cell) is None]


def run_suite(suite: Suite, executor=None, progress: bool = False,
              on_cell: Callable[[Cell, dict], None] | None = None) -> SuiteResult:
    """Run every cell without a saved result, then write the results tables.

    :param executor: an executor object (default: the suite's, built from its plugin and options).
    :param progress: show a progress bar (cells done / total) on stderr.
    :param on_cell: called with (cell, record) as each cell's result arrives.
    :raises SuiteError: when cells raised; the others are saved and the error files name the failures.
    """
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
        rows = [{k: _unscalar(v) for k, v in row.items()} for row in record["rows"]]
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
    from ipo_robust.checkpoint import find_checkpoint

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
