"""Charts as inline SVG text (matplotlib, the `[report]` extra).

Text stays text in the SVG (`svg.fonttype: none`) so charts are small, searchable and use the
page's font; no image, font or script is referenced. Output is deterministic (fixed hash salt,
no date) so the same table gives the same page.
"""
from __future__ import annotations

import io
import math
import re
from typing import Any

from ..errors import HarnessError
from .metrics import SPECS, MetricSpec

PHASE_COLOURS = {"load": "#b0b0b0", "baseline": "#9ecae1", "prefill": "#fdae6b", "decode": "#a1d99b",
                 "run": "#cbc9e2"}  # "run": a quality workload's whole window
FRONT_COLOUR = "#1f5fa8"
GAP_COLOUR = "#c00000"  # non-finite samples, left out of a line
DOMINATED_COLOUR = "#a0a0a0"
MAX_LABELS = 14  # beyond this only front points are labelled (the table lists the rest)
# Beyond this many dominated configurations they are drawn as grey hexagons shaded by count,
# without intervals (the legend says so): 5,000 hollow squares with error bars are an unreadable
# blot, 1.5 s of matplotlib and ~1 MB of SVG per chart. The front is always drawn point by point.
DENSITY_ABOVE = 300


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise HarnessError("charts need matplotlib: pip install edgebench[report] "
                           "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "edgebench",
                         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "font.family": "sans-serif",
                         # labels are model and level names from run folders: `$x$` is text, never
                         # mathtext (which would render it as math, or raise on a malformed one)
                         "text.parse_math": False})
    return plt


def _to_svg(fig: Any, title: str) -> str:
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE: it is inlined in HTML
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # RDF boilerplate
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', svg, count=1)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', 1)
    return svg


