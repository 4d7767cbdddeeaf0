"""Pure parsers: HTTP bodies and Nomos payloads → models, pandas and typed errors.

No I/O here; :class:`wattplan.nomos.NomosClient` feeds these functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

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
from wattplan.nomos._models import Prices, Usage

__all__ = [
    "expected_slots",
    "parse_error",
    "parse_json",
    "parse_model",
    "parse_prices",
    "parse_retry_after_s",
    "parse_usage",
    "prices_to_frame",
    "prices_to_series",
    "usage_to_frame",
]

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
_MAX_MESSAGE = 300
_COMPONENTS = ("electricity", "grid", "levies")


def parse_json(content: bytes, content_type: str | None) -> Any:
    """The JSON document of a successful response, or :class:`MalformedResponseError`."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise MalformedResponseError(f"expected JSON, got content type {media or 'none'!r}")
    if not content:
        raise MalformedResponseError("empty response body")
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponseError(
            f"response body is not valid JSON ({len(content)} bytes; truncated?)"
        ) from exc


def parse_model(model: type[M], payload: Any, what: str) -> M:
    """Validate ``payload`` as ``model``; :class:`MalformedResponseError` if it is off-schema."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MalformedResponseError(f"{what}: {where or 'body'}: {first.get('msg')}") from exc


def parse_retry_after_s(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after`` (seconds or HTTP date) or ``ratelimit-reset``."""
    for name in ("retry-after", "ratelimit-reset"):
        raw = headers.get(name)
        if raw is None:
            continue
        raw = raw.strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            continue
        if now is not None and when.tzinfo is not None:
            return max(0.0, (when - now).total_seconds())
    return None


def parse_error(
    status_code: int, content: bytes, headers: Mapping[str, str], *, now: datetime | None = None
) -> NomosAPIError:
    """Map an error answer to the exception tree (flat body, or the older shapes)."""
    body: dict[str, Any] = {}
    try:
        data = json.loads(content) if content else {}
        if isinstance(data, dict):
            nested = data.get("error")
            body = nested if isinstance(nested, dict) else data  # {"error": {...}} (old docs)
    except (ValueError, UnicodeDecodeError):
        body = {}
    code = body.get("code") or body.get("type")
    code = str(code) if code is not None else None
    message = str(body.get("message") or body.get("error_description") or "no error body")
    message = message[:_MAX_MESSAGE]
    request_id = body.get("requestId") or body.get("request_id") or headers.get("x-request-id")
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    kw: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "request_id": str(request_id) if request_id else None,
        "docs": str(body["docs"]) if body.get("docs") else None,
        "errors": errors,
    }
    if status_code == 429:
        return RateLimitedError(message, retry_after_s=parse_retry_after_s(headers, now=now), **kw)
    classes: dict[int, type[NomosAPIError]] = {
        400: BadRequestError,
        422: BadRequestError,
        401: UnauthorizedError,
        403: ForbiddenError,
        404: NotFoundError,
    }
    cls = classes.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else NomosAPIError
    return cls(message, **kw)


def parse_prices(payload: Any) -> Prices:
    """Validate a price payload (tolerant: ``60min``/``hourly``, null amounts, null items)."""
    prices = parse_model(Prices, payload, "prices")
    try:
        prices.resolution_minutes  # noqa: B018 - validates the value
    except ValueError as exc:
        raise MalformedResponseError(str(exc)) from exc
    return prices


def expected_slots(start: date, end: date, *, step_min: int, tz: str) -> pd.DatetimeIndex:
    """UTC slot starts of the local days ``start``..``end`` (inclusive)."""
    zone = ZoneInfo(tz)
    lo = pd.Timestamp(datetime.combine(start, time(), zone))
    hi = pd.Timestamp(datetime.combine(end + timedelta(days=1), time(), zone))
    idx = pd.date_range(
        lo.tz_convert("UTC"), hi.tz_convert("UTC"), freq=f"{step_min}min", inclusive="left"
    )
    return pd.DatetimeIndex(idx, name="start")


