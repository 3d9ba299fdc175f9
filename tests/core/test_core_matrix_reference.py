"""docs/matrix.md is generated from the validators (harness.matrix_reference) and kept current."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import matrix_reference as ref
from harness.errors import ConfigError
from harness.matrix import parse_matrix
from harness.schema import Node

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collected():
    return ref.collect()


def test_docs_matrix_md_is_current(collected):
    assert (ROOT / "docs" / "matrix.md").read_text() == ref.render(collected), (
        "docs/matrix.md is stale: python -m harness.matrix_reference > docs/matrix.md")


def test_every_key_is_reached_by_an_example_and_has_a_meaning(collected):
    assert ref.problems(collected) == []


def test_settings_no_document_listed_are_in_the_reference():
    text = (ROOT / "docs" / "matrix.md").read_text()
    for needle in ("| `n_threads` |", "| `prompt_text` |", "| `stop` |", "| `ignore_eos` |",
                   "| `cooldown` |", "`summary_long`", "`story_long`", "| `repetitions` |",
                   "| `warmup` |"):
        assert needle in text, needle


@pytest.mark.parametrize("kind", sorted(ref._workload_examples()))
def test_the_workload_error_lists_the_reference_keys(collected, kind):
    """The error a misspelt key gives lists exactly the keys the reference documents."""
    [section] = [s for s in collected.sections if s.path == f"workloads[kind={kind}]"]
    entry = dict(ref._workload_examples()[kind][0], mistyped_key=1)
    matrix = {"models": [ref._MODEL], "levels": ["Q4_K_M"], "workloads": [entry]}
    with pytest.raises(ConfigError) as e:
        parse_matrix(matrix, ROOT / "matrix.yaml")
    listed = re.search(r"allowed keys here: (.*)$", str(e.value)).group(1).split(", ")
    assert sorted(listed) == sorted(section.keys)
    assert {"repetitions", "warmup", "timeout_s"} <= set(listed)


def test_a_key_added_to_a_validator_shows_up_and_needs_a_meaning(monkeypatch):
    """The reference follows the code: a key the validator allows is in it (and unexplained
    until MEANINGS has it), without touching the generator."""
    from harness.workloads import generation

    original = generation.Config.from_node.__func__

    class Checked(Node):  # the original's own key check, already done below
        def mapping(self, allowed, required=()):
            return self

    def from_node(cls, node):
        node.mapping(("name", "kind", "prompt", "prompt_text", "max_tokens", "stop",
                      "ignore_eos", "new_knob"), required=("name",))
        node.opt("new_knob", "int", 7, min=2)
        return original(cls, Checked(node.value, node.file, node.path))

    monkeypatch.setattr(generation.Config, "from_node", classmethod(from_node))
    collected = ref.collect()
    [section] = [s for s in collected.sections if s.path == "workloads[kind=generation]"]
    knob = section.keys["new_knob"]
    assert knob.types == [] and knob.defaults == [7]
    assert "workloads[kind=generation].new_knob: no meaning (add it to matrix_reference.MEANINGS)" \
        in ref.problems(collected)
    assert "| `new_knob` |" in ref.render(collected)


def test_recording_leaves_the_schema_as_it_was():
    before = {n: Node.__dict__[n] for n in ("mapping", "opt", "get", "str")}
    calls = []
    with ref.recording(calls):
        Node({"a": 1}, "f").mapping(["a"]).opt("a", "int", 0)
    assert {n: Node.__dict__[n] for n in before} == before
    assert [c[0] for c in calls][:2] == ["mapping", "opt"]


def test_the_readme_links_the_reference():
    assert "docs/matrix.md" in (ROOT / "README.md").read_text()
