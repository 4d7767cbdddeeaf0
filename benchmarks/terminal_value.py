"""Which default terminal price? Rolling day-by-day re-plans on real prices, settled.

The optimizer values what a horizon leaves behind (battery energy, EV energy above a
session's floor, heat in the building) at one terminal price. This benchmark measures
candidate rules for that price, each computed from the import prices of the planning
window, on what they actually cost when the plans are executed:

* at each day's price publication (14:00 local on day D) plan the window from then to the
  end of the published prices (midnight ending D+1: 34 hours, 33 or 35 on DST days),
  passing the rule's value as ``site.terminal_price_ct_per_kwh``;
* execute the plan for 24 hours, until the next publication, and settle the executed
  quarter-hours at the real prices (import at the all-in price, export at the feed-in);
  forecasts are the actuals here (shipped load and PV), so the plan's flows are what
  happened;
* carry the home battery's charge, the car's state of charge and the indoor temperature
  into the next plan.

Consecutive months form one chain of plans, from 14:00 on the first of its first month to
14:00 on the first after its last; a month's bill is that of the days planned in it. A
chain's end state (battery, car, building) differs by rule, so it is valued by what it is
worth in practice: the same rule plans 7 more days from it and from the chain's start
state, and the difference of the two tails' bills (less what still differs after them, at
the mean import price: battery kWh × discharge efficiency, car kWh / charging efficiency,
building K × heat capacity / mean COP) is added to the chain's bill (column ``adj``).
``baseline`` is the household's usual behaviour (wattplan's baseline simulation), executed
and settled the same way.

Households (DE-LU day-ahead prices as a Nomos-like all-in price; BDEW H25 load 4000 kWh/a;
Potsdam typical-year PV, south 35°):

* ``pv``: 8 kWp PV, 10 kWh battery (5 kW, 1 kWh floor), feed-in 7.78 ct/kWh and a car
  (60 kWh, 11 kW wallbox) plugged in 18:00–07:00 on weekday evenings (Monday to Friday),
  driven 12 kWh on weekdays; each session must reach 40 kWh by departure (the floor) and
  may charge up to ``--ev-max-soc`` kWh (the ceiling; energy above the floor is worth the
  terminal price).
* ``pv_hp``: the same plus the heat pump of the demo household (3.5 kW, 1R1C house,
  C = 7 kWh/K, U = 0.25 kW/K, 20–23 °C).

Run: ``.venv/bin/python benchmarks/terminal_value.py [--months 2025 | 2025-01,2025-04,...]
[--households pv,pv_hp] [--rules median,mean,p25,p75,min,zero,last24_mean] [--jobs 2]``
(by default one month per season, both households and all rules: 1,722 plans, about
13 minutes of worker time; ``--months 2025`` runs the whole year)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import wattplan
from wattplan import datasets
from wattplan.optimizer import scenario_from_dict
from wattplan.optimizer._flows import simulate_baseline
from wattplan.optimizer._inputs import prepare, staffell_cop
from wattplan.optimizer._optimize import _schedule
from wattplan.optimizer._timeseries import SlotGrid, align_series
from wattplan.planner._household import _load, _series

BERLIN = ZoneInfo("Europe/Berlin")
PUBLICATION = clock(14)
DT_H = 0.25

# the household ----------------------------------------------------------------------------
PV_KWP = 8.0
FEED_IN_CT = 7.78
BATTERY_SOC0_KWH = 5.0
BATTERY_ETA_D = 0.95
EV_ETA = 0.92
EV_CAPACITY_KWH = 60.0
EV_TARGET_SOC_KWH = 40.0
EV_DRIVE_KWH = 12.0  # driven on each weekday between 07:00 and 18:00
INDOOR0_C = 21.0
HP_C_KWH_PER_K = 7.0
HP_FLOW_C = 35.0  # the optimizer's default flow temperature for the Staffell COP
TAIL_DAYS = 7  # days planned after a chain to value its end state


def _perc(q: float) -> Callable[[np.ndarray], float]:
    return lambda p: float(np.percentile(p, q))


# each rule maps the window's import prices (one per quarter-hour, ct/kWh) to a price
RULES: dict[str, Callable[[np.ndarray], float]] = {
    "median": lambda p: float(np.median(p)),
    "mean": lambda p: float(np.mean(p)),
    "p25": _perc(25),
    "p75": _perc(75),
    "min": lambda p: float(np.min(p)),
    "zero": lambda p: 0.0,
    "last24_mean": lambda p: float(np.mean(p[-96:])),
}
BASELINE = "baseline"


def all_in_prices(start: datetime, end: datetime) -> pd.Series:
    spot = datasets.read_day_ahead_prices(pd.Timestamp(start), pd.Timestamp(end))
    return datasets.all_in_price_ct_per_kwh(spot)


def quarter_hour_prices(prices: pd.Series, start: datetime, end: datetime) -> np.ndarray:
    """The prices on the optimizer's 15-minute grid (hourly ones repeated)."""
    grid = SlotGrid.build(start, end, 15)
    return align_series(prices, grid, key="prices")


