"""The batched two-agent env protocol (spaces, validation, auto-reset) and the matrix-game envs."""

import itertools

import numpy as np
import pytest
import torch

from ipo_robust.envs.base import Box, Discrete, StepResult, TwoAgentEnv
from ipo_robust.envs.games import MatrixGame
from ipo_robust.envs.matrix import (
    ITERATED_GAMES,
    IteratedMatrixGameEnv,
    MatrixGameEnv,
    iterated_game_action_values,
    iterated_game_values,
    make_iterated_env,
    make_matrix_env,
)

RPS = MatrixGame.named("rock-paper-scissors")


# -- spaces ------------------------------------------------------------------------------------------
def test_discrete_space_sample_contains_and_batch_checks():
    space = Discrete(3)
    rng = np.random.default_rng(0)
    draws = space.sample(rng, size=1000)
    assert draws.shape == (1000,) and set(np.unique(draws)) == {0, 1, 2}
    assert space.contains(2) and space.contains(np.int64(0)) and not space.contains(3)
    assert not space.contains(-1) and not space.contains(1.5) and not space.contains(np.array([1]))
    assert np.array_equal(space.check_batch(torch.tensor([0, 2]), 2, "a"), [0, 2])
    assert space.check_batch(np.array([1.0, 2.0]), 2, "a").dtype == np.int64  # integral floats accepted
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        space.check_batch([0, 1, 2], 2, "a")
    with pytest.raises(ValueError, match="out of range: row 1 is 3"):
        space.check_batch([0, 3], 2, "a")
    with pytest.raises(ValueError, match="row 0"):
        space.check_batch([np.nan, 1.0], 2, "a")
    with pytest.raises(ValueError, match="integers"):
        space.check_batch([0.5, 1.0], 2, "a")
    with pytest.raises(ValueError, match="positive int"):
        Discrete(0)


def test_box_space_sample_contains_and_batch_checks():
    box = Box(-1.0, 2.0, shape=(3,))
    rng = np.random.default_rng(0)
    draws = box.sample(rng, size=500)
    assert draws.shape == (500, 3) and (draws >= -1).all() and (draws <= 2).all()
    assert box.contains(np.zeros(3)) and not box.contains(np.full(3, 3.0)) and not box.contains(np.zeros(2))
    half = Box(np.array([0.0, -np.inf]), np.array([np.inf, np.inf]))
    x = half.sample(rng, size=200)
    assert (x[:, 0] >= 0).all() and (x[:, 1] < 0).any()
    assert Box(0.0, 1.0, shape=()).sample(rng).shape == ()
    with pytest.raises(ValueError, match="shape"):
        box.check_batch(np.zeros((2, 2)), 2, "a")
    with pytest.raises(ValueError, match="finite; row 1"):
        box.check_batch(np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), 2, "a")
    with pytest.raises(ValueError, match="out of bounds in row 0"):
        box.check_batch(np.array([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), 2, "a")
    with pytest.raises(ValueError, match="low <= high"):
        Box(1.0, 0.0, shape=(2,))


# -- the protocol ------------------------------------------------------------------------------------
class CoinEnv(TwoAgentEnv):
    """A random test env: the observation is a coin drawn from self.rng at reset, rewards (a1, a2),
    terminates when both play 1, truncated after 3 steps."""

    def __init__(self, num_envs, seed=None):
        obs = Box(0.0, 1.0, shape=(1,))
        super().__init__(num_envs, (obs, obs), (Discrete(2), Discrete(2)), seed, max_episode_steps=3)

    def _reset_envs(self, mask):
        coin = self.rng.integers(2, size=(int(mask.sum()), 1)).astype(float)
        return coin, coin.copy()

    def _step_envs(self, action1, action2):
        obs = np.full((self.num_envs, 1), 0.5)
        return (obs, obs.copy()), (action1.astype(float), action2.astype(float)), (action1 == 1) & (action2 == 1), {}


def test_step_auto_resets_and_reports_final_obs_done_mask_and_truncation():
    env = CoinEnv(3, seed=0)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step([0, 0, 0], [0, 0, 0])
    obs1, obs2 = env.reset()
    assert obs1.shape == (3, 1) and obs2.shape == (3, 1)
    result = env.step([1, 0, 1], [1, 0, 0])
    assert isinstance(result, StepResult)
    assert result.terminated.tolist() == [True, False, False] and not result.truncated.any()
    assert result.info["done_mask"].tolist() == [True, False, False]
    assert result.info["final_obs"][0][0, 0] == 0.5  # the terminal observation, before the reset
    assert result.obs[0][0, 0] in (0.0, 1.0) and result.obs[0][1, 0] == 0.5  # row 0 was reset
    assert result.rewards[0].tolist() == [1.0, 0.0, 1.0] and result.rewards[1].tolist() == [1.0, 0.0, 0.0]
    env.step([0, 0, 0], [0, 0, 0])
    result = env.step([0, 0, 0], [0, 0, 0])  # rows 1, 2 reach 3 steps; row 0 is at 2 after its reset
    assert result.truncated.tolist() == [False, True, True] and not result.terminated.any()
    assert env.elapsed_steps.tolist() == [2, 0, 0]


def test_env_is_seeded_by_reset_and_continues_its_stream():
    first = [CoinEnv(64).reset(seed=5)[0] for _ in range(2)]
    assert np.array_equal(first[0], first[1])
    env = CoinEnv(64, seed=5)
    a = env.reset()[0]
    b = env.reset()[0]  # no seed: the stream continues
    assert np.array_equal(a, first[0]) and not np.array_equal(a, b)
    assert not np.array_equal(CoinEnv(64).reset(seed=6)[0], a)


def test_invalid_actions_raise_clear_errors():
    env = make_matrix_env(name="rock-paper-scissors", num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match="action1 must have shape"):
        env.step([0], [0, 0])
    with pytest.raises(ValueError, match="action2 out of range"):
        env.step([0, 0], [0, 3])
    with pytest.raises(ValueError, match="action1"):
        env.step([np.nan, 0.0], [0, 0])


# -- matrix games ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["matching-pennies", "rock-paper-scissors", "prisoners-dilemma", "chicken"])
def test_matrix_env_rewards_are_the_payoff_entries(name):
    game = MatrixGame.named(name)
    n1, n2 = game.payoff1.shape
    pairs = list(itertools.product(range(n1), range(n2)))
    env = make_matrix_env(name=name, num_envs=len(pairs), seed=0)
    obs1, obs2 = env.reset()
    assert np.array_equal(obs1, np.ones((len(pairs), 1))) and np.array_equal(obs2, obs1)
    a1, a2 = (np.array(x) for x in zip(*pairs, strict=True))
    result = env.step(a1, a2)
    assert np.array_equal(result.rewards[0], game.payoff1.numpy()[a1, a2])
    assert np.array_equal(result.rewards[1], game.payoff2.numpy()[a1, a2])
    assert result.terminated.all() and not result.truncated.any()  # one move per episode


def test_matrix_env_from_a_payoff_pair_and_factory_errors():
    A, B = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), -np.arange(6.0).reshape(2, 3)
    env = make_matrix_env(A, B, num_envs=1)
    assert env.action_spaces == (Discrete(2), Discrete(3))
    env.reset()
    result = env.step([1], [2])
    assert result.rewards[0][0] == 6.0 and result.rewards[1][0] == -5.0
    with pytest.raises(ValueError, match="not both"):
        make_matrix_env(A, B, name="chicken")
    with pytest.raises(ValueError, match="payoff2 is missing"):
        make_matrix_env(A)
    with pytest.raises(ValueError, match="same shape"):
        make_matrix_env(A, B.T)
    with pytest.raises(ValueError, match="unknown matrix game"):
        make_matrix_env(name="tic-tac-toe")


