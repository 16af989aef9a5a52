"""Hook specifications of the ipo-robust plugin host.

Every hook is a *registration* hook: the host calls it once per plugin with a ``register`` callback,
and the plugin calls ``register(name, factory)`` once for each object it provides. Names are
kebab-case and unique within their kind across all loaded plugins.

A plugin is any module (or object) with functions marked ``@ipo_robust.hookimpl`` and is found through
the ``ipo_robust`` entry-point group; the built-in plugins in ``ipo_robust.plugins`` are found the same
way. See ``docs/plugins.md`` for a tutorial.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "ipo_robust"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, Callable], None]


@hookspec
def register_optimizers(register: Register) -> None:
    """Register two-agent optimizers.

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each optimizer. ``factory(agents,
        **hyperparameters)`` returns an optimizer object with ``update(local_game) -> Step`` (the
        update rule on a :class:`ipo_robust.optim.LocalGame`), and, for sample-based optimizers,
        ``local_game(batch)`` and ``step(batch) -> info``.
    :return: nothing; results are passed through ``register``.
    """


@hookspec
def register_opponent_models(register: Register) -> None:
    """Register opponent models (how an agent estimates its opponent's parameters).

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each opponent model; ``factory(**options)``
        returns the model object the optimizers consult instead of the opponent's true parameters.
    :return: nothing; results are passed through ``register``.
    """


@hookspec
def register_perturbations(register: Register) -> None:
    """Register perturbations: superpower forces, dynamics changes, action or observation noise.

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each perturbation; ``factory(**options)``
        returns an object defining its action space, its log-probability contribution and how an
        action becomes forces or model changes.
    :return: nothing; results are passed through ``register``.
    """


@hookspec
def register_envs(register: Register) -> None:
    """Register two-agent environments.

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each environment; ``factory(num_envs=1,
        seed=None, **options)`` returns a batched two-agent environment
        (:class:`ipo_robust.envs.base.TwoAgentEnv`).
    :return: nothing; results are passed through ``register``.
    """


@hookspec
def register_attacks(register: Register) -> None:
    """Register attacks on frozen agents (adversarial policies, best responses, controls).

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each attack; ``factory(**options)``
        returns an attack that trains or computes an attacker against a frozen victim. An attack that
        works on some envs only may have ``check_env(env, env_name)``, raising a ``ConfigError`` for an env
        it cannot attack: suites ask it of every victim before any work (``ipo-robust eval --dry-run``
        too); see :meth:`ipo_robust.evals.attacks.Attack.check_env`.
    :return: nothing; results are passed through ``register``.
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register executors that run independent work items (evaluation cells, seeds).

    Called once per plugin when the host loads plugins.

    :param register: call ``register(name, factory)`` for each executor; ``factory(**options)``
        returns an executor with ``map(function, items)`` yielding results in the order given.
    :return: nothing; results are passed through ``register``.
    """


#: hook name -> the kind of object it registers (the names of ``registered(kind)``)
HOOK_KINDS: dict[str, str] = {
    "register_optimizers": "optimizer",
    "register_opponent_models": "opponent_model",
    "register_perturbations": "perturbation",
    "register_envs": "env",
    "register_attacks": "attack",
    "register_executors": "executor",
}
KINDS: tuple[str, ...] = tuple(HOOK_KINDS.values())
