"""The estimator of the sample-based optimizers: a Batch in, the local game out, critics owned.

``optimizer.step(batch) = accept(rule(estimator(batch)))`` (:mod:`ipo_robust.optim.optimizer`); this is the
first piece for every optimizer that learns from rollouts through the score-function estimates of seed
eqs. (12)-(14) (:func:`~ipo_robust.optim.estimators.estimate_local_game`).
"""

from __future__ import annotations

import torch

from ipo_robust.batch import Batch
from ipo_robust.optim.critics import ReturnCritics
from ipo_robust.optim.estimators import estimate_local_game
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.views import check_player, modelled_local_game, view_policies


def rewards_are_zero_sum(batch: Batch) -> bool:
    """True iff r2 = -r1 on every sample of the batch (then D21 = -D12^T holds for the estimates)."""
    return bool(torch.equal(batch.rew2.to(torch.float64), -batch.rew1.to(torch.float64)))


class SampleEstimator:
    """The estimator of an optimizer: Batch -> LocalGame by eqs. (12)-(14), owning the critics.

    gamma, method: as in :func:`estimate_local_game`. zero_sum: declared, or None to detect it from each
    batch's rewards. critic: ``"none"``, ``"value"`` (V_i(s) baselines) or ``"q"`` (eq. (14)), fitted by
    :meth:`fit` after each update (:class:`~ipo_robust.optim.critics.ReturnCritics`). fisher: add F1, F2.

    With an opponent model, :meth:`__call__` builds each player's view (:mod:`ipo_robust.optim.views`).
    """

    def __init__(self, gamma: float = 0.99, method: str = "auto", zero_sum: bool | None = None,
                 critic: str = "none", critic_lr: float = 1e-2, critic_epochs: int = 20, fisher: bool = False):
        self.gamma, self.method, self.zero_sum, self.fisher = float(gamma), method, zero_sum, fisher
        self.critics = None if critic == "none" else ReturnCritics(critic, critic_lr, critic_epochs, gamma)

    @classmethod
    def from_config(cls, config, fisher: bool = False) -> SampleEstimator:
        """From an optimizer's hyperparameters (a :class:`~ipo_robust.optim.optimizer.CriticConfig`)."""
        return cls(config.gamma, config.method, config.zero_sum, config.critic, config.critic_lr,
                   config.critic_epochs, fisher)

    def options(self, batch: Batch) -> dict:
        """The keyword arguments of :func:`estimate_local_game` for this batch."""
        zero_sum = rewards_are_zero_sum(batch) if self.zero_sum is None else self.zero_sum
        options = {}
        if self.critics is not None:
            self.critics.place(batch.obs1.device)
            options = self.critics.estimator_options()
        options.update(gamma=self.gamma, fisher=self.fisher, zero_sum=zero_sum, method=self.method)
        return options

    def __call__(self, batch: Batch, policies, opponent_model=None) -> LocalGame:
        """The sample local game at the policies' current parameters; with an opponent model, player 1's
        view carrying player 2's (:func:`~ipo_robust.optim.views.modelled_local_game`)."""
        if opponent_model is not None:
            return modelled_local_game(batch, policies, opponent_model, **self.options(batch))
        return estimate_local_game(batch, *policies, **self.options(batch))

    def player_view(self, batch: Batch, player: int, policies, opponent_model) -> LocalGame:
        """Only ``player``'s view (1 or 2), as that player computes it alone: its model observes the opponent
        in ``batch`` (the metrics go to ``info``), then the local game at (own theta, the model's theta_hat)
        (:func:`~ipo_robust.optim.views.view_policies`; the true opponent reaches only a centralised model)."""
        check_player(player)
        metrics = opponent_model.observe(batch, 3 - player) or {}
        view = estimate_local_game(batch, *view_policies(player, policies, opponent_model), **self.options(batch))
        view.info.update(metrics)
        return view

    def fit(self, batch: Batch, agents=None) -> dict:
        """Fit the critics on the batch just used (``agents`` size them; None when no policy may be read)."""
        return self.critics.fit(batch, agents) if self.critics is not None else {}

    def state_dict(self) -> dict:
        state = self.critics.state_dict() if self.critics is not None else None
        return {} if state is None else {"critics": state}

    def load_state_dict(self, state: dict) -> None:
        if "critics" in state:
            if self.critics is None:
                raise ValueError("the checkpoint holds critics but this optimizer has critic='none'")
            self.critics.load_state_dict(state["critics"])
