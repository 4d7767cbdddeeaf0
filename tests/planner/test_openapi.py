"""The planner's OpenAPI document: served, complete, and able to catch a drifting response."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, datetime

import httpx
import pytest
from openapi_core import OpenAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.openapi_check import Exchange, assert_valid, problems, recording
from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Planner, PlanStore, create_app

from .conftest import BERLIN, FakeClock, FakeOptimizer, FakePriceSource, fake_customer
from .conftest import synthetic_prices as _prices

KEY = "key-of-customer-a-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def app(store: PlanStore) -> Starlette:
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    planner = Planner(
        customers=[fake_customer("a")],
        store=store,
        prices=FakePriceSource(clock, _prices(date(2026, 1, 15), 7)),
        optimize=FakeOptimizer(),
        clock=clock,
    )
    planner.run_once()
    return create_app(planner, auth=BearerKeys({"a": KEY}))


@pytest.fixture
def client(app: Starlette) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_the_document_is_valid_openapi_3_1_and_open(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    OpenAPI.from_dict(doc)  # openapi-core validates the document first: raises if invalid
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_route_of_the_app_is_documented_and_nothing_else(
    client: httpx.Client, app: Starlette
) -> None:
    doc = client.get("/openapi.json").json()
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented


def test_docs_page_lists_the_routes_and_loads_nothing_from_elsewhere(
    client: httpx.Client,
) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "/customers/{customer_id}/tariff" in r.text
    assert "<script" not in r.text.lower()
    assert "http://" not in r.text and "https://" not in r.text


def test_responses_are_recorded_and_validated(
    client: httpx.Client, api_responses: list[Exchange]
) -> None:
    """The autouse check sees real responses of every kind the suite produces here."""
    client.get("/health")
    client.get("/customers/a/plan", headers=AUTH)
    client.get("/customers/a/setpoint", headers=AUTH)
    client.get("/customers/a/tariff", params={"format": "evcc"}, headers=AUTH)
    client.get("/customers/a/plan")
    client.post("/customers/a/device-state", content=b"{", headers=AUTH)
    statuses = sorted(e.status_code for e in api_responses if e.path != "/openapi.json")
    assert statuses == [200, 200, 200, 200, 401, 415]
    assert assert_valid(api_responses) == 6


def _recorded(api_responses: list[Exchange], path: str) -> Exchange:
    return next(e for e in api_responses if e.path == path and e.status_code == 200)


@pytest.mark.parametrize(
    "doctor",
    [
        pytest.param(lambda b: {**b, "stale": "no"}, id="wrong-type"),
        pytest.param(lambda b: {k: v for k, v in b.items() if k != "plan_id"}, id="missing-key"),
        pytest.param(
            lambda b: {**b, "plan": {**b["plan"], "status": "splendid"}}, id="unknown-status"
        ),
        pytest.param(
            lambda b: {
                **b,
                "plan": {**b["plan"], "schedule": [{**b["plan"]["schedule"][0], "car_kw": "2"}]},
            },
            id="text-in-schedule",
        ),
    ],
)
def test_a_doctored_response_is_caught(
    client: httpx.Client, api_responses: list[Exchange], doctor: object
) -> None:
    client.get("/customers/a/plan", headers=AUTH)
    real = _recorded(api_responses, "/customers/a/plan")
    assert problems(real) == []
    body = doctor(json.loads(real.body))  # type: ignore[operator]
    doctored = dataclasses.replace(real, body=json.dumps(body).encode())
    assert problems(doctored), "the doctored body passed the check"


def test_an_undocumented_status_or_content_type_is_caught(
    client: httpx.Client, api_responses: list[Exchange]
) -> None:
    client.get("/customers/a/plan", headers=AUTH)
    real = _recorded(api_responses, "/customers/a/plan")
    assert problems(dataclasses.replace(real, status_code=418))
    assert problems(dataclasses.replace(real, content_type="text/plain"))


def test_a_handler_that_drifts_fails_the_test_that_called_it(
    app: Starlette, api_responses: list[Exchange]
) -> None:
    """End to end: a served body off the document makes ``assert_valid`` raise."""

    async def drifting(_request: object) -> JSONResponse:
        return JSONResponse({"status": "ok", "customers": "two"})

    broken = Starlette(routes=[Route("/health", drifting)])
    broken.state.openapi = app.state.openapi
    with recording() as mine, serve_in_thread(broken) as url:
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    with pytest.raises(AssertionError, match="/health -> 200"):
        assert_valid(mine)
    api_responses.clear()  # the outer check saw it too: it is this test's subject, not a bug
