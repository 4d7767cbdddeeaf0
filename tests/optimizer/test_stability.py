"""Plan stability (DESIGN.md §3): a re-plan keeps its running slot and pays for deviations.

Checked on the solved schedules: the first slot keeps the previous powers where the devices
allow it; a previous plan equal to the optimum changes nothing; the stability price is not
money (the bill, the saving and the audit are those of the schedule) and its reported value
is recomputed by hand; the window counts real hours on 23- and 25-hour days.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import wattplan
from tests.optimizer.checks import check_plan
from tests.optimizer.helpers import T0, at
from wattplan import Plan, Scenario, ScenarioError, Stability

DEVICES = ["car_kw", "batt_kw", "hp_kw", "dishwasher_kw"]


def household(
    prices: list[float] | None = None, *, plug_in_h: float = 0.0, **extra: Any
) -> Scenario:
    """Car, battery, heat pump and dishwasher over 12 hours at 15 minutes from T0."""
    prices = prices or [20.0 + 15.0 * np.sin(t / 7.0) + (t % 5) for t in range(48)]
    end = T0 + pd.Timedelta(minutes=15 * len(prices))
    return wattplan.scenario_from_dict(
        {
            "name": "replan",
            "start": T0.isoformat(),
            "end": end.isoformat(),
            "resolution": "15min",
            "prices": {"values": prices},
            "site": {"base_load": 0.6, "pv": 0.0},
            "devices": [
                {
                    "kind": "ev",
                    "name": "car",
                    "max_power_kw": 11,
                    "min_power_kw": 4.2,
                    "sessions": [{"plug_in": at(plug_in_h), "departure": at(11), "energy_kwh": 15}],
                },
                {
                    "kind": "battery",
                    "name": "batt",
                    "capacity_kwh": 10,
                    "soc_kwh": 5,
                    "soc_min_kwh": 1,
                    "max_charge_kw": 4,
                    "max_discharge_kw": 4,
                },
                {
                    "kind": "heat_pump",
                    "name": "hp",
                    "max_power_kw": 3,
                    "outdoor_c": 0.0,
                    "cop": 3.0,
                    "building": {
                        "heat_capacity_kwh_per_k": 7,
                        "heat_loss_kw_per_k": 0.25,
                        "indoor_c": 21,
                        "comfort_min_c": 20,
                        "comfort_max_c": 23,
                    },
                },
                {
                    "kind": "appliance",
                    "name": "dishwasher",
                    "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
                    "profile_minutes": 15,
                    "earliest_start": at(0),
                    "latest_end": at(10),
                },
            ],
            **extra,
        }
    )


def _devices(plan: Plan) -> pd.DataFrame:
    return plan.schedule[DEVICES]


def _valued_bill(plan: Plan) -> float:
    return plan.cost_eur - plan.end_value_eur


def test_without_a_previous_plan_there_is_no_stability_cost() -> None:
    plan = wattplan.optimize(household())
    check_plan(plan, household())
    assert plan.stability_cost_eur is None
    assert plan.to_dict()["stability_cost_eur"] is None
    assert "Stability" not in plan.explanation and "stability" not in plan.summary()


@pytest.mark.parametrize("form", ["plan", "schedule", "json"])
def test_a_previous_plan_equal_to_the_optimum_changes_nothing(form: str) -> None:
    sc = household()
    first = wattplan.optimize(sc)
    previous: Any = {"plan": first, "schedule": first.schedule, "json": first.to_dict()}[form]
    again = wattplan.optimize(sc, previous_plan=previous)
    check_plan(again, sc)
    assert np.abs(_devices(again).to_numpy() - _devices(first).to_numpy()).max() < 1e-6
    assert again.cost_eur == pytest.approx(first.cost_eur, abs=1e-9)
    assert again.savings_eur == pytest.approx(first.savings_eur, abs=1e-9)
    assert again.stability_cost_eur == pytest.approx(0.0, abs=1e-7)
    # the baseline charges the car at plug-in, the frozen first slot does not: the usual
    # behaviour is no longer a point of the model (the running slot is decided already)
    assert first.baseline_feasible and not again.baseline_feasible


def test_the_running_slot_keeps_the_previous_powers() -> None:
    sc = household()
    optimum = wattplan.optimize(sc)
    previous = optimum.schedule.copy()
    # a previous plan that did something else in the first slot (and nothing after it)
    previous.loc[:, DEVICES] = 0.0
    first = previous.index[0]
    previous.loc[first, ["car_kw", "batt_kw", "hp_kw", "dishwasher_kw"]] = [7.0, -1.5, 2.0, 2.0]
    off = Stability(ct_per_kwh=0.0)  # only the freeze
    plan = wattplan.optimize(sc, previous_plan=previous, stability=off)
    check_plan(plan, sc)
    row = plan.schedule.iloc[0]
    assert [row["car_kw"], row["batt_kw"], row["hp_kw"], row["dishwasher_kw"]] == pytest.approx(
        [7.0, -1.5, 2.0, 2.0], abs=1e-6
    )
    # the dishwasher started in the first slot: its programme runs on from there
    assert plan.schedule["dishwasher_kw"].iloc[:6].to_numpy() == pytest.approx(
        [2.0, 2.0, 0.3, 0.3, 1.8, 0.2]
    )
    assert plan.stability_cost_eur == 0.0  # no price, no cost
    # the baseline charges the car at full power in the first slot: not a point of the model
    assert not plan.baseline_feasible
    # without the freeze the first slot is the optimum's again
    free = wattplan.optimize(
        sc, previous_plan=previous, stability=Stability(ct_per_kwh=0, freeze_running_slot=False)
    )
    assert np.abs(_devices(free).to_numpy() - _devices(optimum).to_numpy()).max() < 1e-6


def test_the_freeze_yields_where_a_device_cannot_follow() -> None:
    sc = household(plug_in_h=2.0)  # the car is not plugged in yet
    previous = wattplan.optimize(sc).schedule.copy()
    first = previous.index[0]
    # the car at the wallbox, a battery discharging more than is stored above its floor
    # (4 kWh → at most 15.2 kW for 15 minutes, but only 4 kW allowed), a half-started
    # dishwasher programme
    previous.loc[first, ["car_kw", "batt_kw", "hp_kw", "dishwasher_kw"]] = [11.0, -9.0, 5.0, 0.3]
    plan = wattplan.optimize(sc, previous_plan=previous, stability=Stability(ct_per_kwh=0.0))
    check_plan(plan, sc)
    row = plan.schedule.iloc[0]
    assert row["car_kw"] == 0.0
    # the battery discharges as far as the house takes (base load 0.6 kW + heat pump 3 kW)
    assert row["hp_kw"] == pytest.approx(3.0, abs=1e-6)
    assert row["batt_kw"] == pytest.approx(-3.6, abs=1e-6)
    assert "not frozen: car (not plugged in" in plan.explanation
    assert "dishwasher (the previous plan runs another part" in plan.explanation


def test_the_stability_price_is_not_money() -> None:
    sc = household()
    optimum = wattplan.optimize(sc)
    # the previous plan: made when prices looked different (shifted by two hours)
    old_prices = np.roll(np.asarray(sc.prices.values), 8).tolist()  # type: ignore[union-attr]
    previous = wattplan.optimize(household(old_prices))
    deviations = []
    for ct in (0.5, 5.0, 50.0):
        settings = Stability(ct_per_kwh=ct, hours=6, freeze_running_slot=False)
        plan = wattplan.optimize(sc, previous_plan=previous, stability=settings)
        check_plan(plan, sc)  # the bill and the saving of the schedule, nothing else
        assert plan.baseline_bill_eur == pytest.approx(optimum.baseline_bill_eur, abs=1e-9)
        assert plan.savings_eur == pytest.approx(plan.baseline_cost_eur - plan.cost_eur)
        # keeping to the old plan can only cost money, never save it
        assert _valued_bill(plan) >= _valued_bill(optimum) - 1e-6
        assert plan.savings_eur >= -1e-6  # the baseline cap holds (no frozen slot)
        # its reported value, recomputed by hand: 24 quarter-hours of |new − old|
        moved = (_devices(plan) - _devices(previous)).abs().iloc[:24].to_numpy().sum() * 0.25
        assert plan.stability_cost_eur == pytest.approx(ct / 100 * moved, abs=1e-9)
        assert f"{ct:g} ct/kWh" in plan.explanation
        deviations.append(moved)
    # a dearer deviation keeps the plan closer to the old one
    assert deviations[0] >= deviations[1] - 1e-6 >= deviations[2] - 2e-6
    assert deviations[2] < deviations[0]


def _battery_day(day: str, hours: float) -> tuple[Plan, Scenario]:
    """A battery on a flat price over a whole local day; the previous plan charged 1 kW.

    Following it only loses energy (and pays wear), so the plan stays idle and deviates by
    exactly 1 kW in every slot: the stability cost counts the slots of the window.
    """
    start = pd.Timestamp(day, tz="Europe/Berlin")
    end = start + pd.offsets.Day(1)  # the next local midnight (23 or 25 hours later)
    sc = wattplan.scenario_from_dict(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": "15min",
            "prices": {"values": [30.0] * int((end - start) / pd.Timedelta(minutes=15))},
            "devices": [
                {
                    "kind": "battery",
                    "name": "batt",
                    "capacity_kwh": 100,
                    "soc_kwh": 50,
                    "max_charge_kw": 1,
                    "max_discharge_kw": 1,
                }
            ],
            "stability": {"ct_per_kwh": 0.5, "hours": hours, "freeze_running_slot": False},
        }
    )
    idx = pd.date_range(
        start.tz_convert("UTC"), end.tz_convert("UTC"), freq="15min", inclusive="left"
    )
    previous = pd.DataFrame({"batt_kw": 1.0}, index=idx)
    return wattplan.optimize(sc, previous_plan=previous), sc


@pytest.mark.parametrize(
    ("day", "hours", "slots"),
    [
        ("2026-03-29", 6, 24),  # 23-hour day: 00:00–07:00 local are 6 real hours
        ("2026-03-29", 23, 92),
        ("2026-03-29", 24, 92),  # the window ends with the horizon
        ("2025-10-26", 6, 24),  # 25-hour day: 00:00–05:00 local are 6 real hours
        ("2025-10-26", 25, 100),
        ("2026-01-20", 6, 24),
    ],
)
def test_the_window_counts_real_hours_on_dst_days(day: str, hours: float, slots: int) -> None:
    plan, sc = _battery_day(day, hours)
    check_plan(plan, sc)
    assert (plan.schedule["batt_kw"].abs() < 1e-9).all()
    assert plan.stability_cost_eur == pytest.approx(0.005 * 1.0 * 0.25 * slots, abs=1e-9)


def test_an_hourly_previous_plan_freezes_its_hour_on_quarter_hours() -> None:
    sc = household()
    optimum = wattplan.optimize(sc)
    hourly = _devices(optimum).resample("60min").mean()
    hourly.loc[:, :] = 0.0
    hourly.iloc[0, hourly.columns.get_loc("hp_kw")] = 1.25
    plan = wattplan.optimize(sc, previous_plan=hourly, stability=Stability(ct_per_kwh=0))
    check_plan(plan, sc)
    assert plan.schedule["hp_kw"].iloc[0] == pytest.approx(1.25, abs=1e-6)


def test_bad_previous_plans_and_settings_name_the_key() -> None:
    sc = household()
    naive = pd.DataFrame({"hp_kw": [1.0]}, index=pd.DatetimeIndex(["2026-01-20 00:00"]))
    with pytest.raises(ScenarioError) as info:
        wattplan.optimize(sc, previous_plan=naive)
    assert info.value.key == "previous_plan" and "tz-aware" in info.value.reason
    with pytest.raises(ScenarioError) as info:
        wattplan.optimize(sc, previous_plan=[1, 2, 3])
    assert info.value.key == "previous_plan"
    with pytest.raises(ScenarioError) as info:
        wattplan.optimize(sc, previous_plan={"schedule": [{"start": "2026-01-20T00:00"}]})
    assert info.value.key == "previous_plan.schedule[0].start"
    with pytest.raises(ScenarioError) as info:
        household(stability={"ct_per_kwh": -1})
    assert info.value.key == "stability.ct_per_kwh"
    with pytest.raises(ScenarioError) as info:
        household(stability={"hours": 1000})
    assert info.value.key == "stability.hours"


def test_a_freeze_that_the_model_cannot_keep_is_dropped_not_failed() -> None:
    # on at 6 kW in the first slot means a whole hour at ≥ 4.2 kW (minimum run time), far
    # beyond the 1.5 kWh the car may take: the clamps cannot see that, the solver can
    car = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11,
        "min_power_kw": 4.2,
        "min_run_minutes": 60,
        "sessions": [{"plug_in": at(0), "departure": at(4), "energy_kwh": 1.5}],
    }
    sc = wattplan.scenario_from_dict(
        {
            "start": at(0),
            "end": at(4),
            "resolution": "15min",
            "prices": {"values": [30.0] * 16},
            "devices": [car],
        }
    )
    previous = pd.DataFrame(
        {"car_kw": [6.0] + [0.0] * 15}, index=wattplan.optimize(sc).schedule.index
    )
    plan = wattplan.optimize(sc, previous_plan=previous)
    check_plan(plan, sc)
    assert plan.ok
    assert "not frozen: car (infeasible with the other devices' state)" in plan.explanation


def test_previous_powers_are_averaged_over_each_new_slot_where_fully_covered() -> None:
    from wattplan.optimizer._stability import _aligned, previous_frame

    hours = pd.date_range("2026-03-29 00:00", periods=3, freq="60min", tz="UTC")
    hourly = pd.Series([1.0, 2.0, np.nan], index=hours)
    quarters = pd.date_range("2026-03-29 00:30", periods=8, freq="15min", tz="UTC")
    # 15-minute slots inside an hour take that hour's power; the NaN hour covers nothing
    np.testing.assert_array_equal(
        _aligned(hourly, quarters, 60, 15), [1.0, 1.0, 2.0, 2.0, 2.0, 2.0, np.nan, np.nan]
    )
    fine = pd.Series(
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        index=pd.date_range("2026-03-29 00:00", periods=6, freq="15min", tz="UTC"),
    ).drop(pd.Timestamp("2026-03-29 01:15", tz="UTC"))
    grid = pd.date_range("2026-03-28 23:00", periods=3, freq="60min", tz="UTC")
    # an hour is the mean of its four quarter-hours; a missing one leaves it uncovered
    np.testing.assert_array_equal(_aligned(fine, grid, 15, 60), [np.nan, 2.5, np.nan])
    # a plan's JSON form gives the frame of its schedule
    plan = wattplan.optimize(household())
    doc = plan.to_dict()
    from_doc, minutes = previous_frame(doc)
    from_plan, _ = previous_frame(plan)
    assert minutes == 15
    pd.testing.assert_frame_equal(
        from_doc, from_plan[from_doc.columns], check_freq=False, check_names=False, atol=1e-3
    )
