"""The entries of a comparison (:mod:`ipo_robust.evals.compare`): labelled training methods and their env steps.

An entry is an optimizer name of ``--optimizers`` (a self-play config compare builds) or a whole training
config (``--config LABEL=PATH``). :func:`entry_facts` says what a config trains and how many env steps; every
entry of a comparison must train as many (:func:`refuse_unequal_steps`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ipo_robust.config import SCHEMA, parse_config
from ipo_robust.errors import ConfigError
from ipo_robust.training.schedules import Schedule

LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def entry_facts(raw: Mapping) -> dict:
    """What a training config trains: ``optimizer``, ``schedule`` (its kind), ``perturbation`` (None: the
    env's own), ``num_envs``, ``steps``, ``iterations``, ``updates_per_iteration`` (1 for self-play, n1 + n2
    for ipo-rarl and rarl: :class:`~ipo_robust.training.schedules.Schedule`), ``updates`` and ``env_steps``
    = num_envs x steps x updates, the env steps the pair's training collects (every update collects one batch,
    whoever learns from it; in rarl each agent learns from its own n1 or n2 updates' batches)."""
    config = parse_config(raw)
    schedule = Schedule(config.schedule)
    num_envs, steps = int(config.env.num_envs), int(config.env.steps)
    return {"optimizer": config.optimizer.name, "schedule": schedule.kind,
            "perturbation": config.perturbation.name if config.perturbation.chosen else None,
            "num_envs": num_envs, "steps": steps, "iterations": int(schedule.iterations),
            "updates_per_iteration": int(schedule.per_iteration), "updates": int(schedule.total_updates),
            "env_steps": num_envs * steps * int(schedule.total_updates)}


def describe_method(facts: dict) -> str:
    """``ipo-vpg (ipo-rarl, learned-location)``, ``ppo (self-play)``: optimizer (schedule[, perturbation])."""
    extra = f", {facts['perturbation']}" if facts.get("perturbation") else ""
    return f"{facts['optimizer']} ({facts['schedule']}{extra})"


def describe_training(facts: dict) -> str:
    """``32 env copies x 100 steps x 150 iterations x 2 updates = 960,000 env steps``."""
    per, iterations = facts["updates_per_iteration"], facts["iterations"]
    return (f"{facts['num_envs']} env copies x {facts['steps']} steps x {iterations} iteration"
            f"{'s' if iterations != 1 else ''} x {per} update{'s' if per != 1 else ''} = {facts['env_steps']:,} env "
            "steps")


def parse_config_entries(configs) -> dict[str, object]:
    """``--config`` values -> {label: path or raw config}, in order. Accepts a mapping label -> path or raw
    config dict, or a sequence of ``LABEL=PATH`` / ``PATH`` texts (``PATH`` alone is labelled by its file
    stem). Refuses a malformed or repeated label (labels name work items, run directories and ``--set
    LABEL.KEY`` items)."""
    if not configs:
        return {}
    pairs = []
    if isinstance(configs, Mapping):
        pairs = [(str(label), value) for label, value in configs.items()]
    else:
        for text in configs:
            text = str(text)
            label, sep, path = text.partition("=")
            if not sep or not LABEL_PATTERN.fullmatch(label.strip()):
                label, path = Path(text).stem, text
            pairs.append((label.strip(), path.strip() if isinstance(path, str) else path))
    entries: dict[str, object] = {}
    for label, value in pairs:
        if not LABEL_PATTERN.fullmatch(label):
            raise ConfigError(f"--config label {label!r} (of {str(value)!r}) must be letters, digits, '-' and '_', "
                              "starting with a letter or digit: give one with --config LABEL=PATH")
        if label in SCHEMA:
            raise ConfigError(f"--config label {label!r} is a config section's name (--set {label}.KEY would be "
                              "ambiguous): give the config another label with --config LABEL=PATH")
        if label in entries:
            raise ConfigError(f"--config label {label!r} is given twice: labels name the comparison's entries and "
                              "must be unique (--config LABEL=PATH)")
        entries[label] = value
    return entries


def refuse_unequal_steps(facts: dict[str, dict]) -> int:
    """The common env steps of every entry's training, or a one-line ConfigError listing each entry's."""
    steps = {label: f["env_steps"] for label, f in facts.items()}
    if len(set(steps.values())) <= 1:
        return next(iter(steps.values()))
    listing = ", ".join(f"{label} {f['env_steps']:,} ({f['num_envs']} x {f['steps']} x {f['iterations']} x "
                        f"{f['updates_per_iteration']})" for label, f in facts.items())
    raise ConfigError("entries train unequal env steps (env.num_envs x env.steps x schedule.iterations x updates per "
                      f"iteration): {listing}; every entry must train as many: equalise them with --budget, "
                      "--set env.num_envs=N or --set LABEL.schedule.iterations=N")


def entries_env(env: str | None, files: dict[str, dict], sources: dict[str, str]) -> str:
    """The env of the comparison: ``env`` (``--env``), which every config must name, or, without it, the one
    env every config names. One-line ConfigError otherwise."""
    named = {label: raw.get("env", {}).get("name") if isinstance(raw.get("env"), Mapping) else None
             for label, raw in files.items()}
    if env is None:
        if not named:
            raise ConfigError("--env is required (or give --config files, which name their env)")
        missing = [label for label, name in named.items() if not name]
        if missing:
            raise ConfigError(f"--config {missing[0]} ({sources[missing[0]]!r}) names no env.name: give --env")
        if len(set(named.values())) > 1:
            raise ConfigError("the --config files name different envs (" + ", ".join(
                f"{label}: {name}" for label, name in named.items()) + "): every entry of a comparison must play "
                "the same env")
        return next(iter(named.values()))
    for label, name in named.items():
        if name is not None and name != env:
            raise ConfigError(f"--config {label} ({sources[label]!r}) trains on {name!r}, not on --env {env!r}: "
                              "every entry of a comparison must play the same env")
    return env
