"""The fidelity reference's memory is measured once and not charged to the level (harness.cell)."""
from __future__ import annotations

import mmap
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import cell
from harness.backends.base import RuntimeSettings
from harness.errors import HarnessError

from quality_fakes import FakeBackend

REFERENCE_BYTES = 48 * 2**20


class HeavyReference(FakeBackend):
    """A reference whose load makes REFERENCE_BYTES resident, like a model's weights."""

    def load(self, model: Path, settings: RuntimeSettings) -> None:
        assert settings.need_logits, "the reference must be loaded for logits"
        # fresh anonymous pages, written: resident, never memory the test process freed earlier
        # (a bytearray could reuse the allocator's free memory and leave RSS unchanged)
        self.weights = mmap.mmap(-1, REFERENCE_BYTES)
        self.weights.write(b"\x01" * REFERENCE_BYTES)

    def unload(self) -> None:
        self.unloaded = True
        self.weights.close()


@pytest.fixture
def ctx_with_reference(monkeypatch):
    made: list[HeavyReference] = []

    def get_backend(name: str) -> HeavyReference:
        made.append(HeavyReference())
        return made[-1]

    monkeypatch.setattr(cell, "get_backend", get_backend)
    payload = SimpleNamespace(settings=RuntimeSettings(seed=3), reference_artifact=Path("ref.gguf"),
                              host_profile=None,
                              reference_runtime="llama_cpp")
    mem = cell.MemoryWatch()
    ctx = cell.WorkloadCtx(payload)  # type: ignore[arg-type]
    ctx.preload_reference(mem, warm_tokens=8)
    yield ctx, made, mem
    ctx.close()


def test_reference_rss_is_measured_and_taken_off_the_level_peaks(ctx_with_reference):
    ctx, made, mem = ctx_with_reference
    assert len(made) == 1 and made[0].logit_calls == 1  # loaded and warmed once, before any window
    ref = ctx.reference_rss_bytes
    assert 0.9 * REFERENCE_BYTES <= ref <= 1.5 * REFERENCE_BYTES
    peak = mem.peak_bytes
    fields = ctx.memory_fields(peak, peak + 1000)
    assert fields == {"peak_rss_bytes": peak - ref, "peak_rss_hwm_bytes": peak + 1000 - ref,
                      "reference_rss_bytes": ref}


def test_the_workload_borrows_the_reference_and_the_cell_unloads_it(ctx_with_reference):
    ctx, made, _ = ctx_with_reference
    borrowed = ctx.open_reference_backend()
    borrowed.unload()
    assert not made[0].unloaded
    ctx.close()
    assert made[0].unloaded


def test_without_a_reference_the_peaks_are_the_measured_ones():
    payload = SimpleNamespace(settings=RuntimeSettings(), reference_artifact=None, host_profile=None)
    ctx = cell.WorkloadCtx(payload)  # type: ignore[arg-type]
    ctx.preload_reference(cell.MemoryWatch(), warm_tokens=8)
    assert ctx.memory_fields(100, 90) == {"peak_rss_bytes": 100, "peak_rss_hwm_bytes": 90}
    with pytest.raises(HarnessError, match="no reference level"):
        ctx.open_reference_backend()
