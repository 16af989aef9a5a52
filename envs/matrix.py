"""Matrix games as batched two-agent RL environments, and iterated games with exact values.

Three environments, all following :mod:`ipo_robust.envs.base` (player i receives ``payoff_i[a1, a2]``
when player 1 plays a1 and player 2 plays a2; actions ``Discrete(n_i)``):

- :class:`MatrixGameEnv` with ``horizon=1``: one simultaneous move per episode, then the episode
  terminates. The observation is the constant vector ``[1.0]`` for both players (nothing to observe).
- :class:`MatrixGameEnv` with ``horizon=H``: the same stage game played H times (memoryless: the
  observation stays constant), terminated after H moves. The finite game's exact discounted value is
  ``sum_{t<H} gamma^t p1^T A_i p2`` (:meth:`MatrixGameEnv.exact_values`).
- :class:`IteratedMatrixGameEnv`: the iterated game with memory-one policies of LOLA (Foerster et al.
  2018, "Learning with Opponent-Learning Awareness", sec. 4.1): the observation is the one-hot of the
  state, ``0`` = start, ``1 + a1 * n2 + a2`` = the previous joint action (n_states = 1 + n1 n2; both
  players observe the same vector, in (a1, a2) order). The game itself is infinite; episodes are
  *truncated* at ``horizon`` steps.

Exact values of the iterated game (:func:`iterated_game_values`, differentiable in torch). With
pi(a1, a2 | s) = p1(a1 | s) p2(a2 | s), the expected reward r_i(s) = sum_a pi(a | s) payoff_i[a] and the
transition matrix P[s, 1 + a1 n2 + a2] = pi(a1, a2 | s) over the n_states states,

    infinite horizon:  V_i = (I - gamma P)^{-1} r_i,          J_i = V_i[start]
    horizon H:         V_i^H = sum_{t<H} (gamma P)^t r_i,     J_i^H = V_i^H[start]

so J_i^H is exactly the expectation of the truncated return ``sum_{t<H} gamma^t r_t`` that sampled
episodes of length H estimate, and |J_i - J_i^H| <= gamma^H max|payoff_i| / (1 - gamma). Compare
sample estimates with the ``horizon=H`` values; the infinite-horizon ones are the LOLA objective.

Named iterated games (``ITERATED_GAMES``) use the LOLA payoffs: prisoner's dilemma with actions
(cooperate, defect) and rewards CC -1/-1, CD -3/0, DC 0/-3, DD -2/-2; matching pennies +1/-1 with
player 1 winning on a match. Named stage games come from :class:`ipo_robust.envs.games.MatrixGame`.
"""

from __future__ import annotations

import numpy as np
import torch

from ipo_robust.envs.base import Box, Discrete, TwoAgentEnv

ITERATED_GAMES: dict[str, tuple[list[list[float]], list[list[float]]]] = {
    # LOLA (Foerster et al. 2018) Table/eq. for the IPD: actions (cooperate, defect).
    "iterated-prisoners-dilemma": ([[-1.0, -3.0], [0.0, -2.0]], [[-1.0, 0.0], [-3.0, -2.0]]),
    # LOLA's iterated matching pennies: actions (heads, tails); player 1 wins on a match.
    "iterated-matching-pennies": ([[1.0, -1.0], [-1.0, 1.0]], [[-1.0, 1.0], [1.0, -1.0]]),
}
_ITERATED_ALIASES = {"ipd": "iterated-prisoners-dilemma", "imp": "iterated-matching-pennies"}


