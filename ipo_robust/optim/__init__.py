"""Competitive gradient core: linear operators, the local game, Krylov solvers and update rules."""

from ipo_robust.optim.krylov import (
    ConvergenceWarning,
    ReachableTolerance,
    SolveResult,
    conjugate_gradient,
    gmres,
    reachable_rtol,
)
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.natural import natural_cgd_solve, natural_cgd_step
from ipo_robust.optim.operators import LinearOperator, as_operator
from ipo_robust.optim.update import Step, cgd_step, scaled_cgd_step, simga_step

__all__ = [
    "ConvergenceWarning",
    "LinearOperator",
    "LocalGame",
    "ReachableTolerance",
    "SolveResult",
    "Step",
    "as_operator",
    "cgd_step",
    "conjugate_gradient",
    "gmres",
    "natural_cgd_solve",
    "natural_cgd_step",
    "reachable_rtol",
    "scaled_cgd_step",
    "simga_step",
]
