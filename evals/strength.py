"""A strength axis beside exploitability: a round robin among trained pairs, Bradley-Terry ratings, and
the win rate against a uniformly random opponent.

Exploitability alone rewards agents that never engage: an agent that stands still may be hard to beat
by a lot and still lose to anything that plays. So every comparison also measures how well its agents
play (:func:`strength_tables`):

- **Round robin.** The players are the trained pairs (entry x seed). For every two players A and B,
  A's agent 1 plays B's agent 2, and B's agent 1 plays A's agent 2, ``games`` games each, in the plain
  game (sparse win / loss: dense shaping off). A game is a win for the player whose agent's return is
  higher, a tie when equal.
- **The plain game.** Pairs trained by different methods may come from different training envs: an
  IPO-RARL or RARL run's superpower holder has perturbation entries appended to its actions and its env
  carries the perturbation and holder options. Every player is first projected onto the plain game
  (:func:`~ipo_robust.evals.plain_game.plain_victim`): the env without the superpower's options (nobody
  holds it in an evaluation game), each agent given only the action entries that game takes (its own
  actuators; with nobody holding the superpower the env ignores the rest anyway). Every pairing, and the
  games against random, are then played in that one game. Players whose plain games still differ (other
  env options than the training-only ones: shaping and the superpower's) are refused, not paired.
- **Bradley-Terry.** The games are fitted by :func:`ipo_robust.evals.statistics.bradley_terry` (ties count
  half a win each way), giving each player a log-strength with a bootstrap interval over the games.
- **Against random.** Each player's two agents play a uniformly random opponent, ``games`` games per seat;
  the win rate pools both seats.

Per optimizer the strength is the mean of its seeds' strengths, with the seed bootstrap of
:func:`ipo_robust.evals.statistics.aggregate` (as for exploitability).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import torch

from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import ATTACKS
from ipo_robust.evals.attacks.play import PolicyActor, play_games
from ipo_robust.evals.attacks.victim import Victim, game_env
from ipo_robust.evals.metrics import Outcomes, wilson_interval
from ipo_robust.evals.plain_game import game_options, plain_victim


def _play(env, agent_1, agent_2, games: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    actors = tuple(agent if not isinstance(agent, torch.nn.Module) else
                   PolicyActor(agent, env.action_spaces[i], generator) for i, agent in enumerate((agent_1, agent_2)))
    return play_games(env, actors, games, seed)


def plain_players(players: dict[str, Victim]) -> dict[str, Victim]:
    """Every player projected onto the plain game (module docstring); ConfigError naming two players whose
    plain games differ (env name, or env options beyond the training-only ones)."""
    players = {name: plain_victim(victim) for name, victim in players.items()}
    first = None
    for name, victim in players.items():
        game = (victim.env_name, game_options(victim.env_options))
        if first is None:
            first = (name, game)
        elif game != first[1]:
            raise ConfigError(f"strength: players {first[0]!r} and {name!r} play different games ({first[1][0]} "
                              f"{first[1][1]} and {game[0]} {game[1]}): a round robin needs one game")
    return players


def round_robin(players: dict[str, Victim], games: int, seed: int = 0, num_envs: int = 16) -> pd.DataFrame:
    """Every two players, both seat orders: columns ``a``, ``b``, ``wins_a``, ``wins_b``, ``ties`` (module
    docstring). Every player is projected onto the plain game first (:func:`plain_players`); they must share
    it (the first player's env is used)."""
    players = plain_players(players)
    names = list(players)
    if not names:
        return pd.DataFrame(columns=["a", "b", "wins_a", "wins_b", "ties"])
    env = game_env(players[names[0]], min(num_envs, games), seed)
    rows = []
    try:
        for a, b in itertools.combinations(names, 2):
            wins_a = wins_b = ties = 0
            for first, second in ((a, b), (b, a)):  # first's agent 1 against second's agent 2
                R1, R2 = _play(env, players[first].agents[0], players[second].agents[1], games, seed)
                outcome = Outcomes.from_returns(R1, R2)
                won, lost = (outcome.wins, outcome.losses) if first == a else (outcome.losses, outcome.wins)
                wins_a, wins_b, ties = wins_a + won, wins_b + lost, ties + outcome.ties
            rows.append({"a": a, "b": b, "wins_a": wins_a, "wins_b": wins_b, "ties": ties})
    finally:
        env.close()
    return pd.DataFrame(rows)


def versus_random(victim: Victim, games: int, seed: int = 0, num_envs: int = 16) -> dict:
    """The pair's win rate against a uniformly random opponent, both seats pooled, with its Wilson interval:
    the ``random`` control attack on each seat, read from the victim's side."""
    control = ATTACKS["random"](num_envs=min(num_envs, games))
    wins = sum(control.run(victim, seat, 0, games, seed).losses for seat in (0, 1))  # the attacker's losses
    low, high = wilson_interval(wins, 2 * games)
    return {"win_vs_random": wins / (2 * games), "win_vs_random_low": low, "win_vs_random_high": high}


def strength_tables(players: dict[str, tuple[str, Victim]], games: int, seed: int = 0,
                    num_envs: int = 16) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(games, per-player ratings, per-optimizer strength) of ``players``: id -> (optimizer, victim), every
    victim judged in the plain game (:func:`plain_players`).

    Per player: Bradley-Terry ``strength`` with its interval, ``elo``, and the win rate against random. Per
    optimizer: ``strength`` (mean over its seeds) with the seed bootstrap interval (none for one seed), and
    ``win_vs_random`` (mean over seeds)."""
    from ipo_robust.evals.statistics import bradley_terry, group_summary

    victims = plain_players({name: victim for name, (_, victim) in players.items()})
    table = round_robin(victims, games, seed, num_envs)
    if len(victims) > 1:
        ratings = bradley_terry(table, seed=seed)
    else:
        ratings = pd.DataFrame({"name": list(victims), "strength": [0.0], "strength_low": [math.nan],
                                "strength_high": [math.nan], "elo": [1500.0], "games": [0]})
    ratings["optimizer"] = [players[name][0] for name in ratings["name"]]
    random_rows = pd.DataFrame([{"name": name, **versus_random(victim, games, seed, num_envs)}
                                for name, victim in victims.items()])
    ratings = ratings.merge(random_rows, on="name")
    per_optimizer = group_summary(ratings, "optimizer", "strength")
    per_optimizer["win_vs_random"] = ratings.groupby("optimizer", sort=False)["win_vs_random"].mean().to_numpy()
    return table, ratings, per_optimizer
