"""The CSV files of ``wattplan forecast base-load``: metered usage in, quantiles out."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from wattplan.exceptions import ForecastInputError
from wattplan.forecast._baseload import COLUMNS, BaseLoadForecast

__all__ = ["read_usage_csv", "write_forecast_csv"]

_OFFSET = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def _row(i: int) -> str:
    return f"row {i + 1} (line {i + 2})"


def read_usage_csv(source: str | Path | TextIO) -> pd.Series:
    """Read ``start,kwh[,quality,…]`` into a Series of kWh per interval (UTC index).

    ``start`` is the interval start in ISO 8601 with a UTC offset or ``Z``; ``kwh`` the
    energy in the interval (empty: unknown). Rows whose ``quality`` (if the column
    exists) is not ``ok`` become unknown (NaN). Other columns are ignored. Raises
    :class:`~wattplan.exceptions.ForecastInputError` naming the column or row when a
    column is missing, a time has no offset or cannot be read, the times are not
    strictly increasing (unsorted or duplicate), or an energy is not a non-negative number.
    """
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ForecastInputError("usage", f"not a readable CSV file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in ("start", "kwh"):
        if column not in frame.columns:
            found = ", ".join(frame.columns) or "none"
            raise ForecastInputError(f"column '{column}'", f"missing (columns found: {found})")
    starts = frame["start"].str.strip()
    naive = ~starts.str.contains(_OFFSET, regex=True)
    if naive.any():
        i = int(np.flatnonzero(naive.to_numpy())[0])
        raise ForecastInputError(
            f"{_row(i)}, column 'start'",
            f"{starts.iloc[i]!r} has no UTC offset (write e.g. +01:00 or Z)",
        )
    times = pd.to_datetime(starts, utc=True, format="ISO8601", errors="coerce")
    if times.isna().any():
        i = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ForecastInputError(
            f"{_row(i)}, column 'start'", f"{starts.iloc[i]!r} is not an ISO 8601 time"
        )
    stamps = pd.DatetimeIndex(times).as_unit("ns").asi8
    steps = np.diff(stamps)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        what = "duplicates" if steps[i - 1] == 0 else "is earlier than"
        raise ForecastInputError(
            f"{_row(i)}, column 'start'",
            f"{starts.iloc[i]} {what} the row before: rows must be sorted, without duplicates",
        )
    text = frame["kwh"].str.strip()
    kwh = pd.Series(pd.to_numeric(text.where(text != ""), errors="coerce"), dtype=float)
    bad = kwh.isna() & (text != "")
    if bad.any() or (kwh < 0).any() or np.isinf(kwh).any():
        i = int(np.flatnonzero((bad | (kwh < 0) | np.isinf(kwh)).to_numpy())[0])
        raise ForecastInputError(
            f"{_row(i)}, column 'kwh'", f"{text.iloc[i]!r} is not a non-negative number"
        )
    if "quality" in frame.columns:
        kwh = kwh.where(frame["quality"].str.strip() == "ok")
    series = pd.Series(kwh.to_numpy(dtype=float), index=pd.DatetimeIndex(times, name="start"))
    series.name = "kwh"
    return series


def write_forecast_csv(forecast: BaseLoadForecast, target: str | Path | TextIO) -> None:
    """Write ``start`` (ISO 8601 with offset), ``kwh_p10``, ``kwh_p50``, ``kwh_p90``."""
    frame = forecast.kwh.round(6)
    out = pd.DataFrame(
        {"start": [t.isoformat() for t in frame.index], **{c: frame[c] for c in COLUMNS}}
    )
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    if isinstance(target, str | Path):
        Path(target).write_text(buffer.getvalue(), encoding="utf-8")
    else:
        target.write(buffer.getvalue())
