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
from wattplan.household import household_from_dict
from wattplan.household_backtest import ActualsError, read_actuals_csv, rolling_backtest

TZ = "Europe/Berlin"
FEED_IN = 7.9
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
    return pd.DataFrame(
        {
            "start": [t.isoformat() for t in local],
            "base_kwh": base.round(4),
            "pv_kwh": pv.round(4),
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


@pytest.mark.parametrize(("start", "end"), [("2025-10-24", "2025-10-28")])
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
    for name, frame in out.executed.items():
        idx = pd.DatetimeIndex(frame.index)
        # the executed period: 14:00 on the first day to 14:00 after the last, 15-minute
        # slots, one hour more across the end of summer time on 26 October
        assert idx[0] == lo and idx[-1] + pd.Timedelta(minutes=15) == hi
        assert len(idx) == 4 * (4 * 24 + 1)
        hourly = idx.floor("60min")
        base = raw["base_kwh"].reindex(hourly).to_numpy()
        pv = raw["pv_kwh"].reindex(hourly).to_numpy()
        car = frame["car_kw"].to_numpy()
        bat = frame["battery_kw"].to_numpy()
        net = base - pv + car + bat
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
    idx = pd.date_range("2025-11-03 12:00", periods=5, freq="60min", tz="UTC")
    # planned, per hour: discharge 2 kW for an expected 2 kW load; hold (idle, the house
    # from the grid); charge 1 kW from the grid; hold again with the SoC planned at 4 kWh;
    # charge 2 kW from an expected PV surplus of 2 kW (self-consumption)
    sched = pd.DataFrame(
        {
            "price_ct_per_kwh": 30.0,
            "feed_in_ct_per_kwh": 8.0,
            "base_load_kw": [2.0, 1.0, 1.0, 1.0, 1.0],
            "pv_used_kw": [0.0, 0.0, 0.0, 0.0, 3.0],
            "battery_charge_kw": [0.0, 0.0, 1.0, 0.0, 2.0],
            "battery_discharge_kw": [2.0, 0.0, 0.0, 0.0, 0.0],
            "battery_soc_kwh": [3.0, 3.0, 4.0, 4.0, 6.0],
        },
        index=idx,
    )
    quarter = pd.date_range(idx[0], periods=20, freq="15min")
    # actual: the first hour draws 1 kW more; unexpected PV in the second; the fourth draws
    # 2 kW; the fifth has no PV at all
    base = pd.Series(np.repeat([3.0, 1.0, 1.0, 2.0, 1.0], 4), quarter)
    pv = pd.Series(np.repeat([0.0, 2.5, 0.0, 0.0, 0.0], 4), quarter)
    state = HouseholdState(battery_soc_kwh={"battery": 5.0})
    out = _execute(h, sched, idx[0], idx[-1] + pd.Timedelta(hours=1), base, pv, state, [])
    # the battery covers the extra load, stores the surprise surplus, charges as planned,
    # in the hold gives only what it holds above the planned SoC (4.5 - 4.0 kWh), and covers
    # the house when the expected PV does not come
    np.testing.assert_allclose(out["battery_kw"], [-3.0, 1.5, 1.0, -0.5, -1.0])
    np.testing.assert_allclose(out["grid_import_kw"], [0.0, 0.0, 2.0, 1.5, 0.0])
    np.testing.assert_allclose(out["grid_export_kw"], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert state.battery_soc_kwh["battery"] == pytest.approx(5.0 - 3.0 + 1.5 + 1.0 - 0.5 - 1.0)
