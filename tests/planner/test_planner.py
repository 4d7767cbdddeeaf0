"""Planner.run_once as plain code, with a fake clock, price source and optimizer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from wattplan.exceptions import ReauthorizationRequiredError, ScenarioError
from wattplan.planner import (
    CallbackSink,
    CustomerHealth,
    EventTopic,
    Outcome,
    PlanEvent,
    Planner,
    PlanStore,
    PollSchedule,
)

from .conftest import (
    BERLIN,
    FakeClock,
    FakeOptimizer,
    FakePriceSource,
    fake_customer,
    synthetic_prices,
)


def _planner(
    store: PlanStore,
    clock: FakeClock,
    source: Any,
    *ids: str,
    sinks: tuple[Any, ...] = (),
    optimizer: FakeOptimizer | None = None,
    **customer_kw: Any,
) -> Planner:
    return Planner(
        customers=[fake_customer(i, **customer_kw) for i in (ids or ("c1",))],
        store=store,
        prices=source,
        optimize=optimizer or FakeOptimizer(),
        clock=clock,
        sinks=sinks,
    )


def test_publication_gives_a_new_plan_within_one_poll_interval(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    planner = _planner(store, clock, source)
    schedule = PollSchedule()
    first = planner.run_once()
    assert first.planned == ["c1"]
    plan = store.latest_plan("c1")
    assert plan is not None
    # before publication only today's prices: the horizon ends at local midnight
    assert plan.horizon_end == datetime(2026, 1, 21, tzinfo=BERLIN)
    new_plan_at = None
    for poll in schedule.polls(clock.now(), datetime(2026, 1, 20, 16, 0, tzinfo=BERLIN)):
        clock.set(poll)
        report = planner.run_once()
        if report.planned:
            new_plan_at = poll
            break
        assert report.by_outcome(Outcome.UNCHANGED) == ["c1"]  # no re-plan when nothing changed
    published = datetime(2026, 1, 20, 14, 20, tzinfo=BERLIN)
    assert new_plan_at is not None
    assert published <= new_plan_at <= published + schedule.dense
    latest = store.latest_plan("c1")
    assert latest is not None
    assert latest.reason == "horizon_grew"
    assert latest.horizon_end == datetime(2026, 1, 22, tzinfo=BERLIN)
    assert store.count_plans("c1") == 2


def test_nothing_changed_means_no_replan_and_no_optimizer_call(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    optimizer = FakeOptimizer()
    planner = _planner(store, clock, source, optimizer=optimizer)
    planner.run_once()
    for _ in range(5):
        clock.advance(timedelta(minutes=15))
        assert planner.run_once().by_outcome(Outcome.UNCHANGED) == ["c1"]
    assert len(optimizer.calls) == 1
    assert store.count_plans("c1") == 1


def test_outage_keeps_the_last_good_plan_marked_stale_then_recovers(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    events: list[PlanEvent] = []
    planner = _planner(store, clock, source, sinks=(CallbackSink(events.append),))
    planner.run_once()
    good = store.latest_plan("c1")
    assert good is not None
    source.outage = True
    clock.advance(timedelta(hours=2))
    report = planner.run_once()
    assert report.failed == ["c1"]
    doc = planner.plan_document("c1")
    assert doc["plan_id"] == good.id
    assert doc["stale"] is True
    assert doc["age_seconds"] == 7200
    assert doc["health"] == "error"
    assert doc["error_kind"] == "api_error"
    status = store.status("c1")
    assert status is not None
    assert status.failures == 1
    # the setpoint for now still comes from the last good plan, flagged stale
    assert planner.setpoint("c1")["stale"] is True
    # a slot-boundary pass (no fetch) does not pretend the API is back
    assert planner.run_once(fetch_prices=False).by_outcome(Outcome.UNCHANGED) == ["c1"]
    assert planner.plan_document("c1")["stale"] is True
    # publication happens during the outage; the outage ends; the planner catches up alone
    clock.set(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    assert planner.run_once().failed == ["c1"]
    source.outage = False
    clock.advance(timedelta(minutes=5))
    assert planner.run_once().planned == ["c1"]
    doc = planner.plan_document("c1")
    assert doc["stale"] is False
    assert doc["health"] == "ok"
    assert doc["horizon_end"] == datetime(2026, 1, 22, tzinfo=BERLIN).astimezone(UTC).isoformat()
    topics = [(e.topic, e.payload.get("health")) for e in events]
    assert (EventTopic.CUSTOMER_STATUS, "error") in topics
    assert (EventTopic.CUSTOMER_STATUS, "ok") in topics


def test_one_customers_failure_never_stops_the_others(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    class Source(FakePriceSource):
        def fetch_prices(self, customer: Any, *, start: date, end: date) -> pd.Series:
            if customer.id == "revoked":
                raise ReauthorizationRequiredError("grant revoked", customer_id="revoked")
            if customer.id == "boom":
                raise RuntimeError("token=abc123 leaked?")  # foreign error text is not recorded
            return super().fetch_prices(customer, start=start, end=end)

    src = Source(clock, source.prices)
    src.failing.add("api")
    planner = Planner(
        customers=[
            fake_customer("ok1"),
            fake_customer("api"),
            fake_customer("revoked"),
            fake_customer("boom"),
            fake_customer("infeasible", infeasible=True),
            fake_customer("ok2"),
        ],
        store=store,
        prices=src,
        optimize=FakeOptimizer(),
        clock=clock,
        workers=3,
    )
    report = planner.run_once()
    assert sorted(report.planned) == ["ok1", "ok2"]
    assert sorted(report.failed) == ["api", "boom", "infeasible", "revoked"]
    by_id = {s.customer_id: s for s in store.statuses()}
    assert by_id["revoked"].health is CustomerHealth.REAUTHORIZATION_REQUIRED
    assert by_id["api"].error_kind == "api_error"
    assert by_id["infeasible"].error_kind == "infeasible"
    assert by_id["boom"].error_kind == "internal_error"
    assert "abc123" not in (by_id["boom"].error or "")
    assert by_id["ok1"].health is CustomerHealth.OK
    # an infeasible scenario with unchanged inputs is not solved again every poll
    clock.advance(timedelta(minutes=5))
    again = planner.run_once(customer_ids=["infeasible"])
    assert again.by_outcome(Outcome.SKIPPED) == ["infeasible"]


def test_restart_resumes_from_the_database_without_duplicates(
    db_url: str, table_prefix: str, clock: FakeClock, source: FakePriceSource
) -> None:
    first = PlanStore(db_url, table_prefix=table_prefix)
    try:
        _planner(first, clock, source, "c1", "c2").run_once()
        first.update_device_state("c1", {"home-battery": {"soc_kwh": 5.0}}, now=clock.now())
    finally:
        first.dispose()  # the process dies
    clock.advance(timedelta(minutes=1))
    second = PlanStore(db_url, table_prefix=table_prefix)
    try:
        optimizer = FakeOptimizer()
        planner = _planner(second, clock, source, "c1", "c2", optimizer=optimizer)
        report = planner.run_once()
        # c1's state changed before the crash and had not been planned on: only c1 re-plans
        assert report.planned == ["c1"]
        assert report.by_outcome(Outcome.UNCHANGED) == ["c2"]
        assert second.count_plans("c2") == 1
        assert second.count_plans("c1") == 2
        assert planner.run_once().planned == []
        assert second.count_plans() == 3
    finally:
        second.drop_all()
        second.dispose()


@pytest.mark.parametrize(
    ("now_local", "slots"),
    [
        # 15:00 on the day before; tomorrow is published: 9 h today + the DST day
        (datetime(2025, 10, 25, 15, 0), 9 * 4 + 100),
        (datetime(2026, 3, 28, 15, 0), 9 * 4 + 92),
        # on the DST day itself after publication: 9 h of it + a 24-hour day
        (datetime(2025, 10, 26, 15, 0), 9 * 4 + 96),
        (datetime(2026, 3, 29, 15, 0), 9 * 4 + 96),
        # on the DST day before publication: from 01:00 to midnight
        (datetime(2025, 10, 26, 1, 0), 23 * 4 + 4),
        (datetime(2026, 3, 29, 1, 0), 23 * 4 - 4),
    ],
)
def test_dst_horizons_have_the_right_number_of_slots(
    store: PlanStore, now_local: datetime, slots: int
) -> None:
    clock = FakeClock(now_local.replace(tzinfo=BERLIN))
    source = FakePriceSource(clock, synthetic_prices(date(2025, 10, 20), 170))
    optimizer = FakeOptimizer()
    _planner(store, clock, source, optimizer=optimizer).run_once()
    scenario, prices = optimizer.calls[-1]
    assert (scenario.end - scenario.start) == timedelta(minutes=15) * slots
    assert len(prices) == slots
    plan = store.latest_plan("c1")
    assert plan is not None
    assert len(plan.document["schedule"]) == slots


def test_device_state_change_beyond_deadband_replans_small_drift_does_not(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    planner = _planner(store, clock, source)
    told: list[str] = []
    planner.on_device_state_change(told.append)
    planner.update_device_state("c1", {"devices": {"home-battery": {"soc_kwh": 5.0}}})
    assert told == ["c1"]  # no plan yet: any state is news
    told.clear()
    planner.run_once()
    plan = store.latest_plan("c1")
    assert plan is not None
    assert plan.device_state == {"home-battery": {"soc_kwh": 5.0}}
    _, significant = planner.update_device_state(
        "c1", {"devices": {"home-battery": {"soc_kwh": 5.1}}}
    )
    assert not significant
    assert told == []
    assert planner.run_once(fetch_prices=False).planned == []
    plug_in = clock.now() + timedelta(hours=1)
    _, significant = planner.update_device_state(
        "c1",
        {
            "devices": {
                "car": {
                    "plug_in": plug_in.isoformat(),
                    "departure": (plug_in + timedelta(hours=10)).isoformat(),
                    "energy_kwh": 20,
                }
            }
        },
    )
    assert significant
    assert told == ["c1"]
    report = planner.run_once(customer_ids=["c1"], fetch_prices=False)
    assert report.planned == ["c1"]
    latest = store.latest_plan("c1")
    assert latest is not None
    assert latest.reason == "device_state"
    assert latest.device_state["car"]["energy_kwh"] == 20


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"devices": {"fridge": {"soc_kwh": 1}}}, "devices.fridge"),
        ({"devices": {"home-battery": {"soc_kwh": -1}}}, "devices.home-battery.soc_kwh"),
        ({"devices": {"home-battery": {"soc_kwh": "lots"}}}, "devices.home-battery.soc_kwh"),
        ({"devices": {"home-battery": {"soc_kwh": 50}}}, "devices.home-battery.soc_kwh"),
        ({"devices": {"home-battery": {"voltage": 3}}}, "devices.home-battery.voltage"),
        ({"devices": {"car": {"departure": "2026-01-20T10:00:00"}}}, "devices.car.departure"),
        ({"devices": {"car": {"departure": "2030-01-20T10:00:00+01:00"}}}, "devices.car.departure"),
        ({"devices": {}}, "devices"),
        ({"device": {}}, "device"),
        ([1, 2], "body"),
    ],
)
def test_invalid_device_state_is_refused_and_changes_nothing(
    store: PlanStore, clock: FakeClock, source: FakePriceSource, body: Any, key: str
) -> None:
    planner = _planner(store, clock, source)
    planner.update_device_state("c1", {"devices": {"home-battery": {"soc_kwh": 5.0}}})
    with pytest.raises(ScenarioError) as info:
        planner.update_device_state("c1", body)
    assert info.value.key == key
    state = store.device_state("c1")
    assert state.version == 1
    assert state.devices == {"home-battery": {"soc_kwh": 5.0}}


def test_failing_sink_does_not_stop_planning(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    got: list[PlanEvent] = []

    def broken(_event: PlanEvent) -> None:
        raise RuntimeError("sink down")

    planner = _planner(store, clock, source, sinks=(broken, CallbackSink(got.append)))
    assert planner.run_once().planned == ["c1"]
    assert [e.topic for e in got if e.topic is EventTopic.PLAN_CREATED] == [EventTopic.PLAN_CREATED]
    created = next(e for e in got if e.topic is EventTopic.PLAN_CREATED)
    assert created.payload["plan"]["status"] == "optimal"
    assert created.payload["stale"] is False


def test_setpoint_is_the_row_covering_now(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    planner = _planner(store, clock, source)
    planner.run_once()
    clock.advance(timedelta(minutes=40))
    body = planner.setpoint("c1")
    start = datetime.fromisoformat(body["setpoint"]["start"])
    assert start <= clock.now() < start + timedelta(minutes=15)
    events: list[PlanEvent] = []
    planner.add_sink(events.append)
    planner.publish_setpoints()
    assert [e.topic for e in events] == [EventTopic.SETPOINT]
    assert events[0].payload["setpoint"] == body["setpoint"]


def test_a_fixed_scenario_is_planned_inside_its_own_window(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    optimizer = FakeOptimizer()
    planner = Planner(
        customers=[fake_customer("c1", rolling=False)],  # data for 2026-01-20 and -21 only
        store=store,
        prices=source,
        optimize=optimizer,
        clock=clock,
    )
    clock.set(datetime(2026, 1, 21, 15, 0, tzinfo=BERLIN))  # prices reach 2026-01-23 00:00
    assert planner.run_once().planned == ["c1"]
    scenario, _ = optimizer.calls[-1]
    assert scenario.end == datetime(2026, 1, 22, tzinfo=BERLIN)
    clock.set(datetime(2026, 1, 22, 15, 0, tzinfo=BERLIN))  # new prices, window is over
    report = planner.run_once()
    assert report.failed == ["c1"]
    status = store.status("c1")
    assert status is not None
    assert status.error_kind == "invalid_scenario"
    assert "scenario factory" in (status.error or "")


def test_stop_skips_the_rest_of_a_pass(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    planner = _planner(store, clock, source, "c1", "c2")
    planner.stop()
    report = planner.run_once()
    assert report.by_outcome(Outcome.SKIPPED) == ["c1", "c2"]
    assert store.count_plans() == 0


@pytest.mark.parametrize("on_executor", [False, True], ids=["in-process", "thread-executor"])
def test_the_status_announced_after_a_turn_is_the_stored_one(
    store: PlanStore, clock: FakeClock, source: FakePriceSource, on_executor: bool
) -> None:
    # After a success the planner does not read the status back: it applies what it wrote
    # to what it read. Whatever the turn did, that must equal a fresh read of the store.
    from wattplan.planner._executors import ThreadExecutor

    events: list[PlanEvent] = []
    executor = ThreadExecutor(2) if on_executor else None
    planner = Planner(
        customers=[fake_customer(i) for i in ("c1", "c2")],
        store=store,
        prices=source,
        optimize=FakeOptimizer(),
        clock=clock,
        sinks=(CallbackSink(events.append),),
        executor=executor,
    )

    def check(report_outcomes: list[str]) -> None:
        for cid in ("c1", "c2"):
            stored = store.status(cid)
            assert stored is not None
            assert planner._live[cid].status == stored
            assert planner.customer_status(cid) == stored.as_dict(clock.now())
        created = [e for e in events if e.topic is EventTopic.PLAN_CREATED]
        for event in created:
            stored = store.status(event.customer_id)
            assert stored is not None
            assert event.payload["health"] == stored.health.value
        events.clear()
        assert report_outcomes

    try:
        check(planner.run_once().planned)  # first plans
        clock.advance(timedelta(minutes=15))
        check(planner.run_once().by_outcome(Outcome.UNCHANGED))  # fetched, nothing new
        check(planner.run_once(fetch_prices=False).by_outcome(Outcome.UNCHANGED))
        source.failing = {"c2"}
        clock.advance(timedelta(minutes=15))
        report = planner.run_once()
        assert report.failed == ["c2"]
        check(report.failed)
        source.failing = set()
        clock.set(datetime(2026, 1, 20, 14, 30, tzinfo=BERLIN))  # published: both re-plan
        report = planner.run_once()
        assert sorted(report.planned) == ["c1", "c2"]
        assert store.status("c2") is not None
        check(report.planned)
        assert store.status("c2").health is CustomerHealth.OK  # type: ignore[union-attr]
    finally:
        if executor is not None:
            executor.close()
