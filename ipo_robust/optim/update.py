"""Update rules: a LocalGame in, both players' parameter steps out.

Both players *maximise* (../shared/DESIGN.md). Around the current point each player i sees the
bilinear local game (seed eq. (5), after Schaefer & Anandkumar 2019)

    max_{d1}  d1^T g1 + d1^T D12 d2 - ||d1||^2 / (2 lr1)
    max_{d2}  d2^T g2 + d2^T D21 d1 - ||d2||^2 / (2 lr2)

whose unique Nash equilibrium solves d1 = lr1 (g1 + D12 d2), d2 = lr2 (g2 + D21 d1):

    d1 = lr1 (I - lr1 lr2 D12 D21)^-1 (g1 + lr2 D12 g2),    d2 = lr2 (g2 + D21 d1).

The seed's eqs. (6)/(10) print lr1 where this derivation gives lr2 in the cross term g1 + lr2 D12 g2;
the two agree only when lr1 = lr2. We implement the derivation.

- :func:`cgd_step`: full CGD (one Krylov solve + one matvec) or the depth-k truncated Neumann series.
- :func:`simga_step`: simultaneous gradient ascent, lr_i g_i (depth 0).
- :func:`scaled_cgd_step`: CGD with a diagonal step size per coordinate, P_i = diag(p_i) in place of lr_i:
  the Nash equilibrium of the local game regularised by d_i^T P_i^-1 d_i / 2, d1 = P1 (g1 + D12 d2),
  d2 = P2 (g2 + D21 d1). With p_i = lr / (sqrt(v_i) + eps) from running squared gradients it is the
  adaptive CGD (ACGD) of Schaefer, Zheng & Anandkumar (2020, "Implicit competitive regularization in
  GANs"), which reduces to RMSprop when the mixed Hessians vanish.

The Fisher-metric local game of seed eq. (19) and its KL budget live in :mod:`ipo_robust.optim.natural`
(``natural_cgd_step``, ``natural_cgd_solve``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ipo_robust.optim.krylov import conjugate_gradient, gmres
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator

CGD_SOLVERS = ("auto", "cg", "gmres", "dense")


@dataclass
class Step:
    """Both players' parameter steps; the update is theta_i += delta_i (ascent).

    delta1, delta2: steps of shape (p1,), (p2,), in parameter units.
    iterations: Krylov iterations of the solve (the depth k for the Neumann series, 0 for dense).
    residual: final true relative residual of the solve; 0.0 for a dense solve, NaN where nothing was
        solved (the truncated Neumann series, SimGA).
    converged: whether the solve reached rtol (True where nothing was solved).
    matvecs: applications of the game's operators (D12, D21, F1, F2), the unit of cost.
    info: solver name and rule-specific diagnostics (e.g. the KL before scaling for natural CGD).
    """

    delta1: torch.Tensor
    delta2: torch.Tensor
    iterations: int
    residual: float
    converged: bool
    matvecs: int
    info: dict = field(default_factory=dict)


class _Counter:
    """Counts applications of the operators it wraps."""

    def __init__(self):
        self.count = 0

    def wrap(self, op: LinearOperator):
        def matvec(v: torch.Tensor) -> torch.Tensor:
            self.count += 1
            return op.matvec(v)
        return matvec


def _check_game(game) -> None:
    if not isinstance(game, LocalGame):
        raise TypeError(f"game must be an ipo_robust.optim.LocalGame, got {type(game).__name__}")


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_solver(solver, allowed: tuple[str, ...], rule: str) -> str:
    if solver not in allowed:
        raise ValueError(f"{rule}: solver must be one of {', '.join(map(repr, allowed))}, got {solver!r}")
    return solver


def simga_step(game: LocalGame, lr1: float, lr2: float) -> Step:
    """Simultaneous gradient ascent: delta_i = lr_i g_i (no interaction, reasoning depth 0)."""
    _check_game(game)
    lr1, lr2 = _check_positive("lr1", lr1), _check_positive("lr2", lr2)
    return Step(lr1 * game.g1, lr2 * game.g2, 0, float("nan"), True, 0, {"solver": "simga", "depth": 0})


def cgd_step(game: LocalGame, lr1: float, lr2: float, depth: int | None = None, solver: str = "auto",
             rtol: float = 1e-10, max_iter: int | None = None, x0: torch.Tensor | None = None,
             restart: int | None = None) -> Step:
    """Competitive gradient step: the Nash equilibrium of the bilinear local game (seed eq. (5)-(6)).

    game: the local game (g1, g2, D12, D21). lr1, lr2 > 0: step sizes (the players' regularisation
    1/lr_i). depth: None for full CGD; an int k >= 0 for the block Neumann series truncated after k
    terms, [d1; d2] = sum_{j=0..k} N^j [lr1 g1; lr2 g2] with N = [[0, lr1 D12], [lr2 D21, 0]]
    (k = 0: SimGA; k = 1: one-step look-ahead; costs 2k matvecs, no solve, solver ignored).

    solver (full CGD): "auto" = "cg" for a game declared zero-sum, "gmres" otherwise; "dense"
    materialises D12, D21 (tiny problems and tests). "cg" on a game not declared zero-sum is refused:
    only D21 = -D12^T makes the system symmetric positive definite.
    rtol, max_iter, restart: Krylov controls. x0: warm start for delta1 (p1,), e.g. the last step.
    """
    _check_game(game)
    lr1, lr2 = _check_positive("lr1", lr1), _check_positive("lr2", lr2)
    _check_solver(solver, CGD_SOLVERS, "cgd_step")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be None (full CGD) or an int >= 0, got {depth!r}")
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != game.g1.shape):
        raise ValueError(f"x0 must be a warm start for delta1 of shape {tuple(game.g1.shape)}, got "
                         f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    g1, g2 = game.g1, game.g2
    counter = _Counter()
    D12, D21 = counter.wrap(game.D12), counter.wrap(game.D21)

    if depth is not None:
        # truncated block Neumann series of d = c + N d, c = [lr1 g1; lr2 g2]
        term1, term2 = lr1 * g1, lr2 * g2
        delta1, delta2 = term1, term2
        for _ in range(depth):
            term1, term2 = lr1 * D12(term2), lr2 * D21(term1)
            delta1, delta2 = delta1 + term1, delta2 + term2
        return Step(delta1, delta2, depth, float("nan"), True, counter.count,
                    {"solver": "neumann", "depth": depth})

    if solver == "cg" and not game.zero_sum:
        raise ValueError("cgd_step: solver='cg' needs a game declared zero-sum (D21 = -D12^T, so the "
                         "system is symmetric positive definite); this game is general-sum, where "
                         "I - lr1 lr2 D12 D21 is not symmetric. Use solver='gmres' or 'auto'.")
    if solver == "auto":
        solver = "cg" if game.zero_sum else "gmres"

    rhs = lr1 * (g1 + lr2 * D12(g2))  # eq. (6) with the derivation's lr2 in the cross term

    def schur_matvec(v: torch.Tensor) -> torch.Tensor:
        # (I - lr1 lr2 D12 D21) v; for zero-sum D21 = -D12^T this is (I + lr1 lr2 D12 D12^T) v, SPD
        return v - (lr1 * lr2) * D12(D21(v))

    if solver == "dense":
        D12_dense = game.D12.to_dense(g1)
        D21_dense = game.D21.to_dense(g1)
        counter.count += game.p1 + game.p2
        system = torch.eye(game.p1, dtype=g1.dtype, device=g1.device) - lr1 * lr2 * D12_dense @ D21_dense
        delta1 = torch.linalg.solve(system, rhs)
        iterations, residual, converged = 0, 0.0, True
    else:
        solve = conjugate_gradient if solver == "cg" else gmres
        kwargs = {"restart": restart} if solver == "gmres" else {}
        result = solve(schur_matvec, rhs, x0=x0, rtol=rtol, max_iter=max_iter, **kwargs)
        delta1, iterations, residual, converged = result.x, result.iterations, result.residual, result.converged
    delta2 = lr2 * (g2 + D21(delta1))  # eq. (6), second player
    return Step(delta1, delta2, iterations, residual, converged, counter.count,
                {"solver": solver, "depth": None})


def scaled_cgd_step(game: LocalGame, scale1: torch.Tensor, scale2: torch.Tensor, **cgd_options) -> Step:
    """CGD with diagonal step sizes: the solution of d1 = P1 (g1 + D12 d2), d2 = P2 (g2 + D21 d1), with
    P_i = diag(scale_i), scale_i > 0 elementwise (module docstring).

    Computed as plain CGD at lr 1 in the coordinates u_i = P_i^-1/2 d_i: the game there has
    g~_i = P_i^1/2 g_i, D~12 = P1^1/2 D12 P2^1/2, D~21 = P2^1/2 D21 P1^1/2, which keeps D~21 = -D~12^T for
    a zero-sum game (so CG still applies), and d_i = P_i^1/2 u_i. ``cgd_options``: as :func:`cgd_step`
    (``depth``, ``solver``, ``rtol``, ``max_iter``, ...); ``x0`` is a warm start for d1 in parameter units.
    """
    _check_game(game)
    roots = []
    for name, scale, g in (("scale1", scale1, game.g1), ("scale2", scale2, game.g2)):
        if not isinstance(scale, torch.Tensor) or scale.shape != g.shape:
            raise ValueError(f"{name} must be a tensor of shape ({g.numel()},), got "
                             f"{tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__}")
        if not bool(torch.isfinite(scale).all()) or not bool((scale > 0).all()):
            raise ValueError(f"{name} must be finite and > 0 everywhere")
        roots.append(scale.to(g).sqrt())
    r1, r2 = roots
    scaled = LocalGame(
        r1 * game.g1, r2 * game.g2,
        LinearOperator(lambda v: r1 * game.D12.matvec(r2 * v), (game.p1, game.p2)),
        LinearOperator(lambda v: r2 * game.D21.matvec(r1 * v), (game.p2, game.p1)),
        zero_sum=game.zero_sum, info=game.info)
    if cgd_options.get("x0") is not None:
        cgd_options = {**cgd_options, "x0": cgd_options["x0"] / r1}
    step = cgd_step(scaled, 1.0, 1.0, **cgd_options)
    step.delta1, step.delta2 = r1 * step.delta1, r2 * step.delta2
    return step
