"""PV forecast from the site's geometry and a weather forecast, with pvlib.

The model chain is pvlib's, step by step: solar position at the middle of each slot,
diffuse and direct irradiance from the global one where the weather lacks them (Erbs),
transposition onto the module plane (Perez), cell temperature (Faiman), PVWatts DC
power reduced by the site's losses, and the PVWatts inverter. It works on the weather's
own (UTC-based) index, so 23- and 25-hour days need nothing special.

A site's own metered PV corrects it (:func:`fit_pv_correction`): per hour of mean solar
time, the median of measured over modelled energy on hours with enough light, shrunk
towards 1 when there are few such hours and clipped to [0, 1.5]. Shading by a tree in the
afternoon or an orientation declared wrongly show up as factors far from 1 in some hours.
The spread of measured over corrected energy on those hours gives P10 and P90; without a
correction they are a fixed band (see ``DEFAULT_BAND``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wattplan._extras import requires
from wattplan.exceptions import ForecastInputError

if TYPE_CHECKING:
    from wattplan.weather import WeatherSource

__all__ = [
    "DEFAULT_BAND",
    "PVCorrection",
    "PVForecast",
    "PVSite",
    "fit_pv_correction",
    "forecast_pv",
]

# P10 and P90 as multiples of P50 when no metered history says better. An assumption,
# not a measurement: day-ahead irradiance forecasts err by tens of percent on cloudy days.
DEFAULT_BAND = (0.5, 1.2)
COLUMNS = ("kw_p10", "kw_p50", "kw_p90")

# a slot counts for the correction when the model gives at least this share of kWp ...
_MIN_MODELLED_SHARE = 0.05
# ... and the sky is at least this clear (global over clear-sky global irradiance)
_MIN_CLEARNESS = 0.5
# shrinkage: a bin with n usable hours keeps n / (n + _PRIOR_HOURS) of its deviation from 1
_PRIOR_HOURS = 5.0
_FACTOR_LIMITS = (0.0, 1.5)
_DEFAULT_TEMP_AIR_C = 12.0
_DEFAULT_WIND_M_S = 1.0

_ALIASES = {
    "ghi_w_m2": ("ghi_w_m2", "ghi"),
    "dni_w_m2": ("dni_w_m2", "dni"),
    "dhi_w_m2": ("dhi_w_m2", "dhi"),
    "temp_air_c": ("temp_air_c", "temp_air"),
    "wind_speed_m_s": ("wind_speed_m_s", "wind_speed"),
}


class PVSite(BaseModel):
    """A PV system: where it is, how big, how it faces.

    ``azimuth_deg`` is the compass direction the modules face (180 = south, 90 = east);
    ``tilt_deg`` their angle from horizontal; ``losses`` the DC losses as a fraction
    (soiling, wiring, mismatch, reflection, ageing: PVWatts' default is 0.14).
    ``inverter_kw`` is the inverter's AC rating (default: ``kwp``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    kwp: float = Field(gt=0, le=10_000)
    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, le=360)
    losses: float = Field(default=0.14, ge=0, lt=1)
    inverter_kw: float | None = Field(default=None, gt=0, le=10_000)


@dataclass(frozen=True)
class PVCorrection:
    """Multiplicative factors learned from a site's metered PV.

    ``factors`` (index 0–23, the hour of mean solar time) multiply the modelled power;
    ``hours`` says how many usable hours stand behind each factor. ``band`` is (P10, P90)
    of measured over corrected energy on the usable hours, the band of
    :func:`forecast_pv`; ``error_before`` and ``error_after`` the mean absolute error of
    the model on those hours without and with the factors, relative to the mean measured
    energy.
    """

    factors: pd.Series
    hours: pd.Series
    band: tuple[float, float]
    error_before: float
    error_after: float


