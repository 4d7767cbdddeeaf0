"""``benchmarks/forecast.py`` measures what it says: MASE and coverage recomputed by hand.

Runs the benchmark's evaluation on a small synthetic household across the spring DST
change and recomputes the naive forecast (same wall-clock slot 7 days earlier), the
4-week anchor, MASE and coverage slot by slot, independently of its matrix code.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from wattplan.forecast import day_ahead_base_load

BERLIN = "Europe/Berlin"
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "forecast.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forecast_benchmark", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def household() -> pd.Series:
    index = pd.date_range("2026-02-02", "2026-04-13", freq="h", tz=BERLIN, inclusive="left")
    rng = np.random.default_rng(3)
    evening = (index.hour >= 18) & (index.hour < 22)
    values = 0.15 + 0.4 * evening + rng.gamma(1.5, 0.08, len(index))
    series = pd.Series(values, index=index.tz_convert("UTC"))
    series.iloc[rng.choice(len(series), 60, replace=False)] = np.nan  # untrusted hours
    return series.drop(series.index[900:940])  # and missing rows


def same_wall_clock_slot(series: pd.Series, slot: pd.Timestamp, weeks: int) -> float:
    wall = slot.tz_convert(BERLIN).tz_localize(None) - pd.Timedelta(weeks=weeks)
    earlier = pd.DatetimeIndex([wall]).tz_localize(BERLIN, nonexistent="NaT", ambiguous="NaT")
    if earlier.isna()[0] or earlier[0] not in series.index:
        return math.nan
    return float(series[earlier[0]])


def test_mase_and_coverage_are_what_the_definitions_give(bench: ModuleType) -> None:
    series = household()
    result = bench.evaluate(series, "synthetic", library_every=0)

    start = pd.Timestamp("2026-02-02", tz=BERLIN) + pd.Timedelta(days=35)
    shipped = day_ahead_base_load(series, start, pd.Timestamp("2026-04-12", tz=BERLIN)).kwh
    spring = shipped.loc["2026-03-29"]
    assert len(spring) == 23
    errors = {"shipped": 0.0, "4-week mean": 0.0, "naive": 0.0}
    hours = inside = 0
    for slot, row in shipped.iterrows():
        actual = float(series.get(slot.tz_convert("UTC"), math.nan))
        naive = same_wall_clock_slot(series, slot, 1)
        earlier = [same_wall_clock_slot(series, slot, w) for w in (1, 2, 3, 4)]
        known = [v for v in earlier if not math.isnan(v)]
        if math.isnan(actual) or math.isnan(naive) or not known:
            continue
        hours += 1
        errors["shipped"] += abs(row["kwh_p50"] - actual)
        errors["4-week mean"] += abs(sum(known) / len(known) - actual)
        errors["naive"] += abs(naive - actual)
        inside += row["kwh_p10"] <= actual <= row["kwh_p90"]

    assert result.hours == hours > 600
    assert result.mase["shipped"] == pytest.approx(errors["shipped"] / errors["naive"])
    assert result.mase["4-week mean"] == pytest.approx(errors["4-week mean"] / errors["naive"])
    assert result.coverage["shipped"] == pytest.approx(inside / hours)
    assert result.mase["shipped"] < 1.0  # the profile beats a week-old copy on this household
