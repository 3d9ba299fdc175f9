"""The compact table `python -m harness run` prints when it finishes, one row per cell.

One row per cell means one row per speed workload and per swept setting, like llama-bench's one
row per test and thread count; the threads actually used, the decode roofline percentage and the
emulated badge are on every row. Built from the records themselves (cell_summary / cell_failed,
as the run wrote them) or from a loaded ResultsTable, so the terminal and the report agree.
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

from ..records import CELL_FAILED, CELL_SUMMARY
from .tables import DeviceKey, ResultsTable, Row, cell_row, threads_text

MIB = 2 ** -20
# (header, metric, format, scale): the figures of a row, mean ± half the 95% interval
FIGURES = (("ttft_s", "ttft_s", "{:.3f}", 1.0),
           ("decode_tok/s", "decode_tokens_per_s", "{:.1f}", 1.0),
           ("prefill_tok/s", "prefill_tokens_per_s", "{:.1f}", 1.0),
           ("roofline_%", "decode_roofline_fraction", "{:.0f}", 100.0),
           ("peak_MiB", "peak_rss_bytes", "{:.0f}", MIB),
           ("J/token", "energy_per_decode_token_j", "{:.4f}", 1.0))
# Quality: accuracy, hallucination among attempted answers and abstention together, never the
# hallucination rate over all items alone (declining more answers would lower it).
QUALITY = (("acc.", "accuracy"), ("halluc./ans.", "hallucination_rate_attempted"),
           ("abstain", "abstention_rate"))


def results_table_text(source: ResultsTable | Sequence[Mapping[str, Any]]) -> str:
    """The table as text (ends with a newline). `source`: a ResultsTable, or the run's final
    records (cell_summary and cell_failed dicts, e.g. each outcome's summary or failure);
    rows flattened by `tables.cell_row` are accepted as they are."""
    rows = _rows(source)
    show_prefill = any(r.get("workload_kind") == "llama_bench" and r.get("prefill_tokens_per_s")
                       is not None for r in rows)
    figures = [f for f in FIGURES if f[0] != "prefill_tok/s" or show_prefill]
    lines = [("cell", "status", "threads", *(f[0] for f in figures), "energy",
              *(q[0] for q in QUALITY), "flags")]
    for r in rows:
        if r.get("failed"):
            lines.append((_label(r), "FAILED", threads_text(r), *("" for _ in figures), "",
                          *("" for _ in QUALITY),
                          textwrap.shorten(str(r.get("reason") or ""), 60, placeholder=" ...")))
            continue
        lines.append((_label(r), "ok" + (" !" if r.get("unstable") else ""), threads_text(r),
                      *(_fmt(r, _energy_metric(r, m), fmt, scale) for _, m, fmt, scale in figures),
                      str(r.get("energy_method") or ""),
                      *(_fmt(r, m, "{:.2f}") for _, m in QUALITY),
                      ", ".join(_flags(r))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    table = "".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() + "\n"
                    for line in lines)
    return table + legend_text(lines[1:])


# Every mark the table can show, and what it means; the legend lists those the table shows.
LEGEND = (
    ("±", "mean ± half its 95% interval over the repetitions (2 or more)"),
    ("ok !", "unstable: a figure's stdev is above 10% of its mean (the report lists which)"),
    ("FAILED", "the cell did not finish; the reason is in the flags column"),
    ("EMULATED", "device profile emulated on this host (its cores and memory limit); not "
                 "measured on that device"),
    ("throttled", "the device throttled during the cell (the report gives the reason)"),
    ("warning", "N warning(s) of the cell, in records.jsonl and the report"),
    ("interrupted run", "figures from a run that was stopped; no complete run has this cell"),
    ("estimated", "energy from a model, not a measurement"),
    ("scripted", "energy from the test sensor, not a measurement"),
)
UNITS = ("units: ttft_s seconds; tok/s tokens per second; roofline_% percent of the memory-bandwidth "
         "bound; peak_MiB MiB (2^20 bytes); J/token joules per token; acc. accuracy, halluc./ans. "
         "hallucinations among answered items, abstain abstentions: fractions 0-1")


def legend_text(rows: Sequence[Sequence[str]]) -> str:
    """After a blank line: the units, then what each mark the rows show means."""
    shown = [(mark, text) for mark, text in LEGEND
             if any(mark in cell for row in rows for cell in row)]
    width = max((len(m) for m, _ in shown), default=0)
    return "\n" + UNITS + "\n" + "".join(f"  {m.ljust(width)}  {t}\n" for m, t in shown)


def _rows(source: ResultsTable | Sequence[Mapping[str, Any]]) -> list[Row]:
    if isinstance(source, ResultsTable):
        return list(source.cells) + [dict(f, failed=True) for f in source.failures]
    rows = []
    for rec in source:
        kind = rec.get("record_type")
        if kind == CELL_SUMMARY:
            dkey = DeviceKey(str(rec.get("device") or "unknown"), "")
            rows.append(cell_row(str(rec.get("run_id") or ""), dkey, dict(rec), []))
        elif kind == CELL_FAILED:
            rows.append(dict(rec, failed=True))
        elif kind is None:
            rows.append(dict(rec))
    return rows


def _label(r: Row) -> str:
    """As the run's progress lines name a cell, plus its llama-bench test and swept settings
    other than threads (threads have their own column)."""
    mode = f" [{r['power_mode']}]" if r.get("power_mode") else ""
    label = f"{r.get('model')} {r.get('level')} ({r.get('runtime')}) on {r.get('device')}{mode} " \
            f"/ {r.get('workload')}"
    test = r.get("llama_bench_test")
    if test and test != r.get("workload"):
        label += f" ({test})"
    other = {k: v for k, v in (r.get("swept_settings") or {}).items() if k != "n_threads"}
    if other:
        label += " {" + ", ".join(f"{k}={v}" for k, v in sorted(other.items())) + "}"
    return label


def _energy_metric(r: Row, metric: str) -> str:
    """A llama-bench pp test has no decode: its J/token is per prefill token."""
    if metric == "energy_per_decode_token_j" and r.get(metric) is None \
            and r.get("workload_kind") == "llama_bench":
        return "energy_per_prefill_token_j"
    return metric


def _flags(r: Row) -> list[str]:
    out = ["EMULATED"] if r.get("emulated") else []
    if r.get("throttled"):
        out.append("throttled")
    n = len(r.get("warnings") or [])
    if n:
        out.append(f"{n} warning{'s' if n > 1 else ''} (see records)")
    if r.get("interrupted_run"):
        out.append("interrupted run")
    return out


def _fmt(r: Row, name: str, fmt: str, scale: float = 1.0) -> str:
    mean = r.get(name)
    if mean is None:
        return ""
    text = fmt.format(mean * scale)
    lo, hi = r.get(f"{name}_ci95_low"), r.get(f"{name}_ci95_high")
    if lo is not None and hi is not None and (r.get(f"{name}_n") or 0) > 1:
        text += f"±{fmt.format((hi - lo) / 2 * scale)}"
    return text
