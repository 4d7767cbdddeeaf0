"""``benchmarks/pv_forecast.py`` scores what it says: its errors recomputed by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "pv_forecast.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pv_forecast_benchmark", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_errors_are_mae_over_the_mean_on_measured_hours_only(bench: ModuleType) -> None:
    index = pd.date_range("2026-06-01", periods=48, freq="h", tz="Europe/Berlin")
    rng = np.random.default_rng(5)
    measured = pd.Series(rng.uniform(0, 3, 48), index)
    forecast = pd.Series(rng.uniform(0, 3, 48), index)
    measured.iloc[[3, 30]] = np.nan  # unmeasured hours are left out of both
    hourly, daily = bench.errors(measured, forecast)
    m, f = measured.to_numpy(), forecast.to_numpy()
    ok = ~np.isnan(m)
    assert hourly == pytest.approx(np.abs(m[ok] - f[ok]).mean() / m[ok].mean())
    day_m = [m[:24][ok[:24]].sum(), m[24:][ok[24:]].sum()]
    day_f = [f[:24][ok[:24]].sum(), f[24:][ok[24:]].sum()]
    expected = np.mean(np.abs(np.subtract(day_m, day_f))) / np.mean(day_m)
    assert daily == pytest.approx(expected)


def test_coverage_counts_hours_inside_the_band_where_pv_is_expected(bench: ModuleType) -> None:
    index = pd.date_range("2026-06-01", periods=4, freq="h", tz="UTC")
    kw = pd.DataFrame(
        {
            "kw_p10": [0.0, 1.0, 1.0, 1.0],
            "kw_p50": [0.0, 2.0, 2.0, 2.0],
            "kw_p90": [0.0, 3.0, 3.0, 3.0],
        },
        index,
    )
    measured = pd.Series([0.5, 2.5, 3.5, 1.0], index)
    assert bench.coverage(measured, kw) == pytest.approx(2 / 3)  # the night hour is left out
