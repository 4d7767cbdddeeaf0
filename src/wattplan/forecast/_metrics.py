"""The yardstick of base-load forecasts: the same wall-clock slot one week earlier."""

from __future__ import annotations

import pandas as pd

__all__ = ["same_slot_week_before"]


def same_slot_week_before(history: pd.Series, slots: pd.DatetimeIndex, timezone: str) -> pd.Series:
    """The naive forecast of ``slots``: ``history`` at the same local wall-clock time 7 days
    earlier (the MASE denominator).

    By wall clock, not 168 hours back in UTC, so the week after a clock change compares
    like with like. A 25-hour day's repeated hour takes the one hour of the week before
    twice; a slot a week after the 23-hour day's missing hour has none (NaN). ``history``
    and ``slots`` are tz-aware; the result is indexed by ``slots``.
    """
    index = pd.DatetimeIndex(history.index)
    if index.tz is None or pd.DatetimeIndex(slots).tz is None:
        raise ValueError("history and slots need tz-aware indexes")
    wall = pd.Series(
        history.to_numpy(dtype=float), index=index.tz_convert(timezone).tz_localize(None)
    )
    wall = wall[~wall.index.duplicated()]
    local = pd.DatetimeIndex(slots).tz_convert(timezone).tz_localize(None)
    values = wall.reindex(local - pd.Timedelta(days=7)).to_numpy(dtype=float)
    return pd.Series(values, index=slots, dtype=float)
