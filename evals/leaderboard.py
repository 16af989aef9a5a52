"""The statistics of a comparison (:mod:`ipo_robust.evals.compare`): per-seed exploitability and the
leaderboard with its Student-t intervals over seeds.

Per optimizer x seed the exploitability is the mean over the two seats; the leaderboard holds, per
optimizer, its mean over seeds and a two-sided 95 % Student-t interval
``mean +- t_{0.975, n-1} s / sqrt(n)`` (s the sample standard deviation over the n seeds; no interval
for a single seed), sorted best (least exploitable) first. Plain tables in, plain tables out: both the
comparison and its report (:mod:`ipo_robust.evals.report`) use this module, neither the other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

INTERVAL = "95% Student-t interval over seeds"


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student-t interval of the mean; low = high = NaN for n < 2."""
    from scipy.stats import t as student_t  # scipy is optional (not a dependency of the package)

    x = np.asarray([v for v in values if v == v], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(student_t.ppf(0.5 + confidence / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def per_seed(results: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer x seed: exploitability = the mean over the two seats."""
    grouped = results.groupby(["optimizer", "seed"], sort=False)
    table = grouped.agg(exploitability=("exploitability", "mean"), train_seconds=("train_seconds", "first"),
                        env_steps=("env_steps", "first"), bound=("bound", "first")).reset_index()
    return table


def leaderboard(results: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer: seeds, mean exploitability over seeds, its 95 % t-interval, per-seat means;
    sorted best (lowest mean) first."""
    seeds = per_seed(results)
    rows = []
    for name, group in seeds.groupby("optimizer", sort=False):
        mean, low, high = t_interval(group["exploitability"])
        seats = results[results["optimizer"] == name].groupby("seat")["exploitability"].mean()
        rows.append({"optimizer": name, "seeds": int(len(group)), "exploitability": mean, "low": low, "high": high,
                     "std": float(group["exploitability"].std(ddof=1)) if len(group) > 1 else math.nan,
                     "seat0": float(seats.get(0, math.nan)), "seat1": float(seats.get(1, math.nan)),
                     "bound": str(group["bound"].iloc[0]), "interval": INTERVAL,
                     "env_steps": int(group["env_steps"].iloc[0]),
                     "train_seconds": float(group["train_seconds"].mean())})
    board = pd.DataFrame(rows)
    if len(board):
        board = board.sort_values("exploitability", na_position="last", kind="stable").reset_index(drop=True)
        board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


def leaderboard_rows(board: pd.DataFrame) -> list[tuple[str, ...]]:
    """The leaderboard as printable rows (header first); lower bounds say so in the header."""
    bound = str(board["bound"].iloc[0]) if len(board) else "exact"
    header = "EXPLOITABILITY" + (" (LOWER BOUND)" if bound == "lower bound" else " (EXACT)")
    rows = [("RANK", "OPTIMIZER", "SEEDS", header, "95% T-INTERVAL", "SEAT 0", "SEAT 1", "TRAIN S")]
    for row in board.itertuples():
        interval = "n/a (1 seed)" if row.seeds < 2 else f"[{row.low:.3g}, {row.high:.3g}]"
        rows.append((str(row.rank), row.optimizer, str(row.seeds), f"{row.exploitability:.3g}", interval,
                     f"{row.seat0:.3g}", f"{row.seat1:.3g}", f"{row.train_seconds:.1f}"))
    return rows
