"""The README's sandbox example runs as written (from the repository root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- example: sandbox-prices"


def _example() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    tail = text[text.index(MARKER) :]
    match = re.search(r"```python\n(.*?)```", tail, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_readme_example_fetches_prices_and_plans() -> None:
    code = _example()
    assert "prices_series" in code
    assert "wattplan.optimize(scenario, prices=prices)" in code
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "EUR, saving" in out.stdout
    assert "optimal" in out.stdout.lower() or "feasible" in out.stdout.lower()
