"""Cost of one IPO update relative to its independent counterpart, on the same batch.

Setting (issue 4): two Gaussian MLP policies 64x64 (tanh), 20-dim observations, 6-dim actions, 4096
samples (64 steps x 64 copies, episodes of 16 steps), zero-sum rewards, float32, CPU, Krylov rtol 1e-6.
A "step" is the whole ``optimizer.step(batch)``: the sample local game, the update rule, applying it
and the diagnostics (KL, norms). Pairs: ipo-vpg / simga, ipo-npg / npg, and ipo-trpo / trpo when those
plugins are installed. The parameters are restored before every timed call, so every call sees the
same point. Median of --repeat calls after one warm-up; both members of a pair timed in this process,
their calls interleaved.

Natural variants use damping 0.1 and at most 20 Krylov iterations (TRPO's usual setting).

Run:  python benchmarks/bench_update_cost.py [--repeat 10] [--threads 2] [--pairs ipo-vpg,ipo-npg,ipo-trpo]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_estimators import synthetic_batch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import ipo_robust
from ipo_robust import host
from ipo_robust.policies import GaussianMLPPolicy

# Natural variants: TRPO-style damping 0.1 and at most 20 Krylov iterations (the float32 KL-Fisher
# system is too ill-conditioned for rtol 1e-6 at damping 1e-4), the same for both members of a pair.
NATURAL = {"kl": 0.01, "damping": 0.1, "rtol": 1e-6, "max_iter": 20}
PAIRS = [("ipo-vpg", "simga", {"lr": 0.01, "rtol": 1e-6}, {"lr": 0.01}),
         ("ipo-npg", "npg", NATURAL, NATURAL),
         ("ipo-trpo", "trpo", NATURAL, NATURAL)]


def time_pair(members, agents, batch, repeat):
    """Median seconds of each member's step, the members' calls interleaved (a, b, a, b, ...) so that a
    change in the machine's load hits both alike; and the first member's last info."""
    optimizers = [ipo_robust.make_optimizer(name, agents, gamma=0.99, **options) for name, options in members]
    start = [parameters_to_vector(a.parameters()).detach().clone() for a in agents]
    times, info = [[] for _ in members], {}
    for call in range(repeat + 1):
        for k, optimizer in enumerate(optimizers):
            for agent, theta in zip(agents, start, strict=True):
                vector_to_parameters(theta.clone(), agent.parameters())
            begin = time.perf_counter()
            step_info = optimizer.step(batch)
            if call:  # the first call is the warm-up
                times[k].append(time.perf_counter() - begin)
            if k == 0:
                info = step_info
    return [statistics.median(t) for t in times], info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", default=",".join(ipo for ipo, *_ in PAIRS),
                        help="IPO optimizers of the pairs to time, comma-separated (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    agents = (GaussianMLPPolicy(20, 6), GaussianMLPPolicy(20, 6))
    batch = synthetic_batch(*agents, steps=64, envs=64, episode_length=16, obs_dim=20)
    known = host.registered("optimizer")
    print("| IPO optimizer | baseline | IPO step | baseline step | ratio | Krylov iterations | matvecs |")
    print("|---|---|---|---|---|---|---|")
    chosen = args.pairs.split(",")
    unknown = sorted(set(chosen) - {ipo for ipo, *_ in PAIRS})
    if unknown:
        parser.error(f"--pairs: unknown {', '.join(unknown)}; choose from {', '.join(ipo for ipo, *_ in PAIRS)}")
    for ipo, base, ipo_options, base_options in PAIRS:
        if ipo not in chosen:
            continue
        if ipo not in known or base not in known:
            print(f"| {ipo} | {base} | not installed | | | | |")
            continue
        (t_ipo, t_base), info = time_pair([(ipo, ipo_options), (base, base_options)], agents, batch, args.repeat)
        print(f"| {ipo} | {base} | {t_ipo * 1e3:.0f} ms | {t_base * 1e3:.0f} ms | {t_ipo / t_base:.2f} "
              f"| {info.get('optim/iterations', '-')} | {info.get('optim/matvecs', '-')} |")


if __name__ == "__main__":
    main()
