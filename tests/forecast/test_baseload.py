"""The base-load forecast: wall-clock slots, gaps, holidays, devices, cold start, input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattplan.exceptions import ForecastInputError
from wattplan.forecast import day_ahead_base_load, forecast_base_load

BERLIN = "Europe/Berlin"


def wall_clock_kw(index: pd.DatetimeIndex) -> np.ndarray:
    """Every day alike: the mean kW rises linearly with the local wall-clock time."""
    local = index.tz_convert(BERLIN)
    return np.asarray((1.0 + local.hour + local.minute / 60.0) / 100.0)


def wall_clock_history(start: str, end: str, minutes: int = 15) -> pd.Series:
    index = pd.date_range(
        pd.Timestamp(start, tz=BERLIN), pd.Timestamp(end, tz=BERLIN), freq=f"{minutes}min",
        inclusive="left",
    )  # fmt: skip
    return pd.Series(wall_clock_kw(index) * minutes / 60, index=index.tz_convert("UTC"))


def assert_wall_clock_profile(kwh: pd.DataFrame, minutes: int) -> None:
    """P50 is the wall-clock profile (the pool is symmetric away from midnight)."""
    inner = (kwh.index.hour >= 1) & (kwh.index.hour < 23)
    expected = wall_clock_kw(pd.DatetimeIndex(kwh.index)) * minutes / 60
    np.testing.assert_allclose(kwh["kwh_p50"][inner], expected[inner])
    np.testing.assert_allclose(kwh["kwh_p50"], expected, atol=0.01 * minutes / 60)


def test_spring_forward_day_has_23_hours_and_keeps_the_wall_clock_profile() -> None:
    history = wall_clock_history("2026-01-01", "2026-03-28")
    kwh = forecast_base_load(history, "2026-03-29", "2026-03-30").kwh
    assert len(kwh) == 92
    assert not (kwh.index.hour == 2).any()
    assert_wall_clock_profile(kwh, 15)
    assert str(kwh.index[8]) == "2026-03-29 03:00:00+02:00"
    assert kwh["kwh_p50"].iloc[8] == pytest.approx(0.04 / 4)


def test_fall_back_day_has_25_hours_and_both_two_oclocks_get_that_hour() -> None:
    history = wall_clock_history("2026-08-01", "2026-10-24", minutes=60)
    kwh = forecast_base_load(history, "2026-10-25", "2026-10-26").kwh
    assert len(kwh) == 25
    twos = kwh[kwh.index.hour == 2]
    assert [t.utcoffset() for t in twos.index] == [pd.Timedelta(hours=2), pd.Timedelta(hours=1)]
    np.testing.assert_allclose(twos["kwh_p50"], 0.03)
    assert_wall_clock_profile(kwh, 60)


def test_a_history_over_a_25_hour_day_averages_the_repeated_hour() -> None:
    index = pd.date_range("2026-10-01", "2026-10-30", freq="h", tz=BERLIN, inclusive="left")
    values = pd.Series(0.5, index=index.tz_convert("UTC"))
    forecast = forecast_base_load(values, "2026-10-30", "2026-10-31")
    np.testing.assert_allclose(forecast.kwh["kwh_p50"], 0.5)


def test_gaps_missing_rows_and_nan_do_not_disturb_the_profile() -> None:
    history = wall_clock_history("2026-01-01", "2026-03-01")
    holed = history.drop(history.index[500:1500])  # about ten days of missing rows
    holed.iloc[3000:3100] = np.nan  # and a day of unknown values
    holed = holed.drop(holed.index[-96 * 3 :])  # the last three days not metered yet
    kwh = forecast_base_load(holed, "2026-03-02", "2026-03-03").kwh
    assert_wall_clock_profile(kwh, 15)
    assert kwh.notna().all().all()


def test_each_day_is_forecast_only_from_what_was_published_the_day_before() -> None:
    history = wall_clock_history("2026-01-01", "2026-02-01", minutes=60)
    history *= np.random.default_rng(5).gamma(4.0, 0.25, len(history))  # every day differs
    base = day_ahead_base_load(history, "2026-01-25", "2026-01-27").kwh
    day_before = history.copy()
    day_before[day_before.index >= pd.Timestamp("2026-01-25", tz=BERLIN)] = 5.0
    assert day_ahead_base_load(day_before, "2026-01-25", "2026-01-27").kwh.equals(base)
    two_before = history.copy()
    two_before[(two_before.index >= pd.Timestamp("2026-01-10", tz=BERLIN))] = 5.0
    changed = day_ahead_base_load(two_before, "2026-01-25", "2026-01-27").kwh
    assert (changed.loc["2026-01-25"]["kwh_p50"] == 5.0).all()  # D-2 (23rd) was published
    for day in ("2026-01-25", "2026-01-26"):
        published = history[history.index < pd.Timestamp(day, tz=BERLIN) - pd.Timedelta(days=1)]
        alone = forecast_base_load(published, day, pd.Timestamp(day) + pd.Timedelta(days=1))
        pd.testing.assert_frame_equal(alone.kwh, base.loc[day])


def test_public_holidays_are_forecast_like_sundays() -> None:
    index = pd.date_range("2026-10-01", "2026-12-24", freq="h", tz=BERLIN, inclusive="left")
    sunday = index.day_of_week == 6
    history = pd.Series(np.where(sunday, 1.0, 0.2), index=index.tz_convert("UTC"))
    christmas = forecast_base_load(history, "2026-12-25", "2026-12-26").kwh  # a Friday
    np.testing.assert_allclose(christmas["kwh_p50"], 1.0)
    friday = forecast_base_load(history, "2026-12-18", "2026-12-19").kwh
    np.testing.assert_allclose(friday["kwh_p50"], 0.2)


def test_quantiles_are_ordered_and_cover_the_spread() -> None:
    rng = np.random.default_rng(11)
    index = pd.date_range("2026-01-01", "2026-05-01", freq="15min", tz="UTC", inclusive="left")
    history = pd.Series(rng.gamma(2.0, 0.05, len(index)), index=index)
    kwh = day_ahead_base_load(history, "2026-03-01", "2026-05-01").kwh
    assert (kwh["kwh_p10"] <= kwh["kwh_p50"]).all()
    assert (kwh["kwh_p50"] <= kwh["kwh_p90"]).all()
    assert (kwh["kwh_p10"] < kwh["kwh_p90"]).all()
    actual = history.reindex(kwh.index)
    inside = ((actual >= kwh["kwh_p10"]) & (actual <= kwh["kwh_p90"])).mean()
    assert 0.7 <= inside <= 0.9


def test_preliminary_values_from_nomos_are_used_as_they_are() -> None:
    history = wall_clock_history("2026-01-01", "2026-03-01")
    frame = pd.DataFrame({"usage_kwh": history, "type": "final"})
    recent = frame.index >= pd.Timestamp("2026-02-15", tz=BERLIN)
    frame.loc[recent, "usage_kwh"] = 1.0
    frame.loc[recent, "type"] = "preliminary"
    forecast = forecast_base_load(frame, "2026-03-02", "2026-03-03")
    as_series = forecast_base_load(frame["usage_kwh"], "2026-03-02", "2026-03-03")
    pd.testing.assert_frame_equal(forecast.kwh, as_series.kwh)
    np.testing.assert_allclose(forecast.kwh["kwh_p50"], 1.0)  # the preliminary level


def test_controlled_devices_are_subtracted_and_negative_residues_reported() -> None:
    history = wall_clock_history("2026-01-01", "2026-02-01", minutes=60)
    car = pd.Series(0.0, index=history.index)
    local_hour = history.index.tz_convert(BERLIN).hour
    nights = (local_hour >= 1) & (local_hour <= 3)  # metered 0.02, 0.03, 0.04 kWh
    car[nights] = 0.5  # the car's own readings run ahead of the house meter
    car[local_hour == 5] = 0.01  # 0.06 - 0.01 = 0.05
    forecast = forecast_base_load(history, "2026-02-01", "2026-02-02", controlled=car)
    assert forecast.negative_residue_slots == nights.sum() == 93
    assert forecast.negative_residue_kwh == pytest.approx(31 * (0.48 + 0.47 + 0.46))
    p50 = forecast.kwh["kwh_p50"]
    hours = p50.index.hour
    assert p50[hours == 5].iloc[0] == pytest.approx(0.05)
    assert p50[hours == 2].iloc[0] == 0.0  # clipped residues count as zero, not negative
    # 00:00 pools itself (0.01) with 01:00 (clipped to 0): the median lies between them
    assert p50[hours == 0].iloc[0] == pytest.approx(0.005)
    assert (forecast.kwh >= 0).all().all()
    plain = forecast_base_load(history, "2026-02-01", "2026-02-02")
    assert plain.negative_residue_slots == 0 and plain.negative_residue_kwh == 0.0


def test_cold_start_without_history_scales_h25_to_the_annual_energy() -> None:
    empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    year = forecast_base_load(empty, "2026-01-01", "2027-01-01", annual_kwh=3000.0)
    assert year.resolution_minutes == 15
    assert len(year.kwh) == 365 * 96
    assert year.standard_profile_slots == len(year.kwh)
    assert year.annual_kwh == 3000.0
    # P50 is a median, below the mean profile; the mean is the H25 profile itself
    p50_total = year.kwh["kwh_p50"].sum()
    assert 0.75 * 3000 < p50_total < 0.95 * 3000
    assert (year.kwh["kwh_p90"] > year.kwh["kwh_p50"]).all()
    with pytest.raises(ForecastInputError, match="annual_kwh"):
        forecast_base_load(empty, "2026-01-01", "2026-01-02")


def test_cold_start_with_two_days_estimates_the_annual_energy() -> None:
    history = wall_clock_history("2026-01-05", "2026-01-07", minutes=60)  # 3 kWh a day
    forecast = forecast_base_load(history, "2026-01-07", "2026-01-08")
    assert forecast.standard_profile_slots == 24
    assert forecast.annual_kwh is not None
    assert 600 < forecast.annual_kwh < 1400  # about 3 kWh a day, winter being above average
    longer = wall_clock_history("2025-12-01", "2026-01-07", minutes=60)
    assert forecast_base_load(longer, "2026-01-07", "2026-01-08").standard_profile_slots == 0


def naive_history() -> pd.Series:
    return pd.Series([0.1, 0.2], index=pd.date_range("2026-01-01", periods=2, freq="h"))


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (naive_history(), "history: the index is naive"),
        (
            pd.Series(
                [0.1, 0.2],
                index=pd.DatetimeIndex(["2026-01-01T01:00Z", "2026-01-01T00:00Z"]),
            ),
            "history: not sorted: 2026-01-01T00:00:00",
        ),
        (
            pd.Series(
                [0.1, 0.2, 0.3],
                index=pd.DatetimeIndex(
                    ["2026-01-01T00:00Z", "2026-01-01T01:00Z"] * 1 + ["2026-01-01T01:00Z"]
                ),
            ),
            "history: duplicate time 2026-01-01T01:00:00",
        ),
        (
            pd.Series(
                [0.1, -0.2], index=pd.date_range("2026-01-01", periods=2, freq="h", tz="UTC")
            ),
            "history: negative energy at 2026-01-01T01:00:00",
        ),
        (
            pd.Series(
                [0.1, 0.2], index=pd.date_range("2026-01-01", periods=2, freq="30min", tz="UTC")
            ),
            "history: interval must be 15 or 60 minutes, found steps of 30",
        ),
    ],
)
def test_bad_history_is_rejected_with_the_problem_named(history: pd.Series, message: str) -> None:
    with pytest.raises(ForecastInputError, match=message):
        forecast_base_load(history, "2026-01-02", "2026-01-03", annual_kwh=3000)


def test_bad_window_and_options_are_named() -> None:
    history = wall_clock_history("2026-01-01", "2026-01-10", minutes=60)
    with pytest.raises(ForecastInputError, match=r"^end: must be after start"):
        forecast_base_load(history, "2026-01-12", "2026-01-11")
    with pytest.raises(ForecastInputError, match=r"^start: a time of day needs a UTC offset"):
        forecast_base_load(history, "2026-01-12T06:00", "2026-01-13")
    with pytest.raises(ForecastInputError, match=r"^start: start and end must be on the 60"):
        forecast_base_load(history, "2026-01-12T06:15+01:00", "2026-01-13")
    with pytest.raises(ForecastInputError, match=r"^timezone: unknown time zone"):
        forecast_base_load(history, "2026-01-12", "2026-01-13", timezone="Mars/Olympus")
    with pytest.raises(ForecastInputError, match=r"^annual_kwh: must be a positive number"):
        forecast_base_load(history, "2026-01-12", "2026-01-13", annual_kwh=-1.0)


def test_a_day_pooled_twice_still_counts_as_one_day_of_history() -> None:
    # two Mondays only: each is a recent day and a same-type day, but they are two days
    index = pd.date_range("2026-01-05", "2026-01-13", freq="h", tz=BERLIN, inclusive="left")
    history = pd.Series(0.3, index=index.tz_convert("UTC"))
    history[(index.day_of_week != 0)] = np.nan
    forecast = forecast_base_load(history, "2026-01-19", "2026-01-20")  # a Monday
    assert forecast.standard_profile_slots == 24
    three = forecast_base_load(
        pd.concat([history, pd.Series(0.3, index=history.index + pd.Timedelta(weeks=2))]),
        "2026-01-26",
        "2026-01-27",
    )
    assert three.standard_profile_slots == 0


def test_the_mean_is_the_pools_mean_and_exceeds_a_skewed_median() -> None:
    # one level per day, every fifth day ten times higher (a spiky, right-skewed load)
    days = pd.date_range("2026-01-05", "2026-02-25", freq="D", tz=BERLIN, inclusive="left")
    level = {d.date(): (1.0 if i % 5 == 0 else 0.1) for i, d in enumerate(days)}
    index = pd.date_range(days[0], days[-1] + pd.Timedelta(days=1), freq="60min",
                          inclusive="left")  # fmt: skip
    history = pd.Series([level[t.date()] for t in index], index=index.tz_convert("UTC"))
    target = pd.Timestamp("2026-02-25", tz=BERLIN)  # a Wednesday, no holiday around it
    kwh = forecast_base_load(history, target.date(), (target + pd.Timedelta(days=1)).date()).kwh
    # the pool by hand: the last six Wednesdays and the working days of the last 14 days
    # (a Wednesday in both counts twice); away from midnight each day adds the same number
    # of neighbouring slots, all at its level
    same = [target - pd.Timedelta(weeks=w) for w in range(1, 7)]
    recent = [target - pd.Timedelta(days=n) for n in range(1, 15)]
    pool = [level[d.date()] for d in same] + [level[d.date()] for d in recent if d.weekday() < 5]
    inner = (kwh.index.hour >= 1) & (kwh.index.hour < 23)
    np.testing.assert_allclose(kwh["kwh_mean"][inner], np.mean(pool))
    np.testing.assert_allclose(kwh["kwh_p50"][inner], np.median(pool))
    assert np.mean(pool) > np.median(pool) + 0.05
    assert (kwh["kwh_mean"] >= 0).all()


def test_the_cold_start_mean_is_the_scaled_standard_profile() -> None:
    empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    year = forecast_base_load(empty, "2026-01-01", "2027-01-01", annual_kwh=3000.0)
    assert year.kwh["kwh_mean"].sum() == pytest.approx(3000.0, rel=0.01)
    np.testing.assert_allclose(year.kwh["kwh_p50"], 0.8 * year.kwh["kwh_mean"])
