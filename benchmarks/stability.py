"""Plan stability: a month of hourly re-plans with and without the previous plan, side by side.

The household: a car at an 11 kW wallbox (minimum 4.2 kW) plugged in from 18:00 to 07:00
every night needing ``--ev-kwh``, a 10 kWh / 5 kW home battery, a 3.5 kW heat pump in a
1R1C house (7 kWh/K, 0.25 kW/K, comfort 20–23 °C), 8 kWp PV (south 35°) and the BDEW H25
base load (4000 kWh/a), with the Potsdam typical-year weather; 15-minute DE-LU day-ahead
prices as a Nomos-like all-in price (1.19 × (spot/10 + 16) ct/kWh), feed-in 7.78 ct/kWh.

The planner's loop, simulated: every ``--every`` minutes a re-plan on ``[now, end of the
prices published at now)`` (tomorrow's from 14:20), knowing

* the state reached so far (battery charge, indoor temperature, the energy the car still
  needs in its session), carried over from what was executed;
* a PV forecast issued at ``now``: the actual PV times a factor that is redrawn at every
  issue (per hour, error growing with the lead time; a fixed seed), and the H25 profile as
  the base-load forecast (the actual load is the profile with 25 % autocorrelated noise).

Each plan's device powers are executed until the next re-plan; the grid takes what reality
needs beyond them (actual load and PV), and the bill is settled at real prices. The two
runs see exactly the same forecasts; one passes each re-plan the previous plan
(``optimize(..., previous_plan=last)``: running slot frozen, deviations within 6 hours
priced at 0.5 ct/kWh), the other re-plans afresh.

Printed per device, per day: **plan flips** (slots of the next 6 hours whose on/off state,
or for the battery charge/idle/discharge, differs from what the previous plan said for
them; this is what a user or a device sees change) and **switches** (on/off changes of the
executed schedule); then the settled bills and their difference, the cost of stability,
with the end states valued at the month's median price.

Run: ``.venv/bin/python benchmarks/stability.py [--month 2026-01] [--days 31] [--every 60]``
(about 2 minutes of one core for the default month, longer on a busy machine;
``--ct 0.5 --hours 6`` set the stability price and window; ``--days 7`` for a quick look).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import wattplan
from wattplan import datasets
from wattplan.planner._household import _load, _series

BERLIN = ZoneInfo("Europe/Berlin")
DT_H = 0.25
STEP = pd.Timedelta(minutes=15)
FEED_IN_CT = 7.78
PV_KWP = 8.0
EV_ETA = 0.92
HP_C_KWH_PER_K = 7.0
DEVICES = ("car", "home-battery", "heat-pump")
ON_KW = 0.05  # a device counts as on (or the battery as charging/discharging) above this


@dataclass(frozen=True)
class World:
    """What really happens over the month (15-minute slots, UTC index)."""

    prices: pd.Series  # all-in, ct/kWh
    load: pd.Series  # actual base load, kW
    load_forecast: pd.Series  # the H25 profile, kW
    pv: pd.Series  # actual PV, kW
    weather: pd.DataFrame  # hourly temp_air_c
    median_price: float


def build_world(first: datetime, end: datetime, seed: int = 7) -> World:
    margin = end + timedelta(days=2)
    spot = datasets.read_day_ahead_prices(pd.Timestamp(first), pd.Timestamp(margin))
    prices = datasets.all_in_price_ct_per_kwh(spot)
    prices = prices.resample("15min").ffill()  # hourly data (before 2025-10) onto quarters
    profile = _load(first, margin, 4000.0)
    rng = np.random.default_rng(seed)
    noise = np.zeros(len(profile))
    for i in range(1, len(noise)):  # AR(1), about an hour of memory
        noise[i] = 0.8 * noise[i - 1] + 0.6 * rng.standard_normal()
    load = (profile * np.clip(1.0 + 0.25 * noise, 0.2, None)).rename("load_kw")
    weather = datasets.read_weather(pd.Timestamp(first), pd.Timestamp(margin))
    pv = (weather["pv_south35_kw_per_kwp"] * PV_KWP).resample("15min").ffill()
    idx = pd.date_range(
        pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(margin).tz_convert("UTC"),
        freq="15min", inclusive="left",
    )  # fmt: skip
    pv = pv.reindex(idx, method="ffill").fillna(0.0)
    month = prices[(prices.index >= pd.Timestamp(first)) & (prices.index < pd.Timestamp(end))]
    return World(prices, load, profile, pv, weather, float(np.median(month)))


def published_until(moment: datetime) -> datetime:
    """End of the prices a client has seen at ``moment`` (tomorrow's from 14:20 on)."""
    local = moment.astimezone(BERLIN)
    days = 2 if (local.hour, local.minute) >= (14, 20) else 1
    return datetime.combine(local.date() + timedelta(days=days), datetime.min.time(), BERLIN)


def pv_forecast(world: World, issue: datetime, idx: pd.DatetimeIndex, k: int) -> pd.Series:
    """The PV forecast issued at ``issue`` (the ``k``-th issue): actual × a redrawn factor."""
    rng = np.random.default_rng(10_000 + k)
    actual = world.pv.reindex(idx).to_numpy()
    lead_h = (idx - pd.Timestamp(issue)).total_seconds().to_numpy() / 3600.0
    hourly = rng.standard_normal(len(idx) // 4 + 2)
    z = np.repeat(hourly, 4)[: len(idx)]
    sigma = 0.10 + 0.30 * np.clip(lead_h / 24.0, 0.0, 1.0)
    return pd.Series(actual * np.clip(1.0 + sigma * z, 0.0, 2.0), index=idx)


@dataclass
class State:
    soc_kwh: float = 5.0
    indoor_c: float = 21.0
    ev_delivered_kwh: dict[datetime, float] = field(default_factory=dict)  # per plug-in


def household(
    world: World, start: datetime, end: datetime, state: State, k: int, ev_kwh: float
) -> tuple[Any, pd.Series]:
    idx = pd.date_range(
        pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
        freq="15min", inclusive="left",
    )  # fmt: skip
    sessions = []
    day = start.astimezone(BERLIN).date() - timedelta(days=1)
    while datetime.combine(day, datetime.min.time(), BERLIN) < end:
        plug_in = datetime.combine(day, datetime.min.time(), BERLIN).replace(hour=18)
        departure = plug_in + timedelta(hours=13)
        if departure > start and plug_in < end:
            need = max(0.0, ev_kwh - state.ev_delivered_kwh.get(plug_in, 0.0))
            sessions.append(
                {"plug_in": plug_in, "departure": departure, "energy_kwh": round(need, 9)}
            )
        day += timedelta(days=1)
    hours = world.weather[
        (world.weather.index >= pd.Timestamp(start).floor("h"))
        & (world.weather.index < pd.Timestamp(end))
    ]
    scenario = wattplan.scenario_from_dict(
        {
            "name": "stability",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": "15min",
            "site": {
                "feed_in_ct_per_kwh": FEED_IN_CT,
                "grid_import_limit_kw": 24,
                "base_load": _series(world.load_forecast.reindex(idx)),
                "pv": _series(pv_forecast(world, start, idx, k)),
            },
            "devices": [
                {
                    "kind": "ev", "name": "car", "max_power_kw": 11, "min_power_kw": 4.2,
                    "efficiency": EV_ETA, "sessions": sessions,
                },
                {
                    "kind": "battery", "name": "home-battery", "capacity_kwh": 10,
                    "soc_kwh": state.soc_kwh, "soc_min_kwh": 1, "max_charge_kw": 5,
                    "max_discharge_kw": 5,
                },
                {
                    "kind": "heat_pump", "name": "heat-pump", "max_power_kw": 3.5,
                    "outdoor_c": _series(hours["temp_air_c"]),
                    "building": {
                        "heat_capacity_kwh_per_k": HP_C_KWH_PER_K, "heat_loss_kw_per_k": 0.25,
                        "indoor_c": state.indoor_c, "comfort_min_c": 20, "comfort_max_c": 23,
                    },
                },
            ],
        }
    )  # fmt: skip
    return scenario, world.prices.reindex(idx)


def on_state(kw: np.ndarray) -> np.ndarray:
    """+1 drawing power (charging), −1 delivering (discharging), 0 idle."""
    return np.where(kw > ON_KW, 1, np.where(kw < -ON_KW, -1, 0))


@dataclass
class Run:
    label: str
    plans: int = 0
    failed: int = 0
    seconds: float = 0.0
    bill_eur: float = 0.0
    import_kwh: float = 0.0
    plan_flips: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEVICES, 0))
    executed: list[pd.DataFrame] = field(default_factory=list)
    stability_eur: float = 0.0  # the plans' own stability prices (not money)
    end: State = field(default_factory=State)
    ev_short_kwh: float = 0.0

    def switches(self) -> dict[str, int]:
        rows = pd.concat(self.executed)
        return {
            d: int(np.count_nonzero(np.diff(on_state(rows[f"{d}_kw"].to_numpy())))) for d in DEVICES
        }


