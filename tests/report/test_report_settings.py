"""Runtime settings in the report: a threads sweep, two generation workloads and llama-bench
tests each keep their own row in every format; roofline, threads and the emulated badge show."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from harness.report import charts, tables
from harness.report.markdown import render_markdown
from harness.report.csvout import render_csv
from harness.report.tables import Constraints
from harness.report.terminal import results_table_text
from harness.store import load_run

from report_runs import BANDWIDTH_BYTES_PER_S, BYTES_PER_TOKEN, SWEEP, write_run, write_sweep_run

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep_run(tmp_path_factory.mktemp("sweep"), capped=True)


@pytest.fixture(scope="module")
def table(sweep_dir):
    return tables.load_results([sweep_dir])


@pytest.fixture(scope="module")
def emulated_table(tmp_path_factory):
    return tables.load_results([write_sweep_run(tmp_path_factory.mktemp("emu"), emulated=True)])


def _key(c):
    return (c["speed_workload"], c["n_threads"], (c["swept_settings"] or {}).get("n_threads"))


def test_every_workload_and_setting_is_its_own_configuration_row(table):
    configs = tables.configurations(table)
    assert not [w for w in table.warnings if "later run" in w]
    assert len(table.cells) == 11  # (2 gen + closed-book) x 3 asked counts + pp512 + tg128
    keys = [_key(c) for c in configs]
    assert len(keys) == len(set(keys)) == 8
    assert set(keys) == {(wl, ran, asked) for wl in ("gen-short", "gen-long")
                         for ran, asked in ((1, 1), (2, 2), (2, 4))} | {("pp512", 2, None),
                                                                       ("tg128", 2, None)}
    by = {_key(c): c for c in configs}
    for wl, scale in (("gen-short", 1.0), ("gen-long", 0.9)):
        for n, (tps, _) in SWEEP.items():
            assert by[(wl, n, n)]["decode_tokens_per_s"] == pytest.approx(tps * scale)
    # quality joined from the closed-book cell of the same settings, not another thread count
    assert by[("gen-short", 1, 1)]["hallucination_rate"] == pytest.approx(0.3)
    assert by[("gen-long", 2, 2)]["hallucination_rate"] == pytest.approx(0.4)
    assert by[("gen-long", 2, 2)]["quality_workload"] == "closed-book"
    # llama-bench cells: pp has prefill only, tg has decode; no quality at their settings
    assert by[("pp512", 2, None)]["prefill_tokens_per_s"] == pytest.approx(669.0)
    assert by[("pp512", 2, None)]["decode_tokens_per_s"] is None
    assert by[("tg128", 2, None)]["llama_bench_test"] == "tg128"
    assert by[("tg128", 2, None)]["hallucination_rate"] is None


def test_roofline_and_settings_are_carried(table):
    c = next(c for c in tables.configurations(table) if _key(c) == ("gen-short", 2, 2))
    assert (c["n_threads"], c["n_threads_batch"], c["n_batch"], c["n_ctx"]) == (2, 2, 512, 2048)
    assert c["threads_source"] == "matrix"
    assert c["decode_roofline_fraction"] == pytest.approx(72.0 * BYTES_PER_TOKEN / BANDWIDTH_BYTES_PER_S)
    assert c["memory_bandwidth_bytes_per_s"] == BANDWIDTH_BYTES_PER_S


def test_capped_cell_keeps_its_row_and_its_warning(table):
    capped = [c for c in tables.configurations(table) if _key(c)[2] == 4]
    assert len(capped) == 2
    assert all("capped" in " ".join(c["warnings"]) for c in capped)
    assert all(c["variant"].endswith("2 threads (asked 4)") for c in capped)


def test_same_sweep_in_two_runs_is_superseded_per_setting(tmp_path):
    a = write_sweep_run(tmp_path, run_id="r1", created="2026-12-01T10:00:00Z", llama_bench=False)
    b = write_sweep_run(tmp_path, run_id="r2", created="2026-12-02T10:00:00Z", llama_bench=False)
    t = tables.load_results([a, b])
    assert len(t.cells) == 6 and {c["run_id"] for c in t.cells} == {"r2"}
    superseded = [w for w in t.warnings if "the later run (r2) is shown" in w]
    assert len(superseded) == 6  # 2 thread counts x (2 gen + closed-book)
    assert any("gen-long · 1 thread on" in w for w in superseded)


def test_threads_sweep_shows_the_energy_speed_tradeoff(table):
    sweeps = tables.threads_sweeps(tables.configurations(table))
    assert [s["label"] for s in sweeps] == ["tiny Q4_K_M · gen-long", "tiny Q4_K_M · gen-short"]
    for s in sweeps:
        assert [p["n_threads"] for p in s["points"]] == [1, 2, 2]
        assert s["fastest"]["n_threads"] == 2 and s["least_energy"]["n_threads"] == 1


def test_markdown_has_a_row_per_setting_and_the_threads_and_llama_bench_tables(table):
    text = render_markdown(table, Constraints(), "report.html")
    summary = text.split("**Threads sweep**")[0]
    head = next(line for line in summary.splitlines() if line.startswith("| Device |"))
    for col in ("Workload", "Threads", "Roofline (decode) (% of bound)", "Prefill speed (tok/s)"):
        assert f"| {col} |" in head
    rows = [line for line in summary.splitlines() if line.startswith("| laptop (box-1) |")]
    assert len(rows) == 8
    assert sum("| gen-long | 1 |" in r for r in rows) == 1
    assert sum("| gen-long | 2 (asked 4) |" in r for r in rows) == 1
    assert "least energy per token at 1 thread (50.0 mJ, 48.0 tok/s)" in text
    assert "fastest at 2 threads (72.0 tok/s, 60.0 mJ/token)" in text
    assert "| pp512 | 669.00 ± 6.69 |" in text and "| tg128 | 72.70 ± 0.73 |" in text
    assert "n\\_threads 4 capped to the host's 2 cores" in text
    assert "later run" not in text


def test_csv_has_one_row_per_setting_with_the_settings(table):
    rows = list(csv.DictReader(io.StringIO(render_csv(table))))
    assert len(rows) == 8
    assert {(r["speed_workload"], r["n_threads"], r["swept_settings"]) for r in rows} >= {
        ("gen-short", "1", '{"n_threads": 1}'), ("gen-short", "2", '{"n_threads": 4}'),
        ("pp512", "2", "")}
    tg = next(r for r in rows if r["llama_bench_test"] == "tg128")
    assert float(tg["decode_roofline_fraction"]) == pytest.approx(72.7 * BYTES_PER_TOKEN / BANDWIDTH_BYTES_PER_S)
    assert tg["speed_kind"] == "llama_bench" and tg["threads_source"] == "physical_cores"


def test_old_runs_without_the_fields_still_render():
    t = tables.load_results([FIXTURE])
    configs = tables.configurations(t)
    assert all(c["n_threads"] is None and c["variant"] == "" for c in configs)
    text = render_markdown(t, Constraints(), "report.html")
    assert "| Threads |" not in text and "Threads sweep" not in text
    rows = list(csv.DictReader(io.StringIO(render_csv(t))))
    assert len(rows) == 7 and all(r["n_threads"] == "" for r in rows)


def test_emulated_figures_are_badged_in_every_table(emulated_table):
    pytest.importorskip("matplotlib", reason="the page's Pareto charts need matplotlib")
    from harness.report.html import render_html

    page = render_html(emulated_table, Path("/tmp"), Constraints())
    assert re.findall(r'<section id="([a-z]+)">', page)[:4] == ["headline", "devices", "threads",
                                                                  "llamabench"]
    bodies = re.findall(r"<tbody>(.*?)</tbody>", page, flags=re.S)
    assert len(bodies) >= 6  # devices, threads, llama-bench, two pivots, quality
    for body in bodies:
        for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
            assert ">emulated<" in row, row[:200]
    md = render_markdown(emulated_table, Constraints(), "report.html")
    table_rows = [line for line in md.splitlines() if line.startswith("| laptop")]
    assert len(table_rows) == 6 + 4 + 2  # summary, threads sweep, llama-bench
    assert all(line.rstrip(" |").endswith("emulated") for line in table_rows)


def test_threads_chart_is_plain_offline_svg(table):
    sweeps = tables.threads_sweeps(tables.configurations(table))
    series = [{"label": s["label"], "points": [{"x": p["n_threads"], "y": p["decode_tokens_per_s"],
                                                "low": p["decode_tokens_per_s_ci95_low"],
                                                "high": p["decode_tokens_per_s_ci95_high"],
                                                "ring": p is s["fastest"]} for p in s["points"]]}
              for s in sweeps]
    svg = charts.threads_svg(series, "decode_tokens_per_s", "Decode speed vs threads")
    assert svg == charts.threads_svg(series, "decode_tokens_per_s", "Decode speed vs threads")
    assert svg.count("<polyline") == 2 and svg.count('r="6.5"') == 2
    assert "href" not in svg and "<image" not in svg
    assert ">1</text>" in svg and ">2</text>" in svg  # the thread counts on the x axis


def test_terminal_table_one_row_per_cell_from_records_or_table(sweep_dir, table):
    run = load_run(sweep_dir)
    text = results_table_text(run.summaries).split("\n\n")[0]  # the table, without its legend
    lines = text.splitlines()
    assert lines[0].split() == ["cell", "status", "threads", "ttft_s", "decode_tok/s",
                                "prefill_tok/s", "roofline_%", "peak_MiB", "J/token", "energy",
                                "acc.", "halluc./ans.", "abstain", "flags"]
    assert len(lines) == 1 + 11
    gen = [line for line in lines if "/ gen-short" in line]
    assert [line.split()[8] for line in gen] == ["1", "2", "2"]  # threads column
    assert sum("2 (asked 4)" in line and "1 warning" in line for line in gen) == 1
    tg = next(line for line in lines if "/ tg128" in line)
    assert "92±" in tg  # roofline % of 72.7 tok/s x 253 MB / 20 GB/s
    assert sorted(text.splitlines()[1:]) == sorted(
        results_table_text(table).split("\n\n")[0].splitlines()[1:])


def test_terminal_table_badges_emulation_and_shows_failures(tmp_path):
    d = write_sweep_run(tmp_path, emulated=True, llama_bench=False)
    failure = {"record_type": "cell_failed", "model": "tiny", "level": "Q2_K",
               "runtime": "llama_cpp", "device": "laptop", "power_mode": None, "workload": "gen",
               "reason": "out of memory while loading", "failure_kind": "oom"}
    text = results_table_text(load_run(d).summaries + [failure])
    lines = text.split("\n\n")[0].splitlines()
    assert all("EMULATED" in line for line in lines[1:-1])
    assert "prefill_tok/s" not in lines[0]  # only with llama-bench pp tests
    assert "FAILED" in lines[-1] and "out of memory while loading" in lines[-1]


def test_terminal_table_renders_old_runs(tmp_path):
    old = load_run(write_run(tmp_path, "old"))
    lines = results_table_text(old.summaries).split("\n\n")[0].splitlines()
    assert len(lines) == 3
    gen = next(line for line in lines if "/ gen" in line)
    assert "21.0±" in gen and "EMULATED" not in gen  # 20, 21, 22 tok/s


def test_pivot_keeps_two_power_modes_of_one_device_apart(tmp_path):
    pytest.importorskip("matplotlib", reason="the page's Pareto charts need matplotlib")
    from harness.records import CellKey
    from harness.report.html import render_html
    from harness.store import RunWriter

    from report_runs import HOST, _gen_reps, write_settings_cell

    w = RunWriter.create(tmp_path, "modes")
    w.write_manifest({"schema_version": 1, "run_id": "modes", "created_utc": "2026-12-03T00:00:00Z",
                      "host": HOST, "device": {"profile": "jetson", "emulated": False}})
    for mode, tps in (("15W", 40.0), ("7W", 25.0)):
        write_settings_cell(w, "modes", CellKey("tiny", "Q4_K_M", "llama_cpp", "jetson", mode, "gen"),
                            "generation", 6, {}, _gen_reps(tps, 0.1))
    page = render_html(tables.load_results([w.dir]), tmp_path, Constraints())
    pivot = page.split("Decode speed (tok/s) per level and device")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", pivot.split("<tbody>")[1], flags=re.S)
    assert len(rows) == 2
    assert "[15W] · 6 threads" in rows[0] + rows[1] and "[7W] · 6 threads" in rows[0] + rows[1]
    assert ">40.0<" in "".join(rows) and ">25.0<" in "".join(rows)
