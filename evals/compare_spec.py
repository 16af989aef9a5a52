"""The specification of a comparison (:mod:`ipo_robust.evals.compare`): per-family defaults, attack
budgets, and :func:`make_spec`, which validates everything a comparison needs before any work."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipo_robust import host, make_env
from ipo_robust.config import SCHEMA, apply_overrides, validate
from ipo_robust.envs.matrix import IteratedMatrixGameEnv, MatrixGameEnv
from ipo_robust.errors import ConfigError
from ipo_robust.overrides import split_item
from ipo_robust.training.setup import check_config

FAMILIES = ("matrix", "iterated", "mujoco", "other")

#: per env family: training and attack defaults (any of them can be changed with ``--set``/arguments)
ENV_DEFAULTS: dict[str, dict] = {
    "matrix": {"num_envs": 1024, "steps": None, "updates": 200, "hidden": [], "options": {},
               "attack": "best-response", "attack_budget": 0, "games": 64},
    "iterated": {"num_envs": 32, "steps": None, "updates": 50, "hidden": [], "options": {},
                 "attack": "best-response", "attack_budget": 0, "games": 32},
    "mujoco": {"num_envs": 16, "steps": 100, "updates": 100, "hidden": [64, 64], "options": {"shaping": 1.0},
               "attack": "ppo-adversary", "attack_budget": "1x", "games": 64},
    "other": {"num_envs": 16, "steps": None, "updates": 100, "hidden": [64, 64], "options": {},
              "attack": "ppo-adversary", "attack_budget": "1x", "games": 64},
}
"""``steps = None``: one episode's length (the env's horizon or ``max_episode_steps``, else 100)."""

#: per env family, per optimizer: hyperparameters used unless ``--set OPT.KEY=VALUE`` says otherwise
#: (an optimizer not listed runs with its own defaults). Gradient learning rates are equal across the
#: gradient family so that ipo-vpg differs from simga only by the update rule.
OPTIMIZER_DEFAULTS: dict[str, dict[str, dict]] = {
    "matrix": {name: {"lr": 0.5, "gamma": 1.0} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "gamma": 1.0} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {"ppo": {"lr": 0.01, "gamma": 1.0}},
    "iterated": {name: {"lr": 0.5, "critic": "value"} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "critic": "value"} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {"ppo": {"lr": 0.01}},
    "mujoco": {name: {"lr": 0.1, "critic": "value"} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "critic": "value"} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {"ppo": {"lr": 1e-3}},
}
OPTIMIZER_DEFAULTS["other"] = OPTIMIZER_DEFAULTS["mujoco"]

#: options of the ppo-adversary attack by family (equal for every victim)
ATTACK_OPTIONS: dict[str, dict] = {"mujoco": {"num_envs": 16, "steps": 128}, "other": {"num_envs": 16}}

#: config keys compare sets itself (per work item); ``--set`` may not change them
MANAGED_KEYS = ("run.seed", "run.out", "optimizer.name")

#: known-weak victims of the positive controls (:func:`ipo_robust.evals.attacks.victim.known_weak_victim`);
#: the first certifies the attack: it must win >= CERTIFY of its games against it at the headline budget.
#: (A uniformly random victim is the equilibrium of symmetric matrix games such as rock-paper-scissors, so
#: it cannot certify anything there; its win rate is reported beside.)
CONTROLS = ("zero", "random")
CERTIFY = 0.9

SET_USAGE = "OPTIMIZER.KEY=VALUE or SECTION.KEY=VALUE (e.g. ppo.lr=3e-4, env.num_envs=32)"


# -------------------------------------------------------------------------------------------- spec
def env_family(env) -> str:
    """``matrix``, ``iterated``, ``mujoco`` or ``other`` for a built env (decides attack and sweep)."""
    if isinstance(env, IteratedMatrixGameEnv):
        return "iterated"
    if isinstance(env, MatrixGameEnv):
        return "matrix"
    try:  # mujoco is optional (its plugin may fail to load), so it is imported here, guarded
        from ipo_robust.envs.mujoco.base import MujocoTwoAgentEnv
    except ImportError:  # MuJoCo not installed: nothing can be a MuJoCo env
        return "other"
    return "mujoco" if isinstance(env, MujocoTwoAgentEnv) else "other"


def _episode_steps(env) -> int:
    for attribute in ("horizon", "max_episode_steps"):
        value = getattr(env, attribute, None)
        if isinstance(value, int | np.integer) and value > 0:
            return int(value)
    return 100


@dataclass
class CompareSpec:
    """A validated comparison: what :func:`run_compare` runs. Build it with :func:`make_spec`."""

    env: str
    family: str
    optimizers: list[str]
    seeds: list[int]
    configs: dict[str, dict]
    """optimizer -> its raw training config (run.seed and run.out are set per item)"""
    attack: str
    attack_options: dict
    attack_budget: int
    """the headline budget (attacker training env steps per seat): the leaderboard's"""
    games: int
    robustness_points: int
    robustness_games: int
    out: Path
    robustness_opponent: str = "random"
    executor: str = "local"
    executor_options: dict = field(default_factory=dict)
    attack_budgets: list[int] = field(default_factory=list)
    """every budget evaluated (the budget curve; the headline budget among them), increasing"""
    attacker_seeds: int = 1
    """attackers trained per victim and seat; the lower bound is the max over them"""
    victim_steps: int = 0
    """env steps each victim pair trained for (budget multiples are of this)"""
    controls: tuple = CONTROLS
    """known-weak victims attacked with the same attack and budgets (positive controls)"""
    masked: bool = False
    """play the masked-victim control (each trained agent blind to its opponent, against its own partner)"""
    strength_games: int = 0
    """games per pairing (and seat) of the round robin and against random (:mod:`ipo_robust.evals.strength`);
    0: no strength axis"""

    def budget_multiple(self, budget: int) -> float:
        """``budget`` as a multiple of the victims' training env steps."""
        return budget / self.victim_steps if self.victim_steps else math.nan

    def __post_init__(self):
        if not self.attack_budgets:
            self.attack_budgets = [int(self.attack_budget)]

    @property
    def updates(self) -> int:
        return int(next(iter(self.configs.values()))["schedule"]["iterations"])

    @property
    def samples_per_update(self) -> int:
        env = next(iter(self.configs.values()))["env"]
        return int(env["num_envs"]) * int(env["steps"])

    @property
    def bound(self) -> str:
        return "exact" if self.attack == "best-response" else "lower bound"

    def items(self) -> list[dict]:
        """The work items (optimizer-major, then seed), each a plain picklable dict."""
        out = []
        for name in self.optimizers:
            for seed in self.seeds:
                config = copy.deepcopy(self.configs[name])
                config["run"] = {**config.get("run", {}), "seed": int(seed)}
                item = {"id": f"{name}-s{seed}", "optimizer": name, "seed": int(seed), "env": self.env,
                        "family": self.family, "config": config, "attack": self.attack,
                        "attack_options": dict(self.attack_options), "attack_budget": int(self.attack_budget),
                        "attack_budgets": [int(b) for b in self.attack_budgets],
                        "attacker_seeds": int(self.attacker_seeds), "victim_steps": int(self.victim_steps),
                        "masked": bool(self.masked),
                        "games": int(self.games), "robustness_points": int(self.robustness_points),
                        "robustness_games": int(self.robustness_games),
                        "robustness_opponent": self.robustness_opponent}
                out.append(self._placed(item))
        env_options = next(iter(self.configs.values()))["env"]["options"]
        for control in self.controls:
            item = {"id": f"control-{control}", "kind": "control", "control": control, "env": self.env,
                    "env_options": dict(env_options), "attack": self.attack,
                    "attack_options": dict(self.attack_options),
                    "attack_budgets": [int(b) for b in self.attack_budgets], "victim_steps": int(self.victim_steps),
                    "games": int(self.games), "seed": 0}
            out.append(self._placed(item))
        return out

    def _placed(self, item: dict) -> dict:
        item["key"] = _item_key(item)
        item["run_dir"] = str(self.out / "runs" / item["id"])
        item["path"] = str(self.out / "items" / f"{item['id']}.json")
        return item


