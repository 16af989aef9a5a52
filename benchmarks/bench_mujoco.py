"""Throughput of the batched MuJoCo two-agent layer relative to raw physics.

For ``sumo-pushers``, ``sumo-ants`` and ``rarl-hopper`` with N = 1, 16, 64 copies, measures env steps
per second of ``env.step`` with uniformly random actions for both agents and a superpower force every
step (perturbation ``body-force``, holder agent 2, alpha = 1: every copy pushes every step), and divides
it by the env steps per second of a raw loop on the same model: one ``MjData``, ``n_substeps`` calls of
``mujoco.mj_step`` per env step, random ``ctrl``, nothing else. Layer and raw timings alternate; the
best of ``--repeats`` of each counts. A ratio of 1 means the layer (validation, action split, force
clipping and application, observations, rewards, auto-reset) costs nothing over physics. Run:

    MUJOCO_GL=disable python benchmarks/bench_mujoco.py            # prints a markdown table
    MUJOCO_GL=disable python benchmarks/bench_mujoco.py --steps 30  # quicker
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import ipo_robust  # noqa: E402

ENVS = ("sumo-pushers", "sumo-ants", "rarl-hopper")


def layer_timer(name: str, num_envs: int, steps: int):
    """(env, a function timing ``steps`` env steps of all copies, in seconds)."""
    env = ipo_robust.make_env(name, num_envs=num_envs, seed=0, perturbation="body-force", holder=1, alpha=1.0)
    rng = np.random.default_rng(0)
    actions = [[rng.uniform(np.maximum(s.low, -1), np.minimum(s.high, 1), size=(num_envs, *s.shape))
                for s in env.action_spaces] for _ in range(steps)]

    def timed() -> float:
        env.reset(seed=0)
        start = time.perf_counter()
        for a1, a2 in actions:
            env.step(a1, a2)
        return time.perf_counter() - start

    return env, timed


def raw_timer(env, steps: int):
    """A function timing ``steps`` env steps' worth of a raw ``mj_step`` loop on one MjData."""
    model = env.model
    data = mujoco.MjData(model)
    ctrls = np.random.default_rng(0).uniform(-1, 1, size=(steps, model.nu))

    def timed() -> float:
        mujoco.mj_resetData(model, data)
        env._initialize_episode(model, data, np.random.default_rng(0))
        start = time.perf_counter()
        for ctrl in ctrls:
            data.ctrl[:] = ctrl
            for _ in range(env.n_substeps):
                mujoco.mj_step(model, data)
        return time.perf_counter() - start

    return timed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="env steps per timing at N = 64")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| env | N | substeps | layer env-steps/s | raw mj_step env-steps/s | ratio |")
    print("|---|---|---|---|---|---|")
    for name in ENVS:
        for n in (1, 16, 64):
            steps = max(args.steps, 64 * args.steps // n)  # about the same env-step count for every N
            env, layer_timed = layer_timer(name, n, steps)
            raw_timed = raw_timer(env, n * steps)
            layer_best, raw_best = np.inf, np.inf
            for _ in range(args.repeats):  # interleaved, best of each: other load on the machine hits both
                layer_best = min(layer_best, layer_timed())
                raw_best = min(raw_best, raw_timed())
            layer, raw = n * steps / layer_best, n * steps / raw_best
            print(f"| {name} | {n} | {env.n_substeps} | {layer:,.0f} | {raw:,.0f} | {layer / raw:.2f} |", flush=True)


if __name__ == "__main__":
    main()
