"""Trust-region acceptance: the line searches of TRPO and IPO-TRPO (seed sec. 4.2), a reusable piece.

An optimizer is ``step(batch) = accept(rule(estimator(batch)))`` (:mod:`ipo_robust.optim.optimizer`). A
trust-region optimizer's acceptance is a backtracking line search, judged on the batch at theta_old
(:class:`SurrogateContext`) by the *true* KL and an importance-sampled surrogate:

- KL: mean KL(pi_old || pi_new) over the observations of the complete episodes of the batch.
- L_i, the surrogate of player i's objective, over the complete-episode samples m of the batch (E episodes):
  ``"own"``: TRPO's L_i(theta_i) = (1/E) sum_m rho_i,m G_i,m (Schulman et al. 2015, eq. 14), with
  rho_i,m = pi_i(a_m|o_m; theta_i) / pi_i(a_m|o_m; theta_i,old) and G_i,m the discounted reward-to-go
  sum_{t>=m} gamma^t r_i,t (so grad L_i at theta_old = g_i, eq. (12)); the opponent is held fixed.
  ``"competitive"``: player i's objective with both players moved, the per-decision importance-sampled
  estimate L_i(theta_i, theta_j) = (1/E) sum_t gamma^t r_i,t W_i,t W_j,t, W_t = prod_{k<=t} rho_k, whose
  first and mixed derivatives at theta_old are exactly g_i and D_ij of eq. (13). The products of ratios grow
  in variance with the episode length; use ``"own"`` for long episodes.
- A_i, player i's *own-move* gain given the other's move in the pair,
      A_i = L_i(theta_i + d_i, theta_j + d_j) - L_i(theta_i, theta_j + d_j)      (i = 1, 2; j the other),
  a difference along player i's move only, with the opponent already moved. "L1 >= 0 and L2 >= 0" cannot
  hold in a zero-sum game (L1 = -L2); A1 and A2 are differences along different players' moves, so both can
  be >= 0 there (at a saddle each player's best response improves its own objective against the other's).
  To first order A_i = d_i^T (g_i + D_ij d_j) ("competitive"; for eq. (19)'s pair lambda_i d_i^T F_i d_i >= 0,
  its first block row) or d_i^T g_i ("own", independent of d_j).

The searches:

- :class:`PlayerLineSearch` (TRPO): each player alone, the opponent held fixed: theta_i + beta^k delta_i for
  the smallest k with true KL_i <= kl and L_i ("own") improved (> 0 and >= accept_ratio x the linear
  prediction); if no k <= max_backtracks passes, the player keeps its parameters (accepted fraction 0).
- :class:`PairLineSearch` (IPO-TRPO): the pair (d1, d2) applied together. ``kl_split="joint"``: lambda grows
  geometrically, lam_k = lam_0 / beta^k, and eq. (19) is *re-solved* at lam_k (``natural_cgd_solve``,
  warm-started from beta x the last pair). Re-solving, not scaling: eq. (19)'s solution is not linear in
  1/lambda when coupled ([[l F1, -D12], [-D21, l F2]]^-1 g is not (1/l) x a fixed vector), so beta^k x the
  pair is eq. (19)'s solution at no lambda; without coupling the two coincide. The first k is accepted at
  which the true joint KL, KL1 + KL2 (the KL of the joint policy pi1 pi2), is <= kl and both A_i >=
  accept_ratio x max(first-order A_i, 0). ``kl_split="per-player"``: the pair (each direction at its own
  quadratic KL = kl) is eq. (19)'s solution at no lambda, so it is scaled by beta^k, both players together;
  each player's true KL must be <= kl. If no k passes, the pair is zero for both (:class:`PairSearch`): a
  player is never moved against an opponent move that was then rejected.

:class:`TrustRegionOptimizer` is an :class:`~ipo_robust.optim.optimizer.Optimizer` whose ``accept`` runs one
of these; its metrics are what the search measured (the true KL above, the gains, the backtracks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.batch import reverse_segment_cumsum, segment_cumsum
from ipo_robust.hyperparameters import hyperparameter, non_negative, non_negative_int
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.natural import natural_cgd_solve
from ipo_robust.optim.optimizer import NaturalConfig, Optimizer, solve_metrics
from ipo_robust.optim.rules import default_rtol
from ipo_robust.optim.update import Step


def open_unit_interval(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    return None if ok else "a number in (0, 1)"


@dataclass
class TrustRegionConfig(NaturalConfig):
    """kl is the trust-region radius: the bound on the true mean KL(old || new), of the joint policy
    (kl_split='joint', ipo-trpo) or of each player ('per-player')."""

    backtrack: float = hyperparameter(0.5, open_unit_interval,
                                      "line-search factor beta: the step is scaled by beta^k (trpo, and ipo-trpo "
                                      "with kl_split='per-player'), or eq. (19) re-solved at lambda / beta^k "
                                      "(ipo-trpo, 'joint')")
    max_backtracks: int = hyperparameter(10, non_negative_int, "line-search steps before giving up")
    accept_ratio: float = hyperparameter(0.0, non_negative,
                                         "accept only if improvement >= accept_ratio x linear prediction")


def set_parameters(policy: torch.nn.Module, theta: torch.Tensor) -> None:
    params = list(policy.parameters())
    with torch.no_grad():
        vector_to_parameters(theta.to(params[0]), params)


class SurrogateContext:
    """The batch's quantities at theta_old (``theta``, one flat vector per policy) that the surrogates and
    the true KL need, for ``policies`` (the agents, or a player's view: its own policy and its model's)."""

    def __init__(self, batch, policies, gamma: float):
        self.batch, self.policies = batch, policies
        self.mask = batch.complete
        self.episodes = max(batch.num_episodes, 1)
        discount = float(gamma) ** batch.t.to(torch.float64)
        rewards = (batch.rew1, batch.rew2)
        self.discounted = [discount * r.to(torch.float64) for r in rewards]  # gamma^t r_i,t
        self.G = [reverse_segment_cumsum(x, batch.done) for x in self.discounted]  # reward-to-go, eq. (12)
        self.obs = (batch.obs1, batch.obs2)
        self.act = (batch.act1, batch.act2)
        with torch.no_grad():
            self.old = [p.distribution(o) for p, o in zip(policies, self.obs, strict=True)]
            self.old_logp = [d.log_prob(a).to(torch.float64) for d, a in zip(self.old, self.act, strict=True)]
        self.states_old = [self._states_distribution(i) for i in (0, 1)]
        self.theta = [parameters_to_vector(p.parameters()).detach().clone() for p in policies]

    def _states_distribution(self, i):
        with torch.no_grad():
            return self.policies[i].distribution(self.obs[i][self.mask])

    def log_ratio(self, i: int) -> torch.Tensor:
        """log rho_i of player i's current policy against theta_old (0 outside complete episodes)."""
        with torch.no_grad():
            logp = self.policies[i].distribution(self.obs[i]).log_prob(self.act[i]).to(torch.float64)
        return torch.where(self.mask, logp - self.old_logp[i], torch.zeros_like(logp))

    def unmoved(self, i: int) -> torch.Tensor:
        """log rho_i = 0: player i at theta_old."""
        return torch.zeros_like(self.old_logp[i])

    def kl(self, i: int) -> float:
        """Mean KL(pi_old || pi_new) over the complete-episode observations (the true KL)."""
        with torch.no_grad():
            new = self.policies[i].distribution(self.obs[i][self.mask])
            return float(kl_divergence(self.states_old[i], new).mean())

    def own_surrogate(self, i: int, log_ratio_i: torch.Tensor) -> float:
        """L_i = (1/E) sum_m rho_i,m G_i,m (Schulman et al. 2015, eq. 14), the opponent held fixed."""
        value = torch.where(self.mask, log_ratio_i.exp() * self.G[i], torch.zeros_like(self.G[i]))
        return float(value.sum()) / self.episodes

    def competitive_surrogate(self, i: int, log_ratio1: torch.Tensor, log_ratio2: torch.Tensor) -> float:
        """Per-decision IS of J_i under both players' moved policies (module docstring)."""
        log_w = segment_cumsum(log_ratio1 + log_ratio2, self.batch.first)
        value = torch.where(self.mask, log_w.exp() * self.discounted[i], torch.zeros_like(self.discounted[i]))
        return float(value.sum()) / self.episodes

    def own_move_gain(self, i: int, kind: str, moved: tuple[torch.Tensor, torch.Tensor]) -> float:
        """A_i = L_i(theta_i + d_i, theta_j + d_j) - L_i(theta_i, theta_j + d_j): player i's own move, the
        other's move made; ``moved`` holds both players' log-ratios at the pair (module docstring)."""
        if kind == "own":
            return self.own_surrogate(i, moved[i]) - self.own_surrogate(i, self.unmoved(i))
        still = (self.unmoved(0), moved[1]) if i == 0 else (moved[0], self.unmoved(1))
        return self.competitive_surrogate(i, *moved) - self.competitive_surrogate(i, *still)


