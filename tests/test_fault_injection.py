"""Fault injection (issue 17, item 9): ``ipo-robust train``, ``eval`` and ``compare`` are killed with SIGKILL at
20 or more points each, spread over the run, and resumed with the same command.

Every command runs as a subprocess (``python -m ipo_robust ...``, its own process group, one thread), and the
test watches its output directory: a kill point is a moment in the run, seen from outside, e.g. "the k-th
metrics row has just been written", "a checkpoint's temporary directory has just appeared" (the checkpoint is
being written), "``latest`` has just changed" (old checkpoints are being pruned), "a cell or item file has just
appeared", "results.csv has just been written (the parquet file, suite.json, the report are not yet)", or a
delay after a metrics row taken from the uninterrupted run's own timings (mid-rollout, mid-update). At that
moment the whole process group gets SIGKILL. Kills are chained: kill, resume, kill at a later point, ..., and a
last resume runs to the end. The product code has no test hooks: nothing but the files on disk tells the test
where the command is. A kill lands a poll and a signal after its point, sometimes an update or a write later;
the points are chosen so that this never leaves a later point nothing to wait for (where it could, a point
falls back to the command's last writes, or may be outrun: :func:`or_results`, :func:`last`).

After every kill:

* every file a resume or a reader could pick up is complete: the checkpoint ``latest`` names and every
  visible ``ckpt-*`` directory load with their SHA-256 checked (and equal the uninterrupted run's where that
  run kept the same checkpoint), every complete metrics row equals the uninterrupted run's row of that update,
  and every cell, item, table, report and plot present equals the uninterrupted run's or reads whole. Hidden
  temporary files of atomic writes (``.name.*.tmp``, ``.ckpt-*.tmp/``) may remain; they are never read.
  A metrics row cut short by the kill (an append is not atomic) may remain after the complete ones; the
  resume must drop it (one kill point appends a cut row on purpose to check that).

At the end the outputs equal an uninterrupted run's, made beforehand in the same directory and then moved
aside (so that the paths recorded in the outputs are the same): the same checkpoints, every tensor
``torch.equal`` and every sidecar equal (but the global torch RNG state, :data:`UNSEEDED`), ``metrics.csv``,
cells, items and results tables digit for digit, plots byte for byte, except the wall-clock columns listed in
:data:`WALL_CLOCK`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch

from ipo_robust.checkpoint import LATEST, META, flatten_state, load_checkpoint, save_agents
from ipo_robust.policies import TabularCategoricalPolicy

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="SIGKILL of a process group needs POSIX")

#: Columns (and JSON keys) that may differ between a killed-and-resumed run and an uninterrupted one: wall-clock
#: measurements. Every other value must be equal, digit for digit.
WALL_CLOCK = frozenset({
    "steps_per_second",  # metrics.csv: env steps per second of the update
    "rollout_seconds",   # metrics.csv (and compare's curves.csv, items' curves): time to collect the batch
    "update_seconds",    # metrics.csv (and compare's curves.csv, items' curves): time of the optimizer step
    "seconds",           # eval: a cell record's and an attack result's time; compare: an item's, a result row's
    "train_seconds",     # compare: results.csv rows and an item record: time to train the pair
})

#: Checkpoint tensors that are not a function of the run's config: the global torch RNG state. A run neither seeds
#: nor draws from it (agents, critics and actions use their own seeded generators or ``fork_rng``); it is saved and
#: restored only for plugins that would draw from it. A fresh process starts it at a random state, so two
#: uninterrupted runs differ there (and in ``meta.json``'s SHA-256 of the tensor file). Within one run it must stay
#: the same through every checkpoint and resume, which :func:`check_run` checks instead.
UNSEEDED = frozenset({".rng.torch"})

#: environment of the commands: one thread each (deterministic and light on 2 cores), no display
CLI_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "IPO_ROBUST_ENV_WORKERS": "1",
           "MUJOCO_GL": "disable"}
POLL = 0.0005  # seconds between two looks at the output directory
TIMEOUT = 120.0  # per process


# ------------------------------------------------------------------------------------------ kill points
def _stats(directory: Path) -> dict[str, tuple]:
    """name -> (inode, mtime, size) of the entries of ``directory`` ({} when it does not exist)."""
    try:
        with os.scandir(directory) as entries:
            out = {}
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
            return out
    except (FileNotFoundError, NotADirectoryError):
        return {}


class Point:
    """A kill point: :meth:`due` is polled while the command runs (it returns what it saw, or None); once due,
    the test waits ``delay`` seconds and kills the command's process group."""

    #: a point near the command's end: the command may exit (0) before it comes, when it comes too close before the
    #: exit or when an earlier kill that landed late left nothing for it to wait for; then it is skipped
    last = False

    def __init__(self, label: str, delay: float = 0.0):
        self.label, self.delay = label, delay

    def arm(self, root: Path) -> None:
        """Note the state of the output directory ``root`` when the command starts."""

    def due(self, root: Path, elapsed: float) -> str | None:
        raise NotImplementedError

    def after_kill(self, root: Path) -> str:
        """Called after the kill; may change what the kill left (see :class:`TornRow`)."""
        return ""


