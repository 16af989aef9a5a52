"""IPO-DPG (seed sec. 4.3, eqs. 21-23) and MADDPG: deterministic policies with centralised critics.

Each player acts by a deterministic policy a_i = mu_i(s) (:class:`~ipo_robust.policies.DeterministicPolicy`,
or :class:`~ipo_robust.policies.ConstantPolicy` for state-independent play), explores with Gaussian noise
``noise`` while collecting, and has a centralised critic Q_i(s, a1, a2) learned by TD from a replay buffer
with target networks, as in DDPG and MADDPG. One ``step(batch)`` is, composed at construction::

    estimator  DeterministicEstimator   store the batch, ``critic_updates`` TD steps, then the local game
                                        g_i (eq. 22), D12, D21 (eq. 23) on ``batch_size`` replay states
    rule       CGDRule                  ipo-dpg: the CGD step (seed eq. 10); maddpg: depth 0, the
                                        independent steps delta_i = lr_i g_i (SimGA with centralised critics)
    accept                              apply the step, then move the target networks (Polyak, ``tau``)

The mathematics of eqs. (21)-(23), the critics and the targets are in :mod:`ipo_robust.optim.deterministic`.
For a game whose rewards are zero-sum (r2 = -r1, or ``zero_sum=True``) one critic is learned and Q2 = -Q1,
so D21 = -D12^T exactly and CG solves the system.

Opponent models (seed sec. 5). With ``opponent_model=`` each player i steps from its own view: mu_j in eqs.
(22)-(23) is the model's mu_j_hat (``"mle"``: :func:`deterministic_opponent_model`, least squares of the
opponent's observed noisy actions, which is eq. (24) for Gaussian exploration noise; ``"oracle"``: the true
policy), and player i's critics are its own, learned from the buffer's observed joint actions with the
targets (mu_i', mu_j_hat'). The rule is wrapped once per player (:class:`~ipo_robust.optim.views.PerPlayerRule`).

Exact critics. ``critics=(Q1, Q2)`` (modules ``Q(obs1, obs2, act1, act2) -> (B,)``) replaces the learned
critics; they are used as given and never trained (closed-form games: :mod:`ipo_robust.envs.continuous`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ipo_robust.envs.continuous import bilinear_game, quadratic_game
from ipo_robust.errors import ConfigError
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
from ipo_robust.opponent import MaximumLikelihoodOpponent
from ipo_robust.optim import LocalGame, Step
from ipo_robust.optim.deterministic import DeterministicEstimator, deterministic_local_game
from ipo_robust.optim.optimizer import Capabilities, GradientOptimizer, apply_step, bool_or_none, solve_metrics
from ipo_robust.optim.rules import CGDRule
from ipo_robust.optim.views import ModelledLocalGame
from ipo_robust.policies import ConstantPolicy, DeterministicPolicy, make_deterministic_agents
from ipo_robust.replay import ReplayBuffer
from ipo_robust.value_functions import NegatedCritic

__all__ = ["IPODPG", "MADDPG", "ConstantPolicy", "DPGConfig", "DeterministicCopy", "DeterministicPolicy",
           "NegatedCritic", "ReplayBuffer", "deterministic_local_game", "deterministic_opponent_model",
           "dpg_metrics", "make_deterministic_agents"]


@dataclass
class DPGConfig(Hyperparameters):
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


class IPODPG(GradientOptimizer):
    """IPO-DPG (seed sec. 4.3): CGD on the deterministic local game of eqs. (22)-(23) (module docstring)."""

    Config = DPGConfig
    # resumable=False: the replay buffer and the target networks are not in state_dict
    capabilities = Capabilities(interactive=True, opponent_models=True, resumable=False, policies="deterministic")

    def __init__(self, agents=None, critics=None, opponent_model=None, **hyperparameters):
        """``critics``: exact (Q1, Q2), used as given (module docstring). ``opponent_model="mle"`` is the
        least-squares model of a deterministic opponent (:func:`deterministic_opponent_model`)."""
        self.given_critics = critics  # the estimator's, built in the base constructor
        if isinstance(opponent_model, str) and opponent_model == "mle":
            opponent_model = deterministic_opponent_model()  # eq. (24) for mu_j: least squares
        super().__init__(agents, opponent_model, **hyperparameters)
        for agent in self.agents or ():
            if hasattr(agent, "exploration_std"):
                agent.exploration_std = self.config.noise
            if not hasattr(agent, "mu"):
                raise ConfigError("needs deterministic policies with mu(obs) "
                                  "(ipo_robust.plugins.dpg.DeterministicPolicy or ConstantPolicy)")

    # -- the three pieces ---------------------------------------------------------------------------
    def make_estimator(self) -> DeterministicEstimator:
        # D12, D21 only where the rule uses them (maddpg: zero operators, no second derivatives)
        return DeterministicEstimator.from_config(self.config, critics=self.given_critics,
                                                  mixed=self.capabilities.interactive)

    def make_rule(self) -> CGDRule:
        c = self.config
        return CGDRule(c.lr1, c.lr2, depth=c.depth, solver=c.solver, rtol=c.rtol, max_iter=c.max_iter)

    def accept(self, step: Step, game: LocalGame, batch) -> tuple[Step, dict]:
        """Apply the step, then move the target networks toward the policies (Polyak, rate ``tau``)."""
        apply_step(self._require_agents(), step)
        self.estimator.update_targets()
        return step, {}

    # -- one iteration ------------------------------------------------------------------------------
    def step(self, batch) -> dict:
        """Store the batch and fit the critics (estimator), the CGD or independent step (rule), apply it and
        move the targets (accept); returns metrics (:func:`dpg_metrics`)."""
        game = self.local_game(batch)
        step, _ = self.accept(self.update(game), game, batch)
        self.iteration += 1
        return dpg_metrics(game, step)

    def player_step(self, i: int, batch) -> tuple:
        """Player ``i``'s (0 or 1) step from its own view under the opponent model, without reading the
        opponent's parameters (:meth:`DeterministicEstimator.player_view`); ``batch`` must already be in the
        buffer. Nothing is applied.

        :return: (d_i, the step on player i's view, that view, its metrics: ``opponent/...``, ``critic/...``).
        """
        if self.opponent_model is None:
            raise ValueError("player_step needs an opponent model (opponent_model='mle' or 'oracle')")
        game = self.estimator.player_view(i, batch, self._require_agents(), self.opponent_model)
        step = self.rule(game)
        return (step.delta1, step.delta2)[i], step, game, namespaced(game.info)

    @property
    def buffer(self):
        """The estimator's replay buffer."""
        return self.estimator.buffer


class MADDPG(IPODPG):
    """MADDPG (Lowe et al. 2017): independent deterministic gradients (eq. 22) with centralised critics."""

    capabilities = Capabilities(opponent_models=True, resumable=False, policies="deterministic")

    def make_rule(self) -> CGDRule:
        return CGDRule(self.config.lr1, self.config.lr2, depth=0)  # delta_i = lr_i g_i


def namespaced(info: dict) -> dict:
    """The metrics of a local game's ``info``: its namespaced keys (``critic/...``, ``opponent/...``)."""
    return {key: value for key, value in info.items() if "/" in key}


def dpg_metrics(game: LocalGame, step: Step) -> dict:
    """The metrics of one step: the estimator's (TD losses, the model's fit), the solve's, the step and gradient
    norms, the mean critic values. With an opponent model, player i's gradient and Q_i come from its view."""
    view2 = game.view2 if isinstance(game, ModelledLocalGame) and game.view2 is not None else game
    info = namespaced(game.info)
    info.update(solve_metrics(step))
    info.update({
        "optim/step_norm1": float(step.delta1.norm()),
        "optim/step_norm2": float(step.delta2.norm()),
        "optim/grad_norm1": float(game.g1.norm()),
        "optim/grad_norm2": float(view2.g2.norm()),
        "optim/Q1": game.info["Q1"],
        "optim/Q2": view2.info["Q2"],
    })
    return info


# --------------------------------------------------------------------------------------------------
# The "mle" opponent model of a deterministic opponent
# --------------------------------------------------------------------------------------------------
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
    return MaximumLikelihoodOpponent(DeterministicCopy(hidden), epochs=epochs, lr=lr, seed=seed)


@hookimpl
def register_optimizers(register):
    register("ipo-dpg", IPODPG)
    register("maddpg", MADDPG)


@hookimpl
def register_envs(register):
    register("continuous-bilinear", bilinear_game)
    register("continuous-quadratic", quadratic_game)