# --------------------------------------------------------------------------------------------------
# TRPO: one player at a time
# --------------------------------------------------------------------------------------------------
class PlayerSearch(NamedTuple):
    """One player's search: the accepted fraction beta^k (0 if none), k (max_backtracks + 1 if none), the
    true KL and the surrogate gain of the accepted step (0, 0 if none)."""

    fraction: float
    backtracks: int
    kl: float
    improvement: float


@dataclass(frozen=True)
class PlayerLineSearch:
    """TRPO's backtracking line search of one player's step, the opponent held fixed (module docstring)."""

    kl: float
    backtrack: float = 0.5
    max_backtracks: int = 10
    accept_ratio: float = 0.0

    @classmethod
    def from_config(cls, config: TrustRegionConfig) -> PlayerLineSearch:
        return cls(config.kl, config.backtrack, config.max_backtracks, config.accept_ratio)

    def __call__(self, context: SurrogateContext, i: int, delta: torch.Tensor, g: torch.Tensor) -> PlayerSearch:
        """Player i's (0 or 1) step ``delta`` with gradient ``g``; the policy is left at theta_old."""
        policy, theta = context.policies[i], context.theta[i]
        delta_i = delta.to(theta)
        try:
            set_parameters(policy, theta)
            base = context.own_surrogate(i, context.unmoved(i))
            slope = float(g.to(delta_i) @ delta_i)  # linear prediction of the gain
            fraction, result = 1.0, PlayerSearch(0.0, self.max_backtracks + 1, 0.0, 0.0)
            for k in range(self.max_backtracks + 1):
                set_parameters(policy, theta + fraction * delta_i)
                kl = context.kl(i)
                improvement = context.own_surrogate(i, context.log_ratio(i)) - base
                expected = max(fraction * slope, 0.0)
                if math.isfinite(kl) and kl <= self.kl and improvement > 0 and \
                        improvement >= self.accept_ratio * expected:
                    result = PlayerSearch(fraction, k, kl, improvement)
                    break
                fraction *= self.backtrack
        finally:
            set_parameters(policy, theta)
        return result


