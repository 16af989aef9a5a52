"""The typed training config: one frozen dataclass per table, :class:`PluginRef` s, and the checks.

See :mod:`ipo_robust.config` for the tables and what is checked; this module holds the section classes
(their fields carry default, check and doc), :class:`TrainConfig` and :meth:`TrainConfig.parse`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from typing import ClassVar

from ipo_robust import host
from ipo_robust.devices import device_problem
from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.hyperparameters import (
    boolean,
    hidden_sizes,
    hyperparameter,
    integer,
    invalid_fields,
    non_empty_string,
    non_negative,
    non_negative_int,
    one_of,
    positive_int,
    table,
    unit_interval,
)
from ipo_robust.optim.optimizer import Capabilities, capabilities_of

SCHEDULES = ("self-play", "ipo-rarl", "rarl")
ANNEALS = ("constant", "linear", "cosine")


# ---------------------------------------------------------------------------------- plugin references
class PluginRef:
    """A plugin a config names: its ``kind`` (a class attribute), ``name`` and ``options``; mixed into the
    :class:`Section` of the table that names it.

    ``build(*args, **kwargs)`` creates the object through the host, ``factory(*args, **options,
    **kwargs)``; call it once per run and keep the object (a run's setup does). A section whose ``UNSET``
    name is given names no plugin (``chosen`` is False): the opponent model "none", the perturbation
    "default".
    """

    kind: ClassVar[str]
    UNSET: ClassVar[str | None] = None
    name: str
    options: dict

    @property
    def chosen(self) -> bool:
        return self.name != self.UNSET

    def _refuse_unused_options(self) -> None:
        if not self.chosen and self.options:
            raise ConfigError(f"config: {self.SECTION}.options are given, but {self.SECTION}.name is "
                              f"{self.UNSET!r} (no plugin, so no options): name a registered "
                              f"{self.kind.replace('_', ' ')}")

    def resolve(self) -> Callable:
        """The registered factory (an unknown name raises :class:`~ipo_robust.errors.UnknownNameError`)."""
        return host.resolve(self.kind, self.name)

    def build_options(self) -> dict:
        """The options as the factory takes them (a copy)."""
        return copy.deepcopy(dict(self.options))

    def build(self, *args, **kwargs):
        """The object: ``kwargs`` are given with the options and win over them."""
        return host.create(self.kind, self.name, *args, **{**self.build_options(), **kwargs})


# -------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True, kw_only=True)
class Section:
    """One table of the config. Subclasses set ``SECTION`` and declare their keys as fields made by
    :func:`~ipo_robust.hyperparameters.hyperparameter` (default, check, doc)."""

    SECTION: ClassVar[str]

    def __post_init__(self):
        invalid = next(invalid_fields(self), None)
        if invalid is not None:
            key, value, allowed = invalid
            raise ConfigError(f"config: {self.SECTION}.{key} must be {allowed}, got {value!r}")

    @classmethod
    def settings(cls) -> list[dataclasses.Field]:
        """The settings of the table, in the order they are printed."""
        return [f for f in dataclasses.fields(cls) if "check" in f.metadata]

    @classmethod
    def parse(cls, given):
        """The section from its TOML table (``{}``: every default)."""
        if not isinstance(given, Mapping):
            raise ConfigError(f"config: [{cls.SECTION}] must be a table, got {given!r}")
        names = [f.name for f in cls.settings()]
        for key in given:
            if key not in names:
                raise _unknown(f"key in [{cls.SECTION}]", key, names)
        for f in cls.settings():
            if f.name not in given and f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"config: {cls.SECTION}.{f.name} is required")
        return cls(**copy.deepcopy(dict(given)))

    def as_dict(self) -> dict:
        """The table as plain TOML/JSON values (lists, not tuples)."""
        return {f.name: _plain(getattr(self, f.name)) for f in self.settings()}


def _plain(value):
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class EnvSection(Section, PluginRef):
    SECTION: ClassVar[str] = "env"
    kind: ClassVar[str] = "env"

    name: str = hyperparameter(MISSING, non_empty_string, "registered environment name")
    num_envs: int = hyperparameter(16, positive_int, "environment copies stepped together")
    steps: int = hyperparameter(100, positive_int, "rollout steps per copy per update")
    options: dict = hyperparameter({}, table, "options of the environment factory")
    streams: int = hyperparameter(1, positive_int, "independent env streams the copies are split into, collected "
                                  "in parallel worker processes (env.options.workers of them; default: the CPUs). "
                                  "Part of the run's randomness: the same streams give the same batches for any "
                                  "worker count")

    def __post_init__(self):
        super().__post_init__()
        for key in ("num_envs", "seed"):
            if key in self.options:
                where = "env.num_envs" if key == "num_envs" else "run.seed"
                raise ConfigError(f"config: env.options.{key}: set {where} instead")
        if self.streams > self.num_envs:
            raise ConfigError(f"config: env.streams = {self.streams} exceeds env.num_envs = {self.num_envs}: every "
                              "stream needs at least one env copy")
        _check_batch_memory(self.num_envs, self.steps)

    def build_env(self, num_envs: int, seed: int | None, **given):
        """The env with ``given`` beside the options: one env, or a
        :class:`~ipo_robust.streams.StreamedEnv` of ``streams`` (whose processes are ``options.workers``)."""
        if self.streams == 1:
            return self.build(num_envs=num_envs, seed=seed, **given)
        from ipo_robust.streams import StreamedEnv

        options = {**self.build_options(), **given}
        workers = options.pop("workers", None)
        return StreamedEnv(self.name, num_envs, seed, streams=self.streams, workers=workers, **options)


#: a lower bound on the bytes one rollout step of one env copy records: both agents' obs and next_obs and
#: actions of at least one entry each (2 * 2 + 2), plus ~8 scalar fields (rewards, dones, log-probs, ...),
#: all at 4 bytes (sumo-pushers records (2 * 2 * 16 + 2 * 2 + 8) * 8 = 608); no env is built to measure it
MIN_STEP_BYTES = (2 * 2 * 1 + 2 * 1 + 8) * 4
#: a lower bound on the bytes of one env copy (a MuJoCo copy's MjData alone is ~290 KB for sumo-pushers)
MIN_ENV_COPY_BYTES = 1024


def machine_memory() -> int | None:
    """The machine's physical memory in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000


def _check_batch_memory(num_envs: int, steps: int) -> None:
    """Refuse a batch whose memory lower bound exceeds the machine's physical memory (before numpy fails)."""
    memory = machine_memory()
    need = num_envs * (steps * MIN_STEP_BYTES + MIN_ENV_COPY_BYTES)
    if memory and need > memory:
        raise ConfigError(f"config: env.num_envs = {num_envs} needs at least {_bytes(need)} for one batch of "
                          f"env.steps = {steps} steps (this machine has {_bytes(memory)}); lower env.num_envs "
                          "or env.steps")


@dataclass(frozen=True, kw_only=True)
class AgentsSection(Section):
    SECTION: ClassVar[str] = "agents"

    hidden: tuple[int, ...] = hyperparameter([64, 64], hidden_sizes, "hidden widths of both MLP policies")
    state_dependent_std: bool = hyperparameter(
        True, boolean, "a holder of an env whose perturbation asks for it (learned forces) outputs the log-std of "
        "its perturbation entries from its observation (seed sec. 6); false: state-independent log-std "
        "(runs from before this key)")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "hidden", tuple(self.hidden))


