"""Base-load forecasts on five real households: rolling day-ahead MASE and P10–P90 coverage.

Each local day D is forecast from the usage before local midnight of D−1 (the usage of
D−1 is not published when the plan for D is made), over each household's whole file after
five weeks of warm-up. Compared on the same hours (measured, ``quality == ok``, and with a
measured value 7 days earlier):

* **naive**: the same wall-clock slot 7 days earlier (the MASE denominator);
* **4-week mean** (anchor): mean of the same weekday and slot over the last 4 weeks;
* **H25 scaled** (anchor): the BDEW H25 profile scaled to the trailing year's energy;
* **shipped**: ``wattplan.forecast.day_ahead_base_load`` (pooled median profile);
* **cold start**: what it gives without enough history: the scaled H25 profile times
  fixed factors for P10/P50/P90 (printed at the end with what they were measured from);
* **MSTL** (with ``--library``, if statsforecast is installed): statsforecast's MSTL
  (daily and weekly seasons, AutoETS trend) fitted on the last 4 weeks before each cut,
  gaps filled with the value a week earlier, its 80 % interval as P10–P90. It takes
  minutes per forecast year, so it runs on every ``--every``-th day only (5: the weekday
  rotates) and is compared with the shipped method on those days' hours. statsforecast
  2.1 requires pandas < 3 and wattplan runs on pandas 3, so it is not a dependency: run
  ``--library`` in a separate environment with statsforecast and wattplan's requirements.

MASE is the mean absolute error of a method divided by that of the naive forecast on the
same hours; coverage is the share of hours inside [P10, P90].

Data: Open Power System Data. 2020. Data Package Household Data. Version 2020-04-15.
https://doi.org/10.25832/household_data/2020-04-15 (primary data: the CoSSMic project,
ISC Konstanz), CC BY 4.0. The five files live in ``shared/data/households/opsd/`` beside
the repository; pass ``--data`` to point elsewhere.

Run: ``.venv/bin/python benchmarks/forecast.py [--data DIR] [--library]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wattplan.forecast import day_ahead_base_load
from wattplan.forecast._baseload import _STANDARD_FACTORS

BERLIN = "Europe/Berlin"
HOUSEHOLDS = ("residential1", "residential2", "residential3", "residential5", "residential6")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "households" / "opsd"
WARM_UP_DAYS = 35


def read_household(path: Path) -> pd.Series:
    """``base_kwh`` per hour where ``quality == ok`` (NaN elsewhere), UTC index."""
    frame = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("start"), utc=True), name="start")
    base = frame["base_kwh"].where(frame["quality"] == "ok")
    return pd.Series(base.to_numpy(dtype=float), index=index, name="base_kwh")


def wall_clock_matrix(series: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Local days × wall-clock hours (the repeated hour of a 25-hour day averaged)."""
    local = pd.DatetimeIndex(series.index).tz_convert(BERLIN)
    frame = pd.DataFrame(
        {"v": series.to_numpy(), "day": local.tz_localize(None).normalize(), "h": local.hour}
    )
    matrix = frame.pivot_table(index="day", columns="h", values="v", aggfunc="mean", dropna=False)
    days = pd.date_range(matrix.index[0], matrix.index[-1], freq="D")
    matrix = matrix.reindex(index=days, columns=range(24))
    return pd.DatetimeIndex(days), matrix.to_numpy(dtype=float)


