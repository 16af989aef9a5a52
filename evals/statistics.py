"""Statistics users can trust: aggregate scores with bootstrap intervals, probability of improvement,
Bradley-Terry strengths of a round robin, and conclusions drawn only where intervals separate.

Plain numpy / pandas in and out. The definitions come from well-kept libraries:

- the aggregates and the probability of improvement are rliable's (Agarwal et al. 2021, "Deep
  reinforcement learning at the edge of the statistical precipice"): ``rliable.metrics.aggregate_mean``,
  ``aggregate_iqm`` and ``probability_of_improvement``;
- their intervals are rliable's stratified percentile bootstrap (the runs of each task resampled with
  replacement, independently per task and per compared method; ``task_bootstrap=False``), run by
  ``scipy.stats.bootstrap(method="percentile")``. rliable's own driver,
  ``rliable.library.get_interval_estimates``, needs ``arch`` < 8, and arch 7 does not import under
  pandas 3 (``arch.univariate`` calls pandas' changed ``deprecate_kwarg``), so the resampling runs through
  scipy; the scheme and the statistic are rliable's;
- Bradley-Terry strengths are fitted by choix (``choix.ilsr_pairwise_dense``, iterative Luce spectral
  ranking; Maystre & Grossglauser 2015).

A *score* is one number per run (seed) and task, in the metric's own units (exploitability in game
units, a win rate in [0, 1]). Scores are 1-d (runs) or 2-d (runs x tasks). With a single run there is
nothing to resample: the interval is degenerate (low = high = the value) and the tables carry ``n`` so
that a caller can say "1 seed" instead of showing it.

rliable, choix and scipy are imported inside the functions: importing them costs about a second, and
``ipo-robust --help`` must not pay it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ipo_robust.errors import ConfigError, UnknownNameError

ELO_SCALE = 400.0 / math.log(10.0)
"""Elo points per unit of Bradley-Terry log-strength: P(i beats j) = 1 / (1 + 10^(-(R_i - R_j) / 400))."""
ELO_MEAN = 1500.0
"""The Elo of the average player (strengths are centred to mean 0)."""

AGGREGATE_COLUMNS = ["name", "n", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high"]
IMPROVEMENT_COLUMNS = ["x", "y", "p", "low", "high"]
STRENGTH_COLUMNS = ["name", "strength", "strength_low", "strength_high", "elo", "elo_low", "elo_high", "games"]


# ----------------------------------------------------------------------------------------------- checks


def _check_confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must be a number in (0, 1), e.g. 0.95 for 95 % intervals; got {confidence!r}")
    return float(confidence)


def _check_reps(reps) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ConfigError(f"reps must be an integer >= 1 (bootstrap resamples, e.g. 2000); got {reps!r}")
    return int(reps)


def _check_direction(value, name: str = "higher_is_better") -> bool:
    if not isinstance(value, (bool, np.bool_)):
        example = "False" if name == "higher_is_better" else "True"
        raise ConfigError(f"{name} must be True or False (for exploitability: {example}); got {value!r}")
    return bool(value)


def _scores(name: str, values) -> np.ndarray:
    """The scores of ``name`` as a float 2-d array (runs x tasks); 1-d input is one task."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"scores of {name!r} must be numbers (runs, or runs x tasks); got {values!r}") from error
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ConfigError(f"scores of {name!r} must be 1-d (runs) or 2-d (runs x tasks) and non-empty; "
                          f"got shape {np.shape(values)}")
    if not np.isfinite(x).all():
        raise ConfigError(f"scores of {name!r} must be finite; got {x[~np.isfinite(x)][0]!r} among them")
    return x


def _inside(value: float, low: float, high: float, what: str) -> float:
    """``value`` clipped to [low, high] after checking that it is outside by floating-point rounding at most.

    A mean (or trimmed mean) of numbers in [low, high] lies in [low, high]; summing in floating point can
    leave it a few ulps outside (mean(0.1, 0.1, 0.1) = 0.10000000000000002). More than that is a bug.
    """
    rounding = 1e-12 * max(1.0, abs(low), abs(high))
    if not low - rounding <= value <= high + rounding:
        raise RuntimeError(f"{what} = {value!r} left the metric's range [{low!r}, {high!r}]: a bug in "
                           "ipo_robust.evals.statistics, please report it")
    return min(max(value, low), high)


