"""The optimizer interface: an estimator (batch -> LocalGame) joined to an update rule (LocalGame -> Step).

Every optimizer plugin's factory is called as ``factory(agents, **hyperparameters)``. ``agents`` is the
pair of policies (``torch.nn.Module`` with ``distribution(obs)``) the optimizer moves, or ``None`` when
only the update rule is used (exact games hand it exact local games and apply the steps themselves).

Sampling path, one call per iteration::

    info = optimizer.step(batch)   # = apply(update(local_game(batch))), plus diagnostics

``local_game(batch)`` is the sample estimate of seed eqs. (12)-(13) (unbiased, no advantage
normalisation); ``update`` is the optimizer's rule; ``info`` holds namespaced metrics
(``optim/iterations``, ``optim/residual``, ``optim/kl1`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.hyperparameters import (
    Hyperparameters,
    hyperparameter,
    one_of,
    positive,
    positive_int,
    positive_int_or_none,
    positive_or_none,
    unit_interval,
)
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.update import Step


def bool_or_none(value) -> str | None:
    return None if value is None or isinstance(value, bool) else "true, false or None (detect from rewards)"


@dataclass
class SampleConfig(Hyperparameters):
    """Hyperparameters of the sample estimator every optimizer shares."""

    gamma: float = hyperparameter(0.99, unit_interval, "discount of J_i = E[sum_t gamma^t r_i,t]")
    method: str = hyperparameter("auto", one_of("auto", "layer-factors", "surrogate", "double-backward",
                                                "forward-mode", "factors"),
                                 "how mixed-Hessian products are computed (estimators module)")
    zero_sum: bool | None = hyperparameter(None, bool_or_none,
                                           "declare the game zero-sum; None: zero-sum iff r2 = -r1 in the batch")


@dataclass
class CriticConfig(SampleConfig):
    """The sample estimator plus the learned critics that reduce its variance."""

    critic: str = hyperparameter("none", one_of("none", "value", "q"),
                                 "variance reduction: 'value' = V(s) baselines (eqs. 12-13 stay unbiased), "
                                 "'q' = the critic form of eq. (14) with Q(s, a1, a2); fitted on each batch "
                                 "after its update and used from the next one")
    critic_lr: float = hyperparameter(1e-2, positive, "Adam learning rate of the critics")
    critic_epochs: int = hyperparameter(20, positive_int, "full-batch critic regression steps per batch")


@dataclass
class NaturalConfig(CriticConfig):
    """Hyperparameters of the Fisher-metric family (natural CGD, NPG, TRPO, IPO-TRPO)."""

    kl: float = hyperparameter(0.01, positive, "KL budget delta per player and step")
    damping: float = hyperparameter(1e-4, positive, "Fisher damping (F + damping I)")
    rtol: float | None = hyperparameter(None, positive_or_none,
                                        "solver tolerance; None: 1e-10 in float64, 1e-6 in float32")
    max_iter: int | None = hyperparameter(100, positive_int_or_none,
                                          "solver iteration cap (a float32 solve can stall short of rtol)")


class TwoAgentOptimizer:
    """Base class of the built-in optimizers.

    Subclasses set ``Config`` (a :class:`Hyperparameters` dataclass, usually extending
    :class:`SampleConfig`) and implement :meth:`update`.
    """

    Config: ClassVar[type[Hyperparameters]]
    #: uses the mixed Hessians D12, D21 (an IPO optimizer) rather than only g1, g2
    interactive: ClassVar[bool] = False
    #: needs the Fisher operators F1, F2 in the local game
    needs_fisher: ClassVar[bool] = False

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        """``opponent_model``: None (the true opponent parameters, as before), a registered opponent-model
        name (``"oracle"``, ``"mle"``) or an object with ``observe``/``estimate`` (:mod:`ipo_robust.opponent`):
        each player's update is then computed from its own view of the local game, through its model of the
        opponent, never from the opponent's true parameters (unless the model is centralised)."""
        self.config = self.Config.build(**hyperparameters)
        if agents is not None and (len(agents) != 2 or not all(isinstance(a, torch.nn.Module) for a in agents)):
            raise ValueError("agents must be a pair of torch.nn.Module policies (see ipo_robust.make_agents)")
        self.agents = agents
        self.iteration = 0
        self.critics: tuple[torch.nn.Module, torch.nn.Module] | None = None  # built on the first batch
        self.opponent_model = None
        if opponent_model is not None:
            from ipo_robust.opponent import attach_opponent_model

            self.opponent_model = attach_opponent_model(self, opponent_model)  # wraps update per player

    # -- the update rule ------------------------------------------------------------------------
    def update(self, game: LocalGame) -> Step:
        """The parameter change of both players for one local game."""
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def apply(self, step: Step) -> None:
        """Add the step to the agents' parameters (flat order: ``parameters_to_vector``)."""
        for agent, delta in zip(self._require_agents(), (step.delta1, step.delta2), strict=True):
            with torch.no_grad():
                parameters = list(agent.parameters())
                theta = parameters_to_vector(parameters)
                vector_to_parameters(theta + delta.to(theta), parameters)

    # -- the sample estimator -------------------------------------------------------------------
    def local_game(self, batch) -> LocalGame:
        """The sample estimate of the local game at the agents' current parameters (eqs. 12-13)."""
        from ipo_robust.optim.estimators import estimate_local_game

        policy1, policy2 = self._require_agents()
        config = self.config
        zero_sum = getattr(config, "zero_sum", None)
        if zero_sum is None:
            zero_sum = rewards_are_zero_sum(batch)
        critic = getattr(config, "critic", "none")
        options = {}
        if critic == "value" and self.critics is not None:
            options["baselines"] = self.critics  # state-only baselines: unbiased (estimators docstring)
        elif critic == "q" and self.critics is not None:
            options.update(estimator="critic", critics=self.critics)  # eq. (14)
        options.update(gamma=getattr(config, "gamma", 0.99), fisher=self.needs_fisher, zero_sum=zero_sum,
                       method=getattr(config, "method", "auto"))
        if self.opponent_model is not None:
            # player 1's view (theta1, its model of theta2) and player 2's view (its model of theta1, theta2);
            # the update keeps d1 from view 1 and d2 from view 2 (ipo_robust.opponent)
            from ipo_robust.opponent import modelled_local_game

            return modelled_local_game(batch, (policy1, policy2), self.opponent_model, **options)
        return estimate_local_game(batch, policy1, policy2, **options)

    def step(self, batch) -> dict:
        """One iteration on a batch collected with the current parameters; returns metrics."""
        game = self.local_game(batch)
        step = self.update(game)
        before = self._distributions(batch)
        self.apply(step)
        self.iteration += 1
        info = self.step_info(game, step, before, batch)
        info.update(self.fit_critics(batch))
        return info

    # -- checkpointing ------------------------------------------------------------------------------
    #: False for optimizers whose state (replay buffers, target networks) is not captured by state_dict
    resumable: ClassVar[bool] = True

    def state_dict(self) -> dict:
        """Everything besides the agents' weights that the next update depends on: the iteration count,
        the critics with their Adam moments (and the sizes to rebuild them), the opponent model's state.
        Tensors, numbers, strings and containers only (see :mod:`ipo_robust.checkpoint`)."""
        state: dict = {"iteration": self.iteration}
        if self.critics is not None and hasattr(self, "_critic_optimizers"):
            state["critics"] = {"spec": self._critic_spec,
                                "weights": [c.state_dict() for c in self.critics],
                                "optimizers": [o.state_dict() for o in self._critic_optimizers]}
        if self.opponent_model is not None and hasattr(self.opponent_model, "state_dict"):
            state["opponent_model"] = self.opponent_model.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into a freshly built optimizer with the same hyperparameters."""
        self.iteration = int(state["iteration"])
        if "critics" in state:
            self._build_critics(state["critics"]["spec"])
            for critic, optimizer, weights, moments in zip(self.critics, self._critic_optimizers,
                                                           state["critics"]["weights"],
                                                           state["critics"]["optimizers"], strict=True):
                critic.load_state_dict(weights)
                optimizer.load_state_dict(moments)
        if "opponent_model" in state:
            if not hasattr(self.opponent_model, "load_state_dict"):
                raise ValueError("the checkpoint holds an opponent model's state but this optimizer has none")
            self.opponent_model.load_state_dict(state["opponent_model"])

    def _build_critics(self, spec: dict) -> None:
        """Critics and their Adam optimizers from a size spec: {"kind", "obs": [d1, d2], "act": [[kind, size]]}."""
        from ipo_robust.policies import QCritic, ValueCritic

        observation_spaces = tuple(_FlatBox(d) for d in spec["obs"])
        action_spaces = tuple(_FlatBox(n) if kind == "box" else _Choices(n) for kind, n in spec["act"])
        with torch.random.fork_rng(devices=[]):  # seeded critic weights; the global RNG is left alone
            torch.manual_seed(0)
            self.critics = tuple(ValueCritic(observation_spaces) if spec["kind"] == "value"
                                 else QCritic(observation_spaces, action_spaces) for _ in (0, 1))
        self._critic_optimizers = [torch.optim.Adam(c.parameters(), lr=self.config.critic_lr) for c in self.critics]
        self._critic_spec = spec

    # -- critics ----------------------------------------------------------------------------------
    def fit_critics(self, batch) -> dict:
        """Regress each player's critic on this batch's Monte-Carlo returns-to-go (complete episodes).

        Fitted after the batch's own update and used from the next batch on, so a value baseline is
        independent of the samples it is subtracted from (the estimates stay unbiased).
        """
        kind = getattr(self.config, "critic", "none")
        if kind == "none" or batch.num_episodes == 0:
            return {}
        from ipo_robust.rollout import reverse_segment_cumsum

        if self.critics is None:
            # with an opponent model, nothing of the opponent's policy may be read: size from the batch
            agents = None if self.opponent_model is not None else self._require_agents()
            observation_spaces, action_spaces = critic_spaces(batch, agents)
            self._build_critics({"kind": kind, "obs": [int(s.shape[0]) for s in observation_spaces],
                                 "act": [["box", int(s.shape[0])] if hasattr(s, "shape") else ["discrete", int(s.n)]
                                         for s in action_spaces]})
        gamma = float(getattr(self.config, "gamma", 0.99))
        discount = gamma ** batch.t.to(torch.float64)
        mask = batch.complete
        info = {}
        for i, (critic, optimizer, rew) in enumerate(zip(self.critics, self._critic_optimizers,
                                                          (batch.rew1, batch.rew2), strict=True), start=1):
            # sum_{t' >= t} gamma^(t' - t) r_t', the target of V(s_t) and Q(s_t, a1_t, a2_t)
            target = (reverse_segment_cumsum(discount * rew.to(torch.float64), batch.done) / discount)[mask]
            inputs = (batch.obs1, batch.obs2) if kind == "value" else (batch.obs1, batch.obs2, batch.act1, batch.act2)
            with torch.enable_grad():
                for _ in range(self.config.critic_epochs):
                    loss = ((critic(*inputs)[mask].to(torch.float64) - target) ** 2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            info[f"critic/loss{i}"] = float(loss.detach())
        return info

    # -- diagnostics ----------------------------------------------------------------------------
    def step_info(self, game: LocalGame, step: Step, before, batch) -> dict:
        kl1, kl2 = self.mean_kl(before, batch)
        info = {
            "optim/iterations": step.iterations,
            "optim/residual": float(step.residual),
            "optim/converged": bool(step.converged),
            "optim/matvecs": step.matvecs,
            "optim/kl1": kl1,
            "optim/kl2": kl2,
            "optim/step_norm1": float(step.delta1.norm()),
            "optim/step_norm2": float(step.delta2.norm()),
            "optim/grad_norm1": float(game.g1.norm()),
            "optim/grad_norm2": float(game.g2.norm()),
        }
        for key in ("J1", "J2", "episodes"):
            if key in game.info:
                info[f"train/{key}"] = game.info[key]
        return info

    def _distributions(self, batch):
        with torch.no_grad():
            return tuple(agent.distribution(obs) for agent, obs in
                         zip(self._require_agents(), (batch.obs1, batch.obs2), strict=True))

    def mean_kl(self, before, batch) -> tuple[float, float]:
        """Mean KL(pi_old || pi_new) over the batch's observations, per player."""
        after = self._distributions(batch)
        kls = []
        for old, new in zip(before, after, strict=True):
            kl = kl_divergence(old, new).mean()
            kls.append(float(kl) if math.isfinite(float(kl)) else float("nan"))
        return kls[0], kls[1]

    def _require_agents(self):
        if self.agents is None:
            raise ValueError(f"{type(self).__name__} was built without agents: pass them to make_optimizer "
                             "(or apply the update's step yourself)")
        return self.agents

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class _FlatBox:
    """A (d,) Box as the critics read it (``low``, ``high``, ``shape``)."""

    def __init__(self, d: int):
        self.shape, self.low, self.high = (int(d),), -math.inf, math.inf


