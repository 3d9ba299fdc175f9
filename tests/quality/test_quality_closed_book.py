import pytest

from harness.errors import ConfigError, HarnessError
from harness.workloads.quality import closed_book, scoring
from harness.schema import Node

from quality_fakes import FakeBackend, FakeContext

ITEMS = closed_book.load_items()
BY_TYPE = {t: [it for it in ITEMS if it["type"] == t] for t in closed_book.ITEM_TYPES}


def item(type_, **kw):
    base = {"id": "t1", "type": type_, "category": "test", "question": "Q?", "answers": [],
            "premise_keywords": []}
    return {**base, **kw}


# -- the shipped data ---------------------------------------------------------------------------
def test_dataset_size_ids_and_balance():
    assert len(ITEMS) >= 300
    assert len({it["id"] for it in ITEMS}) == len(ITEMS)
    assert len({it["question"] for it in ITEMS}) == len(ITEMS)
    assert len(BY_TYPE["unanswerable"]) >= 30 and len(BY_TYPE["false_premise"]) >= 30
    assert all(it["note"] for it in BY_TYPE["unanswerable"] + BY_TYPE["false_premise"])


def test_no_reference_is_echoed_by_its_question_or_normalises_to_nothing():
    for it in ITEMS:
        for ref in it["answers"] + it["premise_keywords"]:
            assert scoring.tokens(ref), (it["id"], ref)
            assert not scoring.contains_phrase(it["question"], ref), (it["id"], ref)


def test_few_shot_questions_are_not_test_items():
    questions = {scoring.normalize_answer(it["question"]) for it in ITEMS}
    for q, _ in closed_book.FEW_SHOT:
        assert scoring.normalize_answer(q) not in questions


def test_prompt_allows_abstaining_and_ends_at_the_answer_slot():
    p = closed_book.build_prompt("Who wrote Hamlet?")
    assert "I don't know." in p
    assert p.endswith("Q: Who wrote Hamlet?\nA:")


# -- the labelling rule -------------------------------------------------------------------------
@pytest.mark.parametrize("output, label, matched", [
    ("Paris", "correct", "Paris"),
    ("paris.", "correct", "Paris"),
    ("The capital is Paris, of course", "correct", "Paris"),
    ("Lyon", "hallucinated", None),
    ("Parisian", "hallucinated", None),  # whole tokens only
    ("I don't know.", "abstained", "i don't know"),
    ("", "abstained", None),
    ("  ", "abstained", None),
])
def test_answerable_labels(output, label, matched):
    it = item("answerable", answers=["Paris"])
    assert closed_book.label_answer(it, output) == (label, matched)


@pytest.mark.parametrize("output, label", [
    ("8", "correct"), ("eight", "correct"), ("Eight legs.", "correct"), ("2", "hallucinated"),
    ("18", "hallucinated"),
])
def test_numbers_as_digits_and_words(output, label):
    spider = next(it for it in ITEMS if it["question"] == "How many legs does a spider have?")
    assert closed_book.label_answer(spider, output)[0] == label


def test_shipped_aliases_accept_common_spellings():
    def find(q):
        return next(it for it in ITEMS if it["question"] == q)
    assert closed_book.label_answer(find("Who wrote Crime and Punishment?"), "Dostoyevsky")[0] == "correct"
    assert closed_book.label_answer(find("What is the capital of Ukraine?"), "Kiev")[0] == "correct"
    assert closed_book.label_answer(find("Who painted the Mona Lisa?"), "da Vinci")[0] == "correct"
    assert closed_book.label_answer(find("How many grams are in a kilogram?"), "1,000 grams")[0] == "correct"


@pytest.mark.parametrize("output, label", [
    ("I don't know.", "correct"),
    ("No one knows.", "correct"),
    ("There is no such country.", "correct"),
    ("Veltropolis", "hallucinated"),
    ("", "abstained"),  # empty is never credited, even where declining is right
])
def test_unanswerable_labels(output, label):
    it = item("unanswerable", question="What is the capital city of the country of Veltravia?")
    assert closed_book.label_answer(it, output)[0] == label


@pytest.mark.parametrize("output, label, matched", [
    ("He won it for physics.", "correct", "physics"),
    ("He did not; it was the Physics prize.", "correct", "physics"),
    ("He never won it.", "correct", "never won"),
    ("For discovering radium.", "hallucinated", None),
    ("I don't know", "correct", "i don't know"),
    ("", "abstained", None),
])
def test_false_premise_labels(output, label, matched):
    einstein = next(it for it in ITEMS if it["question"].startswith("Why did Albert Einstein"))
    assert closed_book.label_answer(einstein, output) == (label, matched)


# -- config -------------------------------------------------------------------------------------
def test_config_defaults_and_validation():
    c = closed_book.Config.from_node(Node({"name": "cb", "kind": "closed_book"}, "m.yaml", "workloads[0]"))
    assert (c.samples, c.seed, c.max_tokens, c.needs_logits) == (60, 0, 24, False)
    with pytest.raises(ConfigError, match="workloads\\[0\\].sampels: unknown key"):
        closed_book.Config.from_node(Node({"name": "cb", "kind": "closed_book", "sampels": 3},
                                          "m.yaml", "workloads[0]"))
    with pytest.raises(ConfigError, match="must be >= 1"):
        closed_book.Config.from_node(Node({"name": "cb", "kind": "closed_book", "samples": 0},
                                          "m.yaml", "workloads[0]"))


