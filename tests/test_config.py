"""The typed training config (issue 14, item 2): parsed and validated once, plugins built once per run,
one ``--set`` parser, the value checks of :mod:`ipo_robust.hyperparameters`."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from ipo_robust import host, hyperparameters
from ipo_robust.config import (
    SCHEMA,
    SECTIONS,
    AgentsSection,
    PluginRef,
    ScheduleSection,
    TrainConfig,
    apply_overrides,
    differences,
    parse_config,
    to_toml,
    validate,
)
from ipo_robust.errors import ConfigError
from ipo_robust.optim.optimizer import capabilities_of

ROOT = Path(__file__).resolve().parents[1]


def tiny(**sections) -> dict:
    raw = {"env": {"name": "sumo-pushers", "num_envs": 2, "steps": 12, "options": {"max_episode_steps": 10}},
           "agents": {"hidden": [8]},
           "optimizer": {"name": "ipo-vpg", "options": {"lr": 0.05}},
           "perturbation": {"name": "learned-location"},
           "schedule": {"kind": "ipo-rarl", "iterations": 1},
           "run": {"seed": 3, "tensorboard": False}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


def test_parse_gives_typed_sections_with_their_defaults():
    config = TrainConfig.parse({"env": {"name": "sumo-pushers"}})
    assert config.env.num_envs == 16 and config.agents.hidden == (64, 64) and config.agents.state_dependent_std
    assert config.optimizer.kind == "optimizer" and config.optimizer.name == "ipo-vpg"
    assert not config.perturbation.chosen and not config.opponent_model.chosen
    assert isinstance(config.optimizer, PluginRef) and isinstance(config.schedule, ScheduleSection)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.run.seed = 1
    assert parse_config(config) is config  # parsed once, handed on as it is


def test_the_dict_form_round_trips_through_toml_and_validate():
    raw = tiny(agents={"state_dependent_std": False}, opponent_model={"name": "mle", "options": {"epochs": 2}})
    config = TrainConfig.parse(raw)
    resolved = config.as_dict()
    assert resolved == validate(raw) == validate(resolved)
    assert list(resolved) == list(SECTIONS) and resolved["agents"] == {"hidden": [8], "state_dependent_std": False}
    import tomllib

    assert TrainConfig.parse(tomllib.loads(to_toml(config))) == config
    assert differences(config, resolved) == []


def test_the_schema_is_read_from_the_sections_and_every_check_lives_in_hyperparameters():
    assert list(SCHEMA) == ["env", "agents", "optimizer", "opponent_model", "perturbation", "schedule", "run"]
    assert SCHEMA["agents"]["state_dependent_std"][0] is True and SCHEMA["schedule"]["alpha1"][0] == 0.5
    for section in SECTIONS.values():
        for field in section.settings():
            check = field.metadata["check"]
            assert check.__module__ == hyperparameters.__name__, (section.SECTION, field.name)
            assert field.metadata["doc"]


@pytest.mark.parametrize("section,values,message", [
    ("schedule", {"alpha1": 1.5}, "config: schedule.alpha1 must be a number in [0, 1], got 1.5"),
    ("env", {"num_envs": "many"}, "config: env.num_envs must be an integer > 0, got 'many'"),
    ("run", {"tensorboard": 1}, "config: run.tensorboard must be one of"),  # 1 is not true
    ("schedule", {"holder": True}, "config: schedule.holder must be one of"),  # true is not 1
    ("agents", {"hidden": [0]}, "config: agents.hidden must be a list of positive ints"),
    ("agents", {"state_dependent_std": "yes"}, "config: agents.state_dependent_std must be true or false"),
    ("run", {"seeds": 3}, "config: unknown key in [run] 'seeds'; did you mean 'seed'?"),
    ("schedule", {"n1": 0, "n2": 0}, "config: schedule.n1 and schedule.n2 are both 0"),
    ("env", {"options": {"num_envs": 3}}, "config: env.options.num_envs: set env.num_envs instead"),
    ("optimizer", {"options": {"lr": -1}}, "config: optimizer.options: optimizer 'ipo-vpg': lr"),
    ("perturbation", {"name": "learned-locaton"}, "config: perturbation.name: unknown perturbation 'learned-locaton'; "
                                                  "did you mean 'learned-location'?"),
    ("perturbation", {"options": {"bogus": 1}}, "config: perturbation.options: "),
    ("perturbation", {"name": "default", "options": {"f": 1}}, "config: perturbation.options are given, but"),
    ("opponent_model", {"name": "orcale"}, "config: opponent_model.name: unknown opponent model 'orcale'"),
    ("opponent_model", {"name": "mle", "options": {"bogus": 1}}, "config: opponent_model.options: "),
])
def test_a_bad_config_is_one_line_naming_the_key(section, values, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig.parse(tiny(**{section: values}))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_optimizer_checks_read_its_declared_capabilities():
    with pytest.raises(ConfigError, match="opponent_model.name: optimizer 'ppo' takes no opponent model") as error:
        TrainConfig.parse(tiny(optimizer={"name": "ppo", "options": {}}, opponent_model={"name": "mle"}))
    with pytest.raises(ConfigError, match="non-interactive optimizer") as error:
        TrainConfig.parse(tiny(schedule={"kind": "rarl"}))
    suggested = str(error.value).rsplit("(", 1)[1].rstrip(")").split(", ")
    registered = host.registered("optimizer")
    assert suggested and all(not capabilities_of(registered[name]).interactive for name in suggested)


def test_set_items_follow_the_one_override_rule():
    raw = apply_overrides(tiny(), ["optimizer.options.depth=null", "opponent_model.name=none", "agents.hidden=[4, 4]",
                                   "run.out='a b'", "optimizer.options.gamma=9.5e-1", "schedule.holder=2"])
    assert raw["optimizer"]["options"]["depth"] is None and raw["opponent_model"]["name"] == "none"
    assert raw["agents"]["hidden"] == [4, 4] and raw["run"]["out"] == "a b"
    assert raw["optimizer"]["options"]["gamma"] == 0.95 and raw["schedule"]["holder"] == 2
    for item, message in (("schedule", "--set expects SECTION.KEY=VALUE (e.g. schedule.alpha1=0.3), got 'schedule'"),
                          ("run.seed.x=1", "--set 'run.seed.x=1': run.seed is a value, not a table")):
        with pytest.raises(ConfigError) as error:
            apply_overrides(tiny(), [item])
        assert message in str(error.value) and "\n" not in str(error.value)


def test_a_run_builds_its_perturbation_opponent_model_and_optimizer_once(tmp_path, monkeypatch):
    from ipo_robust.train import run_training

    config = TrainConfig.parse(tiny(opponent_model={"name": "mle", "options": {"epochs": 2}},
                                    perturbation={"name": "learned-location", "options": {}}))
    built = []
    create = host.create

    def counting(kind, name, *args, **kwargs):
        built.append(kind)
        return create(kind, name, *args, **kwargs)

    monkeypatch.setattr(host, "create", counting)
    result = run_training(config, tmp_path / "run", max_updates=1)
    assert sorted(built) == ["env", "opponent_model", "optimizer", "perturbation"]
    assert result.updates == 1


def test_hidden_sizes_become_a_tuple_and_the_dict_form_a_list():
    agents = AgentsSection.parse({"hidden": [3, 2]})
    assert agents.hidden == (3, 2) and agents.as_dict()["hidden"] == [3, 2]


def test_core_training_code_never_imports_the_mujoco_package():
    """A perturbation is a plugin built through the host; the env receives the object."""
    for path in [*(ROOT / "ipo_robust" / "config").glob("*.py"), *(ROOT / "ipo_robust" / "training").glob("*.py"),
                 ROOT / "ipo_robust" / "train.py", ROOT / "ipo_robust" / "commands" / "train.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [m for m in imported if m and m.startswith("ipo_robust.envs")], path


def test_no_training_or_config_module_is_over_500_lines():
    for path in [*(ROOT / "ipo_robust" / "config").glob("*.py"), *(ROOT / "ipo_robust" / "training").glob("*.py")]:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 500, path


def test_a_batch_larger_than_the_machine_is_refused_up_front(monkeypatch):
    """Issue 17, item 6: a memory lower bound against physical memory, one line, not a numpy MemoryError."""
    from ipo_robust.config import sections

    with pytest.raises(ConfigError) as error:
        TrainConfig.parse(tiny(env={"num_envs": 1_000_000_000, "steps": 100}))
    message = str(error.value)
    assert message.startswith("config: env.num_envs = 1000000000 needs at least 6.6 TB for one batch of "
                              "env.steps = 100 steps (this machine has ") and "\n" not in message
    assert message.endswith("); lower env.num_envs or env.steps")
    monkeypatch.setattr(sections, "machine_memory", lambda: 10**6)
    TrainConfig.parse(tiny())  # 2 copies x 12 steps: far below 1 MB
    with pytest.raises(ConfigError, match=r"needs at least 1\.1 MB .* \(this machine has 1\.0 MB\)"):
        TrainConfig.parse(tiny(env={"num_envs": 1000, "steps": 1}))
    monkeypatch.setattr(sections, "machine_memory", lambda: None)  # a platform that does not say: no check
    TrainConfig.parse(tiny(env={"num_envs": 1_000_000_000}))


def test_the_cli_refuses_a_too_large_batch_with_one_line(tmp_path, capsys):
    from ipo_robust.cli import main

    path = tmp_path / "c.toml"
    path.write_text(to_toml(tiny()))
    assert main(["train", str(path), "--set", "env.num_envs=1000000000", "--print-config"]) == 2
    captured = capsys.readouterr()
    assert not captured.out and len(captured.err.strip().splitlines()) == 1
    assert "env.num_envs = 1000000000 needs at least" in captured.err
