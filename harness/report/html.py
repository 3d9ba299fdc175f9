"""The report page: one self-contained HTML file built from a ResultsTable.

Every piece of text that came from a record, a manifest or a sample file goes through `_e`
(html.escape); model output in particular is hostile until proven otherwise. The page also
carries a Content-Security-Policy that allows only its own inline script (by hash) and no
network at all, so even an escaping bug could not load or run anything.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import charts, offload, soak
from .metrics import SPECS, energy_interval_text, fmt_ci, fmt_number, fmt_value, header
from .tables import (CRITERION_HELP, QUALITY_FLOOR_ALPHA, INTERRUPTED_RUN_NOTE, MERGE_RULE, PARETO_VIEWS, Constraints, DeviceKey, ResultsTable, Row,
                     best_configurations,
                     cell_settings_text, config_label, configurations, llama_bench_rows,
                     paired_tests, pareto_points, relpath, threads_phrase, threads_sweeps,
                     threads_text,
                     workload_text)

# Quality leads with the three figures that cannot flatter abstention together: accuracy,
# hallucination among answered items and abstention (a level that answers less is not "better").
HEADLINE_QUALITY = ("accuracy", "hallucination_rate_attempted", "abstention_rate")
DEVICE_COLUMNS = ("energy_per_decode_token_j", "tokens_per_j", "decode_tokens_per_s", "ttft_s",
                  "peak_rss_bytes") + HEADLINE_QUALITY
QUALITY_COLUMNS = HEADLINE_QUALITY + ("unscorable_rate", "hallucination_rate", "mc1", "mc2",
                   "kl_divergence_mean",
                   "top1_agreement", "perplexity_ratio", "token_agreement")
PIVOT_METRICS = ("energy_per_decode_token_j", "decode_tokens_per_s")
ROOFLINE = "decode_roofline_fraction"
PAGE_SIZE = "\x00page-size\x00"  # placeholder in the first line, replaced by with_page_size
PAGE_ROWS = 100  # rows a long table shows before "Show all" (a 10,000-cell report stays usable)
TRACES_INLINE = 24  # power-trace charts per device; the rest are linked CSV files

SORT_JS = """
function page(table) {
  var n = parseInt(table.getAttribute('data-page'), 10);
  if (!n || table.hasAttribute('data-all')) { return; }
  Array.prototype.forEach.call(table.tBodies[0].rows, function (r, i) { r.hidden = i >= n; });
}
document.querySelectorAll('table[data-page]').forEach(function (table) {
  page(table);
  var b = document.createElement('button'); b.type = 'button';
  b.textContent = 'Show all ' + table.tBodies[0].rows.length + ' rows';
  b.addEventListener('click', function () {
    table.setAttribute('data-all', '');
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) { r.hidden = false; });
    b.remove();
  });
  table.parentNode.insertAdjacentElement('afterend', b);
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(r) {
        var c = r.cells[col]; var v = c ? (c.getAttribute('data-sort') || c.textContent) : '';
        var n = parseFloat(v); return isNaN(n) ? v.toLowerCase() : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var missX = x === '' || x === '\\u2013', missY = y === '' || y === '\\u2013';
        if (missX !== missY) { return missX ? 1 : -1; }
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
      page(table);
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sort(); } });
  });
});
"""

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #dadce0; --bg-alt: #f6f8fa; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1200px; padding: 0 20px 40px; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px; } h4 { font-size: 13px; margin: 10px 0 2px; }
p.sub { color: var(--muted); margin: 0 0 12px; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line); padding: 6px 0;
      z-index: 2; font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: var(--bg-alt); font-weight: 600; position: relative; }
table.sortable th { cursor: pointer; user-select: none; padding-right: 18px; }
table.sortable th::after { content: "\\2195"; position: absolute; right: 5px; color: #b0b0b0; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: "\\25B2"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: "\\25BC"; color: var(--accent); }
tbody tr:hover { background: #fafbfc; }
.ci { color: var(--muted); font-size: 11.5px; display: block; }
.badge { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 11.5px; margin: 1px 2px 1px 0;
         white-space: nowrap; border: 1px solid transparent; }
.measured { background: #e6f4ea; color: #136c2e; border-color: #a8dab5; }
.estimated { background: #fef7e0; color: #8a5a00; border-color: #f7d774; }
.scripted { background: #f3e8fd; color: #6a1b9a; border-color: #d7aefb; }
.flag { background: #fce8e6; color: #a50e0e; border-color: #f4b7b1; }
.note { background: #e8f0fe; color: #174ea6; border-color: #aecbfa; }
.box { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin: 10px 0; }
.warn { background: #fffbe6; border-color: #f2d675; }
.best { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 10px; }
.best .box h3 { margin: 0 0 4px; } .big { font-size: 17px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.charts figure { margin: 0; flex: 1 1 440px; max-width: 560px; }
svg { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
button { font: inherit; margin: 0 0 12px; cursor: pointer; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
.traces { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 8px 18px; }
td { white-space: nowrap; } td.wrap { white-space: normal; min-width: 16em; } td .badge { white-space: normal; }
td.flags { white-space: normal; min-width: 9em; }
.trace { margin: 8px 0 16px; } .trace p { margin: 0; color: var(--muted); font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--bg-alt); padding: 6px 8px;
      border-radius: 4px; font-size: 12px; margin: 2px 0; max-height: 9em; overflow: auto; }
dl.methods { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.methods dt { color: var(--muted); } dl.methods dd { margin: 0; }
.muted { color: var(--muted); }
"""


def _e(x: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if x is None else str(x), quote=True)


