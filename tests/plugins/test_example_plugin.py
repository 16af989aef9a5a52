"""The example third-party plugin works through the real interfaces: its perturbation in a MuJoCo env, its
optimizer on a local game and on samples (tests/cli/test_cli.py pip-installs it; here it is loaded in-process)."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ipo_robust
from ipo_robust import host
from ipo_robust.errors import ConfigError
from ipo_robust.optim import LocalGame
from ipo_robust.optim.optimizer import capabilities_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ipo-robust-example-plugin"


@pytest.fixture
def example_host():
    sys.path.insert(0, str(EXAMPLE))
    try:
        module = importlib.import_module("ipo_robust_example")
        yield host.reload(plugins=[("example", module)])
    finally:
        sys.path.remove(str(EXAMPLE))
        host.reload()


def first_observations(perturbation: str, alpha: float, steps: int = 5):
    env = ipo_robust.make_env("sumo-pushers", num_envs=3, seed=0, perturbation=perturbation, holder=0,
                              alpha=alpha)  # the env counts agents 0, 1: agent 0 holds, agent 1 is the victim
    rng = np.random.default_rng(0)
    obs = [env.reset()]
    for _ in range(steps):
        actions = [rng.uniform(space.low, space.high, size=(3, *space.shape)) for space in env.action_spaces]
        obs.append(env.step(*actions).obs)
    return obs


def test_observation_bias_offsets_the_victims_observations_in_a_mujoco_env(example_host):
    """Observations do not feed back into the physics, so the biased run is the plain run (perturbation
    'none', same seed and actions) with alpha * bias added to the victim's observations only."""
    plain = first_observations("none", alpha=0.5)
    biased = first_observations("observation-bias", alpha=0.5)
    for (plain1, plain2), (biased1, biased2) in zip(plain, biased, strict=True):
        np.testing.assert_array_equal(biased1, plain1)  # the holder sees the world unchanged
        np.testing.assert_allclose(biased2 - plain2, 0.5 * 0.1, rtol=0, atol=1e-12)  # the victim


def test_observation_bias_rejects_a_bad_bias_naming_its_owner(example_host):
    with pytest.raises(ConfigError, match="perturbation 'observation-bias': bias must be a finite number"):
        host.create("perturbation", "observation-bias", bias=float("nan"))


def test_optimistic_gradient_is_a_composed_optimizer(example_host):
    factory = host.resolve("optimizer", "x-opt")
    assert not capabilities_of(factory).interactive
    g1, g2 = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    game = LocalGame.dense(g1, g2, torch.zeros(2, 1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    optimizer = host.create("optimizer", "x-opt", None, lr=0.5)
    first = optimizer.update(game)  # no previous gradient: plain gradient ascent
    torch.testing.assert_close(first.delta1, 0.5 * g1)
    later = LocalGame.dense(2 * g1, g2, torch.zeros(2, 1, dtype=torch.float64),
                            torch.zeros(1, 2, dtype=torch.float64))
    second = optimizer.update(later)  # delta = lr (2 g - g_previous)
    torch.testing.assert_close(second.delta1, 0.5 * (4 * g1 - g1))
    torch.testing.assert_close(second.delta2, 0.5 * g2)
    with pytest.raises(ConfigError, match="optimizer 'x-opt': lr must be a finite number > 0"):
        host.create("optimizer", "x-opt", None, lr=-1)
    with pytest.raises(ConfigError, match="optimizer 'x-opt': takes no opponent_model"):
        host.create("optimizer", "x-opt", None, opponent_model="mle")


def test_optimistic_gradient_steps_on_samples(example_host):
    env = ipo_robust.make_env("matching-pennies", num_envs=64, seed=0)
    agents = ipo_robust.make_agents(env, seed=0, hidden=(8,))
    optimizer = ipo_robust.make_optimizer("x-opt", agents, lr=0.1)
    before = [torch.nn.utils.parameters_to_vector(a.parameters()).clone() for a in agents]
    info = optimizer.step(ipo_robust.collect(env, agents, steps=1))
    after = [torch.nn.utils.parameters_to_vector(a.parameters()) for a in agents]
    assert info["optim/converged"] and info["train/episodes"] == 64
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
