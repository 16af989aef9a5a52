"""cgd_step, simga_step and natural_cgd_step against dense references of the local game.

Reference for full CGD: the Nash equilibrium of the bilinear local game (seed eq. (5)) solves
d1 = lr1 (g1 + D12 d2), d2 = lr2 (g2 + D21 d1), i.e. the full 2x2 block system
    [[I / lr1, -D12], [-D21, I / lr2]] [d1; d2] = [g1; g2],
solved densely with torch.linalg.solve, independently of the update rule's reduced system.
"""

import math

import pytest
import torch

from ipo_robust.envs.games import MatrixGame
from ipo_robust.optim import LinearOperator, LocalGame, Step, cgd_step, natural_cgd_step, simga_step

DTYPE = torch.float64
P1, P2 = 20, 15
LR1, LR2 = 0.3, 0.1  # deliberately different: the seed's eq. (6) typo only shows when lr1 != lr2


def random_game(seed: int, zero_sum: bool, p1: int = P1, p2: int = P2, scale: float = 1.0,
                fisher: bool = False):
    """Random g1, g2, D12, D21 (D21 = -D12^T when zero-sum); returns the game and its dense parts."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, dtype=DTYPE, generator=generator)

    g1, g2 = randn(p1), randn(p2)
    D12 = scale * randn(p1, p2) / math.sqrt(p1 + p2)
    D21 = -D12.T.clone() if zero_sum else scale * randn(p2, p1) / math.sqrt(p1 + p2)
    F1 = F2 = None
    if fisher:
        M1, M2 = randn(p1, p1), randn(p2, p2)
        F1, F2 = M1 @ M1.T / p1 + 0.5 * torch.eye(p1, dtype=DTYPE), M2 @ M2.T / p2 + 0.5 * torch.eye(p2, dtype=DTYPE)
    game = LocalGame.dense(g1, g2, D12, D21, F1, F2, zero_sum=zero_sum)
    return game, (g1, g2, D12, D21, F1, F2)


def dense_nash(g1, g2, D12, D21, lr1, lr2):
    """The Nash of the local game from the full block system (independent reference)."""
    p1, p2 = g1.numel(), g2.numel()
    block = torch.cat([
        torch.cat([torch.eye(p1, dtype=DTYPE) / lr1, -D12], dim=1),
        torch.cat([-D21, torch.eye(p2, dtype=DTYPE) / lr2], dim=1),
    ])
    d = torch.linalg.solve(block, torch.cat([g1, g2]))
    return d[:p1], d[p1:]


def relative_error(x, reference) -> float:
    return float(torch.linalg.vector_norm(x - reference) / torch.linalg.vector_norm(reference))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("zero_sum, solver", [(True, "auto"), (True, "cg"), (True, "gmres"), (True, "dense"),
                                              (False, "auto"), (False, "gmres"), (False, "dense")])
def test_cgd_step_is_the_dense_nash_of_the_local_game(seed, zero_sum, solver):
    game, (g1, g2, D12, D21, *_) = random_game(seed, zero_sum, scale=2.0)
    step = cgd_step(game, LR1, LR2, solver=solver)
    assert isinstance(step, Step) and step.converged
    d1, d2 = dense_nash(g1, g2, D12, D21, LR1, LR2)
    assert relative_error(step.delta1, d1) < 1e-6
    assert relative_error(step.delta2, d2) < 1e-6
    # the Nash equations themselves (seed eq. (5))
    assert torch.allclose(step.delta1, LR1 * (g1 + D12 @ step.delta2), rtol=1e-8, atol=1e-10)
    assert torch.allclose(step.delta2, LR2 * (g2 + D21 @ step.delta1), rtol=1e-8, atol=1e-10)
    expected_solver = {"auto": "cg" if zero_sum else "gmres"}.get(solver, solver)
    assert step.info["solver"] == expected_solver
    assert step.matvecs > 0


def test_seed_eq6_typo_differs_from_the_derivation_when_lrs_differ():
    """The printed eq. (6) uses lr1 in the cross term; the Nash needs lr2 (they agree iff lr1 = lr2)."""
    game, (g1, g2, D12, D21, *_) = random_game(3, zero_sum=True, scale=2.0)
    step = cgd_step(game, LR1, LR2)
    system = torch.eye(P1, dtype=DTYPE) - LR1 * LR2 * D12 @ D21
    printed = LR1 * torch.linalg.solve(system, g1 + LR1 * D12 @ g2)
    assert relative_error(printed, step.delta1) > 1e-2
    equal_lrs = cgd_step(game, LR1, LR1)
    system_equal = torch.eye(P1, dtype=DTYPE) - LR1**2 * D12 @ D21
    printed_equal = LR1 * torch.linalg.solve(system_equal, g1 + LR1 * D12 @ g2)
    assert relative_error(printed_equal, equal_lrs.delta1) < 1e-8


@pytest.mark.parametrize("zero_sum", [True, False])
def test_depth_zero_is_simga_exactly(zero_sum):
    game, (g1, g2, *_) = random_game(4, zero_sum)
    step = cgd_step(game, LR1, LR2, depth=0)
    simga = simga_step(game, LR1, LR2)
    assert torch.equal(step.delta1, LR1 * g1) and torch.equal(step.delta2, LR2 * g2)
    assert torch.equal(simga.delta1, step.delta1) and torch.equal(simga.delta2, step.delta2)
    assert step.matvecs == 0 and simga.matvecs == 0


@pytest.mark.parametrize("zero_sum", [True, False])
def test_depth_one_is_the_one_step_look_ahead(zero_sum):
    game, (g1, g2, D12, D21, *_) = random_game(5, zero_sum)
    step = cgd_step(game, LR1, LR2, depth=1)
    assert torch.allclose(step.delta1, LR1 * g1 + LR1 * LR2 * D12 @ g2, rtol=1e-12, atol=1e-14)
    assert torch.allclose(step.delta2, LR2 * g2 + LR2 * LR1 * D21 @ g1, rtol=1e-12, atol=1e-14)
    assert step.matvecs == 2


@pytest.mark.parametrize("zero_sum", [True, False])
def test_deep_neumann_series_approaches_full_cgd(zero_sum):
    game, (g1, g2, D12, D21, *_) = random_game(6, zero_sum)
    # the series converges iff the spectral radius of N = [[0, lr1 D12], [lr2 D21, 0]] is < 1
    N = torch.cat([torch.cat([torch.zeros(P1, P1, dtype=DTYPE), LR1 * D12], 1),
                   torch.cat([LR2 * D21, torch.zeros(P2, P2, dtype=DTYPE)], 1)])
    assert float(torch.linalg.eigvals(N).abs().max()) < 0.5
    full = cgd_step(game, LR1, LR2)
    errors = [relative_error(cgd_step(game, LR1, LR2, depth=k).delta1, full.delta1) for k in (0, 2, 4, 8, 40)]
    assert all(later < earlier for earlier, later in zip(errors[:-1], errors[1:], strict=True))
    assert errors[-1] < 1e-10
    deep = cgd_step(game, LR1, LR2, depth=40)
    assert relative_error(deep.delta2, full.delta2) < 1e-10


def test_cg_is_refused_on_a_general_sum_game():
    game, _ = random_game(7, zero_sum=False)
    with pytest.raises(ValueError, match="zero-sum"):
        cgd_step(game, LR1, LR2, solver="cg")


def test_warm_start_from_the_solution_needs_no_iterations():
    for zero_sum in (True, False):
        game, _ = random_game(8, zero_sum)
        first = cgd_step(game, LR1, LR2, rtol=1e-12)
        again = cgd_step(game, LR1, LR2, x0=first.delta1, rtol=1e-10)
        assert again.iterations == 0 and again.converged
        assert torch.allclose(again.delta1, first.delta1)


def test_cgd_on_tiny_and_uncoupled_games():
    # 1 x 1: f = x y with lr = 0.5 at (x, y) = (1, 1): g1 = y = 1, g2 = -x = -1, D12 = 1, D21 = -1
    game = LocalGame.dense(torch.tensor([1.0], dtype=DTYPE), torch.tensor([-1.0], dtype=DTYPE),
                           torch.tensor([[1.0]], dtype=DTYPE), torch.tensor([[-1.0]], dtype=DTYPE), zero_sum=True)
    step = cgd_step(game, 0.5, 0.5)
    # d1 = 0.5 (1 + 0.5 * (-1)) / (1 + 0.25) = 0.2, d2 = 0.5 (-1 - 0.2) = -0.6
    assert torch.allclose(step.delta1, torch.tensor([0.2], dtype=DTYPE))
    assert torch.allclose(step.delta2, torch.tensor([-0.6], dtype=DTYPE))
    # no coupling: CGD is SimGA
    g1, g2 = torch.randn(4, dtype=DTYPE), torch.randn(3, dtype=DTYPE)
    uncoupled = LocalGame(g1, g2, LinearOperator.zeros(4, 3, g1), LinearOperator.zeros(3, 4, g1))
    step = cgd_step(uncoupled, 0.2, 0.7)
    assert torch.allclose(step.delta1, 0.2 * g1) and torch.allclose(step.delta2, 0.7 * g2)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr1": 0.0}, "lr1"), ({"lr1": -1.0}, "lr1"), ({"lr2": float("nan")}, "lr2"), ({"lr2": True}, "lr2"),
    ({"depth": -1}, "depth"), ({"depth": 1.5}, "depth"), ({"solver": "lsqr"}, "solver"),
    ({"x0": torch.zeros(3, dtype=DTYPE)}, "x0"),
])
def test_cgd_step_validates_its_arguments(kwargs, match):
    game, _ = random_game(9, zero_sum=True)
    arguments = {"lr1": LR1, "lr2": LR2, **kwargs}
    with pytest.raises(ValueError, match=match):
        cgd_step(game, **arguments)


def test_cgd_step_rejects_something_that_is_not_a_local_game():
    with pytest.raises(TypeError, match="LocalGame"):
        cgd_step({"g1": 1}, LR1, LR2)


# ---- natural CGD with kl_split="per-player" (seed eq. (19), each direction scaled to its own budget) ------
# The default, kl_split="joint" (one lambda, joint KL = kl), is tested in tests/optim/test_natural_cgd.py.

def npg_step(g, F, kl, damping):
    """Natural policy gradient (eq. (20)): sqrt(2 kl / (g^T F'^-1 g)) F'^-1 g with F' = F + damping I."""
    F_damped = F + damping * torch.eye(F.shape[0], dtype=DTYPE)
    x = torch.linalg.solve(F_damped, g)
    return math.sqrt(2 * kl / float(g @ x)) * x


@pytest.mark.parametrize("lam1, lam2", [(1.0, 1.0), (0.3, 5.0)])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_per_player_natural_cgd_without_coupling_is_the_natural_policy_gradient(lam1, lam2, solver):
    _, (g1, g2, _, _, F1, F2) = random_game(10, zero_sum=False, fisher=True)
    game = LocalGame(g1, g2, LinearOperator.zeros(P1, P2, g1), LinearOperator.zeros(P2, P1, g1),
                     LinearOperator.dense(F1), LinearOperator.dense(F2))
    kl, damping = 0.01, 1e-3
    step = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=damping, solver=solver, kl_split="per-player")
    assert step.converged and step.info["kl_split"] == "per-player"
    assert relative_error(step.delta1, npg_step(g1, F1, kl, damping)) < 1e-6
    assert relative_error(step.delta2, npg_step(g2, F2, kl, damping)) < 1e-6


@pytest.mark.parametrize("zero_sum", [True, False])
def test_per_player_natural_cgd_scales_eq19_to_each_players_budget(zero_sum):
    game, (g1, g2, D12, D21, F1, F2) = random_game(11, zero_sum, fisher=True)
    kl, lam1, lam2, damping = 0.02, 2.0, 0.5, 1e-4
    step = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=damping, kl_split="per-player")
    F1d = F1 + damping * torch.eye(P1, dtype=DTYPE)
    F2d = F2 + damping * torch.eye(P2, dtype=DTYPE)
    # quadratic KL model of each player's step equals the budget
    assert 0.5 * float(step.delta1 @ F1d @ step.delta1) == pytest.approx(kl, rel=1e-10)
    assert 0.5 * float(step.delta2 @ F2d @ step.delta2) == pytest.approx(kl, rel=1e-10)
    # direction: the dense solution of eq. (19), up to each player's positive scale
    block = torch.cat([torch.cat([lam1 * F1d, -D12], 1), torch.cat([-D21, lam2 * F2d], 1)])
    d = torch.linalg.solve(block, torch.cat([g1, g2]))
    d1, d2 = d[:P1], d[P1:]
    assert relative_error(step.delta1 / step.info["scale1"], d1) < 1e-6
    assert relative_error(step.delta2 / step.info["scale2"], d2) < 1e-6
    assert step.info["kl1_before"] == pytest.approx(0.5 * float(d1 @ F1d @ d1), rel=1e-8)
    assert step.info["scale1"] == pytest.approx(math.sqrt(kl / step.info["kl1_before"]), rel=1e-12)
    assert step.info["kl_model"] == 2 * kl  # each player at its own budget: joint 2 kl
    # the rescaled pair is not eq. (19)'s solution at any common lambda: the d1 : d2 ratio changed
    assert abs(step.info["scale1"] / step.info["scale2"] - 1) > 1e-2


