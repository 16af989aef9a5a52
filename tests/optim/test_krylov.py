"""Krylov solvers against torch.linalg.solve: SPD (CG), non-symmetric (GMRES), warm start, edge cases."""

import warnings

import pytest
import torch

from ipo_robust.optim import (
    ConvergenceWarning,
    ReachableTolerance,
    SolveResult,
    conjugate_gradient,
    gmres,
    reachable_rtol,
)
from ipo_robust.optim.krylov import floor_limit
from ipo_robust.optim.optimizer import default_rtol

DTYPE = torch.float64


def random_spd(n: int, seed: int, condition_shift: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, dtype=DTYPE, generator=generator)
    return M @ M.T / n + condition_shift * torch.eye(n, dtype=DTYPE)


def random_nonsymmetric(n: int, seed: int) -> torch.Tensor:
    """I + 0.5 G / sqrt(n): eigenvalues in a disc of radius ~0.5 around 1, far from symmetric."""
    generator = torch.Generator().manual_seed(seed)
    return torch.eye(n, dtype=DTYPE) + 0.5 * torch.randn(n, n, dtype=DTYPE, generator=generator) / n**0.5


def random_vector(n: int, seed: int, dtype=DTYPE) -> torch.Tensor:
    return torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def relative_residual(A, x, b) -> float:
    return float(torch.linalg.vector_norm(b - A @ x) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("n, seed", [(5, 0), (40, 1), (120, 2)])
def test_conjugate_gradient_matches_dense_solve_on_spd(n, seed):
    A, b = random_spd(n, seed), random_vector(n, seed + 100)
    result = conjugate_gradient(lambda v: A @ v, b, rtol=1e-12)
    assert isinstance(result, SolveResult)
    assert result.converged and result.residual <= 1e-12
    assert result.residual == pytest.approx(relative_residual(A, result.x, b), rel=1e-6, abs=1e-15)
    reference = torch.linalg.solve(A, b)
    assert torch.allclose(result.x, reference, rtol=1e-9, atol=1e-10)
    assert 0 < result.iterations <= 10 * n
    assert result.matvecs >= result.iterations


@pytest.mark.parametrize("n, seed, restart", [(5, 0, None), (60, 1, None), (60, 2, 7), (200, 3, 15)])
def test_gmres_matches_dense_solve_on_nonsymmetric(n, seed, restart):
    A, b = random_nonsymmetric(n, seed), random_vector(n, seed + 100)
    assert not torch.allclose(A, A.T)
    result = gmres(lambda v: A @ v, b, rtol=1e-12, restart=restart)
    assert result.converged and result.residual <= 1e-12
    # the reported residual is the true one, recomputed from x
    assert result.residual == pytest.approx(relative_residual(A, result.x, b), rel=1e-6, abs=1e-15)
    assert torch.allclose(result.x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)


def test_gmres_solves_spd_systems_too():
    A, b = random_spd(30, 4), random_vector(30, 5)
    result = gmres(lambda v: A @ v, b)
    assert result.converged
    assert torch.allclose(result.x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_warm_start_uses_residual_of_x0(solver, make_matrix):
    n = 50
    A, b = make_matrix(n, 7), random_vector(n, 8)
    reference = torch.linalg.solve(A, b)
    # a far-away x0: the answer must not depend on it (a solver that ignored A x0 would be wrong here)
    far = solver(lambda v: A @ v, b, x0=100.0 * random_vector(n, 9))
    assert far.converged
    assert torch.allclose(far.x, reference, rtol=1e-8, atol=1e-9)
    # the exact answer as x0: no iterations needed
    exact = solver(lambda v: A @ v, b, x0=reference)
    assert exact.converged and exact.iterations == 0
    assert torch.allclose(exact.x, reference)
    # a nearby x0 needs fewer iterations than a cold start
    cold = solver(lambda v: A @ v, b, rtol=1e-12)
    near = solver(lambda v: A @ v, b, x0=reference + 1e-6 * random_vector(n, 10), rtol=1e-12)
    assert near.converged and near.iterations < cold.iterations


@pytest.mark.parametrize("solver", [conjugate_gradient, gmres])
def test_one_dimensional_system(solver):
    A, b = torch.tensor([[3.0]], dtype=DTYPE), torch.tensor([6.0], dtype=DTYPE)
    result = solver(lambda v: A @ v, b)
    assert result.converged and result.iterations == 1
    assert torch.allclose(result.x, torch.tensor([2.0], dtype=DTYPE))
    warm = solver(lambda v: A @ v, b, x0=torch.tensor([-5.0], dtype=DTYPE))
    assert warm.converged and torch.allclose(warm.x, torch.tensor([2.0], dtype=DTYPE))


@pytest.mark.parametrize("solver", [conjugate_gradient, gmres])
def test_zero_right_hand_side_gives_zero(solver):
    A = random_spd(6, 11)
    b = torch.zeros(6, dtype=DTYPE)
    result = solver(lambda v: A @ v, b, x0=torch.ones(6, dtype=DTYPE))
    assert result.converged and result.residual == 0.0 and result.iterations == 0
    assert torch.equal(result.x, torch.zeros(6, dtype=DTYPE))


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_non_convergence_is_reported_with_a_warning(solver, make_matrix):
    n = 80
    A, b = make_matrix(n, 12), random_vector(n, 13)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = solver(lambda v: A @ v, b, max_iter=2)
    assert not result.converged
    assert result.iterations == 2
    assert result.residual > 1e-10
    assert result.residual == pytest.approx(relative_residual(A, result.x, b), rel=1e-9)


def test_convergence_warning_is_a_runtime_warning():
    assert issubclass(ConvergenceWarning, RuntimeWarning)


def test_conjugate_gradient_stops_on_an_indefinite_matrix():
    A = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=DTYPE))
    b = torch.tensor([1.0, 1.0, 0.0], dtype=DTYPE)  # p^T A p = 0 on the first step
    with pytest.warns(ConvergenceWarning, match="not positive definite"):
        result = conjugate_gradient(lambda v: A @ v, b)
    assert not result.converged


