"""Every report plot is readable: measured with matplotlib's renderer on the drawn figure, its title, tick
labels, axis labels and legend lie inside the canvas, x tick labels never run into each other, legends sit
beside the data, and the PNG is written. Inputs are realistic and long: a ~120-character title, up to
2,000,000 env steps, 6 optimizers."""

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402

from ipo_robust.evals import plots as report  # noqa: E402

OPTIMIZERS = ["ipo-vpg", "ipo-trpo", "simga", "ppo", "lookahead", "ncgd"]
LONG_NAMES = [f"natural-cgd-krylov-variant-{k}" for k in range(6)]
TITLE = ("sumo-pushers: exploitability of every optimizer against a trained PPO adversary, mean and "
         "95% Student-t interval over seeds")
TOLERANCE = 0.5  # pixels
MIN_GAP_EM = 0.5  # between neighbouring x tick labels


def board_and_seeds(names, interval=("exploitability_low", "exploitability_high")):
    rng = np.random.default_rng(0)
    means = np.sort(rng.uniform(0.0, 1.0, len(names)))
    board = pd.DataFrame({"rank": np.arange(1, len(names) + 1), "optimizer": names, "seeds": 3,
                          "exploitability": means, interval[0]: means - 0.4, interval[1]: means + 0.4,
                          "bound": "lower bound"})
    seeds = pd.DataFrame([{"optimizer": name, "seed": seed, "exploitability": mean + rng.normal(0, 0.1)}
                          for name, mean in zip(names, means, strict=True) for seed in range(3)])
    return board, seeds


def learning_curves(names=OPTIMIZERS, steps=2_000_000, points=100):
    rng = np.random.default_rng(1)
    env_steps = np.linspace(steps / points, steps, points).astype(int)
    return pd.DataFrame([{"optimizer": name, "seed": seed, "update": u, "env_steps": s,
                          "train/return1": np.tanh(s / steps * 3 - k / 3) + rng.normal(0, 0.1)}
                         for k, name in enumerate(names) for seed in range(3) for u, s in enumerate(env_steps)])


def robustness_table(names=OPTIMIZERS):
    rng = np.random.default_rng(2)
    return pd.DataFrame([{"optimizer": name, "seed": seed, "seat": seat, "value": value, "opponent": "random",
                          "return": float(np.clip(1 - abs(value - 1) - k / 10 + rng.normal(0, 0.1), -1, 1))}
                         for k, name in enumerate(names) for seed in range(3) for seat in (1, 2)
                         for value in np.linspace(0.5, 1.5, 11)])


def exact_curves(names=OPTIMIZERS, iterations=2_000_000):
    return pd.DataFrame([{"optimizer": name, "iteration": i, "eval/exploitability": np.exp(-i / iterations * (k + 1))}
                         for k, name in enumerate(names) for i in np.linspace(0, iterations, 201).astype(int)])


# ------------------------------------------------------------------------------------------ checks
def inside(box, frame) -> bool:
    return (box.x0 >= frame.x0 - TOLERANCE and box.x1 <= frame.x1 + TOLERANCE
            and box.y0 >= frame.y0 - TOLERANCE and box.y1 <= frame.y1 + TOLERANCE)


def drawn(labels, ticks, limits):
    """Tick labels of the ticks inside the view: ``get_*ticklabels`` also lists undrawn ones just outside."""
    low, high = sorted(limits)
    slack = 1e-9 * max(abs(low), abs(high), 1.0)
    return [label for label, at in zip(labels, ticks, strict=True) if low - slack <= at <= high + slack]


def extents(texts, renderer):
    return [text.get_window_extent(renderer) for text in texts if text.get_visible() and text.get_text()]


def check_readable(fig, title):
    """The drawn figure keeps title, labels, tick labels and legend inside; x tick labels do not overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    titles = [t for t in fig.findobj(matplotlib.text.Text) if " ".join(t.get_text().split()) == " ".join(title.split())]
    assert len(titles) == 1, "the title is drawn once (wrapped lines allowed)"
    assert inside(titles[0].get_window_extent(renderer), frame), "the title is cut"
    (ax,) = fig.axes
    assert not titles[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), "title over the axes"
    xticks = extents(drawn(ax.get_xticklabels(), ax.get_xticks(), ax.get_xlim()), renderer)
    yticks = extents(drawn(ax.get_yticklabels(), ax.get_yticks(), ax.get_ylim()), renderer)
    assert len(xticks) >= 2 and len(yticks) >= 2
    for box in xticks + yticks:
        assert inside(box, frame), "a tick label falls outside the figure"
    for a in range(len(xticks)):
        for b in range(a + 1, len(xticks)):
            assert not xticks[a].overlaps(xticks[b]), "two x tick labels overlap"
    # and neighbours keep at least half an em apart (the old "100000125000150000" kept 1.5 pixels)
    gap = MIN_GAP_EM * ax.get_xticklabels()[0].get_fontsize() * fig.dpi / 72
    ordered = sorted(xticks, key=lambda box: box.x0)
    for left, right in itertools.pairwise(ordered):
        assert right.x0 - left.x1 >= gap, "two x tick labels run into each other"
    for label in (ax.xaxis.label, ax.yaxis.label):
        if label.get_text():
            assert inside(label.get_window_extent(renderer), frame), "an axis label falls outside the figure"
    legend = ax.get_legend()
    assert legend is not None
    assert inside(legend.get_window_extent(renderer), frame), "the legend falls outside the figure"
    return ax, legend, renderer


def check_png(path, written):
    assert written == path and path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_legend_beside(ax, legend, renderer):
    """The legend shares no pixel with the axes' data area: it covers no curve."""
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


