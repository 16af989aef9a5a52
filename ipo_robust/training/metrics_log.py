"""What a run records: one metrics row per update, in ``metrics.csv`` and TensorBoard, and failed solves.

A row holds the update and iteration numbers, the holder and alpha, env steps and steps/s, the
episode outcomes of the batch (:func:`episode_outcomes`: ``train/return1``, ``train/win1``, ...) and
every number the optimizer's step returned (``optim/...``).

Failed solves. An optimizer's Krylov solve that stops short of its tolerance issues a
:class:`~ipo_robust.optim.krylov.ConvergenceWarning`; inside training these are recorded, not printed
once per update (:class:`SolveFailureCounter`): each metrics row has ``optim/solve_failures`` (failed
solves in this update) and ``optim/solve_failures_total`` (so far in the run, resumed updates included),
and :func:`solve_failure_summary` is the one line the commands print at the end of a run.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import pandas as pd
import torch

from ipo_robust.atomic import atomic_write_text
from ipo_robust.errors import ConfigError
from ipo_robust.optim.krylov import ConvergenceWarning


class SolveFailureCounter:
    """Runs optimizer calls with their ConvergenceWarnings counted instead of printed.

    ``counter(call, *args)`` returns ``call(*args)`` and adds the ConvergenceWarnings the call issued to
    ``last`` (that call's count) and ``total``. Any other warning is shown as usual, once per message
    and place over the counter's life (as Python's default filter would), not once per update.
    """

    def __init__(self, total: int = 0):
        self.total, self.last = int(total), 0
        self._registry: dict = {}

    def __call__(self, call, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = call(*args, **kwargs)
        self.last = 0
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                self.last += 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=self._registry)
        self.total += self.last
        return result


def solve_failure_summary(metrics: pd.DataFrame) -> str | None:
    """One line on the failed Krylov solves of a run (metrics rows with ``optim/solve_failures``), or None
    when every solve reached its tolerance."""
    if metrics is None or "optim/solve_failures" not in getattr(metrics, "columns", ()):
        return None
    failures = metrics["optim/solve_failures"].fillna(0)
    total = int(failures.sum())
    if total == 0:
        return None
    worst = ""
    if "optim/residual" in metrics.columns:
        residuals = metrics.loc[failures > 0, "optim/residual"].dropna()
        if len(residuals):
            worst = f", largest relative residual {float(residuals.max()):.1e}"
    return (f"solver: {total} Krylov solve{'s' if total != 1 else ''} in {int((failures > 0).sum())} of "
            f"{len(metrics)} updates stopped short of the tolerance{worst} (optim/solve_failures in "
            "metrics.csv); raise optimizer.options.max_iter or set a looser optimizer.options.rtol")


def episode_outcomes(batch) -> dict:
    """Undiscounted returns and outcomes of the batch's complete episodes (the env's task rewards).

    A win of agent 1 is an episode that ends by termination with agent 1's last reward > 0 (its
    opponent failed: pushed out, fell); ``nan`` rates when no episode ended.
    """
    returns1, returns2 = batch.discounted_returns(1.0)
    ended = batch.done & batch.complete & batch.terminated
    last1 = batch.rew1[ended].to(torch.float64)
    episodes = int((batch.first & batch.complete).sum())
    out = {"train/episodes": episodes,
           "train/return1": float(returns1.mean()) if episodes else float("nan"),
           "train/return2": float(returns2.mean()) if episodes else float("nan")}
    out["train/win1"] = float((last1 > 0).sum()) / episodes if episodes else float("nan")
    out["train/win2"] = float((last1 < 0).sum()) / episodes if episodes else float("nan")
    return out


class MetricsLog:
    """metrics.csv of a run: one row per update, appended and flushed as it comes; on resume the rows
    after the checkpoint, and a last row a kill cut short, are dropped (atomically) so the file matches the
    restored state."""

    def __init__(self, path: Path, resume_from: int | None):
        self.path = path
        self.rows: list[dict] = []
        if resume_from is not None and path.exists():
            text = path.read_text(encoding="utf-8")
            # rows are appended as they come, so a kill can cut the last one short: a line without its
            # newline is incomplete (read as a row, "1" of "12,..." would be an update 1 of NaNs), drop it
            text = text[:text.rfind("\n") + 1]
            if text:
                previous = pd.read_csv(io.StringIO(text))
                previous = previous[previous["update"] < resume_from]
                self.rows = previous.to_dict("records")
        self._columns: list[str] | None = None
        self._rewrite()

    def _rewrite(self) -> None:
        frame = pd.DataFrame(self.rows)
        atomic_write_text(self.path, frame.to_csv(index=False) if self.rows else "")
        self._columns = list(frame.columns) if self.rows else None

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self._columns is None or set(row) - set(self._columns):
            self._rewrite()  # a new column: rewrite the file with the wider header
            return
        line = pd.DataFrame([row], columns=self._columns).to_csv(index=False, header=False)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def total(self, key: str) -> float:
        """The sum of a column over the rows so far (missing or NaN entries count 0)."""
        values = (row.get(key) for row in self.rows)
        return sum(v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and v == v)


def tensorboard_writer(run_dir: Path, setting, start: int):
    """A SummaryWriter in run_dir/tensorboard (events after ``start`` purged on resume), or None."""
    if setting is False:
        return None
    try:  # imported here: tensorboard is an optional dependency
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if setting is True:
            raise ConfigError("config: run.tensorboard = true but tensorboard is not installed "
                              "(pip install tensorboard), or set it to \"auto\"") from None
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start + 1 if start else None)


def write_scalars(board, row: dict, step: int) -> None:
    """Every number of a metrics row but ``update`` (booleans left out) as a TensorBoard scalar."""
    for key, value in row.items():
        if key != "update" and isinstance(value, int | float) and not isinstance(value, bool):
            board.add_scalar(key, value, global_step=step)


def progress_postfix(row: dict) -> str:
    """The progress bar's summary of a metrics row."""
    parts = [f"{row['steps_per_second']:.0f} steps/s"]
    if row.get("train/episodes"):
        parts.append(f"R1 {row['train/return1']:.2f}")
        if not math.isnan(row["train/win1"]):
            parts.append(f"win1 {row['train/win1']:.2f}")
    if "optim/iterations" in row:
        parts.append(f"CG {row['optim/iterations']}")
    if row["holder"] > 0:
        parts.append(f"alpha{row['holder']} {row['alpha']:.2f}")
    return ", ".join(parts)