@dataclass(frozen=True, kw_only=True)
class OptimizerSection(Section, PluginRef):
    SECTION: ClassVar[str] = "optimizer"
    kind: ClassVar[str] = "optimizer"

    name: str = hyperparameter("ipo-vpg", non_empty_string, "registered optimizer name")
    options: dict = hyperparameter({}, table, "the optimizer's hyperparameters")

    def build_options(self) -> dict:
        """TOML has no tuples: lists become tuples (a Config that takes sizes expects a tuple)."""
        return {k: tuple(v) if isinstance(v, list) else copy.deepcopy(v) for k, v in self.options.items()}


@dataclass(frozen=True, kw_only=True)
class OpponentModelSection(Section, PluginRef):
    SECTION: ClassVar[str] = "opponent_model"
    kind: ClassVar[str] = "opponent_model"
    UNSET: ClassVar[str] = "none"

    name: str = hyperparameter("none", non_empty_string,
                               "'none' (true opponent parameters) or a registered opponent model")
    options: dict = hyperparameter({}, table, "options of the opponent model")

    def __post_init__(self):
        super().__post_init__()
        self._refuse_unused_options()


@dataclass(frozen=True, kw_only=True)
class PerturbationSection(Section, PluginRef):
    SECTION: ClassVar[str] = "perturbation"
    kind: ClassVar[str] = "perturbation"
    UNSET: ClassVar[str] = "default"

    name: str = hyperparameter("default", non_empty_string, "'default' (the env's own) or a registered perturbation")
    options: dict = hyperparameter({}, table, "options of the perturbation")

    def __post_init__(self):
        super().__post_init__()
        self._refuse_unused_options()


