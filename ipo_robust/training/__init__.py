"""Training, one module per job; :mod:`ipo_robust.train` re-exports the public names.

- :mod:`.schedules`: the update plan of ``[schedule]`` (self-play, ipo-rarl, rarl), holder rewards, annealing.
- :mod:`.setup`: the run's objects (perturbation, env, agents, opponent model, optimizer), each built once
  from the typed config (:class:`~ipo_robust.config.TrainConfig`), and their checkpoint state.
- :mod:`.loop`: :func:`~ipo_robust.training.loop.run_training`, the sample-based loop.
- :mod:`.metrics_log`: ``metrics.csv``, TensorBoard, episode outcomes, failed Krylov solves.
- :mod:`.exact`: :func:`~ipo_robust.training.exact.train_exact_game` on exact differentiable games.
"""