# ------------------------------------------------------------------------------------------ plots
@pytest.mark.parametrize("names", [OPTIMIZERS, OPTIMIZERS[:2], LONG_NAMES], ids=["six", "two", "long-names"])
def test_exploitability_bars_are_readable(tmp_path, names):
    board, seeds = board_and_seeds(names)
    fig = report.figure_exploitability(board, seeds, TITLE)
    try:
        ax, legend, renderer = check_readable(fig, TITLE)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(names)
        check_legend_beside(ax, legend, renderer)
        if names is LONG_NAMES:
            assert ax.get_xticklabels()[0].get_rotation() > 0, "long names are slanted, not overlapped"
    finally:
        plt.close(fig)
    path = tmp_path / "exploitability.png"
    check_png(path, report.plot_exploitability(board, seeds, path, TITLE))


def test_exploitability_bars_read_leaderboards_with_low_and_high_columns():
    """Leaderboards written before the interval columns were named exploitability_low/_high."""
    board, seeds = board_and_seeds(OPTIMIZERS, interval=("low", "high"))
    fig = report.figure_exploitability(board, seeds, TITLE)
    try:
        check_readable(fig, TITLE)
        (bars,) = [c for c in fig.axes[0].containers if isinstance(c, matplotlib.container.BarContainer)]
        whiskers = [(seg[0][1], seg[1][1]) for seg in bars.errorbar.lines[2][0].get_segments()]
        assert np.allclose(np.sort(whiskers, axis=1), board[["low", "high"]].to_numpy())
        assert [round(bar.get_height(), 9) for bar in bars] == [round(m, 9) for m in board["exploitability"]]
    finally:
        plt.close(fig)


def test_learning_curves_are_readable(tmp_path):
    curves = learning_curves()
    fig = report.figure_learning_curves(curves, "train/return1", TITLE)
    try:
        ax, legend, renderer = check_readable(fig, TITLE)
        labels = [t.get_text() for t in drawn(ax.get_xticklabels(), ax.get_xticks(), ax.get_xlim())]
        assert all(len(label) <= 5 for label in labels), labels
        assert any(label.endswith("M") for label in labels) and "2M" in labels, labels
        check_legend_beside(ax, legend, renderer)
        assert [t.get_text() for t in legend.get_texts()] == OPTIMIZERS
    finally:
        plt.close(fig)
    path = tmp_path / "learning.png"
    check_png(path, report.plot_learning_curves(curves, path, "train/return1", TITLE))


@pytest.mark.parametrize("steps", [204_800, 2_000_000, 60])
def test_learning_curve_steps_never_run_together(steps):
    """The budget of the issue (204,800 steps: once "100000125000150000...") and others."""
    fig = report.figure_learning_curves(learning_curves(OPTIMIZERS[:4], steps=steps, points=50), "train/return1",
                                        "rock-paper-scissors: train/return1 during training (mean; band: min..max "
                                        "over seeds)")
    try:
        check_readable(fig, "rock-paper-scissors: train/return1 during training (mean; band: min..max over seeds)")
    finally:
        plt.close(fig)


def test_robustness_curves_are_readable(tmp_path):
    table = robustness_table()
    fig = report.figure_robustness(table, TITLE)
    try:
        ax, legend, renderer = check_readable(fig, TITLE)
        check_legend_beside(ax, legend, renderer)
    finally:
        plt.close(fig)
    path = tmp_path / "robustness.png"
    check_png(path, report.plot_robustness(table, path, TITLE))


def test_exact_curves_are_readable(tmp_path):
    curves = exact_curves()
    fig = report.figure_exact_curves(curves, TITLE)
    try:
        ax, legend, renderer = check_readable(fig, TITLE)
        check_legend_beside(ax, legend, renderer)
    finally:
        plt.close(fig)
    path = tmp_path / "exact.png"
    check_png(path, report.plot_exact_curves(curves, path, TITLE))


def test_plot_functions_close_their_figures(tmp_path):
    before = len(plt.get_fignums())
    board, seeds = board_and_seeds(OPTIMIZERS)
    report.plot_exploitability(board, seeds, tmp_path / "a.png", TITLE)
    report.plot_learning_curves(learning_curves(points=10), tmp_path / "b.png", "train/return1", TITLE)
    report.plot_robustness(robustness_table(), tmp_path / "c.png", TITLE)
    report.plot_exact_curves(exact_curves(), tmp_path / "d.png", TITLE)
    assert len(plt.get_fignums()) == before


@pytest.mark.parametrize("value, label", [(0, "0"), (500, "500"), (1500, "1.5k"), (125_000, "125k"),
                                          (999, "999"), (999_999, "1M"), (1_000_000, "1M"), (1_500_000, "1.5M"),
                                          (2_000_000, "2M"), (3_000_000_000, "3G")])
def test_count_tick_labels_are_short(value, label):
    assert report._count_label(value) == label
