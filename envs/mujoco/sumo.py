"""Sumo games: two agents in a ring; pushing the other out (or, for ants, making it fall) wins.

Rewards (zero-sum, r2 = -r1), per step, for agent i against agent j:

- the episode *terminates* when at least one agent is out (its root's horizontal distance from the
  ring centre exceeds ``ring_radius``, or, for ants, its torso drops below ``fall_height``): +1 to the
  agent that stayed in, -1 to the one that went out, 0 to both when both went out in the same step;
- a time-out (``max_episode_steps``) is a tie (0, *truncated*);
- optional dense shaping, added every step: ``shaping * (Phi' - Phi)``, the change over the step of the
  potential ``Phi = (d_j - d_i) / ring_radius`` where d is an agent's horizontal distance from the
  centre (potential-based shaping: pushing the opponent outwards and gaining the centre pay; over an
  episode it sums to ``shaping * (Phi_end - Phi_start)``, whatever the episode's length). Anneal it
  with ``env.set_shaping(weight)`` towards 0; with weight 0 only wins and losses count.

Observations (agent i, world frame, ring centre at the origin): its own root state, the opponent's root
state and both distances to the ring edge (see each env's ``_observe``); the entries that describe the
opponent are ``opponent_observation_indices(agent)`` (the env protocol). Random initial states: each
agent starts at its side (x = -/+ ``start_distance``) with uniform noise from ``self.rng``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from ipo_robust.envs.mujoco import ASSETS
from ipo_robust.envs.mujoco.base import MujocoTwoAgentEnv


class SumoEnv(MujocoTwoAgentEnv):
    """Shared reward and shaping of the sumo games (subclasses give the model and observations)."""

    ring_radius = 1.0
    opponent_observation: tuple[int, ...] = ()
    """The entries of either agent's observation that describe its opponent (each game's own layout;
    the layout is the same for both agents, own state first)."""

    def __init__(self, *args, shaping: float = 0.0, **kwargs):
        self.shaping = 0.0
        self.set_shaping(shaping)
        super().__init__(*args, **kwargs)
        self._root_qpos = tuple(int(self.model.jnt_qposadr[self.model.body_jntadr[b[0]]]) for b in self.body_ids)
        self._root_bodies = [int(self.body_ids[0][0]), int(self.body_ids[1][0])]

    def opponent_observation_indices(self, agent: int) -> tuple[int, ...]:
        """:attr:`opponent_observation`, for either agent (the env protocol, :mod:`ipo_robust.envs.base`)."""
        super().opponent_observation_indices(agent)  # checks agent
        return self.opponent_observation

    def set_shaping(self, weight: float) -> None:
        """Weight of the dense shaping term (>= 0; anneal it to 0 over training)."""
        weight = float(weight)
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"shaping weight must be finite and >= 0, got {weight}")
        self.shaping = weight

    def _is_out(self, roots: np.ndarray) -> np.ndarray:
        """roots (n, 2, 3): both agents' root positions -> (n, 2) bool, out of the ring."""
        return np.hypot(roots[..., 0], roots[..., 1]) > self.ring_radius

    def _potential(self, roots: np.ndarray) -> np.ndarray:
        """Phi = (opponent's distance from the centre - own distance) / ring radius, agent 1's view, (n,)."""
        dist = np.hypot(roots[..., 0], roots[..., 1])
        return (dist[:, 1] - dist[:, 0]) / self.ring_radius

    def _reset_envs(self, mask):
        obs = super()._reset_envs(mask)
        rows = np.flatnonzero(mask)
        if not hasattr(self, "_phi"):
            self._phi = np.zeros(self.num_envs)
        self._phi[rows] = self._potential(self._stack("xpos", rows, self._root_bodies))
        return obs

    def _reward(self, rows):
        """Sparse +1 / -1 / 0 when an agent leaves the ring, plus ``shaping * (Phi' - Phi)``.

        The shaping is potential-based (Ng et al. 1999): over an episode it sums to
        ``shaping * (Phi_end - Phi_start)``, so it rewards pushing the opponent outwards and holding
        the centre without paying for episode length, and ending an episode early (stepping out)
        can never collect more of it.
        """
        roots = self._stack("xpos", rows, self._root_bodies)  # (n, 2, 3)
        out = self._is_out(roots)
        r1 = out[:, 1].astype(np.float64) - out[:, 0]
        phi = self._potential(roots)
        if self.shaping:
            r1 = r1 + self.shaping * (phi - self._phi[rows])
        self._phi[rows] = phi
        return r1, -r1, out.any(axis=1)


