"""Learned critics inside the optimizers: value baselines stay unbiased and cut variance; Q critics (eq. 14)."""

import pytest
import torch

import ipo_robust
from ipo_robust.envs.games import MatrixGame
from ipo_robust.policies import TabularCategoricalPolicy

LOGITS = (torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), torch.tensor([-0.4, 0.1, 0.2], dtype=torch.float64))


def exact_local_game(name="rock-paper-scissors"):
    return MatrixGame.named(name).local_game(*LOGITS)


def agents():
    return tuple(TabularCategoricalPolicy(3, logits=logits.clone()) for logits in LOGITS)


RPS = MatrixGame.named("rock-paper-scissors")
SHIFT = 5.0  # player 1 gets 5 + the RPS payoff: the same gradient, a large return to baseline away


def sampled_gradients(critic, batches=40, samples=64, fit_batches=20):
    """g1 over independent batches at a fixed point, with critics fitted on separate batches first."""
    env = ipo_robust.make_env("matrix-game", payoff1=RPS.payoff1 + SHIFT, payoff2=RPS.payoff2, num_envs=samples,
                              seed=0)
    pair = agents()
    optimizer = ipo_robust.make_optimizer("ipo-vpg", pair, lr=0.1, gamma=1.0, critic=critic, critic_epochs=50,
                                          critic_lr=0.05)
    generator = torch.Generator().manual_seed(1)
    for _ in range(fit_batches):  # fit only: the policies stay where they are
        optimizer.fit_critics(ipo_robust.collect(env, pair, steps=1, generator=generator))
    return torch.stack([optimizer.local_game(ipo_robust.collect(env, pair, steps=1, generator=generator)).g1
                        for _ in range(batches)])


def test_value_baseline_keeps_the_gradient_unbiased_and_cuts_its_variance():
    exact = exact_local_game().g1
    plain, baselined = sampled_gradients("none"), sampled_gradients("value")
    # unbiased: the mean over 40 x 64 samples is within 4 standard errors of the exact gradient
    for estimates in (plain, baselined):
        standard_error = estimates.std(0) / estimates.shape[0] ** 0.5
        assert ((estimates.mean(0) - exact).abs() <= 4 * standard_error + 1e-3).all()
    # the baseline removes the shift of 5: the variance must fall several-fold
    assert baselined.var(0).sum() < 0.25 * plain.var(0).sum()


def test_q_critic_form_estimates_the_exact_mixed_hessian():
    exact = exact_local_game()
    estimates = []
    env = ipo_robust.make_env("rock-paper-scissors", num_envs=4096, seed=2)
    pair = agents()
    optimizer = ipo_robust.make_optimizer("ipo-vpg", pair, lr=0.1, gamma=1.0, critic="q", critic_epochs=300,
                                          critic_lr=0.02)
    generator = torch.Generator().manual_seed(3)
    info = optimizer.fit_critics(ipo_robust.collect(env, pair, steps=1, generator=generator))
    assert info["critic/loss1"] < 1e-3  # Q(a1, a2) = payoff is deterministic here: the fit is near exact
    game = optimizer.local_game(ipo_robust.collect(env, pair, steps=1, generator=generator))
    assert game.info["estimator"] == "critic"
    v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    estimates = game.D12 @ v.float()
    reference = exact.D12 @ v
    assert torch.linalg.norm(estimates.double() - reference) / torch.linalg.norm(reference) < 0.1


def test_critics_are_fitted_during_step_and_reported():
    env = ipo_robust.make_env("matching-pennies", num_envs=32, seed=0)
    pair = (TabularCategoricalPolicy(2), TabularCategoricalPolicy(2))
    optimizer = ipo_robust.make_optimizer("ipo-vpg", pair, lr=0.1, gamma=1.0, critic="value")
    first = optimizer.step(ipo_robust.collect(env, pair, steps=1))
    assert optimizer.estimator.critics.pair is not None and "critic/loss1" in first
    second = optimizer.step(ipo_robust.collect(env, pair, steps=1))
    assert second["optim/step_norm1"] > 0


def test_bad_critic_option_is_refused():
    with pytest.raises(ValueError, match="critic must be one of 'none', 'value', 'q'"):
        ipo_robust.make_optimizer("ipo-vpg", agents(), critic="advantage")


@pytest.mark.parametrize(("kind", "scale"), [("value", 1.0), ("q-discrete", 0.5), ("q-box", 2.0)])
def test_regression_steps_by_hand_match_autograd(kind, scale, monkeypatch):
    """regression_step differentiates the project's critics by hand (ipo_robust.mlp_grad); five Adam steps must
    move the weights as autograd's gradients of the same float64 loss do."""
    import copy

    from ipo_robust import mlp_grad
    from ipo_robust.optim import critics as critics_module
    from ipo_robust.optim.critics import _Choices, _FlatBox, adam, regression_step
    from ipo_robust.value_functions import QCritic, ValueCritic

    g = torch.Generator().manual_seed(3)
    obs = (torch.randn(50, 3, generator=g), torch.randn(50, 2, generator=g))
    target = torch.randn(50, generator=g, dtype=torch.float64)
    spaces = (_FlatBox(3), _FlatBox(2))
    torch.manual_seed(0)
    if kind == "value":
        critic, inputs = ValueCritic(spaces), obs
    elif kind == "q-discrete":
        critic = QCritic(spaces, (_Choices(3), _Choices(4)))
        inputs = (*obs, torch.randint(0, 3, (50,), generator=g), torch.randint(0, 4, (50,), generator=g))
    else:
        critic = QCritic(spaces, (_FlatBox(2), _FlatBox(1)))
        inputs = (*obs, torch.randn(50, 2, generator=g), torch.randn(50, 1, generator=g))
    results = []
    for by_hand in (True, False):
        if not by_hand:
            monkeypatch.setattr(mlp_grad, "linear_layers", lambda net: None)
        model = copy.deepcopy(critic)
        optimizer = adam(model.parameters(), lr=0.01)
        losses = [regression_step(model, optimizer, inputs, target, scale) for _ in range(5)]
        results.append((model, losses))
        monkeypatch.undo()
    (hand, hand_losses), (auto, auto_losses) = results
    assert critics_module.mlp_grad.linear_layers(critic.net) is not None  # the first run took the hand path
    assert hand_losses == pytest.approx(auto_losses, rel=1e-5)
    assert hand_losses[-1] < hand_losses[0]
    for p, q in zip(hand.parameters(), auto.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(p, q) for p, q in zip(hand.parameters(), critic.parameters(), strict=True))
