"""The specification of a comparison (:mod:`ipo_robust.evals.compare`): per-family defaults, attack
budgets, and :func:`make_spec`, which validates everything a comparison needs before any work.

A comparison's *entries* are labelled training methods: an optimizer name of ``--optimizers`` (a self-play
config compare builds from the family defaults, labelled by the optimizer's name) or a whole training
config (``--config LABEL=PATH``: any schedule, perturbation, hyperparameters). Every entry trains the same
number of env steps (:func:`entry_facts`); every trained pair is judged in the same *plain game*
(:func:`plain_victim`): the env with the entries' shared options, nobody holding the superpower, dense
shaping off in every evaluation game, and each agent given only the action entries that game takes."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipo_robust import host, make_env
from ipo_robust.config import SCHEMA, apply_overrides, load_toml, validate
from ipo_robust.envs.matrix import IteratedMatrixGameEnv, MatrixGameEnv
from ipo_robust.errors import ConfigError
from ipo_robust.evals.compare_entries import (
    describe_method,
    describe_training,
    entries_env,
    entry_facts,
    parse_config_entries,
    refuse_unequal_steps,
)
from ipo_robust.evals.plain_game import (
    SUPERPOWER_OPTIONS,
    TRAINING_ONLY_OPTIONS,
    _check_plain_game,
    game_options,
    plain_options,
)
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
#: gradient family so that ipo-vpg differs from simga only by the update rule, and ipo-ppo takes ppo's.
OPTIMIZER_DEFAULTS: dict[str, dict[str, dict]] = {
    "matrix": {name: {"lr": 0.5, "gamma": 1.0} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "gamma": 1.0} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {name: {"lr": 0.01, "gamma": 1.0} for name in ("ppo", "ipo-ppo")},
    "iterated": {name: {"lr": 0.5, "critic": "value"} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "critic": "value"} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {name: {"lr": 0.01} for name in ("ppo", "ipo-ppo")},
    "mujoco": {name: {"lr": 0.1, "critic": "value"} for name in ("ipo-vpg", "simga", "lookahead", "cgd", "lola")}
    | {name: {"kl": 0.01, "critic": "value"} for name in ("ipo-npg", "ipo-trpo", "npg", "trpo", "ncgd")}
    | {name: {"lr": 1e-3} for name in ("ppo", "ipo-ppo")},
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

SET_USAGE = ("OPTIMIZER.KEY=VALUE, LABEL.KEY=VALUE, LABEL.SECTION.KEY=VALUE or SECTION.KEY=VALUE (e.g. ppo.lr=3e-4, "
             "ipo-rarl.schedule.iterations=150, env.num_envs=32)")

#: what a ``--config`` label may be: it names work items, run directories and ``--set LABEL.KEY`` items



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
    """the entries' labels, in order: a ``--config`` label or an optimizer name of ``--optimizers`` (the
    ``optimizer`` column of every table holds them)"""
    seeds: list[int]
    configs: dict[str, dict]
    """label -> its raw training config (run.seed is set per item, run.out when the item runs)"""
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
    """env steps each victim pair trained for, the same for every entry (budget multiples are of this)"""
    controls: tuple = CONTROLS
    """known-weak victims attacked with the same attack and budgets (positive controls)"""
    masked: bool = False
    """play the masked-victim control (each trained agent blind to its opponent, against its own partner)"""
    strength_games: int = 0
    """games per pairing (and seat) of the round robin and against random (:mod:`ipo_robust.evals.strength`);
    0: no strength axis"""
    sources: dict[str, str] = field(default_factory=dict)
    """label -> the config file of a ``--config`` entry (an ``--optimizers`` entry has none)"""
    robustness_parameters: tuple = ("mass",)
    """the dynamics each agent is swept over (:data:`ipo_robust.evals.robustness.DYNAMICS`), each at
    ``robustness_points`` scales in 0.5..1.5; the leaderboard's worst case is over all of them"""
    _facts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def budget_multiple(self, budget: int) -> float:
        """``budget`` as a multiple of the victims' training env steps."""
        return budget / self.victim_steps if self.victim_steps else math.nan

    def __post_init__(self):
        if not self.attack_budgets:
            self.attack_budgets = [int(self.attack_budget)]

    @property
    def labels(self) -> list[str]:
        """The entries' labels (the same list as :attr:`optimizers`, the name the tables keep)."""
        return self.optimizers

    def facts(self, label: str) -> dict:
        """What entry ``label`` trains (:func:`entry_facts`: optimizer, schedule, env copies x steps x
        iterations x updates per iteration = env steps)."""
        if label not in self._facts:
            self._facts[label] = entry_facts(self.configs[label])
        return self._facts[label]

    @property
    def env_steps(self) -> dict[str, int]:
        """label -> the env steps its pair trains for (all equal: :attr:`victim_steps`)."""
        return {label: self.facts(label)["env_steps"] for label in self.optimizers}

    def method(self, label: str) -> str:
        """``ipo-vpg (ipo-rarl, learned-location)``: entry ``label``'s optimizer, schedule and perturbation."""
        return describe_method(self.facts(label))

    def training(self, label: str) -> str:
        """``32 env copies x 100 steps x 150 iterations x 2 updates = 960,000 env steps`` for entry ``label``."""
        return describe_training(self.facts(label))

    @property
    def game_options(self) -> dict:
        """The options of the plain game every pair is judged in (:func:`game_options`; equal for every entry)."""
        return game_options(next(iter(self.configs.values()))["env"].get("options", {})) if self.configs else {}

    @property
    def bound(self) -> str:
        return "exact" if self.attack == "best-response" else "lower bound"

    def items(self) -> list[dict]:
        """The work items (entry-major, then seed), each a plain picklable dict."""
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
                if tuple(self.robustness_parameters) != ("mass",):  # (the default leaves earlier items' keys alone)
                    item["robustness_parameters"] = list(self.robustness_parameters)
                out.append(self._placed(item))
        env_options = plain_options(next(iter(self.configs.values()))["env"].get("options", {}))
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


