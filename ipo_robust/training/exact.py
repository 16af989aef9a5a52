"""Training on an exact differentiable game: no sampling, so the only error is the optimizer's own.

:func:`train_exact_game`: every iteration the game's exact :class:`~ipo_robust.optim.LocalGame` goes to
the optimizer's update rule, and both parameter vectors move by the returned step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ipo_robust.optim.optimizer import Optimizer, capabilities_of
from ipo_robust.training.metrics_log import SolveFailureCounter


@dataclass
class ExactRun:
    """The end point and per-iteration record of :func:`train_exact_game`; ``solve_failures`` counts the
    Krylov solves of all iterations that did not reach their tolerance (also per recorded row)."""

    theta1: torch.Tensor
    theta2: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    solve_failures: int = 0


def train_exact_game(game, optimizer: Optimizer, theta1: torch.Tensor, theta2: torch.Tensor,
                     iterations: int, metrics: Callable[[torch.Tensor, torch.Tensor], dict] | None = None,
                     record_every: int = 1) -> ExactRun:
    """Run ``iterations`` exact updates from (theta1, theta2).

    :param game: an exact game with ``local_game(theta1, theta2, fisher=...)``
        (:mod:`ipo_robust.envs.games`).
    :param optimizer: any optimizer plugin object (its ``update`` rule is used).
    :param metrics: ``f(theta1, theta2) -> dict`` recorded every ``record_every`` iterations and at the end
        (e.g. exploitability of the current strategies).
    Solves that stop short of their tolerance are counted (``optim/solve_failures`` per recorded row,
    ``ExactRun.solve_failures`` in all), not printed per iteration.
    """
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    theta1, theta2 = theta1.detach().clone(), theta2.detach().clone()
    run = ExactRun(theta1, theta2)
    needs_fisher = capabilities_of(optimizer).fisher
    counter = SolveFailureCounter()
    start = time.perf_counter()

    def record(iteration: int, step=None):
        row = {"iteration": iteration}
        if step is not None:
            row.update({"optim/iterations": step.iterations, "optim/residual": float(step.residual),
                        "optim/converged": bool(step.converged),
                        "optim/solve_failures": max(counter.last, int(not step.converged))})
        if metrics is not None:
            row.update(metrics(theta1, theta2))
        run.history.append(row)

    record(0)
    failures = 0
    for iteration in range(1, iterations + 1):
        local_game = game.local_game(theta1, theta2, fisher=needs_fisher)
        step = counter(optimizer.update, local_game)
        failures += max(counter.last, int(not step.converged))
        theta1 = theta1 + step.delta1.detach()
        theta2 = theta2 + step.delta2.detach()
        if iteration % record_every == 0 or iteration == iterations:
            record(iteration, step)
    run.theta1, run.theta2 = theta1, theta2
    run.seconds = time.perf_counter() - start
    run.solve_failures = failures
    return run