# -------------------------------------------------------------------------------------------- bootstrap


def _stratified_bootstrap(arrays: Sequence[np.ndarray], statistic: Callable[..., float], reps: int, seed: int,
                          confidence: float) -> tuple[float, float, float]:
    """(point, low, high): ``statistic(*arrays)`` and its stratified percentile bootstrap interval.

    Each array is runs x tasks. A resample draws, for every task column of every array independently,
    that column's runs with replacement (rliable's ``StratifiedBootstrap`` and
    ``StratifiedIndependentBootstrap`` with ``task_bootstrap=False``). The interval is the
    ((1 - confidence) / 2, (1 + confidence) / 2) quantile pair of the ``reps`` resampled statistics
    (``scipy.stats.bootstrap(method="percentile")``, generator ``numpy.random.default_rng(seed)``).
    An array with one run has nothing to resample and stays fixed; with every array fixed the interval
    is degenerate: low = high = point.
    """
    point = float(statistic(*arrays))
    resampled = [a for a in arrays if a.shape[0] > 1]
    if not resampled:
        return point, point, point
    from scipy.stats import bootstrap

    samples = tuple(a[:, task] for a in resampled for task in range(a.shape[1]))

    def resampled_statistic(*columns):
        it = iter(columns)
        rebuilt = [np.column_stack([next(it) for _ in range(a.shape[1])]) if a.shape[0] > 1 else a for a in arrays]
        return statistic(*rebuilt)

    result = bootstrap(samples, resampled_statistic, n_resamples=reps, vectorized=False, paired=False,
                       method="percentile", confidence_level=confidence, rng=np.random.default_rng(seed))
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)


# ------------------------------------------------------------------------------------------- aggregates


def aggregate(scores: Mapping[str, object], low: float, high: float, reps: int = 2000, seed: int = 0,
              confidence: float = 0.95) -> pd.DataFrame:
    """Per name (an optimizer, say): the mean and the interquartile mean of its scores, with intervals.

    :param scores: name -> scores, 1-d (runs: one per seed) or 2-d (runs x tasks), in the metric's units.
    :param low, high: the metric's range (exploitability of a game with payoffs in [-1, 1]: [0, 2]; a win
        rate: [0, 1]); every score must lie in it.
    :param reps: bootstrap resamples. :param seed: seeds ``numpy.random.default_rng`` for the resampling.
    :param confidence: the intervals' coverage (0.95: 95 %).
    :returns: one row per name, in the mapping's order: ``name``, ``n`` (runs), ``mean``, ``mean_low``,
        ``mean_high``, ``iqm``, ``iqm_low``, ``iqm_high``; ``attrs["confidence"]`` holds ``confidence``.

    Over scores x[r, t] of R runs and T tasks (rliable's definitions)::

        mean = (1 / T) sum_t (1 / R) sum_r x[r, t]          rliable.metrics.aggregate_mean
        iqm  = scipy.stats.trim_mean(x, 0.25, axis=None)      rliable.metrics.aggregate_iqm

    The IQM is the mean of all R T scores after dropping the floor(R T / 4) lowest and the
    floor(R T / 4) highest (fewer than 4 scores: the mean); it resists an outlier seed. Intervals are
    the stratified percentile bootstrap (module docstring): the runs of each task resampled with
    replacement. A percentile interval of a mean or trimmed mean of scores in [low, high] lies in
    [low, high]; this is checked, and only floating-point rounding (a few ulps) is clipped.

    With one run (``n`` = 1) nothing can be resampled: the interval is degenerate, low = high = the
    value. Say "1 seed", not "[v, v]".
    """
    from rliable import metrics

    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"aggregate: the metric's range needs finite low < high; got low={low!r}, high={high!r}")
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    rows = []
    for name, values in scores.items():
        x = _scores(name, values)
        outside = x[(x < low) | (x > high)]
        if outside.size:
            raise ConfigError(f"aggregate: a score of {name!r} is {outside[0]!r}, outside the metric's range "
                              f"[{low!r}, {high!r}]; pass the range the metric can take")
        row: dict = {"name": name, "n": int(x.shape[0])}
        for key, statistic in (("mean", metrics.aggregate_mean), ("iqm", metrics.aggregate_iqm)):
            point, lo, hi = _stratified_bootstrap([x], statistic, reps, seed, confidence)
            row[key] = _inside(point, low, high, f"{key} of {name!r}")
            row[f"{key}_low"] = _inside(lo, low, high, f"{key}_low of {name!r}")
            row[f"{key}_high"] = _inside(hi, low, high, f"{key}_high of {name!r}")
        rows.append(row)
    table = pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)
    table.attrs["confidence"] = confidence
    return table


