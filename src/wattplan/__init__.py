"""wattplan: load-shifting optimization for households on dynamic electricity tariffs.

The optimizer names are imported eagerly (the core has no I/O dependencies); the
edges (Nomos client, sandbox, auth, planner) and the forecasts are imported on first
use, so that ``import wattplan`` stays light and ``wattplan.optimizer`` never loads
httpx or APScheduler.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

from wattplan import exceptions, optimizer
from wattplan.exceptions import *  # noqa: F403
from wattplan.optimizer import *  # noqa: F403

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, see __getattr__)
_LAZY: dict[str, str] = {
    "Settings": "wattplan.settings",
    "AsyncNomosClient": "wattplan.nomos",
    "NomosClient": "wattplan.nomos",
    "ClientCredentialsAuth": "wattplan.auth",
    "Grant": "wattplan.auth",
    "GrantAuth": "wattplan.auth",
    "GrantStatus": "wattplan.auth",
    "OAuthConfig": "wattplan.auth",
    "Token": "wattplan.auth",
    "TokenCipher": "wattplan.auth",
    "TokenManager": "wattplan.auth",
    "TokenVault": "wattplan.auth",
    "create_callback_app": "wattplan.auth",
    "BacktestBattery": "wattplan.backtest",
    "BacktestEV": "wattplan.backtest",
    "BacktestResult": "wattplan.backtest",
    "backtest_ev_battery": "wattplan.backtest",
    "cheapest_hours_schedule": "wattplan.backtest",
    "BaseLoadForecast": "wattplan.forecast",
    "day_ahead_base_load": "wattplan.forecast",
    "forecast_base_load": "wattplan.forecast",
    "PVCorrection": "wattplan.forecast",
    "PVForecast": "wattplan.forecast",
    "PVSite": "wattplan.forecast",
    "fit_pv_correction": "wattplan.forecast",
    "forecast_pv": "wattplan.forecast",
    "Planner": "wattplan.planner",
    "PlanStore": "wattplan.planner",
    "FallbackWeather": "wattplan.weather",
    "OpenMeteoWeather": "wattplan.weather",
    "TypicalYearWeather": "wattplan.weather",
    "WeatherSource": "wattplan.weather",
}

__all__ = sorted(
    [
        *exceptions.__all__,
        *optimizer.__all__,
        *_LAZY,
        "__version__",
    ]
)


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wattplan' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
