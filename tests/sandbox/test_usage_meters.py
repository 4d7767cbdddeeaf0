"""The sandbox's usage comes from real household meters, moved by whole weeks.

The meter values are checked against ``wattplan.datasets.read_household_meter`` directly
(an independent reading of the shipped files), never against numbers copied here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.sandbox.oauth_helpers import customer_token
from wattplan import datasets
from wattplan.cli import build_parser
from wattplan.sandbox import RunningSandbox, SandboxConfig, SeedSubscription
from wattplan.sandbox._data import (
    day_usage_kwh,
    meter_day_usage_kwh,
    meter_month_usage_kwh,
    meter_source_day,
)

BERLIN = ZoneInfo("Europe/Berlin")
DEMO_SUB = "sub_demo00000000000000000001"


def _span(name: str) -> tuple[date, date]:
    local = pd.DatetimeIndex(datasets.read_household_meter(name).index).tz_convert(BERLIN)
    return local[0].date(), local[-1].date()


def _source_hours_kwh(name: str, day: date) -> pd.Series:
    """The meter's own hourly kWh of the source day, indexed by local wall-clock hour."""
    meter = datasets.read_household_meter(name)
    local = pd.DatetimeIndex(meter.index).tz_convert(BERLIN)
    first, last = _span(name)
    src = meter_source_day(day, first, last)
    values = meter[local.date == src]
    return pd.Series(values.to_numpy(), index=local[local.date == src].hour)


@pytest.mark.parametrize("name", datasets.HOUSEHOLD_METERS)
def test_each_meter_file_is_52_whole_weeks_of_import(name: str) -> None:
    meter = datasets.read_household_meter(name)
    local = pd.DatetimeIndex(meter.index).tz_convert(BERLIN)
    assert local[0].hour == 0
    assert local[0].weekday() == 0  # a Monday
    assert (local[-1] + pd.Timedelta(hours=1)).normalize() - local[0].normalize() == pd.Timedelta(
        weeks=52
    )
    assert (
        pd.DatetimeIndex(meter.index).to_series().diff().iloc[1:] == pd.Timedelta(hours=1)
    ).all()
    assert (meter >= 0).all()
    assert 1500 < meter.sum() < 12000  # kWh in a year of a household (heat pump included)


def test_unknown_meter_names_the_field() -> None:
    with pytest.raises(ValueError, match="name: must be one of"):
        datasets.read_household_meter("residential4")
    with pytest.raises(ValueError, match="household: must be one of"):
        SeedSubscription(id="sub_x", status="active", start_at=None, household="nobody")


def test_the_shift_keeps_the_weekday_and_moves_by_whole_weeks() -> None:
    first, last = _span("residential3")
    day = date(2025, 1, 1)
    while day < date(2028, 1, 1):
        src = meter_source_day(day, first, last)
        assert first <= src <= last
        assert (day - src).days % 7 == 0
        same = src.replace(year=day.year) if (src.month, src.day) != (2, 29) else None
        if same is not None and first + timedelta(days=10) < src < last - timedelta(days=10):
            # season kept: within three days of the same calendar date
            off = abs((same - day).days)
            assert min(off, 365 - off, 366 - off) <= 3, (day, src)
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("day", "slots"),
    [("2026-03-29", 92), ("2026-10-25", 100), ("2025-10-26", 100), ("2026-01-20", 96)],
)
def test_a_served_day_is_the_source_day_by_wall_clock(day: str, slots: int) -> None:
    target = date.fromisoformat(day)
    served = meter_day_usage_kwh("residential3", target, final=True)
    assert len(served) == slots
    assert served.index[0] == pd.Timestamp(day, tz=BERLIN).tz_convert("UTC")
    local_hours = pd.DatetimeIndex(served.index).tz_convert(BERLIN).hour
    source = _source_hours_kwh("residential3", target)
    checked = 0
    for hour in range(24):
        here = served.to_numpy()[local_hours == hour]
        there = source[source.index == hour].to_numpy()
        if len(here) == 4 and len(there) == 1:  # an hour that occurs once on both days
            assert np.allclose(here, there[0] / 4)
            checked += 1
    assert checked >= 22
    assert not np.isnan(served.to_numpy()).any()


