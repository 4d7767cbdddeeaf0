"""Prices and consumption the sandbox serves, from the data shipped with wattplan.

Dates outside the shipped period
--------------------------------
Day-ahead prices run from 2020-01-01 to 2026-08-23 and the household load covers
2025-2026. A local day ``D`` outside that range is served with the data of the *source
day* ``D - k * 364 days`` (or ``+``, for days before the range) with the smallest ``k``
that lands inside it: 364 days is exactly 52 weeks, so the weekday is kept and the season
drifts by one day a year. The demo day 2026-11-28 (a Saturday) therefore gets the prices
of Saturday 2025-11-29. The data is moved by local wall-clock time, which keeps 23- and
25-hour days right: the repeated autumn hour takes the source's second occurrence when
the source has one (else its first), and a spring day's missing hour is skipped.

Prices are served at 15 minutes from ``quarter_hour_from`` (2025-10-01) and hourly
before; an hourly source hour fills four quarter-hours when a 15-minute day needs it.

Household meters
----------------
By default usage comes from the real household meters shipped with wattplan
(:func:`wattplan.datasets.read_household_meter`, 52 whole weeks each). A local day ``D`` is
served with the meter day of the same weekday whose calendar date is nearest to ``D``'s
(at most three days away, or a week more at the ends of the shipped year): the data moves
by whole weeks, so weekends stay weekends. The hour is moved by local wall-clock time as
for prices, and each hourly value fills its four quarter-hours evenly.

Preliminary values are what a metering operator sends before the final ones: on about one
day in three a six-hour stretch of the meter is missing and replaced by a substitute, the
same quarter-hours of the day one week earlier. The final values (from the 8th working day
of the next month) are the meter's own. The H25 standard profile stays available as a
fault-free source (``SandboxConfig(usage_source="h25")``): smooth, and final equals
preliminary.

Price components
----------------
``amount`` is :func:`wattplan.datasets.all_in_price_ct_per_kwh` (``1.19 * (spot/10 + 16)``,
VAT included) rounded to the cent. It is split, VAT spread proportionally, into
``electricity`` = 1.19 · (spot/10 + 2.00 procurement margin), ``grid`` = 1.19 · 8.00 and
``levies`` = the rest (≈ 1.19 · 6.00: concession fee, levies, electricity tax), computed in
whole cents so that the three add up to ``amount`` exactly.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from wattplan import datasets

__all__ = [
    "BERLIN",
    "DayPrices",
    "day_prices",
    "day_slots",
    "day_usage_kwh",
    "eighth_working_day",
    "local_today",
    "meter_day_usage_kwh",
    "meter_month_usage_kwh",
    "meter_source_day",
    "month_usage_kwh",
    "source_day",
]

BERLIN = ZoneInfo("Europe/Berlin")
PRICE_FIRST_DAY = date(2020, 1, 1)
PRICE_LAST_DAY = date(2026, 8, 23)
LOAD_FIRST_DAY = date(2025, 1, 1)
LOAD_LAST_DAY = date(2026, 12, 31)
MARKUP_CT_PER_KWH = 16.0
MARGIN_CT_PER_KWH = 2.0
GRID_CT_PER_KWH = 8.0
VAT = 0.19
_SHIFT = timedelta(days=364)


def source_day(day: date, first: date, last: date) -> date:
    """The day inside ``[first, last]`` whose data serves ``day`` (52-week steps)."""
    if day > last:
        k = -(-(day - last).days // 364)
        return day - k * _SHIFT
    if day < first:
        k = -(-(first - day).days // 364)
        return day + k * _SHIFT
    return day


def day_slots(day: date, step_min: int) -> pd.DatetimeIndex:
    """UTC starts of the slots of local day ``day`` (92/96/100 quarter-hours, 23/24/25 h)."""
    lo = pd.Timestamp(datetime.combine(day, time(), BERLIN))
    hi = pd.Timestamp(datetime.combine(day + timedelta(days=1), time(), BERLIN))
    idx = pd.date_range(lo, hi, freq=f"{step_min}min", inclusive="left")
    return pd.DatetimeIndex(idx.tz_convert("UTC"))


def _wall_keys(index: pd.DatetimeIndex) -> list[tuple[int, int]]:
    """(minute of the local day, occurrence) for each UTC instant."""
    local = index.tz_convert(BERLIN)
    minutes = (local.hour * 60 + local.minute).to_numpy()
    seen: dict[int, int] = {}
    keys: list[tuple[int, int]] = []
    for m in minutes:
        occ = seen.get(int(m), 0)
        seen[int(m)] = occ + 1
        keys.append((int(m), occ))
    return keys


def _move(source: pd.Series, target: pd.DatetimeIndex, step_min: int) -> np.ndarray:
    """Values of ``source`` (one local day) placed on ``target`` by local wall-clock time."""
    src_step = int((source.index[1] - source.index[0]).total_seconds() // 60)
    table: dict[tuple[int, int], float] = {}
    for key, value in zip(
        _wall_keys(pd.DatetimeIndex(source.index)), source.to_numpy(), strict=True
    ):
        table[key] = float(value)
    out = np.empty(len(target))
    for i, (minute, occ) in enumerate(_wall_keys(target)):
        if src_step > step_min:  # hourly source filling quarter-hours
            minute -= minute % src_step
        if src_step < step_min:  # quarter-hour source averaged into hours
            parts = [
                table.get((minute + j, occ), table.get((minute + j, 0), np.nan))
                for j in range(0, step_min, src_step)
            ]
            value = float(np.nanmean(parts)) if not np.all(np.isnan(parts)) else np.nan
        else:
            value = table.get((minute, occ), table.get((minute, 0), np.nan))
            if np.isnan(value):  # hour missing in the source (spring): take the hour before
                value = table.get((minute - 60, 0), np.nan)
        out[i] = value
    if np.isnan(out).any():  # pragma: no cover - guarded by tests over whole years
        raise RuntimeError(f"sandbox data mapping left holes for {target[0]}")
    return out


def _local_day(series: pd.Series, day: date) -> pd.Series:
    lo = pd.Timestamp(datetime.combine(day, time(), BERLIN)).tz_convert("UTC")
    hi = pd.Timestamp(datetime.combine(day + timedelta(days=1), time(), BERLIN)).tz_convert("UTC")
    return series[(series.index >= lo) & (series.index < hi)]


class DayPrices:
    """One local day of prices in whole cents (ct/kWh × 100), ready to serve."""

    def __init__(self, slots: pd.DatetimeIndex, spot_eur_per_mwh: np.ndarray) -> None:
        self.slots = slots
        spot = pd.Series(spot_eur_per_mwh, index=slots)
        amount = datasets.all_in_price_ct_per_kwh(
            spot, markup_ct_per_kwh=MARKUP_CT_PER_KWH, vat=VAT
        ).to_numpy()
        self.amount_cents = np.round(amount * 100).astype(np.int64)
        electricity = (1 + VAT) * (spot_eur_per_mwh / 10 + MARGIN_CT_PER_KWH)
        self.electricity_cents = np.round(electricity * 100).astype(np.int64)
        grid = np.full(len(slots), round((1 + VAT) * GRID_CT_PER_KWH * 100))
        self.grid_cents = grid.astype(np.int64)
        self.levies_cents = self.amount_cents - self.electricity_cents - self.grid_cents


@functools.lru_cache(maxsize=4096)
def day_prices(day: date, step_min: int) -> DayPrices:
    """Prices of local ``day`` at ``step_min`` (15 or 60) minutes."""
    src = source_day(day, PRICE_FIRST_DAY, PRICE_LAST_DAY)
    series = _prices_of(src)
    slots = day_slots(day, step_min)
    return DayPrices(slots, _move(series, slots, step_min))


@functools.lru_cache(maxsize=1)
def _all_prices() -> pd.Series:
    return datasets.read_day_ahead_prices()


def _prices_of(day: date) -> pd.Series:
    return _local_day(_all_prices(), day)


@functools.lru_cache(maxsize=2)
def _load(year: int) -> pd.Series:
    return datasets.read_household_load(year)


@functools.lru_cache(maxsize=4096)
def _day_load_kw(day: date) -> np.ndarray:
    src = source_day(day, LOAD_FIRST_DAY, LOAD_LAST_DAY)
    series = _local_day(_load(src.year), src)
    return _move(series, day_slots(day, 15), 15)


def day_usage_kwh(day: date, *, annual_kwh: float) -> pd.Series:
    """Household consumption of local ``day`` in kWh per quarter-hour (UTC index)."""
    kw = _day_load_kw(day) * (annual_kwh / 4000.0)
    return pd.Series(kw * 0.25, index=day_slots(day, 15), name="usage_kwh")


def month_usage_kwh(year: int, month: int, *, annual_kwh: float) -> float:
    """Consumption of a calendar month (same month of 2025/2026 for other years)."""
    src_year = min(max(year, 2025), 2026)
    series = _load(src_year)
    local = pd.DatetimeIndex(series.index).tz_convert(BERLIN)
    kw = series[(local.month == month)]
    return float(kw.sum() * 0.25 * (annual_kwh / 4000.0))


def eighth_working_day(year: int, month: int) -> date:
    """The 8th Monday-to-Friday of a month (public holidays ignored)."""
    day = date(year, month, 1)
    count = 0
    while True:
        if day.weekday() < 5:
            count += 1
            if count == 8:
                return day
        day += timedelta(days=1)


def local_today(now: datetime) -> date:
    return now.astimezone(BERLIN).date()


# -- real household meters ------------------------------------------------------------

SUBSTITUTE_HOURS = 6


@functools.lru_cache(maxsize=8)
def _meter_kw(household: str) -> pd.Series:
    """Hourly kWh is the hour's mean kW."""
    return datasets.read_household_meter(household)


