"""budgets.yaml validation and wildcard matching."""
from __future__ import annotations

import pytest

from harness.budgets import load_budgets, parse_tolerance
from harness.errors import ConfigError, HarnessError


def test_full_budget_parses_with_directions_and_units(budgets_file):
    f = budgets_file("""
budgets:
  - name: pi5 q4
    match: {model: "gemma*", level: [Q4_K_M, Q8_0], device: rpi5}
    max: {energy_per_decode_token_j: 0.05, energy_gross_j: 12, ttft_s: 0.8,
          peak_rss_bytes: 600MiB, hallucination_rate: 0.4, kl_divergence_mean: 0.2}
    min: {decode_tokens_per_s: 20}
""")
    (b,) = load_budgets(f)
    assert b.name == "pi5 q4"
    limits = {lim.metric.name: lim for lim in b.limits}
    assert limits["peak_rss_bytes"].value == 600 * 2**20
    assert limits["decode_tokens_per_s"].relation == ">="
    assert limits["ttft_s"].relation == "<="
    assert limits["decode_tokens_per_s"].holds(25) and not limits["decode_tokens_per_s"].holds(15)
    assert b.patterns["level"] == ("Q4_K_M", "Q8_0")


@pytest.mark.parametrize("text, where, words", [
    ("budgets:\n  - max: {ttft_s: 1}\n    colour: red\n", "budgets[0].colour", "unknown key"),
    ("budgets:\n  - max: {ttft_s: fast}\n", "budgets[0].max.ttft_s", "expected a number"),
    ("budgets:\n  - max: {ttft_s: -1}\n", "budgets[0].max.ttft_s", ">= 0"),
    ("budgets:\n  - min: {ttft_s: 1}\n", "budgets[0].min.ttft_s", "belongs under 'max:'"),
    ("budgets:\n  - max: {decode_tokens_per_s: 1}\n", "budgets[0].max.decode_tokens_per_s",
     "belongs under 'min:'"),
    ("budgets:\n  - max: {joules: 1}\n", "budgets[0].max.joules", "allowed:"),
    ("budgets:\n  - match: {modle: x}\n    max: {ttft_s: 1}\n", "budgets[0].match.modle",
     "unknown key"),
    ("budgets:\n  - match: {model: x}\n", "budgets[0]", "at least one limit"),
    ("budgets:\n  - max: {peak_rss_bytes: 12 parsecs}\n", "budgets[0].max.peak_rss_bytes",
     "not a size"),
    ("budgets: []\n", "budgets", "at least 1"),
    ("limits: {}\n", "limits", "unknown key"),
    ("budgets:\n  - {name: a, max: {ttft_s: 1}}\n  - {name: a, max: {ttft_s: 2}}\n", "budgets[1]",
     "duplicate budget name"),
])
def test_invalid_budgets_name_file_and_key_path(budgets_file, text, where, words):
    f = budgets_file(text)
    with pytest.raises(ConfigError) as e:
        load_budgets(f)
    assert e.value.file == str(f)
    assert e.value.key_path == where
    assert words in e.value.message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(HarnessError, match="file not found"):
        load_budgets(tmp_path / "nope.yaml")


def test_wildcards_match_like_fnmatch(budgets_file):
    f = budgets_file("""
budgets:
  - {match: {model: "gemma*", level: "Q4_*"}, max: {ttft_s: 1}}
  - {match: {device: [rpi5, "jetson-*"], power_mode: "*"}, max: {ttft_s: 1}}
  - {match: {power_mode: "15W"}, max: {ttft_s: 1}}
""")
    by_model, by_device, by_mode = load_budgets(f)
    rec = {"model": "gemma3-270m", "level": "Q4_K_M", "runtime": "llama_cpp", "device": "rpi5",
           "power_mode": None, "workload": "chat"}
    assert by_model.matches(rec)
    assert not by_model.matches(rec | {"level": "Q8_0"})
    assert not by_model.matches(rec | {"model": "qwen"})
    assert by_device.matches(rec)  # '*' matches a cell without power mode
    assert by_device.matches(rec | {"device": "jetson-orin-nano"})
    assert not by_device.matches(rec | {"device": "pixel8"})
    assert not by_mode.matches(rec)
    assert by_mode.matches(rec | {"power_mode": "15W"})
    assert not by_model.matches(rec | {"model": "GEMMA3-270m"})  # case-sensitive, like names


def test_default_names_are_unique_and_say_what_they_match(budgets_file):
    f = budgets_file("budgets:\n  - {match: {model: a}, max: {ttft_s: 1}}\n"
                     "  - {max: {ttft_s: 1}}\n")
    a, b = load_budgets(f)
    assert a.name == "budgets[0] model=a"
    assert b.name == "budgets[1] (all cells)"


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125),
                                         ("0%", 0.0), ("150%", 1.5)])
def test_tolerance_parses(text, value):
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["5", "five%", "-3%", ""])
def test_bad_tolerance_is_refused(text):
    with pytest.raises(HarnessError, match="--tolerance"):
        parse_tolerance(text)


def test_committed_budget_files_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "benchmarks"
    files = sorted(root.glob("budgets*.yaml"))
    assert root / "budgets.example.yaml" in files
    for f in files:
        assert load_budgets(f), f
