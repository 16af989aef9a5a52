"""The seed's claim on sumo-pushers, tested (issue 16): which training method leaves agents harder to exploit?

Five methods with equal victim env steps, ``--seeds`` seeds each, trained and attacked by ``ipo-robust compare``:

- ``ipo-rarl``: IPO-RARL, ``configs/sumo-pushers-ipo-rarl-vpg.toml`` (ipo-vpg, learned-location forces, both agents
  holding the superpower in turn);
- ``ipo-vpg``: ipo-vpg self-play (the simga config with the optimizer swapped: the same learning rate and critic);
- ``simga``: ``configs/sumo-pushers-simga.toml``;
- ``ppo``: ``configs/sumo-pushers-ppo.toml``;
- ``rarl``: classic RARL (Pinto et al. 2017) with PPO: the ppo config, schedule ``rarl``, the adversary holding
  learned-location forces.

Every pair is attacked on both seats by ``--attacker-seeds`` PPO adversaries evaluated along their training
(the budget curve 0.25x .. 2x of the victim's env steps); the positive controls, the masked-victim control,
the strength round robin and the mass and friction sweeps run as in every compare. The settings are fixed
here, before any result is seen; ``--iterations`` scales the victims' training (ipo-rarl's iterations; the
self-play methods get twice as many, rarl as many, so that env steps are equal).

    MUJOCO_GL=disable python benchmarks/study_sumo_pushers.py --out study-local
    MUJOCO_GL=disable python benchmarks/study_sumo_pushers.py --out study-ray --executor ray
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

from ipo_robust.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def command(out: str, executor: str, seeds: int, iterations: int, workers: int, extra: list[str]) -> list[str]:
    configs = ROOT / "configs"
    return ["compare", "--env", "sumo-pushers",
            "--config", f"ipo-rarl={configs / 'sumo-pushers-ipo-rarl-vpg.toml'}",
            "--config", f"ipo-vpg={configs / 'sumo-pushers-simga.toml'}",
            "--config", f"simga={configs / 'sumo-pushers-simga.toml'}",
            "--config", f"ppo={configs / 'sumo-pushers-ppo.toml'}",
            "--config", f"rarl={configs / 'sumo-pushers-ppo.toml'}",
            "--set", "ipo-vpg.optimizer.name=ipo-vpg", "--set", "ipo-vpg.max_iter=500",
            "--set", "rarl.schedule.kind=rarl", "--set", "rarl.perturbation.name=learned-location",
            "--set", f"ipo-rarl.schedule.iterations={iterations}",
            "--set", f"rarl.schedule.iterations={iterations}",
            *[item for label in ("ipo-vpg", "simga", "ppo") for item in
              ("--set", f"{label}.schedule.iterations={2 * iterations}")],
            "--seeds", str(seeds), "--attack", "ppo-adversary", "--attack-budget", "1x",
            "--attack-budgets", "0.25x,0.5x,1x,2x", "--attacker-seeds", "3",
            "--robustness-parameters", "mass,friction", "--executor", executor,
            *(["--workers", str(workers)] if executor == "local" else []), "--out", out, *extra]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="study-sumo-pushers")
    parser.add_argument("--executor", default="local", choices=("local", "ray", "serial"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=25,
                        help="ipo-rarl iterations (2 updates each); 25: every pair trains 160,000 env steps")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--print", action="store_true", help="print the compare command and exit")
    args, extra = parser.parse_known_args(argv)
    argv = command(args.out, args.executor, args.seeds, args.iterations, args.workers, extra)
    if args.print:
        print("ipo-robust " + " ".join(argv))
        return 0
    start = time.perf_counter()
    code = cli(argv)
    print(f"study: exit {code}, wall time {time.perf_counter() - start:.0f} s ({args.executor})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
