"""Dimming signals (§14a EnWG) through the device-state API, honoured by the next re-plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Customer, Planner, PlanStore, create_app
from wattplan.planner._household import demo_household

from .conftest import BERLIN, FakeClock, FakePriceSource, synthetic_prices

KEY = "key-of-customer-c1-0123456789"
NOW = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)
A, B = "2026-01-20T18:00:00+01:00", "2026-01-20T19:00:00+01:00"


@pytest.fixture
def planner(store: PlanStore) -> Planner:
    clock = FakeClock(NOW)
    t0 = datetime(2026, 1, 20, tzinfo=BERLIN)
    customer = Customer(
        id="c1",
        scenario=demo_household(t0, t0 + timedelta(days=1)),
        scenario_factory=demo_household,
    )
    return Planner(
        customers=[customer],
        store=store,
        prices=FakePriceSource(clock, synthetic_prices(date(2026, 1, 15), 14)),
        clock=clock,
    )  # the real wattplan.optimize


@pytest.fixture
def client(planner: Planner) -> Iterator[httpx.Client]:
    app = create_app(planner, auth=BearerKeys({"c1": KEY}))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def _post(client: httpx.Client, devices: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/customers/c1/device-state",
        json={"devices": devices},
        headers={"Authorization": f"Bearer {KEY}"},
    )


def _window(hours_from: float, hours_to: float, **extra: Any) -> dict[str, Any]:
    return {
        "start": (NOW + timedelta(hours=hours_from)).isoformat(),
        "end": (NOW + timedelta(hours=hours_to)).isoformat(),
        **extra,
    }


def _plan(planner: Planner) -> dict[str, Any]:
    plan: dict[str, Any] = planner.plan_document("c1")["plan"]
    return plan


def test_a_dimming_signal_is_honoured_by_the_next_replan(
    client: httpx.Client, planner: Planner
) -> None:
    car = {
        "plug_in": NOW.isoformat(),
        "departure": (NOW + timedelta(hours=16)).isoformat(),
        "energy_kwh": 40,
    }
    assert _post(client, {"car": car}).status_code == 200
    planner.run_once()
    before = _plan(planner)
    assert before["dimming_moved_kwh"] is None
    # the car charges at night (cheap): dim it to 4.2 kW from 22:00 to 05:00. At 15:05 the
    # heat pump's signal has ended (15:03) and is ignored, though it overlaps the running
    # slot 15:00-15:15 that the plan starts with
    planner.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    r = _post(
        client,
        {
            "car": {"dimming": [_window(7, 14)]},
            "heat-pump": {"dimming": [_window(-3, 0.05, max_kw=0.0)]},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["replan"] is True
    assert r.json()["devices"]["car"]["dimming"][0]["max_kw"] == 4.2
    assert planner.run_once(fetch_prices=False).planned == ["c1"]
    after = _plan(planner)
    lo, hi = NOW + timedelta(hours=7), NOW + timedelta(hours=14)

    def window_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in plan["schedule"] if lo <= datetime.fromisoformat(r["start"]) < hi]

    # the car's grid draw (beyond what PV or the home battery supplies) stays at the cap
    rows = window_rows(after)
    assert len(rows) == 28
    own = [r["pv_used_kw"] + r["home-battery_discharge_kw"] - r["grid_export_kw"] for r in rows]
    assert max(r["car_kw"] - o for r, o in zip(rows, own, strict=True)) <= 4.2 + 1e-6
    assert max(r["car_kw"] for r in window_rows(before)) > 4.2
    assert after["dimming_moved_kwh"] > 0
    assert set(after["dimming_moved_kwh_by_device"]) == {"car"}
    assert "Grid signal (§14a EnWG): dimmed car" in after["explanation"]
    # an empty list clears the signal
    assert _post(client, {"car": {"dimming": []}}).json()["replan"] is True
    planner.run_once(fetch_prices=False)
    assert _plan(planner)["dimming_moved_kwh"] is None


@pytest.mark.parametrize(
    ("signal", "key"),
    [
        ({"start": "2026-01-20T18:00:00+01:00", "end": "2026-01-20T17:00:00+01:00"}, "end"),
        ({"start": "2026-01-20T18:00:00", "end": "2026-01-20T19:00:00+01:00"}, "start"),
        ({"start": A, "end": B, "max_kw": -1}, "max_kw"),
        ({"start": A, "end": B, "kw": 3}, "kw"),
        ({"start": "2026-01-20T18:00:00+01:00", "end": "2026-03-20T19:00:00+01:00"}, "end"),
        ({"end": "2026-01-20T19:00:00+01:00"}, "start"),
    ],
)  # fmt: skip
def test_a_bad_signal_gets_a_422_naming_the_field_and_changes_nothing(
    client: httpx.Client, planner: Planner, signal: dict[str, Any], key: str
) -> None:
    r = _post(client, {"heat-pump": {"dimming": [signal]}})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_device_state"
    assert r.json()["key"] == f"devices.heat-pump.dimming.0.{key}"
    assert planner.store.device_state("c1").version == 0


def test_a_signal_for_a_device_that_cannot_be_dimmed_is_refused(
    client: httpx.Client, planner: Planner
) -> None:
    r = _post(client, {"car": {"dimming": {"start": "x"}}})
    assert r.status_code == 422
    assert r.json()["key"] == "devices.car.dimming"
    r = _post(client, {"car": {"dimming": [_window(1, 2)] * 17}})
    assert r.status_code == 422
    assert r.json()["key"] == "devices.car.dimming"
