"""The EV + battery backtest, checked against an independent computation on a DST week."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import wattplan
from wattplan import datasets
from wattplan.backtest import (
    BacktestBattery,
    BacktestEV,
    BacktestResult,
    backtest_ev_battery,
    cheapest_hours_schedule,
)

BERLIN = "Europe/Berlin"
# a week of 15-minute prices that holds the autumn DST change (2025-10-26, 25 hours)
START, END = "2025-10-22", "2025-10-29"


@pytest.fixture(scope="module")
def week() -> BacktestResult:
    return backtest_ev_battery(START, END, keep_plans=True)


def _bill(price: pd.Series, import_kw: pd.Series, dt_h: float) -> float:
    return float((price * import_kw).sum() * dt_h / 100.0)


def test_one_row_per_day_and_dst_window_is_25_hours(week: BacktestResult) -> None:
    days = week.days
    assert list(days.index) == [dt.date(2025, 10, 22) + dt.timedelta(days=i) for i in range(7)]
    # noon 25 Oct to noon 26 Oct local holds the extra hour: 100 quarter-hours
    assert days["slots"].to_dict()[dt.date(2025, 10, 25)] == 100
    assert days["slots"].to_dict()[dt.date(2025, 10, 24)] == 96
    assert (days["resolution_minutes"] == 15).all()


def test_costs_match_prices_times_schedules(week: BacktestResult) -> None:
    spot = datasets.read_day_ahead_prices("2025-10-22 12:00", "2025-10-29 12:00")
    price_all = datasets.all_in_price_ct_per_kwh(spot)
    load_all = datasets.read_household_load(2025)
    ev = BacktestEV()
    for day, row in week.days.iterrows():
        assert isinstance(day, dt.date)
        plan = week.plans[day]
        w0 = pd.Timestamp(f"{day} 12:00").tz_localize(BERLIN)
        w1 = pd.Timestamp(f"{day + dt.timedelta(days=1)} 12:00").tz_localize(BERLIN)
        sched = plan.schedule
        price = price_all[(price_all.index >= w0) & (price_all.index < w1)]
        assert np.allclose(price.to_numpy(), sched["price_ct_per_kwh"].to_numpy())
        load = load_all[(load_all.index >= w0) & (load_all.index < w1)]
        assert np.allclose(load.to_numpy(), sched["base_load_kw"].to_numpy())
        dt_h = 0.25
        # the grid balance without PV: import = load + car + battery (charge − discharge)
        imp = load + sched["car_kw"] + sched["battery_kw"]
        assert np.allclose(imp.to_numpy(), sched["grid_import_kw"].to_numpy(), atol=1e-6)
        assert row["optimized_eur"] == pytest.approx(_bill(price, imp, dt_h), abs=1e-6)
        assert row["optimized_eur"] == pytest.approx(plan.cost_eur, abs=1e-6)
        # plug-in: full power from 18:00 until the energy is in, battery idle
        plug = pd.Timestamp(f"{day} 18:00").tz_localize(BERLIN)
        grid_kwh = ev.energy_kwh / ev.efficiency
        full = int(grid_kwh // (ev.max_power_kw * dt_h))
        car = pd.Series(0.0, index=price.index)
        first = int(np.flatnonzero(price.index == plug)[0])
        car.iloc[first : first + full] = ev.max_power_kw
        car.iloc[first + full] = (grid_kwh - full * ev.max_power_kw * dt_h) / dt_h
        assert row["plug_in_eur"] == pytest.approx(_bill(price, load + car, dt_h), abs=1e-6)
        # cheapest hours, computed here by brute force over the sorted window
        dep = pd.Timestamp(f"{day + dt.timedelta(days=1)} 07:00").tz_localize(BERLIN)
        window = price[(price.index >= plug) & (price.index < dep)]
        cheap = pd.Series(0.0, index=price.index)
        left = grid_kwh
        for ts in window.sort_values(kind="stable").index:
            take = min(ev.max_power_kw * dt_h, left)
            cheap[ts] = take / dt_h
            left -= take
        assert left == pytest.approx(0.0)
        assert row["cheapest_hours_eur"] == pytest.approx(
            _bill(price, load + cheap, dt_h), abs=1e-6
        )
        assert row["ev_cheapest_hours_eur"] == pytest.approx(_bill(price, cheap, dt_h), abs=1e-6)


def test_ev_target_met_every_day_inside_the_plug_in_window(week: BacktestResult) -> None:
    ev = BacktestEV()
    for day, plan in week.plans.items():
        sched = plan.schedule
        idx = pd.DatetimeIndex(sched.index)
        plug = pd.Timestamp(f"{day} 18:00").tz_localize(BERLIN)
        dep = pd.Timestamp(f"{day + dt.timedelta(days=1)} 07:00").tz_localize(BERLIN)
        outside = (idx < plug) | (idx + pd.Timedelta("15min") > dep)
        assert (sched["car_kw"][outside].abs() < 1e-9).all()
        assert (sched["car_kw"] <= ev.max_power_kw + 1e-9).all()
        delivered = float(sched["car_kw"].sum()) * 0.25 * ev.efficiency
        assert delivered >= ev.energy_kwh - 1e-6
        assert not plan.shortfalls
    assert (week.days["ev_shortfall_kwh"] == 0).all()


def test_battery_ends_where_it_started(week: BacktestResult) -> None:
    bat = BacktestBattery()
    for plan in week.plans.values():
        soc = plan.schedule["battery_soc_kwh"]
        assert soc.iloc[-1] >= bat.soc_min_kwh - 1e-6
        assert soc.min() >= bat.soc_min_kwh - 1e-6
        assert soc.max() <= bat.capacity_kwh + 1e-6


def test_ordering_of_the_three_strategies(week: BacktestResult) -> None:
    d = week.days
    # cheapest hours is the cheapest way to charge the car alone: never dearer than plug-in
    assert (d["ev_cheapest_hours_eur"] <= d["ev_plug_in_eur"] + 1e-9).all()
    assert (d["cheapest_hours_eur"] <= d["plug_in_eur"] + 1e-9).all()
    # the optimizer may pay at most its start penalties for fewer charging blocks
    slack = BacktestEV().start_penalty_eur * d["ev_cheapest_hours_starts"] + 1e-3
    assert (d["optimized_eur"] <= d["cheapest_hours_eur"] + slack).all()
    assert (d["ev_optimized_starts"] <= d["ev_cheapest_hours_starts"]).all()


def test_without_start_penalty_optimized_is_never_dearer_than_cheapest_hours() -> None:
    result = backtest_ev_battery(START, "2025-10-25", ev=BacktestEV(start_penalty_eur=0.0))
    d = result.days
    assert (d["optimized_eur"] <= d["cheapest_hours_eur"] + 1e-3).all()
    assert (d["cheapest_hours_eur"] <= d["plug_in_eur"] + 1e-9).all()


def test_totals_are_the_sums_of_the_days(week: BacktestResult) -> None:
    t = week.totals
    assert t["savings_vs_plug_in_eur"] == pytest.approx(week.days["savings_vs_plug_in_eur"].sum())
    assert week.savings_vs_cheapest_hours_eur == pytest.approx(
        t["cheapest_hours_eur"] - t["optimized_eur"]
    )
    assert "mean_price_ct_per_kwh" not in t
    assert "7 windows" in week.summary()


def test_hourly_prices_before_october_2025_and_the_switch_day() -> None:
    result = backtest_ev_battery("2025-09-29", "2025-10-02", battery=None)
    d = result.days
    assert list(d["resolution_minutes"]) == [60, 15, 15]
    assert list(d["slots"]) == [24, 96, 96]
    assert (d["ev_shortfall_kwh"] == 0).all()
    assert "battery_charged_kwh" not in d


def test_given_prices_are_used() -> None:
    idx = pd.date_range("2026-03-28 12:00", "2026-03-30 12:00", freq="15min", tz=BERLIN)[:-1]
    # a flat price except one cheap hour at 03:00 on the spring DST night (23-hour window)
    price = pd.Series(30.0, index=idx)
    cheap = (idx.hour == 4) & (idx.day == 29)  # 04:00 CEST follows 01:59 CET
    price[cheap] = 5.0
    result = backtest_ev_battery(
        "2026-03-28", "2026-03-29", prices=price, battery=None, ev=BacktestEV(energy_kwh=9.2)
    )
    row = result.days.iloc[0]
    assert row["slots"] == 92
    # 10 kWh from the grid: 4 quarter-hours at 11 kW (11 kWh) cover it within the cheap hour
    assert row["ev_optimized_eur"] == pytest.approx(10.0 * 5.0 / 100.0, abs=1e-6)
    assert row["ev_cheapest_hours_eur"] == pytest.approx(10.0 * 5.0 / 100.0, abs=1e-6)
    assert row["ev_plug_in_eur"] == pytest.approx(10.0 * 30.0 / 100.0, abs=1e-6)


def test_cheapest_hours_schedule_fills_the_cheapest_slots_first() -> None:
    idx = pd.date_range("2025-10-26 00:00", periods=8, freq="h", tz=BERLIN)
    price = pd.Series([9.0, 3.0, 7.0, 3.0, 1.0, 8.0, 2.0, 0.5], index=idx)
    kw = cheapest_hours_schedule(
        price, energy_kwh=9.0, max_power_kw=4.0, plug_in=idx[0], departure=idx[7]
    )
    # the 0.5 slot lies outside [plug_in, departure); then 1.0, 2.0, and half of the first 3.0
    assert kw.tolist() == [0.0, 1.0, 0.0, 0.0, 4.0, 0.0, 4.0, 0.0]
    assert float(kw.sum()) == pytest.approx(9.0)


def test_cheapest_hours_schedule_short_window_uses_every_slot() -> None:
    idx = pd.date_range("2026-01-01", periods=4, freq="15min", tz="UTC")
    kw = cheapest_hours_schedule(
        pd.Series(1.0, index=idx),
        energy_kwh=100.0,
        max_power_kw=11.0,
        plug_in=idx[1],
        departure=idx[3],
        efficiency=0.9,
    )
    assert kw.tolist() == [0.0, 11.0, 11.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"ev": None, "battery": None}, "ev, battery"),
        ({"end": "2025-10-22"}, "end"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], word: str) -> None:
    args: dict[str, object] = {"start": START, "end": END, **kwargs}
    with pytest.raises(ValueError, match=word):
        backtest_ev_battery(**args)  # type: ignore[arg-type]


def test_device_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="efficiency"):
        BacktestEV(efficiency=1.5)
    with pytest.raises(ValueError, match="soc_min_kwh"):
        BacktestBattery(capacity_kwh=5.0, soc_min_kwh=6.0)


def test_no_shipped_load_outside_2025_and_2026() -> None:
    with pytest.raises(ValueError, match="base_load_kw"):
        backtest_ev_battery("2024-06-01", "2024-06-02")


def test_public_names() -> None:
    assert wattplan.backtest_ev_battery is backtest_ev_battery
    assert wattplan.cheapest_hours_schedule is cheapest_hours_schedule
