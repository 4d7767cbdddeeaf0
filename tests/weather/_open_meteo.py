"""A local server that speaks Open-Meteo's forecast API format (``/v1/forecast``).

It answers like api.open-meteo.com does for ``timezone=GMT``: ``hourly.time`` as
``YYYY-MM-DDTHH:MM`` in GMT from ``start_date`` 00:00 to ``end_date`` 23:00, one list per
asked variable, radiation as the mean of the preceding hour. Values are functions of the
labelled hour (:func:`radiation`, :func:`temperature`) so tests can compute what the
client must make of them. ``mode`` switches on the failures the real service shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wattplan.weather import OpenMeteoWeather


def _hours(label: pd.Timestamp) -> int:
    return int(label.timestamp()) // 3600


def radiation(label: pd.Timestamp, variable: str) -> float:
    """W/m² labelled ``label`` (the mean of the hour before it)."""
    scale = {"shortwave_radiation": 1.0, "direct_normal_irradiance": 1.5, "diffuse_radiation": 0.3}
    return round(scale[variable] * (_hours(label) % 97), 1)


def temperature(label: pd.Timestamp) -> float:
    """°C at the instant ``label``."""
    return round((_hours(label) % 50) / 2.0 - 5.0, 1)


def wind(label: pd.Timestamp) -> float:
    return round((_hours(label) % 7) * 0.5, 1)


@dataclass
class OpenMeteoState:
    mode: str = "normal"
    retry_after: str = "120"
    requests: list[dict[str, str]] = field(default_factory=list)


def _value(variable: str, label: pd.Timestamp) -> float:
    if variable == "temperature_2m":
        return temperature(label)
    if variable == "wind_speed_10m":
        return wind(label)
    return radiation(label, variable)


def app(state: OpenMeteoState) -> Starlette:
    async def forecast(request: Request) -> Response:
        params = dict(request.query_params)
        state.requests.append(params)
        mode = state.mode
        if mode == "429":
            return JSONResponse(
                {
                    "error": True,
                    "reason": "Minutely API request limit exceeded. "
                    "Please try again in one minute.",
                },
                status_code=429,
                headers={"retry-after": state.retry_after},
            )
        if mode == "500":
            return Response("upstream timeout", status_code=502)
        if params.get("timezone") != "GMT":
            return JSONResponse({"error": True, "reason": "this server only speaks GMT"}, 400)
        try:
            first = date.fromisoformat(params["start_date"])
            last = date.fromisoformat(params["end_date"])
        except (KeyError, ValueError):
            return JSONResponse(
                {"error": True, "reason": "Parameter 'start_date' is invalid"}, status_code=400
            )
        if mode == "range" or (last - first).days > 20:
            return JSONResponse(
                {
                    "error": True,
                    "reason": "Parameter 'end_date' is out of allowed range from "
                    f"2026-01-01 to {first + timedelta(days=15)}",
                },
                status_code=400,
            )
        variables = params.get("hourly", "").split(",")
        labels = pd.date_range(
            datetime(first.year, first.month, first.day),
            datetime(last.year, last.month, last.day, 23),
            freq="h",
            tz="UTC",
        )
        hourly: dict[str, list[object]] = {"time": [t.strftime("%Y-%m-%dT%H:%M") for t in labels]}
        units: dict[str, str] = {"time": "iso8601"}
        for variable in variables:
            if mode == f"missing:{variable}":
                continue
            values: list[object] = [_value(variable, t) for t in labels]
            if mode == f"nulls:{variable}":
                values[len(values) // 2] = None
            hourly[variable] = values
            units[variable] = "°C" if variable == "temperature_2m" else "W/m²"
        body = {
            "latitude": float(params["latitude"]),
            "longitude": float(params["longitude"]),
            "generationtime_ms": 0.5,
            "utc_offset_seconds": 0,
            "timezone": "GMT",
            "timezone_abbreviation": "GMT",
            "elevation": 34.0,
            "hourly_units": units,
            "hourly": hourly,
        }
        text = json.dumps(body)
        if mode == "malformed":
            return Response(text[: len(text) // 2], media_type="application/json")
        if mode == "html":
            return Response("<html>maintenance</html>", media_type="text/html")
        return Response(text, media_type="application/json")

    return Starlette(routes=[Route("/v1/forecast", forecast, methods=["GET"])])


def source(base_url: str) -> OpenMeteoWeather:
    return OpenMeteoWeather(latitude=52.39, longitude=13.06, base_url=base_url, timeout_s=10)