def _script_hash(js: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()


def render_html(table: ResultsTable, out_dir: Path, constraints: Constraints,
                reference_level: str | None = None, title: str = "edgebench report") -> str:
    """The whole page. Pure: the same table, output folder and options give the same bytes."""
    configs = configurations(table)
    one_model = len({c["model"] for c in configs}) <= 1
    sweeps = threads_sweeps(configs)
    bench = llama_bench_rows(configs)
    sections = [
        ("headline", "Best per device", _headline(table, configs, constraints, reference_level)),
        ("devices", "Devices", _devices(table, configs, one_model)),
        *([("threads", "Threads", _threads(table, sweeps))] if sweeps else []),
        *([("llamabench", "llama-bench tests", _llama_bench(bench))] if bench else []),
        ("levels", "By level", _by_level(table, configs)),
        ("quality", "Quality", _quality(table, out_dir, reference_level)),
        *([("soak", "Sustained use", soak.section_html(table))] if soak.has_soak(table) else []),
        *([("offload", "Offloading", offload.section_html(table))] if offload.has_offload(table) else []),
        ("traces", "Power traces", _traces(table, out_dir)),
        ("failed", "Failed cells", _failures(table)),
        ("methods", "Methods", _methods(table, out_dir)),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>'
                   for sid, name, content in sections)
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src '{_script_hash(SORT_JS)}'; base-uri 'none'; form-action 'none'")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>{_what_ran(table)}{_run_notes(table)}{_warnings(table)}<nav>{nav}</nav>{body}"
        f"<script>{SORT_JS}</script></body></html>\n")
    return with_page_size(page)


def with_page_size(page: str) -> str:
    """Fill in the page's own size (said on the page, so a reader knows what a long report
    weighs before mailing it); the figure is rounded, so filling it in does not change it."""
    size = len(page.encode("utf-8")) - len(PAGE_SIZE)
    text = f"{size / 1e3:.0f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB"
    return page.replace(PAGE_SIZE, f"this page: {text}", 1)


# --------------------------------------------------------------------------------------------
# Small builders


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], sortable: bool = True,
           cls: str = "") -> str:
    """rows hold ready HTML cells (<td>...</td>); headers are plain text. A table longer than
    PAGE_ROWS shows its first PAGE_ROWS rows and a "Show all" button (sorting covers every row);
    without script every row shows."""
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in headers)
    rows = list(rows)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    paged = f' data-page="{PAGE_ROWS}"' if len(rows) > PAGE_ROWS else ""
    return (f'<div class="scroll"><table class="{classes}"{paged}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _td(text: Any, sort: Any = None, cls: str = "") -> str:
    attr = f' data-sort="{_e(sort)}"' if sort is not None else ""
    attr += f' class="{cls}"' if cls else ""
    return f"<td{attr}>{_e(text)}</td>"


def _td_metric(row: Row, name: str) -> str:
    """Mean in display units with its 95% interval underneath; data-sort is the raw SI value."""
    v = row.get(name)
    if v is None:
        return '<td class="num" data-sort="">–</td>'
    ci = fmt_ci(name, row.get(f"{name}_ci95_low"), row.get(f"{name}_ci95_high"))
    ci_html = f'<span class="ci">{_e(ci)}</span>' if ci else ""
    ci_html += _energy_interval_html(row, name)
    return f'<td class="num" data-sort="{v!r}">{_e(fmt_value(name, v))}{ci_html}</td>'


def _energy_interval_html(row: Row, name: str) -> str:
    """Energy figures: the interval with sensor (or calibration) and sampling uncertainty
    combined, the part that dominates it, and a flag when sampling alone is above 1%."""
    text = energy_interval_text(row, name)
    if not text:
        return ""
    out = f'<span class="ci" title="repetitions, sensor or calibration and sampling combined (95%)">{_e(text)}</span>'
    if row.get(f"{name}_sampling_flagged"):
        out += ('<span class="badge flag" title="sampling uncertainty above 1%: too few readings '
                'in the window; raise energy.rate_hz or lengthen the work">sampling &gt; 1%</span>')
    return out


def energy_badge(row: Row) -> str:
    """measured (sensor, coverage) / estimated (model) / scripted: on every energy figure."""
    method, sensor = row.get("energy_method"), row.get("energy_sensor")
    if row.get("energy_invalid"):
        return f'<span class="badge flag" title="{_e(row["energy_invalid"])}">energy invalid</span>'
    if sensor == "scripted" or method == "scripted":
        return '<span class="badge scripted" title="test sensor: not a measurement">scripted</span>'
    if method == "measured":
        cov = f"coverage: {row['energy_coverage']}" if row.get("energy_coverage") else "coverage unknown"
        return f'<span class="badge measured" title="{_e(cov)}">measured · {_e(sensor)}</span>'
    if method == "estimated":
        model = row.get("energy_model") or sensor or "unnamed model"
        return f'<span class="badge estimated" title="an estimate, not a measurement">estimated · {_e(model)}</span>'
    return '<span class="badge flag">no energy figure</span>'


def energy_text(row: Row) -> str:
    """The same provenance as plain text (Markdown, CSV)."""
    if row.get("energy_invalid"):
        return f"energy invalid ({row['energy_invalid']})"
    sensor = row.get("energy_sensor")
    if sensor == "scripted" or row.get("energy_method") == "scripted":
        return "scripted (test sensor)"
    if row.get("energy_method") == "measured":
        cov = f", {row['energy_coverage']}" if row.get("energy_coverage") else ""
        return f"measured ({sensor}{cov})"
    if row.get("energy_method") == "estimated":
        return f"estimated ({row.get('energy_model') or sensor or 'unnamed model'})"
    return "no energy figure"


def flags(row: Row) -> str:
    out = []
    if row.get("emulated"):
        out.append('<span class="badge flag" title="device profile emulated on other hardware">emulated</span>')
    if row.get("throttled"):
        why = row.get("throttled_reason") or "the device throttled during this cell"
        out.append(f'<span class="badge flag" title="{_e(why)}">throttled</span>')
    if row.get("source_quant_type"):
        src = _e(row["source_quant_type"])
        out.append(f'<span class="badge note" title="quality cannot exceed the {src} source">'
                   f"requantized from {src}</span>")
    if row.get("interrupted_run"):
        out.append(f'<span class="badge flag" title="{_e(INTERRUPTED_RUN_NOTE)}">interrupted run</span>')
    unstable = row.get("unstable") or []
    if unstable:
        out.append(f'<span class="badge note" title="stdev above 10% of the mean: '
                   f'{_e(", ".join(unstable))}">unstable ({len(unstable)})</span>')
    return "".join(out)


def flags_text(row: Row) -> list[str]:
    out = []
    if row.get("emulated"):
        out.append("emulated")
    if row.get("throttled"):
        out.append("throttled")
    if row.get("source_quant_type"):
        out.append(f"requantized from {row['source_quant_type']} (quality cannot exceed the source)")
    if row.get("interrupted_run"):
        out.append("interrupted run (no complete run has this cell)")
    return out


# --------------------------------------------------------------------------------------------
# Sections


def _what_ran(table: ResultsTable) -> str:
    runs = table.runs
    dates = sorted(str(r["manifest"].get("created_utc") or "") for r in runs)
    models = sorted({str(c["model"]) for c in table.cells + table.failures})
    levels = sorted({str(c["level"]) for c in table.cells + table.failures})
    workloads = sorted({str(c["workload"]) for c in table.cells + table.failures})
    devices = [d.label() for d in table.devices()]
    n_cells = len(table.cells) + len(table.failures)
    when = dates[0] if len(set(dates)) == 1 else f"{dates[0]} to {dates[-1]}"
    return (f'<p class="sub">{len(runs)} run(s), {n_cells} cells ({len(table.failures)} failed) · '
            f"models: {_e(', '.join(models))} · levels: {_e(', '.join(levels))} · "
            f"workloads: {_e(', '.join(workloads))} · "
            f"devices: {_e(', '.join(devices))} · {_e(when)} · {PAGE_SIZE}</p>")


def _run_notes(table: ResultsTable) -> str:
    """Interrupted runs in the page's header: what each holds and what of it is shown."""
    if not table.run_notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in table.run_notes)
    return (f'<div class="box warn"><strong>Interrupted runs</strong><ul>{items}</ul>'
            f'<p class="muted">{_e(MERGE_RULE)}</p></div>')


