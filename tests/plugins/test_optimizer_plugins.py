"""Contract tests over every registered optimizer: it resolves, validates, and its update is right."""

import pytest
import torch

from ipo_robust import host
from ipo_robust.envs.games import MatrixGame
from ipo_robust.errors import ConfigError
from ipo_robust.optim import LocalGame, Step, cgd_step


def random_local_game(p1=5, p2=4, zero_sum=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    g1, g2 = torch.randn(p1, generator=g, dtype=torch.float64), torch.randn(p2, generator=g, dtype=torch.float64)
    D12 = torch.randn(p1, p2, generator=g, dtype=torch.float64)
    D21 = -D12.T if zero_sum else torch.randn(p2, p1, generator=g, dtype=torch.float64)
    A1 = torch.randn(p1, p1, generator=g, dtype=torch.float64)
    A2 = torch.randn(p2, p2, generator=g, dtype=torch.float64)
    F1, F2 = A1 @ A1.T + torch.eye(p1), A2 @ A2.T + torch.eye(p2)
    return LocalGame.dense(g1, g2, D12, D21, F1, F2, zero_sum=zero_sum), (g1, g2, D12, D21, F1, F2)


@pytest.mark.parametrize("name", sorted(host.registered("optimizer")))
def test_every_optimizer_updates_a_local_game(name):
    factory = host.resolve("optimizer", name)
    game, _ = random_local_game()
    if getattr(factory, "sample_only", False):  # e.g. ppo: a local game is not enough, it must say so
        with pytest.raises(ValueError, match=f"optimizer '{name}' needs samples"):
            factory(None).update(game)
        return
    step = factory(None).update(game)
    assert isinstance(step, Step)
    assert step.delta1.shape == (5,) and step.delta2.shape == (4,)
    assert torch.isfinite(step.delta1).all() and torch.isfinite(step.delta2).all()


@pytest.mark.parametrize("name", ["simga", "cgd", "lookahead", "ncgd", "npg"])
def test_bad_hyperparameters_are_refused_with_the_field_named(name):
    factory = host.resolve("optimizer", name)
    field = "kl" if name in ("ncgd", "npg") else "lr1"
    with pytest.raises(ConfigError, match=rf"optimizer '{name}': {field} must be a finite number > 0, got -1"):
        factory(None, **{field: -1})
    with pytest.raises(ConfigError, match="unknown hyperparameter 'nonsense'"):
        factory(None, nonsense=1)


@pytest.mark.parametrize("name", ["simga", "cgd", "lookahead", "ipo-vpg", "lola", "ipo-dpg"])
def test_lr_sets_both_learning_rates_and_a_bad_one_is_named_lr(name):
    factory = host.resolve("optimizer", name)
    config = factory(None, lr=0.25).config
    assert (config.lr1, config.lr2) == (0.25, 0.25)
    assert factory(None, lr=0.25, lr2=0.5).config.lr2 == 0.5
    for bad in (-1, 0, float("nan"), "0.1", True):
        with pytest.raises(ConfigError, match=rf"optimizer '{name}': lr \(both players' learning rates\) must be"):
            factory(None, lr=bad)


def test_builtin_updates_match_the_update_rules():
    game, (g1, g2, D12, D21, F1, F2) = random_local_game(zero_sum=False, seed=3)
    resolve = host.resolve
    step = resolve("optimizer", "simga")(None, lr1=0.3, lr2=0.2).update(game)
    torch.testing.assert_close(step.delta1, 0.3 * g1)
    torch.testing.assert_close(step.delta2, 0.2 * g2)
    full = resolve("optimizer", "cgd")(None, lr1=0.3, lr2=0.2).update(game)
    reference = cgd_step(game, 0.3, 0.2, solver="dense")
    torch.testing.assert_close(full.delta1, reference.delta1, rtol=1e-8, atol=1e-10)
    look = resolve("optimizer", "lookahead")(None, lr1=0.3, lr2=0.2).update(game)
    torch.testing.assert_close(look.delta1, 0.3 * g1 + 0.3 * 0.2 * D12 @ g2)
    torch.testing.assert_close(look.delta2, 0.2 * g2 + 0.2 * 0.3 * D21 @ g1)
    # npg ignores the mixed terms: each player's natural gradient, scaled to the KL budget
    npg = resolve("optimizer", "npg")(None, kl=0.02, damping=1e-12).update(game)
    for delta, g, F in ((npg.delta1, g1, F1), (npg.delta2, g2, F2)):
        natural = torch.linalg.solve(F, g)
        torch.testing.assert_close(delta, (2 * 0.02 / (g @ natural)).sqrt() * natural, rtol=1e-6, atol=1e-9)


def test_lr_sets_both_players():
    cgd = host.resolve("optimizer", "cgd")(None, lr=0.7)
    assert (cgd.config.lr1, cgd.config.lr2) == (0.7, 0.7)


def test_apply_moves_agent_parameters_in_flat_order():
    agents = (torch.nn.Linear(2, 2), torch.nn.Linear(3, 1))
    optimizer = host.resolve("optimizer", "simga")(agents, lr=1.0)
    before = [torch.nn.utils.parameters_to_vector(a.parameters()).clone() for a in agents]
    delta1, delta2 = torch.arange(6.0), torch.arange(4.0)
    optimizer.apply(Step(delta1, delta2, 0, 0.0, True, 0, {}))
    after = [torch.nn.utils.parameters_to_vector(a.parameters()) for a in agents]
    torch.testing.assert_close(after[0] - before[0], delta1)
    torch.testing.assert_close(after[1] - before[1], delta2)


def test_matrix_game_local_game_drives_cgd_to_nash():
    game = MatrixGame.named("matching-pennies")
    theta1, theta2 = MatrixGame.logits([0.9, 0.1]), MatrixGame.logits([0.2, 0.8])
    cgd = host.resolve("optimizer", "cgd")(None, lr=0.5)
    for _ in range(800):
        step = cgd.update(game.local_game(theta1, theta2))
        theta1, theta2 = theta1 + step.delta1, theta2 + step.delta2
    p1, p2 = game.probabilities(theta1, theta2)
    torch.testing.assert_close(p1, torch.full((2,), 0.5, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(p2, torch.full((2,), 0.5, dtype=torch.float64), atol=1e-3, rtol=0)