# --------------------------------------------------------------------------- probability of improvement


def aggregate_groups(table: pd.DataFrame, by: str, value: str, **options) -> pd.DataFrame:
    """:func:`aggregate` of ``table[value]`` grouped by ``table[by]`` (e.g. per-seed exploitability by optimizer),
    indexed by group, with the data's own min..max as the range: a percentile bootstrap of a mean never
    leaves it, and it lies inside the metric's range whatever the metric (all values equal: a unit range,
    and every interval is the point)."""
    scores = {name: group[value].to_numpy(dtype=float) for name, group in table.groupby(by, sort=False)}
    values = table[value].to_numpy(dtype=float)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return aggregate(scores, low, high if high > low else low + 1.0, **options).set_index("name")


def group_summary(table: pd.DataFrame, by: str, value: str, name: str | None = None,
                  low: str | None = None, high: str | None = None) -> pd.DataFrame:
    """Per group of ``table[by]`` (e.g. an optimizer's seeds): the mean of ``table[value]`` and its seed bootstrap
    interval (:func:`aggregate_groups`), none (NaN) for a group of one. Columns ``by``, ``name`` (default
    ``value``), ``low`` and ``high`` (default ``name + "_low"`` / ``"_high"``), groups in order of appearance."""
    name = name or value
    low, high = low or f"{name}_low", high or f"{name}_high"
    stats = aggregate_groups(table, by, value)
    rows = []
    for group_name, group in table.groupby(by, sort=False):
        single = len(group) < 2
        rows.append({by: group_name, name: float(stats.loc[group_name, "mean"]),
                     low: math.nan if single else float(stats.loc[group_name, "mean_low"]),
                     high: math.nan if single else float(stats.loc[group_name, "mean_high"])})
    return pd.DataFrame(rows)


def probability_of_improvement(scores_x, scores_y, reps: int = 2000, seed: int = 0, confidence: float = 0.95, *,
                               higher_is_better: bool) -> tuple[float, float, float]:
    """(p, low, high): the probability that a run of X scores better than a run of Y, with its interval.

    :param scores_x, scores_y: 1-d (runs) or 2-d (runs x tasks, the same tasks in the same columns); the
        numbers of runs may differ.
    :param higher_is_better: the direction of the metric, stated by the caller: True for a return or a
        win rate, False for exploitability (lower is better). With False, "X better than Y" means a
        lower score: p is computed on the negated scores.
    :param reps, seed, confidence: as :func:`aggregate`.

    Per task t, with runs x_1..x_n of X and y_1..y_m of Y (rliable's ``probability_of_improvement``,
    the Mann-Whitney U statistic over n m)::

        P_t(X > Y) = (1 / (n m)) sum_i sum_j ( [x_i > y_j] + 1/2 [x_i = y_j] )
        p          = (1 / T) sum_t P_t(X > Y)

    Ties count half each way, so P(X > Y) + P(Y > X) = 1 and p = 0.5 means no tendency either way.
    The interval is the stratified percentile bootstrap with X's and Y's runs resampled independently
    (rliable's ``StratifiedIndependentBootstrap``); with one run each it is degenerate (low = high = p).
    """
    from rliable import metrics

    better = 1.0 if _check_direction(higher_is_better) else -1.0
    x, y = _scores("scores_x", scores_x), _scores("scores_y", scores_y)
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"probability_of_improvement: X has {x.shape[1]} tasks (columns), Y has {y.shape[1]}; "
                          "both need the same tasks in the same columns")
    return _stratified_bootstrap([better * x, better * y], metrics.probability_of_improvement,
                                 _check_reps(reps), seed, _check_confidence(confidence))


