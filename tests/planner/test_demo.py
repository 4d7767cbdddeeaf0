"""``wattplan demo`` tells the story on the customer's own meter.

The demo runs once (module fixture) against the sandbox; what it prints and stores is
checked against figures recomputed here from the sandbox's meter data directly (not
through the HTTP API or the Nomos client): the year of usage it fetched, yesterday's
forecast against the meter (energy, MAE, MASE, coverage) and that every plan's base
load is the forecast's mean (the expected energy). :func:`check_forecast` is also
checked on the 23- and 25-hour days with synthetic usage.
"""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from wattplan.forecast import forecast_base_load
from wattplan.planner._demo import DEMO_START, HISTORY_DAYS, check_forecast, run_demo
from wattplan.planner.store import PlanStore
from wattplan.sandbox._data import eighth_working_day, meter_day_usage_kwh

BERLIN = ZoneInfo("Europe/Berlin")
HOUSEHOLD = "residential3"  # the demo customer's meter in the sandbox
TODAY = DEMO_START.date()
YESTERDAY = TODAY - timedelta(days=1)


def _meter_history() -> pd.Series:
    """The year the demo fetches, from the sandbox's meter data and publication rule."""
    parts = []
    day = TODAY - timedelta(days=HISTORY_DAYS)
    while day < TODAY:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        final = eighth_working_day(following.year, following.month) <= TODAY
        parts.append(meter_day_usage_kwh(HOUSEHOLD, day, final=final))
        day += timedelta(days=1)
    return _as_served(pd.concat(parts))


def _as_served(kwh: pd.Series) -> pd.Series:
    """The usage endpoint sends kWh to 4 decimals."""
    return kwh.map(lambda v: round(float(v), 4))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    assert run_demo(workdir=folder, out=out) == 0
    return out.getvalue(), folder


@pytest.fixture(scope="module")
def history() -> pd.Series:
    return _meter_history()


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return float(found.group(1).replace(",", ""))


def test_a_year_of_usage_is_fetched_with_the_grant(
    demo: tuple[str, Path], history: pd.Series
) -> None:
    out, _ = demo
    assert "fetching a year of her metered usage with her grant" in out
    # 365 days with the 23-hour day of 2025-03-30 and the 25-hour day of 2025-10-26
    assert len(history) == 365 * 96
    assert _number(r"([\d,]+) quarter-hours, Mon 20 Jan 2025 to Mon 19 Jan 2026", out) == len(
        history
    )
    assert _number(r"Mon 19 Jan 2026: ([\d,]+) kWh", out) == round(history.sum())
    preliminary = _number(r"([\d,]+) preliminary values", out)
    assert preliminary == 19 * 96  # January 2026 is not final before its 8th working day


def test_yesterdays_forecast_beside_the_meter(demo: tuple[str, Path], history: pd.Series) -> None:
    out, folder = demo
    table = pd.read_csv(folder / "wattplan-demo-forecast.csv", index_col=0)
    metered = _as_served(meter_day_usage_kwh(HOUSEHOLD, YESTERDAY, final=False)).to_numpy()
    assert len(table) == 96
    np.testing.assert_allclose(table["metered_kwh"].to_numpy(), metered)
    # the forecast for yesterday saw only the usage published when yesterday's plan was
    # made: up to the end of the day before the day before yesterday
    lo = pd.Timestamp(YESTERDAY - timedelta(days=1)).tz_localize(BERLIN)
    own = forecast_base_load(history[history.index < lo], YESTERDAY, TODAY).kwh["kwh_p50"]
    np.testing.assert_allclose(table["kwh_p50"].to_numpy(), own.to_numpy())
    week_before = _as_served(
        meter_day_usage_kwh(HOUSEHOLD, YESTERDAY - timedelta(days=7), final=False)
    )
    p50 = own.to_numpy()
    mae = float(np.mean(np.abs(p50 - metered)))
    mase = mae / float(np.mean(np.abs(week_before.to_numpy() - metered)))
    inside = (metered >= table["kwh_p10"].to_numpy()) & (metered <= table["kwh_p90"].to_numpy())
    assert _number(r"MAE\s+([\d.]+) kWh per quarter-hour", out) == pytest.approx(mae, abs=5e-4)
    assert _number(r"MASE\s+([\d.]+)", out) == pytest.approx(mase, abs=5e-3)
    assert _number(r"coverage\s+(\d+) %", out) == round(inside.mean() * 100)
    assert _number(r"forecast ([\d.]+) kWh, metered", out) == pytest.approx(p50.sum(), abs=5e-3)
    assert _number(r"metered ([\d.]+) kWh \(", out) == pytest.approx(metered.sum(), abs=5e-3)
    assert (folder / "wattplan-demo-forecast.png").stat().st_size > 10_000


