"""Forecasts of a household's base load from its own metered usage.

Pure like the optimizer: no HTTP, no database, and no dependency on the optimizer (nor
the optimizer on it). :func:`forecast_base_load` forecasts a window from the history it
is given; :func:`day_ahead_base_load` rolls day by day as the planner does, forecasting
each day D from the usage before local midnight of D−1. :func:`read_usage_csv` reads and
checks the CSV that ``wattplan forecast base-load`` takes.
"""

from __future__ import annotations

from wattplan.forecast._baseload import BaseLoadForecast, day_ahead_base_load, forecast_base_load
from wattplan.forecast._io import read_usage_csv, write_forecast_csv

__all__ = [
    "BaseLoadForecast",
    "day_ahead_base_load",
    "forecast_base_load",
    "read_usage_csv",
    "write_forecast_csv",
]
