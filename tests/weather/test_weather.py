"""Weather sources: Open-Meteo's format from a local server, the typical year, the fallback.

The server (``tests/weather/_open_meteo.py``) runs under uvicorn on loopback and answers
in Open-Meteo's documented JSON format; the expected values are computed here from the
functions it serves, by the documented semantics (radiation: mean of the preceding hour;
temperature: an instant).
"""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from tests.weather._open_meteo import OpenMeteoState, app, radiation, source, temperature, wind
from wattplan import datasets
from wattplan._http import serve_in_thread
from wattplan.exceptions import (
    ForecastInputError,
    MalformedWeatherError,
    MissingWeatherVariableError,
    WeatherAPIError,
    WeatherError,
    WeatherRateLimitedError,
    WeatherUnavailableError,
)
from wattplan.weather import (
    FallbackWeather,
    OpenMeteoWeather,
    TypicalYearWeather,
    WeatherSource,
)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, OpenMeteoState]]:
    state = OpenMeteoState()
    with serve_in_thread(app(state), name="open-meteo-test") as url:
        yield url, state


@pytest.fixture
def open_meteo(
    server: tuple[str, OpenMeteoState],
) -> Iterator[tuple[OpenMeteoWeather, OpenMeteoState]]:
    url, state = server
    state.mode = "normal"
    state.retry_after = "120"
    state.requests.clear()
    yield source(url), state
    state.mode = "normal"


def _expected(hours: pd.DatetimeIndex) -> pd.DataFrame:
    nxt = hours + pd.Timedelta(hours=1)
    return pd.DataFrame(
        {
            "ghi_w_m2": [radiation(t, "shortwave_radiation") for t in nxt],
            "dni_w_m2": [radiation(t, "direct_normal_irradiance") for t in nxt],
            "dhi_w_m2": [radiation(t, "diffuse_radiation") for t in nxt],
            "temp_air_c": [
                (temperature(a) + temperature(b)) / 2 for a, b in zip(hours, nxt, strict=True)
            ],
            "wind_speed_m_s": [(wind(a) + wind(b)) / 2 for a, b in zip(hours, nxt, strict=True)],
        },
        index=hours,
    )


def test_sources_satisfy_the_protocol(server: tuple[str, OpenMeteoState]) -> None:
    assert isinstance(source(server[0]), WeatherSource)
    assert isinstance(TypicalYearWeather(), WeatherSource)
    assert isinstance(FallbackWeather(source(server[0])), WeatherSource)


def test_a_normal_answer_is_aligned_to_hour_starts(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    start = pd.Timestamp("2026-06-10T08:00:00+02:00")
    frame = weather.get_weather(start=start, end=start + pd.Timedelta(hours=12))
    hours = pd.date_range("2026-06-10T06:00Z", periods=12, freq="h")
    assert frame.index.equals(pd.DatetimeIndex(hours, name="start"))
    assert str(frame.index.tz) == "UTC"
    pd.testing.assert_frame_equal(frame, _expected(frame.index), check_names=False)
    (query,) = state.requests
    assert query["timezone"] == "GMT"
    assert query["start_date"] == "2026-06-10"
    assert query["end_date"] == "2026-06-10"
    assert query["wind_speed_unit"] == "ms"
    assert set(query["hourly"].split(",")) >= {"shortwave_radiation", "temperature_2m"}


@pytest.mark.parametrize(
    ("day", "hours"), [("2026-03-29", 23), ("2025-10-26", 25), ("2026-01-20", 24)]
)
def test_a_local_dst_day(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState], day: str, hours: int
) -> None:
    weather, state = open_meteo
    lo = pd.Timestamp(day, tz=BERLIN)
    hi = (lo + pd.Timedelta(days=1, hours=3)).normalize()  # the next local midnight
    frame = weather.get_weather(start=lo, end=hi)
    assert len(frame) == hours
    assert frame.index[0] == lo.tz_convert("UTC")
    assert frame.index[-1] + pd.Timedelta(hours=1) == hi.tz_convert("UTC")
    pd.testing.assert_frame_equal(frame, _expected(frame.index), check_names=False)
    # the last hour needs the label at the next UTC midnight: the next UTC date is asked too
    assert state.requests[-1]["end_date"] == hi.tz_convert("UTC").strftime("%Y-%m-%d")


