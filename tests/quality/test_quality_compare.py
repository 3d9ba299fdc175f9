import math

import pytest

from harness.errors import HarnessError
from harness.workloads.quality.compare import compare_labels, compare_values


def rows(labels, prefix="q"):
    return [{"id": f"{prefix}{i}", "label": lab} for i, lab in enumerate(labels)]


def test_mcnemar_on_a_known_table():
    # both right 20, A only 10, B only 2, neither 8
    a = ["correct"] * 20 + ["correct"] * 10 + ["wrong"] * 2 + ["wrong"] * 8
    b = ["correct"] * 20 + ["wrong"] * 10 + ["correct"] * 2 + ["wrong"] * 8
    r = compare_labels(rows(a), rows(b))
    assert (r.n_pairs, r.both, r.a_only, r.b_only, r.neither) == (40, 20, 10, 2, 8)
    # exact two-sided: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert r.mcnemar_p == pytest.approx(2 * 79 / 4096)
    assert r.rate_a == pytest.approx(0.75) and r.rate_b == pytest.approx(0.55)
    assert r.difference == pytest.approx(0.20)
    assert r.difference_ci95_low < 0.20 < r.difference_ci95_high
    assert r.difference_ci95_low > 0  # 10 vs 2 discordant: clearly better


def test_no_discordant_pairs_gives_p_one():
    r = compare_labels(rows(["correct", "wrong"]), rows(["correct", "wrong"]))
    assert r.mcnemar_p == 1.0 and r.difference == 0.0


def test_pairs_by_id_not_position_and_counts_unpaired():
    a = [{"id": "x", "label": "correct"}, {"id": "y", "label": "wrong"}, {"id": "z", "label": "correct"}]
    b = [{"id": "y", "label": "correct"}, {"id": "x", "label": "correct"}]
    r = compare_labels(a, b)
    assert (r.n_pairs, r.both, r.b_only, r.unpaired) == (2, 1, 1, 1)


def test_other_outcomes_can_be_compared():
    a = rows(["hallucinated", "correct", "hallucinated"])
    b = rows(["correct", "correct", "hallucinated"])
    r = compare_labels(a, b, outcome="hallucinated")
    assert (r.a_only, r.b_only, r.both) == (1, 0, 1)


def test_conflicting_duplicate_ids_are_refused():
    twice = [{"id": "q0", "label": "correct"}, {"id": "q0", "label": "wrong"}]
    with pytest.raises(HarnessError, match="appears twice"):
        compare_labels(twice, rows(["correct"]))


def test_repetitions_with_the_same_outcome_collapse():
    reps = [{"id": "q0", "label": "correct", "repetition": r} for r in range(3)]
    r = compare_labels(reps, rows(["wrong"]))
    assert (r.n_pairs, r.a_only) == (1, 1)


def test_compare_values_paired_difference():
    a = [{"id": i, "mc2": v} for i, v in enumerate([0.5, 0.6, 0.7, None])]
    b = [{"id": i, "mc2": v} for i, v in enumerate([0.4, 0.4, 0.5, 0.9])]
    r = compare_values(a, b, "mc2")
    assert r.n_pairs == 3
    assert r.difference == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    assert r.difference_ci95_low >= 0.1 - 1e-12 and r.difference_ci95_high <= 0.2 + 1e-12


def test_empty_lists():
    r = compare_labels([], [])
    assert r.n_pairs == 0 and math.isnan(r.difference) and r.mcnemar_p == 1.0
