"""Hostile input to the planner's authenticated API: typed 4xx naming the field, never a 500.

Before: ``setpoint?at=`` with a year-1 or year-9999 time and an offset gave an
OverflowError 500, a 5,000-digit number in a device-state body a ValueError 500 and
8,000 levels of nesting a RecursionError 500. And a car plugged in for less than one whole
slot got "no charging needed": the device-state answer now says what cannot be served, and
the plan carries the optimizer's shortfall at its top level.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.hostile._servers import KEYS, api, auth, make_planner
from tests.planner.conftest import BERLIN, FakeClock, FakePriceSource
from wattplan import scenario_from_dict
from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Customer, Planner, PlanStore, create_app


@pytest.fixture
def client(tmp_path: Any) -> Iterator[httpx.Client]:
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner, _, _ = make_planner(store)
    planner.run_once()
    with api(planner) as c:
        yield c
    store.dispose()


@pytest.mark.parametrize(
    ("at", "words"),
    [
        ("0001-01-01T00:00:00+01:00", "out of range"),
        ("0001-01-01T00:30:00+14:00", "out of range"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("9999-12-31T23:59:59+00:00", "a year"),
        ("2026-01-20T18:00:00+99:00", "ISO 8601"),
        ("2026-01-20T18:00:00", "UTC offset"),
        ("9" * 5000, "longer than"),
    ],
)
def test_extreme_setpoint_times_get_a_400_naming_at(
    client: httpx.Client, at: str, words: str
) -> None:
    r = client.get("/customers/a/setpoint", params={"at": at}, headers=auth("a"))
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["error"], body["key"]) == ("invalid_query", "at")
    assert words in body["message"]


@pytest.mark.parametrize(
    ("content", "status", "key", "words"),
    [
        (
            b'{"devices": {"home-battery": {"soc_kwh": ' + b"1" * 5000 + b"}}}",
            422,
            "devices.home-battery.soc_kwh",
            "more than 64 characters",
        ),
        (
            b'{"devices": {"home-battery": {"soc_kwh": 1.' + b"5" * 5000 + b"}}}",
            422,
            "devices.home-battery.soc_kwh",
            "more than 64 characters",
        ),
        (b'{"devices": ' + b"[" * 8000 + b"]" * 8000 + b"}", 400, "body", "deeper than 32"),
        (b"{" * 8000, 400, "body", "deeper than 32"),
        (b'{"devices": {"home-battery": {"soc_kwh": NaN}}}', 400, "body", "NaN"),
        (b'{"devices": {"home-battery": {"soc_kwh": -Infinity}}}', 400, "body", "Infinity"),
    ],
)
def test_number_and_nesting_bombs_get_a_4xx_naming_the_field(
    client: httpx.Client, content: bytes, status: int, key: str, words: str
) -> None:
    r = client.post(
        "/customers/a/device-state",
        content=content,
        headers={**auth("a"), "content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert body["key"] == key
    assert words in body["message"]


def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx.Client) -> None:
    r = client.post(
        "/customers/a/device-state",
        json={"devices": {"[" * 100 + '{"': {"soc_kwh": 1.0}}},
        headers=auth("a"),
    )
    assert r.status_code == 422
    assert r.json()["key"].startswith("devices.[[[")


# -- a session that cannot be served -------------------------------------------------------

T0 = datetime(2026, 1, 20, 12, 0, tzinfo=BERLIN)


def _hourly_household(start: datetime, end: datetime) -> Any:
    return scenario_from_dict(
        {
            "name": "ev-on-an-hourly-grid",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": "60min",
            "site": {"base_load": 0.3},
            "devices": [{"kind": "ev", "name": "car", "max_power_kw": 11.0}],
        }
    )


def test_a_session_shorter_than_a_slot_is_a_shortfall_in_the_state_answer_and_the_plan(
    tmp_path: Any,
) -> None:
    clock = FakeClock(T0)
    hours = pd.date_range(T0, T0 + timedelta(days=3), freq="60min", inclusive="left")
    prices = pd.Series(30.0, index=hours.tz_convert("UTC"), name="price_ct_per_kwh")
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner = Planner(
        customers=[
            Customer(
                id="a",
                scenario=_hourly_household(T0, T0 + timedelta(days=1)),
                subscription_id="sub_a",
                scenario_factory=_hourly_household,
            )
        ],
        store=store,
        prices=FakePriceSource(clock, prices),
        clock=clock,
    )
    session = {
        "plug_in": "2026-01-20T18:10:00+01:00",
        "departure": "2026-01-20T19:05:00+01:00",
        "energy_kwh": 1.5,
    }
    app = create_app(planner, auth=BearerKeys({"a": KEYS["a"]}))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.post(
            "/customers/a/device-state", json={"devices": {"car": session}}, headers=auth("a")
        )
        assert r.status_code == 200, r.text
        (short,) = r.json()["shortfalls"]
        assert (short["device"], short["kind"], short["unit"]) == ("car", "energy", "kWh")
        assert short["amount"] == pytest.approx(1.5)
        assert "whole slot" in short["message"]

        assert planner.run_once().planned == ["a"]
        doc = c.get("/customers/a/plan", headers=auth("a")).json()
        assert doc["plan_status"] == "feasible_with_shortfall"
        (planned,) = doc["shortfalls"]
        assert (planned["device"], planned["kind"]) == ("car", "energy")
        assert planned["amount"] == pytest.approx(1.5)
        setpoint = c.get("/customers/a/setpoint", headers=auth("a")).json()
        assert setpoint["shortfalls"] == doc["shortfalls"]

        # a session that fits gets an empty list
        fits = {**session, "departure": "2026-01-20T22:00:00+01:00"}
        r = c.post("/customers/a/device-state", json={"devices": {"car": fits}}, headers=auth("a"))
        assert r.json()["shortfalls"] == []
    store.dispose()