def test_a_missing_required_variable_is_named(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    state.mode = "missing:temperature_2m"
    with pytest.raises(MissingWeatherVariableError) as info:
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")
    assert info.value.variable == "temperature_2m"
    assert "temperature_2m" in str(info.value)
    assert not info.value.transient


def test_a_missing_optional_variable_is_left_out(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    state.mode = "missing:direct_normal_irradiance"
    frame = weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-10T06:00Z")
    assert "dni_w_m2" not in frame.columns
    assert list(frame.columns) == ["ghi_w_m2", "dhi_w_m2", "temp_air_c", "wind_speed_m_s"]


def test_a_null_inside_the_window_is_malformed(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    state.mode = "nulls:shortwave_radiation"
    with pytest.raises(MalformedWeatherError, match="shortwave_radiation has no value"):
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")


def test_a_429_carries_retry_after(open_meteo: tuple[OpenMeteoWeather, OpenMeteoState]) -> None:
    weather, state = open_meteo
    state.mode = "429"
    with pytest.raises(WeatherRateLimitedError) as info:
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")
    assert info.value.retry_after_s == 120
    assert info.value.transient
    assert "limit exceeded" in str(info.value)


@pytest.mark.parametrize("mode", ["malformed", "html"])
def test_a_malformed_body(open_meteo: tuple[OpenMeteoWeather, OpenMeteoState], mode: str) -> None:
    weather, state = open_meteo
    state.mode = mode
    with pytest.raises(MalformedWeatherError, match="not JSON"):
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")


def test_an_error_body_gives_the_reason(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    state.mode = "range"
    with pytest.raises(WeatherAPIError) as info:
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")
    assert info.value.status_code == 400
    assert "out of allowed range" in info.value.reason
    assert not info.value.transient


def test_a_server_error_and_a_dead_port_are_transient(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    state.mode = "500"
    with pytest.raises(WeatherUnavailableError, match="502") as info:
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")
    assert info.value.transient
    with serve_in_thread(app(OpenMeteoState()), name="gone") as url:
        pass  # the port is free again once the block ends
    with pytest.raises(WeatherUnavailableError):
        source(url).get_weather(start="2026-06-10T00:00Z", end="2026-06-11T00:00Z")


def test_bad_input_names_the_field(open_meteo: tuple[OpenMeteoWeather, OpenMeteoState]) -> None:
    weather, state = open_meteo
    with pytest.raises(ForecastInputError, match="start: naive"):
        weather.get_weather(start="2026-06-10T00:00", end="2026-06-11T00:00Z")
    with pytest.raises(ForecastInputError, match="end: must be after start"):
        weather.get_weather(start="2026-06-10T00:00Z", end="2026-06-10T00:00Z")
    with pytest.raises(ForecastInputError, match="latitude"):
        OpenMeteoWeather(latitude=91, longitude=0)
    assert state.requests == []


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2025-10-26", 25)])
def test_typical_year_on_dst_days(day: str, hours: int) -> None:
    lo = pd.Timestamp(day, tz=BERLIN)
    hi = (lo + pd.Timedelta(days=1, hours=3)).normalize()
    frame = TypicalYearWeather().get_weather(start=lo, end=hi)
    assert len(frame) == hours
    assert frame.index[0] == lo.tz_convert("UTC")
    shipped = datasets.read_weather(lo, hi)
    assert np.allclose(frame["temp_air_c"], shipped["temp_air_c"])
    assert np.allclose(frame["ghi_w_m2"], shipped["ghi_w_m2"])


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("429", WeatherRateLimitedError),
        ("malformed", MalformedWeatherError),
        ("missing:shortwave_radiation", MissingWeatherVariableError),
        ("500", WeatherUnavailableError),
        ("range", WeatherAPIError),
    ],
)
def test_fallback_uses_the_typical_year_and_says_why(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState], mode: str, error: type[WeatherError]
) -> None:
    weather, state = open_meteo
    fallback = FallbackWeather(weather, TypicalYearWeather(), clock=_Clock())
    state.mode = mode
    lo = pd.Timestamp("2026-03-29", tz=BERLIN)
    frame = fallback.get_weather(start=lo, end=lo + pd.Timedelta(hours=23))
    assert len(frame) == 23
    assert frame.attrs["weather_source"] == "typical-year"
    assert fallback.last is not None
    assert fallback.last.fallback
    assert isinstance(fallback.last.error, error)
    assert "typical-year" in fallback.last.describe()
    offline = TypicalYearWeather().get_weather(start=lo, end=lo + pd.Timedelta(hours=23))
    pd.testing.assert_frame_equal(frame, offline)


def test_fallback_prefers_the_online_source_and_respects_retry_after(
    open_meteo: tuple[OpenMeteoWeather, OpenMeteoState],
) -> None:
    weather, state = open_meteo
    clock = _Clock()
    fallback = FallbackWeather(weather, clock=clock)
    window = {"start": "2026-06-10T00:00Z", "end": "2026-06-10T12:00Z"}
    frame = fallback.get_weather(**window)
    assert fallback.last is not None and not fallback.last.fallback
    assert frame.attrs["weather_source"] == "open-meteo"
    pd.testing.assert_frame_equal(frame, _expected(frame.index), check_names=False)
    state.mode = "429"
    fallback.get_weather(**window)
    assert isinstance(fallback.last.error, WeatherRateLimitedError)
    asked = len(state.requests)
    state.mode = "normal"
    clock.now += 119  # within Retry-After: the online source is left alone
    fallback.get_weather(**window)
    assert fallback.last.skipped and fallback.last.source == "typical-year"
    assert len(state.requests) == asked
    clock.now += 2
    fallback.get_weather(**window)
    assert fallback.last.source == "open-meteo"
    assert len(state.requests) == asked + 1
