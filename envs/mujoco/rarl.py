"""RARL hosts (Pinto et al. 2017, "Robust Adversarial Reinforcement Learning") on dm_control's suite.

``rarl-hopper`` (suite hopper-hop), ``rarl-cheetah`` (cheetah-run), ``rarl-walker`` (walker-walk):
the suite's MJCF, control step, initial-state randomisation, observations and reward, reimplemented on
raw ``mujoco`` so N copies step in one loop (the same formulas as ``dm_control.suite.<domain>``).

- Agent 1 (index 0, the protagonist) acts through the actuators (Box [-1, 1]^nu) and receives the task
  reward r in [0, 1] per step; agent 2 (index 1, the adversary) has no actuators and acts only through
  the superpower (``holder=1``, perturbation ``body-force`` by default) and receives -r (zero-sum).
  Both observe the protagonist's suite observation (flattened in the suite's key order).
- RARL's adversary (``body-force``): 2-d forces in the sagittal (x, z) plane at the centre of mass of
  hopper: ``foot`` (2-d); cheetah: ``torso``, ``bfoot``, ``ffoot`` (6-d); walker: ``right_foot``,
  ``left_foot`` (4-d). Magnitude: ``f_max`` = 5 N per body, the ``adv_max_force = 5.0`` of RARL's
  gym-adv environments (there a per-axis box bound; here a bound on each body's force norm, at most
  as strong). Pass ``f_max=`` to change it.
- Episodes never terminate (suite tasks are infinite-horizon); they are truncated after
  ``max_episode_steps`` = 1000 control steps (the suite's time limits: 20 s / 0.02 s for hopper,
  10 s / 0.01 s for cheetah, 25 s / 0.025 s for walker).
"""

from __future__ import annotations

import mujoco
import numpy as np

from ipo_robust.envs.mujoco.base import MujocoTwoAgentEnv


def _tolerance_linear_above(x: np.ndarray, bound: float, margin: float, value_at_margin: float) -> np.ndarray:
    """dm_control ``rewards.tolerance(x, bounds=(bound, inf), margin, value_at_margin, sigmoid='linear')``."""
    scaled = (bound - x) / margin * (1.0 - value_at_margin)
    return np.where(x >= bound, 1.0, np.where(np.abs(scaled) < 1.0, 1.0 - scaled, 0.0))


def _tolerance_gaussian(x: np.ndarray, lower: float, upper: float, margin: float) -> np.ndarray:
    """dm_control ``rewards.tolerance(x, bounds=(lower, upper), margin, sigmoid='gaussian',
    value_at_margin=0.1)`` (``margin=0``: 1 inside the bounds, 0 outside)."""
    inside = (lower <= x) & (x <= upper)
    if margin == 0:
        return inside.astype(np.float64)
    d = np.where(x < lower, lower - x, x - upper) / margin
    scale = np.sqrt(-2 * np.log(0.1))
    return np.where(inside, 1.0, np.exp(-0.5 * (d * scale) ** 2))


class RarlSuiteEnv(MujocoTwoAgentEnv):
    """Shared part of the three hosts: model loading, the protagonist/adversary split, reset noise."""

    domain: str
    control_timestep: float
    rarl_force_bodies: tuple

    def __init__(self, num_envs: int = 1, seed: int | None = None, max_episode_steps: int = 1000,
                 perturbation="body-force", holder=1, alpha: float = 1.0, f_max: float = 5.0, **kwargs):
        import importlib

        suite_module = importlib.import_module(f"dm_control.suite.{self.domain}")
        xml, assets = suite_module.get_model_and_assets()
        model = mujoco.MjModel.from_xml_string(xml, assets)
        n_substeps = int(round(self.control_timestep / model.opt.timestep))
        actuators = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(model.nu)]
        bodies = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(1, model.nbody)]
        self._sensor = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SENSOR, i): int(model.sensor_adr[i])
                        for i in range(model.nsensor)}
        self._torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        obs_dim = self._obs_dim(model)
        super().__init__(model, num_envs, seed, max_episode_steps, obs_dims=(obs_dim, obs_dim),
                         actuators=(actuators, []), bodies=(bodies, []), n_substeps=n_substeps, f_max=f_max,
                         perturbation=perturbation, holder=holder, alpha=alpha, **kwargs)

    def _obs_dim(self, model) -> int:
        raise NotImplementedError

    def _initialize_episode(self, model, data, rng):
        """``randomizers.randomize_limited_and_rotational_joints``: limited hinges/slides uniform in their
        range, unlimited hinges uniform in [-pi, pi] (the suite's hopper and walker reset)."""
        for j in range(model.njnt):
            adr = model.jnt_qposadr[j]
            if model.jnt_limited[j]:
                data.qpos[adr] = rng.uniform(*model.jnt_range[j])
            elif model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
                data.qpos[adr] = rng.uniform(-np.pi, np.pi)

    def _speed(self, rows) -> np.ndarray:
        return self._stack("sensordata", rows, self._sensor["torso_subtreelinvel"])

    def _observe(self, rows):
        obs = self._suite_observation(rows)
        return obs, obs.copy()

    def _reward(self, rows):
        r = self._task_reward(rows)
        return r, -r, np.zeros(len(rows), dtype=bool)


