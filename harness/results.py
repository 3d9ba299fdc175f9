"""Runs as pandas DataFrames: the public way to analyse results in a notebook.

    import harness.results
    reps = harness.results.load(["results/"])                 # one row per repetition
    cells = harness.results.load(["results/"], kind="cell")   # one row per cell summary
    cells.groupby(["device", "level"])["energy_per_decode_token_j"].min()
    cells.attrs["units"]["energy_per_decode_token_j"]         # 'J/token'

Columns are the record fields, named as in the metric registry (`harness.metrics`, SI units in
the names), beside the cell's dimensions and runtime settings; `df.attrs["units"]` maps every
value column to its SI unit. A repetition row also carries its cell's constants (settings,
energy method, quant type) even where the record keeps them once per cell, so a frame never
depends on where a record version stored them.

pandas is the `[report]` extra: the runner and the device never import this module (a test
checks it), so a device installs nothing for it. Runs are read through `harness.store` only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .errors import HarnessError
from .metrics import METRICS
from .records import DIMENSIONS
from .store import Run, iter_run_dirs, load_run

if TYPE_CHECKING:
    import pandas

KINDS = ("repetition", "cell")
SETTINGS = ("n_threads", "n_threads_batch", "n_batch", "n_ctx")
# A summary metric's statistics beside its mean; the mean keeps the metric's own name.
STATS = ("median", "p90", "stdev", "ci95_low", "ci95_high", "n")
IDENTITY = ("run_id", "host", "cell_id", *DIMENSIONS, "workload_kind", *SETTINGS, "swept_settings")
# Cell-summary fields that say what the summary is, not what the cell ran with.
_SUMMARY_ONLY = frozenset({"schema_version", "record_type", "status", "n_repetitions", "metrics",
                           "unstable", "warnings", "attempt"})
_SKIP = frozenset({"schema_version", "record_type"})
_INTERVAL = ("_ci95_low", "_ci95_high")


def load(paths: Sequence[str | Path], kind: str = "repetition") -> "pandas.DataFrame":
    """Read run directories (or folders of runs, or globs) into one DataFrame.

    Runs are not merged: every run's rows are there, each with `run_status` ("complete", or
    "interrupted": store.RunState), so a notebook can apply the report's rule or its own.
    kind="repetition": one row per measured repetition of a finished cell. kind="cell": one row
    per cell (its summary: each metric's mean under the metric's name, then `<metric>_median`,
    `_p90`, `_stdev`, `_ci95_low`, `_ci95_high`, `_n`), plus a row per failed cell with
    `status` "failed" and its reason.
    """
    if kind not in KINDS:
        raise HarnessError(f"kind={kind!r} is not one of {list(KINDS)}")
    dirs = list(dict.fromkeys(Path(p).resolve() for p in iter_run_dirs(paths)))
    if not dirs:
        raise HarnessError("no run directories given")
    runs = [load_run(d) for d in dirs]
    return repetitions_frame(runs) if kind == "repetition" else cells_frame(runs)


def pandas_module() -> Any:
    """pandas, or an error a user can act on (it is the [report] extra, not a runner dependency)."""
    try:
        import pandas
    except ImportError:
        raise HarnessError("analysing runs needs pandas: pip install edgebench[report]") from None
    return pandas


def run_id_of(run: Run) -> str:
    return str(run.manifest.get("run_id") or run.path.name)


def host_of(run: Run) -> str:
    return str((run.manifest.get("host") or {}).get("hostname") or "unknown")


def repetitions_frame(runs: Iterable[Run], columns: Sequence[str] | None = None) -> "pandas.DataFrame":
    """One row per repetition; `columns` limits the frame to those (identity always included)."""
    rows = []
    for run in runs:
        rid, host = run_id_of(run), host_of(run)
        constants = {s["cell_id"]: _cell_constants(s) for s in run.summaries}
        status = run.state.status
        for r in run.repetitions:
            row = {"run_id": rid, "host": host, "run_status": status} | constants.get(r["cell_id"], {})
            row.update((k, v) for k, v in r.items() if k not in _SKIP)
            rows.append(row)
    return _frame(rows, columns, first=("repetition", "attempt", "run_status"))


def cells_frame(runs: Iterable[Run], columns: Sequence[str] | None = None) -> "pandas.DataFrame":
    """One row per cell summary (metrics flattened to mean + statistics) and per failed cell."""
    rows = []
    for run in runs:
        rid, host, status = run_id_of(run), host_of(run), run.state.status
        for s in run.summaries:
            row = {"run_id": rid, "host": host, "run_status": status, "status": s.get("status") or "ok",
                   "n_repetitions": s.get("n_repetitions")} | _cell_constants(s)
            row["unstable"] = list(s.get("unstable") or [])
            row["warnings"] = [str(w) for w in s.get("warnings") or []]
            row.update(summary_metrics(s.get("metrics") or {}))
            rows.append(row)
        for f in run.failures:
            rows.append({"run_id": rid, "host": host, "run_status": status, "status": "failed"}
                        | {k: v for k, v in f.items() if k not in _SKIP})
    return _frame(rows, columns, first=("status", "n_repetitions", "run_status"))


def _cell_constants(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in _SUMMARY_ONLY}


def summary_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Registry metrics of a summary as flat values. A rate's per-item (Wilson) interval, which
    the quality workload records as `<m>_ci95_low/high` beside it, replaces the t-interval over
    repetitions: the spread that matters for a rate is over items."""
    out: dict[str, Any] = {}
    for name, m in metrics.items():
        cols = _STAT_COLUMNS.get(name)
        if cols is None or not isinstance(m, dict):
            continue
        out[name] = m.get("mean")
        out.update(zip(cols[0], map(m.get, STATS)))  # 10,000 cells: no name formatting per cell
        lo, hi = metrics.get(cols[1]), metrics.get(cols[2])
        if isinstance(lo, dict) and isinstance(hi, dict):
            out[cols[1]], out[cols[2]] = lo.get("mean"), hi.get("mean")
    return out


