"""The OpenSpiel adapter: markov_soccer (and other simultaneous-move games) as batched envs."""

import numpy as np
import pytest

pyspiel = pytest.importorskip("pyspiel")

from ipo_robust.envs.base import Discrete  # noqa: E402
from ipo_robust.envs.openspiel import OpenSpielEnv, make_openspiel_env  # noqa: E402


def play(env, steps, seed):
    """Random actions from a numpy generator; returns every step's arrays."""
    rng = np.random.default_rng(seed)
    out = [env.reset(seed=11)]
    for _ in range(steps):
        result = env.step(rng.integers(5, size=env.num_envs), rng.integers(5, size=env.num_envs))
        out.append((*result.obs, *result.rewards, result.terminated, result.truncated))
    return out


def test_markov_soccer_spaces_and_observations_match_pyspiel():
    env = make_openspiel_env("markov_soccer", num_envs=3, seed=0, horizon=20)
    game = pyspiel.load_game("markov_soccer", {"horizon": 20})
    size = game.observation_tensor_size()
    assert env.action_spaces == (Discrete(5), Discrete(5))
    assert env.observation_spaces[0].shape == (size,)
    obs1, obs2 = env.reset()
    assert obs1.shape == (3, size) and obs2.shape == (3, size)
    for i, state in enumerate(env.states):
        assert np.array_equal(obs1[i], state.observation_tensor(0))
        assert np.array_equal(obs2[i], state.observation_tensor(1))
        assert state.is_simultaneous_node()  # the initial chance node (ball position) was resolved
    masks = env.legal_action_masks()
    assert masks[0].shape == (3, 5) and masks[0].all() and masks[1].all()


def test_markov_soccer_is_seeded_deterministic():
    a = play(make_openspiel_env(num_envs=4, horizon=15), 40, seed=3)
    b = play(make_openspiel_env(num_envs=4, horizon=15), 40, seed=3)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert np.array_equal(u, v)
    env = make_openspiel_env(num_envs=64, horizon=15)
    starts = {tuple(o) for o in env.reset(seed=1)[0]}
    assert len(starts) == 2  # the chance node places the ball at one of two cells, drawn from env.rng
    assert not np.array_equal(env.reset(seed=1)[0], env.reset(seed=2)[0])


def test_markov_soccer_rewards_terminal_zero_sum_and_horizon():
    env = make_openspiel_env(num_envs=8, seed=0, horizon=6)
    env.reset()
    rng = np.random.default_rng(0)
    lengths, t, goals = [], np.zeros(8, dtype=int), 0
    for _ in range(60):
        result = env.step(rng.integers(5, size=8), rng.integers(5, size=8))
        t += 1
        assert np.array_equal(result.rewards[0], -result.rewards[1])
        assert set(np.unique(result.rewards[0])) <= {-1.0, 0.0, 1.0}
        assert (result.rewards[0][~result.terminated] == 0).all()  # terminal rewards only
        goals += int((result.rewards[0] != 0).sum())
        assert result.terminated.tolist() == result.info["done_mask"].tolist() and not result.truncated.any()
        lengths += t[result.terminated].tolist()
        t[result.terminated] = 0
    assert max(lengths) == 5  # horizon 6 counts the initial chance move: at most 5 simultaneous moves
    assert goals > 0


def test_auto_reset_keeps_the_final_observation():
    env = make_openspiel_env(num_envs=2, seed=0, horizon=2)  # one simultaneous move per episode
    start1, _ = env.reset()
    result = env.step([1, 1], [4, 4])  # player A moves down: the final grid differs from the start
    assert result.terminated.all()
    assert not np.array_equal(result.info["final_obs"][0], start1)
    for i, state in enumerate(env.states):
        assert np.array_equal(result.obs[0][i], state.observation_tensor(0))  # the new episode
        assert state.is_simultaneous_node() and not state.is_terminal()
    with pytest.raises(ValueError, match="ends before the first move"):
        make_openspiel_env(horizon=1).reset()


def test_other_simultaneous_games_and_illegal_actions():
    env = OpenSpielEnv("matrix_rps", num_envs=3, seed=0)
    env.reset()
    result = env.step([0, 1, 2], [1, 1, 0])  # rock-paper, paper-paper, scissors-rock
    assert result.rewards[0].tolist() == [-1.0, 0.0, -1.0] and result.terminated.all()
    goof = OpenSpielEnv("goofspiel", num_envs=1, seed=0, num_cards=4)
    goof.reset()
    goof.step([0], [1])
    legal1, _ = goof.legal_action_masks()
    assert legal1[0].tolist()[:4] == [False, True, True, True]  # card 0 was played
    with pytest.raises(ValueError, match="illegal action 0 for agent 1 in row 0"):
        goof.step([0], [2])
    with pytest.raises(ValueError, match="not a simultaneous-move game"):
        OpenSpielEnv("tic_tac_toe")
    with pytest.raises(ValueError, match="could not load"):
        OpenSpielEnv("no_such_game")
    with pytest.raises(ValueError, match="action1 out of range"):
        env.step([0, 1, 5], [0, 0, 0])
