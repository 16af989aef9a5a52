"""IPO-DPG (seed sec. 4.3, eqs. 21-23) and MADDPG: deterministic policies with centralised critics.

Setting. Player i acts by a deterministic policy a_i = mu_i(s; theta_i) (:class:`DeterministicPolicy`,
or :class:`ConstantPolicy` mu_i = theta_i for state-independent play) and explores with Gaussian noise
a_i + N(0, noise^2) while collecting. Each player has a centralised critic Q_i(s, a1, a2), learned
off-policy from a replay buffer by TD regression on r_i + gamma (1 - terminated) Q_i'(s', mu1'(s'), mu2'(s'))
with target networks Q_i', mu_i' (Polyak averaging, rate ``tau``), as in DDPG (Lillicrap et al. 2016) and
MADDPG (Lowe et al. 2017). The objective each player maximises is, as in DPG,

    J_i(theta1, theta2) = E_{s ~ D}[ Q_i(s, mu1(s; theta1), mu2(s; theta2)) ]                 eq. (21)

with D the replay buffer's states and Q_i held fixed during the update.

Gradient, eq. (22) (chain rule through a_i = mu_i(s)), with J_mu_i(s) = d mu_i(s) / d theta_i (d_i x p_i):

    g_i = E[ J_mu_i(s)^T grad_{a_i} Q_i(s, a1, a2) ]  at a_j = mu_j(s).

Mixed Hessian, eq. (23). Differentiate g1 in theta2: J_mu1(s) does not depend on theta2, and
grad_{a1} Q1 depends on theta2 only through a2 = mu2(s; theta2), whose derivative is J_mu2(s). So

    D12 = d/dtheta1 d/dtheta2^T J1 = E[ J_mu1(s)^T (d^2 Q1 / da1 da2^T) J_mu2(s) ]       (p1 x p2)
    D21 = E[ J_mu2(s)^T (d^2 Q2 / da2 da1^T) J_mu1(s) ]                                   (p2 x p1)

and no second derivative of a policy appears: d^2 mu / dtheta^2 would enter only the own Hessians
d^2 J_i / dtheta_i^2, which CGD does not use. As matvecs, never a p1 x p2 matrix:

    D12 v = (1/B) sum_b J_mu1(s_b)^T H12(s_b) w_b,   w_b = J_mu2(s_b) v,   H12 w = d/da1 (grad_{a2} Q1 . w)

one forward-mode product of mu2 (by the double-VJP trick), one action-space Hessian-vector product of
the critic, one reverse product of mu1. The critic must be twice differentiable in the actions (tanh
MLPs are; a ReLU critic has d^2 Q / da1 da2 = 0 almost everywhere).

Update. ``ipo-dpg``: the CGD step (:func:`ipo_robust.optim.cgd_step`) on the local game (g1, g2, D12,
D21); ``maddpg``: independent deterministic gradients, delta_i = lr_i g_i (eq. 22 with the mixed terms
dropped, i.e. SimGA with centralised critics). For a game whose rewards are zero-sum (r2 = -r1, or
``zero_sum=True``) one critic is learned and Q2 = -Q1, so D21 = -D12^T exactly and CG solves the system.

Opponent models (seed sec. 5). With ``opponent_model=`` each player i steps from its own view
(:meth:`IPODPG.player_step`): mu_j(s) and J_mu_j(s) in eqs. (22)-(23) are those of the model's mu_j_hat
(``"mle"``: :func:`deterministic_opponent_model`, least squares of the opponent's observed noisy actions,
which is eq. (24) for Gaussian exploration noise; ``"oracle"``: the true policy), and player i's critics
are its own, learned from the buffer's observed joint actions with the targets (mu_i', mu_j_hat').

Exact critics. ``critics=(Q1, Q2)`` (modules ``Q(obs1, obs2, act1, act2) -> (B,)``) replaces the learned
critics; they are used as given and never trained (closed-form games: :mod:`ipo_robust.envs.continuous`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.distributions import Independent, Normal
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.envs.base import Box
from ipo_robust.envs.continuous import bilinear_game, quadratic_game
from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import (
    Hyperparameters,
    hidden_sizes,
    hyperparameter,
    non_negative_int,
    non_negative_int_or_none,
    one_of,
    positive,
    positive_int,
    positive_int_or_none,
    positive_or_none,
    unit_interval,
)
from ipo_robust.optim import LinearOperator, LocalGame, Step, cgd_step
from ipo_robust.optim.jacobians import PolicyJacobian
from ipo_robust.optim.optimizer import (
    TwoAgentOptimizer,
    bool_or_none,
    default_rtol,
    rewards_are_zero_sum,
)
from ipo_robust.plugins.optimizers import _lr_alias
from ipo_robust.policies import QCritic, _mlp


# --------------------------------------------------------------------------------------------------
# Deterministic policies
# --------------------------------------------------------------------------------------------------
class DeterministicPolicy(nn.Module):
    """a = mu(obs; theta) = MLP(obs) (unsquashed; the rollout clips to the action Box).

    ``distribution(obs)`` is the *exploration* policy Independent(Normal(mu(obs), exploration_std), 1), so
    ``ipo_robust.collect`` rolls it out with Gaussian exploration noise; the optimizers differentiate
    ``mu``. ``exploration_std`` is a plain attribute, not a parameter (the optimizers set it to ``noise``).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh, exploration_std: float = 0.1):
        super().__init__()
        self.obs_dim, self.act_dim, self.exploration_std = int(obs_dim), int(act_dim), float(exploration_std)
        self.mu_net = _mlp(self.obs_dim, self.act_dim, hidden, activation)

    def mu(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (*B, act_dim) for observations (*B, obs_dim)."""
        return self.mu_net(torch.as_tensor(obs).to(self.mu_net[0].weight.dtype))

    def forward(self, obs):
        return self.mu(obs)

    def distribution(self, obs: torch.Tensor) -> Independent:
        mean = self.mu(obs)
        return Independent(Normal(mean, torch.full_like(mean, max(self.exploration_std, 1e-8))), 1)


class ConstantPolicy(DeterministicPolicy):
    """State-independent mu(s; theta) = theta (act_dim,): the policy of the one-step continuous games."""

    def __init__(self, act_dim: int = 1, init=None, exploration_std: float = 0.1):
        nn.Module.__init__(self)
        self.obs_dim, self.act_dim, self.exploration_std = None, int(act_dim), float(exploration_std)
        theta = torch.zeros(self.act_dim) if init is None else torch.as_tensor(init).reshape(-1).clone()
        if theta.shape != (self.act_dim,):
            raise ValueError(f"init must hold {self.act_dim} numbers, got shape {tuple(theta.shape)}")
        self.theta = nn.Parameter(theta.to(torch.get_default_dtype() if not theta.is_floating_point()
                                           else theta.dtype))

    def mu(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        return self.theta.expand(*obs.shape[:-1], self.act_dim)


def make_deterministic_agents(env, seed: int | None = None, hidden: Sequence[int] = (64, 64),
                              exploration_std: float = 0.1, dtype: torch.dtype = torch.float32):
    """Two DeterministicPolicy sized from the env's flat Box spaces; agent i seeded with seed + i."""
    agents = []
    for i in (0, 1):
        obs_space, act_space = env.observation_spaces[i], env.action_spaces[i]
        if not isinstance(act_space, Box) or len(act_space.shape) != 1:
            raise ValueError(f"deterministic policies need flat Box actions, got {act_space!r} for player {i + 1}")
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed + i)
            agents.append(DeterministicPolicy(obs_space.shape[0], act_space.shape[0], hidden,
                                              exploration_std=exploration_std).to(dtype))
    return tuple(agents)


