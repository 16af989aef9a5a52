"""Markov soccer head-to-head: agents trained by IPO-VPG against agents trained by SimGA.

Protocol (issue 4, item 8; compare Prajapat et al. 2021, "Competitive Policy Optimization", whose
CoPG-trained agent beats a GDA-trained one about 0.82 vs 0.18 on this game):

1. Train a pair of policies against each other (self-play of two learners) with ``ipo-vpg`` (the CGD
   update on the sample local game; Markov soccer is zero-sum, so it solves with conjugate gradient),
   and, separately, a pair with ``simga`` (independent policy gradient). Both runs share everything
   but the update rule: the same env seed, initial weights, action-sampling generator, number of
   iterations, environment copies and steps per batch (hence the same number of samples), and the
   same ``lr`` and ``gamma``.
2. Play the IPO-trained policy against the SimGA-trained one on both sides of the field. Agent 1 is
   OpenSpiel player 0 ("A"), agent 2 is player 1 ("B"); the two seats start on different sides and
   attack different goals, so each policy only plays the seat it was trained for:
   - "IPO as A": IPO's agent 1 in seat 1 against SimGA's agent 2 in seat 2;
   - "IPO as B": SimGA's agent 1 in seat 1 against IPO's agent 2 in seat 2.
   ``--games`` games in total, half per configuration, one game per environment copy, actions sampled
   from the (stochastic) policies. A game ends with a goal (+1 for the scorer) or at the time limit
   (``--horizon``, a draw). Rates come with Wilson 95% score intervals.
3. As a reference, each trained pair also plays a uniformly random opponent on both sides (did
   training learn anything at all?).

Environment: OpenSpiel ``markov_soccer`` (Littman 1994; 4 x 5 grid), observation = the full grid as
6 planes of 4 x 5 (both seats see the same tensor), 5 actions (up, down, left, right, stand), all
always legal. ``horizon`` is OpenSpiel's own limit: at most ``horizon - 1`` moves per game. Each
training batch runs ``horizon - 1`` steps per copy, so every copy contributes at least one complete
episode (only complete episodes enter the estimators).

Run:  python benchmarks/bench_soccer.py [--iterations 100] [--num-envs 128] [--lr 0.5] [--games 1000] [--out soccer.csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import asdict, dataclass

import torch
from torch.distributions import Categorical
from torch.nn.utils import parameters_to_vector

import ipo_robust


@dataclass
class Args:
    iterations: int = 100
    """training iterations (one batch and one update each), the same for both optimizers"""
    num_envs: int = 128
    """environment copies per training batch; samples per iteration = num_envs * (horizon - 1)"""
    horizon: int = 50
    """OpenSpiel markov_soccer time limit: a game has at most horizon - 1 moves, then it is a draw"""
    lr: float = 0.5
    """learning rate of both players, the same for ipo-vpg and simga"""
    gamma: float = 0.99
    """discount of J_i = E[sum_t gamma^t r_i,t]"""
    games: int = 1000
    """head-to-head games in total, split evenly over the two seat assignments"""
    seed: int = 0
    """seed of the env, initial weights and action sampling in training; seed + 1 ... seed + 6 in evaluation"""
    hidden: tuple[int, ...] = (64,)
    """hidden layer sizes of both categorical MLP policies"""
    threads: int = 1
    """torch.set_num_threads"""
    log_every: int = 25
    """print training progress every this many iterations (0: never)"""
    out: str | None = None
    """optional CSV path for the result rows"""


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
def train(optimizer_name: str, args: Args) -> dict:
    """Train a pair of policies against each other with ``optimizer_name``; returns agents and metrics."""
    env = ipo_robust.make_env("markov-soccer", num_envs=args.num_envs, seed=args.seed, horizon=args.horizon)
    agents = ipo_robust.make_agents(env, seed=args.seed, hidden=tuple(args.hidden))
    initial = [parameters_to_vector(a.parameters()).detach().clone() for a in agents]
    optimizer = ipo_robust.make_optimizer(optimizer_name, agents, lr=args.lr, gamma=args.gamma)
    generator = torch.Generator().manual_seed(args.seed)
    steps = args.horizon - 1  # the longest possible game: every copy completes its first episode
    begin = time.perf_counter()
    krylov_iterations, samples, episodes = [], 0, 0
    for iteration in range(1, args.iterations + 1):
        batch = ipo_robust.collect(env, agents, steps=steps, generator=generator)
        info = optimizer.step(batch)
        krylov_iterations.append(info["optim/iterations"])
        samples += batch.num_steps * batch.num_envs
        episodes += info["train/episodes"]
        if args.log_every and (iteration % args.log_every == 0 or iteration == args.iterations):
            lengths = (batch.t[batch.done] + 1).double()
            goals = int((batch.rew1[batch.done] != 0).sum())
            print(f"  {optimizer_name:8s} iter {iteration:4d}  J1 {info['train/J1']:+.3f}  "
                  f"episode length {float(lengths.mean()):5.1f}  goals {goals:3d}/{batch.num_episodes:3d}  "
                  f"kl1 {info['optim/kl1']:.4f} kl2 {info['optim/kl2']:.4f}  "
                  f"CG iterations {info['optim/iterations']}  {time.perf_counter() - begin:6.1f} s", flush=True)
    return {
        "name": optimizer_name,
        "agents": agents,
        "initial": initial,
        "seconds": time.perf_counter() - begin,
        "samples": samples,
        "episodes": episodes,
        "mean_krylov_iterations": sum(krylov_iterations) / len(krylov_iterations),
    }


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
def play(policy1: torch.nn.Module, policy2: torch.nn.Module, games: int, horizon: int, seed: int) -> dict:
    """``games`` games of policy1 (seat 1, player A) against policy2 (seat 2, player B), one per copy.

    Returns counts from seat 1's side: ``win``, ``loss``, ``draw`` (time limit reached without a goal).
    """
    env = ipo_robust.make_env("markov-soccer", num_envs=games, seed=seed, horizon=horizon)
    batch = ipo_robust.collect(env, (policy1, policy2), steps=horizon - 1,
                               generator=torch.Generator().manual_seed(seed))
    done = batch.done.to(torch.int64)
    in_first_game = (torch.cumsum(done, 0) - done) == 0  # steps up to and including the first done
    if not bool(batch.done.any(0).all()):
        raise RuntimeError(f"a game outlasted {horizon - 1} moves; the horizon semantics changed")
    score1 = (batch.rew1.double() * in_first_game).sum(0)  # +1 seat 1 scored, -1 seat 2 scored, 0 draw
    return {"win": int((score1 > 0).sum()), "loss": int((score1 < 0).sum()), "draw": int((score1 == 0).sum())}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (95% for z = 1.96)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class UniformPolicy(torch.nn.Module):
    """The uniformly random player (a reference opponent): every action with probability 1/5."""

    def __init__(self, n_actions: int = 5):
        super().__init__()
        self.n_actions = n_actions

    def distribution(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=torch.zeros(*obs.shape[:-1], self.n_actions, dtype=obs.dtype))


def both_seats(pair, opponents, games: int, horizon: int, seed: int) -> tuple[dict, dict]:
    """``pair``'s agent 1 vs ``opponents``' agent 2, then ``opponents``' agent 1 vs ``pair``'s agent 2.

    Each policy plays only the seat it was trained for. Counts from ``pair``'s side, one dict per seat.
    """
    half = games // 2
    as_a = play(pair[0], opponents[1], half, horizon, seed)
    as_b_seat1 = play(opponents[0], pair[1], games - half, horizon, seed + 1)
    as_b = {"win": as_b_seat1["loss"], "loss": as_b_seat1["win"], "draw": as_b_seat1["draw"]}
    return as_a, as_b


def head_to_head(ipo: dict, simga: dict, args: Args) -> list[dict]:
    """IPO-trained vs SimGA-trained policies on both sides, then each pair against uniform random play
    (a reference: did training learn anything?). Rows of win / loss / draw counts from the first side."""
    as_a, as_b = both_seats(ipo["agents"], simga["agents"], args.games, args.horizon, args.seed + 1)
    overall = {key: as_a[key] + as_b[key] for key in ("win", "loss", "draw")}
    matchups = [("ipo-vpg vs simga", "IPO as A (seat 1)", as_a), ("ipo-vpg vs simga", "IPO as B (seat 2)", as_b),
                ("ipo-vpg vs simga", "overall", overall)]
    uniform = (UniformPolicy(), UniformPolicy())
    for offset, trained in ((3, ipo), (5, simga)):
        a, b = both_seats(trained["agents"], uniform, args.games, args.horizon, args.seed + offset)
        matchups.append((f"{trained['name']} vs uniform random", "both seats",
                         {key: a[key] + b[key] for key in ("win", "loss", "draw")}))
    rows = []
    for matchup, label, counts in matchups:
        games = sum(counts.values())
        row = {"matchup": matchup, "configuration": label, "games": games, **counts}
        for key in ("win", "loss", "draw"):
            row[f"{key}_rate"] = counts[key] / games
            row[f"{key}_low"], row[f"{key}_high"] = wilson(counts[key], games)
        decisive = counts["win"] + counts["loss"]
        row["win_share_decisive"] = counts["win"] / decisive if decisive else float("nan")
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| matchup (first side's rates) | configuration | games | win | loss | draw | wins / decisive games |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[f'{k}_rate']:.3f} [{r[f'{k}_low']:.3f}, {r[f'{k}_high']:.3f}]" for k in ("win", "loss", "draw")]
        lines.append(f"| {r['matchup']} | {r['configuration']} | {r['games']} | " + " | ".join(cells)
                     + f" | {r['win_share_decisive']:.3f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Args()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--num-envs", type=int, default=defaults.num_envs)
    parser.add_argument("--horizon", type=int, default=defaults.horizon)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--gamma", type=float, default=defaults.gamma)
    parser.add_argument("--games", type=int, default=defaults.games)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--hidden", type=lambda s: tuple(int(h) for h in s.split(",") if h), default=defaults.hidden,
                        help="comma-separated hidden sizes, e.g. 64 or 64,64 ('' for a linear policy)")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--out", default=None, help="write the result rows to this CSV file")
    args = Args(**vars(parser.parse_args(argv)))
    for name in ("iterations", "num_envs", "games", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.games < 2:
        parser.error(f"--games must be >= 2 (one per seat assignment), got {args.games}")
    if args.horizon < 2:
        parser.error(f"--horizon must be >= 2 (markov_soccer needs one move), got {args.horizon}")
    return args


def run(args: Args) -> dict:
    """Train both pairs, play them against each other; returns the rows and the timings."""
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    ipo = train("ipo-vpg", args)
    simga = train("simga", args)
    evaluation_begin = time.perf_counter()
    rows = head_to_head(ipo, simga, args)
    return {"rows": rows, "ipo": ipo, "simga": simga,
            "evaluation_seconds": time.perf_counter() - evaluation_begin,
            "seconds": time.perf_counter() - begin}


def main(argv=None) -> dict:
    args = parse_args(argv)
    print(f"markov_soccer head-to-head: {asdict(args)}", flush=True)
    result = run(args)
    ipo, simga = result["ipo"], result["simga"]
    print(f"\nsamples per optimizer: {ipo['samples']} steps ({ipo['episodes']} complete episodes ipo-vpg, "
          f"{simga['episodes']} simga); mean CG iterations per ipo-vpg step {ipo['mean_krylov_iterations']:.1f}")
    print(f"training: ipo-vpg {ipo['seconds']:.1f} s, simga {simga['seconds']:.1f} s; "
          f"evaluation {result['evaluation_seconds']:.1f} s; wall time {result['seconds']:.1f} s\n")
    print(markdown_table(result["rows"]))
    if args.out:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(result["rows"][0]))
            writer.writeheader()
            writer.writerows(result["rows"])
    return result


if __name__ == "__main__":
    main()
