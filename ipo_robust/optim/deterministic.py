"""The deterministic local game (seed sec. 4.3, eqs. 21-23) and its estimator: replay buffer, TD critics, targets.

Setting. Player i acts by a deterministic policy a_i = mu_i(s; theta_i) (:class:`~ipo_robust.policies.
DeterministicPolicy`, or :class:`~ipo_robust.policies.ConstantPolicy` mu_i = theta_i) and explores with
Gaussian noise while collecting. Each player has a centralised critic Q_i(s, a1, a2), learned off-policy
from a replay buffer by TD regression on r_i + gamma (1 - terminated) Q_i'(s', mu1'(s'), mu2'(s')) with
target networks Q_i', mu_i' (Polyak averaging, rate ``tau``), as in DDPG (Lillicrap et al. 2016) and
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
the critic, one reverse product of mu1 (:class:`~ipo_robust.optim.jacobians.PolicyJacobian`). The critic
must be twice differentiable in the actions (tanh MLPs are; a ReLU critic has d^2 Q / da1 da2 = 0 almost
everywhere). For a game whose rewards are zero-sum (r2 = -r1, or ``zero_sum=True``) one critic is learned
and Q2 = -Q1 (:class:`~ipo_robust.value_functions.NegatedCritic`), so D21 = -D12^T exactly.

The estimator. :class:`DeterministicEstimator` turns a Batch into that local game: it stores the batch in
its :class:`~ipo_robust.replay.ReplayBuffer`, takes ``critic_updates`` TD steps, and evaluates eqs.
(22)-(23) on ``batch_size`` replay states. After the step is applied, :meth:`DeterministicEstimator.
update_targets` moves the target networks. ``critics=(Q1, Q2)`` (modules ``Q(obs1, obs2, act1, act2) ->
(B,)``) replaces the learned critics; they are used as given and never trained (closed-form games).

Opponent models (seed sec. 5). With a model each player i has its own view (:meth:`DeterministicEstimator.
player_view`): mu_j(s) and J_mu_j(s) in eqs. (22)-(23) are those of the model's mu_j_hat, and player i's
critics are its own, learned from the buffer's observed joint actions with the targets (mu_i', mu_j_hat'),
mu_j_hat' a Polyak copy of the model. The two views travel as a
:class:`~ipo_robust.optim.views.ModelledLocalGame`; the per-player rule keeps d_i from view i.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.batch import Batch
from ipo_robust.errors import ConfigError
from ipo_robust.optim.critics import critic_spaces
from ipo_robust.optim.jacobians import PolicyJacobian
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator
from ipo_robust.optim.sample import rewards_are_zero_sum
from ipo_robust.optim.views import ModelledLocalGame
from ipo_robust.replay import ReplayBuffer
from ipo_robust.value_functions import NegatedCritic, QCritic


# --------------------------------------------------------------------------------------------------
# The local game of eqs. (22)-(23)
# --------------------------------------------------------------------------------------------------
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
# Critics learned by TD, with target networks
# --------------------------------------------------------------------------------------------------
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source (parameters in flat order)."""
    with torch.no_grad():
        t_params, s_params = list(target.parameters()), list(source.parameters())
        if not t_params:
            return
        mixed = (1.0 - tau) * parameters_to_vector(t_params) + tau * parameters_to_vector(s_params)
        vector_to_parameters(mixed, t_params)


class TDCritics:
    """The critics one local game is computed with, and the target networks they learn against.

    ``policies``: (mu1, mu2), the policies of the local game, which the targets (mu1', mu2') follow: the
    agents, or under an opponent model one player's own policy and its estimate of the opponent's.
    ``critics``: (Q1, Q2), the ``given`` ones (never trained), else learned: one tanh MLP QCritic per
    player (``hidden``, Adam ``lr``, weights seeded by ``seed``), or one with Q2 = -Q1 when ``zero_sum``;
    each with a target copy Q_k'.
    """

    def __init__(self, batch: Batch, policies, zero_sum: bool, seed: int, hidden: Sequence[int], lr: float,
                 dtype: torch.dtype, given=None):
        self.zero_sum, self.policies = zero_sum, policies
        self.targets = tuple(copy.deepcopy(policy) for policy in policies)
        self.learned: list[nn.Module] = []
        self.critic_targets: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        if given is not None:
            self.critics = given
            return
        observation_spaces, action_spaces = critic_spaces(batch)
        with torch.random.fork_rng(devices=[]):  # seeded critic weights; the global RNG is left alone
            torch.manual_seed(seed)
            self.learned = [QCritic(observation_spaces, action_spaces, hidden=tuple(hidden)).to(batch.obs1.device,
                                                                                                 dtype)
                            for _ in range(1 if zero_sum else 2)]
        self.critic_targets = [copy.deepcopy(q) for q in self.learned]
        self.optimizers = [torch.optim.Adam(q.parameters(), lr=lr) for q in self.learned]
        self.critics = (self.learned[0], NegatedCritic(self.learned[0]) if zero_sum else self.learned[1])