def _item_key(item: dict) -> str:
    """A hash of everything that determines an item's result (not where it is written)."""
    text = json.dumps({k: v for k, v in item.items() if k not in ("key", "run_dir", "path")}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def split_overrides(items, optimizers: list[str]) -> tuple[dict[str, dict], list[str]]:
    """``--set`` items -> (per-optimizer options, config overrides for every optimizer).

    ``OPT.KEY=VALUE`` with OPT one of ``optimizers`` sets that optimizer's hyperparameter KEY
    (``ppo.lr=3e-4``); ``SECTION.KEY=VALUE`` with SECTION a config section applies to every
    optimizer's config (``env.num_envs=32``, ``optimizer.options.gamma=0.95``). Values follow
    :func:`ipo_robust.overrides.parse_value`.
    """
    per_optimizer: dict[str, dict] = {}
    shared: list[str] = []
    for item in items:
        parts, value = split_item(item, SET_USAGE, min_depth=2)
        owner, key = parts[0], ".".join(parts)
        if owner in optimizers:
            if len(parts) != 2:
                raise ConfigError(f"--set {item!r}: expected {owner}.KEY=VALUE with KEY one hyperparameter")
            per_optimizer.setdefault(owner, {})[parts[1]] = value
        elif owner in SCHEMA:
            if key in MANAGED_KEYS:
                raise ConfigError(f"--set {item!r}: compare sets {key} itself (use --seeds and --out)")
            shared.append(item)
        else:
            raise ConfigError(f"--set {item!r}: {owner!r} is neither an optimizer in --optimizers "
                              f"({', '.join(optimizers)}) nor a config section ({', '.join(SCHEMA)})")
    return per_optimizer, shared


def parse_budget(value, victim_steps: int, label: str = "--attack-budget") -> int:
    """An attack budget in env steps: ``"1x"``, ``"0.25x"`` (a multiple of the victims' training env steps,
    ``victim_steps``) or a whole number of steps (an int, or digits). ConfigError otherwise."""
    text = str(value).strip().lower().replace("_", "")
    try:
        if text.endswith("x"):
            multiple = float(text[:-1])
            if not math.isfinite(multiple) or multiple < 0:
                raise ValueError
            return int(round(multiple * victim_steps))
        if isinstance(value, bool):
            raise ValueError
        steps = int(text)
        if steps < 0:
            raise ValueError
        return steps
    except ValueError:
        raise ConfigError(f"{label} must be a multiple of the victim's training env steps such as 1x or 0.25x, or "
                          f"a whole number of env steps >= 0, got {value!r}") from None


def make_spec(env: str, optimizers: list[str], seeds: int = 3, updates: int | None = None,
              attack_budget: int | str | None = None, games: int | None = None, out: str | Path = "compare",
              executor: str = "local", overrides=(), robustness_points: int = 11,
              robustness_games: int | None = None, executor_options: dict | None = None,
              robustness_opponent: str = "random", attack: str | None = None, attack_budgets=None,
              attacker_seeds: int | None = None, controls: bool = True,
              strength_games: int | None = None) -> CompareSpec:
    """Validate everything a comparison needs, before any work: names (env, optimizers, attack,
    executor), the ``--set`` overrides and every optimizer's full training config. Raises
    :class:`~ipo_robust.errors.ConfigError` / :class:`~ipo_robust.errors.UnknownNameError`.

    ``attack``: the attack plugin (default: the env family's). ``attack_budget``: the headline budget, env
    steps or a multiple of the victims' training (``"1x"``); ``attack_budgets``: the budget curve (a list,
    or comma-separated text, e.g. ``"0.25x,0.5x,1x,2x"``), evaluated from one attacker's checkpoints; the
    headline budget defaults to its largest. ``attacker_seeds``: attackers per victim and seat (default 3
    for attacks that train, 1 for the exact best response). ``controls``: attack the known-weak victims of
    :data:`CONTROLS` too (positive controls). ``strength_games``: games per pairing and seat of the strength
    round robin (default ``games``; 0: none)."""
    optimizers = [name.strip() for name in optimizers if name and name.strip()]
    if not optimizers:
        raise ConfigError("--optimizers is empty: give at least one optimizer name")
    if len(set(optimizers)) != len(optimizers):
        raise ConfigError(f"--optimizers names an optimizer twice: {', '.join(optimizers)}")
    host.resolve("env", env)  # unknown names fail here, before any work
    for name in optimizers:
        host.resolve("optimizer", name)
    host.resolve("executor", executor)
    for label, value, low in (("--seeds", seeds, 1), ("--budget", updates, 1), ("--games", games, 1),
                              ("--robustness-points", robustness_points, 0),
                              ("--robustness-games", robustness_games, 1), ("--attacker-seeds", attacker_seeds, 1),
                              ("--strength-games", strength_games, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    if robustness_opponent not in ("random", "victim"):
        raise ConfigError(f"--robustness-opponent must be 'random' (a uniformly random opponent) or 'victim' (the "
                          f"pair's other agent), got {robustness_opponent!r}")
    per_optimizer, shared = split_overrides(overrides, optimizers)

    probe = make_env(env, num_envs=1, seed=0)
    family = env_family(probe)
    defaults = ENV_DEFAULTS[family]
    steps = defaults["steps"] or _episode_steps(probe)
    if hasattr(probe, "close"):
        probe.close()
    configs = {}
    for name in optimizers:
        options = {**OPTIMIZER_DEFAULTS[family].get(name, {}), **per_optimizer.get(name, {})}
        raw = {"env": {"name": env, "num_envs": defaults["num_envs"], "steps": steps,
                       "options": dict(defaults["options"])},
               "agents": {"hidden": list(defaults["hidden"])},
               "optimizer": {"name": name, "options": options},
               "schedule": {"kind": "self-play", "iterations": updates or defaults["updates"]},
               "run": {"seed": 0, "tensorboard": False}}
        raw = apply_overrides(raw, shared)
        every = raw["run"].get("checkpoint_every") or max(1, raw["schedule"]["iterations"] // 5)
        raw["run"]["checkpoint_every"] = every
        validate(raw)  # every optimizer's config checked (its hyperparameters by its own Config) up front
        check_config(raw).env.close()  # and built as a run builds it: env options, holders, agents, optimizer
        configs[name] = raw
    first = configs[optimizers[0]]
    for raw in configs.values():  # equal samples: --set may not give one optimizer a different budget
        for section, key in (("env", "num_envs"), ("env", "steps"), ("schedule", "iterations")):
            if raw[section][key] != first[section][key]:
                raise ConfigError(f"{section}.{key} differs between optimizers; every optimizer gets the same "
                                  "training samples")

    attack = attack or defaults["attack"]
    attack_options = dict(ATTACK_OPTIONS.get(family, {})) if attack == "ppo-adversary" else {}
    attack_object = host.create("attack", attack, **attack_options)  # options checked before any work
    probe = make_env(env, num_envs=1, seed=0, **first["env"]["options"])  # the victims' env, as trained
    try:
        attack_object.check_env(probe, env)  # e.g. the exact best response needs a matrix game
        describe = getattr(probe, "opponent_observation_indices", None)
        masked = family == "mujoco" and callable(describe) and describe(0) is not None  # the env names them
    finally:
        probe.close()
    victim_steps = int(first["env"]["num_envs"]) * int(first["env"]["steps"]) * int(first["schedule"]["iterations"])
    if isinstance(attack_budgets, str):
        attack_budgets = [b for b in attack_budgets.split(",") if b.strip()]
    budgets = sorted({parse_budget(b, victim_steps, "--attack-budgets") for b in (attack_budgets or [])})
    trains = attack == "ppo-adversary"
    if attack_budget is not None:
        headline = parse_budget(attack_budget, victim_steps)
    elif budgets:
        headline = budgets[-1]
    else:
        default = defaults["attack_budget"] if attack == defaults["attack"] else ("1x" if trains else 0)
        headline = parse_budget(default, victim_steps)
    budgets = sorted({*budgets, headline})
    return CompareSpec(env=env, family=family, optimizers=optimizers, seeds=list(range(seeds)), configs=configs,
                       attack=attack, attack_options=attack_options, attack_budget=headline,
                       attack_budgets=budgets if trains else [headline],
                       attacker_seeds=(attacker_seeds or 3) if trains else 1, victim_steps=victim_steps,
                       controls=CONTROLS if controls else (), masked=bool(masked and controls),
                       strength_games=(games or defaults["games"]) if strength_games is None else strength_games,
                       games=games or defaults["games"],
                       robustness_points=robustness_points if family == "mujoco" else 0,
                       robustness_games=robustness_games or games or defaults["games"], out=Path(out),
                       robustness_opponent=robustness_opponent,
                       executor=executor, executor_options=dict(executor_options or {}))
