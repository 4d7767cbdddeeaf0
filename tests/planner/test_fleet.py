"""Fleet scale: planning calls on a process pool and on a real Dask ``LocalCluster``.

The planner keeps fetching, deciding and storing; only the pure planning call travels.
Workers are killed in the middle of a pass; every customer must still end the pass with
exactly one plan for its inputs. The optimizer is the real one on the demo household.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from wattplan.exceptions import ScenarioError
from wattplan.planner import Customer, Outcome, Planner, PlanStore
from wattplan.planner._events import EventTopic, PlanEvent
from wattplan.planner._executors import DaskExecutor, PlanExecutor, ProcessExecutor
from wattplan.planner._household import demo_household
from wattplan.planner._planner import default_optimize

from .conftest import BERLIN, FakeClock, FakePriceSource

distributed = pytest.importorskip("distributed")

NOW = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)  # tomorrow's prices are out


def slow_optimize(scenario: Any, prices: pd.Series, **kwargs: Any) -> Any:
    """The real optimizer, a little slower: keeps calls in flight while a worker dies."""
    time.sleep(0.4)
    return default_optimize(scenario, prices, **kwargs)


def broken_household(start: datetime, end: datetime) -> Any:
    raise ScenarioError(key="devices", reason="this household is broken on purpose")


def _customers(n: int, *, broken: tuple[str, ...] = ()) -> list[Customer]:
    template = demo_household(NOW, NOW + timedelta(days=1))
    return [
        Customer(
            id=f"c{i}",
            scenario=template,
            scenario_factory=broken_household if f"c{i}" in broken else demo_household,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[DaskExecutor]:
    executor = DaskExecutor(workers=2)
    yield executor
    executor.close()


@pytest.fixture
def process_executor() -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(workers=2)
    yield executor
    executor.close()


def _planner(
    store: PlanStore,
    source: FakePriceSource,
    clock: FakeClock,
    customers: list[Customer],
    executor: PlanExecutor | None,
    **kwargs: Any,
) -> Planner:
    return Planner(
        customers=customers,
        store=store,
        prices=source,
        clock=clock,
        workers=2,
        executor=executor,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_a_pass_on_workers_stores_the_plans_the_process_would_make(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Any,
    clock: FakeClock,
    source: FakePriceSource,
) -> None:
    clock.set(NOW)
    executor = request.getfixturevalue(f"{'dask' if kind == 'dask' else 'process'}_executor")
    customers = _customers(4, broken=("c2",))
    remote = PlanStore(f"sqlite:///{tmp_path / 'remote.sqlite3'}")
    local = PlanStore(f"sqlite:///{tmp_path / 'local.sqlite3'}")
    report = _planner(remote, source, clock, customers, executor).run_once()
    reference = _planner(local, source, clock, customers, None).run_once()
    assert sorted(reference.planned) == ["c0", "c1", "c3"]

    outcomes = {o.customer_id: o for o in report.outcomes}
    assert [o.customer_id for o in report.outcomes] == ["c0", "c1", "c2", "c3"]
    assert sorted(report.planned) == ["c0", "c1", "c3"]
    # one household's failure is hers, classified as in the process
    assert outcomes["c2"].outcome is Outcome.FAILED
    assert outcomes["c2"].error_kind == "invalid_scenario"
    status = remote.status("c2")
    assert status is not None
    assert status.error is not None
    assert "broken on purpose" in status.error
    assert report.optimize_seconds > 0
    for cid in ("c0", "c1", "c3"):
        assert remote.count_plans(cid) == 1
        mine, theirs = remote.latest_plan(cid), local.latest_plan(cid)
        assert mine is not None
        assert theirs is not None
        assert mine.horizon_end == theirs.horizon_end
        assert mine.cost_eur == pytest.approx(theirs.cost_eur, abs=1e-6)
        assert len(mine.document["schedule"]) == len(theirs.document["schedule"])
    # nothing new: no call leaves the process, and nothing is stored twice
    again = _planner(remote, source, clock, customers, executor).run_once()
    assert sorted(again.by_outcome(Outcome.UNCHANGED)) == ["c0", "c1", "c3"]
    assert remote.count_plans() == 3
    remote.dispose()
    local.dispose()


class _KillOnFirstPlan:
    """A sink that kills one worker process when the first plan of the pass is stored."""

    def __init__(self, pid_of_victim: Any) -> None:
        self.pid_of_victim = pid_of_victim
        self.killed: int | None = None
        self.lock = threading.Lock()

    def __call__(self, event: PlanEvent) -> None:
        if event.topic is not EventTopic.PLAN_CREATED:
            return
        with self.lock:
            if self.killed is None:
                self.killed = int(self.pid_of_victim())
                os.kill(self.killed, signal.SIGKILL)


def _assert_every_customer_planned_once(report: Any, store: PlanStore, n: int) -> None:
    assert sorted(report.planned) == sorted(f"c{i}" for i in range(n)), report.outcomes
    for i in range(n):
        assert store.count_plans(f"c{i}") == 1


@pytest.mark.slow
def test_a_dask_worker_killed_mid_pass_loses_no_customer(
    dask_executor: DaskExecutor, tmp_path: Any, clock: FakeClock, source: FakePriceSource
) -> None:
    clock.set(NOW)
    n = 10
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    before = dask_executor.worker_pids()
    assert len(before) == 2
    kill = _KillOnFirstPlan(lambda: next(iter(dask_executor.worker_pids().values())))
    planner = _planner(
        store, source, clock, _customers(n), dask_executor, optimize=slow_optimize, sinks=[kill]
    )
    report = planner.run_once()
    assert kill.killed in before.values()
    _assert_every_customer_planned_once(report, store, n)
    # the nanny restarted the worker: the cluster is whole again for the next pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = set(dask_executor.worker_pids().values())
        if len(pids) == 2 and kill.killed not in pids:
            break
        time.sleep(0.2)
    assert kill.killed not in set(dask_executor.worker_pids().values())
    store.dispose()


@pytest.mark.slow
def test_a_pool_process_killed_mid_pass_loses_no_customer(
    process_executor: ProcessExecutor, tmp_path: Any, clock: FakeClock, source: FakePriceSource
) -> None:
    clock.set(NOW)
    n = 8
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")

    def victim() -> int:
        return int(next(iter(process_executor._pool._processes)))  # type: ignore[union-attr]

    kill = _KillOnFirstPlan(victim)
    planner = _planner(
        store, source, clock, _customers(n), process_executor, optimize=slow_optimize, sinks=[kill]
    )
    report = planner.run_once()
    assert kill.killed is not None
    assert process_executor.replaced >= 1  # the broken pool was replaced, calls sent again
    _assert_every_customer_planned_once(report, store, n)
    store.dispose()


def test_a_call_that_keeps_losing_its_worker_fails_only_that_customer(
    tmp_path: Any, clock: FakeClock, source: FakePriceSource
) -> None:
    """After ``max_tries`` lost workers the customer's attempt fails; the others plan."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from wattplan.planner._solve import solve

    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.tries: dict[str, int] = {}

        def submit(self, call: Any) -> Future[Any]:
            self.tries[call.customer_id] = self.tries.get(call.customer_id, 0) + 1
            future: Future[Any] = Future()
            if call.customer_id == "c1":
                future.set_exception(BrokenProcessPool("worker died"))
            else:
                future.set_result(solve(call))
            return future

        def lost(self, exc: BaseException) -> bool:
            return isinstance(exc, BrokenProcessPool)

        def close(self) -> None:
            pass

    clock.set(NOW)
    flaky = Flaky()
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    report = _planner(store, source, clock, _customers(3), flaky, max_tries=3).run_once()
    assert flaky.tries == {"c0": 1, "c1": 3, "c2": 1}
    assert sorted(report.planned) == ["c0", "c2"]
    assert report.failed == ["c1"]
    status = store.status("c1")
    assert status is not None
    assert status.error_kind == "planner_error"
    assert store.count_plans("c1") == 0
    store.dispose()


