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

Opponent models (seed sec. 5; :mod:`ipo_robust.opponent`). ``ipo-trpo`` accepts ``opponent_model=``: each
player i then runs on its own (``player_step``): the model fits the opponent from its observed actions, the
direction is eq. (19) on player i's view of the sample local game at (theta_i, theta_j_hat), of which player
i keeps d_i, and the line search reads only what player i has. The true KL and the ``"own"`` surrogate
are player i's own (its ratio rho_i and KL(pi_i,old || pi_i,new)): nothing of the opponent. The
``"competitive"`` surrogate evaluates the opponent's side through the model: W_j uses the ratio
pi_j_hat(a_j | o_j; theta_j_hat + d_j_hat) / pi_j_hat(a_j | o_j; theta_j_hat), with d_j_hat the opponent's
step as player i's view forecasts it, at the actions the opponent actually took (with ``oracle`` this is
the step without a model). ``trpo`` refuses a model: its update never uses the opponent's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import hyperparameter, non_negative, non_negative_int, one_of, positive
from ipo_robust.optim import LocalGame, Step, conjugate_gradient, natural_cgd_step
from ipo_robust.optim.optimizer import NaturalConfig, TwoAgentOptimizer, default_rtol, rewards_are_zero_sum
from ipo_robust.rollout import reverse_segment_cumsum, segment_cumsum


