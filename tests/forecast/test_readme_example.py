"""The README's forecasting example and command run as written."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.readme import readme_block, run_python


def test_readme_example_forecasts_a_dst_day_and_a_cold_start() -> None:
    out = run_python(readme_block("example: forecasting"))
    assert "92 quarter-hours on 29 March, a 23-hour day" in out.stdout
    assert "2026-03-29 18:45:00+02:00" in out.stdout
    assert "96 of 96 slots from H25" in out.stdout


def test_readme_command_runs(tmp_path: Path) -> None:
    text = readme_block("example: forecasting", "console").replace("\\\n", " ")
    args = shlex.split(text.removeprefix("$ ").strip())
    assert args[:2] == ["wattplan", "forecast"]
    index = pd.date_range("2026-01-01", "2026-03-31", freq="15min", tz="UTC", inclusive="left")
    kwh = np.random.default_rng(2).gamma(2.0, 0.05, len(index))
    pd.DataFrame({"start": [t.isoformat() for t in index], "kwh": kwh}).to_csv(
        tmp_path / "usage.csv", index=False
    )
    files = {
        "usage.csv": str(tmp_path / "usage.csv"),
        "base-load.csv": str(tmp_path / "base-load.csv"),
    }
    args = [files.get(a, a) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "wattplan.cli", *args[1:]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(tmp_path / "base-load.csv")
    assert list(frame.columns) == ["start", "kwh_p10", "kwh_p50", "kwh_p90"]
    assert len(frame) == 31 * 96 - 4  # March, with the 23-hour day


def test_readme_pv_example_forecasts_a_dst_day_and_learns_the_shade() -> None:
    out = run_python(readme_block("example: pv forecast"))
    assert "92 quarter-hours," in out.stdout
    # the shade halves the output from solar hour 14 on; shrunk a little towards 1
    assert "[1.0, 1.0, 1.0, 1.0, 0.55, 0.55, 0.55, 0.55]" in out.stdout
    assert "2026-03-29 16:00:00+02:00" in out.stdout
