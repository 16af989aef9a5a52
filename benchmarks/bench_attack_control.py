"""Can the PPO adversary beat a known-weak victim? The positive control of ``compare`` (issue 16), alone.

Attacks agent 1 (seat 1 of compare's tables, ``seat=0`` in the Python API) of a pair that always takes the
zero action (``known_weak_victim("zero", ENV)``) with ``ppo-adversary`` (16 copies x 128 steps per PPO batch,
as ``compare`` runs it on MuJoCo) for each budget and initial shaping weight (annealed linearly to 0 over the
attacker's training), 64 evaluation games::

    MUJOCO_GL=disable python benchmarks/bench_attack_control.py --budgets 49152,240000 --shaping 0,1,3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "disable")

from ipo_robust.evals.attacks import ATTACKS  # noqa: E402
from ipo_robust.evals.attacks.victim import known_weak_victim  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="sumo-pushers")
    parser.add_argument("--control", default="zero", choices=("zero", "random"))
    parser.add_argument("--budgets", default="49152,240000")
    parser.add_argument("--shaping", default="0,1,3")
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    victim = known_weak_victim(args.control, args.env, {"shaping": 1.0, "max_episode_steps": 100}
                               if args.env.startswith("sumo") else {})
    print("| attacker budget | shaping (annealed to 0) | win rate | wall time (s) |\n|---|---|---|---|")
    for budget in (int(b) for b in args.budgets.split(",")):
        for shaping in (float(s) for s in args.shaping.split(",")):
            start = time.perf_counter()
            result = ATTACKS["ppo-adversary"](num_envs=16, steps=128, shaping=shaping).run(
                victim, seat=0, budget=budget, games=args.games, seed=args.seed)
            print(f"| {budget:,} | {shaping:g} | {result.win_rate:.3f} | {time.perf_counter() - start:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
