"""The offload section's arithmetic: totals, both grids, break-even, labels."""
from __future__ import annotations

import pytest

from harness.report.offload import BreakEven, QueryRow, break_even_lines, break_even_svg, cells_text


def row(offloaded: bool, device_j: float | None, server_j: float | None = None,
        server_method: str | None = "measured", tokens_out: float = 10.0, level: str = "L",
        device_method: str = "measured") -> QueryRow:
    return QueryRow(device="pi (host)", model="m", workload="chat", level=level,
                    where="http://10.0.0.2:8080/v1" if offloaded else "device", offloaded=offloaded,
                    device_j=device_j, device_method=device_method, server_j=server_j,
                    server_method=server_method, network_bytes=2048.0 if offloaded else None,
                    tokens_out=tokens_out, latency_s=1.0, quality="", device_grid_g_per_kwh=400.0,
                    server_grid_g_per_kwh=100.0)


def test_totals_and_carbon_use_each_side_on_its_own_grid():
    off = row(True, device_j=2.0, server_j=3.0)
    assert off.total_j == 5.0
    assert off.co2e_g == pytest.approx(2.0 / 3.6e6 * 400 + 3.0 / 3.6e6 * 100)
    assert off.server_j_per_token == pytest.approx(0.3)
    assert row(False, device_j=4.0).co2e_g == pytest.approx(4.0 / 3.6e6 * 400)


def test_break_even_is_where_device_savings_pay_for_the_server():
    local, off = row(False, device_j=8.0, level="Q4"), row(True, device_j=2.0, server_j=3.0)
    assert BreakEven(local, off).server_j_per_token_limit == pytest.approx(0.6)  # (8 - 2) / 10
    lines = break_even_lines([local, off])
    assert "under 0.6000 J/token" in lines[0] and "measured server 0.3000 J/token: offloading wins" in lines[0]
    worse = row(True, device_j=2.0, server_j=9.0)
    assert "local wins" in break_even_lines([local, worse])[0]
    waiting = row(True, device_j=9.0, server_j=1.0)
    assert "local wins at any server efficiency" in break_even_lines([local, waiting])[0]
    svg = break_even_svg([local, off])
    assert svg.startswith("<svg") and svg.count("<circle") == 1 and "Q4 on the device" in svg


def test_labels_never_mix_estimates_and_missing_figures_silently():
    text = cells_text(row(True, device_j=2.0, server_j=None))
    assert text[4].startswith("OFFLOADED to ") and text[6] == "not measured"
    assert text[8] == "2.000 (device only)"
    est = cells_text(row(True, device_j=2.0, server_j=1.0, server_method="estimated"))
    assert est[6] == "1.000 (estimated)" and est[8] == "3.000 (incl. estimate)"
    assert cells_text(row(False, device_j=2.0))[4] == "device (local)"