def _attr(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def _val(spec: MetricSpec, x: float | None) -> float | None:
    return None if x is None else x * spec.scale


def pareto_svg(points: list[dict[str, Any]], x: str, y: str, min_x: bool, min_y: bool,
               title: str) -> str:
    """Scatter of configurations; the front is filled and joined, dominated points are hollow grey."""
    plt = _pyplot()
    xs, ys = SPECS[x], SPECS[y]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    label_all = len(points) <= MAX_LABELS
    for on_front in (False, True):
        group = [p for p in points if p["on_front"] == on_front]
        if not group:
            continue
        colour = FRONT_COLOUR if on_front else DOMINATED_COLOUR
        px = [_val(xs, p["x"]) for p in group]
        py = [_val(ys, p["y"]) for p in group]
        if not on_front and len(group) > DENSITY_ABOVE:
            _density(ax, px, py)
            continue
        xerr = _errs(group, xs, "x")
        yerr = _errs(group, ys, "y")
        ax.errorbar(px, py, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, elinewidth=0.8,
                    alpha=0.6, zorder=1)
        ax.scatter(px, py, s=46 if on_front else 34, zorder=3, marker="o" if on_front else "s",
                   facecolors=colour if on_front else "white", edgecolors=colour, linewidths=1.2,
                   label="Pareto front" if on_front else "dominated")
        for p, vx, vy in zip(group, px, py):
            if label_all or on_front:
                mark = (" (emulated)" if p.get("emulated") else "") + \
                    (" (throttled)" if p.get("throttled") else "")
                ax.annotate(p["label"] + mark, (vx, vy), textcoords="offset points", xytext=(5, 4),
                            fontsize=7.5, color="#202020" if on_front else "#707070")
    front = sorted((p for p in points if p["on_front"]), key=lambda p: p["x"])
    if len(front) > 1:
        ax.plot([_val(xs, p["x"]) for p in front], [_val(ys, p["y"]) for p in front],
                color=FRONT_COLOUR, linewidth=1, alpha=0.5, zorder=2,
                drawstyle="steps-post" if min_x == min_y else "default")
    ax.set_xlabel(f"{xs.label} ({xs.unit}) " + ("← better" if min_x else "better →"))
    ax.set_ylabel(f"{ys.label} ({ys.unit}) " + ("↓ better" if min_y else "↑ better"))
    ax.set_title(title, fontsize=9.5, loc="left")
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.margins(0.15)
    ax.legend(fontsize=7.5, loc="best", frameon=False)
    return _to_svg(fig, title)


def _density(ax: Any, px: list[float | None], py: list[float | None]) -> None:
    """Many dominated points as hexagons shaded by how many configurations fall in each."""
    pairs = [(vx, vy) for vx, vy in zip(px, py)
             if vx is not None and vy is not None and math.isfinite(vx) and math.isfinite(vy)]
    if not pairs:
        return
    from matplotlib.colors import LinearSegmentedColormap

    shades = LinearSegmentedColormap.from_list("dominated", ["#d4d4d4", "#404040"])  # 1 stays visible
    ax.hexbin([q[0] for q in pairs], [q[1] for q in pairs], gridsize=36, mincnt=1, cmap=shades,
              linewidths=0, zorder=1)
    ax.scatter([], [], marker="h", s=46, color=DOMINATED_COLOUR,  # the legend's entry
               label=f"dominated ({len(pairs)}, shaded by count; intervals in the table)")


def _errs(group: list[dict[str, Any]], spec: MetricSpec, axis: str) -> list[list[float]] | None:
    """Asymmetric error bars (95% CI) for a group; zero where a point has no interval."""
    lows, highs, any_ci = [], [], False
    for p in group:
        e = _err(_val(spec, p[axis]), _val(spec, p.get(f"{axis}_low")), _val(spec, p.get(f"{axis}_high")))
        any_ci = any_ci or e is not None
        lows.append(e[0][0] if e else 0.0)
        highs.append(e[1][0] if e else 0.0)
    return [lows, highs] if any_ci else None


def _err(v: float | None, lo: float | None, hi: float | None) -> list[list[float]] | None:
    if v is None or lo is None or hi is None:
        return None
    return [[max(0.0, v - lo)], [max(0.0, hi - v)]]


def trace_svg(segments: list[dict[str, Any]], title: str) -> str:
    """Power over time: windows (load, baseline, repetitions) side by side, phases shaded.

    Drawn as plain SVG (a polyline per window) rather than with matplotlib: a report holds one
    trace per cell (150 with 5 devices x 10 levels x 3 models), and matplotlib takes about a
    second per figure where this takes milliseconds and a fraction of the bytes.
    """
    w, h, left, right, top, bottom = 720.0, 190.0, 44.0, 8.0, 18.0, 30.0
    placed, offset, n_gaps = [], 0.0, 0
    for seg in segments:
        t = [x for x in seg["t_s"] if _finite(x)]
        n_gaps += sum(not (_finite(a) and _finite(b)) for a, b in zip(seg["t_s"], seg["power_w"]))
        if not t:
            continue
        start = offset - t[0]
        placed.append((start, seg))
        offset = start + t[-1] + max(0.3, 0.04 * (t[-1] - t[0]))
    if not placed:
        return f'<p class="muted">{_attr(title)}: no samples</p>'
    t_max = max(offset, 1e-9)
    p_max = max((p for _, s in placed for p in s["power_w"] if _finite(p)), default=1.0)
    step = _nice_step(p_max / 4)
    y_top = step * (int(p_max / step) + 1)
    sx = lambda t: left + (w - left - right) * t / t_max  # noqa: E731
    sy = lambda p: top + (h - top - bottom) * (1 - p / y_top)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'aria-label="{_attr(title)}" font-size="10" font-family="sans-serif">']
    seen = []
    for start, seg in placed:
        for name, (a, b) in seg["phases"].items():
            colour = PHASE_COLOURS.get(name, "#dddddd")
            out.append(f'<rect x="{sx(start + a):.1f}" y="{top}" width="{max(0.5, sx(start + b) - sx(start + a)):.1f}" '
                       f'height="{h - top - bottom}" fill="{colour}" fill-opacity="0.55"><title>'
                       f'{_attr(name)}: {b - a:.3g} s</title></rect>')
            if name not in seen:
                seen.append(name)
    for i in range(int(y_top / step) + 1):
        y = sy(i * step)
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                   f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{i * step:g}</text>')
    for start, seg in placed:
        out += _trace_lines(seg, lambda t: sx(start + t), sy, (top, h - bottom))  # noqa: B023
        label = seg["label"] if seg["label"] in ("load", "baseline") else f"rep {seg['label']}"
        t = [x for x in seg["t_s"] if _finite(x)]
        if sx(start + t[-1]) - sx(start + t[0]) >= 6 * len(label):  # room for it
            out.append(f'<text x="{sx(start + t[0]):.1f}" y="{top - 5}" fill="#505050">'
                       f"{_attr(label)}</text>")
    if n_gaps:
        out.append(f'<text x="{w - right}" y="{top - 5}" text-anchor="end" fill="{GAP_COLOUR}" '
                   f'class="gap-flag">{n_gaps} sample(s) not a finite number: left out, '
                   "shown as gaps (red ticks)</text>")
    for i in range(6):
        t = t_max * i / 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(f'<text x="{sx(t):.1f}" y="{h - bottom + 13}" text-anchor="{anchor}">{t:.3g}</text>')
    out.append(f'<text x="{left}" y="{h - 3}">time (s; windows side by side)</text>'
               f'<text x="10" y="{top + (h - top - bottom) / 2:.0f}" transform="rotate(-90 10 '
               f'{top + (h - top - bottom) / 2:.0f})" text-anchor="middle">power (W)</text>')
    x = w - right
    for name in reversed(seen):
        x -= 8 + 7 * len(name) + 14
        out.append(f'<rect x="{x:.0f}" y="{h - 12}" width="10" height="9" fill="{PHASE_COLOURS.get(name, "#dddddd")}"/>'
                   f'<text x="{x + 13:.0f}" y="{h - 4}">{_attr(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _trace_lines(seg: dict[str, Any], sx: Any, sy: Any, y_span: tuple[float, float]) -> list[str]:
    """A window's power as polylines broken where a sample is NaN or infinite.

    A non-finite sample (a sensor glitch, a division by a zero interval) would make the whole
    polyline invalid SVG, or hide as a spike; it is a gap instead, with a red tick where its time
    is known, so the reader sees that figures are missing there.
    """
    out, run = [], []
    for t, p in zip(seg["t_s"], seg["power_w"]):
        if _finite(t) and _finite(p):
            run.append(f"{sx(t):.1f},{sy(p):.1f}")
            continue
        if run:
            out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#303030" '
                       'stroke-width="0.9"/>')
        run = []
        if _finite(t):
            out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{y_span[1] - 6:.1f}" '
                       f'y2="{y_span[1]:.1f}" stroke="{GAP_COLOUR}" stroke-width="1.2"><title>'
                       f"power not a number at {t:.3g} s</title></line>")
    if run:
        out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#303030" '
                   'stroke-width="0.9"/>')
    return out


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least raw."""
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


SERIES_COLOURS = ("#1f5fa8", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d",
                  "#666666")


def threads_svg(series: list[dict[str, Any]], metric: str, title: str) -> str:
    """`metric` against the thread count, one line per configuration, drawn as plain SVG.

    series: [{"label": str, "points": [{"x": threads, "y": v, "low": lo|None, "high": hi|None,
    "ring": bool}]}] in record units (SI); shown in the metric's display unit. A ringed point is
    the one the caller wants noticed (the fastest, or the least energy per token). Plain SVG like
    `trace_svg`: no matplotlib needed, deterministic, and nothing is fetched.
    """
    spec = SPECS[metric]
    pts = [p for s in series for p in s["points"] if _finite(p.get("y"))]
    n_gaps = sum(p.get("y") is not None and not _finite(p.get("y")) for s in series for p in s["points"])
    if not pts:
        return f'<p class="muted">{_attr(title)}: no figures</p>'
    w, left, right, top, plot_h, bottom = 520.0, 52.0, 12.0, 22.0, 170.0, 34.0
    legend_h = 14.0 * len(series) + 4
    h = top + plot_h + bottom + legend_h
    xs = sorted({p["x"] for p in pts})
    x_lo, x_hi = xs[0], xs[-1]
    span = max(x_hi - x_lo, 1)
    y_max = max(_val(spec, p["high"] if _finite(p.get("high")) else p["y"]) for p in pts)
    step = _nice_step(max(y_max, 1e-12) / 4)
    y_top = step * (int(y_max / step) + 1)
    sx = lambda x: left + (w - left - right) * (0.06 + 0.88 * (x - x_lo) / span)  # noqa: E731
    sy = lambda v: top + plot_h * (1 - v / y_top)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'aria-label="{_attr(title)}" font-size="10" font-family="sans-serif">',
           f'<text x="{left}" y="12" font-size="11">{_attr(title)}</text>']
    if n_gaps:
        out.append(f'<text x="{w - right}" y="12" text-anchor="end" fill="{GAP_COLOUR}" '
                   f'class="gap-flag">{n_gaps} figure(s) not a finite number: left out</text>')
    for i in range(int(y_top / step) + 1):
        y = sy(i * step)
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                   f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{i * step:g}</text>')
    for x in xs:
        out.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 13:.1f}" text-anchor="middle">{x:g}</text>')
    arrow = "↓ better" if spec.lower_is_better else "↑ better"
    out.append(f'<text x="{left + (w - left - right) / 2:.0f}" y="{top + plot_h + 27:.1f}" '
               f'text-anchor="middle">threads</text>'
               f'<text x="12" y="{top + plot_h / 2:.0f}" transform="rotate(-90 12 {top + plot_h / 2:.0f})" '
               f'text-anchor="middle">{_attr(f"{spec.label} ({spec.unit}) {arrow}")}</text>')
    for i, s in enumerate(series):
        out.append(_series_svg(s, SERIES_COLOURS[i % len(SERIES_COLOURS)], spec, sx, sy))
        ly = top + plot_h + bottom + 14.0 * i + 8
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        out.append(f'<line x1="{left}" x2="{left + 18}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="{colour}" '
                   f'stroke-width="2"/><text x="{left + 24}" y="{ly + 3.5:.1f}">{_attr(s["label"])}</text>')
    out.append("</svg>")
    return "".join(out)


def _series_svg(s: dict[str, Any], colour: str, spec: MetricSpec, sx: Any, sy: Any) -> str:
    """One configuration's line, its 95% intervals and its points (exact value on hover)."""
    pts = sorted((p for p in s["points"] if _finite(p.get("y"))), key=lambda p: p["x"])
    out = []
    if len(pts) > 1:
        line = " ".join(f"{sx(p['x']):.1f},{sy(_val(spec, p['y'])):.1f}" for p in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    for p in pts:
        x, y = sx(p["x"]), sy(_val(spec, p["y"]))
        if _finite(p.get("low")) and _finite(p.get("high")):
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(_val(spec, p["low"])):.1f}" '
                       f'y2="{sy(_val(spec, p["high"])):.1f}" stroke="{colour}" stroke-opacity="0.5"/>')
        if p.get("ring"):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6.5" fill="none" stroke="{colour}" '
                       'stroke-width="1.2"/>')
        tip = f"{s['label']}: {p['x']:g} threads, {_val(spec, p['y']):.4g} {spec.unit}"
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{_attr(tip)}'
                   "</title></circle>")
    return "".join(out)