class After(Point):
    """``seconds`` after the command started (start-up: imports, the lock, the config)."""

    def __init__(self, seconds: float, label: str | None = None):
        super().__init__(label or f"{seconds:g} s after the start")
        self.seconds = seconds

    def due(self, root, elapsed):
        return f"{elapsed:.2f} s" if elapsed >= self.seconds else None


class New(Point):
    """``count`` entries of ``directory`` (relative to root) matching ``pattern`` were created or replaced since the
    start: e.g. a checkpoint's temporary directory, ``latest``, a cell file, results.csv."""

    def __init__(self, directory: str, pattern: str, label: str, count: int = 1, delay: float = 0.0):
        super().__init__(label, delay)
        self.directory, self.pattern, self.count = directory, re.compile(pattern), count

    def arm(self, root):
        self.before = _stats(root / self.directory)

    def due(self, root, elapsed):
        fresh = [name for name, stat in _stats(root / self.directory).items()
                 if self.pattern.fullmatch(name) and self.before.get(name) != stat]
        return f"{', '.join(sorted(fresh)[:3])} at {elapsed:.2f} s" if len(fresh) >= self.count else None


class Rows(Point):
    """``metrics.csv`` of the run directory ``run`` was (re)written by this command and holds ``n`` complete rows
    (then ``delay``: into update n's rollout or optimizer step)."""

    def __init__(self, run: str, n: int, label: str | None = None, delay: float = 0.0):
        super().__init__(label or f"{run}: after metrics row {n}", delay)
        self.path, self.n = Path(run) / "metrics.csv", n

    def arm(self, root):
        self.before = _stat(root / self.path)

    def due(self, root, elapsed):
        path = root / self.path
        stat = _stat(path)
        if stat is None or stat == self.before:
            return None
        try:
            rows = path.read_bytes().count(b"\n") - 1
        except FileNotFoundError:
            return None
        return f"{rows} rows at {elapsed:.2f} s" if rows >= self.n else None


class Either(Point):
    """The first of two points that comes (e.g. a checkpoint's temporary directory, which may exist for less
    than a poll, or else the ``latest`` that follows it); its delay is that point's."""

    def __init__(self, first: Point, second: Point, label: str | None = None):
        super().__init__(label or first.label)
        self.points = (first, second)

    def arm(self, root):
        for point in self.points:
            point.arm(root)

    def due(self, root, elapsed):
        for point in self.points:
            seen = point.due(root, elapsed)
            if seen:
                self.delay = point.delay
                return f"{point.label}: {seen}" if point.label != self.label else seen
        return None


class Started(Point):
    """The command (re)wrote ``metrics.csv`` of ``run`` (a fresh run creates it empty, a resume cuts it back to its
    checkpoint): its first update begins now; ``delay`` goes into that update."""

    def __init__(self, run: str, label: str, delay: float = 0.0):
        super().__init__(label, delay)
        self.path = Path(run) / "metrics.csv"

    def arm(self, root):
        self.before = _stat(root / self.path)

    def due(self, root, elapsed):
        stat = _stat(root / self.path)
        return f"at {elapsed:.2f} s" if stat is not None and stat != self.before else None


class Checkpointed(Point):
    """The command wrote ``latest`` of ``run``, naming checkpoint ``n`` or a later one (then ``delay``: into the
    update after it)."""

    def __init__(self, run: str, n: int, label: str, delay: float = 0.0):
        super().__init__(label, delay)
        self.path, self.n = Path(run) / LATEST, n

    def arm(self, root):
        self.before = _stat(root / self.path)

    def due(self, root, elapsed):
        stat = _stat(root / self.path)
        if stat is None or stat == self.before:
            return None
        try:
            name = (root / self.path).read_text().strip()
        except FileNotFoundError:
            return None
        return f"{name} at {elapsed:.2f} s" if int(name[5:]) >= self.n else None


