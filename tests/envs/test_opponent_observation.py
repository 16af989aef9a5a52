"""The env protocol's ``opponent_observation_indices(agent)``: the sumo games name the entries of an
agent's observation that describe its opponent (they are the opponent's own entries, seen from the other
side), other envs say None, and the evals read the fact from the env (masked-victim)."""

import numpy as np
import pytest

import ipo_robust
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import opponent_indices

# per env: (the opponent's entries in an agent's observation, the same quantities in the opponent's own)
LAYOUTS = {
    "sumo-pushers": ((*range(7, 14), 15), (*range(0, 7), 14)),  # x, y, cos, sin, vx, vy, yaw rate; edge distance
    "sumo-ants": ((*range(29, 42), 43), (*range(0, 7), *range(15, 21), 42)),  # torso pose, velocity; edge distance
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_sumo_opponent_entries_are_the_opponents_own_state(name):
    opponent, own = LAYOUTS[name]
    env = ipo_robust.make_env(name, num_envs=3, seed=0)
    assert env.opponent_observation_indices(0) == env.opponent_observation_indices(1) == opponent
    rng = np.random.default_rng(0)
    obs = env.reset(seed=0)
    for _ in range(6):
        for agent in (0, 1):
            np.testing.assert_allclose(obs[agent][:, list(opponent)], obs[1 - agent][:, list(own)], atol=1e-12)
        actions = [space.sample(rng, size=env.num_envs) for space in env.action_spaces]
        obs = env.step(*actions).obs
    env.close()


@pytest.mark.parametrize("name", ["rock-paper-scissors", "rarl-hopper"])
def test_other_envs_do_not_single_out_opponent_entries(name):
    env = ipo_robust.make_env(name, num_envs=1, seed=0)
    assert env.opponent_observation_indices(0) is None and env.opponent_observation_indices(1) is None
    with pytest.raises(ValueError, match="agent must be 0 or 1"):
        env.opponent_observation_indices(2)


def test_the_evals_read_the_fact_from_the_env():
    assert opponent_indices(ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0), 1) == LAYOUTS["sumo-pushers"][0]
    assert opponent_indices(ipo_robust.make_env("rock-paper-scissors", num_envs=1), 0) is None

    class Declared:  # an env that carries the indices as a plain sequence
        opponent_observation_indices = (1, 2)

    assert opponent_indices(Declared(), 0) == (1, 2)
    with pytest.raises(ConfigError, match=r"object does not say which observation entries describe the opponent"):
        opponent_indices(object(), 0)
