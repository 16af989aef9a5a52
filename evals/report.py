"""Reports of comparisons: one list of blocks written as Markdown (``report.md``, images beside it) and
as a self-contained HTML page (``report.html``, images embedded as data URIs, no external files), plus
the matplotlib plots (PNG, Agg backend) they show.

A report reads a comparison's result by its attributes (``spec``, ``results``, ``leaderboard``, ...)
and its statistics from :mod:`ipo_robust.evals.leaderboard`; it never imports
:mod:`ipo_robust.evals.compare`, which imports it.

::

    report = Report("Comparison on sumo-pushers")
    compare_section(report, result, image_dir=out)     # leaderboard, bars, learning and robustness curves
    report.write(out)                                   # -> [out/report.md, out/report.html]
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ipo_robust.atomic import atomic_write_bytes, atomic_write_text
from ipo_robust.evals.leaderboard import INTERVAL, per_seed

LOWER_BOUND_NOTE = (
    "**How to read a lower bound.** A trained attacker (`ppo-adversary`) only shows what *one* attacker "
    "found with a finite budget: the victim is at least this exploitable, possibly much more. A value "
    "near 0 does not certify robustness, and two optimizers whose intervals overlap are not told apart. "
    "The exploitability here is in game units: per seat, the attacker's mean return against the frozen "
    "victim minus the mean return the victim's own trained partner gets in that seat (the max over the "
    "attacker seeds, then the mean over both seats). The positive controls say whether the attack could "
    "win at all: it is the same attack and budget against known-weak victims.")

EXACT_NOTE = (
    "**Exact.** In matrix games the attack is the exact best response (`best-response`): per seat, the "
    "best-response value minus the value of the victim's own partner; the mean over both seats is "
    "NashConv / 2 (OpenSpiel's exploitability in zero-sum games), in payoff units, 0 exactly at a Nash "
    "equilibrium. Iterated games use the exact discounted values of the memory-one policies.")


# ------------------------------------------------------------------------------------------ blocks
@dataclass
class Block:
    kind: str  # heading | paragraph | bullets | table | image | code
    content: object
    level: int = 2
    caption: str = ""


def _inline_html(text: str) -> str:
    """Escape, then the two Markdown inline forms the reports use: `code` and **bold**."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


