"""A household for any window, built from the data shipped with wattplan.

The demo, the benchmarks and vendors trying the planner need a household that can be
planned on a rolling horizon: a scenario file carries its load, PV and weather for its
own dates only. :func:`demo_household` builds the full household of DESIGN §3 (EV,
heat pump, battery, 8 kWp PV, dishwasher) for any window in 2025–2026 from
:mod:`wattplan.datasets` (BDEW H25 load) and a :class:`wattplan.weather.WeatherSource`
(default: the shipped Potsdam typical year) for the heat pump's outdoor temperature (its
COP follows from it) and the PV forecast (pvlib, south-facing at 35°).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import pandas as pd

from wattplan import datasets
from wattplan.exceptions import ScenarioError
from wattplan.planner._timing import require_aware
from wattplan.weather import TypicalYearWeather

if TYPE_CHECKING:
    from wattplan.weather import WeatherSource

__all__ = ["demo_household"]

BERLIN = ZoneInfo("Europe/Berlin")
#: where the demo household's roof is: Potsdam, as the typical-year weather
DEMO_LATITUDE, DEMO_LONGITUDE = 52.39, 13.06
_TYPICAL_YEAR = TypicalYearWeather()


def _series(series: pd.Series) -> dict[str, Any]:
    index = pd.DatetimeIndex(series.index)
    return {
        "values": [float(v) for v in series.to_numpy()],
        "index": [ts.isoformat() for ts in index],
    }


@functools.lru_cache(maxsize=4)
def _year_load(year: int, annual_kwh: float) -> pd.Series:
    return datasets.read_household_load(year, annual_kwh=annual_kwh)


def _load(start: datetime, end: datetime, annual_kwh: float) -> pd.Series:
    parts = []
    for year in range(start.astimezone(BERLIN).year, end.astimezone(BERLIN).year + 1):
        if year not in (2025, 2026):
            raise ScenarioError(key="start", reason="the shipped household load covers 2025-2026")
        parts.append(_year_load(year, annual_kwh))
    load = pd.concat(parts)
    load = load[~load.index.duplicated()]
    index = pd.DatetimeIndex(load.index)
    window: pd.Series = load[(index >= pd.Timestamp(start)) & (index < pd.Timestamp(end))]
    return window


def _at(day: Any, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=BERLIN)


def demo_household(
    start: datetime,
    end: datetime,
    *,
    ev_energy_kwh: float = 18.0,
    pv_kwp: float = 8.0,
    annual_kwh: float = 4000.0,
    battery_soc_kwh: float = 5.0,
    indoor_c: float = 21.0,
    dishwasher: bool = True,
    weather: WeatherSource | None = None,
) -> Any:
    """The full household for ``[start, end)`` at 15 minutes (a ``wattplan.Scenario``).

    ``weather`` gives the outdoor temperature (hence the heat pump's COP) and the weather
    the PV forecast is modelled on; default: the shipped typical year, offline. Pass
    ``FallbackWeather(OpenMeteoWeather(latitude=..., longitude=...))`` to plan on a real
    forecast (a window at most 16 days ahead).

    The car is plugged in at 18:00 and leaves at 07:00 every day needing
    ``ev_energy_kwh``; the dishwasher runs once, between 20:00 and 07:00 of the first
    night that fits the window (``dishwasher=False``: not at all). Scenarios are values:
    the same arguments return the same (cached) scenario, so that many customers planned
    at the same moment share one.
    """
    return _household(
        require_aware(start, "start"),
        require_aware(end, "end"),
        ev_energy_kwh,
        pv_kwp,
        annual_kwh,
        battery_soc_kwh,
        indoor_c,
        dishwasher,
        cast("Hashable", _TYPICAL_YEAR if weather is None else weather),
    )


@functools.lru_cache(maxsize=32)
def _household(
    start: datetime,
    end: datetime,
    ev_energy_kwh: float,
    pv_kwp: float,
    annual_kwh: float,
    battery_soc_kwh: float,
    indoor_c: float,
    dishwasher: bool,
    source: Any,
) -> Any:
    from wattplan.forecast import forecast_pv
    from wattplan.optimizer import scenario_from_dict

    lo, hi = start, end
    weather = source.get_weather(start=lo, end=hi)
    site = {
        "latitude": DEMO_LATITUDE,
        "longitude": DEMO_LONGITUDE,
        "kwp": pv_kwp,
        "tilt_deg": 35.0,
        "azimuth_deg": 180.0,
    }
    if pv_kwp > 0:
        pv = forecast_pv(site, weather, start=lo, end=hi, resolution_minutes=15).kw["kw_p50"]
    else:
        pv = pd.Series(0.0, index=_load(lo, hi, annual_kwh).index)
    first_day = lo.astimezone(BERLIN).date() - timedelta(days=1)
    last_day = hi.astimezone(BERLIN).date()
    sessions = []
    day = first_day
    while day <= last_day:
        plug_in, departure = _at(day, time(18)), _at(day + timedelta(days=1), time(7))
        if departure > lo and plug_in < hi:
            sessions.append(
                {
                    "plug_in": plug_in.isoformat(),
                    "departure": departure.isoformat(),
                    "energy_kwh": ev_energy_kwh,
                }
            )
        day += timedelta(days=1)
    devices: list[dict[str, Any]] = [
        {
            "kind": "ev",
            "name": "car",
            "max_power_kw": 11,
            "min_power_kw": 4.2,
            "efficiency": 0.92,
            "sessions": sessions,
        },
        {
            "kind": "battery",
            "name": "home-battery",
            "capacity_kwh": 10,
            "soc_kwh": battery_soc_kwh,
            "soc_min_kwh": 1,
            "max_charge_kw": 5,
            "max_discharge_kw": 5,
            "charge_efficiency": 0.95,
            "discharge_efficiency": 0.95,
        },
        {
            "kind": "heat_pump",
            "name": "heat-pump",
            "max_power_kw": 3.5,
            "outdoor_c": _series(weather["temp_air_c"]),
            "building": {
                "heat_capacity_kwh_per_k": 7,
                "heat_loss_kw_per_k": 0.25,
                "indoor_c": indoor_c,
                "comfort_min_c": 20,
                "comfort_max_c": 23,
            },
        },
    ]
    day = lo.astimezone(BERLIN).date()
    while dishwasher and day <= last_day:
        earliest = max(_at(day, time(20)), lo)
        latest = _at(day + timedelta(days=1), time(7))
        if latest <= hi and latest - earliest >= timedelta(hours=2):
            devices.append(
                {
                    "kind": "appliance",
                    "name": "dishwasher",
                    "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
                    "earliest_start": earliest.isoformat(),
                    "latest_end": latest.isoformat(),
                }
            )
            break
        day += timedelta(days=1)
    return scenario_from_dict(
        {
            "name": "demo-household",
            "timezone": "Europe/Berlin",
            "start": lo.isoformat(),
            "end": hi.isoformat(),
            "resolution": "15min",
            "site": {
                "feed_in_ct_per_kwh": 7.78,
                "grid_import_limit_kw": 24,
                "grid_export_limit_kw": 10,
                "base_load": _series(_load(lo, hi, annual_kwh)),
                "pv": _series(pv),
            },
            "devices": devices,
        }
    )
