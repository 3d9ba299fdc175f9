"""Cross-cell figures (harness.report.analysis): token agreement of ONNX levels with their source."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from harness.report import analysis, tables
from harness.store import Run

DIMS = {"model": "gemma", "device": "pi5", "power_mode": None, "workload": "chat",
        "swept_settings": {}}
DERIVED = {"derived_from": {"quant_type": "Q4_K_M"}}


def _rep(cell_id: str, runtime: str, level: str, rep: int, tokens: list[int] | None, **kw):
    return {"record_type": "repetition", "cell_id": cell_id, "runtime": runtime, "level": level,
            "repetition": rep, "output_tokens": tokens, **DIMS, **kw}


def _summary(cell_id: str, runtime: str, level: str, **kw):
    return {"record_type": "cell_summary", "cell_id": cell_id, "runtime": runtime, "level": level,
            "workload_kind": "generation", "metrics": {}, **DIMS, **kw}


ONNX = [_rep("onnx", "onnx", "fp32", 0, [1, 2, 3, 4], compression=DERIVED),
        _rep("onnx", "onnx", "fp32", 1, [1, 2, 3, 4], compression=DERIVED)]
SOURCE = [_rep("q4", "llama_cpp", "Q4_K_M", 0, [1, 2, 9, 9]),
          _rep("q4", "llama_cpp", "Q4_K_M", 1, [1, 2, 3, 4])]
OTHER_LEVEL = [_rep("q8", "llama_cpp", "Q8_0", 0, [7, 7, 7, 7])]


@pytest.mark.parametrize("order", list(itertools.permutations(["onnx", "source", "other"])))
def test_agreement_pairs_the_source_level_repetition_whatever_the_record_order(order):
    groups = {"onnx": ONNX, "source": SOURCE, "other": OTHER_LEVEL}
    records = [r for g in order for r in groups[g]]
    assert analysis.token_agreements(records) == {"onnx": [0.5, 1.0]}
    assert analysis.token_agreements(list(reversed(records))) == {"onnx": [0.5, 1.0]}


def test_no_partner_or_no_tokens_gives_no_figure():
    assert analysis.token_agreements(ONNX + OTHER_LEVEL) == {}
    no_tokens = [dict(r, output_tokens=None) for r in ONNX]
    assert analysis.token_agreements(no_tokens + SOURCE) == {}
    other_device = [dict(r, device="jetson") for r in SOURCE]
    assert analysis.token_agreements(ONNX + other_device) == {}


def test_source_level_may_come_from_the_summary_alone():
    """Lean repetition records leave per-cell constants such as `compression` to the summary."""
    bare = [{k: v for k, v in r.items() if k != "compression"} for r in ONNX]
    records = SOURCE + bare + [_summary("onnx", "onnx", "fp32", compression=DERIVED)]
    assert analysis.token_agreements(records) == {"onnx": [0.5, 1.0]}


def test_a_swept_setting_pairs_with_the_same_setting():
    def swept(records, n):
        return [dict(r, swept_settings={"n_threads": n}, cell_id=f"{r['cell_id']}-{n}") for r in records]
    records = swept(ONNX, 1) + swept(ONNX, 4) + swept(SOURCE, 4) \
        + swept([dict(r, output_tokens=[1, 9, 9, 9]) for r in SOURCE], 1)
    assert analysis.token_agreements(records) == {"onnx-1": [0.25, 0.25], "onnx-4": [0.5, 1.0]}


def test_a_resumed_repetition_counts_once_with_its_later_record():
    rerun = _rep("q4", "llama_cpp", "Q4_K_M", 0, [1, 2, 3, 4])
    assert analysis.token_agreements(ONNX + SOURCE + [rerun]) == {"onnx": [1.0, 1.0]}


def test_per_repetition_ids_come_from_the_outputs_files_when_there():
    """Schema 2 keeps only the first repetition's ids on the cell; outputs/<cell>.jsonl has all."""
    first_only = [dict(r, attempt="a", output_tokens=[1, 2, 9, 9]) for r in SOURCE]
    outputs = {"q4": [{"attempt": "a", "repetition": 0, "output_tokens": [1, 2, 9, 9]},
                      {"attempt": "a", "repetition": 1, "output_tokens": [1, 2, 3, 4]},
                      {"attempt": "old", "repetition": 1, "output_tokens": [5, 5, 5, 5]}]}
    asked = []

    def read(cell_id):
        asked.append(cell_id)
        return outputs.get(cell_id, [])

    onnx = [dict(r, attempt="b") for r in ONNX]
    assert analysis.token_agreements(onnx + first_only + OTHER_LEVEL, read) == {"onnx": [0.5, 1.0]}
    assert analysis.token_agreements(onnx + first_only) == {"onnx": [0.5, 0.5]}  # no files: records
    assert sorted(asked) == ["onnx", "q4"]  # only the paired cells' files are read


@pytest.mark.parametrize("onnx_first", [True, False])
def test_report_rows_get_the_figure_in_either_level_order(onnx_first):
    cells = [ONNX + [_summary("onnx", "onnx", "fp32", compression=DERIVED)],
             SOURCE + [_summary("q4", "llama_cpp", "Q4_K_M")]]
    records = [r for c in (cells if onnx_first else cells[::-1]) for r in c]
    records = [dict(r, run_id="r1", schema_version=1) for r in records]
    run = Run(path=Path("r1"), manifest={"run_id": "r1"}, records=records)
    rows = {c["level"]: c for c in tables.results_table([run]).cells}
    assert rows["fp32"]["token_agreement"] == pytest.approx(0.75)
    assert rows["fp32"]["token_agreement_n"] == 2
    assert rows["Q4_K_M"].get("token_agreement") is None
