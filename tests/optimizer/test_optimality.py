"""Optimality on tiny instances, against brute force or a solution worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import wattplan
from tests.optimizer.checks import check_plan, recompute_cost_eur
from tests.optimizer.helpers import at, tiny

NO_TIE = {"change_eur_per_kw": 0.0}


@pytest.mark.parametrize(
    "prices",
    [
        [30.0, 10.0, 25.0, 12.0, 40.0, 11.0],
        [20.0, 20.0, 20.0, 20.0, 20.0, 20.0],
        [5.0, -3.0, 18.0, 7.0, -1.0, 30.0],
        [31.0, 29.0, 33.0, 28.0, 35.0, 27.5],
    ],
)
def test_ev_on_off_charging_matches_brute_force(prices: list[float]) -> None:
    # min power = max power: the car charges 11 kW or nothing; 3 whole hours are needed
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11.0,
        "min_power_kw": 11.0,
        "efficiency": 1.0,
        "start_penalty_eur": 0.0,
        "sessions": [{"plug_in": at(0), "departure": at(6), "energy_kwh": 33.0}],
    }
    sc = tiny(prices, [ev], site={"base_load": 0.5}, penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    best = (
        min(
            sum(prices[t] * (11.0 + 0.5) for t in chosen)
            + sum(prices[t] * 0.5 for t in range(6) if t not in chosen)
            for chosen in itertools.combinations(range(6), 3)
        )
        / 100.0
    )
    assert plan.cost_eur == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize(
    "prices", [[30.0, 10.0, 25.0, 12.0, 40.0, 11.0, 9.0], [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0]]
)
def test_appliance_start_matches_brute_force(prices: list[float]) -> None:
    profile = [2.0, 0.5, 1.5]
    app = {
        "kind": "appliance",
        "name": "dishwasher",
        "profile_kw": profile,
        "earliest_start": at(1),
        "latest_end": at(7),
    }
    sc = tiny(prices, [app], penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    best = (
        min(
            sum(prices[s + j] * p for j, p in enumerate(profile))
            for s in range(1, 7 - len(profile) + 1)
        )
        / 100.0
    )
    assert plan.cost_eur == pytest.approx(best, abs=1e-9)


def test_battery_arbitrage_worked_by_hand() -> None:
    # 2 slots of 1 h; load 4 kW in slot 1; price 10 then 50 ct/kWh; battery 10 kWh at 5 kWh,
    # 4 kW each way, 90 % each way, no wear, end SoC free (target 0, stored energy worth 0):
    # slot 0: charge 4 kW (SoC +3.6 kWh); slot 1: discharge 4 kW (SoC -4/0.9) covers the load.
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 10,
        "soc_kwh": 5,
        "end_soc_kwh": 0,
        "max_charge_kw": 4,
        "max_discharge_kw": 4,
        "charge_efficiency": 0.9,
        "discharge_efficiency": 0.9,
        "wear_cost_ct_per_kwh": 0.0,
    }
    site = {"base_load": {"values": [0.0, 4.0]}, "terminal_price_ct_per_kwh": 0.0}
    # (the default tie-break stays: with stored energy worth nothing and no wear, charging
    # and discharging at once would otherwise cost nothing either)
    sc = tiny([10.0, 50.0], [bat], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    # the battery holds 5 kWh: it can cover slot 1 (4 kW needs 4.44 kWh) without charging,
    # and charging at 10 ct only to lose it is pointless: the bill is zero.
    assert plan.cost_eur == pytest.approx(0.0, abs=1e-9)
    sched = plan.schedule
    assert sched["b_discharge_kw"].iloc[1] == pytest.approx(4.0)
    assert sched["b_charge_kw"].iloc[0] == pytest.approx(0.0, abs=1e-9)

    # With the end SoC held at the start (the 'start' rule), the 4.44 kWh must be bought back in
    # slot 0 at 10 ct through 90 % charging: 4.444/0.9 kWh... but charge power caps at 4 kW,
    # so 3.6 kWh come back, the rest of the load is met by importing: verify against hand maths.
    sc2 = sc.with_device_state("b", end_soc_kwh="start")
    plan2 = wattplan.optimize(sc2)
    check_plan(plan2, sc2)
    # Options: (a) no battery: 4 kWh at 50 = 2.00 EUR. (b) charge 4 kW in slot 0 (40 ct),
    # stored 3.6 kWh, discharge 3.24 kW in slot 1 (3.6 kWh stored × 0.9), import 0.76 kW at 50:
    # 0.40 + 0.38 = 0.78 EUR.
    assert plan2.cost_eur == pytest.approx(0.40 + 0.76 * 0.50, abs=1e-6)

    # No floor, stored energy worth 40 ct per kWh delivered: a kWh bought at 10 ct stores
    # 0.9 kWh worth 0.9 × 0.9 × 40 = 32.4 ct, so slot 0 charges at full power (4 kW); in
    # slot 1 a stored kWh covers 0.9 kWh of load worth 45 ct against 36 ct kept: it
    # discharges the 4 kW load. End SoC 5 + 3.6 − 4.444 = 4.156 kWh, bill 0.40 EUR.
    sc3 = tiny(
        [10.0, 50.0],
        [bat | {"end_soc_kwh": None}],
        site=site | {"terminal_price_ct_per_kwh": 40.0},
    )
    plan3 = wattplan.optimize(sc3)
    check_plan(plan3, sc3)
    assert plan3.cost_eur == pytest.approx(0.40, abs=1e-6)
    assert plan3.schedule["b_soc_kwh"].iloc[-1] == pytest.approx(5 + 3.6 - 4 / 0.9, abs=1e-6)
    assert plan3.end_values_eur["b"] == pytest.approx((5 + 3.6 - 4 / 0.9) * 0.9 * 0.40)


def test_heat_pump_preheats_worked_by_hand() -> None:
    # 1R1C with C = 10 kWh/K, U = 0 (no losses), COP 3: heat stays in the house. The house
    # must end at 21 °C from 20 °C, i.e. 10 kWh of heat = 3.333 kWh electric, in the cheaper
    # of two hours (8 kW max): all of it in slot 0 at 10 ct.
    hp = {
        "kind": "heat_pump",
        "name": "hp",
        "max_power_kw": 8.0,
        "cop": 3.0,
        "outdoor_c": 0.0,
        "building": {
            "heat_capacity_kwh_per_k": 10.0,
            "heat_loss_kw_per_k": 1e-9,
            "indoor_c": 20.0,
            "comfort_min_c": 19.0,
            "comfort_max_c": 22.0,
            "end_indoor_c": 21.0,
        },
    }
    sc = tiny([10.0, 30.0], [hp], penalties=NO_TIE, site={"terminal_price_ct_per_kwh": 0.0})
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.cost_eur == pytest.approx(10 / 3 * 0.10, abs=1e-6)
    assert plan.schedule["hp_kw"].iloc[0] == pytest.approx(10 / 3, abs=1e-6)


def test_fifteen_minute_and_hourly_agree_on_hourly_prices() -> None:
    prices_h = [30.0, 12.0, 25.0, 14.0]
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 8.0,
        "min_power_kw": 0.0,
        "efficiency": 1.0,
        "sessions": [{"plug_in": at(0), "departure": at(4), "energy_kwh": 12.0}],
    }
    hourly = wattplan.optimize(tiny(prices_h, [ev], penalties=NO_TIE))
    quarter = wattplan.optimize(
        tiny(list(np.repeat(prices_h, 4)), [ev], resolution="15min", penalties=NO_TIE)
    )
    assert hourly.cost_eur == pytest.approx(quarter.cost_eur, abs=1e-9)
    assert hourly.cost_eur == pytest.approx((8 * 12 + 4 * 14) / 100, abs=1e-9)
    assert recompute_cost_eur(quarter) == pytest.approx(quarter.cost_eur)
