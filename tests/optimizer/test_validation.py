"""Bad input gets an error that names the key and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wattplan
import wattplan.datasets
from tests.optimizer.helpers import T0, at, tiny
from wattplan import PriceDataError, ScenarioError

EV = {
    "kind": "ev",
    "name": "car",
    "max_power_kw": 11.0,
    "sessions": [{"plug_in": at(1), "departure": at(5), "energy_kwh": 10.0}],
}


def test_negative_capacity_names_the_key() -> None:
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": -5,
        "soc_kwh": 0,
        "max_charge_kw": 3,
        "max_discharge_kw": 3,
    }
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 4, [bat])
    assert exc.value.key == "devices[0].capacity_kwh"
    assert "greater than 0" in exc.value.reason


def test_departure_before_plug_in_names_the_session() -> None:
    ev = {**EV, "sessions": [{"plug_in": at(5), "departure": at(1), "energy_kwh": 10.0}]}
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 6, [ev])
    assert exc.value.key == "devices[0].sessions[0]"
    assert "departure" in exc.value.reason and "after plug_in" in exc.value.reason


def test_unknown_device_kind_is_named() -> None:
    with pytest.raises(ScenarioError) as exc:
        tiny([10.0] * 4, [{"kind": "sauna", "name": "s"}])
    assert exc.value.key == "devices[0]"
    assert "unknown device kind" in exc.value.reason and "'ev'" in exc.value.reason


def test_missing_price_slot_is_a_hole() -> None:
    idx = pd.date_range(T0, periods=8, freq="15min")
    prices = pd.Series(20.0, index=idx).drop(idx[3])
    sc = tiny([0.0, 0.0], resolution="60min")  # 2 hours
    with pytest.raises(PriceDataError) as exc:
        wattplan.optimize(sc, prices=prices)
    assert exc.value.key == "prices"
    assert "hole" in exc.value.reason
    assert f"no value from {idx[3].tz_convert('UTC').isoformat()}" in exc.value.reason


def test_prices_that_do_not_cover_the_horizon() -> None:
    idx = pd.date_range(T0, periods=4, freq="15min")
    sc = tiny([0.0, 0.0], resolution="60min")
    with pytest.raises(PriceDataError) as exc:
        wattplan.optimize(sc, prices=pd.Series(20.0, index=idx))
    assert exc.value.key == "prices" and "does not cover the horizon" in exc.value.reason


def test_nan_price_and_naive_index_are_refused() -> None:
    idx = pd.date_range(T0, periods=2, freq="60min")
    sc = tiny([0.0, 0.0])
    with pytest.raises(PriceDataError, match="hole"):
        wattplan.optimize(sc, prices=pd.Series([20.0, float("nan")], index=idx))
    with pytest.raises(ScenarioError, match="tz-aware"):
        wattplan.optimize(sc, prices=pd.Series([20.0, 21.0], index=idx.tz_localize(None)))


def test_wrong_number_of_inline_values() -> None:
    with pytest.raises(ScenarioError) as exc:
        wattplan.optimize(tiny([10.0, 11.0], site={"base_load": [0.1, 0.2, 0.3]}))
    assert exc.value.key == "site.base_load"
    assert "has 3 values but the horizon has 2 slots" in exc.value.reason


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "start: 2026-01-20T00:00:00+01:00\nend: 2026-01-20T04:00:00+01:00\n"
        "resolution: 60min\nprices: {values: [1, 2, 3, 4]}\n"
        "devices:\n  - {kind: battery, name: b, capacity_kwh: 5, soc_kwh: 9, max_charge_kw: 0,"
        " max_discharge_kw: 2}\n"
    )
    with pytest.raises(ScenarioError) as exc:
        wattplan.load_scenario(f)
    keys = [k for k, _ in exc.value.errors]
    assert "devices[0].max_charge_kw" in keys


def test_missing_csv_and_column_are_named(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("start,price_ct_per_kwh\n2026-01-20T00:00:00+01:00,20\n")
    base = "start: 2026-01-20T00:00:00+01:00\nend: 2026-01-20T01:00:00+01:00\nresolution: 60min\n"
    (tmp_path / "a.yaml").write_text(base + "prices: {file: nope.csv}\n")
    with pytest.raises(ScenarioError, match=r"prices: file not found: nope.csv"):
        wattplan.load_scenario(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(base + "prices: {file: p.csv, column: amount}\n")
    with pytest.raises(ScenarioError, match="has no column 'amount'"):
        wattplan.load_scenario(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text(
        base + "prices: {file: p.csv}\nsite: {pv: {file: p.csv, column: x}}\n"
    )
    with pytest.raises(ScenarioError) as exc:
        wattplan.load_scenario(tmp_path / "c.yaml")
    assert exc.value.key == "site.pv"


def test_horizon_must_be_tz_aware_and_aligned() -> None:
    with pytest.raises(ScenarioError) as exc:
        wattplan.scenario_from_dict(
            {"start": "2026-01-20T00:00:00", "end": "2026-01-20T04:00:00+01:00"}
        )
    assert exc.value.key == "start"
    sc = wattplan.scenario_from_dict(
        {
            "start": "2026-01-20T00:07:00+01:00",
            "end": "2026-01-20T04:00:00+01:00",
            "prices": {"values": [1.0]},
        }
    )
    with pytest.raises(ScenarioError, match="slot boundary"):
        wattplan.optimize(sc)


def test_sensible_but_unmeetable_request_gets_a_plan_with_a_shortfall() -> None:
    # 2 hours plugged in at 11 kW cannot deliver 40 kWh: charge all it can, report the rest
    ev = {
        **EV,
        "min_power_kw": 0.0,
        "efficiency": 1.0,
        "sessions": [{"plug_in": at(1), "departure": at(3), "energy_kwh": 40.0}],
    }
    plan = wattplan.optimize(tiny([10.0] * 4, [ev]))
    assert plan.status is wattplan.PlanStatus.FEASIBLE_WITH_SHORTFALL
    (short,) = plan.shortfalls
    assert short.device == "car" and short.kind == "energy"
    assert short.amount == pytest.approx(40.0 - 22.0, abs=1e-6)
    assert plan.schedule["car_kw"].iloc[1:3].tolist() == pytest.approx([11.0, 11.0])
    assert "18.00 kWh short" in plan.explanation


def test_a_session_without_a_whole_slot_is_a_shortfall_not_a_silent_plan() -> None:
    # 18:10-19:05 on an hourly grid holds no whole slot: the 1.5 kWh cannot be charged, and
    # the plan must say so rather than come back optimal with "no charging needed"
    ev = {
        **EV,
        "sessions": [
            {
                "plug_in": (T0 + pd.Timedelta(hours=1, minutes=10)).isoformat(),
                "departure": (T0 + pd.Timedelta(hours=2, minutes=5)).isoformat(),
                "energy_kwh": 1.5,
            }
        ],
    }
    plan = wattplan.optimize(tiny([30.0] * 4, [ev]))
    assert plan.status is wattplan.PlanStatus.FEASIBLE_WITH_SHORTFALL
    (short,) = plan.shortfalls
    assert (short.device, short.kind) == ("car", "energy")
    assert short.amount == pytest.approx(1.5)
    assert "not plugged in for a whole slot" in short.message
    assert "no charging needed" not in plan.explanation


def test_comfort_band_that_cannot_be_held_reports_kelvin_hours() -> None:
    hp = {
        "kind": "heat_pump",
        "name": "hp",
        "max_power_kw": 0.5,
        "cop": 2.0,
        "outdoor_c": -10.0,
        "building": {
            "heat_capacity_kwh_per_k": 5.0,
            "heat_loss_kw_per_k": 0.3,
            "indoor_c": 21.0,
            "comfort_min_c": 20.0,
            "comfort_max_c": 23.0,
        },
    }
    sc = tiny([20.0] * 12, [hp])
    plan = wattplan.optimize(sc)
    assert plan.status is wattplan.PlanStatus.FEASIBLE_WITH_SHORTFALL
    kinds = {s.kind for s in plan.shortfalls}
    assert "comfort" in kinds
    assert np.allclose(plan.schedule["hp_kw"], 0.5), "heats flat out when short"
    comfort = next(s for s in plan.shortfalls if s.kind == "comfort")
    assert comfort.amount > 0 and comfort.start is not None and comfort.unit == "K·h"


@pytest.mark.parametrize("missing", [0, 1, 5, 10])
def test_a_missing_point_is_a_hole_wherever_it_is(missing: int) -> None:
    idx = pd.date_range(T0, periods=16, freq="15min")
    prices = pd.Series(20.0, index=idx).drop(idx[missing])
    sc = tiny([0.0] * 4, resolution="60min")
    with pytest.raises(PriceDataError, match=r"hole|does not cover"):
        wattplan.optimize(sc, prices=prices)


def test_hourly_then_quarter_hourly_series_is_complete() -> None:
    # the real day-ahead market switched to quarter-hours on 2025-10-01
    start = pd.Timestamp("2025-09-30T12:00:00+02:00")
    spot = wattplan.datasets.read_day_ahead_prices(start, start + pd.Timedelta(days=1))
    assert set(np.diff(spot.index.as_unit("s").asi8)) == {900, 3600}
    sc = wattplan.scenario_from_dict(
        {"start": start.isoformat(), "end": (start + pd.Timedelta(days=1)).isoformat()}
    )
    plan = wattplan.optimize(sc, prices=wattplan.datasets.all_in_price_ct_per_kwh(spot))
    hourly = plan.schedule.price_ct_per_kwh[: 12 * 4].to_numpy().reshape(12, 4)
    assert np.allclose(hourly, hourly[:, :1]), "each hour's price repeated on its quarter-hours"
    assert len(plan.schedule) == 96