# --------------------------------------------------------------------------------------------------
# Products with J_mu (d x p per state) and the local game of eqs. (22)-(23)
# --------------------------------------------------------------------------------------------------
class NegatedCritic(nn.Module):
    """Q2 = -Q1 (zero-sum games: one critic for both players)."""

    def __init__(self, critic: nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, obs1, obs2, act1, act2):
        return -self.critic(obs1, obs2, act1, act2)


def deterministic_local_game(obs1: torch.Tensor, obs2: torch.Tensor, policies, critics, zero_sum: bool = False,
                             mixed: bool = True) -> LocalGame:
    """The local game of eqs. (22)-(23) at the policies' parameters, averaged over states (obs1, obs2) (B, d_i).

    ``critics``: (Q1, Q2), modules ``Q(obs1, obs2, act1, act2) -> (B,)`` twice differentiable in the
    actions. ``mixed=False`` gives zero operators for D12, D21 (MADDPG needs only g_i). Returns a LocalGame
    (``info``: ``Q1``, ``Q2``, the mean critic values at the policies' actions).
    """
    mu1, mu2 = (PolicyJacobian(policy, obs) for policy, obs in zip(policies, (obs1, obs2), strict=True))
    B = obs1.shape[0]
    Q1, Q2 = critics
    with torch.enable_grad():
        a1 = mu1.action.detach().requires_grad_(True)
        a2 = mu2.action.detach().requires_grad_(True)
        q1, q2 = Q1(obs1, obs2, a1, a2), Q2(obs1, obs2, a1, a2)
        # per-state action gradients, each scaled by 1/B (the expectation over states)
        dQ1_da1, dQ1_da2 = torch.autograd.grad(q1.sum() / B, (a1, a2), create_graph=mixed, allow_unused=True)
        dQ2_da1, dQ2_da2 = torch.autograd.grad(q2.sum() / B, (a1, a2), create_graph=mixed, allow_unused=True)
    g1 = mu1.vjp(dQ1_da1.detach())  # eq. (22)
    g2 = mu2.vjp(dQ2_da2.detach())  # eq. (22)
    info = {"Q1": float(q1.detach().mean()), "Q2": float(q2.detach().mean())}
    if not mixed:
        zeros = partial(LinearOperator.zeros, like=g1)
        return LocalGame(g1, g2, zeros(mu1.p, mu2.p), zeros(mu2.p, mu1.p), zero_sum=zero_sum, info=info)

    def action_hvp(grad_in: torch.Tensor | None, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """(d^2 Q / d a_out d a_in) w per state: d/d a_out (grad_{a_in} Q . w)."""
        if grad_in is None or not grad_in.requires_grad:
            return torch.zeros_like(out).detach()
        (h,) = torch.autograd.grad(grad_in, out, grad_outputs=w.to(grad_in.dtype), retain_graph=True,
                                   allow_unused=True)
        return torch.zeros_like(out).detach() if h is None else h

    def product(grad_in, jac_in: PolicyJacobian, jac_out: PolicyJacobian, out: torch.Tensor):
        def matvec(v: torch.Tensor) -> torch.Tensor:
            w = jac_in.jvp(v)  # w_b = J_mu_in(s_b) v
            return jac_out.vjp(action_hvp(grad_in, w, out))  # sum_b J_mu_out^T H w_b (1/B inside grad_in)
        return matvec

    # eq. (23): D12 v = E[J_mu1^T (d2 Q1 / da1 da2) J_mu2 v]; transposes for rmatvec
    D12 = LinearOperator(product(dQ1_da2, mu2, mu1, a1), (mu1.p, mu2.p), product(dQ1_da1, mu1, mu2, a2))
    D21 = LinearOperator(product(dQ2_da1, mu1, mu2, a2), (mu2.p, mu1.p), product(dQ2_da2, mu2, mu1, a1))
    return LocalGame(g1, g2, D12, D21, zero_sum=zero_sum, info=info)


# --------------------------------------------------------------------------------------------------
# Replay buffer
# --------------------------------------------------------------------------------------------------
class ReplayBuffer:
    """A ring buffer of transitions (obs1, obs2, act1, act2, rew1, rew2, next_obs1, next_obs2, terminated),
    one row per (t, n) of the batches added; ``sample(size, generator)`` draws rows uniformly with replacement."""

    KEYS = ("obs1", "obs2", "act1", "act2", "rew1", "rew2", "next_obs1", "next_obs2", "terminated")

    def __init__(self, capacity: int):
        self.capacity, self.size, self.position = int(capacity), 0, 0
        self.data: dict[str, torch.Tensor] = {}

    def add(self, batch) -> None:
        rows = {k: getattr(batch, k).reshape(-1, *getattr(batch, k).shape[2:]).detach() for k in self.KEYS}
        M = rows["obs1"].shape[0]
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in rows.items()}
        if M > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
            M = self.capacity
        index = (self.position + torch.arange(M)) % self.capacity
        for k, v in rows.items():
            self.data[k][index] = v.to(self.data[k].dtype)
        self.position = (self.position + M) % self.capacity
        self.size = min(self.size + M, self.capacity)

    def sample(self, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(self.size, (int(size),), generator=generator)
        return {k: v[index] for k, v in self.data.items()}


# --------------------------------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------------------------------
class IPODPG(TwoAgentOptimizer):
    """IPO-DPG (seed sec. 4.3): CGD on the deterministic local game of eqs. (22)-(23) (module docstring)."""

    interactive = True
    resumable = False  # the replay buffer and target networks are not in state_dict: resume is refused

    @dataclass
    class Config(Hyperparameters):
        OWNER = "optimizer 'ipo-dpg'"
        lr1: float = hyperparameter(0.1, positive, "policy step size of player 1 (CGD learning rate)")
        lr2: float = hyperparameter(0.1, positive, "policy step size of player 2")
        gamma: float = hyperparameter(0.99, unit_interval, "discount of the TD targets")
        noise: float = hyperparameter(0.1, positive, "std of the Gaussian exploration noise (set on the agents)")
        critic_lr: float = hyperparameter(1e-3, positive, "Adam learning rate of the critics")
        critic_hidden: tuple = hyperparameter((64, 64), hidden_sizes, "hidden widths of the tanh MLP critics")
        critic_updates: int = hyperparameter(50, non_negative_int, "critic TD steps per step(batch)")
        batch_size: int = hyperparameter(256, positive_int, "replay minibatch: critic TD steps and the states "
                                                              "of eqs. (22)-(23)")
        buffer_size: int = hyperparameter(100_000, positive_int, "replay buffer capacity (transitions)")
        tau: float = hyperparameter(0.01, unit_interval, "Polyak rate of the target networks")
        zero_sum: bool | None = hyperparameter(None, bool_or_none, "declare the game zero-sum (one critic, "
                                                                  "Q2 = -Q1); None: detect from rewards")
        depth: int | None = hyperparameter(None, non_negative_int_or_none, "CGD reasoning depth; None = full")
        solver: str = hyperparameter("auto", one_of("auto", "cg", "gmres", "dense"), "linear solver")
        rtol: float | None = hyperparameter(None, positive_or_none, "solver tolerance (None: by dtype)")
        max_iter: int | None = hyperparameter(100, positive_int_or_none, "solver iteration cap")
        seed: int = hyperparameter(0, lambda v: None if isinstance(v, int) and not isinstance(v, bool)
                                   else "an integer", "seed of the critics' weights and the replay sampling")

    #: whether the update uses the mixed terms D12, D21 (False: MADDPG)
    mixed = True
    #: with ``opponent_model=``, each player's view and critics are its own (:meth:`player_step`)
    handles_opponent_model = True

    def __init__(self, agents=None, critics=None, opponent_model=None, **hyperparameters):
        if isinstance(opponent_model, str) and opponent_model == "mle":
            opponent_model = deterministic_opponent_model()  # eq. (24) for mu_j: least squares
        super().__init__(agents, opponent_model=opponent_model, **_lr_alias(self.Config, hyperparameters))
        self.players: list[_PlayerView | None] = [None, None]  # per-player critics (opponent model only)
        c = self.config
        self.fixed_critics = critics is not None
        if critics is not None and (len(critics) != 2 or not all(callable(q) for q in critics)):
            raise ValueError("critics must be a pair (Q1, Q2) of callables Q(obs1, obs2, act1, act2) -> (B,)")
        self.critics = tuple(critics) if critics is not None else None
        self.buffer = ReplayBuffer(c.buffer_size)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.targets = None
        if agents is not None:
            for agent in agents:
                if hasattr(agent, "exploration_std"):
                    agent.exploration_std = c.noise
                if not hasattr(agent, "mu"):
                    raise ValueError(f"{c.owner()} needs deterministic policies with mu(obs) "
                                     "(ipo_robust.plugins.dpg.DeterministicPolicy or ConstantPolicy)")

    # -- the update rule ----------------------------------------------------------------------------
    def update(self, game: LocalGame) -> Step:
        c = self.config
        if not self.mixed:
            return cgd_step(game, c.lr1, c.lr2, depth=0)  # delta_i = lr_i g_i
        return cgd_step(game, c.lr1, c.lr2, depth=c.depth, solver=c.solver, rtol=c.rtol or default_rtol(game.g1),
                        max_iter=c.max_iter)

    # -- critics ------------------------------------------------------------------------------------
    def _build(self, batch) -> None:
        c = self.config
        self.zero_sum = c.zero_sum if c.zero_sum is not None else rewards_are_zero_sum(batch)
        agents = self._require_agents()
        self.targets = tuple(copy.deepcopy(agent) for agent in agents)
        if self.fixed_critics:
            return
        dtype = next(agents[0].parameters()).dtype
        obs = tuple(Box(-math.inf, math.inf, shape=(int(o.shape[-1]),)) for o in (batch.obs1, batch.obs2))
        act = tuple(Box(-math.inf, math.inf, shape=(int(a.shape[-1]),)) for a in (batch.act1, batch.act2))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            learned = [QCritic(obs, act, hidden=tuple(c.critic_hidden)).to(dtype)
                       for _ in range(1 if self.zero_sum else 2)]
        self.learned = learned
        self.critic_targets = [copy.deepcopy(q) for q in learned]
        self.critic_optimizers = [torch.optim.Adam(q.parameters(), lr=c.critic_lr) for q in learned]
        self.critics = (learned[0], NegatedCritic(learned[0]) if self.zero_sum else learned[1])

    def fit_critics(self, batch=None) -> dict:
        """``critic_updates`` TD steps on replay minibatches: y_i = r_i + gamma (1 - term) Q_i'(s', mu'(s'))."""
        c = self.config
        if self.fixed_critics or c.critic_updates == 0 or self.buffer.size == 0:
            return {}
        losses = _td_fit(self.buffer, self.generator, self.targets, self.learned, self.critic_targets,
                         self.critic_optimizers, c)
        return {f"critic/loss{i + 1}": loss for i, loss in enumerate(losses)}

    # -- the sample local game ----------------------------------------------------------------------
    def local_game(self, batch=None) -> LocalGame:
        """Eqs. (22)-(23) at the current policies on ``batch_size`` replay states (``batch`` is added first,
        if given and not yet stored)."""
        if self.targets is None:
            if batch is None:
                raise ValueError(f"{self.config.owner()}: the first local_game needs a batch")
            self._build(batch)
            self.buffer.add(batch)
        sample = self.buffer.sample(self.config.batch_size, self.generator)
        return deterministic_local_game(sample["obs1"], sample["obs2"], self._require_agents(), self.critics,
                                        zero_sum=self.zero_sum, mixed=self.mixed)

    def step(self, batch) -> dict:
        """Store the batch, fit the critics, take the (CGD or independent) policy step, move the targets."""
        if self.opponent_model is not None:
            return self._modelled_step(batch)
        if self.targets is None:
            self._build(batch)
        self.buffer.add(batch)
        info = self.fit_critics(batch)
        game = self.local_game()
        step = self.update(game)
        self.apply(step)
        for agent, target in zip(self._require_agents(), self.targets, strict=True):
            _polyak(target, agent, self.config.tau)
        self.iteration += 1
        info.update({
            "optim/iterations": step.iterations,
            "optim/residual": float(step.residual),
            "optim/converged": bool(step.converged),
            "optim/matvecs": step.matvecs,
            "optim/step_norm1": float(step.delta1.norm()),
            "optim/step_norm2": float(step.delta2.norm()),
            "optim/grad_norm1": float(game.g1.norm()),
            "optim/grad_norm2": float(game.g2.norm()),
            "optim/Q1": game.info["Q1"],
            "optim/Q2": game.info["Q2"],
        })
        return info


    # -- with an opponent model: one view and one set of critics per player --------------------------
    def player_step(self, i: int, batch) -> tuple[torch.Tensor, Step, LocalGame, dict]:
        """Player ``i``'s (0 or 1) step from its own view, without reading the opponent's parameters.

        The model observes the opponent's (obs, act) in ``batch`` (for ``mle``: least squares of the
        observed, noisy actions on a deterministic copy, :func:`deterministic_opponent_model`) and returns
        mu_j_hat. Player i's critics (Q_i, and Q_j unless zero-sum, where Q_j = -Q_i) are its own, learned by
        TD on the replay buffer's observed joint actions with the targets (mu_i', mu_j_hat'), mu_j_hat' a
        Polyak copy of the model. Eqs. (22)-(23) at (mu_i, mu_j_hat) give the local game; the update rule
        gives (d_i, a forecast d_j_hat) and player i keeps d_i. ``batch`` must already be in the buffer.

        :return: (d_i, the step on player i's view, that view, metrics). Nothing is applied.
        """
        model, agents, c = self.opponent_model, self._require_agents(), self.config
        j = 1 - i
        own, true_opponent = agents[i], agents[j]
        metrics = {**(model.observe(batch, j + 1) or {})}
        opponent = model.estimate(j + 1, true_opponent if getattr(model, "centralised", False) else None)
        if not callable(getattr(opponent, "mu", None)):
            from ipo_robust.errors import ConfigError

            raise ConfigError(f"{c.owner()}: the opponent model must return a deterministic policy with mu(obs) "
                              f"(got {type(opponent).__name__}); use opponent_model='mle' (a least-squares "
                              "copy: ipo_robust.plugins.dpg.deterministic_opponent_model) or 'oracle'")
        view = self.players[i]
        if view is None:
            view = self.players[i] = _PlayerView(self, i, batch, own, opponent)
        view.opponent = opponent  # the estimate mu_j_hat its target copy follows
        policies = (own, opponent) if i == 0 else (opponent, own)
        targets = (view.own_target, view.opponent_target) if i == 0 else (view.opponent_target, view.own_target)
        if not self.fixed_critics and c.critic_updates > 0:
            losses = _td_fit(self.buffer, self.generator, targets, view.learned, view.critic_targets,
                             view.critic_optimizers, c)
            metrics.update({f"critic/loss{i + 1}_{k + 1}": loss for k, loss in enumerate(losses)})
        sample = self.buffer.sample(c.batch_size, self.generator)
        game = deterministic_local_game(sample["obs1"], sample["obs2"], policies, view.critics,
                                        zero_sum=view.zero_sum, mixed=self.mixed)
        step = self.update(game)  # a plain LocalGame: PerPlayerUpdate runs the rule itself
        return (step.delta1, step.delta2)[i], step, game, metrics

    def _modelled_step(self, batch) -> dict:
        agents = self._require_agents()
        self.buffer.add(batch)
        (d1, step1, game1, info1), (d2, step2, game2, info2) = (self.player_step(i, batch) for i in (0, 1))
        self.apply(Step(d1, d2, 0, 0.0, True, 0))
        for i, view in enumerate(self.players):
            _polyak(view.own_target, agents[i], self.config.tau)
            _polyak(view.opponent_target, view.opponent, self.config.tau)
        self.iteration += 1
        info = {**info1, **info2}
        info.update({
            "optim/iterations": step1.iterations + step2.iterations,
            "optim/residual": max(float(step1.residual), float(step2.residual)),
            "optim/converged": bool(step1.converged and step2.converged),
            "optim/matvecs": step1.matvecs + step2.matvecs,
            "optim/step_norm1": float(d1.norm()),
            "optim/step_norm2": float(d2.norm()),
            "optim/grad_norm1": float(game1.g1.norm()),
            "optim/grad_norm2": float(game2.g2.norm()),
            "optim/Q1": game1.info["Q1"],
            "optim/Q2": game2.info["Q2"],
        })
        return info


class _PlayerView:
    """Player i's own pieces under an opponent model: its target mu_i', the target copy mu_j_hat' of its
    model of the opponent, and its critics (learned from the replay buffer, or the fixed ones given)."""

    def __init__(self, optimizer: IPODPG, i: int, batch, own: nn.Module, opponent: nn.Module):
        c = optimizer.config
        self.zero_sum = c.zero_sum if c.zero_sum is not None else rewards_are_zero_sum(batch)
        self.own_target, self.opponent_target = copy.deepcopy(own), copy.deepcopy(opponent)
        self.learned, self.critic_targets, self.critic_optimizers = [], [], []
        if optimizer.fixed_critics:
            self.critics = optimizer.critics
            return
        dtype = next(own.parameters()).dtype
        obs = tuple(Box(-math.inf, math.inf, shape=(int(o.shape[-1]),)) for o in (batch.obs1, batch.obs2))
        act = tuple(Box(-math.inf, math.inf, shape=(int(a.shape[-1]),)) for a in (batch.act1, batch.act2))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed + i)
            self.learned = [QCritic(obs, act, hidden=tuple(c.critic_hidden)).to(dtype)
                            for _ in range(1 if self.zero_sum else 2)]
        self.critic_targets = [copy.deepcopy(q) for q in self.learned]
        self.critic_optimizers = [torch.optim.Adam(q.parameters(), lr=c.critic_lr) for q in self.learned]
        self.critics = (self.learned[0], NegatedCritic(self.learned[0]) if self.zero_sum else self.learned[1])


