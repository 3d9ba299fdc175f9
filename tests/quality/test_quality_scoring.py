import pytest

from harness.workloads.quality import scoring


@pytest.mark.parametrize("text, expected", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  A   cat,  an owl and THE dog. ", "cat owl and dog"),
    ("Rubik's Cube", "rubiks cube"),
    ("1,000", "1000"),
    ("“Paris”—France…", "parisfrance"),
    ("theatre", "theatre"),  # 'the' only as a whole word
])
def test_normalize_answer_follows_squad(text, expected):
    assert scoring.normalize_answer(text) == expected


def test_token_f1_known_values():
    assert scoring.token_f1("Paris", "paris.") == 1.0
    # pred: new york city (3), ref: york (1): p = 1/3, r = 1 -> F1 = 0.5
    assert scoring.token_f1("New York City", "York") == pytest.approx(0.5)
    # bag of tokens: repeated tokens count once per match
    assert scoring.token_f1("x b b", "b c") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert scoring.token_f1("Mumbai", "Delhi") == 0.0
    assert scoring.token_f1("", "") == 1.0
    assert scoring.token_f1("the", "Delhi") == 0.0  # normalises to nothing


def test_contains_phrase_is_whole_token():
    assert scoring.contains_phrase("It was in 1984.", "1984")
    assert not scoring.contains_phrase("It was in 1984.", "4")
    assert not scoring.contains_phrase("a party", "art")
    assert scoring.contains_phrase("The capital is New Delhi, India", "new delhi")
    assert not scoring.contains_phrase("Delhi New", "new delhi")


@pytest.mark.parametrize("text, phrase", [
    ("I don't know.", "i don't know"),
    ("I do not know", "i do not know"),
    ("Nobody knows that.", "nobody knows"),
    ("There is no such country.", "there is no"),
    ("That is unknown", "unknown"),
    ("I'm not sure", "i'm not sure"),
])
def test_abstention_phrases(text, phrase):
    assert scoring.abstention_phrase(text) is not None
    assert scoring.contains_phrase(text, phrase)


@pytest.mark.parametrize("text", ["Paris", "Knowledge is power", "The known world", "Noah"])
def test_not_abstentions(text):
    assert scoring.abstention_phrase(text) is None


@pytest.mark.parametrize("text, empty", [("", True), ("   \n", True), ("...", True),
                                          ("the", True), ("0", False), ("Rome", False)])
def test_is_empty(text, empty):
    assert scoring.is_empty(text) is empty
