"""The strength axis (issue 16): round robin counts, win rate against random, Bradley-Terry per optimizer."""

import numpy as np
import pytest
import torch

from ipo_robust.evals.attacks import Victim
from ipo_robust.evals.strength import round_robin, strength_tables, versus_random
from ipo_robust.policies import TabularCategoricalPolicy

ROCK, PAPER, SCISSORS = 0, 1, 2


def pure(action: int) -> Victim:
    """A pair that always plays ``action`` in rock-paper-scissors (both agents)."""
    logits = torch.full((3,), -30.0)
    logits[action] = 30.0
    return Victim((TabularCategoricalPolicy(3, logits=logits.clone()), TabularCategoricalPolicy(3, logits=logits)),
                  "rock-paper-scissors", {})


def test_round_robin_counts_every_game_of_both_seat_orders():
    table = round_robin({"rock": pure(ROCK), "paper": pure(PAPER), "rock2": pure(ROCK)}, games=10, seed=0, num_envs=4)
    rows = {(r.a, r.b): (r.wins_a, r.wins_b, r.ties) for r in table.itertuples()}
    assert rows == {("rock", "paper"): (0, 20, 0), ("rock", "rock2"): (0, 0, 20), ("paper", "rock2"): (20, 0, 0)}


def test_win_rate_against_random_is_the_share_of_beaten_draws():
    """Always rock against a uniformly random opponent wins when it draws scissors: about a third."""
    result = versus_random(pure(ROCK), games=300, seed=1)
    assert 0.25 < result["win_vs_random"] < 0.42
    assert result["win_vs_random_low"] < result["win_vs_random"] < result["win_vs_random_high"]


def test_strength_ranks_the_optimizer_whose_agents_win_the_round_robin():
    players = {"paper-s0": ("paper", pure(PAPER)), "paper-s1": ("paper", pure(PAPER)),
               "rock-s0": ("rock", pure(ROCK)), "rock-s1": ("rock", pure(ROCK))}
    games, ratings, per_optimizer = strength_tables(players, games=8, seed=0, num_envs=4)
    assert len(games) == 6 and int(games[["wins_a", "wins_b", "ties"]].to_numpy().sum()) == 6 * 16
    board = per_optimizer.set_index("optimizer")
    assert board.loc["paper", "strength"] > 0 > board.loc["rock", "strength"]
    assert board.loc["paper", "strength"] == pytest.approx(-board.loc["rock", "strength"])  # centred strengths
    assert set(ratings["name"]) == set(players)
    # paper beats rock every game, so each paper player's strength is above each rock player's
    top = ratings.sort_values("strength", ascending=False)["optimizer"].tolist()
    assert top[:2] == ["paper", "paper"]
    np.testing.assert_allclose(board.loc["rock", "win_vs_random"],
                               ratings[ratings["optimizer"] == "rock"]["win_vs_random"].mean())