@dataclass(frozen=True, kw_only=True)
class ScheduleSection(Section):
    SECTION: ClassVar[str] = "schedule"

    kind: str = hyperparameter("self-play", one_of(*SCHEDULES),
                               "self-play, ipo-rarl (Algorithm 1) or rarl (Pinto et al.)")
    iterations: int = hyperparameter(100, positive_int, "outer iterations")
    n1: int = hyperparameter(1, non_negative_int, "ipo-rarl: updates with agent 1 holding the superpower per "
                             "iteration; rarl: protagonist updates per iteration")
    n2: int = hyperparameter(1, non_negative_int, "ipo-rarl: updates with agent 2 holding the superpower; rarl: "
                             "adversary updates")
    alpha1: float = hyperparameter(0.5, unit_interval, "ipo-rarl: superpower amount of agent 1")
    alpha2: float = hyperparameter(0.5, unit_interval, "ipo-rarl: superpower amount of agent 2")
    holder: int | str = hyperparameter("none", one_of("none", 1, 2),
                                       "self-play: which agent holds the superpower throughout")
    alpha: float = hyperparameter(1.0, unit_interval, "self-play with a holder, rarl: the holder's superpower amount")
    protagonist: int = hyperparameter(1, one_of(1, 2), "rarl: the agent trained for the task (the other is the "
                                      "adversary)")
    anneal: str = hyperparameter("constant", one_of(*ANNEALS), "alpha annealing to zero over the iterations")
    task_weight: float = hyperparameter(0.5, non_negative, "holder's reward = task_weight * own task reward + ...")
    fail_weight: float = hyperparameter(0.5, non_negative, "... + fail_weight * (minus the victim's task reward)")
    shaping_anneal: str = hyperparameter("linear", one_of(*ANNEALS),
                                         "annealing of the env's dense shaping weight to zero")

    def __post_init__(self):
        super().__post_init__()
        if self.kind in ("ipo-rarl", "rarl") and self.n1 + self.n2 == 0:
            raise ConfigError(f"config: schedule.n1 and schedule.n2 are both 0: {self.kind} needs at least one "
                              "update per iteration")


@dataclass(frozen=True, kw_only=True)
class RunSection(Section):
    SECTION: ClassVar[str] = "run"

    seed: int = hyperparameter(0, integer, "seed of the weights, the env and the action sampling")
    out: str = hyperparameter("runs/train", non_empty_string, "run directory (checkpoints, metrics.csv)")
    checkpoint_every: int = hyperparameter(10, positive_int, "updates between checkpoints")
    keep: int = hyperparameter(3, positive_int, "newest checkpoints kept")
    tensorboard: bool | str = hyperparameter(
        "auto", one_of("auto", True, False),
        "TensorBoard event files in run.out/tensorboard: 'auto' = when tensorboard is installed")
    device: str = hyperparameter("cpu", non_empty_string,
                                 "where policies, critics and updates run: 'cpu', 'cuda' or 'cuda:N' (envs stay "
                                 "on the CPU)")

    def __post_init__(self):
        super().__post_init__()
        problem = device_problem(self.device)
        if problem is not None:
            raise ConfigError(f"config: run.device: {problem}")


#: table name -> its section class, in the order of the config
SECTIONS: dict[str, type[Section]] = {cls.SECTION: cls for cls in (
    EnvSection, AgentsSection, OptimizerSection, OpponentModelSection, PerturbationSection, ScheduleSection,
    RunSection)}

#: table -> key -> (default, check, doc), read from the section classes
SCHEMA: dict[str, dict[str, tuple]] = {
    name: {f.name: (f.default if f.default_factory is MISSING else f.default_factory(), f.metadata["check"],
                    f.metadata["doc"]) for f in cls.settings()}
    for name, cls in SECTIONS.items()}

#: keys that may differ between a run and its resumption (they do not change what is computed; the device
#: only to float rounding)
RESUMABLE_CHANGES = {("run", "out"), ("run", "checkpoint_every"), ("run", "keep"), ("run", "tensorboard"),
                     ("run", "device")}

#: keys added after checkpoints were first written: a checkpoint's config without one is not compared on
#: it (resuming checks what the key decides instead: the agents' policy specs; the env's random state, one
#: per stream). run.device is a RESUMABLE_CHANGES key: never compared.
ADDED_KEYS = {("agents", "state_dependent_std"), ("env", "streams")}

#: env options that change how fast a run goes, never what it computes (the threads stepping env copies):
#: a resume may change them
SPEED_ONLY_ENV_OPTIONS = frozenset({"workers"})


# ------------------------------------------------------------------------------------- the whole config
@dataclass(frozen=True)
class TrainConfig:
    """A training config, parsed and validated whole (:meth:`parse`); one section per table."""

    env: EnvSection
    agents: AgentsSection
    optimizer: OptimizerSection
    opponent_model: OpponentModelSection
    perturbation: PerturbationSection
    schedule: ScheduleSection
    run: RunSection

    @classmethod
    def parse(cls, raw) -> TrainConfig:
        """The config of a TOML dict (missing tables and keys take their defaults), or ConfigError naming
        the first bad key. Checks the tables, every value, the plugins (names, options, the optimizer's
        capabilities against the schedule)."""
        if not isinstance(raw, Mapping):
            raise ConfigError("config: the top level must be a table")
        for name in raw:
            if name not in SECTIONS:
                raise _unknown("section", name, SECTIONS)
        config = cls(**{name: section.parse(raw.get(name, {})) for name, section in SECTIONS.items()})
        _check_plugins(config)
        return config

    def as_dict(self) -> dict:
        """The resolved config as plain values: what checkpoints record and ``--print-config`` prints."""
        return {name: getattr(self, name).as_dict() for name in SECTIONS}


