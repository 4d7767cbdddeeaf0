"""The slot grid of a horizon and the alignment of input series onto it.

Every series wattplan reads (prices, base load, PV, outdoor temperature, COP, comfort band)
means "the average value over the interval that starts at this timestamp", and is piecewise
constant in between. Aligning it onto the slot grid is therefore a time-weighted average of
a step function over each slot, computed exactly from the cumulative integral. That single
rule is right whatever the two resolutions are (hourly prices on a 15-minute grid: each
quarter-hour takes its hour's price; 15-minute load on an hourly grid: the mean of four)
and on 23- and 25-hour days, because all arithmetic is in UTC seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd

from wattplan.exceptions import PriceDataError, ScenarioError

__all__ = ["FloatArray", "SlotGrid", "align_series", "isoformats"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SlotGrid:
    """Slots ``t = 0..T-1`` of ``resolution_minutes`` from ``start`` (inclusive) to ``end``."""

    start: pd.Timestamp
    end: pd.Timestamp
    resolution_minutes: int

    @classmethod
    def build(cls, start: datetime, end: datetime, resolution_minutes: int) -> SlotGrid:
        for key, value in (("start", start), ("end", end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ScenarioError(key=key, reason="must be tz-aware (give a UTC offset)")
        s = pd.Timestamp(start).tz_convert("UTC")
        e = pd.Timestamp(end).tz_convert("UTC")
        if e <= s:
            raise ScenarioError(key="end", reason=f"must be after start ({s.isoformat()})")
        step = pd.Timedelta(minutes=resolution_minutes)
        for key, ts in (("start", s), ("end", e)):
            if (ts - pd.Timestamp(0, tz="UTC")) % step != pd.Timedelta(0):
                raise ScenarioError(
                    key=key, reason=f"must lie on a {resolution_minutes}-minute slot boundary"
                )
        return cls(s, e, resolution_minutes)

    @property
    def dt_h(self) -> float:
        """Slot length in hours (Δ)."""
        return self.resolution_minutes / 60.0

    @property
    def index(self) -> pd.DatetimeIndex:
        """Slot starts, tz-aware UTC (a new object each time: callers may name it)."""
        return self._index.copy()

    # computed once per grid: a plan reads them many times (the grid is frozen)
    @cached_property
    def _index(self) -> pd.DatetimeIndex:
        return pd.date_range(
            self.start, self.end, freq=f"{self.resolution_minutes}min", inclusive="left"
        )

    @cached_property
    def n(self) -> int:
        return int((self.end - self.start) / pd.Timedelta(minutes=self.resolution_minutes))

    def edges_s(self) -> FloatArray:
        """Slot edges in UTC epoch seconds, length T+1."""
        t0 = self.start.value / 1e9
        return t0 + np.arange(self.n + 1, dtype=np.float64) * self.resolution_minutes * 60.0

    def slot_of(self, when: datetime, *, ceil: bool) -> int:
        """Index of the slot edge at or after (``ceil``) or at or before ``when``, clipped."""
        ts = pd.Timestamp(when).tz_convert("UTC")
        k = (ts - self.start) / pd.Timedelta(minutes=self.resolution_minutes)
        idx = int(np.ceil(k - 1e-9)) if ceil else int(np.floor(k + 1e-9))
        return max(0, min(self.n, idx))

    def local_index(self, tz: str) -> pd.DatetimeIndex:
        return self.index.tz_convert(tz)


def _as_series(value: pd.Series, key: str) -> pd.Series:
    if not isinstance(value.index, pd.DatetimeIndex):
        raise ScenarioError(key=key, reason="series index must be a DatetimeIndex of slot starts")
    if value.index.tz is None:
        raise ScenarioError(key=key, reason="series index must be tz-aware")
    series = value.astype(float)
    if not series.index.is_monotonic_increasing:
        series = series.sort_index()
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise ScenarioError(key=key, reason=f"duplicate timestamp {dup.isoformat()}")
    return series


def _coverage(stamps: FloatArray, default_step: float) -> FloatArray:
    """Where each point's interval ends (epoch seconds), holes cut short."""
    if len(stamps) == 1:
        return stamps + default_step
    gaps = np.diff(stamps)
    if len(gaps) == 1:
        return np.append(stamps[:-1] + gaps, stamps[-1] + gaps[-1])
    # the gap before and after each gap; at either end, the only neighbour it has
    prev = np.concatenate(([gaps[1]], gaps[:-1]))
    nxt = np.concatenate((gaps[1:], [gaps[-2]]))
    neighbour = np.maximum(prev, nxt)
    hole = gaps > neighbour + 1e-6
    own = np.where(hole, np.minimum(prev, nxt), gaps)
    ends = stamps[:-1] + own
    last = stamps[-1] + gaps[-1]
    return np.append(ends, last)