class RarlHopperEnv(RarlSuiteEnv):
    """``rarl-hopper``: suite hopper-hop; observation (15) = qpos[1:], qvel, log1p(touch toe, heel)."""

    domain, control_timestep = "hopper", 0.02
    rarl_force_bodies = ([("foot", "xz")], [])

    def _obs_dim(self, model):
        return (model.nq - 1) + model.nv + 2

    def _suite_observation(self, rows):
        touch = np.log1p(self._stack("sensordata", rows, [self._sensor["touch_toe"], self._sensor["touch_heel"]]))
        return np.concatenate([self._stack("qpos", rows)[:, 1:], self._stack("qvel", rows), touch], 1)

    def _task_reward(self, rows):
        foot = self.body_ids[0][-1]
        z = self._stack("xipos", rows, ([self._torso, foot], 2))
        height = z[:, 0] - z[:, 1]
        standing = _tolerance_gaussian(height, 0.6, 2.0, 0.0)  # _STAND_HEIGHT = 0.6
        hopping = _tolerance_linear_above(self._speed(rows), 2.0, 1.0, 0.5)  # _HOP_SPEED = 2
        return standing * hopping


class RarlCheetahEnv(RarlSuiteEnv):
    """``rarl-cheetah``: suite cheetah-run; observation (17) = qpos[1:], qvel."""

    domain, control_timestep = "cheetah", 0.01
    rarl_force_bodies = ([("torso", "xz"), ("bfoot", "xz"), ("ffoot", "xz")], [])

    def _obs_dim(self, model):
        return (model.nq - 1) + model.nv

    def _initialize_episode(self, model, data, rng):
        """The suite's cheetah reset: limited joints uniform in range, then 200 physics steps to settle."""
        limited = model.jnt_limited == 1
        lower, upper = model.jnt_range[limited].T
        data.qpos[limited] = rng.uniform(lower, upper)
        mujoco.mj_step(model, data, nstep=200)
        data.time = 0.0

    def _suite_observation(self, rows):
        return np.concatenate([self._stack("qpos", rows)[:, 1:], self._stack("qvel", rows)], 1)

    def _task_reward(self, rows):
        return _tolerance_linear_above(self._speed(rows), 10.0, 10.0, 0.0)  # _RUN_SPEED = 10


class RarlWalkerEnv(RarlSuiteEnv):
    """``rarl-walker``: suite walker-walk; observation (24) = body orientations (xx, xz of each body's
    xmat), torso height, qvel."""

    domain, control_timestep = "walker", 0.025
    rarl_force_bodies = ([("right_foot", "xz"), ("left_foot", "xz")], [])

    def _obs_dim(self, model):
        return 2 * (model.nbody - 1) + 1 + model.nv

    def _suite_observation(self, rows):
        orientations = self._stack("xmat", rows)[:, 1:][:, :, [0, 2]].reshape(len(rows), -1)
        height = self._stack("xpos", rows, (self._torso, 2))
        return np.concatenate([orientations, height[:, None], self._stack("qvel", rows)], 1)

    def _task_reward(self, rows):
        torso_height = self._stack("xpos", rows, (self._torso, 2))
        standing = _tolerance_gaussian(torso_height, 1.2, np.inf, 0.6)  # _STAND_HEIGHT = 1.2
        upright = (1 + self._stack("xmat", rows, (self._torso, 8))) / 2
        stand_reward = (3 * standing + upright) / 4
        move_reward = _tolerance_linear_above(self._speed(rows), 1.0, 0.5, 0.5)  # _WALK_SPEED = 1
        return stand_reward * (5 * move_reward + 1) / 6


def make_rarl_hopper(num_envs: int = 1, seed: int | None = None, **options) -> RarlHopperEnv:
    return RarlHopperEnv(num_envs=num_envs, seed=seed, **options)


def make_rarl_cheetah(num_envs: int = 1, seed: int | None = None, **options) -> RarlCheetahEnv:
    return RarlCheetahEnv(num_envs=num_envs, seed=seed, **options)


def make_rarl_walker(num_envs: int = 1, seed: int | None = None, **options) -> RarlWalkerEnv:
    return RarlWalkerEnv(num_envs=num_envs, seed=seed, **options)
