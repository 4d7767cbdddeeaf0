"""Weather for the PV forecast and the heat pump: online from Open-Meteo, offline shipped.

A :class:`WeatherSource` returns the hourly weather of a window as a DataFrame with a
tz-aware UTC index of hour starts and, per hour, the means of

``ghi_w_m2``
    global horizontal irradiance, W/m² (always present);
``dni_w_m2``, ``dhi_w_m2``
    direct normal and diffuse horizontal irradiance, W/m² (when the source has them);
``temp_air_c``
    air temperature at 2 m, °C (always present);
``wind_speed_m_s``
    wind speed at 10 m, m/s (when the source has it).

This is the frame :func:`wattplan.forecast.forecast_pv` takes, and ``temp_air_c`` is the
outdoor temperature from which a heat pump's COP is computed. The window ``[start, end)``
is covered by whole hours (``start`` floored, ``end`` ceiled), in UTC, so a local 23- or
25-hour day has 23 or 25 rows and needs nothing special.

Sources
-------
:class:`OpenMeteoWeather`
    Open-Meteo's forecast API (https://open-meteo.com, no key; CC BY 4.0 data, attribution
    "Weather data by Open-Meteo.com"). Asked in UTC (``timezone=GMT``). Open-Meteo labels
    radiation with the *end* of the hour it averages ("average of the preceding hour")
    and temperature and wind as instants, so the hour starting at ``t`` gets the
    radiation labelled ``t + 1 h`` and the mean of the instants at ``t`` and ``t + 1 h``.
:class:`TypicalYearWeather`
    The shipped DWD test reference year for Potsdam, mapped onto real dates
    (:func:`wattplan.datasets.read_weather`): always available, never the weather of the
    actual day. The default of the demo and the sandbox.
:class:`FallbackWeather`
    One source, else another: reports which one answered (:attr:`FallbackWeather.last`)
    and, after a 429, leaves the first alone until its ``Retry-After`` has passed.

Errors are :class:`wattplan.exceptions.WeatherError` and its subclasses.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from wattplan.exceptions import (
    ForecastInputError,
    MalformedWeatherError,
    MissingWeatherVariableError,
    WeatherAPIError,
    WeatherError,
    WeatherRateLimitedError,
    WeatherUnavailableError,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "OPEN_METEO_ATTRIBUTION",
    "OPEN_METEO_URL",
    "WEATHER_COLUMNS",
    "FallbackWeather",
    "OpenMeteoWeather",
    "TypicalYearWeather",
    "WeatherReport",
    "WeatherSource",
    "parse_open_meteo",
    "weather_window",
]

logger = logging.getLogger(__name__)

OPEN_METEO_URL = "https://api.open-meteo.com"
OPEN_METEO_ATTRIBUTION = "Weather data by Open-Meteo.com (CC BY 4.0)"
WEATHER_COLUMNS = ("ghi_w_m2", "dni_w_m2", "dhi_w_m2", "temp_air_c", "wind_speed_m_s")

Instant = datetime | pd.Timestamp | str


@runtime_checkable
class WeatherSource(Protocol):
    """Anything that gives the hourly weather of a window (see the module docstring)."""

    @property
    def name(self) -> str:
        """A short name for logs and reports (``open-meteo``, ``typical-year``)."""
        ...

    def get_weather(self, *, start: Instant, end: Instant) -> pd.DataFrame:
        """Hourly means covering ``[start, end)``, UTC hour starts as index."""
        ...


def _aware(value: Instant, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ForecastInputError(key, f"not a time: {value!r}") from exc
    if ts.tzinfo is None:
        raise ForecastInputError(key, "naive time: give a time zone (UTC offset)")
    return ts.tz_convert("UTC")


def weather_window(start: Instant, end: Instant) -> pd.DatetimeIndex:
    """The UTC hour starts that cover ``[start, end)`` (``start`` floored, ``end`` ceiled)."""
    lo, hi = _aware(start, "start"), _aware(end, "end")
    if hi <= lo:
        raise ForecastInputError("end", f"must be after start ({lo.isoformat()})")
    hours = pd.date_range(lo.floor("h"), hi.ceil("h"), freq="h", inclusive="left")
    return pd.DatetimeIndex(hours, name="start")


# -- offline ---------------------------------------------------------------------------


class TypicalYearWeather:
    """The shipped typical year (DWD TRY 2010, Potsdam) on real dates; never fails.

    The same weather wherever the site is: a stand-in for a forecast, good for demos,
    tests and as the fallback of :class:`OpenMeteoWeather`. No ``dni_w_m2`` (the PV
    model derives it from the global irradiance).
    """

    name = "typical-year"

    def get_weather(self, *, start: Instant, end: Instant) -> pd.DataFrame:
        from wattplan import datasets

        hours = weather_window(start, end)
        frame = datasets.read_weather(hours[0], hours[-1] + pd.Timedelta(hours=1))
        out = frame[["ghi_w_m2", "dhi_w_m2", "temp_air_c", "wind_speed_m_s"]].copy()
        out.index = hours
        return out

    def __repr__(self) -> str:
        return "TypicalYearWeather()"


# -- Open-Meteo ------------------------------------------------------------------------

# Open-Meteo variable -> (our column, kind); "mean": average of the preceding hour,
# "instant": the value at the labelled time
_VARIABLES = {
    "shortwave_radiation": ("ghi_w_m2", "mean"),
    "direct_normal_irradiance": ("dni_w_m2", "mean"),
    "diffuse_radiation": ("dhi_w_m2", "mean"),
    "temperature_2m": ("temp_air_c", "instant"),
    "wind_speed_10m": ("wind_speed_m_s", "instant"),
}
_REQUIRED = ("shortwave_radiation", "temperature_2m")
_MAX_BODY_BYTES = 5_000_000


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(when.tzinfo)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _reason(body: bytes) -> str | None:
    """The ``reason`` of an Open-Meteo error body, if the body is one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("error") is True:
        return str(data.get("reason", "no reason given"))[:500]
    return None


