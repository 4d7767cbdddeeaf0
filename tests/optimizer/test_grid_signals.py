"""Grid signals (§14a EnWG): a time-varying import limit and dimming windows per device."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import wattplan
from tests.optimizer.checks import check_plan, dimming_caps, import_limit_kw
from tests.optimizer.helpers import at, tiny
from wattplan import PlanStatus, ScenarioError
from wattplan.optimizer._inputs import prepare
from wattplan.optimizer._model import build_model

SCENARIOS = Path(__file__).parents[2] / "scenarios"
NO_TIE = {"change_eur_per_kw": 0.0}


def _ev(
    energy: float,
    *,
    dimming: list[dict[str, Any]] | None = None,
    departure: float = 6,
    **extra: Any,
) -> dict:
    return {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11.0,
        "min_power_kw": 0.0,
        "efficiency": 1.0,
        "start_penalty_eur": 0.0,
        "sessions": [{"plug_in": at(0), "departure": at(departure), "energy_kwh": energy}],
        "dimming": dimming or [],
        **extra,
    }


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "key", "words"),
    [
        ({"start": at(3), "end": at(2)}, "devices[0].dimming[0].end", "after start"),
        ({"start": at(2), "end": at(2)}, "devices[0].dimming[0].end", "after start"),
        ({"start": at(1), "end": at(2), "max_kw": -1}, "devices[0].dimming[0].max_kw", "0"),
        ({"start": "2026-01-20T01:00:00", "end": at(2)}, "devices[0].dimming[0].start", "zone"),
        ({"start": at(1), "end": at(2), "kw": 3}, "devices[0].dimming[0].kw", "not permitted"),
        ({"end": at(2)}, "devices[0].dimming[0].start", "required"),
    ],
)
def test_bad_dimming_window_names_the_key(window: dict, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 6, [_ev(5.0, dimming=[window])])
    assert exc.value.key == key
    assert words in exc.value.reason


def test_dimming_defaults_to_the_section_14a_minimum() -> None:
    sc = tiny([10.0] * 6, [_ev(5.0, dimming=[{"start": at(1), "end": at(2)}])])
    assert sc.devices[0].dimming[0].max_kw == 4.2  # type: ignore[union-attr]


def test_appliances_take_no_dimming() -> None:
    app = {
        "kind": "appliance",
        "name": "dw",
        "profile_kw": [1.0],
        "earliest_start": at(0),
        "latest_end": at(3),
        "dimming": [{"start": at(1), "end": at(2)}],
    }
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 3, [app])
    assert exc.value.key == "devices[0].dimming"


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        (0, "greater than 0"),
        (-3, "greater than 0"),
        ([5.0, 5.0, 0.0, 5.0], "positive in every slot"),
        ([5.0, 5.0, -1.0, 5.0], "plausible range"),
        ([5.0, 5.0, 5.0], "has 3 values but the horizon has 4 slots"),
        ({"values": [5.0, 2e6, 5.0, 5.0]}, "less than or equal to 1000000"),
    ],
)
def test_bad_import_limit_names_the_key(limit: Any, words: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        wattplan.optimize(tiny([10.0] * 4, site={"grid_import_limit_kw": limit}))
    assert exc.value.key == "site.grid_import_limit_kw"
    assert words in str(exc.value)


# --- the solved schedule -----------------------------------------------------------------


def test_dimmed_slots_hold_the_cap_and_partial_overlap_caps_the_whole_slot() -> None:
    # 01:00-02:30 dims slots 1 and 2 (slot 2 only half covered); cheap prices there
    prices = [30.0, 5.0, 6.0, 7.0, 40.0, 35.0]
    sc = tiny(prices, [_ev(30.0, dimming=[{"start": at(1), "end": at(2.5)}])], penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    kw = plan.schedule.car_kw.to_numpy()
    assert kw[1] == pytest.approx(4.2) and kw[2] == pytest.approx(4.2)
    assert kw[3] == pytest.approx(11.0)
    # undimmed: 11 kW in the three cheap slots (33 kWh > 30: 8 kW in the dearest of them);
    # dimmed: 4.2 in slots 1 and 2, so (11 − 4.2) and (8 − 4.2) kWh move out of them
    assert plan.dimming_moved_kwh == pytest.approx(6.8 + 6.8)
    assert plan.dimming_moved_kwh_by_device == {"car": pytest.approx(13.6)}
    assert "Grid signal (§14a EnWG): dimmed car to 4.2 kW" in plan.explanation
    assert "dimming       13.60 kWh moved" in plan.summary()
    assert "13.60 kWh moved (grid signals)" in plan._repr_html_()
    assert plan.to_dict()["dimming_moved_kwh"] == pytest.approx(13.6)


def test_pv_may_cover_power_above_the_cap() -> None:
    # PV 8 kW in the dimmed slots: the car may draw 4.2 kW from the grid plus the PV
    sc = tiny(
        [20.0] * 4,
        [_ev(44.0, dimming=[{"start": at(0), "end": at(4)}], departure=4)],
        site={"pv": 8.0, "feed_in_ct_per_kwh": 0.0},
        penalties=NO_TIE,
    )
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.schedule.car_kw.to_numpy() == pytest.approx([11.0] * 4)
    assert plan.schedule.grid_import_kw.to_numpy() == pytest.approx([3.0] * 4)


def test_a_dimmed_battery_charges_within_its_cap_from_the_grid() -> None:
    bat = {
        "kind": "battery",
        "name": "bat",
        "capacity_kwh": 20,
        "soc_kwh": 0,
        "max_charge_kw": 10,
        "max_discharge_kw": 10,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "wear_cost_ct_per_kwh": 0.0,
        "dimming": [{"start": at(0), "end": at(2), "max_kw": 3.0}],
    }
    sc = tiny([5.0, 5.0, 50.0, 50.0], [bat], site={"base_load": 4.0}, penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.schedule.bat_charge_kw.to_numpy()[:2] == pytest.approx([3.0, 3.0])


def test_a_cap_that_makes_the_target_unreachable_is_a_shortfall() -> None:
    ev = _ev(30.0, dimming=[{"start": at(0), "end": at(6)}])
    plan = wattplan.optimize(tiny([20.0] * 6, [ev]))
    assert plan.status is PlanStatus.FEASIBLE_WITH_SHORTFALL
    (short,) = plan.shortfalls
    assert short.amount == pytest.approx(30.0 - 6 * 4.2)
    assert "dimming cap" in short.message
    assert plan.dimming_moved_kwh == pytest.approx(30.0 - 6 * 4.2)


def test_the_heat_pump_is_dimmed_too() -> None:
    hp = {
        "kind": "heat_pump",
        "name": "hp",
        "max_power_kw": 8.0,
        "cop": 3.0,
        "outdoor_c": 0.0,
        "start_penalty_eur": 0.0,
        "building": {
            "heat_capacity_kwh_per_k": 10.0,
            "heat_loss_kw_per_k": 0.3,
            "indoor_c": 21.0,
            "comfort_min_c": 20.0,
            "comfort_max_c": 23.0,
        },
        "dimming": [{"start": at(0), "end": at(3)}],
    }
    sc = tiny([5.0, 5.0, 5.0, 40.0, 40.0, 40.0], [hp], penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert (plan.schedule.hp_kw.to_numpy()[:3] <= 4.2 + 1e-6).all()
    assert plan.schedule.hp_kw.to_numpy()[:3].max() == pytest.approx(4.2)
    assert plan.dimming_moved_kwh is not None and plan.dimming_moved_kwh > 0


def test_series_import_limit_holds_and_an_overload_is_reported() -> None:
    limit = [20.0, 3.0, 20.0, 2.0]
    sc = tiny(
        [10.0, 5.0, 30.0, 30.0], [_ev(12.0)], site={"base_load": 2.5, "grid_import_limit_kw": limit}
    )
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    imp = plan.schedule.grid_import_kw.to_numpy()
    assert imp[1] == pytest.approx(3.0)
    (short,) = [s for s in plan.shortfalls if s.kind == "grid_limit"]
    assert short.amount == pytest.approx(0.5)  # base load 2.5 kW over a 2 kW limit in slot 3


def test_checks_catch_a_dimmed_slot_above_its_cap_and_an_import_over_the_series() -> None:
    sc = tiny(
        [5.0, 5.0, 30.0, 30.0],
        [_ev(8.0, dimming=[{"start": at(0), "end": at(1)}], departure=4)],
        site={"grid_import_limit_kw": [20.0, 20.0, 20.0, 20.0]},
    )
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    df = plan.schedule.copy()
    moved = df.car_kw.iloc[1]  # all of it into the dimmed slot 0: 8 kW against 4.2
    df.loc[df.index[0], ["car_kw", "grid_import_kw"]] += moved
    df.loc[df.index[1], ["car_kw", "grid_import_kw"]] -= moved
    tampered = _with_schedule(plan, df)
    with pytest.raises(AssertionError, match="above its cap"):
        check_plan(tampered, sc)
    tighter = sc.model_copy(deep=True)
    tighter.site.grid_import_limit_kw = wattplan.TimeSeries(values=[20.0, 1.0, 20.0, 20.0])
    with pytest.raises(AssertionError, match="grid overload"):
        check_plan(plan, tighter)


def _with_schedule(plan: wattplan.Plan, df: pd.DataFrame) -> wattplan.Plan:
    import dataclasses

    dt = plan.resolution_minutes / 60.0
    cost = float((dt * df.price_ct_per_kwh * df.grid_import_kw).sum() / 100.0)
    costs = {"car": float((dt * df.price_ct_per_kwh * df.car_kw).sum() / 100.0)}
    return dataclasses.replace(plan, schedule=df, cost_eur=cost, device_costs_eur=costs)


# --- brute force on tiny instances --------------------------------------------------------


@pytest.mark.parametrize(
    "prices", [[30.0, 10.0, 25.0, 12.0, 40.0, 11.0], [5.0, -3.0, 18.0, 7.0, -1.0, 30.0]]
)
def test_on_off_charging_with_dimming_matches_brute_force(prices: list[float]) -> None:
    # 11 kW or nothing; 2 slots dimmed to 4.2 kW (below the minimum): no charging there
    ev = _ev(22.0, dimming=[{"start": at(1), "end": at(2)}, {"start": at(3), "end": at(4)}])
    ev["min_power_kw"] = 11.0
    sc = tiny(prices, [ev], site={"base_load": 0.5}, penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    best = (
        min(
            sum(prices[t] * 11.0 for t in chosen)
            for chosen in itertools.combinations([0, 2, 4, 5], 2)
        )
        + 0.5 * sum(prices)
    ) / 100.0
    assert plan.cost_eur == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_continuous_charging_under_caps_matches_cheapest_first_fill(seed: int) -> None:
    # with linear prices and per-slot caps the optimum fills the cheapest slots first
    rng = np.random.default_rng(seed)
    n = 8
    prices = [float(p) for p in rng.uniform(-5, 40, n).round(2)]
    limit = [float(x) for x in rng.uniform(3, 15, n).round(1)]
    windows = [{"start": at(2), "end": at(3.25), "max_kw": 5.0}, {"start": at(6), "end": at(7)}]
    ev = _ev(35.0, dimming=windows)
    ev["sessions"][0]["departure"] = at(n)
    sc = tiny(
        prices, [ev], site={"base_load": 1.0, "grid_import_limit_kw": limit}, penalties=NO_TIE
    )
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    caps = np.minimum(np.array(limit) - 1.0, 11.0)
    caps[[2, 3]] = np.minimum(caps[[2, 3]], 5.0)
    caps[6] = min(caps[6], 4.2)
    left, cost = 35.0, 0.0
    for t in np.argsort(prices):  # the ceiling is the floor: never more than 35 kWh
        take = min(caps[t], left)
        cost += prices[t] * take
        left -= take
    assert left < 1e-9
    expected = (cost + sum(prices)) / 100.0
    assert plan.cost_eur == pytest.approx(expected, abs=1e-6)


# --- performance: nothing new without dimming ---------------------------------------------


def test_no_binding_dimming_builds_the_same_model() -> None:
    prices = [30.0, 10.0, 25.0, 12.0]
    plain = build_model(prepare(tiny(prices, [_ev(10.0)])))
    outside = [{"start": at(10), "end": at(12)}, {"start": at(1), "end": at(2), "max_kw": 20}]
    other = build_model(prepare(tiny(prices, [_ev(10.0, dimming=outside)])))
    assert len(other.variables) == len(plain.variables)
    assert len(other.prob.constraints()) == len(plain.prob.constraints())
    assert wattplan.optimize(tiny(prices, [_ev(10.0, dimming=outside)])).dimming_moved_kwh is None


# --- DST days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "window", "dimmed"),
    [
        # 25-hour day: 02:00-03:00 happens twice; 01:30+02:00 to 02:30+01:00 is 2 hours
        ("dst-autumn-2025-10-26", ("2025-10-26T01:30:00+02:00", "2025-10-26T02:30:00+01:00"), 8),
        # 23-hour day: 02:00-03:00 does not exist; 01:30+01:00 to 03:30+02:00 is 1 hour
        ("dst-spring-2026-03-29", ("2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"), 4),
    ],
)
def test_dimming_and_series_limit_on_dst_days(
    stem: str, window: tuple[str, str], dimmed: int
) -> None:
    base = wattplan.load_scenario(SCENARIOS / f"{stem}.yaml")
    data = base.model_dump()
    car = next(d for d in data["devices"] if d["kind"] == "ev")
    car["dimming"] = [{"start": window[0], "end": window[1], "max_kw": 2.0}]
    # an hourly import limit in local time: 5 kW in the night hours, 24 kW otherwise
    hours = pd.date_range(
        pd.Timestamp(base.start).tz_convert("UTC"),
        pd.Timestamp(base.end).tz_convert("UTC"),
        freq="1h",
        inclusive="left",
    )
    local = hours.tz_convert("Europe/Berlin")
    limit = [5.0 if h < 6 else 24.0 for h in local.hour]
    data["site"]["grid_import_limit_kw"] = {"values": limit, "index": list(hours)}
    sc = wattplan.scenario_from_dict(data)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    caps = dimming_caps(plan, sc)["car"]
    assert int(np.isfinite(caps).sum()) == dimmed
    assert (plan.schedule.car_kw.to_numpy()[np.isfinite(caps)] <= 2.0 + 1e-6).all()
    idx = pd.DatetimeIndex(plan.schedule.index)
    per_slot = import_limit_kw(sc, idx, pd.Timedelta(minutes=15))
    night = np.asarray(idx.tz_convert("Europe/Berlin").hour < 6)
    assert np.allclose(np.asarray(per_slot)[night], 5.0)
    assert (plan.schedule.grid_import_kw.to_numpy()[night] <= 5.0 + 1e-6).all()


# --- per-device savings include what is left stored -----------------------------------------


def test_a_car_charging_above_its_floor_reports_its_valued_saving() -> None:
    # one device and no PV: the car's saving is the whole plan's saving; charging above the
    # floor at cheap prices is worth the terminal price, so it is not a loss
    ev = _ev(10.0)
    ev["sessions"][0]["max_energy_kwh"] = 40.0
    sc = tiny([30.0, 5.0, 6.0, 30.0, 30.0, 30.0], [ev], site={"base_load": 0.5})
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.end_values_eur["car"] > 0
    found = re.search(r"saves (-?\d+\.\d+) EUR", plan.device_explanations["car"])
    assert found is not None
    assert float(found.group(1)) == pytest.approx(plan.savings_eur, abs=0.006)
    assert float(found.group(1)) >= 0


def test_the_dimming_scenario_moves_charging_out_of_its_window() -> None:
    sc = wattplan.load_scenario(SCENARIOS / "ev-pv-surplus-dimming.yaml")
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.status is PlanStatus.OPTIMAL
    assert plan.end_values_eur["car"] > 0, "the car soaks up energy above its floor"
    assert plan.dimming_moved_kwh is not None and plan.dimming_moved_kwh > 1.0
    line = plan.device_explanations["car"]
    found = re.search(r"saves (-?\d+\.\d+) EUR", line)
    assert found is not None and float(found.group(1)) > 0, line
    assert "Grid signal (§14a EnWG): dimmed car to 4.2 kW Sat 21:00–Sun 01:00" in plan.explanation
    # what left the window, recomputed from the plan without dimming: net over the window,
    # so charging that only moved to other slots inside it does not count
    undimmed = sc.model_copy(
        update={
            "devices": [
                d.model_copy(update={"dimming": []}) if getattr(d, "dimming", None) else d
                for d in sc.devices
            ]
        }
    )
    free = wattplan.optimize(undimmed)
    window = (plan.schedule.index >= pd.Timestamp("2026-04-25T21:00:00+02:00")) & (
        plan.schedule.index < pd.Timestamp("2026-04-26T01:00:00+02:00")
    )
    dt_h = (plan.schedule.index[1] - plan.schedule.index[0]).total_seconds() / 3600
    left = (free.schedule.car_kw[window].sum() - plan.schedule.car_kw[window].sum()) * dt_h
    assert 0.5 < left < plan.dimming_moved_kwh
    assert f"{left:.2f} kWh of it the dimmed windows" in plan.explanation, plan.explanation


@pytest.mark.parametrize("cap", [4.2, 1.0, 0.0])
def test_the_baseline_is_dimmed_too_and_stays_a_point_of_the_model(cap: float) -> None:
    # the car charges from plug-in at full power in the baseline; slots 1-2 are dimmed, to
    # below the minimum power too (1.0 kW, 0 kW)
    ev = _ev(20.0, dimming=[{"start": at(1), "end": at(3), "max_kw": cap}], min_power_kw=1.4)
    sc = tiny([30.0, 20.0, 20.0, 5.0, 5.0, 40.0], [ev], penalties=NO_TIE)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.baseline_schedule is not None
    base = plan.baseline_schedule.car_kw.to_numpy()
    assert (base[1:3] <= cap + 1e-9).all()
    assert base.sum() == pytest.approx(20.0)
    assert plan.baseline_feasible
    assert plan.savings_eur >= -1e-6


def test_a_series_import_limit_shows_in_the_notebook_view() -> None:
    sc = tiny([10.0] * 4, site={"grid_import_limit_kw": [1.0, 2.0, 3.0, 4.0]})
    assert "import series, 1–4 kW (4 values)" in sc._repr_html_()


@pytest.mark.parametrize("seed", range(6))
def test_random_households_with_grid_signals_pass_the_audit(seed: int) -> None:
    # EV, battery and heat pump with random dimming windows, PV and a series import limit:
    # the audit holds, and against a feasible (dimmed) baseline the saving is never negative
    rng = np.random.default_rng(100 + seed)
    n = 12
    prices = [float(p) for p in rng.uniform(-5, 45, n).round(2)]
    pv = [float(x) for x in np.clip(rng.normal(3, 3, n), 0, None).round(2)]
    limit = [float(x) for x in rng.uniform(8, 25, n).round(1)]

    def windows() -> list[dict[str, Any]]:
        a = float(rng.integers(0, n - 2)) + float(rng.choice([0.0, 0.25, 0.5]))
        return [{"start": at(a), "end": at(a + float(rng.integers(1, 4))), "max_kw": 4.2}]

    ev = _ev(float(rng.uniform(5, 30)), dimming=windows(), departure=n)
    ev["sessions"][0]["max_energy_kwh"] = 40.0
    bat = {
        "kind": "battery",
        "name": "bat",
        "capacity_kwh": 10,
        "soc_kwh": float(rng.uniform(1, 9)),
        "max_charge_kw": 6,
        "max_discharge_kw": 6,
        "dimming": windows(),
    }
    hp = {
        "kind": "heat_pump",
        "name": "hp",
        "max_power_kw": 6.0,
        "outdoor_c": float(rng.uniform(-10, 5)),
        "building": {
            "heat_capacity_kwh_per_k": 8.0,
            "heat_loss_kw_per_k": 0.3,
            "indoor_c": 21.0,
            "comfort_min_c": 20.0,
            "comfort_max_c": 23.0,
        },
        "dimming": windows(),
    }
    site = {"pv": pv, "base_load": 0.6, "feed_in_ct_per_kwh": 7.0, "grid_import_limit_kw": limit}
    sc = tiny(prices, [ev, bat, hp], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    if plan.baseline_feasible and plan.status is PlanStatus.OPTIMAL:
        assert plan.savings_eur >= -1e-6
    moved = plan.dimming_moved_kwh
    assert moved is None or moved >= 0


def test_a_dimmed_car_beside_a_battery_is_solved_as_one_mip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relaxed-first rounds took 2.5-4 s on such a model where one whole MIP takes 0.6 s.

    The battery's direction binaries in the dimmed slots make the model a MIP the rounds
    handle badly; it is solved in one HiGHS run, to the same optimum as the full MIP.
    """
    import highspy

    from wattplan.optimizer._solve import SolveOutcome, solve, to_highs

    prices = [30.0, 10.0, 12.0, 31.0, 29.0, 11.0, 35.0, 33.0]
    bat = {
        "kind": "battery",
        "name": "bat",
        "capacity_kwh": 10,
        "soc_kwh": 0.0,
        "max_charge_kw": 5,
        "max_discharge_kw": 5,
    }
    # more than the caps let through: charging the battery and emptying it into the car in
    # the same dimmed slot would pass for relief in the relaxation (the binaries forbid it)
    ev = _ev(30.0, dimming=[{"start": at(1), "end": at(4), "max_kw": 4.2}], departure=4)
    sc = tiny(prices, [ev, bat], site={"base_load": 0.5})
    model = build_model(prepare(sc))
    assert model.whole_mip
    runs: list[int] = []
    original = highspy.Highs.run

    def counted(self: Any) -> Any:
        runs.append(1)
        return original(self)

    monkeypatch.setattr(highspy.Highs, "run", counted)
    result = solve(model, sc.solver)
    assert result.outcome is SolveOutcome.OPTIMAL and result.objective_eur is not None
    assert len(runs) == 1
    monkeypatch.setattr(highspy.Highs, "run", original)
    h = to_highs(build_model(prepare(sc)), sc.solver)
    h.run()
    full = float(h.getInfo().objective_function_value)
    assert result.objective_eur == pytest.approx(full, rel=2e-3, abs=1e-6)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
