"""Krylov solves inside training (issue 13): the float32 rounding floor, and the IPO-RARL config's conditioning.

``floor``: ipo-vpg on matching pennies from samples in float32 (2048 one-step games per update, lr 2, the
setup of tests/plugins/test_opponent_models.py), 300 updates. For every update's CGD system it reports the
residual at which CG stagnates (run with an unreachable explicit rtol), the backward-error estimate
eps ||A|| ||x|| / ||b|| of what float32 "should" reach, and how many updates fail under the old fixed
rtol 1e-6 and under the default tolerance (:func:`ipo_robust.optim.reachable_rtol`). Run it once per SIMD
path (``ATEN_CPU_CAPABILITY=default`` is the generic path, the one the failing Intel machine took).

``rarl``: the shipped IPO-RARL config (``--config``, ``--set`` overrides), ``--updates`` updates of its
schedule. Per update: sigma_max(D12) by power iteration, the condition number 1 + lr1 lr2 sigma^2 of the
zero-sum CGD system I + lr1 lr2 D12 D12^T, the CG iterations to the default tolerance without a cap, and
what the optimizer as configured did (iterations, residual, converged). ``--mask-inert`` also reports the
iterations with the non-holder's perturbation entries left out of the log-probabilities (they act on
nothing; a diagnostic of where the conditioning comes from, not what training does).

    MUJOCO_GL=disable python benchmarks/bench_krylov.py floor
    ATEN_CPU_CAPABILITY=default MUJOCO_GL=disable python benchmarks/bench_krylov.py floor
    MUJOCO_GL=disable python benchmarks/bench_krylov.py rarl --updates 6
    MUJOCO_GL=disable python benchmarks/bench_krylov.py rarl --updates 6 --set optimizer.options.lr=0.5
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def floor(updates: int) -> None:
    import ipo_robust
    from ipo_robust.optim import ConvergenceWarning, conjugate_gradient, reachable_rtol
    from ipo_robust.policies import TabularCategoricalPolicy

    env = ipo_robust.make_env("matching-pennies", num_envs=2048, seed=0)
    agents = tuple(TabularCategoricalPolicy(2, logits=torch.log(torch.tensor(p))) for p in ([0.9, 0.1], [0.2, 0.9]))
    optimizer = ipo_robust.make_optimizer("ipo-vpg", agents, lr=2.0, gamma=1.0)
    lr1, lr2 = optimizer.config.lr1, optimizer.config.lr2
    generator = torch.Generator().manual_seed(0)
    eps = torch.finfo(torch.float32).eps
    stagnated, backward, fixed_failures, default_failures, at_floor = [], [], 0, 0, 0
    warnings.simplefilter("ignore", ConvergenceWarning)
    for _ in range(updates):
        batch = ipo_robust.collect(env, agents, steps=1, generator=generator)
        game = optimizer.local_game(batch)

        def A(v, game=game):
            return v - lr1 * lr2 * game.D12.matvec(game.D21.matvec(v))

        b = lr1 * (game.g1 + lr2 * game.D12.matvec(game.g2))
        if float(b.norm()) == 0.0:
            continue
        floor_run = conjugate_gradient(A, b, rtol=1e-12, max_iter=100)
        dense = torch.stack([A(e) for e in torch.eye(b.numel())], dim=1).double()
        norm_A = float(torch.linalg.matrix_norm(dense, 2))
        stagnated.append(floor_run.residual)
        backward.append(eps * norm_A * float(floor_run.x.norm()) / float(b.norm()))
        fixed_failures += not conjugate_gradient(A, b, rtol=1e-6, max_iter=100).converged
        result = conjugate_gradient(A, b, rtol=reachable_rtol(b.dtype), max_iter=100)
        default_failures += not result.converged
        at_floor += result.at_floor
        optimizer.apply(optimizer.update(game))
    ratios = sorted(s / e for s, e in zip(stagnated, backward, strict=True))
    print(f"SIMD path {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} thread(s), "
          f"{len(stagnated)} solves")
    print(f"stagnated residual: median {statistics.median(stagnated):.1e}, max {max(stagnated):.1e}")
    print(f"eps ||A|| ||x|| / ||b||: median {statistics.median(backward):.1e}; stagnated / that: median "
          f"{statistics.median(ratios):.1f}, max {ratios[-1]:.0f}")
    print(f"failed solves: fixed rtol 1e-6 {fixed_failures}; default (reachable) tolerance {default_failures} "
          f"({at_floor} stopped at the rounding floor)")


def rarl(config_path: str, overrides: list[str], updates: int, mask_inert: bool) -> None:
    from ipo_robust.config import apply_overrides, load_toml, validate
    from ipo_robust.optim import ConvergenceWarning, conjugate_gradient, reachable_rtol
    from ipo_robust.optim.estimators import estimate_local_game
    from ipo_robust.rollout import collect
    from ipo_robust.train import TrainingSetup, holder_rewards

    config = validate(apply_overrides(load_toml(ROOT / config_path), overrides))
    setup = TrainingSetup(config)
    optimizer, env, schedule = setup.optimizer, setup.env, config["schedule"]
    lr1, lr2 = optimizer.config.lr1, optimizer.config.lr2
    print(f"{config_path} {' '.join(overrides)}: lr1 {lr1}, lr2 {lr2}, rtol {optimizer.config.rtol or 'default'}, "
          f"max_iter {optimizer.config.max_iter}, p1 = p2 = {sum(p.numel() for p in setup.agents[0].parameters())}")
    header = "| update | holder | sigma_max(D12) | cond | CG its to the default rtol, no cap | trained: its, residual |"
    print(header + (" CG its, inert entries left out |" if mask_inert else ""))
    warnings.simplefilter("ignore", ConvergenceWarning)
    for u in range(updates):
        phase = setup.schedule.phase(u)
        env.set_superpower(phase.holder, phase.alpha)
        batch = holder_rewards(collect(env, setup.agents, config["env"]["steps"], generator=setup.generator),
                               phase, schedule["task_weight"], schedule["fail_weight"])
        game = optimizer.local_game(batch)
        sigma, uncapped = _conditioning(game, lr1, lr2, conjugate_gradient, reachable_rtol)
        row = (f"| {u} | {phase.holder + 1} | {sigma:.0f} | {1 + lr1 * lr2 * sigma**2:.1e} | {uncapped} |")
        if mask_inert:
            policies = [_ActiveEntries(a, env.own_action_dims[i]) if i != phase.holder else a
                        for i, a in enumerate(setup.agents)]
            masked = estimate_local_game(batch, *policies, gamma=optimizer.config.gamma, zero_sum=game.zero_sum,
                                         method="double-backward")
            inert = _conditioning(masked, lr1, lr2, conjugate_gradient, reachable_rtol)[1]
        step = optimizer.update(game)
        optimizer.apply(step)
        row += f" {step.iterations}, {step.residual:.1e}{'' if step.converged else ' (failed)'} |"
        print(row + (f" {inert} |" if mask_inert else ""), flush=True)


def _conditioning(game, lr1, lr2, conjugate_gradient, reachable_rtol) -> tuple[float, int]:
    """(sigma_max(D12), CG iterations to the default tolerance without a cap) of the zero-sum CGD system."""
    v = torch.randn(game.p2, generator=torch.Generator().manual_seed(0), dtype=game.g1.dtype)
    for _ in range(30):
        w = -game.D21.matvec(game.D12.matvec(v))  # D12^T D12 v (zero-sum: D21 = -D12^T)
        sigma2 = float(w.norm() / v.norm())
        v = w / w.norm()

    def A(x):
        return x - lr1 * lr2 * game.D12.matvec(game.D21.matvec(x))

    b = lr1 * (game.g1 + lr2 * game.D12.matvec(game.g2))
    return sigma2**0.5, conjugate_gradient(A, b, rtol=reachable_rtol(b.dtype), max_iter=5000).iterations


class _ActiveEntries(torch.nn.Module):
    """A Gaussian policy seen through its first ``keep`` action entries only (the same parameters)."""

    def __init__(self, policy, keep: int):
        super().__init__()
        self.policy, self.keep = policy, keep

    def distribution(self, obs):
        from torch.distributions import Independent, Normal

        base = self.policy.distribution(obs).base_dist
        keep = self.keep

        class Marginal(Independent):
            def log_prob(self, value):
                return super().log_prob(value[..., :keep])

        return Marginal(Normal(base.loc[..., :keep], base.scale[..., :keep]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("floor")
    f.add_argument("--updates", type=int, default=300)
    f.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    r = sub.add_parser("rarl")
    r.add_argument("--config", default="configs/sumo-pushers-ipo-rarl-vpg.toml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--updates", type=int, default=6)
    r.add_argument("--mask-inert", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(getattr(args, "threads", 1))
    if args.what == "floor":
        floor(args.updates)
    else:
        rarl(args.config, args.set, args.updates, args.mask_inert)


if __name__ == "__main__":
    main()