class DeterministicCopy:
    """The architecture of :func:`deterministic_opponent_model`: ``(obs_dim, action_space) ->``
    :class:`DeterministicPolicy` (``hidden``) with a fixed unit std, so its negative log-likelihood is
    ||a - mu(s)||^2 / 2 + const and eq. (24) is least squares."""

    def __init__(self, hidden: Sequence[int] = (64, 64)):
        self.hidden = tuple(hidden)

    def __call__(self, obs_dim: int, action_space) -> DeterministicPolicy:
        return DeterministicPolicy(obs_dim, int(action_space.shape[0]), self.hidden, exploration_std=1.0)


def deterministic_opponent_model(hidden: Sequence[int] = (64, 64), epochs: int = 50, lr: float = 0.05,
                                 seed: int = 0):
    """``mle`` (eq. 24) for a deterministic opponent a_j = mu_j(s) + N(0, sigma^2): the likelihood of the
    observed (noisy) actions is maximised by least squares, min sum_m ||a_j,m - mu_hat(s_m)||^2, whatever
    sigma (so the unknown exploration noise is not needed). Fitted by ``epochs`` Adam steps (``lr``) per
    batch, warm-started; ``hidden=()`` is a linear policy. ``ipo-dpg`` maps ``opponent_model="mle"`` here."""
    from ipo_robust.opponent import MaximumLikelihoodOpponent

    return MaximumLikelihoodOpponent(DeterministicCopy(hidden), epochs=epochs, lr=lr, seed=seed)


