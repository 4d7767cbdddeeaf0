"""The planner against the real sandbox, the real OAuth grant and the real optimizer.

The sandbox clock is driven by the test (the planner reads the same clock), so the
publication at 14:20, outages and restarts happen on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import wattplan
from wattplan.auth import GrantStatus, OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.nomos import RetryPolicy
from wattplan.planner import (
    Customer,
    CustomerHealth,
    Outcome,
    Planner,
    PlanStore,
    PollSchedule,
)
from wattplan.planner._household import demo_household
from wattplan.planner._nomos import NomosPriceSource
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_EMAIL, RunningSandbox

from .conftest import BERLIN

ROOT = Path(__file__).resolve().parents[2]
REDIRECT = "http://127.0.0.1:8765/callback"
KEY = TokenCipher.generate_key()


@dataclass
class World:
    sandbox: RunningSandbox
    url: str
    prefix: str
    vault: TokenVault
    manager: TokenManager
    store: PlanStore
    source: NomosPriceSource
    planner: Planner

    def close(self) -> None:
        self.source.close()
        self.manager.close()
        self.vault.close()
        self.store.dispose()


def _world(sandbox: RunningSandbox, url: str, prefix: str, customers: list[Customer]) -> World:
    vault = TokenVault(url, cipher=TokenCipher(KEY), table_prefix=prefix, clock=sandbox.clock.now)
    manager = TokenManager(
        config=OAuthConfig.for_base_url(
            sandbox.base_url,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri=REDIRECT,
            scope="read:*",
        ),
        vault=vault,
    )
    source = NomosPriceSource(
        base_url=sandbox.base_url,
        auth_for=lambda c: manager.auth(c.id),
        client_options={"retry": RetryPolicy(max_attempts=1)},
    )
    store = PlanStore(url, table_prefix=prefix)
    planner = Planner(
        customers=customers, store=store, prices=source, clock=sandbox.clock, workers=2
    )  # the real wattplan.optimize
    return World(sandbox, url, prefix, vault, manager, store, source, planner)


def _connect(world: World, customer_id: str, email: str = DEMO_EMAIL) -> None:
    start = world.manager.start_authorization(customer_id)
    with httpx.Client(timeout=10) as http:
        http.post(world.sandbox.url("/_sandbox/auto-approve"), json={"email": email})
        answer = http.get(start.url, follow_redirects=False)
    params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
    world.manager.complete_authorization(params)


def _household(customer_id: str) -> Customer:
    t0 = datetime(2026, 1, 20, tzinfo=BERLIN)
    return Customer(
        id=customer_id,
        scenario=demo_household(t0, t0 + timedelta(days=1)),
        scenario_factory=demo_household,
    )


@pytest.fixture
def world(sandbox: RunningSandbox, db_url: str, table_prefix: str) -> Iterator[World]:
    sandbox.clock.set(datetime(2026, 1, 20, 9, 0, tzinfo=BERLIN))
    w = _world(sandbox, db_url, table_prefix, [_household("c1")])
    _connect(w, "c1")
    yield w
    w.close()
    PlanStore(db_url, table_prefix=table_prefix).drop_all()


def test_publication_at_1420_gives_a_new_plan_within_one_poll_interval(world: World) -> None:
    planner, store = world.planner, world.store
    assert planner.run_once().planned == ["c1"]
    first = store.latest_plan("c1")
    assert first is not None
    assert first.status == "optimal"
    assert first.horizon_end == datetime(2026, 1, 21, tzinfo=BERLIN)
    schedule = PollSchedule()
    published = datetime(2026, 1, 20, 14, 20, tzinfo=BERLIN)
    new_at = None
    for poll in schedule.polls(world.sandbox.clock.now(), datetime(2026, 1, 20, 16, tzinfo=BERLIN)):
        world.sandbox.clock.set(poll)
        report = planner.run_once()
        if report.planned:
            new_at = poll
            break
        assert report.outcomes[0].outcome is Outcome.UNCHANGED  # nothing changed: no re-plan
    assert new_at is not None
    assert published <= new_at <= published + schedule.dense
    plan = store.latest_plan("c1")
    assert plan is not None
    assert plan.reason == "horizon_grew"
    assert plan.horizon_end == datetime(2026, 1, 22, tzinfo=BERLIN)
    assert store.count_plans("c1") == 2
    doc = planner.plan_document("c1")["plan"]
    assert doc["status"] == "optimal"
    assert doc["savings_eur"] > 0
    assert len(doc["schedule"]) == (24 - 14.25) * 4 + 96


def test_outage_keeps_the_last_good_plan_stale_and_recovers_by_itself(world: World) -> None:
    planner, store, sandbox = world.planner, world.store, world.sandbox
    planner.run_once()
    good = store.latest_plan("c1")
    assert good is not None
    sandbox.state.faults.server_error_next = 10_000  # the API is down
    sandbox.clock.advance(timedelta(hours=1))
    assert planner.run_once().failed == ["c1"]
    sandbox.clock.advance(timedelta(minutes=30))
    assert planner.run_once().failed == ["c1"]
    doc = planner.plan_document("c1")
    assert doc["plan_id"] == good.id
    assert doc["stale"] is True
    assert doc["age_seconds"] == 90 * 60
    assert doc["error_kind"] == "api_error"
    status = store.status("c1")
    assert status is not None
    assert status.failures == 2
    sandbox.state.faults.server_error_next = 0  # back
    sandbox.clock.advance(timedelta(minutes=5))
    assert planner.run_once().by_outcome(Outcome.UNCHANGED) == ["c1"]
    doc = planner.plan_document("c1")
    assert doc["stale"] is False
    assert doc["health"] == "ok"
    assert store.count_plans("c1") == 1


def test_restart_resumes_without_duplicate_plans_or_lost_grants(
    world: World, sandbox: RunningSandbox, db_url: str, table_prefix: str
) -> None:
    world.planner.run_once()
    world.planner.update_device_state("c1", {"devices": {"home-battery": {"soc_kwh": 3.0}}})
    assert world.store.count_plans("c1") == 1
    world.close()  # the process is killed
    sandbox.clock.advance(timedelta(hours=2))  # the access token expired meanwhile
    again = _world(sandbox, db_url, table_prefix, [_household("c1")])
    try:
        report = again.planner.run_once()
        assert report.planned == ["c1"]  # the state stored before the crash is planned on
        latest = again.store.latest_plan("c1")
        assert latest is not None
        assert latest.reason == "device_state"
        assert again.planner.run_once().planned == []
        assert again.store.count_plans("c1") == 2
        grant = again.vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id="c1")
        assert grant.status is GrantStatus.ACTIVE
        assert grant.version >= 2  # refreshed after the restart, no new consent needed
    finally:
        again.close()


def test_a_revoked_grant_is_visible_and_never_stops_the_others(
    sandbox: RunningSandbox, db_url: str, table_prefix: str
) -> None:
    sandbox.clock.set(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    t0 = datetime(2026, 1, 10, tzinfo=BERLIN)
    bad_scenario = demo_household(t0, t0 + timedelta(days=1))  # over before the clock
    customers = [
        _household("ok"),
        _household("revoked"),
        Customer(id="broken", scenario=bad_scenario, scenario_factory=None),
    ]
    w = _world(sandbox, db_url, f"{table_prefix}x_", customers)
    try:
        for cid in ("ok", "revoked", "broken"):
            _connect(w, cid)
        httpx.post(
            sandbox.url("/_sandbox/grants/revoke"),
            json={"client_id": DEFAULT_CLIENT_ID, "email": DEMO_EMAIL},
        ).raise_for_status()
        _connect(w, "ok")  # fresh consents for all but one
        _connect(w, "broken")
        sandbox.clock.advance(timedelta(minutes=70))  # the others' access tokens expire
        report = w.planner.run_once()
        assert report.planned == ["ok"]
        statuses = {s.customer_id: s for s in w.store.statuses()}
        assert statuses["revoked"].health is CustomerHealth.REAUTHORIZATION_REQUIRED
        assert statuses["ok"].health is CustomerHealth.OK
        assert statuses["broken"].health is CustomerHealth.ERROR
        assert statuses["broken"].error_kind == "invalid_scenario"
    finally:
        w.close()
        PlanStore(db_url, table_prefix=f"{table_prefix}x_").drop_all()


@pytest.mark.parametrize(
    ("clock_local", "slots"),
    [
        (datetime(2025, 10, 25, 15, 0), 9 * 4 + 100),
        (datetime(2026, 3, 28, 15, 0), 9 * 4 + 92),
    ],
)
def test_dst_days_plan_the_right_number_of_slots_on_real_prices(
    sandbox: RunningSandbox, db_url: str, table_prefix: str, clock_local: datetime, slots: int
) -> None:
    sandbox.clock.set(clock_local.replace(tzinfo=BERLIN))
    w = _world(sandbox, db_url, table_prefix, [_household("c1")])
    try:
        _connect(w, "c1")
        assert w.planner.run_once().planned == ["c1"]
        doc = w.planner.plan_document("c1")["plan"]
        assert len(doc["schedule"]) == slots
        assert doc["status"] == "optimal"
    finally:
        w.close()
        PlanStore(db_url, table_prefix=table_prefix).drop_all()


def test_a_fixed_scenario_file_plans_inside_its_window(world: World) -> None:
    scenario = wattplan.load_scenario(ROOT / "scenarios" / "full-household-48h.yaml")
    customer = Customer(id="c1", scenario=scenario)
    world.sandbox.clock.set(datetime(2026, 1, 21, 15, 0, tzinfo=BERLIN))
    planner = Planner(
        customers=[customer], store=world.store, prices=world.source, clock=world.sandbox.clock
    )
    assert planner.run_once().planned == ["c1"]
    plan = world.store.latest_plan("c1")
    assert plan is not None
    assert plan.horizon_end == scenario.end
    assert plan.document["status"] == "optimal"


def test_ev_session_update_through_the_real_scenario(world: World) -> None:
    world.planner.run_once()
    plug_in = datetime(2026, 1, 20, 10, 0, tzinfo=BERLIN)
    state: dict[str, Any] = {
        "devices": {
            "car": {
                "plug_in": plug_in.isoformat(),
                "departure": (plug_in + timedelta(hours=8)).isoformat(),
                "energy_kwh": 30,
            }
        }
    }
    _, significant = world.planner.update_device_state("c1", state)
    assert significant
    assert world.planner.run_once(fetch_prices=False).planned == ["c1"]
    doc = world.planner.plan_document("c1")["plan"]
    charged = sum(r["car_kw"] for r in doc["schedule"]) * 0.25 * 0.92
    assert charged == pytest.approx(30, abs=0.01)
    # a partial session (no departure) is refused by the optimizer's own checks
    from wattplan.exceptions import ScenarioError

    with pytest.raises(ScenarioError):
        world.planner.update_device_state(
            "c1", {"devices": {"car": {"soc_kwh": 5.0}}}, replace=True
        )


@pytest.mark.slow
def test_killed_process_restarts_from_the_database_without_duplicates(
    sandbox: RunningSandbox, db_url: str, table_prefix: str
) -> None:
    """SIGKILL a planner process in the middle of a pass; the next process finishes it."""
    import json
    import os
    import signal
    import subprocess
    import sys

    now = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)
    sandbox.clock.set(now)
    ids = [f"c{i}" for i in range(8)]
    w = _world(sandbox, db_url, table_prefix, [_household(cid) for cid in ids])
    for cid in ids:
        _connect(w, cid)
    spec = {
        "now": now.isoformat(),
        "database_url": db_url,
        "table_prefix": table_prefix,
        "encryption_key": KEY.get_secret_value(),
        "base_url": sandbox.base_url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "customers": ids,
    }
    cmd = [sys.executable, "-m", "tests.planner._restart_worker", json.dumps(spec)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert first.stdout is not None
        done = [first.stdout.readline().split() for _ in range(3)]
        assert [d[0] for d in done] == ["planned"] * 3
        first.send_signal(signal.SIGKILL)  # in the middle of the pass
        first.wait(30)
        killed_at = w.store.count_plans()
        assert 3 <= killed_at < len(ids)
        second = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
        )
        outcomes = dict(line.split()[::-1] for line in second.stdout.splitlines())
        assert sorted(cid for cid, o in outcomes.items() if o == "unchanged") == sorted(
            d[1] for d in done
        ) + [cid for cid in ids[3:killed_at]]
        assert all(o in ("planned", "unchanged") for o in outcomes.values())
        for cid in ids:
            assert w.store.count_plans(cid) == 1  # none lost, none twice
            status = w.store.status(cid)
            assert status is not None
            assert status.health is CustomerHealth.OK
            grant = w.vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=cid)
            assert grant.status is GrantStatus.ACTIVE
    finally:
        w.close()
        PlanStore(db_url, table_prefix=table_prefix).drop_all()
