"""Wall time of one optimizer update on a real rollout batch (issue 15, item 3).

Collects one batch (``--env``, ``--num-envs`` copies x ``--steps`` steps, seed 0) with the project's
MLP agents (64, 64), then times ``optimizer.step(batch)`` for each optimizer: one warm-up step (it builds
the critics), then the median (and the best) of ``--repeat`` steps. One torch thread and one env thread unless
``IPO_ROBUST_ENV_WORKERS`` says otherwise. For before/after comparisons run it with ``PYTHONPATH``
pointing at plain installs of the two trees, alternating.

    MUJOCO_GL=disable IPO_ROBUST_ENV_WORKERS=1 python benchmarks/bench_updates.py
    MUJOCO_GL=disable python benchmarks/bench_updates.py --optimizers ppo --repeat 10
    MUJOCO_GL=disable IPO_ROBUST_ENV_WORKERS=1 python benchmarks/bench_updates.py --optimizers ppo --train player1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import torch  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust import host  # noqa: E402

OPTIONS = {"ppo": {"lr": 1e-3}, "ipo-ppo": {"lr": 5e-4}, "ipo-vpg": {"lr": 0.1, "critic": "value"},
           "simga": {"lr": 0.1, "critic": "value"}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="sumo-pushers")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--optimizers", default="ppo,ipo-vpg", help=f"comma-separated, of {sorted(OPTIONS)}")
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--train", default="both", choices=("both", "player1"),
                        help="ppo only: update both players, or player 1 alone (an adversarial-policy attack's update)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env = ipo_robust.make_env(args.env, num_envs=args.num_envs, seed=0)
    agents = ipo_robust.make_agents(env, seed=0)
    batch = ipo_robust.collect(env, agents, args.steps, generator=torch.Generator().manual_seed(0))
    env.close()
    start = [p.detach().clone() for a in agents for p in a.parameters()]
    cells = []
    for name in args.optimizers.split(","):
        with torch.no_grad():  # every optimizer starts from the same weights
            for p, q in zip((p for a in agents for p in a.parameters()), start, strict=True):
                p.copy_(q)
        options = dict(OPTIONS[name], **({"train": args.train} if name == "ppo" else {}))
        optimizer = host.create("optimizer", name, agents, **options)
        optimizer.step(batch)
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            optimizer.step(batch)
            times.append(time.perf_counter() - began)
        cells.append(f"{name} {statistics.median(times) * 1e3:.0f} ms (best {min(times) * 1e3:.1f})")
    print(f"{args.env}, {args.num_envs * args.steps} samples: " + ", ".join(cells))


if __name__ == "__main__":
    main()
