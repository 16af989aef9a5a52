"""LOLA: Learning with Opponent-Learning Awareness (Foerster et al. 2018).

Player 1 maximises its objective *after* the opponent's naive learning step,

    J1(theta1, theta2 + lr2 g2(theta1, theta2)),        g2 = grad_2 J2,

differentiating through the opponent's step. To first order in lr2 (both players maximise; D12 =
d1 d2^T J1 (p1 x p2), D21 = d2 d1^T J2 (p2 x p1), so d g2 / d theta1 = D21 and d g1 / d theta2 = D12):

    d/dtheta1 J1(theta1, theta2 + lr2 g2)
        = g1(theta1, theta2 + lr2 g2) + lr2 D21^T grad_2 J1(theta1, theta2 + lr2 g2)
        = g1 + lr2 D12 g2  +  lr2 D21^T grad_2 J1  +  O(lr2^2)
               look-ahead      shaping

    delta1 = lr1 (g1 + lr2 D12 g2 + lr2 D21^T grad_2 J1)
    delta2 = lr2 (g2 + lr1 D21 g1 + lr1 D12^T grad_1 J2)     (the same with the roles exchanged)

The *shaping* term lr2 D21^T grad_2 J1 is what Foerster et al. print as the LOLA rule (their eq. 4,
which drops the look-ahead term by treating grad_2 J1 as constant in theta1); the look-ahead term
lr2 D12 g2 alone is the one-step look-ahead of Zhang & Lesser (2010), the ``lookahead`` optimizer
(CGD truncated at depth 1). Letcher et al. (2019, "Stable Opponent Shaping") write LOLA as look-ahead
plus shaping, the full first-order derivative above; that is the default here (``shaping_only=False``),
and it is what the test checks against autograd of the look-ahead objective. ``shaping_only=True``
gives the rule as printed by Foerster et al.

What the local game lacks. A LocalGame holds g1, g2, D12, D21 but not the cross gradients grad_2 J1 and
grad_1 J2. LOLA reads them from ``game.info["grad2_J1"]`` and ``game.info["grad1_J2"]``; for a game
declared zero-sum they are -g2 and -g1. ``local_game(batch)`` adds them by the score-function estimator
of eq. (12) with the players' rewards swapped (unbiased, like g_i); :func:`exact_lola_game` adds them
by autograd on a :class:`~ipo_robust.envs.games.DifferentiableGame`. The transpose products D21^T,
D12^T use the operators' ``rmatvec`` (every estimator and exact game provides it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import boolean, hyperparameter
from ipo_robust.optim import LocalGame, Step
from ipo_robust.optim.estimators import estimate_local_game
from ipo_robust.optim.optimizer import Capabilities, GradientConfig, GradientOptimizer
from ipo_robust.optim.rules import UpdateRule
from ipo_robust.optim.sample import SampleEstimator

CROSS_KEYS = ("grad2_J1", "grad1_J2")


def cross_gradients(game: LocalGame) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_2 J1 (p2,), grad_1 J2 (p1,)) from ``game.info``, or -g2, -g1 for a zero-sum game."""
    info = game.info or {}
    if all(key in info for key in CROSS_KEYS):
        h2, h1 = info["grad2_J1"], info["grad1_J2"]
    elif game.zero_sum:
        h2, h1 = -game.g2, -game.g1  # J1 = -J2
    else:
        raise ValueError("optimizer 'lola' needs the cross gradients grad_2 J1 and grad_1 J2, which a general-sum "
                         "LocalGame does not hold: put them in game.info['grad2_J1'] and game.info['grad1_J2'] "
                         "(exact games: ipo_robust.plugins.lola.exact_lola_game; samples: LOLA.local_game(batch))")
    if h2.shape != game.g2.shape or h1.shape != game.g1.shape:
        raise ValueError(f"cross gradients have shapes {tuple(h2.shape)} (grad2_J1) and {tuple(h1.shape)} "
                         f"(grad1_J2); expected {tuple(game.g2.shape)} and {tuple(game.g1.shape)}")
    return h2, h1


