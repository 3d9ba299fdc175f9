import math

import numpy as np
import pytest

from harness import stats


def test_summary_matches_numpy_and_t_interval():
    xs = [10.0, 12.0, 11.0, 13.0, 9.0]
    s = stats.summarize(xs)
    assert s["mean"] == pytest.approx(11.0)
    assert s["stdev"] == pytest.approx(np.std(xs, ddof=1))
    half = 2.776 * np.std(xs, ddof=1) / math.sqrt(5)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((11 - half, 11 + half))
    assert s["p90"] == pytest.approx(np.percentile(xs, 90)) and s["n"] == 5


def test_summary_ignores_missing_and_handles_single_value():
    s = stats.summarize([None, 3.0, float("nan")])
    assert s["n"] == 1 and s["mean"] == 3.0 and s["stdev"] is None and s["ci95_low"] is None
    assert stats.summarize([])["n"] == 0


def test_unstable_flag_at_ten_percent():
    assert stats.is_unstable(stats.summarize([1.0, 1.5, 0.6]))
    assert not stats.is_unstable(stats.summarize([1.0, 1.01, 0.99]))


def test_wilson_interval_known_value():
    lo, hi = stats.wilson_ci(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert stats.wilson_ci(0, 20)[0] == 0.0


def test_mcnemar_exact_known_value():
    # b=1, c=9: two-sided exact binomial p = 2 * P(X<=1 | n=10, p=.5) = 22/1024
    assert stats.mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert stats.mcnemar_exact(0, 0) == 1.0


def test_mann_whitney_separated_samples_exact():
    # fully separated 3 vs 3: exact two-sided p = 2/20
    assert stats.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert stats.mann_whitney_p([1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5]) > 0.3


def test_bootstrap_ci_contains_mean_and_is_reproducible():
    xs = list(np.random.default_rng(1).normal(5, 1, 50))
    a = stats.bootstrap_ci(xs, seed=3)
    assert a == stats.bootstrap_ci(xs, seed=3)
    assert a[0] < np.mean(xs) < a[1]