# --------------------------------------------------------------------------------------------------
# The estimator: Batch -> LocalGame
# --------------------------------------------------------------------------------------------------
class DeterministicEstimator:
    """Batch -> LocalGame by eqs. (22)-(23) on replay states; owns the replay buffer, the critics and the
    target networks (module docstring).

    gamma: discount of the TD targets. critic_lr, critic_hidden: Adam learning rate and hidden widths of the
    learned critics. critic_updates: TD steps per batch. batch_size: replay minibatch of each TD step and the
    states of eqs. (22)-(23). buffer_size: replay capacity (transitions). tau: Polyak rate of the targets.
    zero_sum: declared, or None to detect it from the first batch's rewards. seed: the critics' weights
    (player i's own critics under an opponent model: seed + i) and the replay sampling. critics: exact (Q1,
    Q2), used as given. mixed: estimate D12, D21 (False: zero operators, for independent learners).
    """

    def __init__(self, gamma: float = 0.99, critic_lr: float = 1e-3, critic_hidden: Sequence[int] = (64, 64),
                 critic_updates: int = 50, batch_size: int = 256, buffer_size: int = 100_000, tau: float = 0.01,
                 zero_sum: bool | None = None, seed: int = 0, critics=None, mixed: bool = True):
        if critics is not None and (len(critics) != 2 or not all(callable(q) for q in critics)):
            raise ValueError("critics must be a pair (Q1, Q2) of callables Q(obs1, obs2, act1, act2) -> (B,)")
        self.gamma, self.critic_lr, self.critic_hidden = float(gamma), float(critic_lr), tuple(critic_hidden)
        self.critic_updates, self.batch_size, self.tau = int(critic_updates), int(batch_size), float(tau)
        self.zero_sum, self.seed, self.mixed = zero_sum, int(seed), bool(mixed)
        self.given_critics = tuple(critics) if critics is not None else None
        self.buffer = ReplayBuffer(buffer_size)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.central: TDCritics | None = None  # both players' critics, built on the first batch
        self.views: list[TDCritics | None] = [None, None]  # player i's own critics under an opponent model

    @classmethod
    def from_config(cls, config, critics=None, mixed: bool = True) -> DeterministicEstimator:
        """From an optimizer's hyperparameters (``ipo-dpg``'s Config: the fields named in the class docstring)."""
        return cls(config.gamma, config.critic_lr, config.critic_hidden, config.critic_updates, config.batch_size,
                   config.buffer_size, config.tau, config.zero_sum, config.seed, critics, mixed)

    def __call__(self, batch: Batch, policies, opponent_model=None) -> LocalGame:
        """Store the batch, fit the critics, and the local game at the policies' current parameters; with an
        opponent model, player 1's view carrying player 2's (a ModelledLocalGame). ``info``: the critics'
        TD losses (``critic/...``) and the model's metrics (``opponent/...``) beside ``Q1``, ``Q2``."""
        if opponent_model is not None:
            self.buffer.add(batch)
            view1, view2 = (self.player_view(i, batch, policies, opponent_model) for i in (0, 1))
            fields = {f.name: getattr(view1, f.name) for f in dataclasses.fields(LocalGame)}
            fields["info"] = {**view1.info, **{key: value for key, value in view2.info.items() if "/" in key}}
            return ModelledLocalGame(**fields, view2=view2)
        if self.central is None:
            self.central = self._critics(batch, policies, self.seed, dtype=_dtype(policies[0]))
        self.buffer.add(batch)
        metrics = self.fit(batch)
        return self._local_game(self.central, metrics)

    def player_view(self, i: int, batch: Batch, policies, opponent_model) -> LocalGame:
        """Player ``i``'s (0 or 1) local game, without reading the opponent's parameters (unless the model is
        centralised): the model observes the opponent's (obs, act) in ``batch`` and returns mu_j_hat; player
        i's own critics take their TD steps; eqs. (22)-(23) at (mu_i, mu_j_hat). ``batch`` must already be
        in the buffer. ``info``: the model's and the critics' metrics beside ``Q1``, ``Q2``."""
        j = 1 - i
        own = policies[i]
        metrics = {**(opponent_model.observe(batch, j + 1) or {})}
        centralised = opponent_model.centralised
        opponent = opponent_model.estimate(j + 1, policies[j] if centralised else None)
        if not callable(getattr(opponent, "mu", None)):
            raise ConfigError(f"the opponent model must return a deterministic policy with mu(obs) "
                              f"(got {type(opponent).__name__}); use opponent_model='mle' (a least-squares "
                              "copy: ipo_robust.plugins.dpg.deterministic_opponent_model) or 'oracle'")
        view_policies = (own, opponent) if i == 0 else (opponent, own)
        if self.views[i] is None:
            self.views[i] = self._critics(batch, view_policies, self.seed + i, dtype=_dtype(own))
        view = self.views[i]
        view.policies = view_policies  # the estimate mu_j_hat its target copy follows
        if self.given_critics is None and self.critic_updates > 0:
            losses = self._td_fit(view)
            metrics.update({f"critic/loss{i + 1}_{k + 1}": loss for k, loss in enumerate(losses)})
        return self._local_game(view, metrics)

    def fit(self, batch: Batch | None = None, agents=None) -> dict:
        """``critic_updates`` TD steps of the centralised critics on replay minibatches (the batch must already
        be stored): y_k = r_k + gamma (1 - terminated) Q_k'(s', mu1'(s'), mu2'(s')). ``critic/loss{k}``."""
        if self.central is None or self.given_critics is not None or self.critic_updates == 0 \
                or self.buffer.size == 0:
            return {}
        return {f"critic/loss{k + 1}": loss for k, loss in enumerate(self._td_fit(self.central))}

    def update_targets(self) -> None:
        """After the step is applied: each target network moves toward the policy it follows (Polyak, tau)."""
        for critics in (self.central, *self.views):
            if critics is not None:
                for target, policy in zip(critics.targets, critics.policies, strict=True):
                    polyak(target, policy, self.tau)

    def state_dict(self) -> dict:
        return {}  # the buffer and the targets are not checkpointed: ipo-dpg and maddpg are not resumable

    def load_state_dict(self, state: dict) -> None:
        pass

    # -- pieces -------------------------------------------------------------------------------------
    def _critics(self, batch: Batch, policies, seed: int, dtype: torch.dtype) -> TDCritics:
        zero_sum = rewards_are_zero_sum(batch) if self.zero_sum is None else self.zero_sum
        return TDCritics(batch, policies, zero_sum, seed, self.critic_hidden, self.critic_lr, dtype,
                         given=self.given_critics)

    def _local_game(self, critics: TDCritics, metrics: dict) -> LocalGame:
        """Eqs. (22)-(23) on ``batch_size`` replay states, the metrics put first in ``info``."""
        sample = self.buffer.sample(self.batch_size, self.generator)
        game = deterministic_local_game(sample["obs1"], sample["obs2"], critics.policies, critics.critics,
                                        zero_sum=critics.zero_sum, mixed=self.mixed)
        game.info = {**metrics, **game.info}
        return game

    def _td_fit(self, critics: TDCritics) -> list[float]:
        """``critic_updates`` TD steps for the learned critics (Q_k learns r_k):
        y_k = r_k + gamma (1 - terminated) Q_k'(s', mu1'(s'), mu2'(s')), (mu1', mu2') = ``critics.targets``."""
        losses = [0.0] * len(critics.learned)
        for _ in range(self.critic_updates):
            sample = self.buffer.sample(self.batch_size, self.generator)
            with torch.no_grad():
                next1 = critics.targets[0].mu(sample["next_obs1"])
                next2 = critics.targets[1].mu(sample["next_obs2"])
                alive = 1.0 - sample["terminated"].to(next1.dtype)
            for k, (critic, target, optimizer) in enumerate(zip(critics.learned, critics.critic_targets,
                                                                critics.optimizers, strict=True)):
                rew = sample[f"rew{k + 1}"]
                with torch.no_grad():
                    y = rew + self.gamma * alive * target(sample["next_obs1"], sample["next_obs2"], next1, next2)
                with torch.enable_grad():
                    q = critic(sample["obs1"], sample["obs2"], sample["act1"], sample["act2"])
                    loss = ((q - y.to(q.dtype)) ** 2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                losses[k] = float(loss.detach())
                polyak(target, critic, self.tau)
        return losses


def _dtype(policy: nn.Module) -> torch.dtype:
    return next(policy.parameters()).dtype
