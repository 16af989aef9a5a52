"""A run's objects, each built once from the config before the first update, and their checkpoint state.

:class:`TrainingSetup` builds, in this order: the perturbation (a plugin resolved through the host, or
the env's own for ``perturbation.name = "default"``), the env (handed that perturbation object and the
schedule's superpower holder), the agents, the opponent model and the optimizer. Nothing is rebuilt
later: the loop, the checkpoints and a resume use these objects.

Checkpoints (:mod:`ipo_robust.checkpoint`) hold the agents, the optimizer's state (critics, Adam
moments, opponent model), the RNG states (action sampling, torch, the env's numpy generator) and the
update count; every batch starts from fresh episodes, so nothing else carries over and a resumed run
is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ipo_robust import make_agents
from ipo_robust.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_shapes,
    load_checkpoint,
    load_state,
    load_weights,
    policy_spec,
)
from ipo_robust.config import TrainConfig, differences, parse_config
from ipo_robust.errors import ConfigError
from ipo_robust.optim.optimizer import capabilities_of
from ipo_robust.training.schedules import Schedule


class TrainingSetup:
    """Everything a run needs, built (and thereby checked) once, before the first update.

    :param config: a :class:`~ipo_robust.config.TrainConfig`, or a raw or resolved config dict (parsed).
    Attributes: ``config``, ``schedule``, ``perturbation`` (None: the env's own), ``env``, ``env_options``
    (the env's options as the checkpoint records them: the perturbation by name), ``agents``,
    ``opponent_model`` (or None), ``optimizer``, ``generator`` (action sampling), ``shaping0``.
    """

    def __init__(self, config: TrainConfig | Mapping):
        config = parse_config(config)
        self.config = config
        self.schedule = Schedule(config.schedule)
        seed = config.run.seed
        self.perturbation = config.perturbation.build() if config.perturbation.chosen else None
        self.env_options = dict(config.env.options)
        given = {}  # what the env is handed besides its options
        if self.perturbation is not None:
            self.env_options["perturbation"] = config.perturbation.name
            given["perturbation"] = self.perturbation
        holder = self.schedule.env_holder()
        if holder is not None:
            self.env_options["holder"] = given["holder"] = holder
        try:
            self.env = config.env.build_env(num_envs=config.env.num_envs, seed=seed, **given)
        except (TypeError, ValueError) as error:
            unknown = re.search(r"unexpected keyword argument '([^']+)'", str(error))
            if isinstance(error, TypeError) and unknown and unknown.group(1) in config.env.options:
                raise ConfigError(f"config: env.options.{unknown.group(1)}: env {config.env.name!r} takes no option "
                                  f"{unknown.group(1)!r}") from None
            if holder is not None:  # said in the numbering of the config when the holder is what fails
                given.pop("holder")
                self._refuse_holders(lambda: config.env.build(num_envs=1, seed=seed, **given))
            raise ConfigError(f"config: env {config.env.name!r} cannot be built with these options: {error}") from None
        self._check_superpower()
        if any(int(np.prod(getattr(s, "shape", (1,)))) == 0 and not hasattr(s, "n") for s in self.env.action_spaces):
            raise ConfigError(f"config: in {config.env.name!r} with this schedule an agent has no actions at all "
                              "(e.g. an adversary that acts only by the superpower, which nobody holds): "
                              "set schedule.holder")
        # weights drawn on the CPU (the same on every device), then moved: critics, opponent models and every
        # update follow the agents' device (ipo_robust.devices)
        self.device = torch.device(config.run.device)
        self.agents = tuple(agent.to(self.device) for agent in
                            make_agents(self.env, seed=seed, hidden=config.agents.hidden,
                                        state_dependent_std=config.agents.state_dependent_std))
        self.opponent_model = config.opponent_model.build() if config.opponent_model.chosen else None
        given = {} if self.opponent_model is None else {"opponent_model": self.opponent_model}
        self.optimizer = config.optimizer.build(self.agents, **given)
        self.generator = torch.Generator().manual_seed(seed)
        self.shaping0 = float(self.env_options.get("shaping", 0.0) or 0.0)

    def _needed_holders(self) -> list[int]:
        """The agents (0-based) the schedule gives the superpower to, in some phase."""
        schedule = self.schedule
        return sorted({p.holder for p in map(schedule.phase, range(schedule.per_iteration)) if p.holder is not None})

    def _holder_key(self, holder: int) -> str:
        """The config key that made agent ``holder`` (0-based) a holder."""
        return {"ipo-rarl": f"schedule.n{holder + 1}", "rarl": "schedule.protagonist"}.get(self.schedule.kind,
                                                                                          "schedule.holder")

    def _refuse_holders(self, probe) -> None:
        """After the env failed to build with the schedule's holder: a ConfigError naming the schedule key, in
        1-based numbering, when a holder cannot hold the superpower of the env ``probe()`` builds without one;
        nothing when the probe fails too or finds no such holder (the caller then reports the env's error)."""
        try:
            env = probe()
        except (ConfigError, TypeError, ValueError):
            return
        try:
            for holder in self._needed_holders():
                problem = holder_problem(env, holder)
                if problem is not None:
                    raise ConfigError(f"config: {self._holder_key(holder)}: {problem}")
        finally:
            env.close()

    def _check_superpower(self):
        env, schedule = self.env, self.schedule
        needed = self._needed_holders()
        if needed and not hasattr(env, "set_superpower"):
            raise ConfigError(f"config: schedule {schedule.kind!r} gives an agent the superpower, but env "
                              f"{self.config.env.name!r} has no superpower forces (use a MuJoCo env)")
        for holder in needed:
            try:
                env.set_superpower(holder, 0.0)
            except ValueError as error:
                problem = holder_problem(env, holder) or error
                raise ConfigError(f"config: {self._holder_key(holder)}: {problem}") from None
        if hasattr(env, "set_superpower"):
            env.set_superpower(None, 0.0)

    # -- checkpoints ---------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        """The sidecar of every checkpoint of the run (the update counts are added per checkpoint)."""
        config = self.config
        return {"config": config.as_dict(), "env": {"name": config.env.name, "options": _jsonable(self.env_options)},
                "agents": [policy_spec(a) for a in self.agents], "seeds": {"run": config.run.seed},
                "plugins": {"optimizer": config.optimizer.name, "env": config.env.name,
                            "perturbation": config.perturbation.name, "opponent_model": config.opponent_model.name}}

    def state(self, updates: int) -> dict:
        return {"agents": [a.state_dict() for a in self.agents],
                "optimizer": self.optimizer.state_dict(),
                "rng": {"actions": self.generator.get_state(), "torch": torch.get_rng_state(),
                        "env": _json_safe(env_rng_state(self.env))},
                "updates": updates}

    def restore(self, state: dict, source: str | Path = "<state>") -> int:
        """Put ``state`` (see :meth:`state`) into this setup; every tensor's name and shape is checked first, so a
        checkpoint that does not fit is a one-line CheckpointError naming ``source`` and the tensor."""
        if len(state["agents"]) != len(self.agents):
            raise CheckpointError(f"checkpoint {str(source)!r} holds {len(state['agents'])} agents, not "
                                  f"{len(self.agents)}")
        for i, (agent, weights) in enumerate(zip(self.agents, state["agents"], strict=True)):
            load_weights(agent, weights, source, f".agents.{i}")
        load_state(self.optimizer, state["optimizer"], source, ".optimizer")
        rng = {"actions": self.generator.get_state(), "torch": torch.get_rng_state()}
        check_shapes({key: state["rng"][key] for key in rng}, rng, source, ".rng")
        self.generator.set_state(state["rng"]["actions"])
        torch.set_rng_state(state["rng"]["torch"])
        set_env_rng_state(self.env, state["rng"]["env"], source)
        return int(state["updates"])

    def resume(self, run_dir: Path) -> int:
        """Restore the newest checkpoint of ``run_dir`` into this setup; returns its update count.

        Refused (ConfigError) when the optimizer cannot be resumed bit-exactly, when the config differs from
        the checkpoint's (but in :data:`~ipo_robust.config.RESUMABLE_CHANGES`), or when the agents this
        config builds are not the checkpoint's (``agents.state_dependent_std`` of a run from before it).
        """
        if not capabilities_of(self.config.optimizer.resolve()).resumable:
            raise ConfigError(f"optimizer {self.config.optimizer.name!r} cannot be resumed bit-exactly")
        loaded = load_checkpoint(run_dir)
        changed = differences(loaded.config, self.config)
        if changed:
            raise ConfigError(f"cannot resume {str(run_dir)!r}: the config differs from the checkpoint's in "
                              f"{', '.join(changed)}")
        self._check_agents(loaded, run_dir)
        return self.restore(loaded.state, loaded.path)

    def _check_agents(self, loaded: Checkpoint, run_dir: Path) -> None:
        saved = loaded.meta.get("agents")
        built = json.loads(json.dumps([policy_spec(a) for a in self.agents]))  # as the sidecar holds them
        if saved is None or saved == built:
            return
        classes = [", ".join(str(spec.get("class")) for spec in specs) for specs in (saved, built)]
        hint = ""
        if classes[0] != classes[1]:
            hint = (f"; agents.state_dependent_std = {str(self.config.agents.state_dependent_std).lower()} decides "
                    "whether a holder's log-std depends on its observation (a run from before that key resumes with "
                    "--set agents.state_dependent_std=false)")
        raise ConfigError(f"cannot resume {str(run_dir)!r}: the checkpoint's agents ({classes[0]}) are not the ones "
                          f"this config builds ({classes[1]}){hint}")


def check_config(config: TrainConfig | Mapping) -> TrainingSetup:
    """Build a run's objects as a run does, to refuse now exactly what a run would refuse before its first
    update: besides what :meth:`TrainConfig.parse` checks, env options the env's factory does not take or
    refuses (a typo, ``shaping = nan``), a superpower holder the env cannot have, agents without actions.

    For the commands that stop short of training (``ipo-robust train --print-config``, the victims of
    ``ipo-robust eval --dry-run``). Nothing is written and the global torch RNG is left as it was; the setup
    is returned for inspection (its env, e.g.); close its env when done.
    """
    with torch.random.fork_rng(devices=[]):
        return TrainingSetup(config)


def holder_problem(env, holder: int) -> str | None:
    """Why agent ``holder`` (0 or 1, as the env counts) cannot hold ``env``'s superpower, with agents numbered
    1 and 2 as configs and the command line count them; None when this finds nothing wrong.

    An env's own ValueError counts agents from 0, which users never see elsewhere; this says the same in their
    numbering. Looks at the bodies each agent may push (``env.body_ids``); an env without them has nothing
    to say here.
    """
    bodies = getattr(env, "body_ids", None)
    if bodies is None or holder not in (0, 1):
        return None
    if len(bodies[1 - holder]) == 0:
        hint = f" (agent {2 - holder} can hold it)" if len(bodies[holder]) else ""
        return f"agent {holder + 1} cannot hold the superpower: agent {2 - holder} has no bodies it could push{hint}"
    return None


def env_rng_state(env):
    """The env's NumPy generator state: one dict, or a list of them for an env of streams."""
    states = getattr(env, "rng_states", None)
    return states() if callable(states) else env.rng.bit_generator.state


def set_env_rng_state(env, state, source: str | Path = "<state>") -> None:
    """Put :func:`env_rng_state`'s ``state`` back; a state of another stream count is a CheckpointError."""
    streams = getattr(env, "num_streams", None)
    held = len(state) if isinstance(state, list) else None
    if streams is None and held is None:
        env.rng.bit_generator.state = state
    elif streams is not None and held == streams:
        env.set_rng_states(state)
    else:
        raise CheckpointError(f"checkpoint {str(source)!r} holds the random state of "
                              f"{'one env' if held is None else f'{held} env streams'}, but this run's env has "
                              f"{'no streams' if streams is None else f'{streams} streams'} (env.streams)")


def _json_safe(state):
    """numpy bit-generator state: nested dicts of str/int -> the same (ints may exceed 64 bits; JSON keeps them)."""
    if isinstance(state, dict):
        return {k: _json_safe(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_json_safe(v) for v in state]
    if isinstance(state, np.integer):
        return int(state)
    if isinstance(state, np.ndarray):
        return state.tolist()
    return state


def _jsonable(options: dict) -> dict:
    out = {}
    for key, value in options.items():
        if value is None or isinstance(value, bool | int | float | str | list | dict):
            out[key] = value
        else:
            out[key] = getattr(value, "name", str(value))
    return out
