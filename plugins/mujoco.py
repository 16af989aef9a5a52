"""Built-in MuJoCo environments and perturbations (``ipo_robust.envs.mujoco``).

Environments: ``sumo-pushers``, ``sumo-ants``, ``rarl-hopper``, ``rarl-cheetah``, ``rarl-walker``,
``soccer-1v1``.
Every env factory takes ``num_envs``, ``seed`` and the :class:`~ipo_robust.envs.mujoco.base.MujocoTwoAgentEnv`
options ``perturbation`` (a registered name or a Perturbation), ``holder`` (None, 0, 1 or "both"),
``alpha`` (in [0, 1]) and ``f_max`` (N), e.g.::

    env = ipo_robust.make_env("sumo-pushers", num_envs=16, seed=0, perturbation="learned-location",
                              holder=1, alpha=0.5, shaping=0.1)

Perturbations: ``none``, ``body-force``, ``learned-location``, ``dynamics``, ``action-noise``,
``observation-noise`` (see :mod:`ipo_robust.envs.mujoco.perturbations`).
"""

from __future__ import annotations

from ipo_robust.hookspecs import hookimpl


def _lazy(module: str, factory: str):
    def make(num_envs: int = 1, seed: int | None = None, **options):
        import importlib

        return getattr(importlib.import_module(module), factory)(num_envs=num_envs, seed=seed, **options)

    make.__name__ = factory
    make.__doc__ = f"{module}.{factory} (imported on first use)."
    return make


@hookimpl
def register_envs(register):
    register("sumo-pushers", _lazy("ipo_robust.envs.mujoco.sumo", "make_sumo_pushers"))
    register("sumo-ants", _lazy("ipo_robust.envs.mujoco.sumo", "make_sumo_ants"))
    register("soccer-1v1", _lazy("ipo_robust.envs.mujoco.soccer", "make_soccer_1v1"))
    for domain in ("hopper", "cheetah", "walker"):
        register(f"rarl-{domain}", _lazy("ipo_robust.envs.mujoco.rarl", f"make_rarl_{domain}"))


@hookimpl
def register_perturbations(register):
    from ipo_robust.envs.mujoco.perturbations import PERTURBATIONS

    for name, cls in PERTURBATIONS.items():
        register(name, cls)
