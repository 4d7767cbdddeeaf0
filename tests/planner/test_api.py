"""The planner's HTTP API: closed by default, one customer never reaches another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Planner, PlanStore, create_app

from .conftest import BERLIN, FakeClock, FakeOptimizer, FakePriceSource, fake_customer
from .conftest import synthetic_prices as _prices

KEY_A = "key-of-customer-a-0123456789"
KEY_B = "key-of-customer-b-9876543210"


@pytest.fixture
def planner(store: PlanStore) -> Planner:
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    planner = Planner(
        customers=[fake_customer("a"), fake_customer("b")],
        store=store,
        prices=FakePriceSource(clock, _prices(date(2026, 1, 15), 14)),
        optimize=FakeOptimizer(),
        clock=clock,
    )
    planner.run_once()
    planner.update_device_state("b", {"devices": {"home-battery": {"soc_kwh": 7.0}}})
    return planner


@contextmanager
def _serve(app: Starlette) -> Iterator[httpx.Client]:
    """The app on a free loopback port, over real HTTP."""
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture
def client(planner: Planner) -> Iterator[httpx.Client]:
    with _serve(create_app(planner, auth=BearerKeys({"a": KEY_A, "b": KEY_B}))) as c:
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_is_open_and_holds_no_customer_data(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["customers"] == 2
    assert body["health"]["ok"] == 2
    assert "a" not in json.dumps(body).replace('"', " ").split()


@pytest.mark.parametrize(
    "path", ["/customers/a/plan", "/customers/a/setpoint", "/customers/a/status",
             "/customers/a/device-state", "/customers/a/tariff?format=evcc"],
)  # fmt: skip
def test_every_customer_route_refuses_a_request_without_a_key(
    client: httpx.Client, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "plan" not in r.json()
    r = client.get(path, headers={"Authorization": "Bearer not-a-valid-key-at-all"})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "path", ["/customers/b/plan", "/customers/b/setpoint", "/customers/b/status",
             "/customers/b/device-state", "/customers/b/tariff", "/customers/nobody/plan"],
)  # fmt: skip
def test_a_customers_key_cannot_read_another_customer(client: httpx.Client, path: str) -> None:
    r = client.get(path, headers=_auth(KEY_A))
    assert r.status_code == 403
    assert "soc_kwh" not in r.text
    assert "schedule" not in r.text


def test_own_key_reads_plan_setpoint_status_and_state(client: httpx.Client) -> None:
    r = client.get("/customers/a/plan", headers=_auth(KEY_A))
    assert r.status_code == 200
    body = r.json()
    assert body["customer_id"] == "a"
    assert body["stale"] is False
    assert body["plan"]["status"] == "optimal"
    assert body["plan"]["schedule"][0]["start"].endswith("+00:00")
    sp = client.get("/customers/a/setpoint", headers=_auth(KEY_A)).json()
    assert sp["setpoint"]["start"] == "2026-01-20T14:00:00+00:00"
    at = client.get(
        "/customers/a/setpoint",
        params={"at": "2026-01-20T18:20:00+01:00"},
        headers=_auth(KEY_A),
    ).json()
    assert at["setpoint"]["start"] == "2026-01-20T17:15:00+00:00"
    assert client.get("/customers/a/status", headers=_auth(KEY_A)).json()["health"] == "ok"
    state = client.get("/customers/b/device-state", headers=_auth(KEY_B)).json()
    assert state["devices"] == {"home-battery": {"soc_kwh": 7.0}}


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_customers_key_cannot_change_another_customers_state(
    client: httpx.Client, planner: Planner, method: str
) -> None:
    body = {"devices": {"home-battery": {"soc_kwh": 1.0}}}
    r = client.request(method, "/customers/b/device-state", json=body, headers=_auth(KEY_A))
    assert r.status_code == 403
    r = client.request(method, "/customers/b/device-state", json=body)
    assert r.status_code == 401
    state = planner.store.device_state("b")
    assert state.version == 1
    assert state.devices == {"home-battery": {"soc_kwh": 7.0}}


def test_own_key_changes_own_state_and_triggers_a_replan(
    client: httpx.Client, planner: Planner
) -> None:
    told: list[str] = []
    planner.on_device_state_change(told.append)
    r = client.post(
        "/customers/b/device-state",
        json={"devices": {"home-battery": {"soc_kwh": 2.0}}},
        headers=_auth(KEY_B),
    )
    assert r.status_code == 200
    assert r.json()["replan"] is True
    assert told == ["b"]
    r = client.put(
        "/customers/b/device-state",
        json={"devices": {"heat-pump": {"indoor_c": 20.5}}},
        headers=_auth(KEY_B),
    )
    assert r.status_code == 200
    assert planner.store.device_state("b").devices == {"heat-pump": {"indoor_c": 20.5}}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "words"),
    [
        (b"x" * 20_000, "application/json", 413, "exceeds 16384 bytes"),
        (b'{"devices": {"home-battery": {"soc_kwh": 1}', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        (b'{"devices": {"home-battery": {"soc_kwh": 1}}}', "text/plain", 415, "application/json"),
        (b'{"devices": {"home-battery": {"soc_kwh": -3}}}', "application/json", 422,
         "devices.home-battery.soc_kwh"),
        (b'{"devices": {"home-battery": {"soc_kwh": 1e999}}}', "application/json", 422,
         "devices.home-battery.soc_kwh"),
        (b'{"devices": {"toaster": {"on": true}}}', "application/json", 422, "devices.toaster"),
        (b'[]', "application/json", 422, "body"),
        (b'"text"', "application/json", 422, "body"),
    ],
)  # fmt: skip
def test_bad_device_state_bodies_get_a_4xx_naming_the_problem_and_change_nothing(
    client: httpx.Client,
    planner: Planner,
    content: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    r = client.post(
        "/customers/b/device-state",
        content=content,
        headers={**_auth(KEY_B), "content-type": content_type},
    )
    assert r.status_code == status
    assert words in r.json()["message"]
    state = planner.store.device_state("b")
    assert state.version == 1
    assert state.devices == {"home-battery": {"soc_kwh": 7.0}}


def test_a_body_that_lies_about_its_length_is_cut_off(
    client: httpx.Client, planner: Planner
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 1000

    r = client.post(
        "/customers/b/device-state",
        content=chunks(),
        headers={**_auth(KEY_B), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert planner.store.device_state("b").version == 1


def test_closed_by_default_without_auth(planner: Planner) -> None:
    with _serve(create_app(planner)) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/customers/a/plan", headers=_auth(KEY_A)).status_code == 403
        assert c.get("/customers/a/plan").status_code == 401


def test_vendor_auth_hook(planner: Planner) -> None:
    async def hook(request: Request, customer_id: str) -> bool:
        return request.headers.get("x-vendor-session") == f"session-{customer_id}"

    with _serve(create_app(planner, auth=hook)) as c:
        ok = c.get("/customers/a/plan", headers={"x-vendor-session": "session-a"})
        assert ok.status_code == 200
        other = c.get("/customers/b/plan", headers={"x-vendor-session": "session-a"})
        assert other.status_code == 401  # no Authorization header at all
        assert "schedule" not in other.text


def test_short_keys_are_refused() -> None:
    from wattplan.exceptions import PlannerError

    with pytest.raises(PlannerError, match="shorter than 16"):
        BearerKeys({"a": "short"})


def test_keys_may_be_configured_as_digests(planner: Planner) -> None:
    import hashlib

    digest = hashlib.sha256(KEY_A.encode()).hexdigest()
    with _serve(create_app(planner, auth=BearerKeys(a=digest))) as c:
        assert c.get("/customers/a/plan", headers=_auth(KEY_A)).status_code == 200
        assert c.get("/customers/b/plan", headers=_auth(KEY_A)).status_code == 403


def test_the_planner_serves_optimize_to_any_customers_key(planner: Planner) -> None:
    import wattplan
    from tests.readme import ROOT

    scenario = wattplan.load_scenario(ROOT / "scenarios" / "ev-overnight.yaml")
    body = json.loads(json.dumps(scenario.model_dump(mode="json", exclude_none=True)))
    with _serve(create_app(planner, auth=BearerKeys({"a": KEY_A, "b": KEY_B}))) as c:
        r = c.post("/optimize", json=body, headers=_auth(KEY_B))
        assert r.status_code == 200
        assert r.json()["status"] == "optimal"
        assert c.post("/optimize", json=body).status_code == 401
        wrong = c.post("/optimize", json=body, headers=_auth("not-a-valid-key-at-all"))
        assert wrong.status_code == 403

    async def hook(request: Request, customer_id: str) -> bool:
        return True

    # a vendor's hook decides per customer; /optimize has none, so it stays closed
    with _serve(create_app(planner, auth=hook)) as c:
        assert c.post("/optimize", json=body, headers=_auth(KEY_A)).status_code == 403