def test_repeated_matrix_env_runs_horizon_moves_and_its_exact_value():
    env = make_matrix_env(RPS.payoff1, RPS.payoff2, num_envs=2, horizon=3)
    env.reset()
    ends = [env.step([0, 1], [1, 1]).terminated.tolist() for _ in range(6)]
    assert ends == [[False, False], [False, False], [True, True]] * 2
    p1, p2 = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), torch.tensor([0.6, 0.1, 0.3], dtype=torch.float64)
    J1, J2 = env.exact_values(p1, p2, gamma=0.5)
    stage = p1 @ RPS.payoff1 @ p2
    assert torch.allclose(J1, 1.75 * stage) and torch.allclose(J2, -1.75 * stage)
    Q1, _ = env.exact_action_values(p1, p2, gamma=0.5)
    assert Q1.shape == (3, 3, 3)
    assert torch.allclose(p1 @ Q1[0] @ p2, J1) and torch.allclose(Q1[2], RPS.payoff1)


# -- iterated games ----------------------------------------------------------------------------------
def enumerated_values(payoff1, payoff2, probs1, probs2, gamma, horizon):
    """Brute force: sum over every joint-action sequence of length H of P(sequence) * discounted return."""
    n1, n2 = payoff1.shape
    total = np.zeros(2)
    for seq in itertools.product(itertools.product(range(n1), range(n2)), repeat=horizon):
        prob, state, ret = 1.0, 0, np.zeros(2)
        for t, (a1, a2) in enumerate(seq):
            prob *= probs1[state, a1] * probs2[state, a2]
            ret += gamma ** t * np.array([payoff1[a1, a2], payoff2[a1, a2]])
            state = 1 + a1 * n2 + a2
        total += prob * ret
    return total


