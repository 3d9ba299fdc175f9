"""A short Markdown summary for a pull-request comment: the headline and the summary table."""
from __future__ import annotations

import html

from .html import energy_text, flags_text
from .metrics import SPECS, fmt_ci, fmt_value
from .tables import Constraints, ResultsTable, best_per_device, config_label, configurations

MD_COLUMNS = ("energy_per_decode_token_j", "decode_tokens_per_s", "peak_rss_bytes",
              "hallucination_rate", "accuracy")


def md(x: object) -> str:
    """Escape text for a Markdown table cell (GitHub renders inline HTML, so escape that too)."""
    s = html.escape("" if x is None else str(x), quote=False)
    for ch in ("\\", "|", "`", "*", "_", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return " ".join(s.split())


def _metric(row: dict, name: str) -> str:
    v = row.get(name)
    if v is None:
        return "–"
    ci = fmt_ci(name, row.get(f"{name}_ci95_low"), row.get(f"{name}_ci95_high"))
    return f"{fmt_value(name, v)} {ci}".strip()


def render_markdown(table: ResultsTable, constraints: Constraints, html_name: str) -> str:
    """Pure: the same table and options give the same text."""
    configs = configurations(table)
    out = ["## edgebench report", "",
           f"{len(table.runs)} run(s): {md(', '.join(r['run_id'] for r in table.runs))}; "
           f"{len(table.cells)} finished cells, {len(table.failures)} failed. "
           f"Full report: `{md(html_name)}`.", "",
           f"**Best per device** ({md(constraints.describe())}):", ""]
    best_rows = best_per_device(configs, constraints)
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
        out.append(f"- {md(b['device_key'].label())}: **{md(config_label(best, with_runtime=True))}**"
                   f": {md(SPECS[m].label)} {md(_metric(best, m))} {md(SPECS[m].unit)}, energy "
                   f"{md(energy_text(best))}" + (f" ({md(extra)})" if extra else ""))
    out += ["", "| Device | Configuration | " + " | ".join(
        f"{SPECS[m].label} ({SPECS[m].unit})" for m in MD_COLUMNS) + " | Energy | Flags |",
        "|" + "---|" * (len(MD_COLUMNS) + 4)]
    for c in configs:
        out.append(f"| {md(c['device_key'].label())} | {md(config_label(c, with_runtime=True))} | "
                   + " | ".join(md(_metric(c, m)) for m in MD_COLUMNS)
                   + f" | {md(energy_text(c))} | {md(', '.join(flags_text(c)))} |")
    if table.failures:
        out += ["", f"**Failed cells ({len(table.failures)})**", ""]
        out += [f"- {md(f['device_key'].label())}: {md(config_label(f, with_runtime=True))} / "
                f"{md(f['workload'])}: {md(f.get('failure_kind'))}: {md(f.get('reason'))}"
                for f in table.failures]
    if table.warnings:
        out += ["", f"**Warnings ({len(table.warnings)})**", ""]
        out += [f"- {md(w)}" for w in table.warnings]
    out.append("")
    out.append("Intervals are 95% (Student-t over repetitions; Wilson over items for rates).")
    return "\n".join(out) + "\n"
