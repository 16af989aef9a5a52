"""Built-in environments: matrix games (one-step and repeated), iterated games, OpenSpiel games.

Each factory is called as ``factory(num_envs=1, seed=None, **options)`` and returns a batched
:class:`ipo_robust.envs.base.TwoAgentEnv`.
"""

from __future__ import annotations

from functools import partial

from ipo_robust.envs.games import MatrixGame
from ipo_robust.envs.matrix import ITERATED_GAMES, make_iterated_env, make_matrix_env
from ipo_robust.envs.openspiel import make_openspiel_env
from ipo_robust.hookspecs import hookimpl


def matrix_game_env(payoff1, payoff2, num_envs: int = 1, seed: int | None = None, horizon: int = 1):
    """Any bimatrix game: player i receives payoff_i[a1, a2]; ``horizon`` > 1 repeats it."""
    return make_matrix_env(payoff1, payoff2, num_envs=num_envs, seed=seed, horizon=horizon)


def named_matrix_game_env(name: str, num_envs: int = 1, seed: int | None = None, horizon: int = 1):
    return make_matrix_env(name=name, num_envs=num_envs, seed=seed, horizon=horizon)


def iterated_game_env(name: str, num_envs: int = 1, seed: int | None = None, gamma: float = 0.96,
                      horizon: int = 150):
    return make_iterated_env(name, num_envs=num_envs, seed=seed, gamma=gamma, horizon=horizon)


def markov_soccer_env(num_envs: int = 1, seed: int | None = None, **params):
    """OpenSpiel's markov_soccer (Littman 1994) as a batched two-agent env."""
    return make_openspiel_env("markov_soccer", num_envs=num_envs, seed=seed, **params)


@hookimpl
def register_envs(register):
    register("matrix-game", matrix_game_env)
    for name in MatrixGame.names():
        register(name, partial(named_matrix_game_env, name))
    for name in sorted(ITERATED_GAMES):
        register(name, partial(iterated_game_env, name))
    register("markov-soccer", markov_soccer_env)
    register("openspiel", make_openspiel_env)