@pytest.mark.parametrize("name", ["iterated-prisoners-dilemma", "iterated-matching-pennies"])
def test_iterated_finite_horizon_values_match_enumeration(name):
    payoff1, payoff2 = (np.array(a) for a in ITERATED_GAMES[name])
    rng = np.random.default_rng(1)
    probs1, probs2 = rng.dirichlet(np.ones(2), size=5), rng.dirichlet(np.ones(2), size=5)
    env = make_iterated_env(name, gamma=0.8, horizon=4)
    J1, J2 = env.exact_values(probs1, probs2, horizon=4)
    expected = enumerated_values(payoff1, payoff2, probs1, probs2, 0.8, 4)
    np.testing.assert_allclose([float(J1), float(J2)], expected, rtol=1e-12)


def test_iterated_infinite_horizon_solve_and_truncation_bound():
    env = make_iterated_env("ipd", gamma=0.9, horizon=10)
    rng = np.random.default_rng(2)
    probs1, probs2 = rng.dirichlet(np.ones(2), size=5), rng.dirichlet(np.ones(2), size=5)
    J = torch.stack(env.exact_values(probs1, probs2))
    for H in (10, 50, 200):
        J_H = torch.stack(env.exact_values(probs1, probs2, horizon=H))
        bound = 0.9 ** H * 3.0 / (1 - 0.9)  # gamma^H max|payoff| / (1 - gamma)
        assert float((J - J_H).abs().max()) <= bound
    assert torch.allclose(J, torch.stack(env.exact_values(probs1, probs2, horizon=400)), atol=1e-12)
    # always cooperating: reward -1 every step, J = -1 / (1 - gamma)
    coop = np.tile([1.0, 0.0], (5, 1))
    assert torch.allclose(torch.stack(env.exact_values(coop, coop)), torch.tensor([-10.0, -10.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="gamma < 1"):
        iterated_game_values(env.payoff1, env.payoff2, coop, coop, gamma=1.0)
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        env.exact_values(coop[:4], coop)
    with pytest.raises(ValueError, match="probability vectors"):
        env.exact_values(coop * 2, coop)


def test_iterated_values_are_differentiable():
    env = make_iterated_env("imp", gamma=0.9)
    logits = torch.randn(2, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def value(logits, horizon):
        return torch.stack(env.exact_values(logits[0].softmax(-1), logits[1].softmax(-1), horizon=horizon))

    assert torch.autograd.gradcheck(lambda x: value(x, None), (logits.requires_grad_(),))
    assert torch.autograd.gradcheck(lambda x: value(x, 3), (logits,))


def test_iterated_action_values_are_consistent_with_values():
    env = make_iterated_env("ipd", gamma=0.9)
    rng = np.random.default_rng(3)
    probs1, probs2 = (torch.as_tensor(rng.dirichlet(np.ones(2), size=5)) for _ in range(2))
    for horizon in (None, 4):
        Q1, Q2 = iterated_game_action_values(env.payoff1, env.payoff2, probs1, probs2, 0.9, horizon)
        J1, J2 = env.exact_values(probs1, probs2, horizon=horizon)
        q1, q2 = (Q1, Q2) if horizon is None else (Q1[0], Q2[0])
        assert torch.allclose(probs1[0] @ q1 @ probs2[0], J1) and torch.allclose(probs1[0] @ q2 @ probs2[0], J2)
    Q1, _ = env.exact_action_values(probs1, probs2, horizon=4)
    assert Q1.shape == (4, 2, 2) and torch.allclose(Q1[3], torch.as_tensor(env.payoff1))


def test_iterated_env_observes_the_previous_joint_action_and_truncates():
    env = make_iterated_env("ipd", num_envs=4, seed=0, horizon=2)
    assert isinstance(env, IteratedMatrixGameEnv) and env.observation_spaces[0].shape == (5,)
    obs1, obs2 = env.reset()
    assert np.array_equal(obs1, np.tile(np.eye(5)[0], (4, 1))) and np.array_equal(obs2, obs1)
    a1, a2 = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    result = env.step(a1, a2)
    assert np.array_equal(result.obs[0], np.eye(5)[1 + 2 * a1 + a2])
    assert result.rewards[0].tolist() == [-1.0, -3.0, 0.0, -2.0] and result.rewards[1].tolist() == [-1, 0, -3, -2]
    result = env.step(a2, a1)
    assert result.truncated.all() and not result.terminated.any()
    assert np.array_equal(result.info["final_obs"][0], np.eye(5)[1 + 2 * a2 + a1])
    assert np.array_equal(result.obs[0], np.tile(np.eye(5)[0], (4, 1)))  # reset to the start state


def test_iterated_env_from_a_stage_game_name_and_unknown_names():
    env = make_iterated_env("prisoners-dilemma", horizon=3)
    assert np.array_equal(env.payoff1, MatrixGame.named("prisoners-dilemma").payoff1.numpy())
    with pytest.raises(ValueError, match="unknown iterated game"):
        make_iterated_env("go")
    with pytest.raises(ValueError, match="horizon"):
        IteratedMatrixGameEnv(*ITERATED_GAMES["iterated-matching-pennies"], horizon=0)
    assert isinstance(make_matrix_env(name="chicken"), MatrixGameEnv)