def split_overrides(items, optimizers: list[str],
                    sections: dict[str, list[str]] | None = None) -> tuple[dict[str, dict], list[str]]:
    """``--set`` items -> (per-entry hyperparameters, config overrides for every entry).

    ``NAME.KEY=VALUE`` with NAME one of ``optimizers`` (the comparison's entries: an optimizer name of
    ``--optimizers`` or a ``--config`` label) sets that entry's optimizer hyperparameter KEY
    (``ppo.lr=3e-4``); ``SECTION.KEY=VALUE`` with SECTION a config section applies to every entry's config
    (``env.num_envs=32``, ``optimizer.options.gamma=0.95``). ``NAME.SECTION.KEY=VALUE`` sets a config key of
    that entry alone (``ipo-rarl.schedule.iterations=150``): collected per entry into ``sections`` when it is
    given (as ``SECTION.KEY=VALUE`` items), refused otherwise. Values follow
    :func:`ipo_robust.overrides.parse_value`.
    """
    per_optimizer: dict[str, dict] = {}
    shared: list[str] = []
    for item in items:
        parts, value = split_item(item, SET_USAGE, min_depth=2)
        owner, key = parts[0], ".".join(parts)
        if owner in optimizers:
            if len(parts) > 2 and parts[1] in SCHEMA and sections is not None:
                entry_key = ".".join(parts[1:])
                if entry_key in ("run.seed", "run.out"):
                    raise ConfigError(f"--set {item!r}: compare sets {entry_key} itself (use --seeds and --out)")
                sections.setdefault(owner, []).append(item.partition(".")[2])
                continue
            if len(parts) != 2:
                raise ConfigError(f"--set {item!r}: expected {owner}.KEY=VALUE with KEY one hyperparameter"
                                  + (f", or {owner}.SECTION.KEY=VALUE with SECTION a config section"
                                     if sections is not None else ""))
            per_optimizer.setdefault(owner, {})[parts[1]] = value
        elif owner in SCHEMA:
            if key in MANAGED_KEYS:
                raise ConfigError(f"--set {item!r}: compare sets {key} itself (use --seeds and --out)")
            shared.append(item)
        else:
            raise ConfigError(f"--set {item!r}: {owner!r} is neither an entry of the comparison (an optimizer in "
                              f"--optimizers or a --config label: {', '.join(optimizers)}) nor a config section "
                              f"({', '.join(SCHEMA)})")
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


