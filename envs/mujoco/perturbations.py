"""Perturbations: how the superpower holder's extra action (or the env's noise) acts on the victim.

A :class:`Perturbation` is attached to a :class:`~ipo_robust.envs.mujoco.base.MujocoTwoAgentEnv`
(``make_env(name, perturbation="learned-location", holder=1, alpha=1.0)``). Its ``action_space``
(a flat :class:`~ipo_robust.envs.base.Box`, possibly empty) is appended to the action space of the
agent(s) that may hold the superpower, so the holder's policy samples its own actions and the
perturbation action together. The *log-prob contribution* of a perturbation is therefore the holder's
policy's own log-density of the appended entries (a deterministic map turns them into forces), and it
enters the policy gradient and the mixed Hessians like any other action; a perturbation adds no term.

The victim is the agent that does not hold the superpower; with no holder every perturbation is off.

Hooks (all optional; the env calls them, always with its seeded ``rng``):

- ``bind(env)``: once, when the env is built; check that the env supports the perturbation.
- ``forces(env, action, victim) -> ForceCommand | None``: before each step, the holder's perturbation
  action (N, d) -> forces on the victim's bodies (unclipped: the env clips to ``alpha * f_max``).
- ``perturb_actions(env, actions, victim, rng)``: the list [own_action1, own_action2] -> perturbed.
- ``perturb_observations(env, obs, rows, victim, rng)``: (obs1, obs2) of ``rows`` -> perturbed.
- ``on_reset(env, rows, rng)``: per-episode model changes (set ``changes_model = True`` so the env keeps
  one ``MjModel`` per copy).

A perturbation with ``state_dependent_std = True`` asks for holders whose policy outputs the covariance
of its entries, not only their mean: ``ipo_robust.make_agents`` then gives each agent that may hold the
superpower a :class:`~ipo_robust.policies.StateDependentStdGaussianPolicy` whose log-std of the
perturbation entries is a function of the observation (seed sec. 6); its own actuator entries keep a
state-independent log-std. ``learned-location`` asks for it; the others keep the plain Gaussian.

Built-ins (registered by ``ipo_robust.plugins.mujoco``): ``none``, ``body-force``,
``learned-location``, ``dynamics``, ``action-noise``, ``observation-noise``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from ipo_robust.envs.base import Box
from ipo_robust.envs.mujoco.forces import ForceCommand


def _empty_box() -> Box:
    return Box(np.zeros(0), np.zeros(0))


class Perturbation:
    """Base class: no action, no effect (see the module docstring for the hooks)."""

    name = "none"
    changes_model = False
    state_dependent_std = False  # True: the holder's policy outputs this action's log-std (module docstring)

    @property
    def action_space(self) -> Box:
        return _empty_box()

    def bind(self, env) -> None:
        """Called once by the env; raise ValueError if the env cannot host this perturbation."""

    def forces(self, env, action: np.ndarray, victim: int) -> ForceCommand | None:
        return None

    def perturb_actions(self, env, actions: list, victim: int, rng: np.random.Generator) -> list:
        return actions

    def perturb_observations(self, env, obs, rows: np.ndarray, victim: int, rng: np.random.Generator):
        return obs

    def on_reset(self, env, rows: np.ndarray, rng: np.random.Generator) -> None:
        """Per-episode changes for the copies in ``rows``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoPerturbation(Perturbation):
    """``none``: nothing happens; the superpower, if held, can still push through ``env.command_forces``."""