def test_gmres_reports_a_singular_system():
    A = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=DTYPE)
    b = torch.tensor([1.0, 1.0], dtype=DTYPE)  # not in the range of A
    with pytest.warns(ConvergenceWarning):
        result = gmres(lambda v: A @ v, b)
    assert not result.converged and result.residual == pytest.approx(2**-0.5)


def test_converged_solves_do_not_warn():
    A, b = random_spd(20, 14), random_vector(20, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conjugate_gradient(lambda v: A @ v, b)
        gmres(lambda v: A @ v, b)


@pytest.mark.parametrize("solver", [conjugate_gradient, gmres])
def test_dtype_follows_b(solver):
    A = random_spd(10, 16).to(torch.float32)
    b = random_vector(10, 17, dtype=torch.float32)
    result = solver(lambda v: A @ v, b, rtol=1e-5)
    assert result.x.dtype == torch.float32 and result.converged
    assert torch.allclose(result.x, torch.linalg.solve(A, b), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_solvers_run_on_cuda(solver, make_matrix):
    A, b = make_matrix(64, 18).cuda(), random_vector(64, 19).cuda()
    result = solver(lambda v: A @ v, b)
    assert result.x.device == b.device and result.converged
    assert torch.allclose(result.x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("solver", [conjugate_gradient, gmres])
def test_bad_arguments_raise_clear_errors(solver):
    A, b = random_spd(4, 20), random_vector(4, 21)
    with pytest.raises(ValueError, match="rtol"):
        solver(lambda v: A @ v, b, rtol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        solver(lambda v: A @ v, b, max_iter=-3)
    with pytest.raises(ValueError, match="x0"):
        solver(lambda v: A @ v, b, x0=torch.zeros(5, dtype=DTYPE))
    with pytest.raises(ValueError, match="1-d"):
        solver(lambda v: A @ v, A)
    with pytest.raises(ValueError, match="matvec must map"):
        solver(lambda v: torch.cat([v, v]), b)


def test_gmres_rejects_bad_restart():
    A, b = random_spd(4, 22), random_vector(4, 23)
    with pytest.raises(ValueError, match="restart"):
        gmres(lambda v: A @ v, b, restart=0)


def test_cg_stops_when_the_operator_rounding_sets_a_floor():
    """A product with relative noise 1e-7 (float32-like) cannot reach rtol 1e-12: CG must say so early,
    not spend its whole iteration budget restarting."""
    A = random_spd(6, 41)
    noise = torch.Generator().manual_seed(42)

    def noisy(v):
        exact = A @ v
        return exact + 1e-7 * exact.norm() * torch.randn(exact.shape, generator=noise, dtype=exact.dtype)

    with pytest.warns(ConvergenceWarning, match="stagnated"):
        result = conjugate_gradient(noisy, random_vector(6, 43), rtol=1e-12, max_iter=1000)
    assert not result.converged and result.iterations < 60
    assert result.residual < 1e-4  # it did get as far as the noise allows


# ------------------------------------------------------------------- dtype-aware tolerances, the rounding floor
def rounded(A: torch.Tensor, quantum: float):
    """v -> A v rounded to multiples of quantum * ||A v||: a deterministic product whose rounding error is
    about quantum relative, far above the dtype's eps (like a float32 sum of many cancelling samples)."""

    def matvec(v):
        exact = A @ v
        step = quantum * float(exact.norm())
        return torch.round(exact / step) * step if step > 0 else exact

    return matvec


def test_default_tolerances_are_dtype_aware():
    assert reachable_rtol(torch.float64) == 1e-10 and reachable_rtol(torch.float32) == 1e-6
    assert reachable_rtol(torch.float16) == pytest.approx(8 * torch.finfo(torch.float16).eps)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        assert isinstance(reachable_rtol(dtype), ReachableTolerance)
        assert reachable_rtol(dtype) < floor_limit(dtype)  # the target itself is always acceptable
    # the optimizers' default is the same, for the dtype of the game
    assert isinstance(default_rtol(torch.zeros(3)), ReachableTolerance) and default_rtol(torch.zeros(3)) == 1e-6
    assert default_rtol(torch.zeros(3, dtype=torch.float64)) == 1e-10
    # arithmetic on it gives a plain (exact) tolerance
    assert type(10 * reachable_rtol(torch.float32)) is float


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_a_solve_at_the_rounding_floor_converges_under_the_default_tolerance(solver, make_matrix):
    """Rounding of about 1e-5 relative (float32, a sum of cancelling samples) cannot reach 1e-6: with the
    default tolerance the solve stops at that floor, reports it and does not warn."""
    A = make_matrix(30, 50).to(torch.float32)
    b = random_vector(30, 51, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = solver(rounded(A, 1e-5), b)
    assert result.converged and result.at_floor
    assert 1e-6 < result.residual < floor_limit(torch.float32)
    # it did solve the system, to the accuracy the products allow
    assert torch.allclose(result.x.double(), torch.linalg.solve(A.double(), b.double()), rtol=1e-3, atol=1e-3)
    assert result.iterations < 150  # stopped at the floor, not at the iteration limit


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_an_explicit_rtol_below_the_floor_still_fails_and_warns(solver, make_matrix):
    A = make_matrix(30, 52).to(torch.float32)
    b = random_vector(30, 53, dtype=torch.float32)
    with pytest.warns(ConvergenceWarning, match="rounding in torch.float32 sets this floor"):
        result = solver(rounded(A, 1e-5), b, rtol=1e-6)
    assert not result.converged and result.at_floor and result.residual > 1e-6


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_a_floor_above_sqrt_eps_is_a_failure_even_by_default(solver, make_matrix):
    """A product that loses more than half of float32's digits gives no usable solve: it is counted."""
    A = make_matrix(30, 54).to(torch.float32)
    b = random_vector(30, 55, dtype=torch.float32)
    with pytest.warns(ConvergenceWarning, match="acceptable floor"):
        result = solver(rounded(A, 1e-2), b)
    assert not result.converged and result.at_floor and result.residual > floor_limit(torch.float32)


@pytest.mark.parametrize("solver, make_matrix", [(conjugate_gradient, random_spd), (gmres, random_nonsymmetric)])
def test_a_genuinely_failing_solve_is_not_mistaken_for_the_floor(solver, make_matrix):
    """Out of iterations far above the floor: a failure under the default tolerance, with its warning."""
    A = make_matrix(60, 56).to(torch.float32)
    b = random_vector(60, 57, dtype=torch.float32)
    with pytest.warns(ConvergenceWarning, match="iteration limit"):
        result = solver(lambda v: A @ v, b, max_iter=3)
    assert not result.converged and not result.at_floor and result.residual > 1e-3


def sample_schur_operator(n: int = 12, samples: int = 4096, seed: int = 58):
    """v -> (I + lr^2 D D^T) v with D = (1/M) sum_m G_m s_m t_m^T: the zero-sum CGD system of a sample mixed
    Hessian (eq. 13) in float32, its returns G_m large and cancelling across the batch. Returns (matvec,
    the same matrix in float64)."""
    generator = torch.Generator().manual_seed(seed)
    s, t = torch.randn(samples, n, generator=generator), torch.randn(samples, n, generator=generator)
    G = 50.0 * torch.sign(torch.randn(samples, generator=generator)) + torch.randn(samples, generator=generator)
    lr = 0.5

    def D(v):
        return s.T @ (G * (t @ v)) / samples

    def D_T(u):
        return t.T @ (G * (s @ u)) / samples

    def matvec(v):
        return v + lr**2 * D(D_T(v))

    D64 = (s.double().T * G.double()) @ t.double() / samples
    return matvec, torch.eye(n, dtype=DTYPE) + lr**2 * D64 @ D64.T


def test_float32_sample_sums_converge_on_every_simd_path():
    """The operator of the issue: a mean over many samples that cancel, in float32, whose rounding depends
    on the summation order (the CPU's vector width, the thread count). Whatever floor a machine lands on,
    the default tolerance ends the solve without a warning; nothing is asserted at that floor."""
    matvec, exact = sample_schur_operator()
    b = random_vector(12, 59, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [conjugate_gradient(matvec, b), gmres(matvec, b)]
    reference = torch.linalg.solve(exact, b.double())
    for result in results:
        assert result.converged
        assert torch.allclose(result.x.double(), reference, rtol=1e-3, atol=1e-4)
