"""Independent PPO for both players: the self-play baseline of Bansal et al. (2018).

Schulman et al. (2017), "Proximal Policy Optimization Algorithms", run by each player on its own
rewards, as Bansal et al. (2018, "Emergent Complexity via Multi-Agent Competition") train both sides
of a competitive game. Per player i, on a batch collected with theta_old:

    delta_t  = r_t + gamma V_i(s_{t+1}) (1 - terminated_t) - V_i(s_t)          TD error
    A_t      = delta_t + gamma lambda (1 - done_t) A_{t+1}                         GAE (Schulman et al. 2016)
    R_t      = A_t + V_i(s_t)                                                      critic target
    L^CLIP   = mean_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)            eq. (7) of the PPO paper
    loss     = -L^CLIP + vf_coef mean (V_i(s_t) - R_t)^2 / 2 - ent_coef mean H[pi_i(.|o_t)]

minimised by ``torch.optim.Adam`` over ``epochs`` passes of ``minibatches`` shuffled minibatches. V_i is
a centralised :class:`~ipo_robust.value_functions.ValueCritic` per player (it sees both observations).
Episodes cut at the batch end, and episodes truncated by a time limit, are bootstrapped with
V_i(next_obs) (``Batch.next_obs1/2``); only ``terminated`` stops the bootstrap. Advantages are
normalised per minibatch (``normalize_advantages``): allowed here, PPO is a baseline, not an unbiased
IPO estimator.

``train="player1"`` (or ``"player2"``) updates that player only and leaves the other one frozen, bit
for bit: the adversarial-policy protocol of Gleave et al. (2020) trains an attacker this way.

PPO learns from samples only: it is a :class:`~ipo_robust.optim.optimizer.SampleOptimizer` (no local
game, no update rule; ``capabilities.local_game`` is False); use ``step(batch)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ipo_robust import mlp_grad
from ipo_robust.envs.base import Box
from ipo_robust.hookspecs import hookimpl
from ipo_robust.hyperparameters import (
    Hyperparameters,
    boolean,
    hidden_sizes,
    hyperparameter,
    non_negative,
    one_of,
    positive,
    positive_int,
    unit_interval,
)
from ipo_robust.optim.critics import adam
from ipo_robust.optim.optimizer import SampleOptimizer, player_kl
from ipo_robust.policies import GaussianMLPPolicy
from ipo_robust.threads import thread_map
from ipo_robust.value_functions import ValueCritic


def generalized_advantages(rew: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
                           done: torch.Tensor, terminated: torch.Tensor, gamma: float, lam: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and critic targets (Schulman et al. 2016, "High-Dimensional Continuous
    Control Using Generalized Advantage Estimation", eq. 16), time-major (T, N).

    values = V(s_t), next_values = V(s_{t+1}) from the observation after step t (before any reset).
    The TD error bootstraps unless the episode terminated; the recursion stops at every episode end
    (terminated or truncated) and at the end of the batch, where the partial episode is bootstrapped.
    Returns (advantages, returns = advantages + values), float64, on the inputs' device. The recursion runs in
    NumPy on the CPU (a step of it costs a few microseconds there against tens for torch's calls).
    """
    device = values.device
    rew, values, next_values = (x.detach().to("cpu", torch.float64).numpy() for x in (rew, values, next_values))
    not_terminated = (~terminated).cpu().numpy().astype(np.float64)
    decay = gamma * lam * (~done).cpu().numpy().astype(np.float64)
    delta = rew + gamma * next_values * not_terminated - values  # TD error
    advantages = np.empty_like(delta)
    lastgaelam = np.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        lastgaelam = delta[t] + decay[t] * lastgaelam
        advantages[t] = lastgaelam
    advantages = torch.from_numpy(advantages).to(device)
    return advantages, advantages + torch.from_numpy(values).to(device)


def value_critics(agents, obs_dims, hidden, seed: int) -> tuple[ValueCritic, ValueCritic]:
    """One centralised :class:`~ipo_robust.value_functions.ValueCritic` per player, on the observation widths
    ``obs_dims``, initialised from ``seed`` (the global generator untouched), each with its player's dtype and
    device."""
    spaces = tuple(Box(-float("inf"), float("inf"), shape=(int(d),)) for d in obs_dims)
    critics = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for agent in agents:
            first = next(agent.parameters())
            critics.append(ValueCritic(spaces, hidden=tuple(hidden)).to(first.device, first.dtype))
    return critics[0], critics[1]