class BodyForce(Perturbation):
    """``body-force``: RARL's fixed bodies and force dimensions (Pinto et al. 2017).

    The env declares ``rarl_force_bodies``: per victim agent, a list of (body name, axes) with axes a
    subset of "xyz", e.g. RARL hopper ``([("foot", "xz")], [])``. The action is one entry in [-1, 1]
    per (body, axis); the force on each body is ``f_max * a`` on its axes (world frame, N), applied at
    the body's centre of mass (as RARL does through ``xfrc_applied``), then clipped in norm to
    ``alpha * f_max``.
    """

    name = "body-force"

    def bind(self, env) -> None:
        spec = getattr(env, "rarl_force_bodies", None)
        if not spec or not any(spec):
            raise ValueError(f"{type(env).__name__} declares no rarl_force_bodies; body-force needs them")
        self._bodies, self._axes = [], []
        for victim_spec in spec:  # one list per victim agent (empty: that agent cannot be pushed)
            self._bodies.append(np.array([mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, b)
                                          for b, _ in victim_spec], dtype=np.int64))
            self._axes.append([["xyz".index(c) for c in axes] for _, axes in victim_spec])
        dims = {sum(len(a) for a in axes) for axes in self._axes if axes}
        if len(dims) != 1:
            raise ValueError(f"rarl_force_bodies must give both victims the same number of force entries, got {dims}")
        self._dim = dims.pop()

    @property
    def action_space(self) -> Box:
        return Box(-np.ones(self._dim), np.ones(self._dim))

    def forces(self, env, action, victim):
        bodies, axes_list = self._bodies[victim], self._axes[victim]
        N, K = env.num_envs, len(bodies)
        cmd = ForceCommand.empty(N, K)
        cmd.body[:] = bodies
        cmd.point[:] = np.nan  # at each body's centre of mass
        col = 0
        for k, axes in enumerate(axes_list):
            for ax in axes:
                cmd.force[:, k, ax] = env.f_max * action[:, col]
                col += 1
        return cmd


def point_to_geom_distance(point: np.ndarray, gtype: int, size: np.ndarray, pos: np.ndarray,
                           mat: np.ndarray) -> tuple[float, np.ndarray]:
    """Distance from a world ``point`` to a geom (0 inside) and the nearest point of the geom (world).

    Exact for spheres, capsules, boxes and cylinders; ellipsoids use the sphere of their largest radius
    and any other type (mesh, ...) the sphere of radius ``max(size)`` about its centre (documented
    approximation). ``mat`` is the geom's 3x3 rotation (``data.geom_xmat`` row reshaped).
    """
    local = mat.T @ (point - pos)
    if gtype == mujoco.mjtGeom.mjGEOM_BOX:
        nearest = np.clip(local, -size[:3], size[:3])
    elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
        axis_pt = np.array([0.0, 0.0, np.clip(local[2], -size[1], size[1])])
        nearest = _towards(local, axis_pt, size[0])
    elif gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
        radial = local[:2]
        rn = np.linalg.norm(radial)
        radial = radial if rn <= size[0] else radial * (size[0] / rn)
        nearest = np.array([radial[0], radial[1], np.clip(local[2], -size[1], size[1])])
    else:  # sphere exact; ellipsoid / others: bounding sphere
        radius = size[0] if gtype == mujoco.mjtGeom.mjGEOM_SPHERE else float(np.max(size))
        nearest = _towards(local, np.zeros(3), radius)
    world = pos + mat @ nearest
    return float(np.linalg.norm(local - nearest)), world


def _towards(local: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """The point of the ball (centre, radius) nearest to ``local``."""
    d = local - centre
    n = np.linalg.norm(d)
    return local.copy() if n <= radius else centre + d * (radius / n)


def nearest_body(model: mujoco.MjModel, data: mujoco.MjData, point: np.ndarray,
                 bodies: np.ndarray) -> tuple[int, np.ndarray, float]:
    """The body among ``bodies`` whose collision-or-visual geoms contain ``point`` or are nearest to it.

    Returns (body id, application point in world frame, distance). Ties (point inside several geoms)
    go to the first body in ``bodies``; a body without geoms is measured by its centre of mass.
    """
    best = (-1, point, np.inf)
    for b in bodies:
        start, count = model.body_geomadr[b], model.body_geomnum[b]
        if count == 0:
            dist = float(np.linalg.norm(point - data.xipos[b]))
            candidates = [(dist, data.xipos[b].copy())]
        else:
            candidates = [point_to_geom_distance(point, int(model.geom_type[g]), model.geom_size[g],
                                                 data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3))
                          for g in range(start, start + count)]
        dist, where = min(candidates, key=lambda c: c[0])
        if dist < best[2]:
            best = (int(b), where, dist)
    return best