def _at(day: date, at: clock) -> datetime:
    return datetime.combine(day, at, tzinfo=BERLIN)


def ev_sessions(start: datetime, end: datetime, plug_in_soc_kwh: float | None, ceiling: float):
    """Weekday-evening sessions overlapping ``[start, end)``.

    The first session that starts in the window gets the car's known state of charge at
    plug-in (``plug_in_soc_kwh``; None: the car was not driven since, see the caller);
    later ones assume the car left at its target and was driven one day.
    """
    out = []
    day = start.astimezone(BERLIN).date() - timedelta(days=1)
    first = True
    while day <= end.astimezone(BERLIN).date():
        plug_in, departure = _at(day, clock(18)), _at(day + timedelta(days=1), clock(7))
        if day.weekday() < 5 and departure > start and plug_in < end:
            assert plug_in >= start, "plans start at 14:00, before any plug-in"
            if first and plug_in_soc_kwh is not None:
                soc = plug_in_soc_kwh
            else:
                soc = EV_TARGET_SOC_KWH - EV_DRIVE_KWH
            first = False
            out.append(
                {
                    "plug_in": plug_in.isoformat(),
                    "departure": departure.isoformat(),
                    "soc_kwh": soc,
                    "target_soc_kwh": EV_TARGET_SOC_KWH,
                    "max_soc_kwh": max(ceiling, EV_TARGET_SOC_KWH, soc),
                }
            )
        day += timedelta(days=1)
    return out


