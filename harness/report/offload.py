"""The report's offloading section: the same queries run on the device and sent to a server, side
by side, and where each wins.

Per query (a generation repetition is one query; a quality repetition is `n_items` of them):
device J (the device's own sensor, gross: what it spends computing or waiting on the radio),
server J (`meter serve` on the server, or the level's labelled J/token estimate), network bytes
(HTTP, as the device counts them), total J, g CO2e (each side on its own grid, gross), latency
and quality. The network in between (routers, links, the data centre's cooling) is not metered
and is in no figure here.

Break-even: for an offloaded cell the device's part per query is measured; the server's part is
`server J/token x tokens per query`. Drawn against server J/token, the offloaded total is a line;
the local cell's device J per query is flat. Where the line lies above, the device wins; the
measured server figure is a point on the line.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Sequence

from .tables import ResultsTable, Row

OFFLOAD_RUNTIMES = ("openai_http",)


def is_offloaded(row: Row) -> bool:
    return row.get("runtime") in OFFLOAD_RUNTIMES


def has_offload(table: ResultsTable) -> bool:
    return any(is_offloaded(c) for c in table.cells + table.failures)


@dataclass(frozen=True)
class QueryRow:
    """One cell's figures per query, local or offloaded."""

    device: str
    model: str
    workload: str
    level: str
    where: str  # "device" or the server's URL
    offloaded: bool
    device_j: float | None
    device_method: str | None  # the device sensor's method label
    server_j: float | None
    server_method: str | None  # measured / estimated / scripted / None (not known)
    network_bytes: float | None
    tokens_out: float | None
    latency_s: float | None
    quality: str
    device_grid_g_per_kwh: float | None
    server_grid_g_per_kwh: float | None

    @property
    def total_j(self) -> float | None:
        if self.device_j is None:
            return None
        return self.device_j + (self.server_j or 0.0) if self.offloaded else self.device_j

    @property
    def co2e_g(self) -> float | None:
        """Gross joules on each side x that side's grid (server absent: the device's part only)."""
        if self.device_j is None or self.device_grid_g_per_kwh is None:
            return None
        g = self.device_j / 3.6e6 * self.device_grid_g_per_kwh
        if self.offloaded and self.server_j is not None and self.server_grid_g_per_kwh is not None:
            g += self.server_j / 3.6e6 * self.server_grid_g_per_kwh
        return g

    @property
    def server_j_per_token(self) -> float | None:
        if self.server_j is None or not self.tokens_out:
            return None
        return self.server_j / self.tokens_out


def query_rows(table: ResultsTable) -> list[QueryRow]:
    """Every finished cell of a (device, model, workload) that has at least one offloaded cell."""
    grids = _device_grids(table)
    groups = {(c["device_key"], c["model"], c["workload"]) for c in table.cells if is_offloaded(c)}
    rows = [_query_row(c, grids.get(c.get("run_id"))) for c in table.cells
            if (c["device_key"], c["model"], c["workload"]) in groups]
    return sorted(rows, key=lambda r: (r.device, r.model, r.workload, r.offloaded, r.level))


def _device_grids(table: ResultsTable) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for r in table.runs:
        g = ((r.get("manifest") or {}).get("energy") or {}).get("carbon_intensity_g_per_kwh")
        out[r["run_id"]] = float(g) if isinstance(g, (int, float)) else None
    return out


def _num(row: Row, name: str) -> float | None:
    v = row.get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _query_row(c: Row, device_grid: float | None) -> QueryRow:
    per = _num(c, "n_items") or 1.0  # a quality repetition asks n_items questions
    off = c.get("offload") if isinstance(c.get("offload"), dict) else {}
    sent, received = _num(c, "network_sent_bytes"), _num(c, "network_received_bytes")
    latency = _num(c, "e2e_latency_s")
    if latency is None and _num(c, "window_s") is not None:
        latency = _num(c, "window_s") / per  # type: ignore[operator]
    server = _num(c, "server_energy_j")
    return QueryRow(
        device=c["device_key"].label(), model=str(c["model"]), workload=str(c["workload"]),
        level=str(c["level"]), where=str(off.get("url") or "server") if is_offloaded(c) else "device",
        offloaded=is_offloaded(c), device_j=_div(_num(c, "energy_gross_j"), per),
        device_method=c.get("energy_method"),
        server_j=_div(server, per), server_method=(off.get("server_energy") or {}).get("method"),
        network_bytes=_div(None if sent is None else sent + (received or 0.0), per),
        tokens_out=_div(_num(c, "tokens_out"), per), latency_s=latency, quality=_quality(c),
        device_grid_g_per_kwh=device_grid,
        server_grid_g_per_kwh=_num(off, "server_carbon_intensity_g_per_kwh") if off else None)


def _div(x: float | None, n: float) -> float | None:
    return None if x is None else x / n


