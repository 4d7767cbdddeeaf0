"""The PV household planned day by day over a year: savings are differences of valued bills.

Acceptance check of the optimizer's end-state valuation on the shipped data: a household
with 8 kWp PV (south 35°, Potsdam typical year), a 10 kWh home battery (5 kW, 1 kWh floor),
a car at an 11 kW wallbox from 18:00 to 07:00 every night that needs 12 kWh and may take up
to ``EV_MAX_KWH``, the BDEW H25 load (4000 kWh/a) and a feed-in of 7.78 ct/kWh, on DE-LU
day-ahead prices as a Nomos-like all-in price. Every local day of the year is planned on
its own window from noon to noon (23 or 25 hours across a DST change) with the defaults
otherwise (the terminal price is the optimizer's default); the battery's charge at the end
of one plan is the next one's start.

For every plan the two valued bills are recomputed by hand from the two schedules (plan
and baseline)::

    valued bill = Σ Δ·(price·import − feed_in·export) / 100 − end value
    end value   = (battery SoC at the end − soc_min)·η_discharge·p_battery / 100
                + (EV energy of the session above its floor, up to its ceiling)·p_ev / η_ev / 100

with the terminal prices ``p`` that the plan reports, and compared with the reported
``savings_eur``. The script prints the number of optimal plans, how many of them report a
negative saving (and how many had a feasible baseline), the largest daily difference
between the reported saving and the difference of the valued bills, and the year's sums.

Run: ``.venv/bin/python benchmarks/pv_household_year.py [--first 2025-01-01 --last 2025-12-31]``
(about 3 minutes). ``tests/test_pv_household.py`` runs the same check on two weeks.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import wattplan
from wattplan import datasets
from wattplan.planner._household import _load, _series

BERLIN = ZoneInfo("Europe/Berlin")
PV_KWP = 8.0
FEED_IN_CT = 7.78
BATTERY_SOC_MIN_KWH = 1.0
BATTERY_ETA_D = 0.95
EV_ETA = 0.92
EV_NEED_KWH = 12.0
EV_MAX_KWH = 24.0  # the session's ceiling: energy above the 12 kWh is optional


def _at(day: date, at: clock) -> datetime:
    return datetime.combine(day, at, tzinfo=BERLIN)


def household(day: date, battery_soc_kwh: float) -> Any:
    """The household for the window from noon on ``day`` to noon the day after."""
    start, end = _at(day, clock(12)), _at(day + timedelta(days=1), clock(12))
    weather = datasets.read_weather(pd.Timestamp(start), pd.Timestamp(end))
    session = {
        "plug_in": _at(day, clock(18)).isoformat(),
        "departure": _at(day + timedelta(days=1), clock(7)).isoformat(),
        "energy_kwh": EV_NEED_KWH,
        "max_energy_kwh": EV_MAX_KWH,
    }
    return wattplan.scenario_from_dict(
        {
            "name": "pv-household",
            "timezone": "Europe/Berlin",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": "15min",
            "site": {
                "feed_in_ct_per_kwh": FEED_IN_CT,
                "base_load": _series(_load(start, end, 4000.0)),
                "pv": _series(weather["pv_south35_kw_per_kwp"] * PV_KWP),
            },
            "devices": [
                {
                    "kind": "ev",
                    "name": "car",
                    "max_power_kw": 11,
                    "efficiency": EV_ETA,
                    "sessions": [session],
                },
                {
                    "kind": "battery",
                    "name": "home-battery",
                    "capacity_kwh": 10,
                    "soc_kwh": battery_soc_kwh,
                    "soc_min_kwh": BATTERY_SOC_MIN_KWH,
                    "max_charge_kw": 5,
                    "max_discharge_kw": 5,
                    "discharge_efficiency": BATTERY_ETA_D,
                },
            ],
        }
    )


def prices(day: date) -> pd.Series:
    spot = datasets.read_day_ahead_prices(
        pd.Timestamp(_at(day, clock(12))), pd.Timestamp(_at(day + timedelta(days=1), clock(12)))
    )
    return datasets.all_in_price_ct_per_kwh(spot)


def valued_bill_eur(schedule: pd.DataFrame, terminal: dict[str, float]) -> float:
    """Bill less the value of the end state, recomputed from a schedule alone, EUR."""
    step_h = pd.DatetimeIndex(schedule.index).to_series().diff().dt.total_seconds().iloc[1:] / 3600
    assert np.allclose(step_h, 0.25), "quarter-hours"
    dt = 0.25
    bill = dt * (
        schedule["price_ct_per_kwh"] * schedule["grid_import_kw"]
        - schedule["feed_in_ct_per_kwh"] * schedule["grid_export_kw"]
    )
    soc_end = float(schedule["home-battery_soc_kwh"].iloc[-1])
    battery = (soc_end - BATTERY_SOC_MIN_KWH) * BATTERY_ETA_D * terminal["home-battery"]
    delivered = float(schedule["car_kw"].sum()) * EV_ETA * dt  # one session per window
    extra = min(max(0.0, delivered - EV_NEED_KWH), EV_MAX_KWH - EV_NEED_KWH)
    ev = extra * terminal["car"] / EV_ETA
    return float(bill.sum()) / 100.0 - (battery + ev) / 100.0


@dataclass(frozen=True)
class DayCheck:
    day: date
    slots: int
    status: str
    baseline_feasible: bool
    savings_eur: float  # as reported
    valued_difference_eur: float  # valued bill of the baseline less that of the plan
    terminal_ct: float
    quartile_ct: float  # lower quartile of the window's import prices (the default terminal price)
    seconds: float

    @property
    def error_eur(self) -> float:
        return abs(self.savings_eur - self.valued_difference_eur)


def check_days(first: date, last: date, battery_soc_kwh: float = 5.0) -> list[DayCheck]:
    """Plan every day from ``first`` to ``last`` (inclusive) and recompute its saving."""
    out: list[DayCheck] = []
    soc = battery_soc_kwh
    day = first
    while day <= last:
        t0 = time.perf_counter()
        plan = wattplan.optimize(household(day, soc), prices=prices(day))
        seconds = time.perf_counter() - t0
        price = plan.baseline_schedule["price_ct_per_kwh"].to_numpy()
        diff = float("nan")
        if plan.ok:
            terminal = plan.terminal_prices_ct_per_kwh
            diff = valued_bill_eur(plan.baseline_schedule, terminal) - valued_bill_eur(
                plan.schedule, terminal
            )
            soc = float(plan.schedule["home-battery_soc_kwh"].iloc[-1])
        out.append(
            DayCheck(
                day=day,
                slots=len(plan.baseline_schedule),
                status=plan.status.value,
                baseline_feasible=plan.baseline_feasible,
                savings_eur=plan.savings_eur,
                valued_difference_eur=diff,
                terminal_ct=plan.terminal_prices_ct_per_kwh["site"],
                quartile_ct=float(np.percentile(price, 25)),
                seconds=seconds,
            )
        )
        day += timedelta(days=1)
    return out


@dataclass(frozen=True)
class Summary:
    days: int
    optimal: int
    optimal_baseline_feasible: int
    negative: int  # optimal plans with a saving below −1e-6 EUR
    negative_baseline_feasible: int
    max_error_eur: float  # largest |reported saving − valued-bill difference| of a day
    savings_eur: float
    valued_difference_eur: float
    statuses: dict[str, int]
    seconds: float


def summarize(checks: list[DayCheck]) -> Summary:
    optimal = [c for c in checks if c.status == "optimal"]
    negative = [c for c in optimal if c.savings_eur < -1e-6]
    ok = [c for c in checks if np.isfinite(c.valued_difference_eur)]
    statuses: dict[str, int] = {}
    for c in checks:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    return Summary(
        days=len(checks),
        optimal=len(optimal),
        optimal_baseline_feasible=sum(c.baseline_feasible for c in optimal),
        negative=len(negative),
        negative_baseline_feasible=sum(c.baseline_feasible for c in negative),
        max_error_eur=max((c.error_eur for c in ok), default=0.0),
        savings_eur=sum(c.savings_eur for c in ok),
        valued_difference_eur=sum(c.valued_difference_eur for c in ok),
        statuses=statuses,
        seconds=sum(c.seconds for c in checks),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", default="2025-01-01", help="first day, YYYY-MM-DD")
    parser.add_argument("--last", default="2025-12-31", help="last day, YYYY-MM-DD")
    args = parser.parse_args()
    first, last = date.fromisoformat(args.first), date.fromisoformat(args.last)
    checks = check_days(first, last)
    s = summarize(checks)
    print(f"PV household planned day by day, {first} to {last} (noon to noon)")
    print(f"  {datasets.PRICE_ATTRIBUTION}")
    print(f"  plans                          {s.days:8d}  {s.statuses}")
    print(
        f"  optimal plans                  {s.optimal:8d}  "
        f"({s.optimal_baseline_feasible} with a feasible baseline)"
    )
    print(
        f"  negative savings (< -1e-6 EUR) {s.negative:8d}  "
        f"({s.negative_baseline_feasible} with a feasible baseline)"
    )
    print(f"  max |saving - valued diff|     {s.max_error_eur:8.2e} EUR a day (limit 0.01)")
    print(f"  sum of reported savings        {s.savings_eur:8.2f} EUR")
    print(f"  sum of valued-bill differences {s.valued_difference_eur:8.2f} EUR")
    dst = [c for c in checks if c.slots != 96]
    print(f"  DST days (slots)               {', '.join(f'{c.day} ({c.slots})' for c in dst)}")
    worst = min(checks, key=lambda c: c.savings_eur)
    print(f"  smallest saving                {worst.savings_eur:8.4f} EUR on {worst.day}")
    default = max(abs(c.terminal_ct - max(0.0, c.quartile_ct)) for c in checks)
    print(f"  terminal price vs 25th pct    {default:8.2e} ct/kWh (largest difference)")
    print(
        f"  time                           {s.seconds:8.1f} s ({s.seconds / s.days:.2f} s a plan)"
    )


if __name__ == "__main__":
    main()
