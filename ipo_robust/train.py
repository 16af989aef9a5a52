"""Training loops.

:func:`train_exact_game` trains both players on an exact differentiable game: every iteration the
game's exact :class:`~ipo_robust.optim.LocalGame` goes to the optimizer's update rule, and both
parameter vectors move by the returned step. No sampling, so the only error is the optimizer's own.

:func:`run_training` trains from samples as a config says (:mod:`ipo_robust.config`).
Schedules (``[schedule] kind``), all built on one loop: per *update* ``u`` the schedule gives a
:class:`Phase` (who holds the superpower, with what alpha, which agents learn), a batch is collected
with it, the holder's rewards are combined, and the optimizer steps.

- ``self-play``: both agents updated every iteration by the optimizer; nobody holds the superpower
  unless ``holder`` names an agent (e.g. the adversary of a ``rarl-*`` env, which acts only by force).
- ``ipo-rarl`` (the seed's Algorithm 1): ``iterations`` outer iterations, each ``n1`` updates with
  agent 1 holding the superpower (amount ``alpha1``) then ``n2`` with agent 2 holding it (``alpha2``).
  Both agents are updated by the (interactive) optimizer in every update.
- ``rarl`` (Pinto et al. 2017): the adversary (``3 - protagonist``) always holds the superpower
  (``alpha``); each iteration has ``n1`` updates of the protagonist with the adversary frozen, then ``n2``
  of the adversary with the protagonist frozen.

Holder reward: ``task_weight * r_holder + fail_weight * (-r_victim)`` (the extra reward for failing
the opponent; for a zero-sum task the two terms agree). Alpha annealing over the outer iterations
``k = 0 .. K-1``: ``alpha * f(k / K)``, with f = 1 (constant), 1 - x (linear), (1 + cos(pi x)) / 2 (cosine);
the env's shaping weight anneals the same way with ``shaping_anneal``.

Checkpoints (:mod:`ipo_robust.checkpoint`) hold the agents, the optimizer's state (critics, Adam
moments, opponent model), the RNG states (action sampling, torch, the env's numpy generator) and the
update count; every batch starts from fresh episodes, so nothing else carries over and a resumed run
is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ipo_robust.errors import ConfigError
from ipo_robust.optim.optimizer import TwoAgentOptimizer


@dataclass
class ExactRun:
    """The end point and per-iteration record of :func:`train_exact_game`."""

    theta1: torch.Tensor
    theta2: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_exact_game(game, optimizer: TwoAgentOptimizer, theta1: torch.Tensor, theta2: torch.Tensor,
                     iterations: int, metrics: Callable[[torch.Tensor, torch.Tensor], dict] | None = None,
                     record_every: int = 1) -> ExactRun:
    """Run ``iterations`` exact updates from (theta1, theta2).

    :param game: an exact game with ``local_game(theta1, theta2, fisher=...)``
        (:mod:`ipo_robust.envs.games`).
    :param optimizer: any optimizer plugin object (its ``update`` rule is used).
    :param metrics: ``f(theta1, theta2) -> dict`` recorded every ``record_every`` iterations and at the end
        (e.g. exploitability of the current strategies).
    """
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    theta1, theta2 = theta1.detach().clone(), theta2.detach().clone()
    run = ExactRun(theta1, theta2)
    needs_fisher = getattr(optimizer, "needs_fisher", False)
    start = time.perf_counter()

    def record(iteration: int, step=None):
        row = {"iteration": iteration}
        if step is not None:
            row.update({"optim/iterations": step.iterations, "optim/residual": float(step.residual),
                        "optim/converged": bool(step.converged)})
        if metrics is not None:
            row.update(metrics(theta1, theta2))
        run.history.append(row)

    record(0)
    for iteration in range(1, iterations + 1):
        local_game = game.local_game(theta1, theta2, fisher=needs_fisher)
        step = optimizer.update(local_game)
        theta1 = theta1 + step.delta1.detach()
        theta2 = theta2 + step.delta2.detach()
        if iteration % record_every == 0 or iteration == iterations:
            record(iteration, step)
    run.theta1, run.theta2 = theta1, theta2
    run.seconds = time.perf_counter() - start
    return run


# =====================================================================================================
# Sample-based training: schedules, the loop, checkpoints
# =====================================================================================================



def anneal_factor(kind: str, k: int, total: int) -> float:
    """f(k / total) of the annealing schedule ``kind`` (1 at k = 0, towards 0 at k = total)."""
    x = k / total
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - x
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    raise ValueError(f"unknown annealing schedule {kind!r}")


@dataclass(frozen=True)
class Phase:
    """What update ``u`` does: outer iteration, superpower holder (0, 1 or None) and its alpha, and
    which agents learn (``trainable[i]``)."""

    update: int
    iteration: int
    holder: int | None
    alpha: float
    trainable: tuple[bool, bool]


class Schedule:
    """The update plan of a resolved config's ``[schedule]`` (module section above)."""

    def __init__(self, schedule: dict):
        self.config = schedule
        self.kind = schedule["kind"]
        self.iterations = schedule["iterations"]
        self.per_iteration = 1 if self.kind == "self-play" else schedule["n1"] + schedule["n2"]

    @property
    def total_updates(self) -> int:
        return self.iterations * self.per_iteration

    def env_holder(self):
        """The ``holder`` option the env is built with: which agents carry the perturbation action."""
        s = self.config
        if self.kind == "ipo-rarl":
            if s["n1"] and s["n2"]:
                return "both"
            return 0 if s["n1"] else 1
        if self.kind == "rarl":
            return 2 - s["protagonist"]  # the adversary, 0-based
        return None if s["holder"] == "none" else s["holder"] - 1

    def phase(self, u: int) -> Phase:
        s = self.config
        k, j = divmod(u, self.per_iteration)
        if self.kind == "ipo-rarl":
            holder = 0 if j < s["n1"] else 1
            alpha = (s["alpha1"], s["alpha2"])[holder] * anneal_factor(s["anneal"], k, self.iterations)
            return Phase(u, k, holder, alpha, (True, True))
        if self.kind == "rarl":
            protagonist = s["protagonist"] - 1
            learner = protagonist if j < s["n1"] else 1 - protagonist
            alpha = s["alpha"] * anneal_factor(s["anneal"], k, self.iterations)
            return Phase(u, k, 1 - protagonist, alpha, (learner == 0, learner == 1))
        holder = None if s["holder"] == "none" else s["holder"] - 1
        alpha = 0.0 if holder is None else s["alpha"] * anneal_factor(s["anneal"], k, self.iterations)
        return Phase(u, k, holder, alpha, (True, True))