def weekly_lookup(series: pd.Series, slots: pd.DatetimeIndex, weeks: tuple[int, ...]) -> np.ndarray:
    """Mean of the same wall-clock slot ``weeks`` weeks before each of ``slots`` (NaN-aware)."""
    days, matrix = wall_clock_matrix(series)
    local = slots.tz_convert(BERLIN)
    day = np.asarray((local.tz_localize(None).normalize() - days[0]).days)
    hour = np.asarray(local.hour)
    values = np.full((len(weeks), len(slots)), np.nan)
    for i, w in enumerate(weeks):
        row = day - 7 * w
        ok = (row >= 0) & (row < len(days))
        values[i, ok] = matrix[row[ok], hour[ok]]
    with np.errstate(all="ignore"):
        count = (~np.isnan(values)).sum(axis=0)
        total = np.nansum(values, axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mase(forecast: np.ndarray, actual: np.ndarray, naive: np.ndarray) -> float:
    """Mean absolute error of ``forecast`` over that of ``naive`` (same hours)."""
    return float(np.abs(forecast - actual).sum() / np.abs(naive - actual).sum())


def coverage(low: np.ndarray, high: np.ndarray, actual: np.ndarray) -> float:
    """Share of ``actual`` inside [low, high]."""
    return float(((actual >= low) & (actual <= high)).mean())


def mstl_day_ahead(series: pd.Series, days: pd.DatetimeIndex) -> pd.DataFrame:
    """statsforecast MSTL per local day, fitted on the 4 weeks before midnight of D−1."""
    from statsforecast.models import MSTL, AutoETS

    rows = []
    hourly = series.asfreq("h")
    filled = hourly.fillna(hourly.shift(168)).fillna(hourly.mean())
    for day in days:
        cut = (day - pd.Timedelta(days=1)).tz_convert("UTC")
        train = filled[(filled.index < cut) & (filled.index >= cut - pd.Timedelta(days=28))]
        target = pd.date_range(day, day + pd.Timedelta(days=1), freq="h", inclusive="left")
        horizon = int((target[-1].tz_convert("UTC") - cut) / pd.Timedelta(hours=1)) + 1
        model = MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN"))
        out = model.forecast(y=train.to_numpy(dtype=float), h=horizon, level=[80])
        steps = pd.date_range(cut, periods=horizon, freq="h")
        frame = pd.DataFrame(
            {"kwh_p10": out["lo-80"], "kwh_p50": out["mean"], "kwh_p90": out["hi-80"]},
            index=steps,
        )
        rows.append(frame.loc[target.tz_convert("UTC")].clip(lower=0.0))
    return pd.concat(rows)


@dataclass
class Result:
    household: str
    hours: int
    mase: dict[str, float]
    coverage: dict[str, float]
    seconds_per_year: dict[str, float]
    library: dict[str, tuple[float, float]]  # method: (MASE, coverage) on the library's days
    library_hours: int
    standard_ratio: np.ndarray  # actual over the scaled H25 profile, per evaluated hour


def evaluate(series: pd.Series, name: str, *, library_every: int) -> Result:
    local = pd.DatetimeIndex(series.index).tz_convert(BERLIN)
    start = local[0].normalize() + pd.Timedelta(days=WARM_UP_DAYS)
    start = start.tz_localize(None).tz_localize(BERLIN)
    end = local[-1].tz_localize(None).normalize().tz_localize(BERLIN)
    days = (end - start).days
    forecasts: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    forecasts["shipped"] = day_ahead_base_load(series, start, end).kwh
    seconds["shipped"] = (time.perf_counter() - t0) * 365 / days
    standard = day_ahead_base_load(series, start, end, method="standard").kwh
    forecasts["cold start"] = standard
    h25 = standard["kwh_p50"] / _STANDARD_FACTORS[1]
    forecasts["H25 scaled"] = pd.DataFrame({"kwh_p10": h25, "kwh_p50": h25, "kwh_p90": h25})
    slots = pd.DatetimeIndex(forecasts["shipped"].index)
    four = weekly_lookup(series, slots, (1, 2, 3, 4))
    forecasts["4-week mean"] = pd.DataFrame(
        {"kwh_p10": four, "kwh_p50": four, "kwh_p90": four}, index=slots
    )
    library = None
    if library_every:
        some = pd.date_range(start, end, freq="D", inclusive="left")[::library_every]
        t0 = time.perf_counter()
        library = mstl_day_ahead(series, pd.DatetimeIndex(some))
        seconds["MSTL"] = (time.perf_counter() - t0) * 365 / len(some)
        library = library.reindex(slots.tz_convert("UTC")).set_axis(slots)

    actual = series.reindex(slots.tz_convert("UTC")).to_numpy()
    naive = weekly_lookup(series, slots, (1,))
    mask = ~np.isnan(actual) & ~np.isnan(naive)
    for frame in forecasts.values():
        mask &= frame["kwh_p50"].notna().to_numpy()
    ratio = (actual / h25.to_numpy())[mask]
    result = Result(name, int(mask.sum()), {}, {}, seconds, {}, 0, ratio)
    for method, frame in forecasts.items():
        p = {c: frame[c].to_numpy()[mask] for c in ("kwh_p10", "kwh_p50", "kwh_p90")}
        result.mase[method] = mase(p["kwh_p50"], actual[mask], naive[mask])
        if method in ("shipped", "cold start", "MSTL"):
            result.coverage[method] = coverage(p["kwh_p10"], p["kwh_p90"], actual[mask])
    if library is not None:
        some_mask = mask & library["kwh_p50"].notna().to_numpy()
        result.library_hours = int(some_mask.sum())
        for method, frame in (("shipped", forecasts["shipped"]), ("MSTL", library)):
            p = {c: frame[c].to_numpy()[some_mask] for c in ("kwh_p10", "kwh_p50", "kwh_p90")}
            a = actual[some_mask]
            result.library[method] = (
                mase(p["kwh_p50"], a, naive[some_mask]),
                coverage(p["kwh_p10"], p["kwh_p90"], a),
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the OPSD files")
    parser.add_argument(
        "--library", action="store_true", help="also run statsforecast's MSTL (slow)"
    )
    parser.add_argument(
        "--every", type=int, default=5, metavar="N", help="MSTL on every N-th day (default 5)"
    )
    args = parser.parse_args()
    if args.library:
        try:
            import statsforecast  # noqa: F401
        except ImportError:
            print("statsforecast is not installed: MSTL left out")
            args.library = False
    results = []
    for name in HOUSEHOLDS:
        series = read_household(args.data / f"opsd_{name}_60min.csv.gz")
        results.append(evaluate(series, name, library_every=args.every if args.library else 0))
        print(f"{name}: {results[-1].hours} hours evaluated", flush=True)
    methods = list(results[0].mase)
    width = 14
    print("\nMASE (vs same slot 7 days earlier; lower is better)")
    print(f"{'':<14}" + "".join(f"{m:>{width}}" for m in methods))
    for r in results:
        print(f"{r.household:<14}" + "".join(f"{r.mase[m]:>{width}.3f}" for m in methods))
    means = {m: float(np.mean([r.mase[m] for r in results])) for m in methods}
    print(f"{'mean':<14}" + "".join(f"{means[m]:>{width}.3f}" for m in methods))
    interval = list(results[0].coverage)
    print("\nP10–P90 coverage (share of hours inside; aim 70–90 %)")
    print(f"{'':<14}" + "".join(f"{m:>{width}}" for m in interval))
    for r in results:
        print(f"{r.household:<14}" + "".join(f"{r.coverage[m]:>{width}.1%}" for m in interval))
    mean_cov = {m: float(np.mean([r.coverage[m] for r in results])) for m in interval}
    print(f"{'mean':<14}" + "".join(f"{mean_cov[m]:>{width}.1%}" for m in interval))
    print("\nseconds per forecast year of rolling days (one process)")
    for m in results[0].seconds_per_year:
        figures = ", ".join(f"{r.seconds_per_year[m]:.1f}" for r in results)
        print(f"  {m}: {figures}")
    if args.library:
        print(f"\nstatsforecast MSTL against the shipped method on every {args.every}th day")
        print(
            f"{'':<14}{'hours':>8}"
            + "".join(f"{m + ' MASE':>14}{'cov':>7}" for m in ("shipped", "MSTL"))
        )
        for r in results:
            cells = "".join(
                f"{r.library[m][0]:>14.3f}{r.library[m][1]:>7.1%}" for m in ("shipped", "MSTL")
            )
            print(f"{r.household:<14}{r.library_hours:>8}" + cells)
        cells = "".join(
            f"{np.mean([r.library[m][0] for r in results]):>14.3f}"
            f"{np.mean([r.library[m][1] for r in results]):>7.1%}"
            for m in ("shipped", "MSTL")
        )
        print(f"{'mean':<14}{'':>8}" + cells)
    ratio = np.concatenate([r.standard_ratio for r in results])
    ratio = ratio[np.isfinite(ratio)]
    q = np.percentile(ratio, [10, 50, 90])
    print(
        "\ncold start: measured / scaled H25, all households: "
        f"P10 {q[0]:.2f}, P50 {q[1]:.2f}, P90 {q[2]:.2f} "
        f"(the shipped factors: {', '.join(f'{f:.2f}' for f in _STANDARD_FACTORS)})"
    )


if __name__ == "__main__":
    main()
