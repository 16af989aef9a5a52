"""Built-in opponent models (seed sec. 5): ``oracle`` (centralised training) and ``mle`` (IPO-OM, eq. 24).

Any optimizer whose update comes from the sample local game accepts them::

    ipo_robust.make_optimizer("ipo-vpg", agents, lr=2.0, opponent_model="mle")
    ipo_robust.make_optimizer("ipo-vpg", agents, opponent_model=host.resolve("opponent_model", "mle")(
        architecture="tabular", epochs=100, lr=0.1))

The interface and what each player's update is estimated from are in :mod:`ipo_robust.opponent`.
"""

from __future__ import annotations

from ipo_robust.hookspecs import hookimpl
from ipo_robust.opponent import MaximumLikelihoodOpponent, OracleOpponent


@hookimpl
def register_opponent_models(register):
    register("oracle", OracleOpponent)  # theta_hat = theta: the true opponent policy
    register("mle", MaximumLikelihoodOpponent)  # eq. (24): maximum likelihood on the opponent's (obs, act)
