"""Rolling horizon on real prices: a month of the full household, re-planned as a client would.

Three numbers for the same household and month (DE-LU day-ahead prices as a Nomos-like
all-in price; BDEW H25 load; Potsdam typical-year weather and 8 kWp PV; a car that needs
18 kWh every night between 18:00 and 07:00, a 10 kWh battery, a heat pump in a 1R1C house):

* **baseline**: what the household pays without wattplan (charge at plug-in, greedy
  battery, thermostat), as the optimizer computes it for the whole month;
* **rolling**: what the planner achieves knowing only the prices published so far: a plan
  at the start of the month (today's prices), then a re-plan at every 14:20 publication on
  ``[now, end of tomorrow)``, each plan executed until the next one, the battery charge and
  room temperature carried over;
* **perfect foresight**: one plan over the whole month with every price known in advance.

The end states differ (the month-long plan must end with the battery at least as full as
it started; the rolling plans each end their own horizon so); the difference is valued at
the month's mean price and reported.

Run: ``.venv/bin/python benchmarks/rolling_horizon.py [--month 2026-01]``
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

import wattplan
from wattplan import datasets
from wattplan.planner import PollSchedule
from wattplan.planner._household import demo_household

BERLIN = ZoneInfo("Europe/Berlin")


def prices_between(start: datetime, end: datetime) -> pd.Series:
    spot = datasets.read_day_ahead_prices(pd.Timestamp(start), pd.Timestamp(end))
    return datasets.all_in_price_ct_per_kwh(spot)


def published_until(moment: datetime, schedule: PollSchedule) -> datetime:
    """End of the prices a client has seen at ``moment`` (tomorrow's from 14:20 on)."""
    local = moment.astimezone(BERLIN)
    publication = local.replace(hour=14, minute=20, second=0, microsecond=0)
    days = 2 if local >= publication else 1
    return datetime.combine(local.date() + timedelta(days=days), datetime.min.time(), BERLIN)


def slot_cost_eur(rows: pd.DataFrame) -> float:
    hours = 0.25
    energy = rows["grid_import_kw"] * rows["price_ct_per_kwh"]
    energy -= rows["grid_export_kw"] * rows["feed_in_ct_per_kwh"]
    return float((energy * hours).sum() / 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-01", help="YYYY-MM (2025-10 to 2026-07)")
    args = parser.parse_args()
    first = datetime.strptime(args.month + "-01", "%Y-%m-%d").replace(tzinfo=BERLIN)
    nxt = (first + timedelta(days=32)).replace(day=1)
    month_end = datetime.combine(nxt.date(), datetime.min.time(), BERLIN)
    schedule = PollSchedule()

    # perfect foresight -------------------------------------------------------------------
    t0 = time.perf_counter()
    whole = demo_household(first, month_end, dishwasher=False)
    foresight = wattplan.optimize(whole, prices=prices_between(first, month_end))
    t_foresight = time.perf_counter() - t0

    # rolling: re-plan at every publication with what has been published ------------------
    t0 = time.perf_counter()
    replan_times = [first]
    day = first.date()
    while True:
        moment = datetime.combine(day, datetime.min.time(), BERLIN).replace(hour=14, minute=20)
        if moment >= month_end:
            break
        if moment > first:
            replan_times.append(moment)
        day += timedelta(days=1)
    soc, indoor = 5.0, 21.0
    executed: list[pd.DataFrame] = []
    statuses: dict[str, int] = {}
    for i, moment in enumerate(replan_times):
        start = moment.replace(minute=moment.minute - moment.minute % 15)
        end = published_until(moment, schedule)
        scenario = demo_household(
            start, end, battery_soc_kwh=soc, indoor_c=indoor, dishwasher=False
        )
        plan = wattplan.optimize(scenario, prices=prices_between(start, end))
        statuses[plan.status.value] = statuses.get(plan.status.value, 0) + 1
        until = replan_times[i + 1] if i + 1 < len(replan_times) else month_end
        until = until.replace(minute=until.minute - until.minute % 15)
        rows = plan.schedule[plan.schedule.index < pd.Timestamp(until)]
        executed.append(rows)
        soc = float(rows["home-battery_soc_kwh"].iloc[-1])
        indoor = float(rows["heat-pump_indoor_c"].iloc[-1])
    t_rolling = time.perf_counter() - t0
    rolled = pd.concat(executed)
    assert rolled.index.is_unique and len(rolled) == len(foresight.schedule)

    mean_price = float(prices_between(first, month_end).mean())
    pf_cost = slot_cost_eur(foresight.schedule)
    roll_cost = slot_cost_eur(rolled)
    pf_soc = float(foresight.schedule["home-battery_soc_kwh"].iloc[-1])
    pf_indoor = float(foresight.schedule["heat-pump_indoor_c"].iloc[-1])
    mean_cop = float(foresight.schedule["heat-pump_cop"].mean())
    # a kWh left in the battery is worth a kWh not bought later (through the discharge
    # loss); a warmer house is worth the heat (C = 7 kWh/K) the heat pump need not make
    battery_eur = (soc - pf_soc) * 0.95 * mean_price / 100.0
    heat_eur = (indoor - pf_indoor) * 7.0 / mean_cop * mean_price / 100.0
    end_state_eur = battery_eur + heat_eur
    baseline = foresight.baseline_cost_eur
    shortfalls = len(foresight.shortfalls) if hasattr(foresight, "shortfalls") else 0

    print(f"rolling horizon, full household, {args.month} ({len(rolled)} quarter-hours)")
    print(f"  {datasets.PRICE_ATTRIBUTION}")
    print(f"  mean all-in price           {mean_price:8.2f} ct/kWh")
    print(f"  baseline (no wattplan)      {baseline:8.2f} EUR")
    print(
        f"  rolling (published prices)  {roll_cost:8.2f} EUR   "
        f"saves {baseline - roll_cost:6.2f} EUR ({(baseline - roll_cost) / baseline:5.1%}); "
        f"{len(replan_times)} plans, {statuses}"
    )
    print(
        f"  perfect foresight           {pf_cost:8.2f} EUR   saves {baseline - pf_cost:6.2f} EUR "
        f"({(baseline - pf_cost) / baseline:5.1%}); status {foresight.status.value}"
    )
    captured = (baseline - roll_cost + end_state_eur) / (baseline - pf_cost)
    print(
        f"  end states: battery {soc:.1f} vs {pf_soc:.1f} kWh ({battery_eur:+.2f} EUR), "
        f"indoor {indoor:.1f} vs {pf_indoor:.1f} °C ({heat_eur:+.2f} EUR), at the mean price"
    )
    print(f"  rolling captures {captured:.0%} of the perfect-foresight saving (end states valued)")
    per_plan_ms = t_rolling / len(replan_times) * 1000
    print(f"  shortfalls in the foresight plan: {shortfalls}")
    print(
        f"  time: rolling {t_rolling:.1f} s ({per_plan_ms:.0f} ms a plan), "
        f"perfect foresight {t_foresight:.1f} s"
    )


if __name__ == "__main__":
    main()