class SumoPushersEnv(SumoEnv):
    """``sumo-pushers``: two planar box pushers (slide x, slide y, hinge z; motors along world x/y).

    Action per agent: Box([-1, 1]^2), force = 4 N * action. Observation (16): own x, y, cos, sin of
    heading, vx, vy, yaw rate; the same 7 for the opponent; own and opponent distance to the ring edge.
    Control step 0.05 s (5 physics steps of 0.01 s); default episode 100 steps (5 s).
    Superpower: ``f_max`` = 4 N by default (as strong as the pushers' own motors).
    """

    rarl_force_bodies = ([("p0", "xy")], [("p1", "xy")])
    opponent_observation = (*range(7, 14), 15)  # the opponent's x, y, cos, sin, vx, vy, yaw rate; its edge distance

    def __init__(self, num_envs: int = 1, seed: int | None = None, max_episode_steps: int = 100,
                 start_distance: float = 0.45, init_noise: float = 0.05, f_max: float = 4.0, **kwargs):
        model = mujoco.MjModel.from_xml_path(str(ASSETS / "sumo_pushers.xml"))
        self.start_distance, self.init_noise = float(start_distance), float(init_noise)
        self._start = (None, None)  # (start_distance, the initial qpos before noise) of _initialize_episode
        super().__init__(model, num_envs, seed, max_episode_steps, obs_dims=(16, 16),
                         actuators=(["p0_fx", "p0_fy"], ["p1_fx", "p1_fy"]), bodies=(["p0"], ["p1"]),
                         n_substeps=5, f_max=f_max, **kwargs)
        q0, q1 = self._root_qpos  # qpos address = dof address for these scalar joints
        self._root_cols = np.array([q0, q0 + 1, q0 + 2, q1, q1 + 1, q1 + 2])
        own = ([0, 1, 6, 8, 10, 11, 12], [3, 4, 7, 9, 13, 14, 15])  # x, y, cos, sin, vx, vy, yaw rate
        self._obs_cols = (np.r_[own[0], own[1], 16, 17], np.r_[own[1], own[0], 17, 16])  # columns of _observe

    def _initialize_episode(self, model, data, rng):
        noise = rng.uniform(-self.init_noise, self.init_noise, size=6)
        if self._start[0] != self.start_distance:
            self._start = (self.start_distance, np.array([-self.start_distance, 0.0, 0.0, self.start_distance, 0.0,
                                                          np.pi]))
        np.add(self._start[1], noise, out=data.qpos)

    def _observe(self, rows):
        qpos, qvel = self._stack("qpos", rows), self._stack("qvel", rows)
        pose = qpos[:, self._root_cols]  # (n, 6): x, y, heading of agent 1, then of agent 2
        heading = pose[:, 2::3]
        # (n, 18): poses (6), cos (2), sin (2), velocities (6), distances to the ring edge (2)
        features = np.concatenate([pose, np.cos(heading), np.sin(heading), qvel[:, self._root_cols],
                                   self.ring_radius - np.hypot(pose[:, 0::3], pose[:, 1::3])], axis=1)
        return features[:, self._obs_cols[0]], features[:, self._obs_cols[1]]


def make_sumo_pushers(num_envs: int = 1, seed: int | None = None, **options) -> SumoPushersEnv:
    return SumoPushersEnv(num_envs=num_envs, seed=seed, **options)


class SumoAntsEnv(SumoEnv):
    """``sumo-ants``: two ants (Gym Ant body plan, after Bansal et al. 2018 SumoAnts) in a ring of 2.5 m.

    An ant is *out* when its torso leaves the ring or falls below ``fall_height`` = 0.3 m (lying on its
    back). Action per agent: Box([-1, 1]^8) (hips and ankles, gear 150). Observation (44): own root
    position and orientation quaternion, joint angles (15) and velocities (14), the opponent's torso
    pose (7) and velocity (6), own and opponent distance to the ring edge. Control step 0.05 s
    (5 x 0.01 s); default episode 250 steps. ``body-force`` pushes the opponent's torso (x, y, z);
    superpower ``f_max`` = 100 N by default (comparable to the gear-150 leg motors).
    """

    ring_radius = 2.5
    fall_height = 0.3
    rarl_force_bodies = ([("a0_torso", "xyz")], [("a1_torso", "xyz")])
    opponent_observation = (*range(29, 42), 43)  # the opponent's torso pose (7) and velocity (6); its edge distance

    def __init__(self, num_envs: int = 1, seed: int | None = None, max_episode_steps: int = 250,
                 init_noise: float = 0.1, f_max: float = 100.0, **kwargs):
        model = mujoco.MjModel.from_xml_path(str(ASSETS / "sumo_ants.xml"))
        self.init_noise = float(init_noise)
        actuators = tuple([f"a{k}_{j}_{i}" for i in range(1, 5) for j in ("hip", "ankle")] for k in (0, 1))
        bodies = tuple([mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(model.nbody)
                        if (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or "").startswith(f"a{k}_")]
                       for k in (0, 1))
        super().__init__(model, num_envs, seed, max_episode_steps, obs_dims=(44, 44), actuators=actuators,
                         bodies=bodies, n_substeps=5, f_max=f_max, **kwargs)
        self._root_dof = tuple(int(self.model.jnt_dofadr[self.model.body_jntadr[b[0]]]) for b in self.body_ids)

    def _initialize_episode(self, model, data, rng):
        """Gym Ant's reset noise: qpos + U(-0.1, 0.1), qvel + 0.1 N(0, 1) (quaternions renormalised)."""
        data.qpos[:] = model.qpos0 + rng.uniform(-self.init_noise, self.init_noise, size=model.nq)
        data.qvel[:] = self.init_noise * rng.standard_normal(model.nv)
        for q in self._root_qpos:
            data.qpos[q + 3:q + 7] /= np.linalg.norm(data.qpos[q + 3:q + 7])

    def _is_out(self, roots):
        return super()._is_out(roots) | (roots[..., 2] < self.fall_height)

    def _observe(self, rows):
        qpos, qvel = self._stack("qpos", rows), self._stack("qvel", rows)
        parts = []
        for k in (0, 1):
            q, v = self._root_qpos[k], self._root_dof[k]
            parts.append((qpos[:, q:q + 15], qvel[:, v:v + 14], qpos[:, q:q + 7], qvel[:, v:v + 6],
                          self.ring_radius - np.hypot(qpos[:, q], qpos[:, q + 1])))
        (p0, v0, r0, w0, e0), (p1, v1, r1, w1, e1) = parts
        return (np.concatenate([p0, v0, r1, w1, np.stack([e0, e1], 1)], 1),
                np.concatenate([p1, v1, r0, w0, np.stack([e1, e0], 1)], 1))


def make_sumo_ants(num_envs: int = 1, seed: int | None = None, **options) -> SumoAntsEnv:
    return SumoAntsEnv(num_envs=num_envs, seed=seed, **options)