# --------------------------------------------------------------------------------------------------
# IPO-TRPO: the pair applied together
# --------------------------------------------------------------------------------------------------
@dataclass
class PairSearch:
    """The line search of one pair (module docstring).

    step: the pair last tried, the accepted one when ``accepted``: eq. (19)'s solution at (lam1, lam2)
        (joint split) or the per-player-scaled pair; its iterations and matvecs count every solve of the
        search (the initial root search included).
    fraction: the pair applied is fraction x (step.delta1, step.delta2): 1 (joint) or beta^k (per-player)
        when accepted, 0 when not.
    backtracks: k of the accepted pair (max_backtracks + 1 if none).
    lam1, lam2: eq. (19)'s weights of the applied pair; inf when rejected (the zero step is eq. (19)'s
        solution as lambda -> inf), NaN for an accepted pair of the per-player split (no lambda gives it).
    kl1, kl2: each player's true mean KL(old || new) at the applied pair (0 when rejected).
    improvement1, improvement2: A_1, A_2, each player's own-move surrogate gain given the other's move.
    """

    step: Step
    fraction: float
    accepted: bool
    backtracks: int
    lam1: float
    lam2: float
    kl1: float = 0.0
    kl2: float = 0.0
    improvement1: float = 0.0
    improvement2: float = 0.0

    @property
    def kl(self) -> float:
        """The true joint KL of the applied pair (the two players' policies are independent)."""
        return self.kl1 + self.kl2

    def delta(self, i: int) -> torch.Tensor:
        """Player i's (0 or 1) applied move (exactly zero when the pair was rejected)."""
        delta = (self.step.delta1, self.step.delta2)[i]
        return self.fraction * delta if self.accepted else torch.zeros_like(delta)

    def summary(self, i: int) -> tuple[float, int, float, float]:
        """(fraction, backtracks, true joint KL, player i's own-move gain)."""
        return self.fraction, self.backtracks, self.kl, (self.improvement1, self.improvement2)[i]


