"""Household profiles: validation, schema, and the scenarios they compose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from wattplan.exceptions import ScenarioError
from wattplan.household import (
    WEEKDAYS,
    HouseholdAppliance,
    HouseholdHeatPump,
    HouseholdState,
    household_from_dict,
    household_json_schema,
    household_scenario,
    load_household,
    programme_kw,
)
from wattplan.optimizer import Appliance, HeatPump, TimeSeries, optimize

TZ = "Europe/Berlin"

PROFILE: dict[str, Any] = {
    "name": "test house",
    "site": {
        "feed_in_ct_per_kwh": 8.0,
        "grid_import_limit_kw": 25.0,
        "pv": {"latitude": 47.7, "longitude": 9.2, "kwp": 6.0},
    },
    "devices": [
        {
            "kind": "ev",
            "name": "car",
            "max_power_kw": 11.0,
            "capacity_kwh": 60.0,
            "weekly": {
                day: {"plug_in": "18:00", "departure": "07:00", "energy_kwh": 8.0}
                for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
    ],
    "tariff": {"markup_ct_per_kwh": 16.0, "vat": 0.19},
}


def _series(lo: pd.Timestamp, hi: pd.Timestamp, value: float, freq: str = "15min") -> pd.Series:
    idx = pd.date_range(lo, hi, freq=freq, inclusive="left").tz_convert("UTC")
    return pd.Series(value, index=idx, dtype=float)


def test_valid_profile_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    h = load_household(path)
    assert h.site.pv is not None and h.site.pv.kwp == 6.0
    assert h.devices[0].name == "car"


def test_unquoted_yaml_time_reads_as_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(
        "devices:\n- kind: ev\n  name: car\n  max_power_kw: 11\n  weekly:\n"
        "    mon: {plug_in: 18:30, departure: 07:00, energy_kwh: 5}\n"
    )
    habit = load_household(path).devices[0].weekly["mon"]  # type: ignore[union-attr]
    assert (habit.plug_in.hour, habit.plug_in.minute) == (18, 30)


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"site": {"feed_in_ct_per_kwh": "x"}}, "site.feed_in_ct_per_kwh"),
        ({"site": {"timezone": "Mars/Olympus"}}, "site.timezone"),
        ({"site": {"pv": {"latitude": 100, "longitude": 9, "kwp": 5}}}, "site.pv.latitude"),
        ({"site": {"grid_limit": 3}}, "site.grid_limit"),
        ({"tariff": {"vat": True}}, "tariff.vat"),
        ({"devices": [{"kind": "boat", "name": "x"}]}, "devices[0]"),
        (
            {"devices": [{"kind": "ev", "name": "c", "max_power_kw": 11, "weekly": {"mo": {}}}]},
            "devices[0].weekly.mo",
        ),
        (
            {
                "devices": [
                    {
                        "kind": "ev",
                        "name": "c",
                        "max_power_kw": 11,
                        "weekly": {"mon": {"plug_in": "18:00", "departure": "7:00"}},
                    }
                ]
            },
            "devices[0].weekly.mon.energy_kwh",
        ),
        (
            {"devices": [{"kind": "battery", "name": "b", "capacity_kwh": 1e9}]},
            "devices[0].capacity_kwh",
        ),
    ],
)
def test_bad_keys_are_named(patch: dict[str, Any], key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        household_from_dict(patch)
    assert key in str(info.value)


def test_schema_cli_prints_household_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wattplan.cli", "schema", "--household"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    schema = json.loads(out)
    assert schema["title"] == "wattplan household profile"
    assert "weekly" in json.dumps(schema)


@pytest.mark.parametrize(("day", "hours"), [("2025-10-26", 25), ("2025-03-30", 23)])
def test_dst_windows_make_scenarios_of_the_right_length(day: str, hours: int) -> None:
    h = household_from_dict(PROFILE)
    lo = pd.Timestamp(day, tz=TZ)
    hi = lo + pd.DateOffset(days=1)
    sc = household_scenario(
        h,
        lo,
        hi,
        base_load_kw=_series(lo, hi, 0.5, "60min"),
        pv_kw=_series(lo, hi, 0.0, "60min"),
        prices_ct_per_kwh=_series(lo, hi, 30.0),
        resolution="15min",
    )
    assert sc.end - sc.start == pd.Timedelta(hours=hours)
    plan = optimize(sc)
    assert plan.ok
    assert len(plan.schedule) == hours * 4
    # the evening session departs the next morning, after the window: optional here
    car = sc.device("car")
    sess = car.sessions  # type: ignore[union-attr]
    assert [s.needed_kwh() for s in sess] == [8.0, 0.0]
    assert sess[0].plug_in == lo  # the session from the evening before, still plugged in
    assert sess[1].departure == hi
    assert sess[1].ceiling_kwh() == 8.0


def test_state_carries_battery_soc_and_ev_energy() -> None:
    h = household_from_dict(PROFILE)
    lo = pd.Timestamp("2025-11-04 02:00", tz=TZ)
    hi = pd.Timestamp("2025-11-04 12:00", tz=TZ)
    plug = pd.Timestamp("2025-11-03 18:00", tz=TZ).tz_convert("UTC")
    state = HouseholdState(battery_soc_kwh={"battery": 7.5}, ev_delivered_kwh={"car": {plug: 5.0}})
    sc = household_scenario(
        h,
        lo,
        hi,
        base_load_kw=_series(lo, hi, 0.5),
        prices_ct_per_kwh=_series(lo, hi, 30.0),
        state=state,
    )
    assert sc.device("battery").soc_kwh == 7.5  # type: ignore[union-attr]
    (sess,) = sc.device("car").sessions  # type: ignore[union-attr]
    assert sess.needed_kwh() == pytest.approx(3.0)


def test_readme_profile_is_valid() -> None:
    from tests.readme import readme_block

    h = household_from_dict(yaml.safe_load(readme_block("example: household profile", "yaml")))
    assert [d.kind for d in h.devices] == ["ev", "battery", "heat_pump", "appliance"]


HEAT_PUMP: dict[str, Any] = {
    "kind": "heat_pump",
    "name": "hp",
    "max_power_kw": 3.0,
    "flow_temperature_c": 35.0,
    "min_run_minutes": 30,
    "building": {
        "heat_capacity_kwh_per_k": 7.0,
        "heat_loss_kw_per_k": 0.2,
        "comfort_min_c": 20.0,
        "comfort_max_c": 23.0,
        "initial_indoor_c": 21.0,
    },
}
DISHWASHER: dict[str, Any] = {
    "kind": "appliance",
    "name": "dishwasher",
    "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
    "profile_minutes": 15,
    "weekly": {d: {"earliest_start": "19:00", "latest_end": "07:00"} for d in WEEKDAYS},
}
THERMAL = {**PROFILE, "devices": [*PROFILE["devices"], HEAT_PUMP, DISHWASHER]}


def test_heat_pump_and_appliance_profile_validates(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    # unquoted times, as people write them in YAML
    washer = (
        "- kind: appliance\n  name: washer\n  profile_kw: [2.0, 0.5, 0.5, 0.2]\n"
        "  profile_minutes: 30\n  weekly:\n    sat: {earliest_start: 08:00, latest_end: 18:00}\n"
    )
    path.write_text(yaml.safe_dump({"devices": [HEAT_PUMP]}) + washer)
    h = load_household(path)
    hp, washer = h.devices
    assert isinstance(hp, HouseholdHeatPump) and isinstance(washer, HouseholdAppliance)
    assert hp.building.start_c == 21.0 and hp.building.thermostat_c == 21.0
    assert washer.duration_minutes == 120
    habit = washer.weekly["sat"]
    assert (habit.earliest_start.hour, habit.latest_end.hour) == (8, 18)
    assert habit.minutes() == 600
    assert HouseholdState.initial(h).indoor_c == {"hp": 21.0}


def _dev(**patch: Any) -> dict[str, Any]:
    base = DISHWASHER if patch.get("kind", "appliance") == "appliance" else HEAT_PUMP
    return {"devices": [{**base, **patch}]}


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        (
            _dev(kind="heat_pump", building={**HEAT_PUMP["building"], "comfort_min_c": 24}),
            "devices[0].building: comfort_min_c must not exceed comfort_max_c",
        ),
        (
            _dev(kind="heat_pump", building={**HEAT_PUMP["building"], "heat_loss_kw_per_k": 0}),
            "devices[0].building.heat_loss_kw_per_k",
        ),
        (_dev(kind="heat_pump", max_power_kw=-1), "devices[0].max_power_kw"),
        (_dev(kind="heat_pump", flow_temperature_c=5), "devices[0].flow_temperature_c"),
        (_dev(kind="heat_pump", cop=3.0), "devices[0].cop"),
        (_dev(profile_kw=[1.0, -0.5]), "devices[0].profile_kw[1]"),
        (_dev(profile_kw=[0.0, 0.0]), "devices[0]: profile_kw needs at least one step"),
        (
            _dev(weekly={"mon": {"earliest_start": "25:00", "latest_end": "07:00"}}),
            "devices[0].weekly.mon.earliest_start",
        ),
        (
            _dev(weekly={"tue": {"earliest_start": "19:00", "latest_end": "20:00"}}),
            "devices[0]: weekly.tue: the 90-minute programme does not fit",
        ),
        (_dev(weekly={"mon": {"earliest_start": "19:00"}}), "devices[0].weekly.mon.latest_end"),
    ],
)
def test_bad_heat_pump_and_appliance_keys_are_named(patch: dict[str, Any], key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        household_from_dict(patch)
    assert key in str(info.value)


def test_schema_knows_heat_pumps_and_appliances() -> None:
    schema = json.dumps(household_json_schema())
    for word in ("heat_pump", "appliance", "flow_temperature_c", "earliest_start", "gains_kw"):
        assert word in schema


def _varying(lo: pd.Timestamp, hi: pd.Timestamp, start: float) -> pd.Series:
    idx = pd.date_range(lo, hi, freq="15min", inclusive="left").tz_convert("UTC")
    return pd.Series(start + 0.01 * np.arange(len(idx)), index=idx)


@pytest.mark.parametrize(("day", "hours"), [("2025-10-26", 25), ("2026-03-29", 23)])
def test_dst_windows_compose_heat_pump_and_appliance_runs(day: str, hours: int) -> None:
    h = household_from_dict(THERMAL)
    lo = pd.Timestamp(day, tz=TZ)
    hi = lo + pd.DateOffset(days=1)
    outdoor = _varying(lo - pd.Timedelta(hours=3), hi + pd.Timedelta(hours=3), -2.0)
    state = HouseholdState.initial(h)
    state.indoor_c["hp"] = 22.5
    sc = household_scenario(
        h,
        lo,
        hi,
        base_load_kw=_series(lo, hi, 0.4),
        pv_kw=_series(lo, hi, 0.0),
        prices_ct_per_kwh=_varying(lo, hi, 25.0),
        outdoor_c=outdoor,
        state=state,
    )
    hp = sc.device("hp")
    assert isinstance(hp, HeatPump)
    assert hp.building.indoor_c == 22.5  # carried in the state
    assert hp.building.setpoint_c == 21.0  # the profile's thermostat, not the state's
    assert hp.min_run_minutes == 30 and hp.flow_temperature_c == 35.0
    assert isinstance(hp.outdoor_c, TimeSeries)
    inside = outdoor[(outdoor.index >= lo) & (outdoor.index < hi)]
    assert hp.outdoor_c.values == pytest.approx(inside.tolist())
    assert len(hp.outdoor_c.values or []) == hours * 4
    # the run of the evening before (until 07:00) and this evening's, due by the window end
    runs = [d for d in sc.devices if isinstance(d, Appliance)]
    prev, today = lo - pd.Timedelta(days=1), lo
    assert [d.name for d in runs] == [
        f"dishwasher-{prev:%Y%m%d}-1900",
        f"dishwasher-{today:%Y%m%d}-1900",
    ]
    assert runs[0].earliest_start == lo
    assert runs[0].latest_end == pd.Timestamp(f"{day} 07:00", tz=TZ)
    assert runs[1].earliest_start == pd.Timestamp(f"{day} 19:00", tz=TZ)
    assert runs[1].latest_end == hi
    assert runs[0].profile_kw == DISHWASHER["profile_kw"]
    plan = optimize(sc)
    assert plan.ok and len(plan.schedule) == hours * 4
    for run in runs:
        kw = plan.schedule[f"{run.name}_kw"]
        assert kw.sum() * 0.25 == pytest.approx(1.65)
        on = kw[kw > 0].index
        assert on[0] >= run.earliest_start and on[-1] + pd.Timedelta(minutes=15) <= run.latest_end
    # the 1R1C building starts from the carried temperature
    first = plan.schedule.iloc[0]
    cop = first["hp_cop"]
    expect = 22.5 + 0.25 / 7.0 * (cop * first["hp_kw"] - 0.2 * (22.5 - first["hp_outdoor_c"]))
    assert first["hp_indoor_c"] == pytest.approx(expect)


def test_heat_pump_needs_the_outdoor_temperature() -> None:
    h = household_from_dict(THERMAL)
    lo = pd.Timestamp("2025-11-04", tz=TZ)
    hi = lo + pd.Timedelta(days=1)
    with pytest.raises(ScenarioError) as info:
        household_scenario(
            h, lo, hi, base_load_kw=_series(lo, hi, 0.4), prices_ct_per_kwh=_series(lo, hi, 30.0)
        )
    assert info.value.key == "outdoor_c"


def test_runs_due_after_the_window_wait_for_the_next_plan() -> None:
    h = household_from_dict({"devices": [DISHWASHER]})
    lo = pd.Timestamp("2025-11-04 14:00", tz=TZ)
    hi = pd.Timestamp("2025-11-06 00:00", tz=TZ)
    kwargs: dict[str, Any] = {
        "base_load_kw": _series(lo, hi, 0.4),
        "prices_ct_per_kwh": _series(lo, hi, 30.0),
    }
    names = [d.name for d in household_scenario(h, lo, hi, **kwargs).devices]
    # without a next plan the run of the 5th must be done by midnight
    assert names == ["dishwasher-20251104-1900", "dishwasher-20251105-1900"]
    nxt = pd.Timestamp("2025-11-05 14:00", tz=TZ)
    names = [d.name for d in household_scenario(h, lo, hi, replan_at=nxt, **kwargs).devices]
    assert names == ["dishwasher-20251104-1900"]  # the 5th: the next plan sees its night
    # a run started already is not planned again; one still running is a fixed rest
    key = pd.Timestamp("2025-11-04 18:00", tz="UTC")  # the run's earliest start, 19:00
    state = HouseholdState(
        appliance_started={"dishwasher": {key: pd.Timestamp("2025-11-04 19:00", tz=TZ)}}
    )
    late = lo + pd.Timedelta(hours=6)  # 20:00: 60 of its 90 minutes are done
    sc = household_scenario(h, late, hi, state=state, **kwargs)
    rest = sc.devices[0]
    assert isinstance(rest, Appliance) and rest.name == "dishwasher-20251104-1900"
    assert rest.profile_kw == [1.8, 0.2]
    assert rest.earliest_start == late and rest.latest_end == late + pd.Timedelta(minutes=30)
    sc = household_scenario(h, late + pd.Timedelta(hours=1), hi, state=state, **kwargs)
    assert [d.name for d in sc.devices] == ["dishwasher-20251105-1900"]


def test_programme_is_spread_by_energy_onto_the_slots() -> None:
    h = household_from_dict({"devices": [DISHWASHER]})
    app = h.devices[0]
    assert isinstance(app, HouseholdAppliance)
    # 15-minute steps onto hourly slots: the mean power of each hour
    np.testing.assert_allclose(programme_kw(app, 60), [(2.0 + 2.0 + 0.3 + 0.3) / 4, 1.0 / 2])
    np.testing.assert_allclose(programme_kw(app, 15), DISHWASHER["profile_kw"])
    # 20 minutes in: the rest from the middle of the second step, 70 minutes in 5 slots
    rest = programme_kw(app, 15, 20.0)
    np.testing.assert_allclose(
        rest, [(2.0 * 10 + 0.3 * 5) / 15, 0.3, (0.3 * 10 + 1.8 * 5) / 15, 19 / 15, 2 / 15]
    )
    energy = sum(DISHWASHER["profile_kw"]) * 0.25
    for res in (15, 30, 60):
        assert programme_kw(app, res).sum() * res / 60 == pytest.approx(energy)


def test_a_weather_source_gives_the_heat_pump_its_outdoor_temperature() -> None:
    from wattplan.weather import TypicalYearWeather

    h = household_from_dict({"devices": [HEAT_PUMP]})
    lo = pd.Timestamp("2026-03-29", tz=TZ)  # a 23-hour day
    hi = pd.Timestamp("2026-03-30", tz=TZ)
    source = TypicalYearWeather()
    sc = household_scenario(
        h,
        lo,
        hi,
        base_load_kw=_series(lo, hi, 0.4),
        prices_ct_per_kwh=_series(lo, hi, 30.0),
        weather=source,
    )
    plan = optimize(sc)
    assert plan.ok and len(plan.schedule) == 23 * 4
    hourly = source.get_weather(start=lo, end=hi)["temp_air_c"]
    expect = hourly.reindex(plan.schedule.index.floor("60min")).to_numpy()
    np.testing.assert_allclose(plan.schedule["hp_outdoor_c"], expect)
