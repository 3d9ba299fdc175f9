"""The report's sustained-use section: soak cells' figures and their windows over time.

Each soak repetition's windows (samples/<cell_id>.jsonl, written by harness.workloads.soak) are
drawn as stacked step charts sharing the time axis: tokens/s, power, hottest temperature, CPU
and GPU clocks, battery level, whichever the device gave. Throttled windows are shaded and the
first throttle is a dashed red line, so the slow-down can be read against its cause. Plain SVG,
as charts.trace_svg: a soak has a few hundred windows and needs no plotting library.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..runfiles import CELL_FILE_MAX_BYTES, RunFileError, cell_file, read_text_in_run
from .metrics import fmt_value, header
from .tables import ResultsTable, cell_settings_text, config_label

Row = dict[str, Any]
KIND = "soak"
FIGURES = ("soak_burst_tokens_per_s", "soak_sustained_tokens_per_s", "soak_sustained_ratio",
           "soak_time_to_throttle_s", "soak_throttled_fraction", "soak_energy_per_token_drift",
           "soak_max_temp_c", "battery_tokens_per_pct", "battery_answers_per_pct",
           "battery_life_continuous_s", "battery_life_at_rate_s")
# window field, axis label, display scale
PANELS = (("tokens_per_s", "tokens/s", 1.0), ("power_w", "power (W)", 1.0),
          ("max_temp_c", "hottest (degC)", 1.0), ("cpu_freq_hz", "CPU clock (GHz)", 1e-9),
          ("gpu_freq_hz", "GPU clock (MHz)", 1e-6), ("battery_pct", "battery (%)", 1.0))
THROTTLE_COLOUR = "#c00000"
LINE_COLOUR = "#1f5fa8"


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def soak_cells(cells: list[Row]) -> list[Row]:
    return [c for c in cells if c.get("workload_kind") == KIND]


def has_soak(table: ResultsTable) -> bool:
    return bool(soak_cells(table.cells))


def label(c: Row) -> str:
    """A cell named as the power-trace section names it."""
    return f"{config_label(c, with_runtime=True)} / {c['workload']}{cell_settings_text(c)}"


def section_html(table: ResultsTable) -> str:
    """The section's HTML: the soak figures per cell, then each repetition's time charts."""
    rows = soak_cells(table.cells)
    if not rows:
        return ""
    paths = {r["run_id"]: Path(r["path"]) for r in table.runs}
    head = "".join(f"<th>{_e(header(m))}</th>" for m in FIGURES)
    body = "".join(f"<tr><td>{_e(label(c))}</td>"
                   + "".join(f'<td class="num">{_e(fmt_value(m, c.get(m)))}</td>' for m in FIGURES)
                   + "</tr>" for c in rows)
    parts = ["<p>Soak cells answer continuously; burst is the speed of the first windows, "
             "sustained of the last ones. Charts: one per repetition, windows over time, "
             "throttled windows shaded, the first throttle marked in red. Battery figures are "
             "timed between the gauge's first and last step (docs/sustained.md).</p>",
             f'<table><thead><tr><th>Cell</th>{head}</tr></thead><tbody>{body}</tbody></table>']
    for c in rows:
        reps = read_windows(paths.get(c["run_id"]), c)
        for rep, (windows, summary) in sorted(reps.items()):
            title = f"{label(c)} / repetition {rep}"
            note = (summary or {}).get("battery_note")
            parts.append(f"<h4>{_e(title)}</h4>" + (f'<p class="muted">battery: {_e(note)}</p>' if note else "")
                         + soak_svg(windows, summary or {}, title))
    return "".join(parts)


def read_windows(run_dir: Path | None, row: Row) -> dict[int, tuple[list[Row], Row | None]]:
    """repetition -> (windows, summary row) from the cell's samples file (the last attempt's
    rows win: a resumed cell appends its own after the old ones)."""
    if run_dir is None:
        return {}
    where = f"{run_dir.name}: cell {row.get('cell_id')} (soak windows)"
    try:
        rel = row.get("samples_file") or cell_file("samples", row.get("cell_id"), ".jsonl", where)
        text = read_text_in_run(run_dir, rel, CELL_FILE_MAX_BYTES, where)
    except RunFileError:
        return {}
    out: dict[int, tuple[list[Row], Row | None]] = {}
    for line in (text or "").split("\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("repetition"), int):
            continue
        rep = obj["repetition"]
        windows, summary = out.get(rep, ([], None))
        if obj.get("kind") == "soak_window":
            if obj.get("window") == 0:
                windows = []  # a new attempt's windows replace the old ones
            out[rep] = (windows + [obj], summary)
        elif obj.get("kind") == "soak_summary":
            out[rep] = (windows, obj)
    return out


def soak_svg(windows: list[Row], summary: Row, title: str) -> str:
    """Stacked step charts of the windows, throttled windows shaded, first throttle marked."""
    panels = [(k, lab, sc) for k, lab, sc in PANELS if any(_num(w.get(k)) for w in windows)]
    if not windows or not panels:
        return f'<p class="muted">{_e(title)}: no windows</p>'
    w, left, right, top, ph, gap, bottom = 720.0, 52.0, 8.0, 16.0, 70.0, 14.0, 30.0
    h = top + len(panels) * (ph + gap) + bottom - gap
    t_max = max(float(x["t_end_s"]) for x in windows) or 1.0
    sx = lambda t: left + (w - left - right) * t / t_max  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'aria-label="{_e(title)}" font-size="10" font-family="sans-serif">']
    for x in windows:
        if x.get("throttled"):
            out.append(f'<rect x="{sx(x["t_start_s"]):.1f}" y="{top}" width="{max(0.5, sx(x["t_end_s"]) - sx(x["t_start_s"])):.1f}" '
                       f'height="{h - top - bottom:.1f}" fill="{THROTTLE_COLOUR}" fill-opacity="0.10">'
                       f'<title>{_e("; ".join(x.get("throttle_reasons") or []))}</title></rect>')
    for i, (key, label, scale) in enumerate(panels):
        y0 = top + i * (ph + gap)
        out += _panel(windows, key, label, scale, sx, y0, ph, (left, w - right))
    onset = summary.get("soak_time_to_throttle_s")
    if _num(onset):
        x = sx(min(float(onset), t_max))
        out.append(f'<line class="throttle-onset" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" '
                   f'y2="{h - bottom}" stroke="{THROTTLE_COLOUR}" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 3:.1f}" y="{top - 5}" fill="{THROTTLE_COLOUR}">first throttle '
                   f'{float(onset):.0f} s</text>')
    for i in range(6):
        t = t_max * i / 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(f'<text x="{sx(t):.1f}" y="{h - bottom + 13}" text-anchor="{anchor}">{t:.3g}</text>')
    out.append(f'<text x="{left}" y="{h - 3}">time since the soak began (s)</text></svg>')
    return "".join(out)


def _panel(windows: list[Row], key: str, label: str, scale: float, sx: Any, y0: float,
           ph: float, xs: tuple[float, float]) -> list[str]:
    vals = [float(x[key]) * scale for x in windows if _num(x.get(key))]
    lo, hi = min(vals), max(vals)
    lo = 0.0 if key in ("tokens_per_s", "power_w") else lo - 0.05 * (hi - lo or abs(hi) or 1.0)
    hi = hi + 0.05 * (hi - lo or abs(hi) or 1.0)
    sy = lambda v: y0 + ph * (1 - (v - lo) / (hi - lo))  # noqa: E731
    out = [f'<line x1="{xs[0]}" x2="{xs[1]}" y1="{y0 + ph:.1f}" y2="{y0 + ph:.1f}" stroke="#c0c0c0"/>',
           f'<text x="{xs[0] - 4}" y="{y0 + 8:.1f}" text-anchor="end">{_fmt(hi)}</text>',
           f'<text x="{xs[0] - 4}" y="{y0 + ph:.1f}" text-anchor="end">{_fmt(lo)}</text>',
           f'<text x="{xs[0] + 4}" y="{y0 + 8:.1f}" fill="#505050">{_e(label)}</text>']
    points: list[str] = []
    for x in windows:
        v = x.get(key)
        if not _num(v):
            if len(points) > 1:
                out.append(_polyline(points))
            points = []
            continue
        y = sy(float(v) * scale)
        points += [f"{sx(x['t_start_s']):.1f},{y:.1f}", f"{sx(x['t_end_s']):.1f},{y:.1f}"]
    if len(points) > 1:
        out.append(_polyline(points))
    return out


def _polyline(points: list[str]) -> str:
    return f'<polyline fill="none" stroke="{LINE_COLOUR}" stroke-width="1.4" points="{" ".join(points)}"/>'


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _fmt(v: float) -> str:
    return f"{v:.3g}"
