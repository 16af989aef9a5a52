"""Trust-region optimizers: independent TRPO and IPO-TRPO (seed sec. 4.2, eqs. 16-19).

TRPO is the natural rule plus its line search: each optimizer is the sample estimator with the Fisher
operators (eqs. 12-13), an update rule, and a backtracking line search as its acceptance
(:mod:`ipo_robust.optim.trust_region`: the true KL, the surrogates, the own-move gains A_i).

``trpo`` (Schulman et al. 2015, "Trust Region Policy Optimization") for each player separately:

    s_i = (F_i + damping I)^-1 g_i                      conjugate gradient on the KL-Hessian Fisher
    delta_i = sqrt(2 kl / s_i^T F_i s_i) s_i           the largest step of the quadratic KL model
    theta_i <- theta_i + beta^k delta_i                 the smallest k with true KL_i <= kl and the own
                                                        surrogate L_i improved (PlayerLineSearch)

It is per-player by definition (``kl_split`` is "per-player" only): each player's budget, search and
acceptance are its own; the opponent enters only through the sampled actions.

``ipo-trpo`` (seed sec. 4.2): the pair (d1, d2) is the natural-CGD step of eq. (19) on the sample local game
(g1, g2, D12, D21, F1, F2), at the lambda whose pair has joint quadratic KL = ``kl`` (``kl_split="joint"``,
lam1 : lam2 kept) or each direction at its own KL = ``kl`` ("per-player"), and the line search acts on that
*pair*, applied together (PairLineSearch): lambda grows and eq. (19) is re-solved ('joint') or the pair is
scaled by beta^k ('per-player') until the true KL is within budget and both own-move gains A_i >= 0 under
the ``surrogate`` ("competitive": both players moved, the default; "own": the opponent held fixed). The pair
applied is eq. (19)'s solution at the reported lambda, or zero for both: a player is never moved against an
opponent move that was then rejected. With the mixed terms set to zero, the per-player split and "own",
ipo-trpo takes trpo's steps whenever trpo accepts both players at the same k.

``update(game)`` returns the un-line-searched pair (eq. 19 at the budget's lambda), so both optimizers also
run on exact games.

Metrics (``optim/...``): ``lam1``, ``lam2`` (eq. 19's weights of the applied pair; inf when the pair was
rejected, NaN for an accepted per-player pair; ipo-trpo), ``kl`` (true joint KL of the applied pair), ``kl1``,
``kl2``, ``kl_model`` (its joint quadratic KL; ipo-trpo), ``backtracks1``/``backtracks2`` and
``accepted1``/``accepted2`` (the applied fraction), ``surrogate_improvement1``/``2`` (the own-surrogate gain
for trpo, A_1, A_2 for ipo-trpo), ``step_norm1``/``2``, ``grad_norm1``/``2``, the solver's
``iterations``/``matvecs`` over every solve.

Opponent models (seed sec. 5; :mod:`ipo_robust.opponent`). ``ipo-trpo`` accepts ``opponent_model=``: the
estimator builds each player's view of the sample local game at (theta_i, theta_j_hat), the rule solves
eq. (19) in each view, and each player runs the pair line search in its own view (``player_step``): its
policy moved by d_i and the model's policy by the forecast d_j_hat, together. The joint KL is player i's own
KL plus the model's, the gains are read from the batch with the model's ratio at the actions the opponent
actually took; nothing of the opponent's true parameters. Player i keeps d_i of its view's accepted pair (or
stays, if its view rejected the pair); with ``oracle`` both views are the true game and this is the step
without a model. ``trpo`` refuses a model: its update never uses the opponent's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import hyperparameter, one_of, positive
from ipo_robust.optim import LocalGame, Step, conjugate_gradient
from ipo_robust.optim.optimizer import Capabilities, solve_metrics
from ipo_robust.optim.rules import NaturalRule, UpdateRule, default_rtol
from ipo_robust.optim.trust_region import (
    PairLineSearch,
    PlayerLineSearch,
    TrustRegionConfig,
    TrustRegionOptimizer,
    applied_pair,
    pair_metrics,
    set_parameters,
)
from ipo_robust.optim.views import player_steps, player_views, view_policies


# --------------------------------------------------------------------------------------------------
# trpo
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TRPODirections(UpdateRule):
    """Each player's natural gradient by CG on its own F_i + damping I, scaled to 1/2 d^T F d = kl: the
    per-player natural step on the uncoupled game (D12, D21 unused; Schulman et al. 2015, appendix C)."""

    kl: float
    damping: float = 1e-4
    rtol: float | None = None
    max_iter: int | None = 100

    def __call__(self, game: LocalGame) -> Step:
        if game.F1 is None or game.F2 is None:
            raise ValueError("TRPO's directions need the Fisher operators F1, F2 in the local game (build it "
                             "with fisher=True)")
        deltas, iterations, residual, converged, matvecs = [], 0, 0.0, True, 0
        info = {"solver": "cg", "kl": self.kl}
        for i, (g, F) in enumerate(((game.g1, game.F1), (game.g2, game.F2)), start=1):
            def damped(v, F=F):
                return F.matvec(v) + self.damping * v

            result = conjugate_gradient(damped, g, rtol=self.rtol or default_rtol(g), max_iter=self.max_iter)
            s = result.x
            sFs = float(s @ damped(s))
            scale = math.sqrt(2.0 * self.kl / sFs) if sFs > 0 else 0.0  # max step sqrt(2 delta / s^T F s)
            deltas.append(scale * s)
            iterations += result.iterations
            residual = max(residual, float(result.residual))
            converged = converged and bool(result.converged)
            matvecs += result.matvecs + 1
            info[f"kl{i}_before"], info[f"scale{i}"] = 0.5 * sFs, scale
        return Step(deltas[0], deltas[1], iterations, residual, converged, matvecs, info)


@dataclass
class TRPOConfig(TrustRegionConfig):
    kl_split: str = hyperparameter("per-player", one_of("per-player"),
                                   "independent TRPO is per-player by definition: each player's step at its "
                                   "own KL = kl, its own line search")


class TRPO(TrustRegionOptimizer):
    """Independent TRPO for both players (Schulman et al. 2015); see the module docstring."""

    Config = TRPOConfig
    capabilities = Capabilities(fisher=True)
    no_opponent_model_reason = ("independent TRPO never uses the opponent's parameters in its update (each "
                                "player's natural gradient g_i, Fisher F_i, own surrogate and KL are its own; the "
                                "opponent enters only through the sampled actions), so a model would change "
                                "nothing; drop opponent_model, or use 'ipo-trpo', whose anticipation of the "
                                "opponent does go through it")

    def make_rule(self) -> UpdateRule:
        c = self.config
        return TRPODirections(c.kl, c.damping, c.rtol, c.max_iter)

    def make_line_search(self) -> PlayerLineSearch:
        return PlayerLineSearch.from_config(self.config)

    def accept(self, step: Step, game: LocalGame, batch) -> tuple[Step, dict]:
        """Each player's own line search, the opponent held fixed; both accepted steps applied."""
        context = self.surrogate_context(batch, self._require_agents())
        deltas, gradients = (step.delta1, step.delta2), (game.g1, game.g2)
        search = [self.line_search(context, i, deltas[i], gradients[i]) for i in (0, 1)]
        applied = [search[i].fraction * deltas[i].to(context.theta[i]) for i in (0, 1)]
        for i in (0, 1):
            set_parameters(context.policies[i], context.theta[i] + applied[i])
        info = {
            **solve_metrics(step),
            "optim/grad_norm1": float(game.g1.norm()),
            "optim/grad_norm2": float(game.g2.norm()),
            "optim/kl": search[0].kl + search[1].kl,
        }
        for i, (fraction, backtracks, kl, improvement) in enumerate(search, start=1):
            info[f"optim/backtracks{i}"] = backtracks
            info[f"optim/accepted{i}"] = fraction
            info[f"optim/kl{i}"] = kl
            info[f"optim/surrogate_improvement{i}"] = improvement
            info[f"optim/step_norm{i}"] = float(fraction * deltas[i - 1].norm())
        return Step(*applied, step.iterations, step.residual, step.converged, step.matvecs, step.info), info


