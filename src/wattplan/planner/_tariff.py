"""A customer's all-in prices as a tariff feed: evcc's custom-tariff forecast, or plain JSON.

evcc (``tariffs: grid: type: custom, forecast: source: http``) reads a JSON array of
``{"start", "end", "value"}`` rows: RFC 3339 times and a price in the tariff's currency
per kWh. The rows here are in UTC (``Z``), so a 23- or 25-hour local day needs no special
case, and contiguous: each row ends where the next begins. The feed starts at the slot that
runs now and stops before the first missing price or gap, since evcc would read a gap as
unknown prices anyway and a silently bridged hole would be a wrong price.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

__all__ = ["evcc_forecast", "tariff_slots"]


def _utc(ts: pd.Timestamp | datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tariff_slots(
    prices_ct_per_kwh: pd.Series,
    *,
    now: datetime,
    default_slot: timedelta,
    timezone: str = "Europe/Berlin",
) -> list[dict[str, Any]]:
    """Contiguous price slots from the one containing ``now`` (UTC ``start``/``end``).

    Each row holds ``start``, ``end`` (ISO 8601, ``Z``), ``price_ct_per_kwh`` and
    ``price_eur_per_kwh``. Prices are published per local day at one resolution (15 or
    60 minutes): a day's slot length is the shortest step between its prices
    (``default_slot`` for a day with one price), so hourly and quarter-hourly days, and a
    curve that switches between them, come out right. A missing slot or price ends the
    feed. ``now`` must be tz-aware.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be tz-aware")
    index = pd.DatetimeIndex(prices_ct_per_kwh.index)
    if index.tz is None:
        raise ValueError("the prices need a tz-aware index")
    series = pd.Series(
        pd.to_numeric(prices_ct_per_kwh, errors="coerce").to_numpy(dtype=float),
        index=index.tz_convert(UTC),
    )
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if series.empty:
        return []
    utc_index = pd.DatetimeIndex(series.index)
    days = utc_index.tz_convert(timezone).normalize()
    steps = pd.Series(utc_index, index=utc_index).diff().shift(-1)  # to the next price
    slot = steps.groupby(days.to_numpy()).transform("min").fillna(pd.Timedelta(default_slot))
    moment = pd.Timestamp(now).tz_convert(UTC)
    rows: list[dict[str, Any]] = []
    for start, step, length, value in zip(
        utc_index, steps.to_numpy(), slot.to_numpy(), series.to_numpy(), strict=True
    ):
        end = start + pd.Timedelta(length)
        if end <= moment:
            continue
        if not math.isfinite(value):  # a missing price ends the feed (or precedes it)
            if rows or start > moment:
                break
            continue
        rows.append(
            {
                "start": _utc(start),
                "end": _utc(end),
                "price_ct_per_kwh": round(float(value), 6),
                "price_eur_per_kwh": round(float(value) / 100.0, 8),
            }
        )
        if not pd.isna(step) and pd.Timedelta(step) != end - start:
            break  # the next price is further away than one slot: a hole
    return rows


def evcc_forecast(slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows evcc's custom tariff reads: ``start``, ``end`` and ``value`` in EUR/kWh."""
    return [{"start": s["start"], "end": s["end"], "value": s["price_eur_per_kwh"]} for s in slots]
