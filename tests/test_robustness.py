"""Robustness sweeps on sumo-pushers: exact dynamics scales, the unperturbed point, force sweeps,
and the summary (worst case, mean, normalised area under the curve)."""

import mujoco
import numpy as np
import pandas as pd
import pytest
import torch

import ipo_robust
from ipo_robust.envs.mujoco.perturbations import Dynamics
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import PolicyActor, Victim, game_env, play_games
from ipo_robust.evals.robustness import apply_dynamics_scale, default_values, summarize, sweep


def pushers_victim(**options) -> Victim:
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, **options)
    return Victim(ipo_robust.make_agents(env, seed=0, hidden=(16,)), "sumo-pushers", options)


def test_default_grids_include_the_endpoints():
    assert np.allclose(default_values("mass"), np.linspace(0.5, 1.5, 11))
    assert default_values("gear")[0] == 0.5 and default_values("gear")[-1] == 1.5
    assert default_values("force")[0] == 0.0 and default_values("force")[-1] == 1.0
    with pytest.raises(ConfigError, match="parameter"):
        default_values("gravity")


@pytest.mark.parametrize("options", [{}, {"perturbation": "dynamics", "holder": 1}])
def test_dynamics_scales_are_applied_exactly_to_the_victim(options):
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, **options)
    env.set_superpower(None, 0.0)
    nominal = mujoco.MjModel.from_xml_path(str(ipo_robust.envs.mujoco.ASSETS / "sumo_pushers.xml"))
    victim_body = mujoco.mj_name2id(nominal, mujoco.mjtObj.mjOBJ_BODY, "p0")
    other_body = mujoco.mj_name2id(nominal, mujoco.mjtObj.mjOBJ_BODY, "p1")
    apply_dynamics_scale(env, 0, "mass", 1.3)
    apply_dynamics_scale(env, 0, "gear", 0.7)
    apply_dynamics_scale(env, 0, "friction", 1.2)
    env.reset(seed=0)
    env.step(np.zeros((2, 2)), np.zeros((2, *env.action_spaces[1].shape)))
    for model in [env.model, *env.models]:
        assert model.body_mass[victim_body] == pytest.approx(1.3 * nominal.body_mass[victim_body])
        assert np.allclose(model.body_inertia[victim_body], 1.3 * nominal.body_inertia[victim_body])
        assert model.body_mass[other_body] == pytest.approx(nominal.body_mass[other_body])
        assert np.allclose(model.geom_friction, 1.2 * nominal.geom_friction)
        gears = model.actuator_gear[:, 0]
        assert np.allclose(gears[env.actuator_ids[0]], 0.7 * nominal.actuator_gear[env.actuator_ids[0], 0])
        assert np.allclose(gears[env.actuator_ids[1]], nominal.actuator_gear[env.actuator_ids[1], 0])
    apply_dynamics_scale(env, 0, "mass", 1.3)  # scales compose
    assert env.models[0].body_mass[victim_body] == pytest.approx(1.69 * nominal.body_mass[victim_body])


def test_fixed_dynamics_perturbation_sets_exact_scales_without_drawing():
    env = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, holder=1,
                              perturbation=Dynamics(mass=1.25, friction=0.8, gear=1.1, fixed=True))
    state = env.rng.bit_generator.state
    env.reset()
    assert env.rng.bit_generator.state != state  # initial-state noise only ...
    nominal = env.model
    body = env.body_ids[0][0]
    for model in env.models:
        assert model.body_mass[body] == pytest.approx(1.25 * nominal.body_mass[body])
        assert np.allclose(model.geom_friction, 0.8 * nominal.geom_friction)
        assert np.allclose(model.actuator_gear[env.actuator_ids[0]], 1.1 * nominal.actuator_gear[env.actuator_ids[0]])
    plain = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0)
    a = plain.reset()
    b = ipo_robust.make_env("sumo-pushers", num_envs=2, seed=0, holder=1,
                            perturbation=Dynamics(mass=1.0, friction=1.0, gear=1.0, fixed=True)).reset()
    assert np.array_equal(a[0], b[0])  # ... the same draws as the unperturbed env
    with pytest.raises(ValueError, match="fixed=True"):
        Dynamics(mass=-1.0, fixed=True)


