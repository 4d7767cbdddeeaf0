"""What a profile-planned customer costs the planner: the daily usage refresh and a re-plan.

For one customer of the shipped profile (``scenarios/households/customer-42.yaml``) on a
SQLite plan store, day by day over ``--days`` days from 2026-01-05:

* **refresh**: :func:`wattplan.planner._usage.refresh_usage` at 16:30, fetching from an
  in-process usage source that serves the BDEW H25 profile (as the sandbox does) with the
  previous days preliminary (so every refresh fetches four weeks again), merging into the
  store, logging the forecast error and storing the next two days' forecast;
* **compose**: ``HouseholdPlanning.scenario`` for the window of the next publication
  (14:30 to midnight after tomorrow): stored forecast, PV forecast, prices;
* **optimize**: ``wattplan.optimize`` on that scenario (for scale).

No HTTP: the figures are the planner's own work per customer and day. Prints the median
and the maximum of each, in milliseconds (the maximum includes the first call's imports of
pvlib and the solver), and the last day's forecast error (tiny: the source is H25 itself).

Run: ``.venv/bin/python benchmarks/household_refresh.py [--days 14]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import wattplan
from wattplan import datasets
from wattplan.household import load_household
from wattplan.planner import Customer, HouseholdPlanning, PlanStore, UsageSettings
from wattplan.planner._usage import refresh_usage

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "scenarios" / "households" / "customer-42.yaml"
TZ = "Europe/Berlin"


class H25Usage:
    """Usage per 15 minutes: H25 at 4000 kWh a year; days within ten days preliminary."""

    def __init__(self) -> None:
        years = [datasets.read_household_load(y, annual_kwh=4000.0) for y in (2025, 2026)]
        kw = pd.concat(years)
        self.kw = kw[~kw.index.duplicated()]

    def fetch_usage(self, customer: Any, *, start: dt.date, end: dt.date) -> pd.DataFrame:
        lo = pd.Timestamp(start).tz_localize(TZ)
        hi = pd.Timestamp(end).tz_localize(TZ)
        kw = self.kw[(self.kw.index >= lo) & (self.kw.index < hi)]
        local_day = pd.DatetimeIndex(kw.index).tz_convert(TZ).date
        final = [d < end - dt.timedelta(days=10) for d in local_day]
        return pd.DataFrame(
            {
                "usage_kwh": kw.to_numpy() * 0.25,
                "type": ["final" if f else "preliminary" for f in final],
            },
            index=pd.DatetimeIndex(kw.index).tz_convert("UTC"),
        )


def _ms(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds) * 1000:7.1f} ms, max {max(seconds) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        store = PlanStore(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        planning = HouseholdPlanning(load_household(PROFILE), customer_id="c", store=store)
        first = dt.date(2026, 1, 5)
        now = pd.Timestamp(first).tz_localize(TZ) + pd.Timedelta(hours=16, minutes=30)
        customer = Customer(id="c", scenario=planning.base_scenario(now), household=planning)
        source = H25Usage()
        spot = datasets.read_day_ahead_prices(
            pd.Timestamp(first, tz=TZ),
            pd.Timestamp(first + dt.timedelta(days=args.days + 3), tz=TZ),
        )
        prices = datasets.all_in_price_ct_per_kwh(spot).tz_convert("UTC")
        refresh, compose, solve = [], [], []
        for i in range(args.days):
            day = first + dt.timedelta(days=i)
            at = pd.Timestamp(day).tz_localize(TZ)
            t = time.perf_counter()
            moment = (at + pd.Timedelta(hours=16, minutes=30)).to_pydatetime()
            ok = refresh_usage(customer, planning, source, moment, UsageSettings())
            refresh.append(time.perf_counter() - t)
            assert ok
            lo = at + pd.Timedelta(days=1, hours=14, minutes=30)
            hi = (at + pd.Timedelta(days=3)).tz_convert(TZ).normalize()
            window = prices[(prices.index >= lo) & (prices.index < hi)]
            t = time.perf_counter()
            scenario = planning.scenario(lo.to_pydatetime(), hi.to_pydatetime(), prices=window)
            compose.append(time.perf_counter() - t)
            t = time.perf_counter()
            plan = wattplan.optimize(scenario, prices=window)
            solve.append(time.perf_counter() - t)
            assert plan.status.value in ("optimal", "feasible_with_shortfall")
        errors = store.forecast_errors("c")
        rows = len(store.usage_history("c"))
        store.dispose()
    print(f"profile-planned customer, {args.days} days from {first}, SQLite store")
    print(f"  refresh (fetch 4 weeks, merge, forecast, store): {_ms(refresh)}")
    print(f"  compose a re-plan's scenario:                    {_ms(compose)}")
    print(f"  optimize it (for scale):                         {_ms(solve)}")
    print(f"  history rows stored: {rows}; days with a logged forecast error: {len(errors)}")
    if errors:
        last = sorted(errors)[-1]
        print(f"  forecast error on {last}: MAE {errors[last]:.4f} kWh per 15 minutes")


if __name__ == "__main__":
    main()
