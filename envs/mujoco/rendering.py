"""Offscreen rendering of a MuJoCo two-agent env copy, superpower forces drawn as arrows.

Needs an offscreen OpenGL backend: set ``MUJOCO_GL=egl`` (GPU) or ``MUJOCO_GL=osmesa`` (software)
before mujoco creates a renderer. The scene is built with ``mujoco.Renderer.update_scene``; each force
of ``info["forces"]`` (row 0) is then appended as an arrow geom (``mjv_initGeom`` + ``mjv_connector``)
that ends at the application point and points along the force, length ``arrow_scale`` m per newton
of ``f_max`` (an arrow of a full-strength force is ``arrow_length`` m long).
"""

from __future__ import annotations

import io

import mujoco
import numpy as np

ARROW_RGBA = np.array([1.0, 0.85, 0.1, 1.0], dtype=np.float32)


def force_arrows(env, forces: dict, row: int = 0, arrow_length: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, end) world points of one arrow per applied force of copy ``row`` (end = application point;
    a NaN point, i.e. the centre of mass, is drawn at the body's current ``xipos``)."""
    arrows = []
    data = env.datas[row]
    for body, point, force in zip(forces["body"][row], forces["point"][row], forces["force"][row], strict=True):
        if body < 0 or not np.any(force):
            continue
        end = data.xipos[body].copy() if np.isnan(point).all() else np.asarray(point, dtype=np.float64)
        start = end - force * (arrow_length / max(env.f_max, 1e-12))
        arrows.append((start, end))
    return arrows


def add_arrows(scene: mujoco.MjvScene, arrows, width: float = 0.03, rgba=ARROW_RGBA) -> int:
    """Append arrow geoms to ``scene`` (as many as fit in ``scene.maxgeom``); returns how many were added."""
    added = 0
    for start, end in arrows:
        if scene.ngeom >= scene.maxgeom:
            break
        geom = scene.geoms[scene.ngeom]
        mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_ARROW, np.zeros(3), np.zeros(3), np.zeros(9), rgba)
        mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, width, np.asarray(start, dtype=np.float64),
                             np.asarray(end, dtype=np.float64))
        scene.ngeom += 1
        added += 1
    return added


def camera_for(env, row: int = 0) -> mujoco.MjvCamera:
    """A free camera looking at the middle of both agents' roots (the protagonist's root for RARL)."""
    camera = mujoco.MjvCamera()
    data = env.datas[row]
    roots = [ids[0] for ids in env.body_ids if ids.size]
    camera.lookat[:] = np.mean([data.xpos[r] for r in roots], axis=0)
    camera.distance = 1.0 + 1.2 * float(env.model.stat.extent)
    camera.elevation = -35.0
    camera.azimuth = 90.0
    return camera


def render_episode(env, policies=None, steps: int = 200, seed: int = 0, width: int = 480, height: int = 360,
                   renderer=None) -> list[np.ndarray]:
    """Roll copy 0 of ``env`` for ``steps`` steps and return RGB frames (height, width, 3) uint8.

    ``policies``: None for uniformly random actions (standard normal on unbounded entries, from a
    generator seeded with ``seed``), or a pair of callables ``obs (1, d) -> action (1, a)``.
    ``renderer``: a ``mujoco.Renderer``-like object (``update_scene(data, camera)``, ``scene``,
    ``render()``); by default ``mujoco.Renderer(env.model, height, width)``.
    """
    rng = np.random.default_rng(seed)
    obs = env.reset(seed=seed)
    if renderer is None:
        renderer = mujoco.Renderer(env.model, height, width)
    frames, forces = [], None
    for _ in range(steps):
        if policies is None:
            actions = [space.sample(rng, size=env.num_envs) for space in env.action_spaces]
        else:
            actions = [np.asarray(policy(o)) for policy, o in zip(policies, obs, strict=True)]
        result = env.step(*actions)
        obs, forces = result.obs, result.info.get("forces")
        renderer.update_scene(env.datas[0], camera_for(env))
        if forces is not None:
            add_arrows(renderer.scene, force_arrows(env, forces))
        frames.append(np.asarray(renderer.render(), dtype=np.uint8).copy())
    return frames


def encode_gif(frames: list[np.ndarray], fps: float) -> bytes:
    """Frames (H, W, 3) uint8 -> an animated GIF (pillow), looping."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to encode")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(int(round(1000 / fps)), 20), loop=0)
    return buffer.getvalue()