def pairwise_improvement(scores: Mapping[str, object], reps: int = 2000, seed: int = 0, confidence: float = 0.95, *,
                         higher_is_better: bool) -> pd.DataFrame:
    """:func:`probability_of_improvement` for every ordered pair of names.

    :returns: columns ``x``, ``y``, ``p`` (= P(x better than y)), ``low``, ``high``; one row per ordered
        pair (x != y), x in the mapping's order, then y. Each unordered pair is bootstrapped once; its
        mirror row is (1 - p, 1 - high, 1 - low), exact since P(Y > X) = 1 - P(X > Y) on every resample.
        ``attrs`` holds ``confidence`` and ``higher_is_better``.
    """
    _check_direction(higher_is_better)
    names = list(scores)
    result: dict[tuple[str, str], tuple[float, float, float]] = {}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            p, low, high = probability_of_improvement(scores[x], scores[y], reps, seed, confidence,
                                                      higher_is_better=higher_is_better)
            result[x, y] = (p, low, high)
            result[y, x] = (1.0 - p, 1.0 - high, 1.0 - low)
    rows = [(x, y, *result[x, y]) for x in names for y in names if x != y]
    table = pd.DataFrame(rows, columns=IMPROVEMENT_COLUMNS)
    table.attrs.update(confidence=float(confidence), higher_is_better=bool(higher_is_better))
    return table


# ------------------------------------------------------------------------------------------ Bradley-Terry


