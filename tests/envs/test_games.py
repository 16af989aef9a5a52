"""Exact games: autograd local games against dense Hessians, finite differences and closed forms."""

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian

from ipo_robust.envs.games import BilinearGame, MatrixGame, QuadraticGame
from ipo_robust.optim import LocalGame

DTYPE = torch.float64


def games_under_test():
    return [
        BilinearGame.scalar(),
        BilinearGame(np.random.default_rng(0).standard_normal((3, 4))),
        QuadraticGame.random(3, 2, zero_sum=True, seed=1),
        QuadraticGame.random(2, 4, zero_sum=False, seed=2),
        MatrixGame.named("rock-paper-scissors"),
        MatrixGame.named("chicken"),
        MatrixGame.random(3, 4, zero_sum=False, seed=3),
        MatrixGame.random(4, 2, zero_sum=True, seed=4),
    ]


def dense_reference(game, theta1, theta2):
    """g_i and the mixed blocks of the joint Hessians of J1, J2 (torch.autograd.functional.hessian)."""
    p1 = game.p1
    theta = torch.cat([theta1, theta2])

    def J(i):
        return lambda t: game.values(t[:p1], t[p1:])[i]

    H1, H2 = hessian(J(0), theta), hessian(J(1), theta)
    grad1 = torch.autograd.functional.jacobian(J(0), theta)
    grad2 = torch.autograd.functional.jacobian(J(1), theta)
    return grad1[:p1], grad2[p1:], H1[:p1, p1:], H2[p1:, :p1]


@pytest.mark.parametrize("game", games_under_test(), ids=lambda g: g.name)
def test_local_game_matches_dense_autograd_hessians(game):
    theta1, theta2 = game.initial_parameters(seed=5)
    local = game.local_game(theta1, theta2)
    assert isinstance(local, LocalGame) and local.zero_sum == game.zero_sum
    g1, g2, D12, D21 = dense_reference(game, theta1, theta2)
    assert torch.allclose(local.g1, g1, rtol=1e-12, atol=1e-13)
    assert torch.allclose(local.g2, g2, rtol=1e-12, atol=1e-13)
    assert torch.allclose(local.D12.to_dense(g1), D12, rtol=1e-12, atol=1e-13)
    assert torch.allclose(local.D21.to_dense(g1), D21, rtol=1e-12, atol=1e-13)
    # transpose products
    u1 = torch.randn(game.p1, dtype=DTYPE, generator=torch.Generator().manual_seed(6))
    u2 = torch.randn(game.p2, dtype=DTYPE, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(local.D12.rmatvec(u1), D12.T @ u1, rtol=1e-12, atol=1e-13)
    assert torch.allclose(local.D21.rmatvec(u2), D21.T @ u2, rtol=1e-12, atol=1e-13)
    if game.zero_sum:
        assert torch.allclose(D21, -D12.T, atol=1e-13)
    J1, J2 = game.values(theta1, theta2)
    assert local.info["J1"] == pytest.approx(float(J1)) and local.info["J2"] == pytest.approx(float(J2))


@pytest.mark.parametrize("game", games_under_test(), ids=lambda g: g.name)
def test_gradients_and_mixed_hessians_match_finite_differences(game):
    theta1, theta2 = game.initial_parameters(seed=8)
    local = game.local_game(theta1, theta2)
    h = 1e-5
    for j in range(game.p1):
        e = torch.zeros(game.p1, dtype=DTYPE)
        e[j] = h
        J1_plus, _ = game.values(theta1 + e, theta2)
        J1_minus, _ = game.values(theta1 - e, theta2)
        assert float(J1_plus - J1_minus) / (2 * h) == pytest.approx(float(local.g1[j]), rel=1e-6, abs=1e-8)
        # column j of D21 = d/dtheta1_j of grad_{theta2} J2
        g2_plus = game.local_game(theta1 + e, theta2).g2
        g2_minus = game.local_game(theta1 - e, theta2).g2
        column = local.D21.matvec(torch.eye(game.p1, dtype=DTYPE)[j])
        assert torch.allclose((g2_plus - g2_minus) / (2 * h), column, rtol=1e-5, atol=1e-7)
    for j in range(game.p2):
        e = torch.zeros(game.p2, dtype=DTYPE)
        e[j] = h
        g1_plus = game.local_game(theta1, theta2 + e).g1
        g1_minus = game.local_game(theta1, theta2 - e).g1
        column = local.D12.matvec(torch.eye(game.p2, dtype=DTYPE)[j])
        assert torch.allclose((g1_plus - g1_minus) / (2 * h), column, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("zero_sum", [True, False])
def test_quadratic_game_autograd_matches_its_closed_form(zero_sum):
    game = QuadraticGame.random(4, 3, zero_sum=zero_sum, seed=9)
    theta1, theta2 = game.initial_parameters(seed=10)
    autograd, closed = game.local_game(theta1, theta2), game.closed_form_local_game(theta1, theta2)
    assert torch.allclose(autograd.g1, closed.g1) and torch.allclose(autograd.g2, closed.g2)
    assert torch.allclose(autograd.D12.to_dense(closed.g1), closed.D12.to_dense(closed.g1))
    assert torch.allclose(autograd.D21.to_dense(closed.g1), closed.D21.to_dense(closed.g1))
    assert game.zero_sum == zero_sum


def test_bilinear_game_closed_form():
    A = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], dtype=DTYPE)
    game = BilinearGame(A)
    x, y = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE), torch.tensor([0.3, 0.7], dtype=DTYPE)
    local = game.local_game(x, y)
    assert torch.allclose(local.g1, A @ y) and torch.allclose(local.g2, -A.T @ x)
    assert torch.allclose(local.D12.to_dense(x), A) and torch.allclose(local.D21.to_dense(x), -A.T)
    scalar = BilinearGame.scalar()
    J1, J2 = scalar.values(torch.tensor([2.0], dtype=DTYPE), torch.tensor([3.0], dtype=DTYPE))
    assert float(J1) == 6.0 and float(J2) == -6.0
    theta1, theta2 = scalar.initial_parameters()
    assert theta1.tolist() == [0.5] and theta2.tolist() == [0.5]