# several planner processes on one database ------------------------------------------------

CHECK_SECONDS = 1.0


class _Proc:
    """A planner subprocess whose printed lines are collected by a reader thread."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import json
        import queue
        import subprocess
        import sys

        from .test_integration import ROOT

        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.planner._fleet_worker", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.strip()))

    def next_line(self, timeout: float = 60) -> tuple[float, str]:
        at, line = self.lines.get(timeout=timeout)
        self.seen.append(line)
        return at, line

    def wait_for(self, text: str, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while True:
            at, line = self.next_line(max(0.1, deadline - time.monotonic()))
            if line == text:
                return at

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def fleet(sandbox: Any, table_prefix: str) -> Iterator[dict[str, Any]]:
    from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    from .conftest import POSTGRES_URL, require_service
    from .test_integration import KEY, _connect, _household, _world

    require_service("127.0.0.1", 5432, "PostgreSQL")
    sandbox.clock.set(NOW)
    ids = [f"c{i}" for i in range(6)]
    world = _world(sandbox, POSTGRES_URL, table_prefix, [_household(cid) for cid in ids])
    for cid in ids:
        _connect(world, cid)
    spec = {
        "now": NOW.isoformat(),
        "database_url": POSTGRES_URL,
        "table_prefix": table_prefix,
        "encryption_key": KEY.get_secret_value(),
        "base_url": sandbox.base_url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "customers": ids,
        "check_seconds": CHECK_SECONDS,
        "delay_s": 0.5,
        "timeout_s": 120,
    }
    yield {"spec": spec, "world": world, "ids": ids}
    world.close()
    PlanStore(POSTGRES_URL, table_prefix=table_prefix).drop_all()


def _assert_one_plan_each_and_active_grants(fleet: dict[str, Any]) -> None:
    from wattplan.auth import GrantStatus
    from wattplan.planner import CustomerHealth
    from wattplan.sandbox import DEFAULT_CLIENT_ID

    world = fleet["world"]
    for cid in fleet["ids"]:
        assert world.store.count_plans(cid) == 1, cid  # none lost, none twice
        status = world.store.status(cid)
        assert status is not None
        assert status.health is CustomerHealth.OK
        grant = world.vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=cid)
        assert grant.status is GrantStatus.ACTIVE


@pytest.mark.slow
@pytest.mark.postgres
def test_a_standby_takes_over_when_the_leader_is_killed_mid_pass(
    fleet: dict[str, Any],
) -> None:
    spec = fleet["spec"]
    first = _Proc(spec)
    second: _Proc | None = None
    try:
        assert first.next_line()[1] == "leader"
        second = _Proc(spec)
        assert second.next_line()[1] == "standby"  # the leader holds the lock
        for _ in range(2):
            assert first.next_line()[1].startswith("planned ")
        first.proc.kill()  # SIGKILL in the middle of the pass
        killed_at = time.monotonic()
        first.proc.wait(30)
        took_over_at = second.wait_for("leader")
        # PostgreSQL ends the dead session at once; the standby's next check finds it free
        assert took_over_at - killed_at < CHECK_SECONDS + 5
        second.wait_for("pass")
        by_first = {line.split()[1] for line in first.seen if line.startswith("planned ")}
        by_second = {line.split()[1] for line in second.seen if line.startswith("planned ")}
        assert by_first
        assert by_second
        assert not by_first & by_second  # the new leader re-planned only what was missing
        assert by_first | by_second <= set(fleet["ids"])
        _assert_one_plan_each_and_active_grants(fleet)
    finally:
        first.stop()
        if second is not None:
            second.stop()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_started_at_once_elect_one_leader(fleet: dict[str, Any]) -> None:
    spec = {**fleet["spec"], "exit_after_pass": True, "delay_s": 0.1}
    procs = [_Proc(spec), _Proc(spec)]
    try:
        roles = sorted(p.next_line()[1] for p in procs)
        assert roles == ["leader", "standby"]
        leader, standby = procs if procs[0].seen == ["leader"] else procs[::-1]
        leader.wait_for("pass")
        assert leader.proc.wait(60) == 0  # it exits and hands over
        standby.wait_for("leader")
        standby.wait_for("pass")
        assert standby.proc.wait(60) == 0
        planned = [line.split()[1] for line in leader.seen if line.startswith("planned ")]
        assert sorted(planned) == sorted(fleet["ids"])
        assert not [line for line in standby.seen if line.startswith("planned ")]
        _assert_one_plan_each_and_active_grants(fleet)
    finally:
        for p in procs:
            p.stop()


def test_a_second_process_on_one_sqlite_file_refuses_with_a_clear_error(tmp_path: Any) -> None:
    import subprocess
    import sys

    from wattplan.planner._leader import LeaderElection, leader_lock

    url = f"sqlite:///{tmp_path / 'planner.sqlite3'}"
    store = PlanStore(url)
    election = LeaderElection(leader_lock(store.engine, table_prefix="wattplan_"))
    election.start()
    assert election.is_leader
    code = (
        "import sys\n"
        "from wattplan.exceptions import ConfigurationError\n"
        "from wattplan.planner import PlanStore\n"
        "from wattplan.planner._leader import leader_lock\n"
        f"store = PlanStore({url!r})\n"
        "try:\n"
        "    leader_lock(store.engine, table_prefix='wattplan_').try_acquire()\n"
        "except ConfigurationError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )

    def other() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )

    refused = other()
    assert refused.returncode == 3, refused.stderr
    assert "database_url" in refused.stdout
    assert "SQLite serves one planner process only" in refused.stdout
    election.stop()  # this process is done: the file is free again
    assert other().returncode == 0
    store.dispose()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"executor": "cluster"}, "executor"),
        ({"executor": "threads", "dask_address": "tcp://10.0.0.5:8786"}, "dask_address"),
        ({"executor": "dask", "dask_address": "http://10.0.0.5:8786"}, "dask_address"),
        ({"leader_check_seconds": 0}, "leader_check_seconds"),
    ],
)
def test_executor_settings_are_checked(tmp_path: Any, extra: dict[str, Any], needle: str) -> None:
    import yaml

    from wattplan.exceptions import ConfigurationError
    from wattplan.planner.config import load_config

    raw = {"customers": [{"id": "c1", "factory": "wattplan.planner:demo_household"}], **extra}
    path = tmp_path / "planner.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=needle):
        load_config(path)


def test_executor_settings_are_read(tmp_path: Any) -> None:
    import yaml

    from wattplan.planner.config import load_config

    raw = {
        "customers": [{"id": "c1", "factory": "wattplan.planner:demo_household"}],
        "executor": "dask",
        "executor_workers": 3,
        "dask_address": "tcp://10.0.0.5:8786",
        "leader_check_seconds": 2.5,
        "price_recheck_minutes": 30,
        "max_fetches_per_second": 10,
    }
    path = tmp_path / "planner.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = load_config(path)
    assert (config.executor, config.executor_workers) == ("dask", 3)
    assert config.dask_address == "tcp://10.0.0.5:8786"
    assert config.leader_check_seconds == 2.5
    assert (config.price_recheck_minutes, config.max_fetches_per_second) == (30, 10)


@pytest.mark.postgres
def test_a_leader_whose_session_is_killed_steps_down_and_the_standby_leads(
    table_prefix: str,
) -> None:
    import sqlalchemy as sa

    from wattplan.planner._leader import LeaderElection, PostgresLeaderLock, leader_lock

    from .conftest import POSTGRES_URL, require_service

    require_service("127.0.0.1", 5432, "PostgreSQL")
    engines = [sa.create_engine(POSTGRES_URL) for _ in range(3)]
    events: list[str] = []
    elections = [
        LeaderElection(
            leader_lock(engine, table_prefix=table_prefix),
            check_every=timedelta(seconds=0.2),
            on_elected=lambda n=n: events.append(f"elected {n}"),
            on_lost=lambda n=n: events.append(f"lost {n}"),
        )
        for n, engine in enumerate(engines[:2])
    ]
    try:
        elections[0].start()
        elections[1].start()
        assert [e.is_leader for e in elections] == [True, False]
        lock = elections[0].lock
        assert isinstance(lock, PostgresLeaderLock)
        with engines[2].connect() as admin:  # the leader's session dies under it
            admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = (:k)::bigint"
                ),
                {"k": lock.key},
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not elections[1].is_leader:
            time.sleep(0.05)
        assert events[:1] == ["elected 0"]
        assert "lost 0" in events
        assert "elected 1" in events
        assert [e.is_leader for e in elections] == [False, True]
    finally:
        for election in elections:
            election.stop()
        for engine in engines:
            engine.dispose()


# cheap polls -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        pytest.param(datetime(2026, 1, 20, tzinfo=BERLIN), id="24h"),
        pytest.param(datetime(2026, 3, 28, tzinfo=BERLIN), id="tomorrow-23h"),
        pytest.param(datetime(2025, 10, 25, tzinfo=BERLIN), id="tomorrow-25h"),
        pytest.param(datetime(2026, 3, 29, tzinfo=BERLIN), id="today-23h"),
        pytest.param(datetime(2025, 10, 26, tzinfo=BERLIN), id="today-25h"),
    ],
)
def test_a_poll_after_the_publication_asks_the_api_nothing(day: datetime, tmp_path: Any) -> None:
    from datetime import date

    from .conftest import FakeOptimizer, fake_customer, synthetic_prices

    clock = FakeClock(day.replace(hour=15))
    start = date(day.year, day.month, day.day) - timedelta(days=3)
    source = FakePriceSource(clock, synthetic_prices(start, 8))
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=source,
        clock=clock,
        optimize=FakeOptimizer(),
        price_recheck=timedelta(hours=1),
    )
    assert planner.run_once().planned == ["c1"]
    plan = store.latest_plan("c1")
    assert plan is not None
    # the plan reaches the end of tomorrow: 23, 24 or 25 hours after today's midnight
    tomorrow_end = datetime.combine(
        (day + timedelta(days=2)).date(), datetime.min.time(), tzinfo=BERLIN
    )
    assert plan.prices.index[-1] + pd.Timedelta(minutes=15) == tomorrow_end
    calls = source.calls
    for _ in range(6):  # the dense polls of the next half hour
        clock.advance(timedelta(minutes=5))
        assert planner.run_once().by_outcome(Outcome.UNCHANGED) == ["c1"]
    assert source.calls == calls  # nothing fetched
    # a corrected amount is seen within the recheck time
    corrected = source.prices.copy()
    evening = (day + timedelta(days=1)).replace(hour=18)
    corrected[pd.Timestamp(evening).tz_convert("UTC")] += 5.0  # tomorrow 18:00
    source.prices = corrected
    clock.advance(timedelta(minutes=35))
    report = planner.run_once()
    assert source.calls > calls
    assert report.planned == ["c1"]
    newest = store.latest_plan("c1")
    assert newest is not None
    assert newest.reason == "amount_changed"
    store.dispose()


def test_a_poll_before_the_publication_still_asks(tmp_path: Any) -> None:
    from datetime import date

    from .conftest import FakeOptimizer, fake_customer, synthetic_prices

    clock = FakeClock(datetime(2026, 1, 20, 9, tzinfo=BERLIN))
    source = FakePriceSource(clock, synthetic_prices(date(2026, 1, 15), 14))
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=source,
        clock=clock,
        optimize=FakeOptimizer(),
    )
    planner.run_once()
    calls = source.calls
    clock.set(datetime(2026, 1, 20, 14, 20, tzinfo=BERLIN))
    report = planner.run_once()
    assert source.calls > calls  # tomorrow was missing: the poll had to ask
    assert report.planned == ["c1"]
    store.dispose()


def test_price_requests_are_spread_to_the_rate_limit() -> None:
    from wattplan.planner._planner import _RateGate

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    gate = _RateGate(10.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(4):
        gate.wait()
    assert slept == [0.1, 0.2, 0.3]  # the first goes at once, each next 0.1 s later
    now[0] += 5.0  # idle for a while: no debt carried over
    slept.clear()
    gate.wait()
    assert slept == []
    unlimited = _RateGate(None, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(100):
        unlimited.wait()
    assert slept == []


def test_a_pass_keeps_a_bounded_number_of_customers_in_flight(
    tmp_path: Any, clock: FakeClock, source: FakePriceSource
) -> None:
    """Prices and previous plans of 10,000 customers must not sit in memory at once."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from wattplan.planner._solve import solve

    from .conftest import FakeOptimizer, fake_customer

    class Counting:
        name = "counting"
        workers = 4

        def __init__(self) -> None:
            self.pool = ThreadPoolExecutor(4)
            self.lock = threading.Lock()
            self.outstanding = 0
            self.most = 0
            self.calls = 0

        def _run(self, call: Any) -> Any:
            time.sleep(0.02)  # keeps calls in flight long enough to overlap
            return solve(call)

        def submit(self, call: Any) -> Future[Any]:
            with self.lock:
                self.calls += 1
                self.outstanding += 1
                self.most = max(self.most, self.outstanding)
            future = self.pool.submit(self._run, call)
            future.add_done_callback(lambda _: self._finished())
            return future

        def _finished(self) -> None:
            with self.lock:
                self.outstanding -= 1

        def lost(self, exc: BaseException) -> bool:
            return False

        def close(self) -> None:
            self.pool.shutdown()

    clock.set(NOW)
    counting = Counting()
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner = Planner(
        customers=[fake_customer(f"c{i}") for i in range(12)],
        store=store,
        prices=source,
        clock=clock,
        optimize=FakeOptimizer(),
        workers=4,
        executor=counting,
        max_in_flight=2,
    )
    report = planner.run_once()
    counting.close()
    assert len(report.planned) == 12
    assert counting.calls == 12
    assert counting.most <= 2
    store.dispose()


