"""Reports of comparisons: one list of blocks written as Markdown (``report.md``, images beside it) and
as a self-contained HTML page (``report.html``, images embedded as data URIs, no external files), with
the plots of :mod:`ipo_robust.evals.plots`.

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
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ipo_robust.atomic import atomic_write_text
from ipo_robust.evals.compare_spec import describe_training
from ipo_robust.evals.leaderboard import INTERVAL, per_seed
from ipo_robust.evals.plots import (  # noqa: F401 - plot_exact_curves is part of this module's API
    plot_exact_curves,
    plot_exploitability,
    plot_learning_curves,
    plot_robustness,
    plot_strength,
)

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


def _hyperparameters(spec) -> pd.DataFrame:
    """Per entry: its label (``optimizer``), what it trains (``method``; the config file of a ``--config``
    entry), its training (env copies x steps x iterations x updates per iteration = env steps), the optimizer's
    hyperparameters and the policies' hidden widths."""
    rows = []
    sources = getattr(spec, "sources", {})
    for name in spec.optimizers:
        config = spec.configs[name]
        options = config.get("optimizer", {}).get("options", {})
        row = {"optimizer": name, "method": spec.method(name)}
        if sources:
            row["config"] = sources.get(name, "")
        row.update({"training": spec.training(name),
                    "hyperparameters": ", ".join(f"{k}={v}" for k, v in options.items()) or "(its defaults)",
                    "hidden": str(config.get("agents", {}).get("hidden", "(default)"))})
        rows.append(row)
    return pd.DataFrame(rows)


def _training_line(spec) -> str:
    """The setup's training bullet: the common env steps, and how each entry gets there when they differ in
    anything but their optimizer."""
    facts = {name: spec.facts(name) for name in spec.optimizers}
    shapes = {(f["schedule"], f["num_envs"], f["steps"], f["iterations"], f["updates_per_iteration"])
              for f in facts.values()}
    options = next(iter(spec.configs.values())).get("env", {}).get("options", {}) if spec.configs else {}
    if len(shapes) == 1:
        only = next(iter(facts.values()))
        how = f"{only['schedule']}, {describe_training(only)} per seed"
    else:
        how = (f"{spec.victim_steps:,} env steps per pair, every entry alike (per entry: "
               + "; ".join(f"`{name}` {describe_training(f)}" for name, f in facts.items()) + ")")
    line = f"equal training: {how}; env options {options or '{}'}"
    superpower = any(f["schedule"] != "self-play" or spec.configs[name].get("schedule", {}).get("holder", "none")
                     != "none" for name, f in facts.items())
    if superpower:  # some pair trained with the superpower: say where every pair is judged
        game = spec.game_options or "its default options"
        line += (f"; every pair judged in the plain game (`{spec.env}` with {game}, nobody holding the superpower, "
                 "dense shaping off; a superpower holder plays with its own action entries only)")
    return line


