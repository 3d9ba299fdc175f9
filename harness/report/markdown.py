"""A short Markdown summary for a pull-request comment: the headline and the summary table."""
from __future__ import annotations

import html

from ..budgets.output import visible_controls

from .html import (energy_text, flags_text, metric_columns, setting_columns, setting_text,
                   size_text, tradeoff_text, sweep_note)
from . import offload
from .metrics import SPECS, energy_interval_text, fmt_ci, fmt_value
from .tables import (CRITERION_HELP, MERGE_RULE, Constraints, ResultsTable, Row, best_configurations, config_label,
                     configurations, llama_bench_rows, paired_tests, threads_sweeps, threads_text)

# accuracy, hallucination among answered items and abstention together (html.HEADLINE_QUALITY)
MD_QUALITY = ("accuracy", "hallucination_rate_attempted", "abstention_rate")
MD_COLUMNS = ("energy_per_decode_token_j", "decode_tokens_per_s", "peak_rss_bytes") + MD_QUALITY


def md(x: object) -> str:
    """Escape text for a Markdown table cell (GitHub renders inline HTML, so escape that too)."""
    s = html.escape("" if x is None else str(x), quote=False)
    for ch in ("\\", "|", "`", "*", "_", "[", "]", "~"):
        s = s.replace(ch, "\\" + ch)
    # whitespace (newlines too) becomes one space, so a name cannot start a line of its own; any
    # other control or invisible character is shown, never passed on
    s = " ".join(s.split())
    # printable ASCII has no control or invisible character: 18,000 cells skip the per-character scan
    return s if s.isascii() and s.isprintable() else visible_controls(s)


def _metric(row: dict, name: str) -> str:
    v = row.get(name)
    if v is None:
        return "–"
    ci = fmt_ci(name, row.get(f"{name}_ci95_low"), row.get(f"{name}_ci95_high"))
    extra = energy_interval_text(row, name)  # energy figures: sensor and sampling included
    if extra and row.get(f"{name}_sampling_flagged"):
        extra += " · sampling > 1%"
    return f"{fmt_value(name, v)} {ci} {'(' + extra + ')' if extra else ''}".strip()


def _flags(row: Row) -> str:
    return md(", ".join(flags_text(row)))


def render_markdown(table: ResultsTable, constraints: Constraints, html_name: str,
                    reference_level: str | None = None) -> str:
    """Pure: the same table and options give the same text."""
    configs = configurations(table)
    out = ["## edgebench report", "",
           f"{len(table.runs)} run(s): {md(', '.join(r['run_id'] for r in table.runs))}; "
           f"{len(table.cells)} finished cells, {len(table.failures)} failed. "
           f"Full report: `{md(html_name)}`.", ""]
    if table.run_notes:
        out += [f"**Interrupted runs ({len(table.run_notes)})**", ""]
        out += [f"- {md(n)}" for n in table.run_notes]
        out += ["", md(MERGE_RULE), ""]
    out += _best(table, configs, constraints, reference_level)
    out += _summary_table(configs)
    out += _verdicts(table, reference_level)
    out += _threads(configs)
    out += _llama_bench(configs)
    out += offload.markdown_lines(table)
    if table.failures:
        out += ["", f"**Failed cells ({len(table.failures)})**", ""]
        out += [f"- {md(f['device_key'].label())}: {md(config_label(f, with_runtime=True))} / "
                f"{md(f['workload'])}: {md(f.get('failure_kind'))}: {md(f.get('reason'))}"
                for f in table.failures]
    cell_warnings = [f"{c['device_key'].label()}: {config_label(c, with_runtime=True)}: {w}"
                     for c in configs for w in c.get("warnings") or []]
    if table.warnings or cell_warnings:
        out += ["", f"**Warnings ({len(table.warnings) + len(cell_warnings)})**", ""]
        out += [f"- {md(w)}" for w in table.warnings + cell_warnings]
    out.append("")
    out.append("Intervals are 95% (Student-t over repetitions; Wilson over items for rates).")
    return "\n".join(out) + "\n"


