"""The summary table as CSV: one row per configuration, setting and speed workload (the same rows
as report.md), SI units, intervals as columns. Settings absent from older runs are empty."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from .html import energy_text
from .tables import ResultsTable, configurations

SUMMARY_METRICS = ("energy_per_decode_token_j", "energy_per_prefill_token_j", "tokens_per_j",
                   "energy_net_j", "power_avg_w", "co2e_g", "energy_load_j",
                   "decode_tokens_per_s", "prefill_tokens_per_s", "decode_roofline_fraction",
                   "ttft_s", "e2e_latency_s",
                   "peak_rss_bytes", "load_time_s", "hallucination_rate", "accuracy",
                   "abstention_rate", "mc1", "mc2", "kl_divergence_mean", "top1_agreement",
                   "perplexity_ratio", "token_agreement")
ID_COLUMNS = ("device", "host", "model", "level", "runtime", "power_mode", "quant_type",
              "bits_per_weight", "source_quant_type", "speed_workload", "speed_kind",
              "llama_bench_test", "n_threads", "n_threads_batch", "n_batch", "n_ctx",
              "threads_source", "swept_settings")
TAIL_COLUMNS = ("energy_method", "energy_sensor", "energy_model", "energy_coverage", "energy",
                "emulated", "throttled", "quality_workload", "memory_bandwidth_bytes_per_s",
                "decode_bytes_per_token", "model_size_bytes", "warnings", "run_ids")


def columns() -> list[str]:
    cols = list(ID_COLUMNS)
    for m in SUMMARY_METRICS:
        cols += [m, f"{m}_ci95_low", f"{m}_ci95_high", f"{m}_n"]
    return cols + list(TAIL_COLUMNS)


def render_csv(table: ResultsTable) -> str:
    """Pure: the configuration rows, raw record values (SI units as the column names say)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = columns()
    w.writerow(cols)
    for c in configurations(table):
        row = dict(c, energy=energy_text(c), run_ids=" ".join(c["run_ids"]),
                   swept_settings=json.dumps(c["swept_settings"], sort_keys=True)
                   if c.get("swept_settings") else None,
                   warnings="; ".join(c.get("warnings") or []) or None)
        w.writerow([_cell(row.get(k)) for k in cols])
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # numbers stay numbers, a negative one too
    return text_cell(str(v))


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(s: str) -> str:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading `'`.

    Model names and warnings come from run folders made elsewhere; `=HYPERLINK(...)` in a name
    must show as text in Excel or LibreOffice (the OWASP rule for CSV injection).
    """
    return "'" + s if s.startswith(FORMULA_LEADS) else s