def simulate(
    world: World,
    first: datetime,
    end: datetime,
    every: timedelta,
    *,
    stable: bool,
    ev_kwh: float,
    settings: wattplan.Stability,
    progress: Callable[[str], None],
) -> Run:
    run = Run("with previous plan" if stable else "afresh")
    state = State()
    moments = []
    moment = first
    while moment < end:
        moments.append(moment)
        moment += every
    last: wattplan.Plan | None = None
    flip_window = pd.Timedelta(hours=settings.hours)
    for k, now in enumerate(moments):
        until = min(moments[k + 1] if k + 1 < len(moments) else end, end)
        horizon_end = min(published_until(now), now + timedelta(hours=48))
        scenario, prices = household(world, now, horizon_end, state, k, ev_kwh)
        t0 = time.perf_counter()
        try:
            plan = wattplan.optimize(
                scenario,
                prices=prices,
                previous_plan=last if stable else None,
                stability=settings,
            )
        except wattplan.OptimizationError as exc:  # as the planner: the last plan stays
            if last is None:
                raise SystemExit(f"the first plan failed: {exc}") from exc
            plan = last
        run.seconds += time.perf_counter() - t0
        run.plans += 1
        if plan is last or not plan.ok:
            run.failed += 1
            if last is None:
                raise SystemExit(f"the first plan failed: {plan.message}")
            plan = last  # the last good plan stays in force
        elif plan.stability_cost_eur is not None:
            run.stability_eur += plan.stability_cost_eur
        sched = plan.schedule
        if last is not None and plan is not last:
            new = sched[sched.index < pd.Timestamp(now) + flip_window]
            old = last.schedule.reindex(new.index)
            ok = old.notna().all(axis=1).to_numpy()
            for d in DEVICES:
                a = on_state(new[f"{d}_kw"].to_numpy()[ok])
                b = on_state(old[f"{d}_kw"].to_numpy()[ok])
                run.plan_flips[d] += int(np.count_nonzero(a != b))
        rows = sched[(sched.index >= pd.Timestamp(now)) & (sched.index < pd.Timestamp(until))]
        assert len(rows) == (until - now) / STEP, "the plan covers the executed slots"
        run.executed.append(rows)
        state.soc_kwh = float(rows["home-battery_soc_kwh"].iloc[-1])
        state.indoor_c = float(rows["heat-pump_indoor_c"].iloc[-1])
        for ts, kw in rows["car_kw"].items():
            local = pd.Timestamp(ts).tz_convert(BERLIN)
            plug = local.normalize() + pd.Timedelta(hours=18)
            if local.hour < 18:
                plug -= pd.Timedelta(days=1)
            key = plug.to_pydatetime()
            state.ev_delivered_kwh[key] = state.ev_delivered_kwh.get(key, 0.0) + kw * DT_H * EV_ETA
        last = plan
        if k % 24 == 0:
            progress(f"  {run.label}: {now.astimezone(BERLIN):%d %b %H:%M}, {run.seconds:.0f} s")
    done = pd.concat(run.executed)
    devices = done[[f"{d}_kw" for d in DEVICES]].sum(axis=1)
    net = world.load.reindex(done.index) - world.pv.reindex(done.index) + devices
    price = world.prices.reindex(done.index)
    imp, exp = net.clip(lower=0.0), (-net).clip(lower=0.0)
    run.bill_eur = float((DT_H * (price * imp - FEED_IN_CT * exp)).sum() / 100.0)
    run.import_kwh = float(imp.sum() * DT_H)
    run.end = state
    # energy the cars did not get by departure (sessions that ended within the month)
    for plug, got in state.ev_delivered_kwh.items():
        if plug + timedelta(hours=13) <= end:
            run.ev_short_kwh += max(0.0, ev_kwh - got)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-01", help="YYYY-MM (2025-01 to 2026-07)")
    parser.add_argument("--days", type=int, default=31, help="days from the 1st (default 31)")
    parser.add_argument("--every", type=int, default=60, help="minutes between re-plans")
    parser.add_argument("--ct", type=float, default=0.5, help="stability price, ct/kWh")
    parser.add_argument("--hours", type=float, default=6.0, help="stability window, hours")
    parser.add_argument("--ev-kwh", type=float, default=14.0, help="energy the car needs a night")
    args = parser.parse_args()
    first = datetime.strptime(args.month + "-01", "%Y-%m-%d").replace(tzinfo=BERLIN)
    end = (first + timedelta(days=args.days)).replace(tzinfo=BERLIN)
    end = datetime.combine(end.date(), datetime.min.time(), BERLIN)
    days = (end - first).total_seconds() / 86400.0
    every = timedelta(minutes=args.every)
    settings = wattplan.Stability(ct_per_kwh=args.ct, hours=args.hours)
    world = build_world(first, end)
    runs = [
        simulate(
            world, first, end, every, stable=stable, ev_kwh=args.ev_kwh, settings=settings,
            progress=lambda s: print(s, flush=True),
        )
        for stable in (False, True)
    ]  # fmt: skip
    fresh, stable = runs

    def ratio(a: float, b: float) -> str:
        return f"{a / b:6.2f}" if abs(b) > 1e-12 else "     –"

    print()
    print(
        f"plan stability: {first:%Y-%m-%d} to {end:%Y-%m-%d} ({days:g} days), a re-plan every "
        f"{args.every} min, stability {args.ct:g} ct/kWh over {args.hours:g} h, running slot frozen"
    )
    print(f"  {datasets.PRICE_ATTRIBUTION}")
    print(f"  {'':34s}{'afresh':>12s}{'with previous':>15s}{'ratio':>8s}")
    print("  plan flips per day (next 6 h: slots whose on/off state changed from the last plan)")
    for d in DEVICES:
        a, b = fresh.plan_flips[d] / days, stable.plan_flips[d] / days
        print(f"    {d:32s}{a:12.1f}{b:15.1f}{ratio(b, a):>8s}")
    a_all, b_all = sum(fresh.plan_flips.values()) / days, sum(stable.plan_flips.values()) / days
    print(f"    {'all devices':32s}{a_all:12.1f}{b_all:15.1f}{ratio(b_all, a_all):>8s}")
    print("  executed switches per day (on/off changes of what the devices did)")
    sw_a, sw_b = fresh.switches(), stable.switches()
    for d in DEVICES:
        a, b = sw_a[d] / days, sw_b[d] / days
        print(f"    {d:32s}{a:12.1f}{b:15.1f}{ratio(b, a):>8s}")
    print("  money")
    print(f"    {'settled bill (EUR)':32s}{fresh.bill_eur:12.2f}{stable.bill_eur:15.2f}")
    print(f"    {'grid import (kWh)':32s}{fresh.import_kwh:12.1f}{stable.import_kwh:15.1f}")
    p = world.median_price
    # a kWh in the battery above its floor saves a kWh later (through the discharge loss); a
    # K above the comfort floor saves the heat the heat pump need not make (COP about 3)
    end_value = [
        ((r.end.soc_kwh - 1.0) * 0.95 + (r.end.indoor_c - 20.0) * HP_C_KWH_PER_K / 3.0) * p / 100
        for r in runs
    ]
    for r, v in zip(runs, end_value, strict=True):
        print(
            f"    end state {r.label:22s} battery {r.end.soc_kwh:5.2f} kWh, indoor "
            f"{r.end.indoor_c:5.2f} °C: {v:6.2f} EUR at {p:.1f} ct/kWh (COP 3)"
        )
    valued = [r.bill_eur - v for r, v in zip(runs, end_value, strict=True)]
    cost = valued[1] - valued[0]
    print(f"    {'valued bill (EUR)':32s}{valued[0]:12.2f}{valued[1]:15.2f}")
    print(
        f"    cost of stability: {cost:+.2f} EUR over the period ({cost / days:+.3f} EUR a day, "
        f"{100 * cost / valued[0]:+.2f} % of the bill)"
    )
    print(
        f"    stability prices in the plans' objectives (not money): {stable.stability_eur:.2f} EUR"
    )
    short = f"{fresh.ev_short_kwh:.2f} / {stable.ev_short_kwh:.2f}"
    print(f"    car energy short at departure: {short} kWh")
    print(
        f"  plans {fresh.plans} / {stable.plans} (failed {fresh.failed} / {stable.failed}); "
        f"optimize time {fresh.seconds:.0f} s / {stable.seconds:.0f} s "
        f"({1e3 * fresh.seconds / fresh.plans:.0f} / {1e3 * stable.seconds / stable.plans:.0f} "
        "ms a plan)"
    )


if __name__ == "__main__":
    main()