def _towards_rows(local: np.ndarray, centre: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_towards`: local, centre (R, 3), radius (R,)."""
    d = local - centre
    n = np.linalg.norm(d, axis=-1)
    inside = n <= radius
    return np.where(inside[:, None], local, centre + d * (radius / np.where(inside, 1.0, n))[:, None])


def nearest_bodies(models, datas, points: np.ndarray, bodies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_body` for one point per copy, vectorised over copies and geoms.

    models, datas: the copies' MjModel and MjData (same bodies and geoms); points (N, 3) world frame.
    Returns (body ids (N,), application points (N, 3)). Same geometry and tie rule as :func:`nearest_body`
    (the first body, then the first geom, among equal distances), without a Python loop over geoms.
    """
    model = models[0]
    # candidates in nearest_body's order: the bodies in the given order, each body's geoms in order; a body
    # without geoms is one candidate at its centre of mass
    geoms, geom_cols, bare, bare_cols, owners = [], [], [], [], []
    for b in np.asarray(bodies, dtype=np.int64):
        start, count = int(model.body_geomadr[b]), int(model.body_geomnum[b])
        if count == 0:
            bare.append(b)
            bare_cols.append(len(owners))
            owners.append(b)
        for g in range(start, start + count):
            geoms.append(g)
            geom_cols.append(len(owners))
            owners.append(b)
    geoms, bare, owners = (np.asarray(x, dtype=np.int64) for x in (geoms, bare, owners))
    N, G = len(datas), geoms.size
    points = np.asarray(points, dtype=np.float64).reshape(N, 3)
    dist = np.empty((N, owners.size))
    where = np.empty((N, owners.size, 3))
    if G:
        # one np.array over the copies' whole arrays, then the geoms: a per-copy gather costs ~1.5 us a copy
        pos = np.array([d.geom_xpos for d in datas])[:, geoms]                   # (N, G, 3)
        mat = np.array([d.geom_xmat for d in datas])[:, geoms].reshape(N, G, 3, 3)
        size = np.broadcast_to(model.geom_size[geoms], (N, G, 3)) if all(m is model for m in models) \
            else np.array([m.geom_size for m in models])[:, geoms]               # (N, G, 3)
        local = np.einsum("ngji,ngj->ngi", mat, points[:, None, :] - pos)       # mat^T (p - pos)
        nearest = np.empty_like(local)
        types = np.asarray(model.geom_type[geoms])
        for gtype in np.unique(types):  # all geoms of a type at once, as rows (N * k, 3)
            cols = np.flatnonzero(types == gtype)
            x, r = local[:, cols].reshape(-1, 3), size[:, cols].reshape(-1, 3)
            if gtype == mujoco.mjtGeom.mjGEOM_BOX:
                near = np.clip(x, -r, r)
            elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
                axis = np.zeros_like(x)
                axis[:, 2] = np.clip(x[:, 2], -r[:, 1], r[:, 1])
                near = _towards_rows(x, axis, r[:, 0])
            elif gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
                rn = np.linalg.norm(x[:, :2], axis=-1)
                shrink = rn > r[:, 0]
                factor = np.where(shrink, r[:, 0] / np.where(shrink, rn, 1.0), 1.0)
                near = np.empty_like(x)
                near[:, :2] = x[:, :2] * factor[:, None]
                near[:, 2] = np.clip(x[:, 2], -r[:, 1], r[:, 1])
            else:  # sphere exact; ellipsoid / others: bounding sphere
                radius = r[:, 0] if gtype == mujoco.mjtGeom.mjGEOM_SPHERE else r.max(axis=-1)
                near = _towards_rows(x, np.zeros_like(x), radius)
            nearest[:, cols] = near.reshape(N, cols.size, 3)
        dist[:, geom_cols] = np.linalg.norm(local - nearest, axis=-1)
        where[:, geom_cols] = pos + np.einsum("ngij,ngj->ngi", mat, nearest)
    if bare.size:
        centres = np.array([d.xipos for d in datas])[:, bare]                    # (N, B, 3)
        dist[:, bare_cols] = np.linalg.norm(points[:, None, :] - centres, axis=-1)
        where[:, bare_cols] = centres
    first = np.argmin(dist, axis=1)  # the first of equal distances, as nearest_body
    return owners[first], where[np.arange(N), first]


class LearnedLocation(Perturbation):
    """``learned-location``: the holder chooses where to push, as a sample of its own Gaussian policy.

    Action (6 unbounded entries, so the rollout never clips the sample): ``[x, y, z, fx, fy, fz]``.
    ``(x, y, z)`` is a point (m, times ``location_scale``) in the victim's root-body frame; it is mapped
    to world (``xpos + xmat @ loc``), then to the victim's body whose geoms contain it or lie nearest
    (:func:`nearest_body`: exact point-to-geom distances for spheres, capsules, boxes, cylinders), and
    the force is applied at the nearest point of that body's geoms (the point itself when inside), so a
    far-away sample never makes a long lever arm. ``(fx, fy, fz)`` is the force in units of ``f_max``
    (world frame): direction = its direction, magnitude = ``f_max * |f|``, clipped to ``alpha * f_max``.
    Since the action is the policy's Gaussian sample, its log-prob is the policy's. Mean and diagonal
    covariance of the six entries are both outputs of the holder's network, functions of its observation
    (seed sec. 6): ``state_dependent_std = True``, so ``make_agents`` builds the holder as a
    :class:`~ipo_robust.policies.StateDependentStdGaussianPolicy` (``state_dependent_std=False`` there
    restores a state-independent log-std).
    """

    name = "learned-location"
    state_dependent_std = True

    def __init__(self, location_scale: float = 1.0):
        self.location_scale = float(location_scale)

    @property
    def action_space(self) -> Box:
        return Box(-np.inf, np.inf, shape=(6,))

    def bind(self, env) -> None:
        if max(ids.size for ids in env.body_ids) == 0:
            raise ValueError("learned-location needs an env whose agents have bodies to push")

    def world_points(self, env, action: np.ndarray, victim: int) -> np.ndarray:
        """Sampled points in world frame, (N, 3)."""
        root = env.body_ids[victim][0]
        loc = self.location_scale * action[:, :3]
        xpos = np.array([d.xpos for d in env.datas])[:, root]
        xmat = np.array([d.xmat for d in env.datas])[:, root].reshape(-1, 3, 3)
        return xpos + np.einsum("nij,nj->ni", xmat, loc)

    def forces(self, env, action, victim):
        N = env.num_envs
        cmd = ForceCommand.empty(N, 1)
        points = self.world_points(env, action, victim)
        self.last_points = points  # the sampled points (world frame), for inspection and tests
        cmd.body[:, 0], cmd.point[:, 0] = nearest_bodies(env.models, env.datas, points, env.body_ids[victim])
        cmd.force[:, 0] = env.f_max * action[:, 3:6]
        return cmd


class ActionNoise(Perturbation):
    """``action-noise``: the victim's actuator actions get Gaussian noise of std ``alpha * scale`` times
    the half-width of each actuator's control range, then are clipped to the range. No holder action."""

    name = "action-noise"

    def __init__(self, scale: float = 0.3):
        self.scale = float(scale)

    def perturb_actions(self, env, actions, victim, rng):
        space = env.own_action_spaces[victim]
        a = actions[victim]
        half = (space.high - space.low) / 2
        noisy = a + env.alpha * self.scale * half * rng.standard_normal(a.shape)
        out = list(actions)
        out[victim] = np.clip(noisy, space.low, space.high)
        return out


class ObservationNoise(Perturbation):
    """``observation-noise``: the victim's observation gets N(0, (alpha * scale)^2) noise per entry."""

    name = "observation-noise"

    def __init__(self, scale: float = 0.1):
        self.scale = float(scale)

    def perturb_observations(self, env, obs, rows, victim, rng):
        out = list(obs)
        out[victim] = obs[victim] + env.alpha * self.scale * rng.standard_normal(obs[victim].shape)
        return tuple(out)


def scale_dynamics(model: mujoco.MjModel, nominal: mujoco.MjModel, data: mujoco.MjData, bodies: np.ndarray,
                   actuators: np.ndarray, mass: float = 1.0, friction: float = 1.0, gear: float = 1.0) -> None:
    """Set ``model``'s dynamics to ``nominal``'s scaled by exact factors: the masses and inertias of
    ``bodies`` times ``mass``, every geom's friction (all three coefficients) times ``friction``, the gears
    of ``actuators`` times ``gear``; then recompute the derived constants (``mj_setConst`` with ``data``,
    an MjData of ``model``). Everything else is copied back from ``nominal``. ``model`` may be ``nominal``
    itself only when ``nominal`` holds the values to scale."""
    bodies, actuators = np.asarray(bodies, dtype=np.int64), np.asarray(actuators, dtype=np.int64)
    body_mass, body_inertia = nominal.body_mass.copy(), nominal.body_inertia.copy()
    geom_friction, actuator_gear = nominal.geom_friction.copy(), nominal.actuator_gear.copy()
    model.body_mass[:] = body_mass
    model.body_inertia[:] = body_inertia
    model.geom_friction[:] = geom_friction
    model.actuator_gear[:] = actuator_gear
    model.body_mass[bodies] = body_mass[bodies] * mass
    model.body_inertia[bodies] = body_inertia[bodies] * mass
    model.geom_friction[:] = geom_friction * friction
    model.actuator_gear[actuators] = actuator_gear[actuators] * gear
    mujoco.mj_setConst(model, data)


class Dynamics(Perturbation):
    """``dynamics``: per episode, the victim's body masses (and inertias), all geom frictions and the
    victim's actuator gears are scaled by factors drawn uniformly from ``[1 - alpha w, 1 + alpha w]``
    (``w`` = ``mass``, ``friction``, ``gear``), one factor per quantity and copy. No holder action.
    The env keeps one MjModel per copy; unperturbed values are restored from the nominal model.

    ``fixed=True``: ``mass``, ``friction`` and ``gear`` are the exact factors instead (e.g. ``mass=1.2``:
    every victim body 20 % heavier in every episode), applied whenever a holder is set, whatever alpha;
    nothing is drawn from the env's generator. A robustness sweep sets exact scales this way."""

    name = "dynamics"
    changes_model = True

    def __init__(self, mass: float = 0.3, friction: float = 0.3, gear: float = 0.3, fixed: bool = False):
        self.mass, self.friction, self.gear = float(mass), float(friction), float(gear)
        self.fixed = bool(fixed)
        if self.fixed and min(self.mass, self.friction, self.gear) < 0:
            raise ValueError(f"dynamics with fixed=True takes scale factors >= 0, got mass={self.mass}, "
                             f"friction={self.friction}, gear={self.gear}")

    def on_reset(self, env, rows, rng):
        nominal = env.model
        victim = None if env.holder is None else 1 - env.holder
        for i in rows:
            if self.fixed:
                factors = (self.mass, self.friction, self.gear) if victim is not None else (1.0, 1.0, 1.0)
            else:
                scales = rng.uniform(-1.0, 1.0, size=3)
                a = env.alpha if victim is not None else 0.0
                factors = (1 + a * self.mass * scales[0], 1 + a * self.friction * scales[1],
                           1 + a * self.gear * scales[2])
            if victim is None:
                m = env.models[i]
                m.body_mass[:] = nominal.body_mass
                m.body_inertia[:] = nominal.body_inertia
                m.geom_friction[:] = nominal.geom_friction
                m.actuator_gear[:] = nominal.actuator_gear
                continue
            scale_dynamics(env.models[i], nominal, env.datas[i], env.body_ids[victim], env.actuator_ids[victim],
                           *factors)


PERTURBATIONS = {cls.name: cls for cls in (NoPerturbation, BodyForce, LearnedLocation, ActionNoise,
                                           ObservationNoise, Dynamics)}


def make_perturbation(name: str, **options) -> Perturbation:
    """A perturbation by registered name (through the plugin host, so third-party ones work too)."""
    from ipo_robust import host

    return host.create("perturbation", name, **options)
