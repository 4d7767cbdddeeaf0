"""Derive the compact household meter files shipped in ``src/wattplan/data/``.

Input: the five OPSD / CoSSMic households (hourly, UTC, one CSV per household; see that
folder's README). Output per household: ``meter_<name>_60min.csv.gz`` with ``start`` (UTC,
ISO 8601) and ``import_kwh``: what the household's smart meter would have drawn from the
grid in each hour, devices included. residential1's heat pump has its own meter in the
source; a Nomos customer's meter sees it, so its energy is added to the import.

Each file holds 52 whole weeks (364 local days, Monday to Sunday): of all such windows
the one with the most fully measured (``quality == ok``) days, the latest on a tie.
Imputed hours keep OPSD's values (the meter series must stay continuous).

Usage::

    python tools/household_meters.py SOURCE_DIR [OUT_DIR]

Data: Open Power System Data. 2020. Data Package Household Data. Version 2020-04-15.
https://doi.org/10.25832/household_data/2020-04-15 (primary data: the CoSSMic project,
ISC Konstanz), CC BY 4.0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HOUSEHOLDS = ("residential1", "residential2", "residential3", "residential5", "residential6")
BERLIN = "Europe/Berlin"
WEEKS = 52


def whole_house_import(frame: pd.DataFrame) -> pd.Series:
    """Grid import plus the devices metered separately in the source (the heat pump)."""
    kwh = frame["grid_import_kwh"].astype(float)
    if "heat_pump_kwh" in frame:
        kwh = kwh + frame["heat_pump_kwh"].astype(float)
    return kwh.clip(lower=0.0)


def best_window(frame: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Local midnights [first Monday, +52 weeks) with the most fully measured days."""
    local = pd.DatetimeIndex(frame.index).tz_convert(BERLIN)
    ok_day = (frame["quality"] == "ok").groupby(local.normalize()).all()
    days = pd.DatetimeIndex(ok_day.index)
    mondays = days[(days.day_of_week == 0)]
    best: tuple[int, pd.Timestamp] | None = None
    for monday in mondays:
        end = monday + pd.DateOffset(weeks=WEEKS)
        if end > days[-1] + pd.Timedelta(days=1):
            break
        score = int(ok_day[(days >= monday) & (days < end)].sum())
        if best is None or score >= best[0]:
            best = (score, monday)
    if best is None:
        raise ValueError("fewer than 52 whole weeks of data")
    start = best[1]
    return start, start + pd.DateOffset(weeks=WEEKS)


def derive(source: Path) -> tuple[pd.DataFrame, int]:
    frame = pd.read_csv(source)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("start"), utc=True))
    lo, hi = best_window(frame)
    local = pd.DatetimeIndex(frame.index).tz_convert(BERLIN)
    inside = (local >= lo) & (local < hi)
    kwh = whole_house_import(frame)[inside].round(3)
    out = pd.DataFrame({"import_kwh": kwh})
    out.index = pd.DatetimeIndex(out.index, name="start").strftime("%Y-%m-%dT%H:%M:%SZ")
    ok_days = int((frame["quality"][inside] == "ok").groupby(local[inside].normalize()).all().sum())
    return out, ok_days


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    src, out_dir = Path(argv[0]), Path(argv[1] if len(argv) > 1 else "src/wattplan/data")
    for name in HOUSEHOLDS:
        frame, ok_days = derive(src / f"opsd_{name}_60min.csv.gz")
        target = out_dir / f"meter_{name}_60min.csv.gz"
        frame.to_csv(target, compression={"method": "gzip", "mtime": 0})
        print(
            f"{target.name}: {frame.index[0]} .. {frame.index[-1]}, {len(frame)} h, "
            f"{ok_days} of 364 days fully measured, {frame['import_kwh'].sum():.0f} kWh, "
            f"{target.stat().st_size} B"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