# registry metric -> (its "<m>_<stat>" columns in STATS order, "<m>_ci95_low", "<m>_ci95_high")
_STAT_COLUMNS: dict[str, tuple[tuple[str, ...], str, str]] = {
    name: (tuple(f"{name}_{stat}" for stat in STATS), f"{name}_ci95_low", f"{name}_ci95_high")
    for name in METRICS}


def _frame(rows: list[dict[str, Any]], columns: Sequence[str] | None,
           first: Sequence[str]) -> "pandas.DataFrame":
    pd = pandas_module()
    present: dict[str, None] = {}
    for r in rows:
        present.update(dict.fromkeys(r))
    order = _order(present, first)
    if columns is not None:
        order = [c for c in order if c in IDENTITY or c in columns]
    df = pd.DataFrame({c: _column(pd, c, [_scalar(c, r.get(c)) for r in rows]) for c in order},
                      columns=order, index=pd.RangeIndex(len(rows)))
    df.attrs["units"] = {c: METRICS[_metric_of(c)].unit for c in order
                         if _metric_of(c) is not None and not c.endswith("_n")}
    return df


def _order(present: Mapping[str, None], first: Sequence[str]) -> list[str]:
    """Identity, then what the row is, then registry metrics in registry order, then the rest."""
    ident = [c for c in IDENTITY if c in present]
    head = [c for c in first if c in present and c not in ident]
    metrics = [c for name in METRICS for c in (name, *(f"{name}_{s}" for s in STATS))
               if c in present and c not in ident]
    taken = set(ident) | set(head) | set(metrics)
    return ident + head + metrics + [c for c in present if c not in taken]


def _metric_of(column: str) -> str | None:
    if column in METRICS:
        return column
    for stat in STATS:
        base = column.removesuffix(f"_{stat}")
        if base != column and base in METRICS:
            return base
    return None


def _scalar(column: str, v: Any) -> Any:
    """swept_settings as sorted JSON text: hashable, so it groups and compares like any key."""
    if column == "swept_settings":
        return json.dumps(v, sort_keys=True) if v else ""
    return v


def _column(pd: Any, column: str, values: list[Any]) -> Any:
    """Metrics as float64 (missing: NaN); settings and counts as nullable integers when every
    value is one (so 4 threads reads 4, not 4.0); everything else as pandas infers it."""
    base = _metric_of(column)
    if base is not None and not column.endswith("_n"):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64")
    if (column in SETTINGS or base is not None) and all(
            v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        return pd.Series(pd.array(values, dtype="Int64"))
    return pd.Series(values, dtype=object if any(isinstance(v, (list, dict)) for v in values[:1])
                     else None)


def swept_settings(text: str | None) -> dict[str, Any]:
    """The swept_settings column back as the mapping records carry."""
    return json.loads(text) if text else {}


__all__ = ["load", "repetitions_frame", "cells_frame", "summary_metrics", "swept_settings", "KINDS"]
