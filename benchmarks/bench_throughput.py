"""Throughput of the training pipeline as ratios to raw single-core MuJoCo physics (issue 15).

For ``sumo-pushers`` and ``sumo-ants`` at ``--num-envs`` copies (default 64), in one process with one
torch thread, it measures env steps per second of five things and prints each as a ratio:

- ``raw``: one ``MjData``, ``n_substeps`` calls of ``mujoco.mj_step`` per env step, random ``ctrl``,
  nothing else (single core: the yardstick);
- ``env``: the batched env layer stepping all copies with random actions;
- ``collect``: :func:`ipo_robust.rollout.collect` with the project's two MLP policies (64, 64);
- ``ppo`` / ``ipo-vpg``: training (rollout + update, self-play, 100 steps per copy per update), from
  the loop's own ``rollout_seconds`` + ``update_seconds``; the split into rollout and update is printed.

Each row runs with ``IPO_ROBUST_ENV_WORKERS`` set to its thread count (``default``: the CPUs available),
which sets both the threads stepping env copies and those running the two players' updates side by side;
with ``streams`` S > 1 the copies are S independent streams (``env.streams``) and the same count sets the
worker processes collecting them (:mod:`ipo_robust.streams`).
Timings alternate between the things measured and the best of ``--repeats`` counts (other load on a
shared machine hits all of them). Run::

    MUJOCO_GL=disable python benchmarks/bench_throughput.py
    MUJOCO_GL=disable python benchmarks/bench_throughput.py --envs sumo-pushers --workers 2 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust.streams import StreamedEnv  # noqa: E402
from ipo_robust.threads import WORKERS_VARIABLE  # noqa: E402


def raw_rate(env, steps: int) -> float:
    model = env.model
    data = mujoco.MjData(model)
    env._initialize_episode(model, data, np.random.default_rng(0))
    ctrls = np.random.default_rng(0).uniform(-1, 1, size=(steps, model.nu))
    start = time.perf_counter()
    for ctrl in ctrls:
        data.ctrl[:] = ctrl
        for _ in range(env.n_substeps):
            mujoco.mj_step(model, data)
    return steps / (time.perf_counter() - start)


def env_rate(env, steps: int) -> float:
    rng = np.random.default_rng(0)
    actions = [[rng.uniform(np.maximum(s.low, -1), np.minimum(s.high, 1), size=(env.num_envs, *s.shape))
                for s in env.action_spaces] for _ in range(steps)]
    env.reset(seed=0)
    start = time.perf_counter()
    for a1, a2 in actions:
        env.step(a1, a2)
    return steps * env.num_envs / (time.perf_counter() - start)


def collect_rate(env, agents, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    ipo_robust.collect(env, agents, steps, generator=generator)
    return steps * env.num_envs / (time.perf_counter() - start)


def train_rates(name: str, optimizer: str, num_envs: int, updates: int, streams: int = 1) -> tuple[float, float, float]:
    """(env steps/s of training, fraction of it in rollouts, fraction in updates) over ``updates`` updates,
    the first not counted (it builds the critics and starts an env's stream workers)."""
    from ipo_robust.train import run_training

    options = {"lr": 0.001} if optimizer == "ppo" else {"lr": 0.1, "critic": "value"}
    env_options = {"shaping": 1.0}
    config = {"env": {"name": name, "num_envs": num_envs, "steps": 100, "options": env_options, "streams": streams},
              "agents": {"hidden": [64, 64]}, "optimizer": {"name": optimizer, "options": options},
              "schedule": {"kind": "self-play", "iterations": updates},
              "run": {"seed": 0, "checkpoint_every": 10_000}}
    with tempfile.TemporaryDirectory() as tmp:
        metrics = run_training(config, tmp).metrics.iloc[1:]  # the first update warms up (stream workers start)
    rollout, update = float(metrics["rollout_seconds"].sum()), float(metrics["update_seconds"].sum())
    return num_envs * 100 * len(metrics) / (rollout + update), rollout / (rollout + update), update / (rollout + update)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="sumo-pushers,sumo-ants")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="env steps per copy in each env/collect timing")
    parser.add_argument("--updates", type=int, default=4,
                        help="training updates per timing; the first is not counted (warm-up)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,default",
                        help="comma-separated thread counts to measure (env copies and per-player updates; "
                        "'default': the CPUs available)")
    parser.add_argument("--streams", default="1,2",
                        help="comma-separated env.streams values: 1 is one env (copies stepped on threads); S > 1 "
                        "is S independent streams collected by worker processes (as many as the row's workers)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, mujoco {mujoco.__version__}, {os.cpu_count()} CPUs, "
          f"{args.num_envs} copies, best of {args.repeats}")
    print("| env | workers | streams | raw mj_step steps/s | env / raw | collect / env | collect / raw | "
          "ppo / raw (rollout:update) | ipo-vpg / raw (rollout:update) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.envs.split(","):
        for w, streams in ((w, int(s)) for w in args.workers.split(",") for s in args.streams.split(",")):
            if w == "default":
                os.environ.pop(WORKERS_VARIABLE, None)
            else:
                os.environ[WORKERS_VARIABLE] = w  # env copies' threads (or stream processes), per-player updates
            env = ipo_robust.make_env(name, num_envs=args.num_envs, seed=0)
            collected = env if streams == 1 else StreamedEnv(name, args.num_envs, 0, streams=streams)
            agents = ipo_robust.make_agents(env, seed=0)
            best = {"raw": 0.0, "env": 0.0, "collect": 0.0, "ppo": (0.0, 0, 0), "ipo-vpg": (0.0, 0, 0)}
            for _ in range(args.repeats):
                best["raw"] = max(best["raw"], raw_rate(env, args.steps * 4))
                best["env"] = max(best["env"], env_rate(env, args.steps))
                best["collect"] = max(best["collect"], collect_rate(collected, agents, args.steps))
                if not args.skip_training:
                    for opt in ("ppo", "ipo-vpg"):
                        rate = train_rates(name, opt, args.num_envs, args.updates, streams)
                        best[opt] = max(best[opt], rate)
            raw = best["raw"]
            cells = [f"{best[o][0] / raw:.2f} ({best[o][1]:.2f}:{best[o][2]:.2f})" if best[o][0] else "-"
                     for o in ("ppo", "ipo-vpg")]
            print(f"| {name} | {w} | {streams} | {raw:.0f} | {best['env'] / raw:.2f} | "
                  f"{best['collect'] / best['env']:.2f} | {best['collect'] / raw:.2f} | {cells[0]} | {cells[1]} |",
                  flush=True)
            if collected is not env:
                collected.close()
            env.close()


if __name__ == "__main__":
    main()
