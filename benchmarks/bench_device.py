"""Training on the CPU against training with ``run.device = "cuda"``, same config, same process.

For each optimizer and batch size: a few updates of self-play on sumo-pushers (64x64 tanh policies,
``steps`` = 100 per copy), once per device. Reported per update (the median after the first, which warms up
the device): the rollout seconds (envs and samplers stay on the CPU in both) and the update seconds, and the
update's speed-up on the GPU. torch runs ``--threads`` CPU threads in both (2, as on the 2-core machines
the rest of RESULTS.md is measured on). Without CUDA only the CPU rows are printed.

Run:  python benchmarks/bench_device.py [--updates 4] [--threads 2] [--envs 64,512]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from ipo_robust.train import run_training

OPTIMIZERS = {"ppo": {"lr": 3e-4},
              "ipo-vpg": {"lr": 0.1, "critic": "value", "max_iter": 500},
              "ipo-trpo": {"kl": 0.01, "critic": "value"}}


def config(optimizer: str, envs: int, updates: int, device: str) -> dict:
    return {"env": {"name": "sumo-pushers", "num_envs": envs, "steps": 100, "options": {"shaping": 1.0}},
            "agents": {"hidden": [64, 64]},
            "optimizer": {"name": optimizer, "options": OPTIMIZERS[optimizer]},
            "schedule": {"kind": "self-play", "iterations": updates},
            "run": {"seed": 0, "checkpoint_every": 1000, "device": device, "tensorboard": False}}


def per_update(optimizer: str, envs: int, updates: int, device: str) -> tuple[float, float]:
    """Median (rollout seconds, update seconds) per update, the first update left out."""
    with tempfile.TemporaryDirectory() as out:
        metrics = run_training(config(optimizer, envs, updates, device), Path(out) / "run").metrics
    rows = metrics.iloc[1:]
    return statistics.median(rows["rollout_seconds"]), statistics.median(rows["update_seconds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--envs", default="64,512", help="env copies per batch (x 100 steps = samples)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'optimizer':10} {'samples':>8} {'device':6} {'rollout s':>10} {'update s':>9} {'update speed-up':>16}")
    for envs in (int(e) for e in args.envs.split(",")):
        for optimizer in args.optimizers.split(","):
            cpu_update = None
            for device in devices:
                rollout, update = per_update(optimizer, envs, args.updates, device)
                cpu_update = update if device == "cpu" else cpu_update
                ratio = f"{cpu_update / update:.2f}x" if device != "cpu" else ""
                print(f"{optimizer:10} {envs * 100:8d} {device:6} {rollout:10.3f} {update:9.3f} {ratio:>16}",
                      flush=True)


if __name__ == "__main__":
    main()
