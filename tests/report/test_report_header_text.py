"""Two texts a user reads first: the emulated device's header and a failed cell's reason."""
from __future__ import annotations

from types import SimpleNamespace

from harness.report import html
from harness.report.terminal import results_table_text


def test_emulated_header_shows_the_detection_evidence_not_a_dict():
    dkey = object()
    detection = {"evidence": ["/proc/device-tree/model: Raspberry Pi 5", "cores 4"],
                 "facts": {"machine": "aarch64"}}
    run = {"device_key": dkey,
           "manifest": {"host": {"hostname": "lab-1", "cores_logical": 2, "ram_bytes": 8 << 30},
                        "device": {"emulated": True, "detected_profile": "linux-generic",
                                   "detection": detection}}}
    text = html._device_sub(SimpleNamespace(runs=[run]), dkey)
    assert "EMULATED on linux-generic (/proc/device-tree/model: Raspberry Pi 5; cores 4)" in text
    assert "{" not in text and "facts" not in text


def test_a_failed_cells_reason_is_shortened_at_a_word_never_mid_word():
    reason = ("workloads[0].samples: 1000 requested but the shipped closed_book.jsonl has only "
              "438 items")
    text = results_table_text([{"failed": True, "reason": reason, "model": "m", "level": "Q4_K_M",
                                "workload": "closed-book", "device": "d"}])
    row = next(line for line in text.splitlines() if "FAILED" in line)
    assert "..." in row and "only 438 i" not in row
    kept = row.split("FAILED", 1)[1].rsplit("...", 1)[0].split()
    assert kept and all(word in reason.split() for word in kept[-3:])
