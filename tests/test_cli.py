"""The ``wattplan`` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattplan.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_plan_prints_table_and_savings() -> None:
    out = run("plan", "scenarios/ev-overnight.yaml")
    assert out.returncode == 0, out.stderr
    assert "savings" in out.stdout and "EUR" in out.stdout
    assert "car_kw" in out.stdout
    assert "Tue 13 18:00+0100" in out.stdout, "local time in the table"


def test_plan_json_is_pure_json_and_complete(tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    out = run("plan", "scenarios/full-household-48h.yaml", "--json", "--plot", str(png))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # nothing else on stdout (no solver banner)
    assert data["status"] == "optimal"
    assert len(data["schedule"]) == 192
    assert (
        data["savings_eur"] == round(data["baseline_cost_eur"] - data["cost_eur"], 6)
        or abs(data["savings_eur"] - (data["baseline_cost_eur"] - data["cost_eur"])) < 1e-5
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_of_an_invalid_scenario_fails_with_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "start: 2026-01-20T00:00:00+01:00\nend: 2026-01-20T04:00:00+01:00\n"
        "prices: {values: [1, 2, 3, 4]}\nresolution: 60min\n"
        "devices: [{kind: battery, name: b, capacity_kwh: -1, soc_kwh: 0,"
        " max_charge_kw: 1, max_discharge_kw: 1}]\n"
    )
    out = run("plan", str(bad))
    assert out.returncode != 0
    assert "devices[0].capacity_kwh" in out.stderr
    assert "Traceback" not in out.stderr


def test_schema_documents_every_key() -> None:
    out = run("schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema["title"] == "wattplan scenario"
    defs = schema["$defs"]
    models = {
        m: defs[m]
        for m in (
            "EV",
            "Battery",
            "HeatPump",
            "Appliance",
            "Site",
            "PriceSpec",
            "Building",
            "EVSession",
            "SolverOptions",
            "Penalties",
        )
    }
    models["Scenario"] = schema
    for model, spec in models.items():
        for key, prop in spec["properties"].items():
            if key != "kind":
                assert prop.get("description"), f"{model}.{key} is undocumented"


def test_the_cli_log_is_redacted() -> None:
    # every wattplan command logs through the redacting handler, not a bare basicConfig one
    code = (
        "import logging\n"
        "from wattplan import cli\n"
        "cli.main(['schema'])\n"
        "log = logging.getLogger('wattplan.test')\n"
        "log.warning('refreshing with refresh_token=rt_leak_1 for %s', 'c1')\n"
        'log.warning(\'answer {"access_token": "at_leak_2", "token_type": "Bearer"}\')\n'
        "log.warning('GET /callback?code=code_leak_3&state=s1')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "refreshing with" in out.stderr and "c1" in out.stderr, out.stderr
    for secret in ("rt_leak_1", "at_leak_2", "code_leak_3"):
        assert secret not in out.stderr, out.stderr