def test_the_plan_kept_in_memory_is_compact_and_whole(tmp_path: Any) -> None:
    """The in-memory fallback of 10,000 customers must not hold 10,000 parsed documents."""
    import sys

    from wattplan.planner._health import LiveCustomer

    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    rows = [
        {"start": f"2026-01-20T{h:02d}:00:00+00:00", "car_kw": 11.0 * (h % 2)} for h in range(24)
    ]
    document = {"status": "optimal", "schedule": rows * 8, "cost_eur": 1.25}
    prices = pd.Series(
        [30.0] * 4, index=pd.date_range("2026-01-20", periods=4, freq="15min", tz="UTC")
    )
    store.ensure_customer("c1", now=NOW)
    stored, _ = store.save_plan(
        "c1",
        now=NOW,
        horizon_start=NOW,
        horizon_end=NOW + timedelta(hours=1),
        reason="initial",
        status="optimal",
        cost_eur=1.25,
        baseline_cost_eur=2.0,
        savings_eur=0.75,
        prices=prices,
        prices_fingerprint="fp",
        device_state={},
        document=document,
    )
    live = LiveCustomer("c1")
    live.remember_plan(stored)
    kept = live.plan
    assert kept is not None
    assert kept.document == document  # whole again when read
    assert (kept.id, kept.created_at) == (stored.id, stored.created_at)
    assert live._kept is not None
    assert live._kept.document == {}
    assert len(live._document_z) < sys.getsizeof(str(document)) / 5
    store.dispose()


def test_the_scheduler_runs_only_while_its_process_leads(
    tmp_path: Any, clock: FakeClock, source: FakePriceSource
) -> None:
    from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

    from wattplan.planner.scheduler import PlannerScheduler

    from .conftest import FakeOptimizer, fake_customer

    clock.set(NOW)
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=source,
        clock=clock,
        optimize=FakeOptimizer(),
    )
    polls = threading.Semaphore(0)
    scheduler = PlannerScheduler(
        planner, slot=None, jitter=timedelta(0), on_poll=lambda _: polls.release()
    )
    try:
        scheduler.activate()  # elected: started, first poll at once
        assert polls.acquire(timeout=60)
        assert scheduler._scheduler.state == STATE_RUNNING
        assert store.count_plans("c1") == 1
        scheduler.standby()  # lost the lead: no job runs
        assert scheduler._scheduler.state == STATE_PAUSED
        scheduler.activate()  # elected again: resumed, and a takeover poll at once
        assert polls.acquire(timeout=60)
        assert scheduler._scheduler.state == STATE_RUNNING
        assert store.count_plans("c1") == 1  # nothing new: no second plan
    finally:
        scheduler.shutdown(wait=True)
        store.dispose()
