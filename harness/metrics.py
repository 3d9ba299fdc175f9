"""The metric registry: every figure a record carries, described once.

A metric's meaning used to live in six places (budgets, report specs, table code, CSV, the
launcher's summary rules); each new metric had to touch all of them. Here is the single entry:
its SI unit (records always store SI), which direction is better, its kind, whether cell summaries
carry statistics for it, how people read it (label, display unit, scale, format) and what it
means. Launcher summaries, budgets, the terminal table and every report format read this table.

Adding a metric: append one `Metric(...)` below and have a workload or the energy/device rooms put
the field on repetition records. Nothing else is needed for it to be summarised, budgetable,
shown and documented (docs/records.md is generated from this table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

KINDS = ("latency", "memory", "energy", "quality", "model", "network")


@dataclass(frozen=True)
class Metric:
    name: str  # the record field, SI unit in the name (`_s`, `_j`, `_w`, `_bytes`, `_per_s`)
    unit: str  # SI unit of the stored value ("1" for a ratio/fraction)
    better: str | None  # "lower" | "higher" | None (no better direction: a descriptive figure)
    kind: str  # one of KINDS
    label: str  # what people read
    display_unit: str  # unit shown in tables
    scale: float  # shown value = stored value * scale
    fmt: str  # format of the shown value
    doc: str  # what it means, for docs/records.md
    summarised: bool = True  # cell summaries carry mean/median/p90/stdev/CI/n
    unstable_check: bool = True  # flagged when stdev > 10% of mean (timing/energy/memory)

    @property
    def lower_is_better(self) -> bool:
        return self.better == "lower"

    @property
    def higher_is_worse(self) -> bool:
        return self.better == "lower"

    def show(self, value: float | None) -> str:
        return "" if value is None else self.fmt.format(value * self.scale)


def _m(name: str, unit: str, better: str | None, kind: str, label: str, display_unit: str,
       scale: float, fmt: str, doc: str, **kw: bool) -> Metric:
    return Metric(name, unit, better, kind, label, display_unit, scale, fmt, doc, **kw)


_Q = dict(unstable_check=False)  # quality rates: deterministic, their spread is over items

METRICS: dict[str, Metric] = {m.name: m for m in (
    # latency
    _m("load_time_s", "s", "lower", "latency", "Load time", "s", 1.0, "{:.2f}",
       "Wall time of backend.load (model file to ready context)."),
    _m("ttft_s", "s", "lower", "latency", "Time to first token", "ms", 1e3, "{:.0f}",
       "Prompt start to the first generated token (prefill)."),
    _m("prefill_tokens_per_s", "tokens/s", "higher", "latency", "Prefill speed", "tok/s", 1.0,
       "{:.1f}", "Prompt tokens / prefill time (llama_bench pp: N / time of the N tokens)."),
    _m("decode_tokens_per_s", "tokens/s", "higher", "latency", "Decode speed", "tok/s", 1.0,
       "{:.1f}", "Generated tokens after the first / time after the first (llama_bench tg: N / "
       "time of the N single-token decodes)."),
    _m("e2e_latency_s", "s", "lower", "latency", "End-to-end latency", "s", 1.0, "{:.2f}",
       "Prompt start to the last token (the whole repetition's work)."),
    _m("decode_roofline_fraction", "1", "higher", "latency", "Roofline (decode)", "% of bound",
       100.0, "{:.0f}", "decode tok/s x bytes read per decoded token / measured memory read "
       "bandwidth: 1.0 is the memory-bandwidth bound."),
    # memory
    _m("peak_rss_bytes", "B", "lower", "memory", "Peak memory (RSS)", "MiB", 2 ** -20, "{:.0f}",
       "Largest resident set sampled (20 Hz) during the repetition."),
    _m("peak_rss_hwm_bytes", "B", "lower", "memory", "Peak memory (OS high-water mark)", "MiB",
       2 ** -20, "{:.0f}", "The kernel's VmHWM of the cell process (since it started)."),
    _m("rss_after_load_bytes", "B", "lower", "memory", "Memory after load", "MiB", 2 ** -20,
       "{:.0f}", "Resident set right after the model loaded."),
    _m("reference_rss_bytes", "B", None, "memory", "Reference level memory", "MiB", 2 ** -20,
       "{:.0f}", "Fidelity cells: resident set the preloaded reference level added (taken off "
       "peak_rss_bytes and peak_rss_hwm_bytes, which are the level's own)."),
    # energy
    _m("energy_gross_j", "J", "lower", "energy", "Energy (gross)", "J", 1.0, "{:.2f}",
       "Energy over the repetition's window, as the sensor covers it."),
    _m("energy_net_j", "J", "lower", "energy", "Energy (net of idle)", "J", 1.0, "{:.2f}",
       "Gross minus the idle baseline power x window."),
    _m("baseline_power_w", "W", None, "energy", "Idle baseline power", "W", 1.0, "{:.2f}",
       "Power with the model loaded and idle, measured before the repetitions."),
    _m("power_avg_w", "W", "lower", "energy", "Average power", "W", 1.0, "{:.2f}",
       "Gross energy / window."),
    _m("power_peak_w", "W", "lower", "energy", "Peak power", "W", 1.0, "{:.2f}",
       "Highest sampled power in the window."),
    _m("energy_prefill_j", "J", "lower", "energy", "Prefill energy", "J", 1.0, "{:.3f}",
       "Gross energy of the prefill phase."),
    _m("energy_decode_j", "J", "lower", "energy", "Decode energy", "J", 1.0, "{:.3f}",
       "Gross energy of the decode phase."),
    _m("energy_per_prefill_token_j", "J/token", "lower", "energy", "Energy / prefill token", "mJ",
       1e3, "{:.2f}", "Prefill energy / prompt tokens."),
    _m("energy_per_decode_token_j", "J/token", "lower", "energy", "Energy / decode token", "mJ",
       1e3, "{:.2f}", "Decode energy / decoded tokens (tokens_out - 1 for a generation)."),
    _m("tokens_per_j", "tokens/J", "higher", "energy", "Tokens per joule", "tok/J", 1.0, "{:.2f}",
       "Generated tokens / gross energy."),
    _m("energy_load_j", "J", "lower", "energy", "Load energy", "J", 1.0, "{:.2f}",
       "Gross energy of the model load."),
    _m("co2e_g", "g", "lower", "energy", "Carbon", "mg CO2e", 1e3, "{:.2f}",
       "Net energy x grid carbon intensity."),
    # energy uncertainty (harness.energy.uncertainty): relative standard uncertainties, k = 1
    _m("energy_u_sensor_rel", "1", None, "energy", "Sensor uncertainty", "%", 100.0, "{:.2f}",
       "The sensor's part of the energy's relative standard uncertainty: its stated accuracy "
       "(limit / sqrt 3), or with a calibration applied the fit's and the reference's; null "
       "when no accuracy is published.", unstable_check=False),
    _m("energy_u_sampling_rel", "1", None, "energy", "Sampling uncertainty", "%", 100.0,
       "{:.2f}", "Sampling's part of the window energy's relative standard uncertainty: one "
       "reading interval (or the sensor's refresh) / window / sqrt 3; above 1% is flagged.", unstable_check=False),
    _m("energy_prefill_u_sampling_rel", "1", None, "energy", "Sampling uncertainty (prefill)",
       "%", 100.0, "{:.2f}", "As energy_u_sampling_rel, over the prefill phase.",
       unstable_check=False),
    _m("energy_decode_u_sampling_rel", "1", None, "energy", "Sampling uncertainty (decode)",
       "%", 100.0, "{:.2f}", "As energy_u_sampling_rel, over the decode phase (J/decode "
       "token).", unstable_check=False),
    # quality (rates in [0, 1]; intervals per item as <name>_ci95_low/high)
    _m("hallucination_rate", "1", "lower", "quality", "Hallucination rate", "%", 100.0, "{:.1f}",
       "Hallucinated answers / all items.", **_Q),
    _m("hallucination_rate_attempted", "1", "lower", "quality", "Hallucination rate (attempted)",
       "%", 100.0, "{:.1f}", "Hallucinated / items not abstained.", **_Q),
    _m("accuracy", "1", "higher", "quality", "Accuracy", "%", 100.0, "{:.1f}",
       "Correct answers / all items.", **_Q),
    _m("abstention_rate", "1", None, "quality", "Abstention rate", "%", 100.0, "{:.1f}",
       "Abstained answers / all items.", **_Q),
    _m("empty_rate", "1", "lower", "quality", "Empty answers", "%", 100.0, "{:.1f}",
       "Empty answers / all items.", **_Q),
    _m("unscorable_rate", "1", "lower", "quality", "Unscorable answers", "%", 100.0, "{:.1f}",
       "Answers no scoring rule could decide (neither correct, hallucinated nor abstained) / all "
       "items; they count as attempted.", **_Q),
    _m("neither_rate", "1", None, "quality", "Neither right nor hallucinated", "%", 100.0,
       "{:.1f}", "Runs scored by HaluEval's first (F1) rules only: answers close to neither "
       "reference / all items; `python -m harness rescore` relabels them.", **_Q),
    _m("mc1", "1", "higher", "quality", "TruthfulQA MC1", "%", 100.0, "{:.1f}",
       "Share of questions whose best-scored choice is the true one.", **_Q),
    _m("mc2", "1", "higher", "quality", "TruthfulQA MC2", "%", 100.0, "{:.1f}",
       "Normalised probability mass on the true choices.", **_Q),
    _m("kl_divergence_mean", "nats", "lower", "quality", "KL divergence vs reference", "nats", 1.0,
       "{:.4f}", "Mean KL(reference || level) of next-token distributions.", **_Q),
    _m("top1_agreement", "1", "higher", "quality", "Top-1 agreement vs reference", "%", 100.0,
       "{:.1f}", "Share of positions whose argmax token equals the reference's.", **_Q),
    _m("perplexity_ratio", "1", "lower", "quality", "Perplexity ratio vs reference", "x", 1.0,
       "{:.3f}", "Perplexity of the level / perplexity of the reference.", **_Q),
    _m("perplexity", "1", "lower", "quality", "Perplexity", "", 1.0, "{:.2f}",
       "Perplexity of the level on the fidelity windows.", **_Q),
    _m("perplexity_reference", "1", None, "quality", "Perplexity (reference)", "", 1.0, "{:.2f}",
       "Perplexity of the reference level on the same windows.", **_Q),
    _m("token_agreement", "1", "higher", "quality", "Token agreement vs llama.cpp", "%", 100.0,
       "{:.1f}", "Share of greedy tokens an ONNX level shares with its GGUF source's llama.cpp "
       "run (computed across cells by the report).", summarised=False, **_Q),
    # counts (summarised: a quality workload's totals, a generation's lengths)
    _m("tokens_in", "tokens", None, "latency", "Prompt tokens", "tokens", 1.0, "{:.0f}",
       "Tokens of the prompt(s) processed.", unstable_check=False),
    _m("tokens_out", "tokens", None, "latency", "Generated tokens", "tokens", 1.0, "{:.0f}",
       "Tokens generated.", unstable_check=False),
    _m("n_items", "items", None, "quality", "Items", "items", 1.0, "{:.0f}",
       "Quality items scored.", unstable_check=False),
    _m("n_tokens", "tokens", None, "quality", "Scored tokens", "tokens", 1.0, "{:.0f}",
       "Token positions scored by fidelity.", unstable_check=False),
    _m("window_s", "s", None, "latency", "Measured window", "s", 1.0, "{:.2f}",
       "Length of the repetition's energy window."),
    # sustained use (the `soak` kind; windows in samples/<cell_id>.jsonl, docs/sustained.md)
    _m("soak_tokens_per_s", "tokens/s", "higher", "latency", "Soak speed", "tok/s", 1.0, "{:.1f}",
       "Soak: generated tokens / soak duration (prefill and every answer included)."),
    _m("soak_answers", "answers", None, "latency", "Soak answers", "answers", 1.0, "{:.0f}",
       "Soak: answers completed.", unstable_check=False),
    _m("soak_burst_tokens_per_s", "tokens/s", "higher", "latency", "Burst speed", "tok/s", 1.0,
       "{:.1f}", "Soak: tokens/s over the first compare_windows windows (device still cool)."),
    _m("soak_sustained_tokens_per_s", "tokens/s", "higher", "latency", "Sustained speed", "tok/s",
       1.0, "{:.1f}", "Soak: tokens/s over the last compare_windows windows."),
    _m("soak_sustained_ratio", "1", "higher", "latency", "Sustained / burst", "%", 100.0, "{:.0f}",
       "Soak: sustained tokens/s / burst tokens/s (1.0: no slow-down)."),
    _m("soak_time_to_throttle_s", "s", "higher", "latency", "Time to first throttle", "s", 1.0,
       "{:.0f}", "Soak: seconds from the start to the first device poll that showed throttling "
       "(null: never throttled); resolution state_poll_s.", unstable_check=False),
    _m("soak_throttled_fraction", "1", "lower", "latency", "Windows throttled", "%", 100.0,
       "{:.0f}", "Soak: share of windows in which any poll showed throttling.",
       unstable_check=False),
    _m("soak_max_temp_c", "degC", "lower", "latency", "Hottest temperature", "degC", 1.0,
       "{:.1f}", "Soak: highest temperature of the profile's thermal zones.", unstable_check=False),
    _m("soak_energy_per_token_drift", "1", "lower", "energy", "Energy/token drift", "%", 100.0,
       "{:+.1f}", "Soak: gross J/token of the last compare_windows windows / the first ones - 1.",
       unstable_check=False),
    _m("battery_tokens_per_pct", "tokens/%", "higher", "energy", "Tokens per 1% battery",
       "tok/%", 1.0, "{:.0f}", "Soak on battery: tokens generated between the gauge's first and "
       "last step / percent between them (null: refused, see battery_note)."),
    _m("battery_answers_per_pct", "answers/%", "higher", "energy", "Answers per 1% battery",
       "answers/%", 1.0, "{:.1f}", "Soak on battery: answers completed per percent, as above."),
    _m("battery_pct_timed", "%", None, "energy", "Battery span timed", "%", 1.0, "{:.2f}",
       "Soak on battery: percent of battery between the first and last gauge step (the "
       "resolution achieved).", unstable_check=False),
    _m("battery_life_continuous_s", "s", "higher", "energy", "Battery life (continuous)", "h",
       1 / 3600, "{:.1f}", "Soak on battery: a full battery at the soak's own pace (100% / "
       "percent per second)."),
    _m("battery_life_at_rate_s", "s", "higher", "energy", "Battery life (stated rate)", "h",
       1 / 3600, "{:.1f}", "Soak on battery: a full battery at answers_per_h (answering only; "
       "idle drain between answers not counted)."),
    # offloading (runtime openai_http): the server's side and the network, seen from the device
    _m("server_energy_j", "J", "lower", "energy", "Server energy", "J", 1.0, "{:.3f}",
       "Offloaded cells: the server's energy over the repetition's window (gross, as its sensor "
       "covers it), from `meter serve` on the server or the level's J/token estimate; the "
       "method is the cell's offload.server_energy.method (measured / estimated / scripted). "
       "The network in between is not metered."),
    _m("server_co2e_g", "g", "lower", "energy", "Server carbon", "mg CO2e", 1e3, "{:.2f}",
       "server_energy_j x the server's grid intensity (its own country: offload."
       "server_carbon_intensity_g_per_kwh)."),
    _m("network_sent_bytes", "B", "lower", "network", "Sent to the server", "KiB", 2 ** -10,
       "{:.1f}", "HTTP bytes the device sent in the window (request lines, headers, bodies; "
       "not TCP/IP or TLS overhead).", unstable_check=False),
    _m("network_received_bytes", "B", "lower", "network", "Received from the server", "KiB",
       2 ** -10, "{:.1f}", "HTTP bytes the device received in the window (status, headers, "
       "chunk framing, streamed body; not TCP/IP or TLS overhead).", unstable_check=False),
)}


def get(name: str) -> Metric:
    return METRICS[name]


def summarised() -> tuple[str, ...]:
    return tuple(n for n, m in METRICS.items() if m.summarised)


def budget_sides(name: str) -> tuple[str, ...]:
    """Where budgets.yaml may limit a metric: ("max",) when lower is better, ("min",) when higher
    is better, ("max", "min") for one without a better direction (a count, a length: a range to
    stay in); () when no cell summary carries it. Every summarised metric is budgetable, so a
    figure the report shows can always be gated (issue 17: `co2e_g`, `tokens_per_j`)."""
    m = METRICS[name]
    if not m.summarised:
        return ()
    return {"lower": ("max",), "higher": ("min",)}.get(m.better or "", ("max", "min"))


def budgetable(better: str | None = None) -> tuple[str, ...]:
    """Metrics `check` accepts; `better`="lower": those allowed under `max:`, "higher": under `min:`."""
    side = {None: None, "lower": "max", "higher": "min"}[better]
    return tuple(n for n in METRICS if budget_sides(n) and (side is None or side in budget_sides(n)))


def of_kind(*kinds: str) -> tuple[str, ...]:
    return tuple(n for n, m in METRICS.items() if m.kind in kinds)


def interval_fields(names: Iterable[str]) -> tuple[str, ...]:
    """The per-item interval fields a quality workload may record beside its rates."""
    return tuple(f"{n}_ci95_{side}" for n in names for side in ("low", "high"))
