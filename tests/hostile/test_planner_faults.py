"""Faults under the planner: a database that refuses writes or goes away, concurrent writers.

Each case broke before: a read-only or full database made every pass fail while ``/health``,
the customer status and ``stale`` said ok (the failures were recorded in the broken
database); PostgreSQL going away gave a plain-text 500 on ``/health`` and a 404 ``no_plan``
on a plan the process had just made; 200 concurrent device-state writes gave 500s.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests._proxy import CuttableProxy
from tests.hostile._servers import api, auth, make_planner
from tests.planner.conftest import POSTGRES_URL, require_service
from wattplan.cli import main
from wattplan.exceptions import ConflictError
from wattplan.planner import PlanStore


def _sqlite_store(tmp_path: Any) -> PlanStore:
    return PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")


def _break_writes(store: PlanStore, fault: str) -> Callable[[], None]:
    """Make every new connection refuse writes the way ``fault`` does; returns the undo.

    ``read_only``: ``PRAGMA query_only`` (SQLITE_READONLY, as for a read-only file; file
    modes do not stop root, this does). ``disk_full``: ``max_page_count`` pinned to the
    current size, so anything that needs a new page fails with SQLITE_FULL.
    """

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if fault == "read_only":
            cursor.execute("PRAGMA query_only = ON")
        else:
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {int(pages)}")
        cursor.close()

    sa.event.listen(store.engine, "connect", on_connect)
    store.engine.dispose()

    def undo() -> None:
        sa.event.remove(store.engine, "connect", on_connect)
        store.engine.dispose()

    return undo


def _wattplan_status(tmp_path: Any, api_url: str, *args: str) -> tuple[int, str]:
    """``wattplan status --config`` for this database and the running API (in-process)."""
    config = tmp_path / "planner.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'planner.sqlite3'}\n"
        f"http: {{port: {api_url.rsplit(':', 1)[1]}}}\n"
        "customers:\n  - {id: a, factory: 'wattplan.planner:demo_household'}\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", "--config", str(config), *args])
    return code, out.getvalue()


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_a_database_that_refuses_writes_shows_in_health_status_and_stale(
    tmp_path: Any, fault: str
) -> None:
    store = _sqlite_store(tmp_path)
    planner, clock, _ = make_planner(store)
    assert planner.run_once().planned == ["a", "b"]
    with api(planner) as client:
        assert client.get("/health").json()["status"] == "ok"
        undo = _break_writes(store, fault)
        clock.advance(timedelta(days=1))  # tomorrow's prices are out: both must re-plan
        report = planner.run_once()
        assert report.failed == ["a", "b"]

        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["health"]["error"] == 2
        assert health["stale_plans"] == 2
        assert health["database"]["ok"] is False
        assert "save_plan" in health["database"]["failing"]
        expected = "SQLITE_READONLY" if fault == "read_only" else "SQLITE_FULL"
        assert expected in health["database"]["last_error"]

        status = client.get("/customers/a/status", headers=auth("a")).json()
        assert (status["health"], status["stale"], status["error_kind"]) == (
            "error",
            True,
            "store_error",
        )
        plan = client.get("/customers/a/plan", headers=auth("a"))
        assert plan.status_code == 200
        assert plan.json()["stale"] is True
        setpoint = client.get("/customers/a/setpoint", headers=auth("a")).json()
        assert setpoint["stale"] is True
        # the database cannot hold its own failure; `wattplan status` asks the process too
        code, shown = _wattplan_status(tmp_path, str(client.base_url), "--strict")
        assert "planner process: degraded; database failing (" in shown
        assert expected in shown
        assert code == 1

        if fault == "read_only":
            r = client.post(
                "/customers/a/device-state",
                json={"devices": {"home-battery": {"soc_kwh": 3.0}}},
                headers=auth("a"),
            )
            assert r.status_code == 503
            assert r.json()["error"] == "store_unavailable"
            assert int(r.headers["retry-after"]) > 0

        undo()  # the disk has room again: the next pass recovers by itself
        assert planner.run_once().planned == ["a", "b"]
        health = client.get("/health").json()
        assert (health["status"], health["health"]["ok"], health["stale_plans"]) == ("ok", 2, 0)
        assert client.get("/customers/a/plan", headers=auth("a")).json()["stale"] is False
        code, shown = _wattplan_status(tmp_path, str(client.base_url), "--strict")
        assert (code, shown.splitlines()[-1]) == (0, "planner process: ok")
    store.dispose()


@pytest.fixture
def proxied_postgres() -> Iterator[tuple[PlanStore, CuttableProxy]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    proxy, url = CuttableProxy.in_front_of(POSTGRES_URL)
    store = PlanStore(url, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    yield store, proxy
    proxy.restore()
    store.drop_all()
    store.dispose()
    proxy.close()


@pytest.mark.postgres
def test_postgres_going_away_serves_the_last_plan_stale_and_recovers(
    proxied_postgres: tuple[PlanStore, CuttableProxy],
) -> None:
    store, proxy = proxied_postgres
    planner, _, source = make_planner(store)
    source.failing = {"b"}  # b never got a plan: nothing to serve for it
    report = planner.run_once()
    assert (report.planned, report.failed) == (["a"], ["b"])
    with api(planner) as client:
        fresh = client.get("/customers/a/plan", headers=auth("a")).json()
        assert fresh["stale"] is False

        proxy.cut()
        r = client.get("/health")
        assert r.status_code == 200
        health = r.json()
        assert health["status"] == "degraded"
        assert health["database"]["failing"] == ["read"]

        r = client.get("/customers/a/plan", headers=auth("a"))
        assert r.status_code == 200
        body = r.json()
        assert (body["plan_id"], body["stale"], body["source"]) == (
            fresh["plan_id"],
            True,
            "memory",
        )
        assert body["plan"] == fresh["plan"]
        r = client.get("/customers/a/setpoint", headers=auth("a"))
        assert (r.status_code, r.json()["stale"]) == (200, True)
        r = client.get("/customers/a/tariff", params={"format": "evcc"}, headers=auth("a"))
        assert r.status_code == 200  # the curve of the plan held in memory
        assert r.json()[0]["start"].endswith("Z")

        for path in ("/customers/b/plan", "/customers/a/device-state", "/customers/b/tariff"):
            r = client.get(path, headers=auth(path.split("/")[2]))
            assert r.status_code == 503, path
            assert r.headers["content-type"] == "application/json"
            assert r.json()["error"] == "store_unavailable"

        report = planner.run_once()  # a pass during the outage fails per customer, quietly
        assert sorted(report.failed) == ["a", "b"]
        assert client.get("/customers/a/status", headers=auth("a")).json()["error_kind"] == (
            "store_error"
        )

        proxy.restore()
        source.failing = set()
        assert sorted(planner.run_once().planned) == ["b"]  # a: same inputs, unchanged
        health = client.get("/health").json()
        assert (health["status"], health["database"]["ok"], health["health"]["ok"]) == (
            "ok",
            True,
            2,
        )
        body = client.get("/customers/a/plan", headers=auth("a")).json()
        assert body["stale"] is False
        assert "source" not in body
        assert client.get("/customers/b/plan", headers=auth("b")).status_code == 200


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, str]:
    """``url`` and ``table_prefix`` of a fresh plan store on either backend."""
    if request.param == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'planner.sqlite3'}", "table_prefix": "wattplan_"}
    require_service("127.0.0.1", 5432, "PostgreSQL")
    return {"url": POSTGRES_URL, "table_prefix": f"t{uuid.uuid4().hex[:10]}_"}


@pytest.fixture
def any_store(db: dict[str, str]) -> Iterator[PlanStore]:
    store = PlanStore(**db)
    yield store
    store.drop_all()
    store.dispose()


def test_200_concurrent_device_state_writes_never_get_a_500(any_store: PlanStore) -> None:
    planner, _, _ = make_planner(any_store)
    planner.run_once()
    with api(planner) as client:

        def write(i: int) -> httpx.Response:
            with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
                return own.post(
                    "/customers/a/device-state",
                    json={"devices": {"home-battery": {"soc_kwh": (i % 90) / 10}}},
                    headers=auth("a"),
                )

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(write, range(200)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409}, sorted(set(codes))
    assert all(int(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 409)
    versions = sorted(r.json()["version"] for r in responses if r.status_code == 200)
    assert versions == list(range(1, len(versions) + 1))  # every write got its own version
    assert any_store.device_state("a").version == len(versions)


def test_writers_in_two_processes_lose_a_swap_only_as_a_conflict(
    any_store: PlanStore, db: dict[str, str]
) -> None:
    # a second store on the same database stands in for a second process: its writers do
    # not queue behind ours, so compare-and-swaps really collide
    other = PlanStore(**db)
    now = datetime.now(UTC)
    outcomes: list[str] = []

    def write(i: int) -> None:
        store = any_store if i % 2 else other
        try:
            store.update_device_state("a", {"battery": {"soc_kwh": i / 10}}, now=now)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(80)))
    other.dispose()
    assert len(outcomes) == 80
    assert any_store.device_state("a").version == outcomes.count("ok")
