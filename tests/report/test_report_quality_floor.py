"""Issue 15: "best" respects quality by default, verdicts in words, and hallucination that cannot
be flattered by abstaining.

One run, three levels answering the same 60 items:
- Q4_K_M (reference, most energy): 30 correct, 24 hallucinated, 6 abstained;
- Q2_K (least energy): 6 correct, 48 hallucinated, 6 abstained: far less accurate;
- Q3_K_M: declines the 24 items Q4_K_M hallucinated on and gets 6 of Q4_K_M's correct ones
  wrong: fewer hallucinations over all items (6 vs 24), yet more among the items both answered.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import stats
from harness.records import REPETITION, CellKey, make_record
from harness.report import render_all
from harness.report.tables import (Constraints, best_configurations, configurations,
                                   load_results, paired_tests, quality_floor_failures)
from harness.store import RunWriter

import report_runs
from report_runs import HOST

N = 60
LEVELS = {  # level: (energy J/token, labels of items 0..59)
    "Q4_K_M": (0.30, ["correct"] * 30 + ["hallucinated"] * 24 + ["abstained"] * 6),
    "Q2_K": (0.10, ["correct"] * 6 + ["hallucinated"] * 48 + ["abstained"] * 6),
    "Q3_K_M": (0.20, ["correct"] * 24 + ["hallucinated"] * 6 + ["abstained"] * 30),
}
BPW = {"Q4_K_M": 4.8, "Q3_K_M": 3.9, "Q2_K": 3.0}


def _summary(run_id: str, key: CellKey, reps: list[dict], **extra) -> dict:
    return report_runs._summary(run_id, key, reps, bits_per_weight=BPW[key.level],
                                quant_type=key.level, **extra)


def _rates(labels: list[str]) -> dict[str, float]:
    out: dict[str, float] = {"n_items": float(len(labels))}
    attempted = [x for x in labels if x != "abstained"]
    for name, k, n in (("accuracy", labels.count("correct"), len(labels)),
                       ("hallucination_rate", labels.count("hallucinated"), len(labels)),
                       ("abstention_rate", labels.count("abstained"), len(labels)),
                       ("hallucination_rate_attempted", attempted.count("hallucinated"), len(attempted))):
        lo, hi = stats.wilson_ci(k, n)
        out.update({name: k / n, f"{name}_ci95_low": lo, f"{name}_ci95_high": hi})
    return out


def _write(out: Path) -> Path:
    run_id = "run-floor"
    w = RunWriter.create(out, run_id)
    w.write_manifest({"schema_version": 1, "run_id": run_id, "created_utc": "2026-11-30T10:00:00Z",
                      "harness_version": "0.1.0", "git_commit": "abc", "matrix_path": "m.yaml",
                      "matrix": {"repetitions": 1}, "python": "3.11", "packages": {},
                      "runtime_info": {}, "host": dict(HOST),
                      "device": {"profile": "laptop", "detected_profile": "laptop",
                                 "emulated": False, "detection": "test"},
                      "energy": {"sensor": "rapl", "method": "measured", "rate_hz": 10}})
    for level, (energy, labels) in LEVELS.items():
        gen = CellKey("tiny", level, "llama_cpp", "laptop", None, "gen")
        rep = make_record(REPETITION, run_id, gen, attempt="a", repetition=0,
                          workload_kind="generation", decode_tokens_per_s=20.0,
                          energy_per_decode_token_j=energy, peak_rss_bytes=4e8,
                          energy_method="measured", energy_sensor="rapl",
                          energy_coverage="package", energy_valid=True, output_text="hi",
                          emulated=False, throttled=False)
        w.append(rep)
        w.append(_summary(run_id, gen, [rep], energy_method="measured", energy_sensor="rapl",
                          energy_coverage="package"))
        cb = CellKey("tiny", level, "llama_cpp", "laptop", None, "closed-book")
        # item i gets label i: Q3_K_M's 24-29 (hallucinated) were right at Q4_K_M, its 30-53
        # (abstained) were hallucinated at Q4_K_M
        w.append_samples(cb.cell_id, [{"id": f"q{i}", "question": "?", "output": "x",
                                       "label": labels[i], "references": ["y"]}
                                      for i in range(N)])
        rep = make_record(REPETITION, run_id, cb, attempt="b", repetition=0,
                          workload_kind="closed_book", samples_file=f"samples/{cb.cell_id}.jsonl",
                          **_rates(labels))
        w.append(rep)
        w.append(_summary(run_id, cb, [rep]))
    return w.dir


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return load_results([_write(tmp_path_factory.mktemp("floor"))])


def _by_level(table) -> dict[str, dict]:
    return {t["level"]: t for t in paired_tests(table)}


def test_verdicts_in_words_against_the_reference(table):
    tests = _by_level(table)
    assert set(tests) == {"Q2_K", "Q3_K_M"} and all(t["reference"] == "Q4_K_M" for t in tests.values())
    q2 = tests["Q2_K"]["verdicts"]
    assert "Q2_K: accuracy lower than Q4_K_M, p < 0.001" in q2
    # 24 items right only at Q4_K_M, none only at Q2_K: McNemar's exact p = 2 * 0.5^24
    assert tests["Q2_K"]["metrics"]["accuracy"].mcnemar_p == pytest.approx(2 * 0.5 ** 24)
    q3 = tests["Q3_K_M"]["verdicts"]
    assert "Q3_K_M: accuracy lower than Q4_K_M, p = 0.031" in q3  # 6 vs 0 discordant: 2/64
    assert any(v.startswith("Q3_K_M: abstention rate higher than Q4_K_M") for v in q3)


def test_answering_less_is_not_hallucinating_less(table):
    """Over all items Q3_K_M hallucinates 6 times to Q4_K_M's 24; on the 30 items both
    answered it hallucinates 6 times to 0: the verdict says higher."""
    t = _by_level(table)["Q3_K_M"]
    r = t["metrics"]["hallucination_rate_attempted"]
    assert r.n_pairs == 30 and r.a_only == 0 and r.b_only == 6
    assert ("Q3_K_M: hallucination rate among answered items higher than Q4_K_M, p = 0.031 "
            "(30 items both answered)") in t["verdicts"]
    rows = {c["level"]: c for c in configurations(table)}
    assert rows["Q3_K_M"]["hallucination_rate"] < rows["Q4_K_M"]["hallucination_rate"]
    assert rows["Q3_K_M"]["hallucination_rate_attempted"] == pytest.approx(6 / 30)


def test_best_respects_the_quality_floor_by_default(table):
    configs = configurations(table)
    held = quality_floor_failures(table)
    assert sorted(k[4] for k in held) == ["Q2_K", "Q3_K_M"]
    [b] = best_configurations(table, configs, Constraints.from_dict({}))
    assert b["best"]["level"] == "Q4_K_M" and b["n_held_back"] == 2
    excluded = {c["level"]: why for c, why in b["excluded"]}
    assert excluded["Q2_K"] == ["accuracy below Q4_K_M on closed-book (p < 0.001)"]
    [none] = best_configurations(table, configs, Constraints.from_dict({"quality_floor": "none"}))
    assert none["best"]["level"] == "Q2_K" and none["n_held_back"] == 0
    # the reference level set elsewhere moves the floor: against Q2_K nobody is worse
    [vs_q2] = best_configurations(table, configs, Constraints(), reference_level="Q2_K")
    assert vs_q2["best"]["level"] == "Q2_K"


def test_bad_quality_floor_is_refused():
    with pytest.raises(Exception, match="quality_floor 'strict'"):
        Constraints.from_dict({"quality_floor": "strict"})


def test_page_and_markdown_say_the_criterion_and_how_to_change_it(table, tmp_path):
    files = render_all(table, tmp_path / "r.html", Constraints())
    html, md = files[tmp_path / "r.html"], files[tmp_path / "r.md"]
    for text in (html, md):
        assert "accuracy not significantly below the reference level" in text
        assert "--quality-floor none" in text
    assert "Q2_K: accuracy lower than Q4_K_M, p &lt; 0.001" in html
    assert "Q2\\_K: accuracy lower than Q4\\_K\\_M, p &lt; 0.001" in md
    assert "2 held back by the quality floor" in html
    # the headline leads with the three quality figures together
    best_box = html.split('<div class="best">', 1)[1].split("</section>", 1)[0]
    for label in ("Accuracy", "Hallucination rate (attempted)", "Abstention rate"):
        assert label in best_box


def test_default_reference_is_the_unmodified_source_not_a_pruned_level():
    """A pruned level can have more bits per weight than its source (its dropped layers were
    low-bit ones): the default matrix's q4-drop1 has 7.40 against Q4_K_M's 7.36. It must not
    become the reference; neither may a level requantized up from the source."""
    from harness.report.tables import reference_order

    rows = [{"level": "q4-drop1", "bits_per_weight": 7.40, "compression_kind": "prune+quantize"},
            {"level": "Q8_0", "bits_per_weight": 8.5, "compression_kind": "quantize",
             "source_quant_type": "Q4_K_M"},
            {"level": "Q3_K_M", "bits_per_weight": 7.03, "compression_kind": "quantize",
             "source_quant_type": "Q4_K_M"},
            {"level": "Q4_K_M", "bits_per_weight": 7.36, "compression_kind": "source"}]
    assert [r["level"] for r in sorted(rows, key=reference_order)] == \
        ["Q4_K_M", "Q8_0", "Q3_K_M", "q4-drop1"]
    # runs written before records carried the compression kind: bits per weight as before
    old = [{"level": "F16", "bits_per_weight": 16.0, "source_quant_type": "Q4_K_M"},
           {"level": "Q4_K_M", "bits_per_weight": 4.8}, {"level": "Q2_K", "bits_per_weight": 3.0}]
    assert [r["level"] for r in sorted(old, key=reference_order)] == ["Q4_K_M", "Q2_K", "F16"]


def test_cli_option_sets_the_floor():
    import argparse

    from harness.cli.report import add_arguments, constraints_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert constraints_from_args(parser.parse_args(["r"]))["quality_floor"] == "reference"
    args = parser.parse_args(["r", "--quality-floor", "none"])
    assert Constraints.from_dict(constraints_from_args(args)).quality_floor == "none"
    with pytest.raises(SystemExit):
        parser.parse_args(["r", "--quality-floor", "strict"])
