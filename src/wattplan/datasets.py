"""Real data shipped with wattplan: DE-LU day-ahead prices, household load, weather and PV.

All readers return pandas objects with a tz-aware UTC index of interval starts.

* Day-ahead prices: Data: Bundesnetzagentur | SMARD.de, CC BY 4.0 (via Energy-Charts /
  Fraunhofer ISE). Hourly until 2025-09-30, 15-minute from 2025-10-01.
* Household load: BDEW H25 / H0 standard load profiles (4000 kWh/a, 15 minutes), for 2025
  and 2026, generated with demandlib.
* Weather and PV: DWD test reference year 2010 for Potsdam (a typical year), with PV output
  per kWp modelled with pvlib.
* Household meters: five real households from Konstanz, 52 weeks of hourly whole-house
  grid import each. Data: Open Power System Data. 2020. Data Package Household Data.
  Version 2020-04-15. https://doi.org/10.25832/household_data/2020-04-15 (primary data: the
  CoSSMic project, ISC Konstanz), CC BY 4.0.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd

__all__ = [
    "BERLIN",
    "HOUSEHOLD_METERS",
    "METER_ATTRIBUTION",
    "PRICE_ATTRIBUTION",
    "all_in_price_ct_per_kwh",
    "read_day_ahead_prices",
    "read_household_load",
    "read_household_meter",
    "read_weather",
]

BERLIN = "Europe/Berlin"
PRICE_ATTRIBUTION = (
    "Data: Bundesnetzagentur | SMARD.de, CC BY 4.0 (via Energy-Charts / Fraunhofer ISE)"
)
METER_ATTRIBUTION = (
    "Data: Open Power System Data. 2020. Data Package Household Data. Version 2020-04-15. "
    "https://doi.org/10.25832/household_data/2020-04-15 (primary data: the CoSSMic project, "
    "ISC Konstanz), CC BY 4.0"
)
#: The real households whose meters ship with wattplan (see :func:`read_household_meter`).
HOUSEHOLD_METERS = ("residential1", "residential2", "residential3", "residential5", "residential6")

_PRICE_FILES = (
    "de_lu_day_ahead_60min_2020.csv.gz",
    "de_lu_day_ahead_60min_2021.csv.gz",
    "de_lu_day_ahead_60min_2022.csv.gz",
    "de_lu_day_ahead_60min_2023.csv.gz",
    "de_lu_day_ahead_60min_2024.csv.gz",
    "de_lu_day_ahead_60min_2025-01_to_2025-09.csv.gz",
    "de_lu_day_ahead_15min_2025-10_to_2025-12.csv.gz",
    "de_lu_day_ahead_15min_2026-01_to_2026-08.csv.gz",
)


def _read(name: str) -> pd.DataFrame:
    with resources.files("wattplan.data").joinpath(name).open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip")
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("start"), utc=True), name="start")
    return df


@functools.cache
def _all_prices() -> pd.Series:
    series: pd.Series = pd.concat([_read(f)["price_eur_per_mwh"] for f in _PRICE_FILES])
    series = series.astype(float)
    series.name = "price_eur_per_mwh"
    return series


def _bound(value: str | pd.Timestamp | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(BERLIN)
    return ts.tz_convert("UTC")


def read_day_ahead_prices(
    start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
) -> pd.Series:
    """DE-LU day-ahead spot prices in EUR/MWh, from ``start`` (inclusive) to ``end`` (exclusive).

    Naive bounds are read as Europe/Berlin local time. The index holds the interval starts
    in UTC; the step is 60 minutes before 2025-10-01 and 15 minutes from then on.
    """
    series = _all_prices()
    lo, hi = _bound(start), _bound(end)
    if lo is not None:
        series = series[series.index >= lo]
    if hi is not None:
        series = series[series.index < hi]
    return series.copy()


def all_in_price_ct_per_kwh(
    spot_eur_per_mwh: pd.Series, *, markup_ct_per_kwh: float = 16.0, vat: float = 0.19
) -> pd.Series:
    """A Nomos-like all-in price: ``(1 + vat) * (spot / 10 + markup)`` in ct/kWh."""
    out = (1.0 + vat) * (spot_eur_per_mwh / 10.0 + markup_ct_per_kwh)
    out.name = "price_ct_per_kwh"
    return out


def read_household_load(
    year: int, *, profile: str = "h25", annual_kwh: float = 4000.0
) -> pd.Series:
    """Household base load in kW (15-minute means) for 2025 or 2026, scaled to ``annual_kwh``.

    ``profile`` is ``"h25"`` (BDEW 2025 profile) or ``"h0"`` (classic dynamised H0).
    """
    columns = {"h25": "h25_kw", "h0": "h0_dyn_kw"}
    if profile not in columns:
        raise ValueError(f"profile: must be one of {sorted(columns)}, got {profile!r}")
    if year not in (2025, 2026):
        raise ValueError(f"year: household load is shipped for 2025 and 2026, got {year}")
    df = _read(f"h0_household_4000kwh_15min_{year}.csv.gz")
    series = df[columns[profile]].astype(float) * (annual_kwh / 4000.0)
    series.name = "base_load_kw"
    return series


@functools.cache
def _weather() -> pd.DataFrame:
    return _read("weather_pv_try2010_potsdam_typical_year_60min.csv.gz").astype(float)


def read_weather(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DataFrame:
    """Typical-year weather and PV per kWp (hourly means), mapped onto real dates.

    The DWD test reference year is not the weather of any calendar year: each hour of
    ``[start, end)`` gets the value of the same month, day and hour (CET, as in the source)
    of the typical year; 29 February reuses 28 February. Columns: ``temp_air_c``,
    ``ghi_w_m2``, ``dhi_w_m2``, ``wind_speed_m_s``, ``pv_south35_kw_per_kwp``,
    ``pv_eastwest15_kw_per_kwp``.
    """
    lo, hi = _bound(start), _bound(end)
    if lo is None or hi is None:
        raise ValueError("start and end are required")
    hours = pd.date_range(lo.floor("h"), hi, freq="h", inclusive="left", tz="UTC")
    weather = _weather()
    cet = pd.DatetimeIndex(weather.index).tz_convert("Etc/GMT-1")
    stamps = zip(cet.month, cet.day, cet.hour, strict=True)
    key = {(m, d, h): i for i, (m, d, h) in enumerate(stamps)}
    want = hours.tz_convert("Etc/GMT-1")
    days = np.where((want.month == 2) & (want.day == 29), 28, want.day)
    rows = [key[(m, d, h)] for m, d, h in zip(want.month, days, want.hour, strict=True)]
    out = weather.iloc[rows].copy()
    out.index = pd.DatetimeIndex(hours, name="start")
    return out


@functools.cache
def _meter(name: str) -> pd.Series:
    series = _read(f"meter_{name}_60min.csv.gz")["import_kwh"].astype(float)
    series.name = "import_kwh"
    return series


def read_household_meter(name: str) -> pd.Series:
    """A real household's hourly whole-house grid import in kWh (52 whole weeks).

    ``name`` is one of :data:`HOUSEHOLD_METERS`. The index holds the hour starts in UTC,
    from a local Monday midnight to the local midnight 52 weeks later (DST days have 23
    or 25 hours). The series is what a smart meter records: devices on the household's
    meter are included (residential1's heat pump, metered separately in the source, is
    added to its import). residential1, 3 and 6 have PV; their import is net of it.
    Derived from the OPSD household data by ``tools/household_meters.py``; cite
    :data:`METER_ATTRIBUTION`.
    """
    if name not in HOUSEHOLD_METERS:
        raise ValueError(f"name: must be one of {list(HOUSEHOLD_METERS)}, got {name!r}")
    return _meter(name).copy()
