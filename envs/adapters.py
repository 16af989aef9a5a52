"""PettingZoo and Gymnasium views of the batched two-agent environments, for use in other libraries.

Both views run one copy (``num_envs=1``) of any :class:`~ipo_robust.envs.base.TwoAgentEnv` and use
nothing but its protocol (``reset``, ``step``, ``observation_spaces``, ``action_spaces``, ``close``),
so every registered environment works, built-in or from a plugin:

    env = to_pettingzoo("markov-soccer", horizon=50)               # pettingzoo.ParallelEnv
    obs, infos = env.reset(seed=0)                                  # {"player_0": ..., "player_1": ...}
    obs, rewards, terminations, truncations, infos = env.step({"player_0": 1, "player_1": 4})

    env = to_gymnasium("matching-pennies", opponent=policy, player=0)   # gymnasium.Env
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)

How the protocol maps onto the two APIs:

- Agents: ``"player_0"`` is player 1 of the two-agent env (``action1``, ``obs[0]``, ``rewards[0]``),
  ``"player_1"`` is player 2. In :func:`to_gymnasium`, ``player=0`` makes the Gymnasium agent player 1
  (the opponent is player 2), ``player=1`` the reverse.
- Spaces: ``envs.base.Discrete(n)`` becomes ``gymnasium.spaces.Discrete(n)`` (int64);
  ``envs.base.Box`` becomes ``gymnasium.spaces.Box`` with the same bounds, shape and dtype.
- Seeding: ``reset(seed=s)`` calls the wrapped env's ``reset(seed=s)``, so an episode through a view
  equals the episode of the native env reset with the same seed and fed the same actions.
  ``reset(seed=None)`` continues the current random streams. The Gymnasium view also seeds its own
  generator (``np_random``) from ``s``; the opponent's sampling generator is drawn from it.
- Episode ends: the wrapped env auto-resets; the views instead return the true last observation
  (``info["final_obs"]`` of the protocol), report ``terminated`` / ``truncated`` as they are, and wait
  for ``reset()``. The PettingZoo view empties ``agents`` at the end of an episode. Stepping an ended
  episode raises a ``RuntimeError`` that says to call ``reset()``.
- Infos: the wrapped env's own step-info entries (everything but ``final_obs`` and ``done_mask``),
  with arrays of leading dimension 1 reduced to their single row.
- Rendering: ``render_mode="ansi"`` gives a text line of the last step (step count, actions, rewards,
  observations). An env that draws itself may declare ``render_modes`` (for example
  ``("rgb_array",)``) and a method ``render(mode)`` returning one frame per copy (leading dimension
  ``num_envs``); the views then offer those modes too and return copy 0's frame.

Importing this module needs the ``adapters`` extra: ``pip install "ipo-robust[adapters]"``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

try:
    import gymnasium
    from gymnasium import spaces as gym_spaces
    from pettingzoo.utils.env import ParallelEnv
except ImportError as err:  # pragma: no cover - exercised by a test that hides the packages
    raise ImportError(
        f"the PettingZoo / Gymnasium adapters need the 'gymnasium' and 'pettingzoo' packages "
        f"(missing: {err.name or err}); install the extra: pip install \"ipo-robust[adapters]\""
    ) from err

from ipo_robust import host
from ipo_robust.envs.base import Box, Discrete

AGENTS = ("player_0", "player_1")
"""PettingZoo agent names: ``"player_0"`` is player 1 of the two-agent env, ``"player_1"`` player 2."""

_PROTOCOL_INFO_KEYS = ("final_obs", "done_mask")


# -- shared pieces -----------------------------------------------------------------------------------
def to_gymnasium_space(space) -> gymnasium.Space:
    """The Gymnasium space of an ``envs.base`` space: Discrete(n) -> Discrete(n), Box -> Box (same
    bounds, shape and dtype). Duck-typed spaces with ``n``, or ``low``/``high``/``shape``, convert too."""
    if isinstance(space, Discrete) or (hasattr(space, "n") and not hasattr(space, "low")):
        return gym_spaces.Discrete(int(space.n))
    if isinstance(space, Box) or (hasattr(space, "low") and hasattr(space, "high")):
        dtype = np.dtype(getattr(space, "dtype", np.float64))
        return gym_spaces.Box(low=np.asarray(space.low, dtype=dtype), high=np.asarray(space.high, dtype=dtype),
                              shape=tuple(space.shape), dtype=dtype)
    raise TypeError(f"cannot convert the space {space!r} to a Gymnasium space: the adapters support "
                    "envs.base.Discrete and envs.base.Box")


def _two_agent_env(name_or_env, kwargs: dict, caller: str):
    """The wrapped env: made by name with one copy, or an existing env that runs one copy."""
    if isinstance(name_or_env, str):
        if "num_envs" in kwargs:
            raise ValueError(f"{caller} runs one copy of the environment; drop num_envs={kwargs['num_envs']!r}")
        return host.create("env", name_or_env, num_envs=1, **kwargs)
    env = name_or_env
    missing = [attr for attr in ("reset", "step", "observation_spaces", "action_spaces", "num_envs")
               if not hasattr(env, attr)]
    if missing:
        raise TypeError(f"{caller} needs an env name (ipo-robust plugins lists them) or a TwoAgentEnv; "
                        f"got {type(env).__name__}, which lacks {', '.join(missing)}")
    if kwargs:
        raise ValueError(f"{caller} got an env instance and options {sorted(kwargs)}; options are only used "
                         "when the env is made by name: pass the name, or set them on the instance")
    if env.num_envs != 1:
        raise ValueError(f"{caller} needs an env with num_envs=1, got num_envs={env.num_envs}; make it with "
                         "ipo_robust.make_env(name, num_envs=1) or pass the name")
    return env


def _env_name(env, name_or_env) -> str:
    if isinstance(name_or_env, str):
        return name_or_env
    return str(getattr(env, "name", type(env).__name__))


def _batched_action(action, space, agent: str) -> np.ndarray:
    """One agent's action as a batch of one, after checking it lies in the agent's space."""
    if hasattr(action, "detach") and hasattr(action, "cpu"):
        action = action.detach().cpu().numpy()
    a = np.asarray(action)
    if not space.contains(a):
        raise ValueError(f"action {action!r} for {agent} is not in its action space {space!r}"
                         + (f" (an integer in 0..{space.n - 1})" if hasattr(space, "n") else
                            f" (an array of shape {space.shape} within the bounds)"))
    return a[None, ...]


def _row_info(info: dict) -> dict:
    """The wrapped env's own info entries for copy 0 (arrays of leading dimension 1 become their row)."""
    out = {}
    for key, value in info.items():
        if key in _PROTOCOL_INFO_KEYS:
            continue
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 1:
            value = value[0]
        out[key] = value.copy() if isinstance(value, np.ndarray) else value
    return out