def parse_open_meteo(body: bytes, hours: pd.DatetimeIndex) -> pd.DataFrame:
    """The hourly weather of ``hours`` from an Open-Meteo forecast answer (``timezone=GMT``).

    Pure: no I/O. Raises :class:`MalformedWeatherError` (or its subclass
    :class:`MissingWeatherVariableError`) when the body is not what the documentation
    describes or lacks values for ``hours``, and :class:`WeatherAPIError` for an error body.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedWeatherError(f"Open-Meteo: the answer is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MalformedWeatherError("Open-Meteo: the answer is not a JSON object")
    if data.get("error") is True:
        reason = str(data.get("reason", "no reason given"))[:500]
        raise WeatherAPIError(f"Open-Meteo: {reason}", status_code=200, reason=reason)
    offset = data.get("utc_offset_seconds", 0)
    if offset != 0:
        raise MalformedWeatherError(
            f"Open-Meteo: utc_offset_seconds is {offset!r}, asked for GMT (0)"
        )
    hourly = data.get("hourly")
    if not isinstance(hourly, dict):
        raise MissingWeatherVariableError("Open-Meteo: no 'hourly' object", variable="hourly")
    times = hourly.get("time")
    if not isinstance(times, list) or not all(isinstance(t, str) for t in times):
        raise MalformedWeatherError("Open-Meteo: hourly.time is not a list of ISO 8601 times")
    try:
        labels = pd.DatetimeIndex(pd.to_datetime(times, format="ISO8601"))
    except (TypeError, ValueError) as exc:
        raise MalformedWeatherError(f"Open-Meteo: hourly.time: {exc}") from exc
    if labels.tz is None:
        labels = labels.tz_localize("UTC")
    labels = labels.tz_convert("UTC")
    if labels.has_duplicates:
        raise MalformedWeatherError("Open-Meteo: hourly.time has duplicate times")
    # the hour starting at t needs the labels t (instants) and t + 1 h (both)
    needed = hours.append(pd.DatetimeIndex([hours[-1] + pd.Timedelta(hours=1)]))
    out = pd.DataFrame(index=hours)
    for variable, (column, kind) in _VARIABLES.items():
        values = hourly.get(variable)
        if values is None:
            if variable in _REQUIRED:
                raise MissingWeatherVariableError(
                    f"Open-Meteo: hourly.{variable} is missing", variable=variable
                )
            continue
        if not isinstance(values, list) or len(values) != len(labels):
            raise MalformedWeatherError(
                f"Open-Meteo: hourly.{variable} is not a list as long as hourly.time"
            )
        if not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            raise MalformedWeatherError(f"Open-Meteo: hourly.{variable} has non-numbers")
        series = pd.Series(np.array([np.nan if v is None else v for v in values], float), labels)
        series = series.reindex(needed)
        if kind == "mean":
            column_values = series.to_numpy()[1:]
        else:
            column_values = (series.to_numpy()[:-1] + series.to_numpy()[1:]) / 2.0
        missing = np.isnan(column_values)
        if missing.any():
            first = hours[int(np.argmax(missing))].isoformat()
            if variable in _REQUIRED:
                raise MalformedWeatherError(
                    f"Open-Meteo: hourly.{variable} has no value for the hour from {first}"
                )
            logger.info("Open-Meteo: %s has gaps (first %s); left out", variable, first)
            continue
        out[column] = column_values
    out["ghi_w_m2"] = out["ghi_w_m2"].clip(lower=0.0)
    return out[[c for c in WEATHER_COLUMNS if c in out]]


class OpenMeteoWeather:
    """Open-Meteo's forecast API for one location (no key needed).

    Parameters
    ----------
    latitude, longitude
        The site, degrees north and east.
    base_url
        ``https://api.open-meteo.com`` (or a mirror, a self-hosted instance, a test server).
    timeout_s
        Connect and read timeout per request.
    transport
        An ``httpx`` transport (tests, proxies); default: httpx's own.

    One request per :meth:`get_weather`, no retries: a 429 raises
    :class:`WeatherRateLimitedError` with the ``Retry-After`` seconds, a 5xx or a failed
    connection :class:`WeatherUnavailableError` (both ``transient``), an error body
    ``{"error": true, "reason": ...}`` :class:`WeatherAPIError` (e.g. a window beyond the
    16 forecast days), anything else off-format :class:`MalformedWeatherError`. Wrap it
    in :class:`FallbackWeather` to keep planning when it fails.
    """

    name = "open-meteo"

    def __init__(
        self,
        *,
        latitude: float,
        longitude: float,
        base_url: str = OPEN_METEO_URL,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not -90.0 <= latitude <= 90.0:
            raise ForecastInputError("latitude", f"must be within [-90, 90], got {latitude}")
        if not -180.0 <= longitude <= 180.0:
            raise ForecastInputError("longitude", f"must be within [-180, 180], got {longitude}")
        if not timeout_s > 0:
            raise ForecastInputError("timeout_s", f"must be positive, got {timeout_s}")
        self.latitude = float(latitude)
        self.longitude = float(longitude)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._transport = transport

    def __repr__(self) -> str:
        return (
            f"OpenMeteoWeather(latitude={self.latitude}, longitude={self.longitude}, "
            f"base_url={self.base_url!r})"
        )

    def params(self, hours: pd.DatetimeIndex) -> dict[str, str]:
        """The query for ``hours`` (UTC dates, end inclusive, one hour beyond the last)."""
        last = hours[-1] + pd.Timedelta(hours=1)
        return {
            "latitude": f"{self.latitude:.4f}",
            "longitude": f"{self.longitude:.4f}",
            "hourly": ",".join(_VARIABLES),
            "wind_speed_unit": "ms",
            "timezone": "GMT",
            "start_date": hours[0].strftime("%Y-%m-%d"),
            "end_date": last.strftime("%Y-%m-%d"),
        }

    def get_weather(self, *, start: Instant, end: Instant) -> pd.DataFrame:
        import httpx

        hours = weather_window(start, end)
        url = f"{self.base_url}/v1/forecast"
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                response = client.get(url, params=self.params(hours))
                body = response.read()
        except httpx.HTTPError as exc:
            raise WeatherUnavailableError(
                f"Open-Meteo: {type(exc).__name__} talking to {self.base_url}"
            ) from exc
        status = response.status_code
        if len(body) > _MAX_BODY_BYTES:
            raise MalformedWeatherError(f"Open-Meteo: answer of {len(body)} bytes, too large")
        if status == 429:
            wait = _retry_after(response.headers.get("retry-after"))
            reason = _reason(body) or "too many requests"
            after = f"; retry after {wait:g} s" if wait is not None else ""
            raise WeatherRateLimitedError(f"Open-Meteo: 429 {reason}{after}", retry_after_s=wait)
        if status >= 500:
            reason = _reason(body) or response.reason_phrase
            raise WeatherUnavailableError(f"Open-Meteo: {status} {reason}")
        if status != 200:
            given = _reason(body)
            if given is None:
                raise MalformedWeatherError(f"Open-Meteo: {status} without an error body")
            raise WeatherAPIError(f"Open-Meteo: {status} {given}", status_code=status, reason=given)
        return parse_open_meteo(body, hours)


# -- fallback --------------------------------------------------------------------------


@dataclass(frozen=True)
class WeatherReport:
    """Which source answered a :meth:`FallbackWeather.get_weather`, and why not the first.

    ``error`` is the first source's error when the fallback answered (``None`` when the
    first answered, or when it was skipped during a ``Retry-After``: then ``skipped``).
    """

    source: str
    fallback: bool
    error: WeatherError | None = None
    skipped: bool = False

    def describe(self) -> str:
        if not self.fallback:
            return f"weather from {self.source}"
        if self.skipped:
            return f"weather from {self.source} (the first source is rate-limited)"
        return f"weather from {self.source} (fallback: {self.error})"


class FallbackWeather:
    """Ask ``primary``; when it raises a :class:`WeatherError`, ask ``fallback``.

    ``last`` reports which source answered the last call (also in the frame's
    ``attrs["weather_source"]``). After a :class:`WeatherRateLimitedError` with a
    ``Retry-After``, ``primary`` is not asked again until that time has passed on
    ``clock`` (seconds, monotonic; injectable for tests). Errors of the fallback itself
    propagate.
    """

    def __init__(
        self,
        primary: WeatherSource,
        fallback: WeatherSource | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback if fallback is not None else TypicalYearWeather()
        self._clock = clock
        self._blocked_until: float | None = None
        self.last: WeatherReport | None = None

    @property
    def name(self) -> str:
        return f"{self.primary.name}, else {self.fallback.name}"

    def __repr__(self) -> str:
        return f"FallbackWeather({self.primary!r}, {self.fallback!r})"

    def get_weather(self, *, start: Instant, end: Instant) -> pd.DataFrame:
        error: WeatherError | None = None
        skipped = self._blocked_until is not None and self._clock() < self._blocked_until
        if not skipped:
            try:
                frame = self.primary.get_weather(start=start, end=end)
            except WeatherError as exc:
                error = exc
                if isinstance(exc, WeatherRateLimitedError) and exc.retry_after_s:
                    self._blocked_until = self._clock() + exc.retry_after_s
                logger.warning(
                    "weather: %s failed (%s); using %s",
                    self.primary.name,
                    exc,
                    self.fallback.name,
                )
            else:
                self._blocked_until = None
                return self._report(frame, WeatherReport(self.primary.name, fallback=False))
        frame = self.fallback.get_weather(start=start, end=end)
        return self._report(
            frame, WeatherReport(self.fallback.name, fallback=True, error=error, skipped=skipped)
        )

    def _report(self, frame: pd.DataFrame, report: WeatherReport) -> pd.DataFrame:
        self.last = report
        frame.attrs["weather_source"] = report.source
        return frame