def test_preliminary_values_substitute_hours_from_a_week_earlier() -> None:
    changed_days = 0
    day = date(2026, 9, 1)
    while day < date(2026, 11, 1):
        final = meter_day_usage_kwh("residential3", day, final=True)
        prelim = meter_day_usage_kwh("residential3", day, final=False)
        assert prelim.index.equals(final.index)
        differs = ~np.isclose(prelim.to_numpy(), final.to_numpy())
        if differs.any():
            changed_days += 1
            week_before = meter_day_usage_kwh("residential3", day - timedelta(days=7), final=True)
            positions = np.flatnonzero(differs)
            assert positions[-1] - positions[0] < 24  # one stretch of at most six hours
            assert np.allclose(prelim.to_numpy()[differs], week_before.to_numpy()[differs])
        day += timedelta(days=1)
    assert 5 <= changed_days <= 40  # some days, not all


def _usage(sb: RunningSandbox, token: str, day: str) -> dict:
    nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    r = httpx.get(
        sb.url(f"/subscriptions/{DEMO_SUB}/usage"),
        params={"start": day, "end": nxt, "resolution": "15min"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict = r.json()
    return body


def _substituted_day(name: str, start: date) -> date:
    day = start
    while True:
        final = meter_day_usage_kwh(name, day, final=True)
        prelim = meter_day_usage_kwh(name, day, final=False)
        if not np.allclose(final.to_numpy(), prelim.to_numpy()):
            return day
        day += timedelta(days=1)


def test_the_demo_customer_gets_preliminary_then_final_real_meter_values(
    sandbox: RunningSandbox,
) -> None:
    token = customer_token(sandbox)
    day = _substituted_day("residential3", date(2026, 10, 2))
    sandbox.clock.set(
        datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN) + timedelta(hours=17)
    )
    prelim = _usage(sandbox, token, day.isoformat())["data"]
    assert {d["type"] for d in prelim} == {"preliminary"}
    sandbox.clock.set(datetime(day.year, 12, 1, 12, 0, tzinfo=UTC))  # past the 8th working day
    final = _usage(sandbox, token, day.isoformat())["data"]
    assert {d["type"] for d in final} == {"final"}
    assert [d["start"] for d in final] == [d["start"] for d in prelim]
    want = meter_day_usage_kwh("residential3", day, final=True).to_numpy()
    assert np.allclose([d["usage"] for d in final], want, atol=1e-4)
    assert not np.allclose([d["usage"] for d in prelim], want, atol=1e-4)
    h25 = day_usage_kwh(day, annual_kwh=4000.0).to_numpy()
    assert not np.allclose(want, h25, atol=1e-3)  # a real meter, not the standard profile


def test_h25_stays_available_and_fault_free(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sb = sandbox_factory(SandboxConfig(usage_source="h25"))
    token = customer_token(sb)
    day = _substituted_day("residential3", date(2026, 10, 2))
    sb.clock.set(
        datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN) + timedelta(hours=17)
    )
    prelim = _usage(sb, token, day.isoformat())["data"]
    sb.clock.set(datetime(day.year, 12, 1, 12, 0, tzinfo=UTC))
    final = _usage(sb, token, day.isoformat())["data"]
    assert {d["type"] for d in prelim} == {"preliminary"}
    assert {d["type"] for d in final} == {"final"}
    want = day_usage_kwh(day, annual_kwh=4000.0).to_numpy()
    assert np.allclose([d["usage"] for d in prelim], want, atol=1e-4)
    assert [d["usage"] for d in prelim] == [d["usage"] for d in final]


def test_sandbox_cli_chooses_the_usage_source() -> None:
    assert build_parser().parse_args(["sandbox"]).usage == "meters"
    assert build_parser().parse_args(["sandbox", "--usage", "h25"]).usage == "h25"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--usage", "h0"])


@pytest.mark.parametrize("household", ["residential1", "residential3"])
@pytest.mark.parametrize(("year", "month"), [(2025, 10), (2026, 3), (2026, 6)])
def test_a_month_total_is_the_sum_of_its_served_quarter_hours(
    household: str, year: int, month: int
) -> None:
    # invoices take a shortcut through whole-day totals: it must give the served sum,
    # DST months (a 25- and a 23-hour day) included
    day, served = date(year, month, 1), 0.0
    while day.month == month:
        served += float(meter_day_usage_kwh(household, day, final=True).sum())
        day += timedelta(days=1)
    assert meter_month_usage_kwh(household, year, month) == pytest.approx(served, rel=1e-12)
