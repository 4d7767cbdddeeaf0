"""The APScheduler side: our UTC triggers across DST, and a live scheduler on a moved clock."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import time_machine

from wattplan.planner import (
    CallbackSink,
    EventTopic,
    PlanEvent,
    Planner,
    PlannerScheduler,
    PlanStore,
    PollSchedule,
    PollTrigger,
    SlotTrigger,
    SystemClock,
)

from .conftest import BERLIN, FakeOptimizer, FakePriceSource, fake_customer, synthetic_prices


def _chain(trigger: Any, start: datetime, end: datetime) -> list[datetime]:
    out: list[datetime] = []
    previous = None
    now = start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire > end:
            return out
        out.append(fire)
        previous = now = fire


@pytest.mark.parametrize(
    ("day", "hourly_before_window"), [(date(2025, 10, 26), 15), (date(2026, 3, 29), 13)]
)
def test_poll_trigger_fires_at_the_right_local_times_on_dst_days(
    day: date, hourly_before_window: int
) -> None:
    trigger = PollTrigger(PollSchedule(), jitter=timedelta(0))
    start = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN) - timedelta(seconds=1)
    fires = _chain(trigger, start, start + timedelta(hours=30))
    local = [f.astimezone(BERLIN) for f in fires if f.astimezone(BERLIN).date() == day]
    times = [f.strftime("%H:%M") for f in local]
    dense = [t for t in times if "13:30" <= t <= "16:00"]
    assert len(dense) == 31
    assert dense[0] == "13:30"
    assert "14:20" in dense
    assert len([t for t in times if t < "13:30"]) == hourly_before_window
    assert [t for t in times if t > "16:00"] == [f"{h}:00" for h in range(17, 24)]
    assert all(f.tzinfo is not None for f in fires)


def test_poll_trigger_jitter_is_bounded_and_keeps_the_grid() -> None:
    schedule = PollSchedule()
    trigger = PollTrigger(schedule, jitter=timedelta(seconds=60), seed="x")
    start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    fires = _chain(trigger, start, start + timedelta(days=2, seconds=60))
    bases = list(schedule.polls(start, start + timedelta(days=2)))
    assert len(fires) == len(bases)
    for fire, base in zip(fires, bases, strict=False):
        assert timedelta(0) <= fire - base < timedelta(seconds=60)
    with pytest.raises(ValueError, match="jitter"):
        PollTrigger(schedule, jitter=timedelta(minutes=3))


def test_slot_trigger_counts_real_quarter_hours_across_both_switches() -> None:
    trigger = SlotTrigger(timedelta(minutes=15))
    for day, expected in ((date(2025, 10, 26), 100), (date(2026, 3, 29), 92)):
        lo = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
        hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
        fires = _chain(trigger, lo - timedelta(seconds=1), hi - timedelta(seconds=1))
        assert len(fires) == expected
        assert fires[0] == lo


def _planner(store: PlanStore, sinks: tuple[Any, ...] = ()) -> tuple[Planner, FakePriceSource]:
    clock = SystemClock()  # time-machine moves it
    source = FakePriceSource(clock, synthetic_prices(date(2025, 10, 20), 170))  # type: ignore[arg-type]
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=source,
        optimize=FakeOptimizer(),
        clock=clock,
        sinks=sinks,
    )
    return planner, source


@pytest.mark.parametrize(
    "publication_day",
    [date(2025, 10, 26), date(2026, 3, 29)],
)
def test_live_scheduler_polls_at_1420_local_on_dst_days_and_replans(
    store: PlanStore, publication_day: date
) -> None:
    """APScheduler itself, on a clock moved to just before 14:20 local on a DST day."""
    day_start = datetime.combine(publication_day, datetime.min.time(), tzinfo=BERLIN)
    start = day_start.replace(hour=14, minute=19, second=55)
    plans: list[PlanEvent] = []
    got_plan = threading.Event()

    def on_event(event: PlanEvent) -> None:
        if event.topic is EventTopic.PLAN_CREATED:
            plans.append(event)
            if event.payload["reason"] == "horizon_grew":
                got_plan.set()

    planner, _ = _planner(store, sinks=(CallbackSink(on_event),))
    with time_machine.travel(day_start.replace(hour=13), tick=False):
        planner.run_once()  # the plan before publication: today only
    with time_machine.travel(start, tick=True):
        polls: list[datetime] = []
        scheduler = PlannerScheduler(planner, jitter=timedelta(0), slot=None, on_poll=polls.append)
        scheduler.start(poll_now=False)
        try:
            first = scheduler.next_run_time("poll")
            assert first is not None
            assert first.astimezone(BERLIN).strftime("%H:%M:%S") == "14:20:00"
            assert got_plan.wait(60), "no re-plan after the 14:20 publication"
            second = scheduler.next_run_time("poll")
        finally:
            scheduler.shutdown()
    assert polls
    assert polls[0].astimezone(BERLIN).strftime("%H:%M") == "14:20"
    assert second is not None
    assert second.astimezone(BERLIN).strftime("%H:%M") == "14:25"
    end = datetime.fromisoformat(plans[-1].payload["horizon_end"])
    assert end == datetime.combine(
        publication_day + timedelta(days=2), datetime.min.time(), tzinfo=BERLIN
    )
    assert scheduler.errors == type(scheduler.errors)()


def test_device_state_change_triggers_a_replan_within_seconds(store: PlanStore) -> None:
    replanned = threading.Event()

    def on_event(event: PlanEvent) -> None:
        if event.topic is EventTopic.PLAN_CREATED and event.payload["reason"] == "device_state":
            replanned.set()

    planner, _ = _planner(store, sinks=(CallbackSink(on_event),))
    with time_machine.travel(datetime(2026, 1, 20, 10, 0, tzinfo=BERLIN), tick=True):
        planner.run_once()
        scheduler = PlannerScheduler(planner, slot=None, replan_delay=timedelta(milliseconds=50))
        scheduler.start(poll_now=False)
        try:
            jobs = {j.id: j for j in scheduler._scheduler.get_jobs()}
            assert jobs["poll"].max_instances == 1
            assert jobs["poll"].coalesce is True
            assert jobs["poll"].misfire_grace_time == 600
            planner.update_device_state("c1", {"devices": {"home-battery": {"soc_kwh": 8.0}}})
            assert replanned.wait(60)
        finally:
            scheduler.shutdown()
    assert store.count_plans("c1") == 2


def test_error_listener_records_a_failing_job(store: PlanStore) -> None:
    planner, _ = _planner(store)
    failed = threading.Event()

    def explode(*_a: Any, **_k: Any) -> Any:
        failed.set()
        raise RuntimeError("boom")

    planner.run_once = explode  # type: ignore[method-assign]
    scheduler = PlannerScheduler(planner, slot=None)
    scheduler.start(poll_now=True)
    try:
        assert failed.wait(60)
        for _ in range(1200):
            if scheduler.errors:
                break
            threading.Event().wait(0.05)
    finally:
        scheduler.shutdown()
    assert scheduler.errors[0]["job"] == "poll-initial"
    assert scheduler.errors[0]["error"] == "RuntimeError"
    assert scheduler.health()["scheduler"]["job_errors"] == 1
