"""The distributions as a user gets them: build the wheel and the sdist, check their
metadata, install the core wheel alone into a fresh venv and plan a shipped scenario there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from wattplan._extras import CORE, EXTRAS, PROVIDERS

ROOT = Path(__file__).parents[1]
SCENARIO = ROOT / "scenarios" / "ev-overnight.yaml"

pytestmark = pytest.mark.slow


def _check(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    out: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        cmd, capture_output=True, text=True, timeout=900, **kw
    )
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built from a copy of the sources (the tree stays clean)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(
        ROOT / "src",
        project / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    out_dir = tmp_path_factory.mktemp("dist")
    _check([sys.executable, "-m", "build", "--outdir", str(out_dir), str(project)])
    (wheel,) = out_dir.glob("wattplan-*.whl")
    (sdist,) = out_dir.glob("wattplan-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_twine_accepts_both_distributions(dists: dict[str, Path]) -> None:
    out = _check([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists.values())])
    assert out.stdout.count("PASSED") == 2, out.stdout


def test_wheel_metadata_lists_the_core_and_every_extra(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        (meta_name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(whl.read(meta_name).decode())
    assert set(meta.get_all("Provides-Extra") or []) == {*EXTRAS, "all", "dev"}
    unconditional = {
        r.split(";")[0].split(">")[0].split("<")[0].split("[")[0].strip().lower()
        for r in meta.get_all("Requires-Dist") or []
        if "extra ==" not in r
    }
    core = {p.distribution for p in PROVIDERS.values() if CORE in p.extras and p.via is None}
    assert unconditional == core


def test_core_wheel_alone_plans_a_scenario_and_names_missing_extras(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = str(bin_dir / "python")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    _check([python, "-m", "pip", "install", "--quiet", str(dists["wheel"])], env=env)

    installed = _check(
        [
            python,
            "-c",
            "import importlib.metadata as m, json;"
            "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
        ],
        env=env,
    )
    names = set(json.loads(installed.stdout))
    for edge in ("httpx", "sqlalchemy", "starlette", "uvicorn", "apscheduler", "matplotlib"):
        assert edge not in names, f"the core install pulled {edge}"

    planned = _check(
        [
            python,
            "-c",
            "import wattplan, json;"
            f"plan = wattplan.optimize(wattplan.load_scenario({str(SCENARIO)!r}));"
            "print(json.dumps([str(plan.status), plan.cost_eur, wattplan.__file__]))",
        ],
        env=env,
        cwd=tmp_path,
    )
    status, cost, location = json.loads(planned.stdout)
    assert status == "optimal" and cost > 0
    assert Path(location).is_relative_to(env_dir), "planned with the installed wheel"

    cli = _check([str(bin_dir / "wattplan"), "plan", str(SCENARIO), "--json"], env=env)
    assert json.loads(cli.stdout)["status"] == "optimal"
    schema = _check([str(bin_dir / "wattplan"), "schema"], env=env)
    assert json.loads(schema.stdout)["title"] == "wattplan scenario"

    run = subprocess.run(
        [str(bin_dir / "wattplan"), "run"], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 2
    assert "pip install 'wattplan[planner]'" in run.stderr

    planner = subprocess.run(
        [python, "-c", "import wattplan.planner"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert planner.returncode != 0
    assert "MissingExtraError" in planner.stderr
    assert "'planner' extra" in planner.stderr
    assert "pip install 'wattplan[planner]'" in planner.stderr
