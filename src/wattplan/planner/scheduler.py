"""The planner's clockwork on APScheduler 3.x (the only module that imports it).

Three kinds of jobs, all in UTC:

* ``poll``: fetch prices and re-plan what changed, at the instants of a
  :class:`~wattplan.planner.PollSchedule` (every 5 minutes in the local publication window,
  hourly otherwise) plus a small random jitter;
* ``slot``: at every slot boundary, re-plan customers whose device state drifted beyond
  the deadband and publish the setpoints of the slot that starts;
* ``replan:<customer>``: a one-off re-plan a moment after a device-state change.

Why our own triggers: APScheduler's ``CronTrigger`` in local time has DST bugs (an endless
loop at the autumn fold in 3.11.0, a skipped day, interval jobs an hour late after the
switch). Our triggers ask the pure functions in ``_timing`` for the next UTC instant, so
the scheduler never does local-time arithmetic. Jobs run with ``max_instances=1``,
``coalesce=True`` (missed runs after a sleep collapse into one) and a misfire grace time;
an error listener logs failures and counts them for the health endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger

from wattplan.planner._planner import Planner
from wattplan.planner._timing import PollSchedule, next_slot_boundary, require_aware

__all__ = ["PlannerScheduler", "PollTrigger", "SlotTrigger"]

logger = logging.getLogger(__name__)


def _jitter(base: datetime, seed: str, max_jitter: timedelta) -> timedelta:
    """A pseudo-random offset in ``[0, max_jitter)`` fixed by ``(seed, base)``.

    Deterministic per instant, so that APScheduler asking the trigger twice for the same
    run (it does, when it computes misfires) gets the same answer.
    """
    if max_jitter <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(f"{seed}|{base.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=fraction * max_jitter.total_seconds())


class PollTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at :meth:`PollSchedule.next_poll` instants (UTC) plus a bounded jitter."""

    def __init__(self, schedule: PollSchedule, *, jitter: timedelta, seed: str = "") -> None:
        smallest = min(schedule.dense, schedule.sparse)
        if jitter < timedelta(0) or jitter * 2 > smallest:
            raise ValueError("jitter must be between 0 and half the shortest poll interval")
        self.schedule = schedule
        self.jitter = jitter
        self.seed = seed or uuid.uuid4().hex

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # A previous fire time is a poll instant plus less than half an interval of jitter,
        # so the next poll instant after it is the next one after the instant itself.
        after = previous_fire_time if previous_fire_time is not None else now
        base = self.schedule.next_poll(require_aware(after))
        return base + _jitter(base, self.seed, self.jitter)

    def __str__(self) -> str:
        s = self.schedule
        return f"poll[{s.timezone} {s.window_start}-{s.window_end}]"


class SlotTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at every slot boundary (UTC-aligned), plus ``offset``."""

    def __init__(self, resolution: timedelta, *, offset: timedelta = timedelta(0)) -> None:
        if not timedelta(0) <= offset < resolution:
            raise ValueError("offset must be shorter than the slot")
        self.resolution = resolution
        self.offset = offset

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        after = previous_fire_time - self.offset if previous_fire_time is not None else now
        return next_slot_boundary(require_aware(after), resolution=self.resolution) + self.offset

    def __str__(self) -> str:
        return f"slot[{self.resolution}]"


class PlannerScheduler:
    """Runs a :class:`Planner` on a background scheduler.

    Parameters
    ----------
    planner:
        The planner; device-state changes it reports are turned into re-plan jobs.
    poll:
        When to poll prices.
    jitter:
        Random delay added to each poll (spreads many planners over the window).
    slot:
        Slot length for the slot-boundary job (``None``: no slot job).
    replan_delay:
        How long after a device-state change the re-plan runs (collects bursts).
    misfire_grace:
        A job that could not run on time still runs if this late at most.
    clock:
        ``now()`` for one-off jobs; APScheduler itself reads the system clock.
    """

    def __init__(
        self,
        planner: Planner,
        *,
        poll: PollSchedule | None = None,
        jitter: timedelta = timedelta(seconds=30),
        slot: timedelta | None = timedelta(minutes=15),
        replan_delay: timedelta = timedelta(seconds=1),
        misfire_grace: timedelta = timedelta(minutes=10),
        seed: str = "",
        on_poll: Callable[[datetime], None] | None = None,
    ) -> None:
        self.planner = planner
        self.poll_schedule = poll or PollSchedule()
        self._poll_trigger = PollTrigger(self.poll_schedule, jitter=jitter, seed=seed)
        self._slot = slot
        self._replan_delay = replan_delay
        self._misfire_grace_s = int(misfire_grace.total_seconds())
        self._on_poll = on_poll
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        self.missed = 0
        self.last_poll_at: datetime | None = None
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self._misfire_grace_s,
            },
        )
        self._scheduler.add_listener(
            self._on_event,
            EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED,
        )
        planner.on_device_state_change(self.request_replan)

    def __repr__(self) -> str:
        return f"PlannerScheduler(running={self.running}, planner={self.planner!r})"

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self, *, paused: bool = False, poll_now: bool = True) -> None:
        """Add the jobs and start the background thread.

        ``poll_now`` runs a first poll right away (a restarted process catches up at once).
        """
        self._scheduler.add_job(self._poll, self._poll_trigger, id="poll", name="poll prices")
        if self._slot is not None:
            self._scheduler.add_job(
                self._slot_tick, SlotTrigger(self._slot), id="slot", name="slot boundary"
            )
        if poll_now:
            self._scheduler.add_job(
                self._poll, DateTrigger(datetime.now(UTC)), id="poll-initial", name="first poll"
            )
        self._scheduler.start(paused=paused)
        job = self._scheduler.get_job("poll")
        if job is not None and job.next_run_time is not None:
            logger.info(
                "scheduler started; next price poll at %s",
                job.next_run_time.astimezone(self.poll_schedule.tz).isoformat(),
            )

    def activate(self) -> None:
        """Become the active scheduler (this process was elected leader): start or resume
        the jobs and poll at once, so that a takeover catches up without waiting."""
        if not self.running:
            self.start()
            return
        self._scheduler.resume()
        self._scheduler.add_job(
            self._poll,
            DateTrigger(datetime.now(UTC)),
            id=f"poll-takeover:{uuid.uuid4().hex[:8]}",
            name="poll after takeover",
        )

    def standby(self) -> None:
        """Run no jobs (another process leads); a pass in progress finishes."""
        if self.running:
            self._scheduler.pause()

    def shutdown(self, *, wait: bool = True) -> None:
        if self.running:
            self._scheduler.shutdown(wait=wait)

    def resume(self) -> None:
        self._scheduler.resume()

    def next_run_time(self, job_id: str = "poll") -> datetime | None:
        job = self._scheduler.get_job(job_id)
        return None if job is None else job.next_run_time

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def request_replan(self, customer_id: str) -> None:
        """Re-plan one customer shortly (a burst of requests gives one re-plan)."""
        with self._lock:
            if customer_id in self._pending:
                return
            self._pending.add(customer_id)
        run_at = datetime.now(UTC) + self._replan_delay
        # a unique id: re-using one while APScheduler removes the finished job would race
        self._scheduler.add_job(
            self._replan,
            DateTrigger(run_at),
            args=[customer_id],
            id=f"replan:{customer_id}:{uuid.uuid4().hex[:8]}",
            name=f"re-plan {customer_id}",
            misfire_grace_time=None,
        )

    def health(self) -> dict[str, Any]:
        next_poll = self.next_run_time("poll")
        return {
            "scheduler": {
                "running": self.running,
                "next_poll_at": None if next_poll is None else next_poll.isoformat(),
                "last_poll_at": None
                if self.last_poll_at is None
                else self.last_poll_at.isoformat(),
                "job_errors": len(self.errors),
                "missed_runs": self.missed,
            }
        }

    # jobs --------------------------------------------------------------------------------

    def _poll(self) -> None:
        now = self.planner.clock.now()
        self.last_poll_at = now
        self.planner.run_once(now)
        if self._on_poll is not None:
            self._on_poll(now)

    def _slot_tick(self) -> None:
        now = self.planner.clock.now()
        self.planner.run_once(now, fetch_prices=False)
        self.planner.publish_setpoints(now)

    def _replan(self, customer_id: str) -> None:
        with self._lock:
            self._pending.discard(customer_id)
        self.planner.run_once(customer_ids=[customer_id], fetch_prices=False)

    def _on_event(self, event: SchedulerEvent) -> None:
        if event.code == EVENT_JOB_EXECUTED:
            return
        job_id = getattr(event, "job_id", "?")
        if event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            self.errors.append(
                {
                    "job": job_id,
                    "at": datetime.now(UTC).isoformat(),
                    "error": type(event.exception).__name__,
                }
            )
            logger.error(
                "job %s failed: %s",
                job_id,
                type(event.exception).__name__,
                exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
            )
        elif event.code == EVENT_JOB_MISSED:
            self.missed += 1
            logger.warning("job %s missed its run time (beyond the grace time)", job_id)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            logger.warning("job %s still running; this run was skipped", job_id)
