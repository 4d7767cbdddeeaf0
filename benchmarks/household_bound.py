"""How long the backtest's bound (a whole period as one plan) takes with a heat pump.

The bound of ``wattplan backtest`` plans the whole period at once with perfect foresight.
A car's minimum charging power and a heat pump's minimum run time each add an on/off
binary per slot; over a month of 15-minute slots that MIP is slow. This benchmark solves
the same month three ways and prints solve time, the plan's bill (nothing valued after
the period) and its objective (bill plus wear, start penalties and tie-breaks):

* ``exact``: both kinds of binaries, as the profile says;
* ``heat pump relaxed``: the heat pump's minimum run time dropped;
* ``relaxed``: also the car's minimum charging power (what the backtest's bound does).

Household: BDEW H25 base load (4,000 kWh/a), 6 kWp of Potsdam typical-year PV (south 35°)
and its outdoor temperature, a car (11 kW, 9 kWh every weekday night 18:00–07:00), a
10 kWh battery, a 3 kW heat pump with a one-hour minimum run heating a 1R1C house
(C = 7 kWh/K, U = 0.2 kW/K, 20–23 °C) and a dishwasher every evening (19:00–07:00);
DE-LU day-ahead prices as a Nomos-like all-in price.

Run: ``.venv/bin/python benchmarks/household_bound.py [--start 2025-11-06 --days 31]
[--time-limit 900] [--skip-exact]`` (the exact MIP takes minutes).

Measured on a shared 2-core machine, 31 days from 2025-11-06 (2,976 slots):

=================  =======  =======  ========
variant            MIP gap  solve s  bill EUR
=================  =======  =======  ========
exact              1.0e-04     82.2    349.71
heat pump relaxed  1.5e-04      8.9    350.59
relaxed            0.0e+00      7.5    350.52
=================  =======  =======  ========

The relaxed bound's bill is 0.23 % above the exact one's: what the bound minimizes is the
bill plus battery wear and start penalties, and that sum can only fall when binaries go.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pandas as pd

from wattplan import datasets
from wattplan.household import WEEKDAYS, Household, household_from_dict, household_scenario
from wattplan.household_backtest import _relaxed, household_prices
from wattplan.optimizer import optimize

TZ = "Europe/Berlin"
PROFILE = {
    "name": "bound benchmark",
    "site": {"feed_in_ct_per_kwh": 7.9},
    "devices": [
        {
            "kind": "ev",
            "name": "car",
            "max_power_kw": 11.0,
            "capacity_kwh": 60.0,
            "weekly": {
                d: {"plug_in": "18:00", "departure": "07:00", "energy_kwh": 9.0}
                for d in ("mon", "tue", "wed", "thu", "fri")
            },
        },
        {
            "kind": "battery",
            "name": "battery",
            "capacity_kwh": 10.0,
            "soc_min_kwh": 1.0,
            "max_charge_kw": 5.0,
            "max_discharge_kw": 5.0,
        },
        {
            "kind": "heat_pump",
            "name": "hp",
            "max_power_kw": 3.0,
            "min_run_minutes": 60,
            "building": {
                "heat_capacity_kwh_per_k": 7.0,
                "heat_loss_kw_per_k": 0.2,
                "comfort_min_c": 20.0,
                "comfort_max_c": 23.0,
                "initial_indoor_c": 21.0,
            },
        },
        {
            "kind": "appliance",
            "name": "dishwasher",
            "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
            "weekly": {d: {"earliest_start": "19:00", "latest_end": "07:00"} for d in WEEKDAYS},
        },
    ],
}


def _hp_relaxed(h: Household) -> Household:
    devices = [
        d.model_copy(update={"min_run_minutes": 0}) if d.kind == "heat_pump" else d
        for d in h.devices
    ]
    return h.model_copy(update={"devices": devices})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2025-11-06", help="first day (local)")
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--time-limit", type=float, default=900.0, help="solver limit, s")
    ap.add_argument("--skip-exact", action="store_true", help="leave out the exact MIP")
    args = ap.parse_args()
    day = dt.date.fromisoformat(args.start)
    lo = pd.Timestamp(f"{day} 14:00", tz=TZ)
    hi = pd.Timestamp(f"{day + dt.timedelta(days=args.days)} 14:00", tz=TZ)
    household = household_from_dict(PROFILE)
    prices = household_prices(household, lo.tz_convert("UTC"), hi.tz_convert("UTC"))
    slots = pd.DatetimeIndex(prices.index)
    load = pd.concat([datasets.read_household_load(y) for y in (2025, 2026)])
    weather = datasets.read_weather(lo, hi).reindex(slots, method="ffill")
    series = {
        "base_load_kw": load.reindex(slots),
        "pv_kw": weather["pv_south35_kw_per_kwp"] * 6.0,
        "outdoor_c": weather["temp_air_c"],
    }
    variants = [("heat pump relaxed", _hp_relaxed), ("relaxed", _relaxed)]
    if not args.skip_exact:
        variants.insert(0, ("exact", lambda h: h))
    print(f"{args.days} days from {lo:%Y-%m-%d %H:%M}, {len(slots)} slots")
    print(f"{'variant':<18} {'MIP gap':>9} {'solve s':>8} {'bill EUR':>9} {'status':>10}")
    for label, make in variants:
        sc = household_scenario(
            make(household), lo, hi, prices_ct_per_kwh=prices, terminal_price_ct_per_kwh=0.0,
            **series,
        )  # fmt: skip
        sc.solver.time_limit_s = args.time_limit
        t = time.perf_counter()
        plan = optimize(sc)
        wall = time.perf_counter() - t
        gap = "-" if plan.mip_gap is None else f"{plan.mip_gap:.1e}"
        print(f"{label:<18} {gap:>9} {wall:8.1f} {plan.cost_eur:9.2f} {plan.status.value:>10}")


if __name__ == "__main__":
    main()
