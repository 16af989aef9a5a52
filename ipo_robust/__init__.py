"""ipo-robust: Interactive Robust Policy Optimization for two-agent reinforcement learning.

The public entry points::

    env = ipo_robust.make_env("matching-pennies", num_envs=64, seed=0)
    agents = ipo_robust.make_agents(env, seed=0)
    optimizer = ipo_robust.make_optimizer("ipo-vpg", agents, lr=0.5)
    batch = ipo_robust.collect(env, agents, steps=1)
    info = optimizer.step(batch)

Names are resolved through the plugin host (:mod:`ipo_robust.host`), so third-party environments
and optimizers are used the same way. Heavy modules (torch) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "collect", "make_agents", "make_env", "make_optimizer"]


def make_env(name: str, num_envs: int = 1, seed: int | None = None, **options):
    """A batched two-agent environment registered under ``name`` (``ipo-robust plugins`` lists them)."""
    from ipo_robust import host

    return host.create("env", name, num_envs=num_envs, seed=seed, **options)


def make_agents(env, seed: int | None = None, hidden: tuple[int, ...] = (64, 64),
                state_dependent_std: bool = True):
    """Two fresh policies sized from the env's observation and action spaces.

    Categorical policies for discrete actions, diagonal Gaussians for continuous ones; ``seed`` fixes
    the initial weights (agent i uses seed + i) without touching the global torch RNG.

    ``state_dependent_std``: in an env whose perturbation asks for it (``learned-location``), each agent
    that may hold the superpower outputs the log-std of its perturbation entries as a function of its
    observation, beside their mean (seed sec. 6; :class:`~ipo_robust.policies.StateDependentStdGaussianPolicy`).
    ``False`` gives every Gaussian a state-independent log-std. Agents of any other env are the same
    either way.
    """
    from ipo_robust.policies import make_policy

    return tuple(
        make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=hidden,
                    seed=None if seed is None else seed + i,
                    state_dependent_std_dims=_perturbation_dims(env, i) if state_dependent_std else ())
        for i in (0, 1)
    )


def _perturbation_dims(env, agent: int) -> tuple[int, ...]:
    """The action indices of ``agent``'s perturbation entries when the env's perturbation asks for a
    state-dependent log-std of them (they follow the agent's own actuator entries); else ()."""
    perturbation = getattr(env, "perturbation", None)  # envs without superpower forces have none
    if perturbation is None or not perturbation.state_dependent_std or agent not in env.power_slots:
        return ()
    return tuple(range(int(env.own_action_dims[agent]), int(env.action_spaces[agent].shape[0])))


def make_optimizer(name: str, agents, **hyperparameters):
    """The optimizer registered under ``name``, moving ``agents`` (built-in or from any plugin)."""
    from ipo_robust import host

    return host.create("optimizer", name, agents, **hyperparameters)


def collect(env, agents, steps: int, **options):
    """Roll both agents out in ``env`` for ``steps`` time steps per environment; returns a Batch."""
    from ipo_robust.rollout import collect as collect_batch

    return collect_batch(env, agents, steps, **options)