# -- run ------------------------------------------------------------------------------------------
def oracle(question: str) -> str:
    """Answers perfectly on answerable items, declines elsewhere."""
    it = next(i for i in ITEMS if i["question"] == question)
    return it["answers"][0] if it["answers"] else "I don't know."


def cfg(samples=40, seed=3):
    return closed_book.Config(name="cb", samples=samples, seed=seed, max_tokens=24)


def test_run_metrics_and_audit_rows():
    res = closed_book.run(FakeBackend(oracle), cfg(), FakeContext())
    assert res.metrics["n_items"] == 40
    assert res.metrics["accuracy"] == 1.0 and res.metrics["hallucination_rate"] == 0.0
    assert res.metrics["hallucination_rate_ci95_high"] > 0  # Wilson: not a zero-width interval
    row = res.samples[0]
    assert {"id", "prompt", "output", "label", "matched", "references"} <= set(row)
    assert res.tokens_in > 0 and res.tokens_out > 0


def test_run_mixed_answers_arithmetic():
    def half_wrong(question):
        it = next(i for i in ITEMS if i["question"] == question)
        n = int(it["id"][2:])
        return ["Zanzibar 1234", "I don't know", ""][n % 3]
    res = closed_book.run(FakeBackend(half_wrong), cfg(samples=60), FakeContext())
    labels = [r["label"] for r in res.samples]
    n = len(labels)
    h, a, c = labels.count("hallucinated"), labels.count("abstained"), labels.count("correct")
    assert h + a + c == n
    m = res.metrics
    assert m["hallucination_rate"] == pytest.approx(h / n)
    assert m["accuracy"] == pytest.approx(c / n)
    assert m["abstention_rate"] == pytest.approx(a / n)
    assert m["hallucination_rate_attempted"] == pytest.approx(h / (n - a))
    assert m["empty_rate"] == pytest.approx(sum(r["output"] == "" for r in res.samples) / n)
    assert m["hallucination_rate_ci95_low"] < m["hallucination_rate"] < m["hallucination_rate_ci95_high"]


def test_same_items_for_every_level_and_seed_changes_them():
    a, b = FakeBackend(oracle), FakeBackend(lambda q: "")
    ids_a = [r["id"] for r in closed_book.run(a, cfg(), FakeContext()).samples]
    ids_b = [r["id"] for r in closed_book.run(b, cfg(), FakeContext(seed=99)).samples]
    assert ids_a == ids_b
    ids_c = [r["id"] for r in closed_book.run(a, cfg(seed=4), FakeContext()).samples]
    assert ids_c != ids_a


def test_collapsed_model_is_reported_plainly():
    res = closed_book.run(FakeBackend(lambda q: ""), cfg(samples=20), FakeContext())
    assert res.metrics["abstention_rate"] == 1.0 and res.metrics["empty_rate"] == 1.0
    assert res.metrics["accuracy"] == 0.0 and res.metrics["hallucination_rate"] == 0.0
    assert res.metrics["hallucination_rate_attempted"] != res.metrics["hallucination_rate_attempted"]  # NaN: nothing attempted
    assert any("20 of 20 answers were empty" in w for w in res.warnings)


def test_too_many_samples_is_a_clear_error():
    with pytest.raises(HarnessError, match="has only"):
        closed_book.run(FakeBackend(oracle), cfg(samples=len(ITEMS) + 1), FakeContext())


@pytest.mark.parametrize("output, label, rule", [
    ("It is a planet because it is a star.", "hallucinated", "premise_affirmed"),  # the case
    ("It is a planet, not a star.", "hallucinated", "premise_affirmed"),
    ("It is not a planet; it is a star.", "correct", "premise_corrected"),
    ("The Sun is a star, not a planet.", "correct", "premise_corrected"),
    ("It isn't one.", "correct", "premise_corrected"),
    ("Because it is hot.", "hallucinated", "premise_not_corrected"),
    ("I don't know.", "correct", "declined"),
])
def test_a_correction_must_not_affirm_the_premise(output, label, rule):
    sun = next(it for it in ITEMS if it["id"] == "cb0433")
    v = closed_book.verdict(sun, output)
    assert (v.label, v.rule) == (label, rule)


def test_claims_negated_after_them_are_not_affirmations():
    gogh = next(it for it in ITEMS if it["id"] == "cb0428")
    assert closed_book.verdict(gogh, "He won none.").label == "correct"
    assert closed_book.verdict(gogh, "He won two.").rule == "premise_affirmed"


def test_every_false_premise_item_has_reviewed_claims():
    fp = [it for it in ITEMS if it["type"] == "false_premise"]
    assert fp and all(isinstance(it["premise_claims"], list) for it in fp)
    # a claim must not be one of the item's own correction keywords
    for it in fp:
        kws = {closed_book.scoring.normalize_answer(k) for k in it["premise_keywords"]}
        assert not kws & {closed_book.scoring.normalize_answer(c) for c in it["premise_claims"]}


def test_labels_name_their_rule():
    it = item("answerable", answers=["Paris"])
    assert closed_book.verdict(it, "Paris").rule == "alias"
    assert closed_book.verdict(it, "Lyon").rule == "wrong_answer"
    assert closed_book.verdict(it, "").rule == "empty"
    assert closed_book.verdict(it, "Not sure").rule == "declined"