def _meter_span(household: str) -> tuple[date, date]:
    local = pd.DatetimeIndex(_meter_kw(household).index).tz_convert(BERLIN)
    return local[0].date(), local[-1].date()


def meter_source_day(day: date, first: date, last: date) -> date:
    """The meter day in ``[first, last]`` that serves local ``day``.

    Same weekday, calendar date nearest to ``day``'s in one of the shipped years (ties:
    the earlier); ``day - result`` is always a whole number of weeks.
    """
    best: tuple[int, date] | None = None
    for year in range(first.year, last.year + 1):
        try:
            same = day.replace(year=year)
        except ValueError:  # 29 February
            same = date(year, 2, 28)
        candidate = same + timedelta(days=(day.weekday() - same.weekday() + 3) % 7 - 3)
        while candidate < first:
            candidate += timedelta(days=7)
        while candidate > last:
            candidate -= timedelta(days=7)
        rank = (abs((candidate - same).days), candidate)
        if best is None or rank < best:
            best = rank
    assert best is not None
    return best[1]


@functools.lru_cache(maxsize=8192)
def _meter_day_kw(household: str, day: date) -> np.ndarray:
    first, last = _meter_span(household)
    src = meter_source_day(day, first, last)
    series = _local_day(_meter_kw(household), src)
    return _move(series, day_slots(day, 15), 15)