@dataclass(frozen=True)
class PairLineSearch:
    """IPO-TRPO's line search on the pair (module docstring); the solver options re-solve eq. (19)."""

    kl: float
    kl_split: str = "joint"
    surrogate: str = "competitive"
    backtrack: float = 0.5
    max_backtracks: int = 10
    accept_ratio: float = 0.0
    damping: float = 1e-4
    rtol: float | None = None
    max_iter: int | None = 100

    @classmethod
    def from_config(cls, config) -> PairLineSearch:
        """From a :class:`TrustRegionConfig` with a ``surrogate`` field."""
        return cls(config.kl, config.kl_split, config.surrogate, config.backtrack, config.max_backtracks,
                   config.accept_ratio, config.damping, config.rtol, config.max_iter)

    def __call__(self, game: LocalGame, step: Step, context: SurrogateContext) -> PairSearch:
        """Backtrack ``step`` (eq. (19)'s pair on ``game``) for ``context.policies``: grow lambda and re-solve
        eq. (19) ('joint') or scale the pair by beta ('per-player') until the true KL is within budget and both
        own-move gains pass. The policies are left at theta_old."""
        joint = self.kl_split == "joint"
        lam1, lam2 = (step.info["lam1"], step.info["lam2"]) if joint else (math.nan, math.nan)
        iterations, matvecs, fraction = step.iterations, step.matvecs, 1.0
        for k in range(self.max_backtracks + 1):
            if k > 0 and joint:  # lambda / beta: eq. (19) re-solved there, warm-started from beta x the pair
                lam1, lam2 = lam1 / self.backtrack, lam2 / self.backtrack
                x0 = self.backtrack * torch.cat([step.delta1, step.delta2])
                step = natural_cgd_solve(game, lam1, lam2, damping=self.damping,
                                         rtol=self.rtol or default_rtol(game.g1), max_iter=self.max_iter,
                                         x0=x0)  # eq. (19)
                iterations, matvecs = iterations + step.iterations, matvecs + step.matvecs
            elif k > 0:
                fraction *= self.backtrack
            deltas = (fraction * step.delta1, fraction * step.delta2)
            kls, gains = self._judge(context, deltas)
            if self._acceptable(kls, gains, self._predicted_gains(game, deltas)):
                return PairSearch(_with_cost(step, iterations, matvecs), fraction, True, k, lam1, lam2, *kls, *gains)
        return PairSearch(_with_cost(step, iterations, matvecs), 0.0, False, self.max_backtracks + 1, math.inf,
                          math.inf)

    def _judge(self, context: SurrogateContext, deltas) -> tuple[tuple[float, float], tuple[float, float]]:
        """The true KLs and the own-move gains (A_1, A_2) of both players moved together by ``deltas``."""
        policies, thetas = context.policies, context.theta
        try:
            for i in (0, 1):
                set_parameters(policies[i], thetas[i] + deltas[i].to(thetas[i]))
            kls = (context.kl(0), context.kl(1))
            moved = (context.log_ratio(0), context.log_ratio(1))
        finally:
            for i in (0, 1):
                set_parameters(policies[i], thetas[i])
        return kls, tuple(context.own_move_gain(i, self.surrogate, moved) for i in (0, 1))

    def _predicted_gains(self, game: LocalGame, deltas) -> tuple[float, float]:
        """First-order A_i: d_i^T g_i ("own"), d_i^T (g_i + D_ij d_j) ("competitive"); only for accept_ratio > 0."""
        if self.accept_ratio == 0:
            return 0.0, 0.0
        d1, d2 = (d.to(game.g1) for d in deltas)
        own = (float(d1 @ game.g1), float(d2 @ game.g2))
        if self.surrogate == "own":
            return own
        return own[0] + float(d1 @ game.D12.matvec(d2)), own[1] + float(d2 @ game.D21.matvec(d1))

    def _acceptable(self, kls, gains, predicted) -> bool:
        if not all(math.isfinite(x) for x in (*kls, *gains)):
            return False
        within = sum(kls) <= self.kl if self.kl_split == "joint" else max(kls) <= self.kl
        return within and all(gain >= self.accept_ratio * max(p, 0.0) for gain, p in zip(gains, predicted, strict=True))