# --------------------------------------------------------------------------------------------------
# ipo-trpo
# --------------------------------------------------------------------------------------------------
@dataclass
class IPOTRPOConfig(TrustRegionConfig):
    lam1: float = hyperparameter(1.0, positive, "Fisher weight of player 1 (lambda_1); with kl_split='joint' "
                                 "only the ratio lam1 : lam2 matters")
    lam2: float = hyperparameter(1.0, positive, "Fisher weight of player 2 (lambda_2)")
    surrogate: str = hyperparameter("competitive", one_of("competitive", "own"),
                                    "line-search surrogate (ipo_robust.optim.trust_region)")


class IPOTRPO(TrustRegionOptimizer):
    """IPO-TRPO (seed sec. 4.2, eqs. 16-19): eq. (19)'s pair, then a line search on the pair applied together."""

    Config = IPOTRPOConfig
    capabilities = Capabilities(interactive=True, fisher=True, opponent_models=True)

    def make_rule(self) -> UpdateRule:
        c = self.config
        return NaturalRule(c.kl, c.lam1, c.lam2, damping=c.damping, rtol=c.rtol, max_iter=c.max_iter,
                           kl_split=c.kl_split)  # eq. (19) at the budget's lambda (seed, after eq. 20)

    def make_line_search(self) -> PairLineSearch:
        return PairLineSearch.from_config(self.config)

    def accept(self, step: Step, game: LocalGame, batch) -> tuple[Step, dict]:
        """The pair line search. Without a model one pair: both moves, or neither. With one, each player
        searches its own view's pair (both views' solutions are in ``step``) and keeps its half."""
        agents, views = self._require_agents(), player_views(game)
        if self.opponent_model is None:
            context = self.surrogate_context(batch, agents)
            searches = (self.line_search(game, step, context),)
            thetas = [context.theta[i] + searches[0].delta(i).to(context.theta[i]) for i in (0, 1)]
        else:
            pairs = player_steps(step)
            (theta1, search1), (theta2, search2) = (self._view_search(i, views[i], pairs[i], batch) for i in (0, 1))
            searches, thetas = (search1, search2), (theta1, theta2)
        for agent, theta in zip(agents, thetas, strict=True):
            set_parameters(agent, theta)
        applied = applied_pair(searches)
        info = pair_metrics(searches, applied)
        info.update({"optim/grad_norm1": float(views[0].g1.norm()), "optim/grad_norm2": float(views[1].g2.norm())})
        return applied, info

    def player_step(self, i: int, batch) -> tuple[torch.Tensor, tuple, Step, LocalGame]:
        """Player ``i``'s (0 or 1) move from its own view alone, without reading the opponent (unless the model
        is centralised, ``oracle``): the model observes the opponent's (obs, act) in ``batch`` (eq. 24), the
        view is the local game at (own theta, the model's theta_hat), eq. (19) on it gives the pair (d_i, the
        forecast d_j_hat), and the pair line search runs in that view (the model is restored afterwards).

        :return: (player i's new parameters = theta_i + fraction x step.delta_i, the search summary
            (fraction, backtracks, the view's true joint KL, player i's own-move gain A_i), the view's
            accepted (or last tried) pair, that view). Nothing is applied.
        """
        if self.opponent_model is None:
            raise ValueError("player_step needs an opponent model (make_optimizer(..., opponent_model=...))")
        view = self.estimator.player_view(batch, i + 1, self._require_agents(), self.opponent_model)
        theta_i, search = self._view_search(i, view, self.rule(view), batch)
        return theta_i, search.summary(i), search.step, view

    def _view_search(self, i: int, view: LocalGame, pair: Step, batch):
        """Player i's pair line search in its view: its policy and its model's moved together; returns
        (player i's new parameters, the search)."""
        policies = view_policies(i + 1, self._require_agents(), self.opponent_model)
        context = self.surrogate_context(batch, policies)
        search = self.line_search(view, pair, context)
        return context.theta[i] + search.delta(i).to(context.theta[i]), search


@hookimpl
def register_optimizers(register):
    register("trpo", TRPO)
    register("ipo-trpo", IPOTRPO)