def _best(table: ResultsTable, configs: list[Row], constraints: Constraints,
          reference_level: str | None) -> list[str]:
    out = [f"**Best per device** ({md(constraints.describe())}). {md(CRITERION_HELP)}", ""]
    best_rows = best_configurations(table, configs, constraints, reference_level)
    if not best_rows:
        out.append("- no finished cells")
    for b in best_rows:
        best = b["best"]
        if best is None:
            why = "; ".join(f"{config_label(c)}: {', '.join(w)}" for c, w in b["excluded"][:3])
            out.append(f"- {md(b['device_key'].label())}: none of {b['n_candidates']} "
                       f"configurations meets the constraints ({md(why)})")
            continue
        m = constraints.objective
        extra = "; ".join(flags_text(best))
        quality = "".join(f", {md(SPECS[q].label.lower())} {md(_metric(best, q))} {md(SPECS[q].unit)}"
                          for q in MD_QUALITY if q != m and best.get(q) is not None)
        out.append(f"- {md(b['device_key'].label())}: **{md(config_label(best, with_runtime=True))}**"
                   f": {md(SPECS[m].label)} {md(_metric(best, m))} {md(SPECS[m].unit)}{quality}, energy "
                   f"{md(energy_text(best))}" + (f" ({md(extra)})" if extra else ""))
    return out


def _verdicts(table: ResultsTable, reference_level: str | None) -> list[str]:
    """The paired tests against the reference level, one sentence per level and metric."""
    lines = []
    for t in paired_tests(table, reference_level):
        head = f"{t['device_key'].label()} · {t['model']} · {t['workload']}"
        if t.get("error"):
            lines.append(f"- {md(head)}: {md(t['level'])} not comparable: {md(t['error'])}")
        lines += [f"- {md(head)}: {md(v)}" for v in t.get("verdicts") or []]
    if not lines:
        return []
    return ["", "**Quality against the reference level** (paired McNemar tests on the same items; "
                "hallucination among the items both levels answered):", ""] + lines


def _summary_table(configs: list[Row]) -> list[str]:
    """One row per configuration, setting and speed workload; settings columns only where known."""
    settings = setting_columns(configs)
    metrics = metric_columns(configs, MD_COLUMNS)
    heads = ["Device", "Configuration"] + [name for _, name in settings] \
        + [f"{SPECS[m].label} ({SPECS[m].unit})" for m in metrics] + ["Energy", "Flags"]
    out = ["", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for c in configs:
        out.append(f"| {md(c['device_key'].label())} | "
                   f"{md(config_label(c, with_runtime=True, with_variant=not settings))} | "
                   + "".join(f"{md(setting_text(c, k))} | " for k, _ in settings)
                   + " | ".join(md(_metric(c, m)) for m in metrics)
                   + f" | {md(energy_text(c))} | {_flags(c)} |")
    return out


def _threads(configs: list[Row]) -> list[str]:
    """Decode tok/s and J/token by thread count, per device and configuration, with the trade-off."""
    sweeps = threads_sweeps(configs)
    if not sweeps:
        return []
    d, e, r = "decode_tokens_per_s", "energy_per_decode_token_j", "decode_roofline_fraction"
    out = ["", "**Threads sweep** (decode speed and energy per token by thread count):", ""]
    out += [f"- {md(s['device_key'].label())}: {md(s['label'])}: {md(tradeoff_text(s))}"
            for s in sweeps]
    out += ["", f"| Device | Configuration | Threads | {SPECS[d].label} ({SPECS[d].unit}) | "
                f"{SPECS[e].label} ({SPECS[e].unit}) | {SPECS[r].label} ({SPECS[r].unit}) | Note | Flags |",
            "|---|---|---|---|---|---|---|---|"]
    for s in sweeps:
        for p in s["points"]:
            out.append(f"| {md(s['device_key'].label())} | {md(s['label'])} | {md(threads_text(p))} | "
                       f"{md(_metric(p, d))} | {md(_metric(p, e))} | {md(_metric(p, r))} | "
                       f"{md(sweep_note(s, p))} | {_flags(p)} |")
    return out


def _llama_bench(configs: list[Row]) -> list[str]:
    """llama_bench cells laid out like llama-bench's own Markdown table, plus energy."""
    rows = llama_bench_rows(configs)
    if not rows:
        return []
    out = ["", "**llama-bench tests** (t/s: mean ± standard deviation over repetitions, as "
               "llama-bench prints it):", "",
           "| Device | model | size | backend | threads | test | t/s | Energy / token (mJ) | Flags |",
           "|---|---|---|---|---|---|---|---|---|"]
    for b in rows:
        c, ts = b["config"], b["t_per_s"]
        text = "–" if ts is None else f"{ts:.2f}" + (
            f" ± {b['t_per_s_stdev']:.2f}" if b.get("t_per_s_stdev") is not None else "")
        out.append(f"| {md(c['device_key'].label())} | {md(c['model'])} {md(c['level'])} | "
                   f"{md(size_text(c.get('model_size_bytes')))} | {md(c['runtime'])} | "
                   f"{md(threads_text(c) or '–')} | {md(b['test'])} | {md(text)} | "
                   f"{md(_metric(c, b['energy_metric']))} | {_flags(c)} |")
    return out
