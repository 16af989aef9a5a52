"""Krylov solvers for A x = b, with A known only through its matvec.

Pure torch: vectors stay on the device and in the dtype of ``b`` (CPU and CUDA alike); only the small
Hessenberg least-squares problem of GMRES is solved in float64 on the host.

- :func:`conjugate_gradient`: A symmetric positive definite (the zero-sum CGD system).
- :func:`gmres`: any nonsingular A (the general-sum CGD system, the natural-CGD block system);
  restarted GMRES(m), Arnoldi with modified Gram-Schmidt, Givens rotations for the least squares.

Both return a :class:`SolveResult`. Non-convergence is never silent: ``converged=False`` and a
:class:`ConvergenceWarning` is issued. The reported ``residual`` is the final *true* relative residual
||b - A x|| / ||b||, recomputed from x (one extra matvec), not the recursion's estimate.

Tolerances and the rounding floor. A solve in finite precision cannot push the true residual below the
rounding error of its own products: for the sample estimators' operators (sums over thousands of samples
that cancel) that floor in float32 lies well above eps ||A|| ||x|| / ||b|| (measured in
``benchmarks/RESULTS.md``: up to 190 times), so no fixed float32 rtol is reachable for every operator.
The floor is therefore recognised where it shows, during the solve: the recursion (CG's recursive residual,
GMRES's least-squares estimate) has met the tolerance, yet a restart from the true residual does not even
halve it. That is the *rounding floor*: more iterations cannot help. The default tolerance,
:func:`reachable_rtol` (1e-10 in float64, 1e-6 in float32), is a :class:`ReachableTolerance`: a solve that
stops at the rounding floor counts as converged (``at_floor=True``) as long as the floor is below
sqrt(eps) of the dtype (3.5e-4 in float32; a floor above that has lost half the digits and is a failure).
An explicit float ``rtol`` is held exactly: stopping at a floor above it is a failure, with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_MAX_ITER_CAP = 10_000
"""Default iteration limit is min(10 n, this) for an n-dimensional system."""


class ConvergenceWarning(RuntimeWarning):
    """A Krylov solve stopped (iteration limit or breakdown) before reaching its tolerance."""


class ReachableTolerance(float):
    """A relative tolerance that gives way to the rounding floor of the operator at hand.

    A float (it prints and computes as its value, the target rtol); a solver handed one stops at
    ||b - A x|| <= rtol ||b|| or, if the true residual stagnates above that at the rounding floor (module
    docstring), at the floor, and reports the solve converged with ``at_floor=True`` provided the floor is
    below :func:`floor_limit` of the dtype. Arithmetic on it gives a plain float (an exact tolerance).
    """

    def __repr__(self) -> str:
        return f"ReachableTolerance({float(self)!r})"


def reachable_rtol(dtype: torch.dtype) -> ReachableTolerance:
    """The default tolerance of a solve in ``dtype``: 1e-10 in float64, 1e-6 in float32, 8 eps in lower
    precisions, each giving way to the operator's rounding floor (:class:`ReachableTolerance`)."""
    if dtype == torch.float64:
        return ReachableTolerance(1e-10)
    if dtype == torch.float32:
        return ReachableTolerance(1e-6)
    return ReachableTolerance(8.0 * torch.finfo(dtype).eps)


def floor_limit(dtype: torch.dtype) -> float:
    """The highest rounding floor a :class:`ReachableTolerance` accepts: sqrt(eps) of the dtype (float32:
    3.5e-4, float64: 1.5e-8). A solve stagnating above it has lost more than half of the dtype's digits
    to the operator's rounding (or the operator is not linear): it fails."""
    return math.sqrt(torch.finfo(dtype).eps)


@dataclass
class SolveResult:
    """Result of a Krylov solve of A x = b.

    x: the solution estimate, shape and dtype of b.
    iterations: Krylov iterations done (CG steps; Arnoldi steps summed over GMRES restarts).
    residual: final true relative residual ||b - A x|| / ||b|| (0 when b = 0).
    converged: residual <= rtol, or, for a :class:`ReachableTolerance`, stopped at the rounding floor.
    matvecs: applications of A, including residual recomputations.
    at_floor: the true residual stagnated at the rounding floor of the operator (module docstring); the
        solve then converged if its tolerance was a :class:`ReachableTolerance` and the floor acceptable.
    """

    x: torch.Tensor
    iterations: int
    residual: float
    converged: bool
    matvecs: int = 0
    at_floor: bool = False