def open_unit_interval(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    return None if ok else "a number in (0, 1)"


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
        if self.opponent_model is not None:
            return self._modelled_step(batch)
        game = self.local_game(batch)
        step = self.update(game)
        policies = self._require_agents()
        context = _SurrogateContext(batch, policies, getattr(self.config, "gamma", 0.99))
        thetas = [parameters_to_vector(p.parameters()).detach().clone() for p in policies]
        deltas = (step.delta1, step.delta2)
        search = []
        for i in (0, 1):
            search.append(self._line_search(i, context, policies, thetas, deltas, (game.g1, game.g2)[i]))
        for i, (fraction, *_rest) in enumerate(search):  # apply the accepted steps of both players
            _set(policies[i], thetas[i] + fraction * deltas[i].to(thetas[i]))
        return self._finish(batch, step, search, deltas, game, (game.g1, game.g2))

    def _finish(self, batch, step, search, deltas, game, gradients) -> dict:
        self.iteration += 1
        info = {
            "optim/iterations": step.iterations,
            "optim/residual": float(step.residual),
            "optim/converged": bool(step.converged),
            "optim/matvecs": step.matvecs,
            "optim/grad_norm1": float(gradients[0].norm()),
            "optim/grad_norm2": float(gradients[1].norm()),
        }
        for i, (fraction, backtracks, kl, improvement) in enumerate(search, start=1):
            info[f"optim/backtracks{i}"] = backtracks
            info[f"optim/accepted{i}"] = fraction
            info[f"optim/kl{i}"] = kl
            info[f"optim/surrogate_improvement{i}"] = improvement
            info[f"optim/step_norm{i}"] = float(fraction * deltas[i - 1].norm())
        for key, value in game.info.items():
            if key in ("J1", "J2", "episodes"):
                info[f"train/{key}"] = value
            elif key.startswith("opponent/"):
                info[key] = value
        info.update(self.fit_critics(batch))
        return info

    # -- with an opponent model: one view, one direction and one line search per player --------------
    def player_step(self, i: int, batch) -> tuple[torch.Tensor, tuple, Step, LocalGame]:
        """Player ``i``'s (0 or 1) move from its own view of the local game, without reading the opponent.

        The model observes the opponent's (obs, act) in ``batch`` (eq. 24); the local game is estimated at
        (own theta, the model's theta_hat) (:func:`ipo_robust.opponent.player_view`); the update rule on it
        gives (d_i, its forecast d_j_hat) and player i keeps d_i. The line search reads player i's own
        policy (true KL, own ratio) and, for the ``"competitive"`` surrogate, the model's policy moved by
        d_j_hat in place of the opponent's true move (the model is restored afterwards). The opponent's
        true policy is handed to the model only if the model is ``centralised`` (``oracle``).

        :return: (player i's new parameters, the line-search result (fraction, backtracks, kl, gain),
            the step on player i's view, that view). Nothing is applied.
        """
        from ipo_robust.opponent import player_view

        model, agents = self.opponent_model, self._require_agents()
        j = 1 - i
        own, true_opponent = agents[i], agents[j]
        metrics = model.observe(batch, j + 1) or {}
        view = player_view(batch, i + 1, own, model, true_opponent, **self._estimator_options(batch))
        view.info.update(metrics)
        step = self.update(view)  # a plain LocalGame: PerPlayerUpdate runs the rule itself
        opponent = model.estimate(j + 1, true_opponent if getattr(model, "centralised", False) else None)
        policies = (own, opponent) if i == 0 else (opponent, own)
        context = _SurrogateContext(batch, policies, getattr(self.config, "gamma", 0.99))
        thetas = [parameters_to_vector(p.parameters()).detach().clone() for p in policies]
        deltas = (step.delta1, step.delta2)
        result = self._line_search(i, context, policies, thetas, deltas, (view.g1, view.g2)[i])
        return thetas[i] + result[0] * deltas[i].to(thetas[i]), result, step, view

    def _modelled_step(self, batch) -> dict:
        agents = self._require_agents()
        (theta1, search1, step1, view1), (theta2, search2, step2, view2) = (self.player_step(i, batch)
                                                                            for i in (0, 1))
        _set(agents[0], theta1)
        _set(agents[1], theta2)
        step = Step(step1.delta1, step2.delta2, step1.iterations + step2.iterations,
                    max(float(step1.residual), float(step2.residual)), bool(step1.converged and step2.converged),
                    step1.matvecs + step2.matvecs, {"view1": step1.info, "view2": step2.info})
        view1.info.update({k: v for k, v in view2.info.items() if k.startswith("opponent/")})
        return self._finish(batch, step, (search1, search2), (step.delta1, step.delta2), view1,
                            (view1.g1, view2.g2))

    def _estimator_options(self, batch) -> dict:
        """The options TwoAgentOptimizer.local_game hands the estimator (critics, gamma, Fisher, zero-sum)."""
        config = self.config
        zero_sum = config.zero_sum if config.zero_sum is not None else rewards_are_zero_sum(batch)
        options = {}
        if config.critic == "value" and self.critics is not None:
            options["baselines"] = self.critics
        elif config.critic == "q" and self.critics is not None:
            options.update(estimator="critic", critics=self.critics)
        options.update(gamma=config.gamma, fisher=True, zero_sum=zero_sum, method=config.method)
        return options

    def _line_search(self, i: int, context, policies, thetas, deltas, g_i) -> tuple[float, int, float, float]:
        """Backtrack player i's step: returns (accepted fraction, backtracks, true KL, surrogate gain).

        ``policies`` are the two policies the surrogate reads (player i's own and the opponent's, true or
        modelled), ``thetas`` their parameters at theta_old and ``deltas`` the step of the view (player i's
        d_i and the forecast d_j). The "own" surrogate and the KL read only ``policies[i]``.
        """
        c = self.config
        delta_i = deltas[i].to(thetas[i])
        j = 1 - i
        competitive = self.surrogate_kind == "competitive"
        if competitive:  # the opponent's proposed move: theta_j + d_j (eq. 19's forecast)
            _set(policies[j], thetas[j] + deltas[j].to(thetas[j]))
        try:
            _set(policies[i], thetas[i])
            base = context.surrogate(i, self.surrogate_kind)
            slope = float(g_i.to(delta_i) @ delta_i)  # linear prediction of the gain (own part)
            fraction, result = 1.0, (0.0, c.max_backtracks + 1, 0.0, 0.0)
            for k in range(c.max_backtracks + 1):
                _set(policies[i], thetas[i] + fraction * delta_i)
                kl = context.kl(i)
                improvement = context.surrogate(i, self.surrogate_kind) - base
                expected = max(fraction * slope, 0.0)
                if math.isfinite(kl) and kl <= c.kl and improvement > 0 and improvement >= c.accept_ratio * expected:
                    result = (fraction, k, kl, improvement)
                    break
                fraction *= c.backtrack
        finally:
            _set(policies[i], thetas[i])
            if competitive:
                _set(policies[j], thetas[j])
        return result


def _set(policy: torch.nn.Module, theta: torch.Tensor) -> None:
    params = list(policy.parameters())
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

    refuses_opponent_model = ("independent TRPO never uses the opponent's parameters in its update (each "
                              "player's natural gradient g_i, Fisher F_i, own surrogate and KL are its own; the "
                              "opponent enters only through the sampled actions), so a model would change "
                              "nothing; drop opponent_model, or use 'ipo-trpo', whose anticipation of the "
                              "opponent does go through it")

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
    #: with ``opponent_model=``, each player's view, direction and line search are its own (player_step)
    handles_opponent_model = True

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
