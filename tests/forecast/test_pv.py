"""PV forecast: pvlib model chain, DST days, learned correction, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import wattplan
from wattplan import datasets
from wattplan.exceptions import ForecastInputError

POTSDAM = {"latitude": 52.39, "longitude": 13.06}


def _site(**kw: float) -> wattplan.PVSite:
    return wattplan.PVSite(**{**POTSDAM, "kwp": 10.0, **kw})


def _day(date: str, ghi: float, temp: float = 25.0) -> pd.DataFrame:
    """Constant irradiance from 06:00 to 18:00 UTC, dark otherwise."""
    index = pd.date_range(date, periods=24, freq="h", tz="UTC")
    light = (index.hour >= 6) & (index.hour < 18)
    return pd.DataFrame({"ghi_w_m2": np.where(light, ghi, 0.0), "temp_air_c": temp}, index)


def _typical(start: str, end: str, tz: str = "UTC") -> pd.DataFrame:
    return datasets.read_weather(start, end).tz_convert(tz)


def test_noon_output_of_a_flat_array_is_kwp_times_irradiance_after_losses() -> None:
    # a flat array receives exactly the global horizontal irradiance, whatever the split
    weather = _day("2026-06-21", ghi=800.0)
    out = wattplan.forecast_pv(_site(tilt_deg=0, losses=0.14), weather)
    noon = out.kw.loc["2026-06-21 11:00", "kw_p50"]
    expected = 10.0 * 800 / 1000 * (1 - 0.14)
    # what remains is the inverter (~96 %) and a warm cell (~50 °C: about -10 %)
    assert 0.80 * expected < noon < 0.97 * expected
    night = out.kw[weather["ghi_w_m2"] == 0]
    assert (night.to_numpy() == 0).all()


def test_no_sun_no_power_even_if_the_data_says_light() -> None:
    index = pd.date_range("2026-12-21 20:00", periods=6, freq="h", tz="UTC")
    weather = pd.DataFrame({"ghi_w_m2": 800.0}, index)
    # a vertical array would see light reflected from the ground
    out = wattplan.forecast_pv(_site(tilt_deg=90), weather)
    assert (out.kw.to_numpy() == 0).all()


def test_a_south_tilted_array_beats_a_north_tilted_one_in_winter() -> None:
    weather = _typical("2026-01-10", "2026-01-20")
    south = wattplan.forecast_pv(_site(tilt_deg=35, azimuth_deg=180), weather).kw.kw_p50.sum()
    north = wattplan.forecast_pv(_site(tilt_deg=35, azimuth_deg=0), weather).kw.kw_p50.sum()
    assert south > 1.5 * north > 0


def test_close_to_the_shipped_pvlib_series_for_the_same_geometry() -> None:
    weather = _typical("2026-05-01", "2026-06-01")
    out = wattplan.forecast_pv(_site(kwp=1.0, tilt_deg=35, azimuth_deg=180), weather)
    shipped = weather["pv_south35_kw_per_kwp"]
    assert abs(out.kw.kw_p50.sum() / shipped.sum() - 1) < 0.15


def test_quantiles_are_ordered_and_kwh_is_energy_per_slot() -> None:
    out = wattplan.forecast_pv(_site(), _typical("2026-04-01", "2026-04-03"), resolution_minutes=15)
    kw = out.kw.to_numpy()
    assert (kw[:, 0] <= kw[:, 1]).all() and (kw[:, 1] <= kw[:, 2]).all()
    assert list(out.kwh.columns) == ["kwh_p10", "kwh_p50", "kwh_p90"]
    assert np.allclose(out.kwh.to_numpy(), kw / 4)


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)])
def test_dst_days_have_their_length_and_stay_aligned(day: str, hours: int) -> None:
    berlin = _typical(day, "2026-12-31", "Europe/Berlin").loc[day]
    assert len(berlin) == hours
    site = _site(tilt_deg=30)
    local = wattplan.forecast_pv(site, berlin)
    assert len(local.kw) == hours
    assert str(local.kw.index.tz) == "Europe/Berlin"
    assert local.kw.index.equals(berlin.index)
    # the same instants computed on a UTC index give the same power
    utc = wattplan.forecast_pv(site, berlin.tz_convert("UTC"))
    assert np.allclose(utc.kw.to_numpy(), local.kw.to_numpy())
    quarter = wattplan.forecast_pv(site, berlin, resolution_minutes=15)
    assert len(quarter.kw) == 4 * hours
    assert quarter.kw.index[0] == pd.Timestamp(day, tz="Europe/Berlin")
    # quarter-hours of an hour average to (almost) that hour: only the sun moves
    hourly = quarter.kw.kw_p50.tz_convert("UTC").resample("1h").mean().tz_convert("Europe/Berlin")
    assert np.allclose(hourly.to_numpy(), local.kw.kw_p50.to_numpy(), atol=0.05 * site.kwp)
    assert quarter.kw.kw_p50.sum() > 0


def _mae(a: pd.Series, b: pd.Series) -> float:
    return float(np.mean(np.abs(a.to_numpy() - b.to_numpy())))


def test_learned_correction_repairs_a_misdeclared_azimuth() -> None:
    weather = _typical("2026-04-01", "2026-07-01")
    declared = _site(tilt_deg=35, azimuth_deg=180)
    # the array really faces south-west: the meter shows that model's output
    truth = wattplan.forecast_pv(_site(tilt_deg=35, azimuth_deg=240), weather).modelled_kw
    train, test = slice("2026-04-01", "2026-05-31"), slice("2026-06-01", "2026-06-30")
    correction = wattplan.fit_pv_correction(declared, weather.loc[train], truth.loc[train])
    assert correction.factors.loc[8] < 0.9 < 1.1 < correction.factors.loc[16]
    plain = wattplan.forecast_pv(declared, weather.loc[test])
    fixed = wattplan.forecast_pv(declared, weather.loc[test], correction=correction)
    before = _mae(plain.kw.kw_p50, truth.loc[test])
    after = _mae(fixed.kw.kw_p50, truth.loc[test])
    assert after < 0.5 * before
    assert correction.error_after < correction.error_before


def test_learned_correction_finds_afternoon_shading() -> None:
    weather = _typical("2026-04-01", "2026-07-01")
    site = _site(tilt_deg=35, azimuth_deg=180)
    model = wattplan.forecast_pv(site, weather).modelled_kw
    # a tree shades the array after 14:00 solar time (UTC + 13.06° / 15° per hour)
    solar = (model.index.hour + 0.5 + 13.06 / 15) % 24
    measured = model * np.where(solar >= 14, 0.4, 1.0)
    train, test = slice("2026-04-01", "2026-05-31"), slice("2026-06-01", "2026-06-30")
    correction = wattplan.fit_pv_correction(site, weather.loc[train], measured.loc[train])
    # shrunk towards 1: n usable hours keep n / (n + 5) of the deviation
    n = correction.hours.loc[15]
    assert n > 20
    assert correction.factors.loc[15] == pytest.approx(1 - 0.6 * n / (n + 5))
    assert correction.factors.loc[10] == pytest.approx(1.0, abs=0.02)
    plain = wattplan.forecast_pv(site, weather.loc[test])
    fixed = wattplan.forecast_pv(site, weather.loc[test], correction=correction)
    before = _mae(plain.kw.kw_p50, measured.loc[test])
    after = _mae(fixed.kw.kw_p50, measured.loc[test])
    assert after < 0.2 * before


def test_few_hours_are_shrunk_towards_one_and_the_band_follows_the_spread() -> None:
    weather = _typical("2026-06-01", "2026-06-04")
    site = _site()
    model = wattplan.forecast_pv(site, weather).modelled_kw
    rng = np.random.default_rng(3)
    measured = model * 0.5 * rng.uniform(0.8, 1.2, len(model))
    correction = wattplan.fit_pv_correction(site, weather, measured)
    used = correction.hours > 0
    assert used.any() and (correction.hours[used] < 5).all()
    # with n hours a bin keeps n / (n + 5) of its deviation: never all the way to 0.5
    assert (correction.factors[used] > 0.6).all()
    assert (correction.factors[~used] == 1.0).all()
    low, high = correction.band
    assert low <= 1.0 <= high
    out = wattplan.forecast_pv(site, weather, correction=correction)
    assert np.allclose(out.kw.kw_p90, out.kw.kw_p50 * high)


def test_bad_site_names_the_key() -> None:
    weather = _day("2026-06-21", 500.0)
    with pytest.raises(ForecastInputError, match=r"site\.kwp") as info:
        wattplan.forecast_pv({**POTSDAM, "kwp": 0}, weather)
    assert info.value.key == "site.kwp"
    with pytest.raises(ForecastInputError, match=r"site\.latitude"):
        wattplan.forecast_pv({"latitude": 95, "longitude": 13, "kwp": 5}, weather)
    with pytest.raises(ForecastInputError, match=r"site\.tilt"):
        wattplan.forecast_pv({**POTSDAM, "kwp": 5, "tilt": 30}, weather)  # unknown key
    with pytest.raises(ValidationError, match="kwp"):
        wattplan.PVSite(**POTSDAM, kwp=-1)


def test_bad_weather_names_the_column_or_index() -> None:
    site = _site()
    weather = _day("2026-06-21", 500.0)
    with pytest.raises(ForecastInputError, match="naive") as info:
        wattplan.forecast_pv(site, weather.tz_localize(None))
    assert info.value.key == "weather"
    with pytest.raises(ForecastInputError) as info:
        wattplan.forecast_pv(site, weather.rename(columns={"ghi_w_m2": "irradiance"}))
    assert info.value.key == "ghi_w_m2"
    holes = weather.copy()
    holes.iloc[10, 0] = np.nan
    with pytest.raises(ForecastInputError, match="2026-06-21T10:00:00") as info:
        wattplan.forecast_pv(site, holes)
    assert info.value.key == "ghi_w_m2"
    with pytest.raises(ForecastInputError) as info:
        wattplan.forecast_pv(
            site,
            weather.set_axis(
                weather.index.insert(5, weather.index[4] + pd.Timedelta(minutes=7))[:24]
            ),
        )
    assert info.value.key == "weather"
    with pytest.raises(ForecastInputError) as info:
        wattplan.forecast_pv(site, weather, resolution_minutes=7)
    assert info.value.key == "resolution_minutes"


def test_pvlib_short_names_are_accepted() -> None:
    weather = _day("2026-06-21", 500.0)
    short = weather.rename(columns={"ghi_w_m2": "ghi", "temp_air_c": "temp_air"})
    a = wattplan.forecast_pv(_site(), weather).kw
    b = wattplan.forecast_pv(_site(), short).kw
    assert np.allclose(a.to_numpy(), b.to_numpy())


def test_measured_history_is_checked() -> None:
    weather = _day("2026-06-21", 500.0)
    site = _site()
    with pytest.raises(ForecastInputError, match="naive") as info:
        wattplan.fit_pv_correction(site, weather, pd.Series(1.0, weather.index.tz_localize(None)))
    assert info.value.key == "measured"
    with pytest.raises(ForecastInputError, match="negative") as info:
        wattplan.fit_pv_correction(site, weather, pd.Series(-1.0, weather.index))
    with pytest.raises(ForecastInputError, match="no hour") as info:
        wattplan.fit_pv_correction(site, weather, pd.Series(np.nan, weather.index))


def test_given_direct_and_diffuse_irradiance_are_used_as_they_are() -> None:
    import pvlib

    weather = _day("2026-06-21", 600.0)
    middle = weather.index + pd.Timedelta(minutes=30)
    zenith = pvlib.solarposition.get_solarposition(middle, **POTSDAM)["zenith"]
    parts = pvlib.irradiance.erbs(weather["ghi_w_m2"].to_numpy(), zenith.to_numpy(), middle)
    full = weather.assign(dni_w_m2=np.asarray(parts["dni"]), dhi_w_m2=np.asarray(parts["dhi"]))
    site = _site(tilt_deg=35)
    decomposed = wattplan.forecast_pv(site, weather).kw.kw_p50
    given = wattplan.forecast_pv(site, full).kw.kw_p50
    assert np.allclose(decomposed.to_numpy(), given.to_numpy(), atol=1e-6)
    # and they matter: all of it diffuse gives less on a south-tilted array at noon
    diffuse = wattplan.forecast_pv(site, full.assign(dni_w_m2=0.0, dhi_w_m2=600.0)).kw.kw_p50
    assert diffuse.loc["2026-06-21 11:00"] < 0.9 * given.loc["2026-06-21 11:00"]


def test_weather_with_gaps_gives_slots_only_where_there_is_weather() -> None:
    weather = _typical("2026-06-01", "2026-06-03")
    holey = weather.drop(weather.index[30:40])
    site = _site()
    whole = wattplan.forecast_pv(site, weather, resolution_minutes=15).kw.kw_p50
    out = wattplan.forecast_pv(site, holey, resolution_minutes=15).kw.kw_p50
    assert len(out) == 4 * len(holey)
    assert out.index.isin(whole.index).all()
    assert np.allclose(out.to_numpy(), whole.loc[out.index].to_numpy())