def scenario(
    start: datetime,
    end: datetime,
    *,
    heat_pump: bool,
    battery_soc_kwh: float,
    car_soc_kwh: float,
    indoor_c: float,
    ev_max_soc_kwh: float,
    terminal_ct: float | None,
) -> Any:
    """The household for one planning window, with the carried states."""
    weather = datasets.read_weather(pd.Timestamp(start).floor("h"), pd.Timestamp(end).ceil("h"))
    # the car was driven today (a weekday) before it is plugged in at 18:00
    today = start.astimezone(BERLIN).date()
    plug_soc = car_soc_kwh - EV_DRIVE_KWH if today.weekday() < 5 else None
    devices: list[dict[str, Any]] = [
        {
            "kind": "ev",
            "name": "car",
            "max_power_kw": 11,
            "min_power_kw": 4.2,
            "efficiency": EV_ETA,
            "capacity_kwh": EV_CAPACITY_KWH,
            "sessions": ev_sessions(start, end, plug_soc, ev_max_soc_kwh),
        },
        {
            "kind": "battery",
            "name": "home-battery",
            "capacity_kwh": 10,
            "soc_kwh": battery_soc_kwh,
            "soc_min_kwh": 1,
            "max_charge_kw": 5,
            "max_discharge_kw": 5,
            "charge_efficiency": 0.95,
            "discharge_efficiency": BATTERY_ETA_D,
        },
    ]
    if heat_pump:
        devices.append(
            {
                "kind": "heat_pump",
                "name": "heat-pump",
                "max_power_kw": 3.5,
                "outdoor_c": _series(weather["temp_air_c"]),
                "building": {
                    "heat_capacity_kwh_per_k": HP_C_KWH_PER_K,
                    "heat_loss_kw_per_k": 0.25,
                    "indoor_c": indoor_c,
                    "comfort_min_c": 20,
                    "comfort_max_c": 23,
                },
            }
        )
    site: dict[str, Any] = {
        "feed_in_ct_per_kwh": FEED_IN_CT,
        "grid_import_limit_kw": 24,
        "grid_export_limit_kw": 10,
        "base_load": _series(_load(start, end, 4000.0)),
        "pv": _series(weather["pv_south35_kw_per_kwp"] * PV_KWP),
    }
    if terminal_ct is not None:
        site["terminal_price_ct_per_kwh"] = terminal_ct
    return scenario_from_dict(
        {
            "name": "terminal-value",
            "timezone": "Europe/Berlin",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": "15min",
            "site": site,
            "devices": devices,
        }
    )


@dataclass
class Result:
    household: str
    months: list[str]  # one continuous chain of plans
    rule: str
    bill_eur: dict[str, float]  # settled bill of the executed quarter-hours, per month
    state_eur: float  # what the end state is worth more than the start state, EUR
    plans: int
    statuses: dict[str, int]
    terminal_ct_mean: float
    seconds: float
    end_battery_kwh: float
    end_car_kwh: float
    end_indoor_c: float


def _settle(rows: pd.DataFrame, devices: list[str]) -> float:
    """Bill of executed rows; checks the grid balance of each slot first."""
    net = rows["base_load_kw"] - rows["pv_used_kw"]
    for name in devices:
        net = net + rows[f"{name}_kw"]
    balance = rows["grid_import_kw"] - rows["grid_export_kw"] - net
    assert float(balance.abs().max()) < 1e-5, "executed slots do not balance"
    flows = rows["grid_import_kw"] * rows["price_ct_per_kwh"]
    flows = flows - rows["grid_export_kw"] * rows["feed_in_ct_per_kwh"]
    return float(flows.sum() * DT_H / 100.0)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    first = datetime.strptime(month + "-01", "%Y-%m-%d").date()
    nxt = (first + timedelta(days=32)).replace(day=1)
    return _at(first, PUBLICATION), _at(nxt, PUBLICATION)


@dataclass(frozen=True)
class State:
    battery_kwh: float = BATTERY_SOC0_KWH
    car_kwh: float = EV_TARGET_SOC_KWH  # the car's charge when it last left
    indoor_c: float = INDOOR0_C


@dataclass
class Chain:
    bills: dict[str, float]  # settled bill per month of the planning day, EUR
    state: State  # at the end
    plans: int
    statuses: dict[str, int]
    terminals: list[float]


