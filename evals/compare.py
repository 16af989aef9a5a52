"""Compare training methods by how exploitable the agents they train are: train x attack x leaderboard.

A comparison's entries are optimizers (``--optimizers``: a self-play config per optimizer, built from the
family defaults) and whole training configs (``--config LABEL=PATH``: any schedule, e.g. IPO-RARL or RARL
with a learned perturbation), each named by its label in the ``optimizer`` column of every table. For every
entry and seed (a *work item*) :func:`run_item` trains a pair (:func:`ipo_robust.train.run_training`),
attacks each agent of the pair (seat 1, then seat 2) with the same attack and budget, and, for MuJoCo envs,
sweeps each agent's robustness to its body masses (:func:`ipo_robust.evals.robustness.sweep`; by default
against a uniformly random opponent, a yardstick that is the same for every entry, where the pair's own
partner differs). Every entry trains the same number of env steps (env copies x steps x iterations x
updates per iteration; :func:`~ipo_robust.evals.compare_spec.entry_facts`), whatever its schedule.

Every pair is judged in the same *plain game* (:func:`~ipo_robust.evals.plain_game.plain_victim`): the env
with the entries' shared options, nobody holding the superpower, dense shaping off in every evaluation game.
An agent trained as a superpower holder has perturbation entries appended to its actions; in the plain game
it plays with its own action entries only (the env would ignore the others), so attackers, the masked-victim
control, the robustness sweep and the strength round robin meet every method's agents in one game with one
action space.

The attack depends on the environment's family (:func:`env_family`):

- matrix games and iterated matrix games: ``best-response``, the exact best response. Per seat it
  gives best-response value minus the value of the victim's own partner; the mean over both seats is
  NashConv / 2, the exact exploitability (:mod:`ipo_robust.evals.exploitability`).
- everything else (MuJoCo, OpenSpiel, ...): ``ppo-adversary`` (Gleave et al. 2020), a PPO attacker
  trained against the frozen victim. Its exploitability is a **lower bound**: a stronger attacker
  could only find more.

Exploitability is in game units: per seat, the attacker's mean return against the frozen victim minus
the mean return the victim's own partner gets in that seat (for the exact best response, NashConv / 2
over both seats). A trained attack's budget is set as a multiple of the victims' training env steps
(``--attack-budget 1x``; ``--attack-budgets`` evaluates a curve from one attacker's checkpoints), with
``--attacker-seeds`` attackers per victim and seat: the per-seat lower bound is their max. Positive
controls attack known-weak victims (:data:`CONTROLS`) with the same attack and budgets; an attack that
wins under :data:`CERTIFY` of its games against the zero-action victim certifies nothing, and the
leaderboard then gives no ranks. The leaderboard (:mod:`ipo_robust.evals.leaderboard`) aggregates seeds
with percentile bootstrap intervals.

Resumable: a finished work item is written atomically to ``OUT/items/<label>-s<seed>.json`` and
skipped on a re-run with the same settings; a run whose training was interrupted resumes from its
newest checkpoint in ``OUT/runs/``. Outputs (``OUT/``): ``results.csv`` (one row per entry x seed x
seat x attacker seed x budget), ``leaderboard.csv``, ``controls.csv``, ``curves.csv`` (training metrics per
update), ``robustness.csv`` (MuJoCo only), and the report (:mod:`ipo_robust.evals.report`). The ``optimizer``
column holds the entry's label; ``method`` says what it trains (optimizer, schedule, perturbation).

Seats are numbered as configs number agents: seat 1 is the victim pair's agent 1, seat 2 its agent 2 (the
attacker plays the other seat), in every table, item file and report. The Python attack API takes the 0-based
index into ``victim.agents`` (seat - 1); the rows convert when they are made (:func:`_attack_rows`).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipo_robust import host
from ipo_robust.atomic import atomic_write_text
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import Victim
from ipo_robust.evals.compare_spec import (  # noqa: F401 - the spec's names are part of this module's API
    ATTACK_OPTIONS,
    CERTIFY,
    CONTROLS,
    ENV_DEFAULTS,
    FAMILIES,
    MANAGED_KEYS,
    OPTIMIZER_DEFAULTS,
    SET_USAGE,
    CompareSpec,
    entry_facts,
    env_family,
    make_spec,
    parse_budget,
    split_overrides,
)
from ipo_robust.evals.leaderboard import INTERVAL, leaderboard, leaderboard_rows, per_seed
from ipo_robust.evals.metrics import wilson_interval
from ipo_robust.evals.plain_game import plain_victim
from ipo_robust.evals.report import write_compare_report
from ipo_robust.evals.robustness import sweep
from ipo_robust.locking import hold
from ipo_robust.train import run_training

__all__ = ["ATTACK_OPTIONS", "CURVE_COLUMNS", "ENV_DEFAULTS", "FAMILIES", "INTERVAL", "MANAGED_KEYS",
           "OPTIMIZER_DEFAULTS", "CompareResult", "CompareSpec", "assemble", "entry_facts", "env_family",
           "leaderboard", "leaderboard_rows", "load_item", "make_spec", "pending", "per_seed", "plain_victim",
           "run_compare", "run_item", "split_overrides", "write_tables"]

# -------------------------------------------------------------------------------------- work items
#: the version of an item file's record: 2 numbers seats 1 and 2; records without a format (1) counted them from 0
#: and are renumbered when read (:func:`load_item`), so a resumed comparison mixes no numberings
ITEM_FORMAT = 2

CURVE_COLUMNS = ("update", "env_steps", "train/return1", "train/return2", "train/win1", "train/win2",
                 "train/episodes", "update_seconds", "rollout_seconds")


def _attack_rows(attack, victim, item: dict, seeds) -> list[dict]:
    """Rows of every seat x attacker seed x budget: ``attack.run_budgets`` per seat and attacker seed
    (attacker seed k trains with seed ``item seed + 1000 k``). ``seat`` is 1 or 2 (the victim's agent)."""
    rows = []
    for seat in (0, 1):
        for k in seeds:
            results = attack.run_budgets(victim, seat, item["attack_budgets"], item["games"],
                                         int(item["seed"]) + 1000 * k)
            for result in results:
                row = {**result.as_row(), "seat": seat + 1, "attacker_seed": k, "budget_multiple":
                       result.budget / item["victim_steps"] if item["victim_steps"] else math.nan}
                row["bound"] = "exact" if result.kind == "exact" else "lower bound"
                if "reference_gap" in result.details:  # the earlier figure, labelled: win rate minus a reference's
                    row["reference_gap"] = float(result.details["reference_gap"])
                    row["reference_win_rate"] = float(result.details["reference"]["win_rate"])
                rows.append(row)
    return rows


def run_item(item: dict) -> dict:
    """Train, attack both seats (every attacker seed and budget) and sweep one entry x seed, or attack
    a known-weak victim (a control item); writes ``item["path"]`` atomically and returns what it wrote. A
    top-level function so that process pools and Ray can pickle it. The trained pair is judged in the plain
    game (:func:`~ipo_robust.evals.plain_game.plain_victim`: no superpower, own action entries only)."""
    if item.get("kind") == "control":
        return run_control(item)
    began = time.perf_counter()
    run_dir = Path(item["run_dir"])
    resume = (run_dir / "latest").exists()
    config = {**item["config"], "run": {**item["config"].get("run", {}), "out": str(run_dir)}}  # run.out: compare's
    # an item's run without a checkpoint is this item's own unfinished work: start it over
    trained = run_training(config, run_dir, resume=resume, overwrite=True)  # failed solves counted, not printed
    train_seconds = time.perf_counter() - began
    victim = plain_victim(Victim.from_checkpoint(trained.checkpoint))
    attack = host.create("attack", item["attack"], **item["attack_options"])
    rows = [{"optimizer": item["optimizer"], "seed": item["seed"], **row}
            for row in _attack_rows(attack, victim, item, range(item["attacker_seeds"]))]
    masked = []
    if item.get("masked"):  # Gleave et al.'s control: the agent blind to its opponent, against its own partner
        control = host.create("attack", "masked-victim")
        for seat in (0, 1):
            result = control.run(victim, seat, 0, item["games"], item["seed"])
            masked.append({"optimizer": item["optimizer"], "seed": item["seed"], "seat": seat + 1,
                           "partner_win_rate": result.win_rate, "partner_return": result.attacker_return,
                           "masked_return": result.victim_return, "games": result.games})
    robustness = []
    if item["robustness_points"] > 0:
        values = np.linspace(0.5, 1.5, item["robustness_points"])
        for parameter, seat in itertools.product(item.get("robustness_parameters", ["mass"]), (0, 1)):
            try:
                table = sweep(victim, parameter, values, games=item["robustness_games"], seed=item["seed"],
                              seat=seat, opponent=item["robustness_opponent"])
            except ConfigError:  # an agent without bodies (a rarl-* adversary acts by force only): no mass to scale
                continue
            table["seat"] = seat + 1  # sweep's seat is the index into victim.agents; tables count from 1
            table.insert(0, "seed", item["seed"])
            table.insert(0, "optimizer", item["optimizer"])
            robustness.extend(table.to_dict("records"))
    metrics = trained.metrics
    curve = metrics[[c for c in CURVE_COLUMNS if c in metrics.columns]].to_dict("records")
    for row in rows:
        row["train_seconds"] = train_seconds
        row["updates"] = int(trained.updates)
        row["solve_failures"] = int(trained.solve_failures)
        row["env_steps"] = int(metrics["env_steps"].iloc[-1]) if len(metrics) else 0
    record = {"id": item["id"], "key": item["key"], "format": ITEM_FORMAT, "optimizer": item["optimizer"],
              "seed": item["seed"], "rows": rows, "masked": masked, "robustness": robustness, "curve": curve,
              "train_seconds": train_seconds, "seconds": time.perf_counter() - began,
              "checkpoint": str(trained.checkpoint)}
    atomic_write_text(item["path"], json.dumps(record, indent=1))
    return record


def run_control(item: dict) -> dict:
    """The positive control of ``item["control"]``: the comparison's attack, at every budget, against a pair of
    known-weak agents (:func:`~ipo_robust.evals.attacks.victim.known_weak_victim`), both seats, one attacker."""
    from ipo_robust.evals.attacks.victim import known_weak_victim

    began = time.perf_counter()
    victim = known_weak_victim(item["control"], item["env"], item["env_options"])
    attack = host.create("attack", item["attack"], **item["attack_options"])
    rows = [{"control": item["control"], **row} for row in _attack_rows(attack, victim, item, [0])]
    record = {"id": item["id"], "key": item["key"], "format": ITEM_FORMAT, "kind": "control",
              "control": item["control"], "rows": rows, "seconds": time.perf_counter() - began}
    atomic_write_text(item["path"], json.dumps(record, indent=1))
    return record


def load_item(item: dict) -> dict | None:
    """The saved result of ``item`` when it exists and was computed with the same settings; a record saved
    before :data:`ITEM_FORMAT` 2 (seats counted from 0) comes back with its seats renumbered 1 and 2."""
    path = Path(item["path"])
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a broken file is recomputed (writes are atomic, so this means it was edited by hand)
    if record.get("key") != item["key"]:
        raise ConfigError(f"{str(path)!r} holds a result computed with different settings (another budget, "
                          "seed set or hyperparameters): choose another --out, or delete that directory")
    if record.get("format", 1) < ITEM_FORMAT:  # seats counted from 0 then: the same rows in today's numbering
        for part in ("rows", "masked", "robustness"):
            for row in record.get(part, []):
                if "seat" in row:
                    row["seat"] = int(row["seat"]) + 1
        record["format"] = ITEM_FORMAT
    return record


# --------------------------------------------------------------------------------------- the run
@dataclass
class CompareResult:
    """Everything :func:`run_compare` produced (also written to ``spec.out``)."""

    spec: CompareSpec
    results: pd.DataFrame
    leaderboard: pd.DataFrame
    curves: pd.DataFrame
    robustness: pd.DataFrame
    computed: int
    reused: int
    seconds: float
    files: list[Path] = field(default_factory=list)
    controls: pd.DataFrame = field(default_factory=pd.DataFrame)
    """controls.csv (:func:`control_table`); empty without controls"""
    certified: bool | None = None
    """the attack beat its certifying positive control (:func:`certification`); None without controls"""
    masked: pd.DataFrame = field(default_factory=pd.DataFrame)
    """masked.csv: per entry x seed x seat, the partner's win rate against the agent blinded to it"""
    ratings: pd.DataFrame = field(default_factory=pd.DataFrame)
    """strength.csv: per trained pair (entry x seed), Bradley-Terry strength and win rate vs random"""
    round_robin: pd.DataFrame = field(default_factory=pd.DataFrame)
    """round_robin.csv: the games of every pairing"""


def pending(spec: CompareSpec) -> tuple[list[dict], dict[str, dict]]:
    """(items still to run, finished records by item id)."""
    done, todo = {}, []
    for item in spec.items():
        record = load_item(item)
        if record is None:
            todo.append(item)
        else:
            done[item["id"]] = record
    return todo, done


def run_compare(spec: CompareSpec, progress: bool = True, executor=None, report: bool = True) -> CompareResult:
    """Run the items of ``spec`` that have no saved result (through the executor plugin), then write
    the tables and (``report=True``) the report with its plots into ``spec.out``, which is locked meanwhile
    (another command writing it: :class:`~ipo_robust.locking.DirectoryInUseError`)."""
    with hold(spec.out, what="report directory", option="--out"):
        return _run_compare(spec, progress, executor, report)


def _run_compare(spec: CompareSpec, progress: bool, executor, report: bool) -> CompareResult:
    began = time.perf_counter()
    items = spec.items()
    todo, done = pending(spec)
    if executor is None:
        executor = host.create("executor", spec.executor, **spec.executor_options)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="item", dynamic_ncols=True,
                   desc=f"compare {spec.env}")
    try:
        for record in executor.map(run_item, todo):
            done[record["id"]] = record
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(record["id"], refresh=False)
    finally:
        if bar is not None:
            bar.close()
    records = [done[item["id"]] for item in items]
    result = assemble(spec, records, computed=len(todo), reused=len(items) - len(todo),
                      seconds=time.perf_counter() - began)
    result.files = write_tables(result)
    if report:
        result.files += write_compare_report(result)
    return result