def categorical_fisher(theta: torch.Tensor) -> torch.Tensor:
    """E_{a ~ softmax(theta)} [grad log p(a) grad log p(a)^T] by autograd, one action at a time."""
    p = torch.softmax(theta, 0).detach()
    F = torch.zeros(theta.numel(), theta.numel(), dtype=DTYPE)
    for a in range(theta.numel()):
        t = theta.detach().clone().requires_grad_(True)
        (score,) = torch.autograd.grad(torch.log_softmax(t, 0)[a], t)
        F += p[a] * torch.outer(score, score)
    return F


@pytest.mark.parametrize("name", ["rock-paper-scissors", "matching-pennies", "chicken"])
def test_matrix_game_fisher_is_the_categorical_fisher(name):
    game = MatrixGame.named(name)
    theta1, theta2 = game.initial_parameters(seed=11)
    local = game.local_game(theta1, theta2, fisher=True)
    p1, p2 = game.probabilities(theta1, theta2)
    for F, theta, p in ((local.F1, theta1, p1), (local.F2, theta2, p2)):
        dense = F.to_dense(theta)
        assert torch.allclose(dense, categorical_fisher(theta), atol=1e-14)
        assert torch.allclose(dense, torch.diag(p) - torch.outer(p, p), atol=1e-15)


def test_fisher_is_refused_for_games_without_policies():
    game = BilinearGame.scalar()
    with pytest.raises(ValueError, match="Fisher"):
        game.local_game(*game.initial_parameters(), fisher=True)


def test_named_matrix_games():
    names = MatrixGame.names()
    for required in ("matching-pennies", "rock-paper-scissors", "prisoners-dilemma", "chicken"):
        assert required in names
    for name in names:
        game = MatrixGame.named(name)
        assert game.payoff1.dtype == DTYPE and game.payoff2.dtype == DTYPE
        assert game.payoff1.shape == game.payoff2.shape == (game.p1, game.p2)
        assert game.name == name
    assert MatrixGame.named("matching-pennies").zero_sum and MatrixGame.named("rock-paper-scissors").zero_sum
    assert not MatrixGame.named("prisoners-dilemma").zero_sum and not MatrixGame.named("chicken").zero_sum
    rps = MatrixGame.named("rock-paper-scissors")
    assert rps.payoff1[1, 0] == 1.0  # paper beats rock
    pd = MatrixGame.named("prisoners-dilemma")
    assert torch.equal(pd.payoff2, pd.payoff1.T)  # symmetric game
    with pytest.raises(ValueError, match="unknown matrix game"):
        MatrixGame.named("tic-tac-toe")


def test_random_matrix_games_are_seeded():
    a = MatrixGame.random(3, 5, zero_sum=False, seed=12)
    b = MatrixGame.random(3, 5, zero_sum=False, seed=12)
    c = MatrixGame.random(3, 5, zero_sum=False, seed=13)
    assert torch.equal(a.payoff1, b.payoff1) and torch.equal(a.payoff2, b.payoff2)
    assert not torch.equal(a.payoff1, c.payoff1)
    assert not a.zero_sum
    z = MatrixGame.random(4, 4, zero_sum=True, seed=12)
    assert z.zero_sum and torch.equal(z.payoff2, -z.payoff1)
    assert a.initial_parameters(seed=1)[0].shape == (3,)
    assert torch.equal(a.initial_parameters(seed=1)[1], b.initial_parameters(seed=1)[1])


def test_matrix_game_values_and_probabilities():
    game = MatrixGame.named("matching-pennies")
    theta1, theta2 = MatrixGame.logits([0.9, 0.1]), MatrixGame.logits([0.25, 0.75])
    p1, p2 = game.probabilities(theta1, theta2)
    assert torch.allclose(p1, torch.tensor([0.9, 0.1], dtype=DTYPE))
    J1, J2 = game.values(theta1, theta2)
    expected = 0.9 * 0.25 - 0.9 * 0.75 - 0.1 * 0.25 + 0.1 * 0.75
    assert float(J1) == pytest.approx(expected) and float(J2) == pytest.approx(-expected)


def test_games_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        MatrixGame([[1.0, 0.0]], [[1.0], [0.0]])
    with pytest.raises(ValueError, match="theta1"):
        MatrixGame.named("chicken").local_game(torch.zeros(3, dtype=DTYPE), torch.zeros(2, dtype=DTYPE))
    with pytest.raises(ValueError, match="n1"):
        MatrixGame.random(0, 2)
    with pytest.raises(ValueError, match="p1"):
        QuadraticGame(torch.eye(3, dtype=DTYPE), p1=3)
    with pytest.raises(ValueError, match="strictly positive"):
        MatrixGame.logits([1.0, 0.0])