def _payoff_pair(payoff1, payoff2) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 (n1, n2) payoff matrices (numpy or torch input)."""
    mats = []
    for label, a in (("payoff1", payoff1), ("payoff2", payoff2)):
        if a is None:
            raise ValueError(f"{label} is missing: pass both payoff matrices (player i receives "
                             "payoff_i[a1, a2]) or a game name")
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.array(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"{label} must be a non-empty (n1, n2) matrix, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{label} must be finite")
        mats.append(a)
    if mats[0].shape != mats[1].shape:
        raise ValueError(f"payoff1 and payoff2 must have the same shape, got {mats[0].shape} and {mats[1].shape}")
    return mats[0], mats[1]


def _probabilities(probs, rows: int, cols: int, name: str) -> torch.Tensor:
    """A (rows, cols) float tensor of action probabilities (torch tensors kept for autograd)."""
    p = probs if isinstance(probs, torch.Tensor) else torch.as_tensor(np.asarray(probs, dtype=np.float64))
    if not p.is_floating_point():
        p = p.to(torch.float64)
    if p.dim() == 1 and rows == 1:
        p = p.unsqueeze(0)
    if tuple(p.shape) != (rows, cols):
        raise ValueError(f"{name} must have shape ({rows}, {cols}) (one action distribution per state), "
                         f"got {tuple(p.shape)}")
    with torch.no_grad():
        if bool((p < 0).any()) or not torch.allclose(p.sum(-1), torch.ones(rows, dtype=p.dtype), atol=1e-6):
            raise ValueError(f"{name} rows must be probability vectors (non-negative, summing to 1)")
    return p


def iterated_game_values(payoff1, payoff2, probs1, probs2, gamma: float,
                         horizon: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact discounted values (J1, J2) of an iterated matrix game from the start state.

    payoff_i: (n1, n2). probs_i: (n_states, n_i) with n_states = 1 + n1 n2, row s the action
    distribution of player i in state s (row 0 the start state, row 1 + a1 n2 + a2 after the joint
    action (a1, a2)). ``horizon=None``: infinite-horizon V = (I - gamma P)^{-1} r by a linear solve
    (needs gamma < 1); ``horizon=H``: the H-step value sum_{t<H} (gamma P)^t r. Differentiable in
    probs_i (0-d tensors in their dtype; float64 for numpy input).
    """
    A1, A2 = _payoff_pair(payoff1, payoff2)
    n1, n2 = A1.shape
    n_states = 1 + n1 * n2
    p1 = _probabilities(probs1, n_states, n1, "probs1")
    p2 = _probabilities(probs2, n_states, n2, "probs2").to(p1.dtype)
    joint = p1[:, :, None] * p2[:, None, :]  # pi(a1, a2 | s), (n_states, n1, n2)
    payoffs = torch.stack([torch.as_tensor(A1), torch.as_tensor(A2)], dim=-1).to(p1.dtype)  # (n1, n2, 2)
    r = torch.einsum("sab,abi->si", joint, payoffs)  # expected rewards r_i(s), (n_states, 2)
    P = torch.cat([torch.zeros(n_states, 1, dtype=p1.dtype), joint.reshape(n_states, n1 * n2)], dim=1)
    gamma = float(gamma)
    if horizon is None:
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"the infinite-horizon value needs 0 <= gamma < 1, got {gamma}; pass horizon=H")
        V = torch.linalg.solve(torch.eye(n_states, dtype=p1.dtype) - gamma * P, r)  # (I - gamma P)^-1 r
    else:
        V = torch.zeros_like(r)
        for _ in range(_check_horizon(horizon)):
            V = r + gamma * P @ V  # V^{k+1} = r + gamma P V^k
    return V[0, 0], V[0, 1]


