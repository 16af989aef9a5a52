"""``soccer-1v1``: dm_control's locomotion soccer, one BOXHEAD walker per team, as a two-agent env.

Each copy is a ``dm_control.locomotion.soccer`` composer environment (``team_size=1``,
``walker_type=BOXHEAD``, ``terminate_on_goal=True``; the HUMANOID walkers need downloaded assets).
Agent 1 is the home player, agent 2 the away player.

- Action per agent: Box([-1, 1]^3) (BoxHead's roll, steer, kick), as the composer env expects.
- Observation per agent: the player's composer observation dict flattened in sorted key order (77).
- Rewards: the soccer task's, +1 to the scorer and -1 to the other on a goal (zero-sum); a goal
  terminates the episode; ``max_episode_steps`` (default 400 control steps of 0.025 s = 10 s) truncates.
- Superpower: the holder pushes the opponent walker's bodies (``learned-location``: in the frame of
  its root body; ``body-force``: the root body, x/y), clipped to ``alpha * f_max`` (default 20 N),
  written to the copy's ``xfrc_applied`` before the composer step and zeroed after it (held over the
  composer's substeps, as in :mod:`ipo_robust.envs.mujoco.base`). ``dynamics`` is not supported.
- Seeding: on every reset of a copy, its composer ``random_state`` is re-seeded from ``self.rng``.
- A ``PhysicsError`` raised by dm_control (divergent physics) ends that copy's episode with zero
  reward and counts in ``info["physics_blowups"]``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from ipo_robust.envs.base import Box, TwoAgentEnv
from ipo_robust.envs.mujoco.base import MujocoTwoAgentEnv


class Soccer1v1Env(MujocoTwoAgentEnv):
    """See the module docstring. Reuses the superpower machinery of :class:`MujocoTwoAgentEnv`."""

    def __init__(self, num_envs: int = 1, seed: int | None = None, max_episode_steps: int = 400,
                 perturbation=None, holder=None, alpha: float = 1.0, f_max: float = 20.0,
                 torque_max: float | None = None):
        from dm_control.locomotion import soccer

        from ipo_robust.envs.mujoco.perturbations import NoPerturbation, make_perturbation

        self._soccer = [soccer.load(team_size=1, time_limit=float("inf"), terminate_on_goal=True,
                                    walker_type=soccer.WalkerType.BOXHEAD,
                                    random_state=np.random.RandomState(0)) for _ in range(int(num_envs))]
        first = self._soccer[0]
        first.reset()
        self.models = [e.physics.model._model for e in self._soccer]
        self.datas = [e.physics.data._data for e in self._soccer]
        self.model = self.models[0]
        self.n_substeps = int(round(first.control_timestep() / self.model.opt.timestep))
        self.f_max = float(f_max)
        self.torque_max = float(0.1 * f_max if torque_max is None else torque_max)
        players = first.task.players
        self.body_ids = tuple(
            np.array([i for i in (first.physics.bind(b).element_id for b in p.walker.mjcf_model.find_all("body"))
                      if i != 0 and self.model.body_geomnum[i] > 0], dtype=np.int64)  # bodies with geoms
            for p in players)
        roots = [first.physics.bind(p.walker.root_body).element_id for p in players]
        self.body_ids = tuple(np.concatenate([[r], ids[ids != r]]) for r, ids in zip(roots, self.body_ids,
                                                                                    strict=True))
        names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, int(r)) for r in roots]
        self.rarl_force_bodies = ([(names[0], "xy")], [(names[1], "xy")])
        self.actuator_ids = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        specs = first.action_spec()
        self.own_action_spaces = tuple(Box(s.minimum, s.maximum) for s in specs)
        self.own_action_dims = tuple(int(s.shape[0]) for s in specs)
        self._obs_keys = [sorted(obs) for obs in first.reset().observation]

        if perturbation is None:
            perturbation = NoPerturbation()
        elif isinstance(perturbation, str):
            perturbation = make_perturbation(perturbation)
        if perturbation.changes_model:
            raise ValueError(f"soccer-1v1 does not support the {perturbation.name!r} perturbation (it changes the "
                             "model per episode)")
        action_spaces = self._attach_perturbation(perturbation, holder)
        obs_dim = sum(int(np.prod(first.observation_spec()[0][k].shape)) for k in self._obs_keys[0])
        TwoAgentEnv.__init__(self, num_envs, (Box(-np.inf, np.inf, shape=(obs_dim,)),) * 2, action_spaces,
                             seed=seed, max_episode_steps=max_episode_steps)
        self.holder, self.alpha = None, 0.0
        self.set_superpower(None if holder is None else self.power_slots[0], alpha)
        self._pending = None
        self.blowup_count = 0
        self._step_rows, self._step_cache = None, {}
        self._last_obs = [None] * self.num_envs

    def _flatten(self, observation) -> tuple[np.ndarray, np.ndarray]:
        return tuple(np.concatenate([np.ravel(obs[k]) for k in keys]).astype(np.float64)
                     for obs, keys in zip(observation, self._obs_keys, strict=True))

    def _reset_envs(self, mask):
        rows = np.flatnonzero(mask)
        obs1, obs2 = [], []
        for i in rows:
            env = self._soccer[i]
            env.random_state.seed(int(self.rng.integers(2**31)))
            o1, o2 = self._flatten(env.reset().observation)
            self.models[i], self.datas[i] = env.physics.model._model, env.physics.data._data  # in case it recompiled
            obs1.append(o1)
            obs2.append(o2)
        return self._perturb_obs((np.array(obs1), np.array(obs2)), rows)

    def _step_envs(self, action1, action2):
        from dm_control.rl.control import PhysicsError

        own, cmd, xfrc, pushed = self._prepare_step(action1, action2)
        N = self.num_envs
        obs1 = np.zeros((N, self.observation_spaces[0].shape[0]))
        obs2 = np.zeros((N, self.observation_spaces[1].shape[0]))
        r1, r2 = np.zeros(N), np.zeros(N)
        terminated = np.zeros(N, dtype=bool)
        blowups = np.zeros(N, dtype=np.int64)
        for i, (env, d) in enumerate(zip(self._soccer, self.datas, strict=True)):
            if pushed[i]:
                d.xfrc_applied[:] = xfrc[i]
            try:
                ts = env.step([own[0][i], own[1][i]])
            except PhysicsError:
                blowups[i], terminated[i] = 1, True
                d.xfrc_applied[:] = 0.0
                continue
            d.xfrc_applied[:] = 0.0  # cleared: forces never persist into the next step
            obs1[i], obs2[i] = self._flatten(ts.observation)
            r1[i], r2[i] = float(ts.reward[0]), float(ts.reward[1])
            terminated[i] = ts.last()
        self.blowup_count += int(blowups.sum())
        obs = self._perturb_obs((obs1, obs2), np.arange(N))
        if cmd is None:
            forces = {"body": np.zeros((N, 0), dtype=np.int64), "point": np.zeros((N, 0, 3)),
                      "force": np.zeros((N, 0, 3)), "torque": np.zeros((N, 0, 3))}
        else:
            forces = {"body": cmd.body, "point": cmd.point, "force": cmd.force, "torque": cmd.torque}
        return obs, (r1, r2), terminated, {"physics_blowups": blowups, "forces": forces}


def make_soccer_1v1(num_envs: int = 1, seed: int | None = None, **options) -> Soccer1v1Env:
    return Soccer1v1Env(num_envs=num_envs, seed=seed, **options)