@dataclass(frozen=True)
class PVForecast:
    """PV power per slot (mean kW), with the uncorrected model next to it.

    ``kw`` has the columns ``kw_p10``, ``kw_p50`` and ``kw_p90`` and the slot starts in
    the weather's time zone as index; ``modelled_kw`` is pvlib's output before any
    correction; ``kwh`` is ``kw`` as energy per slot (columns ``kwh_p10`` …).
    """

    kw: pd.DataFrame
    modelled_kw: pd.Series
    resolution_minutes: int
    correction: PVCorrection | None

    @property
    def kwh(self) -> pd.DataFrame:
        out = self.kw * (self.resolution_minutes / 60)
        out.columns = [c.replace("kw_", "kwh_") for c in COLUMNS]
        return out


def _site(site: PVSite | dict[str, Any]) -> PVSite:
    if isinstance(site, PVSite):
        return site
    if not isinstance(site, dict):
        raise ForecastInputError("site", f"must be a PVSite or a dict, got {type(site).__name__}")
    try:
        return PVSite.model_validate(site)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "site"
        raise ForecastInputError(f"site.{key}", first["msg"]) from None


def _index(data: pd.Series | pd.DataFrame, name: str) -> pd.DatetimeIndex:
    index = data.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ForecastInputError(name, "the index must be a DatetimeIndex of interval starts")
    if index.tz is None:
        raise ForecastInputError(name, "the index is naive: timestamps need a time zone")
    if index.has_duplicates:
        raise ForecastInputError(name, f"duplicate time {index[index.duplicated()][0].isoformat()}")
    if not index.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(index.as_unit("ns").asi8) < 0)) + 1
        raise ForecastInputError(name, f"not sorted: {index[bad].isoformat()} comes too late")
    return index


def _step_minutes(index: pd.DatetimeIndex, name: str) -> int:
    """The index's step: the shortest gap between rows; longer ones must be multiples."""
    if len(index) < 2:
        raise ForecastInputError(name, "needs at least two rows to know its resolution")
    gaps = np.unique(np.diff(index.as_unit("ns").asi8)) // 60_000_000_000
    step = int(gaps[0])
    if step <= 0 or (60 % step and step % 60) or (gaps % step).any():
        raise ForecastInputError(
            name, f"needs a regular step of whole minutes, found steps of {gaps[:5]} minutes"
        )
    return step


def _weather(weather: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The weather's columns under their canonical names, checked."""
    if not isinstance(weather, pd.DataFrame):
        raise ForecastInputError(
            "weather", f"must be a pandas DataFrame, got {type(weather).__name__}"
        )
    index = _index(weather, "weather")
    step = _step_minutes(index, "weather")
    out = pd.DataFrame(index=index)
    for column, names in _ALIASES.items():
        found = next((n for n in names if n in weather.columns), None)
        if found is None:
            continue
        try:
            values = pd.to_numeric(weather[found], errors="raise").astype(float)
        except (ValueError, TypeError) as exc:
            raise ForecastInputError(found, f"values must be numbers ({exc})") from exc
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            raise ForecastInputError(found, f"missing or infinite at {index[bad][0].isoformat()}")
        if column.endswith("w_m2") or column == "wind_speed_m_s":
            if (values < -1).any():
                at = index[(values < -1).to_numpy()][0]
                raise ForecastInputError(found, f"negative at {at.isoformat()}")
            values = values.clip(lower=0.0)
        out[column] = values
    if "ghi_w_m2" not in out:
        raise ForecastInputError("ghi_w_m2", "the weather needs global horizontal irradiance")
    return out, step


def _on_grid(weather: pd.DataFrame, step: int, resolution: int) -> pd.DataFrame:
    """The weather on the finer of its own and the requested grid (means carry over)."""
    if resolution >= step:
        return weather
    if step % resolution:
        raise ForecastInputError(
            "resolution_minutes", f"must divide the weather's {step}-minute step"
        )
    k = step // resolution
    offsets = np.tile(np.arange(k) * resolution * 60_000_000_000, len(weather))
    stamps = np.repeat(pd.DatetimeIndex(weather.index).as_unit("ns").asi8, k) + offsets
    fine = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True), name=weather.index.name)
    fine = fine.tz_convert(pd.DatetimeIndex(weather.index).tz)
    return weather.reindex(fine, method="ffill")  # each slot's mean repeats within it