def control_table(rows: pd.DataFrame, spec: CompareSpec) -> pd.DataFrame:
    """controls.csv: per control and budget, the attack's win rate over both seats (Wilson 95 % interval
    over the pooled games) and per seat (``seat1_win_rate``: the victim's agent 1 attacked, ``seat2_win_rate``:
    its agent 2)."""
    out = []
    for (control, budget), group in rows.groupby(["control", "budget"], sort=False):
        wins, games = int(group["wins"].sum()), int(group["games"].sum())
        low, high = wilson_interval(wins, games)
        seat = group.set_index("seat")["win_rate"]
        out.append({"control": control, "budget": int(budget), "budget_multiple": spec.budget_multiple(int(budget)),
                    "win_rate": wins / games, "win_low": low, "win_high": high, "games": games,
                    "seat1_win_rate": float(seat.get(1, math.nan)), "seat2_win_rate": float(seat.get(2, math.nan))})
    return pd.DataFrame(out)


def worst_case(robustness: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer, the robustness sweep's worst case: for each seed the lowest win rate over every swept
    parameter and scale (the mean of both seats at each point), then the mean over seeds with its seed
    bootstrap interval (none for one seed): ``worst_case_win_rate``, ``worst_case_low``, ``worst_case_high``.
    Empty without sweep rows or win rates (a game with no winner)."""
    if not len(robustness) or "win_rate" not in robustness or robustness["win_rate"].isna().all():
        return pd.DataFrame()
    from ipo_robust.evals.statistics import group_summary

    points = robustness.groupby(["optimizer", "seed", "parameter", "value"], sort=False)["win_rate"].mean()
    per_seed = points.groupby(level=["optimizer", "seed"], sort=False).min().rename("worst").reset_index()
    return group_summary(per_seed, "optimizer", "worst", "worst_case_win_rate", "worst_case_low", "worst_case_high")


def certification(controls: pd.DataFrame, spec: CompareSpec) -> bool | None:
    """Whether the attack beat the certifying control (:data:`CONTROLS`' first) in >= :data:`CERTIFY` of its
    games at the headline budget; None without controls."""
    if not len(controls) or CONTROLS[0] not in set(controls["control"]):
        return None
    row = controls[(controls["control"] == CONTROLS[0]) & (controls["budget"] == spec.attack_budget)]
    return bool(len(row)) and float(row["win_rate"].iloc[0]) >= CERTIFY


def assemble(spec: CompareSpec, records: list[dict], computed: int, reused: int, seconds: float) -> CompareResult:
    victims = [r for r in records if r.get("kind") != "control"]
    controls = control_table(pd.DataFrame([row for r in records if r.get("kind") == "control" for row in r["rows"]]),
                             spec) if any(r.get("kind") == "control" for r in records) else pd.DataFrame()
    certified = certification(controls, spec)
    results = pd.DataFrame([row for record in victims for row in record["rows"]])
    curves = pd.DataFrame([{"optimizer": r["optimizer"], "seed": r["seed"], **row}
                           for r in victims for row in r["curve"]])
    robustness = pd.DataFrame([row for r in victims for row in r["robustness"]])
    masked = pd.DataFrame([row for r in victims for row in r.get("masked", [])])
    board = leaderboard(results, spec.attack_budget, ranked=certified is not False)
    if len(masked):
        board = board.merge(masked.groupby("optimizer", sort=False)["partner_win_rate"].mean()
                            .rename("masked_partner_win_rate").reset_index(), on="optimizer", how="left")
    worst = worst_case(robustness)
    if len(worst):
        board = board.merge(worst, on="optimizer", how="left")
    games, ratings = pd.DataFrame(), pd.DataFrame()
    if spec.strength_games and victims:
        from ipo_robust.evals.strength import strength_tables

        # every pair in the plain game (strength_tables projects them: own action entries, no superpower)
        players = {r["id"]: (r["optimizer"], Victim.from_checkpoint(r["checkpoint"])) for r in victims}
        games, ratings, per_optimizer = strength_tables(players, spec.strength_games, seed=0)
        board = board.merge(per_optimizer, on="optimizer", how="left")
    results, board = _with_methods(spec, results), _with_methods(spec, board, source=True)
    return CompareResult(spec, results, board, curves, robustness, computed, reused, seconds, controls=controls,
                         certified=certified, ratings=ratings, round_robin=games, masked=masked)


def _with_methods(spec: CompareSpec, frame: pd.DataFrame, source: bool = False) -> pd.DataFrame:
    """``frame`` with a ``method`` column after ``optimizer`` (the entry's optimizer, schedule and perturbation,
    :meth:`CompareSpec.method`) and, with ``source``, ``config`` (the file of a ``--config`` entry, else empty)."""
    if "optimizer" not in frame or not len(frame) or not spec.configs:
        return frame
    frame = frame.copy()
    where = list(frame.columns).index("optimizer") + 1
    labels = frame["optimizer"].astype(str)
    methods = {label: spec.method(label) if label in spec.configs else "" for label in labels.unique()}
    if "method" not in frame:
        frame.insert(where, "method", labels.map(methods))
    if source and "config" not in frame:
        frame.insert(where + 1, "config", labels.map(lambda label: spec.sources.get(label, "")))
    return frame


def write_tables(result: CompareResult) -> list[Path]:
    out = result.spec.out
    files = [atomic_write_text(out / "results.csv", result.results.to_csv(index=False)),
             atomic_write_text(out / "leaderboard.csv", result.leaderboard.to_csv(index=False))]
    if len(result.controls):
        files.append(atomic_write_text(out / "controls.csv", result.controls.to_csv(index=False)))
    if len(result.masked):
        files.append(atomic_write_text(out / "masked.csv", result.masked.to_csv(index=False)))
    if len(result.ratings):
        files.append(atomic_write_text(out / "strength.csv", result.ratings.to_csv(index=False)))
        files.append(atomic_write_text(out / "round_robin.csv", result.round_robin.to_csv(index=False)))
    if len(result.curves):
        files.append(atomic_write_text(out / "curves.csv", result.curves.to_csv(index=False)))
    if len(result.robustness):
        files.append(atomic_write_text(out / "robustness.csv", result.robustness.to_csv(index=False)))
    return files
