"""``wattplan forecast base-load``: a rolling day-ahead base-load forecast from a usage CSV."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wattplan.forecast._baseload import day_ahead_base_load
from wattplan.forecast._io import read_usage_csv, write_forecast_csv

__all__ = ["register"]


def _base_load(args: argparse.Namespace) -> int:
    usage = read_usage_csv(args.usage)
    forecast = day_ahead_base_load(
        usage, args.start, args.end, timezone=args.timezone, annual_kwh=args.annual_kwh
    )
    if args.out:
        write_forecast_csv(forecast, args.out)
    else:
        write_forecast_csv(forecast, sys.stdout)
    if forecast.standard_profile_slots:
        print(
            f"wattplan: {forecast.standard_profile_slots} of {len(forecast.kwh)} slots from the"
            f" H25 standard profile scaled to {forecast.annual_kwh:.0f} kWh/a (too little"
            " history)",
            file=sys.stderr,
        )
    return 0


def register(sub: Any) -> None:
    forecast = sub.add_parser(
        "forecast",
        help="forecast a household from its metered usage",
        description="Forecasts from a household's own metered usage.",
    )
    kinds = forecast.add_subparsers(dest="kind", metavar="KIND", required=True)
    p = kinds.add_parser(
        "base-load",
        help="day-ahead base load with P10/P50/P90 per slot",
        description=(
            "For each local day D in [start, end), forecast D from the rows of USAGE.csv"
            " that start before local midnight of D-1, at the input's resolution. USAGE.csv"
            " has the columns start (ISO 8601 with offset or Z) and kwh; rows whose quality"
            " column (if any) is not 'ok' are not trusted. Writes CSV with start, kwh_p10,"
            " kwh_p50 and kwh_p90."
        ),
    )
    p.add_argument("usage", metavar="USAGE.csv", help="metered usage: start,kwh[,quality]")
    p.add_argument("--start", required=True, metavar="DATE", help="first local day (or time)")
    p.add_argument("--end", required=True, metavar="DATE", help="end, exclusive")
    p.add_argument(
        "--timezone", default="Europe/Berlin", help="local time zone (default Europe/Berlin)"
    )
    p.add_argument("--out", metavar="FILE.csv", help="write here instead of to stdout")
    p.add_argument(
        "--annual-kwh",
        type=float,
        metavar="KWH",
        help="annual energy for days with too little history (default: estimated from it)",
    )
    p.set_defaults(func=_base_load)