def test_every_plan_is_made_on_the_forecast_mean(
    demo: tuple[str, Path], history: pd.Series
) -> None:
    _, folder = demo
    mean = forecast_base_load(history, TODAY, TODAY + timedelta(days=3)).kwh["kwh_mean"]
    expected_kw = pd.Series(
        mean.to_numpy() * 4, index=pd.DatetimeIndex(mean.index).tz_convert("UTC")
    )
    store = PlanStore(f"sqlite:///{folder / 'wattplan-demo.sqlite3'}")
    try:
        plans = store.plan_history("demo")
    finally:
        store.dispose()
    assert [p.reason for p in reversed(plans)] == ["initial", "device_state", "horizon_grew"]
    for plan in plans:
        rows = plan.document["schedule"]
        starts = pd.DatetimeIndex([datetime.fromisoformat(r["start"]) for r in rows]).tz_convert(
            "UTC"
        )
        planned = np.array([r["base_load_kw"] for r in rows])
        assert len(rows) >= 40
        np.testing.assert_allclose(planned, expected_kw.reindex(starts).to_numpy(), atol=1e-4)
        # not the H25 profile the demo planned on before: her own forecast
        assert planned.std() > 0.05


def test_the_devices_are_the_demo_households(demo: tuple[str, Path]) -> None:
    _, folder = demo
    store = PlanStore(f"sqlite:///{folder / 'wattplan-demo.sqlite3'}")
    try:
        first = store.plan_history("demo")[-1]
    finally:
        store.dispose()
    names = {d["name"] for d in first.document["devices"]}
    assert {"car", "home-battery", "heat-pump"} <= names
    assert any(n.startswith("dishwasher-") for n in names)
    # PV from the typical year's weather still feeds the plan
    assert max(r["pv_available_kw"] for r in first.document["schedule"]) > 0.1


# -- check_forecast on synthetic usage, 23- and 25-hour days ------------------------------


def _synthetic(first: date, last: date) -> pd.Series:
    """Quarter-hourly kWh over local days [first, last], varied and reproducible."""
    lo = pd.Timestamp(first).tz_localize(BERLIN)
    hi = pd.Timestamp(last + timedelta(days=1)).tz_localize(BERLIN)
    index = pd.date_range(lo, hi, freq="15min", inclusive="left").tz_convert("UTC")
    rng = np.random.default_rng(7)
    local = index.tz_convert(BERLIN)
    daily = 0.1 + 0.08 * np.sin((local.hour * 60 + local.minute) / 1440 * 2 * math.pi)
    return pd.Series(daily + rng.uniform(0, 0.1, len(index)), index=index)


def _by_hand(history: pd.Series, day: date, p50: np.ndarray) -> tuple[float, float, int]:
    """MAE, MASE and slot count, the naive value looked up by local wall-clock time."""
    lo = datetime.combine(day, datetime.min.time(), BERLIN)
    hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN)
    stamps = pd.date_range(lo, hi, freq="15min", inclusive="left")
    errors, naive_errors = [], []
    for k, ts in enumerate(stamps):
        wall = ts.tz_convert(BERLIN).to_pydatetime().replace(tzinfo=None) - timedelta(days=7)
        earlier = pd.Timestamp(wall).tz_localize(BERLIN, ambiguous=True, nonexistent="NaT")
        actual = float(history[ts.tz_convert("UTC")])
        errors.append(abs(p50[k] - actual))
        if earlier is not pd.NaT:
            naive_errors.append((abs(float(history[earlier.tz_convert("UTC")]) - actual), k))
    kept = {k for _, k in naive_errors}
    mae = float(np.mean([e for k, e in enumerate(errors) if k in kept]))
    scale = float(np.mean([e for e, _ in naive_errors]))
    return mae, mae / scale, len(stamps)


@pytest.mark.parametrize(
    ("day", "slots"),
    [
        (date(2025, 10, 26), 100),  # 25 hours
        (date(2026, 3, 29), 92),  # 23 hours
        (date(2025, 11, 2), 96),  # a week after the 25-hour day
        (date(2026, 4, 5), 96),  # a week after the 23-hour day: 02:00-03:00 has no naive value
    ],
)
def test_check_forecast_on_dst_days(day: date, slots: int) -> None:
    history = _synthetic(day - timedelta(days=40), day)
    check = check_forecast(history, day)
    assert len(check.frame) == slots
    mae, mase, count = _by_hand(history, day, check.frame["kwh_p50"].to_numpy())
    assert count == slots
    assert check.mae_kwh == pytest.approx(mae)
    assert check.mase == pytest.approx(mase)
    day_lo = pd.Timestamp(day).tz_localize(BERLIN)
    day_hi = pd.Timestamp(day + timedelta(days=1)).tz_localize(BERLIN)
    metered = history[(history.index >= day_lo) & (history.index < day_hi)]
    assert check.metered_kwh == pytest.approx(metered.sum())
    assert check.history_until == day - timedelta(days=2)
    # the forecast saw neither the day nor the day before (not published when the plan for
    # the day was made): changing them changes nothing in it
    changed = history.copy()
    before_lo = pd.Timestamp(day - timedelta(days=1)).tz_localize(BERLIN)
    changed[(changed.index >= before_lo) & (changed.index < day_hi)] *= 5
    np.testing.assert_allclose(
        check_forecast(changed, day).frame["kwh_p50"], check.frame["kwh_p50"]
    )
    inside = (metered.to_numpy() >= check.frame["kwh_p10"].to_numpy()) & (
        metered.to_numpy() <= check.frame["kwh_p90"].to_numpy()
    )
    assert check.coverage == pytest.approx(inside.mean())
