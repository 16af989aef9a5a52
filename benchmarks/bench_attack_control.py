"""Can the PPO adversary beat a known-weak victim? The positive control of ``compare`` (issue 16), alone.

Attacks agent 1 (seat 1 of compare's tables, ``seat=0`` in the Python API) of a pair that always takes the
zero action (``known_weak_victim("zero", ENV)``; ``--control random``: a uniformly random pair) with
``ppo-adversary`` (16 copies x 128 steps per PPO batch, as ``compare`` runs it on MuJoCo; every other option
at the attack's defaults unless given here) for each budget and initial shaping weight (annealed linearly to
0 over the attacker's training), 64 evaluation games. The victims' env is sumo's as ``compare`` trains it
(``shaping=1``, 100-step episodes); the games are always sparse (win / loss)::

    MUJOCO_GL=disable python benchmarks/bench_attack_control.py --budgets 49152,120000,240000 --shaping 1 \
        --seed 0
    # before issue 16's fix (4 PPO epochs x 4 minibatches per batch):
    MUJOCO_GL=disable python benchmarks/bench_attack_control.py --budgets 49152,240000 --shaping 0,1 \
        --epochs 4 --minibatches 4
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
    parser.add_argument("--budgets", default="49152,120000,240000")
    parser.add_argument("--shaping", default="1", help="initial shaping weights, comma-separated (0: sparse)")
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="PPO epochs (default: the attack's)")
    parser.add_argument("--minibatches", type=int, default=None, help="PPO minibatches (default: the attack's)")
    parser.add_argument("--lr", type=float, default=None, help="attacker learning rate (default: the attack's)")
    args = parser.parse_args(argv)
    victim = known_weak_victim(args.control, args.env, {"shaping": 1.0, "max_episode_steps": 100}
                               if args.env.startswith("sumo") else {})
    extra = {k: v for k, v in (("epochs", args.epochs), ("minibatches", args.minibatches), ("lr", args.lr))
             if v is not None}
    print(f"{args.control} victim, seed {args.seed}, options {extra or 'the defaults'}")
    print("| attacker budget | shaping (annealed to 0) | epochs x minibatches | win rate | wall time (s) |\n"
          "|---|---|---|---|---|")
    for budget in (int(b) for b in args.budgets.split(",")):
        for shaping in (float(s) for s in args.shaping.split(",")):
            start = time.perf_counter()
            attack = ATTACKS["ppo-adversary"](num_envs=args.num_envs, steps=args.steps, shaping=shaping, **extra)
            result = attack.run(victim, seat=0, budget=budget, games=args.games, seed=args.seed)
            print(f"| {budget:,} | {shaping:g} | {attack.config.epochs} x {attack.config.minibatches} | "
                  f"{result.win_rate:.3f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
