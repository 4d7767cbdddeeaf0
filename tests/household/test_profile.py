"""Household profiles: validation, schema, and the scenarios they compose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from wattplan.exceptions import ScenarioError
from wattplan.household import (
    HouseholdState,
    household_from_dict,
    household_scenario,
    load_household,
)
from wattplan.optimizer import optimize

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
    import yaml

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
    import yaml

    from tests.readme import readme_block

    h = household_from_dict(yaml.safe_load(readme_block("example: household profile", "yaml")))
    assert [d.kind for d in h.devices] == ["ev", "battery"]
