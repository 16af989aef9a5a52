"""The optimizer interface: an estimator (batch -> LocalGame) joined to an update rule (LocalGame -> Step).

Every optimizer plugin's factory is called as ``factory(agents, **hyperparameters)``. ``agents`` is the
pair of policies (``torch.nn.Module``) the optimizer moves, or ``None`` when only the update rule is
used (exact games hand it exact local games and apply the steps themselves).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ipo_robust.hyperparameters import Hyperparameters
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.update import Step


class TwoAgentOptimizer:
    """Base class of the built-in optimizers.

    Subclasses set ``Config`` (a :class:`Hyperparameters` dataclass) and implement :meth:`update`.
    """

    Config: ClassVar[type[Hyperparameters]]
    #: uses the mixed Hessians D12, D21 (an IPO optimizer) rather than only g1, g2
    interactive: ClassVar[bool] = False
    #: needs the Fisher operators F1, F2 in the local game
    needs_fisher: ClassVar[bool] = False

    def __init__(self, agents=None, **hyperparameters):
        self.config = self.Config.build(**hyperparameters)
        self.agents = agents

    def update(self, game: LocalGame) -> Step:
        """The parameter change of both players for one local game."""
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def apply(self, step: Step) -> None:
        """Add the step to the agents' parameters (flat order: ``parameters_to_vector``)."""
        if self.agents is None:
            raise ValueError(f"{type(self).__name__} was built without agents: apply the step yourself")
        with torch.no_grad():
            for agent, delta in zip(self.agents, (step.delta1, step.delta2), strict=True):
                parameters = list(agent.parameters())
                theta = parameters_to_vector(parameters)
                vector_to_parameters(theta + delta.to(theta), parameters)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
