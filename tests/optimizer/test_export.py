"""Export beyond PV (``site.export_only_pv: false``) and bidirectional cars (``v2h``).

Solved schedules are audited by ``checks.check_plan``; tiny instances are compared with
brute force over every sequence of full-power actions (with efficiencies of 1 and whole
kWh everywhere the linear program has an optimum among them).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wattplan
from tests.optimizer.checks import check_plan
from tests.optimizer.helpers import at, tiny
from tests.optimizer.test_end_value import households
from wattplan import PlanStatus, Scenario, ScenarioError

NO_TIE = {"change_eur_per_kw": 0.0}

BATTERY: dict[str, Any] = {
    "kind": "battery",
    "name": "b",
    "capacity_kwh": 10,
    "soc_kwh": 5,
    "max_charge_kw": 3,
    "max_discharge_kw": 3,
}

V2H_CAR: dict[str, Any] = {
    "kind": "ev",
    "name": "car",
    "max_power_kw": 11,
    "capacity_kwh": 60,
    "v2h": True,
    "v2h_min_soc_kwh": 20,
    "sessions": [
        {"plug_in": at(0), "departure": at(4), "soc_kwh": 30, "target_soc_kwh": 40},
    ],
}


# --- item 3: never import and export in one slot -----------------------------------------


@pytest.mark.parametrize("devices", [[], [BATTERY]])
@pytest.mark.parametrize("only_pv", [True, False])
def test_equal_import_and_feed_in_prices_never_import_and_export_at_once(
    devices: list[dict[str, Any]], only_pv: bool
) -> None:
    # Importing 1 kW while exporting 1 kW more costs nothing when both prices are 10 ct and
    # there is no tie-break; the solver used to return such plans (3 of 4 slots).
    site = {
        "feed_in_ct_per_kwh": 10.0,
        "pv": [3.0, 6.0, 9.0, 2.0],
        "base_load": 1.0,
        "export_only_pv": only_pv,
    }
    sc = tiny([10.0] * 4, devices, site=site, penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)  # asserts no slot with both import and export
    df = plan.schedule
    assert not ((df.grid_import_kw > 1e-9) & (df.grid_export_kw > 1e-9)).any()
    if not devices:
        assert df.grid_export_kw.tolist() == pytest.approx([2.0, 5.0, 8.0, 1.0])
        assert plan.cost_eur == pytest.approx(-1.60)


def test_equal_prices_with_an_ev_net_import_against_export() -> None:
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11,
        "min_power_kw": 0,
        "sessions": [{"plug_in": at(0), "departure": at(4), "energy_kwh": 20}],
    }
    site = {"feed_in_ct_per_kwh": 10.0, "pv": [3.0, 6.0, 9.0, 2.0], "base_load": 1.0}
    sc = tiny([10.0] * 4, [ev], site=site, penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)


# --- the default stays as it was ------------------------------------------------------------


def test_by_default_a_battery_never_exports_beyond_pv() -> None:
    # 10 ct now, 40 ct feed-in later: selling the battery would pay, but not by default
    site = {"feed_in_ct_per_kwh": [8.0, 8.0, 35.0, 35.0], "base_load": 1.0}
    sc = tiny([10.0, 10.0, 40.0, 40.0], [BATTERY], site=site)
    explicit = tiny([10.0, 10.0, 40.0, 40.0], [BATTERY], site=site | {"export_only_pv": True})
    plan, same = wattplan.optimize(sc), wattplan.optimize(explicit)
    check_plan(plan, sc)
    assert plan.schedule.grid_export_kw.max() == pytest.approx(0.0, abs=1e-9)
    assert "b_export_kw" not in plan.schedule
    assert plan.schedule.equals(same.schedule) and plan.cost_eur == same.cost_eur


def test_a_car_without_v2h_has_no_discharge_columns() -> None:
    car = {k: v for k, v in V2H_CAR.items() if k not in ("v2h", "v2h_min_soc_kwh")}
    sc = tiny([10.0, 50.0, 12.0, 20.0], [car])
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert not any(c.startswith("car_") and "discharge" in c for c in plan.schedule)
    assert (plan.schedule.car_kw >= 0).all()


# --- export beyond PV, worked by hand ---------------------------------------------------------


def test_battery_sells_to_the_grid_when_it_pays_worked_by_hand() -> None:
    # 2 slots of 1 h, no load, no PV. Battery 4 kWh at 0, 4 kW each way, 100 % efficient,
    # wear 2 ct. Buy at 10 ct, sell at 30 ct feed-in: 4 kWh × (30 − 10 − 2) ct = 0.72 EUR
    # gained, with the stored energy worth nothing at the end.
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 4,
        "soc_kwh": 0,
        "max_charge_kw": 4,
        "max_discharge_kw": 4,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "wear_cost_ct_per_kwh": 2.0,
    }
    site = {
        "feed_in_ct_per_kwh": [0.0, 30.0],
        "export_only_pv": False,
        "terminal_price_ct_per_kwh": 0.0,
    }
    sc = tiny([10.0, 50.0], [bat], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    df = plan.schedule
    assert df.b_charge_kw.tolist() == pytest.approx([4.0, 0.0], abs=1e-6)
    assert df.b_export_kw.tolist() == pytest.approx([0.0, 4.0], abs=1e-6)
    assert plan.cost_eur == pytest.approx(0.40 - 1.20, abs=1e-6)
    assert plan.device_costs_eur["b"] == pytest.approx(0.40 - 1.20, abs=1e-6)
    assert "4.0 kWh of it to the grid at 30.0 ct/kWh" in plan.explanation
    assert plan.savings_eur == pytest.approx(0.80, abs=1e-6)

    # efficiencies of 0.9 each way: a kWh bought at 10 ct sells 0.81 kWh at 30 ct
    # (24.3 ct) less 0.9 × 2 ct wear: still pays
    lossy = tiny(
        [10.0, 50.0],
        [bat | {"charge_efficiency": 0.9, "discharge_efficiency": 0.9, "capacity_kwh": 3.6}],
        site=site,
    )
    plan = wattplan.optimize(lossy)
    check_plan(plan, lossy)
    assert plan.schedule.b_export_kw.iloc[1] == pytest.approx(3.6 * 0.9, abs=1e-6)
    assert plan.cost_eur == pytest.approx(0.40 - 3.24 * 0.30, abs=1e-6)

    # wear above the spread: it stays idle
    worn = tiny([10.0, 50.0], [bat | {"wear_cost_ct_per_kwh": 25.0}], site=site)
    plan = wattplan.optimize(worn)
    check_plan(plan, worn)
    assert plan.schedule.grid_export_kw.max() == pytest.approx(0.0, abs=1e-9)


def test_the_terminal_value_keeps_energy_that_is_worth_more_than_the_feed_in() -> None:
    # the battery holds 4 kWh; feed-in 20 ct, but stored energy is worth 25 ct: keep it
    bat = BATTERY | {
        "capacity_kwh": 4,
        "soc_kwh": 4,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "wear_cost_ct_per_kwh": 0.0,
    }
    site = {"feed_in_ct_per_kwh": 20.0, "export_only_pv": False}
    keep = tiny([30.0, 30.0], [bat], site=site | {"terminal_price_ct_per_kwh": 25.0})
    plan = wattplan.optimize(keep)
    check_plan(plan, keep)
    assert plan.schedule.grid_export_kw.max() == pytest.approx(0.0, abs=1e-9)
    sell = tiny([30.0, 30.0], [bat], site=site | {"terminal_price_ct_per_kwh": 15.0})
    plan = wattplan.optimize(sell)
    check_plan(plan, sell)
    assert plan.schedule.b_export_kw.sum() == pytest.approx(4.0, abs=1e-6)


# --- v2h, worked by hand ---------------------------------------------------------------------


def test_v2h_car_covers_the_evening_peak_and_still_meets_its_target() -> None:
    # the car arrives with 30 kWh and must leave with 40; 50 ct in hour 1: it covers the
    # 1 kW house load from its battery there and charges the rest in the cheap hours
    site = {"base_load": 1.0}
    sc = tiny([10.0, 50.0, 12.0, 20.0], [V2H_CAR], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    df = plan.schedule
    assert df.car_discharge_kw.iloc[1] == pytest.approx(1.0, abs=1e-6)
    assert df.grid_import_kw.iloc[1] == pytest.approx(0.0, abs=1e-6)
    assert df.car_soc_kwh.iloc[-1] == pytest.approx(40.0, abs=1e-4)
    assert "car_export_kw" not in df  # export only from PV by default
    assert "gives back 1.0 kWh" in plan.explanation
    assert plan.savings_eur > 0


def test_v2h_car_sells_to_the_grid_only_when_allowed() -> None:
    site = {"base_load": 1.0, "feed_in_ct_per_kwh": [8.0, 45.0, 8.0, 8.0], "export_only_pv": False}
    sc = tiny([10.0, 50.0, 12.0, 20.0], [V2H_CAR], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    df = plan.schedule
    # full discharge power (11 kW) in hour 1: 1 kW for the house, 10 kW to the grid
    assert df.car_discharge_kw.iloc[1] == pytest.approx(11.0, abs=1e-6)
    assert df.car_export_kw.iloc[1] == pytest.approx(10.0, abs=1e-6)
    assert df.car_soc_kwh.iloc[-1] == pytest.approx(40.0, abs=1e-4)
    assert (df.car_soc_kwh >= 20.0 - 1e-6).all()


def test_v2h_never_draws_the_car_below_its_minimum() -> None:
    # discharging all evening would pay; the minimum SoC of 28 kWh leaves 2 kWh to give
    car = V2H_CAR | {"v2h_min_soc_kwh": 28.0}
    site = {"base_load": 5.0}
    sc = tiny([10.0, 80.0, 80.0, 12.0], [car], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.schedule.car_soc_kwh.min() >= 28.0 - 1e-6
    # a car that arrives below its minimum does not discharge in that session
    low = V2H_CAR | {
        "sessions": [{"plug_in": at(0), "departure": at(4), "soc_kwh": 10, "target_soc_kwh": 40}]
    }
    sc = tiny([10.0, 80.0, 80.0, 12.0], [low], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.schedule.car_discharge_kw.max() == pytest.approx(0.0, abs=1e-9)


def test_v2h_without_soc_gives_back_only_what_it_took() -> None:
    car = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11,
        "v2h": True,
        "sessions": [{"plug_in": at(0), "departure": at(4), "energy_kwh": 5.0}],
    }
    sc = tiny([50.0, 10.0, 80.0, 20.0], [car], site={"base_load": 3.0})
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)  # asserts the path never goes below the plug-in level
    assert plan.schedule.car_discharge_kw.iloc[2] > 1.0


def test_v2h_is_switched_off_through_the_device_state() -> None:
    car = V2H_CAR | {"max_discharge_kw": 7.0, "wear_cost_ct_per_kwh": 4.0}
    sc = tiny([10.0, 50.0, 12.0, 20.0], [car], site={"base_load": 1.0})
    off = sc.with_device_state("car", v2h=False)
    dev = off.device("car")
    assert isinstance(dev, wattplan.EV) and not dev.v2h and dev.max_discharge_kw is None
    plan = wattplan.optimize(off)
    check_plan(plan, off)
    assert (plan.schedule.car_kw >= 0).all()
    on = off.with_device_state("car", v2h=True, max_discharge_kw=3.0)
    assert on.device("car").max_discharge_kw == 3.0  # type: ignore[union-attr]


def test_a_running_v2h_discharge_is_frozen_within_its_floor_and_the_house() -> None:
    from wattplan import Stability

    sc = tiny([50.0, 10.0, 12.0, 20.0], [V2H_CAR], site={"base_load": 1.0})
    previous = wattplan.optimize(sc).schedule.copy()
    first = previous.index[0]
    off = Stability(ct_per_kwh=0.0)
    for asked, kept in ((-0.5, -0.5), (-8.0, -1.0)):  # at most what the house draws
        previous.loc[first, "car_kw"] = asked
        plan = wattplan.optimize(sc, previous_plan=previous, stability=off)
        check_plan(plan, sc)
        assert plan.schedule["car_kw"].iloc[0] == pytest.approx(kept, abs=1e-6)
    # 0.5 kWh stored above v2h_min_soc_kwh: 0.46 kW for an hour through 92 %
    low = tiny(
        [50.0, 10.0, 12.0, 20.0],
        [V2H_CAR | {"v2h_min_soc_kwh": 29.5}],
        site={"base_load": 1.0},
    )
    previous.loc[first, "car_kw"] = -1.0
    plan = wattplan.optimize(low, previous_plan=previous, stability=off)
    check_plan(plan, low)
    assert plan.schedule["car_kw"].iloc[0] == pytest.approx(-0.5 * 0.92, abs=1e-6)


def test_a_full_household_selling_and_with_v2h_passes_the_audit() -> None:
    # feed-in 10 ct below the import price in every slot (like spot-indexed direct
    # marketing): selling pays only across the day's spread, after losses and wear
    sc = wattplan.load_scenario("scenarios/full-household-48h.yaml")
    prices = np.asarray(sc.prices.to_timeseries().values)  # type: ignore[union-attr]
    data = sc.model_dump()
    data["site"]["export_only_pv"] = False
    data["site"]["feed_in_ct_per_kwh"] = (prices - 10.0).tolist()
    for dev in data["devices"]:
        if dev["kind"] == "ev":
            dev |= {"v2h": True, "capacity_kwh": 60.0, "v2h_min_soc_kwh": 20.0}
            for s in dev["sessions"]:
                s["soc_kwh"] = 30.0
    sc = wattplan.scenario_from_dict(data)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.status is PlanStatus.OPTIMAL
    df = plan.schedule
    assert df["home-battery_export_kw"].sum() + df["car_export_kw"].sum() > 4.0
    assert df["car_discharge_kw"].sum() > 4.0  # the car gives some of its energy back
    assert plan.baseline_feasible and plan.savings_eur >= -1e-6


# --- brute force on tiny instances -------------------------------------------------------------


def _brute_force(
    sc: Scenario,
    *,
    actions: tuple[float, ...],
    soc0: float,
    lo: float,
    hi: float,
    wear_ct: float,
    ev: bool,
) -> float:
    """The least valued cost (bill − end value + wear) over every sequence of storage
    actions (kW, + charging) that keeps the SoC within [lo, hi], with efficiencies of 1 and
    the whole horizon plugged in; an EV must end at its target. With whole kW and kWh in
    the data the linear program has an optimum among whole-kW actions. The baseline cap of
    the model applies (valued bill at most the baseline's)."""
    site = sc.site
    n = len(sc.prices.values or [])  # type: ignore[union-attr]
    price = np.asarray(sc.prices.values, dtype=float)  # type: ignore[union-attr]
    feed = _arr(site.feed_in_ct_per_kwh, n)
    load = _arr(site.base_load, n)
    pv = _arr(site.pv, n)
    terminal = float(site.terminal_price_ct_per_kwh or 0.0)
    cap = _cap(sc)
    best = np.inf
    for acts in itertools.product(actions, repeat=n):
        a = np.asarray(acts)
        soc = soc0 + np.cumsum(a)
        if soc.min() < lo - 1e-9 or soc.max() > hi + 1e-9:
            continue
        if site.export_only_pv and (load + a < -1e-9).any():
            continue  # export beyond PV (export ≤ PV used needs load + action ≥ 0)
        # PV used: all, none (paid to import) or just what the slot needs
        slot_ct = np.full(n, np.inf)
        for used in (pv, np.zeros(n), np.clip(load + a, 0.0, pv)):
            net = load + a - used  # what the grid supplies
            slot_ct = np.minimum(slot_ct, np.where(net > 0, price * net, feed * net))
        bill = float(slot_ct.sum()) / 100
        if ev:
            target = sc.devices[0].sessions[0]  # type: ignore[union-attr]
            if soc[-1] < soc0 + target.needed_kwh() - 1e-9:
                continue
            value = terminal * (soc[-1] - soc0 - target.needed_kwh()) / 100
        else:
            value = terminal * (soc[-1] - lo) / 100
        wear = wear_ct * float(np.clip(-a, 0, None).sum()) / 100
        valued = bill - value
        best = min(best, valued + wear) if valued <= cap + 1e-9 else best
    return best


def _arr(v: Any, n: int) -> np.ndarray:
    if isinstance(v, float | int):
        return np.full(n, float(v))
    return np.asarray(v.values, dtype=float)


def _cap(sc: Scenario) -> float:
    plan = wattplan.optimize(sc)
    return plan.baseline_bill_eur - plan.baseline_end_value_eur if plan.baseline_feasible else 1e9


def _plan_objective(sc: Scenario, wear_ct: float) -> float:
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.status is PlanStatus.OPTIMAL
    name = sc.devices[0].name
    wear = wear_ct * float(plan.schedule[f"{name}_discharge_kw"].sum()) / 100
    return plan.cost_eur - plan.end_value_eur + wear


PRICE_CASES = [
    ([10.0, 40.0, 12.0, 35.0, 8.0, 30.0], [5.0, 30.0, 5.0, 30.0, 5.0, 5.0]),
    ([30.0, 30.0, 10.0, 10.0, 45.0, 20.0], [0.0, 0.0, 0.0, 25.0, 40.0, 10.0]),
    ([20.0, 20.0, 20.0, 20.0, 20.0, 20.0], [20.0, 20.0, 20.0, 20.0, 20.0, 20.0]),
    # negative import prices below the feed-in: direction binaries for import and export
    ([-5.0, 20.0, -10.0, 30.0, 8.0, 25.0], [7.0, 7.0, 0.0, 20.0, 7.0, 7.0]),
]


@pytest.mark.parametrize(("prices", "feed"), PRICE_CASES)
@pytest.mark.parametrize("only_pv", [True, False])
def test_battery_matches_brute_force(prices: list[float], feed: list[float], only_pv: bool) -> None:
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 3,
        "soc_kwh": 1,
        "max_charge_kw": 1,
        "max_discharge_kw": 1,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "wear_cost_ct_per_kwh": 2.0,
    }
    site = {
        "feed_in_ct_per_kwh": feed,
        "base_load": [1.0, 0.0, 2.0, 0.0, 1.0, 0.0],
        "pv": [0.0, 2.0, 0.0, 1.0, 0.0, 0.0],
        "export_only_pv": only_pv,
        "terminal_price_ct_per_kwh": 15.0,
    }
    sc = tiny(prices, [bat], site=site, penalties=NO_TIE)
    acts = (-1.0, 0.0, 1.0)
    best = _brute_force(sc, actions=acts, soc0=1.0, lo=0.0, hi=3.0, wear_ct=2.0, ev=False)
    assert _plan_objective(sc, 2.0) == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize(("prices", "feed"), PRICE_CASES)
