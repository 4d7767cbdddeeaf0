"""The BDEW H25 standard load profile mapped onto any local day (the cold start)."""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pandas as pd

from wattplan.datasets import BERLIN, read_household_load
from wattplan.forecast._calendar import day_type

__all__ = ["H25_ANNUAL_KWH", "standard_day_kwh"]

H25_ANNUAL_KWH = 4000.0
_REFERENCE_YEAR = 2025


@functools.cache
def _reference_days() -> dict[dt.date, np.ndarray]:
    """kW per local wall-clock quarter hour of every 24-hour day of the shipped profile."""
    series = pd.concat([read_household_load(y, profile="h25") for y in (2025, 2026)])
    local = pd.DatetimeIndex(series.index).tz_convert(BERLIN)
    frame = pd.DataFrame(
        {
            "kw": series.to_numpy(dtype=float),
            "day": [t.date() for t in local],
            "slot": local.hour * 4 + local.minute // 15,
        }
    )
    out: dict[dt.date, np.ndarray] = {}
    for day, group in frame.groupby("day", sort=True):
        if len(group) == 96 and group["slot"].is_unique:
            values = np.empty(96)
            values[group["slot"].to_numpy()] = group["kw"].to_numpy()
            out[day] = values  # type: ignore[index]
    return out


@functools.cache
def _reference_for(month: int, day: int, kind: int) -> np.ndarray:
    days = _reference_days()
    anchor = dt.date(_REFERENCE_YEAR, month, min(day, 28) if month == 2 else day)
    for offset in (0, *[s * k for k in range(1, 15) for s in (-1, 1)]):
        candidate = anchor + dt.timedelta(days=offset)
        if candidate in days and day_type(candidate, None) == kind:
            return days[candidate]
    raise AssertionError("the shipped profile has every weekday within two weeks")


def standard_day_kwh(day: dt.date, kind: int, resolution_minutes: int) -> np.ndarray:
    """kWh per wall-clock slot of ``day`` from H25 at 4000 kWh/a.

    ``kind`` is the day type (0 Monday … 6 Sunday or public holiday); the profile of the
    nearest day of the same type in the reference year stands in for ``day``.
    """
    quarter_kw = _reference_for(day.month, day.day, kind)
    per_slot = resolution_minutes // 15
    kw: np.ndarray = quarter_kw.reshape(-1, per_slot).mean(axis=1)
    return kw * (resolution_minutes / 60.0)
