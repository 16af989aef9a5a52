"""``ipo-robust compare --config LABEL=PATH`` (issue 16, item 6): whole training configs as entries beside
``--optimizers``, equal env steps, labels in the ``optimizer`` column, and every pair judged in the plain game."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from ipo_robust.cli import main
from ipo_robust.errors import ConfigError
from ipo_robust.evals import compare
from ipo_robust.evals.attacks import Victim
from ipo_robust.evals.strength import round_robin

RESULTS_CONTRACT = {"optimizer", "seed", "seat", "budget_multiple", "attacker_seed", "exploitability", "win_rate",
                    "tie_rate", "loss_rate", "attacker_return", "partner_return"}
LEADERBOARD_CONTRACT = {"optimizer", "exploitability", "exploitability_low", "exploitability_high", "strength",
                        "strength_low", "strength_high"}
CONTROLS_CONTRACT = {"control", "budget_multiple", "win_rate"}

ENV = """[env]
name = "{env}"
num_envs = 2
steps = 12
options = {{ shaping = 1.0, max_episode_steps = 10 }}

[agents]
hidden = [8]
"""

IPO_RARL = ENV + """
[optimizer]
name = "ipo-vpg"
options = {{ lr = 0.1, critic = "value", max_iter = 20 }}

[perturbation]
name = "learned-location"

[schedule]
kind = "ipo-rarl"
iterations = {iterations}
n1 = 1
n2 = 1
anneal = "linear"

[run]
seed = 7
out = "runs/ignored"
checkpoint_every = 10
"""

PPO_OPTIMIZER = """
[optimizer]
name = "ppo"
options = {{ lr = 0.001 }}
"""

PPO = ENV + PPO_OPTIMIZER + """
[schedule]
kind = "self-play"
iterations = {iterations}

[run]
out = "runs/ignored"
"""

RARL = ENV + PPO_OPTIMIZER + """
[perturbation]
name = "learned-location"

