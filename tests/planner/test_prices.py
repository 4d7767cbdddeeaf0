"""The pure "new prices arrived" decision."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from wattplan.planner import PriceChange, decide_prices, price_fingerprint

from .conftest import synthetic_prices


def test_first_curve_is_new() -> None:
    decision = decide_prices(None, synthetic_prices(date(2026, 1, 20), 1))
    assert decision.change is PriceChange.FIRST
    assert decision.is_new


def test_same_curve_polled_again_is_no_news() -> None:
    today = synthetic_prices(date(2026, 1, 20), 1)
    decision = decide_prices(today, today.copy())
    assert decision.change is PriceChange.UNCHANGED
    assert not decision.is_new


def test_tomorrow_published_grows_the_horizon() -> None:
    today = synthetic_prices(date(2026, 1, 20), 1)
    both = synthetic_prices(date(2026, 1, 20), 2)
    assert decide_prices(today, both).change is PriceChange.HORIZON_GREW


def test_a_corrected_amount_is_new() -> None:
    both = synthetic_prices(date(2026, 1, 20), 2)
    fixed = both.copy()
    fixed.iloc[50] += 0.01
    assert decide_prices(both, fixed).change is PriceChange.AMOUNT_CHANGED
    assert price_fingerprint(both) != price_fingerprint(fixed)


def test_a_null_amount_that_gets_a_value_is_new() -> None:
    both = synthetic_prices(date(2026, 1, 20), 2)
    holey = both.copy()
    holey.iloc[10] = np.nan
    assert decide_prices(holey, both).change is PriceChange.AMOUNT_CHANGED
    assert decide_prices(holey, holey.copy()).change is PriceChange.UNCHANGED


def test_a_missing_slot_that_appears_is_new() -> None:
    both = synthetic_prices(date(2026, 1, 20), 2)
    assert decide_prices(both.drop(both.index[20]), both).change is PriceChange.AMOUNT_CHANGED


def test_fingerprint_ignores_timezone_of_the_index_and_order() -> None:
    both = synthetic_prices(date(2026, 1, 20), 2)
    berlin = both.copy()
    berlin.index = berlin.index.tz_convert("Europe/Berlin")
    assert price_fingerprint(both) == price_fingerprint(berlin.iloc[::-1])


def test_yesterday_dropping_off_the_front_is_no_news() -> None:
    two_days = synthetic_prices(date(2026, 1, 20), 2)
    second = two_days[two_days.index >= pd.Timestamp("2026-01-20T23:00:00Z")]
    assert decide_prices(two_days, second).change is PriceChange.UNCHANGED