def _model_kw(site: PVSite, weather: pd.DataFrame, step: int) -> tuple[pd.Series, pd.Series]:
    """pvlib's AC power (kW mean per slot) and the clearness of each slot."""
    # imported here: pvlib is heavy, and only this function needs it
    with requires("forecast", feature="forecast_pv"):
        import pvlib

    with warnings.catch_warnings():
        # pvlib 0.16 still calls DatetimeIndex.dayofyear, deprecated by pandas 3
        warnings.filterwarnings("ignore", message=".*dayofyear.*")
        return _model_chain(pvlib, site, weather, step)


def _model_chain(
    pvlib: Any, site: PVSite, weather: pd.DataFrame, step: int
) -> tuple[pd.Series, pd.Series]:

    middle = pd.DatetimeIndex(weather.index + pd.Timedelta(minutes=step / 2))
    solpos = pvlib.solarposition.get_solarposition(middle, site.latitude, site.longitude)
    zenith = solpos["apparent_zenith"].to_numpy()
    ghi = weather["ghi_w_m2"].to_numpy()
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(middle))
    if "dhi_w_m2" in weather and "dni_w_m2" in weather:
        dhi, dni = weather["dhi_w_m2"].to_numpy(), weather["dni_w_m2"].to_numpy()
    elif "dhi_w_m2" in weather:
        dhi = weather["dhi_w_m2"].to_numpy()
        cos_zenith = np.cos(np.radians(solpos["zenith"].to_numpy()))
        with np.errstate(divide="ignore", invalid="ignore"):
            dni = np.where(cos_zenith > 0.065, (ghi - dhi) / cos_zenith, 0.0)  # sun > ~3.7°
        dni = np.clip(dni, 0.0, dni_extra)
    else:
        parts = pvlib.irradiance.erbs(ghi, solpos["zenith"].to_numpy(), middle)
        dni, dhi = np.asarray(parts["dni"]), np.asarray(parts["dhi"])
    airmass = pvlib.atmosphere.get_relative_airmass(zenith)
    poa = pvlib.irradiance.get_total_irradiance(
        site.tilt_deg, site.azimuth_deg, zenith, solpos["azimuth"].to_numpy(),
        dni, ghi, dhi, dni_extra=dni_extra, airmass=airmass, model="perez",
    )  # fmt: skip
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float)).clip(min=0.0)
    poa_global[solpos["zenith"].to_numpy() >= 90] = 0.0  # no sun, no power, whatever the data
    temp_air = weather.get("temp_air_c", pd.Series(_DEFAULT_TEMP_AIR_C, weather.index))
    wind = weather.get("wind_speed_m_s", pd.Series(_DEFAULT_WIND_M_S, weather.index))
    temp_cell = pvlib.temperature.faiman(poa_global, temp_air.to_numpy(), wind.to_numpy())
    dc_w = pvlib.pvsystem.pvwatts_dc(poa_global, temp_cell, site.kwp * 1000.0, -0.004)
    dc_w = np.asarray(dc_w) * (1.0 - site.losses)
    eta = 0.96
    ac_w = pvlib.inverter.pvwatts(dc_w, (site.inverter_kw or site.kwp) * 1000.0 / eta, eta)
    ac_kw = pd.Series(np.clip(np.asarray(ac_w, dtype=float), 0.0, None) / 1000.0, weather.index)
    clear = pvlib.clearsky.haurwitz(solpos["apparent_zenith"])["ghi"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        clearness = pd.Series(np.where(clear > 10, ghi / clear, 0.0), weather.index)
    return ac_kw, clearness


def _solar_hour(index: pd.DatetimeIndex, step: int, longitude: float) -> np.ndarray:
    """Hour (0–23) of mean solar time at the middle of each slot."""
    middle = index.tz_convert("UTC") + pd.Timedelta(minutes=step / 2)
    hours = middle.hour + middle.minute / 60 + longitude / 15
    return np.floor(np.mod(hours, 24)).astype(int)


def _resample(kw: pd.Series, step: int, resolution: int) -> pd.Series:
    if resolution <= step:
        return kw
    if resolution % step:
        raise ForecastInputError(
            "resolution_minutes", f"must be a multiple of the weather's {step}-minute step"
        )
    tz = pd.DatetimeIndex(kw.index).tz
    utc = kw.tz_convert("UTC")
    out = utc.resample(f"{resolution}min").mean().dropna()  # no slot made up in a gap
    return out.tz_convert(tz)


def forecast_pv(
    site: PVSite | dict[str, Any],
    weather: pd.DataFrame | WeatherSource,
    *,
    start: datetime | pd.Timestamp | str | None = None,
    end: datetime | pd.Timestamp | str | None = None,
    correction: PVCorrection | None = None,
    resolution_minutes: int | None = None,
) -> PVForecast:
    """PV AC power (mean kW) per slot of the weather's index, with P10/P50/P90.

    ``weather`` has a tz-aware index of slot starts at a regular step (gaps allowed) and
    the slot means
    ``ghi_w_m2`` (required), ``dni_w_m2`` and ``dhi_w_m2`` (derived from the global
    irradiance when missing), ``temp_air_c`` (12 °C when missing) and ``wind_speed_m_s``
    (1 m/s); pvlib's short names (``ghi``, ``temp_air`` …) work too. The shipped
    ``wattplan.datasets.read_weather`` returns such a frame. ``resolution_minutes``
    resamples the output (finer: the weather's slot means repeat; coarser: means).
    ``correction`` from :func:`fit_pv_correction` applies a site's learned factors and
    its measured spread; without it P10 and P90 are ``DEFAULT_BAND`` times P50.

    ``weather`` may also be a :class:`wattplan.weather.WeatherSource` (Open-Meteo, the
    shipped typical year, one falling back to the other): it is asked for the window
    ``[start, end)``, which is then required. With ``start`` and ``end`` the result covers
    exactly that window.
    """
    checked = _site(site)
    table: Any = weather
    if not isinstance(weather, pd.DataFrame) and hasattr(weather, "get_weather"):
        if start is None or end is None:
            missing = "start" if start is None else "end"
            raise ForecastInputError(missing, "required when the weather is a WeatherSource")
        table = weather.get_weather(start=start, end=end)
    frame, step = _weather(table)
    resolution = step if resolution_minutes is None else resolution_minutes
    if not isinstance(resolution, int) or resolution <= 0 or 1440 % resolution:
        raise ForecastInputError(
            "resolution_minutes",
            f"must be a whole number of minutes dividing a day, got {resolution}",
        )
    frame = _on_grid(frame, step, resolution)
    fine = min(step, resolution)
    modelled, _ = _model_kw(checked, frame, fine)
    p50 = modelled
    low, high = DEFAULT_BAND
    if correction is not None:
        hours = _solar_hour(pd.DatetimeIndex(modelled.index), fine, checked.longitude)
        p50 = modelled * correction.factors.reindex(range(24), fill_value=1.0).to_numpy()[hours]
        low, high = correction.band
    kw = pd.DataFrame({"kw_p10": p50 * low, "kw_p50": p50, "kw_p90": p50 * high})
    kw = pd.DataFrame({c: _resample(kw[c], fine, resolution) for c in COLUMNS})
    kw.index.name = "start"
    out_modelled = _resample(modelled, fine, resolution).rename("kw")
    out_modelled.index.name = "start"
    if start is not None or end is not None:
        inside = _inside(pd.DatetimeIndex(kw.index), start, end)
        kw, out_modelled = kw[inside], out_modelled[inside]
    return PVForecast(kw, out_modelled, resolution, correction)


def _inside(
    index: pd.DatetimeIndex,
    start: datetime | pd.Timestamp | str | None,
    end: datetime | pd.Timestamp | str | None,
) -> np.ndarray:
    keep = np.ones(len(index), dtype=bool)
    for key, bound in (("start", start), ("end", end)):
        if bound is None:
            continue
        ts = pd.Timestamp(bound)
        if ts.tzinfo is None:
            raise ForecastInputError(key, "naive time: give a time zone (UTC offset)")
        keep &= (index >= ts) if key == "start" else (index < ts)
    return keep


def fit_pv_correction(
    site: PVSite | dict[str, Any],
    weather: pd.DataFrame,
    measured: pd.Series,
) -> PVCorrection:
    """Learn per-solar-hour factors from a site's metered PV (kWh per interval).

    ``weather`` must cover the metered period (the weather that was, not a forecast).
    Both are summed to whole UTC hours; an hour counts when the model gives at least 5 %
    of kWp, the sky is at least half as bright as a clear one (Haurwitz) and the meter
    has a value. Per hour of mean solar time the factor is the median of measured over
    modelled energy, shrunk towards 1 as n / (n + 5) for n usable hours, and clipped to
    [0, 1.5]; solar rather than clock time, so that summer and winter time share a bin.
    """
    checked = _site(site)
    if not isinstance(measured, pd.Series):
        raise ForecastInputError(
            "measured", f"must be a pandas Series, got {type(measured).__name__}"
        )
    index = _index(measured, "measured")
    try:
        values = pd.to_numeric(measured, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise ForecastInputError("measured", f"values must be numbers ({exc})") from exc
    if (values.dropna() < 0).any():
        at = values.index[(values < 0).to_numpy()][0]
        raise ForecastInputError("measured", f"negative energy at {at.isoformat()}")
    if len(index) < 2:
        raise ForecastInputError("measured", "needs at least two rows")
    m_step = int(np.diff(index.as_unit("ns").asi8).min() // 60_000_000_000)
    if m_step <= 0 or 60 % m_step:
        raise ForecastInputError(
            "measured", f"interval must divide an hour, found {m_step} minutes"
        )
    frame, step = _weather(weather)
    modelled, clearness = _model_kw(checked, frame, step)

    def hourly(series: pd.Series, minutes: int, energy: bool) -> pd.Series:
        per_hour = 60 // minutes if minutes < 60 else 1
        utc = series.tz_convert("UTC")
        grouped = utc.resample("1h")
        total = grouped.sum(min_count=per_hour) if energy else grouped.mean()
        return total if minutes <= 60 else total.dropna()

    model_kwh = hourly(modelled * (step / 60), step, energy=True)
    clear = hourly(clearness, step, energy=False)
    meter_kwh = hourly(values, m_step, energy=True)
    joined = pd.DataFrame({"model": model_kwh, "clear": clear, "meter": meter_kwh}).dropna()
    usable = joined[
        (joined["model"] >= _MIN_MODELLED_SHARE * checked.kwp) & (joined["clear"] >= _MIN_CLEARNESS)
    ]
    if usable.empty:
        raise ForecastInputError(
            "measured", "no hour with metered PV, enough modelled output and a clear sky"
        )
    bins = _solar_hour(pd.DatetimeIndex(usable.index), 60, checked.longitude)
    ratio = usable["meter"] / usable["model"]
    grouped = ratio.groupby(bins)
    n = grouped.size().reindex(range(24), fill_value=0)
    median = grouped.median().reindex(range(24), fill_value=1.0)
    weight = n / (n + _PRIOR_HOURS)
    factors = (1.0 + (median - 1.0) * weight).clip(*_FACTOR_LIMITS)
    factors.index.name = n.index.name = "solar_hour"
    corrected = usable["model"] * factors.to_numpy()[bins]
    residual = usable["meter"] / corrected.where(corrected > 0)
    p10, p90 = np.nanpercentile(residual.to_numpy(), [10, 90])
    p10, p90 = min(p10, 1.0), max(p90, 1.0)  # keep P10 <= P50 <= P90
    mean = float(usable["meter"].mean())
    scale = mean if mean > 0 else math.nan
    before = float((usable["meter"] - usable["model"]).abs().mean()) / scale
    after = float((usable["meter"] - corrected).abs().mean()) / scale
    return PVCorrection(
        factors.rename("factor"), n.rename("hours"), (float(p10), float(p90)), before, after
    )