class TornRow(Point):
    """``point``, and then the start of the next metrics row is appended, cut after the first digit of its update
    number, as an append killed at a page boundary leaves it (the appends are not atomic): the resume must not
    read it as a row of update 1, 2, ..."""

    def __init__(self, point: Point, run: str):
        super().__init__(point.label + ", then the next row cut short", point.delay)
        self.point, self.path = point, Path(run) / "metrics.csv"

    def arm(self, root):
        self.point.arm(root)

    def due(self, root, elapsed):
        return self.point.due(root, elapsed)

    def after_kill(self, root):
        path = root / self.path
        text = path.read_text()
        if not text.endswith("\n"):
            return "the kill cut the last row itself"
        update = int(text.rstrip("\n").rsplit("\n", 1)[-1].split(",", 1)[0]) + 1
        assert update >= 10, "a row of update 10 or later is cut, so that its first digit is an earlier update"
        with open(path, "a") as file:
            file.write(str(update)[0])
        return f"the row of update {update} cut to {str(update)[0]!r}"


def or_results(point: Point) -> Point:
    """``point``, or else results.csv, which every ``eval`` and ``compare`` writes at its end: a kill that landed
    later than its point (a poll and a signal take time) may have left a later point nothing to wait for."""
    return Either(point, New("out", r"results\.csv", "results.csv (the point had passed)"))


def last(point: Point) -> Point:
    point.last = True
    return point


