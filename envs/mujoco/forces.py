"""Superpower forces: bounded external forces one agent applies to the other's bodies.

A *force command* is, per environment copy and per slot k (several forces may act at once, e.g. RARL's
cheetah pushes torso and both feet), four arrays with a leading ``(num_envs, K)`` shape:

    body    int (N, K)      target body id (-1: slot unused)
    point   float (N, K, 3) application point, world frame, metres (NaN: the body's centre of mass)
    force   float (N, K, 3) force, world frame, newtons
    torque  float (N, K, 3) pure torque (couple), world frame, newton metres (zeros when not used)

Application. ``mujoco``'s ``xfrc_applied[b]`` is a force and torque acting at body b's centre of mass
(``data.xipos[b]``). A force F applied at a point p is therefore written as
``xfrc_applied[b] = (F, tau + r x F)`` with ``r = p - xipos[b]``: omitting ``r x F`` (a common bug)
turns every off-centre push into a push through the centre of mass. This is exactly what
``mujoco.mj_applyFT(model, data, F, tau, p, b, qfrc)`` produces in generalised coordinates (tested to
1e-9). Forces are *cleared every step*: the environment zeroes the rows it wrote before the next step.

Within one environment step (``n_substeps`` physics steps) the wrench computed at the pose of the
command is held in ``xfrc_applied`` (as RARL's environments hold it over their frame skip): the force
stays constant in the world frame and its application point translates with the centre of mass.

Bound. Each force vector is clipped in Euclidean norm to ``alpha * f_max`` and each torque to
``alpha * torque_max``, where alpha in [0, 1] is the holder's superpower amount (:func:`clip_norm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass
class ForceCommand:
    """Forces for a batch of environment copies (see the module docstring for shapes and units)."""

    body: np.ndarray
    point: np.ndarray
    force: np.ndarray
    torque: np.ndarray

    @classmethod
    def empty(cls, num_envs: int, slots: int = 1) -> ForceCommand:
        """A command with every slot unused."""
        return cls(np.full((num_envs, slots), -1, dtype=np.int64), np.zeros((num_envs, slots, 3)),
                   np.zeros((num_envs, slots, 3)), np.zeros((num_envs, slots, 3)))

    @classmethod
    def from_arrays(cls, body, point, force, torque=None, num_envs: int | None = None) -> ForceCommand:
        """Validate and normalise user arrays: body (N,) or (N, K); point, force, torque (N, [K,] 3)."""
        body = np.asarray(body)
        if body.ndim == 1:
            body = body[:, None]
        if body.ndim != 2 or not np.issubdtype(body.dtype, np.integer):
            raise ValueError(f"force command body must be integer body ids of shape (N,) or (N, K), got "
                             f"{body.dtype} {body.shape}")
        n, k = body.shape
        if num_envs is not None and n != num_envs:
            raise ValueError(f"force command has {n} rows, the env has num_envs={num_envs}")
        arrays = []
        for label, a in (("point", point), ("force", force), ("torque", torque)):
            a = np.zeros((n, k, 3)) if a is None else np.asarray(a, dtype=np.float64)
            if a.shape == (n, 3) and k == 1:
                a = a[:, None, :]
            if a.shape != (n, k, 3):
                raise ValueError(f"force command {label} must have shape ({n}, {k}, 3) (or ({n}, 3) with one "
                                 f"slot), got {a.shape}")
            at_centre = np.isnan(a).all(axis=-1) if label == "point" else np.zeros(a.shape[:-1], dtype=bool)
            if not np.isfinite(a[~at_centre]).all():
                raise ValueError(f"force command {label} must be finite (a point may be all-NaN: the centre of "
                                 "mass)")
            arrays.append(a)
        return cls(body.astype(np.int64), *arrays)


_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)


def clip_norm(vectors: np.ndarray, max_norm: float) -> np.ndarray:
    """``vectors`` (..., 3) scaled down where their norm exceeds ``max_norm`` (>= 0); a new array."""
    v = np.asarray(vectors, dtype=np.float64)
    if not v.any():  # all zeros (e.g. no torques): v * scale would give the same bits
        return v.copy()
    if max_norm < _SMALLEST_NORMAL:
        # a subnormal bound (alpha ~ 1e-323) cannot be met by rescaling: rounding there is up to half the
        # value, so the result could land above it. Forces that small are zero in every physical sense.
        return np.zeros_like(v)
    # hypot, not sqrt(sum of squares): the squares of tiny forces (or of tiny alpha * f_max bounds)
    # underflow to subnormals and the norm loses its precision, so the clip could miss its bound.
    # Over-long vectors become (v / |v|) * bound, never v * (bound / |v|): that ratio can itself be
    # subnormal (a tiny bound, a huge action) and carry a relative error far above one ulp.
    norm = np.hypot(np.hypot(v[..., 0], v[..., 1]), v[..., 2])[..., None]
    over = norm > max_norm
    unit = v / np.where(over, norm, 1.0)
    return np.where(over, unit * max_norm, v)


def write_point_force(data: mujoco.MjData, body: int, force: np.ndarray, point: np.ndarray,
                      torque: np.ndarray | None = None) -> None:
    """Add a force F at world point p (and a couple tau) on ``body`` to ``data.xfrc_applied``.

    Uses the current ``data.xipos`` (run ``mj_kinematics``/``mj_step1`` first): the wrench at the centre
    of mass is (F, tau + (p - xipos) x F). Equivalent to ``mujoco.mj_applyFT`` into ``qfrc_applied``.
    """
    r = np.asarray(point, dtype=np.float64) - data.xipos[body]
    moment = np.zeros(3)
    mujoco.mju_cross(moment, r, np.asarray(force, dtype=np.float64))
    row = data.xfrc_applied[body]
    row[:3] += force
    row[3:] += moment
    if torque is not None:
        row[3:] += torque
