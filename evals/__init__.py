"""ipo_robust.evals: how exploitable and how robust trained agents are.

- ``exploitability`` (exact, as OpenSpiel defines it) and ``exact_comparison`` (optimizers on a matrix game);
- ``attacks/`` (attacks on frozen victims: the victim, games, ``ppo-adversary``, ``best-response``, controls);
- ``metrics`` (Wilson intervals), ``robustness`` (sweeps of dynamics and superpower force);
- ``suite/`` (TOML suites run as resumable cells: spec, validation, cell store, runner);
- ``compare`` (optimizers x seeds: train, attack, leaderboard), ``leaderboard`` (its statistics),
  ``report`` (Markdown / HTML reports and plots).

The evals sit below the plugins and the CLI: they import neither, and reach plugins (the ``ppo``
optimizer, executors, attacks) only through the host, ``ipo_robust.host.resolve(kind, name)``.
"""
