"""Training configs: a TOML file, parsed once into a typed :class:`TrainConfig` and validated whole.

A config has seven tables (every key optional except ``env.name``; ``ipo-robust train CONFIG
--print-config`` shows the resolved result)::

    [env]                 # the environment
    name = "sumo-pushers"
    num_envs = 16         # copies stepped together
    steps = 100           # rollout steps per copy per update (a batch is num_envs x steps)
    options = {}          # the env factory's options (shaping, max_episode_steps, f_max, ...)

    [agents]
    hidden = [64, 64]     # MLP widths of both policies
    state_dependent_std = true  # false: state-independent log-std everywhere (runs from before the option)

    [optimizer]
    name = "ipo-vpg"      # any registered optimizer
    options = {}          # its hyperparameters, checked against the optimizer's own Config

    [opponent_model]
    name = "none"         # "none" (true parameters) or any registered opponent model
    options = {}

    [perturbation]
    name = "default"      # "default": the env's own; else any registered perturbation
    options = {}

    [schedule]            # see ipo_robust.training.schedules
    kind = "self-play"    # self-play | ipo-rarl | rarl
    iterations = 100      # outer iterations (ipo-rarl, rarl: each holds n1 + n2 updates)
    ...

    [run]
    seed = 0
    out = "runs/NAME"     # relative paths are relative to the working directory
    checkpoint_every = 10 # updates
    keep = 3              # newest checkpoints kept
    tensorboard = "auto"  # event files too, when tensorboard is installed

Each table is a frozen dataclass (:class:`EnvSection`, :class:`AgentsSection`, ...) whose fields carry
their default, their check (from :mod:`ipo_robust.hyperparameters`, the one home of value checks) and
their doc. :meth:`TrainConfig.parse` checks everything that can be checked before a run starts: the
tables and keys (unknown ones with a did-you-mean), every value, that the named plugins exist and take
their options, and that the optimizer suits the schedule. A failure is one
:class:`~ipo_robust.errors.ConfigError` line naming the dotted key (``schedule.alpha1 must be a number in
[0, 1], got 1.5``); the command line exits 2.

The sections that name a plugin are :class:`PluginRef` s (kind, name, options): ``ref.build(*args)``
creates the object through the host (:func:`ipo_robust.host.create`, which names the owner in errors).
A run builds each of them once (:class:`~ipo_robust.training.setup.TrainingSetup` keeps them). Parsing
checks a plugin's options, where it has any, by a throwaway probe of its factory (the optimizer without
agents: its rule alone); a :class:`TrainConfig` is parsed once and handed on as it is.

``--set key.sub=value`` overrides any key (:func:`apply_overrides`, through :mod:`ipo_robust.overrides`)
before parsing. :func:`validate` is the dict form of :meth:`TrainConfig.parse` (the resolved config,
defaults filled in, as checkpoints record it).

Modules: :mod:`.sections` (the typed tables, :class:`TrainConfig`, the checks), :mod:`.toml_io` (reading,
``--set``, printing).
"""

from ipo_robust.config.sections import (
    ADDED_KEYS,
    ANNEALS,
    RESUMABLE_CHANGES,
    SCHEDULES,
    SCHEMA,
    SECTIONS,
    AgentsSection,
    EnvSection,
    OpponentModelSection,
    OptimizerSection,
    PerturbationSection,
    PluginRef,
    RunSection,
    ScheduleSection,
    Section,
    TrainConfig,
    differences,
    optimizer_options,
    parse_config,
    validate,
)
from ipo_robust.config.toml_io import SET_USAGE, apply_overrides, load_toml, to_toml

__all__ = ["ADDED_KEYS", "ANNEALS", "RESUMABLE_CHANGES", "SCHEDULES", "SCHEMA", "SECTIONS", "SET_USAGE",
           "AgentsSection", "EnvSection", "OpponentModelSection", "OptimizerSection", "PerturbationSection",
           "PluginRef", "RunSection", "ScheduleSection", "Section", "TrainConfig", "apply_overrides", "differences",
           "load_toml", "optimizer_options", "parse_config", "to_toml", "validate"]