def _quality(c: Row) -> str:
    parts = []
    for name, label in (("accuracy", "accuracy"), ("hallucination_rate", "hallucinated")):
        v = _num(c, name)
        if v is not None:
            parts.append(f"{label} {v * 100:.0f}%")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------
# Table text (shared by the page and the Markdown)

HEADERS = ("Device", "Model", "Query kind", "Level", "Runs on", "Device J/query",
           "Server J/query", "Network KiB/query", "Total J/query", "mg CO2e/query",
           "Latency s/query", "Quality")


def cells_text(r: QueryRow) -> list[str]:
    method = f" ({r.server_method})" if r.server_j is not None and r.server_method else ""
    if r.offloaded and r.server_j is None:
        server = "not measured"
    else:
        server = _f(r.server_j, 3) + method if r.offloaded else "-"
    total = _f(r.total_j, 3)
    if r.offloaded and r.server_j is None and r.total_j is not None:
        total += " (device only)"
    elif "estimated" in (r.device_method, r.server_method if r.offloaded else None):
        total += " (incl. estimate)"
    where = "device (local)" if not r.offloaded else f"OFFLOADED to {r.where}"
    device = _f(r.device_j, 3) + (f" ({r.device_method})" if r.device_j is not None and r.device_method else "")
    return [r.device, r.model, r.workload, r.level, where, device, server,
            _f(None if r.network_bytes is None else r.network_bytes / 1024, 1) if r.offloaded else "-",
            total, _f(None if r.co2e_g is None else r.co2e_g * 1e3, 3),
            _f(r.latency_s, 2), r.quality or "-"]


def _f(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


NOTE = ("Per query: device J is the device's own sensor (gross) over the query, waiting on the "
        "network included; server J is the server's meter or the level's J/token estimate, "
        "labelled; network bytes are HTTP bytes counted on the device's socket. The network in "
        "between is not metered and is in no figure. Carbon: each side's gross joules on its own "
        "grid.")


def markdown_lines(table: ResultsTable) -> list[str]:
    rows = query_rows(table)
    if not rows:
        return []
    out = ["", "**Offloading: on the device vs sent to a server**", "",
           "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(t.replace("|", "\\|") for t in cells_text(r)) + " |" for r in rows]
    out += ["", NOTE]
    out += [f"- {line}" for line in break_even_lines(rows)]
    return out


# ------------------------------------------------------------------------------------------------
# Break-even


@dataclass(frozen=True)
class BreakEven:
    local: QueryRow
    offloaded: QueryRow

    @property
    def server_j_per_token_limit(self) -> float | None:
        """Server J/token below which the offloaded query costs less in total than the local one."""
        lo, off = self.local.device_j, self.offloaded.device_j
        if lo is None or off is None or not self.offloaded.tokens_out:
            return None
        return (lo - off) / self.offloaded.tokens_out


def break_evens(rows: Sequence[QueryRow]) -> list[BreakEven]:
    """Each offloaded cell against each local cell of the same device, model and query kind."""
    out = []
    for off in (r for r in rows if r.offloaded):
        for lo in rows:
            if not lo.offloaded and (lo.device, lo.model, lo.workload) == (off.device, off.model, off.workload):
                out.append(BreakEven(lo, off))
    return out


def break_even_lines(rows: Sequence[QueryRow]) -> list[str]:
    lines = []
    for b in break_evens(rows):
        limit = b.server_j_per_token_limit
        head = f"{b.offloaded.workload}: {b.offloaded.level} (offloaded) vs {b.local.level} (local)"
        if limit is None:
            lines.append(f"{head}: no break-even (energy missing)")
        elif limit <= 0:
            lines.append(f"{head}: the device alone spends more waiting for the server than "
                         f"computing locally ({_f(b.offloaded.device_j, 3)} vs "
                         f"{_f(b.local.device_j, 3)} J/query): local wins at any server efficiency")
        else:
            measured = b.offloaded.server_j_per_token
            at = ("" if measured is None else
                  f"; measured server {measured:.4f} J/token: "
                  + ("offloading wins" if measured < limit else "local wins"))
            lines.append(f"{head}: offloading costs less in total while the server spends under "
                         f"{limit:.4f} J/token{at}")
    return lines


def break_even_svg(rows: Sequence[QueryRow], width: int = 640, height: int = 300) -> str:
    """Total J/query against server J/token: one line per offloaded cell, flat local levels,
    measured points. Plain SVG (no matplotlib), deterministic."""
    pairs = [b for b in break_evens(rows) if b.offloaded.device_j is not None and b.offloaded.tokens_out]
    if not pairs:
        return ""
    measured = [b.offloaded.server_j_per_token for b in pairs if b.offloaded.server_j_per_token]
    limits = [b.server_j_per_token_limit for b in pairs if (b.server_j_per_token_limit or 0) > 0]
    x_max = 1.5 * max(measured + limits + [1e-3])
    lines, locals_, points = _series(pairs, x_max)
    y_max = 1.1 * max([y for _, _, y0, y1 in lines for y in (y0, y1)] + [y for _, y in locals_] + [1e-9])
    pad_l, pad_b, pad_t, pad_r = 60, 40, 20, 20
    sx = lambda x: pad_l + (width - pad_l - pad_r) * x / x_max  # noqa: E731
    sy = lambda y: height - pad_b - (height - pad_b - pad_t) * y / y_max  # noqa: E731
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img"><title>Break-even: total J per query '
           'against server J per token</title>',
           f'<line x1="{pad_l}" y1="{sy(0):.1f}" x2="{width - pad_r}" y2="{sy(0):.1f}" stroke="#333"/>',
           f'<line x1="{pad_l}" y1="{sy(0):.1f}" x2="{pad_l}" y2="{pad_t}" stroke="#333"/>',
           f'<text x="{width / 2:.0f}" y="{height - 8}" text-anchor="middle" font-size="12">'
           'server J per output token</text>',
           f'<text x="14" y="{height / 2:.0f}" font-size="12" transform="rotate(-90 14 '
           f'{height / 2:.0f})" text-anchor="middle">total J per query</text>']
    for frac in (0.0, 0.5, 1.0):
        svg.append(f'<text x="{sx(frac * x_max):.1f}" y="{sy(0) + 14:.1f}" font-size="10" '
                   f'text-anchor="middle">{frac * x_max:.3g}</text>')
        svg.append(f'<text x="{pad_l - 4}" y="{sy(frac * y_max) + 3:.1f}" font-size="10" '
                   f'text-anchor="end">{frac * y_max:.3g}</text>')
    for label, y in locals_:
        svg.append(f'<line x1="{sx(0):.1f}" y1="{sy(y):.1f}" x2="{sx(x_max):.1f}" y2="{sy(y):.1f}" '
                   f'stroke="#2a7" stroke-dasharray="6 3"><title>{_e(label)}</title></line>')
    for label, _, y0, y1 in lines:
        svg.append(f'<line x1="{sx(0):.1f}" y1="{sy(y0):.1f}" x2="{sx(x_max):.1f}" y2="{sy(y1):.1f}" '
                   f'stroke="#c50"><title>{_e(label)}</title></line>')
    for label, x, y in points:
        svg.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#c50">'
                   f'<title>{_e(label)}</title></circle>')
    svg.append(f'<text x="{width - pad_r}" y="{pad_t + 10}" font-size="11" text-anchor="end">'
               '<tspan fill="#2a7">- - local (device J/query)</tspan>  <tspan fill="#c50">— offloaded '
               '(device + server)</tspan></text></svg>')
    return "".join(svg)


