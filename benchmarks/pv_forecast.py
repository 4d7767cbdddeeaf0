"""PV forecast on three real households with a PV meter: pvlib alone and with the correction.

For each household with a PV meter (residential1, 3 and 6 of the OPSD files, Konstanz) the
declared site is a guess a customer could make: Konstanz, south, 30° tilt, 14 % losses and
a kWp of the file's mean annual PV energy / 1000 kWh per kWp. The weather is the shipped
typical year (DWD test reference year, **Potsdam**) mapped onto the household's dates by
month, day and hour. It is not the real weather of those days, nor of that place: hour by
hour the model is far off, and what this measures is how much of the *systematic* error
(orientation, size, shading, climate) the correction takes out, not how good a forecast
with a real weather forecast would be.

The correction is fitted on the even ISO weeks and evaluated on the odd ones (held-out
days across all seasons), and once more fitted on the first year and evaluated on the rest.
Error: mean absolute error per hour relative to the mean measured PV of the evaluated hours
(measured hours, ``quality == ok``), and the same for daily energy. Coverage: share of
hours with measured PV inside [P10, P90] among hours where the model expects PV.

Data: Open Power System Data. 2020. Data Package Household Data. Version 2020-04-15.
https://doi.org/10.25832/household_data/2020-04-15 (primary data: the CoSSMic project,
ISC Konstanz), CC BY 4.0. The files live in ``shared/data/households/opsd/`` beside the
repository; pass ``--data`` to point elsewhere.

Run: ``.venv/bin/python benchmarks/pv_forecast.py [--data DIR]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from wattplan import datasets
from wattplan.forecast import PVSite, fit_pv_correction, forecast_pv

HOUSEHOLDS = ("residential1", "residential3", "residential6")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "households" / "opsd"
KONSTANZ = {"latitude": 47.66, "longitude": 9.18}
KWH_PER_KWP = 1000.0


def read_pv(path: Path) -> pd.Series:
    """``pv_kwh`` per hour where ``quality == ok`` (NaN elsewhere), UTC index."""
    frame = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("start"), utc=True), name="start")
    pv = frame["pv_kwh"].where(frame["quality"] == "ok")
    return pd.Series(pv.to_numpy(dtype=float), index=index, name="pv_kwh")


def errors(measured: pd.Series, forecast: pd.Series) -> tuple[float, float]:
    """Hourly and daily MAE relative to the mean measured value, on measured hours only."""
    both = pd.DataFrame({"m": measured, "f": forecast}).dropna()
    hourly = float((both.m - both.f).abs().mean() / both.m.mean())
    daily = both.tz_convert("Europe/Berlin").resample("D").sum(min_count=20).dropna()
    return hourly, float((daily.m - daily.f).abs().mean() / daily.m.mean())


def coverage(measured: pd.Series, kw: pd.DataFrame) -> float:
    both = kw.assign(m=measured).dropna()
    both = both[both.kw_p50 > 0.05 * both.kw_p50.max()]
    inside = (both.m >= both.kw_p10) & (both.m <= both.kw_p90)
    return float(inside.mean())


def evaluate(
    site: PVSite, weather: pd.DataFrame, pv: pd.Series, train: np.ndarray
) -> dict[str, float]:
    correction = fit_pv_correction(site, weather[train], pv[train])
    test = ~train
    plain = forecast_pv(site, weather[test])
    fixed = forecast_pv(site, weather[test], correction=correction)
    before = errors(pv[test], plain.kw.kw_p50)
    after = errors(pv[test], fixed.kw.kw_p50)
    return {
        "hourly_before": before[0], "hourly_after": after[0],
        "daily_before": before[1], "daily_after": after[1],
        "coverage_fixed_band": coverage(pv[test], plain.kw),
        "coverage_learned_band": coverage(pv[test], fixed.kw),
        "band_low": correction.band[0], "band_high": correction.band[1],
        "factor_min": float(correction.factors[correction.hours > 0].min()),
        "factor_max": float(correction.factors[correction.hours > 0].max()),
        "test_hours": float(pv[test].notna().sum()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the OPSD files")
    args = parser.parse_args()
    print("typical-year weather (Potsdam), not the real weather of these days: see the docstring")
    header = (
        f"{'household':<13}{'split':<11}{'kWp':>6}{'hours':>7}{'hourly MAE/mean':>20}"
        f"{'daily MAE/mean':>20}{'P10-P90 cover':>19}{'factors':>13}"
    )
    print(header)
    for name in HOUSEHOLDS:
        t0 = time.perf_counter()
        pv = read_pv(args.data / f"opsd_{name}_60min.csv.gz")
        years = len(pv) / 8766
        site = PVSite(**KONSTANZ, kwp=round(pv.sum() / years / KWH_PER_KWP, 1), tilt_deg=30)
        weather = datasets.read_weather(pv.index[0], pv.index[-1] + pd.Timedelta(hours=1))
        weeks = np.asarray(pv.index.tz_convert("Europe/Berlin").isocalendar().week)
        splits = {
            "even/odd": weeks % 2 == 0,
            "year/rest": np.asarray(pv.index < pv.index[0] + pd.Timedelta(days=365)),
        }
        for split, train in splits.items():
            r = evaluate(site, weather, pv, train)
            print(
                f"{name:<13}{split:<11}{site.kwp:>6.1f}{r['test_hours']:>7.0f}"
                f"{r['hourly_before']:>10.3f} → {r['hourly_after']:.3f}"
                f"{r['daily_before']:>10.3f} → {r['daily_after']:.3f}"
                f"{r['coverage_fixed_band']:>10.1%} → {r['coverage_learned_band']:.1%}"
                f"   {r['factor_min']:.2f}–{r['factor_max']:.2f}"
            )
        print(f"{'':<13}({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