class MADDPG(IPODPG):
    """MADDPG (Lowe et al. 2017): independent deterministic gradients (eq. 22) with centralised critics."""

    interactive = False
    mixed = False

    @dataclass
    class Config(IPODPG.Config):
        OWNER = "optimizer 'maddpg'"


def _td_fit(buffer, generator, policy_targets, learned, critic_targets, optimizers, c) -> list[float]:
    """``c.critic_updates`` TD steps on replay minibatches for the critics ``learned`` (Q_k learns r_k):
    y_k = r_k + gamma (1 - terminated) Q_k'(s', mu1'(s'), mu2'(s')), ``policy_targets`` = (mu1', mu2')."""
    losses = [0.0] * len(learned)
    for _ in range(c.critic_updates):
        sample = buffer.sample(c.batch_size, generator)
        with torch.no_grad():
            next1 = policy_targets[0].mu(sample["next_obs1"])
            next2 = policy_targets[1].mu(sample["next_obs2"])
            alive = 1.0 - sample["terminated"].to(next1.dtype)
        for k, (critic, target, optimizer) in enumerate(zip(learned, critic_targets, optimizers, strict=True)):
            rew = sample[f"rew{k + 1}"]
            with torch.no_grad():
                y = rew + c.gamma * alive * target(sample["next_obs1"], sample["next_obs2"], next1, next2)
            with torch.enable_grad():
                q = critic(sample["obs1"], sample["obs2"], sample["act1"], sample["act2"])
                loss = ((q - y.to(q.dtype)) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            losses[k] = float(loss.detach())
            _polyak(target, critic, c.tau)
    return losses


def _polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source (parameters in flat order)."""
    with torch.no_grad():
        t_params, s_params = list(target.parameters()), list(source.parameters())
        if not t_params:
            return
        mixed = (1.0 - tau) * parameters_to_vector(t_params) + tau * parameters_to_vector(s_params)
        vector_to_parameters(mixed, t_params)


@hookimpl
def register_optimizers(register):
    register("ipo-dpg", IPODPG)
    register("maddpg", MADDPG)


@hookimpl
def register_envs(register):
    register("continuous-bilinear", bilinear_game)
    register("continuous-quadratic", quadratic_game)