def _substituted_hours(household: str, day: date) -> range:
    """The local hours a preliminary day lacks (empty on about two days in three)."""
    digest = hashlib.sha256(f"{household}/{day.isoformat()}".encode()).digest()
    if digest[0] % 3:
        return range(0)
    first = digest[1] % (23 - SUBSTITUTE_HOURS)
    return range(first, first + SUBSTITUTE_HOURS)


def meter_day_usage_kwh(household: str, day: date, *, final: bool) -> pd.Series:
    """A real household's usage of local ``day`` in kWh per quarter-hour (UTC index).

    ``final=False`` gives the preliminary values: on a substituted day six hours are the
    same quarter-hours of the day one week earlier.
    """
    kw = _meter_day_kw(household, day).copy()
    if not final:
        hours = _substituted_hours(household, day)
        if hours:
            earlier = _meter_day_kw(household, day - timedelta(days=7))
            lo, hi = hours.start * 4, min(hours.stop * 4, len(kw), len(earlier))
            kw[lo:hi] = earlier[lo:hi]
    return pd.Series(kw * 0.25, index=day_slots(day, 15), name="usage_kwh")


@functools.lru_cache(maxsize=8)
def _meter_day_totals(household: str) -> dict[date, float]:
    """kWh of each complete 24-hour local day of the meter (hourly kWh is the hour's kW)."""
    kw = _meter_kw(household)
    local = pd.DatetimeIndex(kw.index).tz_convert(BERLIN)
    grouped = kw.groupby(local.date).agg(["sum", "count"])
    return {
        day: float(total)
        for day, total, count in zip(grouped.index, grouped["sum"], grouped["count"], strict=True)
        if count == 24
    }


def _is_24h(day: date) -> bool:
    lo = datetime.combine(day, time(), BERLIN)
    hi = datetime.combine(day + timedelta(days=1), time(), BERLIN)
    return lo.utcoffset() == hi.utcoffset()


@functools.lru_cache(maxsize=4096)
def meter_month_usage_kwh(household: str, year: int, month: int) -> float:
    """Final usage of a calendar month of a real household, in kWh.

    A 24-hour day served from a complete 24-hour meter day is that day's total (the same
    sum as its quarter-hours, without building them: invoices list every month since the
    subscription started); DST days and gaps take the slot-by-slot path.
    """
    totals = _meter_day_totals(household)
    first, last = _meter_span(household)
    day = date(year, month, 1)
    total = 0.0
    while day.month == month:
        src = meter_source_day(day, first, last)
        if _is_24h(day) and src in totals:
            total += totals[src]
        else:
            total += float(_meter_day_kw(household, day).sum()) * 0.25
        day += timedelta(days=1)
    return total
