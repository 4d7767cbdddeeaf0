"""Poll times and slots are right on ordinary, 23-hour and 25-hour days."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from wattplan.planner import PollSchedule, floor_to_slot, next_slot_boundary
from wattplan.planner._timing import local_day_bounds

BERLIN = ZoneInfo("Europe/Berlin")


def _local(d: datetime) -> str:
    return d.astimezone(BERLIN).strftime("%H:%M")


@pytest.mark.parametrize(
    ("day", "hours", "offset_after"),
    [
        (datetime(2025, 10, 26), 25, timedelta(hours=1)),  # autumn: CEST -> CET
        (datetime(2026, 3, 29), 23, timedelta(hours=2)),  # spring: CET -> CEST
        (datetime(2026, 1, 20), 24, timedelta(hours=1)),
    ],
)
def test_a_day_of_polls_across_dst(day: datetime, hours: int, offset_after: timedelta) -> None:
    schedule = PollSchedule()
    start, end = local_day_bounds(day.date(), BERLIN)
    assert end - start == timedelta(hours=hours)
    polls = list(schedule.polls(start - timedelta(seconds=1), end - timedelta(seconds=1)))
    local = [_local(p) for p in polls]
    # hourly outside the window: one poll per real hour before 13:30 and after 16:00 ...
    hourly_before = [p for p in polls if p < schedule.window(day.date())[0]]
    assert len(hourly_before) == 14 + (hours - 24)  # 00:00..13:00, one more or less on DST days
    # ... and every 5 minutes from 13:30 to 16:00 local, whatever the offset
    dense = [t for t in local if "13:30" <= t <= "16:00"]
    assert dense[0] == "13:30"
    assert dense[-1] == "16:00"
    assert len(dense) == 31
    assert "14:20" in dense
    after = [p for p in polls if p > schedule.window(day.date())[1]]
    assert [_local(p) for p in after] == [f"{h:02d}:00" for h in range(17, 24)]
    assert polls[-1].astimezone(BERLIN).utcoffset() == offset_after
    assert all(b > a for a, b in itertools.pairwise(polls))


def test_autumn_fold_polls_both_two_oclocks() -> None:
    """02:00 local happens twice on 2025-10-26; an hourly UTC poll hits both, no loop."""
    schedule = PollSchedule()
    polls = list(
        schedule.polls(
            datetime(2025, 10, 25, 23, 30, tzinfo=UTC), datetime(2025, 10, 26, 3, 0, tzinfo=UTC)
        )
    )
    assert [p.hour for p in polls] == [0, 1, 2, 3]  # UTC
    assert [_local(p) for p in polls] == ["02:00", "02:00", "03:00", "04:00"]


def test_spring_gap_polls_skip_the_missing_hour() -> None:
    schedule = PollSchedule()
    polls = list(
        schedule.polls(
            datetime(2026, 3, 28, 23, 30, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
        )
    )
    assert [_local(p) for p in polls] == ["01:00", "03:00", "04:00"]


def test_window_in_utc_shifts_with_the_offset() -> None:
    schedule = PollSchedule()
    winter = schedule.window(datetime(2026, 3, 28).date())
    summer = schedule.window(datetime(2026, 3, 29).date())
    assert winter[0].hour == 12
    assert winter[0].minute == 30
    assert summer[0].hour == 11
    assert summer[0].minute == 30


def test_next_poll_after_publication_is_within_one_dense_interval() -> None:
    schedule = PollSchedule()
    published = datetime(2026, 1, 20, 14, 20, 1, tzinfo=BERLIN)
    nxt = schedule.next_poll(published)
    assert timedelta(0) < nxt - published <= schedule.dense


def test_custom_schedule_and_validation() -> None:
    schedule = PollSchedule(
        window_start=time(12, 0), window_end=time(13, 0), dense=timedelta(minutes=15)
    )
    polls = list(
        schedule.polls(
            datetime(2026, 1, 20, 11, 0, tzinfo=BERLIN),
            datetime(2026, 1, 20, 14, 0, tzinfo=BERLIN),
        )
    )
    assert [_local(p) for p in polls] == [
        "12:00", "12:15", "12:30", "12:45", "13:00", "14:00",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="window_end"):
        PollSchedule(window_start=time(16), window_end=time(13))
    with pytest.raises(ValueError, match="naive"):
        schedule.next_poll(datetime(2026, 1, 20, 12))


@pytest.mark.parametrize(
    ("day", "quarter_hours"),
    [(datetime(2025, 10, 26), 100), (datetime(2026, 3, 29), 92), (datetime(2026, 1, 20), 96)],
)
def test_slot_boundaries_count_the_real_quarter_hours(day: datetime, quarter_hours: int) -> None:
    start, end = local_day_bounds(day.date(), BERLIN)
    step = timedelta(minutes=15)
    moment, count = start, 0
    while moment < end:
        assert floor_to_slot(moment + timedelta(minutes=7), resolution=step) == moment
        moment = next_slot_boundary(moment, resolution=step)
        count += 1
    assert count == quarter_hours