def holder_rewards(batch, phase: Phase, task_weight: float, fail_weight: float):
    """The batch with the holder's reward replaced by ``task_weight r_h + fail_weight (-r_victim)``."""
    if phase.holder is None:
        return batch
    from ipo_robust.rollout import Batch

    values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch) if f.name != "complete"}
    own, other = (batch.rew1, batch.rew2) if phase.holder == 0 else (batch.rew2, batch.rew1)
    combined = task_weight * own - fail_weight * other
    values["rew1" if phase.holder == 0 else "rew2"] = combined.to(own.dtype)
    return Batch(**values)


def episode_outcomes(batch) -> dict:
    """Undiscounted returns and outcomes of the batch's complete episodes (the env's task rewards).

    A win of agent 1 is an episode that ends by termination with agent 1's last reward > 0 (its
    opponent failed: pushed out, fell); ``nan`` rates when no episode ended.
    """
    returns1, returns2 = batch.discounted_returns(1.0)
    ended = batch.done & batch.complete & batch.terminated
    last1 = batch.rew1[ended].to(torch.float64)
    episodes = int((batch.first & batch.complete).sum())
    out = {"train/episodes": episodes,
           "train/return1": float(returns1.mean()) if episodes else float("nan"),
           "train/return2": float(returns2.mean()) if episodes else float("nan")}
    out["train/win1"] = float((last1 > 0).sum()) / episodes if episodes else float("nan")
    out["train/win2"] = float((last1 < 0).sum()) / episodes if episodes else float("nan")
    return out


