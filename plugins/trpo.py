"""Trust-region optimizers: independent TRPO and IPO-TRPO (seed eqs. 16-19).

``trpo`` (Schulman et al. 2015, "Trust Region Policy Optimization") for each player separately:

    s_i = (F_i + damping I)^-1 g_i                      conjugate gradient on the KL-Hessian Fisher
    delta_i = sqrt(2 kl / s_i^T F_i s_i) s_i           the largest step of the quadratic KL model
    theta_i <- theta_i + beta^k delta_i                 backtracking line search: the smallest k with
                                                        mean KL(pi_old || pi_new) <= kl (the TRUE KL over
                                                        the batch's observations) and L_i improved

with the importance-sampled surrogate L_i(theta_i) = (1/E) sum_m rho_i,m G_i,m over the complete-episode
samples m of the batch, rho_i,m = pi_i(a_m|o_m; theta_i) / pi_i(a_m|o_m; theta_i,old) and G_i,m the
discounted reward-to-go sum_{t>=m} gamma^t r_i,t of the estimators (so grad L_i at theta_old = g_i,
eq. (12)). If no k <= ``max_backtracks`` passes, the player keeps its parameters (accepted fraction 0).

``ipo-trpo`` (seed sec. 4.2, eqs. 16-19): the direction is the natural-CGD step of eq. (19),
``natural_cgd_step`` on the sample local game (g1, g2, D12, D21, F1, F2), scaled so each player's
quadratic KL equals ``kl`` (eq. 20); then the same per-player line search on the true KL and a
surrogate. Which surrogate (``surrogate``):

- ``"competitive"`` (default): player i's objective given the opponent's proposed move, the
  per-decision importance-sampled estimate
      L_i(theta_i, theta_j + delta_j) = (1/E) sum_t gamma^t r_i,t W_i,t W_j,t,  W_t = prod_{k<=t} rho_k,
  whose first and mixed derivatives at theta_old are exactly g_i and D_ij of eq. (13). Its slope along
  d_i is d_i^T (g_i + D_ij delta_j) + ..., positive for the CGD step, which anticipates the opponent:
  the own surrogate alone may reject a step whose cross term dominates (near an equilibrium). The
  products of ratios grow in variance with the episode length; use ``"own"`` for long episodes.
- ``"own"``: TRPO's surrogate L_i(theta_i) with the opponent held fixed. With the mixed terms set to
  zero, ipo-trpo with ``surrogate="own"`` takes exactly trpo's steps.

``update(game)`` returns the un-line-searched, KL-scaled steps, so both also run on exact games.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import hyperparameter, one_of, positive
from ipo_robust.optim import LocalGame, Step, conjugate_gradient, natural_cgd_step
from ipo_robust.optim.optimizer import NaturalConfig, TwoAgentOptimizer, default_rtol
from ipo_robust.rollout import reverse_segment_cumsum, segment_cumsum


def open_unit_interval(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    return None if ok else "a number in (0, 1)"


def non_negative_int(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "an integer >= 0"


def non_negative(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return None if ok else "a finite number >= 0"


@dataclass
class TrustRegionConfig(NaturalConfig):
    """kl is the trust-region radius: the bound on the true mean KL(old || new) per player."""

    OWNER = "optimizer"
    backtrack: float = hyperparameter(0.5, open_unit_interval, "line-search shrink factor beta")
    max_backtracks: int = hyperparameter(10, non_negative_int, "line-search halvings before giving up")
    accept_ratio: float = hyperparameter(0.0, non_negative,
                                         "accept only if improvement >= accept_ratio x linear prediction")


class TrustRegion(TwoAgentOptimizer):
    """Shared machinery: the per-player backtracking line search on the true KL and a surrogate."""

    needs_fisher = True
    #: which surrogate the line search improves ("own" or "competitive"; see the module docstring)
    surrogate_kind = "own"

    def step(self, batch) -> dict:
        game = self.local_game(batch)
        step = self.update(game)
        policies = self._require_agents()
        context = _SurrogateContext(batch, policies, getattr(self.config, "gamma", 0.99))
        thetas = [parameters_to_vector(p.parameters()).detach().clone() for p in policies]
        deltas = (step.delta1, step.delta2)
        search = []
        for i in (0, 1):
            search.append(self._line_search(i, context, thetas, deltas, (game.g1, game.g2)[i]))
        for i, (fraction, *_rest) in enumerate(search):  # apply the accepted steps of both players
            self._set(i, thetas[i] + fraction * deltas[i].to(thetas[i]))
        self.iteration += 1
        info = {
            "optim/iterations": step.iterations,
            "optim/residual": float(step.residual),
            "optim/converged": bool(step.converged),
            "optim/matvecs": step.matvecs,
            "optim/grad_norm1": float(game.g1.norm()),
            "optim/grad_norm2": float(game.g2.norm()),
        }
        for i, (fraction, backtracks, kl, improvement) in enumerate(search, start=1):
            info[f"optim/backtracks{i}"] = backtracks
            info[f"optim/accepted{i}"] = fraction
            info[f"optim/kl{i}"] = kl
            info[f"optim/surrogate_improvement{i}"] = improvement
            info[f"optim/step_norm{i}"] = float(fraction * deltas[i - 1].norm())
        for key in ("J1", "J2", "episodes"):
            if key in game.info:
                info[f"train/{key}"] = game.info[key]
        info.update(self.fit_critics(batch))
        return info

    def _line_search(self, i: int, context, thetas, deltas, g_i) -> tuple[float, int, float, float]:
        """Backtrack player i's step: returns (accepted fraction, backtracks, true KL, surrogate gain)."""
        c = self.config
        delta_i = deltas[i].to(thetas[i])
        j = 1 - i
        opponent = thetas[j] + deltas[j].to(thetas[j]) if self.surrogate_kind == "competitive" else thetas[j]
        self._set(j, opponent)
        self._set(i, thetas[i])
        base = context.surrogate(i, self.surrogate_kind)
        slope = float(g_i.to(delta_i) @ delta_i)  # linear prediction of the gain (own part)
        fraction, result = 1.0, (0.0, c.max_backtracks + 1, 0.0, 0.0)
        for k in range(c.max_backtracks + 1):
            self._set(i, thetas[i] + fraction * delta_i)
            kl = context.kl(i)
            improvement = context.surrogate(i, self.surrogate_kind) - base
            expected = max(fraction * slope, 0.0)
            if math.isfinite(kl) and kl <= c.kl and improvement > 0 and improvement >= c.accept_ratio * expected:
                result = (fraction, k, kl, improvement)
                break
            fraction *= c.backtrack
        self._set(i, thetas[i])
        self._set(j, thetas[j])
        return result

    def _set(self, i: int, theta: torch.Tensor) -> None:
        params = list(self._require_agents()[i].parameters())
        with torch.no_grad():
            vector_to_parameters(theta.to(params[0]), params)