class _Choices:
    """A Discrete(n) as the critics read it (``n``)."""

    def __init__(self, n: int):
        self.n = int(n)


def critic_spaces(batch, agents=None):
    """Observation and action spaces for centralised critics, read off a batch and the policies.

    ``agents=None`` (an opponent model is attached, so no policy may be read): a discrete action count
    is the largest action in the batch plus one, which undercounts only if the top action never appears.
    """
    observations = (_FlatBox(batch.obs1.shape[-1]), _FlatBox(batch.obs2.shape[-1]))
    actions = []
    for agent, obs, act in zip(agents or (None, None), (batch.obs1, batch.obs2), (batch.act1, batch.act2),
                               strict=True):
        if act.is_floating_point():
            actions.append(_FlatBox(act.shape[-1]))
        elif agent is None:
            actions.append(_Choices(int(act.max()) + 1))
        else:
            with torch.no_grad():
                actions.append(_Choices(agent.distribution(obs[:1, :1]).probs.shape[-1]))
    return observations, tuple(actions)


def default_rtol(like: torch.Tensor) -> float:
    """A Krylov tolerance the dtype can reach: 1e-10 in float64, 1e-6 in float32 (and lower precisions)."""
    return 1e-10 if like.dtype == torch.float64 else 1e-6


def rewards_are_zero_sum(batch) -> bool:
    """True iff r2 = -r1 on every sample of the batch (then D21 = -D12^T holds for the estimates)."""
    return bool(torch.equal(batch.rew2.to(torch.float64), -batch.rew1.to(torch.float64)))