class _CountedMatvec:
    """Applies A, checks the shape of what comes back, and counts applications."""

    def __init__(self, matvec: Matvec, like: torch.Tensor):
        if not callable(matvec):
            raise TypeError(f"matvec must be callable (v -> A v), got {type(matvec).__name__}")
        self.matvec, self.shape, self.count = matvec, like.shape, 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.count += 1
        out = self.matvec(v)
        if not isinstance(out, torch.Tensor) or out.shape != self.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"matvec must map a vector of shape {tuple(self.shape)} to the same shape, "
                             f"got {got}")
        return out


def _check_inputs(b, x0, rtol, max_iter, solver: str):
    if not isinstance(b, torch.Tensor) or b.dim() != 1:
        shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"{solver}: b must be a 1-d torch.Tensor, got {shape}")
    if not b.is_floating_point():
        raise ValueError(f"{solver}: b must be floating point, got dtype {b.dtype}")
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"{solver}: x0 must be a tensor of the shape of b {tuple(b.shape)}, got {shape}")
    if rtol is None:
        rtol = reachable_rtol(b.dtype)
    elif isinstance(rtol, bool) or not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"{solver}: rtol must be a finite number >= 0 or None (the dtype's reachable "
                         f"default), got {rtol!r}")
    n = b.numel()
    if max_iter is None:
        max_iter = min(10 * n, DEFAULT_MAX_ITER_CAP)
    elif isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"{solver}: max_iter must be an int >= 0 or None, got {max_iter!r}")
    return rtol, max_iter


def _initial_residual(A, b: torch.Tensor, x0: torch.Tensor | None):
    """(||b||, x, r = b - A x) for the start x = x0 (a warm start) or 0; nothing is applied when b = 0."""
    b_norm = float(torch.linalg.vector_norm(b))
    if b_norm == 0.0:
        return b_norm, None, None
    x = torch.zeros_like(b) if x0 is None else x0.detach().to(b).clone()
    r = b - A(x) if x0 is not None else b.clone()
    return b_norm, x, r


def _warn_not_converged(solver: str, iterations: int, residual: float, rtol: float, reason: str):
    warnings.warn(
        f"{solver} did not converge: relative residual {residual:.3e} > rtol {rtol:.1e} after "
        f"{iterations} iterations ({reason}); raise max_iter, loosen rtol, or check the operator",
        ConvergenceWarning, stacklevel=3)


def _outcome(solver: str, b: torch.Tensor, rtol: float, residual: float, iterations: int, reason: str,
             at_floor: bool) -> bool:
    """Whether the solve converged; warns if not. At the rounding floor, a :class:`ReachableTolerance`
    accepts a floor up to :func:`floor_limit`; an explicit float rtol does not give way."""
    if residual <= rtol:
        return True
    if at_floor:
        limit = floor_limit(b.dtype)
        if isinstance(rtol, ReachableTolerance) and residual <= limit:
            return True
        if isinstance(rtol, ReachableTolerance):
            reason += f", above the acceptable floor sqrt(eps) = {limit:.1e} of {b.dtype}: solve in float64"
        else:
            reason += " (rtol=None gives way to this floor)"
    _warn_not_converged(solver, iterations, residual, rtol, reason)
    return False


