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
