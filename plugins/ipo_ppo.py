"""IPO-PPO: competitive gradient steps on PPO's clipped surrogate, several per batch.

The IPO updates of the seed (``ipo-vpg``, ``ipo-npg``, ``ipo-trpo``) take one step per batch, from the
score-function local game of eqs. (12)-(14). PPO (Schulman et al. 2017) learns far more per batch: it
maximises a clipped importance-sampled surrogate for ``epochs`` passes of ``minibatches`` steps. IPO-PPO
does the same with a competitive step in place of each player's independent one.

The surrogate game. On a batch collected with (theta1_old, theta2_old), with the joint probability ratio
of a sample rho_t = pi1(a1_t|o1_t) pi2(a2_t|o2_t) / (pi1_old pi2_old) and player i's GAE advantage A_i,t
(a centralised critic V_i per player, as in :mod:`ipo_robust.plugins.ppo`),

    f_i(theta1, theta2) = mean_t min(rho_t A_i,t, clip(rho_t, 1 - eps, 1 + eps) A_i,t).

Because the two actions are drawn independently given the state, rho_t = rho1_t rho2_t, d rho_t / d theta_i
= rho_t s_i,t with s_i,t = grad_i log pi_i(a_i,t|o_i,t), and the mixed derivative of rho_t is
rho_t s1_t s2_t^T. On the samples where the unclipped branch is the minimum (mask m_i,t; elsewhere f_i is
constant in both players' parameters), with c_i,t = m_i,t rho_t A_i,t / M over a minibatch of M samples,

    g_i = sum_t c_i,t s_i,t,      D12 = sum_t c_1,t s1_t s2_t^T,      D21 = sum_t c_2,t s2_t s1_t^T.

At the collection point (rho = 1) g_i is the advantage policy gradient, and D12 is the same-step term of
the critic form of eq. (14) with A_1 in place of Q_1 - V_1 (:mod:`ipo_robust.optim.estimators`); the two
terms of eq. (14) that pair a step's score with the opponent's earlier scores are left out, as PPO leaves
out all but the same-step term of the policy gradient's importance weights. Away from it, rho_t
reweights each player's terms by the opponent's change as well as its own.

The step. Each minibatch gives that local game at the current parameters; both players move to its Nash
equilibrium with diagonal step sizes P_i = lr / (sqrt(v_i) + eps_adam), v_i the bias-corrected running mean
of g_i^2 (decay ``beta``): d1 = P1 (g1 + D12 d2), d2 = P2 (g2 + D21 d1)
(:func:`~ipo_robust.optim.update.scaled_cgd_step`, the adaptive CGD of Schaefer, Zheng & Anandkumar 2020).
With D12 = D21 = 0 it is RMSprop on each player's own PPO surrogate: ``mixed=False`` gives exactly that,
the independent baseline with the same everything else. The critics regress on GAE returns with Adam on
the same minibatches.

Advantages are normalised per minibatch and player (``normalize_advantages``): each player's objective is
scaled by a positive number, which moves the equilibrium only as a change of that player's step size would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import (
    boolean,
    hyperparameter,
    one_of,
    positive,
    positive_int_or_none,
    positive_or_none,
    unit_interval_open,
)
from ipo_robust.optim.critics import adam, regression_step
from ipo_robust.optim.jacobians import auto_method, make_scores
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator
from ipo_robust.optim.optimizer import (
    Capabilities,
    SampleOptimizer,
    apply_step,
    default_rtol,
    distributions,
    mean_kl,
)
from ipo_robust.optim.update import scaled_cgd_step
from ipo_robust.plugins.ppo import BatchReuseConfig, critic_targets, normalized, value_critics
from ipo_robust.threads import thread_map


def surrogate_game(policies, obs, act, logp_old, advantages, clip: float, mixed: bool = True,
                   method: str = "auto") -> tuple[LocalGame, dict]:
    """The local game of the clipped surrogate game f_1, f_2 on one minibatch (module docstring).

    policies: the pair at their current parameters. obs, act, logp_old, advantages: pairs, per player, of
    (M, d) observations, (M, ...) actions, (M,) log-probabilities at collection and (M,) advantages (already
    normalised if wanted). With ``mixed=False`` the mixed Hessians are zero operators (independent players).
    Returns the game and ``{"clipfrac": ...}``, the fraction of samples whose joint ratio left the clip range.
    """
    scores = [make_scores(policy, o.unsqueeze(1), a.unsqueeze(1), auto_method(policy) if method == "auto" else method)
              for policy, o, a in zip(policies, obs, act, strict=True)]
    M = obs[0].shape[0]
    with torch.no_grad():
        log_ratio = sum(s.logp.detach().reshape(M).to(torch.float64) - old.to(torch.float64)
                        for s, old in zip(scores, logp_old, strict=True))
        rho = log_ratio.exp()
        weights = []
        for adv in advantages:
            adv = adv.to(torch.float64)
            # the unclipped branch is the minimum (f_i depends on the parameters there) unless the ratio has
            # left the clip range in the direction the advantage favours
            active = torch.where(adv >= 0, rho <= 1.0 + clip, rho >= 1.0 - clip)
            weights.append((active * rho * adv / M).reshape(M, 1))
    s1, s2 = scores
    c1, c2 = weights[0].to(s1.dtype), weights[1].to(s2.dtype)
    g1, g2 = s1.vjp(c1), s2.vjp(c2)
    p1, p2 = s1.p, s2.p
    if mixed:
        D12 = LinearOperator(lambda v: s1.vjp(c1 * s2.jvp(v).to(s1.dtype)), (p1, p2))
        D21 = LinearOperator(lambda v: s2.vjp(c2 * s1.jvp(v).to(s2.dtype)), (p2, p1))
    else:
        D12, D21 = LinearOperator.zeros(p1, p2, like=g1), LinearOperator.zeros(p2, p1, like=g1)
    return LocalGame(g1, g2, D12, D21), {"clipfrac": float(((rho - 1.0).abs() > clip).to(torch.float64).mean())}


class IPOPPO(SampleOptimizer):
    """Competitive (adaptive CGD) steps on PPO's clipped surrogate game, ``epochs`` x ``minibatches`` per
    batch, with GAE from a centralised critic per player (module docstring)."""

    capabilities = Capabilities(interactive=True, local_game=False)
    no_opponent_model_reason = ("each step reads both players' policies (the joint ratio and the mixed Hessians); "
                                "the local-game optimizers (ipo-vpg, ipo-npg, ipo-trpo) take opponent models")

    @dataclass
    class Config(BatchReuseConfig):
        lr: float = hyperparameter(3e-4, positive, "base step size of the diagonal step sizes P_i = lr / "
                                   "(sqrt(v_i) + eps)")
        beta: float = hyperparameter(0.999, unit_interval_open, "decay of the running mean v_i of g_i^2")
        eps: float = hyperparameter(1e-5, positive, "added to sqrt(v_i)")
        mixed: bool = hyperparameter(True, boolean, "use the mixed Hessians (False: independent RMSprop steps "
                                     "on the same surrogates, the ablation)")
        solver: str = hyperparameter("auto", one_of("auto", "gmres", "dense"), "linear solver of each step")
        rtol: float | None = hyperparameter(None, positive_or_none,
                                            "solver tolerance; None: 1e-10 in float64, 1e-6 in float32")
        max_iter: int | None = hyperparameter(100, positive_int_or_none, "solver iteration cap per step")
        critic_lr: float = hyperparameter(1e-3, positive, "Adam learning rate of the critics")
        method: str = hyperparameter("auto", one_of("auto", "layer-factors", "double-backward", "forward-mode"),
                                     "how the score Jacobians' products are computed (estimators module)")

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        super().__init__(agents, opponent_model, **hyperparameters)
        self.critics = None
        self.critic_optimizers: tuple[torch.optim.Optimizer, ...] = ()
        self.second_moments: list[torch.Tensor] | None = None
        self.moment_steps = 0
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def _build(self, obs_dims) -> None:
        self._obs_dims = [int(d) for d in obs_dims]
        agents = self._require_agents()
        self.critics = value_critics(agents, self._obs_dims, self.config.critic_hidden, self.config.seed)
        self.critic_optimizers = tuple(adam(critic.parameters(), lr=self.config.critic_lr, eps=1e-5)
                                       for critic in self.critics)
        if self.second_moments is None:
            self.second_moments = [torch.zeros(sum(p.numel() for p in agent.parameters()), dtype=torch.float64,
                                               device=next(agent.parameters()).device) for agent in agents]

    def state_dict(self) -> dict:
        state = {"iteration": self.iteration, "generator": self.generator.get_state(),
                 "moment_steps": self.moment_steps}
        if self.critics is not None:
            state.update(obs_dims=self._obs_dims, critics=[c.state_dict() for c in self.critics],
                         critic_optimizers=[o.state_dict() for o in self.critic_optimizers],
                         second_moments=[v.clone() for v in self.second_moments])
        return state

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self.moment_steps = int(state["moment_steps"])
        if "critics" in state:
            self.second_moments = [torch.as_tensor(v, dtype=torch.float64).clone() for v in state["second_moments"]]
            self._build(state["obs_dims"])
            for critic, optimizer, weights, moments in zip(self.critics, self.critic_optimizers, state["critics"],
                                                           state["critic_optimizers"], strict=True):
                critic.load_state_dict(weights)
                optimizer.load_state_dict(moments)

    def _advantages(self, batch):
        """Per player: GAE advantages and critic targets, flattened to (M,)."""
        c = self.config
        out = []
        for critic, rew in zip(self.critics, (batch.rew1, batch.rew2), strict=True):
            advantages, returns = critic_targets(critic, rew, batch, c.gamma, c.gae_lambda)
            out.append((advantages.reshape(-1), returns.reshape(-1)))
        return out

    def _scales(self, game: LocalGame) -> tuple[torch.Tensor, torch.Tensor]:
        """P_i = lr / (sqrt(v_i / (1 - beta^k)) + eps) after folding this step's g_i^2 into v_i."""
        c = self.config
        for i, g in enumerate((game.g1, game.g2), start=1):
            if not bool(torch.isfinite(g).all()):
                raise FloatingPointError(f"ipo-ppo: player {i}'s surrogate gradient is not finite (NaN or inf "
                                         "rewards, observations or parameters)")
        self.moment_steps += 1
        correction = 1.0 - c.beta ** self.moment_steps
        scales = []
        for v, g in zip(self.second_moments, (game.g1, game.g2), strict=True):
            v.mul_(c.beta).add_((1.0 - c.beta) * g.to(torch.float64) ** 2)
            scales.append((c.lr / ((v / correction).sqrt() + c.eps)).to(g.dtype))
        return scales[0], scales[1]

    def step(self, batch) -> dict:
        c = self.config
        if self.critics is None:
            self._build([int(o.shape[-1]) for o in (batch.obs1, batch.obs2)])
        agents = self._require_agents()
        before = distributions(agents, batch)
        M = batch.num_steps * batch.num_envs
        size = max(M // c.minibatches, 1)
        orders = [torch.randperm(M, generator=self.generator).to(batch.obs1.device) for _ in range(c.epochs)]
        dtypes = [next(agent.parameters()).dtype for agent in agents]
        obs = [o.reshape(M, -1).to(dtype) for o, dtype in zip((batch.obs1, batch.obs2), dtypes, strict=True)]
        act = [a.reshape(M, *a.shape[2:]) for a in (batch.act1, batch.act2)]
        with torch.no_grad():
            logp_old = [agent.distribution(o).log_prob(a) for agent, o, a in zip(agents, obs, act, strict=True)]
        targets = self._advantages(batch)
        minibatches = [order[start:start + size] for order in orders for start in range(0, M, size)]
        rtol = c.rtol or default_rtol(logp_old[0])

        def policy_steps() -> dict:
            iterations, failures, clipfracs = 0, 0, []
            for idx in minibatches:  # index_select: a quarter of the time of x[idx] on these rows
                advantages = [adv.index_select(0, idx) for adv, _ in targets]
                advantages = [normalized(adv) for adv in advantages] if c.normalize_advantages else advantages
                game, info = surrogate_game(agents, [o.index_select(0, idx) for o in obs],
                                            [a.index_select(0, idx) for a in act],
                                            [lp.index_select(0, idx) for lp in logp_old], advantages, c.clip, c.mixed,
                                            c.method)
                scale1, scale2 = self._scales(game)
                step = scaled_cgd_step(game, scale1, scale2, depth=None if c.mixed else 0, solver=c.solver,
                                       rtol=rtol, max_iter=c.max_iter)
                apply_step(agents, step)
                iterations += step.iterations
                failures += int(not step.converged)
                clipfracs.append(info["clipfrac"])
            info = {"optim/clipfrac": sum(clipfracs) / len(clipfracs)}
            if c.mixed:
                info.update({"optim/iterations": iterations / len(minibatches), "optim/solve_failures": failures,
                             "optim/converged": failures == 0})
            return info

        def regress_critics() -> dict:
            obs1, obs2 = batch.obs1.reshape(M, -1), batch.obs2.reshape(M, -1)
            losses = [0.0, 0.0]
            for idx in minibatches:
                for i, (critic, optimizer) in enumerate(zip(self.critics, self.critic_optimizers, strict=True)):
                    # mean (V_i - R_i)^2 / 2
                    losses[i] = 0.5 * regression_step(critic, optimizer,
                                                      (obs1.index_select(0, idx), obs2.index_select(0, idx)),
                                                      targets[i][1].index_select(0, idx).to(dtypes[i]), scale=0.5)
            return {"optim/value_loss1": losses[0], "optim/value_loss2": losses[1]}

        # the critics' targets are fixed for the whole update, so their regression runs beside the policy steps
        info: dict = {}
        for part in thread_map(lambda work: work(), (policy_steps, regress_critics)):
            info.update(part)
        self.iteration += 1
        info["optim/kl1"], info["optim/kl2"] = mean_kl(before, distributions(agents, batch))
        if batch.num_episodes:
            returns1, returns2 = batch.discounted_returns(c.gamma)
            info.update({"train/J1": float(returns1.mean()), "train/J2": float(returns2.mean()),
                         "train/episodes": batch.num_episodes})
        return info


@hookimpl
def register_optimizers(register):
    register("ipo-ppo", IPOPPO)
