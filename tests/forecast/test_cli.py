"""``wattplan forecast base-load``: the CSV contract, as a user runs it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattplan.cli import main

BERLIN = "Europe/Berlin"


def usage_csv(path: Path, start: str = "2026-09-01", end: str = "2026-10-27") -> Path:
    """Hourly usage with a daily shape, a quality column and an ignored extra column."""
    index = pd.date_range(start, end, freq="h", tz=BERLIN, inclusive="left")
    rng = np.random.default_rng(7)
    kwh = 0.2 + 0.3 * (index.hour >= 17) * (index.hour < 22) + rng.gamma(2, 0.02, len(index))
    frame = pd.DataFrame(
        {
            "start": [t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in index],
            "kwh": np.round(kwh, 4),
            "quality": "ok",
            "meter": "A",
        }
    )
    frame.to_csv(path, index=False)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattplan.cli", *args], capture_output=True, text=True
    )


def test_writes_quantiles_per_slot_with_offsets_over_a_25_hour_day(tmp_path: Path) -> None:
    usage = usage_csv(tmp_path / "usage.csv")
    out = tmp_path / "forecast.csv"
    done = run(
        "forecast", "base-load", str(usage), "--start", "2026-10-24", "--end", "2026-10-27",
        "--timezone", "Europe/Berlin", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.splitlines()[0] == "start,kwh_p10,kwh_p50,kwh_p90"
    frame = pd.read_csv(out)
    assert len(frame) == 24 + 25 + 24
    assert frame["start"].iloc[0] == "2026-10-24T00:00:00+02:00"
    assert list(frame["start"].iloc[26:29]) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert (frame["kwh_p10"] <= frame["kwh_p50"]).all()
    assert (frame["kwh_p50"] <= frame["kwh_p90"]).all()
    evening = pd.to_datetime(frame["start"], utc=True).dt.tz_convert(BERLIN).dt.hour == 19
    assert (frame["kwh_p50"][evening] > 0.45).all()  # the evening peak is learned


def test_uses_only_rows_before_local_midnight_of_the_day_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    usage = usage_csv(tmp_path / "usage.csv")
    assert main(["forecast", "base-load", str(usage), "--start", "2026-10-21",
                 "--end", "2026-10-22"]) == 0  # fmt: skip
    full = capsys.readouterr().out
    frame = pd.read_csv(usage)
    published = frame[
        pd.to_datetime(frame["start"], utc=True) < pd.Timestamp("2026-10-20", tz=BERLIN)
    ]
    published.to_csv(tmp_path / "published.csv", index=False)
    assert main(["forecast", "base-load", str(tmp_path / "published.csv"), "--start",
                 "2026-10-21", "--end", "2026-10-22"]) == 0  # fmt: skip
    assert capsys.readouterr().out == full
    shorter = frame[
        pd.to_datetime(frame["start"], utc=True) < pd.Timestamp("2026-10-19", tz=BERLIN)
    ]
    shorter.to_csv(tmp_path / "shorter.csv", index=False)
    main(["forecast", "base-load", str(tmp_path / "shorter.csv"), "--start", "2026-10-21",
          "--end", "2026-10-22"])  # fmt: skip
    assert capsys.readouterr().out != full  # D-2 (a Monday) is used


def test_rows_not_marked_ok_are_not_trusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    usage = usage_csv(tmp_path / "usage.csv")
    args = ["forecast", "base-load", str(usage), "--start", "2026-10-20", "--end", "2026-10-21"]
    frame = pd.read_csv(usage)
    frame.drop(frame.index[-400:]).to_csv(usage, index=False)
    main(args)
    without = capsys.readouterr().out
    frame.loc[frame.index[-400:], "kwh"] = 9.0
    frame.loc[frame.index[-400:], "quality"] = "estimated"
    frame.to_csv(usage, index=False)
    main(args)
    assert capsys.readouterr().out == without
    frame["quality"] = "ok"
    frame.to_csv(usage, index=False)
    main(args)
    assert capsys.readouterr().out != without


def test_a_cold_start_says_so_on_stderr(tmp_path: Path) -> None:
    usage = usage_csv(tmp_path / "usage.csv", "2026-10-01", "2026-10-03")
    done = run("forecast", "base-load", str(usage), "--start", "2026-10-04", "--end", "2026-10-05")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 25
    assert "24 of 24 slots from the H25 standard profile" in done.stderr


def test_without_history_the_annual_energy_is_asked_for(tmp_path: Path) -> None:
    usage = usage_csv(tmp_path / "usage.csv", "2026-10-01", "2026-10-03")
    args = ["forecast", "base-load", str(usage), "--start", "2026-10-01", "--end", "2026-10-03"]
    done = run(*args)
    assert done.returncode == 2
    assert "annual_kwh: too little history before 2026-10-01" in done.stderr
    assert "--annual-kwh" in done.stderr
    done = run(*args, "--annual-kwh", "3650")
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(io.StringIO(done.stdout))
    assert len(frame) == 48
    assert 0.6 * 16 < frame["kwh_p50"].sum() < 1.2 * 16  # 0.8 × 10 kWh a day (P50: median)
    assert "48 of 48 slots from the H25 standard profile scaled to 3650 kWh/a" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "start,energy\n2026-10-01T00:00Z,0.1\n",
            "column 'kwh': missing (columns found: start, energy)",
        ),
        ("time,kwh\n2026-10-01T00:00Z,0.1\n", "column 'start': missing"),
        (
            "start,kwh\n2026-10-01T00:00Z,0.1\n2026-10-01T02:00Z,0.1\n2026-10-01T01:00Z,0.1\n",
            "row 3 (line 4), column 'start': 2026-10-01T01:00Z is earlier than the row before",
        ),
        (
            "start,kwh\n2026-10-01T00:00Z,0.1\n2026-10-01T02:00+02:00,0.1\n",
            "row 2 (line 3), column 'start': 2026-10-01T02:00+02:00 duplicates the row before",
        ),
        (
            "start,kwh\n2026-10-01T00:00Z,0.1\n2026-10-01T01:00:00,0.1\n",
            "row 2 (line 3), column 'start': '2026-10-01T01:00:00' has no UTC offset",
        ),
        (
            "start,kwh\nyesterday+01:00,0.1\n",
            "row 1 (line 2), column 'start': 'yesterday+01:00' is not an ISO 8601",
        ),
        (
            "start,kwh\n2026-10-01T00:00Z,-0.1\n",
            "row 1 (line 2), column 'kwh': '-0.1' is not a non-negative",
        ),
        (
            "start,kwh\n2026-10-01T00:00Z,lots\n",
            "row 1 (line 2), column 'kwh': 'lots' is not a non-negative",
        ),
        ("", "usage: not a readable CSV file"),
    ],
)
def test_bad_input_names_the_column_or_row(tmp_path: Path, content: str, message: str) -> None:
    usage = tmp_path / "usage.csv"
    usage.write_text(content)
    done = run("forecast", "base-load", str(usage), "--start", "2026-10-04", "--end", "2026-10-05")
    assert done.returncode == 2
    assert done.stderr.startswith("wattplan: error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
