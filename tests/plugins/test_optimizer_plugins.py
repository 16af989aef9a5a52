"""Contract tests over every registered optimizer: it resolves, validates, and its update is right."""

import pytest
import torch

from ipo_robust import host
from ipo_robust.envs.games import MatrixGame
from ipo_robust.errors import ConfigError
from ipo_robust.optim import LocalGame, Step, cgd_step
from ipo_robust.optim.optimizer import capabilities_of


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
    if not capabilities_of(factory).local_game:  # e.g. ppo: learns from samples only, no update(game)
        assert not hasattr(factory(None), "update") and callable(factory(None).step)
        return
    step = factory(None).update(game)
    assert isinstance(step, Step)
    assert step.delta1.shape == (5,) and step.delta2.shape == (4,)
    assert torch.isfinite(step.delta1).all() and torch.isfinite(step.delta2).all()


@pytest.mark.parametrize("name", ["simga", "cgd", "lookahead", "ncgd", "npg"])
def test_bad_hyperparameters_are_refused_with_the_field_named(name):
    field = "kl" if name in ("ncgd", "npg") else "lr1"
    with pytest.raises(ConfigError, match=rf"optimizer '{name}': {field} must be a finite number > 0, got -1"):
        host.create("optimizer", name, None, **{field: -1})
    with pytest.raises(ConfigError, match=rf"optimizer '{name}': unknown hyperparameter 'nonsense'"):
        host.create("optimizer", name, None, nonsense=1)


@pytest.mark.parametrize("name", ["simga", "cgd", "lookahead", "ipo-vpg", "lola", "ipo-dpg"])
def test_lr_sets_both_learning_rates_and_a_bad_one_is_named_lr(name):
    factory = host.resolve("optimizer", name)
    config = factory(None, lr=0.25).config
    assert (config.lr1, config.lr2) == (0.25, 0.25)
    assert factory(None, lr=0.25, lr2=0.5).config.lr2 == 0.5
    for bad in (-1, 0, float("nan"), "0.1", True):
        with pytest.raises(ConfigError, match=rf"optimizer '{name}': lr \(both players' learning rates\) must be"):
            host.create("optimizer", name, None, lr=bad)


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
    # npg ignores the mixed terms. Per-player: each player's natural gradient scaled to its own KL budget
    npg = resolve("optimizer", "npg")(None, kl=0.02, damping=1e-12, kl_split="per-player").update(game)
    for delta, g, F in ((npg.delta1, g1, F1), (npg.delta2, g2, F2)):
        natural = torch.linalg.solve(F, g)
        torch.testing.assert_close(delta, (2 * 0.02 / (g @ natural)).sqrt() * natural, rtol=1e-6, atol=1e-9)
    # joint (default): one lambda for both, d_i = F_i^-1 g_i / lambda with 1/2 sum g_i' F_i^-1 g_i / lambda^2 = kl
    npg = resolve("optimizer", "npg")(None, kl=0.02, damping=1e-12).update(game)
    natural1, natural2 = torch.linalg.solve(F1, g1), torch.linalg.solve(F2, g2)
    lam = float(((g1 @ natural1 + g2 @ natural2) / (2 * 0.02)).sqrt())
    assert npg.info["lam1"] == pytest.approx(lam, rel=1e-8) and npg.info["lam2"] == npg.info["lam1"]
    torch.testing.assert_close(npg.delta1, natural1 / lam, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(npg.delta2, natural2 / lam, rtol=1e-6, atol=1e-9)
    # ncgd (joint): eq. (19) at the reported lambdas (ratio lam1 : lam2 kept), joint quadratic KL = kl
    ncgd = resolve("optimizer", "ncgd")(None, kl=0.02, damping=1e-12, lam1=1.0, lam2=3.0).update(game)
    l1, l2 = ncgd.info["lam1"], ncgd.info["lam2"]
    assert l2 / l1 == pytest.approx(3.0, rel=1e-12)
    block = torch.cat([torch.cat([l1 * F1, -D12], 1), torch.cat([-D21, l2 * F2], 1)])
    d, g = torch.cat([ncgd.delta1, ncgd.delta2]), torch.cat([g1, g2])
    assert float((block @ d - g).norm() / g.norm()) < 1e-8
    joint_kl = 0.5 * float(ncgd.delta1 @ F1 @ ncgd.delta1 + ncgd.delta2 @ F2 @ ncgd.delta2)
    assert joint_kl == pytest.approx(0.02, rel=1e-6)


@pytest.mark.parametrize("name", ["ncgd", "npg", "ipo-npg", "ipo-trpo"])
def test_natural_optimizers_take_a_kl_split_and_refuse_a_bad_one(name):
    factory = host.resolve("optimizer", name)
    assert factory(None).config.kl_split == "joint"
    assert factory(None, kl_split="per-player").config.kl_split == "per-player"
    with pytest.raises(ConfigError, match=rf"optimizer '{name}': kl_split must be one of 'joint', 'per-player', "
                                          "got 'both'"):
        host.create("optimizer", name, None, kl_split="both")


def test_natural_cgd_step_reports_the_lambdas_it_solved_eq19_at():
    import ipo_robust

    env = ipo_robust.make_env("rock-paper-scissors", num_envs=64, seed=0)
    agents = tuple(a.to(torch.float64) for a in ipo_robust.make_agents(env, seed=0, hidden=(8,)))
    batch = ipo_robust.collect(env, agents, steps=1, generator=torch.Generator().manual_seed(0))
    info = ipo_robust.make_optimizer("ipo-npg", agents, kl=0.01, gamma=1.0).step(batch)
    assert info["optim/lam1"] == info["optim/lam2"] > 0  # lam1 = lam2 = 1: one common lambda
    assert info["optim/kl_model"] == pytest.approx(0.01, rel=1e-6)
    assert info["optim/lam_solves"] >= 2


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
