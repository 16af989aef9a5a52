"""``ipo-robust render ENV --out episode.gif``: render one episode offscreen, forces drawn as arrows.

Runs copy 0 of a registered MuJoCo env, with the trained agents of ``--checkpoint`` (a run directory
or a checkpoint of ``ipo-robust train``; sampled actions, the env as it was trained: perturbation and
holder included) or with uniformly random actions, and writes a GIF (pillow) or an MP4 (``imageio``
with its ffmpeg backend: ``pip install 'ipo-robust[video]'``), atomically. Needs an offscreen OpenGL
backend: ``MUJOCO_GL=egl`` (the default set here when unset) or ``MUJOCO_GL=osmesa``.

``--out`` is checked before anything is built or rendered (suffix, a parent directory that exists or can
be created, write permission), so a bad path costs one line and exit 2, not an episode. Defaults keep a
GIF small: 320x240, and a GIF of more than 50 steps keeps every 2nd frame at half the frame rate.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipo_robust
from ipo_robust.atomic import atomic_write_bytes
from ipo_robust.errors import ConfigError

SUFFIXES = (".gif", ".mp4")
GIF_THIN_ABOVE = 50  # a .gif of more --steps than this keeps every 2nd frame by default


def check_output_path(path: str | os.PathLike, option: str = "--out", suffixes=SUFFIXES) -> Path:
    """``path`` if it can be written (suffix, parent directory creatable, writable); else a one-line ConfigError.

    Run before any work, so that a path that cannot be written fails in a second, not after the work.
    """
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if out.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a directory; give a file name, e.g. {str(out / 'episode.gif')!r}")
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r} cannot be created: no write permission in {str(ancestor)!r}")
    return out


def add_render_command(commands) -> None:
    render = commands.add_parser(
        "render", help="render an episode of a MuJoCo env offscreen (forces as arrows) to .gif or .mp4",
        description="Render one episode of a registered MuJoCo two-agent env with random actions; superpower "
        "forces are drawn as arrows ending at their application points.",
    )
    render.add_argument("env", metavar="ENV", help="registered env name, e.g. sumo-pushers or rarl-hopper")
    render.add_argument("--checkpoint", metavar="PATH", help="play the agents of this run directory or checkpoint "
                        "(default: random actions)")
    render.add_argument("--out", required=True, help="output file: .gif (pillow) or .mp4 (needs imageio-ffmpeg)")
    render.add_argument("--steps", type=int, default=200, help="env steps to render (default 200)")
    render.add_argument("--seed", type=int, default=0, help="seed of the env and of the random actions")
    render.add_argument("--perturbation", default=None, help="perturbation plugin, e.g. learned-location")
    render.add_argument("--holder", type=int, choices=(0, 1), default=None, help="agent holding the superpower")
    render.add_argument("--alpha", type=float, default=1.0, help="superpower amount in [0, 1] (default 1)")
    render.add_argument("--width", type=int, default=320, help="frame width in pixels (default 320)")
    render.add_argument("--height", type=int, default=240, help="frame height in pixels (default 240)")
    render.add_argument("--frame-step", type=int, default=None, metavar="N",
                        help="keep every N-th rendered step, at 1/N of the env's frame rate (default: 2 for a "
                        f".gif of more than {GIF_THIN_ABOVE} steps, to keep it small; otherwise 1: every step)")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    render.set_defaults(run=run_render)


def run_render(args, renderer=None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    # mujoco reads MUJOCO_GL when it loads (set just above), and it is heavy: the CLI's --help must start fast
    from ipo_robust.envs.mujoco.rendering import encode_gif, render_episode

    out = check_output_path(args.out)
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    is_gif = out.suffix.lower() == ".gif"
    frame_step = args.frame_step
    if frame_step is None:
        frame_step = 2 if is_gif and args.steps > GIF_THIN_ABOVE else 1
    if frame_step < 1:
        raise ConfigError(f"--frame-step must be >= 1, got {frame_step}")
    options = {}
    if args.perturbation is not None:
        options["perturbation"] = args.perturbation
    if args.holder is not None:
        options.update(holder=args.holder, alpha=args.alpha)
    policies = None
    if args.checkpoint is not None:
        env, policies = _checkpoint_players(args)
        if args.holder is not None:
            try:
                env.set_superpower(args.holder, args.alpha)
            except ValueError as error:
                raise ConfigError(f"--holder {args.holder}: {error}") from None
    else:
        env = ipo_robust.make_env(args.env, num_envs=1, seed=args.seed, **options)
    if not hasattr(env, "datas"):
        raise ConfigError(f"{args.env!r} is not a MuJoCo env; render supports the envs of ipo_robust.envs.mujoco")
    if renderer is None:
        import mujoco

        try:
            renderer = mujoco.Renderer(env.model, args.height, args.width)
        except Exception as error:  # no EGL/OSMesa context: say what to do instead of a GL traceback
            raise ConfigError(f"cannot create an offscreen OpenGL context with MUJOCO_GL="
                              f"{os.environ.get('MUJOCO_GL')!r} ({type(error).__name__}); install EGL (GPU) or "
                              "OSMesa and set MUJOCO_GL=egl or MUJOCO_GL=osmesa") from error
    from tqdm.auto import tqdm

    with tqdm(total=args.steps, unit="step", desc="render", disable=args.no_progress, dynamic_ncols=True) as bar:
        frames = render_episode(env, policies=policies, steps=args.steps, seed=args.seed, width=args.width,
                                height=args.height, renderer=_Counting(renderer, bar.update))
    frames = frames[::frame_step]
    fps = 1.0 / (env.model.opt.timestep * env.n_substeps * frame_step)
    if is_gif:
        data = encode_gif(frames, fps)
    else:
        data = _encode_mp4(frames, fps)
    atomic_write_bytes(out, data)
    print(f"wrote {out} ({len(frames)} frames, {fps:.0f} fps)")
    return 0


class _Counting:
    """A renderer that calls ``tick(1)`` after each ``render()`` (one per env step): the progress bar."""

    def __init__(self, renderer, tick):
        self._renderer, self._tick = renderer, tick

    def __getattr__(self, name):
        return getattr(self._renderer, name)

    def render(self):
        frame = self._renderer.render()
        self._tick(1)
        return frame


def _checkpoint_players(args):
    """The checkpoint's env (one copy) and its two agents as ``obs -> action`` callables (seeded sampling)."""
    import numpy as np
    import torch

    from ipo_robust.checkpoint import load_checkpoint  # torch is heavy: the CLI's --help must start fast

    checkpoint = load_checkpoint(args.checkpoint)
    trained_on = checkpoint.meta.get("env", {}).get("name")
    if trained_on != args.env:
        raise ConfigError(f"--checkpoint {args.checkpoint!r} was trained on {trained_on!r}, not {args.env!r}")
    if args.perturbation is not None:
        raise ConfigError("--perturbation cannot change a checkpoint's env (its agents' action spaces depend on it)")
    env = checkpoint.make_env(num_envs=1, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    def player(policy, space):
        def act(obs):
            action = policy.act(torch.as_tensor(obs), generator).numpy()
            return np.clip(action, space.low, space.high) if hasattr(space, "low") else action
        return act

    agents = checkpoint.load_agents()
    return env, [player(a, s) for a, s in zip(agents, env.action_spaces, strict=True)]


def _encode_mp4(frames, fps: float) -> bytes:
    try:
        import imageio.v3 as iio
    except ImportError as error:
        raise ConfigError("writing .mp4 needs imageio with an ffmpeg backend "
                          "(pip install 'ipo-robust[video]'); or write a .gif") from error
    import numpy as np

    return iio.imwrite("<bytes>", np.stack(frames), extension=".mp4", fps=fps)
