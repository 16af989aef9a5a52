"""Training configs: a TOML file, validated completely before anything runs.

A config has six tables (every key optional except ``env.name``; ``ipo-robust train CONFIG
--print-config`` shows the resolved result)::

    [env]                 # the environment
    name = "sumo-pushers"
    num_envs = 16         # copies stepped together
    steps = 100           # rollout steps per copy per update (a batch is num_envs x steps)
    options = {}          # the env factory's options (shaping, max_episode_steps, f_max, ...)

    [agents]
    hidden = [64, 64]     # MLP widths of both policies

    [optimizer]
    name = "ipo-vpg"      # any registered optimizer
    options = {}          # its hyperparameters, checked against the optimizer's own Config

    [opponent_model]
    name = "none"         # "none" (true parameters), "oracle", "mle" or any registered model
    options = {}

    [perturbation]
    name = "default"      # "default": the env's own; else any registered perturbation
    options = {}

    [schedule]            # see ipo_robust.train
    kind = "self-play"    # self-play | ipo-rarl | rarl
    iterations = 100      # outer iterations (ipo-rarl, rarl: each holds n1 + n2 updates)
    ...

    [run]
    seed = 0
    out = "runs/NAME"     # relative paths are relative to the working directory
    checkpoint_every = 10 # updates
    keep = 3              # newest checkpoints kept
    tensorboard = "auto"  # event files too, when tensorboard is installed

Unknown keys, wrong types and out-of-range values raise :class:`~ipo_robust.errors.ConfigError` with
the dotted key (``schedule.alpha1 must be a number in [0, 1], got 1.5``). ``--set key.sub=value``
overrides any key (:func:`apply_overrides`) before validation.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import tomllib
from pathlib import Path

from ipo_robust.errors import ConfigError

SCHEDULES = ("self-play", "ipo-rarl", "rarl")
ANNEALS = ("constant", "linear", "cosine")


# ------------------------------------------------------------------------------------------- checks
def _int(value, low=None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(v):
    return None if _int(v, 1) else "an integer >= 1"


def non_negative_int(v):
    return None if _int(v, 0) else "an integer >= 0"


def any_int(v):
    return None if _int(v) else "an integer"


def unit(v):
    return None if _number(v) and 0 <= v <= 1 else "a number in [0, 1]"


def non_negative(v):
    return None if _number(v) and v >= 0 else "a finite number >= 0"


def string(v):
    return None if isinstance(v, str) and v else "a non-empty string"


def table(v):
    return None if isinstance(v, dict) else "a table (e.g. { key = value })"


def boolean(v):
    return None if isinstance(v, bool) else "true or false"


def hidden_sizes(v):
    return None if isinstance(v, list) and all(_int(h, 1) for h in v) else "a list of integers >= 1 (e.g. [64, 64])"


def choice(*options):
    def check(v):
        return None if v in options else "one of " + ", ".join(repr(o) for o in options)

    return check


def agent_or_none(v):
    return None if v in ("none", 1, 2) else "1, 2 or \"none\""


def agent(v):
    return None if v in (1, 2) else "1 or 2"


REQUIRED = object()

#: section -> key -> (default, check, doc)
SCHEMA: dict[str, dict[str, tuple]] = {
    "env": {
        "name": (REQUIRED, string, "registered environment name"),
        "num_envs": (16, positive_int, "environment copies stepped together"),
        "steps": (100, positive_int, "rollout steps per copy per update"),
        "options": ({}, table, "options of the environment factory"),
    },
    "agents": {
        "hidden": ([64, 64], hidden_sizes, "hidden widths of both MLP policies"),
    },
    "optimizer": {
        "name": ("ipo-vpg", string, "registered optimizer name"),
        "options": ({}, table, "the optimizer's hyperparameters"),
    },
    "opponent_model": {
        "name": ("none", string, "'none' (true opponent parameters) or a registered opponent model"),
        "options": ({}, table, "options of the opponent model"),
    },
    "perturbation": {
        "name": ("default", string, "'default' (the env's own) or a registered perturbation"),
        "options": ({}, table, "options of the perturbation"),
    },
    "schedule": {
        "kind": ("self-play", choice(*SCHEDULES), "self-play, ipo-rarl (Algorithm 1) or rarl (Pinto et al.)"),
        "iterations": (100, positive_int, "outer iterations"),
        "n1": (1, non_negative_int, "ipo-rarl: updates with agent 1 holding the superpower per iteration; "
               "rarl: protagonist updates per iteration"),
        "n2": (1, non_negative_int, "ipo-rarl: updates with agent 2 holding the superpower; rarl: adversary updates"),
        "alpha1": (0.5, unit, "ipo-rarl: superpower amount of agent 1"),
        "alpha2": (0.5, unit, "ipo-rarl: superpower amount of agent 2"),
        "holder": ("none", agent_or_none, "self-play: which agent holds the superpower throughout"),
        "alpha": (1.0, unit, "self-play with a holder, rarl: the holder's superpower amount"),
        "protagonist": (1, agent, "rarl: the agent trained for the task (the other is the adversary)"),
        "anneal": ("constant", choice(*ANNEALS), "alpha annealing to zero over the iterations"),
        "task_weight": (0.5, non_negative, "holder's reward = task_weight * own task reward + ..."),
        "fail_weight": (0.5, non_negative, "... + fail_weight * (minus the victim's task reward)"),
        "shaping_anneal": ("linear", choice(*ANNEALS), "annealing of the env's dense shaping weight to zero"),
    },
    "run": {
        "seed": (0, any_int, "seed of the weights, the env and the action sampling"),
        "out": ("runs/train", string, "run directory (checkpoints, metrics.csv)"),
        "checkpoint_every": (10, positive_int, "updates between checkpoints"),
        "keep": (3, positive_int, "newest checkpoints kept"),
        "tensorboard": ("auto", choice("auto", True, False),
                        "TensorBoard event files in run.out/tensorboard: 'auto' = when tensorboard is installed"),
    },
}

#: keys that may differ between a run and its resumption (they do not change what is computed)
RESUMABLE_CHANGES = {("run", "out"), ("run", "checkpoint_every"), ("run", "keep"), ("run", "tensorboard")}


def _unknown(what: str, key: str, known) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"config: unknown {what} {key!r}{hint} (known: {', '.join(known)})")


def load_toml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None


def apply_overrides(raw: dict, items) -> dict:
    """``["schedule.alpha1=0.3", "optimizer.options.lr=0.1"]`` -> a copy of ``raw`` with those keys set.

    Values are read as JSON (numbers, true/false, lists), ``none``/``null`` stay the string "none"
    where a name is expected, anything else is a string; nothing is evaluated.
    """
    out = copy.deepcopy(raw)
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set expects SECTION.KEY=VALUE (e.g. schedule.alpha1=0.3), got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a table")
        node[parts[-1]] = parsed
    return out


def validate(raw: dict) -> dict:
    """The fully resolved config (defaults filled in), or ConfigError naming the first bad key.

    Checks the table structure and every value, then that the named plugins exist and accept their
    options (the optimizer's hyperparameters are checked by its own Config) and that the schedule fits
    the environment (who can hold the superpower).
    """
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a table")
    for section in raw:
        if section not in SCHEMA:
            raise _unknown("section", section, SCHEMA)
    config: dict = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"config: [{section}] must be a table, got {given!r}")
        for key in given:
            if key not in keys:
                raise _unknown(f"key in [{section}]", key, keys)
        values = {}
        for key, (default, check, _doc) in keys.items():
            if key not in given:
                if default is REQUIRED:
                    raise ConfigError(f"config: {section}.{key} is required")
                values[key] = copy.deepcopy(default)
                continue
            allowed = check(given[key])
            if allowed is not None:
                raise ConfigError(f"config: {section}.{key} must be {allowed}, got {given[key]!r}")
            values[key] = copy.deepcopy(given[key])
        config[section] = values
    _check_plugins(config)
    return config


def _check_plugins(config: dict) -> None:
    from ipo_robust import host
    from ipo_robust.errors import UnknownNameError

    def resolve(kind, name, key):
        try:
            return host.resolve(kind, name)
        except UnknownNameError as error:
            raise ConfigError(f"config: {key}: {error}") from None

    resolve("env", config["env"]["name"], "env.name")
    optimizer = resolve("optimizer", config["optimizer"]["name"], "optimizer.name")
    if config["opponent_model"]["name"] != "none":
        resolve("opponent_model", config["opponent_model"]["name"], "opponent_model.name")
    if config["perturbation"]["name"] != "default":
        resolve("perturbation", config["perturbation"]["name"], "perturbation.name")
    try:  # the optimizer checks its own hyperparameters (built without agents: nothing is trained)
        optimizer(None, **_optimizer_options(config["optimizer"]["options"]))
    except (ConfigError, TypeError, ValueError) as error:
        raise ConfigError(f"config: optimizer.options: {error}") from None
    schedule = config["schedule"]
    if schedule["kind"] == "ipo-rarl" and schedule["n1"] + schedule["n2"] == 0:
        raise ConfigError("config: schedule.n1 and schedule.n2 are both 0: ipo-rarl needs at least one update "
                          "per iteration")
    if schedule["kind"] == "rarl":
        if schedule["n1"] + schedule["n2"] == 0:
            raise ConfigError("config: schedule.n1 and schedule.n2 are both 0: rarl needs at least one update "
                              "per iteration")
        if getattr(optimizer, "interactive", False):
            raise ConfigError(f"config: schedule.kind 'rarl' trains one agent at a time, but optimizer "
                              f"{config['optimizer']['name']!r} is interactive (it anticipates a simultaneous "
                              "opponent update): use ipo-rarl, or a non-interactive optimizer (simga, npg, trpo, ppo)")
    if not getattr(optimizer, "resumable", True) or config["optimizer"]["name"] in ("ipo-dpg", "maddpg"):
        raise ConfigError(f"config: optimizer {config['optimizer']['name']!r} trains deterministic policies with "
                          "a replay buffer; `ipo-robust train` runs the stochastic-policy optimizers (train "
                          "ipo-dpg/maddpg through the Python API, ipo_robust.plugins.dpg)")


def _optimizer_options(options: dict) -> dict:
    """TOML has no tuples: lists stay lists except where a Config expects a tuple of sizes."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def optimizer_options(config: dict) -> dict:
    return _optimizer_options(config["optimizer"]["options"])


def differences(a: dict, b: dict, ignore=RESUMABLE_CHANGES) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (``ignore``: (section, key) pairs)."""
    out = []
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section, {}), b.get(section, {})
        for key in sorted(set(sa) | set(sb)):
            if (section, key) not in ignore and sa.get(key) != sb.get(key):
                out.append(f"{section}.{key}")
    return out


# -------------------------------------------------------------------------------------- printing
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(config: dict) -> str:
    """A resolved config as TOML text (tables of scalars, lists and inline tables), loadable again."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
