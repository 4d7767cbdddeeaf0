""" "New prices arrived" as a pure decision over two price curves.

Nomos has no webhook for new prices, so the planner polls and compares what it got with
the prices its current plan was made on. New prices means: the curve reaches further
(tomorrow was published) or an amount changed (a correction, or a slot that was ``null``
now has a value). Anything else, in particular the same curve polled again, is no news.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from wattplan.optimizer._timeseries import isoformats

__all__ = ["PriceChange", "PriceDecision", "decide_prices", "price_fingerprint", "utc_isoformats"]

# Amounts are ct/kWh with a few decimals; a difference below this is rounding noise.
_TOLERANCE_CT = 1e-6


class PriceChange(StrEnum):
    """Why a curve counts as new (or ``UNCHANGED``)."""

    FIRST = "first"
    HORIZON_GREW = "horizon_grew"
    AMOUNT_CHANGED = "amount_changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class PriceDecision:
    change: PriceChange
    fingerprint: str

    @property
    def is_new(self) -> bool:
        return self.change is not PriceChange.UNCHANGED


def _validate(prices: pd.Series, name: str) -> pd.Series:
    index = prices.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError(f"{name}: needs a tz-aware DatetimeIndex")
    out = prices.astype(float)
    out.index = index.tz_convert("UTC")
    return out.sort_index()


def utc_isoformats(index: pd.DatetimeIndex) -> list[str]:
    """``Timestamp.isoformat()`` of each moment of a tz-aware index, in UTC."""
    return isoformats(index.tz_convert("UTC"))


def price_fingerprint(prices: pd.Series) -> str:
    """A short, stable hash of a price curve (slot starts in UTC and amounts).

    Amounts are rounded to 1e-6 ct/kWh; ``NaN`` (a ``null`` amount) hashes as its own value.
    """
    curve = _validate(prices, "prices")
    starts = utc_isoformats(pd.DatetimeIndex(curve.index))
    amounts = curve.to_numpy(dtype=float).tolist()
    text = "".join(
        f"{start}={'null' if math.isnan(amount) else f'{amount:.6f}'};"
        for start, amount in zip(starts, amounts, strict=True)
    )
    # one update with the concatenation: the same digest as one update per slot
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decide_prices(previous: pd.Series | None, current: pd.Series) -> PriceDecision:
    """Compare the curve a plan was made on (``previous``) with a freshly polled one."""
    now_curve = _validate(current, "current")
    fingerprint = price_fingerprint(now_curve)
    if previous is None or previous.empty:
        return PriceDecision(PriceChange.FIRST, fingerprint)
    before = _validate(previous, "previous")
    if now_curve.empty:
        return PriceDecision(PriceChange.UNCHANGED, fingerprint)
    if now_curve.index.max() > before.index.max():
        return PriceDecision(PriceChange.HORIZON_GREW, fingerprint)
    filled = now_curve.index.difference(before.index)
    if (filled > before.index.min()).any():  # a hole in the old curve got a slot
        return PriceDecision(PriceChange.AMOUNT_CHANGED, fingerprint)
    common = now_curve.index.intersection(before.index)
    a = now_curve.reindex(common).to_numpy(dtype=float)
    b = before.reindex(common).to_numpy(dtype=float)
    missing_a, missing_b = np.isnan(a), np.isnan(b)
    both = ~missing_a & ~missing_b
    if bool((missing_a != missing_b).any()) or bool(
        (np.abs(a[both] - b[both]) > _TOLERANCE_CT).any()
    ):
        return PriceDecision(PriceChange.AMOUNT_CHANGED, fingerprint)
    return PriceDecision(PriceChange.UNCHANGED, fingerprint)
