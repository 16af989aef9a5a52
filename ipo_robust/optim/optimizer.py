"""Optimizers by composition: ``step(batch) = accept(rule(estimator(batch)))``.

    estimator   Batch -> LocalGame      e.g. :class:`~ipo_robust.optim.sample.SampleEstimator` (eqs. 12-14),
                                        which owns the critics
    rule        LocalGame -> Step       e.g. :class:`~ipo_robust.optim.rules.CGDRule` (eq. 10),
                                        :class:`~ipo_robust.optim.rules.NaturalRule` (eq. 19)
    accept      Step -> applied Step    add the steps to the parameters, or a line search (trpo, ipo-trpo)

An optimizer plugin's factory is called as ``factory(agents, **hyperparameters)``. ``agents`` is the pair of
policies it moves, or ``None`` when only the rule is used (exact games hand it exact local games through
``update(game)`` and apply the steps themselves). A subclass of :class:`Optimizer` declares its ``Config``
and ``capabilities`` and builds its three pieces once, in ``make_estimator``, ``make_rule`` and (optionally)
``accept``. An opponent model is composed at construction: the estimator builds each player's view and the
rule is wrapped once in :class:`~ipo_robust.optim.views.PerPlayerRule`.

Optimizers that learn from samples alone (PPO) derive from :class:`SampleOptimizer`, a sibling: they have
``step(batch)`` and checkpoint state, and no local game.

Every ``step`` returns namespaced metrics (:func:`step_metrics`): ``optim/iterations``, ``optim/residual``,
``optim/converged`` (the Krylov solve reached its tolerance; the rounding floor counts, see
:func:`~ipo_robust.optim.rules.default_rtol`), ``optim/solve_failures`` (solves that did not), ``optim/kl1``...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.errors import ConfigError
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
from ipo_robust.optim.rules import UpdateRule, default_rtol
from ipo_robust.optim.sample import SampleEstimator, rewards_are_zero_sum
from ipo_robust.optim.update import Step
from ipo_robust.optim.views import PerPlayerRule, resolve_opponent_model

__all__ = ["Capabilities", "CriticConfig", "GradientConfig", "GradientOptimizer", "NaturalConfig", "Optimizer",
           "SampleConfig", "SampleOptimizer", "apply_step", "capabilities_of", "default_rtol", "lr_alias",
           "rewards_are_zero_sum", "solve_metrics", "step_metrics"]


# --------------------------------------------------------------------------------------------------
# Capabilities and hyperparameters
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capabilities:
    """What an optimizer is, declared once on its class (``capabilities = Capabilities(...)``).

    interactive: the update uses the mixed Hessians D12, D21 (an IPO optimizer): it anticipates a
        simultaneous opponent update, so schedules that train one player at a time refuse it.
    fisher: its local game carries the Fisher operators F1, F2.
    opponent_models: it accepts ``opponent_model=`` (each player's update from its own view).
    resumable: ``state_dict`` holds everything the next update depends on (False: replay buffers and
        target networks are not checkpointed, so a resume is refused).
    local_game: it has ``update(game)`` and runs on exact local games; False for sample-only optimizers.
    policies: the policies it moves: ``"stochastic"`` (``distribution(obs)``, what ``make_agents`` builds)
        or ``"deterministic"`` (``mu(obs)``, the deterministic policy gradient).
    """

    interactive: bool = False
    fisher: bool = False
    opponent_models: bool = False
    resumable: bool = True
    local_game: bool = True
    policies: str = "stochastic"


def capabilities_of(factory) -> Capabilities:
    """The declared capabilities of an optimizer factory; a factory without them is refused."""
    capabilities = getattr(factory, "capabilities", None)
    if not isinstance(capabilities, Capabilities):
        name = getattr(factory, "__qualname__", type(factory).__name__)
        raise ConfigError(f"optimizer factory {name} declares no capabilities: give the class a "
                          "'capabilities = ipo_robust.optim.optimizer.Capabilities(...)' attribute")
    return capabilities


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

    kl: float = hyperparameter(0.01, positive, "KL budget delta per step: of both players together "
                               "(kl_split='joint') or of each player ('per-player')")
    kl_split: str = hyperparameter("joint", one_of("joint", "per-player"),
                                   "'joint': one lambda for both players (lam1 : lam2 kept), chosen so eq. (19)'s "
                                   "pair has joint quadratic KL = kl (seed, after eq. 20); 'per-player': each "
                                   "player's direction rescaled to its own KL = kl (not eq. 19's pair at any lambda)")
    damping: float = hyperparameter(0.1, positive, "Fisher damping (F + damping I); 0.1 as TRPO "
                                    "implementations use: at 1e-4 the float32 solves on 64x64 MLPs stall at their "
                                    "iteration cap and miss the KL budget (benchmarks/RESULTS.md, issue 15)")
    rtol: float | None = hyperparameter(None, positive_or_none,
                                        "solver tolerance; None: 1e-10 in float64, 1e-6 in float32")
    max_iter: int | None = hyperparameter(100, positive_int_or_none,
                                          "solver iteration cap (a float32 solve can stall short of rtol)")


@dataclass
class GradientConfig(CriticConfig):
    """The sample estimator plus both players' learning rates."""

    lr1: float = hyperparameter(0.1, positive, "learning rate of player 1")
    lr2: float = hyperparameter(0.1, positive, "learning rate of player 2")


def lr_alias(kwargs: dict) -> dict:
    """``lr=x`` sets both players' learning rates (unless given separately); a bad ``lr`` is named as such."""
    if "lr" in kwargs:
        lr = kwargs.pop("lr")
        allowed = positive(lr)
        if allowed is not None:
            raise ConfigError(f"lr (both players' learning rates) must be {allowed}, got {lr!r}")
        kwargs.setdefault("lr1", lr)
        kwargs.setdefault("lr2", lr)
    return kwargs


# --------------------------------------------------------------------------------------------------
# Pieces every optimizer shares
# --------------------------------------------------------------------------------------------------
def check_agents(agents):
    if agents is not None and (len(agents) != 2 or not all(isinstance(a, torch.nn.Module) for a in agents)):
        raise ValueError("agents must be a pair of torch.nn.Module policies (see ipo_robust.make_agents)")
    return agents


def apply_step(agents, step: Step) -> None:
    """Add the step to the agents' parameters (flat order: ``parameters_to_vector``)."""
    for agent, delta in zip(agents, (step.delta1, step.delta2), strict=True):
        with torch.no_grad():
            parameters = list(agent.parameters())
            theta = parameters_to_vector(parameters)
            vector_to_parameters(theta + delta.to(theta), parameters)


def distributions(agents, batch):
    """Each agent's action distributions on its observations in the batch (no graph)."""
    with torch.no_grad():
        return tuple(agent.distribution(obs) for agent, obs in zip(agents, (batch.obs1, batch.obs2), strict=True))


def mean_kl(before, after) -> tuple[float, float]:
    """Mean KL(pi_old || pi_new) over the batch's observations, per player (NaN if not finite)."""
    kl1, kl2 = (player_kl(old, new) for old, new in zip(before, after, strict=True))
    return kl1, kl2


def player_kl(old, new) -> float:
    """Mean KL(old || new) of one player's action distributions over the batch (NaN if not finite)."""
    kl = float(kl_divergence(old, new).mean())
    return kl if math.isfinite(kl) else float("nan")


def solve_metrics(step: Step, failures: bool = False) -> dict:
    """The record of a step's solve: Krylov iterations, true relative residual, whether it converged (with
    ``failures``: ``optim/solve_failures``, 0 or 1) and the operator applications."""
    info = {
        "optim/iterations": step.iterations,
        "optim/residual": float(step.residual),
        "optim/converged": bool(step.converged),
    }
    if failures:
        info["optim/solve_failures"] = int(not step.converged)
    info["optim/matvecs"] = step.matvecs
    return info


def step_metrics(game: LocalGame, step: Step, kls: tuple[float, float]) -> dict:
    """The metrics of one step of a local-game optimizer (module docstring)."""
    info = {
        **solve_metrics(step, failures=True),
        "optim/kl1": kls[0],
        "optim/kl2": kls[1],
        "optim/step_norm1": float(step.delta1.norm()),
        "optim/step_norm2": float(step.delta2.norm()),
        "optim/grad_norm1": float(game.g1.norm()),
        "optim/grad_norm2": float(game.g2.norm()),
    }
    for key in ("J1", "J2", "episodes"):
        if key in game.info:
            info[f"train/{key}"] = game.info[key]
    return info


class _AgentsHolder:
    """The agents an optimizer moves, or None (rule-only use)."""

    agents: tuple | None

    def _require_agents(self):
        if self.agents is None:
            raise ValueError(f"{type(self).__name__} was built without agents: pass them to make_optimizer "
                             "(or apply the update's step yourself)")
        return self.agents

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


# --------------------------------------------------------------------------------------------------
# The composed optimizer
# --------------------------------------------------------------------------------------------------
class Optimizer(_AgentsHolder):
    """estimator + update rule + acceptance, composed at construction (module docstring).

    Subclasses set ``Config`` and ``capabilities`` and implement :meth:`make_rule`; the default estimator is
    the score-function one of eqs. (12)-(14) (with the Fisher operators when ``capabilities.fisher``), the
    default acceptance applies the step as it is.
    """

    Config: ClassVar[type[Hyperparameters]]
    capabilities: ClassVar[Capabilities]
    #: why ``opponent_model=`` is refused, where ``capabilities.opponent_models`` is False
    no_opponent_model_reason: ClassVar[str] = "its update does not come from the sample local game alone"

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        """``opponent_model``: None (the true opponent parameters), a registered opponent-model name
        (``"oracle"``, ``"mle"``) or an object with ``observe``/``estimate`` (:mod:`ipo_robust.opponent`):
        each player's update is then computed from its own view of the local game, through its model of the
        opponent, never from the opponent's true parameters (unless the model is centralised)."""
        self.config = self.Config.build(**hyperparameters)
        self.agents = check_agents(agents)
        self.iteration = 0
        self.opponent_model = None
        if opponent_model is not None:
            if not self.capabilities.opponent_models:
                raise ConfigError(f"takes no opponent_model: {self.no_opponent_model_reason}")
            self.opponent_model = resolve_opponent_model(opponent_model)
        self.estimator = self.make_estimator()
        self.rule: UpdateRule = self.make_rule()
        self._update = PerPlayerRule(self.rule) if self.opponent_model is not None else self.rule

    # -- the three pieces -------------------------------------------------------------------------
    def make_estimator(self):
        """Batch -> LocalGame (:class:`~ipo_robust.optim.sample.SampleEstimator` by default)."""
        return SampleEstimator.from_config(self.config, fisher=self.capabilities.fisher)

    def make_rule(self) -> UpdateRule:
        """LocalGame -> Step, built once from ``self.config``."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_rule()")

    def accept(self, step: Step, game: LocalGame, batch) -> tuple[Step, dict]:
        """Apply the step (or a line search's shortened one); returns what was applied and its metrics."""
        apply_step(self._require_agents(), step)
        return step, {}

    # -- using them ---------------------------------------------------------------------------------
    def local_game(self, batch) -> LocalGame:
        """The estimator's local game at the agents' current parameters (eqs. 12-13)."""
        return self.estimator(batch, self._require_agents(), self.opponent_model)

    def update(self, game: LocalGame) -> Step:
        """The parameter change of both players for one local game (the rule; per player with a model)."""
        return self._update(game)

    def apply(self, step: Step) -> None:
        apply_step(self._require_agents(), step)

    def fit_critics(self, batch) -> dict:
        """Fit the estimator's critics on a batch, with no policy step (``step`` does this after each update)."""
        # with an opponent model, nothing of the opponent's policy may be read: critics sized from the batch
        return self.estimator.fit(batch, None if self.opponent_model is not None else self._require_agents())

    def step(self, batch) -> dict:
        """One iteration on a batch collected with the current parameters; returns metrics."""
        agents = self._require_agents()
        game = self.local_game(batch)
        step = self.update(game)
        before = distributions(agents, batch)
        step, acceptance = self.accept(step, game, batch)
        self.iteration += 1
        info = step_metrics(game, step, mean_kl(before, distributions(agents, batch)))
        info.update(self.rule.metrics(step))
        info.update(acceptance)
        info.update(self.fit_critics(batch))
        return info

    # -- checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything besides the agents' weights that the next update depends on: the iteration count,
        the estimator's state (critics with their Adam moments), the opponent model's state. Tensors,
        numbers, strings and containers only (see :mod:`ipo_robust.checkpoint`)."""
        state: dict = {"iteration": self.iteration, **self.estimator.state_dict()}
        if self.opponent_model is not None and hasattr(self.opponent_model, "state_dict"):
            state["opponent_model"] = self.opponent_model.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into a freshly built optimizer with the same hyperparameters."""
        self.iteration = int(state["iteration"])
        self.estimator.load_state_dict(state)
        if "opponent_model" in state:
            if not hasattr(self.opponent_model, "load_state_dict"):
                raise ValueError("the checkpoint holds an opponent model's state but this optimizer has none")
            self.opponent_model.load_state_dict(state["opponent_model"])


class GradientOptimizer(Optimizer):
    """An optimizer whose hyperparameters take ``lr`` for both players' learning rates (lr1 = lr2 = lr)."""

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        super().__init__(agents, opponent_model, **lr_alias(hyperparameters))


class SampleOptimizer(_AgentsHolder):
    """Base of optimizers that learn from samples alone (no local game, no update rule): PPO.

    Subclasses set ``Config`` and implement :meth:`step`, :meth:`state_dict` and :meth:`load_state_dict`.
    """

    Config: ClassVar[type[Hyperparameters]]
    capabilities: ClassVar[Capabilities] = Capabilities(local_game=False)
    #: why ``opponent_model=`` is refused
    no_opponent_model_reason: ClassVar[str] = ("it learns from samples alone, and each player's update reads only "
                                               "its own policy and rewards")

    def __init__(self, agents=None, opponent_model=None, **hyperparameters):
        if opponent_model is not None:
            raise ConfigError(f"takes no opponent_model: {self.no_opponent_model_reason}")
        self.config = self.Config.build(**hyperparameters)
        self.agents = check_agents(agents)
        self.iteration = 0

    def step(self, batch) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement step(batch)")

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])


OptimizerFactory = Callable[..., Optimizer | SampleOptimizer]