def chain(
    household: str, rule: str, start: datetime, stop: datetime, state: State, ev_max: float
) -> Chain:
    """Plan at every publication from ``start`` to ``stop``, execute, settle, carry over."""
    heat_pump = household == "pv_hp"
    battery, car, indoor = state.battery_kwh, state.car_kwh, state.indoor_c
    out = Chain({}, state, 0, {}, [])
    moment = start
    while moment < stop:
        day = moment.astimezone(BERLIN).date()
        end = _at(day + timedelta(days=2), clock(0))
        until = _at(day + timedelta(days=1), PUBLICATION)
        prices = all_in_prices(moment, end)
        terminal = None
        if rule != BASELINE:
            terminal = max(0.0, RULES[rule](quarter_hour_prices(prices, moment, end)))
            out.terminals.append(terminal)
        sc = scenario(
            moment,
            end,
            heat_pump=heat_pump,
            battery_soc_kwh=battery,
            car_soc_kwh=car,
            indoor_c=indoor,
            ev_max_soc_kwh=ev_max,
            terminal_ct=terminal,
        )
        if rule == BASELINE:
            inputs = prepare(sc, prices)
            schedule = _schedule(inputs, simulate_baseline(inputs))
            status = "baseline"
        else:
            plan = wattplan.optimize(sc, prices=prices)
            assert plan.ok, f"{household} {rule} {moment}: {plan.status} {plan.message}"
            schedule, status = plan.schedule, plan.status.value
        out.statuses[status] = out.statuses.get(status, 0) + 1
        out.plans += 1
        rows = schedule[pd.DatetimeIndex(schedule.index) < pd.Timestamp(until)]
        month = f"{day:%Y-%m}"
        out.bills[month] = out.bills.get(month, 0.0) + _settle(rows, [d.name for d in sc.devices])
        battery = float(rows["home-battery_soc_kwh"].iloc[-1])
        if day.weekday() < 5:  # driven today, charged tonight (sessions end before 14:00)
            car += float(rows["car_kw"].sum()) * EV_ETA * DT_H - EV_DRIVE_KWH
        if heat_pump:
            indoor = float(rows["heat-pump_indoor_c"].iloc[-1])
        moment = until
    out.state = State(battery, car, indoor)
    return out


def stored_kwh(state: State, cop: float) -> float:
    """Grid kWh the stored energy saves, relative to the start state."""
    kwh = (state.battery_kwh - BATTERY_SOC0_KWH) * BATTERY_ETA_D
    kwh += (state.car_kwh - EV_TARGET_SOC_KWH) / EV_ETA
    return kwh + (state.indoor_c - INDOOR0_C) * HP_C_KWH_PER_K / cop


def run(household: str, months: list[str], rule: str, ev_max_soc_kwh: float) -> Result:
    """One chain of daily plans over consecutive months for one rule (or the baseline).

    The end state is valued by what it is worth in practice: the same rule plans
    ``TAIL_DAYS`` more days from it and from the start state; the difference of the two
    tails' bills (less what still differs at their ends, at the mean price) is ``adj``.
    """
    t0 = time.perf_counter()
    start, stop = month_bounds(months[0])[0], month_bounds(months[-1])[1]
    main = chain(household, rule, start, stop, State(), ev_max_soc_kwh)
    tail_stop = stop + timedelta(days=TAIL_DAYS)
    tail = chain(household, rule, stop, tail_stop, main.state, ev_max_soc_kwh)
    ref = chain(household, rule, stop, tail_stop, State(), ev_max_soc_kwh)
    mean_ct = float(quarter_hour_prices(all_in_prices(start, stop), start, stop).mean())
    temps = datasets.read_weather(stop, tail_stop)["temp_air_c"].to_numpy()
    cop = float(np.mean(staffell_cop(temps, HP_FLOW_C)))
    rest = stored_kwh(tail.state, cop) - stored_kwh(ref.state, cop)
    adj = sum(tail.bills.values()) - sum(ref.bills.values()) - rest * mean_ct / 100.0
    return Result(
        household=household,
        months=months,
        rule=rule,
        bill_eur=main.bills,
        state_eur=-adj,
        plans=main.plans,
        statuses=main.statuses,
        terminal_ct_mean=float(np.mean(main.terminals)) if main.terminals else float("nan"),
        seconds=time.perf_counter() - t0,
        end_battery_kwh=main.state.battery_kwh,
        end_car_kwh=main.state.car_kwh,
        end_indoor_c=main.state.indoor_c,
    )


def _run(args: tuple[str, list[str], str, float]) -> Result:
    return run(*args)


