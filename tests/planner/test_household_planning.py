"""Customers planned from a household profile, on forecasts from their own usage.

Against the real sandbox (its clock driven by the test, the planner reading the same
clock), the real OAuth grant, the real store and the real optimizer; the customers come
from a planner.yaml that names a profile and no Python factory.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from wattplan._http import serve_in_thread
from wattplan.exceptions import ConfigurationError
from wattplan.planner import PlanStore
from wattplan.planner._runtime import customers_from_config
from wattplan.planner._usage import executed_device_kwh
from wattplan.planner.api import BearerKeys, create_app
from wattplan.planner.config import load_config
from wattplan.sandbox import RunningSandbox, SandboxConfig
from wattplan.sandbox._data import day_usage_kwh, eighth_working_day, meter_day_usage_kwh

from .conftest import BERLIN
from .test_integration import World, _connect, _world

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "scenarios" / "households" / "customer-42.yaml"
ERROR_LOG = "base-load forecast error on"
# the demo customer's subscription: a real household's meter, or H25 at its estimated usage
DEMO_SUBSCRIPTION = SandboxConfig().customers[0].subscriptions[0]


def _served(day: date, *, final: bool, source: str) -> pd.Series:
    """What the sandbox serves for the demo subscription on a local day (kWh per 15 min)."""
    if source == "meters":
        assert DEMO_SUBSCRIPTION.household is not None
        return meter_day_usage_kwh(DEMO_SUBSCRIPTION.household, day, final=final)
    return day_usage_kwh(day, annual_kwh=DEMO_SUBSCRIPTION.estimated_usage_kwh)


def _config(tmp_path: Path) -> Path:
    """A planner.yaml next to a copy of the shipped profile, named relative to it."""
    (tmp_path / "households").mkdir()
    shutil.copy(PROFILE, tmp_path / "households" / "customer-42.yaml")
    path = tmp_path / "planner.yaml"
    path.write_text(
        "customers:\n  - id: customer-42\n    household: households/customer-42.yaml\n",
        encoding="utf-8",
    )
    return path


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


def _midnight(day: date) -> datetime:
    return _local(day, 0)


def _slots(day: date) -> int:
    """Quarter-hours of a local day (92 and 100 on the DST days); aware arithmetic in UTC."""
    lo, hi = _midnight(day).astimezone(UTC), _midnight(day + timedelta(days=1)).astimezone(UTC)
    return int((hi - lo).total_seconds() // 900)


@pytest.fixture
def make_world(
    sandbox_factory: Any, db_url: str, table_prefix: str, tmp_path: Path
) -> Iterator[object]:
    worlds: list[World] = []

    def make(start: datetime, usage_source: str = "meters") -> World:
        sandbox: RunningSandbox = sandbox_factory(SandboxConfig(usage_source=usage_source))
        sandbox.clock.set(start)
        config = load_config(_config(tmp_path))
        assert config.customers[0].factory is None
        assert config.customers[0].household == tmp_path / "households" / "customer-42.yaml"
        store = PlanStore(db_url, table_prefix=table_prefix)
        customers = customers_from_config(config, store, now=start)
        store.dispose()
        world = _world(sandbox, db_url, table_prefix, customers)
        customers[0].household.store = world.store  # the world's own store, one engine
        _connect(world, "customer-42")
        worlds.append(world)
        return world

    yield make
    for w in worlds:
        w.close()
    PlanStore(db_url, table_prefix=table_prefix).drop_all()


CID = "customer-42"
KEY = "customer-42-key-0123456789"


def keys_key() -> str:
    return KEY


def _day(world: World, day: date, caplog: pytest.LogCaptureFixture) -> None:
    """The publication pass (14:30) and the usage pass (16:30) of one day, checked."""
    planner, store, clock = world.planner, world.store, world.sandbox.clock
    clock.set(_local(day, 14, 30))
    report = planner.run_once()
    assert report.planned == [CID], report.outcomes
    plan = store.latest_plan(CID)
    assert plan is not None
    assert plan.horizon_end == _midnight(day + timedelta(days=2))
    assert plan.status in ("optimal", "feasible_with_shortfall")
    # tomorrow's base load in the plan is the stored forecast's mean (kWh per 15 min -> kW)
    tomorrow = day + timedelta(days=1)
    lo, hi = _midnight(tomorrow), _midnight(tomorrow + timedelta(days=1))
    forecast = store.forecast(CID, since=lo, until=hi)
    rows = pd.DataFrame(plan.document["schedule"])
    rows.index = pd.DatetimeIndex(pd.to_datetime(rows["start"], utc=True))
    planned = rows["base_load_kw"][(rows.index >= lo) & (rows.index < hi)]
    assert len(planned) == _slots(tomorrow)
    if len(forecast):
        assert len(forecast) == _slots(tomorrow)
        expected = forecast["kwh_mean"].reindex(planned.index) * 4
        assert (planned - expected).abs().max() < 1e-5
    # the profile's PV on the typical-year weather: some by day, none at night
    hours = pd.DatetimeIndex(rows.index).tz_convert(BERLIN).hour
    assert rows["pv_available_kw"][(hours >= 11) & (hours < 14)].max() > 0
    assert rows["pv_available_kw"][(hours < 5) | (hours >= 21)].max() == 0
    clock.set(_local(day, 16, 30))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wattplan.planner._usage"):
        report = planner.run_once()
    assert report.failed == []
    usage = store.usage_status(CID)
    assert usage is not None
    assert usage.ok
    assert usage.last_success_at == clock.now()
    # yesterday's usage is in: the history reaches its last quarter-hour
    assert usage.history_until == _midnight(day) - timedelta(minutes=15)
    fc = store.forecast(CID, since=_midnight(tomorrow), until=_midnight(tomorrow + timedelta(1)))
    assert len(fc) == _slots(tomorrow)
    assert (fc["made_at"] == clock.now()).all()


def test_fourteen_days_over_the_spring_dst_switch(
    make_world: object, caplog: pytest.LogCaptureFixture
) -> None:
    first = date(2026, 3, 20)
    world = make_world(_local(first, 9))  # type: ignore[operator]
    logged: list[str] = []
    for i in range(14):
        day = first + timedelta(days=i)
        _day(world, day, caplog)
        logged += [r.getMessage() for r in caplog.records if ERROR_LOG in r.getMessage()]
    store = world.store
    assert store.count_plans(CID) == 14
    errors = store.forecast_errors(CID)
    # the first refresh forecasts from the next day on: a logged error for every day after
    assert sorted(errors) == [(first + timedelta(days=i)).isoformat() for i in range(1, 13)]
    assert len(logged) == 12
    assert all(e > 0 for e in errors.values())
    # the MAE is recomputed independently from the stored history and forecast
    for day_text, mae in errors.items():
        day = date.fromisoformat(day_text)
        lo, hi = _midnight(day), _midnight(day + timedelta(days=1))
        history = store.usage_history(CID, since=lo, until=hi)
        assert len(history) == _slots(day)  # 92 quarter-hours on 2026-03-29
        actual = (history["kwh"] - history["controlled_kwh"]).clip(lower=0)
        forecast = store.forecast(CID, since=lo, until=hi)["kwh_p50"]
        assert abs(float((forecast - actual).abs().mean()) - mae) < 1e-9
        assert any(day_text in line and f"{mae:.4f}" in line for line in logged)
    assert _slots(date(2026, 3, 29)) == 92
    # the metered history: what the sandbox served, minus the devices of the executed plans
    history = store.usage_history(CID)
    # March's values are preliminary until April's eighth working day
    served = pd.concat(
        [_served(first + timedelta(days=i), final=False, source="meters") for i in range(13)]
    )
    assert (history.loc[served.index, "kwh"] - served).abs().max() < 1e-3
    assert set(served.index) <= set(history.index)
    plans = store.plans_since(CID, _midnight(first) - timedelta(days=1))
    drawn = 0.0
    for ts in served.index:
        in_force = [p for p in plans if pd.Timestamp(p.horizon_start) <= ts]
        kwh = 0.0
        if in_force:
            row = next(
                (r for r in in_force[-1].document["schedule"] if pd.Timestamp(r["start"]) == ts),
                None,
            )
            if row is not None:
                kwh = 0.25 * ((row.get("car_kw") or 0) + (row.get("home-battery_kw") or 0))
        assert abs(history.loc[ts, "controlled_kwh"] - kwh) < 1e-9
        drawn += abs(kwh)
    assert drawn > 10  # the car and the battery did run


def test_the_autumn_switch_plans_and_forecasts_its_25_hours(
    make_world: object, caplog: pytest.LogCaptureFixture
) -> None:
    first = date(2025, 10, 24)
    world = make_world(_local(first, 9))  # type: ignore[operator]
    for i in range(4):
        _day(world, first + timedelta(days=i), caplog)  # checks 100 slots on 2025-10-26
    assert _slots(date(2025, 10, 26)) == 100
    errors = world.store.forecast_errors(CID)
    assert "2025-10-26" in errors
    lo, hi = _midnight(date(2025, 10, 26)), _midnight(date(2025, 10, 27))
    assert len(world.store.usage_history(CID, since=lo, until=hi)) == 100


def _status_cli(tmp_path: Path, db_url: str, prefix: str, *extra: str) -> tuple[int, str]:
    """``wattplan status`` on the test's store (a config naming its database and prefix)."""
    import contextlib
    import io

    from wattplan.cli import main

    config = tmp_path / "status.yaml"
    config.write_text(
        f"database_url: {db_url}\ntable_prefix: {prefix}\nhttp: null\n"
        "customers:\n  - id: customer-42\n    household: households/customer-42.yaml\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", "--config", str(config), *extra])
    return code, out.getvalue()


