"""The statistics of a comparison (:mod:`ipo_robust.evals.compare`): per-seat lower bounds, per-seed
exploitability and the leaderboard with bootstrap intervals over seeds.

Per optimizer x seed x seat at one attack budget, the exploitability (game units: attacker return minus
partner return) is the max over the attacker seeds, each attacker's figure being a lower bound; per
optimizer x seed, the mean over both seats (seat 1: the victim's agent 1 attacked, seat 2: its agent 2, as
configs number agents). The leaderboard holds, per optimizer, the mean over seeds and its 95 % percentile
bootstrap interval (:func:`ipo_robust.evals.statistics.aggregate`, which resamples the seeds; no interval with
a single seed, and none from a Student-t quantile), plus the IQM, sorted best (least exploitable) first.
Plain tables in, plain tables out: both the comparison and its report (:mod:`ipo_robust.evals.report`) use
this module, neither the other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

INTERVAL = "95% percentile bootstrap interval over seeds (stratified, rliable's scheme)"


def at_budget(results: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """The rows of one attack budget (the largest when ``budget`` is None); all rows of results without
    budgets (records written before budget curves)."""
    if "budget" not in results or not len(results):
        return results
    budget = int(results["budget"].max()) if budget is None else int(budget)
    return results[results["budget"] == budget]


def per_seat(results: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """One row per optimizer x seed x seat at ``budget``: ``exploitability`` is the max over attacker seeds
    (each attacker's figure is a lower bound, so the best one is the tightest), ``attackers_mean`` the mean."""
    rows = at_budget(results, budget)
    if "attacker_seed" not in rows:
        rows = rows.assign(attacker_seed=0)
    grouped = rows.groupby(["optimizer", "seed", "seat"], sort=False)
    return grouped.agg(exploitability=("exploitability", "max"), attackers_mean=("exploitability", "mean"),
                       attackers=("attacker_seed", "nunique"), train_seconds=("train_seconds", "first"),
                       env_steps=("env_steps", "first"), bound=("bound", "first")).reset_index()


def per_seed(results: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """One row per optimizer x seed: exploitability = the mean over the two seats of :func:`per_seat`."""
    seats = per_seat(results, budget)
    grouped = seats.groupby(["optimizer", "seed"], sort=False)
    return grouped.agg(exploitability=("exploitability", "mean"), attackers_mean=("attackers_mean", "mean"),
                       train_seconds=("train_seconds", "first"), env_steps=("env_steps", "first"),
                       bound=("bound", "first")).reset_index()


def leaderboard(results: pd.DataFrame, budget: int | None = None, ranked: bool = True) -> pd.DataFrame:
    """Per optimizer at ``budget``: seeds, mean exploitability over seeds and its interval, the mean over
    attacker seeds beside, per-seat means (``seat1``, ``seat2``); sorted best (lowest mean) first.
    ``ranked=False`` (an attack its positive control did not certify) leaves ``rank`` empty."""
    seeds = per_seed(results, budget)
    seats = per_seat(results, budget)
    from ipo_robust.evals.statistics import aggregate_groups

    stats = aggregate_groups(seeds, "optimizer", "exploitability")
    rows = []
    for name, group in seeds.groupby("optimizer", sort=False):
        mean, low, high, iqm = (float(stats.loc[name, k]) for k in ("mean", "mean_low", "mean_high", "iqm"))
        if len(group) < 2:
            low = high = math.nan  # one seed: no interval
        by_seat = seats[seats["optimizer"] == name].groupby("seat")["exploitability"].mean()
        rows.append({"optimizer": name, "seeds": int(len(group)), "exploitability": mean,
                     "exploitability_low": low, "exploitability_high": high, "exploitability_iqm": iqm,
                     "attackers_mean": float(group["attackers_mean"].mean()),
                     "std": float(group["exploitability"].std(ddof=1)) if len(group) > 1 else math.nan,
                     "seat1": float(by_seat.get(1, math.nan)), "seat2": float(by_seat.get(2, math.nan)),
                     "bound": str(group["bound"].iloc[0]), "interval": INTERVAL,
                     "env_steps": int(group["env_steps"].iloc[0]),
                     "train_seconds": float(group["train_seconds"].mean())})
    board = pd.DataFrame(rows)
    if len(board):
        board = board.sort_values("exploitability", na_position="last", kind="stable").reset_index(drop=True)
        board.insert(0, "rank", np.arange(1, len(board) + 1) if ranked else [math.nan] * len(board))
    return board


def leaderboard_rows(board: pd.DataFrame) -> list[tuple[str, ...]]:
    """The leaderboard as printable rows (header first); lower bounds say so in the header."""
    bound = str(board["bound"].iloc[0]) if len(board) else "exact"
    header = "EXPLOITABILITY" + (" (LOWER BOUND)" if bound == "lower bound" else " (EXACT)")
    strength = "strength" in board
    rows = [("RANK", "OPTIMIZER", "SEEDS", header, "95% INTERVAL", "SEAT 1", "SEAT 2",
             *(("STRENGTH (BT)", "WIN VS RANDOM") if strength else ()), "TRAIN S")]
    for row in board.itertuples():
        interval = ("n/a (1 seed)" if row.seeds < 2 else
                    f"[{row.exploitability_low:.3g}, {row.exploitability_high:.3g}]")
        rank = "-" if row.rank != row.rank else str(int(row.rank))  # NaN: not ranked (attack not certified)
        extra = ()
        if strength:
            spread = ("" if row.strength_low != row.strength_low else
                      f" [{row.strength_low:+.2f}, {row.strength_high:+.2f}]")
            extra = (f"{round(row.strength, 2) + 0.0:+.2f}{spread}", f"{row.win_vs_random:.2f}")  # log-odds units
        rows.append((rank, row.optimizer, str(row.seeds), f"{row.exploitability:.3g}", interval,
                     f"{row.seat1:.3g}", f"{row.seat2:.3g}", *extra, f"{row.train_seconds:.1f}"))
    return rows


def conclusions(board: pd.DataFrame, confidence: float = 0.95) -> list[str]:
    """The honest sentences of a leaderboard (:func:`ipo_robust.evals.statistics.conclusion`): a difference
    in exploitability only between optimizers whose intervals separate, else "no difference detected at this
    budget"; nothing at all when the board is not ranked (the attack was not certified)."""
    from ipo_robust.evals.statistics import conclusion

    if not len(board) or board["rank"].isna().all():
        return []
    table = board.rename(columns={"optimizer": "name", "seeds": "n"})
    return conclusion(table, "exploitability", lower_is_better=True, comparative="less exploitable",
                      confidence=confidence)
