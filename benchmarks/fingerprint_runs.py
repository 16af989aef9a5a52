"""Fingerprints of seeded training runs: a hash of the final weights and metrics of each optimizer.

A refactor that must not change behaviour is checked by running this before and after it on the same
machine and comparing the two outputs line for line (float results are bit-identical only on one CPU
and thread count, so these hashes are not test assertions)::

    MUJOCO_GL=disable OMP_NUM_THREADS=1 python benchmarks/fingerprint_runs.py > before.txt
    ... change ...
    MUJOCO_GL=disable OMP_NUM_THREADS=1 python benchmarks/fingerprint_runs.py > after.txt
    diff before.txt after.txt

Each line: ``name  sha256(weights)[:16]  sha256(metrics)[:16]``. Runs through the public API
(make_env, make_agents, make_optimizer, collect) and the ``ipo-robust train`` command on the shipped configs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.nn.utils import parameters_to_vector

import ipo_robust

ROOT = Path(__file__).resolve().parent.parent

# (label, env, env options, optimizer, hyperparameters, steps per batch, updates)
API_RUNS = [
    ("simga/matching-pennies", "matching-pennies", {}, "simga", {"lr": 0.5}, 1, 5),
    ("ipo-vpg/matching-pennies", "matching-pennies", {}, "ipo-vpg", {"lr": 0.5}, 1, 5),
    ("ipo-vpg+value/iterated-pd", "iterated-prisoners-dilemma", {"horizon": 5}, "ipo-vpg",
     {"lr": 0.3, "critic": "value"}, 5, 4),
    ("ipo-vpg+q/iterated-pd", "iterated-prisoners-dilemma", {"horizon": 5}, "ipo-vpg",
     {"lr": 0.3, "critic": "q"}, 5, 4),
    ("lookahead/rps", "rock-paper-scissors", {}, "lookahead", {"lr": 0.5}, 1, 5),
    ("lola/iterated-pd", "iterated-prisoners-dilemma", {"horizon": 5}, "lola", {}, 5, 4),
    ("ipo-vpg+mle/matching-pennies", "matching-pennies", {}, "ipo-vpg", {"lr": 0.5, "opponent_model": "mle"}, 1, 5),
    ("ipo-vpg+oracle/rps", "rock-paper-scissors", {}, "ipo-vpg", {"lr": 0.5, "opponent_model": "oracle"}, 1, 5),
    ("ppo/rps", "rock-paper-scissors", {}, "ppo", {}, 1, 4),
    ("ppo/sumo-pushers", "sumo-pushers", {"max_episode_steps": 20}, "ppo", {}, 25, 2),
    ("ipo-vpg/sumo-pushers", "sumo-pushers", {"max_episode_steps": 20}, "ipo-vpg", {"lr": 0.1}, 25, 2),
    ("ipo-dpg/continuous-bilinear", "continuous-bilinear", {}, "ipo-dpg", {}, 1, 5),
    ("maddpg/continuous-quadratic", "continuous-quadratic", {}, "maddpg", {}, 1, 5),
    # natural / trust-region family (changed on purpose by the fidelity issue; compared separately)
    ("ipo-npg/matching-pennies", "matching-pennies", {}, "ipo-npg", {}, 1, 4),
    ("npg/matching-pennies", "matching-pennies", {}, "npg", {}, 1, 4),
    ("ipo-trpo/rps", "rock-paper-scissors", {}, "ipo-trpo", {}, 1, 4),
    ("trpo/rps", "rock-paper-scissors", {}, "trpo", {}, 1, 4),
]

CONFIG_RUNS = [
    ("train/sumo-pushers-ppo", "configs/sumo-pushers-ppo.toml"),
    ("train/sumo-pushers-simga", "configs/sumo-pushers-simga.toml"),
    ("train/sumo-pushers-ipo-rarl", "configs/sumo-pushers-ipo-rarl.toml"),
    ("train/sumo-pushers-ipo-rarl-vpg", "configs/sumo-pushers-ipo-rarl-vpg.toml"),
    ("train/rarl-hopper-ipo-rarl", "configs/rarl-hopper-ipo-rarl.toml"),
]


DETERMINISTIC = ("ipo-dpg", "maddpg")
WALL_CLOCK = ("steps_per_second", "rollout_seconds", "update_seconds")


def deterministic_agents(env, **kwargs):
    try:  # where the deterministic policies live has moved; accept either home
        from ipo_robust.policies import make_deterministic_agents
    except ImportError:
        from ipo_robust.plugins.dpg import make_deterministic_agents
    return make_deterministic_agents(env, **kwargs)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def weights_digest(agents) -> str:
    return digest(b"".join(parameters_to_vector(a.parameters()).detach().double().numpy().tobytes()
                           for a in agents))


IGNORED: tuple[str, ...] = ()  # metric keys left out of the digest (--ignore-metrics)


def metrics_digest(rows: list[dict]) -> str:
    rows = [{k: v for k, v in row.items() if k not in IGNORED} for row in rows]
    text = "\n".join(",".join(f"{k}={v!r}" for k, v in sorted(row.items())) for row in rows)
    return digest(text.encode())


def api_run(env_name, env_options, optimizer, hyperparameters, steps, updates) -> tuple[str, str]:
    torch.manual_seed(0)
    env = ipo_robust.make_env(env_name, num_envs=64, seed=0, **env_options)
    if optimizer in DETERMINISTIC:
        agents = deterministic_agents(env, seed=0, hidden=(16,))
    else:
        agents = ipo_robust.make_agents(env, seed=0, hidden=(16,))
    opt = ipo_robust.make_optimizer(optimizer, agents, **hyperparameters)
    rows = []
    for _ in range(updates):
        batch = ipo_robust.collect(env, agents, steps=steps)
        info = opt.step(batch)
        rows.append({k: (round(v, 12) if isinstance(v, float) else v) for k, v in info.items()})
    return weights_digest(agents), metrics_digest(rows)


def config_run(config: str, updates: int) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "ipo_robust", "train", str(ROOT / config), "--out", out,
                   "--no-progress", "--max-updates", str(updates), "--set", "env.num_envs=8",
                   "--set", "env.steps=30", "--set", "env.options.max_episode_steps=20",
                   "--set", "run.checkpoint_every=1"]
        subprocess.run(command, check=True, capture_output=True)
        tensors = load_file(sorted(Path(out).rglob("tensors.safetensors"))[-1])
        # the global torch RNG state is saved but no result draws from it (it is not seeded)
        weights = b"".join(name.encode() + tensors[name].numpy().tobytes() for name in sorted(tensors)
                           if not name.startswith(".rng.torch"))
        with open(Path(out) / "metrics.csv", newline="") as f:
            rows = [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in csv.DictReader(f)]
        return digest(weights), metrics_digest(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3, help="updates per `ipo-robust train` run")
    parser.add_argument("--only", default="", help="comma-separated substrings of run names to keep")
    parser.add_argument("--ignore-metrics", default="",
                        help="comma-separated metric keys to leave out (e.g. ones a change adds on purpose)")
    args = parser.parse_args()
    global IGNORED
    IGNORED = tuple(k for k in args.ignore_metrics.split(",") if k)
    keep = [s for s in args.only.split(",") if s]
    torch.set_num_threads(1)
    for label, env_name, env_options, optimizer, hyperparameters, steps, updates in API_RUNS:
        if keep and not any(s in label for s in keep):
            continue
        print(f"{label:36s} " + "  ".join(api_run(env_name, env_options, optimizer, hyperparameters, steps,
                                                   updates)), flush=True)
    for label, config in CONFIG_RUNS:
        if keep and not any(s in label for s in keep):
            continue
        print(f"{label:36s} " + "  ".join(config_run(config, args.updates)), flush=True)


if __name__ == "__main__":
    main()
