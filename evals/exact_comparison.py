"""Compare optimizers on an exact matrix game: same start, same iterations, exact exploitability.

The first slice of "compare exploitability across optimizers": no sampling, so differences come
from the update rules alone.
"""

from __future__ import annotations

import pandas as pd
import torch

from ipo_robust import host
from ipo_robust.envs.games import MatrixGame
from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.evals.exploitability import exploitability, nash_conv
from ipo_robust.train import train_exact_game

ALIASES = {"rps": "rock-paper-scissors", "mp": "matching-pennies", "pd": "prisoners-dilemma"}
RANDOM_GAMES = ("random-zero-sum", "random-general-sum")

#: the starts of the seed's experiments (logits), used by default for these games
PAPER_STARTS = {
    "rock-paper-scissors": ([-0.35, 0.4, 1.0], [1.0, -0.3, 0.4]),
    # logits log p of the probabilities the issue gives, [0.9, 0.1] and [0.2, 0.9] (softmax normalises)
    "matching-pennies": (torch.log(torch.tensor([0.9, 0.1], dtype=torch.float64)).tolist(),
                         torch.log(torch.tensor([0.2, 0.9], dtype=torch.float64)).tolist()),
}


def game_names() -> list[str]:
    return sorted(MatrixGame.names() + list(RANDOM_GAMES) + list(ALIASES))


def make_matrix_game(name: str, size: int = 3, seed: int = 0) -> MatrixGame:
    """A named game (or alias), or a seeded random zero-/general-sum game of ``size`` x ``size``."""
    name = ALIASES.get(name, name)
    if name in RANDOM_GAMES:
        return MatrixGame.random(size, size, zero_sum=(name == "random-zero-sum"), seed=seed)
    if name not in MatrixGame.names():
        raise UnknownNameError("game", name, game_names())
    return MatrixGame.named(name)


def start_logits(game: MatrixGame, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed paper's start where it has one, else logits drawn N(0, 1) from ``seed``."""
    if game.name in PAPER_STARTS:
        return tuple(torch.tensor(x, dtype=torch.float64) for x in PAPER_STARTS[game.name])
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(game.p1, generator=generator, dtype=torch.float64),
            torch.randn(game.p2, generator=generator, dtype=torch.float64))


def game_metrics(game: MatrixGame):
    """Exact metrics of the current strategies: NashConv, and exploitability where defined."""

    def metrics(theta1, theta2) -> dict:
        p1, p2 = (p.detach() for p in game.probabilities(theta1, theta2))
        row = {"eval/nash_conv": float(nash_conv(game, p1, p2))}
        row["eval/exploitability"] = float(exploitability(game, p1, p2)) if game.zero_sum else float("nan")
        return row

    return metrics


def compare_on_matrix_game(game: MatrixGame, optimizers: list[str], iterations: int, lr: float,
                           seed: int = 0, hyperparameters: dict[str, dict] | None = None,
                           record_every: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every optimizer from the same start; returns (summary table, full learning curves)."""
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    theta1, theta2 = start_logits(game, seed)
    metrics = game_metrics(game)
    summary, curves = [], []
    for name in optimizers:
        factory = host.resolve("optimizer", name)
        options = {"lr": lr} if _takes_lr(factory) else {}
        options.update((hyperparameters or {}).get(name, {}))
        optimizer = host.create("optimizer", name, None, **options)
        run = train_exact_game(game, optimizer, theta1, theta2, iterations, metrics, record_every)
        p1, p2 = (p.detach() for p in game.probabilities(run.theta1, run.theta2))
        last = run.history[-1]
        steps = [row for row in run.history if "optim/iterations" in row]
        summary.append({
            "optimizer": name,
            "iterations": iterations,
            "exploitability": last["eval/exploitability"],
            "nash_conv": last["eval/nash_conv"],
            "p1": _fmt(p1), "p2": _fmt(p2),
            "mean_solver_iterations": sum(r["optim/iterations"] for r in steps) / max(len(steps), 1),
            "solve_failures": run.solve_failures,
            "seconds": run.seconds,
        })
        curves.extend({"optimizer": name, **row} for row in run.history)
    return pd.DataFrame(summary), pd.DataFrame(curves)


def _takes_lr(factory) -> bool:
    config = getattr(factory, "Config", None)
    if config is None:
        return True
    names = set(getattr(config, "__dataclass_fields__", {}))
    return bool({"lr1", "lr2", "lr"} & names)


def _fmt(p: torch.Tensor) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in p.tolist()) + "]"