def test_natural_cgd_needs_the_fisher_and_valid_arguments():
    game, _ = random_game(12, zero_sum=True)
    with pytest.raises(ValueError, match="F1 and F2"):
        natural_cgd_step(game, 0.01)
    game, _ = random_game(12, zero_sum=True, fisher=True)
    for kwargs, match in [({"kl": 0.0}, "kl"), ({"kl": -1.0}, "kl"), ({"lam1": 0.0}, "lam1"),
                          ({"damping": -1e-3}, "damping"), ({"solver": "cg"}, "solver"),
                          ({"kl_split": "both"}, "kl_split"), ({"kl_rtol": 0.0}, "kl_rtol"),
                          ({"max_solves": 1}, "max_solves"), ({"uncoupled": 1}, "uncoupled")]:
        with pytest.raises(ValueError, match=match):
            natural_cgd_step(game, **{"kl": 0.01, **kwargs})


def test_per_player_natural_cgd_keeps_a_zero_gradient_player_still():
    _, (g1, _, D12, _, F1, F2) = random_game(13, zero_sum=False, fisher=True)
    game = LocalGame.dense(g1, torch.zeros(P2, dtype=DTYPE), D12 * 0, torch.zeros(P2, P1, dtype=DTYPE), F1, F2)
    step = natural_cgd_step(game, 0.01, kl_split="per-player")
    assert torch.count_nonzero(step.delta2) == 0 and step.info["scale2"] == 0.0


def test_per_player_natural_cgd_on_an_exact_matrix_game_with_a_singular_fisher():
    """The softmax Fisher diag(p) - p p^T is singular (constant logit shifts); damping makes eq. (19) solvable."""
    game = MatrixGame.named("rock-paper-scissors")
    theta1, theta2 = torch.tensor([-0.35, 0.4, 1.0], dtype=DTYPE), torch.tensor([1.0, -0.3, 0.4], dtype=DTYPE)
    local = game.local_game(theta1, theta2, fisher=True)
    kl, damping = 1e-3, 1e-3
    step = natural_cgd_step(local, kl, damping=damping, kl_split="per-player")
    dense = natural_cgd_step(local, kl, damping=damping, solver="dense", kl_split="per-player")
    assert step.converged
    assert relative_error(step.delta1, dense.delta1) < 1e-8 and relative_error(step.delta2, dense.delta2) < 1e-8
    F1 = local.F1.to_dense(theta1) + damping * torch.eye(3, dtype=DTYPE)
    assert 0.5 * float(step.delta1 @ F1 @ step.delta1) == pytest.approx(kl, rel=1e-10)