def _warnings(table: ResultsTable) -> str:
    if not table.warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in table.warnings)
    return f'<div class="box warn"><strong>Warnings while reading the runs</strong><ul>{items}</ul></div>'


def _headline(table: ResultsTable, configs: list[Row], constraints: Constraints,
              reference_level: str | None = None) -> str:
    objective = constraints.objective
    boxes = []
    for b in best_configurations(table, configs, constraints, reference_level):
        best = b["best"]
        head = f"<h3>{_e(b['device_key'].label())}</h3>"
        if best is None:
            reasons = "; ".join(f"{config_label(c)}: {', '.join(w)}" for c, w in b["excluded"][:6])
            boxes.append(f'<div class="box">{head}<p>No configuration meets the constraints '
                         f"({b['n_candidates']} tried).</p><p class=\"muted\">{_e(reasons)}</p></div>")
            continue
        lines = [f'<div class="big">{_e(config_label(best, with_runtime=True))}</div>']
        for m in dict.fromkeys((objective, "energy_per_decode_token_j", "decode_tokens_per_s",
                                ROOFLINE, "peak_rss_bytes") + HEADLINE_QUALITY):
            if best.get(m) is None:
                continue
            ci = fmt_ci(m, best.get(f"{m}_ci95_low"), best.get(f"{m}_ci95_high"))
            lines.append(f"<div>{_e(SPECS[m].label)}: <strong>{_e(fmt_value(m, best[m]))} "
                         f"{_e(SPECS[m].unit)}</strong> <span class=\"muted\">{_e(ci)}</span></div>")
        lines.append(f"<div>{energy_badge(best)}{flags(best)}</div>")
        held = (f"; {b['n_held_back']} held back by the quality floor" if b.get("n_held_back")
                else "")
        lines.append(f'<div class="muted">{b["n_qualifying"]} of {b["n_candidates"]} '
                     f"configurations meet the constraints{_e(held)}</div>")
        boxes.append(f'<div class="box">{head}{"".join(lines)}</div>')
    return (f"<p>Criterion: <strong>{_e(constraints.describe())}</strong>. Energy per token comes "
            "from the generation workload, quality from the quality workload of the same "
            "configuration; intervals are 95%.</p>"
            f'<p class="muted">{_e(CRITERION_HELP)}</p>'
            f'<div class="best">{"".join(boxes) or "<p>No finished cells.</p>"}</div>')


def _devices(table: ResultsTable, configs: list[Row], one_model: bool) -> str:
    parts = []
    for dkey in table.devices():
        mine = [c for c in configs if c["device_key"] == dkey]
        if not mine:
            continue
        parts.append(f'<h3 id="{_anchor(dkey)}">{_e(dkey.label())}</h3>')
        parts.append(f'<p class="sub">{_device_sub(table, dkey)}</p>')
        parts.append('<div class="charts">' + _pareto_charts(configs, dkey, one_model) + "</div>")
        # dimensions that vary on this device get a column; constant ones are said once above
        dims = [(k, name) for k, name in (("model", "Model"), ("level", "Level"),
                                          ("runtime", "Runtime"), ("power_mode", "Power mode"))
                if k == "level" or len({c[k] for c in mine}) > 1]
        same = [f"{name}: {mine[0][k] or '–'}" for k, name in (("model", "Model"), ("runtime", "Runtime"),
                ("power_mode", "Power mode")) if (k, name) not in dims]
        if same:
            parts.append(f'<p class="sub">{_e(" · ".join(same))}</p>')
        settings = setting_columns(mine)
        metrics = metric_columns(mine, DEVICE_COLUMNS)
        headers = [name for _, name in dims] + [name for _, name in settings] \
            + [header(m) for m in metrics] + ["Energy", "Flags"]
        rows = [[_td(c[k] or "–", c.get("bits_per_weight") if k == "level" else None) for k, _ in dims]
                + [_td_setting(c, k) for k, _ in settings]
                + [_td_metric(c, m) for m in metrics]
                + [f'<td class="flags">{energy_badge(c)}</td>', f'<td class="flags">{flags(c)}</td>']
                for c in mine]
        parts.append(_table(headers, rows))
        parts.append(_cell_warnings(mine))
        parts.append(_outputs(table, dkey))
    return "".join(parts) or "<p>No finished cells.</p>"


