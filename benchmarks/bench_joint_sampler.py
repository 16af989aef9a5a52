"""Rollout time with both players sampled in one pass against each player's sampler in turn (issue 15, item 1).

One stream's share of sumo-pushers (``--num-envs`` copies x 100 steps, one thread): ``collect_arrays`` with
:func:`ipo_robust.policies.joint_sampler` (stacked weights, one NumPy pass for both players) and with it switched
off (each player's own ``sampler()``), alternating in one process for ``--rounds`` rounds; prints the best five
of each. Both paths give the same bits (tests/test_rollout.py). Run::

    MUJOCO_GL=disable python benchmarks/bench_joint_sampler.py
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ["IPO_ROBUST_ENV_WORKERS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust import rollout  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="sumo-pushers")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env = ipo_robust.make_env(args.env, num_envs=args.num_envs, seed=0)
    agents = ipo_robust.make_agents(env, seed=0)
    dtypes = (np.float32, np.float32)
    joint = rollout.joint_sampler
    paths = {"each player in turn": lambda *players: None, "one pass for both": joint}
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for _ in range(args.rounds):
            for name, sampler in paths.items():
                rollout.joint_sampler = sampler
                began = time.perf_counter()
                rollout.collect_arrays(env, agents, 100, torch.Generator().manual_seed(3), dtypes)
                times[name].append(time.perf_counter() - began)
    finally:
        rollout.joint_sampler = joint
    for name, values in times.items():
        print(f"{name}: " + ", ".join(f"{t * 1e3:.1f}" for t in sorted(values)[:5]) + " ms per collect")


if __name__ == "__main__":
    main()
