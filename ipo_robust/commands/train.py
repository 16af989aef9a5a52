"""``ipo-robust train CONFIG``: train two agents as a TOML config says (:mod:`ipo_robust.config`).

Before any work the run directory is checked (it can be created and written) and the run's objects are built
once (:class:`~ipo_robust.training.setup.TrainingSetup`); ``--print-config`` goes through the same checks
(:func:`~ipo_robust.training.setup.check_config`), so it refuses exactly what a run refuses.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ipo_robust.commands.common import check_output_dir
from ipo_robust.errors import ConfigError


def add_train_command(commands) -> None:
    train = commands.add_parser(
        "train", help="train two agents from a TOML config (self-play, ipo-rarl, rarl)",
        description="Train two agents as CONFIG says: checkpoints and metrics.csv go to run.out. "
        "CONFIG may also be a run directory, to resume it with the config its checkpoint holds.",
    )
    train.add_argument("config", metavar="CONFIG", help="TOML config file (see configs/), or a run directory")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. schedule.alpha1=0.3 or optimizer.options.lr=0.1 "
                       "(repeatable)")
    train.add_argument("--print-config", action="store_true",
                       help="check the config as a run does (its env, agents and optimizer are built; nothing is "
                       "trained or written), print it resolved and exit")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in run.out")
    train.add_argument("--overwrite", action="store_true",
                       help="delete what run.out already holds (checkpoints, metrics.csv) and start over")
    train.add_argument("--out", metavar="DIR", help="run directory (overrides run.out)")
    train.add_argument("--max-updates", type=int, metavar="N",
                       help="stop after N updates of this call (checkpointed; continue with --resume)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)


def resolve_config(source: str, overrides, out: str | None):
    """The parsed, validated :class:`~ipo_robust.config.TrainConfig` of CONFIG (a file, or a run directory's
    checkpoint) with overrides applied."""
    # imported here, as in every subcommand: torch loads only when a command needs it (start-up time)
    from ipo_robust.checkpoint import load_checkpoint
    from ipo_robust.config import TrainConfig, apply_overrides, load_toml

    path = Path(source)
    if path.is_dir():
        raw = load_checkpoint(path).config
        if not raw:
            raise ConfigError(f"{source!r} is a run directory without a training config in its checkpoint")
        raw = {**raw, "run": {**raw.get("run", {}), "out": str(path)}}
    else:
        raw = load_toml(path)
    raw = apply_overrides(raw, overrides)
    if out is not None:
        raw = {**raw, "run": {**raw.get("run", {}), "out": out}}
    return TrainConfig.parse(raw)


def _updates(n: int) -> str:
    return f"{n} update" if n == 1 else f"{n} updates"


def run_train(args) -> int:
    from ipo_robust.config import to_toml  # start-up time: see resolve_config
    from ipo_robust.train import run_training, solve_failure_summary

    if args.max_updates is not None and args.max_updates < 1:
        raise ConfigError(f"--max-updates must be >= 1, got {args.max_updates}")
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite deletes it: pass one of them")
    config = resolve_config(args.config, args.set, args.out)
    check_output_dir(config.run.out, "--out" if args.out is not None else "run.out")
    if args.print_config:
        from ipo_robust.training.setup import check_config

        check_config(config).env.close()  # what a run refuses before its first update, refused here too
        print(to_toml(config), end="")
        return 0
    result = run_training(config, progress=not args.no_progress, resume=args.resume, max_updates=args.max_updates,
                          overwrite=args.overwrite)
    metrics = result.metrics
    last = metrics.iloc[-1] if len(metrics) else None
    print(f"trained {_updates(result.trained)} in {result.seconds:.1f} s "
          f"(the run has trained {_updates(result.updates)} in total); run directory {str(result.run_dir)!r}")
    if last is not None:
        summary = [f"{key} {last[key]:.3g}" for key in ("train/return1", "train/return2", "train/win1")
                   if key in last and last[key] == last[key]]
        if summary:
            print("last update: " + ", ".join(summary))
    if result.checkpoint is not None:
        print(f"checkpoint: {str(result.checkpoint)!r}")
    summary = solve_failure_summary(metrics)
    if summary is not None:  # once per run; the updates themselves print no solver warnings
        print(summary, file=sys.stderr)
    return 0