@pytest.mark.parametrize("only_pv", [True, False])
def test_v2h_car_matches_brute_force(prices: list[float], feed: list[float], only_pv: bool) -> None:
    # 2 kW each way or nothing (minimum power = maximum), 100 % efficient, SoC 4 kWh of 8
    # at plug-in, never below 2, must end at 6 and may take up to 8 (the rest worth 15 ct)
    car = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 2.0,
        "min_power_kw": 2.0,
        "efficiency": 1.0,
        "capacity_kwh": 8.0,
        "start_penalty_eur": 0.0,
        "v2h": True,
        "discharge_efficiency": 1.0,
        "wear_cost_ct_per_kwh": 3.0,
        "v2h_min_soc_kwh": 2.0,
        "sessions": [
            {
                "plug_in": at(0),
                "departure": at(6),
                "soc_kwh": 4.0,
                "target_soc_kwh": 6.0,
                "max_soc_kwh": 8.0,
            }
        ],
    }
    site = {
        "feed_in_ct_per_kwh": feed,
        "base_load": [1.0, 3.0, 2.0, 0.0, 2.0, 1.0],
        "pv": [0.0, 4.0, 0.0, 2.0, 0.0, 0.0],
        "export_only_pv": only_pv,
        "terminal_price_ct_per_kwh": 15.0,
    }
    sc = tiny(prices, [car], site=site, penalties=NO_TIE)
    acts = (-2.0, -1.0, 0.0, 2.0)  # charging at 2 kW or not at all; discharging at any power
    best = _brute_force(sc, actions=acts, soc0=4.0, lo=2.0, hi=8.0, wear_ct=3.0, ev=True)
    assert _plan_objective(sc, 3.0) == pytest.approx(best, abs=1e-6)


