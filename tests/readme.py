"""Run the README's examples as written: blocks are found by their ``<!-- marker -->``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_block(marker: str, lang: str = "python") -> str:
    """The first ```lang block after ``<!-- marker`` in README.md."""
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.find(f"<!-- {marker}")
    assert start >= 0, f"README lost its '{marker}' block"
    match = re.search(rf"```{lang}\n(.*?)```", text[start:], re.DOTALL)
    assert match is not None, f"no ```{lang} block after '{marker}'"
    return match.group(1)


def run_python(
    code: str, *, cwd: Path = ROOT, timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; fail the test with its stderr if it fails."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out