def compare_section(report: Report, result, image_dir: str | Path, prefix: str = "", level: int = 2) -> list[Path]:
    """Add the blocks of one comparison (:class:`ipo_robust.evals.compare.CompareResult`) to ``report``;
    plots go to ``image_dir`` named ``<prefix>exploitability.png`` etc. Returns the plot paths."""
    spec, board = result.spec, result.leaderboard
    image_dir = Path(image_dir)
    lower = spec.bound == "lower bound"
    plots: list[Path] = []
    report.heading(f"Setup on `{spec.env}`", level)
    attack = (f"`{spec.attack}` (exact best response; no training budget needed)" if not lower else
              f"`{spec.attack}` trained for {spec.attack_budget:,} env steps per seat "
              f"({spec.budget_multiple(spec.attack_budget):.3g}x the victim's training), "
              f"{spec.attacker_seeds} attacker seed{'s' if spec.attacker_seeds != 1 else ''} (the lower bound "
              f"is their max), then {spec.games} evaluation games")
    report.bullets([
        f"entries: {', '.join(f'`{o}`' for o in spec.optimizers)}; seeds: {len(spec.seeds)} "
        f"({', '.join(map(str, spec.seeds))})",
        _training_line(spec),
        f"attack: {attack}; both seats attacked (seat 1 = agent 1, seat 2 = agent 2)",
        f"interval: {INTERVAL}; none with a single seed",
    ])
    report.table(_hyperparameters(spec), "per entry: method, training (env steps equal for every entry) and "
                 "hyperparameters")
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
               "exploitability_low": "95% low", "exploitability_high": "95% high", "seat1": "seat 1",
               "seat2": "seat 2", "train_seconds": "train s"}
    if "method" in board and getattr(spec, "sources", None):  # entries that are not only optimizers: say what
        columns = {**{k: v for k, v in columns.items() if k in ("rank", "optimizer")}, "method": "method",
                   **{k: v for k, v in columns.items() if k not in ("rank", "optimizer")}}
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
    masked = getattr(result, "masked", None)
    if masked is not None and len(masked):
        report.paragraph("**Masked-victim control** (Gleave et al. 2020): each trained agent, blind to its opponent "
                         "(the observation entries that describe it frozen at their first value), plays its own "
                         "partner; `masked.csv`. The partner's win rate per optimizer, mean over seeds and seats: "
                         + ", ".join(f"`{name}` {rate:.2f}" for name, rate in
                                     masked.groupby("optimizer", sort=False)["partner_win_rate"].mean().items())
                         + ". An agent that loses much more when blind relies on watching its opponent.")
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

    swept = list(dict.fromkeys(result.robustness["parameter"])) if len(result.robustness) else []
    report.heading("Robustness to " + (" and ".join(f"body {p}" if p == "mass" else p for p in swept)
                                       if swept else "body mass"), level + 1)
    if swept:
        opponent = ("a uniformly random opponent (the same yardstick for every optimizer)"
                    if spec.robustness_opponent == "random" else "its own partner from training")
        for parameter in swept:
            rows = result.robustness[result.robustness["parameter"] == parameter]
            name = "robustness.png" if parameter == "mass" else f"robustness-{parameter}.png"
            plots.append(plot_robustness(rows, image_dir / f"{prefix}{name}",
                                         f"{spec.env}: robustness to {parameter} (mean over seeds and seats)"))
            what = "its bodies' masses are" if parameter == "mass" else f"the {parameter} is"
            report.image(plots[-1], f"Each trained agent's mean return against {opponent} when {what} scaled "
                         "(`evals.robustness.sweep`, common random numbers across scales); mean over seeds and "
                         "both seats, whiskers min..max over seeds")
        board = result.leaderboard
        if "worst_case_win_rate" in board:
            parts = [f"{row.optimizer} {row.worst_case_win_rate:.2f}"
                     + (f" [{row.worst_case_low:.2f}, {row.worst_case_high:.2f}]"
                        if math.isfinite(row.worst_case_low) else "")
                     for row in board.itertuples() if math.isfinite(row.worst_case_win_rate)]
            report.paragraph(f"Worst case over the sweep of {', '.join(swept)} (per seed the lowest win rate at any "
                             "scale, both seats averaged; mean over seeds, bootstrap interval): " + "; ".join(parts)
                             + ". Column `worst_case_win_rate` of `leaderboard.csv`.")
    else:
        report.paragraph(f"Skipped: `{spec.env}` has no physical dynamics to perturb (robustness sweeps scale "
                         "MuJoCo body masses).")
    return plots


def noise_note(spec) -> str:
    n = len(spec.seeds)
    return (f"**Small budget: read with care.** {n} seed{'s' if n != 1 else ''} and "
            f"{spec.victim_steps:,} training env steps per seed are far below what the seed "
            "paper trains with; the numbers are noisy, the intervals are wide"
            + (" or absent (one seed)" if n == 1 else "")
            + ", and a ranking whose intervals overlap is not a finding.")


def write_compare_report(result) -> list[Path]:
    """report.md, report.html and the plots of one ``ipo-robust compare`` in its ``out``."""
    spec = result.spec
    what = "optimizers" if not getattr(spec, "sources", None) else "training methods"
    report = Report(f"Exploitability of {what} on {spec.env}")
    report.paragraph(noise_note(spec))
    plots = compare_section(report, result, spec.out)
    report.paragraph("Data beside this report: `results.csv`, `leaderboard.csv`, `curves.csv`"
                     + (", `robustness.csv`" if len(result.robustness) else "")
                     + f"; per work item `items/*.json`; training runs (checkpoints, metrics.csv) in `runs/`. "
                     f"{result.computed} items computed, {result.reused} reused, {result.seconds:.0f} s.")
    return plots + report.write(spec.out)