def setting_columns(rows: list[Row]) -> list[tuple[str, str]]:
    """(key, header) of the settings worth a column: the speed workload when there is more than
    one (or a llama-bench test), threads whenever known, batch size and context where they vary."""
    cols = []
    if len({r.get("speed_workload") for r in rows}) > 1 or any(r.get("llama_bench_test") for r in rows):
        cols.append(("speed_workload", "Workload"))
    if any(r.get("n_threads") is not None for r in rows):
        cols.append(("n_threads", "Threads"))
    for k, name in (("n_batch", "Batch size"), ("n_ctx", "Context")):
        if len({r.get(k) for r in rows}) > 1:
            cols.append((k, name))
    return cols


def metric_columns(rows: list[Row], base: Sequence[str]) -> list[str]:
    """`base`, plus prefill speed where a llama-bench pp test ran and the roofline where known."""
    cols = list(base)
    if any(r.get("speed_kind") == "llama_bench" and r.get("prefill_tokens_per_s") is not None
           for r in rows):
        cols.insert(cols.index("decode_tokens_per_s") + 1, "prefill_tokens_per_s")
    if any(r.get(ROOFLINE) is not None for r in rows):
        cols.insert(cols.index("decode_tokens_per_s") + 1, ROOFLINE)
    return cols


def setting_text(c: Row, key: str) -> str:
    if key == "speed_workload":
        return workload_text(c) or "–"
    if key == "n_threads":
        return threads_text(c) or "–"
    return "–" if c.get(key) is None else str(c[key])


def _td_setting(c: Row, key: str) -> str:
    if key == "n_threads":
        src = c.get("threads_source")
        title = f' title="chosen by: {_e(src)}"' if src else ""
        return (f'<td class="num" data-sort="{_e(c.get("n_threads") or "")}"{title}>'
                f"{_e(setting_text(c, key))}</td>")
    return _td(setting_text(c, key), c.get(key) if key != "speed_workload" else None)


def _cell_warnings(rows: list[Row]) -> str:
    """Warnings the cells recorded (a thread count capped to the host's cores, ...), by row."""
    items = [f"<li>{_e(config_label(c, with_runtime=True))}: {_e(w)}</li>"
             for c in rows for w in c.get("warnings") or []]
    if not items:
        return ""
    return f'<div class="box warn"><strong>Cell warnings</strong><ul>{"".join(items)}</ul></div>'


def _outputs(table: ResultsTable, dkey: DeviceKey) -> str:
    """What each generation cell wrote (first repetition): a collapsed model shows up here."""
    cells = [c for c in table.cells if c["device_key"] == dkey and c.get("output_text") is not None]
    if not cells:
        return ""
    rows = [[_td(config_label(c, with_runtime=True)), _td(c["workload"] + cell_settings_text(c)),
             f'<td class="wrap"><pre>{_e(_clip(c["output_text"]))}</pre></td>',
             f'<td class="flags">{flags(c)}</td>'] for c in cells]
    return (f"<details><summary>Generated text ({len(cells)} cells, first repetition)</summary>"
            + _table(["Configuration", "Workload", "Output", "Flags"], rows, sortable=False)
            + "</details>")


def _clip(text: str, n: int = 600) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f" … ({len(text) - n} more characters)"


def _anchor(dkey: DeviceKey) -> str:
    return "dev-" + hashlib.sha1(f"{dkey.profile}\0{dkey.hostname}".encode()).hexdigest()[:10]


def _device_sub(table: ResultsTable, dkey: DeviceKey) -> str:
    run = next(r for r in table.runs if r["device_key"] == dkey)
    host = run["manifest"].get("host") or {}
    dev = run["manifest"].get("device") or {}
    ram = host.get("ram_bytes")
    bits = [f"host {host.get('hostname')}", str(host.get("cpu_model") or "unknown CPU"),
            f"{host.get('cores_logical')} logical cores",
            _gib(ram),
            f"{host.get('os')} {host.get('kernel')} {host.get('machine')}"]
    if dev.get("emulated"):
        bits.append(f"EMULATED on {dev.get('detected_profile')} ({_detection(dev.get('detection'))})")
    return _e(" · ".join(bits))


def _pareto_charts(configs: list[Row], dkey: DeviceKey, one_model: bool) -> str:
    figs = []
    for x, y, min_x, min_y in PARETO_VIEWS:
        pts = pareto_points(configs, dkey, x, y, min_x, min_y)
        if one_model:
            for p in pts:
                p["label"] = p["label"].split(" ", 1)[1] if " " in p["label"] else p["label"]
        if pts and all(p["emulated"] for p in pts):  # said once in the device line instead
            for p in pts:
                p["emulated"] = False
        title = f"{SPECS[y].label} vs {SPECS[x].label}"
        if not pts:
            figs.append(f'<figure><p class="muted">{_e(title)}: no configuration has both '
                        "metrics on this device.</p></figure>")
            continue
        figs.append(f"<figure>{charts.pareto_svg(pts, x, y, min_x, min_y, title)}</figure>")
    return "".join(figs)


