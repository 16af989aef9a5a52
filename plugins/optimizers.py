"""Built-in optimizers on the local game: SimGA, look-ahead, CGD (IPO) and their natural variants.

Each is the sample estimator of seed eqs. (12)-(14) (:class:`~ipo_robust.optim.sample.SampleEstimator`)
joined to one update rule (:mod:`ipo_robust.optim.rules`), steps applied as they are; both players maximise.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import (
    hyperparameter,
    non_negative_int_or_none,
    one_of,
    positive,
    positive_int_or_none,
    positive_or_none,
)
from ipo_robust.optim.optimizer import (
    Capabilities,
    GradientConfig,
    GradientOptimizer,
    NaturalConfig,
    Optimizer,
)
from ipo_robust.optim.rules import CGDRule, NaturalRule, Uncoupled


class SimGA(GradientOptimizer):
    """Simultaneous (independent) gradient ascent: delta_i = lr_i g_i (seed eq. 11)."""

    Config = GradientConfig
    capabilities = Capabilities(opponent_models=True)

    def make_rule(self):
        return CGDRule(self.config.lr1, self.config.lr2, depth=0)


@dataclass
class CGDConfig(GradientConfig):
    depth: int | None = hyperparameter(None, non_negative_int_or_none, "reasoning depth; None = full CGD")
    solver: str = hyperparameter("auto", one_of("auto", "cg", "gmres", "dense"), "linear solver")
    rtol: float | None = hyperparameter(None, positive_or_none,
                                        "solver tolerance; None: 1e-10 in float64, 1e-6 in float32")
    max_iter: int | None = hyperparameter(100, positive_int_or_none,
                                          "solver iteration cap (a float32 solve can stall short of rtol)")


class CGD(GradientOptimizer):
    """Competitive gradient descent / IPO-VPG (seed sec. 4.1, eq. 10): the Nash equilibrium of the bilinear
    local game, delta1 = lr1 (I - lr1 lr2 D12 D21)^-1 (g1 + lr2 D12 g2), delta2 = lr2 (g2 + D21 delta1)
    (the derivation's lr2 in the cross term). ``depth=k`` truncates the series after k look-ahead terms
    (0 = SimGA, 1 = one-step look-ahead, None = full CGD)."""

    Config = CGDConfig
    capabilities = Capabilities(interactive=True, opponent_models=True)

    def make_rule(self):
        c = self.config
        return CGDRule(c.lr1, c.lr2, depth=c.depth, solver=c.solver, rtol=c.rtol, max_iter=c.max_iter)


@dataclass
class LookAheadConfig(CGDConfig):
    depth: int | None = hyperparameter(1, non_negative_int_or_none, "reasoning depth")


class LookAhead(CGD):
    """One-step look-ahead: CGD's series truncated after one term (``cgd`` with depth=1)."""

    Config = LookAheadConfig


@dataclass
class NaturalCGDConfig(NaturalConfig):
    lam1: float = hyperparameter(1.0, positive, "Fisher weight of player 1 (lambda_1); with kl_split='joint' "
                                 "only the ratio lam1 : lam2 matters")
    lam2: float = hyperparameter(1.0, positive, "Fisher weight of player 2 (lambda_2)")


class NaturalCGD(Optimizer):
    """Natural IPO / IPO-NPG (seed sec. 4.2, eq. 19): [[l1 F1, -D12], [-D21, l2 F2]] [d1; d2] = [g1; g2].

    ``kl_split="joint"`` (default, the seed after eq. 20): l1 = s lam1, l2 = s lam2 with the common s that
    puts the pair's joint quadratic KL 1/2 (d1' F1 d1 + d2' F2 d2) at ``kl``; the step is eq. (19)'s pair at
    those lambdas (``optim/lam1``, ``optim/lam2`` in the metrics). ``kl_split="per-player"``: eq. (19) at
    (lam1, lam2), each player's direction rescaled to its own quadratic KL = ``kl``.
    """

    Config = NaturalCGDConfig
    capabilities = Capabilities(interactive=True, fisher=True, opponent_models=True)

    def make_rule(self):
        c = self.config
        return NaturalRule(c.kl, c.lam1, c.lam2, damping=c.damping, rtol=c.rtol, max_iter=c.max_iter,
                           kl_split=c.kl_split)


class NPG(Optimizer):
    """Independent natural policy gradient (seed eq. 20): natural CGD with the mixed terms dropped.

    ``kl_split="joint"``: d_i = F_i^-1 g_i / (s lam_i), one s for both so that the joint quadratic KL is
    ``kl`` (closed form, one solve); ``"per-player"``: each player's own NPG step at KL = ``kl``.
    """

    Config = NaturalCGDConfig
    capabilities = Capabilities(fisher=True, opponent_models=True)

    def make_rule(self):
        c = self.config
        return Uncoupled(NaturalRule(c.kl, c.lam1, c.lam2, damping=c.damping, rtol=c.rtol, max_iter=c.max_iter,
                                     kl_split=c.kl_split, uncoupled=True))


@hookimpl
def register_optimizers(register):
    register("simga", SimGA)
    register("cgd", CGD)
    register("lookahead", LookAhead)
    register("ncgd", NaturalCGD)
    register("npg", NPG)
    # The IPO names of the seed: the same update rules fed by the sample estimator of eqs. (12)-(13)
    register("ipo-vpg", CGD)
    register("ipo-npg", NaturalCGD)
