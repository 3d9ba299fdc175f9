"""Child process that builds one GGUF level: `python -m harness.compress.worker < job.json`.

Why a child: its peak RSS is the work's own (the parent may already hold a loaded model), a
llama.cpp abort cannot take the harness down, and killing it mid-write is a real, testable
interruption. Protocol: the job is one JSON object on stdin; JSON lines come back on stdout
({"event": "progress", "message": ...} then {"event": "done", "result": {...}}); llama.cpp's
own log goes to stderr, which the parent keeps in the build folder.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from .levels import Prune


def quantize(source: Path, dest: Path, ftype: int, allow_requantize: bool, nthread: int) -> None:
    """llama.cpp's own quantizer (what llama-quantize runs), via llama-cpp-python."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = allow_requantize
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc} (see the llama.cpp log above)")


def zero_fraction(path: Path, tensor_names: set[str]) -> float | None:
    """Fraction of exact zeros in the named tensors of a GGUF file, after dequantization.

    Pruned zeros survive symmetric types (Q8_0, F16) but not types with a per-block minimum
    (Q4_K, Q2_K...), so this is measured on the final file, not assumed.
    """
    import gguf
    import numpy as np

    from ..gguf import read_header

    header = read_header(path)
    zeros = total = 0
    for t in header.tensors:
        if t.name not in tensor_names:
            continue
        values = gguf.quants.dequantize(header.tensor_data(t), gguf.GGMLQuantizationType(t.ggml_type))
        zeros += int(np.count_nonzero(values == 0))
        total += int(values.size)
    return round(zeros / total, 6) if total else None


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux/Android report KiB


def build(job: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """Prune (optional) then quantize; returns what the record needs from inside the work."""
    from .prune import LINEAR_RE, write_pruned

    t0 = time.monotonic()
    source, out = Path(job["source"]), Path(job["out"])
    prune_record = None
    quant_input, allow = source, bool(job["allow_requantize"])
    if job.get("prune"):
        prune = Prune(**job["prune"])
        quant_input = out.with_name(out.stem + ".pruned-float.gguf")
        progress(f"pruning ({prune.method}) into a {job['float_type']} GGUF")
        stats = write_pruned(source, quant_input, prune, job["float_type"], progress)
        prune_record = stats.as_record(prune)
    progress(f"quantizing to {job['quant']} with llama.cpp")
    quantize(quant_input, out, int(job["ftype"]), allow, int(job.get("nthread", 0)))
    if quant_input != source:
        quant_input.unlink()
    result: dict[str, Any] = {"work_time_s": round(time.monotonic() - t0, 3),
                              "peak_rss_bytes": peak_rss_bytes(), "prune": prune_record}
    if prune_record and prune_record["method"] == "magnitude":
        from ..gguf import read_header

        names = {t.name for t in read_header(out).tensors if LINEAR_RE.match(t.name)}
        prune_record["sparsity_after_quant"] = zero_fraction(out, names)
    return result


def _message_channel() -> TextIO:
    """A private copy of stdout for JSON lines; fd 1 then points at stderr so that anything
    native code prints cannot corrupt the protocol."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return channel


def main() -> int:
    channel = _message_channel()
    job = json.load(sys.stdin)

    def send(event: str, **payload: Any) -> None:
        channel.write(json.dumps({"event": event, **payload}) + "\n")

    try:
        result = build(job, lambda m: send("progress", message=m))
    except Exception as e:  # reported to the parent, which raises a HarnessError with the log
        send("error", message=f"{type(e).__name__}: {e}")
        return 1
    send("done", result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