def test_a_usage_outage_plans_on_the_last_forecast_and_recovers(
    make_world: object,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    db_url: str,
    table_prefix: str,
) -> None:
    first = date(2026, 1, 19)
    world = make_world(_local(first, 9))  # type: ignore[operator]
    planner, store, sandbox = world.planner, world.store, world.sandbox
    for i in range(2):
        _day(world, first + timedelta(days=i), caplog)
    good = store.usage_status(CID)
    assert good is not None
    sandbox.state.faults.usage_server_error = True  # the meter data are out, prices are not
    keys = BearerKeys({CID: "customer-42-key-0123456789"})
    with (
        serve_in_thread(create_app(planner, auth=keys)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        for i in range(2, 4):
            day = first + timedelta(days=i)
            sandbox.clock.set(_local(day, 14, 30))
            assert planner.run_once().planned == [CID]  # planning goes on
            sandbox.clock.set(_local(day, 16, 30))
            before = store.count_plans(CID)
            report = planner.run_once()
            assert report.failed == []
            assert store.count_plans(CID) == before
            status = http.get(
                f"/customers/{CID}/status", headers={"Authorization": f"Bearer {keys_key()}"}
            ).json()
            assert status["health"] == "ok"  # the plans are fine
            assert status["usage"]["ok"] is False
            assert status["usage"]["consecutive_failures"] == i - 1
            assert "usage fetch failed" in status["usage"]["error"]
            assert status["usage"]["forecast_made_at"] == good.forecast_made_at.isoformat()  # type: ignore[union-attr]
            health = http.get("/health").json()
            assert health["status"] == "degraded"
            assert health["usage_fetches"] == {"ok": False, "failing_customers": 1}
        code, out = _status_cli(tmp_path, world.url, world.prefix, "--strict")
        assert code == 1  # --strict: a failing usage fetch counts
        assert "usage fetch failing (2 in a row" in out
        code, out = _status_cli(tmp_path, world.url, world.prefix, "--json")
        assert json.loads(out)[0]["usage"]["consecutive_failures"] == 2
        # the plan of the day after the outage rests on the last good history
        plan = store.latest_plan(CID)
        assert plan is not None
        assert store.usage_status(CID).history_until == good.history_until  # type: ignore[union-attr]
        sandbox.state.faults.usage_server_error = False
        sandbox.clock.set(_local(first + timedelta(days=4), 9))
        assert planner.run_once().failed == []  # before 16:00: no fetch is due yet
        assert store.usage_status(CID).failures == 2  # type: ignore[union-attr]
        _day(world, first + timedelta(days=4), caplog)  # recovers by itself
        status = http.get(
            f"/customers/{CID}/status", headers={"Authorization": f"Bearer {keys_key()}"}
        ).json()
        assert status["usage"]["ok"] is True
        assert status["usage"]["consecutive_failures"] == 0
        assert http.get("/health").json()["usage_fetches"]["ok"] is True
    code, out = _status_cli(tmp_path, world.url, world.prefix, "--strict")
    assert code == 0
    assert "usage fetch failing" not in out
    # the days of the outage were fetched after it, without gaps
    history = store.usage_history(
        CID, since=_midnight(first), until=_midnight(first + timedelta(4))
    )
    assert len(history) == 4 * 96


@pytest.mark.parametrize(
    ("source", "factor"),
    [("meters", 1.0), ("h25", 0.9)],  # a real meter's substituted hours; H25 read low
)
def test_a_final_value_corrects_the_stored_history_and_nothing_else(
    make_world: object, caplog: pytest.LogCaptureFixture, source: str, factor: float
) -> None:
    # January's values turn final on the eighth working day of February
    final_day = eighth_working_day(2026, 2)
    first = final_day - timedelta(days=2)
    world = make_world(_local(first, 9), source)  # type: ignore[operator]
    store, sandbox = world.store, world.sandbox
    sandbox.state.faults.usage_preliminary_factor = factor
    for i in range(2):
        _day(world, first + timedelta(days=i), caplog)
    sandbox.clock.set(_local(final_day, 14, 30))  # the day's plan, before its usage pass
    assert world.planner.run_once().planned == [CID]
    before = store.usage_history(CID)
    january = before.index < pd.Timestamp(_midnight(date(2026, 2, 1)))
    assert january.sum() > 96
    assert (before["type"] == "preliminary").all()
    errors = store.forecast_errors(CID)
    plans = store.count_plans(CID)
    latest = store.latest_plan(CID)
    status = world.planner.customer_status(CID)
    sandbox.clock.set(_local(final_day, 16, 30))
    with caplog.at_level(logging.INFO, logger="wattplan.planner._usage"):
        assert world.planner.run_once().failed == []
    after = store.usage_history(CID)
    old = after.loc[before.index]
    # January: the final values (as metered) replace the preliminary ones
    jan = before.index[january]
    days = [d.date() for d in pd.date_range("2026-01-01", "2026-01-31")]
    final = pd.concat([_served(d, final=True, source=source) for d in days]).reindex(jan)
    prelim = pd.concat([_served(d, final=False, source=source) for d in days]).reindex(jan)
    prelim = (prelim * factor).round(4)
    assert (before.loc[jan, "kwh"] - prelim).abs().max() < 1e-3  # as served before
    assert (old.loc[jan, "type"] == "final").all()
    assert (old.loc[jan, "kwh"] - final).abs().max() < 1e-3
    changed = int(((final.round(4) - prelim).abs() > 1e-9).sum())
    assert changed > 0  # the correction is real
    # February's values stay preliminary and unchanged, and nothing else moved
    feb = before.index[~january]
    pd.testing.assert_frame_equal(old.loc[feb], before.loc[feb])
    assert (old["controlled_kwh"] == before["controlled_kwh"]).all()
    for day, mae in errors.items():
        assert store.forecast_errors(CID)[day] == mae
    assert store.count_plans(CID) == plans
    assert store.latest_plan(CID) == latest
    now_status = world.planner.customer_status(CID)
    assert now_status is not None and status is not None
    assert now_status["health"] == status["health"] == "ok"
    assert any(f"{changed} corrected" in r.getMessage() for r in caplog.records)


def test_controlled_energy_on_the_25_hour_day_follows_the_plan_in_force() -> None:
    from wattplan.planner.store import StoredPlan

    day_lo = pd.Timestamp("2025-10-26", tz=BERLIN)
    day_hi = pd.Timestamp("2025-10-27", tz=BERLIN)
    slots = pd.date_range(day_lo, day_hi, freq="15min", inclusive="left")
    assert len(slots) == 100

    def plan(pid: int, start: pd.Timestamp, car_kw: float) -> StoredPlan:
        rows = [
            {"start": ts.isoformat(), "car_kw": car_kw, "bat_kw": -1.0}
            for ts in slots
            if ts >= start
        ]
        doc = {
            "devices": [{"name": "car", "kind": "ev"}, {"name": "bat", "kind": "battery"}],
            "resolution_minutes": 15,
            "schedule": rows,
        }
        moment = start.to_pydatetime()
        return StoredPlan(pid, "c", moment, moment, day_hi.to_pydatetime(), "r", "optimal",
                          None, None, None, "p", "s", doc, "[]", {})  # fmt: skip

    second = slots[60]  # a re-plan in the afternoon replaces the rest of the first plan
    hourly = pd.date_range(day_lo, day_hi, freq="60min", inclusive="left")
    out = executed_device_kwh([plan(2, second, 4.0), plan(1, slots[0], 2.0)], hourly, 60)
    assert len(out) == 25
    by_hour = {ts: v for ts, v in out.items()}
    assert by_hour[hourly[0]] == pytest.approx(4 * 0.25 * (2.0 - 1.0))
    assert by_hour[hourly[-1]] == pytest.approx(4 * 0.25 * (4.0 - 1.0))
    assert sum(by_hour.values()) == pytest.approx(60 * 0.25 * 1.0 + 40 * 0.25 * 3.0)


def test_planner_yaml_household_keys(tmp_path: Path) -> None:
    path = _config(tmp_path)
    config = load_config(path)
    assert config.usage.settings().available_after == time(16, 0)
    path.write_text(
        path.read_text(encoding="utf-8") + "usage: {available_after: 17:30, history_days: 14}\n",
        encoding="utf-8",
    )
    config = load_config(path)  # unquoted 17:30 is YAML 1.1's integer 1050
    assert config.usage.settings().available_after == time(17, 30)
    assert config.usage.history_days == 14
    assert config.customers[0].household == (tmp_path / "households/customer-42.yaml").resolve()
    both = tmp_path / "both.yaml"
    both.write_text(
        "customers:\n  - id: c\n    household: h.yaml\n"
        "    factory: wattplan.planner:demo_household\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=r"customers\.0: .*only one of household"):
        load_config(both)
    missing = tmp_path / "missing.yaml"
    missing.write_text("customers:\n  - id: c\n    household: nowhere.yaml\n", encoding="utf-8")
    store = PlanStore(f"sqlite:///{tmp_path / 's.sqlite3'}")
    with pytest.raises(ConfigurationError, match=r"customers\[c\]\.household: .*file not found"):
        customers_from_config(load_config(missing), store, now=_local(date(2026, 1, 5), 9))
    bad = tmp_path / "households" / "bad.yaml"
    bad.write_text("site: {annual_kwh: -5}\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(
        "customers:\n  - id: c\n    household: households/bad.yaml\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match=r"site\.annual_kwh"):
        customers_from_config(
            load_config(tmp_path / "bad.yaml"), store, now=_local(date(2026, 1, 5), 9)
        )
    store.dispose()


class _BadUsage:
    """A usage source that answers with what a broken upstream might send."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def fetch_usage(self, customer: object, *, start: date, end: date) -> pd.DataFrame:
        return self.frame


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"usage_kwh": [0.1, float("nan")]}, "usage_kwh at .* not a non-negative number"),
        ({"usage_kwh": [0.1, -0.2]}, "usage_kwh at .* not a non-negative number"),
        ({"type": ["final", "estimated"]}, "unknown type 'estimated'"),
        ({"naive": True}, "tz-aware"),
    ],
)
def test_bad_usage_is_refused_by_name_and_stores_nothing(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    from wattplan.household import load_household
    from wattplan.planner import Customer, HouseholdPlanning, UsageSettings
    from wattplan.planner._usage import refresh_usage

    store = PlanStore(f"sqlite:///{tmp_path / 's.sqlite3'}")
    planning = HouseholdPlanning(load_household(PROFILE), customer_id=CID, store=store)
    now = _local(date(2026, 1, 20), 16, 30)
    customer = Customer(id=CID, scenario=planning.base_scenario(now), household=planning)
    index = pd.date_range("2026-01-19T00:00", periods=2, freq="15min", tz=BERLIN)
    frame = pd.DataFrame({"usage_kwh": [0.1, 0.2], "type": ["final", "final"]}, index=index)
    for key, value in change.items():
        if key == "naive":
            frame.index = index.tz_localize(None)
        else:
            frame[key] = value
    assert refresh_usage(customer, planning, _BadUsage(frame), now, UsageSettings()) is False
    status = store.usage_status(CID)
    assert status is not None and not status.ok
    assert status.error is not None
    assert re.search(reason, status.error)
    assert store.usage_history(CID).empty
    assert store.forecast(CID, since=now - timedelta(days=9), until=now + timedelta(days=9)).empty
    good = pd.DataFrame({"usage_kwh": [0.1, 0.2], "type": ["final", "final"]}, index=index)
    assert refresh_usage(customer, planning, _BadUsage(good), now, UsageSettings()) is True
    assert len(store.usage_history(CID)) == 2
    assert store.usage_status(CID).ok  # type: ignore[union-attr]
    store.dispose()


@pytest.mark.parametrize("day", [date(2025, 10, 26), date(2026, 3, 29)])
def test_a_profile_with_a_heat_pump_and_an_appliance_composes_on_the_weather(
    tmp_path: Path, day: date
) -> None:
    from wattplan.datasets import read_weather
    from wattplan.household import household_from_dict, load_household
    from wattplan.planner import HouseholdPlanning

    profile = load_household(PROFILE).model_dump(mode="json", exclude_none=True)
    profile["devices"] = [
        *profile["devices"],
        {
            "kind": "heat_pump",
            "name": "hp",
            "max_power_kw": 3.0,
            "building": {
                "heat_capacity_kwh_per_k": 10.0,
                "heat_loss_kw_per_k": 0.2,
                "comfort_min_c": 20.0,
                "comfort_max_c": 23.0,
            },
        },
        {
            "kind": "appliance",
            "name": "dishwasher",
            "profile_kw": [1.0, 1.0],
            "weekly": {d: {"earliest_start": "19:00", "latest_end": "07:00"} for d in ("sun",)},
        },
    ]
    store = PlanStore(f"sqlite:///{tmp_path / 's.sqlite3'}")
    planning = HouseholdPlanning(household_from_dict(profile), customer_id=CID, store=store)
    lo = _local(day, 0, 0).astimezone(UTC)
    hi = _local(day + timedelta(days=1), 0, 0).astimezone(UTC)
    slots = pd.date_range(lo, hi, freq="15min", inclusive="left")
    scenario = planning.scenario(lo, hi, prices=pd.Series(30.0, index=slots))
    hp = next(d for d in scenario.devices if d.name == "hp")
    outdoor = pd.Series(hp.outdoor_c.values, index=pd.DatetimeIndex(hp.outdoor_c.index))
    assert len(slots) in (92, 100)
    assert len(outdoor) * 4 == len(slots)  # hourly weather over the 23- or 25-hour day
    # the heat pump's outdoor temperature is the typical year's, hour by hour
    typical = read_weather(lo, hi)["temp_air_c"]
    typical.index = pd.DatetimeIndex(typical.index).tz_convert("UTC")
    expected = typical.reindex(pd.DatetimeIndex(outdoor.index).tz_convert("UTC"))
    assert expected.notna().all()
    assert float((outdoor - expected.to_numpy()).abs().max()) < 1.0
    assert outdoor.max() - outdoor.min() > 0.5  # a day's weather, not a constant
    assert any(d.kind == "appliance" for d in scenario.devices)
    assert planning.base_scenario(lo).devices
    store.dispose()
