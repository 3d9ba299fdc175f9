"""Figures that compare cells with each other, computed where every cell of a run is known.

A cell's child process sees only its own cell, and the launcher sees cells in run order, so a
figure that pairs two cells cannot be computed there without depending on which cell ran first
(token agreement used to be computed in the launcher and was silently missing when an ONNX level
was listed before its GGUF source). Here it is a pure function of a run's records, in any order.

Token agreement (`token_agreement`, harness.metrics): for each repetition of an ONNX generation
cell, the share of greedy tokens it has in common with the llama.cpp repetition of its GGUF source
(harness.compress.onnx_export.token_agreement) - same run, model, device, power mode, workload,
swept settings and repetition index, runtime llama_cpp, level = the ONNX level's
`compression.derived_from.quant_type`. Both repetitions need their token ids (outputs/<cell>.jsonl,
or `output_tokens` on schema-1 records); a cell without a partner gets no figure (never a wrong one).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..compress.onnx_export import token_agreement
from ..stats import summarize

Row = dict[str, Any]
# Dimensions two repetitions must share to be partners (besides runtime and level).
PARTNER_KEYS = ("model", "device", "power_mode", "workload", "repetition")


def source_level(record: Row) -> str | None:
    """The level an ONNX level's weights derive from (its GGUF source), from a record's compression."""
    derived = (record.get("compression") or {}).get("derived_from") or {}
    return derived.get("quant_type")


def token_agreements(records: Iterable[Row],
                     read_outputs: Callable[[str], list[Row]] | None = None) -> dict[str, list[float]]:
    """cell_id of each ONNX cell with a partner -> its per-repetition agreements, by repetition.

    `records` are one run's records (repetitions and summaries, any order). When a repetition was
    recorded twice (a resumed cell), the later record counts, for both sides. Token ids come from
    `read_outputs(cell_id)` (schema 2 keeps every repetition's in outputs/<cell>.jsonl) when it
    has the repetition, else from the record's `output_tokens`; it is asked only for the cells
    that are paired.
    """
    reps: dict[tuple[str, Any], Row] = {}
    sources: dict[str, str] = {}
    for rec in records:
        level = source_level(rec)
        if level is not None and rec.get("cell_id") is not None:
            sources[str(rec["cell_id"])] = level  # summaries carry it when repetitions do not
        if rec.get("record_type") == "repetition":
            reps[(str(rec.get("cell_id")), rec.get("repetition"))] = rec
    onnx = [r for (cell_id, _), r in reps.items() if r.get("runtime") == "onnx" and cell_id in sources]
    if not onnx:
        return {}
    partners = {_partner_key(r, str(r.get("level"))): r for r in reps.values()
                if r.get("runtime") == "llama_cpp"}
    tokens = _Tokens(read_outputs)
    out: dict[str, list[tuple[Any, float]]] = {}
    for rec in onnx:
        cell_id = str(rec["cell_id"])
        partner = partners.get(_partner_key(rec, sources[cell_id]))
        mine, theirs = tokens.of(rec), tokens.of(partner) if partner is not None else None
        if mine is not None and theirs is not None:
            out.setdefault(cell_id, []).append((rec.get("repetition"), token_agreement(mine, theirs)))
    return {c: [v for _, v in sorted(pairs, key=lambda p: p[0] or 0)] for c, pairs in out.items()}


class _Tokens:
    """A repetition's generated ids: its outputs row (same attempt and repetition), else the record's."""

    def __init__(self, read_outputs: Callable[[str], list[Row]] | None):
        self._read = read_outputs
        self._rows: dict[str, dict[tuple[Any, Any], list[int]]] = {}

    def of(self, rec: Row) -> list[int] | None:
        cell_id = str(rec.get("cell_id"))
        if self._read is not None and cell_id not in self._rows:
            self._rows[cell_id] = {(o.get("attempt"), o.get("repetition")): o["output_tokens"]
                                   for o in self._read(cell_id) if _is_token_list(o.get("output_tokens"))}
        got = self._rows.get(cell_id, {}).get((rec.get("attempt"), rec.get("repetition")))
        got = got if got is not None else rec.get("output_tokens")
        return list(got) if _is_token_list(got) else None


def _is_token_list(v: Any) -> bool:
    """Token ids as the runtime wrote them; anything else (a forged outputs file) is no figure."""
    return isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)


def _partner_key(rec: Row, level: str) -> tuple[Any, ...]:
    swept = tuple(sorted((rec.get("swept_settings") or {}).items()))
    return (*(rec.get(k) for k in PARTNER_KEYS), swept, level)


def add_token_agreement(rows: list[Row], records: Iterable[Row],
                        read_outputs: Callable[[str], list[Row]] | None = None) -> None:
    """Give the report rows of one run their `token_agreement` (mean, n, stdev, 95% CI).

    Rows whose cell has no figure keep what they had (runs written before the figure moved here
    carry it in their cell summaries).
    """
    values = token_agreements(records, read_outputs)
    for row in rows:
        got = values.get(str(row.get("cell_id")))
        if not got:
            continue
        s = summarize(got)
        row["token_agreement"], row["token_agreement_n"] = s["mean"], s["n"]
        row["token_agreement_stdev"] = s["stdev"]
        row["token_agreement_ci95_low"], row["token_agreement_ci95_high"] = s["ci95_low"], s["ci95_high"]