def _threads(table: ResultsTable, sweeps: list[Row]) -> str:
    """Decode speed and energy per token against threads, per device: charts, table, trade-off."""
    parts = ["<p>Each configuration run at several thread counts (a matrix sweep such as "
             "<code>runtime: {n_threads: [1, 2, 4]}</code>). Energy per token is often lowest "
             "below the fastest thread count: the last threads add power faster than speed. "
             "Ringed points: the fastest (speed chart) and the least energy per token (energy "
             "chart). Bars are 95% intervals.</p>"]
    for dkey in table.devices():
        mine = [s for s in sweeps if s["device_key"] == dkey]
        if not mine:
            continue
        parts.append(f"<h3>{_e(dkey.label())}</h3>")
        figs = []
        for metric, ring in (("decode_tokens_per_s", "fastest"),
                             ("energy_per_decode_token_j", "least_energy")):
            series = [{"label": s["label"] + (" (emulated)" if s["emulated"] else ""),
                       "points": [{"x": p["n_threads"], "y": p.get(metric),
                                   "low": p.get(f"{metric}_ci95_low"),
                                   "high": p.get(f"{metric}_ci95_high"), "ring": p is s[ring]}
                                  for p in s["points"]]} for s in mine]
            title = f"{SPECS[metric].label} vs threads"
            figs.append(f"<figure>{charts.threads_svg(series, metric, title)}</figure>")
        parts.append('<div class="charts">' + "".join(figs) + "</div>")
        parts.append("<ul>" + "".join(f"<li>{_e(s['label'])}: {_e(tradeoff_text(s))}</li>"
                                      for s in mine) + "</ul>")
        metrics = [m for m in ("decode_tokens_per_s", "energy_per_decode_token_j", "tokens_per_j",
                               ROOFLINE, "power_avg_w")
                   if any(p.get(m) is not None for s in mine for p in s["points"])]
        headers = ["Configuration", "Threads"] + [header(m) for m in metrics] + ["Note", "Flags"]
        rows = [[_td(s["label"]), _td_setting(p, "n_threads")] + [_td_metric(p, m) for m in metrics]
                + [_td(sweep_note(s, p)), f'<td class="flags">{energy_badge(p)}{flags(p)}</td>']
                for s in mine for p in s["points"]]
        parts.append(_table(headers, rows))
    return "".join(parts)


def sweep_note(s: Row, p: Row) -> str:
    notes = (["fastest"] if p is s["fastest"] else []) + \
        (["least energy per token"] if p is s["least_energy"] else [])
    return ", ".join(notes)


def tradeoff_text(s: Row) -> str:
    """'fastest at 4 threads (38.3 tok/s, 113 mJ/token); least energy per token at 2 threads
    (95.0 mJ, 30.1 tok/s): 16% less energy per token for 21% less speed'."""
    fast, low = s["fastest"], s["least_energy"]
    d, e = "decode_tokens_per_s", "energy_per_decode_token_j"
    text = (f"fastest at {threads_phrase(fast)} ({fmt_value(d, fast[d])} tok/s"
            + (f", {fmt_value(e, fast[e])} mJ/token)" if fast.get(e) is not None else ")"))
    if low is None:
        return text + "; no energy figure"
    if low is fast:
        return text + "; also the least energy per token"
    saved = 1 - low[e] / fast[e] if fast.get(e) else None
    slower = 1 - low[d] / fast[d] if fast[d] else None
    text += (f"; least energy per token at {threads_phrase(low)} ({fmt_value(e, low[e])} "
             f"mJ, {fmt_value(d, low[d])} tok/s)")
    if saved is not None and slower is not None:
        text += f": {saved * 100:.0f}% less energy per token for {slower * 100:.0f}% less speed"
    return text


def _llama_bench(bench: list[Row]) -> str:
    """llama_bench cells as llama-bench prints them: one row per test and thread count, t/s as
    mean ± standard deviation over repetitions, beside the energy per token of that phase."""
    headers = ["Device", "Model", "Size", "Runtime", "Threads", "Test", "t/s",
               "Energy / token (mJ)", "Roofline (decode) (% of bound)", "Energy", "Flags"]
    rows = []
    for b in bench:
        c = b["config"]
        ts = b["t_per_s"]
        text = "–" if ts is None else f"{ts:.2f}" + (
            f" ± {b['t_per_s_stdev']:.2f}" if b.get("t_per_s_stdev") is not None else "")
        rows.append([_td(c["device_key"].label()), _td(f"{c['model']} {c['level']}"),
                     _td(size_text(c.get("model_size_bytes")), c.get("model_size_bytes")),
                     _td(c["runtime"]), _td_setting(c, "n_threads"), _td(b["test"]),
                     f'<td class="num" data-sort="{_e(ts if ts is not None else "")}">{_e(text)}</td>',
                     _td_metric(c, b["energy_metric"]), _td_metric(c, ROOFLINE),
                     f'<td class="flags">{energy_badge(c)}</td>', f'<td class="flags">{flags(c)}</td>'])
    return ("<p>The <code>llama_bench</code> workload reproduces llama-bench's tests: "
            "<code>ppN</code> is prompt processing of N tokens (prefill tok/s), <code>tgN</code> "
            "is generation of N tokens (decode tok/s); t/s is mean ± standard deviation over "
            "repetitions, as llama-bench prints it, so these rows sit beside the llama-bench "
            "tables published per device.</p>" + _table(headers, rows))