def critic_values(critic, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(V(s_t), V(s_{t+1})) of a centralised ``critic`` on a batch, each (T, N), without gradients.

    Where an episode goes on inside the batch, the observation after step t is the one step t + 1 starts from,
    so its value is V(s_t) read one step on: the critic runs on the full batch once, and on ``next_obs`` only
    at episode ends, at the batch's last step, and wherever the two records of an observation differ (an env
    is trusted for nothing). On a first sumo-pushers batch (64 copies x 100 steps) that is about 130 rows of
    6,400 instead of a second full pass."""
    with torch.no_grad():
        values = critic(batch.obs1, batch.obs2)
        fresh = batch.done.clone()
        fresh[-1] = True
        for obs, after in ((batch.obs1, batch.next_obs1), (batch.obs2, batch.next_obs2)):
            differ = after[:-1] != obs[1:]
            fresh[:-1] |= differ.flatten(2).any(-1) if differ.dim() > 2 else differ
        next_values = torch.empty_like(values)
        next_values[:-1] = values[1:]
        rows = fresh.nonzero(as_tuple=True)
        next_values[rows] = critic(batch.next_obs1[rows], batch.next_obs2[rows])
    return values, next_values


def critic_targets(critic, rew: torch.Tensor, batch, gamma: float, lam: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and critic targets (:func:`generalized_advantages`) of one player's rewards ``rew``,
    with its centralised critic evaluated on the batch's observations and next observations
    (:func:`critic_values`)."""
    values, next_values = critic_values(critic, batch)
    return generalized_advantages(rew, values, next_values, batch.done, batch.terminated, gamma, lam)


