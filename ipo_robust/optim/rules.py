"""Update rules as small values: a LocalGame in, a Step out (the pure functions of :mod:`.update`, configured).

An optimizer holds one rule, built once from its hyperparameters; :class:`~ipo_robust.optim.views.PerPlayerRule`
wraps it when an opponent model is attached. A rule may say which of its Step's diagnostics become metrics
(``metrics(step)``, namespaced ``optim/``).

- :class:`CGDRule`: full CGD / IPO (seed eq. 10) or its depth-k truncation (k = 0: SimGA, eq. 11).
- :class:`NaturalRule`: natural CGD (seed eq. 19) under the KL budget (eq. 20).
- :class:`Uncoupled`: any rule with the mixed Hessians dropped (independent learners: SimGA, NPG).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ipo_robust.optim.krylov import reachable_rtol
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.natural import natural_cgd_step
from ipo_robust.optim.operators import LinearOperator
from ipo_robust.optim.update import Step, cgd_step


def default_rtol(like: torch.Tensor) -> float:
    """The Krylov tolerance of a rule whose ``rtol`` is None, for a solve in ``like``'s dtype.

    1e-10 in float64, 1e-6 in float32, as a :class:`~ipo_robust.optim.krylov.ReachableTolerance`: a solve
    whose true residual stagnates above it at the rounding floor of the operator at hand (the sample
    estimators' sums over thousands of samples round far above eps ||A|| ||x||) stops there and counts as
    converged, provided the floor is below sqrt(eps) (:mod:`ipo_robust.optim.krylov`). An rtol the user
    sets is held exactly.
    """
    return reachable_rtol(like.dtype)


class UpdateRule:
    """Base of the rules: ``rule(game) -> Step``; ``metrics(step)`` lists rule-specific diagnostics."""

    def __call__(self, game: LocalGame) -> Step:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(game)")

    def metrics(self, step: Step) -> dict:
        return {}


@dataclass(frozen=True)
class CGDRule(UpdateRule):
    """delta1 = lr1 (I - lr1 lr2 D12 D21)^-1 (g1 + lr2 D12 g2), delta2 = lr2 (g2 + D21 delta1) (seed eq. 10,
    with the derivation's lr2 in the cross term); ``depth=k`` truncates the series after k look-ahead terms
    (0 = SimGA, 1 = one-step look-ahead, None = full CGD). See :func:`~ipo_robust.optim.update.cgd_step`."""

    lr1: float
    lr2: float
    depth: int | None = None
    solver: str = "auto"
    rtol: float | None = None
    max_iter: int | None = 100

    def __call__(self, game: LocalGame) -> Step:
        if self.depth == 0:
            return cgd_step(game, self.lr1, self.lr2, depth=0)  # delta_i = lr_i g_i, eq. (11)
        return cgd_step(game, self.lr1, self.lr2, depth=self.depth, solver=self.solver,
                        rtol=self.rtol or default_rtol(game.g1), max_iter=self.max_iter)


@dataclass(frozen=True)
class NaturalRule(UpdateRule):
    """[[l1 F1, -D12], [-D21, l2 F2]] [d1; d2] = [g1; g2] (seed eq. 19), sized to the KL budget ``kl``
    (joint, the seed after eq. 20, or per player). See :func:`~ipo_robust.optim.update.natural_cgd_step`."""

    kl: float
    lam1: float = 1.0
    lam2: float = 1.0
    damping: float = 1e-4
    rtol: float | None = None
    max_iter: int | None = 100
    kl_split: str = "joint"
    uncoupled: bool = False  # D12 = D21 = 0 (npg): the joint budget has a closed form

    def __call__(self, game: LocalGame) -> Step:
        return natural_cgd_step(game, kl=self.kl, lam1=self.lam1, lam2=self.lam2, damping=self.damping,
                                rtol=self.rtol or default_rtol(game.g1), max_iter=self.max_iter,
                                kl_split=self.kl_split, uncoupled=self.uncoupled)

    def metrics(self, step: Step) -> dict:
        """``optim/lam1``, ``optim/lam2`` (eq. 19's weights of the pair; joint split only), ``optim/kl_model``
        (its joint quadratic KL) and ``optim/lam_solves``. With an opponent model each player's lambda comes
        from its own view."""
        if "view1" in step.info:  # the per-player rule of an opponent model: d1 from view 1, d2 from view 2
            views = (step.info["view1"], step.info["view2"])
            metrics = {f"optim/lam{i}": view[f"lam{i}"] for i, view in enumerate(views, 1) if f"lam{i}" in view}
            if all("lam_solves" in view for view in views):
                metrics["optim/lam_solves"] = sum(view["lam_solves"] for view in views)
            return metrics
        names = {"lam1": "optim/lam1", "lam2": "optim/lam2", "kl_model": "optim/kl_model",
                 "lam_solves": "optim/lam_solves"}
        return {metric: step.info[key] for key, metric in names.items() if key in step.info}


def uncoupled(game: LocalGame) -> LocalGame:
    """The same local game with D12 = D21 = 0: what an independent learner sees."""
    D12 = LinearOperator.zeros(game.p1, game.p2, like=game.g1)
    D21 = LinearOperator.zeros(game.p2, game.p1, like=game.g1)
    return LocalGame(game.g1, game.g2, D12, D21, game.F1, game.F2, game.zero_sum)


@dataclass(frozen=True)
class Uncoupled(UpdateRule):
    """``rule`` applied to the game with its mixed Hessians dropped (independent learners)."""

    rule: UpdateRule

    def __call__(self, game: LocalGame) -> Step:
        return self.rule(uncoupled(game))

    def metrics(self, step: Step) -> dict:
        return self.rule.metrics(step)
