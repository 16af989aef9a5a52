"""Training loops: the public names of :mod:`ipo_robust.training`, one module per job.

:func:`train_exact_game` trains both players on an exact differentiable game: every iteration the
game's exact :class:`~ipo_robust.optim.LocalGame` goes to the optimizer's update rule, and both
parameter vectors move by the returned step (:mod:`ipo_robust.training.exact`).

:func:`run_training` trains from samples as a config says (:mod:`ipo_robust.config`,
:mod:`ipo_robust.training.loop`). Schedules (``[schedule] kind``: self-play, ipo-rarl, rarl), all built
on one loop: per *update* ``u`` the schedule gives a :class:`Phase` (who holds the superpower, with what
alpha, which agents learn), a batch is collected with it, the holder's rewards are combined, and the
optimizer steps (:mod:`ipo_robust.training.schedules`). The run's perturbation, env, agents, opponent
model and optimizer are built once (:class:`TrainingSetup`, :mod:`ipo_robust.training.setup`); metrics,
TensorBoard and the count of failed Krylov solves are in :mod:`ipo_robust.training.metrics_log`.
"""

from __future__ import annotations

from ipo_robust.training.exact import ExactRun, train_exact_game
from ipo_robust.training.loop import TrainResult, run_training
from ipo_robust.training.metrics_log import MetricsLog, SolveFailureCounter, episode_outcomes, solve_failure_summary
from ipo_robust.training.schedules import Phase, Schedule, anneal_factor, holder_rewards
from ipo_robust.training.setup import TrainingSetup

__all__ = ["ExactRun", "MetricsLog", "Phase", "Schedule", "SolveFailureCounter", "TrainResult", "TrainingSetup",
           "anneal_factor", "episode_outcomes", "holder_rewards", "run_training", "solve_failure_summary",
           "train_exact_game"]
