"""Day-ahead base-load forecast from a household's own metered history.

The method is a profile of the household's own recent days, chosen by measurement on
five real households (``benchmarks/forecast.py``): for each local wall-clock slot it
pools the values of the last six days of the same type (weekday; public holidays count
as Sundays) and of the last fourteen days of the same class (working day or not), each
with the slots up to one hour either side, and takes the pool's median as P50 and its
10th and 90th percentiles as P10 and P90. A median, not a mean, because household load
is spiky and the median minimises the absolute error. The pool's mean comes with them
(``kwh_mean``): the expected energy, which is what a plan should be made on, since what
energy costs is linear in it and the median of a right-skewed load falls short of it (on
a year of residential3 planning on the mean saves 1.9 EUR against planning on P50).
Written here rather than taken from a forecasting library because the library models
measured worse on these data and are much slower (see the benchmark).

Slots whose pool has fewer than three days of data (a cold start) come from the BDEW
H25 standard profile scaled to an annual energy, given or estimated from the history;
P10/P50/P90 are 0.3, 0.8 and 2.0 times it, the measured spread of real households around
it (their load is skewed: the median is below the mean that H25 describes), and the mean
is the scaled H25 value itself.

All of it works on local wall-clock slots: a 23-hour day has no 02:00 slot, a 25-hour
day has two, and both get the forecast of the wall-clock slot 02:00.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from wattplan.exceptions import ForecastInputError
from wattplan.forecast._calendar import day_type
from wattplan.forecast._standard import H25_ANNUAL_KWH, standard_day_kwh

__all__ = [
    "BaseLoadForecast",
    "day_ahead_base_load",
    "forecast_base_load",
]

Method = Literal["profile", "standard"]
DateLike = str | dt.date | dt.datetime | pd.Timestamp

_SAME_TYPE_DAYS = 6
_RECENT_DAYS = 14
_LOOKBACK_DAYS = 84
_NEIGHBOUR_MINUTES = 60
_MIN_POOL_DAYS = 3
_QUANTILES = (10.0, 50.0, 90.0)
# Cold start: P10, P50 and P90 as multiples of the scaled H25 value: the percentiles of
# measured over scaled H25 load on the five benchmark households (0.31, 0.78, 1.98).
_STANDARD_FACTORS = (0.3, 0.8, 2.0)
_TRAILING_DAYS = 365
COLUMNS = ("kwh_p10", "kwh_p50", "kwh_p90")
MEAN_COLUMN = "kwh_mean"


@dataclass(frozen=True)
class BaseLoadForecast:
    """Quantiles of the base load per slot, and what went into them.

    ``kwh`` has the columns ``kwh_p10``, ``kwh_p50`` and ``kwh_p90`` (energy per slot,
    ordered P10 ≤ P50 ≤ P90), ``kwh_mean`` (the expected energy per slot: plan on this
    one) and the slot starts in the forecast's time zone as index.
    ``standard_profile_slots`` counts the slots that came from the H25 standard profile
    (no or too little history); ``annual_kwh`` is the annual energy it was scaled to
    (``None`` when it was not needed). ``negative_residue_slots`` and
    ``negative_residue_kwh`` say how often, and by how much in total, the controlled
    devices' energy exceeded the metered energy; those slots are counted as zero.
    """

    kwh: pd.DataFrame
    resolution_minutes: int
    standard_profile_slots: int
    annual_kwh: float | None
    negative_residue_slots: int
    negative_residue_kwh: float


@dataclass
class _History:
    timezone: str
    resolution: int
    first_day: dt.date
    values: np.ndarray  # local days × wall-clock slots, NaN where unknown
    types: np.ndarray  # day type per row
    subdivision: str | None
    negative_slots: int
    negative_kwh: float
    standard: np.ndarray | None = None  # H25 at 4000 kWh/a on the same grid, made on demand

    def standard_values(self) -> np.ndarray:
        if self.standard is None:
            self.standard = np.array(
                [
                    standard_day_kwh(
                        self.first_day + dt.timedelta(days=i), int(kind), self.resolution
                    )
                    for i, kind in enumerate(self.types)
                ]
            ).reshape(len(self.types), self.slots_per_day)
        return self.standard

    @property
    def slots_per_day(self) -> int:
        return 1440 // self.resolution

    def row(self, day: dt.date) -> int:
        return (day - self.first_day).days


def _series(history: pd.Series | pd.DataFrame, name: str) -> pd.Series:
    if isinstance(history, pd.DataFrame):
        for column in ("usage_kwh", "kwh"):
            if column in history.columns:
                history = history[column]
                break
        else:
            raise ForecastInputError(name, "a DataFrame needs a 'usage_kwh' or 'kwh' column")
    if not isinstance(history, pd.Series):
        raise ForecastInputError(name, f"must be a pandas Series, got {type(history).__name__}")
    index = history.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ForecastInputError(name, "the index must be a DatetimeIndex of interval starts")
    if index.tz is None:
        raise ForecastInputError(name, "the index is naive: timestamps need a time zone")
    if not index.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(index.as_unit("ns").asi8) < 0)) + 1
        raise ForecastInputError(name, f"not sorted: {index[bad].isoformat()} comes too late")
    if index.has_duplicates:
        first = index[index.duplicated()][0]
        raise ForecastInputError(name, f"duplicate time {first.isoformat()}")
    try:
        values = pd.to_numeric(history, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(name, f"values must be numbers ({exc})") from exc
    finite = values.dropna()
    if np.isinf(finite.to_numpy()).any():
        at = finite.index[np.isinf(finite.to_numpy())][0]
        raise ForecastInputError(name, f"infinite value at {at.isoformat()}")
    if (finite < 0).any():
        at = finite.index[finite.to_numpy() < 0][0]
        raise ForecastInputError(name, f"negative energy at {at.isoformat()}")
    return values


def _resolution(index: pd.DatetimeIndex, given: int | None) -> int:
    if given is not None:
        if given not in (15, 60):
            raise ForecastInputError("resolution_minutes", f"must be 15 or 60, got {given}")
        resolution = given
    elif len(index) < 2:
        resolution = 15  # a smart meter's interval, for a cold start without history
    else:
        step = int(np.diff(index.as_unit("ns").asi8).min() // 60_000_000_000)
        if step not in (15, 60):
            raise ForecastInputError(
                "history", f"interval must be 15 or 60 minutes, found steps of {step} minutes"
            )
        resolution = step
    off_grid = index.as_unit("ns").asi8 % (resolution * 60_000_000_000) != 0
    if off_grid.any():
        at = index[off_grid][0]
        raise ForecastInputError(
            "history", f"{at.isoformat()} is not on the {resolution}-minute grid"
        )
    return resolution


def _prepare(
    history: pd.Series | pd.DataFrame,
    controlled: pd.Series | None,
    timezone: str,
    resolution_minutes: int | None,
    subdivision: str | None,
) -> _History:
    series = _series(history, "history")
    resolution = _resolution(pd.DatetimeIndex(series.index), resolution_minutes)
    negative_slots, negative_kwh = 0, 0.0
    if controlled is not None:
        devices = _series(controlled, "controlled").reindex(series.index).fillna(0.0)
        residue = series - devices
        negative = residue < 0
        negative_slots = int(negative.sum())
        negative_kwh = float(-residue[negative].sum())
        series = residue.clip(lower=0.0)
    series = series.dropna()
    if series.empty:
        return _History(
            timezone, resolution, dt.date(1970, 1, 1), np.empty((0, 1440 // resolution)),
            np.empty(0, dtype=int), subdivision, negative_slots, negative_kwh,
        )  # fmt: skip
    local = pd.DatetimeIndex(series.index).tz_convert(timezone)
    days = np.array(local.tz_localize(None).normalize().as_unit("ns").asi8 // 86_400_000_000_000)
    first = int(days.min())
    rows = days - first
    slots = np.asarray((local.hour * 60 + local.minute) // resolution)
    shape = (int(rows.max()) + 1, 1440 // resolution)
    total = np.zeros(shape)
    count = np.zeros(shape)
    # the repeated wall-clock hour of a 25-hour day lands twice on one slot: average it
    np.add.at(total, (rows, slots), series.to_numpy())
    np.add.at(count, (rows, slots), 1.0)
    with np.errstate(invalid="ignore"):
        values = np.where(count > 0, total / count, np.nan)
    first_day = dt.date(1970, 1, 1) + dt.timedelta(days=first)
    types = np.array(
        [day_type(first_day + dt.timedelta(days=i), subdivision) for i in range(shape[0])]
    )
    return _History(
        timezone, resolution, first_day, values, types, subdivision, negative_slots, negative_kwh
    )


def _local_midnight(value: DateLike, timezone: str, name: str) -> pd.Timestamp:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return pd.Timestamp(value).tz_localize(timezone)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(name, f"not a date or time: {value!r}") from exc
    if ts.tzinfo is None:
        if ts != ts.normalize():
            raise ForecastInputError(name, "a time of day needs a UTC offset or a time zone")
        return ts.tz_localize(timezone)
    return ts.tz_convert(timezone)


def _slots(start: DateLike, end: DateLike, prepared: _History) -> pd.DatetimeIndex:
    lo = _local_midnight(start, prepared.timezone, "start")
    hi = _local_midnight(end, prepared.timezone, "end")
    if hi <= lo:
        raise ForecastInputError("end", f"must be after start ({lo.isoformat()})")
    step = pd.Timedelta(minutes=prepared.resolution)
    if (lo - pd.Timestamp(0, tz="UTC")) % step or (hi - pd.Timestamp(0, tz="UTC")) % step:
        raise ForecastInputError(
            "start", f"start and end must be on the {prepared.resolution}-minute grid"
        )
    return pd.date_range(lo, hi, freq=step, inclusive="left", name="start")


def _pool_quantiles(h: _History, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P10, P50, P90 and the mean (4 × slots) of the pooled rows, and the days of data
    behind each slot."""
    block = h.values[rows]
    k = _NEIGHBOUR_MINUTES // h.resolution
    spd = h.slots_per_day
    padded = np.pad(block, ((0, 0), (k, k)), constant_values=np.nan)
    shifted = np.stack([padded[:, j : j + spd] for j in range(2 * k + 1)])
    pool = shifted.reshape(-1, spd)
    # a recent day of the same type is pooled twice (it weighs more) but counts once here
    _, first = np.unique(rows, return_index=True)
    days = (~np.isnan(shifted[:, first])).any(axis=0).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(pool):
            quantiles = np.vstack(
                [np.nanpercentile(pool, _QUANTILES, axis=0), np.nanmean(pool, axis=0)]
            )
        else:
            quantiles = np.full((4, spd), np.nan)
    return np.asarray(quantiles), days


