"""Built-in optimizers on the local game: SimGA, look-ahead, CGD (IPO) and their natural variants.

Each reads top to bottom against the seed (Nema & Ravindran, 2021); both players maximise.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipo_robust.errors import ConfigError
from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import (
    Hyperparameters,
    hyperparameter,
    non_negative_int_or_none,
    one_of,
    positive,
    positive_int_or_none,
    positive_or_none,
)
from ipo_robust.optim import LinearOperator, LocalGame, Step, cgd_step, natural_cgd_step
from ipo_robust.optim.optimizer import CriticConfig, NaturalConfig, TwoAgentOptimizer, default_rtol


@dataclass
class GradientConfig(CriticConfig):
    OWNER = "optimizer"
    lr1: float = hyperparameter(0.1, positive, "learning rate of player 1")
    lr2: float = hyperparameter(0.1, positive, "learning rate of player 2")


def _lr_alias(config: type[Hyperparameters], kwargs: dict) -> dict:
    """``lr=x`` sets both players' learning rates (unless given separately); a bad ``lr`` is named as such."""
    if "lr" in kwargs:
        lr = kwargs.pop("lr")
        allowed = positive(lr)
        if allowed is not None:
            raise ConfigError(f"{config.owner()}: lr (both players' learning rates) must be {allowed}, got {lr!r}")
        kwargs.setdefault("lr1", lr)
        kwargs.setdefault("lr2", lr)
    return kwargs


class SimGA(TwoAgentOptimizer):
    """Simultaneous (independent) gradient ascent: delta_i = lr_i g_i (seed eq. 11)."""

    @dataclass
    class Config(GradientConfig):
        OWNER = "optimizer 'simga'"

    def __init__(self, agents=None, **hyperparameters):
        super().__init__(agents, **_lr_alias(self.Config, hyperparameters))

    def update(self, game: LocalGame) -> Step:
        return cgd_step(game, self.config.lr1, self.config.lr2, depth=0)


class CGD(TwoAgentOptimizer):
    """Competitive gradient descent / IPO update: the Nash equilibrium of the bilinear local game.

    delta1 = lr1 (I - lr1 lr2 D12 D21)^-1 (g1 + lr2 D12 g2),  delta2 = lr2 (g2 + D21 delta1)
    (seed eq. 10 with the derivation's lr2 in the cross term). ``depth=k`` truncates the series after
    k look-ahead terms (0 = SimGA, 1 = one-step look-ahead, None = full CGD).
    """

    interactive = True

    @dataclass
    class Config(GradientConfig):
        OWNER = "optimizer 'cgd'"
        depth: int | None = hyperparameter(None, non_negative_int_or_none, "reasoning depth; None = full CGD")
        solver: str = hyperparameter("auto", one_of("auto", "cg", "gmres", "dense"), "linear solver")
        rtol: float | None = hyperparameter(None, positive_or_none,
                                            "solver tolerance; None: 1e-10 in float64, 1e-6 in float32")
        max_iter: int | None = hyperparameter(100, positive_int_or_none,
                                             "solver iteration cap (a float32 solve can stall short of rtol)")

    def __init__(self, agents=None, **hyperparameters):
        super().__init__(agents, **_lr_alias(self.Config, hyperparameters))
        self._warm_start = None

    def update(self, game: LocalGame) -> Step:
        c = self.config
        return cgd_step(game, c.lr1, c.lr2, depth=c.depth, solver=c.solver, rtol=c.rtol or default_rtol(game.g1),
                        max_iter=c.max_iter)


class LookAhead(CGD):
    """One-step look-ahead: CGD's series truncated after one term (``cgd`` with depth=1)."""

    @dataclass
    class Config(CGD.Config):
        OWNER = "optimizer 'lookahead'"
        depth: int | None = hyperparameter(1, non_negative_int_or_none, "reasoning depth")


class NaturalCGD(TwoAgentOptimizer):
    """Natural IPO (seed eq. 19): [[l1 F1, -D12], [-D21, l2 F2]] [d1; d2] = [g1; g2], each player's
    step scaled so that its quadratic KL model 0.5 d_i^T F_i d_i equals ``kl``."""

    interactive = True
    needs_fisher = True

    @dataclass
    class Config(NaturalConfig):
        OWNER = "optimizer 'ncgd'"
        lam1: float = hyperparameter(1.0, positive, "Fisher weight of player 1 (lambda_1)")
        lam2: float = hyperparameter(1.0, positive, "Fisher weight of player 2 (lambda_2)")

    def update(self, game: LocalGame) -> Step:
        c = self.config
        return natural_cgd_step(game, kl=c.kl, lam1=c.lam1, lam2=c.lam2, damping=c.damping,
                                rtol=c.rtol or default_rtol(game.g1),
                                max_iter=c.max_iter)


class NPG(NaturalCGD):
    """Independent natural policy gradient (seed eq. 20): natural CGD with the mixed terms dropped."""

    interactive = False

    @dataclass
    class Config(NaturalCGD.Config):
        OWNER = "optimizer 'npg'"

    def update(self, game: LocalGame) -> Step:
        D12 = LinearOperator.zeros(game.p1, game.p2, like=game.g1)
        D21 = LinearOperator.zeros(game.p2, game.p1, like=game.g1)
        independent = LocalGame(game.g1, game.g2, D12, D21, game.F1, game.F2, game.zero_sum)
        return super().update(independent)


class IPOVPG(CGD):
    """IPO-VPG (seed sec. 4.1, eq. 10): the CGD update on the sample local game of eqs. (12)-(13)."""

    @dataclass
    class Config(CGD.Config):
        OWNER = "optimizer 'ipo-vpg'"


class IPONPG(NaturalCGD):
    """IPO-NPG (seed sec. 4.2, eq. 19): natural CGD on the sample local game with KL Fisher operators."""

    @dataclass
    class Config(NaturalCGD.Config):
        OWNER = "optimizer 'ipo-npg'"


@hookimpl
def register_optimizers(register):
    register("simga", SimGA)
    register("cgd", CGD)
    register("lookahead", LookAhead)
    register("ncgd", NaturalCGD)
    register("npg", NPG)
    # The IPO names of the seed: the same update rules fed by the sample estimator of eqs. (12)-(13)
    register("ipo-vpg", IPOVPG)
    register("ipo-npg", IPONPG)
