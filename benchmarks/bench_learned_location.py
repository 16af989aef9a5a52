"""The learned-location perturbation's cost per env step, and the rollout it sits in (issue 15).

For ``--envs`` (default sumo-pushers and sumo-ants) with ``learned-location`` forces held by player 1 at alpha
0.2, ``--num-envs`` copies, one thread: the time of one ``nearest_bodies`` call (the victim body and point for
every copy's sampled location) and of ``collect_arrays`` over 100 steps with the IPO-RARL agents
(state-dependent-std holder), best of ``--repeats``. For before/after comparisons run it with ``PYTHONPATH``
pointing at plain installs of the two trees, alternating::

    MUJOCO_GL=disable python benchmarks/bench_learned_location.py
"""

from __future__ import annotations

import argparse
import os
import time
import timeit

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ["IPO_ROBUST_ENV_WORKERS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust.envs.mujoco.perturbations import nearest_bodies  # noqa: E402
from ipo_robust.rollout import collect_arrays  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="sumo-pushers,sumo-ants")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.envs.split(","):
        env = ipo_robust.make_env(name, num_envs=args.num_envs, seed=0, perturbation="learned-location", holder=0)
        env.set_superpower(0, 0.2)
        agents = ipo_robust.make_agents(env, seed=0, state_dependent_std=True)
        env.reset(seed=0)
        points = np.random.default_rng(0).standard_normal((args.num_envs, 3)) * 0.3
        calls = 500
        call = lambda env=env, points=points: nearest_bodies(env.models, env.datas, points, env.body_ids[1])  # noqa: E731
        nearest = min(timeit.repeat(call, number=calls, repeat=args.repeats)) / calls
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            collect_arrays(env, agents, 100, torch.Generator().manual_seed(0), (np.float32, np.float32))
            times.append(time.perf_counter() - began)
        print(f"{name}: nearest_bodies {nearest * 1e6:.0f} us per step; collect of {args.num_envs} copies x 100 "
              f"steps {min(times) * 1e3:.1f} ms")
        env.close()


if __name__ == "__main__":
    main()
