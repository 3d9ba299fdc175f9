"""Grid carbon intensity (g CO2e per kWh) for turning net joules into grams.

Country figures come from codecarbon's bundled data, read as files (no tracker, no network,
no pandas import); the optional extra `edgebench[carbon]` provides them.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

from ..errors import HarnessError
from ..schema import Node
from .config import CarbonConfig, EnergyConfig, _carbon

# The same world average codecarbon uses when it has no country data
# (codecarbon data/private_infra/carbon_intensity_per_source.json, "world_average").
WORLD_AVERAGE_G_PER_KWH = 475.0
WORLD_AVERAGE_SOURCE = ("world average 475 g/kWh (IEA Global Energy & CO2 Status Report 2019, "
                        "as used by codecarbon); set energy.carbon for your grid")
MIX_FILE = "data/private_infra/global_energy_mix.json"
PER_SOURCE_FILE = "data/private_infra/carbon_intensity_per_source.json"


def carbon_intensity(config: EnergyConfig) -> tuple[float, str]:
    """(g/kWh, where the figure comes from)."""
    return grid_intensity(config.carbon)


def parse_grid(node: Node) -> CarbonConfig:
    """A grid block `{country_iso_code}` or `{intensity_g_per_kwh}`, validated as energy.carbon is
    (an offloading level's server_carbon: the server may sit on another country's grid)."""
    return _carbon(node)


def grid_intensity(c: CarbonConfig | None) -> tuple[float, str]:
    """(g/kWh, source) of one grid; None: the labelled world average."""
    if c is None:
        return WORLD_AVERAGE_G_PER_KWH, WORLD_AVERAGE_SOURCE
    if c.intensity_g_per_kwh is not None:
        return c.intensity_g_per_kwh, "matrix energy.carbon.intensity_g_per_kwh"
    if c.country_iso_code is not None:
        return country_intensity(c.country_iso_code)
    return WORLD_AVERAGE_G_PER_KWH, WORLD_AVERAGE_SOURCE


def country_intensity(iso3: str, data_dir: Path | None = None) -> tuple[float, str]:
    data_dir = data_dir or _codecarbon_dir()
    mix = json.loads((data_dir / MIX_FILE).read_text())
    entry = mix.get(iso3.upper())
    if entry is None:
        raise HarnessError(f"country '{iso3}' is not in codecarbon's energy-mix data; set "
                           "energy.carbon.intensity_g_per_kwh for it instead")
    version = _codecarbon_version()
    where = (f"codecarbon {version} global_energy_mix.json: {entry.get('country_name', iso3)}"
             f" ({entry.get('year', 'year unknown')})")
    if entry.get("carbon_intensity") is not None:
        return float(entry["carbon_intensity"]), where
    per_source = json.loads((data_dir / PER_SOURCE_FILE).read_text())
    return _from_mix(entry, per_source, iso3), where + ", computed from the generation mix"


def _from_mix(entry: dict, per_source: dict, iso3: str) -> float:
    """codecarbon's own rule when a country has no direct intensity: TWh-weighted source factors."""
    total = entry.get("total_TWh") or 0.0
    weighted = counted = 0.0
    for key, twh in entry.items():
        factor = per_source.get(key[:-len("_TWh")]) if key.endswith("_TWh") else None
        if factor is not None:
            weighted += twh * factor
            counted += twh
    if total <= 0 or abs(counted - total) > 1e-6 * max(total, 1.0):
        raise HarnessError(f"codecarbon's energy mix for '{iso3}' is incomplete; set "
                           "energy.carbon.intensity_g_per_kwh for it instead")
    return weighted / total


def _codecarbon_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("energy.carbon.country_iso_code needs codecarbon's data: "
                           "pip install edgebench[carbon] (or give intensity_g_per_kwh instead)")
    return Path(list(spec.submodule_search_locations)[0])


def _codecarbon_version() -> str:
    try:
        return importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"