@dataclass
class TrainResult:
    """What :func:`run_training` leaves: the run directory, its newest checkpoint, the per-update
    metrics (one row per update of this run, resumed ones included) and the wall time."""

    run_dir: Path
    checkpoint: Path | None
    metrics: pd.DataFrame
    seconds: float
    agents: tuple
    updates: int


class TrainingSetup:
    """Everything a run needs, built (and thereby checked) before the first update."""

    def __init__(self, config: dict):
        from ipo_robust import make_agents, make_env, make_optimizer
        from ipo_robust.config import optimizer_options

        self.config = config
        self.schedule = Schedule(config["schedule"])
        env_cfg, seed = config["env"], config["run"]["seed"]
        self.env_options = dict(env_cfg["options"])
        if config["perturbation"]["name"] != "default":
            self.env_options["perturbation"] = config["perturbation"]["name"]
            if config["perturbation"]["options"]:
                from ipo_robust.envs.mujoco.perturbations import make_perturbation

                make_perturbation(config["perturbation"]["name"], **config["perturbation"]["options"])
        holder = self.schedule.env_holder()
        if holder is not None:
            self.env_options["holder"] = holder
        try:
            self.env = make_env(env_cfg["name"], num_envs=env_cfg["num_envs"], seed=seed,
                                **self._env_kwargs(config))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config: env {env_cfg['name']!r} cannot be built with these options: {error}") from None
        self._check_superpower()
        if any(int(np.prod(getattr(s, "shape", (1,)))) == 0 and not hasattr(s, "n") for s in self.env.action_spaces):
            raise ConfigError(f"config: in {env_cfg['name']!r} with this schedule an agent has no actions at all "
                              "(e.g. a rarl-* adversary without the superpower): set schedule.holder")
        self.agents = make_agents(self.env, seed=seed, hidden=tuple(config["agents"]["hidden"]))
        opponent = config["opponent_model"]
        options = optimizer_options(config)
        if opponent["name"] != "none":
            from ipo_robust import host

            options["opponent_model"] = host.resolve("opponent_model", opponent["name"])(**opponent["options"])
        self.optimizer = make_optimizer(config["optimizer"]["name"], self.agents, **options)
        self.generator = torch.Generator().manual_seed(seed)
        self.shaping0 = float(self.env_options.get("shaping", 0.0) or 0.0)

    def _env_kwargs(self, config):
        kwargs = dict(self.env_options)
        if config["perturbation"]["name"] != "default" and config["perturbation"]["options"]:
            from ipo_robust.envs.mujoco.perturbations import make_perturbation

            kwargs["perturbation"] = make_perturbation(config["perturbation"]["name"],
                                                       **config["perturbation"]["options"])
        return kwargs

    def _check_superpower(self):
        env, schedule = self.env, self.schedule
        needed = sorted({p.holder for p in map(schedule.phase, range(schedule.per_iteration)) if p.holder is not None})
        if needed and not hasattr(env, "set_superpower"):
            raise ConfigError(f"config: schedule {schedule.kind!r} gives an agent the superpower, but env "
                              f"{self.config['env']['name']!r} has no superpower forces (use a MuJoCo env)")
        for holder in needed:
            try:
                env.set_superpower(holder, 0.0)
            except ValueError as error:
                key = {"ipo-rarl": f"schedule.n{holder + 1}", "rarl": "schedule.protagonist"}.get(schedule.kind,
                                                                                                   "schedule.holder")
                raise ConfigError(f"config: {key}: {error}") from None
        if hasattr(env, "set_superpower"):
            env.set_superpower(None, 0.0)

    # -- checkpoint state ----------------------------------------------------------------------------
    def state(self, updates: int) -> dict:
        return {"agents": [a.state_dict() for a in self.agents],
                "optimizer": self.optimizer.state_dict(),
                "rng": {"actions": self.generator.get_state(), "torch": torch.get_rng_state(),
                        "env": _json_safe(self.env.rng.bit_generator.state)},
                "updates": updates}

    def restore(self, state: dict) -> int:
        for agent, weights in zip(self.agents, state["agents"], strict=True):
            agent.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"]["actions"])
        torch.set_rng_state(state["rng"]["torch"])
        self.env.rng.bit_generator.state = state["rng"]["env"]
        return int(state["updates"])


