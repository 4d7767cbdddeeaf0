"""``wattplan backtest``: a household profile rolled day by day and settled on actuals."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _backtest(args: argparse.Namespace) -> int:
    from wattplan.household import load_household
    from wattplan.household_backtest import read_actuals_csv, rolling_backtest

    household = load_household(args.household)
    actuals = read_actuals_csv(args.actuals)
    out = rolling_backtest(
        household, actuals, args.start, args.end, tariff_base=Path(args.household).parent
    )
    if args.json:
        json.dump(out.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        for note in out.notes:
            print(f"wattplan: {note}", file=sys.stderr)
        return 0
    tz = household.site.timezone
    print(
        f"{household.name}: {out.days} days, executed {out.start.tz_convert(tz):%Y-%m-%d %H:%M}"
        f" to {out.end.tz_convert(tz):%Y-%m-%d %H:%M} ({tz}), plans at each 14:00 publication"
    )
    labels = {
        "forecast": "own forecasts (base load from usage to D-2, PV persistence)",
        "perfect_forecast": "perfect forecasts (actual base load and PV)",
        "baseline": "baseline (plug-in charging, battery self-consumption, thermostat)",
        "cheapest_slots": "cheapest slots (EV and appliances in their cheapest slots)",
        "bound": "bound (whole period as one plan, perfect foresight)",
    }
    for key, bill in out.bill_eur.items():
        short = out.shortfall_kwh.get(key, 0.0)
        extra = f"  (EV short {short:.1f} kWh)" if short > 0.05 else ""
        print(f"  {bill:10.2f} EUR  {labels[key]}{extra}")
    if out.forecast_error:
        print(
            f"base-load forecast: MAE {out.forecast_error['mae_kwh']:.3f} kWh per interval, "
            f"MASE {out.forecast_error['mase']:.3f} (vs same slot 7 days earlier)"
        )
    for note in out.notes:
        print(f"note: {note}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backtest",
        help="roll a household profile day by day and settle it against actual usage",
        description=(
            "Each day in [start, end) at 14:00 local, plan from then to the end of the "
            "published prices with only what is known then, execute until the next "
            "publication against the actual base load and PV (the grid absorbs the "
            "difference at the real prices), carry the states forward. ACTUALS.csv has "
            "start (ISO 8601 with offset), base_kwh and optionally pv_kwh, outdoor_c (else "
            "the shipped typical year; it stands for the day-ahead temperature forecast) "
            "and quality. "
            "Actuals from another year are shifted onto the period by whole weeks."
        ),
    )
    p.add_argument("household", metavar="HOUSEHOLD.yaml", help="the household profile")
    p.add_argument("--actuals", required=True, metavar="ACTUALS.csv", help="metered actuals")
    p.add_argument("--start", required=True, type=_date, metavar="DATE", help="first day")
    p.add_argument("--end", required=True, type=_date, metavar="DATE", help="end, exclusive")
    p.add_argument("--json", action="store_true", help="print the bills as JSON")
    p.set_defaults(func=_backtest)
