"""harness.results: runs as pandas DataFrames (the notebook API), and pandas kept off devices."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from harness import results  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.metrics import METRICS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_runs import write_run, write_sweep_run  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results"


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path, "r1", tps=20.0)


def test_one_row_per_repetition_with_registry_columns_and_units(run):
    df = results.load([run])
    gen = df[df.workload == "gen"].sort_values("repetition")
    assert list(gen.repetition) == [0, 1, 2]
    assert list(gen.decode_tokens_per_s) == [20.0, 21.0, 22.0]
    assert df.decode_tokens_per_s.dtype == "float64"
    assert df.attrs["units"]["decode_tokens_per_s"] == METRICS["decode_tokens_per_s"].unit
    assert df.attrs["units"]["peak_rss_bytes"] == "B"
    assert {"run_id", "host", "cell_id", "model", "level", "runtime", "device", "workload"} <= set(df)
    assert set(df.host) == {"box-1"}
    # the closed-book repetition has no decode speed: NaN, not a dropped row
    assert df[df.workload == "closed-book"].decode_tokens_per_s.isna().all()


def test_one_row_per_cell_with_mean_and_statistics(run):
    df = results.load([run], kind="cell")
    assert len(df) == 2 and set(df.status) == {"ok"}
    gen = df[df.workload == "gen"].iloc[0]
    assert gen.decode_tokens_per_s == pytest.approx(21.0)
    assert gen.decode_tokens_per_s_median == pytest.approx(21.0)
    assert gen.decode_tokens_per_s_stdev == pytest.approx(1.0)
    assert gen.decode_tokens_per_s_ci95_low < 21.0 < gen.decode_tokens_per_s_ci95_high
    assert gen.decode_tokens_per_s_n == 3
    assert df.attrs["units"]["decode_tokens_per_s_ci95_low"] == "tokens/s"
    assert "decode_tokens_per_s_n" not in df.attrs["units"]
    # a rate's interval is the per-item Wilson interval the workload recorded, not a t-interval
    cb = df[df.workload == "closed-book"].iloc[0]
    assert cb.hallucination_rate == 0.5
    assert cb.hallucination_rate_ci95_low == pytest.approx(0.0945, abs=1e-3)


def test_settings_are_integers_and_repetitions_carry_cell_constants(tmp_path):
    run = write_sweep_run(tmp_path)
    reps = results.load([run])
    cells = results.load([run], kind="cell")
    assert str(cells.n_threads.dtype) == "Int64"
    assert sorted(set(cells.n_threads.dropna())) == sorted(set(reps.n_threads.dropna()))
    swept = {results.swept_settings(s).get("n_threads") for s in cells.swept_settings}
    assert swept >= {1, 2}
    # groupable: swept_settings is text, one group per thread count
    assert cells.groupby("swept_settings").size().size == len(swept)


def test_failed_cells_are_rows_with_their_reason():
    df = results.load([FIXTURE], kind="cell")
    failed = df[df.status == "failed"]
    assert len(failed) == 1 and failed.reason.iloc[0]
    assert (df.status == "ok").sum() == 14


def test_unknown_kind_is_an_error(run):
    with pytest.raises(HarnessError, match="kind="):
        results.load([run], kind="cells")


def test_runner_and_terminal_table_never_import_pandas():
    code = ("import sys, harness.cli, harness.run.flow, harness.launcher, harness.cell\n"
            "from harness.report.terminal import results_table_text\n"
            "text = results_table_text([{'record_type': 'cell_summary', 'run_id': 'r', "
            "'cell_id': 'c', 'model': 'm', 'level': 'Q4_0', 'runtime': 'llama_cpp', "
            "'device': 'd', 'workload': 'gen', 'status': 'ok', 'n_repetitions': 1, "
            "'metrics': {'decode_tokens_per_s': {'mean': 9.5, 'n': 1}}}])\n"
            "assert '9.5' in text, text\n"
            "assert 'pandas' not in sys.modules, 'pandas imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
