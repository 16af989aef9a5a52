"""Cost of the mixed-Hessian matvec D12 v per method, relative to one policy gradient.

Setting (issue 4): two Gaussian MLP policies 64x64 (tanh), 20-dim observations, 6-dim actions, 4096
samples (T = 64 steps x N = 64 copies, episodes of 16 steps), float32, on CPU. Everything is measured
in the same process; the ratios divide by the best time of one policy gradient g1 computed from
scratch (forward pass of the policy over the batch + one backward pass), the cost of the gradient a
vanilla policy-gradient step needs.

For each method of ``ipo_robust.optim.estimators``:
- local game: ``estimate_local_game`` (both players' forward passes, g1, g2, and whatever the method
  prepares: per-sample factors) plus the first products D12 v and D21 u (which build the retained
  double-backward graphs of the methods that build them lazily);
- D12 v: one further matvec of the returned operator (what each Krylov iteration pays per product).

Each figure is the best of ``--repeat`` calls (``--repeat / 5`` for the setups), the methods and the
policy gradient interleaved round by round: on a shared machine the minimum is the least disturbed.

Run:  python benchmarks/bench_estimators.py [--samples 4096] [--repeat 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from ipo_robust.optim.estimators import estimate_local_game
from ipo_robust.policies import GaussianMLPPolicy
from ipo_robust.rollout import Batch

METHODS = ("forward-mode", "double-backward", "factors", "surrogate", "layer-factors")


def synthetic_batch(policy1, policy2, steps: int, envs: int, episode_length: int, obs_dim: int,
                    seed: int = 0) -> Batch:
    """A Batch of random observations, actions sampled from the policies, random rewards, fixed-length
    episodes (the estimators' cost does not depend on what the numbers are)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(steps, envs, obs_dim, generator=g)
    with torch.no_grad():
        d1, d2 = policy1.distribution(obs), policy2.distribution(obs)
        act1 = d1.mean + d1.stddev * torch.randn(d1.mean.shape, generator=g)
        act2 = d2.mean + d2.stddev * torch.randn(d2.mean.shape, generator=g)
        logp1, logp2 = d1.log_prob(act1), d2.log_prob(act2)
    t = (torch.arange(steps) % episode_length).unsqueeze(1).expand(steps, envs).contiguous()
    rew1 = torch.randn(steps, envs, generator=g)
    return Batch(obs1=obs, obs2=obs, act1=act1, act2=act2, logp1=logp1, logp2=logp2, rew1=rew1, rew2=-rew1,
                 done=t == episode_length - 1, first=t == 0, t=t, next_obs1=obs, next_obs2=obs)


def _best_times(functions: dict, repeat: int) -> dict:
    """The fastest of ``repeat`` calls of each function, calls interleaved round by round (so slow
    phases of a shared machine hit every function alike), after one warm-up call each."""
    for fn in functions.values():
        fn()
    best = {name: float("inf") for name in functions}
    for _ in range(repeat):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def run(samples: int = 4096, repeat: int = 50, obs_dim: int = 20, act_dim: int = 6,
        hidden=(64, 64), episode_length: int = 16) -> dict:
    """Best-of-``repeat`` seconds and ratios to one policy gradient; a dict of rows and the setting."""
    torch.manual_seed(0)
    policy1 = GaussianMLPPolicy(obs_dim, act_dim, hidden)
    policy2 = GaussianMLPPolicy(obs_dim, act_dim, hidden)
    envs = 64
    if samples % envs:
        raise ValueError(f"samples must be a multiple of {envs}, got {samples}")
    batch = synthetic_batch(policy1, policy2, samples // envs, envs, episode_length, obs_dim)
    params1 = list(policy1.parameters())
    weights = torch.randn(batch.num_steps, batch.num_envs)
    v = torch.randn(sum(p.numel() for p in policy2.parameters()))
    u = torch.randn(sum(p.numel() for p in policy1.parameters()))

    def policy_gradient():
        logp = policy1.distribution(batch.obs1).log_prob(batch.act1)
        return torch.autograd.grad((logp * weights).sum(), params1)

    def local_game(method):  # the estimate plus the first D12 v and D21 u (graphs built lazily)
        game = estimate_local_game(batch, policy1, policy2, gamma=0.99, method=method, zero_sum=True)
        return game, game.D12 @ v, game.D21 @ u

    games = {method: local_game(method)[0] for method in METHODS}
    products = _best_times({"pg": policy_gradient,
                            **{m: (lambda g=games[m]: g.D12 @ v) for m in METHODS}}, repeat)
    setups = _best_times({"pg": policy_gradient, **{m: (lambda m=m: local_game(m)) for m in METHODS}},
                         max(3, repeat // 5))
    t_pg = min(products["pg"], setups["pg"])
    rows = {m: {"setup_s": setups[m], "matvec_s": products[m], "setup_ratio": setups[m] / t_pg,
                "matvec_ratio": products[m] / t_pg} for m in METHODS}
    return {"policy_gradient_s": t_pg, "rows": rows, "samples": samples,
            "p": sum(p.numel() for p in params1), "threads": torch.get_num_threads()}


def markdown(result: dict) -> str:
    lines = [f"policy gradient (forward + backward, {result['samples']} samples, p = {result['p']} per "
             f"policy, {result['threads']} threads): {1e3 * result['policy_gradient_s']:.2f} ms = 1.00", "",
             "| method | D12 v (ms) | D12 v / PG | local game + first D12 v, D21 u (ms) | ... / PG |",
             "|---|---|---|---|---|"]
    for method, row in result["rows"].items():
        lines.append(f"| {method} | {1e3 * row['matvec_s']:.2f} | {row['matvec_ratio']:.2f} | "
                     f"{1e3 * row['setup_s']:.2f} | {row['setup_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=50, help="rounds for the products (setups: repeat / 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(markdown(run(args.samples, args.repeat)))


if __name__ == "__main__":
    main()