def size_text(n: Any) -> str:
    """Model file size the way llama-bench prints it (MiB below 1 GiB, else GiB)."""
    if not isinstance(n, (int, float)):
        return "–"
    return f"{n / 2**20:.2f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _by_level(table: ResultsTable, configs: list[Row]) -> str:
    """One pivot per metric: a row per model, level, speed workload and swept setting, a column
    per device; each figure says the threads it ran with and carries the emulated badge."""
    devices = [d for d in table.devices() if any(c["device_key"] == d for c in configs)]
    keyed = _pivot_keys(configs)
    show_workload = len({c.get("speed_workload") for c in configs}) > 1 or \
        any(c.get("llama_bench_test") for c in configs)
    show_settings = any(k[-1] for k, _ in keyed)
    parts = []
    for m in PIVOT_METRICS:
        grid: dict[tuple, dict[DeviceKey, Row]] = {}
        for key, c in keyed:
            if c.get(m) is not None:
                grid.setdefault(key, {})[c["device_key"]] = c
        if not grid:
            continue
        headers = ["Model", "Level", "Runtime"] + (["Workload"] if show_workload else []) \
            + (["Settings"] if show_settings else []) + [d.label() for d in devices]
        rows = []
        for key, by_dev in sorted(grid.items(), key=lambda kv: _pivot_order(kv[0])):
            c0 = next(iter(by_dev.values()))
            cells = [_td_pivot(by_dev.get(d), m) for d in devices]
            rows.append([_td(c0["model"]), _td(c0["level"], c0.get("bits_per_weight")),
                         _td(c0["runtime"])] + ([_td(workload_text(c0) or "–")] if show_workload else [])
                        + ([_td(key[-1] or "–")] if show_settings else []) + cells)
        parts.append(f"<h3>{_e(header(m))} per level and device</h3>" + _table(headers, rows))
    return "".join(parts) or "<p>No finished cells.</p>"


def _pivot_keys(configs: list[Row]) -> list[tuple[tuple, Row]]:
    """(row key, configuration): the key is model, level, runtime, workload and the settings the
    matrix swept (device-independent: the default thread count differs per device). Where a
    device still has two configurations under one key (two power modes, two runs' defaults),
    that key also gets what tells them apart, so no figure is dropped."""
    def base(c: Row) -> tuple:
        return (c["model"], c["level"], c["runtime"], c.get("bits_per_weight"),
                c.get("speed_workload"), c.get("llama_bench_test"), _swept_values(c))
    seen: dict[tuple, set] = {}
    clash = set()
    for c in configs:
        k, d = base(c), c["device_key"]
        if d in seen.setdefault(k, set()):
            clash.add(k)
        seen[k].add(d)
    out = []
    for c in configs:
        k = base(c)
        text = ", ".join(f"{n}={v}" for n, v in k[-1])
        if k in clash:
            extra = [f"[{c['power_mode']}]" if c.get("power_mode") else "",
                     threads_phrase(c),
                     f"batch {c['n_batch']}" if c.get("n_batch") is not None else "",
                     f"ctx {c['n_ctx']}" if c.get("n_ctx") is not None else ""]
            text = " · ".join(x for x in [text] + extra if x)
        out.append((k + (text,), c))
    return out


def _swept_values(c: Row) -> tuple:
    return tuple(sorted((str(k), v if isinstance(v, (int, float, str)) else json.dumps(v))
                        for k, v in (c.get("swept_settings") or {}).items()))


def _pivot_order(key: tuple) -> tuple:
    model, level, runtime, bpw, workload, test, swept, text = key
    return (str(model), -(bpw if isinstance(bpw, (int, float)) else -1), str(level), str(runtime),
            str(workload), str(test), [(n, v if isinstance(v, (int, float)) else 0, str(v))
                                       for n, v in swept], text)


def _td_pivot(c: Row | None, m: str) -> str:
    """A pivot figure: the metric and its interval, the threads it ran with, the emulated badge."""
    if c is None:
        return '<td class="num" data-sort="">–</td>'
    td = _td_metric(c, m)
    extra = f'<span class="ci">{_e(threads_phrase(c))}</span>' if threads_phrase(c) else ""
    if c.get("emulated"):
        extra += ('<span class="badge flag" title="device profile emulated on other hardware">'
                  "emulated</span>")
    return td[:-len("</td>")] + extra + "</td>"


def _quality(table: ResultsTable, out_dir: Path, reference_level: str | None) -> str:
    qcells = [c for c in table.cells if any(c.get(m) is not None for m in QUALITY_COLUMNS)]
    if not qcells:
        return "<p>No quality workload in these runs.</p>"
    cols = [m for m in QUALITY_COLUMNS if any(c.get(m) is not None for c in qcells)]
    headers = ["Device", "Model", "Level", "Workload", "Items"] + [header(m) for m in cols] \
        + ["Flags", "Audit file"]
    rows = []
    for c in qcells:
        detail = table.quality.get((c["run_id"], c["cell_id"]))
        link = "–"
        if detail is not None and detail.samples_path is not None:
            href = relpath(detail.samples_path, out_dir)
            link = f'<a href="{_e(href)}">{_e(Path(href).name)}</a>'
        rows.append([_td(c["device_key"].label()), _td(c["model"]),
                     _td(c["level"], c.get("bits_per_weight")),
                     _td(c["workload"] + cell_settings_text(c)),
                     _td(_count(c.get("n_items")), c.get("n_items"))]
                    + [_td_metric(c, m) for m in cols] + [f"<td>{flags(c)}</td>", f"<td>{link}</td>"])
    parts = ["<p>Rates over all items with 95% Wilson intervals (per item); the audit file holds "
             "every prompt, answer and label.</p>", _table(headers, rows), _paired(table, reference_level),
             _excerpts(table, qcells)]
    return "".join(parts)


def _count(x: Any) -> str:
    return str(int(x)) if isinstance(x, (int, float)) else "–"


