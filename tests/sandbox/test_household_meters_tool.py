"""tools/household_meters.py: 52 whole weeks, devices on the meter, the best-measured window."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "household_meters", ROOT / "tools/household_meters.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opsd_like(path: Path) -> pd.DataFrame:
    """56 weeks of hours from a Wednesday, local midnights, the first 10 days imputed."""
    lo = pd.Timestamp("2016-01-06", tz="Europe/Berlin")
    hours = pd.date_range(lo, lo + pd.Timedelta(weeks=56), freq="h", inclusive="left")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "start": hours.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "grid_import_kwh": rng.uniform(0.1, 1.0, len(hours)).round(3),
            "heat_pump_kwh": rng.uniform(0.0, 2.0, len(hours)).round(3),
            "quality": np.where(hours < lo + pd.Timedelta(days=10), "imputed", "ok"),
        }
    )
    frame.to_csv(path, index=False, compression="gzip")
    return frame


def test_derive_takes_the_best_52_weeks_with_the_heat_pump_on_the_meter(tmp_path: Path) -> None:
    tool = _tool()
    source = _opsd_like(tmp_path / "opsd_residentialX_60min.csv.gz")
    out, ok_days = tool.derive(tmp_path / "opsd_residentialX_60min.csv.gz")
    stamps = pd.DatetimeIndex(pd.to_datetime(out.index, utc=True))
    local = stamps.tz_convert("Europe/Berlin")
    assert local[0].weekday() == 0 and local[0].hour == 0
    assert (local[-1] + pd.Timedelta(hours=1)) - local[0] == pd.Timedelta(weeks=52)  # DST-neutral
    assert len(out) == 52 * 7 * 24  # one spring and one autumn day inside: they cancel out
    assert ok_days == 364  # the imputed first days are left out
    assert local[0] >= pd.Timestamp("2016-01-16", tz="Europe/Berlin")
    src = source.set_index("start")
    want = (src["grid_import_kwh"] + src["heat_pump_kwh"]).round(3)
    assert np.allclose(out["import_kwh"].to_numpy(), want.loc[out.index].to_numpy())
