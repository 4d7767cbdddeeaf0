"""The PV forecast, the demo household's heat pump and household profiles take their
weather from a WeatherSource (the local Open-Meteo-format server, or the typical year).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from tests.household.test_profile import PROFILE
from tests.weather._open_meteo import OpenMeteoState, app, source, temperature
from wattplan import datasets
from wattplan._http import serve_in_thread
from wattplan.exceptions import ForecastInputError
from wattplan.forecast import forecast_pv
from wattplan.household import household_from_dict, household_pv_kw, household_scenario
from wattplan.optimizer import optimize, staffell_cop
from wattplan.planner import demo_household
from wattplan.weather import FallbackWeather, TypicalYearWeather

BERLIN = ZoneInfo("Europe/Berlin")
SITE = {"latitude": 52.39, "longitude": 13.06, "kwp": 8.0, "tilt_deg": 35.0}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, OpenMeteoState]]:
    state = OpenMeteoState()
    with serve_in_thread(app(state), name="open-meteo-test") as url:
        yield url, state


def _local_day(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    lo = pd.Timestamp(day, tz=BERLIN)
    return lo, (lo + pd.Timedelta(days=1, hours=3)).normalize()


@pytest.mark.parametrize(("day", "slots"), [("2026-03-29", 92), ("2025-10-26", 100)])
def test_pv_forecast_from_a_source_on_dst_days(
    server: tuple[str, OpenMeteoState], day: str, slots: int
) -> None:
    lo, hi = _local_day(day)
    weather = source(server[0])
    pv = forecast_pv(SITE, weather, start=lo, end=hi, resolution_minutes=15)
    assert len(pv.kw) == slots
    assert pv.kw.index[0] == lo
    frame = weather.get_weather(start=lo, end=hi)
    same = forecast_pv(SITE, frame, resolution_minutes=15)
    pd.testing.assert_frame_equal(pv.kw, same.kw)


def test_pv_forecast_needs_the_window_with_a_source(server: tuple[str, OpenMeteoState]) -> None:
    with pytest.raises(ForecastInputError, match="start: required"):
        forecast_pv(SITE, source(server[0]), end="2026-06-10T00:00Z")


def test_pv_forecast_falls_back_to_the_typical_year(server: tuple[str, OpenMeteoState]) -> None:
    url, state = server
    state.mode = "429"
    try:
        lo, hi = _local_day("2026-06-10")
        weather = FallbackWeather(source(url))
        pv = forecast_pv(SITE, weather, start=lo, end=hi, resolution_minutes=15)
    finally:
        state.mode = "normal"
    assert weather.last is not None and weather.last.source == "typical-year"
    offline = forecast_pv(SITE, TypicalYearWeather(), start=lo, end=hi, resolution_minutes=15)
    pd.testing.assert_frame_equal(pv.kw, offline.kw)
    assert pv.kw["kw_p50"].max() > 1.0  # a June day in Potsdam has sun


def test_demo_household_heat_pump_follows_the_source(server: tuple[str, OpenMeteoState]) -> None:
    lo, hi = _local_day("2025-10-26")  # 25 hours
    scenario = demo_household(
        lo.to_pydatetime(), hi.to_pydatetime(), weather=source(server[0]), dishwasher=False
    )
    spot = datasets.read_day_ahead_prices(lo, hi)
    prices = datasets.all_in_price_ct_per_kwh(spot)
    plan = optimize(scenario, prices=prices)
    schedule = plan.schedule
    assert len(schedule) == 100
    hours = pd.DatetimeIndex(schedule.index).floor("h")
    nxt = hours + pd.Timedelta(hours=1)
    want = np.array(
        [(temperature(a) + temperature(b)) / 2 for a, b in zip(hours, nxt, strict=True)]
    )
    assert np.allclose(schedule["heat-pump_outdoor_c"].to_numpy(), want)
    flow = scenario.devices[2].flow_temperature_c
    assert np.allclose(schedule["heat-pump_cop"].to_numpy(), staffell_cop(want, flow))


def test_demo_household_defaults_to_the_typical_year() -> None:
    lo, hi = _local_day("2026-03-29")  # 23 hours
    plan_input = demo_household(lo.to_pydatetime(), hi.to_pydatetime(), dishwasher=False)
    spot = datasets.read_day_ahead_prices(lo, hi)
    plan = optimize(plan_input, prices=datasets.all_in_price_ct_per_kwh(spot))
    assert len(plan.schedule) == 92
    shipped = datasets.read_weather(lo, hi)["temp_air_c"]
    hourly = (
        plan.schedule["heat-pump_outdoor_c"]
        .groupby(pd.DatetimeIndex(plan.schedule.index).floor("h"))
        .first()
    )
    assert np.allclose(hourly.to_numpy(), shipped.to_numpy())
    pv = forecast_pv(SITE, TypicalYearWeather(), start=lo, end=hi, resolution_minutes=15)
    assert np.allclose(plan.schedule["pv_available_kw"], pv.kw["kw_p50"].to_numpy())


@pytest.mark.parametrize(("day", "slots"), [("2026-03-29", 92), ("2025-10-26", 100)])
def test_a_profile_gets_its_pv_from_the_weather(day: str, slots: int) -> None:
    household = household_from_dict(PROFILE)
    lo, hi = _local_day(day)
    weather = TypicalYearWeather()
    pv = household_pv_kw(household, weather, lo, hi)
    assert len(pv) == slots
    idx = pd.date_range(lo, hi, freq="15min", inclusive="left")
    scenario = household_scenario(
        household,
        lo,
        hi,
        base_load_kw=pd.Series(0.4, index=idx),
        prices_ct_per_kwh=pd.Series(30.0, index=idx),
        weather=weather,
    )
    plan = optimize(scenario)
    assert np.allclose(plan.schedule["pv_available_kw"].to_numpy(), pv.to_numpy())
    local = pd.DatetimeIndex(pv.index).tz_convert(BERLIN)
    assert pv[local.hour < 5].max() == 0.0  # night
    assert pv[(local.hour >= 11) & (local.hour < 14)].mean() > 0.05  # day
    geometry = PROFILE["site"]["pv"]
    direct = forecast_pv(geometry, weather, start=lo, end=hi, resolution_minutes=15)
    assert np.allclose(pv.to_numpy(), direct.kw["kw_p50"].to_numpy())
    no_pv = household_from_dict({**PROFILE, "site": {**PROFILE["site"], "pv": None}})
    assert (household_pv_kw(no_pv, weather, lo, hi) == 0).all()
    assert timedelta(hours=slots / 4) == hi - lo