def _paired(table: ResultsTable, reference_level: str | None) -> str:
    tests = paired_tests(table, reference_level)
    if not tests:
        return ""
    headers = ["Device", "Model", "Workload", "Reference", "Level", "Paired items",
               "Accuracy ref (%)", "Accuracy level (%)", "Difference (pp) [95% CI]",
               "Right only at ref", "Right only at level", "McNemar p", "Flags"]
    rows = []
    for t in tests:
        r = t["result"]
        workload = t["workload"] + (f" · {t['settings']}" if t.get("settings") else "")
        base = [_td(t["device_key"].label()), _td(t["model"]), _td(workload),
                _td(t["reference"]), _td(t["level"])]
        badge = f'<td class="flags">{flags({"emulated": t.get("emulated")})}</td>'
        if r is None:
            rows.append(base + [f'<td colspan="7">not comparable: {_e(t["error"])}</td>', badge])
            continue
        ci = ("" if r.difference_ci95_low is None else
              f" [{r.difference_ci95_low * 100:.1f}, {r.difference_ci95_high * 100:.1f}]")
        rows.append(base + [_td(r.n_pairs, r.n_pairs), _td(fmt_number(r.rate_a * 100), r.rate_a),
                            _td(fmt_number(r.rate_b * 100), r.rate_b),
                            _td(f"{r.difference * 100:+.1f}{ci}", r.difference),
                            _td(r.a_only, r.a_only), _td(r.b_only, r.b_only),
                            _td(f"{r.mcnemar_p:.3g}", r.mcnemar_p), badge])
    verdicts = "".join(f"<li>{_e(t['device_key'].label())} · {_e(t['workload'])}: {_e(v)}</li>"
                       for t in tests for v in t.get("verdicts") or [])
    return ("<h3>Paired tests against the reference level</h3><p>Same items answered by both "
            "levels; McNemar's exact test on per-item correctness; difference = reference minus "
            "level.</p>" + _table(headers, rows)
            + (f"<p>Verdicts (McNemar's exact test, significant at p &lt; {QUALITY_FLOOR_ALPHA:g}; "
               "hallucination compared on the items both levels answered, so answering less "
               f"does not count as hallucinating less):</p><ul class=\"verdicts\">{verdicts}</ul>"
               if verdicts else ""))


def _excerpts(table: ResultsTable, qcells: list[Row]) -> str:
    parts = []
    for c in qcells:
        detail = table.quality.get((c["run_id"], c["cell_id"]))
        if detail is None or not detail.excerpt:
            continue
        items = "".join(
            f"<tr><td>{_e(x['id'])}</td><td class=\"wrap\">{_e(x['question'])}</td>"
            f"<td class=\"wrap\"><pre>{_e(x['output'])}</pre></td><td class=\"wrap\">{_e(x['reference'])}</td></tr>" for x in detail.excerpt)
        parts.append(
            f"<details><summary>{_e(c['device_key'].label())} · {_e(config_label(c))} · "
            f"{_e(c['workload'] + cell_settings_text(c))}: {detail.n_hallucinated} hallucinated (first "
            f"{len(detail.excerpt)} shown)</summary><table><thead><tr><th>Item</th><th>Question</th>"
            f"<th>Model answer</th><th>Reference</th></tr></thead><tbody>{items}</tbody></table></details>")
    return ("<h3>Hallucinated answers (excerpt)</h3>" + "".join(parts)) if parts else ""


def _traces(table: ResultsTable, out_dir: Path) -> str:
    if not table.traces:
        return "<p>No power traces in these runs.</p>"
    by_cell = {(c["run_id"], c["cell_id"]): c for c in table.cells}
    parts = ["<p>Power samples of each cell: the load window, the idle baseline, then each "
             "measured repetition with its prefill and decode phases shaded. Long traces are "
             "reduced to per-bucket minima and maxima so peaks stay visible. One section per "
             "device; open it to see its cells.</p>"]
    for dkey in table.devices():
        cells = [(k, by_cell[k]) for k in table.traces if k in by_cell
                 and by_cell[k]["device_key"] == dkey]
        if not cells:
            continue
        figs = []
        for k, c in cells[:TRACES_INLINE]:
            tr = table.traces[k]
            shown = sum(len(s["t_s"]) for s in tr.segments)
            label = f"{config_label(c, with_runtime=True)} / {c['workload']}{cell_settings_text(c)}"
            figs.append(f'<div class="trace"><h4>{_e(label)}</h4><p>{energy_badge(c)}{flags(c)} '
                        f"{tr.n_raw} samples, {shown} plotted</p>{charts.trace_svg(tr.segments, label)}</div>")
        parts.append(f"<details><summary>{_e(dkey.label())}: {len(cells)} cell(s)</summary>"
                     f'<div class="traces">{"".join(figs)}</div>'
                     f"{_more_traces(table, cells[TRACES_INLINE:], out_dir)}</details>")
    return "".join(parts)


def _more_traces(table: ResultsTable, cells: list[tuple[tuple[str, str], Row]], out_dir: Path) -> str:
    """Beyond TRACES_INLINE charts a device's traces are links to their CSV files: thousands of
    inline charts would make the page too heavy to open."""
    if not cells:
        return ""
    run_paths = {r["run_id"]: Path(r["path"]) for r in table.runs}
    rows = [[_td(f"{config_label(c, with_runtime=True)} / {c['workload']}{cell_settings_text(c)}"),
             _td(table.traces[k].n_raw, table.traces[k].n_raw),
             f'<td><a href="{_e(relpath(run_paths[k[0]] / "traces" / f"{k[1]}.csv", out_dir))}">'
             f"{_e(k[1])}.csv</a></td>"] for k, c in cells]
    return (f"<p>{len(cells)} more cell(s): their samples are in the run's traces folder.</p>"
            + _table(["Cell", "Samples", "Trace file"], rows))


def _failures(table: ResultsTable) -> str:
    if not table.failures:
        return "<p>No cell failed.</p>"
    headers = ["Device", "Model", "Level", "Runtime", "Workload", "Kind", "Exit code", "Reason",
               "stderr (tail)"]
    rows = [[_td(f["device_key"].label()), _td(f["model"]), _td(f["level"]), _td(f["runtime"]),
             _td(f["workload"]), _td(f.get("failure_kind")), _td(f.get("exit_code")),
             _td(f.get("reason"), cls="wrap"), f"<td class=\"wrap\"><pre>{_e(f.get('stderr_tail') or '')}</pre></td>"]
            for f in table.failures]
    return _table(headers, rows)


