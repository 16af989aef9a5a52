"""``ipo-robust render ENV --out episode.gif``: render one episode offscreen, forces drawn as arrows.

Runs copy 0 of a registered MuJoCo env, with the trained agents of ``--checkpoint`` (a run directory
or a checkpoint of ``ipo-robust train``; sampled actions, the env as it was trained: perturbation and
holder included) or with uniformly random actions, and writes a GIF (pillow) or an MP4 (``imageio``
with its ffmpeg backend: ``pip install 'ipo-robust[video]'``), atomically. Needs an offscreen OpenGL
backend: ``MUJOCO_GL=egl`` (the default set here when unset) or ``MUJOCO_GL=osmesa``.

``--holder`` counts agents 1 and 2, as configs (``schedule.holder``) and ``metrics.csv`` do. ``--out`` is
checked before anything is built or rendered (suffix, a parent directory that exists or can be created,
write permission; :func:`~ipo_robust.commands.common.check_output_path`), and so are ``--holder`` and
``--alpha``, so a bad value costs one line and exit 2, not an episode. Defaults keep a
GIF small: 320x240, and a GIF of more than 50 steps keeps every 2nd frame at half the frame rate.
"""

from __future__ import annotations

import os

import ipo_robust
from ipo_robust.atomic import atomic_write_bytes
from ipo_robust.commands.common import check_output_path
from ipo_robust.errors import ConfigError

__all__ = ["SUFFIXES", "add_render_command", "check_output_path", "run_render"]

SUFFIXES = (".gif", ".mp4")
GIF_THIN_ABOVE = 50  # a .gif of more --steps than this keeps every 2nd frame by default


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
    render.add_argument("--holder", type=int, default=None, metavar="AGENT",
                        help="agent holding the superpower: 1 or 2, counted as configs count them (schedule.holder) "
                        "and metrics.csv's holder column (default: nobody)")
    render.add_argument("--alpha", type=float, default=1.0,
                        help="superpower amount of --holder, in [0, 1] (default 1)")
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

    out = check_output_path(args.out, suffixes=SUFFIXES)
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if args.holder is not None and args.holder not in (1, 2):
        raise ConfigError(f"--holder must be 1 or 2 (the agent holding the superpower, counted from 1 as in "
                          f"configs; leave it out for nobody), got {args.holder}")
    if not 0.0 <= args.alpha <= 1.0:  # NaN fails too
        raise ConfigError(f"--alpha must be a number in [0, 1] (the holder's superpower amount), got {args.alpha}")
    holder = None if args.holder is None else args.holder - 1  # the env counts agents from 0
    is_gif = out.suffix.lower() == ".gif"
    frame_step = args.frame_step
    if frame_step is None:
        frame_step = 2 if is_gif and args.steps > GIF_THIN_ABOVE else 1
    if frame_step < 1:
        raise ConfigError(f"--frame-step must be >= 1, got {frame_step}")
    options = {}
    if args.perturbation is not None:
        options["perturbation"] = args.perturbation
    if holder is not None:
        options.update(holder=holder, alpha=args.alpha)
    policies = None
    if args.checkpoint is not None:
        env, policies = _checkpoint_players(args)
        if holder is not None:
            _give_superpower(env, args, holder)
    else:
        env = _make_env(args, options, holder)
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


def _make_env(args, options: dict, holder: int | None):
    """Copy 0 of ``args.env`` with ``options``. A failure is one line: about ``--holder`` (numbered 1 and 2)
    when the holder is what fails, that the env is not a MuJoCo env, or the env's own error."""
    try:
        return ipo_robust.make_env(args.env, num_envs=1, seed=args.seed, **options)
    except (TypeError, ValueError) as error:
        failure = error
    from ipo_robust.training.setup import holder_problem  # torch is heavy: loaded on this error path only

    try:  # the same env without a holder says whether the holder, or the env, is the problem
        probe = ipo_robust.make_env(args.env, num_envs=1, seed=args.seed,
                                    **{k: v for k, v in options.items() if k not in ("holder", "alpha")})
    except (TypeError, ValueError):
        probe = None
    if probe is not None:
        try:
            if not hasattr(probe, "datas"):
                raise ConfigError(f"{args.env!r} is not a MuJoCo env; render supports the envs of "
                                  "ipo_robust.envs.mujoco")
            problem = None if holder is None else holder_problem(probe, holder)
            if problem is not None:
                raise ConfigError(f"--holder {args.holder} in {args.env!r}: {problem}")
        finally:
            probe.close()
    given = " ".join(f"--{k} {getattr(args, k)}" for k in ("perturbation", "holder", "alpha")
                     if k in options)
    raise ConfigError(f"{args.env!r} cannot be built{' with ' + given if given else ''}: {failure}")


def _give_superpower(env, args, holder: int) -> None:
    """Give the checkpoint's env's superpower to ``holder`` (0-based; ``args.holder`` is 1-based) at
    ``args.alpha``, or say in one line, numbered as the user numbers agents, why it cannot be."""
    from ipo_robust.training.setup import holder_problem

    carriers = getattr(env, "power_slots", ())
    if holder not in carriers:
        held = (f"only agent {' and '.join(str(i + 1) for i in carriers)} carries its perturbation action"
                if carriers else "nobody held the superpower in its training")
        raise ConfigError(f"--holder {args.holder}: agent {args.holder} cannot hold the superpower in the env of "
                          f"--checkpoint {args.checkpoint!r}: {held}")
    problem = holder_problem(env, holder)
    if problem is not None:
        raise ConfigError(f"--holder {args.holder}: {problem}")
    env.set_superpower(holder, args.alpha)


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