def _render_modes(env) -> list[str]:
    modes = ["ansi"]
    for mode in getattr(env, "render_modes", ()) or ():
        if mode not in modes:
            modes.append(str(mode))
    return modes


def _check_render_mode(render_mode, modes: list[str]) -> str | None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode {render_mode!r} is not supported by this env; choose one of {modes} or None")
    return render_mode


class _Episode:
    """One copy of a two-agent env, stepped by single actions and stopped at the end of each episode."""

    def __init__(self, env, name: str):
        self.env, self.name = env, name
        self.obs_dtypes = tuple(np.dtype(getattr(space, "dtype", np.float64)) for space in env.observation_spaces)
        self.obs: tuple[np.ndarray, np.ndarray] | None = None
        self.over = True
        self.steps = 0
        self.last: dict[str, Any] = {}

    def _rows(self, obs1, obs2) -> tuple[np.ndarray, np.ndarray]:
        """Copy 0's observations, in the dtypes of the observation spaces."""
        return (np.array(obs1[0], dtype=self.obs_dtypes[0]), np.array(obs2[0], dtype=self.obs_dtypes[1]))

    def reset(self, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        obs1, obs2 = self.env.reset(seed=None if seed is None else int(seed))
        self.obs = self._rows(obs1, obs2)
        self.over, self.steps, self.last = False, 0, {}
        return self.obs[0].copy(), self.obs[1].copy()

    def step(self, action1: np.ndarray, action2: np.ndarray):
        """(obs pair, reward pair, terminated, truncated, info) of copy 0; obs is the true last one."""
        if self.obs is None:
            raise RuntimeError(f"step() called before reset() on the {self.name} adapter; call reset(seed=...) first")
        if self.over:
            raise RuntimeError(f"the {self.name} episode is over; call reset() before stepping again")
        result = self.env.step(action1, action2)
        final1, final2 = result.info["final_obs"]
        self.obs = self._rows(final1, final2)
        rewards = (float(result.rewards[0][0]), float(result.rewards[1][0]))
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        self.over = terminated or truncated
        self.steps += 1
        self.last = {"actions": (action1[0], action2[0]), "rewards": rewards}
        return (self.obs[0].copy(), self.obs[1].copy()), rewards, terminated, truncated, _row_info(result.info)

    def render(self, mode: str | None):
        if mode is None:
            gymnasium.logger.warn("render() called without a render_mode; make the adapter with render_mode='ansi'")
            return None
        if mode != "ansi":
            frames = self.env.render(mode)
            return frames[0]
        if self.obs is None:
            return f"{self.name}: not reset"
        lines = [f"{self.name} step {self.steps}" + (" (episode over)" if self.over else "")]
        if self.last:
            a1, a2 = self.last["actions"]
            r1, r2 = self.last["rewards"]
            lines.append(f"actions {AGENTS[0]}={np.array2string(np.asarray(a1))} "
                         f"{AGENTS[1]}={np.array2string(np.asarray(a2))}  rewards {r1:g} / {r2:g}")
        for agent, obs in zip(AGENTS, self.obs, strict=True):
            lines.append(f"{agent} obs {np.array2string(obs, precision=3, threshold=64)}")
        return "\n".join(lines) + "\n"


# -- PettingZoo ----------------------------------------------------------------------------------------
class _EpisodeViewMixin:
    """render/close shared by both views (each holds ``_episode``, ``env``, ``render_mode``, ``_closed``)."""

    def render(self):
        """The last step as text (``render_mode="ansi"``), or the wrapped env's frame (its own modes)."""
        return self._episode.render(self.render_mode)

    def close(self):
        """Close the wrapped env (safe to call twice)."""
        if not self._closed:
            self._closed = True
            self.env.close()


class PettingZooParallelEnv(_EpisodeViewMixin, ParallelEnv):
    """A PettingZoo ``ParallelEnv`` view of one copy of a two-agent env (see the module docstring).

    Made by :func:`to_pettingzoo`. ``agents`` holds both players while an episode runs and is emptied
    when it ends (both players terminate or truncate together).
    """

    def __init__(self, env, name: str, render_mode: str | None = None):
        self.env = env
        modes = _render_modes(env)
        self.metadata = {"name": f"ipo_robust/{name}", "render_modes": modes, "render_fps": 4,
                         "is_parallelizable": True}
        self.render_mode = _check_render_mode(render_mode, modes)
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.observation_spaces = {agent: to_gymnasium_space(space)
                                   for agent, space in zip(AGENTS, env.observation_spaces, strict=True)}
        self.action_spaces = {agent: to_gymnasium_space(space)
                              for agent, space in zip(AGENTS, env.action_spaces, strict=True)}
        self._episode = _Episode(env, name)
        self._closed = False

    def observation_space(self, agent: str) -> gymnasium.Space:
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> gymnasium.Space:
        return self.action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in AGENTS:
            raise KeyError(f"unknown agent {agent!r}; the agents are {list(AGENTS)}")
        return agent

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` reseeds the wrapped env, ``None`` continues its random stream.
        ``options`` are accepted and ignored. Returns (observations, infos), dicts keyed by agent."""
        obs = self._episode.reset(seed)
        self.agents = list(AGENTS)
        return dict(zip(AGENTS, obs, strict=True)), {agent: {} for agent in AGENTS}

    def step(self, actions: dict):
        """One simultaneous move: ``actions`` maps both agents to their actions. Returns (observations,
        rewards, terminations, truncations, infos), dicts keyed by agent."""
        if not self.agents:
            self._episode.step(None, None)  # raises: not reset / episode over
        if not isinstance(actions, dict):
            raise TypeError(f"step() takes a dict of actions keyed by agent ({list(AGENTS)}), got "
                            f"{type(actions).__name__}")
        missing, unknown = set(AGENTS) - set(actions), set(actions) - set(AGENTS)
        if missing or unknown:
            raise ValueError(f"step() needs one action for each of {list(AGENTS)} (a simultaneous move); "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        batched = [_batched_action(actions[agent], self.env.action_spaces[i], agent) for i, agent in enumerate(AGENTS)]
        obs, rewards, terminated, truncated, info = self._episode.step(*batched)
        if terminated or truncated:
            self.agents = []
        return (dict(zip(AGENTS, obs, strict=True)), dict(zip(AGENTS, rewards, strict=True)),
                dict.fromkeys(AGENTS, terminated), dict.fromkeys(AGENTS, truncated),
                {agent: dict(info) for agent in AGENTS})



# -- Gymnasium -----------------------------------------------------------------------------------------
class _PolicyOpponent:
    """A torch policy with ``distribution(obs)``: samples one action per step from a seeded torch.Generator."""

    def __init__(self, policy):
        import torch

        self.policy = policy
        params = [p for p in policy.parameters() if p.is_floating_point()] if hasattr(policy, "parameters") else []
        self.dtype = params[0].dtype if params else torch.get_default_dtype()
        self.device = params[0].device if params else torch.device("cpu")
        self.generator = torch.Generator(device=self.device)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, obs: np.ndarray):
        # torch only when a policy plays: the adapters stay importable (and fast) without it
        import torch

        from ipo_robust.policies import sample_action

        with torch.no_grad():
            x = torch.as_tensor(obs[None, ...], dtype=self.dtype, device=self.device)
            return sample_action(self.policy.distribution(x), self.generator)[0].cpu().numpy()


class _CallableOpponent:
    """A callable ``opponent(obs)`` (or ``opponent(obs, rng=...)``, given a seeded numpy Generator)."""

    def __init__(self, fn):
        self.fn = fn
        try:
            self.takes_rng = "rng" in inspect.signature(fn).parameters
        except (TypeError, ValueError):  # builtins without a signature
            self.takes_rng = False
        self.rng = np.random.default_rng()

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray):
        return self.fn(obs, rng=self.rng) if self.takes_rng else self.fn(obs)


def _make_opponent(opponent):
    if opponent is None:
        raise ValueError("to_gymnasium needs opponent=: a frozen policy (a torch module with distribution(obs), "
                         "e.g. from ipo_robust.make_agents) or a callable obs -> action")
    if callable(getattr(opponent, "distribution", None)):
        return _PolicyOpponent(opponent)
    if callable(opponent):
        return _CallableOpponent(opponent)
    raise TypeError(f"opponent must be a policy with distribution(obs) or a callable obs -> action, "
                    f"got {type(opponent).__name__}: {opponent!r}")


def _opponent_action(opponent, obs: np.ndarray, space, agent: str) -> np.ndarray:
    """The opponent's action for its (unbatched) observation, checked and batched; a Box action is clipped
    to the bounds first, as the rollouts of ipo_robust do."""
    action = opponent(obs)
    if hasattr(action, "detach") and hasattr(action, "cpu"):
        action = action.detach().cpu().numpy()
    a = np.asarray(action)
    is_box = hasattr(space, "low") and hasattr(space, "high")
    if is_box and np.issubdtype(a.dtype, np.number) and a.shape == space.shape:
        a = np.clip(a.astype(space.dtype), space.low, space.high)
    if not space.contains(a):
        raise ValueError(f"the opponent ({agent}) returned {action!r}, which is not in its action space {space!r}; "
                         "it must return one action for one observation"
                         + (f" (an integer in 0..{space.n - 1})" if hasattr(space, "n") else
                            f" (an array of shape {space.shape})"))
    return a[None, ...]


def _check_player(player) -> None:
    if isinstance(player, bool) or not isinstance(player, (int, np.integer)) or player not in (0, 1):
        raise ValueError(f"player must be 0 or 1 (the index of the player the Gymnasium agent controls: "
                         f"0 = {AGENTS[0]}, 1 = {AGENTS[1]}), got {player!r}")


class GymnasiumSingleAgentEnv(_EpisodeViewMixin, gymnasium.Env):
    """A Gymnasium view of one player of a two-agent env, the other player frozen (module docstring).

    Made by :func:`to_gymnasium`. ``player`` (0 or 1) is the player the Gymnasium agent controls;
    ``opponent`` plays the other one, with its actions sampled from a generator seeded at ``reset(seed)``.
    """

    def __init__(self, env, name: str, opponent, player: int = 0, render_mode: str | None = None):
        _check_player(player)
        self.env = env
        self.player, self.other = int(player), 1 - int(player)
        self.opponent = _make_opponent(opponent)
        modes = _render_modes(env)
        self.metadata = {"render_modes": modes, "render_fps": 4}
        self.render_mode = _check_render_mode(render_mode, modes)
        self.observation_space = to_gymnasium_space(env.observation_spaces[self.player])
        self.action_space = to_gymnasium_space(env.action_spaces[self.player])
        self._episode = _Episode(env, name)
        self._opponent_seeded = False
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``seed`` reseeds the wrapped env, ``np_random`` and (from it) the opponent's
        generator; ``None`` continues them. ``options`` are accepted and ignored. Returns (obs, info)."""
        super().reset(seed=seed)
        if seed is not None or not self._opponent_seeded:
            self.opponent.seed(int(self.np_random.integers(2**63)))
            self._opponent_seeded = True
        obs = self._episode.reset(seed)
        return obs[self.player], {}

    def step(self, action):
        """The agent's action against the opponent's; returns (obs, reward, terminated, truncated, info)."""
        if self._episode.obs is None or self._episode.over:
            self._episode.step(None, None)  # raises: not reset / episode over
        mine = _batched_action(action, self.env.action_spaces[self.player], AGENTS[self.player])
        theirs = _opponent_action(self.opponent, self._episode.obs[self.other], self.env.action_spaces[self.other],
                                  AGENTS[self.other])
        joint = (mine, theirs) if self.player == 0 else (theirs, mine)
        obs, rewards, terminated, truncated, info = self._episode.step(*joint)
        info["opponent_action"] = theirs[0].item() if theirs[0].ndim == 0 else theirs[0].copy()
        info["opponent_reward"] = rewards[self.other]
        return obs[self.player], rewards[self.player], terminated, truncated, info



# -- entry points ----------------------------------------------------------------------------------------
def to_pettingzoo(name_or_env, render_mode: str | None = None, **kwargs) -> PettingZooParallelEnv:
    """A PettingZoo ``ParallelEnv`` view of a two-agent env (module docstring).

    ``name_or_env``: a registered env name (``ipo-robust plugins`` lists them), made with ``num_envs=1``
    and ``kwargs`` as its options (e.g. ``horizon=50``); or a ``TwoAgentEnv`` with ``num_envs=1``.
    """
    env = _two_agent_env(name_or_env, kwargs, "to_pettingzoo")
    return PettingZooParallelEnv(env, _env_name(env, name_or_env), render_mode=render_mode)


def to_gymnasium(name_or_env, opponent=None, player: int = 0, render_mode: str | None = None,
                 **kwargs) -> GymnasiumSingleAgentEnv:
    """A Gymnasium single-agent view of player ``player`` (0 or 1) of a two-agent env (module docstring).

    ``opponent`` plays the other player, frozen: a torch policy with ``distribution(obs)`` (sampled with a
    ``torch.Generator`` seeded from ``reset(seed)``), or a callable ``obs -> action`` taking one
    unbatched observation (if it has an ``rng`` parameter it gets a numpy Generator seeded the same way).
    ``name_or_env`` and ``kwargs`` as in :func:`to_pettingzoo`.
    """
    _check_player(player)
    _make_opponent(opponent)  # a bad opponent fails before the env is made
    env = _two_agent_env(name_or_env, kwargs, "to_gymnasium")
    return GymnasiumSingleAgentEnv(env, _env_name(env, name_or_env), opponent, player=player,
                                   render_mode=render_mode)