def _annual_kwh(h: _History, cut: int) -> float | None:
    """Annual energy that scales H25 to the last year of history before row ``cut``."""
    lo = max(0, cut - _TRAILING_DAYS)
    if cut <= lo:
        return None
    values = h.values[lo:cut]
    seen = ~np.isnan(values)
    measured = float(values[seen].sum())
    standard = float(h.standard_values()[lo:cut][seen].sum())
    if standard < H25_ANNUAL_KWH / 365 / 4:  # less than about a quarter of a day
        return None
    return H25_ANNUAL_KWH * measured / standard


def _day_quantiles(
    h: _History,
    day: dt.date,
    cut: int,
    method: Method,
    annual_kwh: float | None,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(4 × slots) P10, P50, P90 and mean for ``day`` from history rows before ``cut``;
    the mask of H25 slots."""
    spd = h.slots_per_day
    kind = day_type(day, h.subdivision)
    cut = max(0, min(cut, len(h.values)))
    if method == "profile" and cut > 0:
        lo = max(0, cut - _LOOKBACK_DAYS)
        types = h.types[lo:cut]
        has_data = ~np.isnan(h.values[lo:cut]).all(axis=1)
        same = (np.flatnonzero((types == kind) & has_data) + lo)[-_SAME_TYPE_DAYS:]
        recent = np.arange(max(0, cut - _RECENT_DAYS), cut)
        recent = recent[(h.types[recent] < 5) == (kind < 5)]
        quantiles, days = _pool_quantiles(h, np.concatenate([same, recent]))
        fallback = days < _MIN_POOL_DAYS
    else:
        quantiles = np.full((4, spd), np.nan)
        fallback = np.ones(spd, dtype=bool)
    annual = annual_kwh
    if fallback.any():
        if annual is None:
            annual = _annual_kwh(h, cut)
        if annual is None:
            raise ForecastInputError(
                "annual_kwh",
                f"too little history before {day.isoformat()}: give the annual energy"
                " (--annual-kwh on the command line)",
            )
        scaled = standard_day_kwh(day, kind, h.resolution) * (annual / H25_ANNUAL_KWH)
        for i, factor in enumerate((*_STANDARD_FACTORS, 1.0)):
            quantiles[i, fallback] = scaled[fallback] * factor
    return quantiles, fallback, annual if fallback.any() else None


def _forecast(
    h: _History,
    slots: pd.DatetimeIndex,
    method: Method,
    annual_kwh: float | None,
    lag_days: int,
) -> BaseLoadForecast:
    local_days = [t.date() for t in slots]
    wall = np.asarray((slots.hour * 60 + slots.minute) // h.resolution)
    out = np.empty((len(slots), 4))
    standard_slots = 0
    used_annual: float | None = None
    by_day: dict[dt.date, list[int]] = {}
    for i, day in enumerate(local_days):
        by_day.setdefault(day, []).append(i)
    for day, positions in by_day.items():
        cut = h.row(day) - lag_days if len(h.values) else 0
        quantiles, fallback, annual = _day_quantiles(h, day, cut, method, annual_kwh)
        idx = np.asarray(positions)
        out[idx] = quantiles[:, wall[idx]].T
        standard_slots += int(fallback[wall[idx]].sum())
        if annual is not None:
            used_annual = annual
    out[:, :3] = np.sort(out[:, :3], axis=1)
    out = np.maximum(out, 0.0)
    frame = pd.DataFrame(out, index=slots, columns=[*COLUMNS, MEAN_COLUMN])
    return BaseLoadForecast(
        kwh=frame,
        resolution_minutes=h.resolution,
        standard_profile_slots=standard_slots,
        annual_kwh=used_annual,
        negative_residue_slots=h.negative_slots,
        negative_residue_kwh=h.negative_kwh,
    )


def forecast_base_load(
    history: pd.Series | pd.DataFrame,
    start: DateLike,
    end: DateLike,
    *,
    controlled: pd.Series | None = None,
    annual_kwh: float | None = None,
    timezone: str = "Europe/Berlin",
    resolution_minutes: int | None = None,
    holiday_subdivision: str | None = None,
    method: Method = "profile",
) -> BaseLoadForecast:
    """Forecast the base load for the slots in ``[start, end)`` from the metered history.

    ``history`` is energy per interval (kWh, 15 or 60 minutes) with a tz-aware index of
    interval starts, as measured: gaps (missing rows or NaN) are fine and preliminary
    values are used as they are. A DataFrame with a ``usage_kwh`` column (as
    ``NomosClient.usage_frame`` returns) is accepted too. Each local day of the window is
    forecast from the history before that day only. ``controlled`` is the energy per
    interval of the devices wattplan controls; it is subtracted from the history first.

    ``start`` and ``end`` are tz-aware times or dates (local midnight in ``timezone``).
    ``annual_kwh`` scales the H25 standard profile where history is too short; without
    it the annual energy is estimated from the history. ``method="standard"`` uses the
    scaled H25 profile throughout (the benchmark's anchor). German public holidays
    (nationwide, plus ``holiday_subdivision`` such as ``"BW"``) are forecast as Sundays.
    """
    return _run(
        history, start, end, controlled, annual_kwh, timezone, resolution_minutes,
        holiday_subdivision, method, lag_days=0,
    )  # fmt: skip


def day_ahead_base_load(
    history: pd.Series | pd.DataFrame,
    start: DateLike,
    end: DateLike,
    *,
    controlled: pd.Series | None = None,
    annual_kwh: float | None = None,
    timezone: str = "Europe/Berlin",
    resolution_minutes: int | None = None,
    holiday_subdivision: str | None = None,
    method: Method = "profile",
) -> BaseLoadForecast:
    """Rolling day-ahead forecast: each local day D from history before midnight of D−1.

    As the planner runs: the plan for D is made on the afternoon of D−1, when the usage
    of D−1 is not published yet. Arguments as for :func:`forecast_base_load`.
    """
    return _run(
        history, start, end, controlled, annual_kwh, timezone, resolution_minutes,
        holiday_subdivision, method, lag_days=1,
    )  # fmt: skip


def _run(
    history: pd.Series | pd.DataFrame,
    start: DateLike,
    end: DateLike,
    controlled: pd.Series | None,
    annual_kwh: float | None,
    timezone: str,
    resolution_minutes: int | None,
    subdivision: str | None,
    method: Method,
    *,
    lag_days: int,
) -> BaseLoadForecast:
    if method not in ("profile", "standard"):
        raise ForecastInputError("method", f"must be 'profile' or 'standard', got {method!r}")
    if annual_kwh is not None and not (math.isfinite(annual_kwh) and annual_kwh > 0):
        raise ForecastInputError("annual_kwh", f"must be a positive number, got {annual_kwh}")
    try:
        pd.Timestamp(0, tz=timezone)
    except Exception as exc:
        raise ForecastInputError("timezone", f"unknown time zone {timezone!r}") from exc
    prepared = _prepare(history, controlled, timezone, resolution_minutes, subdivision)
    slots = _slots(start, end, prepared)
    return _forecast(prepared, slots, method, annual_kwh, lag_days)