def parse_config(config) -> TrainConfig:
    """A :class:`TrainConfig` as it is, or a raw or resolved dict parsed (:meth:`TrainConfig.parse`)."""
    return config if isinstance(config, TrainConfig) else TrainConfig.parse(config)


def validate(raw) -> dict:
    """The fully resolved config (defaults filled in) as a dict, or ConfigError naming the first bad key."""
    return parse_config(raw).as_dict()


def _check_plugins(config: TrainConfig) -> None:
    _resolve(config.env)
    optimizer = _resolve(config.optimizer)
    models = [ref for ref in (config.opponent_model, config.perturbation) if ref.chosen]
    for ref in models:
        _resolve(ref)
    _check_options(config.optimizer, None)  # the optimizer without agents (its rule alone): nothing is trained
    for ref in models:
        _check_options(ref)
    capabilities = capabilities_of(optimizer)
    name = config.optimizer.name
    if config.schedule.kind == "rarl" and capabilities.interactive:
        others = _optimizers(lambda c: not c.interactive and c.policies == "stochastic")
        raise ConfigError(f"config: schedule.kind 'rarl' trains one agent at a time, but optimizer {name!r} is "
                          "interactive (it anticipates a simultaneous opponent update): use ipo-rarl, or a "
                          f"non-interactive optimizer ({', '.join(others)})")
    if capabilities.policies != "stochastic":
        raise ConfigError(f"config: optimizer {name!r} trains {capabilities.policies} policies; `ipo-robust train` "
                          "runs the stochastic-policy optimizers (train it through the Python API)")
    if config.opponent_model.chosen and not capabilities.opponent_models:
        others = _optimizers(lambda c: c.opponent_models and c.policies == "stochastic")
        raise ConfigError(f"config: opponent_model.name: optimizer {name!r} takes no opponent model: set "
                          f"opponent_model.name = \"none\", or use an optimizer that does ({', '.join(others)})")


def _resolve(ref: PluginRef) -> Callable:
    try:
        return ref.resolve()
    except UnknownNameError as error:
        raise ConfigError(f"config: {ref.SECTION}.name: {error}") from None


def _check_options(ref: PluginRef, *args) -> None:
    """Build a throwaway probe of the plugin, when it has options: they are checked by its own factory."""
    if not ref.options:
        return
    try:
        ref.build(*args)
    except (ConfigError, TypeError, ValueError) as error:
        raise ConfigError(f"config: {ref.SECTION}.options: {error}") from None


def _optimizers(where: Callable[[Capabilities], bool]) -> list[str]:
    """Registered optimizers whose declared capabilities pass ``where`` (those without any are left out)."""
    names = []
    for name, factory in host.registered("optimizer").items():
        try:
            capabilities = capabilities_of(factory)
        except ConfigError:
            continue
        if where(capabilities):
            names.append(name)
    return names


def _unknown(what: str, key: str, known) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"config: unknown {what} {key!r}{hint} (known: {', '.join(known)})")


def optimizer_options(config) -> dict:
    """The optimizer's options of a config (dict or :class:`TrainConfig`) as its factory takes them."""
    section = config.optimizer if isinstance(config, TrainConfig) else OptimizerSection.parse(config["optimizer"])
    return section.build_options()


def differences(a, b, ignore=RESUMABLE_CHANGES) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (dicts or :class:`TrainConfig`;
    ``ignore``: (section, key) pairs). A key of :data:`ADDED_KEYS` that one of them lacks is not compared, nor
    are the env options of :data:`SPEED_ONLY_ENV_OPTIONS`."""
    a, b = (c.as_dict() if isinstance(c, TrainConfig) else c for c in (a, b))
    out = []
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section, {}), b.get(section, {})
        for key in sorted(set(sa) | set(sb)):
            if (section, key) in ignore or ((section, key) in ADDED_KEYS and (key not in sa or key not in sb)):
                continue
            va, vb = sa.get(key), sb.get(key)
            if (section, key) == ("env", "options") and isinstance(va, Mapping) and isinstance(vb, Mapping):
                va, vb = ({k: v for k, v in o.items() if k not in SPEED_ONLY_ENV_OPTIONS} for o in (va, vb))
            if va != vb:
                out.append(f"{section}.{key}")
    return out
