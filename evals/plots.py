"""The plots of comparison reports (PNG, Agg backend): each ``figure_*`` builds an open Figure (the tests
measure it), each ``plot_*`` saves one and returns its path. :mod:`ipo_robust.evals.report` shows them."""

from __future__ import annotations

import io
import itertools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ipo_robust.atomic import atomic_write_bytes

# ------------------------------------------------------------------------------------------ plots
# Every figure uses matplotlib's constrained layout, so its title, axis labels, tick labels and outside
# legend are fitted inside the canvas when it is drawn; the title is the figure's (``suptitle``), wrapped
# to the figure's width. Counts on an x axis (env steps, iterations) read 0, 500k, 1M, 1.5M, ...
TITLE_FONTSIZE = 10
LEGEND_FONTSIZE = 8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _new_figure(width: float, height: float):
    return _pyplot().subplots(figsize=(width, height), layout="constrained")


def _title(fig, title: str, fontsize: float = TITLE_FONTSIZE):
    """The figure's title, wrapped (at spaces, never inside a word such as ``rock-paper-scissors`` unless
    one word alone is too wide) so that each line fits the figure's width; the figure grows by the extra
    lines. Returns the title's Text."""
    renderer = fig.canvas.get_renderer()
    room = 0.94 * fig.get_figwidth() * fig.dpi
    chars = max(12, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))  # a first guess; measured below
    while True:
        text = textwrap.fill(" ".join(title.split()), chars, break_on_hyphens=False) or title
        artist = fig.suptitle(text, fontsize=fontsize)
        if artist.get_window_extent(renderer).width <= room or chars <= 12:
            break
        chars = max(12, int(chars * 0.9))
    fig.set_figheight(fig.get_figheight() + text.count("\n") * 1.25 * fontsize / 72)
    return artist


def _count_label(value, _position=None) -> str:
    """1500 -> '1.5k', 125000 -> '125k', 2000000 -> '2M': short tick labels for counts."""
    value = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 0.9995 * scale:  # 999999 -> '1M', not '1e+03k'
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _count_axis(axis, nbins: int = 6) -> None:
    """At most ``nbins`` intervals at round integer counts, labelled in k / M / G."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10], integer=True, min_n_ticks=3))
    axis.set_major_formatter(FuncFormatter(_count_label))


def _drawn_xticklabels(ax) -> list:
    """The x tick labels drawn: those of ticks inside the view (``get_xticklabels`` also lists the
    locator's ticks just outside it, which are not drawn)."""
    low, high = sorted(ax.get_xlim())
    slack = 1e-9 * max(abs(low), abs(high), 1.0)
    return [label for label, at in zip(ax.get_xticklabels(), ax.get_xticks(), strict=False)
            if low - slack <= at <= high + slack and label.get_visible() and label.get_text()]


def _xtick_boxes(fig, ax) -> list:
    """Window extents of the drawn x tick labels, left to right (draws the figure: layout included)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return sorted((label.get_window_extent(renderer) for label in _drawn_xticklabels(ax)), key=lambda box: box.x0)


def _xticks_overlap(fig, ax) -> bool:
    """Whether two neighbouring x tick labels are closer than half an em (or overlap): they would read as
    one number, as "100000125000150000" did."""
    boxes = _xtick_boxes(fig, ax)
    labels = _drawn_xticklabels(ax)
    gap = 0.5 * (labels[0].get_fontsize() if labels else 10) * fig.dpi / 72
    return any(right.x0 - left.x1 < gap for left, right in itertools.pairwise(boxes))


def _fit_count_ticks(fig, ax) -> None:
    """Fewer ticks on a count axis while its labels would run into each other."""
    for nbins in (5, 4, 3, 2):
        if not _xticks_overlap(fig, ax):
            return
        _count_axis(ax.xaxis, nbins)


def _legend_outside(ax) -> None:
    """Legend right of the axes (constrained layout makes room for it): it never covers a curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  frameon=False)


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    # bbox_inches="tight": whatever the layout left outside the canvas is still in the image
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.08)
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def figure_exploitability(board: pd.DataFrame, seeds: pd.DataFrame, title: str):
    """The Figure :func:`plot_exploitability` saves (open: the caller closes it)."""
    fig, ax = _new_figure(min(max(4.5, 1.2 * len(board) + 2), 10.0), 3.6)
    x = np.arange(len(board))
    means = board["exploitability"].to_numpy(dtype=float)
    # the interval's columns: exploitability_low/_high, or low/high in leaderboards written before them
    low, high = (board[f"exploitability_{end}" if f"exploitability_{end}" in board else end].to_numpy(dtype=float)
                 for end in ("low", "high"))
    low, high = np.nan_to_num(means - low, nan=0.0), np.nan_to_num(high - means, nan=0.0)
    ax.bar(x, means, color="#8fb8de", edgecolor="#2f5f8a", yerr=[low, high], capsize=6, label="mean over seeds")
    for i, name in enumerate(board["optimizer"]):
        values = seeds.loc[seeds["optimizer"] == name, "exploitability"].to_numpy(dtype=float)
        ax.scatter(np.full(values.shape, i) + np.linspace(-0.12, 0.12, max(len(values), 1))[:len(values)], values,
                   color="#1b1b1b", s=14, zorder=3, label="seed" if i == 0 else None)
    ax.axhline(0.0, color="#777", linewidth=0.8)
    names = [str(name) for name in board["optimizer"]]
    ax.set_xticks(x, names)
    bound = str(board["bound"].iloc[0]) if len(board) else "exact"
    ax.set_ylabel("exploitability" + (" (lower bound)" if bound == "lower bound" else " (exact)"))
    _title(fig, title)
    # one row above the bars, right-aligned: it covers no bar, whisker or seed
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2,
              frameon=False)
    for rotation in (30, 90):  # optimizer names too long or too many for the bars' width: slant them
        if not _xticks_overlap(fig, ax):
            break
        ax.set_xticks(x, names, rotation=rotation, ha="right" if rotation < 90 else "center",
                      rotation_mode="anchor" if rotation < 90 else "default")
    if ax.get_xticklabels() and ax.get_xticklabels()[0].get_rotation():
        # the slanted names take height from the bars: give it back
        tallest = max(box.height for box in _xtick_boxes(fig, ax)) / fig.dpi
        fig.set_figheight(fig.get_figheight() + max(0.0, tallest - 0.2))
    return fig


