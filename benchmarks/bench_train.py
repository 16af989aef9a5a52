"""Training benchmark (issue 7): wall time until a trained sumo-pushers agent beats a random opponent,
and training throughput relative to the env layer alone.

For each method (IPO-RARL with ipo-ppo and learned-location forces; the same with the seed's one-step
ipo-vpg, ``ipo-rarl-vpg``; self-play ppo; self-play simga) it trains from the shipped config in
``configs/`` in chunks of updates (``--chunk``); after each chunk agent 1 of the checkpoint plays
``--games`` games against a uniformly random opponent (the ``random`` control attack of
``ipo_robust.evals.attacks``: sparse win/loss, shaping off) and the training wall time so far
(evaluation excluded) is recorded. It stops at the first chunk where the win rate is >= 0.9
or at ``--max-updates``.

Throughput: env steps per second of training (rollouts + updates, from metrics.csv) divided by the env
layer alone stepping the same number of copies with random actions (and the same superpower config),
measured in the same process.

    MUJOCO_GL=disable python benchmarks/bench_train.py                 # all four, seeds 0-2, about 40 min
    MUJOCO_GL=disable python benchmarks/bench_train.py --methods ppo --seeds 0 --chunk 10
    MUJOCO_GL=disable python benchmarks/bench_train.py --methods ipo-rarl --config ipo-rarl=my.toml   # a candidate
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "ipo-rarl": "configs/sumo-pushers-ipo-rarl.toml",
    "ipo-rarl-vpg": "configs/sumo-pushers-ipo-rarl-vpg.toml",
    "ppo": "configs/sumo-pushers-ppo.toml",
    "simga": "configs/sumo-pushers-simga.toml",
}


def win_rate_vs_random(run_dir: Path, games: int, seed: int) -> tuple[float, float, float]:
    from ipo_robust.evals.attacks import ATTACKS, Victim

    victim = Victim.from_checkpoint(run_dir)
    result = ATTACKS["random"]().run(victim, seat=0, budget=0, games=games, seed=seed)
    from ipo_robust.evals.metrics import wilson_interval

    low, high = wilson_interval(result.losses, result.games)  # the attacker's losses are agent 1's wins
    return result.losses / result.games, low, high


def env_only_throughput(config: dict, seconds: float = 3.0) -> float:
    """Env steps/s of the layer alone: the training env, random actions, superpower as in training."""
    from ipo_robust.train import TrainingSetup

    setup = TrainingSetup(config)
    env = setup.env
    phase = setup.schedule.phase(0)
    if hasattr(env, "set_superpower"):
        env.set_superpower(phase.holder, phase.alpha)
    rng = np.random.default_rng(0)
    env.reset()
    lows = [np.maximum(s.low, -1.0) for s in env.action_spaces]
    highs = [np.minimum(s.high, 1.0) for s in env.action_spaces]
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = [rng.uniform(lo, hi, size=(env.num_envs, lo.shape[0])) for lo, hi in zip(lows, highs, strict=True)]
        env.step(*actions)
        steps += env.num_envs
    return steps / (time.perf_counter() - start)


def bench(method: str, chunk: int, max_updates: int, games: int, target: float, seed: int = 0) -> dict:
    from ipo_robust.config import load_toml, validate
    from ipo_robust.train import run_training

    config = validate(load_toml(ROOT / METHODS[method]))
    config["run"]["seed"] = seed
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{method}-s{seed}-")) / "run"
    trained, updates, reached = 0.0, 0, None
    history = []
    schedule = config["schedule"]
    per_iteration = schedule["n1"] + schedule["n2"] if schedule["kind"] != "self-play" else 1
    while updates < min(max_updates, schedule["iterations"] * per_iteration):
        result = run_training(config, run_dir, resume=updates > 0, max_updates=chunk)
        trained += result.seconds
        updates = result.updates
        rate, low, high = win_rate_vs_random(run_dir, games, seed=1000 + updates)
        history.append((updates, trained, rate))
        print(f"{method} seed {seed}: {updates} updates, {trained:.0f} s training, win rate vs random {rate:.3f} "
              f"[{low:.3f}, {high:.3f}]", flush=True)
        if rate >= target:
            reached = (updates, trained, rate, low, high)
            break
    metrics = result.metrics
    env_steps = config["env"]["num_envs"] * config["env"]["steps"] * len(metrics)
    train_throughput = env_steps / float(metrics["rollout_seconds"].sum() + metrics["update_seconds"].sum())
    env_throughput = env_only_throughput(config)
    return {"method": method, "seed": seed, "reached": reached, "history": history,
            "train_steps_per_s": train_throughput,
            "env_steps_per_s": env_throughput}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--chunk", type=int, default=15, help="updates between evaluations")
    parser.add_argument("--max-updates", type=int, default=300)
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--seeds", default="0,1,2", help="run.seed of each run (the shipped configs' seed is 0)")
    parser.add_argument("--config", action="append", default=[], metavar="METHOD=TOML",
                        help="train METHOD from this config instead of the shipped one (repeatable)")
    args = parser.parse_args()
    for item in args.config:
        method, sep, path = item.partition("=")
        if not sep or method not in METHODS:
            parser.error(f"--config takes METHOD=TOML with METHOD one of {sorted(METHODS)}, got {item!r}")
        METHODS[method] = str(Path(path).resolve())
    torch.set_num_threads(1)
    rows = [bench(m.strip(), args.chunk, args.max_updates, args.games, args.target, int(seed))
            for m in args.methods.split(",") for seed in args.seeds.split(",")]
    print("\n| method | seed | updates | env steps | training wall time (s) | win rate vs random [95% CI] | "
          "training steps/s | env-only steps/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    from ipo_robust.config import load_toml, validate

    for row in rows:
        config = validate(load_toml(ROOT / METHODS[row["method"]]))
        per_update = config["env"]["num_envs"] * config["env"]["steps"]
        if row["reached"]:
            updates, seconds, rate, low, high = row["reached"]
            reached = f"{updates} | {updates * per_update} | {seconds:.0f} | {rate:.3f} [{low:.3f}, {high:.3f}]"
        else:
            updates, seconds, rate = row["history"][-1]
            reached = f"not reached in {updates} | {updates * per_update} | {seconds:.0f} | {rate:.3f} (last)"
        print(f"| {row['method']} | {row['seed']} | {reached} | {row['train_steps_per_s']:.0f} | "
              f"{row['env_steps_per_s']:.0f} | "
              f"{row['train_steps_per_s'] / row['env_steps_per_s']:.2f} |")


if __name__ == "__main__":
    main()