[schedule]
kind = "rarl"
iterations = {iterations}
n1 = 1
n2 = 1
"""


def write(tmp_path, name, template, iterations=1, env="sumo-pushers"):
    path = tmp_path / f"{name}.toml"
    path.write_text(template.format(iterations=iterations, env=env))
    return path


@pytest.fixture
def configs(tmp_path):
    """ipo-rarl: 2 x 12 x 1 iteration x 2 updates = 48 env steps; ppo self-play: 2 x 12 x 2 iterations = 48."""
    return write(tmp_path, "ipo-rarl", IPO_RARL, 1), write(tmp_path, "sumo-ppo", PPO, 2)


def spec_of(tmp_path, entries, optimizers=(), env=None, **kwargs):
    options = {"seeds": 1, "games": 2, "out": tmp_path / "out", "executor": "serial", "robustness_points": 0,
               "attack_budget": "1x", "attacker_seeds": 1, **kwargs}
    return compare.make_spec(env, list(optimizers), configs=entries, **options)


# --------------------------------------------------------------------------------------- end to end
def test_a_compare_of_an_ipo_rarl_config_and_a_ppo_config_writes_the_output_contract(tmp_path, configs, capsys):
    ipo_rarl, ppo = configs
    out = tmp_path / "out"
    assert main(["compare", "--config", f"ipo-rarl={ipo_rarl}", "--config", str(ppo), "--seeds", "1", "--games",
                 "2", "--attack-budget", "1x", "--attacker-seeds", "1", "--robustness-points", "0", "--executor",
                 "serial", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "equal training: 48 env steps per pair" in printed and "ipo-rarl = ipo-vpg (ipo-rarl, learned-location)" \
        in printed
    results = pd.read_csv(out / "results.csv")
    assert RESULTS_CONTRACT <= set(results.columns)
    assert set(results["optimizer"]) == {"ipo-rarl", "sumo-ppo"}  # the labels (PATH alone: its file stem)
    assert set(results["env_steps"]) == {48} and (results["budget_multiple"] == 1.0).all()
    assert dict(zip(results["optimizer"], results["method"], strict=False)) == {
        "ipo-rarl": "ipo-vpg (ipo-rarl, learned-location)", "sumo-ppo": "ppo (self-play)"}
    board = pd.read_csv(out / "leaderboard.csv")
    assert LEADERBOARD_CONTRACT <= set(board.columns) and set(board["optimizer"]) == {"ipo-rarl", "sumo-ppo"}
    assert set(board["config"]) == {str(ipo_rarl), str(ppo)}
    assert np.isfinite(board["strength"]).all()  # the round robin paired the ipo-rarl pair with the ppo pair
    controls = pd.read_csv(out / "controls.csv")
    assert CONTROLS_CONTRACT <= set(controls.columns) and set(controls["control"]) == {"zero", "random"}
    games = pd.read_csv(out / "round_robin.csv")
    assert len(games) == 1 and int(games[["wins_a", "wins_b", "ties"]].to_numpy().sum()) == 2 * 2
    markdown = (out / "report.md").read_text()
    # the shipped IPO-RARL config's 960,000 env steps must not appear (the test's configs train 48); matched as
    # that count, not as any "960" (a timing such as 0.09603 s contains one)
    assert not re.search(r"960,?000", markdown)
    assert "48 env steps per pair" in markdown and "ipo-vpg (ipo-rarl, learned-location)" in markdown
    # compare set the run's seed and out: the config's run.seed = 7 and run.out are not used
    meta = pd.read_csv(out / "runs" / "ipo-rarl-s0" / "metrics.csv")
    assert list(meta["holder"]) == [1, 2]  # ipo-rarl: agent 1 holds the superpower, then agent 2
    victim = Victim.from_checkpoint(out / "runs" / "ipo-rarl-s0")
    assert victim.env_options["perturbation"] == "learned-location" and victim.env_options["holder"] == "both"


def test_the_plain_game_gives_a_holder_its_own_action_entries_only(tmp_path):
    """An IPO-RARL pair's agents carry learned-location entries; in the plain game they play with their own
    actuators, drawing exactly what the whole policy draws, and meet a self-play pair in a round robin."""
    from ipo_robust.config import load_toml
    from ipo_robust.training.setup import check_config

    raw = load_toml(write(tmp_path, "r", IPO_RARL, 1))
    setup = check_config(raw)
    trained = Victim(setup.agents, "sumo-pushers", setup.env_options)
    setup.env.close()
    plain = compare.plain_victim(trained)
    assert plain.env_options == {"shaping": 1.0, "max_episode_steps": 10}
    assert [a.dims for a in plain.agents] == [2, 2]
    obs = torch.zeros(5, 16)
    whole = trained.agents[0].act(obs, torch.Generator().manual_seed(3))
    own = plain.agents[0].act(obs, torch.Generator().manual_seed(3))
    assert whole.shape == (5, 8) and torch.equal(own, whole[:, :2])
    dist = plain.agents[0].distribution(obs)
    assert dist.event_shape == (2,)
    sample = plain.agents[0].sampler()
    action, log_prob = sample(obs, torch.Generator().manual_seed(3))
    assert torch.equal(action, whole[:, :2]) and torch.allclose(log_prob, dist.log_prob(action))
    assert compare.plain_victim(plain) is plain  # already plain: unchanged
    selfplay = check_config(load_toml(write(tmp_path, "p", PPO, 2)))
    other = Victim(selfplay.agents, "sumo-pushers", selfplay.env_options)
    selfplay.env.close()
    table = round_robin({"ipo-rarl": trained, "ppo": other}, games=2, seed=0, num_envs=2)
    assert int(table[["wins_a", "wins_b", "ties"]].to_numpy().sum()) == 4


def test_a_round_robin_of_pairs_from_different_games_is_refused():
    """Players whose plain games differ (another episode length) are not paired."""
    from ipo_robust.evals.attacks.victim import known_weak_victim

    a = known_weak_victim("zero", "sumo-pushers", {"max_episode_steps": 10})
    b = known_weak_victim("zero", "sumo-pushers", {"max_episode_steps": 20, "shaping": 1.0})
    with pytest.raises(ConfigError, match="play different games"):
        round_robin({"a": a, "b": b}, games=2, num_envs=2)


# -------------------------------------------------------------------------------------------- specs
def test_rarl_and_ipo_rarl_count_every_update_of_an_iteration(tmp_path):
    spec = spec_of(tmp_path, {"rarl": write(tmp_path, "rarl", RARL, 3),
                              "ipo-rarl": write(tmp_path, "ipo", IPO_RARL, 3)})
    assert spec.env == "sumo-pushers" and spec.victim_steps == 2 * 12 * 3 * 2
    assert spec.env_steps == {"rarl": 144, "ipo-rarl": 144}
    assert spec.training("rarl") == "2 env copies x 12 steps x 3 iterations x 2 updates = 144 env steps"
    assert spec.method("rarl") == "ppo (rarl, learned-location)"
    assert spec.attack_budget == 144  # 1x of the common figure
    (item,) = [i for i in spec.items() if i.get("optimizer") == "rarl"]
    assert item["id"] == "rarl-s0" and "out" not in item["config"]["run"] and item["config"]["run"]["seed"] == 0
    assert item["config"]["run"]["tensorboard"] is False


def test_unequal_env_steps_are_refused_in_one_line_listing_each_entry(tmp_path, configs, capsys):
    ipo_rarl, ppo = configs
    assert main(["compare", "--env", "sumo-pushers", "--config", f"a={ipo_rarl}", "--config", f"b={ppo}",
                 "--optimizers", "simga", "--set", "env.options.max_episode_steps=10", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ipo-robust: error: entries train unequal env steps")
    assert "a 48 (2 x 12 x 1 x 2), b 48 (2 x 12 x 2 x 1), simga 160,000 (16 x 100 x 100 x 1)" in err
    assert not (tmp_path / "out").exists()


def test_a_per_entry_section_override_equalises_env_steps(tmp_path, configs):
    ipo_rarl, ppo = configs
    spec = spec_of(tmp_path, {"a": ipo_rarl, "b": write(tmp_path, "long", PPO, 5)},
                   overrides=["a.schedule.iterations=5", "b.schedule.iterations=10"])
    assert spec.env_steps == {"a": 240, "b": 240}
    assert spec.configs["a"]["schedule"]["iterations"] == 5 and spec.configs["b"]["schedule"]["iterations"] == 10


def test_a_label_override_reaches_that_entry_only(tmp_path, configs):
    ipo_rarl, ppo = configs
    spec = spec_of(tmp_path, {"one": ppo, "two": ppo}, overrides=["one.lr=0.005", "agents.hidden=[4]"])
    assert spec.configs["one"]["optimizer"]["options"]["lr"] == 0.005
    assert spec.configs["two"]["optimizer"]["options"]["lr"] == 0.001
    assert spec.configs["one"]["agents"]["hidden"] == spec.configs["two"]["agents"]["hidden"] == [4]
    keys = {item["optimizer"]: item["key"] for item in spec.items() if "optimizer" in item}
    assert keys["one"] != keys["two"]


def test_optimizer_and_config_entries_side_by_side(tmp_path, configs):
    """--optimizers entries keep their self-play configs; --budget and --set make their env steps equal."""
    ipo_rarl, _ = configs
    spec = spec_of(tmp_path, {"ipo-rarl": ipo_rarl}, optimizers=["simga"], updates=2, env="sumo-pushers",
                   overrides=["env.num_envs=2", "env.steps=12", "env.options.max_episode_steps=10",
                              "simga.lr=0.05"])
    assert spec.optimizers == ["ipo-rarl", "simga"] and spec.victim_steps == 48
    assert spec.configs["simga"]["optimizer"] == {"name": "simga", "options": {"lr": 0.05, "critic": "value"}}
    assert spec.configs["ipo-rarl"]["optimizer"]["options"]["lr"] == 0.1
    assert spec.method("simga") == "simga (self-play)" and spec.sources == {"ipo-rarl": str(ipo_rarl)}


@pytest.mark.parametrize("argv,needle", [
    (["--config", "ipo-vpg={a}", "--optimizers", "ipo-vpg"], "--config label 'ipo-vpg' is also an optimizer in "
     "--optimizers"),
    (["--config", "x={a}", "--config", "x={b}"], "--config label 'x' is given twice"),
    (["--config", "{a}", "--config", "{a}"], "--config label 'ipo-rarl' is given twice"),
    (["--config", "env={a}"], "--config label 'env' is a config section's name"),
    (["--env", "sumo-ants", "--config", "x={a}"], "--config x ('{a}') trains on 'sumo-pushers', not on --env "
     "'sumo-ants': every entry of a comparison must play the same env"),
    (["--config", "x={a}", "--config", "y={ants}"], "the --config files name different envs (x: sumo-pushers, y: "
     "sumo-ants)"),
    (["--config", "x={a}", "--config", "y={b}", "--set", "y.schedule.iterations=3"], "entries train unequal env "
     "steps"),
    (["--config", "x={a}", "--set", "x.run.seed=3"], "compare sets run.seed itself"),
    (["--config", "x={a}", "--set", "z.lr=3"], "'z' is neither an entry of the comparison"),
    (["--config", "x={a}", "--budget", "3"], "--budget sets the self-play updates of the --optimizers entries"),
    (["--config", "x={a}", "--config", "y={longer}"], "entries play different games"),
    (["--config", "x={tmp}/missing.toml"], "does not exist"),
    ([], "--env is required"),
    (["--env", "sumo-pushers", "--optimizers", "ppo", "--set", "ppo.optimizer.name=simga"],
     "compare sets optimizer.name of the --optimizers entry 'ppo' itself"),
])
def test_bad_config_entries_fail_before_any_work_with_one_line_and_exit_2(tmp_path, configs, capsys, argv, needle):
    ipo_rarl, ppo = configs
    ants = write(tmp_path, "ants", PPO, 2, env="sumo-ants")
    longer = tmp_path / "longer.toml"
    longer.write_text(PPO.format(iterations=2, env="sumo-pushers").replace("max_episode_steps = 10",
                                                                          "max_episode_steps = 11"))
    names = {"a": ipo_rarl, "b": ppo, "ants": ants, "longer": longer, "tmp": tmp_path}
    argv = [part.format(**names) for part in argv]
    needle = needle.format(**names)
    out = tmp_path / "out"
    assert main(["compare", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ipo-robust: error:") and needle in err, err
    assert not out.exists()


# --------------------------------------------------------------------------------------- robustness
def test_a_mass_and_friction_sweep_gives_each_method_its_worst_case(tmp_path, configs):
    """--robustness-parameters mass,friction: robustness.csv holds both sweeps; the leaderboard's worst case is,
    per seed, the lowest win rate over every parameter and scale (the mean of both seats at each point), then
    the mean over seeds: recomputed here from robustness.csv."""
    ipo_rarl, ppo = configs
    out = tmp_path / "out"
    assert main(["compare", "--config", f"ipo-rarl={ipo_rarl}", "--config", str(ppo), "--seeds", "2", "--games",
                 "2", "--attack-budget", "0", "--attacker-seeds", "1", "--no-controls", "--strength-games", "0",
                 "--robustness-points", "3", "--robustness-games", "2", "--robustness-parameters", "mass,friction",
                 "--executor", "serial", "--out", str(out), "--no-progress"]) == 0
    sweep = pd.read_csv(out / "robustness.csv")
    assert set(sweep["parameter"]) == {"mass", "friction"} and set(sweep["seat"]) == {1, 2}
    assert len(sweep) == 2 * 2 * 2 * 2 * 3  # methods x seeds x parameters x seats x scales
    board = pd.read_csv(out / "leaderboard.csv").set_index("optimizer")
    for name, rows in sweep.groupby("optimizer"):
        worst = [min(rows[(rows["seed"] == seed) & (rows["parameter"] == p) & (rows["value"] == v)]["win_rate"].mean()
                     for p in ("mass", "friction") for v in sorted(set(rows["value"])))
                 for seed in (0, 1)]
        assert board.loc[name, "worst_case_win_rate"] == pytest.approx(np.mean(worst), abs=1e-12)
        assert board.loc[name, "worst_case_low"] <= board.loc[name, "worst_case_win_rate"] <= \
            board.loc[name, "worst_case_high"]


def test_unknown_robustness_parameters_are_refused_in_one_line(tmp_path, configs, capsys):
    ipo_rarl, _ = configs
    assert main(["compare", "--config", str(ipo_rarl), "--robustness-parameters", "mass,wind", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--robustness-parameters" in err and "wind" in err
