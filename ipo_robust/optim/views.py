"""Opponent models inside an optimizer: each player's view of the local game and the per-player rule.

Without centralised training player i does not know the opponent's parameters theta_j; it uses an
estimate theta_j_hat from an opponent model (seed sec. 5, IPO-OM), so there are two local games, one per
player (:mod:`ipo_robust.opponent` explains what is estimated from what):

    view 1 (player 1's): g1, D12, g2, D21 at (theta1, theta2_hat)   ->  player 1 keeps d1 of its solution
    view 2 (player 2's): g1, D12, g2, D21 at (theta1_hat, theta2)   ->  player 2 keeps d2 of its solution

An optimizer composes these at construction: its estimator builds both views
(:func:`modelled_local_game`, or :func:`player_view` per player) and its update rule is wrapped once in
:class:`PerPlayerRule`. :class:`OpponentModel` is the interface a model implements; the built-in models
live in :mod:`ipo_robust.opponent`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ipo_robust import host
from ipo_robust.errors import ConfigError
from ipo_robust.optim.estimators import estimate_local_game
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.update import Step


class OpponentModel:
    """Base class of opponent models (module docstring). Subclasses implement :meth:`observe` and
    :meth:`estimate`."""

    #: receives the opponent's true policy in :meth:`estimate` (centralised training); False for every
    #: model that must learn the opponent from its behaviour
    centralised: ClassVar[bool] = False

    def observe(self, batch, player: int) -> dict:
        """Learn from ``player``'s observations and actions in ``batch`` (``obs{player}``, ``act{player}``).

        :param batch: an :class:`ipo_robust.batch.Batch` collected with the current (true) policies.
        :param player: the modelled player, 1 or 2.
        :return: namespaced metrics (``opponent/...``), possibly empty.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement observe(batch, player)")

    def estimate(self, player: int, true_policy: nn.Module | None = None) -> nn.Module:
        """The policy to use in place of ``player``'s true one.

        :param player: the modelled player, 1 or 2.
        :param true_policy: the true policy if the model is ``centralised``, else None.
        :return: a module with ``distribution(obs)`` and parameters (the estimate theta_hat).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement estimate(player, true_policy)")



def check_player(player) -> None:
    if player not in (1, 2):
        raise ValueError(f"player must be 1 or 2, got {player!r}")


# --------------------------------------------------------------------------------------------------
# The two views and the per-player update
# --------------------------------------------------------------------------------------------------
@dataclass
class ModelledLocalGame(LocalGame):
    """Player 1's view of the local game (the LocalGame fields, at (theta1, theta2_hat)) carrying player 2's
    view (``view2``, at (theta1_hat, theta2)). An update rule run on it keeps d1 from view 1 and d2 from
    view 2 (:class:`PerPlayerRule`)."""

    view2: LocalGame | None = None


def resolve_opponent_model(spec) -> OpponentModel:
    """An opponent model from a registered name (``"oracle"``, ``"mle"``, third-party names) or an object
    with ``observe``, ``estimate`` and a declared ``centralised`` flag (an :class:`OpponentModel`)."""
    model = host.create("opponent_model", spec) if isinstance(spec, str) else spec
    if (not callable(getattr(model, "observe", None)) or not callable(getattr(model, "estimate", None))
            or not isinstance(getattr(model, "centralised", None), bool)):
        raise ConfigError("opponent_model must be a registered name (ipo-robust plugins lists them) or an "
                          "OpponentModel: observe(batch, player), estimate(player, true_policy) and a declared "
                          f"centralised flag (True or False), got {type(model).__name__}")
    return model


def player_view(batch, player: int, own_policy: nn.Module, model: OpponentModel, true_opponent=None,
                **estimator_options) -> LocalGame:
    """The sample local game as ``player`` sees it: its own policy and its model of the opponent.

    ``true_opponent`` reaches the model only if it is ``centralised``; the other options go to
    :func:`ipo_robust.optim.estimators.estimate_local_game`. Call ``model.observe`` first.
    """
    check_player(player)
    policies = (own_policy, true_opponent) if player == 1 else (true_opponent, own_policy)
    return estimate_local_game(batch, *view_policies(player, policies, model), **estimator_options)


def view_policies(player: int, policies, model: OpponentModel) -> tuple[nn.Module, nn.Module]:
    """(policy 1, policy 2) as ``player`` sees them: its own policy of ``policies`` and the model's estimate
    of the opponent. The opponent's true policy reaches the model only if it is ``centralised``."""
    check_player(player)
    own, true_opponent = policies[player - 1], policies[2 - player]
    estimate = model.estimate(3 - player, true_opponent if model.centralised else None)
    return (own, estimate) if player == 1 else (estimate, own)


def modelled_local_game(batch, policies, model: OpponentModel, **estimator_options) -> LocalGame:
    """Both players' views on one batch (module docstring): observe both players, then estimate.

    Returns the ordinary local game when the model returns the true policies (``oracle``), else a
    :class:`ModelledLocalGame`. The model's metrics go to ``info`` (``opponent/...``).
    """
    policy1, policy2 = policies
    metrics = {}
    for player in (2, 1):  # player 1's model of player 2, player 2's model of player 1
        metrics.update(model.observe(batch, player) or {})
    view1 = player_view(batch, 1, policy1, model, policy2, **estimator_options)
    centralised = model.centralised
    if centralised and model.estimate(2, policy2) is policy2 and model.estimate(1, policy1) is policy1:
        view1.info.update(metrics)
        return view1  # theta_hat = theta: both views are the same game
    view2 = player_view(batch, 2, policy2, model, policy1, **estimator_options)
    fields = {f.name: getattr(view1, f.name) for f in dataclasses.fields(LocalGame)}
    fields["info"] = {**view1.info, **metrics}
    return ModelledLocalGame(**fields, view2=view2)


def player_views(game: LocalGame) -> tuple[LocalGame, LocalGame]:
    """(player 1's view, player 2's view) of an estimator's game: the same game twice where the views
    coincide (``oracle``: :func:`modelled_local_game` returned the ordinary local game)."""
    if isinstance(game, ModelledLocalGame) and game.view2 is not None:
        return game, game.view2
    return game, game


@dataclass
class ModelledStep(Step):
    """d1 from player 1's view and d2 from player 2's (the Step fields), carrying each view's whole solution
    (``views``: a line search judges the pair of each view, :mod:`ipo_robust.optim.trust_region`)."""

    views: tuple[Step, Step] | None = None


def player_steps(step: Step) -> tuple[Step, Step]:
    """(view 1's solution, view 2's solution) of a per-player step: the step twice where the views coincide."""
    if isinstance(step, ModelledStep) and step.views is not None:
        return step.views
    return step, step


class PerPlayerRule:
    """Wraps an optimizer's update rule: on a :class:`ModelledLocalGame` it solves each view and keeps
    d1 from player 1's view and d2 from player 2's (a :class:`ModelledStep`); on any other game it is the
    rule itself."""

    def __init__(self, rule: Callable[[LocalGame], Step]):
        self.rule = rule

    def __call__(self, game: LocalGame) -> Step:
        if not isinstance(game, ModelledLocalGame) or game.view2 is None:
            return self.rule(game)
        step1, step2 = self.rule(game), self.rule(game.view2)
        return ModelledStep(step1.delta1, step2.delta2, step1.iterations + step2.iterations,
                            max(float(step1.residual), float(step2.residual)),
                            bool(step1.converged and step2.converged), step1.matvecs + step2.matvecs,
                            {"view1": step1.info, "view2": step2.info}, views=(step1, step2))
