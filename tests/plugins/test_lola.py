"""lola: the update is the first-order derivative of the look-ahead objective; samples match exact values."""

import pytest
import torch

import ipo_robust
from ipo_robust.envs.games import DifferentiableGame, MatrixGame
from ipo_robust.plugins.lola import exact_lola_game, lola_step
from ipo_robust.policies import TabularCategoricalPolicy
from tests.plugins.test_optimizer_plugins import random_local_game


def lookahead_gradient(game, theta1, theta2, lr2):
    """d/dtheta1 J1(theta1, theta2 + lr2 grad_2 J2(theta1, theta2)) by autograd (player 1's LOLA objective)."""
    t1 = theta1.detach().clone().requires_grad_(True)
    t2 = theta2.detach().clone().requires_grad_(True)
    _, J2 = game.values(t1, t2)
    (g2,) = torch.autograd.grad(J2, t2, create_graph=True)
    J1_after, _ = game.values(t1, t2 + lr2 * g2)
    (grad,) = torch.autograd.grad(J1_after, t1)
    return grad


def lookahead_gradient2(game, theta1, theta2, lr1):
    """Player 2's LOLA objective, d/dtheta2 J2(theta1 + lr1 grad_1 J1, theta2)."""
    t1 = theta1.detach().clone().requires_grad_(True)
    t2 = theta2.detach().clone().requires_grad_(True)
    J1, _ = game.values(t1, t2)
    (g1,) = torch.autograd.grad(J1, t1, create_graph=True)
    _, J2_after = game.values(t1 + lr1 * g1, t2)
    (grad,) = torch.autograd.grad(J2_after, t2)
    return grad


def test_lola_update_is_the_first_order_derivative_of_the_lookahead_objective():
    game = MatrixGame.random(3, 4, zero_sum=False, seed=5)
    theta1, theta2 = game.initial_parameters(seed=2)
    errors, errors_shaping_only = [], []
    for lr in (1e-2, 1e-3):
        local = exact_lola_game(game, theta1, theta2)
        step = lola_step(local, lr1=0.5, lr2=lr)
        target = lookahead_gradient(game, theta1, theta2, lr)
        errors.append(float((step.delta1 / 0.5 - target).norm()))
        printed = lola_step(local, lr1=0.5, lr2=lr, shaping_only=True)
        errors_shaping_only.append(float((printed.delta1 / 0.5 - target).norm()))
        # player 2 symmetrically
        step2 = lola_step(local, lr1=lr, lr2=0.5)
        target2 = lookahead_gradient2(game, theta1, theta2, lr)
        assert float((step2.delta2 / 0.5 - target2).norm()) < 10 * lr**2
    assert errors[0] < 10 * 1e-2**2 and errors[1] < 10 * 1e-3**2
    assert errors[0] / errors[1] == pytest.approx(100, rel=0.05)  # O(lr^2)
    # Foerster et al.'s printed rule (shaping term only) misses the look-ahead term, an O(lr) error
    assert errors_shaping_only[0] / errors_shaping_only[1] == pytest.approx(10, rel=0.05)


def test_lola_through_the_registry_matches_lola_step_and_handles_zero_sum_games():
    game = MatrixGame.random(3, 3, zero_sum=False, seed=1)
    theta1, theta2 = game.initial_parameters(seed=0)
    local = exact_lola_game(game, theta1, theta2)
    step = ipo_robust.make_optimizer("lola", None, lr1=0.3, lr2=0.2).update(local)
    reference = lola_step(local, 0.3, 0.2)
    torch.testing.assert_close(step.delta1, reference.delta1)
    # zero-sum: the cross gradients are -g; no extra information needed
    zero_sum, (g1, g2, D12, D21, _, _) = random_local_game(zero_sum=True)
    step = ipo_robust.make_optimizer("lola", None, lr=0.1).update(zero_sum)
    torch.testing.assert_close(step.delta1, 0.1 * (g1 + 0.1 * (D12 @ g2 - D21.T @ g2)))
    torch.testing.assert_close(step.delta2, 0.1 * (g2 + 0.1 * (D21 @ g1 - D12.T @ g1)))
    general, _ = random_local_game(zero_sum=False)
    with pytest.raises(ValueError, match="needs the cross gradients"):
        ipo_robust.make_optimizer("lola", None).update(general)


def test_sampled_lola_direction_matches_the_exact_one_on_the_iterated_prisoners_dilemma():
    # 4000 episodes of horizon 5 (20 000 samples); memory-one tabular policies, gamma 0.96, lr 1.
    H, lr = 5, 1.0
    env = ipo_robust.make_env("iterated-prisoners-dilemma", num_envs=4000, seed=0, gamma=0.96, horizon=H)
    g = torch.Generator().manual_seed(1)
    logits1 = 0.5 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    logits2 = 0.5 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    agents = (TabularCategoricalPolicy(2, n_states=5, logits=logits1),
              TabularCategoricalPolicy(2, n_states=5, logits=logits2))

    class ExactIPD(DifferentiableGame):
        p1 = p2 = 10

        def values(self, theta1, theta2):
            return env.exact_values(torch.softmax(theta1.reshape(5, 2), -1), torch.softmax(theta2.reshape(5, 2), -1),
                                    horizon=H)

    exact_game = exact_lola_game(ExactIPD(), logits1.reshape(-1), logits2.reshape(-1))
    exact = lola_step(exact_game, lr, lr)
    naive = lola_step(exact_game, lr, 1e-12)
    assert float((exact.delta1 - naive.delta1).norm() / exact.delta1.norm()) > 0.5  # the correction matters
    optimizer = ipo_robust.make_optimizer("lola", agents, lr=lr, gamma=0.96)
    batch = ipo_robust.collect(env, agents, steps=H, generator=torch.Generator().manual_seed(0))
    sampled = optimizer.update(optimizer.local_game(batch))

    def cosine(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    assert cosine(sampled.delta1, exact.delta1) > 0.9  # measured 0.991
    assert cosine(sampled.delta2, exact.delta2) > 0.9  # measured 0.987
    info = optimizer.step(batch)
    assert {"optim/kl1", "optim/step_norm2", "optim/matvecs"} <= set(info)
