"""Forecasts of a household's base load and PV from its own meter and the weather.

Pure like the optimizer: no HTTP, no database, and no dependency on the optimizer (nor
the optimizer on it). :func:`forecast_base_load` forecasts a window from the history it
is given; :func:`day_ahead_base_load` rolls day by day as the planner does, forecasting
each day D from the usage before local midnight of D−1. :func:`read_usage_csv` reads and
checks the CSV that ``wattplan forecast base-load`` takes; :func:`same_slot_week_before`
is the naive forecast that MASE divides by. :func:`forecast_pv` models PV
from the site and a weather forecast with pvlib, corrected by :func:`fit_pv_correction`
from the site's metered PV; the weather is a DataFrame or an injected
:class:`wattplan.weather.WeatherSource` (which does its own I/O, if any).
"""

from __future__ import annotations

from wattplan._extras import requires as _requires

with _requires("forecast", feature="wattplan.forecast"):
    from wattplan.forecast._baseload import (
        BaseLoadForecast,
        day_ahead_base_load,
        forecast_base_load,
    )
    from wattplan.forecast._io import read_usage_csv, write_forecast_csv
    from wattplan.forecast._metrics import same_slot_week_before
    from wattplan.forecast._pv import (
        PVCorrection,
        PVForecast,
        PVSite,
        fit_pv_correction,
        forecast_pv,
    )

__all__ = [
    "BaseLoadForecast",
    "PVCorrection",
    "PVForecast",
    "PVSite",
    "day_ahead_base_load",
    "fit_pv_correction",
    "forecast_base_load",
    "forecast_pv",
    "read_usage_csv",
    "same_slot_week_before",
    "write_forecast_csv",
]
