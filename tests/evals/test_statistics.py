"""ipo_robust.evals.statistics against independent references: numpy means, scipy's trimmed mean, a
brute-force count of pairs, a scipy.optimize fit of the Bradley-Terry posterior, and known strengths."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_softmax
from scipy.stats import norm, trim_mean

from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.evals.statistics import (
    aggregate,
    bradley_terry,
    conclusion,
    pairwise_improvement,
    probability_of_improvement,
    separated,
)

# ------------------------------------------------------------------------------------------- aggregate


def test_aggregate_mean_and_iqm_match_numpy_and_trim_mean():
    rng = np.random.default_rng(1)
    flat = rng.uniform(0.0, 2.0, size=12)
    grid = rng.uniform(0.0, 2.0, size=(6, 3))  # runs x tasks, equal runs per task
    table = aggregate({"flat": flat, "grid": grid}, low=0.0, high=2.0, reps=300).set_index("name")
    assert list(table.reset_index().columns) == ["name", "n", "mean", "mean_low", "mean_high", "iqm", "iqm_low",
                                                 "iqm_high"]
    assert table.loc["flat", "n"] == 12 and table.loc["grid", "n"] == 6
    assert table.loc["flat", "mean"] == pytest.approx(np.mean(flat), rel=1e-12)
    assert table.loc["grid", "mean"] == pytest.approx(np.mean(grid), rel=1e-12)
    # rliable's IQM over runs x tasks is the 25 % trimmed mean of all the scores
    assert table.loc["flat", "iqm"] == pytest.approx(trim_mean(flat, 0.25), rel=1e-12)
    assert table.loc["grid", "iqm"] == pytest.approx(trim_mean(grid.ravel(), 0.25), rel=1e-12)
    # and that is the mean of the middle half of the sorted sample (12 scores: drop 3 each side)
    assert table.loc["flat", "iqm"] == pytest.approx(np.sort(flat)[3:9].mean(), rel=1e-12)


def test_aggregate_intervals_contain_the_estimate_and_stay_in_range():
    rng = np.random.default_rng(2)
    scores = {"near-zero": np.concatenate([np.zeros(6), rng.uniform(0, 0.05, 4)]),
              "spread": rng.uniform(0, 1, 10),
              "at-top": np.full(3, 0.1)}  # mean(0.1, 0.1, 0.1) rounds above 0.1 in floating point
    table = aggregate(scores, low=0.0, high=1.0, reps=500)
    top = aggregate({"at-top": np.full(3, 0.1)}, low=0.0, high=0.1, reps=200)
    for t, high in ((table, 1.0), (top, 0.1)):
        for key in ("mean", "iqm"):
            assert (t[f"{key}_low"] >= 0.0).all() and (t[f"{key}_high"] <= high).all()
            assert (t[f"{key}_low"] <= t[key]).all() and (t[key] <= t[f"{key}_high"]).all()
    assert top.loc[0, "mean"] == 0.1 and top.loc[0, "mean_low"] == top.loc[0, "mean_high"] == 0.1


def test_aggregate_wider_spread_gives_a_wider_interval():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(10)
    table = aggregate({"narrow": 1.0 + 0.05 * noise, "wide": 1.0 + 0.25 * noise}, low=-1.0, high=3.0,
                      reps=500).set_index("name")
    width = table["mean_high"] - table["mean_low"]
    iqm_width = table["iqm_high"] - table["iqm_low"]
    assert width["wide"] > width["narrow"] > 0 and iqm_width["wide"] > iqm_width["narrow"] > 0


def test_aggregate_mean_interval_is_close_to_the_normal_interval():
    # percentile bootstrap of a mean of n = 60 normal scores ~ mean +- z s / sqrt(n), s with ddof = 0
    x = np.random.default_rng(4).normal(5.0, 1.0, 60)
    row = aggregate({"x": x}, low=0.0, high=10.0, reps=4000).iloc[0]
    half = norm.ppf(0.975) * x.std() / math.sqrt(x.size)
    assert row["mean_low"] == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert row["mean_high"] == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_aggregate_one_seed_gives_a_degenerate_interval_and_says_n():
    table = aggregate({"ppo": [0.4], "grid": [[0.2, 0.6]]}, low=0.0, high=1.0)
    assert table["n"].tolist() == [1, 1]
    for key in ("mean", "iqm"):
        assert (table[f"{key}_low"] == table[key]).all() and (table[f"{key}_high"] == table[key]).all()
    assert table.loc[0, "mean"] == 0.4 and table.loc[1, "mean"] == pytest.approx(0.4)


def test_aggregate_is_seeded():
    x = {"a": np.random.default_rng(5).uniform(size=8)}
    pd.testing.assert_frame_equal(aggregate(x, 0, 1, reps=200, seed=7), aggregate(x, 0, 1, reps=200, seed=7))
    assert not aggregate(x, 0, 1, reps=200, seed=7).equals(aggregate(x, 0, 1, reps=200, seed=8))


@pytest.mark.parametrize("scores, low, high", [({"a": [0.5, 1.5]}, 0.0, 1.0), ({"a": [0.5, math.nan]}, 0.0, 1.0),
                                               ({"a": []}, 0.0, 1.0), ({"a": [0.5]}, 1.0, 0.0)])
def test_aggregate_rejects_bad_input(scores, low, high):
    with pytest.raises(ConfigError):
        aggregate(scores, low, high)


# ---------------------------------------------------------------------------- probability of improvement


def brute_force(x, y):
    """(1 / (n m)) sum_i sum_j [x_i > y_j] + 1/2 [x_i == y_j]."""
    return sum((xi > yj) + 0.5 * (xi == yj) for xi in x for yj in y) / (len(x) * len(y))


def test_probability_of_improvement_equals_the_count_over_all_pairs():
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 5, 7).astype(float), rng.integers(0, 5, 9).astype(float)  # small integers: ties
    p, low, high = probability_of_improvement(x, y, reps=300, higher_is_better=True)
    assert p == pytest.approx(brute_force(x, y), abs=1e-12)
    assert 0.0 <= low <= p <= high <= 1.0
    # lower is better (exploitability): X better when it scores lower
    q, _, _ = probability_of_improvement(x, y, reps=300, higher_is_better=False)
    assert q == pytest.approx(brute_force(-x, -y), abs=1e-12)
    assert q == pytest.approx(sum((a < b) + 0.5 * (a == b) for a in x for b in y) / (x.size * y.size), abs=1e-12)


def test_probability_of_improvement_is_complementary():
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 4, 6).astype(float), rng.integers(0, 4, 5).astype(float)
    p_xy = probability_of_improvement(x, y, reps=300, higher_is_better=True)[0]
    p_yx = probability_of_improvement(y, x, reps=300, higher_is_better=True)[0]
    assert p_xy + p_yx == pytest.approx(1.0, abs=1e-12)
    assert probability_of_improvement(x, x, reps=50, higher_is_better=True)[0] == 0.5


def test_probability_of_improvement_over_tasks_averages_the_tasks():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    p, _, _ = probability_of_improvement(x, y, reps=200, higher_is_better=True)
    assert p == pytest.approx(np.mean([brute_force(x[:, t], y[:, t]) for t in range(3)]), abs=1e-12)
    with pytest.raises(ConfigError):
        probability_of_improvement(x, y[:, :2], higher_is_better=True)


def test_probability_of_improvement_needs_a_direction():
    with pytest.raises(TypeError):
        probability_of_improvement([1.0, 2.0], [0.0, 1.0])  # the direction is required
    with pytest.raises(ConfigError):
        probability_of_improvement([1.0, 2.0], [0.0, 1.0], higher_is_better="lower")


def test_pairwise_improvement_covers_ordered_pairs_and_mirrors():
    rng = np.random.default_rng(9)
    scores = {"ipo-vpg": rng.uniform(0.0, 0.3, 5), "ppo": rng.uniform(0.2, 0.6, 5), "lola": rng.uniform(0, 1, 4)}
    table = pairwise_improvement(scores, reps=200, higher_is_better=False)
    assert list(table.columns) == ["x", "y", "p", "low", "high"] and len(table) == 6
    rows = {(r.x, r.y): r for r in table.itertuples()}
    for (x, y), r in rows.items():
        assert r.p == pytest.approx(brute_force(-scores[x], -scores[y]), abs=1e-12)
        assert r.p + rows[y, x].p == pytest.approx(1.0, abs=1e-12)
        assert r.low == pytest.approx(1.0 - rows[y, x].high) and r.high == pytest.approx(1.0 - rows[y, x].low)
        assert 0.0 <= r.low <= r.high <= 1.0
    direct = probability_of_improvement(scores["ppo"], scores["lola"], reps=200, higher_is_better=False)
    assert (rows["ppo", "lola"].p, rows["ppo", "lola"].low, rows["ppo", "lola"].high) == pytest.approx(direct)


# ----------------------------------------------------------------------------------------- Bradley-Terry


def reference_strengths(games: pd.DataFrame, alpha: float) -> pd.Series:
    """Maximise sum c_ij log sigma(t_i - t_j) + alpha n sum_i log softmax(t)_i with scipy; ties half each way."""
    players = list(pd.unique(pd.concat([games["a"], games["b"]])))
    n, index = len(players), {p: i for i, p in enumerate(players)}
    c = np.zeros((n, n))
    for r in games.itertuples():
        c[index[r.a], index[r.b]] += r.wins_a + r.ties / 2
        c[index[r.b], index[r.a]] += r.wins_b + r.ties / 2

    def negative(theta):
        return -(np.sum(c * np.log(expit(theta[:, None] - theta[None, :]))) + alpha * n * np.sum(log_softmax(theta)))

    theta = minimize(negative, np.zeros(n), method="BFGS", options={"gtol": 1e-10}).x
    return pd.Series(theta - theta.mean(), index=players)


GAMES = pd.DataFrame({"a": ["ipo-vpg", "ipo-vpg", "ipo-vpg", "ppo", "ppo", "lola"],
                      "b": ["ppo", "lola", "simga", "lola", "simga", "simga"],
                      "wins_a": [12, 15, 20, 9, 14, 11], "wins_b": [6, 3, 0, 8, 4, 7], "ties": [2, 2, 0, 3, 2, 2]})


@pytest.mark.parametrize("alpha", [0.01, 0.5])
def test_bradley_terry_matches_a_scipy_fit_of_the_same_posterior(alpha):
    table = bradley_terry(GAMES, reps=100, alpha=alpha).set_index("name")
    reference = reference_strengths(GAMES, alpha)
    np.testing.assert_allclose(table.loc[reference.index, "strength"], reference, atol=1e-6)
    assert table["strength"].sum() == pytest.approx(0.0, abs=1e-9)
    # ipo-vpg won all 20 games against simga: finite only thanks to alpha
    assert np.isfinite(table["strength"]).all()


def test_bradley_terry_counts_a_tie_as_half_a_win_each_way():
    with_ties = pd.DataFrame({"a": ["x", "x"], "b": ["y", "z"], "wins_a": [3, 5], "wins_b": [1, 5], "ties": [2, 4]})
    halves = pd.DataFrame({"a": ["x", "x"], "b": ["y", "z"], "wins_a": [4, 7], "wins_b": [2, 7], "ties": [0, 0]})
    a, b = bradley_terry(with_ties, reps=20), bradley_terry(halves, reps=20)
    np.testing.assert_allclose(a.set_index("name")["strength"], b.set_index("name")["strength"], atol=1e-9)
    only_ties = pd.DataFrame({"a": ["x"], "b": ["y"], "wins_a": [0], "wins_b": [0], "ties": [10]})
    np.testing.assert_allclose(bradley_terry(only_ties, reps=20)["strength"], 0.0, atol=1e-9)


TRUE_STRENGTHS = pd.Series([1.2, 0.4, -0.3, -1.3], index=["a", "b", "c", "d"])  # mean 0


def round_robin(rng, games_per_pairing: int) -> pd.DataFrame:
    """Games drawn from the Bradley-Terry model with TRUE_STRENGTHS (no ties)."""
    rows = []
    for i, p in enumerate(TRUE_STRENGTHS.index):
        for q in TRUE_STRENGTHS.index[i + 1:]:
            wins = int(rng.binomial(games_per_pairing, expit(TRUE_STRENGTHS[p] - TRUE_STRENGTHS[q])))
            rows.append({"a": p, "b": q, "wins_a": wins, "wins_b": games_per_pairing - wins, "ties": 0})
    return pd.DataFrame(rows)


def test_bradley_terry_recovers_known_strengths():
    table = bradley_terry(round_robin(np.random.default_rng(10), 400), reps=300, seed=1)
    assert table["name"].tolist() == ["a", "b", "c", "d"]  # strongest first, the true order
    fitted = table.set_index("name")
    np.testing.assert_allclose(fitted.loc[TRUE_STRENGTHS.index, "strength"], TRUE_STRENGTHS, atol=0.15)
    assert (fitted["strength_low"] <= fitted["strength"]).all()
    assert (fitted["strength"] <= fitted["strength_high"]).all()
    assert (fitted["games"] == 1200).all()
    # Elo: 1500 on average, and the Elo difference predicts the same win probability as the strengths
    assert fitted["elo"].mean() == pytest.approx(1500.0)
    d_elo = fitted.loc["a", "elo"] - fitted.loc["d", "elo"]
    d_strength = fitted.loc["a", "strength"] - fitted.loc["d", "strength"]
    assert 1 / (1 + 10 ** (-d_elo / 400)) == pytest.approx(expit(d_strength), abs=1e-12)


def test_bradley_terry_intervals_cover_the_true_strengths():
    # 16 round robins x 4 players: 95 % intervals should hold the true strength about 95 % of the time
    # (a percentile bootstrap undercovers a little: ~92 % in a 160-interval run); an interval half as
    # wide as it should be would cover ~66 %
    inside = []
    for k in range(16):
        fitted = bradley_terry(round_robin(np.random.default_rng(100 + k), 100), reps=200, seed=k).set_index("name")
        inside += list((fitted["strength_low"] <= TRUE_STRENGTHS) & (TRUE_STRENGTHS <= fitted["strength_high"]))
    assert np.mean(inside) >= 0.8


@pytest.mark.parametrize("change", [{"wins_a": [-1, 15, 20, 9, 14, 11]}, {"ties": [2.5, 2, 0, 3, 2, 2]},
                                    {"b": ["ipo-vpg", "lola", "simga", "lola", "simga", "simga"]}])
def test_bradley_terry_rejects_bad_games(change):
    with pytest.raises(ConfigError):
        bradley_terry(GAMES.assign(**change), reps=5)
    with pytest.raises(ConfigError):
        bradley_terry(GAMES.drop(columns="ties"), reps=5)
    with pytest.raises(ConfigError):
        bradley_terry(GAMES, reps=5, alpha=0.0)


# ----------------------------------------------------------------------------------- separated / conclusion


def test_separated():
    assert separated(0.0, 1.0, 2.0, 3.0) and separated(2.0, 3.0, 0.0, 1.0)
    assert not separated(0.0, 2.0, 1.0, 3.0) and not separated(1.0, 3.0, 0.0, 2.0)
    assert not separated(0.0, 1.0, 1.0, 2.0)  # touching intervals overlap
    assert not separated(0.0, 1.0, math.nan, math.nan)


def test_conclusion_speaks_only_where_intervals_separate():
    table = pd.DataFrame({"name": ["ipo-vpg", "ppo", "lola", "simga"], "n": [5, 5, 5, 1],
                          "mean": [0.15, 0.55, 0.3, 0.9], "mean_low": [0.1, 0.5, 0.15, 0.9],
                          "mean_high": [0.2, 0.6, 0.55, 0.9]})
    sentences = conclusion(table, "mean", lower_is_better=True, comparative="less exploitable")
    assert sentences[:3] == [
        "ipo-vpg is less exploitable than ppo (95% intervals do not overlap)",
        "ipo-vpg vs lola: no difference detected at this budget (95% intervals overlap)",
        "ipo-vpg vs simga: no difference detected at this budget (simga has 1 seed: no interval)",
    ]
    assert conclusion(table, "mean", lower_is_better=True, names=["ppo", "ipo-vpg"]) == [
        "ipo-vpg has lower mean than ppo (95% intervals do not overlap)"]
    assert conclusion(table, "mean", lower_is_better=False, names=["ipo-vpg", "ppo"], confidence=0.9) == [
        "ppo has higher mean than ipo-vpg (90% intervals do not overlap)"]
    with pytest.raises(UnknownNameError):
        conclusion(table, "mean", lower_is_better=True, names=["ipo-vpg", "trpo"])
    with pytest.raises(ConfigError):
        conclusion(table, "iqm", lower_is_better=True)


def test_conclusion_says_when_a_separation_rests_on_seeds_that_were_all_equal():
    """Three seeds all at 1 give the bootstrap interval [1, 1]; the sentence says so rather than let the point
    pass for a narrow interval (benchmarks/RESULTS.md, ipo-ppo against ppo)."""
    table = pd.DataFrame({"name": ["ppo", "ipo-ppo"], "n": [3, 3], "mean": [0.667, 1.0],
                          "mean_low": [0.5, 1.0], "mean_high": [0.992, 1.0]})
    assert conclusion(table, "mean", lower_is_better=True, comparative="less exploitable") == [
        "ppo is less exploitable than ipo-ppo (95% intervals do not overlap, but ipo-ppo's interval is a point: "
        "its 3 seeds all gave 1)"]


def test_conclusion_on_computed_tables():
    rng = np.random.default_rng(11)
    scores = {"ipo-vpg": rng.uniform(0.0, 0.1, 6), "ppo": rng.uniform(0.8, 1.0, 6)}
    assert conclusion(aggregate(scores, 0.0, 2.0, reps=300), "iqm", lower_is_better=True,
                      comparative="less exploitable") == [
        "ipo-vpg is less exploitable than ppo (95% intervals do not overlap)"]
    strengths = bradley_terry(GAMES, reps=200)
    sentences = conclusion(strengths, "elo", lower_is_better=False, names=["ipo-vpg", "simga"], comparative="stronger")
    assert sentences == ["ipo-vpg is stronger than simga (95% intervals do not overlap)"]