def unperturbed_games(victim, games, seed, num_envs):
    env = game_env(victim, num_envs, seed)
    generator = torch.Generator().manual_seed(seed)
    actors = tuple(PolicyActor(victim.agents[i], env.action_spaces[i], generator) for i in (0, 1))
    return play_games(env, actors, games, seed)


@pytest.mark.parametrize("parameter", ["mass", "friction", "gear"])
def test_scale_one_reproduces_the_unperturbed_env(parameter):
    victim = pushers_victim(shaping=0.2)
    R1, R2 = unperturbed_games(victim, games=6, seed=3, num_envs=3)
    row = sweep(victim, parameter, [1.0], games=6, seed=3, num_envs=3).iloc[0]
    assert row["return"] == R1.mean() and row["return_std"] == R1.std() and row["opponent_return"] == R2.mean()
    assert row["wins"] == (R1 > R2).sum() and row["losses"] == (R1 < R2).sum()


def test_sweep_table_on_sumo_pushers():
    victim = pushers_victim()
    df = sweep(victim, "gear", [0.5, 1.0, 1.5], games=6, seed=0, seat=1, num_envs=3)
    assert isinstance(df, pd.DataFrame) and list(df["value"]) == [0.5, 1.0, 1.5]
    assert set(df["parameter"]) == {"gear"} and set(df["seat"]) == {1} and set(df["games"]) == {6}
    assert ((df["wins"] + df["ties"] + df["losses"]) == 6).all()
    assert (df["win_low"] <= df["win_rate"]).all() and (df["win_rate"] <= df["win_high"]).all()
    assert np.allclose(df["return"], -df["opponent_return"])  # zero-sum
    random = sweep(victim, "mass", [0.5, 1.5], games=4, seed=0, opponent="random", num_envs=2)
    assert set(random["opponent"]) == {"random"}
    summary = summarize(df)
    assert summary["worst_return"] == df["return"].min()
    assert summary["mean_return"] == pytest.approx(df["return"].mean())


def test_force_sweep_needs_an_opponent_that_can_hold_the_superpower():
    with pytest.raises(ConfigError, match="holder"):
        sweep(pushers_victim(), "force", [0.0, 1.0], games=2, seed=0)
    victim = pushers_victim(perturbation="body-force", holder=1)
    df = sweep(victim, "force", [0.0, 1.0], games=4, seed=0, seat=0, num_envs=2)
    assert list(df["value"]) == [0.0, 1.0]
    with pytest.raises(ConfigError, match="holder") as refused:  # agent 1 (index 0) cannot hold it in this env
        sweep(victim, "force", [0.5], games=2, seed=0, seat=1)
    message = str(refused.value)  # agents numbered 1 and 2, as configs number them
    assert "needs an env in which agent 1 (the opponent of the measured agent 2) may hold" in message
    assert "built with agent 2 as the only possible holder" in message and "schedule.holder = 1" in message
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        sweep(victim, "force", [1.5], games=2, seed=0)


def test_sweep_rejects_bad_arguments():
    victim = pushers_victim()
    for kwargs, message in (({"parameter": "gravity"}, "parameter"), ({"seat": 2}, "seat"),
                            ({"opponent": "ghost"}, "opponent"), ({"values": [-0.5]}, "scale")):
        arguments = {"parameter": "mass", "values": [1.0], "games": 1, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=message):
            sweep(victim, **arguments)
    rps = Victim(ipo_robust.make_agents(ipo_robust.make_env("rock-paper-scissors"), seed=0), "rock-paper-scissors", {})
    with pytest.raises(ConfigError, match="MuJoCo"):
        sweep(rps, "mass", [1.0], games=1, seed=0)


def test_summarize_worst_mean_and_normalised_area():
    df = pd.DataFrame({"parameter": "mass", "value": [1.5, 0.5, 1.0], "return": [0.0, 1.0, 0.5],
                       "win_rate": [0.2, 0.8, 0.6]})
    summary = summarize(df)
    assert summary["worst_return"] == 0.0 and summary["worst_value_return"] == 1.5
    assert summary["mean_return"] == pytest.approx(0.5)
    assert summary["auc_return"] == pytest.approx(0.5)  # a straight line from 1 to 0 averages 0.5
    # trapezoid of (0.8, 0.6, 0.2) over (0.5, 1.0, 1.5): (0.35 + 0.2) / 1.0
    assert summary["auc_win_rate"] == pytest.approx(0.55)
    assert summary["low"] == 0.5 and summary["high"] == 1.5 and summary["points"] == 3