def align_series(
    value: pd.Series | float,
    grid: SlotGrid,
    *,
    key: str,
    error: type[ScenarioError] = ScenarioError,
) -> FloatArray:
    """Time-weighted mean of a step series over each slot of ``grid``.

    A scalar is broadcast. Each point of a series covers the interval up to the next point,
    so the step may change within a series (hourly day-ahead prices until 2025-09-30, then
    quarter-hours). A gap longer than both its neighbouring gaps is a hole: the point
    before it covers only as long as its neighbours do. Every slot must be wholly covered
    by non-missing values, or ``error`` is raised naming ``key`` and the first uncovered
    slot.
    """
    if not isinstance(value, pd.Series):
        arr = np.full(grid.n, float(value))
        if not np.isfinite(arr).all():
            raise error(key=key, reason="must be a finite number")
        return arr
    series = _as_series(value, key)
    if series.empty:
        raise error(key=key, reason="series is empty")
    stamps = pd.DatetimeIndex(series.index).as_unit("ns").asi8.astype(np.float64) / 1e9
    vals = series.to_numpy(dtype=np.float64)
    covered_to = _coverage(stamps, grid.resolution_minutes * 60.0)
    step = float(covered_to[-1] - stamps[-1])
    nan = ~np.isfinite(vals)
    edges = grid.edges_s()

    # coverage check: each slot [a, b) must lie inside the union of covered, non-NaN pieces
    ok_pieces = np.flatnonzero(~nan)
    slot_ok = np.zeros(grid.n, dtype=bool)
    seg_end = np.zeros(0)
    if ok_pieces.size:
        # merge contiguous good pieces into intervals
        p_start = stamps[ok_pieces]
        p_end = covered_to[ok_pieces]
        breaks = np.flatnonzero(p_start[1:] > p_end[:-1] + 1e-6) + 1
        seg_start = p_start[np.r_[0, breaks]]
        seg_end = p_end[np.r_[breaks - 1, len(p_end) - 1]]
        k = np.searchsorted(seg_start, edges[:-1] + 1e-6, side="right") - 1
        valid = k >= 0
        slot_ok[valid] = seg_end[k[valid]] >= edges[1:][valid] - 1e-6
    if not slot_ok.all():
        bad = int(np.flatnonzero(~slot_ok)[0])
        at = grid.index[bad]
        first, last = series.index[0], series.index[-1]
        if at < first or at >= last + timedelta(seconds=step):
            why = (
                f"does not cover the horizon: no value for the slot at {at.isoformat()} "
                f"(series runs from {first.isoformat()} to {last.isoformat()})"
            )
        else:
            # where the covered stretch that reaches into this slot ends
            a = edges[bad]
            before = seg_end[seg_end <= edges[bad + 1] + 1e-6] if ok_pieces.size else seg_end
            gap_s = float(max([x for x in before if x >= a - 1e-6], default=a))
            gap = pd.Timestamp(round(gap_s), unit="s", tz="UTC")
            why = (
                f"has a hole: no value from {gap.isoformat()} (needed for the slot at "
                f"{at.isoformat()})"
            )
        raise error(key=key, reason=why)

    # exact integral of the step function at the slot edges
    vals = np.where(nan, 0.0, vals)
    widths = covered_to - stamps
    cum = np.concatenate(([0.0], np.cumsum(vals * widths)))

    def integral(x: FloatArray) -> FloatArray:
        i = np.clip(np.searchsorted(stamps, x, side="right") - 1, 0, len(stamps) - 1)
        inside = np.clip(x - stamps[i], 0.0, widths[i])
        return cum[i] + vals[i] * inside

    total = integral(edges)
    out = np.diff(total) / np.diff(edges)
    return out.astype(np.float64)


def check_price_series(value: pd.Series, key: str) -> pd.Series:
    """Validate a price series handed in directly (tz-aware, numeric)."""
    if not isinstance(value, pd.Series):
        raise PriceDataError(key=key, reason="must be a pandas Series (tz-aware index, ct/kWh)")
    return _as_series(value, key)


def isoformats(index: pd.DatetimeIndex) -> list[str]:
    """``Timestamp.isoformat()`` of each moment of a tz-aware index (in its own zone).

    Moments on whole seconds with offsets of whole minutes (every schedule) are formatted
    in vectorised steps; anything else one by one, with the same result.
    """
    wall = index.tz_localize(None).to_numpy()
    utc = index.tz_convert(None).to_numpy()
    minutes = (wall - utc) / np.timedelta64(1, "m")
    if (
        index.hasnans
        or not bool((wall.astype("datetime64[s]") == wall).all())
        or not bool((minutes == np.round(minutes)).all())
    ):
        return [ts.isoformat() for ts in index]
    texts = np.datetime_as_string(wall, unit="s").tolist()
    offsets = {
        m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
        for m in set(minutes.astype(int).tolist())
    }
    return [t + offsets[m] for t, m in zip(texts, minutes.astype(int).tolist(), strict=True)]