def _series(pairs: Sequence[BreakEven], x_max: float) -> tuple[list, list, list]:
    lines, locals_, points, seen = [], [], [], set()
    for b in pairs:
        off = b.offloaded
        assert off.device_j is not None and off.tokens_out
        key = (off.device, off.workload, off.level)
        if key not in seen:
            seen.add(key)
            lines.append((f"{off.workload}: {off.level} offloaded", 0.0, off.device_j,
                          off.device_j + x_max * off.tokens_out))
            if off.server_j_per_token is not None and off.total_j is not None:
                points.append((f"{off.level}: measured ({off.server_method})",
                               off.server_j_per_token, off.total_j))
        if b.local.device_j is not None:
            locals_.append((f"{b.local.workload}: {b.local.level} on the device", b.local.device_j))
    return lines, locals_, points


# ------------------------------------------------------------------------------------------------
# The page's section


def section_html(table: ResultsTable) -> str:
    rows = query_rows(table)
    failed = [f for f in table.failures if is_offloaded(f)]
    if not rows and not failed:
        return ""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in HEADERS)
    body = "".join("<tr" + (' class="offloaded"' if r.offloaded else "") + ">"
                   + "".join(f"<td>{_e(t)}</td>" for t in cells_text(r)) + "</tr>" for r in rows)
    parts = [f"<p>{_e(NOTE)}</p>",
             f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table></div>"]
    for key in dict.fromkeys((r.device, r.model, r.workload) for r in rows):  # one chart a query kind
        svg = break_even_svg([r for r in rows if (r.device, r.model, r.workload) == key])
        if svg:
            parts.append(f'<figure class="chart">{svg}<figcaption>Break-even, {_e(" / ".join(key))}: '
                         "where the orange line (offloaded: device + server) lies above the dashed "
                         "green one (local), the device wins; dots are the measured server "
                         "figures.</figcaption></figure>")
    parts += [f"<p>{_e(line)}</p>" for line in break_even_lines(rows)]
    if failed:
        parts.append("<p>Offloaded cells that failed: " + "; ".join(
            _e(f"{f['level']} / {f['workload']}: {f.get('reason')}") for f in failed) + "</p>")
    return "".join(parts)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
