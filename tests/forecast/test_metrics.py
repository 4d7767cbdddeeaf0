"""The naive forecast MASE divides by: the same local wall-clock slot a week earlier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattplan.forecast import same_slot_week_before

TZ = "Europe/Berlin"


def _history(minutes: int) -> pd.Series:
    # each value encodes its own local wall-clock time: day * 10_000 + hour * 100 + minute
    idx = pd.date_range("2025-10-13", "2025-11-04", freq=f"{minutes}min", tz=TZ, inclusive="left")
    return pd.Series(idx.day * 10_000 + idx.hour * 100 + idx.minute, index=idx.tz_convert("UTC"))


@pytest.mark.parametrize("minutes", [15, 60])
def test_the_week_after_a_clock_change_compares_the_same_wall_clock_time(minutes: int) -> None:
    history = _history(minutes)
    # 2 November: a 24-hour day a week after the 25-hour 26 October
    slots = pd.date_range("2025-11-02", "2025-11-03", freq=f"{minutes}min", tz=TZ, inclusive="left")
    naive = same_slot_week_before(history, slots.tz_convert("UTC"), TZ)
    expected = 26 * 10_000 + slots.hour * 100 + slots.minute
    np.testing.assert_array_equal(naive.to_numpy(), expected.to_numpy(dtype=float))
    # 168 hours back in UTC lands an hour off before the clock went back on 26 October
    utc = history.reindex(slots.tz_convert("UTC") - pd.Timedelta(days=7)).to_numpy()
    assert utc[0] == 260_100 and naive.iloc[0] == 260_000


def test_the_repeated_hour_takes_the_one_hour_of_the_week_before_twice() -> None:
    history = _history(60)
    slots = pd.date_range("2025-10-26", "2025-10-27", freq="60min", tz=TZ, inclusive="left")
    assert len(slots) == 25
    naive = same_slot_week_before(history, slots.tz_convert("UTC"), TZ)
    local_hours = list(slots.hour)
    assert local_hours.count(2) == 2
    np.testing.assert_array_equal(naive[slots.hour == 2].to_numpy(), [190_200.0, 190_200.0])


def test_a_slot_a_week_after_the_missing_hour_has_no_naive_value() -> None:
    idx = pd.date_range("2026-03-25", "2026-04-07", freq="60min", tz=TZ, inclusive="left")
    history = pd.Series(1.0, index=idx.tz_convert("UTC"))
    slots = pd.date_range("2026-04-05", "2026-04-06", freq="60min", tz=TZ, inclusive="left")
    naive = same_slot_week_before(history, slots.tz_convert("UTC"), TZ)
    assert naive.isna().to_numpy().tolist() == [h == 2 for h in slots.hour]


def test_naive_timestamps_are_refused() -> None:
    history = _history(60)
    with pytest.raises(ValueError, match="tz-aware"):
        same_slot_week_before(history, pd.date_range("2025-11-02", periods=3, freq="h"), TZ)