def iterated_game_action_values(payoff1, payoff2, probs1, probs2, gamma: float,
                                horizon: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact action values (Q1, Q2) of an iterated matrix game.

    The reward and the next state depend on the joint action only, so Q_i(s, a1, a2) does not depend on
    s: Q_i(a) = payoff_i[a] + gamma V_i(1 + a1 n2 + a2). ``horizon=None``: stationary, shape (n1, n2).
    ``horizon=H``: shape (H, n1, n2), index t = number of moves already made, with H - t moves left:
    Q_i^t(a) = payoff_i[a] + gamma V_i^{H-t-1}(next(a)).
    """
    A1, A2 = _payoff_pair(payoff1, payoff2)
    n1, n2 = A1.shape
    n_states = 1 + n1 * n2
    p1 = _probabilities(probs1, n_states, n1, "probs1")
    p2 = _probabilities(probs2, n_states, n2, "probs2").to(p1.dtype)
    joint = p1[:, :, None] * p2[:, None, :]
    payoffs = torch.stack([torch.as_tensor(A1), torch.as_tensor(A2)], dim=-1).to(p1.dtype)
    r = torch.einsum("sab,abi->si", joint, payoffs)
    P = torch.cat([torch.zeros(n_states, 1, dtype=p1.dtype), joint.reshape(n_states, n1 * n2)], dim=1)
    gamma = float(gamma)
    if horizon is None:
        V = torch.linalg.solve(torch.eye(n_states, dtype=p1.dtype) - gamma * P, r)
        Q = payoffs + gamma * V[1:].reshape(n1, n2, 2)
        return Q[..., 0], Q[..., 1]
    H = _check_horizon(horizon)
    values = [torch.zeros_like(r)]  # values[k] = V^k, k moves left
    for _ in range(H - 1):
        values.append(r + gamma * P @ values[-1])
    Q = torch.stack([payoffs + gamma * values[H - t - 1][1:].reshape(n1, n2, 2) for t in range(H)])
    return Q[..., 0], Q[..., 1]


def _check_horizon(horizon) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    return int(horizon)


class MatrixGameEnv(TwoAgentEnv):
    """A normal-form game as a batched environment: one move per episode, or ``horizon`` moves.

    Observation: the constant ``[1.0]`` (Box(1, 1, (1,))) for both players. Rewards: payoff_i[a1, a2].
    Every episode terminates after exactly ``horizon`` moves. The environment draws nothing at random.
    """

    def __init__(self, payoff1, payoff2, num_envs: int = 1, seed: int | None = None, horizon: int = 1,
                 name: str | None = None):
        self.payoff1, self.payoff2 = _payoff_pair(payoff1, payoff2)
        self.horizon = _check_horizon(horizon)
        self.name = name or f"matrix-{self.payoff1.shape[0]}x{self.payoff1.shape[1]}"
        n1, n2 = self.payoff1.shape
        obs_space = Box(1.0, 1.0, shape=(1,))
        super().__init__(num_envs, (obs_space, obs_space), (Discrete(n1), Discrete(n2)), seed)
        self._moves = np.zeros(self.num_envs, dtype=np.int64)

    def _observation(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((rows, 1)), np.ones((rows, 1))

    def _reset_envs(self, mask):
        self._moves[mask] = 0
        return self._observation(int(mask.sum()))

    def _step_envs(self, action1, action2):
        self._moves += 1
        rewards = (self.payoff1[action1, action2], self.payoff2[action1, action2])
        return self._observation(self.num_envs), rewards, self._moves >= self.horizon, {}

    def exact_values(self, probs1, probs2, gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """J_i = sum_{t<horizon} gamma^t p1^T payoff_i p2 for mixed strategies p_i (n_i,); differentiable."""
        n1, n2 = self.payoff1.shape
        p1 = _probabilities(probs1, 1, n1, "probs1")[0]
        p2 = _probabilities(probs2, 1, n2, "probs2")[0].to(p1.dtype)
        discount = sum(float(gamma) ** t for t in range(self.horizon))
        A1, A2 = (torch.as_tensor(a, dtype=p1.dtype) for a in (self.payoff1, self.payoff2))
        return discount * (p1 @ A1 @ p2), discount * (p1 @ A2 @ p2)

    def exact_action_values(self, probs1, probs2, gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Q_i^t(a1, a2) = payoff_i[a1, a2] + sum_{tau=1}^{H-t-1} gamma^tau p1^T payoff_i p2, shape (H, n1, n2)."""
        n1, n2 = self.payoff1.shape
        p1 = _probabilities(probs1, 1, n1, "probs1")[0]
        p2 = _probabilities(probs2, 1, n2, "probs2")[0].to(p1.dtype)
        out = []
        for A in (self.payoff1, self.payoff2):
            A = torch.as_tensor(A, dtype=p1.dtype)
            v = p1 @ A @ p2
            out.append(torch.stack([A + sum(float(gamma) ** k for k in range(1, self.horizon - t)) * v
                                    for t in range(self.horizon)]))
        return out[0], out[1]


class IteratedMatrixGameEnv(TwoAgentEnv):
    """An iterated matrix game for memory-one policies (see the module docstring).

    Observation: one-hot (n_states,) of the state, 0 = start, 1 + a1 n2 + a2 = previous joint action.
    Rewards: payoff_i[a1, a2]. Episodes are truncated (``truncated=True``) after ``horizon`` moves;
    nothing terminates. ``gamma`` is the discount of the exact values (it does not change the dynamics).
    """

    def __init__(self, payoff1, payoff2, num_envs: int = 1, seed: int | None = None, gamma: float = 0.96,
                 horizon: int = 150, name: str | None = None):
        self.payoff1, self.payoff2 = _payoff_pair(payoff1, payoff2)
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        self.horizon = _check_horizon(horizon)
        n1, n2 = self.payoff1.shape
        self.n_states = 1 + n1 * n2
        self.name = name or f"iterated-matrix-{n1}x{n2}"
        obs_space = Box(0.0, 1.0, shape=(self.n_states,))
        super().__init__(num_envs, (obs_space, obs_space), (Discrete(n1), Discrete(n2)), seed,
                         max_episode_steps=self.horizon)
        self._state = np.zeros(self.num_envs, dtype=np.int64)

    def state_observations(self) -> np.ndarray:
        """The observation of every state, (n_states, n_states) (the identity): feed it to a policy to
        get the (n_states, n_i) probability tables that :meth:`exact_values` takes."""
        return np.eye(self.n_states)

    def _one_hot(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.eye(self.n_states)[states]
        return obs, obs.copy()

    def _reset_envs(self, mask):
        self._state[mask] = 0
        return self._one_hot(self._state[mask])

    def _step_envs(self, action1, action2):
        rewards = (self.payoff1[action1, action2], self.payoff2[action1, action2])
        self._state = 1 + action1 * self.payoff1.shape[1] + action2
        return self._one_hot(self._state), rewards, np.zeros(self.num_envs, dtype=bool), {}

    def exact_values(self, probs1, probs2, gamma: float | None = None,
                     horizon: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(J1, J2) from the start state; ``gamma=None`` uses ``self.gamma``; ``horizon=None`` is the
        infinite-horizon linear solve, ``horizon=H`` the H-step value (what episodes truncated at H
        estimate). See :func:`iterated_game_values`."""
        return iterated_game_values(self.payoff1, self.payoff2, probs1, probs2,
                                    self.gamma if gamma is None else gamma, horizon)

    def exact_action_values(self, probs1, probs2, gamma: float | None = None,
                            horizon: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q1, Q2); see :func:`iterated_game_action_values`."""
        return iterated_game_action_values(self.payoff1, self.payoff2, probs1, probs2,
                                           self.gamma if gamma is None else gamma, horizon)


def make_matrix_env(payoff1=None, payoff2=None, name: str | None = None, num_envs: int = 1,
                    seed: int | None = None, horizon: int = 1) -> MatrixGameEnv:
    """A :class:`MatrixGameEnv` from a payoff pair or a named game of ``ipo_robust.envs.games``.

    Pass either both ``payoff1`` and ``payoff2`` ((n1, n2) each, player i receives payoff_i[a1, a2]) or
    ``name`` (e.g. "matching-pennies", "rock-paper-scissors", "prisoners-dilemma", "chicken").
    ``horizon`` > 1 gives the repeated game.
    """
    if name is not None and (payoff1 is not None or payoff2 is not None):
        raise ValueError("pass either a game name or payoff1/payoff2, not both")
    if name is not None:
        from ipo_robust.envs.games import MatrixGame

        game = MatrixGame.named(name)
        return MatrixGameEnv(game.payoff1, game.payoff2, num_envs, seed, horizon, name=name)
    if payoff1 is None and payoff2 is None:
        raise ValueError("make_matrix_env needs payoff1 and payoff2, or a game name")
    return MatrixGameEnv(payoff1, payoff2, num_envs, seed, horizon)


def make_iterated_env(name: str, num_envs: int = 1, seed: int | None = None, gamma: float = 0.96,
                      horizon: int = 150) -> IteratedMatrixGameEnv:
    """An :class:`IteratedMatrixGameEnv` by name.

    "iterated-prisoners-dilemma" ("ipd") and "iterated-matching-pennies" ("imp") use LOLA's payoffs
    (module docstring); any stage-game name of ``MatrixGame.named`` (e.g. "prisoners-dilemma" with
    Axelrod's payoffs) is iterated as it is.
    """
    key = _ITERATED_ALIASES.get(name, name)
    if key in ITERATED_GAMES:
        payoff1, payoff2 = ITERATED_GAMES[key]
        return IteratedMatrixGameEnv(payoff1, payoff2, num_envs, seed, gamma, horizon, name=key)
    from ipo_robust.envs.games import MatrixGame

    try:
        game = MatrixGame.named(name)
    except ValueError as err:
        raise ValueError(f"unknown iterated game {name!r}; choose one of {sorted(ITERATED_GAMES)}, "
                         f"{sorted(_ITERATED_ALIASES)} or a stage game of MatrixGame.names(): "
                         f"{MatrixGame.names()}") from err
    return IteratedMatrixGameEnv(game.payoff1, game.payoff2, num_envs, seed, gamma, horizon,
                                 name=f"iterated-{name}")