def conjugate_gradient(matvec: Matvec, b: torch.Tensor, x0: torch.Tensor | None = None,
                       rtol: float | None = None, max_iter: int | None = None) -> SolveResult:
    """Solve A x = b for symmetric positive definite A by conjugate gradients (Hestenes-Stiefel).

    matvec: v -> A v on vectors shaped like b (n,). b: right-hand side (n,), any floating dtype and
    device. x0: warm start (n,), the iteration starts from the residual b - A x0. rtol: stop when
    ||b - A x|| <= rtol ||b||; None: :func:`reachable_rtol` of b's dtype, which gives way to the rounding
    floor (module docstring). max_iter: CG steps (default min(10 n, 10 000)).

    A curvature p^T A p <= 0 means A is not positive definite: the solve stops there, unconverged.
    The recursive residual drives the iteration; the true residual is recomputed after each run of at
    most n steps (exact CG would have finished), and if rounding made the two drift apart CG restarts
    from the true residual while iterations remain. A restart that does not halve the true residual stops
    the solve instead of spending the remaining iterations; if that run's recursion had met rtol, the
    operator's own rounding (e.g. float32 products) sets the floor (``at_floor``).
    """
    rtol, max_iter = _check_inputs(b, x0, rtol, max_iter, "conjugate_gradient")
    A = _CountedMatvec(matvec, b)
    b_norm, x, r = _initial_residual(A, b, x0)
    if b_norm == 0.0:
        return SolveResult(torch.zeros_like(b), 0, 0.0, True, 0)
    residual = float(torch.linalg.vector_norm(r)) / b_norm
    iterations, reason, at_floor = 0, "iteration limit", False
    while True:
        if residual <= rtol:
            break
        if iterations >= max_iter:
            break
        # one CG run from the current residual, at most n steps
        p = r.clone()
        rr = torch.dot(r, r)
        indefinite = recursion_met = False
        run_start, residual_before = iterations, residual
        while iterations < max_iter and iterations - run_start < b.numel():
            Ap = A(p)
            pAp = torch.dot(p, Ap)
            if float(pAp) <= 0.0:
                indefinite, reason = True, f"p^T A p = {float(pAp):.3e} <= 0: A is not positive definite"
                break
            alpha = rr / pAp
            x = x + alpha * p
            r = r - alpha * Ap
            iterations += 1
            rr_new = torch.dot(r, r)
            if math.sqrt(float(rr_new)) <= rtol * b_norm:
                recursion_met = True
                break
            p = r + (rr_new / rr) * p
            rr = rr_new
        r = b - A(x)  # true residual
        residual = float(torch.linalg.vector_norm(r)) / b_norm
        if indefinite:
            break
        if residual > rtol and residual > 0.5 * residual_before:
            at_floor = recursion_met
            reason = (f"stagnated: a restart left the residual at {residual:.3e} (from {residual_before:.3e})"
                      + (f"; the operator's rounding in {b.dtype} sets this floor" if at_floor else ""))
            break
    converged = _outcome("conjugate_gradient", b, rtol, residual, iterations, reason, at_floor)
    return SolveResult(x, iterations, residual, converged, A.count, at_floor)


def _givens(a: float, b: float) -> tuple[float, float]:
    """(c, s) with [[c, s], [-s, c]] [a, b] = [r, 0]."""
    if b == 0.0:
        return 1.0, 0.0
    r = math.hypot(a, b)
    return a / r, b / r


def _modified_gram_schmidt(w: torch.Tensor, V: list[torch.Tensor]) -> tuple[torch.Tensor, list[float]]:
    """Orthogonalise w against the orthonormal V[0..j] one vector at a time (modified Gram-Schmidt).

    Returns the new w (never aliasing the input, which a matvec may share with its argument) and the
    coefficients h_i = (w_{i} . V[i]) as floats. On CUDA the coefficients stay on the device until
    one transfer at the end.
    """
    if w.device.type == "cpu":
        coefficients = []
        for i, v in enumerate(V):
            h = float(torch.dot(w, v))
            w = w - h * v if i == 0 else w.sub_(v, alpha=h)
            coefficients.append(h)
        return w, coefficients
    device_coefficients = []
    for i, v in enumerate(V):
        h = torch.dot(w, v)
        w = w - h * v if i == 0 else w.sub_(h * v)
        device_coefficients.append(h)
    return w, torch.stack(device_coefficients).tolist()


