"""Small scenarios built inline for the optimizer tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wattplan import Scenario, scenario_from_dict

T0 = pd.Timestamp("2026-01-20T00:00:00+01:00")


def at(hours: float) -> str:
    return (T0 + pd.Timedelta(hours=hours)).isoformat()


def tiny(
    prices: list[float],
    devices: list[dict[str, Any]] | None = None,
    *,
    resolution: str = "60min",
    site: dict[str, Any] | None = None,
    **extra: Any,
) -> Scenario:
    """A scenario of len(prices) slots from T0 with inline all-in prices (ct/kWh)."""
    minutes = int(resolution.removesuffix("min"))
    end = T0 + pd.Timedelta(minutes=minutes * len(prices))
    return scenario_from_dict(
        {
            "name": "tiny",
            "start": T0.isoformat(),
            "end": end.isoformat(),
            "resolution": resolution,
            "prices": {"values": prices},
            "site": site or {},
            "devices": devices or [],
            **extra,
        }
    )