class Report:
    """An ordered list of blocks, written as Markdown and as self-contained HTML (module docstring)."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Block("paragraph", text))

    def bullets(self, items) -> None:
        self.blocks.append(Block("bullets", list(items)))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(Block("table", frame.copy(), caption=caption))

    def image(self, path: str | Path, caption: str) -> None:
        self.blocks.append(Block("image", Path(path), caption=caption))

    def code(self, text: str) -> None:
        self.blocks.append(Block("code", text))

    # -- writers ----------------------------------------------------------------------------------
    def to_markdown(self, base: Path) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            if block.kind == "heading":
                lines += ["#" * block.level + " " + block.content, ""]
            elif block.kind == "paragraph":
                lines += [block.content, ""]
            elif block.kind == "bullets":
                lines += [f"- {item}" for item in block.content] + [""]
            elif block.kind == "code":
                lines += ["```", block.content.rstrip("\n"), "```", ""]
            elif block.kind == "table":
                frame = block.content
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
                lines.append("| " + " | ".join(str(c) for c in frame.columns) + " |")
                lines.append("|" + "---|" * len(frame.columns))
                for row in frame.itertuples(index=False):
                    lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
                lines.append("")
            elif block.kind == "image":
                relative = _relative(block.content, base)
                lines += [f"![{block.caption}]({relative})", "", f"*{block.caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if block.kind == "heading":
                parts.append(f"<h{block.level}>{_inline_html(block.content)}</h{block.level}>")
            elif block.kind == "paragraph":
                parts.append(f"<p>{_inline_html(block.content)}</p>")
            elif block.kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.content) + "</ul>")
            elif block.kind == "code":
                parts.append(f"<pre><code>{html.escape(block.content)}</code></pre>")
            elif block.kind == "table":
                frame = block.content
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                               for row in frame.itertuples(index=False))
                caption = f"<caption>{_inline_html(block.caption)}</caption>" if block.caption else ""
                parts.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif block.kind == "image":
                data = base64.b64encode(Path(block.content).read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt=\"{html.escape(block.caption)}\" src=\"data:image/png;base64,{data}\">"
                             f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
                 "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
                 "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}"
                 "td:first-child,th:first-child{text-align:left}caption{text-align:left;font-style:italic;"
                 "padding:.25rem 0}img{max-width:100%}figcaption{font-style:italic;font-size:.9rem}"
                 "code{background:#f3f3f3;padding:0 .2rem}pre{background:#f3f3f3;padding:.5rem;overflow:auto}")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>\n"
                + "\n".join(parts) + "\n</body></html>\n")

    def write(self, out: str | Path) -> list[Path]:
        """``out/report.md`` and ``out/report.html`` (atomically); returns their paths."""
        out = Path(out)
        return [atomic_write_text(out / "report.md", self.to_markdown(out)),
                atomic_write_text(out / "report.html", self.to_html())]


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


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


# ---------------------------------------------------------------------------------------- sections
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


def _hyperparameters(spec) -> pd.DataFrame:
    rows = []
    for name in spec.optimizers:
        config = spec.configs[name]
        options = config["optimizer"]["options"]
        rows.append({"optimizer": name,
                     "hyperparameters": ", ".join(f"{k}={v}" for k, v in options.items()) or "(its defaults)",
                     "hidden": str(config["agents"]["hidden"])})
    return pd.DataFrame(rows)


def compare_section(report: Report, result, image_dir: str | Path, prefix: str = "", level: int = 2) -> list[Path]:
    """Add the blocks of one comparison (:class:`ipo_robust.evals.compare.CompareResult`) to ``report``;
    plots go to ``image_dir`` named ``<prefix>exploitability.png`` etc. Returns the plot paths."""
    spec, board = result.spec, result.leaderboard
    image_dir = Path(image_dir)
    config = next(iter(spec.configs.values()))
    samples = spec.samples_per_update * spec.updates
    lower = spec.bound == "lower bound"
    plots: list[Path] = []
    report.heading(f"Setup on `{spec.env}`", level)
    attack = (f"`{spec.attack}` (exact best response; no training budget needed)" if not lower else
              f"`{spec.attack}` trained for {spec.attack_budget:,} env steps per seat "
              f"({spec.budget_multiple(spec.attack_budget):.3g}x the victim's training), "
              f"{spec.attacker_seeds} attacker seed{'s' if spec.attacker_seeds != 1 else ''} (the lower bound "
              f"is their max), then {spec.games} evaluation games")
    report.bullets([
        f"optimizers: {', '.join(f'`{o}`' for o in spec.optimizers)}; seeds: {len(spec.seeds)} "
        f"({', '.join(map(str, spec.seeds))})",
        f"training (self-play, equal for every optimizer): {spec.updates} updates x "
        f"{config['env']['num_envs']} env copies x {config['env']['steps']} steps = {samples:,} env steps per "
        f"seed; env options {config['env']['options'] or '{}'}",
        f"attack: {attack}; both seats attacked (seat 0 = agent 1, seat 1 = agent 2)",
        f"interval: {INTERVAL}; none with a single seed",
    ])
    report.table(_hyperparameters(spec), "hyperparameters per optimizer")
    column = next((c for c in ("solve_failures", "solver_warnings") if c in result.results), None)
    if column is not None:  # solver_warnings: the name in items saved before it became solve_failures
        counts = result.results.groupby(["optimizer", "seed"])[column].first().groupby("optimizer").sum()
        counts = counts[counts > 0]
        if len(counts):
            report.paragraph("Krylov solves that stopped short of their tolerance during training (counted over "
                             f"all seeds; column `{column}` of results.csv, `optim/solve_failures` of each run's "
                             "metrics.csv): " + ", ".join(f"`{name}` {int(n)}" for name, n in counts.items()) + ".")

    report.heading("Exploitability leaderboard" + (" (lower bounds)" if lower else " (exact)"), level + 1)
    columns = {"rank": "rank", "optimizer": "optimizer", "seeds": "seeds",
               "exploitability": "exploitability (lower bound)" if lower else "exploitability (exact)",
               "exploitability_low": "95% low", "exploitability_high": "95% high", "seat0": "seat 0",
               "seat1": "seat 1", "train_seconds": "train s"}
    report.table(board[list(columns)].rename(columns=columns),
                 "sorted best (least exploitable) first; per seed the mean over both seats")
    report.paragraph(LOWER_BOUND_NOTE if lower else EXACT_NOTE)
    controls = getattr(result, "controls", None)
    if controls is not None and len(controls):
        report.table(controls, "positive controls: the same attack against known-weak victims (win rate over both "
                     "seats, Wilson 95% interval)")
        if result.certified is False:
            report.paragraph("**No ranking.** The attack won under 0.9 of its games against the zero-action victim "
                             "at this budget: it is too weak to certify anything, so the ranks are left empty.")
    seeds = per_seed(result.results, spec.attack_budget)
    plots.append(plot_exploitability(board, seeds, image_dir / f"{prefix}exploitability.png",
                                     f"{spec.env}: exploitability, mean and {INTERVAL}"))
    report.image(plots[-1], f"Exploitability on {spec.env} ({'lower bound' if lower else 'exact'}): bars are "
                 "means over seeds with 95% bootstrap intervals, dots are seeds")
    from ipo_robust.evals.leaderboard import conclusions

    sentences = conclusions(board)
    if sentences:
        report.bullets(sentences)
    if "strength" in board and len(getattr(result, "ratings", ())):
        report.heading("Strength beside exploitability", level + 1)
        report.paragraph(
            f"A round robin among the trained pairs ({spec.strength_games} games per pairing and seat order, sparse "
            "win / loss), fitted by Bradley-Terry (ties half a win each way; bootstrap intervals over the games), "
            "and each pair's win rate against a uniformly random opponent. An agent that never engages can look "
            "hard to exploit; it cannot look strong.")
        plots.append(plot_strength(board, image_dir / f"{prefix}strength.png",
                                   f"{spec.env}: strength against exploitability (means over seeds, 95% intervals)"))
        report.image(plots[-1], "Up and to the left is better: strong and hard to exploit")
        report.table(result.ratings, "per trained pair: Bradley-Terry strength (with Elo) and win rate vs random")
    detail = result.results[[c for c in ("optimizer", "seed", "seat", "budget", "attacker_seed", "exploitability",
                                         "win_rate", "win_low", "win_high", "attacker_return", "partner_return",
                                         "victim_return") if c in result.results]]
    report.table(detail, "per optimizer x seed x seat (win rate with its Wilson 95% interval over the games)")

    report.heading("Learning curves", level + 1)
    metric = "train/return1"
    if len(result.curves) and metric in result.curves:
        plots.append(plot_learning_curves(result.curves, image_dir / f"{prefix}learning.png", metric,
                                          f"{spec.env}: {metric} during training (mean; band: min..max over seeds)"))
        report.image(plots[-1], f"`{metric}` (agent 1's mean episode return in the training batches, dense "
                     "shaping included where the env has it) per training env step")
    else:
        report.paragraph("No learning curve: the runs recorded no `train/return1`.")

    report.heading("Robustness to body mass", level + 1)
    if len(result.robustness):
        plots.append(plot_robustness(result.robustness, image_dir / f"{prefix}robustness.png",
                                     f"{spec.env}: robustness to mass (mean over seeds and seats)"))
        opponent = ("a uniformly random opponent (the same yardstick for every optimizer)"
                    if spec.robustness_opponent == "random" else "its own partner from training")
        report.image(plots[-1], f"Each trained agent's mean return against {opponent} when its bodies' masses are "
                     "scaled (`evals.robustness.sweep`, common random numbers across scales); mean over seeds and "
                     "both seats, whiskers min..max over seeds")
    else:
        report.paragraph(f"Skipped: `{spec.env}` has no physical dynamics to perturb (robustness sweeps scale "
                         "MuJoCo body masses).")
    return plots


def noise_note(spec) -> str:
    n = len(spec.seeds)
    return (f"**Small budget: read with care.** {n} seed{'s' if n != 1 else ''} and "
            f"{spec.samples_per_update * spec.updates:,} training env steps per seed are far below what the seed "
            "paper trains with; the numbers are noisy, the intervals are wide"
            + (" (with 2 seeds the t-quantile is 12.7)" if n == 2 else "")
            + (" or absent (one seed)" if n == 1 else "")
            + ", and a ranking whose intervals overlap is not a finding.")


def write_compare_report(result) -> list[Path]:
    """report.md, report.html and the plots of one ``ipo-robust compare`` in its ``out``."""
    spec = result.spec
    report = Report(f"Exploitability of optimizers on {spec.env}")
    report.paragraph(noise_note(spec))
    plots = compare_section(report, result, spec.out)
    report.paragraph("Data beside this report: `results.csv`, `leaderboard.csv`, `curves.csv`"
                     + (", `robustness.csv`" if len(result.robustness) else "")
                     + f"; per work item `items/*.json`; training runs (checkpoints, metrics.csv) in `runs/`. "
                     f"{result.computed} items computed, {result.reused} reused, {result.seconds:.0f} s.")
    return plots + report.write(spec.out)
