"""ipo_robust.envs: batched two-agent environments, and views of them for other libraries.

:func:`to_pettingzoo` and :func:`to_gymnasium` (in :mod:`ipo_robust.envs.adapters`) need the
``adapters`` extra (``pip install "ipo-robust[adapters]"``); they are imported on first use, so
``import ipo_robust.envs`` works without gymnasium and pettingzoo.
"""

from __future__ import annotations

__all__ = ["to_gymnasium", "to_pettingzoo"]


def to_pettingzoo(name_or_env, **kwargs):
    """A PettingZoo ``ParallelEnv`` view of a two-agent env, by registered name (with its options as
    ``kwargs``) or as a ``TwoAgentEnv`` with ``num_envs=1``; see :func:`ipo_robust.envs.adapters.to_pettingzoo`."""
    from ipo_robust.envs.adapters import to_pettingzoo as convert

    return convert(name_or_env, **kwargs)


def to_gymnasium(name_or_env, opponent=None, player: int = 0, **kwargs):
    """A Gymnasium single-agent view of player ``player`` (0 or 1) of a two-agent env, the other player a
    frozen ``opponent`` (a policy with ``distribution(obs)`` or a callable obs -> action); see
    :func:`ipo_robust.envs.adapters.to_gymnasium`."""
    from ipo_robust.envs.adapters import to_gymnasium as convert

    return convert(name_or_env, opponent=opponent, player=player, **kwargs)
