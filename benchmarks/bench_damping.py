"""How the Fisher damping decides the cost of a natural-gradient update (issue 15).

One setup per damping: sumo-pushers self-play, 64 copies x 100 steps (6,400 samples), 64x64 policies,
``kl = 0.01``, ``critic = "value"``, seed 0. Two updates each; per update the solver's iterations and
operator products, whether every solve converged, the quadratic KL the root search put on the budget, the
line search's backtracks, and the wall time of ``optimizer.step``.

    MUJOCO_GL=disable python benchmarks/bench_damping.py --dampings 0.0001,0.01,0.1 --optimizer ipo-trpo
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from ipo_robust.rollout import collect
from ipo_robust.training.setup import TrainingSetup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dampings", default="0.0001,0.01,0.1")
    parser.add_argument("--optimizer", default="ipo-trpo")
    parser.add_argument("--updates", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # a stalled solve warns every time; the table says so once
    print("| damping | update | iterations | products | converged | kl_model | backtracks | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for damping in (float(d) for d in args.dampings.split(",")):
        setup = TrainingSetup({"env": {"name": "sumo-pushers", "num_envs": 64, "steps": 100,
                                       "options": {"shaping": 1.0}},
                               "agents": {"hidden": [64, 64]},
                               "optimizer": {"name": args.optimizer,
                                             "options": {"kl": 0.01, "critic": "value", "damping": damping}},
                               "schedule": {"kind": "self-play", "iterations": args.updates}, "run": {"seed": 0}})
        for k in range(args.updates):
            batch = collect(setup.env, setup.agents, 100, setup.generator)
            start = time.perf_counter()
            info = setup.optimizer.step(batch)
            seconds = time.perf_counter() - start
            backtracks = "/".join(str(info.get(f"optim/backtracks{i}", "-")) for i in (1, 2))
            print(f"| {damping:g} | {k + 1} | {info.get('optim/iterations')} | {info.get('optim/matvecs')} | "
                  f"{info.get('optim/converged')} | {info.get('optim/kl_model', float('nan')):.4f} | {backtracks} | "
                  f"{seconds:.1f} |", flush=True)
        setup.env.close()


if __name__ == "__main__":
    main()
