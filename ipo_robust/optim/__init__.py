"""Competitive gradient core: linear operators, the local game, Krylov solvers and update rules."""

from ipo_robust.optim.krylov import ConvergenceWarning, SolveResult, conjugate_gradient, gmres
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator, as_operator
from ipo_robust.optim.update import Step, cgd_step, natural_cgd_step, simga_step

__all__ = [
    "ConvergenceWarning",
    "LinearOperator",
    "LocalGame",
    "SolveResult",
    "Step",
    "as_operator",
    "cgd_step",
    "conjugate_gradient",
    "gmres",
    "natural_cgd_step",
    "simga_step",
]