def _with_cost(step: Step, iterations: int, matvecs: int) -> Step:
    """The step with the search's total solver iterations and operator applications."""
    return Step(step.delta1, step.delta2, iterations, step.residual, step.converged, matvecs, step.info)


def applied_pair(searches: tuple[PairSearch, ...]) -> Step:
    """The pair applied after ``searches``: one search for both players, or one per player's view (player i
    keeps its half of ``searches[i]``); the cost is that of every search."""
    first, second = searches if len(searches) == 2 else searches * 2
    steps = [search.step for search in searches]
    return Step(first.delta(0), second.delta(1), sum(step.iterations for step in steps),
                max(float(step.residual) for step in steps), all(bool(step.converged) for step in steps),
                sum(step.matvecs for step in steps), {})


def pair_metrics(searches: tuple[PairSearch, ...], applied: Step) -> dict:
    """Metrics of the applied pair (:func:`applied_pair`): player i's entries come from its search."""
    info = solve_metrics(applied)
    kl_model = 0.0
    for i, search in enumerate(searches if len(searches) == 2 else searches * 2, start=1):
        own_info = search.step.info
        info[f"optim/lam{i}"] = (search.lam1, search.lam2)[i - 1]
        info[f"optim/kl{i}"] = (search.kl1, search.kl2)[i - 1]
        info[f"optim/backtracks{i}"] = search.backtracks
        info[f"optim/accepted{i}"] = search.fraction
        info[f"optim/surrogate_improvement{i}"] = (search.improvement1, search.improvement2)[i - 1]
        info[f"optim/step_norm{i}"] = float(search.delta(i - 1).norm())
        kl_model += search.fraction**2 * own_info.get(f"kl{i}_model", math.nan) if search.accepted else 0.0
    info["optim/kl"] = info["optim/kl1"] + info["optim/kl2"]
    info["optim/kl_model"] = kl_model
    return info


# --------------------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------------------
def game_metrics(game: LocalGame) -> dict:
    """The local game's training metrics (``train/J1``, ``train/J2``, ``train/episodes``) and its opponent
    model's (``opponent/...``)."""
    info = {}
    for key, value in game.info.items():
        if key in ("J1", "J2", "episodes"):
            info[f"train/{key}"] = value
        elif key.startswith("opponent/"):
            info[key] = value
    return info


class TrustRegionOptimizer(Optimizer):
    """An optimizer whose acceptance is a line search (``accept``, built from ``make_line_search``).

    The search measures what it applies, so its metrics (the true KL over complete-episode observations, the
    surrogate gains, the backtracks) stand in for the generic ones of
    :func:`~ipo_robust.optim.optimizer.step_metrics`; the game's ``train/`` and ``opponent/`` metrics and the
    critics' follow.
    """

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        super().__init__(agents, opponent_model, **hyperparameters)
        self.line_search = self.make_line_search()

    def make_line_search(self):
        """The search ``accept`` runs, built once from ``self.config``."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_line_search()")

    def surrogate_context(self, batch, policies) -> SurrogateContext:
        """The batch at theta_old of ``policies`` (the agents, or a player's view of them)."""
        return SurrogateContext(batch, policies, self.config.gamma)

    def step(self, batch) -> dict:
        """One iteration: ``accept(rule(estimator(batch)))``, then the critics are fitted; returns metrics."""
        game = self.local_game(batch)
        _, info = self.accept(self.update(game), game, batch)
        self.iteration += 1
        info.update(game_metrics(game))
        info.update(self.fit_critics(batch))
        return info
