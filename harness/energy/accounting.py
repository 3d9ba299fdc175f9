"""From one repetition's trace to the energy fields of its record (docs/ARCHITECTURE.md).

Choices (documented in docs/energy.md): phase and per-token energies are gross (what the device
spends in that phase; always positive and independent of baseline noise); net energy subtracts
the idle baseline over the window; carbon is computed from net energy, as the issue asks.
"""
from __future__ import annotations

import math

from .config import ScriptedParams
from .sensors import scripted
from .trace import Trace
from .uncertainty import provenance_fields, record_fields

J_PER_KWH = 3.6e6

FIGURES = ("energy_gross_j", "energy_net_j", "power_avg_w", "power_peak_w", "energy_prefill_j",
           "energy_decode_j", "energy_per_prefill_token_j", "energy_per_decode_token_j",
           "tokens_per_j", "co2e_g")


def account(trace: Trace, window: tuple[float, float], phases: dict[str, tuple[float, float]],
            baseline_power_w: float | None, tokens_in: int, tokens_out: int,
            carbon_g_per_kwh: float, carbon_source: str | None = None,
            decode_tokens: int | None = None) -> dict:
    """Energy record fields for one window (monotonic s) of a trace.

    `decode_tokens`: tokens decoded in the decode phase; default tokens_out - 1 (a generation's
    first token comes out of prefill). llama-bench's tg test decodes all of its tokens there.

    An invalid trace (or a window outside it) gives energy_valid False, the reason, and null
    figures: never an estimate in place of a measurement.
    """
    rec = _provenance(trace, carbon_g_per_kwh, carbon_source)
    rec["phases"] = {k: [round(a - trace.start_s, 6), round(b - trace.start_s, 6)]
                     for k, (a, b) in phases.items()} if trace.sample_count else {}
    baseline = _finite_or_none(baseline_power_w)
    rec["baseline_power_w"] = baseline
    reason = trace.invalid_reason or _window_problem(trace, window, phases)
    if reason:
        rec.update({k: None for k in FIGURES}, energy_valid=False, energy_invalid_reason=reason)
        return rec
    n_decode = tokens_out - 1 if decode_tokens is None else decode_tokens
    rec.update(_figures(trace, window, phases, baseline, tokens_in, tokens_out, n_decode,
                        carbon_g_per_kwh))
    rec.update(energy_valid=True, energy_invalid_reason=None)
    rec.update(record_fields(trace.sensor, rec["power_avg_w"], trace.achieved_rate_hz,
                             window[1] - window[0], {k: b - a for k, (a, b) in phases.items()}))
    if "scripted_params" in trace.sensor:  # test-only sensor: the analytic truth, for e2e checks
        rec["energy_scripted_true_j"] = scripted.true_energy_j(
            ScriptedParams(**trace.sensor["scripted_params"]), *window)
    return rec


def load_energy_j(trace: Trace, window: tuple[float, float]) -> float | None:
    """`energy_load_j` for the cell: gross joules of the model-load window, None if invalid."""
    if trace.invalid_reason or _window_problem(trace, window, {}):
        return None
    return trace.window(*window)


def _provenance(trace: Trace, carbon_g_per_kwh: float, carbon_source: str | None) -> dict:
    s = trace.sensor
    rate = trace.achieved_rate_hz
    return {"energy_method": s.get("method"), "energy_sensor": s.get("sensor"),
            "energy_model": s.get("model"), "energy_coverage": s.get("coverage"),
            "sample_rate_hz": round(rate, 3) if rate else None,
            "sample_count": trace.sample_count, "sample_gaps": trace.gaps,
            "carbon_intensity_g_per_kwh": carbon_g_per_kwh, "carbon_source": carbon_source,
            **provenance_fields(s)}


def _window_problem(trace: Trace, window: tuple[float, float],
                    phases: dict[str, tuple[float, float]]) -> str | None:
    for name, (a, b) in {"window": window, **phases}.items():
        if b < a or (name == "window" and b == a):
            return f"{name} [{a}, {b}] is empty or reversed"
        if not (trace.start_s <= a and b <= trace.end_s):
            return (f"{name} [{a:.3f}, {b:.3f}] lies outside the sensor trace "
                    f"[{trace.start_s:.3f}, {trace.end_s:.3f}]")
    return None


def _figures(trace: Trace, window: tuple[float, float], phases: dict[str, tuple[float, float]],
             baseline_w: float | None, tokens_in: int, tokens_out: int, n_decode: int,
             carbon_g_per_kwh: float) -> dict:
    t0, t1 = window
    gross = trace.window(t0, t1)
    net = gross - baseline_w * (t1 - t0) if baseline_w is not None else None
    prefill = _phase_j(trace, phases.get("prefill"))
    decode = _phase_j(trace, phases.get("decode"))
    return {
        "energy_gross_j": gross,
        "energy_net_j": net,
        "power_avg_w": gross / (t1 - t0),
        "power_peak_w": trace.peak_power_w(t0, t1),
        "energy_prefill_j": prefill,
        "energy_decode_j": decode,
        "energy_per_prefill_token_j": _per(prefill, tokens_in),
        "energy_per_decode_token_j": _per(decode, n_decode),
        "tokens_per_j": tokens_out / gross if gross > 0 and tokens_out > 0 else None,  # none for pp
        "co2e_g": net / J_PER_KWH * carbon_g_per_kwh if net is not None else None,
    }


def _phase_j(trace: Trace, phase: tuple[float, float] | None) -> float | None:
    """A zero-length phase (one generated token: no decode) spends no energy."""
    if phase is None:
        return None
    return trace.window(*phase) if phase[1] > phase[0] else 0.0


def _per(energy_j: float | None, count: int) -> float | None:
    return energy_j / count if energy_j is not None and count > 0 else None


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