def make_spec(env: str | None, optimizers: list[str], seeds: int = 3, updates: int | None = None,
              attack_budget: int | str | None = None, games: int | None = None, out: str | Path = "compare",
              executor: str = "local", overrides=(), robustness_points: int = 11,
              robustness_games: int | None = None, executor_options: dict | None = None,
              robustness_opponent: str = "random", attack: str | None = None, attack_budgets=None,
              attacker_seeds: int | None = None, controls: bool = True,
              strength_games: int | None = None, configs=None, robustness_parameters=("mass",)) -> CompareSpec:
    """Validate everything a comparison needs, before any work: names (env, optimizers, attack,
    executor), the ``--set`` overrides and every entry's full training config. Raises
    :class:`~ipo_robust.errors.ConfigError` / :class:`~ipo_robust.errors.UnknownNameError`.

    ``configs``: whole training configs as entries beside ``optimizers`` (``--config``; a mapping label ->
    TOML path or raw config, or ``LABEL=PATH`` / ``PATH`` texts: :func:`parse_config_entries`). Each is
    validated and built as ``train`` builds it; compare sets its ``run.seed`` per seed, ``run.out`` per work
    item, ``run.tensorboard = false`` and ``run.checkpoint_every`` where it has none. ``env``: the env every
    entry plays; None takes the one every config names. Every entry must train the same env steps
    (:func:`entry_facts`) and play the same game (equal env options but :data:`TRAINING_ONLY_OPTIONS`).

    ``updates``: the self-play updates of the ``optimizers`` entries (``--budget``). ``attack``: the attack
    plugin (default: the env family's). ``attack_budget``: the headline budget, env steps or a multiple of the
    victims' training (``"1x"``); ``attack_budgets``: the budget curve (a list, or comma-separated text, e.g.
    ``"0.25x,0.5x,1x,2x"``), evaluated from one attacker's checkpoints; the headline budget defaults to its
    largest. ``attacker_seeds``: attackers per victim and seat (default 3 for attacks that train, 1 for the
    exact best response). ``controls``: attack the known-weak victims of :data:`CONTROLS` too (positive
    controls). ``strength_games``: games per pairing and seat of the strength round robin (default ``games``;
    0: none)."""
    entries = parse_config_entries(configs)
    optimizers = [name.strip() for name in (optimizers or []) if name and name.strip()]
    if not optimizers and not entries:
        raise ConfigError("--optimizers is empty: give at least one optimizer name (or a --config file)")
    if len(set(optimizers)) != len(optimizers):
        raise ConfigError(f"--optimizers names an optimizer twice: {', '.join(optimizers)}")
    for label in entries:
        if label in optimizers:
            raise ConfigError(f"--config label {label!r} is also an optimizer in --optimizers: labels name the "
                              "comparison's entries and must be unique; give the config another label "
                              "(--config LABEL=PATH)")
    files = {label: (copy.deepcopy(dict(value)) if isinstance(value, Mapping) else load_toml(value))
             for label, value in entries.items()}
    sources = {label: ("<dict>" if isinstance(value, Mapping) else str(value)) for label, value in entries.items()}
    env = entries_env(env, files, sources)
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
    if updates is not None and not optimizers:
        raise ConfigError("--budget sets the self-play updates of the --optimizers entries, and there are none: a "
                          "--config entry trains its own schedule.iterations (--set LABEL.schedule.iterations=N)")
    if robustness_opponent not in ("random", "victim"):
        raise ConfigError(f"--robustness-opponent must be 'random' (a uniformly random opponent) or 'victim' (the "
                          f"pair's other agent), got {robustness_opponent!r}")
    labels = [*entries, *optimizers]
    sections: dict[str, list[str]] = {}
    per_entry, shared = split_overrides(overrides, labels, sections)
    for name in optimizers:  # an --optimizers entry is its optimizer: another one is another entry
        if any(item.partition("=")[0].strip() == "optimizer.name" for item in sections.get(name, ())):
            raise ConfigError(f"--set {name}.optimizer.name: compare sets optimizer.name of the --optimizers entry "
                              f"{name!r} itself (list another optimizer in --optimizers, or give a --config)")

    probe = make_env(env, num_envs=1, seed=0)
    family = env_family(probe)
    defaults = ENV_DEFAULTS[family]
    steps = defaults["steps"] or _episode_steps(probe)
    if hasattr(probe, "close"):
        probe.close()
    raws = {}
    for label in entries:  # the file, then --set for all, then this entry's hyperparameters and keys
        run = files[label].setdefault("run", {})
        if not isinstance(run, dict):
            raise ConfigError(f"--config {label} ({sources[label]!r}): config: [run] must be a table")
        run.pop("out", None)  # compare's own: OUT/runs/<label>-s<seed> (set when the item runs)
        run.update(seed=0, tensorboard=False)  # the seed is set per item; --set run.tensorboard=true may change it
        raw = apply_overrides(files[label], shared)
        if label in per_entry:
            optimizer = raw.setdefault("optimizer", {})
            optimizer["options"] = {**optimizer.get("options", {}), **per_entry[label]}
        raws[label] = apply_overrides(raw, sections.get(label, ()))
    for name in optimizers:
        raw = {"env": {"name": env, "num_envs": defaults["num_envs"], "steps": steps,
                       "options": dict(defaults["options"])},
               "agents": {"hidden": list(defaults["hidden"])},
               "optimizer": {"name": name, "options": dict(OPTIMIZER_DEFAULTS[family].get(name, {}))},
               "schedule": {"kind": "self-play", "iterations": updates or defaults["updates"]},
               "run": {"seed": 0, "tensorboard": False}}
        raw = apply_overrides(raw, shared)
        raw["optimizer"]["options"] = {**raw["optimizer"].get("options", {}), **per_entry.get(name, {})}
        raws[name] = apply_overrides(raw, sections.get(name, ()))
    configs, facts = {}, {}
    for label, raw in raws.items():
        resolved = validate(raw)  # every entry's config checked (its hyperparameters by its optimizer's Config)
        if resolved["env"]["name"] != env:  # e.g. --set env.name=...
            where = f"--config {label} ({sources[label]!r})" if label in sources else f"optimizer {label!r}"
            raise ConfigError(f"{where} trains on {resolved['env']['name']!r}, not on {env!r}: every entry of a "
                              "comparison must play the same env")
        raw["run"]["checkpoint_every"] = raw["run"].get("checkpoint_every") or max(
            1, resolved["schedule"]["iterations"] // 5)
        setup = check_config(raw)  # and built as a run builds it: env options, holders, agents, optimizer
        try:
            if any(key in setup.env_options for key in SUPERPOWER_OPTIONS):  # judged in the plain game
                plain = make_env(env, num_envs=1, seed=0, **plain_options(raw["env"].get("options", {})))
                try:
                    _check_plain_game(env, label, setup.env, plain)
                finally:
                    plain.close()
        finally:
            setup.env.close()
        configs[label], facts[label] = raw, entry_facts(raw)
    games_of = {label: game_options(raw["env"].get("options", {})) for label, raw in configs.items()}
    if len({json.dumps(options, sort_keys=True, default=str) for options in games_of.values()}) > 1:
        listing = ", ".join(f"{label} {options}" for label, options in games_of.items())
        raise ConfigError(f"entries play different games: env.options other than {', '.join(TRAINING_ONLY_OPTIONS)} "
                          f"differ ({listing}); every entry is judged in the same game")
    victim_steps = refuse_unequal_steps(facts)
    first = configs[labels[0]]

    attack = attack or defaults["attack"]
    attack_options = dict(ATTACK_OPTIONS.get(family, {})) if attack == "ppo-adversary" else {}
    attack_object = host.create("attack", attack, **attack_options)  # options checked before any work
    probe = make_env(env, num_envs=1, seed=0, **plain_options(first["env"].get("options", {})))  # the plain game
    try:
        attack_object.check_env(probe, env)  # e.g. the exact best response needs a matrix game
        describe = getattr(probe, "opponent_observation_indices", None)
        masked = family == "mujoco" and callable(describe) and describe(0) is not None  # the env names them
    finally:
        probe.close()
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
    spec = CompareSpec(env=env, family=family, optimizers=labels, seeds=list(range(seeds)), configs=configs,
                       attack=attack, attack_options=attack_options, attack_budget=headline,
                       attack_budgets=budgets if trains else [headline],
                       attacker_seeds=(attacker_seeds or 3) if trains else 1, victim_steps=victim_steps,
                       controls=CONTROLS if controls else (), masked=bool(masked and controls),
                       strength_games=(games or defaults["games"]) if strength_games is None else strength_games,
                       games=games or defaults["games"],
                       robustness_points=robustness_points if family == "mujoco" else 0,
                       robustness_games=robustness_games or games or defaults["games"], out=Path(out),
                       robustness_opponent=robustness_opponent,
                       executor=executor, executor_options=dict(executor_options or {}), sources=sources,
                       robustness_parameters=_robustness_parameters(robustness_parameters))
    spec._facts.update(facts)
    return spec


def _robustness_parameters(parameters) -> tuple[str, ...]:
    """``--robustness-parameters``: names of :data:`~ipo_robust.evals.robustness.DYNAMICS` (a list or
    comma-separated text), each once; one-line ConfigError otherwise."""
    from ipo_robust.evals.robustness import DYNAMICS

    names = [p.strip() for p in (parameters.split(",") if isinstance(parameters, str) else parameters) if p.strip()]
    unknown = [p for p in names if p not in DYNAMICS]
    if not names or unknown or len(set(names)) != len(names):
        raise ConfigError(f"--robustness-parameters must name each of {', '.join(DYNAMICS)} at most once, "
                          f"comma-separated, got {parameters!r}")
    return tuple(names)
