"""Cost of a CGD step relative to a SimGA step on the same operators.

For p = p1 + p2 parameters (p1 = p2 = p / 2) and mixed-Hessian operators that are either low-rank
(D12 = U V^T with rank r, matvec cost O(p r)) or dense (matvec O(p^2), only where it fits memory),
measures in one process:

- SimGA: ``simga_step`` (delta_i = lr_i g_i, no operator application),
- CGD zero-sum: ``cgd_step`` with D21 = -D12^T (conjugate gradient),
- CGD general-sum: ``cgd_step`` with an independent D21 (GMRES),

and reports Krylov iterations, operator applications (matvecs), best-of-n wall times, the ratio of the
CGD step time to the SimGA step time, and the CGD step time in units of one D12 matvec (what the
ratio is made of). Run:

    python benchmarks/bench_cgd.py            # all sizes, prints a markdown table
    python benchmarks/bench_cgd.py --quick    # p up to 1e4
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from ipo_robust.optim import LinearOperator, LocalGame, cgd_step, simga_step

DTYPE = torch.float64


def low_rank_operator(U: torch.Tensor, V: torch.Tensor) -> LinearOperator:
    """U V^T (rows(U) x rows(V)) as an operator: matvec costs O((rows(U) + rows(V)) r)."""
    return LinearOperator(lambda v: U @ (V.T @ v), (U.shape[0], V.shape[0]), lambda u: V @ (U.T @ u))


def make_game(p: int, kind: str, zero_sum: bool, rank: int, generator: torch.Generator) -> LocalGame:
    """A random local game with p1 = p2 = p / 2 and ||D12||, ||D21|| of order 1."""
    p1 = p2 = p // 2

    def randn(*shape):
        return torch.randn(*shape, dtype=DTYPE, generator=generator)

    g1, g2 = randn(p1), randn(p2)
    if kind == "low-rank":
        # entries of U, V ~ N(0, 1 / sqrt(p1 p2)) so U V^T has singular values of order 1
        U, V = randn(p1, rank) / p1**0.5, randn(p2, rank) / p2**0.5
        D12 = low_rank_operator(U, V)
        if zero_sum:
            D21 = low_rank_operator(-V, U)  # -D12^T = -V U^T
        else:
            D21 = low_rank_operator(randn(p2, rank) / p2**0.5, randn(p1, rank) / p1**0.5)
    elif kind == "dense":
        D12_matrix = randn(p1, p2) / math.sqrt(p1 + p2)
        D21_matrix = -D12_matrix.T if zero_sum else randn(p2, p1) / math.sqrt(p1 + p2)
        D12, D21 = LinearOperator.dense(D12_matrix), LinearOperator.dense(D21_matrix)
    else:
        raise ValueError(f"kind must be 'low-rank' or 'dense', got {kind!r}")
    return LocalGame(g1, g2, D12, D21, zero_sum=zero_sum)


def best_seconds(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after a warm-up: the least disturbed by other load (cf. timeit)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def repeats_for(p: int, kind: str) -> int:
    work = p * (p if kind == "dense" else 10)
    return 50 if work <= 1e6 else 15 if work <= 1e8 else 5


def benchmark(sizes, dense_max: int, rank: int, lr1: float, lr2: float, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for kind in ("low-rank", "dense"):
        for p in sizes:
            if kind == "dense" and p > dense_max:
                continue
            repeats = repeats_for(p, kind)
            for zero_sum in (True, False):
                game = make_game(p, kind, zero_sum, rank, generator)
                # the baseline and a single matvec are cheap: time them more often
                simga_time = best_seconds(lambda game=game: simga_step(game, lr1, lr2), 4 * repeats)
                matvec_time = best_seconds(lambda game=game: game.D12.matvec(game.g2), 2 * repeats)
                step = cgd_step(game, lr1, lr2)
                cgd_time = best_seconds(lambda game=game: cgd_step(game, lr1, lr2), repeats)
                rows.append({
                    "operator": kind if kind == "dense" else f"low-rank r={rank}",
                    "p": p, "game": "zero-sum" if zero_sum else "general-sum", "solver": step.info["solver"],
                    "iterations": step.iterations, "matvecs": step.matvecs, "residual": step.residual,
                    "simga_s": simga_time, "cgd_s": cgd_time, "ratio": cgd_time / simga_time,
                    "in_matvecs": cgd_time / matvec_time,
                })
    return rows


def markdown_table(rows: list[dict]) -> str:
    header = ("| operator | p = p1 + p2 | game | solver | iterations | matvecs (SimGA: 0) | residual "
              "| SimGA step | CGD step | time ratio CGD / SimGA | CGD time / one D12 matvec |")
    lines = [header, "|" + "---|" * 11]
    for row in rows:
        lines.append(
            f"| {row['operator']} | {row['p']:.0e} | {row['game']} | {row['solver']} | {row['iterations']} "
            f"| {row['matvecs']} | {row['residual']:.1e} | {format_time(row['simga_s'])} "
            f"| {format_time(row['cgd_s'])} | {row['ratio']:.0f}x | {row['in_matvecs']:.1f} |")
    return "\n".join(lines)


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e2, 1e3, 1e4, 1e5, 1e6],
                        help="total parameter counts p = p1 + p2")
    parser.add_argument("--quick", action="store_true", help="only p <= 1e4")
    parser.add_argument("--dense-max", type=float, default=1e4, help="largest p with dense operators")
    parser.add_argument("--rank", type=int, default=10, help="rank of the low-rank operators")
    parser.add_argument("--lr", type=float, nargs=2, default=[1.0, 0.5], metavar=("LR1", "LR2"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes if not args.quick or s <= 1e4]
    start = time.perf_counter()
    rows = benchmark(sizes, int(args.dense_max), args.rank, args.lr[0], args.lr[1], args.seed)
    print(markdown_table(rows))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, float64, lr1={args.lr[0]}, "
          f"lr2={args.lr[1]}, rtol=1e-10; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