def _stat(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def cli(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        out.write(f"\n$ ipo-robust {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen([sys.executable, "-m", "ipo_robust", *argv], cwd=cwd, env=CLI_ENV, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def run_to_end(argv: list[str], cwd: Path, log: Path) -> None:
    process = cli(argv, cwd, log)
    try:
        rc = process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert rc == 0, f"ipo-robust {' '.join(argv)} exited with {rc}:\n{_log_tail(log)}"


def kill_at(point: Point, argv: list[str], cwd: Path, root: Path, log: Path) -> str | None:
    """Start the command, SIGKILL its process group at ``point``; returns what was seen there (None: a ``last``
    point that the command outran, exiting 0 first)."""
    point.arm(root)
    began = time.monotonic()
    process = cli(argv, cwd, log)
    try:
        while True:
            elapsed = time.monotonic() - began
            seen = point.due(root, elapsed)
            if seen:
                break
            if process.poll() is not None:
                if process.returncode == 0 and point.last:
                    return None
                pytest.fail(f"kill point {point.label!r}: the command exited ({process.returncode}) before the point "
                            f"came\n{_log_tail(log)}")
            if elapsed > TIMEOUT:
                pytest.fail(f"kill point {point.label!r} did not come within {TIMEOUT:.0f} s\n{_log_tail(log)}")
            time.sleep(POLL)
        if point.delay:
            time.sleep(point.delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with open(log, "a") as out:
        out.write(f"# kill point {point.label!r}: {seen}, +{point.delay:.3f} s: exit {process.returncode}\n")
    if process.returncode == 0 and point.last:
        return None
    assert process.returncode == -signal.SIGKILL, (
        f"kill point {point.label!r}: the command had exited ({process.returncode}) before the kill\n{_log_tail(log)}")
    return " ".join(filter(None, [seen, point.after_kill(root)]))


def chain(points: list[Point], argv: Callable[[], list[str]], cwd: Path, root: Path, log: Path,
          check: Callable[[], str]) -> list[str]:
    """Kill the command at each point in turn (``argv()`` says how to start or resume it now) and check the outputs
    after each kill; then run it to the end. Returns one line per kill that happened."""
    lines = []
    for point in points:
        seen = kill_at(point, argv(), cwd, root, log)
        state = check()
        if seen is not None:
            lines.append(f"{len(lines) + 1:2d}. {point.label}: {seen}; left {state}")
    run_to_end(argv(), cwd, log)
    return lines


# ------------------------------------------------------------------------------------------- comparing
def strip_wall_clock(value):
    """``value`` (parsed JSON) without the WALL_CLOCK keys, at any depth."""
    if isinstance(value, dict):
        return {k: strip_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK}
    if isinstance(value, list):
        return [strip_wall_clock(v) for v in value]
    return value


def json_text(path: Path) -> str:
    """A JSON file without its wall-clock keys, as canonical text (NaN compares equal to NaN)."""
    return json.dumps(strip_wall_clock(json.loads(path.read_text())), sort_keys=True)


def csv_table(path: Path, partial_ok: bool = False) -> tuple[list[str], list[dict[str, str]], str]:
    """(header, rows as text without the WALL_CLOCK columns, a trailing unterminated line or "")."""
    text = path.read_text()
    complete, _, partial = text.rpartition("\n") if not text.endswith("\n") else (text[:-1], "", "")
    if not partial_ok:
        assert not partial, f"{path}: its last line is cut short: {partial!r}"
    if not complete:
        return [], [], partial
    reader = csv.reader(io.StringIO(complete + "\n"))
    header = next(reader)
    rows = []
    for line in reader:
        assert len(line) == len(header), f"{path}: a row with {len(line)} fields under {len(header)} columns"
        rows.append({k: v for k, v in zip(header, line, strict=True) if k not in WALL_CLOCK})
    return header, rows, partial


def assert_same_csv(path: Path, reference: Path) -> None:
    header, rows, _ = csv_table(path)
    ref_header, ref_rows, _ = csv_table(reference)
    assert header == ref_header, f"{path}: columns differ from the uninterrupted run's"
    assert rows == ref_rows, f"{path}: differs from the uninterrupted run's (wall-clock columns aside)"


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def check_run(run: Path, reference: Path, final: bool = False) -> str:
    """A training run directory after a kill (or at the end, ``final``) against the uninterrupted run's: returns
    what the kill left there. Every checkpoint the uninterrupted run kept is compared, so at the end all of them."""
    if not run.exists():
        assert not final
        return "no run directory"
    names = visible(run)
    unknown = [n for n in names if n not in (LATEST, "metrics.csv", "suite-victim.json")
               and not re.fullmatch(r"ckpt-\d{6}", n)]
    assert not unknown, f"{run}: unexpected visible entries {unknown} (temporary files must be hidden)"
    notes = []
    if (run / LATEST).exists():
        resume_from = load_checkpoint(run)  # what --resume starts from: complete, its SHA-256 checked
        notes.append(f"latest {resume_from.path.name}")
    else:
        notes.append("no checkpoint")
    unseeded = set()
    for name in names:
        if name.startswith("ckpt-"):
            loaded = load_checkpoint(run / name)  # every visible checkpoint loads whole, not only the latest
            assert loaded.iteration == loaded.state["updates"] == int(name[5:])
            _, tensors = flatten_state(loaded.state)
            unseeded.add(tuple(bytes(tensors[k].numpy()) for k in sorted(UNSEEDED)))
            if (reference / name).exists():
                assert_same_checkpoint(loaded, load_checkpoint(reference / name))
    assert len(unseeded) <= 1, f"{run}: the global torch RNG state changed between checkpoints"
    if (run / "suite-victim.json").exists():
        assert (run / "suite-victim.json").read_text() == (reference / "suite-victim.json").read_text()
    if (run / "metrics.csv").exists():
        header, rows, partial = csv_table(run / "metrics.csv", partial_ok=not final)
        ref_header, ref_rows, _ = csv_table(reference / "metrics.csv")
        by_update = {int(row["update"]): row for row in ref_rows}
        assert [int(row["update"]) for row in rows] == list(range(len(rows))), f"{run}/metrics.csv: updates"
        for row in rows:  # each complete row is the uninterrupted run's row of that update
            expected = by_update[int(row["update"])]
            assert row == {k: expected[k] for k in row}, f"{run}/metrics.csv: row {row['update']} differs"
            assert all(expected[k] == "" for k in expected.keys() - row.keys())  # columns that came later
        notes.append(f"{len(rows)} metrics rows" + (" and a cut one" if partial else ""))
    notes.append(hidden_files(run))
    if final:
        assert names == visible(reference), f"{run}: {names} != the uninterrupted run's {visible(reference)}"
        assert_same_csv(run / "metrics.csv", reference / "metrics.csv")
    return ", ".join(filter(None, notes))


def hidden_files(directory: Path) -> str:
    """The hidden temporaries of atomic writes a kill left in ``directory`` (the lock files aside)."""
    names = sorted(p.name for p in directory.glob(".*") if ".ipo-robust.lock" not in p.name)
    if not names:
        return ""
    return f"{len(names)} hidden temporaries ({', '.join(names[:2])}{', ...' if len(names) > 2 else ''})"


def assert_same_checkpoint(mine, theirs) -> None:
    """Two loaded checkpoints hold the same state: every tensor ``torch.equal`` (but UNSEEDED), the same sidecar
    (config, update count, seeds, versions, the state's skeleton) but the SHA-256 of the tensor file."""
    _, tensors = flatten_state(mine.state)
    _, expected = flatten_state(theirs.state)
    assert tensors.keys() == expected.keys(), f"{mine.path}: other tensors than the uninterrupted run's"
    differ = [k for k in tensors if k not in UNSEEDED and not (tensors[k].dtype == expected[k].dtype
                                                                and torch.equal(tensors[k], expected[k]))]
    assert not differ, f"{mine.path}: tensors {differ[:5]} differ from the uninterrupted run's"
    sidecar = {k: v for k, v in mine.meta.items() if k != "sha256"}
    assert sidecar == {k: v for k, v in theirs.meta.items() if k != "sha256"}, f"{mine.path / META} differs"


def check_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # a cut file raises


def masked(text: str) -> list[str]:
    """Lines with every number masked: a report's counts of computed/reused items and its seconds differ."""
    return [re.sub(r"\d+(\.\d+)?", "#", line) for line in text.splitlines()]


# ------------------------------------------------------------------------------------------------ train
def rps_config(optimizer: str, iterations: int, seed: int, checkpoint_every: int, out: str | None = None) -> str:
    """A tiny rock-paper-scissors training config keeping 2 checkpoints."""
    return f"""\
[env]
name = "rock-paper-scissors"
num_envs = 64
steps = 1
[agents]
hidden = []
[optimizer]
name = "{optimizer}"
options = {{ lr = 0.5, gamma = 1.0 }}
[schedule]
iterations = {iterations}
[run]
seed = {seed}
{'' if out is None else f'out = "{out}"'}
checkpoint_every = {checkpoint_every}
keep = 2
tensorboard = false
"""


TRAIN_RPS = rps_config("ipo-vpg", 30, 1, checkpoint_every=3, out="run")

TRAIN_SUMO = """\
[env]
name = "sumo-pushers"
num_envs = 4
steps = 20
options = { shaping = 0.1, max_episode_steps = 10 }
[agents]
hidden = [8]
[optimizer]
name = "ipo-vpg"
options = { lr = 0.05, critic = "value" }
[perturbation]
name = "learned-location"
[schedule]
kind = "ipo-rarl"
iterations = 3
[run]
seed = 3
out = "sumo"
checkpoint_every = 1
keep = 2
tensorboard = false
"""


def checkpoint_write(run: str) -> Point:
    """The moment a checkpoint's temporary directory appears (files being written and fsynced), or else the
    ``latest`` that follows it (the old checkpoints being pruned)."""
    return Either(New(run, r"\.ckpt-\d{6}\..*\.tmp", "temporary directory"), New(run, LATEST, "latest"),
                  f"{run}: mid-checkpoint write")


def train_command(root: Path, config: str, run: str) -> Callable[[], list[str]]:
    """``train CONFIG --resume``, the command that continues a run; a run killed before its first checkpoint has
    nothing to resume, and ``--resume`` says so: it is started over with ``--overwrite``."""
    refused = []

    def argv() -> list[str]:
        if (root / run / LATEST).exists():
            return ["train", config, "--resume", "--no-progress"]
        if (root / run).exists() and not refused:  # once per chain: the refusal is one line, exit 2
            result = subprocess.run([sys.executable, "-m", "ipo_robust", "train", config, "--resume", "--no-progress"],
                                    cwd=root, env=CLI_ENV, capture_output=True, text=True, timeout=TIMEOUT)
            assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert "--overwrite" in result.stderr, result.stderr
            refused.append(result.stderr.strip())
        return ["train", config, "--no-progress", *(["--overwrite"] if (root / run).exists() else [])]

    return argv


def reference_run(root: Path, name: str, argv: list[str], log: Path) -> Path:
    """Run the command uninterrupted, writing ``root/name``, then move that to ``root/name.reference``."""
    run_to_end(argv, root, log)
    reference = root / f"{name}.reference"
    (root / name).rename(reference)
    return reference


def timings(reference: Path) -> tuple[float, float]:
    """The shortest rollout and optimizer step of an uninterrupted run (the first update, which warms up, aside):
    delays from them land inside an update even when this machine got faster since."""
    table = pd.read_csv(reference / "metrics.csv").iloc[1:]
    return float(table["rollout_seconds"].min()), float(table["update_seconds"].min())


def rps_train_chain(root: Path) -> list[str]:
    """rock-paper-scissors, 30 updates of ms each, a checkpoint every 3: the points are files as they change."""
    root.mkdir()
    log = root / "log.txt"
    (root / "rps.toml").write_text(TRAIN_RPS)
    reference = reference_run(root, "run", ["train", "rps.toml", "--no-progress"], log)
    points = [
        After(0.3, "during start-up (imports)"),
        New("run", r"metrics\.csv", "run: metrics.csv created, before the first update"),
        Rows("run", 2, "run: after metrics row 2, before the first checkpoint"),
        checkpoint_write("run"),
        Rows("run", 5),
        New("run", LATEST, "run: latest replaced (pruning the old checkpoints)"),
        checkpoint_write("run"),
        TornRow(Rows("run", 11), "run"),
        New("run", LATEST, "run: latest replaced (pruning the old checkpoints)"),
        Rows("run", 16),
        checkpoint_write("run"),
        Rows("run", 22),
        Rows("run", 30, "run: after the last row, before the last checkpoint"),
        last(New("run", r"ckpt-000030", "run: the last checkpoint renamed into place, before latest names it")),
        last(New("run", LATEST, "run: the last checkpoint done, before the command exits")),
    ]
    lines = chain(points, train_command(root, "rps.toml", "run"), root, root, log,
                  lambda: check_run(root / "run", reference))
    check_run(root / "run", reference, final=True)
    return lines


def sumo_train_chain(root: Path) -> list[str]:
    """sumo-pushers (MuJoCo), IPO-RARL with learned-location forces, 6 updates of 4 envs x 20 steps, a checkpoint
    after every update. Delays from the uninterrupted run's own timings put a kill into an update's rollout or
    its optimizer step: after the command (re)wrote metrics.csv (its first update begins) or a checkpoint. (The
    first update of a process is slower, warming up: there a kill lands earlier in the update.)"""
    root.mkdir()
    log = root / "log.txt"
    (root / "sumo.toml").write_text(TRAIN_SUMO)
    reference = reference_run(root, "sumo", ["train", "sumo.toml", "--no-progress"], log)
    rollout_seconds, update_seconds = timings(reference)
    mid_rollout, mid_update = rollout_seconds / 2, rollout_seconds + update_seconds / 2

    points = [
        Started("sumo", "sumo: mid-rollout of update 0", delay=mid_rollout),
        checkpoint_write("sumo"),
        Checkpointed("sumo", 2, "sumo: mid-rollout of update 2", delay=mid_rollout),
        Started("sumo", "sumo: mid-update of the first update after the resume", delay=mid_update),
        checkpoint_write("sumo"),
        Checkpointed("sumo", 4, "sumo: mid-update of update 4", delay=mid_update),
        Started("sumo", "sumo: mid-rollout of the first update after the resume", delay=mid_rollout),
        last(Checkpointed("sumo", 5, "sumo: mid-update of update 5, the last", delay=mid_update)),
        last(checkpoint_write("sumo")),
    ]
    lines = chain(points, train_command(root, "sumo.toml", "sumo"), root, root, log,
                  lambda: check_run(root / "sumo", reference))
    check_run(root / "sumo", reference, final=True)
    return lines


def test_killed_train_resumes_bit_identically(tmp_path):
    # the two runs are independent (each command has one thread): side by side on 2 cores, each watched by a
    # thread of this process; a short switch interval lets a watcher see its files within a poll while the other
    # thread checks a directory (the default, 5 ms, is a few of these updates)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        with ThreadPoolExecutor(2) as pool:
            chains = [pool.submit(rps_train_chain, tmp_path / "rps"), pool.submit(sumo_train_chain, tmp_path / "sumo")]
            lines = [line for future in chains for line in future.result()]
    finally:
        sys.setswitchinterval(switch)
    print("\ntrain kill points:\n" + "\n".join(lines))
    assert len(lines) >= 20


# ------------------------------------------------------------------------------------------------- eval
VICTIM = rps_config("simga", 12, 0, checkpoint_every=2)

SUITE = """\
[suite]
name = "faults"
executor = "serial"
out = "out"

[[victims]]
name = "trained"
train = "victim.toml"

[[victims]]
name = "handmade"
checkpoint = "victims/handmade"

[[attacks]]
name = "best-response"

[[attacks]]
name = "random"

[grid]
budgets = [1]
seeds = [0, 1, 2]
seats = [1, 2]
games = 32
"""


def check_suite(out: Path, reference: Path, final: bool = False) -> str:
    if not out.exists():
        assert not final
        return "no suite directory"
    names = visible(out)
    assert set(names) <= {"cells", "victims", "results.csv", "results.parquet", "suite.json"}, names
    notes = []
    cells = visible(out / "cells") if (out / "cells").exists() else []
    for name in cells:  # every cell file on disk is a finished cell, equal to the uninterrupted run's
        assert json_text(out / "cells" / name) == json_text(reference / "cells" / name), f"cell {name} differs"
    notes.append(f"{len(cells)} cells")
    for run in (out / "victims").iterdir() if (out / "victims").exists() else ():
        notes.append(check_run(run, reference / "victims" / run.name, final))
    if (out / "results.csv").exists():
        assert_same_csv(out / "results.csv", reference / "results.csv")
        notes.append("results.csv")
    if (out / "results.parquet").exists():
        table, expected = (pd.read_parquet(p / "results.parquet") for p in (out, reference))
        drop = [c for c in table.columns if c in WALL_CLOCK]
        pd.testing.assert_frame_equal(table.drop(columns=drop), expected.drop(columns=drop))
        notes.append("results.parquet")
    if (out / "suite.json").exists():
        assert (out / "suite.json").read_text() == (reference / "suite.json").read_text()
        notes.append("suite.json")
    if final:
        assert names == visible(reference) and cells == visible(reference / "cells")
    notes.append(hidden_files(out / "cells"))
    return "; ".join(filter(None, notes))


def test_killed_eval_resumes_to_the_same_results(tmp_path):
    log = tmp_path / "log.txt"
    (tmp_path / "victim.toml").write_text(VICTIM)
    (tmp_path / "suite.toml").write_text(SUITE)
    agents = (TabularCategoricalPolicy(3, logits=torch.tensor([2.0, 0.0, -1.0])),
              TabularCategoricalPolicy(3, logits=torch.tensor([-1.0, 0.5, 0.0])))
    save_agents(tmp_path / "victims" / "handmade", agents, "rock-paper-scissors")
    argv = ["eval", "suite.toml", "--no-progress"]
    reference = reference_run(tmp_path, "out", argv, log)
    victim = "victims/" + visible(reference / "victims")[0]  # out/victims/trained-<hash of its config>
    run = f"out/{victim}"

    def cell_write(count=1):
        return Either(New("out/cells", r"\..*\.tmp", "temporary file"), New("out/cells", r".*\.json", "cell", count),
                      "mid-cell write")

    points = [After(0.3, "during start-up (imports)")] + [or_results(point) for point in (
        New(run, r"metrics\.csv", "victim training started, before its first update"),
        Rows(run, 3, "victim: after metrics row 3"),
        checkpoint_write(run),
        New(run, LATEST, "victim: latest replaced (pruning)"),
        Rows(run, 9, "victim: after metrics row 9"),
        New(run, r"ckpt-000012", "victim: the last checkpoint renamed into place, before latest"),
        New(run, LATEST, "victim: trained, before suite-victim.json"),
        New(run, r"suite-victim\.json", "victim marked trained, before the first cell"),
        New("out/cells", r".*\.json", "after the first new cell"),
        cell_write(),
        New("out/cells", r".*\.json", "after 3 new cells", count=3),
        cell_write(),
        New("out/cells", r".*\.json", "after 2 new cells", count=2),
        cell_write(),
        New("out/cells", r".*\.json", "after 4 new cells", count=4),
        cell_write(),
        New("out/cells", r".*\.json", "after 2 new cells", count=2),
    )] + [  # every eval ends writing these
        New("out", r"results\.csv", "results.csv written, before results.parquet"),
        New("out", r"results\.parquet", "results.parquet written, before suite.json"),
        last(New("out", r"suite\.json", "suite.json written, before the command exits")),
    ]
    lines = chain(points, lambda: argv, tmp_path, tmp_path, log,
                  lambda: check_suite(tmp_path / "out", reference))
    check_suite(tmp_path / "out", reference, final=True)
    print("\neval kill points:\n" + "\n".join(lines))
    assert len(lines) >= 20


# ---------------------------------------------------------------------------------------------- compare
COMPARE = ["compare", "--env", "rock-paper-scissors", "--optimizers", "ipo-vpg,simga", "--seeds", "2",
           "--budget", "10", "--games", "4", "--executor", "serial", "--set", "env.num_envs=64", "--out", "out",
           "--no-progress"]


def check_compare(out: Path, reference: Path, final: bool = False) -> str:
    if not out.exists():
        assert not final
        return "no output directory"
    notes = []
    items = visible(out / "items") if (out / "items").exists() else []
    for name in items:  # every item file is a finished item, equal to the uninterrupted run's
        assert json_text(out / "items" / name) == json_text(reference / "items" / name), f"item {name} differs"
    notes.append(f"{len(items)} items")
    notes.append(hidden_files(out / "items"))
    for run in sorted((out / "runs").iterdir()) if (out / "runs").exists() else ():
        state = check_run(run, reference / "runs" / run.name, final)
        if f"{run.name}.json" not in items:  # (what the finished ones hold is checked, not shown)
            notes.append(f"{run.name}: {state}")
    for name in visible(out):
        path = out / name
        if name.endswith(".csv"):  # results, leaderboard, curves and the other tables
            assert_same_csv(path, reference / name)
        elif name.endswith(".png"):
            check_png(path)
            assert path.read_bytes() == (reference / name).read_bytes(), f"{name} differs"
        elif name.startswith("report."):
            assert masked(path.read_text()) == masked((reference / name).read_text()), f"{name} is not whole"
        else:
            assert name in ("items", "runs"), f"unexpected {name}"
            continue
        notes.append(name)
    if final:
        assert visible(out) == visible(reference) and items == visible(reference / "items")
    return "; ".join(filter(None, notes))


def test_killed_compare_resumes_to_the_same_results(tmp_path):
    log = tmp_path / "log.txt"
    reference = reference_run(tmp_path, "out", COMPARE, log)
    plots = [name for name in visible(reference) if name.endswith(".png")]
    assert plots

    def item(name):
        return f"out/runs/{name}"

    points = [After(0.3, "during start-up (imports)")] + [or_results(point) for point in (
        New(item("ipo-vpg-s0"), r"metrics\.csv", "ipo-vpg-s0: training started"),
        Rows(item("ipo-vpg-s0"), 3, "ipo-vpg-s0: after metrics row 3"),
        checkpoint_write(item("ipo-vpg-s0")),
        New(item("ipo-vpg-s0"), LATEST, "ipo-vpg-s0: latest replaced (pruning)"),
        Rows(item("ipo-vpg-s0"), 9, "ipo-vpg-s0: after metrics row 9"),
        New(item("ipo-vpg-s0"), r"ckpt-000010", "ipo-vpg-s0: last checkpoint in place, before latest"),
        New(item("ipo-vpg-s0"), LATEST, "ipo-vpg-s0: trained, attacking it"),
        New("out/items", r"ipo-vpg-s0\.json", "item ipo-vpg-s0 saved, before the next item"),
        Rows(item("ipo-vpg-s1"), 4, "ipo-vpg-s1: after metrics row 4"),
        checkpoint_write(item("ipo-vpg-s1")),
        Either(New("out/items", r"\..*\.tmp", "temporary file"), New("out/items", r"ipo-vpg-s1\.json", "item"),
               "ipo-vpg-s1: mid-item write"),
        Rows(item("simga-s0"), 1, "simga-s0: after metrics row 1"),
        checkpoint_write(item("simga-s0")),
        New("out/items", r"simga-s0\.json", "item simga-s0 saved, before the next item"),
        Rows(item("simga-s1"), 6, "simga-s1: after metrics row 6"),
        New(item("simga-s1"), LATEST, "simga-s1: latest replaced"),
    )] + [  # every compare ends writing these
        New("out", r"results\.csv", "results.csv written, before leaderboard.csv and the other tables"),
        New("out", re.escape(plots[0]), f"{plots[0]} written, before the report"),
        New("out", r"report\.md", "report.md written, before report.html"),
        last(New("out", r"report\.html", "report.html written, before the command exits")),
    ]
    lines = chain(points, lambda: COMPARE, tmp_path, tmp_path, log, lambda: check_compare(tmp_path / "out", reference))
    check_compare(tmp_path / "out", reference, final=True)
    print("\ncompare kill points:\n" + "\n".join(lines))
    assert len(lines) >= 20


def test_a_resume_deletes_the_old_checkpoints_a_killed_run_had_not_pruned(tmp_path):
    """A kill between ``latest`` and the pruning of old checkpoints: the resume prunes them (here the run was
    complete, so no new checkpoint is written that would prune them)."""
    from ipo_robust.config import load_toml
    from ipo_robust.train import run_training

    (tmp_path / "c.toml").write_text(TRAIN_RPS)
    config = load_toml(tmp_path / "c.toml")
    config["schedule"]["iterations"] = 9
    config["run"]["keep"] = 9  # as if the kill had come before the pruning
    run_training(config, tmp_path / "run")
    assert visible(tmp_path / "run") == ["ckpt-000003", "ckpt-000006", "ckpt-000009", LATEST, "metrics.csv"]
    config["run"]["keep"] = 2
    resumed = run_training(config, tmp_path / "run", resume=True)
    assert resumed.trained == 0
    assert visible(tmp_path / "run") == ["ckpt-000006", "ckpt-000009", LATEST, "metrics.csv"]