class _SurrogateContext:
    """The batch's quantities at theta_old that the surrogates and the true KL need."""

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

    def _states_distribution(self, i):
        with torch.no_grad():
            return self.policies[i].distribution(self.obs[i][self.mask])

    def log_ratio(self, i: int) -> torch.Tensor:
        with torch.no_grad():
            logp = self.policies[i].distribution(self.obs[i]).log_prob(self.act[i]).to(torch.float64)
        return torch.where(self.mask, logp - self.old_logp[i], torch.zeros_like(logp))

    def kl(self, i: int) -> float:
        """Mean KL(pi_old || pi_new) over the complete-episode observations (the true KL)."""
        with torch.no_grad():
            new = self.policies[i].distribution(self.obs[i][self.mask])
            return float(kl_divergence(self.states_old[i], new).mean())

    def surrogate(self, i: int, kind: str) -> float:
        zero = torch.zeros_like(self.G[i])
        if kind == "own":  # L_i = (1/E) sum_m rho_i,m G_i,m (Schulman et al. 2015, eq. 14)
            value = torch.where(self.mask, self.log_ratio(i).exp() * self.G[i], zero)
        else:  # per-decision IS of J_i under both players' new policies (module docstring)
            log_w = segment_cumsum(self.log_ratio(0) + self.log_ratio(1), self.batch.first)
            value = torch.where(self.mask, log_w.exp() * self.discounted[i], zero)
        return float(value.sum()) / self.episodes


class TRPO(TrustRegion):
    """Independent TRPO for both players (Schulman et al. 2015); see the module docstring."""

    @dataclass
    class Config(TrustRegionConfig):
        OWNER = "optimizer 'trpo'"

    def update(self, game: LocalGame) -> Step:
        """Each player's natural gradient by CG on F_i + damping I, scaled to 0.5 d^T F d = kl."""
        c = self.config
        if game.F1 is None or game.F2 is None:
            raise ValueError("trpo needs the Fisher operators F1, F2 in the local game (build it with fisher=True)")
        deltas, iterations, residual, converged, matvecs, info = [], 0, 0.0, True, 0, {"solver": "cg", "kl": c.kl}
        for i, (g, F) in enumerate(((game.g1, game.F1), (game.g2, game.F2)), start=1):
            def damped(v, F=F):
                return F.matvec(v) + c.damping * v

            result = conjugate_gradient(damped, g, rtol=c.rtol or default_rtol(g), max_iter=c.max_iter)
            s = result.x
            sFs = float(s @ damped(s))
            scale = math.sqrt(2.0 * c.kl / sFs) if sFs > 0 else 0.0  # max step sqrt(2 delta / s^T F s)
            deltas.append(scale * s)
            iterations += result.iterations
            residual = max(residual, float(result.residual))
            converged = converged and bool(result.converged)
            matvecs += result.matvecs + 1
            info[f"kl{i}_before"], info[f"scale{i}"] = 0.5 * sFs, scale
        return Step(deltas[0], deltas[1], iterations, residual, converged, matvecs, info)


class IPOTRPO(TrustRegion):
    """IPO-TRPO (seed eqs. 16-19): natural-CGD direction, then the per-player trust-region line search."""

    interactive = True

    @dataclass
    class Config(TrustRegionConfig):
        OWNER = "optimizer 'ipo-trpo'"
        lam1: float = hyperparameter(1.0, positive, "Fisher weight of player 1 (lambda_1)")
        lam2: float = hyperparameter(1.0, positive, "Fisher weight of player 2 (lambda_2)")
        surrogate: str = hyperparameter("competitive", one_of("competitive", "own"),
                                        "line-search surrogate (module docstring)")

    def __init__(self, agents=None, **hyperparameters):
        super().__init__(agents, **hyperparameters)
        self.surrogate_kind = self.config.surrogate

    def update(self, game: LocalGame) -> Step:
        c = self.config
        return natural_cgd_step(game, kl=c.kl, lam1=c.lam1, lam2=c.lam2, damping=c.damping,
                                rtol=c.rtol or default_rtol(game.g1),
                                max_iter=c.max_iter)  # eqs. (19)-(20)


@hookimpl
def register_optimizers(register):
    register("trpo", TRPO)
    register("ipo-trpo", IPOTRPO)
