"""The sample-based training loop: :func:`run_training` trains as a config says.

Per update ``u`` the schedule gives a :class:`~ipo_robust.training.schedules.Phase`; the env gets its
superpower holder and alpha (and the annealed shaping weight), a batch is collected, the holder's rewards
are combined, the optimizer steps (agents that do not learn in this phase are restored afterwards), a
metrics row is written, and every ``run.checkpoint_every`` updates a checkpoint. The run's objects come
from :class:`~ipo_robust.training.setup.TrainingSetup`, built once.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ipo_robust.checkpoint import LATEST, META, find_checkpoint, prune_checkpoints, save_checkpoint
from ipo_robust.config import TrainConfig, parse_config
from ipo_robust.errors import ConfigError
from ipo_robust.locking import LOCK_FILES, hold
from ipo_robust.rollout import collect
from ipo_robust.training.metrics_log import (
    MetricsLog,
    SolveFailureCounter,
    episode_outcomes,
    progress_postfix,
    tensorboard_writer,
    write_scalars,
)
from ipo_robust.training.schedules import holder_rewards
from ipo_robust.training.setup import TrainingSetup


@dataclass
class TrainResult:
    """What :func:`run_training` leaves: the run directory, its newest checkpoint, the per-update
    metrics (one row per update of this run, resumed ones included), the wall time of this call, the
    agents, the run's updates so far (resumed ones included), the number of Krylov solves of the whole
    run (resumed updates included) that stopped short of their tolerance, and the updates this call
    trained (``updates`` less those resumed from the checkpoint)."""

    run_dir: Path
    checkpoint: Path | None
    metrics: pd.DataFrame
    seconds: float
    agents: tuple
    updates: int
    solve_failures: int = 0
    trained: int = 0


def _freeze(agent):
    return [p.detach().clone() for p in agent.parameters()]


def _unfreeze(agent, saved) -> None:
    with torch.no_grad():
        for p, value in zip(agent.parameters(), saved, strict=True):
            p.copy_(value)


def run_training(config: TrainConfig | Mapping, run_dir: str | os.PathLike | None = None, progress: bool = False,
                 resume: bool = False, max_updates: int | None = None, overwrite: bool = False) -> TrainResult:
    """Train as the config says; checkpoints and ``metrics.csv`` go to ``run_dir`` (default ``run.out``).

    :param config: a :class:`~ipo_robust.config.TrainConfig` (used as it is), or a raw or resolved config
        dict (parsed and validated first).
    :param resume: continue from the newest checkpoint in ``run_dir`` (the config must match it except
        for ``run.out``, ``run.checkpoint_every``, ``run.keep`` and ``run.tensorboard``); on CPU the result
        is bit-identical to the uninterrupted run.
    :param max_updates: stop (with a checkpoint) after this many updates of this call, e.g. to split a run.
    :param overwrite: without ``resume``, delete what ``run_dir`` already holds and start over; otherwise a
        run directory with outputs (a checkpoint, metrics.csv, ...) is refused, so nothing is lost silently.
    The run directory is locked (:func:`ipo_robust.locking.hold`) for the whole call: a second run into
    it is refused at once. On Ctrl-C the completed updates are checkpointed and KeyboardInterrupt propagates.
    """
    config = parse_config(config)
    run_dir = Path(run_dir if run_dir is not None else config.run.out)
    with hold(run_dir, what="run directory", option="--out"):
        if resume:
            _check_resumable(run_dir)
        else:
            _claim(run_dir, overwrite)
        return _train(config, run_dir, progress, resume, max_updates)


def _check_resumable(run_dir: Path) -> None:
    """Refuse ``--resume`` of a directory without a checkpoint, saying how to go on: a run stopped (killed)
    before its first checkpoint has nothing to resume and starts over with ``--overwrite``."""
    if (run_dir / LATEST).exists() or (run_dir / META).exists():  # a run, or a checkpoint directory itself
        return
    outputs = sorted(p.name for p in run_dir.iterdir() if p.name not in LOCK_FILES and not p.name.startswith("."))
    held = (f"only outputs of a run stopped before its first checkpoint ({', '.join(outputs[:5])})" if outputs
            else "no run")
    raise ConfigError(f"cannot resume {str(run_dir)!r}: it holds no checkpoint, {held}; start the run over "
                      "with --overwrite (or without --resume and another --out)")


def _claim(run_dir: Path, overwrite: bool) -> None:
    """Make sure a fresh run loses nothing it was not asked to: refuse a directory with outputs unless
    ``overwrite``, in which case they are deleted (and said so on stderr)."""
    outputs = sorted(p for p in run_dir.iterdir() if p.name not in LOCK_FILES)
    if not outputs:
        return
    if overwrite:
        for path in outputs:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        print(f"--overwrite: deleted {len(outputs)} entries of {str(run_dir)!r} "
              f"({', '.join(p.name for p in outputs[:5])}{', ...' if len(outputs) > 5 else ''})", file=sys.stderr)
        return
    if (run_dir / LATEST).exists():
        raise ConfigError(f"run directory {str(run_dir)!r} already holds a run: pass --resume to continue it, "
                          "--overwrite to delete it and start over, or choose another --out")
    raise ConfigError(f"run directory {str(run_dir)!r} holds outputs of an earlier run but no checkpoint to resume "
                      f"from ({', '.join(p.name for p in outputs[:5])}{', ...' if len(outputs) > 5 else ''}): "
                      "pass --overwrite to delete them and start over, or choose another --out")


def _train(config: TrainConfig, run_dir: Path, progress: bool, resume: bool, max_updates: int | None) -> TrainResult:
    setup = TrainingSetup(config)
    start = setup.resume(run_dir) if resume else 0
    if resume:  # old checkpoints a killed run had not pruned yet
        prune_checkpoints(run_dir, find_checkpoint(run_dir), config.run.keep)
    schedule, env, agents, optimizer = setup.schedule, setup.env, setup.agents, setup.optimizer
    total = schedule.total_updates
    stop = total if max_updates is None else min(total, start + int(max_updates))
    run_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(run_dir / "metrics.csv", start if resume else None)
    board = tensorboard_writer(run_dir, config.run.tensorboard, start)
    meta = setup.checkpoint_meta()
    s, steps = config.schedule, config.env.steps
    last_saved, path = start, None
    done = start

    def save(updates: int):
        return save_checkpoint(run_dir, updates, setup.state(updates), {**meta, "updates": updates,
                                                                         "total_updates": total},
                               keep=config.run.keep)

    failures = SolveFailureCounter(total=int(log.total("optim/solve_failures")))
    bar = None
    if progress:
        bar = tqdm(total=total, initial=start, unit="update", dynamic_ncols=True, desc=s.kind)
    began = time.perf_counter()
    try:
        for u in range(start, stop):
            phase = schedule.phase(u)
            if hasattr(env, "set_superpower"):
                env.set_superpower(phase.holder, phase.alpha)
            if setup.shaping0 and hasattr(env, "set_shaping"):
                env.set_shaping(setup.shaping0 * schedule.shaping_factor(phase))
            t0 = time.perf_counter()
            batch = collect(env, agents, steps, generator=setup.generator)
            t1 = time.perf_counter()
            if batch.num_episodes == 0:
                limit = getattr(env, "max_episode_steps", None)
                raise ConfigError(f"config: env.steps = {steps} is too short: no episode ended within a batch; "
                                  f"collect more steps per copy than an episode lasts (max_episode_steps = {limit})")
            outcomes = episode_outcomes(batch)
            learn_batch = holder_rewards(batch, phase, s.task_weight, s.fail_weight)
            frozen = [(a, _freeze(a)) for a, train in zip(agents, phase.trainable, strict=True) if not train]
            info = failures(optimizer.step, learn_batch)
            # failed solves: the warnings this step issued, or the optimizer's own count if it is larger
            failed = max(failures.last, int(info.get("optim/solve_failures", not info.get("optim/converged", True))))
            failures.total += failed - failures.last
            info = {**info, "optim/solve_failures": failed, "optim/solve_failures_total": failures.total}
            for agent, saved in frozen:
                _unfreeze(agent, saved)
            t2 = time.perf_counter()
            holder = 0 if phase.holder is None else phase.holder + 1  # 1-based, 0: nobody
            row = {"update": u, "iteration": phase.iteration, "holder": holder,
                   "alpha": phase.alpha, "env_steps": (u + 1) * steps * env.num_envs,
                   "steps_per_second": steps * env.num_envs / (t2 - t0), "rollout_seconds": t1 - t0,
                   "update_seconds": t2 - t1, **outcomes,
                   **{k: v for k, v in info.items() if isinstance(v, int | float | bool)}}
            log.append(row)
            if board is not None:
                write_scalars(board, row, u + 1)
            done = u + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(progress_postfix(row), refresh=False)
            if done % config.run.checkpoint_every == 0 or done == stop:
                path = save(done)
                last_saved = done
    except KeyboardInterrupt:
        if done > last_saved:
            path = save(done)
            print(f"\ninterrupted: checkpoint of update {done} saved in {str(path)!r}; continue with --resume",
                  file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        env.close()  # an env of streams stops its worker processes
    if path is None and (run_dir / LATEST).exists():
        path = find_checkpoint(run_dir)
    return TrainResult(run_dir, path, log.frame(), time.perf_counter() - began, agents, done, failures.total,
                       trained=done - start)