def _methods(table: ResultsTable, out_dir: Path) -> str:
    parts = ["<p>Energy: <em>measured</em> figures come from the named sensor and cover the named "
             "rails; <em>estimated</em> figures come from the named model and are not measurements; "
             "<em>scripted</em> is the test sensor. Net energy subtracts the idle baseline power "
             "measured before the repetitions. Means carry 95% Student-t intervals over "
             "repetitions; quality rates carry 95% Wilson intervals over items.</p>",
             f"<p>Merging runs: {_e(MERGE_RULE)}</p>"]
    for r in table.runs:
        m = r["manifest"]
        host, dev, energy = m.get("host") or {}, m.get("device") or {}, m.get("energy") or {}
        matrix = m.get("matrix") or {}
        reps = r["repetitions"]
        rates = [x.get("sample_rate_hz") for x in reps if isinstance(x.get("sample_rate_hz"), (int, float))]
        achieved = f"{fmt_number(min(rates))}–{fmt_number(max(rates))} Hz achieved" if rates else "no samples"
        llama = (m.get("runtime_info") or {}).get("llama_cpp") or {}
        models = sorted({str(x["energy_model"]) for x in reps if x.get("energy_model")})
        coverage = sorted({str(x["energy_coverage"]) for x in reps if x.get("energy_coverage")})
        carbon = sorted({f"{x['carbon_intensity_g_per_kwh']:g} g/kWh ({x.get('carbon_source')})"
                         for x in reps if isinstance(x.get("carbon_intensity_g_per_kwh"), (int, float))})
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted((m.get("packages") or {}).items()))
        items = [
            ("Run", f"{r['run_id']} ({m.get('created_utc')})"),
            ("Status", _status_text(r)),
            ("Folder", relpath(Path(r["path"]), out_dir)),
            ("Harness", f"edgebench {m.get('harness_version')} (git {m.get('git_commit')}), "
                        f"matrix {m.get('matrix_path')}"),
            ("Host", f"{host.get('hostname')}: {host.get('cpu_model')} ({host.get('cpu_vendor')}), "
                     f"{host.get('cores_physical')} physical / {host.get('cores_logical')} logical cores, "
                     f"{_gib(host.get('ram_bytes'))}, {host.get('os')} {host.get('kernel')} {host.get('machine')}"),
            ("Device profile", f"{dev.get('profile')} (detected {dev.get('detected_profile')}"
                               f"{', EMULATED' if dev.get('emulated') else ''}; "
                               f"{_detection(dev.get('detection'))})"),
            ("Energy", _energy_method(reps, energy, achieved, models, coverage)),
            ("Carbon", "; ".join(carbon) or "not recorded"),
            ("Repetitions", _repetitions(r["summaries"], matrix)),
            ("Python / packages", f"{m.get('python')}; {pkgs}"),
            ("llama.cpp", f"{llama.get('version')}: {llama.get('system_info')}"),
        ]
        dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
        parts.append(f'<div class="box"><dl class="methods">{dl}</dl></div>')
    return "".join(parts)


def _status_text(r: dict[str, Any]) -> str:
    state = r.get("state")
    if state is None or state.complete:
        return "complete"
    return f"interrupted ({'; '.join(state.evidence)})"


def _detection(d: Any) -> str:
    """The devices room records detection as a dict (evidence, facts); show its evidence."""
    if isinstance(d, dict):
        ev = d.get("evidence")
        return "; ".join(map(str, ev)) if isinstance(ev, list) and ev else "no evidence recorded"
    return str(d)


def _energy_method(reps: list[Row], energy: dict[str, Any], achieved: str, models: list[str],
                   coverage: list[str]) -> str:
    """How energy was obtained, from the records (what happened) and the manifest (what was asked)."""
    used = sorted({f"{x.get('energy_method')} by {x.get('energy_sensor')}" for x in reps
                   if x.get("energy_method")})
    if not used and energy.get("method"):
        used = [f"{energy.get('method')} by {energy.get('sensor')}"]
    asked = energy.get("sensor") or energy.get("sensor_requested")
    parts = [", ".join(used) or "no energy figures",
             f"sensor requested: {asked}" if asked else "",
             f"{energy.get('rate_hz')} Hz requested ({achieved})",
             f"estimate model: {', '.join(models)}" if models else "",
             f"coverage: {', '.join(coverage)}" if coverage else "",
             f"idle baseline {energy['baseline_s']} s" if energy.get("baseline_s") is not None else ""]
    return "; ".join(p for p in parts if p)


def _gib(x: Any) -> str:
    """Memory sizes in binary units, like every memory figure of the report (MiB, GiB)."""
    return f"{x / 2**30:.1f} GiB RAM" if isinstance(x, (int, float)) else "RAM unknown"


def _repetitions(summaries: list[Row], matrix: dict[str, Any]) -> str:
    """What the cells actually did (summaries), else what the matrix asked for."""
    reps = sorted({s["n_repetitions"] for s in summaries if isinstance(s.get("n_repetitions"), int)})
    warm = sorted({s["warmup"] for s in summaries if isinstance(s.get("warmup"), int)})
    reps_s = "/".join(map(str, reps)) if reps else _matrix_setting(matrix, "repetitions")
    warm_s = "/".join(map(str, warm)) if warm else _matrix_setting(matrix, "warmup")
    return f"{reps_s} measured repetition(s) per cell after {warm_s} warm-up(s)"


def _matrix_setting(matrix: dict[str, Any], key: str) -> str:
    """The matrix as given: the key at top level or in a settings/defaults mapping."""
    for where in (matrix, matrix.get("settings"), matrix.get("defaults")):
        for k in (key, key + "s"):
            if isinstance(where, dict) and k in where:
                return str(where[k])
    return "not recorded"
