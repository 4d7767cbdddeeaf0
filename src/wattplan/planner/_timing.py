"""When to poll and where slots begin: pure functions of a UTC instant.

Nothing here reads a clock or imports a scheduler. The publication window is a local
(Europe/Berlin) time of day; it is turned into UTC instants for each local calendar day,
and all arithmetic after that is done in UTC, so that the 23- and 25-hour days need no
special case. APScheduler's ``CronTrigger`` in local time has had DST bugs (see DESIGN
§6a); the scheduler only ever gets the UTC instants computed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "PollSchedule",
    "floor_to_slot",
    "local_day_bounds",
    "next_slot_boundary",
    "require_aware",
]


def require_aware(moment: datetime, name: str = "now") -> datetime:
    """Return ``moment`` in UTC; raise ``ValueError`` for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start and end of the local calendar ``day`` (23, 24 or 25 hours long)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def floor_to_slot(moment: datetime, *, resolution: timedelta) -> datetime:
    """The start of the slot that contains ``moment`` (slots are aligned in UTC).

    Berlin's offsets are whole hours, so UTC-aligned quarter-hours and hours are local
    quarter-hours and hours too.
    """
    utc = require_aware(moment)
    step = int(resolution.total_seconds())
    if step <= 0 or (3600 % step and step % 3600):
        raise ValueError(f"resolution: unsupported slot length {resolution}")
    epoch = int(utc.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, tz=UTC)


def next_slot_boundary(moment: datetime, *, resolution: timedelta) -> datetime:
    """The first slot start strictly after ``moment``."""
    return floor_to_slot(moment, resolution=resolution) + resolution


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Price polling: dense inside a local publication window, sparse outside it.

    Inside ``[window_start, window_end]`` (local time, both included) polls fall every
    ``dense`` from ``window_start``; outside, at every ``sparse`` step aligned to UTC
    (whole hours by default, which are whole hours in local time too).
    """

    timezone: str = "Europe/Berlin"
    window_start: time = time(13, 30)
    window_end: time = time(16, 0)
    dense: timedelta = timedelta(minutes=5)
    sparse: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.dense <= timedelta(0) or self.sparse <= timedelta(0):
            raise ValueError("dense and sparse poll intervals must be positive")
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start (same local day)")
        ZoneInfo(self.timezone)  # raises for an unknown zone

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def window(self, day: date) -> tuple[datetime, datetime]:
        """UTC bounds of the dense window on local ``day``."""
        start = datetime.combine(day, self.window_start, tzinfo=self.tz).astimezone(UTC)
        end = datetime.combine(day, self.window_end, tzinfo=self.tz).astimezone(UTC)
        return start, end

    def _dense_after(self, moment: datetime) -> datetime | None:
        local_day = moment.astimezone(self.tz).date()
        for day in (local_day, local_day + timedelta(days=1)):
            start, end = self.window(day)
            if moment < start:
                return start
            if moment < end:
                steps = (moment - start) // self.dense + 1
                candidate = start + steps * self.dense
                if candidate <= end:
                    return candidate
        return None

    def next_poll(self, after: datetime) -> datetime:
        """The first poll instant strictly after ``after``, in UTC (jitter not included)."""
        moment = require_aware(after, "after")
        sparse = floor_to_slot(moment, resolution=self.sparse) + self.sparse
        dense = self._dense_after(moment)
        return sparse if dense is None else min(sparse, dense)

    def polls(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every poll instant in ``(start, end]``, in order."""
        moment = require_aware(start, "start")
        stop = require_aware(end, "end")
        while True:
            moment = self.next_poll(moment)
            if moment > stop:
                return
            yield moment
