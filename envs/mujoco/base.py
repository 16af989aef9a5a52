"""Batched two-agent MuJoCo environments with superpower forces and perturbation plugins.

:class:`MujocoTwoAgentEnv` runs ``num_envs`` independent ``mujoco.MjData`` on one ``mujoco.MjModel``
(one model per copy when a perturbation changes the dynamics per episode). The copies are stepped in
contiguous chunks on ``workers`` threads (default: the CPUs available, at most one per 8 copies; the
bindings release the GIL inside the physics): each copy's arithmetic does not depend on the chunking, so
results are bit-identical for every worker count. Measured on 2 CPU cores, ``mujoco.rollout`` does not
help here because the superpower force depends on the pose at every env step (see
``benchmarks/bench_mujoco.py`` and ``benchmarks/bench_throughput.py``). It follows
:mod:`ipo_robust.envs.base`: validation, time limits and auto-reset live in the base class.

Lifecycle of one ``step(action1, action2)`` (units: SI, world frame):

1. Actions are split: agent i's first ``own_action_dims[i]`` entries drive its actuators (``ctrl``,
   clipped to ``ctrlrange`` by MuJoCo); the remaining entries, present only for the agents that may hold
   the superpower, are the perturbation's action (``Perturbation.action_space``).
2. If a holder is set (:meth:`set_superpower`), the perturbation turns the holder's perturbation action
   into a :class:`~ipo_robust.envs.mujoco.forces.ForceCommand` on the *victim's* bodies (the victim is
   the other agent) and/or perturbs the victim's actions; a command passed to :meth:`command_forces`
   is added. Forces are clipped in norm to ``alpha * f_max`` (torques to ``alpha * torque_max``).
   The non-holder can never apply forces: its perturbation entries are ignored.
3. The wrench of each force at its body's centre of mass, ``(F, tau + r x F)`` with
   ``r = point - xipos`` at the current pose, is added to ``xfrc_applied`` and held for the
   ``n_substeps`` physics steps of this env step (as RARL's environments hold ``xfrc_applied`` over
   their frame skip): over the control step the application point translates with the centre of
   mass. The kinematics are always fresh at the start of a step, because each step ends with
   ``mj_step1`` (as dm_control orders ``mj_step2``/``mj_step1``): one step is ``mj_step2``, then
   ``mj_step(nstep=n_substeps - 1)``, then ``mj_step1``, the cost of ``n_substeps`` ``mj_step`` calls.
   The written rows are zeroed afterwards: forces never persist into the next step.
4. Physics blow-ups (a MuJoCo ``BADQACC``/``BADQPOS``/``BADQVEL`` warning, or a non-finite state)
   terminate that copy's episode with zero reward for both, are counted in
   ``info["physics_blowups"]`` (int (N,)) and ``self.blowup_count``, and never touch other copies.
5. ``info["forces"]``: the applied (clipped) command, dict of ``body`` (N, K), ``point``, ``force``,
   ``torque`` (N, K, 3); K = 0 when no force acted.

Every random draw (initial-state noise, perturbation noise, dynamics scales) comes from ``self.rng``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from ipo_robust.envs.base import Box, TwoAgentEnv
from ipo_robust.envs.mujoco.forces import ForceCommand, clip_norm
from ipo_robust.threads import available_cpus

_BLOWUP_WARNINGS = [int(mujoco.mjtWarning.mjWARN_BADQACC), int(mujoco.mjtWarning.mjWARN_BADQPOS),
                    int(mujoco.mjtWarning.mjWARN_BADQVEL)]
# The counters gathered every step: data.warning.number[_WARN_SPAN] (a slice covering the three).
_WARN_SPAN = slice(min(_BLOWUP_WARNINGS), max(_BLOWUP_WARNINGS) + 1)
_WARN_COLS = None if len(_BLOWUP_WARNINGS) == _WARN_SPAN.stop - _WARN_SPAN.start else \
    [w - _WARN_SPAN.start for w in _BLOWUP_WARNINGS]


def default_workers() -> int:
    """Threads an env steps its copies on unless told otherwise: :func:`ipo_robust.threads.available_cpus`
    (``IPO_ROBUST_ENV_WORKERS`` if set, else the CPUs this process may run on)."""
    return available_cpus()


class MujocoTwoAgentEnv(TwoAgentEnv):
    """Base of the MuJoCo two-agent games (see the module docstring).

    Subclasses pass the compiled ``model`` and, per agent, its actuator names and body names (the bodies
    the *other* agent may push, with the root body first), and implement:

    - ``_initialize_episode(model, data, rng)``: set the state of one freshly ``mj_resetData``-ed copy;
    - ``_observe(rows) -> (obs1, obs2)``: (len(rows), obs_dim_i) arrays for the copies in ``rows``
      (kinematics and velocity-stage sensors are fresh; gather with :meth:`_stack`);
    - ``_reward(rows) -> (r1, r2, terminated)``: (len(rows),) arrays, after the step.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, seed: int | None, max_episode_steps: int | None,
                 obs_dims: tuple[int, int], actuators: tuple[list[str], list[str]],
                 bodies: tuple[list[str], list[str]], n_substeps: int = 1, f_max: float = 10.0,
                 torque_max: float | None = None, perturbation=None, holder=None, alpha: float = 1.0,
                 workers: int | None = None):
        from ipo_robust.envs.mujoco.perturbations import NoPerturbation, make_perturbation

        self.model = model
        self.n_substeps = int(n_substeps)
        self.f_max = float(f_max)
        self.torque_max = float(0.1 * f_max if torque_max is None else torque_max)
        self.actuator_ids = tuple(
            np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in names], dtype=np.int64)
            for names in actuators)
        self.body_ids = tuple(
            np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=np.int64)
            for names in bodies)
        for names, ids in zip(actuators + bodies, self.actuator_ids + self.body_ids, strict=True):
            if (ids < 0).any():
                raise ValueError(f"unknown MJCF names {[n for n, i in zip(names, ids, strict=True) if i < 0]}")
        self.own_action_spaces = tuple(
            Box(model.actuator_ctrlrange[ids, 0].copy(), model.actuator_ctrlrange[ids, 1].copy())
            for ids in self.actuator_ids)
        self.own_action_dims = tuple(int(ids.size) for ids in self.actuator_ids)

        if perturbation is None:
            perturbation = NoPerturbation()
        elif isinstance(perturbation, str):
            perturbation = make_perturbation(perturbation)
        action_spaces = self._attach_perturbation(perturbation, holder)
        observation_spaces = tuple(Box(-np.inf, np.inf, shape=(int(d),)) for d in obs_dims)
        super().__init__(num_envs, observation_spaces, action_spaces, seed=seed, max_episode_steps=max_episode_steps)

        self.holder: int | None = None
        self.alpha = 0.0
        self.set_superpower(None if holder is None else self.power_slots[0], alpha)
        self.models = ([_copy_model(model) for _ in range(self.num_envs)] if perturbation.changes_model
                       else [model] * self.num_envs)
        self.datas = [mujoco.MjData(m) for m in self.models]
        self._pending: ForceCommand | None = None
        self.blowup_count = 0
        self._ctrl = np.zeros((self.num_envs, model.nu))
        self._xfrc = np.zeros((self.num_envs, model.nbody, 6))  # reused by _wrenches (zeroed every step)
        self._step_rows, self._step_cache = None, {}
        self.set_workers(workers)

    # ----------------------------------------------------------------------------------------- control
    def set_superpower(self, holder: int | None, alpha: float) -> None:
        """Give the superpower to agent ``holder`` (0, 1, or None: nobody) with amount alpha in [0, 1].

        Only an agent whose action space carries the perturbation's entries (the ``holder`` the env was
        made with; ``holder="both"`` for both) can hold it. Call between phases.
        """
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"superpower amount alpha must be in [0, 1], got {alpha}")
        if holder is not None and holder not in self.power_slots:
            raise ValueError(f"agent {holder!r} cannot hold the superpower in this env: only agents "
                             f"{list(self.power_slots)} carry the perturbation action; make the env with "
                             "holder=<agent> or holder='both'")
        if holder is not None and self.body_ids[1 - holder].size == 0:
            raise ValueError(f"agent {holder} cannot hold the superpower: agent {1 - holder} has no bodies to push")
        self.holder, self.alpha = holder, alpha

    def command_forces(self, body, point, force, torque=None) -> None:
        """A force command for the next step only, applied for the holder (clipped like its own forces).

        body: (N,) or (N, K) body ids or a body name (same for every copy); point (N, [K,] 3) world frame,
        m; force (N, [K,] 3) N; torque optional, N m. Bodies must belong to the victim (non-holder).
        """
        if self.holder is None:
            raise ValueError("no agent holds the superpower: call env.set_superpower(holder, alpha) first")
        if isinstance(body, str):
            bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body)
            if bid < 0:
                raise ValueError(f"unknown body {body!r}")
            body = np.full(self.num_envs, bid, dtype=np.int64)
        cmd = ForceCommand.from_arrays(body, point, force, torque, num_envs=self.num_envs)
        allowed = self.body_ids[1 - self.holder]
        bad = (cmd.body >= 0) & ~np.isin(cmd.body, allowed)
        if bad.any():
            raise ValueError(f"the holder (agent {self.holder}) may only push agent {1 - self.holder}'s bodies "
                             f"{allowed.tolist()}, got body {int(cmd.body[bad][0])}")
        self._pending = cmd

    # ------------------------------------------------------------------------------------------- hooks
    def _initialize_episode(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _observe(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _reward(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ base protocol
    def _reset_envs(self, mask):
        rows = np.flatnonzero(mask)
        self.perturbation.on_reset(self, rows, self.rng)
        for i in rows.tolist():
            m, d = self.models[i], self.datas[i]
            mujoco.mj_resetData(m, d)
            self._initialize_episode(m, d, self.rng)
            mujoco.mj_step1(m, d)
        obs1, obs2 = self._observe(rows)
        obs = (np.asarray(obs1).reshape(len(rows), -1), np.asarray(obs2).reshape(len(rows), -1))
        return self._perturb_obs(obs, rows)

    def _perturb_obs(self, obs, rows):
        if self.holder is None:
            return obs
        return self.perturbation.perturb_observations(self, obs, rows, 1 - self.holder, self.rng)

    def _split(self, action1, action2):
        own = [action1[:, :self.own_action_dims[0]], action2[:, :self.own_action_dims[1]]]
        pert = None
        if self.holder is not None:
            pert = (action1, action2)[self.holder][:, self.own_action_dims[self.holder]:]
        return own, pert

    def _force_command(self, pert_action) -> ForceCommand | None:
        cmds = []
        if self.holder is not None:
            cmd = self.perturbation.forces(self, pert_action, 1 - self.holder)
            if cmd is not None:
                cmds.append(cmd)
            if self._pending is not None:
                cmds.append(self._pending)
        self._pending = None
        if not cmds:
            return None
        cmd = cmds[0] if len(cmds) == 1 else ForceCommand(*(np.concatenate([getattr(c, f) for c in cmds], axis=1)
                                                            for f in ("body", "point", "force", "torque")))
        active = cmd.body >= 0
        cmd.force = clip_norm(cmd.force, self.alpha * self.f_max)
        cmd.torque = clip_norm(cmd.torque, self.alpha * self.torque_max)
        if not active.all():  # unused slots carry no force
            cmd.force[~active] = 0.0
            cmd.torque[~active] = 0.0
        return cmd

    def _wrenches(self, cmd: ForceCommand | None) -> tuple[np.ndarray | None, np.ndarray]:
        """The ``xfrc_applied`` of every copy, (N, nbody, 6), and which copies are pushed, (N,) bool.

        Each force's wrench at its body's centre of mass for the current pose is ``(F, tau + r x F)``;
        several forces on one body add up. The array is reused: it is valid until the next step.
        """
        N = self.num_envs
        pushed = np.zeros(N, dtype=bool)
        if cmd is None:
            return None, pushed
        body = cmd.body  # (N, K)
        active = body >= 0
        if not active.any():
            return None, pushed
        all_active = active.all()
        # Every slot at once, (N, K, 3); unused slots (body -1) are computed too and never written.
        xipos = np.array(self._data_views("xipos"))[np.arange(N)[:, None], body]  # the current pose
        at_centre = np.isnan(cmd.point[..., 0])  # a NaN point means "at the centre of mass" (no r x F)
        if not all_active:
            at_centre &= active
        all_at_centre = at_centre.all()
        if all_at_centre:
            cmd.point[...] = xipos  # info shows the real point
        elif at_centre.any():
            cmd.point[at_centre] = xipos[at_centre]
        wrench = np.empty((*body.shape, 6))
        wrench[..., :3] = cmd.force
        if all_at_centre and np.isfinite(xipos).all():
            # r = xipos - xipos = +0 exactly, so r x F is +-0, and tau + r x F, written below by adding it
            # into zeros, leaves the same bits as tau alone.
            wrench[..., 3:] = cmd.torque
        else:
            r = cmd.point - xipos
            if not all_active:
                r[~active] = 0.0  # unused slots: never written, keep their arithmetic quiet
            np.add(cmd.torque, _cross(r, cmd.force), out=wrench[..., 3:])  # tau + r x F, r = p - xipos
        xfrc = getattr(self, "_xfrc", None)
        if xfrc is None or xfrc.shape != (N, self.model.nbody, 6):
            xfrc = self._xfrc = np.zeros((N, self.model.nbody, 6))
        else:
            xfrc.fill(0.0)
        if body.shape[1] == 1:  # one slot: every (row, body) at most once
            rows = np.arange(N) if all_active else np.flatnonzero(active[:, 0])
            wrench = wrench[:, 0] if all_active else wrench[rows, 0]
            xfrc[rows, body[rows, 0]] = wrench + 0.0  # + 0.0: the bits of adding into zeros (-0.0 -> 0.0)
        else:
            rows, slots = np.nonzero(active)
            np.add.at(xfrc, (rows, body[rows, slots]), wrench[rows, slots])
        pushed[rows] = True
        return xfrc, pushed

    def _attach_perturbation(self, perturbation, holder) -> tuple:
        """Bind the perturbation and return both agents' action spaces: the superpower holder's own
        actions followed by the perturbation's entries (``holder``: None, 0, 1 or "both")."""
        self.perturbation = perturbation
        perturbation.bind(self)
        if holder not in (None, 0, 1, "both"):
            raise ValueError(f"holder must be None, 0, 1 or 'both' (which agent may hold the superpower), "
                             f"got {holder!r}")
        self.power_slots = {None: (), 0: (0,), 1: (1,), "both": (0, 1)}[holder]
        pert_space = perturbation.action_space
        return tuple(
            Box(np.concatenate([self.own_action_spaces[i].low, pert_space.low]),
                np.concatenate([self.own_action_spaces[i].high, pert_space.high]))
            if i in self.power_slots else self.own_action_spaces[i] for i in (0, 1))

    def _prepare_step(self, action1, action2):
        """Split the actions into the agents' own and the holder's perturbation entries, perturb the
        victim's actions, and turn the perturbation into a force command and per-copy wrenches."""
        own, pert = self._split(action1, action2)
        if self.holder is not None:
            own = self.perturbation.perturb_actions(self, own, 1 - self.holder, self.rng)
        cmd = self._force_command(pert)
        xfrc, pushed = self._wrenches(cmd)
        return own, cmd, xfrc, pushed

    def _step_envs(self, action1, action2):
        own, cmd, xfrc, pushed = self._prepare_step(action1, action2)
        ctrl = self._ctrl
        ctrl[:, self.actuator_ids[0]] = own[0]
        ctrl[:, self.actuator_ids[1]] = own[1]
        N = self.num_envs
        self._run_chunks(self._advance, ctrl, xfrc, pushed)
        warned = np.array(self._data_views("warning"))  # (N, span) blow-up warning counters
        warned = (warned if _WARN_COLS is None else warned[:, _WARN_COLS]).any(axis=1)
        rows = self._step_rows = np.arange(N)
        self._step_cache = {}
        obs1, obs2 = self._observe(rows)
        r1, r2, terminated = self._reward(rows)
        terminated = np.asarray(terminated, dtype=bool).copy()
        finite = np.isfinite(obs1).all(axis=1)
        finite &= np.isfinite(obs2).all(axis=1)
        blowups = (warned | ~finite).astype(np.int64)
        if blowups.any():
            bad = blowups.astype(bool)
            obs1, obs2 = np.nan_to_num(obs1, posinf=0.0, neginf=0.0), np.nan_to_num(obs2, posinf=0.0, neginf=0.0)
            r1, r2 = np.where(bad, 0.0, r1), np.where(bad, 0.0, r2)
            terminated |= bad
            self.blowup_count += int(bad.sum())
        self._step_rows, self._step_cache = None, {}
        obs = self._perturb_obs((obs1, obs2), rows)
        if cmd is None:
            forces = {"body": np.zeros((N, 0), dtype=np.int64), "point": np.zeros((N, 0, 3)),
                      "force": np.zeros((N, 0, 3)), "torque": np.zeros((N, 0, 3))}
        else:
            forces = {"body": cmd.body, "point": cmd.point, "force": cmd.force, "torque": cmd.torque}
        info = {"physics_blowups": blowups, "forces": forces}
        return obs, (r1, r2), terminated, info

    def _advance(self, lo: int, hi: int, ctrl, xfrc, pushed) -> None:
        """Step copies ``lo:hi`` through one env step (``n_substeps`` physics steps); called from worker
        threads, each with its own copies (MuJoCo's bindings release the GIL inside the physics)."""
        n_rest = self.n_substeps - 1
        step1, step2, step = mujoco.mj_step1, mujoco.mj_step2, mujoco.mj_step
        models, datas, ctrl_views = self.models[lo:hi], self.datas[lo:hi], self._data_views("ctrl")[lo:hi]
        # The kinematics are fresh (mj_step1 ran last): finish this substep, run the rest, refresh.
        if xfrc is None:
            for m, d, cv, c in zip(models, datas, ctrl_views, ctrl[lo:hi], strict=True):
                cv[:] = c
                step2(m, d)
                if n_rest:
                    step(m, d, n_rest)
                step1(m, d)
            return
        xfrc_views = self._data_views("xfrc_applied")[lo:hi]
        for m, d, cv, c, xv, x, push in zip(models, datas, ctrl_views, ctrl[lo:hi], xfrc_views, xfrc[lo:hi],
                                             pushed[lo:hi].tolist(), strict=True):
            cv[:] = c
            if push:
                xv[:] = x
            step2(m, d)
            if n_rest:
                step(m, d, n_rest)
            step1(m, d)
            if push:
                xv.fill(0.0)  # cleared: forces never persist into the next step

    def _run_chunks(self, work, *args) -> None:
        """Run ``work(lo, hi, *args)`` over contiguous chunks of the copies, one per worker: the calling
        thread takes the first chunk, the pool's threads the others. Each copy's arithmetic is the same
        whatever the chunking, so results are bit-identical for every worker count."""
        bounds = self._chunk_bounds
        if len(bounds) == 1:
            work(0, self.num_envs, *args)
            return
        pool = self._pool
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = self._pool = ThreadPoolExecutor(len(bounds) - 1, thread_name_prefix="mujoco-env")
        futures = [pool.submit(work, lo, hi, *args) for lo, hi in bounds[1:]]
        try:
            work(*bounds[0], *args)
        finally:
            for future in futures:
                future.result()

    @property
    def workers(self) -> int:
        """Threads stepping the copies (see :meth:`set_workers`)."""
        return len(self._chunk_bounds)

    def set_workers(self, workers: int | None) -> None:
        """Step the copies on ``workers`` threads (``None``: :func:`default_workers`, at most one per 8
        copies). Results do not depend on it."""
        if workers is None:
            workers = max(1, min(default_workers(), self.num_envs // 8))
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive int (threads stepping the env copies) or None, "
                             f"got {workers!r}")
        workers = min(int(workers), self.num_envs)
        edges = np.linspace(0, self.num_envs, workers + 1).round().astype(int)
        old = getattr(self, "_pool", None)
        if old is not None:
            old.shutdown()
        self._pool = None
        self._chunk_bounds = [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]

    def _stack(self, attribute: str, rows, index=None) -> np.ndarray:
        """``data.<attribute>[index]`` of the copies in ``rows``, stacked: (len(rows), ...).

        Within one step (``rows`` is the step's own row array) each attribute is gathered once.
        """
        if rows is self._step_rows and attribute in self._step_cache:
            full = self._step_cache[attribute]
        else:
            views = self._data_views(attribute)
            full = np.array(views if rows is self._step_rows else [views[i] for i in np.asarray(rows).tolist()])
            if rows is self._step_rows:
                self._step_cache[attribute] = full
        if index is None:
            return full
        return full[(slice(None), *index)] if isinstance(index, tuple) else full[:, index]

    def _data_views(self, attribute: str) -> list:
        """``data.<attribute>`` of every copy (numpy views into each ``MjData``, made once and kept while
        ``self.datas`` holds the same objects); ``"warning"`` gives the blow-up warning counters."""
        cache = self.__dict__.setdefault("_views", {})
        entry = cache.get(attribute)
        datas = self.datas
        if entry is None or entry[0] != datas:
            if attribute == "warning":
                views = [d.warning.number[_WARN_SPAN] for d in datas]
            else:
                views = [getattr(d, attribute) for d in datas]
            entry = cache[attribute] = (list(datas), views)
        return entry[1]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_views", None)  # views into this process's MjData: rebuilt on first use after a copy
        state["_pool"] = None  # threads are not copied; a copy starts its own on first use
        return state

    # -------------------------------------------------------------------------------------- utilities
    def body_name(self, body_id: int) -> str:
        return mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, int(body_id))

    def close(self) -> None:
        self.datas = []
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a x b`` over the last axis (3) of equal-shape arrays: ``np.cross``'s arithmetic (the same bits:
    component k is ``a_i b_j - a_j b_i``) without its overhead."""
    a0, a1, a2 = a.reshape(-1, 3).T
    b0, b1, b2 = b.reshape(-1, 3).T
    out = np.empty((3, a0.size))
    np.subtract(a1 * b2, a2 * b1, out=out[0])
    np.subtract(a2 * b0, a0 * b2, out=out[1])
    np.subtract(a0 * b1, a1 * b0, out=out[2])
    return out.T.reshape(a.shape)


def _copy_model(model: mujoco.MjModel) -> mujoco.MjModel:
    import copy

    return copy.copy(model)
