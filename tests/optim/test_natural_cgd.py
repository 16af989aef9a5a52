"""natural_cgd_step under the joint KL budget (seed sec. 4.2, after eq. (20)) against dense solves.

The seed picks the step size by putting eq. (19)'s solution into the *joint* quadratic KL,
D = 1/2 (d1' F1' d1 + d2' F2' d2), and equating it to delta. The reference here is the dense block system

    M(l1, l2) = [[l1 F1', -D12], [-D21, l2 F2']],   M [d1; d2] = [g1; g2]                 eq. (19)

built independently of the update rule: the returned pair must solve it at the reported lambdas, and its
joint quadratic KL must be the budget. All in float64; the tolerances (1e-8 residual, 1e-6 KL) sit far
above the float64 rounding of these 35-dimensional solves.
"""

import math
import warnings

import pytest
import torch

from ipo_robust.optim import ConvergenceWarning, LinearOperator, LocalGame, natural_cgd_step
from ipo_robust.optim.natural import _find_scale, natural_cgd_solve

DTYPE = torch.float64
P1, P2 = 20, 15
DAMPING = 1e-4


def coupled_game(seed: int, zero_sum: bool, scale: float, dtype=DTYPE):
    """Random g, SPD F (eigenvalues about 0.5 to 4.5) and D of size ``scale`` (D21 = -D12^T when zero-sum)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, dtype=DTYPE, generator=generator)

    g1, g2 = randn(P1), randn(P2)
    D12 = scale * randn(P1, P2) / math.sqrt(P1 + P2)
    D21 = -D12.T.clone() if zero_sum else scale * randn(P2, P1) / math.sqrt(P1 + P2)
    M1, M2 = randn(P1, P1), randn(P2, P2)
    F1 = M1 @ M1.T / P1 + 0.5 * torch.eye(P1, dtype=DTYPE)
    F2 = M2 @ M2.T / P2 + 0.5 * torch.eye(P2, dtype=DTYPE)
    parts = (g1, g2, D12, D21, F1, F2)
    game = LocalGame.dense(*(x.to(dtype) for x in parts), zero_sum=zero_sum)
    return game, parts


def eq19_matrix(parts, lam1, lam2, damping=DAMPING):
    """The dense block matrix of eq. (19) and the damped Fishers."""
    _, _, D12, D21, F1, F2 = parts
    F1d, F2d = F1 + damping * torch.eye(P1, dtype=DTYPE), F2 + damping * torch.eye(P2, dtype=DTYPE)
    M = torch.cat([torch.cat([lam1 * F1d, -D12], 1), torch.cat([-D21, lam2 * F2d], 1)])
    return M, F1d, F2d


def eq19_residual(parts, step) -> float:
    """Relative residual ||M d - g|| / ||g|| of the step's pair in eq. (19) at the step's lambdas."""
    M, _, _ = eq19_matrix(parts, step.info["lam1"], step.info["lam2"])
    g = torch.cat(parts[:2])
    d = torch.cat([step.delta1, step.delta2]).to(DTYPE)
    return float(torch.linalg.vector_norm(M @ d - g) / torch.linalg.vector_norm(g))


def joint_quadratic_kl(parts, d1, d2, damping=DAMPING) -> float:
    _, F1d, F2d = eq19_matrix(parts, 1.0, 1.0, damping)
    d1, d2 = d1.to(DTYPE), d2.to(DTYPE)
    return 0.5 * float(d1 @ F1d @ d1 + d2 @ F2d @ d2)


def uncoupled_lambda(parts, kl, lam1, lam2, damping=DAMPING) -> float:
    """The common scale s without coupling: d_i = F_i'^-1 g_i / (s lam_i), so 1/2 sum g_i' F_i'^-1 g_i /
    (s lam_i)^2 = kl."""
    g1, g2, _, _, F1, F2 = parts
    _, F1d, F2d = eq19_matrix(parts, 1.0, 1.0, damping)
    q1, q2 = float(g1 @ torch.linalg.solve(F1d, g1)), float(g2 @ torch.linalg.solve(F2d, g2))
    return math.sqrt((q1 / lam1**2 + q2 / lam2**2) / (2 * kl))


@pytest.mark.parametrize("zero_sum", [True, False], ids=["zero-sum", "general-sum"])
@pytest.mark.parametrize("scale, kl", [(1.0, 0.01), (10.0, 1.0), (30.0, 0.1)])
@pytest.mark.parametrize("lam1, lam2", [(1.0, 1.0), (2.0, 0.5)])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_joint_pair_solves_eq19_at_the_reported_lambda_and_meets_the_joint_budget(zero_sum, scale, kl, lam1, lam2,
                                                                                   solver):
    game, parts = coupled_game(21, zero_sum, scale)
    step = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=DAMPING, solver=solver)
    info = step.info
    assert step.converged and info["lam_converged"] and info["kl_split"] == "joint"
    assert eq19_residual(parts, step) < 1e-8
    assert joint_quadratic_kl(parts, step.delta1, step.delta2) == pytest.approx(kl, rel=1e-6)
    assert info["kl_model"] == pytest.approx(kl, rel=1e-6)
    assert info["kl1_model"] + info["kl2_model"] == pytest.approx(info["kl_model"], rel=1e-12)
    # one common scale: the ratio lam1 : lam2 is the one given
    assert info["lam1"] / info["lam2"] == pytest.approx(lam1 / lam2, rel=1e-12)
    assert info["lam1"] == pytest.approx(info["lam_scale"] * lam1, rel=1e-12)
    assert info["lam_solves"] >= 2


@pytest.mark.parametrize("zero_sum", [True, False], ids=["zero-sum", "general-sum"])
def test_strong_coupling_moves_lambda_off_the_uncoupled_law(zero_sum):
    """With coupling K(s) is not K(1) / s^2: the root differs from the closed form, so it was searched."""
    game, parts = coupled_game(22, zero_sum, scale=10.0)
    kl = 1.0
    step = natural_cgd_step(game, kl, damping=DAMPING, solver="dense")
    closed_form = uncoupled_lambda(parts, kl, 1.0, 1.0)
    assert abs(step.info["lam1"] / closed_form - 1) > 0.05
    assert eq19_residual(parts, step) < 1e-8
    assert joint_quadratic_kl(parts, step.delta1, step.delta2) == pytest.approx(kl, rel=1e-6)
    if zero_sum:  # zero-sum: s d' F' d = g' d (the skew part drops), so K(s) <= the uncoupled K(s)
        assert step.info["lam1"] < closed_form


@pytest.mark.parametrize("lam1, lam2", [(1.0, 1.0), (0.3, 5.0)])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_without_coupling_the_joint_step_is_npg_under_a_joint_budget(lam1, lam2, solver):
    """D12 = D21 = 0: d_i = F_i'^-1 g_i / (s lam_i) with s from the joint budget (closed form); the second
    solve, at the 1/s^2 guess and warm-started from the first pair scaled by 1/s, is already the root."""
    _, parts = coupled_game(23, zero_sum=False, scale=0.0)
    g1, g2, _, _, F1, F2 = parts
    game = LocalGame(g1, g2, LinearOperator.zeros(P1, P2, g1), LinearOperator.zeros(P2, P1, g1),
                     LinearOperator.dense(F1), LinearOperator.dense(F2))
    kl = 0.01
    step = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=DAMPING, solver=solver)
    s = uncoupled_lambda(parts, kl, lam1, lam2)
    _, F1d, F2d = eq19_matrix(parts, 1.0, 1.0)
    npg1, npg2 = torch.linalg.solve(F1d, g1) / (s * lam1), torch.linalg.solve(F2d, g2) / (s * lam2)
    assert step.info["lam_scale"] == pytest.approx(s, rel=1e-8)
    torch.testing.assert_close(step.delta1, npg1, rtol=1e-8, atol=0)
    torch.testing.assert_close(step.delta2, npg2, rtol=1e-8, atol=0)
    assert step.info["lam_solves"] == 2
    # unlike per-player NPG, the players' KLs are not equal: the larger natural gradient takes more
    assert step.info["kl1_model"] != pytest.approx(step.info["kl2_model"], rel=1e-2)
    # the caller that knows D12 = D21 = 0 (npg) gets the closed form in one solve
    closed = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=DAMPING, solver=solver, uncoupled=True)
    assert closed.info["lam_solves"] == 1 and closed.info["lam_converged"]
    assert closed.info["lam_scale"] == pytest.approx(s, rel=1e-8)
    torch.testing.assert_close(closed.delta1, npg1, rtol=1e-8, atol=0)
    torch.testing.assert_close(closed.delta2, npg2, rtol=1e-8, atol=0)
    assert closed.info["kl_model"] == pytest.approx(kl, rel=1e-10)


def test_per_player_split_is_the_earlier_rule_and_differs_from_the_joint_one():
    game, parts = coupled_game(24, zero_sum=True, scale=3.0)
    kl, lam1, lam2 = 0.02, 2.0, 0.5
    per_player = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=DAMPING, kl_split="per-player")
    M, F1d, F2d = eq19_matrix(parts, lam1, lam2)
    d = torch.linalg.solve(M, torch.cat(parts[:2]))
    for i, (delta, di, Fd) in enumerate(((per_player.delta1, d[:P1], F1d), (per_player.delta2, d[P1:], F2d)), 1):
        scale = math.sqrt(kl / (0.5 * float(di @ Fd @ di)))  # each player rescaled to its own budget
        torch.testing.assert_close(delta, scale * di, rtol=1e-8, atol=0)
        assert 0.5 * float(delta @ Fd @ delta) == pytest.approx(kl, rel=1e-10)
        assert per_player.info[f"scale{i}"] == pytest.approx(scale, rel=1e-8)
    joint = natural_cgd_step(game, kl, lam1=lam1, lam2=lam2, damping=DAMPING)
    assert joint_quadratic_kl(parts, joint.delta1, joint.delta2) == pytest.approx(kl, rel=1e-6)
    assert joint_quadratic_kl(parts, per_player.delta1, per_player.delta2) == pytest.approx(2 * kl, rel=1e-8)


def test_zero_gradient_gives_a_zero_pair_without_a_warning():
    _, parts = coupled_game(25, zero_sum=True, scale=3.0)
    _, _, D12, D21, F1, F2 = parts
    game = LocalGame.dense(torch.zeros(P1, dtype=DTYPE), torch.zeros(P2, dtype=DTYPE), D12, D21, F1, F2, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = natural_cgd_step(game, 0.01)
    assert torch.count_nonzero(step.delta1) == 0 and torch.count_nonzero(step.delta2) == 0
    assert step.info["kl_model"] == 0.0 and not step.info["lam_converged"]


def test_a_still_player_leaves_the_whole_joint_budget_to_the_other():
    """g2 = 0 and no coupling: eq. (19) gives d2 = 0 at every lambda, so player 1 takes the joint budget."""
    _, parts = coupled_game(29, zero_sum=False, scale=0.0)
    g1, _, D12, D21, F1, F2 = parts
    game = LocalGame.dense(g1, torch.zeros(P2, dtype=DTYPE), D12, D21, F1, F2)
    step = natural_cgd_step(game, 0.01, damping=DAMPING)
    assert torch.count_nonzero(step.delta2) == 0 and step.info["kl2_model"] == 0.0
    assert step.info["kl1_model"] == pytest.approx(0.01, rel=1e-6)


def test_joint_step_on_an_exact_matrix_game_with_a_singular_fisher():
    """Rock-paper-scissors' softmax Fisher diag(p) - p p^T is singular; damping makes eq. (19) solvable,
    and GMRES and the dense solve give the same joint-budget pair."""
    from ipo_robust.envs.games import MatrixGame

    game = MatrixGame.named("rock-paper-scissors")
    theta1, theta2 = torch.tensor([-0.35, 0.4, 1.0], dtype=DTYPE), torch.tensor([1.0, -0.3, 0.4], dtype=DTYPE)
    local = game.local_game(theta1, theta2, fisher=True)
    kl, damping = 1e-3, 1e-3
    step = natural_cgd_step(local, kl, damping=damping)
    dense = natural_cgd_step(local, kl, damping=damping, solver="dense")
    assert step.converged and step.info["lam_converged"] and dense.info["lam_converged"]
    torch.testing.assert_close(step.delta1, dense.delta1, rtol=1e-6, atol=0)
    torch.testing.assert_close(step.delta2, dense.delta2, rtol=1e-6, atol=0)
    assert step.info["lam1"] == pytest.approx(dense.info["lam1"], rel=1e-6)
    F1 = local.F1.to_dense(theta1) + damping * torch.eye(3, dtype=DTYPE)
    F2 = local.F2.to_dense(theta1) + damping * torch.eye(3, dtype=DTYPE)
    joint = 0.5 * float(step.delta1 @ F1 @ step.delta1 + step.delta2 @ F2 @ step.delta2)
    assert joint == pytest.approx(kl, rel=1e-6)


def scalar_game(g1, g2, d12, d21, zero_sum=False) -> LocalGame:
    one = torch.ones(1, 1, dtype=DTYPE)
    return LocalGame.dense(torch.tensor([g1], dtype=DTYPE), torch.tensor([g2], dtype=DTYPE), d12 * one, d21 * one,
                           one, one, zero_sum=zero_sum)


@pytest.mark.parametrize("kl", [1e-6, 0.01])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_a_budget_beyond_every_lambda_is_reported_with_a_pair_near_the_limit(kl, solver):
    """Zero-sum 1 x 1, F = 1, D12 = a, g = (c, 0): d = (s c, -a c) / (s^2 + a^2), K(s) = c^2 / (2 (s^2 + a^2)),
    at most K_sup = c^2 / (2 a^2) = 5e-7 (s -> 0), as near a bilinear game's equilibrium. No lambda reaches
    the budget; the pair returned is eq. (19)'s at the largest lambda with K = 0.99 K_sup (reported, not
    warned: it is within budget), so growing lambda from there shrinks the step at once."""
    game = scalar_game(1e-2, 0.0, 10.0, -10.0, zero_sum=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = natural_cgd_step(game, kl, damping=0.0, solver=solver)
    s = step.info["lam1"]
    assert not step.info["lam_converged"] and "beyond every lambda" in step.info["lam_search"]
    assert step.info["kl_model"] == pytest.approx(0.99 * 5e-7, rel=1e-2)
    assert s == pytest.approx(math.sqrt(100.0 / 0.99 - 100.0), rel=5e-2)  # K(s) = 0.99 K_sup
    expected = torch.tensor([s * 1e-2, -10.0 * 1e-2], dtype=DTYPE) / (s**2 + 100.0)  # eq. (19) at the reported s
    torch.testing.assert_close(torch.cat([step.delta1, step.delta2]), expected, rtol=1e-8, atol=0)
    # within reach the same game meets the budget: K(s) = 1e-8 at s^2 = 5000 - 100
    met = natural_cgd_step(game, 1e-8, damping=0.0, solver=solver)
    assert met.info["lam_converged"] and met.info["lam1"] == pytest.approx(math.sqrt(4900.0), rel=1e-6)


def test_a_search_cut_short_warns_and_returns_a_pair_within_budget():
    game, parts = coupled_game(28, zero_sum=False, scale=10.0)
    with pytest.warns(ConvergenceWarning, match="the joint quadratic KL was not put at"):
        step = natural_cgd_step(game, 1.0, damping=DAMPING, solver="dense", max_solves=3)
    assert not step.info["lam_converged"] and step.info["lam_solves"] == 3
    assert eq19_residual(parts, step) < 1e-8
    assert joint_quadratic_kl(parts, step.delta1, step.delta2) <= 1.0


@pytest.mark.parametrize("kl", [10.0, 0.1, 1e-4])
@pytest.mark.parametrize("solver", ["auto", "dense"])
def test_general_sum_root_is_the_one_above_the_pole_of_eq19(kl, solver):
    """General-sum 1 x 1, F = 1, D12 = D21 = 3, g = (1, 1): eq. (19) is singular at lambda = 3, and
    d = (1, 1) / (lambda - 3), K = 1 / (lambda - 3)^2 crosses any budget twice (lambda = 3 +- kl^-1/2 when
    below 3). The search starts at lambda = 1, below the pole, and returns the root above it: the branch
    reached from lambda = infinity, the smallest step."""
    game = scalar_game(1.0, 1.0, 3.0, 3.0)
    step = natural_cgd_step(game, kl, damping=0.0, solver=solver)
    assert step.info["lam_converged"]
    assert step.info["lam1"] == pytest.approx(3.0 + kl**-0.5, rel=1e-6)
    assert step.info["kl_model"] == pytest.approx(kl, rel=1e-6)


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_general_sum_root_leaves_every_larger_lambda_within_budget(seed):
    """Strongly coupled general-sum games whose eq. (19) has real poles (up to lambda ~ 20-30 here): on a
    grid of lambdas above the reported one (dense solves), the joint quadratic KL stays below the budget,
    so the search returned the largest root. (Not guaranteed in general: a pole narrow enough to fall
    between two evaluated lambdas goes unseen; the root is then an exact one below it.)"""
    game, parts = coupled_game(seed, zero_sum=False, scale=30.0)
    kl = 0.1
    step = natural_cgd_step(game, kl, damping=DAMPING, solver="dense")
    lam = step.info["lam1"]
    assert step.info["lam_converged"] and eq19_residual(parts, step) < 1e-8
    g = torch.cat(parts[:2])
    for factor in torch.logspace(0.001, 2, 200, dtype=DTYPE).tolist():
        M, _, _ = eq19_matrix(parts, lam * factor, lam * factor)
        d = torch.linalg.solve(M, g)
        assert joint_quadratic_kl(parts, d[:P1], d[P1:]) < kl


def test_float32_meets_the_budget_to_its_own_accuracy():
    game32, parts = coupled_game(26, zero_sum=False, scale=3.0, dtype=torch.float32)
    kl = 0.05
    with warnings.catch_warnings():  # float32 GMRES may stall a little above rtol: warned, not asserted
        warnings.simplefilter("ignore", ConvergenceWarning)
        step = natural_cgd_step(game32, kl, damping=DAMPING, rtol=1e-6)
    assert step.delta1.dtype == torch.float32
    assert joint_quadratic_kl(parts, step.delta1, step.delta2) == pytest.approx(kl, rel=1e-3)
    assert eq19_residual(parts, step) < 1e-4


def test_natural_cgd_solve_is_eq19_at_the_given_lambdas():
    game, parts = coupled_game(27, zero_sum=False, scale=3.0)
    step = natural_cgd_solve(game, 2.0, 3.0, damping=DAMPING)
    M, _, _ = eq19_matrix(parts, 2.0, 3.0)
    d = torch.linalg.solve(M, torch.cat(parts[:2]))
    torch.testing.assert_close(torch.cat([step.delta1, step.delta2]), d, rtol=1e-8, atol=0)
    assert step.info["kl_model"] == pytest.approx(joint_quadratic_kl(parts, d[:P1], d[P1:]), rel=1e-10)
    warm = natural_cgd_solve(game, 2.0, 3.0, damping=DAMPING, x0=d)
    assert warm.iterations == 0
    with pytest.raises(ValueError, match="x0"):
        natural_cgd_solve(game, 2.0, 3.0, x0=torch.zeros(3, dtype=DTYPE))
    with pytest.raises(ValueError, match="lam2"):
        natural_cgd_solve(game, 2.0, 0.0)
    with pytest.raises(ValueError, match="singular"):  # lambda = 3 is the pole of the 1 x 1 game above
        natural_cgd_solve(scalar_game(1.0, 1.0, 3.0, 3.0), 3.0, 3.0, damping=0.0, solver="dense")


# ---- the root search alone, on K(s) given in closed form ---------------------------------------------

def test_find_scale_on_the_uncoupled_law_needs_two_evaluations():
    calls = []

    def joint_kl(s):
        calls.append(s)
        return 7.0 / s**2

    s, converged, _ = _find_scale(joint_kl, 0.01, 1e-10, 60)
    assert converged and s == pytest.approx(math.sqrt(700.0), rel=1e-12) and len(calls) == 2


def test_find_scale_reads_a_singular_point_as_above_the_budget():
    """K = inf (singular eq. (19)) below s = 2, 1/s^4 above: the root s = kl^-1/4 is found from either side."""
    def joint_kl(s):
        return math.inf if s < 2.0 else s**-4

    s, converged, _ = _find_scale(joint_kl, 1e-3, 1e-10, 60)
    assert converged and s == pytest.approx(1e-3**-0.25, rel=1e-9)
    s, converged, reason = _find_scale(joint_kl, 0.1, 1e-10, 60)  # the budget is above K(2) = 1/16
    assert not converged and "bracket" in reason and s >= 2.0 and s**-4 <= 0.1