def lola_step(game: LocalGame, lr1: float, lr2: float, shaping_only: bool = False) -> Step:
    """Both players' LOLA steps on a local game carrying the cross gradients (module docstring)."""
    g1, g2 = game.g1, game.g2
    grad2_J1, grad1_J2 = cross_gradients(game)
    for name, op in (("D12", game.D12), ("D21", game.D21)):
        if op.rmatvec is None:
            raise ValueError(f"optimizer 'lola' needs the transpose product of {name} (LinearOperator.rmatvec); "
                             "this local game's operator has none")
    shaping1 = game.D21.rmatvec(grad2_J1)  # D21^T grad_2 J1 (p1,)
    shaping2 = game.D12.rmatvec(grad1_J2)  # D12^T grad_1 J2 (p2,)
    matvecs = 2
    correction1, correction2 = shaping1, shaping2
    if not shaping_only:
        correction1 = correction1 + game.D12.matvec(g2)  # look-ahead: d g1/d theta2 . (the step g2)
        correction2 = correction2 + game.D21.matvec(g1)
        matvecs += 2
    delta1 = lr1 * (g1 + lr2 * correction1)
    delta2 = lr2 * (g2 + lr1 * correction2)
    info = {"solver": "lola", "shaping_norm1": float(shaping1.norm()), "shaping_norm2": float(shaping2.norm()),
            "shaping_only": shaping_only}
    return Step(delta1, delta2, 0, float("nan"), True, matvecs, info)


def exact_lola_game(game, theta1, theta2) -> LocalGame:
    """The exact local game of a DifferentiableGame (``game.local_game``) plus the cross gradients
    grad_2 J1, grad_1 J2 by autograd of ``game.values``, in ``info``."""
    local = game.local_game(theta1, theta2)
    t1 = torch.as_tensor(theta1, dtype=local.g1.dtype).detach().clone().requires_grad_(True)
    t2 = torch.as_tensor(theta2, dtype=local.g2.dtype).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        J1, J2 = game.values(t1, t2)
        (grad2_J1,) = torch.autograd.grad(J1, t2, retain_graph=True, allow_unused=True)
        (grad1_J2,) = torch.autograd.grad(J2, t1, allow_unused=True)
    local.info["grad2_J1"] = torch.zeros_like(t2) if grad2_J1 is None else grad2_J1.detach()
    local.info["grad1_J2"] = torch.zeros_like(t1) if grad1_J2 is None else grad1_J2.detach()
    return local


class CrossGradientEstimator(SampleEstimator):
    """The sample local game plus grad_2 J1 and grad_1 J2 by the score-function estimator of eq. (12) on the
    batch with the players' rewards swapped (``info["grad1_J2"]``, ``info["grad2_J1"]``)."""

    def __call__(self, batch, policies, opponent_model=None) -> LocalGame:
        game = super().__call__(batch, policies, opponent_model)
        if not game.zero_sum:
            swapped = dataclasses.replace(batch, rew1=batch.rew2, rew2=batch.rew1)
            crossed = estimate_local_game(swapped, *policies, gamma=self.gamma, zero_sum=False, method=self.method)
            game.info["grad1_J2"], game.info["grad2_J1"] = crossed.g1, crossed.g2  # swapped rewards
        return game


@dataclass(frozen=True)
class LOLARule(UpdateRule):
    """:func:`lola_step` with fixed learning rates."""

    lr1: float
    lr2: float
    shaping_only: bool = False

    def __call__(self, game: LocalGame) -> Step:
        return lola_step(game, self.lr1, self.lr2, shaping_only=self.shaping_only)


@dataclass
class LOLAConfig(GradientConfig):
    shaping_only: bool = hyperparameter(False, boolean,
                                        "drop the look-ahead term lr2 D12 g2 (the rule as printed by "
                                        "Foerster et al. 2018); False: the full first-order derivative")


class LOLA(GradientOptimizer):
    """LOLA for both players (Foerster et al. 2018); see the module docstring."""

    Config = LOLAConfig
    capabilities = Capabilities(interactive=True)
    no_opponent_model_reason = "its cross gradients grad_2 J1, grad_1 J2 read both true policies"

    def make_estimator(self):
        return CrossGradientEstimator.from_config(self.config)

    def make_rule(self):
        return LOLARule(self.config.lr1, self.config.lr2, self.config.shaping_only)


@hookimpl
def register_optimizers(register):
    register("lola", LOLA)