def normalized(advantages: torch.Tensor) -> torch.Tensor:
    """A minibatch's advantages scaled to mean 0 and standard deviation 1 (a single sample stays as it is)."""
    if advantages.numel() < 2:
        return advantages
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def normalized_minibatches(advantages: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`normalized` on each minibatch ``advantages[k size:(k + 1) size]`` of a shuffled epoch (the last one
    may be shorter), the full-size ones in one pass over a (minibatches, size) view."""
    full = advantages.numel() // size * size
    if size < 2 or full == 0:
        return torch.cat([normalized(advantages[start:start + size]) for start in range(0, advantages.numel(), size)])
    rows = advantages[:full].view(-1, size)
    out = ((rows - rows.mean(1, keepdim=True)) / (rows.std(1, keepdim=True) + 1e-8)).view(-1)
    return out if full == advantages.numel() else torch.cat([out, normalized(advantages[full:])])


def clipped_surrogate(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> torch.Tensor:
    """PPO's clipped objective L^CLIP = mean min(rho A, clip(rho, 1 - eps, 1 + eps) A), to maximise
    (Schulman et al. 2017, eq. 7). Its gradient vanishes on samples whose ratio left the clip range in
    the direction the advantage favours."""
    pg_loss1, pg_loss2 = surrogate_terms((logp - logp_old).exp(), advantages, clip)
    return torch.min(pg_loss1, pg_loss2).mean()


def surrogate_terms(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms whose minimum is L^CLIP: rho A and clip(rho, 1 - eps, 1 + eps) A."""
    return ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages


def _gradients(agent, critic, minibatch: dict, c) -> tuple[torch.Tensor, ...]:
    """Backpropagate the PPO loss of one minibatch (module docstring) into the ``.grad`` of the player's policy
    and critic; returns (L^CLIP, the critic's loss, the mean entropy, the probability ratios), detached."""
    dist = agent.distribution(minibatch["obs"])
    logp = dist.log_prob(minibatch["act"])
    objective = clipped_surrogate(logp, minibatch["logp_old"], minibatch["adv"], c.clip)  # eq. (7)
    v_loss = 0.5 * ((critic(minibatch["obs1"], minibatch["obs2"]) - minibatch["ret"]) ** 2).mean()
    entropy = dist.entropy().mean()
    loss = -objective + c.vf_coef * v_loss - c.ent_coef * entropy
    loss.backward()
    ratio = (logp.detach() - minibatch["logp_old"]).exp()
    return objective.detach(), v_loss.detach(), entropy.detach(), ratio


def _by_hand(agent, critic) -> tuple[list, list] | None:
    """The layers of a :class:`GaussianMLPPolicy` and a :class:`ValueCritic` whose gradients
    :mod:`ipo_robust.mlp_grad` writes out (CPU float32/64 MLPs of linear and tanh/ReLU layers, every parameter
    trainable), else None."""
    if type(agent) is not GaussianMLPPolicy or type(critic) is not ValueCritic \
            or not all(p.requires_grad for p in (*agent.parameters(), *critic.parameters())):
        return None  # a frozen tensor must keep grad None, which only autograd's path does
    policy, value = mlp_grad.linear_layers(agent.mean_net), mlp_grad.linear_layers(critic.net)
    if policy is None or value is None or agent.log_std.dtype != agent.mean_net[0].weight.dtype:
        return None
    return policy, value


def _gradients_by_hand(agent, policy_layers: list, critic_layers: list, minibatch: dict, c
                       ) -> tuple[torch.Tensor, ...]:
    """:func:`_gradients` for the layouts :func:`_by_hand` accepts, differentiated by hand: the same loss, its
    gradients equal to autograd's up to float rounding (tests/plugins/test_ppo.py), written to ``.grad``."""
    B, log_std = minibatch["obs"].shape[0], agent.log_std
    policy = mlp_grad.forward(policy_layers, minibatch["obs"])
    logp, z = mlp_grad.gaussian_log_prob(policy.output, log_std.detach(), minibatch["act"])
    ratio = (logp - minibatch["logp_old"]).exp()
    pg_loss1, pg_loss2 = surrogate_terms(ratio, minibatch["adv"], c.clip)
    objective = torch.min(pg_loss1, pg_loss2).mean()  # eq. (7)
    # d L^CLIP / d log pi = rho A / B where the unclipped term is the minimum, 0 where the clipped one is
    grad_logp = torch.where(pg_loss1 <= pg_loss2, pg_loss1, 0.0) / -B  # of the loss, -L^CLIP
    grad_mean, grad_log_std = mlp_grad.gaussian_log_prob_backward(grad_logp, z, log_std.detach())
    # the Gaussian's entropy is sum_j (log_std_j + 1/2 + log sqrt(2 pi)) in every state
    entropy = log_std.detach().sum() + log_std.numel() * (0.5 + math.log(math.sqrt(2 * math.pi)))
    log_std.grad = grad_log_std - c.ent_coef
    for p, g in zip(mlp_grad.parameters(policy_layers), mlp_grad.backward(policy, grad_mean), strict=True):
        p.grad = g
    # the critic's term of the loss, vf_coef mean (V - R)^2 / 2
    mse, grads = mlp_grad.squared_error(critic_layers, minibatch["features"], minibatch["ret"], 0.5 * c.vf_coef)
    for p, g in zip(mlp_grad.parameters(critic_layers), grads, strict=True):
        p.grad = g
    return objective, 0.5 * mse, entropy, ratio


def _integer(value) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"


@dataclass
class BatchReuseConfig(Hyperparameters):
    """What PPO and ipo-ppo share: the discount, GAE, the clip, the passes over a batch, the critics."""

    gamma: float = hyperparameter(0.99, unit_interval, "discount of J_i = E[sum_t gamma^t r_i,t]")
    clip: float = hyperparameter(0.2, positive, "clip range epsilon of the probability ratio (ipo-ppo: the "
                                 "joint ratio of both players)")
    gae_lambda: float = hyperparameter(0.95, unit_interval, "GAE lambda")
    epochs: int = hyperparameter(4, positive_int, "passes over the batch per step")
    minibatches: int = hyperparameter(4, positive_int, "minibatches per pass")
    normalize_advantages: bool = hyperparameter(True, boolean, "normalise advantages per minibatch")
    critic_hidden: tuple = hyperparameter((64, 64), hidden_sizes, "hidden widths of the ValueCritics")
    seed: int = hyperparameter(0, _integer, "seed of the critics' weights and the minibatch shuffle")


class PPO(SampleOptimizer):
    """Independent PPO with clipping and GAE for both players (module docstring)."""

    @dataclass
    class Config(BatchReuseConfig):
        lr: float = hyperparameter(3e-4, positive, "Adam learning rate (policy and critic)")
        vf_coef: float = hyperparameter(0.5, non_negative, "weight of the critic's squared error")
        ent_coef: float = hyperparameter(0.0, non_negative, "weight of the entropy bonus")
        max_grad_norm: float = hyperparameter(0.5, positive, "global gradient-norm clip per player")
        train: str = hyperparameter("both", one_of("both", "player1", "player2"),
                                    "which players are updated; the other stays frozen, bit for bit (an "
                                    "adversary trained against a fixed victim, Gleave et al. 2020)")

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        super().__init__(agents, opponent_model, **hyperparameters)
        self.critics: tuple[ValueCritic, ValueCritic] | None = None
        self.optimizers: tuple[torch.optim.Optimizer, ...] = ()
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def _build(self, batch) -> None:
        """Critics (centralised V_i) and one Adam per player, sized from the first batch."""
        self._build_from_dims([int(o.shape[-1]) for o in (batch.obs1, batch.obs2)])

    def _build_from_dims(self, obs_dims) -> None:
        self._obs_dims = [int(d) for d in obs_dims]
        agents = self._require_agents()
        self.critics = critics = value_critics(agents, self._obs_dims, self.config.critic_hidden, self.config.seed)
        self.optimizers = tuple(adam([*agent.parameters(), *critic.parameters()], lr=self.config.lr, eps=1e-5)
                                for agent, critic in zip(agents, critics, strict=True))

    def state_dict(self) -> dict:
        state = {"iteration": self.iteration, "generator": self.generator.get_state()}
        if self.critics is not None:
            state.update(obs_dims=self._obs_dims, critics=[c.state_dict() for c in self.critics],
                         optimizers=[o.state_dict() for o in self.optimizers])
        return state

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        if "critics" in state:
            self._build_from_dims(state["obs_dims"])
            for critic, optimizer, weights, moments in zip(self.critics, self.optimizers, state["critics"],
                                                           state["optimizers"], strict=True):
                critic.load_state_dict(weights)
                optimizer.load_state_dict(moments)

    def step(self, batch) -> dict:
        c = self.config
        if self.critics is None:
            self._build(batch)
        agents = self._require_agents()
        T, N = batch.num_steps, batch.num_envs
        M = T * N
        size = max(M // c.minibatches, 1)
        players = [i for i in (0, 1) if c.train in ("both", f"player{i + 1}")]  # a frozen player keeps its weights
        # the minibatch orders, drawn before the players' updates run side by side (threads): the same draws
        # in the same order whatever the thread count
        orders = {i: [torch.randperm(M, generator=self.generator).to(batch.obs1.device) for _ in range(c.epochs)]
                  for i in players}

        def update(i: int) -> dict:
            agent, critic, optimizer = agents[i], self.critics[i], self.optimizers[i]
            obs = (batch.obs1, batch.obs2)[i]
            act = (batch.act1, batch.act2)[i]
            rew = (batch.rew1, batch.rew2)[i]
            dtype = next(agent.parameters()).dtype
            with torch.no_grad():
                before = agent.distribution(obs.to(dtype))
                logp_old = before.log_prob(act).reshape(M)
            advantages, returns = critic_targets(critic, rew, batch, c.gamma, c.gae_lambda)
            flat = {"obs": obs.reshape(M, -1).to(dtype), "act": act.reshape(M, *act.shape[2:]),
                    "logp_old": logp_old, "adv": advantages.reshape(M).to(dtype), "ret": returns.reshape(M).to(dtype)}
            by_hand = _by_hand(agent, critic)
            if by_hand is None:
                flat.update(obs1=batch.obs1.reshape(M, -1), obs2=batch.obs2.reshape(M, -1))
            else:
                flat["features"] = critic.features(batch.obs1.reshape(M, -1), batch.obs2.reshape(M, -1))
            params = [p for g in optimizer.param_groups for p in g["params"]]
            clipfracs = []
            for order in orders[i]:
                shuffled = {key: value.index_select(0, order) for key, value in flat.items()}
                if c.normalize_advantages:
                    shuffled["adv"] = normalized_minibatches(shuffled["adv"], size)
                for start in range(0, M, size):
                    minibatch = {key: value[start:start + size] for key, value in shuffled.items()}
                    if by_hand is None:
                        optimizer.zero_grad()
                        objective, v_loss, entropy, ratio = _gradients(agent, critic, minibatch, c)
                    else:
                        objective, v_loss, entropy, ratio = _gradients_by_hand(agent, *by_hand, minibatch, c)
                    nn.utils.clip_grad_norm_(params, c.max_grad_norm)
                    optimizer.step()
                    clipfracs.append(((ratio - 1.0).abs() > c.clip).sum() / ratio.numel())
            with torch.no_grad():
                kl = player_kl(before, agent.distribution(obs.to(dtype)))
            # the last minibatch's losses; the clip fraction averaged over the minibatches
            return {f"optim/clipfrac{i + 1}": float(torch.stack(clipfracs).to(torch.float64).mean()),
                    f"optim/surrogate{i + 1}": float(objective), f"optim/value_loss{i + 1}": float(v_loss),
                    f"optim/entropy{i + 1}": float(entropy), f"optim/kl{i + 1}": kl}

        info: dict = {"optim/kl1": 0.0, "optim/kl2": 0.0}  # a frozen player's policy does not move
        for player_info in thread_map(update, players):
            info.update(player_info)
        returns1, returns2 = batch.discounted_returns(c.gamma) if batch.num_episodes else (None, None)
        if returns1 is not None:
            info["train/J1"], info["train/J2"] = float(returns1.mean()), float(returns2.mean())
            info["train/episodes"] = batch.num_episodes
        self.iteration += 1
        return info


@hookimpl
def register_optimizers(register):
    register("ppo", PPO)