# --- the saving property with the new options ----------------------------------------------


@st.composite
def selling_households(draw: st.DrawFn) -> Scenario:
    sc = draw(households())
    data = sc.model_dump()
    data["site"]["export_only_pv"] = draw(st.booleans())
    data["site"]["feed_in_ct_per_kwh"] = draw(st.sampled_from([0.0, 7.78, 25.0, 40.0]))
    for dev in data["devices"]:
        if dev["kind"] == "ev" and draw(st.booleans()):
            dev["v2h"] = True
            dev["capacity_kwh"] = 80.0
            dev["v2h_min_soc_kwh"] = draw(st.sampled_from([None, 10.0]))
            dev["discharge_efficiency"] = draw(st.sampled_from([None, 0.9]))
            if draw(st.booleans()):
                dev["sessions"][0]["soc_kwh"] = draw(st.sampled_from([5.0, 30.0]))
    return wattplan.scenario_from_dict(data)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(selling_households())
def test_selling_plans_pass_the_audit_and_never_report_a_negative_saving(sc: Scenario) -> None:
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    if plan.status is PlanStatus.OPTIMAL and plan.baseline_feasible:
        assert plan.savings_eur >= -1e-6, plan.explanation


# --- validation: bad values name the key -------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"v2h": False, "max_discharge_kw": 5.0}, "devices[0].max_discharge_kw", "v2h: true"),
        ({"v2h": False, "discharge_efficiency": 0.9}, "devices[0].discharge_efficiency", "v2h"),
        ({"v2h": False, "wear_cost_ct_per_kwh": 3.0}, "devices[0].wear_cost_ct_per_kwh", "v2h"),
        ({"v2h": False}, "devices[0].v2h_min_soc_kwh", "v2h: true"),
        ({"v2h_min_soc_kwh": 61.0}, "devices[0].v2h_min_soc_kwh", "exceeds capacity_kwh"),
        ({"v2h_min_soc_kwh": -1.0}, "devices[0].v2h_min_soc_kwh", "greater than or equal"),
        ({"discharge_efficiency": 1.5}, "devices[0].discharge_efficiency", "less than or equal"),
        ({"discharge_efficiency": 0.0}, "devices[0].discharge_efficiency", "greater than 0"),
        ({"max_discharge_kw": 0.0}, "devices[0].max_discharge_kw", "greater than 0"),
        ({"max_discharge_kw": 1e300}, "devices[0].max_discharge_kw", "less than or equal"),
        ({"wear_cost_ct_per_kwh": -1.0}, "devices[0].wear_cost_ct_per_kwh", "greater than"),
        ({"v2h": "maybe"}, "devices[0].v2h", "boolean"),
    ],
)
def test_bad_v2h_values_name_the_key(change: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 4, [V2H_CAR | change])
    assert exc.value.key == key, str(exc.value)
    assert reason in exc.value.reason


def test_bad_export_only_pv_names_the_key() -> None:
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 4, site={"export_only_pv": "maybe"})
    assert exc.value.key == "site.export_only_pv"


def test_the_schema_documents_the_new_keys() -> None:
    defs = wattplan.scenario_json_schema()["$defs"]
    ev, site = defs["EV"]["properties"], defs["Site"]["properties"]
    for key in ("v2h", "max_discharge_kw", "discharge_efficiency", "wear_cost_ct_per_kwh"):
        assert ev[key]["description"], key
    assert "grid" in ev["v2h"]["description"]
    assert "v2h_min_soc_kwh" in ev
    assert site["export_only_pv"]["default"] is True and site["export_only_pv"]["description"]
    bounded = ev["max_discharge_kw"]["anyOf"][0]
    assert bounded["maximum"] == 1000 and bounded["exclusiveMinimum"] == 0