def _slot_rows(prices: Prices, start: date, end: date, tz: str) -> tuple[pd.DatetimeIndex, Any]:
    """The expected slots and, per slot, the position of its item in ``prices.items`` (-1
    where none). Items outside the requested days are ignored; the first item (in the
    payload's order) off the grid or on a slot taken already is an error naming it."""
    if prices.items is None:
        raise NomosError(
            f"subscription {prices.subscription} is not active: Nomos sends no prices for it"
        )
    unit = prices.unit.replace(" ", "").lower()
    if unit not in ("ct/kwh", "ct/kwh."):
        raise MalformedResponseError(f"unexpected price unit {prices.unit!r} (want ct/kWh)")
    step = prices.resolution_minutes
    expected = expected_slots(start, end, step_min=step, tz=tz)
    rows = np.full(len(expected), -1, dtype=np.int64)
    items = prices.items
    if not items:
        return expected, rows
    lo, hi = expected[0], expected[-1] + pd.Timedelta(minutes=step)
    stamps = pd.DatetimeIndex(pd.to_datetime([item.timestamp for item in items], utc=True))
    inside = np.asarray((stamps >= lo) & (stamps < hi))
    if not inside.all() and logger.isEnabledFor(logging.DEBUG):
        for ts in stamps[~inside]:
            logger.debug("ignoring a price item outside the requested days: %s", ts)
    kept = stamps[inside]
    slots = np.asarray(expected.get_indexer(kept))
    off = slots < 0
    twice = pd.Series(slots).duplicated().to_numpy() & ~off
    if off.any() or twice.any():
        first = int(np.argmax(off | twice))
        ts = kept[first]
        if off[first]:
            raise MalformedResponseError(
                f"price item at {ts.isoformat()} is off the {step}-minute grid"
            )
        raise MalformedResponseError(f"price item at {ts.isoformat()} appears twice")
    rows[slots] = np.flatnonzero(inside)
    return expected, rows


def _filled_rows(
    prices: Prices, start: date, end: date, tz: str
) -> tuple[pd.DatetimeIndex, list[int], list[float]]:
    """The expected slots, the position of each one's item and its amount; an error unless
    every expected slot has an item with an amount (see :func:`prices_to_frame`)."""
    expected, rows = _slot_rows(prices, start, end, tz)
    amounts = [item.amount_ct_per_kwh for item in prices.items or ()]
    have = rows >= 0
    nulls_at = np.zeros(len(expected), dtype=bool)
    nulls_at[have] = [amounts[k] is None for k in rows[have].tolist()]
    if have.all() and not nulls_at.any():
        positions = rows.tolist()
        return expected, positions, [float(amounts[k]) for k in positions]
    missing = list(expected[~have])
    nulls = list(expected[nulls_at])
    absent = sorted(set(missing) | set(nulls))
    tail = expected[expected >= absent[0]]
    local = absent[0].tz_convert(tz)
    if len(tail) == len(absent):
        raise PricesNotPublishedError(
            f"prices from {local.isoformat()} on are not published yet "
            f"({len(absent)} of {len(expected)} slots missing)"
        )
    if missing:
        raise MalformedResponseError(
            f"{len(missing)} price slots missing inside the series "
            f"(first at {missing[0].tz_convert(tz).isoformat()})"
        )
    raise PricesNotPublishedError(
        f"{len(nulls)} price slots have no amount yet (first at "
        f"{nulls[0].tz_convert(tz).isoformat()})"
    )


def prices_to_frame(
    prices: Prices, *, start: date, end: date, tz: str = "Europe/Berlin"
) -> pd.DataFrame:
    """All-in price and its components per slot, complete or an error.

    Columns ``price_ct_per_kwh``, ``electricity_ct_per_kwh``, ``grid_ct_per_kwh``,
    ``levies_ct_per_kwh``; index: tz-aware UTC slot starts with a regular 15- or
    60-minute frequency, covering the local days ``start``..``end`` exactly.

    Raises
    ------
    PricesNotPublishedError
        Slots at the end of the range are missing or have ``amount: null`` (tomorrow's
        prices are not out yet), or some slots have ``amount: null``.
    MalformedResponseError
        Slots are missing in the middle, duplicated or off the grid, or the unit is wrong.
    NomosError
        The subscription is not active (``items: null``).
    """
    expected, rows, amounts = _filled_rows(prices, start, end, tz)
    items = prices.items or ()
    chosen = [items[k] for k in rows]
    data: dict[str, list[float]] = {"price_ct_per_kwh": amounts}
    for kind in _COMPONENTS:
        values = [r.component(kind) for r in chosen]
        data[f"{kind}_ct_per_kwh"] = [float("nan") if v is None else float(v) for v in values]
    frame = pd.DataFrame(data, index=expected)
    return frame


def prices_to_series(
    prices: Prices, *, start: date, end: date, tz: str = "Europe/Berlin"
) -> pd.Series:
    """The all-in price per slot as ``price_ct_per_kwh`` (see :func:`prices_to_frame`)."""
    # the frame's column without the components, which nobody reads here
    expected, _, amounts = _filled_rows(prices, start, end, tz)
    return pd.Series(amounts, index=expected, name="price_ct_per_kwh", dtype=float)


def parse_usage(payload: Any) -> Usage:
    return parse_model(Usage, payload, "usage")


def usage_to_frame(usage: Usage) -> pd.DataFrame:
    """``usage_kwh`` and ``type`` (final/preliminary) per interval, UTC index ``start``."""
    index = pd.DatetimeIndex(
        [pd.Timestamp(p.start).tz_convert("UTC") for p in usage.data], name="start"
    )
    if len(usage.data) == 0:
        index = pd.DatetimeIndex([], tz="UTC", name="start")
    return pd.DataFrame(
        {
            "usage_kwh": [float(p.usage_kwh) for p in usage.data],
            "type": [p.type for p in usage.data],
        },
        index=index,
    )
