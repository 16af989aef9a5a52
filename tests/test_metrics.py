"""Wilson score intervals (closed form, scipy's reference values) and win/tie/loss counting."""

import math

import numpy as np
import pytest

from ipo_robust.errors import ConfigError
from ipo_robust.evals.metrics import Outcomes, wilson_interval


def closed_form(k, n, z=1.96):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (50, 100), (1, 200), (199, 200)])
def test_wilson_matches_the_closed_form(k, n):
    low, high = wilson_interval(k, n)
    expected = closed_form(k, n)
    assert low == pytest.approx(max(expected[0], 0.0), abs=1e-15)
    assert high == pytest.approx(min(expected[1], 1.0), abs=1e-15)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    z = stats.norm.ppf(0.975)
    for n in (1, 7, 20, 100, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            low, high = wilson_interval(k, n, z=z)
            assert low == pytest.approx(reference.low, abs=1e-12)
            assert high == pytest.approx(reference.high, abs=1e-12)


def test_wilson_known_values():
    # 0 wins in 10 games: the 95 % interval still reaches 0.2775 (the Wald interval would be [0, 0]).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


@pytest.mark.parametrize("k,n,z,name", [(1, 0, 1.96, "n"), (3, 2, 1.96, "successes"), (-1, 5, 1.96, "successes"),
                                        (1.5, 5, 1.96, "successes"), (1, 5, 0.0, "z"), (True, 5, 1.96, "successes")])
def test_wilson_rejects_bad_input(k, n, z, name):
    with pytest.raises(ConfigError, match=name):
        wilson_interval(k, n, z)


def test_outcomes_from_returns_and_rates():
    outcomes = Outcomes.from_returns(np.array([1.0, -1.0, 0.0, 2.0]), np.array([-1.0, 1.0, 0.0, 0.5]))
    assert (outcomes.wins, outcomes.ties, outcomes.losses, outcomes.games) == (2, 1, 1, 4)
    rates = outcomes.rates()
    assert rates["win_rate"] == 0.5 and rates["tie_rate"] == 0.25 and rates["loss_rate"] == 0.25
    assert (rates["win_low"], rates["win_high"]) == wilson_interval(2, 4)
    assert math.isnan(Outcomes(0, 0, 0).rates()["win_rate"])