def _round_robin(games: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Checked games: (players, pairing indices (rows x 2), counts (rows x 3: wins_a, wins_b, ties))."""
    if not isinstance(games, pd.DataFrame):
        raise ConfigError(f"bradley_terry: games must be a pandas DataFrame; got {type(games).__name__}")
    missing = [c for c in ("a", "b", "wins_a", "wins_b", "ties") if c not in games.columns]
    if missing:
        raise ConfigError(f"bradley_terry: games lacks column(s) {', '.join(missing)}; it needs a, b (player "
                          "names) and wins_a, wins_b, ties (counts)")
    counts = games[["wins_a", "wins_b", "ties"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ConfigError(f"bradley_terry: {['wins_a', 'wins_b', 'ties'][col]} in row {row} is "
                          f"{counts[row, col]!r}; counts must be whole numbers >= 0")
    a, b = games["a"].astype(str).to_numpy(), games["b"].astype(str).to_numpy()
    same = np.flatnonzero(a == b)
    if same.size:
        raise ConfigError(f"bradley_terry: row {same[0]} pairs {a[same[0]]!r} with itself; a and b must differ")
    players = list(pd.unique(np.concatenate([a, b])))
    if len(players) < 2:
        raise ConfigError(f"bradley_terry: a round robin needs at least 2 players; got {players}")
    index = {name: i for i, name in enumerate(players)}
    pairs = np.array([[index[p], index[q]] for p, q in zip(a, b, strict=True)], dtype=np.intp).reshape(-1, 2)
    return players, pairs, counts.astype(np.int64)


def _comparisons(n_players: int, pairs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """c[i, j] = wins of i over j + ties / 2, summed over the pairings."""
    c = np.zeros((n_players, n_players))
    np.add.at(c, (pairs[:, 0], pairs[:, 1]), counts[:, 0] + counts[:, 2] / 2)
    np.add.at(c, (pairs[:, 1], pairs[:, 0]), counts[:, 1] + counts[:, 2] / 2)
    return c


def _fit_strengths(c: np.ndarray, alpha: float) -> np.ndarray:
    import choix

    theta = choix.ilsr_pairwise_dense(c, alpha=alpha, max_iter=100_000, tol=1e-10)
    return theta - theta.mean()


def bradley_terry(games: pd.DataFrame, reps: int = 500, seed: int = 0, confidence: float = 0.95,
                  alpha: float = 0.01) -> pd.DataFrame:
    """Bradley-Terry strengths of the players of a round robin, with percentile bootstrap intervals.

    :param games: one row per pairing: ``a``, ``b`` (player names), ``wins_a``, ``wins_b``, ``ties``
        (counts of games). A pair may appear in several rows; the rows add up.
    :param reps: bootstrap resamples. :param seed: seeds ``numpy.random.default_rng``.
    :param confidence: the intervals' coverage. :param alpha: regularisation (> 0), see below.
    :returns: one row per player, strongest first: ``name``, ``strength`` (log-strength, centred to mean
        0), ``strength_low``, ``strength_high``, ``elo``, ``elo_low``, ``elo_high``, ``games`` (games the
        player played); ``attrs["confidence"]`` holds ``confidence``.

    The model (Bradley & Terry 1952): P(i beats j) = sigma(theta_i - theta_j) = 1 / (1 + exp(-(theta_i -
    theta_j))). A tie counts as half a win each way: c[i, j] = wins of i over j + ties / 2. The fit is
    choix's ``ilsr_pairwise_dense(c, alpha)``, whose fixed point maximises, over the n players::

        L(theta) = sum_{i != j} c[i, j] log sigma(theta_i - theta_j)  +  alpha n sum_i log softmax(theta)_i

    (choix starts every rate of the Luce spectral ranking chain at alpha; at the fixed point the gradient
    of the first term, wins_i - expected wins_i, equals alpha n (n softmax(theta)_i - 1), the gradient
    of the second). The second term is a prior of alpha n virtual wins for every player in a contest of
    all n: it keeps strengths finite when a player won or lost every game and does not move the mean.
    With alpha = 0.01 it weighs as 0.01 n games per player. ``strength`` = theta - mean(theta), in
    natural-log odds: strength_i - strength_j = log(P(i beats j) / P(j beats i)).

    ``elo`` = ELO_MEAN + ELO_SCALE strength = 1500 + strength 400 / ln 10, so that
    P(i beats j) = 1 / (1 + 10^(-(elo_i - elo_j) / 400)); the average player has 1500.

    Intervals: a resample redraws each pairing's games, multinomially, with that pairing's observed
    (wins_a, wins_b, ties) frequencies and number of games (resampling its games with replacement), and
    refits; the interval is the ((1 - confidence) / 2, (1 + confidence) / 2) quantile pair of the
    ``reps`` centred strengths.
    """
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"bradley_terry: alpha must be a number > 0 (it keeps the strength of a player who won "
                          f"or lost every game finite; 0.01 is small); got {alpha!r}")
    players, pairs, counts = _round_robin(games)
    n = len(players)
    strength = _fit_strengths(_comparisons(n, pairs, counts), float(alpha))

    rng = np.random.default_rng(seed)
    played = counts.sum(axis=1)
    frequencies = counts / np.maximum(played, 1)[:, None]
    draws = np.zeros((reps, len(pairs), 3), dtype=np.int64)
    for row in np.flatnonzero(played):
        draws[:, row] = rng.multinomial(played[row], frequencies[row], size=reps)
    resampled = np.array([_fit_strengths(_comparisons(n, pairs, draws[r]), float(alpha)) for r in range(reps)])
    low, high = np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)

    games_played = np.zeros(n, dtype=np.int64)
    np.add.at(games_played, pairs[:, 0], played)
    np.add.at(games_played, pairs[:, 1], played)
    table = pd.DataFrame({"name": players, "strength": strength, "strength_low": low, "strength_high": high,
                          "elo": ELO_MEAN + ELO_SCALE * strength, "elo_low": ELO_MEAN + ELO_SCALE * low,
                          "elo_high": ELO_MEAN + ELO_SCALE * high, "games": games_played}, columns=STRENGTH_COLUMNS)
    table = table.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True)
    table.attrs["confidence"] = confidence
    return table


# ------------------------------------------------------------------------------------------ conclusions


def separated(low_a: float, high_a: float, low_b: float, high_b: float) -> bool:
    """True when the intervals [low_a, high_a] and [low_b, high_b] do not overlap (touching overlaps);
    False when any bound is NaN (no interval)."""
    bounds = (low_a, high_a, low_b, high_b)
    if any(v != v for v in bounds):
        return False
    return bool(high_a < low_b or high_b < low_a)


def conclusion(table: pd.DataFrame, metric: str, lower_is_better: bool, names: Sequence[str] | None = None, *,
               comparative: str | None = None, confidence: float | None = None) -> list[str]:
    """One sentence per pair of ``names``: a difference only where the intervals of ``metric`` separate.

    :param table: a table with ``name``, ``metric``, ``{metric}_low`` and ``{metric}_high`` columns
        (:func:`aggregate` with metric "mean" or "iqm"; :func:`bradley_terry` with "strength" or "elo").
        A table with an ``n`` column (runs) concludes nothing for a name with n < 2: its interval is
        degenerate, not narrow.
    :param lower_is_better: True for exploitability; decides which of two separated names is better.
    :param names: the names to compare, pairwise in this order; default every row of ``table``.
    :param comparative: how the better one compares, e.g. "less exploitable"; default
        "lower {metric}" / "higher {metric}" (whichever way is better).
    :param confidence: printed as the intervals' coverage; default ``table.attrs["confidence"]`` or 0.95.

    A separated pair reads "{better} is {comparative} than {worse} (95% intervals do not overlap)"
    (default: "{better} has lower {metric} than {worse} (...)"), with ", but X's interval is a point: its
    N seeds all gave V" added for a name whose runs were all equal; any other pair reads
    "{a} vs {b}: no difference detected at this budget (95% intervals overlap)", or "(... 1 seed: no
    interval)" when a name has a single run.
    """
    for column in ("name", metric, f"{metric}_low", f"{metric}_high"):
        if column not in table.columns:
            raise ConfigError(f"conclusion: the table has no column {column!r}; its columns are "
                              f"{', '.join(map(str, table.columns))}")
    lower_is_better = _check_direction(lower_is_better, "lower_is_better")
    confidence = table.attrs.get("confidence", 0.95) if confidence is None else confidence
    level = f"{_check_confidence(confidence) * 100:g}%"
    rows = {str(row["name"]): row for _, row in table.iterrows()}
    names = list(rows) if names is None else [str(name) for name in names]
    for name in names:
        if name not in rows:
            raise UnknownNameError("name in the table", name, list(rows))
    sentences = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = rows[a], rows[b]
            if "n" in table.columns and min(ra["n"], rb["n"]) < 2:
                single = a if ra["n"] < 2 else b
                sentences.append(f"{a} vs {b}: no difference detected at this budget "
                                 f"({single} has 1 seed: no interval)")
                continue
            if not separated(ra[f"{metric}_low"], ra[f"{metric}_high"], rb[f"{metric}_low"], rb[f"{metric}_high"]):
                sentences.append(f"{a} vs {b}: no difference detected at this budget ({level} intervals overlap)")
                continue
            a_is_lower = ra[f"{metric}_high"] < rb[f"{metric}_low"]
            better, worse = (a, b) if a_is_lower == lower_is_better else (b, a)
            reason = f"{level} intervals do not overlap{_point_caveat(table, rows, (better, worse), metric)}"
            if comparative is None:
                sentences.append(f"{better} has {'lower' if lower_is_better else 'higher'} {metric} than {worse} "
                                 f"({reason})")
            else:
                sentences.append(f"{better} is {comparative} than {worse} ({reason})")
    return sentences


def _point_caveat(table: pd.DataFrame, rows: dict, names: Sequence[str], metric: str) -> str:
    """``", but X's interval is a point: its N seeds all gave V"`` for each of ``names`` whose several runs
    (``n`` >= 2) were all equal: a bootstrap over them has no spread to show, however few they are."""
    if "n" not in table.columns:
        return ""
    points = [f"{name}'s interval is a point: its {int(rows[name]['n'])} seeds all gave {rows[name][metric]:.3g}"
              for name in names
              if rows[name]["n"] >= 2 and rows[name][f"{metric}_low"] == rows[name][f"{metric}_high"]]
    return "".join(f", but {point}" for point in points)
