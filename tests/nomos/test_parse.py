"""Pure parsers: payloads in, models / pandas / typed errors out (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from wattplan.exceptions import (
    BadRequestError,
    ForbiddenError,
    MalformedResponseError,
    NomosAPIError,
    NomosError,
    NotFoundError,
    PricesNotPublishedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
)
from wattplan.nomos import (
    expected_slots,
    parse_error,
    parse_json,
    parse_prices,
    prices_to_frame,
    prices_to_series,
)
from wattplan.nomos._parse import parse_retry_after_s


def _payload(
    day: date, *, step: int = 15, resolution: str = "15min", end: date | None = None
) -> dict[str, Any]:
    slots = expected_slots(day, end or day, step_min=step, tz="Europe/Berlin")
    items = [
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": 20.0 + i / 100,
            "components": [
                {"type": "electricity", "amount": 5.0 + i / 100},
                {"type": "grid", "amount": 9.0},
                {"type": "levies", "amount": 6.0},
            ],
        }
        for i, ts in enumerate(slots)
    ]
    return {
        "object": "price",
        "subscription": "sub_x",
        "period": {"start": day.isoformat(), "end": (end or day).isoformat()},
        "unit": "ct/kWh",
        "currency": "EUR",
        "resolution": resolution,
        "reference": "EPEX",
        "items": items,
    }


def _series(payload: dict[str, Any], day: date, end: date | None = None) -> pd.Series:
    return prices_to_series(parse_prices(payload), start=day, end=end or day)


@pytest.mark.parametrize(
    ("day", "count"), [(date(2025, 10, 26), 100), (date(2026, 3, 29), 92), (date(2026, 1, 20), 96)]
)
def test_series_of_a_local_day(day: date, count: int) -> None:
    series = _series(_payload(day), day)
    assert len(series) == count
    assert series.name == "price_ct_per_kwh"
    assert str(series.index.tz) == "UTC"
    assert series.index.freq == pd.Timedelta(minutes=15)
    assert series.dtype == float
    local = series.index.tz_convert("Europe/Berlin")
    assert local[0].date() == day
    assert (local[0].hour, local[-1].hour, local[-1].minute) == (0, 23, 45)


@pytest.mark.parametrize("label", ["hourly", "60min", "hour"])
def test_hourly_labels_are_all_understood(label: str) -> None:
    day = date(2025, 6, 11)
    series = _series(_payload(day, step=60, resolution=label), day)
    assert len(series) == 24
    assert series.index.freq == pd.Timedelta(hours=1)


def test_frame_has_the_components() -> None:
    day = date(2026, 1, 20)
    frame = prices_to_frame(parse_prices(_payload(day)), start=day, end=day)
    assert list(frame.columns) == [
        "price_ct_per_kwh",
        "electricity_ct_per_kwh",
        "grid_ct_per_kwh",
        "levies_ct_per_kwh",
    ]
    assert frame["grid_ct_per_kwh"].eq(9.0).all()


def test_missing_tail_is_not_published() -> None:
    today, tomorrow = date(2026, 11, 27), date(2026, 11, 28)
    payload = _payload(today, end=tomorrow)
    payload["items"] = payload["items"][:96]  # tomorrow left out
    with pytest.raises(PricesNotPublishedError, match="not published yet") as info:
        _series(payload, today, tomorrow)
    assert info.value.transient


def test_null_tail_is_not_published() -> None:
    today, tomorrow = date(2026, 11, 27), date(2026, 11, 28)
    payload = _payload(today, end=tomorrow)
    for item in payload["items"][96:]:
        item["amount"] = None
    with pytest.raises(PricesNotPublishedError):
        _series(payload, today, tomorrow)


def test_empty_items_are_not_published() -> None:
    day = date(2026, 11, 29)
    payload = _payload(day)
    payload["items"] = []
    with pytest.raises(PricesNotPublishedError):
        _series(payload, day)


def test_a_hole_in_the_middle_is_malformed_not_a_shorter_series() -> None:
    day = date(2026, 1, 20)
    payload = _payload(day)
    del payload["items"][40:42]
    with pytest.raises(MalformedResponseError, match="2 price slots missing"):
        _series(payload, day)


def test_a_null_in_the_middle_is_not_available_yet() -> None:
    day = date(2026, 1, 20)
    payload = _payload(day)
    payload["items"][10]["amount"] = None
    with pytest.raises(PricesNotPublishedError, match="no amount"):
        _series(payload, day)


def test_duplicates_and_off_grid_items_are_malformed() -> None:
    day = date(2026, 1, 20)
    payload = _payload(day)
    payload["items"][5] = dict(payload["items"][4])
    with pytest.raises(MalformedResponseError, match="twice"):
        _series(payload, day)
    payload = _payload(day)
    payload["items"][5]["timestamp"] = "2026-01-20T00:20:00Z"
    with pytest.raises(MalformedResponseError, match="off the 15-minute grid"):
        _series(payload, day)


def test_wrong_resolution_claim_is_caught() -> None:
    day = date(2026, 1, 20)
    payload = _payload(day, step=60, resolution="15min")
    with pytest.raises(MalformedResponseError):
        _series(payload, day)


def test_items_outside_the_days_are_ignored() -> None:
    day = date(2026, 1, 20)
    payload = _payload(day, end=day + timedelta(days=1))
    assert len(_series(payload, day)) == 96


def test_inactive_subscription() -> None:
    payload = _payload(date(2026, 1, 20))
    payload["items"] = None
    prices = parse_prices(payload)
    assert prices.items is None
    with pytest.raises(NomosError, match="not active"):
        prices_to_series(prices, start=date(2026, 1, 20), end=date(2026, 1, 20))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"resolution": "5min"}, "resolution"),
        ({"unit": "EUR/MWh"}, "unit"),
        (
            {"items": [{"timestamp": "2026-01-20T00:00:00", "amount": 1, "components": []}]},
            "time zone",
        ),
        ({"items": "nope"}, "items"),
    ],
)
def test_off_schema_payloads(change: dict[str, Any], match: str) -> None:
    day = date(2026, 1, 20)
    payload = {**_payload(day), **change}
    with pytest.raises(MalformedResponseError, match=match):
        prices_to_series(parse_prices(payload), start=day, end=day)


def test_parse_json_rejects_what_is_not_json() -> None:
    assert parse_json(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    with pytest.raises(MalformedResponseError, match="content type"):
        parse_json(b'{"a": 1}', "text/html")
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        parse_json(b'{"a": [1, 2', "application/json")
    with pytest.raises(MalformedResponseError, match="empty"):
        parse_json(b"", "application/json")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
        (402, NomosAPIError),
    ],
)
def test_flat_errors_map_to_the_tree(status: int, cls: type[NomosAPIError]) -> None:
    body = {
        "code": "X",
        "message": "m",
        "requestId": "req-1",
        "docs": "https://docs",
        "errors": [{"code": "invalid_type", "field": "end", "message": "Required"}],
    }
    error = parse_error(status, json.dumps(body).encode(), {"retry-after": "7"})
    assert type(error) is cls
    assert error.request_id == "req-1"
    assert error.status_code == status
    assert error.errors[0]["field"] == "end"
    assert "req-1" in str(error)
    if isinstance(error, RateLimitedError):
        assert error.retry_after_s == 7.0
    assert error.transient == (status in (429, 500, 503))


def test_older_error_shapes_and_no_body() -> None:
    nested = {"error": {"code": "UNAUTHORIZED", "message": "no", "requestId": "r2"}}
    error = parse_error(401, json.dumps(nested).encode(), {})
    assert (error.code, error.request_id) == ("UNAUTHORIZED", "r2")
    typed = {
        "object": "error",
        "type": "unauthenticated",
        "message": "The access token is expired.",
    }
    error = parse_error(401, json.dumps(typed).encode(), {})
    assert error.code == "unauthenticated"
    error = parse_error(502, b"<html>Bad gateway</html>", {})
    assert isinstance(error, ServerError)


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_retry_after_s({"retry-after": "3"}) == 3.0
    assert parse_retry_after_s({"ratelimit-reset": "2"}) == 2.0
    assert parse_retry_after_s({"retry-after": "Sat, 28 Nov 2026 12:00:05 GMT"}, now=now) == 5.0
    assert parse_retry_after_s({}) is None