def _json_safe(state):
    """numpy bit-generator state: nested dicts of str/int -> the same (ints may exceed 64 bits; JSON keeps them)."""
    if isinstance(state, dict):
        return {k: _json_safe(v) for k, v in state.items()}
    if isinstance(state, np.integer):
        return int(state)
    if isinstance(state, np.ndarray):
        return state.tolist()
    return state


def _freeze(agent):
    return [p.detach().clone() for p in agent.parameters()]


def _unfreeze(agent, saved) -> None:
    with torch.no_grad():
        for p, value in zip(agent.parameters(), saved, strict=True):
            p.copy_(value)


class MetricsLog:
    """metrics.csv of a run: one row per update, appended and flushed as it comes; on resume the rows
    after the checkpoint are dropped (atomically) so the file matches the restored state."""

    def __init__(self, path: Path, resume_from: int | None):
        self.path = path
        self.rows: list[dict] = []
        if resume_from is not None and path.exists():
            previous = pd.read_csv(path)
            previous = previous[previous["update"] < resume_from]
            self.rows = previous.to_dict("records")
        self._columns: list[str] | None = None
        self._rewrite()

    def _rewrite(self) -> None:
        from ipo_robust.atomic import atomic_write_text

        frame = pd.DataFrame(self.rows)
        atomic_write_text(self.path, frame.to_csv(index=False) if self.rows else "")
        self._columns = list(frame.columns) if self.rows else None

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self._columns is None or set(row) - set(self._columns):
            self._rewrite()  # a new column: rewrite the file with the wider header
            return
        line = pd.DataFrame([row], columns=self._columns).to_csv(index=False, header=False)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def run_training(config: dict, run_dir: str | os.PathLike | None = None, progress: bool = False,
                 resume: bool = False, max_updates: int | None = None) -> TrainResult:
    """Train as the config says; checkpoints and ``metrics.csv`` go to ``run_dir`` (default ``run.out``).

    :param config: a raw or resolved config dict (:mod:`ipo_robust.config`); validated first.
    :param resume: continue from the newest checkpoint in ``run_dir`` (the config must match it except
        for ``run.out``, ``run.checkpoint_every`` and ``run.keep``); on CPU the result is bit-identical
        to the uninterrupted run.
    :param max_updates: stop (with a checkpoint) after this many updates of this call, e.g. to split a run.
    On Ctrl-C the completed updates are checkpointed and KeyboardInterrupt propagates.
    """
    from ipo_robust import checkpoint as ckpt
    from ipo_robust.config import differences, validate
    from ipo_robust.rollout import collect

    config = validate(config)
    run_dir = Path(run_dir if run_dir is not None else config["run"]["out"])
    if not resume and (run_dir / ckpt.LATEST).exists():
        raise ConfigError(f"run directory {str(run_dir)!r} already holds a run: pass --resume to continue it, "
                          "or choose another run.out")
    setup = TrainingSetup(config)
    if resume and not getattr(setup.optimizer, "resumable", True):
        raise ConfigError(f"optimizer {config['optimizer']['name']!r} cannot be resumed bit-exactly")
    start = 0
    if resume:
        loaded = ckpt.load_checkpoint(run_dir)
        changed = differences(loaded.config, config)
        if changed:
            raise ConfigError(f"cannot resume {str(run_dir)!r}: the config differs from the checkpoint's in "
                              f"{', '.join(changed)}")
        start = setup.restore(loaded.state)
    schedule, env, agents, optimizer = setup.schedule, setup.env, setup.agents, setup.optimizer
    total = schedule.total_updates
    stop = total if max_updates is None else min(total, start + int(max_updates))
    run_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(run_dir / "metrics.csv", start if resume else None)
    board = _tensorboard(run_dir, config["run"]["tensorboard"], start)
    meta = {"config": config, "env": {"name": config["env"]["name"], "options": _jsonable(setup.env_options)},
            "agents": [ckpt.policy_spec(a) for a in agents], "seeds": {"run": config["run"]["seed"]},
            "plugins": {"optimizer": config["optimizer"]["name"], "env": config["env"]["name"],
                        "perturbation": config["perturbation"]["name"],
                        "opponent_model": config["opponent_model"]["name"]}}
    s = config["schedule"]
    steps = config["env"]["steps"]
    last_saved, path = start, None
    done = start

    def save(updates: int):
        return ckpt.save_checkpoint(run_dir, updates, setup.state(updates), {**meta, "updates": updates,
                                                                              "total_updates": total},
                                    keep=config["run"]["keep"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, unit="update", dynamic_ncols=True, desc=config["schedule"]["kind"])
    began = time.perf_counter()
    try:
        for u in range(start, stop):
            phase = schedule.phase(u)
            if hasattr(env, "set_superpower"):
                env.set_superpower(phase.holder, phase.alpha)
            if setup.shaping0 and hasattr(env, "set_shaping"):
                env.set_shaping(setup.shaping0 * anneal_factor(s["shaping_anneal"], phase.iteration,
                                                               schedule.iterations))
            t0 = time.perf_counter()
            batch = collect(env, agents, steps, generator=setup.generator)
            t1 = time.perf_counter()
            if batch.num_episodes == 0:
                limit = getattr(env, "max_episode_steps", None)
                raise ConfigError(f"config: env.steps = {steps} is too short: no episode ended within a batch; "
                                  f"collect more steps per copy than an episode lasts (max_episode_steps = {limit})")
            outcomes = episode_outcomes(batch)
            learn_batch = holder_rewards(batch, phase, s["task_weight"], s["fail_weight"])
            frozen = [(a, _freeze(a)) for a, train in zip(agents, phase.trainable, strict=True) if not train]
            info = optimizer.step(learn_batch)
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
                for key, value in row.items():
                    if key != "update" and isinstance(value, int | float) and not isinstance(value, bool):
                        board.add_scalar(key, value, global_step=u + 1)
            done = u + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(_postfix(row), refresh=False)
            if done % config["run"]["checkpoint_every"] == 0 or done == stop:
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
    if path is None and (run_dir / ckpt.LATEST).exists():
        path = ckpt.find_checkpoint(run_dir)
    return TrainResult(run_dir, path, log.frame(), time.perf_counter() - began, agents, done)


def _tensorboard(run_dir: Path, setting, start: int):
    """A SummaryWriter in run_dir/tensorboard (events after ``start`` purged on resume), or None."""
    if setting is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if setting is True:
            raise ConfigError("config: run.tensorboard = true but tensorboard is not installed "
                              "(pip install tensorboard), or set it to \"auto\"") from None
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start + 1 if start else None)


def _postfix(row: dict) -> str:
    parts = [f"{row['steps_per_second']:.0f} steps/s"]
    if row.get("train/episodes"):
        parts.append(f"R1 {row['train/return1']:.2f}")
        if not math.isnan(row["train/win1"]):
            parts.append(f"win1 {row['train/win1']:.2f}")
    if "optim/iterations" in row:
        parts.append(f"CG {row['optim/iterations']}")
    if row["holder"] > 0:
        parts.append(f"alpha{row['holder']} {row['alpha']:.2f}")
    return ", ".join(parts)


def _jsonable(options: dict) -> dict:
    out = {}
    for key, value in options.items():
        if value is None or isinstance(value, bool | int | float | str | list | dict):
            out[key] = value
        else:
            out[key] = getattr(value, "name", str(value))
    return out
