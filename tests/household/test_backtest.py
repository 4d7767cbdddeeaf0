"""The rolling household backtest: bills recomputed from the executed schedules."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wattplan import datasets
from wattplan.household import WEEKDAYS, household_from_dict
from wattplan.household_backtest import ActualsError, read_actuals_csv, rolling_backtest

TZ = "Europe/Berlin"
FEED_IN = 7.9
C_KWH_PER_K, U_KW_PER_K, GAINS_KW = 7.0, 0.2, 0.3
DISHWASHER_KW = [2.0, 2.0, 0.3, 0.3, 1.8, 0.2]
WEEKDAY = {"plug_in": "18:00", "departure": "07:00", "energy_kwh": 9.0}
PROFILE = {
    "name": "test house",
    "site": {"feed_in_ct_per_kwh": FEED_IN},
    "devices": [
        {
            "kind": "ev",
            "name": "car",
            "max_power_kw": 11.0,
            "capacity_kwh": 60.0,
            "weekly": {
                **{d: WEEKDAY for d in ("mon", "tue", "wed", "thu", "fri")},
                # a session that spans the 14:00 publication
                "sat": {"plug_in": "10:00", "departure": "16:00", "energy_kwh": 12.0},
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
        {
            "kind": "heat_pump",
            "name": "hp",
            "max_power_kw": 3.0,
            "flow_temperature_c": 35.0,
            "min_run_minutes": 30,
            "building": {
                "heat_capacity_kwh_per_k": C_KWH_PER_K,
                "heat_loss_kw_per_k": U_KW_PER_K,
                "comfort_min_c": 20.0,
                "comfort_max_c": 23.0,
                "gains_kw": GAINS_KW,
                "initial_indoor_c": 21.0,
            },
        },
        {
            "kind": "appliance",
            "name": "dishwasher",
            "profile_kw": DISHWASHER_KW,
            "profile_minutes": 15,
            # every evening, done by 07:00 the next morning
            "weekly": {d: {"earliest_start": "19:00", "latest_end": "07:00"} for d in WEEKDAYS},
        },
    ],
}


def _actuals(first: str, last: str) -> pd.DataFrame:
    """Hourly base load with a daily shape and noise, and PV as a clipped sine."""
    idx = pd.date_range(first, last, freq="60min", tz="UTC", inclusive="left")
    rng = np.random.default_rng(7)
    local = idx.tz_convert(TZ)
    hour = local.hour.to_numpy()
    base = 0.25 + 0.35 * ((hour >= 7) & (hour < 9)) + 0.5 * ((hour >= 18) & (hour < 22))
    base = base + rng.gamma(2.0, 0.05, len(idx))
    pv = np.clip(np.sin((hour - 7) / 12 * np.pi), 0, None) * 3.0 * rng.uniform(0.2, 1, len(idx))
    outdoor = 6.0 + 5.0 * np.sin((hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 1.5, len(idx))
    return pd.DataFrame(
        {
            "start": [t.isoformat() for t in local],
            "base_kwh": base.round(4),
            "pv_kwh": pv.round(4),
            "outdoor_c": outdoor.round(2),
            "quality": "ok",
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bt")
    house = d / "house.yaml"
    house.write_text(yaml.safe_dump(PROFILE))
    actuals = d / "actuals.csv"
    _actuals("2025-09-10", "2025-11-05").to_csv(actuals, index=False)
    return house, actuals


def _real_prices(index: pd.DatetimeIndex) -> np.ndarray:
    spot = datasets.read_day_ahead_prices(index[0], index[-1] + pd.Timedelta(hours=1))
    return (1.19 * (spot / 10.0 + 16.0)).reindex(index).to_numpy(dtype=float)


def _staffell_cop(outdoor_c: np.ndarray, flow_c: float = 35.0) -> np.ndarray:
    """Staffell et al. (2012), air source: 6.81 - 0.121 ΔT + 0.000630 ΔT², ΔT in [15, 60] K."""
    lift = np.clip(flow_c - outdoor_c, 15.0, 60.0)
    return np.maximum(1.0, 6.81 - 0.121 * lift + 0.000630 * lift**2)


def _indoor(theta0: float, hp_kw: np.ndarray, outdoor_c: np.ndarray, hours: float) -> np.ndarray:
    """The 1R1C building, step by step: C dθ = (COP·h − U (θ − θout) + gains) dt."""
    cop = _staffell_cop(outdoor_c)
    out, theta = [], theta0
    for h, o, c in zip(hp_kw, outdoor_c, cop, strict=True):
        theta += hours / C_KWH_PER_K * (c * h - U_KW_PER_K * (theta - o) + GAINS_KW)
        out.append(theta)
    return np.array(out)


# a week across the end of summer time (26 October)
@pytest.mark.parametrize(("start", "end"), [("2025-10-22", "2025-10-29")])
def test_every_bill_is_reproduced_from_the_executed_schedules(
    files: tuple[Path, Path], start: str, end: str
) -> None:
    _, actuals_csv = files
    out = rolling_backtest(
        household_from_dict(PROFILE),
        read_actuals_csv(actuals_csv),
        dt.date.fromisoformat(start),
        dt.date.fromisoformat(end),
    )
    assert set(out.bill_eur) == {
        "forecast",
        "perfect_forecast",
        "baseline",
        "cheapest_slots",
        "bound",
    }
    assert out.shift_weeks == 0
    raw = pd.read_csv(actuals_csv)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw["start"], utc=True))
    lo = pd.Timestamp(f"{start} 14:00", tz=TZ)
    hi = pd.Timestamp(f"{end} 14:00", tz=TZ)
    days = (pd.Timestamp(end) - pd.Timestamp(start)).days
    for name, frame in out.executed.items():
        idx = pd.DatetimeIndex(frame.index)
        # the executed period: 14:00 on the first day to 14:00 after the last, 15-minute
        # slots, one hour more across the end of summer time on 26 October
        assert idx[0] == lo and idx[-1] + pd.Timedelta(minutes=15) == hi
        assert len(idx) == 4 * (days * 24 + 1)
        hourly = idx.floor("60min")
        base = raw["base_kwh"].reindex(hourly).to_numpy()
        pv = raw["pv_kwh"].reindex(hourly).to_numpy()
        outdoor = raw["outdoor_c"].reindex(hourly).to_numpy()
        car = frame["car_kw"].to_numpy()
        bat = frame["battery_kw"].to_numpy()
        hp = frame["hp_kw"].to_numpy()
        dishwasher = frame["dishwasher_kw"].to_numpy()
        net = base - pv + car + bat + hp + dishwasher
        imp, exp = np.clip(net, 0, None), np.clip(-net, 0, None)
        np.testing.assert_allclose(frame["grid_import_kw"], imp, atol=1e-9)
        np.testing.assert_allclose(frame["grid_export_kw"], exp, atol=1e-9)
        price = _real_prices(idx)
        bill = float(np.sum(imp * price - exp * FEED_IN) * 0.25 / 100.0)
        assert out.bill_eur[name] == pytest.approx(bill, abs=1e-6), name
        # the car gets its energy in every session (weekday evenings, Saturday 10–16)
        local = idx.tz_convert(TZ)
        plugged = np.zeros(len(idx), dtype=bool)
        for day in pd.date_range(
            pd.Timestamp(start) - pd.Timedelta(days=1), end, freq="D", tz=TZ, inclusive="left"
        ):
            if day.weekday() < 5:
                plug, dep = day + pd.Timedelta(hours=18), day + pd.Timedelta(hours=31)
                need = 9.0
            elif day.weekday() == 5:
                plug, dep = day + pd.Timedelta(hours=10), day + pd.Timedelta(hours=16)
                need = 12.0
            else:
                continue
            inside = (local >= plug) & (local < dep)
            plugged |= inside
            if dep <= hi and plug >= lo:
                assert car[inside].sum() * 0.25 * 0.92 == pytest.approx(need, abs=1e-3), (
                    name,
                    day,
                )
        assert (car[~plugged] <= 1e-9).all(), name
        # the battery stays within its limits and never exports (export only from PV)
        soc = 1.0 + np.cumsum((np.clip(bat, 0, None) * 0.95 - np.clip(-bat, 0, None) / 0.95) * 0.25)
        assert soc.min() >= 1.0 - 1e-6 and soc.max() <= 10.0 + 1e-6, name
        assert (exp[bat < -1e-6] <= 1e-6).all(), name
        # the dishwasher runs its programme once every evening, within 19:00–07:00
        window = np.zeros(len(idx), dtype=bool)
        for day in pd.date_range(start, end, freq="D", tz=TZ, inclusive="left"):
            first, last = day + pd.Timedelta(hours=19), day + pd.DateOffset(days=1, hours=7)
            inside = (local >= first) & (local < last)
            window |= inside
            on = np.flatnonzero(dishwasher[inside] > 0)
            np.testing.assert_allclose(
                dishwasher[inside][on[0] : on[0] + len(DISHWASHER_KW)], DISHWASHER_KW
            )
            assert dishwasher[inside].sum() == pytest.approx(sum(DISHWASHER_KW)), (name, day)
        assert (dishwasher[~window] == 0).all(), name
        # the heat pump: within its power, and the indoor temperature the 1R1C building
        # gives from 21 °C on the actual outdoor temperature
        assert hp.min() >= 0 and hp.max() <= 3.0 + 1e-9, name
        indoor = _indoor(21.0, hp, outdoor, 0.25)
        np.testing.assert_allclose(frame["hp_indoor_c"], indoor, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(frame["hp_outdoor_c"], outdoor, atol=1e-9, err_msg=name)
        if name in ("baseline", "cheapest_slots"):
            # the thermostat holds its set point (the initial 21 °C)
            np.testing.assert_allclose(indoor, 21.0, atol=1e-6, err_msg=name)
        else:
            assert indoor.min() >= 20.0 - 1e-3 and indoor.max() <= 23.0 + 1e-3, name
    assert out.forecast_error["mae_kwh"] > 0
    assert out.bill_eur["bound"] <= out.bill_eur["perfect_forecast"] + 0.5
    assert out.bill_eur["perfect_forecast"] < out.bill_eur["baseline"]


def test_actuals_from_another_year_are_shifted_by_whole_weeks(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    _actuals("2017-09-10", "2017-11-05").to_csv(path, index=False)
    out = rolling_backtest(
        household_from_dict({"devices": []}),
        read_actuals_csv(path),
        dt.date(2025, 10, 24),
        dt.date(2025, 10, 25),
        strategies=("perfect_forecast",),
    )
    assert out.shift_weeks == 417  # 8 years minus 3 days: the same weekdays
    assert any("shifted by 417 whole weeks" in n for n in out.notes)
    frame = out.executed["perfect_forecast"]
    raw = read_actuals_csv(path)
    first = frame.index[0] - pd.Timedelta(weeks=417)
    assert frame.index[0].weekday() == first.weekday()
    assert frame["base_load_kw"].iloc[0] == pytest.approx(raw["base_kwh"][first.floor("60min")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start,kwh\n2025-01-01T00:00:00+01:00,1\n", "no column 'base_kwh'"),
        ("base_kwh\n1\n", "no column 'start'"),
        (
            "start,base_kwh\n2025-01-01T00:00:00+01:00,1\n2025-01-01T01:00:00,1\n",
            "line 3: start '2025-01-01T01:00:00' has no UTC offset",
        ),
        (
            "start,base_kwh\n2025-01-01T01:00:00Z,1\n2025-01-01T00:00:00Z,1\n",
            "line 3: start is not sorted",
        ),
        (
            "start,base_kwh\n2025-01-01T00:00:00Z,1\n2025-01-01T01:00:00+01:00,1\n",
            "line 3: duplicate start",
        ),
        (
            "start,base_kwh,pv_kwh\n2025-01-01T00:00:00Z,1,0\n2025-01-01T01:00:00Z,x,0\n",
            "line 3: base_kwh 'x' is not a number",
        ),
        (
            "start,base_kwh,pv_kwh\n2025-01-01T00:00:00Z,1,\n2025-01-01T01:00:00Z,1,0\n",
            "line 2: pv_kwh is empty",
        ),
        ("start,base_kwh\nyesterday,1\n", "line 2: start 'yesterday' is not a time"),
        (
            "start,base_kwh,outdoor_c\n2025-01-01T00:00:00Z,1,2\n2025-01-01T01:00:00Z,1,warm\n",
            "line 3: outdoor_c 'warm' is not a number",
        ),
        (
            "start,base_kwh,outdoor_c\n2025-01-01T00:00:00Z,1,275.1\n",
            r"line 2: outdoor_c 275.1 lies outside \[-60, 60\] °C",
        ),
    ],
)
def test_bad_actuals_name_the_column_and_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(ActualsError, match=message):
        read_actuals_csv(path)


def test_cli_prints_the_bills(files: tuple[Path, Path]) -> None:
    house, actuals = files
    cmd = [sys.executable, "-m", "wattplan.cli", "backtest", str(house), "--actuals"]
    cmd += [str(actuals), "--start", "2025-10-24", "--end", "2025-10-26"]
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    data = json.loads(res.stdout)
    assert data["days"] == 2
    assert set(data["bill_eur"]) == {
        "forecast",
        "perfect_forecast",
        "baseline",
        "cheapest_slots",
        "bound",
    }
    assert set(data["forecast_error"]) == {"mae_kwh", "mase"}
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "perfect forecasts" in text and "cheapest slots" in text
    bad = subprocess.run(
        [*cmd[:-4], "--start", "2025-10-24", "--end", "2025-10-24"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "must be after start" in bad.stderr


def test_battery_follows_the_actual_load_within_the_planned_mode() -> None:
    from wattplan.household import HouseholdState
    from wattplan.household_backtest import _execute

    h = household_from_dict(
        {
            "devices": [
                {
                    "kind": "battery",
                    "name": "battery",
                    "capacity_kwh": 10.0,
                    "soc_min_kwh": 1.0,
                    "max_charge_kw": 5.0,
                    "max_discharge_kw": 5.0,
                    "charge_efficiency": 1.0,
                    "discharge_efficiency": 1.0,
                }
            ]
        }
    )
    idx = pd.date_range("2025-11-03 12:00", periods=6, freq="60min", tz="UTC")
    # planned, per hour: discharge 2 kW for an expected 2 kW load; hold (idle, the house
    # from the grid); charge 1 kW from the grid; hold again with the SoC planned at 4 kWh;
    # charge 2 kW from an expected PV surplus of 2 kW (self-consumption), twice
    sched = pd.DataFrame(
        {
            "price_ct_per_kwh": 30.0,
            "feed_in_ct_per_kwh": 8.0,
            "base_load_kw": [2.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "pv_used_kw": [0.0, 0.0, 0.0, 0.0, 3.0, 3.0],
            "battery_charge_kw": [0.0, 0.0, 1.0, 0.0, 2.0, 2.0],
            "battery_discharge_kw": [2.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "battery_soc_kwh": [3.0, 3.0, 4.0, 4.0, 6.0, 8.0],
        },
        index=idx,
    )
    quarter = pd.date_range(idx[0], periods=24, freq="15min")
    # actual: the first hour draws 1 kW more; unexpected PV in the second; the fourth draws
    # 2 kW; the fifth has no PV at all; the sixth half the expected PV (a 1 kW surplus)
    base = pd.Series(np.repeat([3.0, 1.0, 1.0, 2.0, 1.0, 1.0], 4), quarter)
    pv = pd.Series(np.repeat([0.0, 2.5, 0.0, 0.0, 0.0, 2.0], 4), quarter)
    state = HouseholdState(battery_soc_kwh={"battery": 5.0})
    out = _execute(h, sched, idx[0], idx[-1] + pd.Timedelta(hours=1), base, pv, state, [])
    # the battery covers the extra load, stores the surprise surplus, charges as planned,
    # in the hold gives only what it holds above the planned SoC (4.5 - 4.0 kWh), and covers
    # the house when the expected PV does not come; with less PV than expected it stores
    # the actual surplus only, never charging from the grid to make up the plan's charge
    np.testing.assert_allclose(out["battery_kw"], [-3.0, 1.5, 1.0, -0.5, -1.0, 1.0])
    np.testing.assert_allclose(out["grid_import_kw"], [0.0, 0.0, 2.0, 1.5, 0.0, 0.0])
    np.testing.assert_allclose(out["grid_export_kw"], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert state.battery_soc_kwh["battery"] == pytest.approx(
        5.0 - 3.0 + 1.5 + 1.0 - 0.5 - 1.0 + 1.0
    )


HP_ONLY = {"devices": [d for d in PROFILE["devices"] if d["kind"] == "heat_pump"]}


@pytest.mark.parametrize(("day", "slots"), [("2025-10-26", 100), ("2026-03-29", 92)])
def test_execution_carries_the_indoor_temperature(day: str, slots: int) -> None:
    from wattplan.household import HouseholdState
    from wattplan.household_backtest import _execute

    h = household_from_dict(HP_ONLY)
    lo = pd.Timestamp(day, tz=TZ)
    hi = lo + pd.DateOffset(days=1)
    idx = pd.date_range(lo, hi, freq="15min", inclusive="left").tz_convert("UTC")
    assert len(idx) == slots
    rng = np.random.default_rng(3)
    planned = rng.uniform(0.0, 3.0, slots)
    sched = pd.DataFrame(
        {
            "price_ct_per_kwh": 30.0,
            "feed_in_ct_per_kwh": 8.0,
            "base_load_kw": 0.5,
            "pv_used_kw": 0.0,
            "hp_kw": planned,
        },
        index=idx,
    )
    # the actual outdoor temperature, hourly values on the 15-minute grid
    hourly = np.repeat(rng.uniform(-5.0, 10.0, slots // 4), 4)
    outdoor = pd.Series(hourly, index=idx)
    zero = pd.Series(0.0, index=idx)
    state = HouseholdState(indoor_c={"hp": 20.5})
    out = _execute(h, sched, idx[0], hi, zero + 0.5, zero, state, [], outdoor)
    expect = _indoor(20.5, planned, hourly, 0.25)
    np.testing.assert_allclose(out["hp_kw"], planned)
    np.testing.assert_allclose(out["hp_indoor_c"], expect, atol=1e-9)
    np.testing.assert_allclose(out["grid_import_kw"], planned + 0.5)
    assert state.indoor_c["hp"] == pytest.approx(expect[-1])
    # the next window goes on from there
    later = _execute(h, sched, idx[0], hi, zero + 0.5, zero, state, [], outdoor)
    np.testing.assert_allclose(later["hp_indoor_c"], _indoor(expect[-1], planned, hourly, 0.25))


def test_an_appliance_run_is_planned_once_across_two_windows() -> None:
    from wattplan.household import HouseholdState, household_scenario
    from wattplan.household_backtest import _execute
    from wattplan.optimizer import optimize

    # a washing machine, 2 hours, between 10:00 and 20:00 every day
    washer = [2.0, 0.5, 0.5, 0.2]
    h = household_from_dict(
        {
            "devices": [
                {
                    "kind": "appliance",
                    "name": "washer",
                    "profile_kw": washer,
                    "profile_minutes": 30,
                    "weekly": {
                        d: {"earliest_start": "10:00", "latest_end": "20:00"} for d in WEEKDAYS
                    },
                }
            ]
        }
    )
    d0 = pd.Timestamp("2025-11-04", tz=TZ)
    t0, t1, t2 = (d0 + pd.Timedelta(days=k, hours=14) for k in range(3))
    idx = pd.date_range(t0, d0 + pd.Timedelta(days=3), freq="15min", inclusive="left")
    local = idx.tz_convert(TZ)
    price = pd.Series(30.0, index=idx.tz_convert("UTC"))
    clock = local.hour + local.minute / 60
    price[(local.day == 4) & (clock >= 16) & (clock < 18)] = 20.0
    # the cheapest two hours of the 5th straddle the 14:00 re-plan
    price[(local.day == 5) & (clock >= 13) & (clock < 15)] = 10.0
    price[(local.day == 6) & (clock >= 16) & (clock < 18)] = 20.0
    zero = pd.Series(0.0, index=price.index)
    state = HouseholdState()
    frames = []
    for a, b, end in ((t0, t1, d0 + pd.Timedelta(days=2)), (t1, t2, d0 + pd.Timedelta(days=3))):
        sc = household_scenario(
            h, a, end, base_load_kw=zero, prices_ct_per_kwh=price, state=state, replan_at=b
        )
        plan = optimize(sc)
        assert plan.ok
        frames.append(_execute(h, plan.schedule, a, b, zero, zero, state, []))
    kw = pd.concat(frames)["washer_kw"]
    energy = sum(washer) * 0.5
    on = kw[kw > 0].index.tz_convert(TZ)
    # the 4th's run at 16:00, the 5th's from 13:00 (half before, half after the re-plan)
    assert kw.sum() * 0.25 == pytest.approx(2 * energy)
    assert on[0] == pd.Timestamp("2025-11-04 16:00", tz=TZ)
    fifth = kw[kw.index >= pd.Timestamp("2025-11-05", tz=TZ)]
    assert fifth[fifth > 0].index[0] == pd.Timestamp("2025-11-05 13:00", tz=TZ)
    np.testing.assert_allclose(fifth[fifth > 0].to_numpy(), np.repeat(washer, 2))
    assert frames[0]["washer_kw"].sum() > 0 and frames[1]["washer_kw"].sum() > 0
    started = state.appliance_started["washer"]
    assert sorted(started.values()) == [
        pd.Timestamp("2025-11-04 16:00", tz=TZ),
        pd.Timestamp("2025-11-05 13:00", tz=TZ),
    ]


def test_without_outdoor_c_the_typical_year_stands_in(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    _actuals("2025-09-10", "2025-11-05").drop(columns="outdoor_c").to_csv(path, index=False)
    actuals = read_actuals_csv(path)
    assert "outdoor_c" not in actuals.columns
    out = rolling_backtest(
        household_from_dict(HP_ONLY),
        actuals,
        dt.date(2025, 10, 24),
        dt.date(2025, 10, 25),
        strategies=("perfect_forecast",),
    )
    assert any("typical-year temperature" in n for n in out.notes)
    frame = out.executed["perfect_forecast"]
    idx = pd.DatetimeIndex(frame.index)
    weather = datasets.read_weather(idx[0], idx[-1] + pd.Timedelta(hours=1))["temp_air_c"]
    np.testing.assert_allclose(frame["hp_outdoor_c"], weather.reindex(idx.floor("60min")))
    np.testing.assert_allclose(
        frame["hp_indoor_c"],
        _indoor(
            21.0, frame["hp_kw"].to_numpy(), weather.reindex(idx.floor("60min")).to_numpy(), 0.25
        ),
        atol=1e-6,
    )


def test_gaps_in_outdoor_c_are_interpolated_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    raw = _actuals("2025-09-10", "2025-11-05")
    starts = pd.to_datetime(raw["start"], utc=True)
    gap = (starts >= pd.Timestamp("2025-10-24 16:00", tz="UTC")) & (
        starts < pd.Timestamp("2025-10-24 19:00", tz="UTC")
    )
    before = float(
        raw.loc[starts == pd.Timestamp("2025-10-24 15:00", tz="UTC"), "outdoor_c"].iloc[0]
    )
    after = float(
        raw.loc[starts == pd.Timestamp("2025-10-24 19:00", tz="UTC"), "outdoor_c"].iloc[0]
    )
    raw["outdoor_c"] = raw["outdoor_c"].astype(object)
    raw.loc[gap, "outdoor_c"] = ""
    raw.to_csv(path, index=False)
    out = rolling_backtest(
        household_from_dict(HP_ONLY),
        read_actuals_csv(path),
        dt.date(2025, 10, 24),
        dt.date(2025, 10, 25),
        strategies=("perfect_forecast",),
    )
    assert (
        "3 of 24 executed intervals had no outdoor_c; filled by linear interpolation" in out.notes
    )
    frame = out.executed["perfect_forecast"]
    hour = frame["hp_outdoor_c"][pd.Timestamp("2025-10-24 17:00", tz="UTC")]
    assert hour == pytest.approx(before + (after - before) * 2 / 4)


def test_pv_forecast_is_the_mean_of_the_last_published_days_by_wall_clock() -> None:
    from wattplan.household_backtest import PV_DAYS, _persistence_pv

    tz = "Europe/Berlin"
    idx = pd.date_range("2026-03-20", "2026-04-05", freq="15min", tz=tz, inclusive="left")
    local = idx
    # the local day of the month at 02:xx and at 12:xx, nothing else
    values = np.where(np.isin(local.hour, [2, 12]), local.day.astype(float), 0.0)
    pv = pd.Series(values, index=idx.tz_convert("UTC"))
    slots = pd.date_range("2026-04-01", "2026-04-02", freq="15min", tz=tz, inclusive="left")
    out = _persistence_pv(pv, dt.date(2026, 3, 30), slots.tz_convert("UTC"), tz, days=7)
    hours = slots.hour
    # noon: the mean of 24 … 30 March
    np.testing.assert_allclose(out[hours == 12], np.mean(range(24, 31)))
    # 02:xx did not happen on the 23-hour 29 March: that day contributes nothing there
    np.testing.assert_allclose(out[hours == 2], (sum(range(24, 31)) - 29) / 7)
    assert (out[~np.isin(hours, [2, 12])] == 0).all()
    # days after the last published one are not seen
    later = pv.copy()
    later[later.index >= pd.Timestamp("2026-03-31", tz=tz)] *= 10
    np.testing.assert_allclose(
        _persistence_pv(later, dt.date(2026, 3, 30), slots.tz_convert("UTC"), tz, days=7), out
    )
    # the default looks back fourteen days; days without data (before 20 March) are skipped
    assert PV_DAYS == 14
    default = _persistence_pv(pv, dt.date(2026, 3, 30), slots.tz_convert("UTC"), tz)
    np.testing.assert_allclose(default[hours == 12], np.mean(range(20, 31)))