def plot_exploitability(board: pd.DataFrame, seeds: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Bars: mean exploitability per optimizer (leaderboard order) with its 95 % interval; dots: seeds."""
    return _save(figure_exploitability(board, seeds, title), Path(path))


def figure_learning_curves(curves: pd.DataFrame, metric: str, title: str):
    """The Figure :func:`plot_learning_curves` saves (open: the caller closes it)."""
    fig, ax = _new_figure(7.0, 3.6)
    for name, group in curves.groupby("optimizer", sort=False):
        table = group.pivot_table(index="env_steps", columns="seed", values=metric)
        x = table.index.to_numpy(dtype=float)
        ax.plot(x, table.mean(axis=1), label=name)
        if table.shape[1] > 1:
            ax.fill_between(x, table.min(axis=1), table.max(axis=1), alpha=0.2)
    ax.set_xlabel("training env steps (per agent pair)")
    ax.set_ylabel(metric)
    _count_axis(ax.xaxis)
    _title(fig, title)
    _legend_outside(ax)
    _fit_count_ticks(fig, ax)
    return fig


def plot_learning_curves(curves: pd.DataFrame, path: str | Path, metric: str, title: str) -> Path:
    """``metric`` per env step: mean over seeds (line) and min..max over seeds (band), per optimizer."""
    return _save(figure_learning_curves(curves, metric, title), Path(path))


def figure_robustness(robustness: pd.DataFrame, title: str):
    """The Figure :func:`plot_robustness` saves (open: the caller closes it)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _new_figure(7.0, 3.6)
    names = list(dict.fromkeys(robustness["optimizer"]))
    for k, (name, group) in enumerate(robustness.groupby("optimizer", sort=False)):
        per_seed = group.groupby(["value", "seed"])["return"].mean().unstack("seed")
        x = per_seed.index.to_numpy(dtype=float) + (k - (len(names) - 1) / 2) * 0.008  # keep equal lines apart
        mean = per_seed.mean(axis=1).to_numpy()
        ax.errorbar(x, mean, yerr=[mean - per_seed.min(axis=1).to_numpy(), per_seed.max(axis=1).to_numpy() - mean],
                    marker="o", capsize=3, label=name)
    ax.axvline(1.0, color="#777", linewidth=0.8, linestyle=":")
    opponent = str(robustness["opponent"].iloc[0]) if "opponent" in robustness else "victim"
    ax.set_xlabel("mass scale of the swept agent's bodies (1 = as trained)")
    ax.set_ylabel("mean return vs " + ("a random opponent" if opponent == "random" else "its partner")
                  + "\n(sparse: win 1, loss -1)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    _title(fig, title)
    _legend_outside(ax)
    return fig


def plot_robustness(robustness: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Victim return per mass scale: mean over seeds and both seats, per optimizer (dots and whiskers:
    the mean's min..max over seeds)."""
    return _save(figure_robustness(robustness, title), Path(path))


def figure_exact_curves(curves: pd.DataFrame, title: str):
    """The Figure :func:`plot_exact_curves` saves (open: the caller closes it)."""
    fig, ax = _new_figure(7.0, 3.6)
    for name, group in curves.groupby("optimizer", sort=False):
        ax.plot(group["iteration"], np.maximum(group["eval/exploitability"].to_numpy(dtype=float), 1e-12), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (exact gradients)")
    ax.set_ylabel("exploitability = NashConv / 2 (exact)")
    _count_axis(ax.xaxis)
    _title(fig, title)
    _legend_outside(ax)
    _fit_count_ticks(fig, ax)
    return fig


def plot_exact_curves(curves: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Exact exploitability per iteration (log scale), one line per optimizer."""
    return _save(figure_exact_curves(curves, title), Path(path))


def figure_strength(board: pd.DataFrame, title: str):
    """The Figure :func:`plot_strength` saves: per optimizer, exploitability (x, lower is better) against
    Bradley-Terry strength (y, higher is better), each with its interval over seeds."""
    fig, ax = _new_figure(7.0, 3.8)
    for row in board.itertuples():
        xerr = None if row.exploitability_low != row.exploitability_low else \
            [[row.exploitability - row.exploitability_low], [row.exploitability_high - row.exploitability]]
        yerr = None if row.strength_low != row.strength_low else \
            [[row.strength - row.strength_low], [row.strength_high - row.strength]]
        ax.errorbar([row.exploitability], [row.strength], xerr=xerr, yerr=yerr, marker="o", capsize=4,
                    label=row.optimizer)
    bound = str(board["bound"].iloc[0]) if len(board) else "exact"
    ax.set_xlabel("exploitability" + (" (lower bound)" if bound == "lower bound" else " (exact)")
                  + ": lower is harder to exploit")
    ax.set_ylabel("strength (Bradley-Terry log-strength\nin the round robin): higher plays better")
    ax.axhline(0.0, color="#777", linewidth=0.8, linestyle=":")
    _title(fig, title)
    _legend_outside(ax)
    return fig


def plot_strength(board: pd.DataFrame, path: str | Path, title: str) -> Path:
    return _save(figure_strength(board, title), Path(path))
