"""The README's planning example and commands run as written."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import ROOT, readme_block, run_python


def test_planning_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    out = run_python(readme_block("example: planning"), cwd=tmp_path)
    assert "savings" in out.stdout
    assert (tmp_path / "plan.png").stat().st_size > 10_000


def test_stability_example_runs() -> None:
    out = run_python(readme_block("example: stability"))
    assert "stability" in out.stdout and "not in the cost" in out.stdout


@pytest.mark.parametrize(
    "line",
    [ln for ln in readme_block("commands: planning", "console").splitlines() if ln.strip()],
)
def test_planning_commands_run(line: str, tmp_path: Path) -> None:
    args = shlex.split(line.split("#")[0])
    assert args[0] == "wattplan"
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    exe = Path(sys.executable).with_name("wattplan")
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