def gmres(matvec: Matvec, b: torch.Tensor, x0: torch.Tensor | None = None, rtol: float | None = None,
          restart: int | None = None, max_iter: int | None = None) -> SolveResult:
    """Solve A x = b for nonsingular (possibly non-symmetric) A by restarted GMRES(restart).

    matvec: v -> A v on vectors shaped like b (n,). b: right-hand side (n,), any floating dtype and
    device. x0: warm start (n,); each cycle starts from the true residual b - A x. rtol: stop when
    ||b - A x|| <= rtol ||b||; None: :func:`reachable_rtol` of b's dtype, which gives way to the rounding
    floor (module docstring). restart: Krylov subspace size per cycle (default min(n, 50); memory is
    (restart + 1) vectors of size n). max_iter: Arnoldi steps summed over cycles (default
    min(10 n, 10 000)).

    Arnoldi with modified Gram-Schmidt; the Hessenberg least-squares problem is reduced by Givens
    rotations, whose running residual estimate ends a cycle early. The reported residual is the true one.
    A cycle whose estimate met rtol but whose true residual is not even half the cycle's start has hit the
    rounding floor (``at_floor``): the solve stops there; a cycle that makes no progress at all stops it too.
    """
    rtol, max_iter = _check_inputs(b, x0, rtol, max_iter, "gmres")
    n = b.numel()
    if restart is None:
        restart = min(n, 50)
    elif isinstance(restart, bool) or not isinstance(restart, int) or restart < 1:
        raise ValueError(f"gmres: restart must be an int >= 1 or None, got {restart!r}")
    restart = min(restart, n)
    A = _CountedMatvec(matvec, b)
    b_norm, x, r = _initial_residual(A, b, x0)
    if b_norm == 0.0:
        return SolveResult(torch.zeros_like(b), 0, 0.0, True, 0)
    beta = float(torch.linalg.vector_norm(r))
    iterations, reason, stagnated, at_floor = 0, "iteration limit", False, False
    while beta / b_norm > rtol and iterations < max_iter and not stagnated:
        V = [r / beta]  # orthonormal Krylov basis, grown as needed (at most restart + 1 vectors)
        R: list[list[float]] = []  # columns of the rotated Hessenberg matrix, R[j][i] = entry (i, j)
        g = [beta]  # rotated right-hand side beta e1
        cs, sn = [], []
        estimate_met = False  # the least-squares residual estimate of this cycle reached rtol
        for j in range(restart):
            if iterations >= max_iter:
                break
            w = A(V[j])
            w_norm = float(torch.linalg.vector_norm(w))
            w, column = _modified_gram_schmidt(w, V)
            h_next = float(torch.linalg.vector_norm(w))
            iterations += 1
            breakdown = h_next <= 1e-14 * max(w_norm, 1e-300)  # Krylov space invariant: solution exact
            if not breakdown:
                V.append(w / h_next)
            for i in range(j):  # previous rotations on the new column
                a, c = column[i], column[i + 1]
                column[i], column[i + 1] = cs[i] * a + sn[i] * c, -sn[i] * a + cs[i] * c
            c_j, s_j = _givens(column[j], h_next)
            cs.append(c_j)
            sn.append(s_j)
            column[j] = c_j * column[j] + s_j * h_next
            R.append(column)
            g.append(-s_j * g[j])
            g[j] = c_j * g[j]
            if abs(g[j + 1]) <= rtol * b_norm or breakdown:
                estimate_met = True
                break
        k = len(R)
        if k == 0:
            break
        # least squares: R y = g[:k], R upper triangular. A (numerically) zero pivot means A is singular
        # on the Krylov subspace; keep the leading columns before it (the least-squares solution there).
        scale = max(abs(value) for column in R for value in column)
        singular = [j for j in range(k) if abs(R[j][j]) <= 1e-13 * scale]
        if singular:
            k = singular[0]
            reason = "singular Hessenberg matrix: A looks singular on the Krylov subspace"
            if k == 0:
                stagnated = True
                break
        upper = torch.zeros(k, k, dtype=torch.float64)
        for j in range(k):
            upper[: j + 1, j] = torch.tensor(R[j][: j + 1], dtype=torch.float64)
        y = torch.linalg.solve_triangular(upper, torch.tensor(g[:k], dtype=torch.float64).unsqueeze(1),
                                          upper=True).squeeze(1).tolist()
        for i in range(k):  # x is this solver's own tensor (zeros or a copy of x0): update in place
            x.add_(V[i], alpha=y[i])
        r = b - A(x)  # true residual, the start of the next cycle
        beta_new = float(torch.linalg.vector_norm(r))
        if estimate_met and not singular and beta_new > rtol * b_norm and beta_new > 0.5 * beta:
            reason = (f"stagnated: a restart cycle left the residual at {beta_new / b_norm:.3e} (from "
                      f"{beta / b_norm:.3e}); the operator's rounding in {b.dtype} sets this floor")
            stagnated = at_floor = True
        elif beta_new >= beta * (1.0 - 1e-12):
            reason, stagnated = "stagnation: a restart cycle made no progress", True
        beta = beta_new
    residual = beta / b_norm
    converged = _outcome("gmres", b, rtol, residual, iterations, reason, at_floor)
    return SolveResult(x, iterations, residual, converged, A.count, at_floor)
