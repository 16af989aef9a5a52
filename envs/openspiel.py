"""OpenSpiel simultaneous-move games as batched two-agent environments (``markov_soccer`` and others).

Each of the ``num_envs`` rows holds its own ``pyspiel.State``. How the adapter maps OpenSpiel onto
:class:`~ipo_robust.envs.base.TwoAgentEnv`:

- Players: OpenSpiel player 0 is agent 1, player 1 is agent 2. The game must have two players and
  simultaneous-move dynamics (``GameType.Dynamics.SIMULTANEOUS``).
- Observations: ``state.observation_tensor(player)`` flattened to a float64 vector (the game's
  information-state tensor when it has no observation tensor). In ``markov_soccer`` both players see
  the same full grid (planes for A, B, the ball and empty cells), not a view from their own side.
- Actions: ``Discrete(game.num_distinct_actions())`` for both agents. At every decision node the legal
  actions are ``state.legal_actions(player)``; :meth:`OpenSpielEnv.legal_action_masks` returns them as
  bool masks (num_envs, n) for policies that mask logits. An illegal action raises a ``ValueError``
  naming the row, the player and the legal set (no silent remapping). In ``markov_soccer`` every
  action (up, down, left, right, stand) is always legal, so unmasked policies are fine.
- Chance: every chance node (in ``markov_soccer``: the initial ball position and which player's move
  is resolved first) is sampled from the environment's generator ``self.rng`` with the probabilities of
  ``state.chance_outcomes()``; OpenSpiel's own random sampling is never used, so a seed fixes
  everything.
- Rewards: the change of ``state.returns()`` over the step, chance nodes included (OpenSpiel's returns
  are the totals so far), so terminal-reward and per-step-reward games both work.
- Episode ends: an OpenSpiel terminal state is ``terminated``. This includes the game's own time limit
  (``markov_soccer`` parameter ``horizon``, default 1000: the game ends there with reward 0 as part of
  its rules); pass a smaller ``horizon`` to keep episodes short. OpenSpiel counts the initial chance
  move towards it, so a ``markov_soccer`` episode has at most ``horizon - 1`` simultaneous moves.
"""

from __future__ import annotations

import numpy as np

from ipo_robust.envs.base import Box, Discrete, TwoAgentEnv


def _load_game(game: str, params: dict):
    try:
        import pyspiel
    except ImportError as err:  # pragma: no cover - open-spiel is a test dependency
        raise ImportError("the OpenSpiel adapter needs the 'open-spiel' package: pip install open-spiel") from err
    try:
        loaded = pyspiel.load_game(game, params) if params else pyspiel.load_game(game)
    except Exception as err:  # pyspiel raises SpielError (a RuntimeError) on unknown names or parameters
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"OpenSpiel could not load game {game!r} with parameters {params!r}: {reason}") from err
    game_type = loaded.get_type()
    if loaded.num_players() != 2:
        raise ValueError(f"{game!r} has {loaded.num_players()} players; this adapter runs two-player games")
    if game_type.dynamics != pyspiel.GameType.Dynamics.SIMULTANEOUS:
        raise ValueError(f"{game!r} is not a simultaneous-move game (dynamics {game_type.dynamics}); "
                         "load a simultaneous-move game such as 'markov_soccer'")
    return loaded


class OpenSpielEnv(TwoAgentEnv):
    """A two-player simultaneous-move OpenSpiel game as a batched environment (see module docstring)."""

    def __init__(self, game: str = "markov_soccer", num_envs: int = 1, seed: int | None = None, **params):
        self.game_name = game
        self.game = _load_game(game, params)
        game_type = self.game.get_type()
        if game_type.provides_observation_tensor:
            self._observe = lambda state, player: state.observation_tensor(player)
            obs_size = self.game.observation_tensor_size()
        elif game_type.provides_information_state_tensor:
            self._observe = lambda state, player: state.information_state_tensor(player)
            obs_size = self.game.information_state_tensor_size()
        else:
            raise ValueError(f"{game!r} provides neither observation nor information-state tensors")
        self.num_actions = self.game.num_distinct_actions()
        obs_space = Box(-np.inf, np.inf, shape=(obs_size,))
        super().__init__(num_envs, (obs_space, obs_space), (Discrete(self.num_actions),) * 2, seed)
        self.states = [None] * self.num_envs

    # -- chance and observations -------------------------------------------------------------------
    def _resolve_chance(self, state) -> None:
        """Apply chance outcomes drawn from ``self.rng`` until a decision or terminal node."""
        while state.is_chance_node():
            outcomes = [action for action, _ in state.chance_outcomes()]
            probs = [prob for _, prob in state.chance_outcomes()]
            cumulative = np.cumsum(probs)
            index = int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))
            state.apply_action(outcomes[min(index, len(outcomes) - 1)])

    def _observations(self, rows) -> tuple[np.ndarray, np.ndarray]:
        obs1 = np.array([self._observe(self.states[i], 0) for i in rows], dtype=np.float64)
        obs2 = np.array([self._observe(self.states[i], 1) for i in rows], dtype=np.float64)
        size = self.observation_spaces[0].shape[0]
        return obs1.reshape(len(rows), size), obs2.reshape(len(rows), size)

    def legal_action_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Bool masks (num_envs, num_actions) of each player's legal actions in the current states."""
        if not self._has_reset:
            raise RuntimeError("call reset() before asking for legal actions")
        masks = np.zeros((2, self.num_envs, self.num_actions), dtype=bool)
        for i, state in enumerate(self.states):
            for player in (0, 1):
                masks[player, i, state.legal_actions(player)] = True
        return masks[0], masks[1]

    # -- hooks -------------------------------------------------------------------------------------
    def _reset_envs(self, mask):
        rows = np.flatnonzero(mask)
        for i in rows:
            state = self.game.new_initial_state()
            self._resolve_chance(state)
            if state.is_terminal():
                raise ValueError(f"{self.game_name} ends before the first move with these parameters; "
                                 "raise its horizon (markov_soccer needs horizon >= 2)")
            self.states[i] = state
        return self._observations(rows)

    def _step_envs(self, action1, action2):
        rewards = np.zeros((2, self.num_envs))
        terminated = np.zeros(self.num_envs, dtype=bool)
        for i, state in enumerate(self.states):
            joint = (int(action1[i]), int(action2[i]))
            for player, action in enumerate(joint):
                legal = state.legal_actions(player)
                if action not in legal:
                    raise ValueError(f"illegal action {action} for agent {player + 1} in row {i} of "
                                     f"{self.game_name}; legal actions there: {legal} (see legal_action_masks())")
            before = np.asarray(state.returns())
            state.apply_actions(list(joint))
            self._resolve_chance(state)
            rewards[:, i] = np.asarray(state.returns()) - before
            terminated[i] = state.is_terminal()
        return self._observations(range(self.num_envs)), (rewards[0], rewards[1]), terminated, {}


def make_openspiel_env(game: str = "markov_soccer", num_envs: int = 1, seed: int | None = None,
                       **params) -> OpenSpielEnv:
    """An :class:`OpenSpielEnv`; ``params`` are the OpenSpiel game parameters (e.g. ``horizon=50``)."""
    return OpenSpielEnv(game, num_envs, seed, **params)