def chains(months: list[str]) -> list[list[str]]:
    """Consecutive months form one chain of plans (states carried across month ends)."""
    out: list[list[str]] = []
    for m in sorted(months):
        if out and month_bounds(out[-1][-1])[1] == month_bounds(m)[0]:
            out[-1].append(m)
        else:
            out.append([m])
    return out


def report(results: list[Result], households: list[str], months: list[str], rules: list[str]):
    for hh in households:
        print(f"\nhousehold {hh}: realised bill, EUR (settled; end state valued by a tail)")
        head = f"  {'rule':<12}" + "".join(f"{m:>9}" for m in months)
        head += f"{'adj':>7}{'total':>10}{'vs best':>9}{'saving':>9}{'p_term':>8}"
        print(head)
        totals: dict[str, float] = {}
        lines: dict[str, str] = {}
        for rule in rules:
            rs = [r for r in results if r.household == hh and r.rule == rule]
            bills = {m: b for r in rs for m, b in r.bill_eur.items()}
            adj = -sum(r.state_eur for r in rs)
            totals[rule] = sum(bills.values()) + adj
            line = f"  {rule:<12}" + "".join(f"{bills[m]:9.2f}" for m in months)
            lines[rule] = line + f"{adj:7.2f}{totals[rule]:10.2f}"
            n = sum(r.plans for r in rs)
            p_term = sum(r.terminal_ct_mean * r.plans for r in rs) / n
            lines[rule] += "{vs}{sav}" + (f"{p_term:8.1f}" if np.isfinite(p_term) else "")
        best = min(v for k, v in totals.items() if k != BASELINE)
        base = totals.get(BASELINE)
        for rule in rules:
            vs = f"{totals[rule] - best:+9.2f}" if rule != BASELINE else f"{'':>9}"
            sav = f"{base - totals[rule]:9.2f}" if base is not None else f"{'':>9}"
            print(lines[rule].format(vs=vs, sav=sav))
        other = {s for r in results if r.household == hh for s in r.statuses}
        other -= {"optimal", "baseline"}
        if other:
            print(f"  statuses other than optimal: {sorted(other)}")
    print(
        "\n  adj: what the end state costs more than the start state (7-day tails), included "
        "in the total;\n  saving: baseline total less the rule's total; p_term: the rule's "
        "mean terminal price, ct/kWh"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--months",
        default="2025-01,2025-04,2025-07,2025-10",
        help="2025 (all of it) or a list of YYYY-MM; consecutive months are one chain of plans",
    )
    parser.add_argument("--households", default="pv,pv_hp", help="pv and/or pv_hp")
    parser.add_argument("--rules", default=",".join(RULES), help=f"of {', '.join(RULES)}")
    parser.add_argument("--ev-max-soc", type=float, default=52.0, help="car ceiling, kWh")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    if args.months == "2025":
        months = [f"2025-{m:02d}" for m in range(1, 13)]
    else:
        months = sorted(args.months.split(","))
    households = args.households.split(",")
    rules = args.rules.split(",")
    for r in rules:
        if r not in RULES:
            parser.error(f"unknown rule {r!r}")
    if not args.no_baseline:
        rules.append(BASELINE)
    jobs = [(hh, c, r, args.ev_max_soc) for hh in households for c in chains(months) for r in rules]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(j) for j in jobs]
    wall = time.perf_counter() - t0
    print(f"terminal price rules on rolling day-by-day re-plans, {', '.join(months)}")
    print(f"  {datasets.PRICE_ATTRIBUTION}")
    report(results, households, months, rules)
    n = sum(r.plans for r in results if r.rule != BASELINE)
    cpu = sum(r.seconds for r in results if r.rule != BASELINE)
    print(
        f"\n  {n} plans in {cpu:.0f} s of worker time ({cpu / n * 1000:.0f} ms a plan); "
        f"wall {wall:.0f} s with {args.jobs} processes"
    )


if __name__ == "__main__":
    main()
