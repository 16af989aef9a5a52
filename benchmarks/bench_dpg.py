"""Cost of one IPO-DPG step relative to a MADDPG step, and of the MLE opponent-model fit per iteration.

IPO-DPG vs MADDPG (issue 5). Deterministic tanh MLP policies 64x64, 17-dim observations per player,
6-dim actions (MuJoCo-sized), learned centralised critics Q_i (tanh MLP 64x64 on [obs1, obs2, a1, a2]),
general-sum rewards (two critics), float32, CPU. One timed call is ``optimizer.step(batch)`` on a batch
of --samples transitions: add to the replay buffer (capacity 4 x samples), ``critic_updates`` TD steps
on minibatches of 256, the local game on 256 replay states (eq. 22 for both; eq. 23 as matvecs for
ipo-dpg), the update (CGD by GMRES, rtol 1e-6, at most 20 iterations; MADDPG: lr g), apply, Polyak
targets. Policy step sizes lr = 1e-3 and 0.1 (the larger makes lr^2 D12 D21 matter: more GMRES
iterations). Reported with critic_updates = 1 (DDPG's one critic step per environment step) and 0 (the
policy part alone). The parameters, critics and buffer are restored before every timed call.

MLE fit (eq. 24, ``opponent_model="mle"``). ``observe(batch, player)`` with the default 50 full-batch Adam
epochs, warm-started, for (a) a tabular model on 2048 one-step rock-paper-scissors samples (the learning
tests' setting) and (b) a categorical MLP 64x64 on 4096 samples with 8-dim observations; next to the
``ipo-vpg`` step (local game + CGD) on the same batch without an opponent model. An ``ipo-vpg`` step with
``mle`` costs two fits (one per player) plus two local games.

Median of --repeat calls after one warm-up.

Run:  python benchmarks/bench_dpg.py [--repeat 20] [--threads 1] [--samples 4096]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch

import ipo_robust
from ipo_robust.opponent import MaximumLikelihoodOpponent
from ipo_robust.plugins.dpg import DeterministicPolicy
from ipo_robust.policies import CategoricalMLPPolicy, TabularCategoricalPolicy
from ipo_robust.rollout import Batch


def transitions(M: int, obs_dim: int, act_dim: int, seed: int = 0, discrete: int | None = None) -> Batch:
    """M one-step transitions (T = 1, N = M) with random observations, actions and general-sum rewards."""
    g = torch.Generator().manual_seed(seed)
    obs1, obs2 = torch.randn(1, M, obs_dim, generator=g), torch.randn(1, M, obs_dim, generator=g)
    if discrete:
        act1 = torch.randint(discrete, (1, M), generator=g)
        act2 = torch.randint(discrete, (1, M), generator=g)
    else:
        act1, act2 = torch.randn(1, M, act_dim, generator=g), torch.randn(1, M, act_dim, generator=g)
    rew1, rew2 = torch.randn(1, M, generator=g), torch.randn(1, M, generator=g)
    done = torch.ones(1, M, dtype=torch.bool)
    return Batch(obs1, obs2, act1, act2, torch.zeros(1, M), torch.zeros(1, M), rew1, rew2, done,
                 torch.ones(1, M, dtype=torch.bool), torch.zeros(1, M, dtype=torch.int64), obs1, obs2)


def median_seconds(call, repeat: int, setup=None) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_dpg_step(name: str, critic_updates: int, lr: float, batch: Batch, repeat: int) -> tuple[float, dict]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        agents = tuple(DeterministicPolicy(17, 6) for _ in (0, 1))
    optimizer = ipo_robust.make_optimizer(name, agents, lr=lr, critic_updates=critic_updates, rtol=1e-6,
                                          max_iter=20, buffer_size=4 * batch.num_envs)
    optimizer.step(batch)  # builds critics and targets, fills the buffer
    snapshot = copy.deepcopy(optimizer.__dict__)
    info = {}

    def restore():
        optimizer.__dict__.update(copy.deepcopy(snapshot))

    def call():
        nonlocal info
        info = optimizer.step(batch)

    seconds = median_seconds(call, repeat, setup=restore)
    return seconds, info


def time_mle(batch: Batch, architecture: str, repeat: int) -> float:
    model = MaximumLikelihoodOpponent(architecture)
    model.observe(batch, 2)  # build + first fit; later fits are warm-started
    return median_seconds(lambda: model.observe(batch, 2), repeat)


def time_ipo_vpg(batch: Batch, agents, repeat: int) -> float:
    optimizer = ipo_robust.make_optimizer("ipo-vpg", agents, lr=0.01, gamma=1.0, rtol=1e-6)
    return median_seconds(lambda: optimizer.update(optimizer.local_game(batch)), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeat}")

    batch = transitions(args.samples, 17, 6)
    print("\nIPO-DPG vs MADDPG: step(batch), deterministic MLP 64x64, obs 17, act 6, "
          f"{args.samples} transitions, replay minibatch 256")
    print(f"{'critic_updates':>14} {'lr':>6} {'maddpg ms':>10} {'ipo-dpg ms':>11} {'ratio':>6} {'GMRES iters':>11}")
    for updates in (1, 0):
        for lr in (1e-3, 0.1):
            maddpg, _ = time_dpg_step("maddpg", updates, lr, batch, args.repeat)
            ipo, info = time_dpg_step("ipo-dpg", updates, lr, batch, args.repeat)
            print(f"{updates:>14} {lr:>6g} {1e3 * maddpg:>10.2f} {1e3 * ipo:>11.2f} {ipo / maddpg:>6.2f} "
                  f"{info['optim/iterations']:>11}")

    print("\nMLE opponent fit per iteration (observe: 50 Adam epochs) vs one ipo-vpg update on the same batch")
    print(f"{'setting':<34} {'mle fit ms':>10} {'ipo-vpg ms':>10} {'fit / step':>10}")
    env = ipo_robust.make_env("rock-paper-scissors", num_envs=2048, seed=0)
    agents = (TabularCategoricalPolicy(3, logits=[-0.35, 0.4, 1.0]),
              TabularCategoricalPolicy(3, logits=[1.0, -0.3, 0.4]))
    rps = ipo_robust.collect(env, agents, steps=1, generator=torch.Generator().manual_seed(0))
    fit, step = time_mle(rps, "tabular", args.repeat), time_ipo_vpg(rps, agents, args.repeat)
    print(f"{'tabular, RPS, 2048 samples':<34} {1e3 * fit:>10.2f} {1e3 * step:>10.2f} {fit / step:>10.2f}")
    mlp_batch = transitions(args.samples, 8, 0, discrete=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp_agents = tuple(CategoricalMLPPolicy(8, 4) for _ in (0, 1))
    fit, step = time_mle(mlp_batch, "mlp", args.repeat), time_ipo_vpg(mlp_batch, mlp_agents, args.repeat)
    label = f"MLP 64x64, obs 8, {args.samples} samples"
    print(f"{label:<34} {1e3 * fit:>10.2f} {1e3 * step:>10.2f} {fit / step:>10.2f}")


if __name__ == "__main__":
    main()
