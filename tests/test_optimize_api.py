"""POST /optimize over a real uvicorn on loopback: plans, refusals, keys; and ``wattplan serve``."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import wattplan
from tests.readme import ROOT
from wattplan._api import ApiKeys
from wattplan._http import serve_in_thread
from wattplan.optimize_api import OptimizeLimits, create_optimize_app

KEY = "optimize-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
SCENARIO = ROOT / "scenarios" / "battery-pv-negative-prices.yaml"
TOL = 1e-4


@pytest.fixture(scope="module")
def scenario_json() -> dict[str, Any]:
    """A shipped scenario with its CSV series inlined, as a client would send it."""
    scenario = wattplan.load_scenario(SCENARIO)
    return json.loads(json.dumps(scenario.model_dump(mode="json", exclude_none=True)))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    app = create_optimize_app(auth=ApiKeys([KEY]), limits=OptimizeLimits(max_body_bytes=256 * 1024))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


def _battery(scenario: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in scenario["devices"] if d["kind"] == "battery")


def test_a_scenario_is_planned_within_its_constraints_at_an_independent_cost(
    client: httpx.Client, scenario_json: dict[str, Any]
) -> None:
    r = client.post("/optimize", json=scenario_json, headers=AUTH)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["status"] == "optimal"
    rows = plan["schedule"]
    assert len(rows) == 96
    hours = plan["resolution_minutes"] / 60
    battery = _battery(scenario_json)
    name = battery["name"]
    soc = battery["soc_kwh"]
    bill = 0.0
    for row in rows:
        assert datetime.fromisoformat(row["start"]).utcoffset() is not None
        imp, exp = row["grid_import_kw"], row["grid_export_kw"]
        assert imp >= -TOL and exp >= -TOL
        assert min(imp, exp) <= TOL  # never both at once
        assert imp <= 24 + TOL and exp <= 10 + TOL
        assert -TOL <= row["pv_used_kw"] <= row["pv_available_kw"] + TOL
        charge, discharge = row[f"{name}_charge_kw"], row[f"{name}_discharge_kw"]
        assert charge <= battery["max_charge_kw"] + TOL
        assert discharge <= battery["max_discharge_kw"] + TOL
        assert min(charge, discharge) <= TOL
        # site balance: import - export = load - pv used + battery (charge - discharge)
        balance = row["base_load_kw"] - row["pv_used_kw"] + charge - discharge
        assert imp - exp == pytest.approx(balance, abs=1e-3)
        soc += hours * (
            battery["charge_efficiency"] * charge - discharge / battery["discharge_efficiency"]
        )
        assert row[f"{name}_soc_kwh"] == pytest.approx(soc, abs=1e-3)
        assert battery["soc_min_kwh"] - TOL <= soc <= battery["capacity_kwh"] + TOL
        bill += hours * (row["price_ct_per_kwh"] * imp - row["feed_in_ct_per_kwh"] * exp) / 100
    assert plan["cost_eur"] == pytest.approx(bill, abs=1e-3)
    assert plan["savings_eur"] >= -TOL


def test_the_plan_is_the_json_the_library_makes(
    client: httpx.Client, scenario_json: dict[str, Any]
) -> None:
    served = client.post("/optimize", json=scenario_json, headers=AUTH).json()
    local = wattplan.optimize(wattplan.load_scenario(SCENARIO)).to_dict()
    served.pop("solver")
    local.pop("solver")
    assert served == local


@pytest.mark.parametrize(
    ("doctor", "key"),
    [
        (lambda s: _battery(s).update(max_charge_kw=-5), "devices[0].max_charge_kw"),
        (lambda s: _battery(s).update(colour="red"), "devices[0].colour"),
        (lambda s: s.update(resolution="7min"), "resolution"),
        (lambda s: s["site"].update(base_load={"file": "/etc/passwd", "column": "x"}),
         "site.base_load.file"),
        (lambda s: s.update(prices={"spot_file": "../secret.csv"}), "prices.spot_file"),
        (lambda s: s.update(end="2026-06-01T00:00:00+02:00"), "end"),
    ],
    ids=["negative", "unknown-key", "resolution", "file", "spot-file", "horizon"],
)  # fmt: skip
def test_a_bad_field_gets_a_422_naming_it(
    client: httpx.Client, scenario_json: dict[str, Any], doctor: Any, key: str
) -> None:
    body = copy.deepcopy(scenario_json)
    doctor(body)
    r = client.post("/optimize", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    refusal = r.json()
    assert refusal["error"] == "invalid_scenario"
    assert refusal["key"] == key
    assert key in refusal["message"] and refusal["reason"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "key"),
    [
        (b"[1, 2]", "application/json", 422, "scenario"),
        (b'{"name": ', "application/json", 400, "body"),
        (b"[" * 40 + b"]" * 40, "application/json", 400, "body"),
        (b"{}", "text/yaml", 415, "content-type"),
        (b'{"name": 1' + b"0" * 100 + b"}", "application/json", 422, "name"),
    ],
    ids=["not-an-object", "malformed", "too-deep", "media-type", "long-number"],
)
def test_a_bad_body_is_refused_naming_the_problem(
    client: httpx.Client, content: bytes, content_type: str, status: int, key: str
) -> None:
    r = client.post("/optimize", content=content, headers={**AUTH, "content-type": content_type})
    assert r.status_code == status, r.text
    assert r.json()["key"] == key


def test_a_too_large_body_is_refused_declared_or_streamed(
    client: httpx.Client, scenario_json: dict[str, Any]
) -> None:
    body = copy.deepcopy(scenario_json)
    body["name"] = "x" * 300_000
    r = client.post("/optimize", json=body, headers=AUTH)
    assert r.status_code == 413
    assert r.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b" " * 1024

    r = client.post(
        "/optimize", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert r.status_code == 413


def test_a_missing_or_wrong_key_is_refused_before_the_body_is_read(
    client: httpx.Client, scenario_json: dict[str, Any]
) -> None:
    r = client.post("/optimize", json=scenario_json)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.post(
        "/optimize", json=scenario_json, headers={"Authorization": f"Bearer {KEY[:-1]}x"}
    )
    assert r.status_code == 403
    assert "schedule" not in r.text
    r = client.post("/optimize", content=b"x" * 400_000, headers={"content-type": "text/plain"})
    assert r.status_code == 401  # no key: neither the size nor the type is looked at


def test_closed_by_default_and_the_docs_are_open() -> None:
    with serve_in_thread(create_optimize_app()) as url:
        r = httpx.post(f"{url}/optimize", json={}, headers=AUTH, timeout=10)
        assert r.status_code == 403
        doc = httpx.get(f"{url}/openapi.json", timeout=10).json()
        assert set(doc["paths"]) == {"/health", "/optimize", "/openapi.json", "/docs"}
        body = doc["paths"]["/optimize"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/Scenario"}
        assert "max_power_kw" in json.dumps(doc["components"]["schemas"]["EV"])
        assert httpx.get(f"{url}/docs", timeout=10).status_code == 200
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="shorter than 16"):
        ApiKeys(["short"])


# --- wattplan serve ------------------------------------------------------------------------


def _wattplan(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WATTPLAN_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return {**env, **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    ready = tmp_path / "ready"
    proc = _wattplan(
        "serve", "--port", "0", "--ready-file", str(ready), env=_env(WATTPLAN_API_KEY=KEY)
    )
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text()):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "wattplan serve did not start"
            time.sleep(0.1)
        yield ready.read_text()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert KEY not in err


def test_wattplan_serve_plans_over_http(served: str, scenario_json: dict[str, Any]) -> None:
    r = httpx.post(f"{served}/optimize", json=scenario_json, headers=AUTH, timeout=120)
    assert r.status_code == 200
    assert r.json()["status"] == "optimal"
    assert httpx.post(f"{served}/optimize", json=scenario_json, timeout=10).status_code == 401


def test_wattplan_serve_refuses_to_run_without_a_key() -> None:
    proc = _wattplan("serve", "--port", "0", env=_env())
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "WATTPLAN_API_KEY is not set" in err


def test_readme_example_runs_against_wattplan_serve(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.readme import readme_block, run_python

    code = readme_block("example: optimize over HTTP")
    assert "http://127.0.0.1:8080" in code
    monkeypatch.setenv("WATTPLAN_API_KEY", KEY)
    out = run_python(code.replace("http://127.0.0.1:8080", served), timeout_s=300)
    status, cost, savings, slots = out.stdout.split()
    assert status == "optimal"
    assert float(savings) >= 0 and int(slots) == 96
    assert float(cost) > 0


def test_readme_serve_command_names_the_documented_options() -> None:
    from tests.readme import readme_block
    from wattplan.cli import build_parser

    lines = [ln for ln in readme_block("commands: serve", "console").splitlines() if ln]
    serve = next(ln for ln in lines if ln.startswith("wattplan serve"))
    args = serve.split("#")[0].split()[1:]
    parsed = build_parser().parse_args(args)
    assert parsed.port == 8080 and parsed.api_key_env == "WATTPLAN_API_KEY"


_EMPTY_PLAN = {
    "status": "optimal",
    "cost_eur": 0.0,
    "baseline_cost_eur": 0.0,
    "savings_eur": 0.0,
    "resolution_minutes": 15,
    "devices": [],
    "schedule": [],
}


def test_beyond_the_concurrent_solves_the_answer_is_busy(
    monkeypatch: pytest.MonkeyPatch, scenario_json: dict[str, Any]
) -> None:
    import threading

    import wattplan.optimize_api as api

    entered, release = threading.Event(), threading.Event()

    def held_solve(body: dict[str, Any], limits: OptimizeLimits) -> dict[str, Any]:
        entered.set()
        assert release.wait(60)
        return dict(_EMPTY_PLAN)

    monkeypatch.setattr(api, "_solve", held_solve)
    app = create_optimize_app(auth=ApiKeys([KEY]), limits=OptimizeLimits(max_concurrent=1))
    with serve_in_thread(app) as url:
        first: list[httpx.Response] = []
        worker = threading.Thread(
            target=lambda: first.append(
                httpx.post(f"{url}/optimize", json=scenario_json, headers=AUTH, timeout=60)
            )
        )
        worker.start()
        try:
            assert entered.wait(60)
            busy = httpx.post(f"{url}/optimize", json=scenario_json, headers=AUTH, timeout=60)
        finally:
            release.set()
            worker.join(60)
    assert busy.status_code == 503
    assert busy.json()["error"] == "busy"
    assert int(busy.headers["retry-after"]) >= 1
    assert first[0].status_code == 200


def test_the_solver_gets_the_servers_limits_not_the_clients(
    monkeypatch: pytest.MonkeyPatch, scenario_json: dict[str, Any]
) -> None:
    import wattplan.optimize_api as api
    import wattplan.optimizer as optimizer

    seen: list[Any] = []

    def fake_optimize(scenario: Any, *, solver: Any) -> Any:
        seen.append(solver)

        class _Plan:
            def to_dict(self) -> dict[str, Any]:
                return dict(_EMPTY_PLAN)

        return _Plan()

    monkeypatch.setattr(optimizer, "optimize", fake_optimize)
    greedy = {**scenario_json, "solver": {"time_limit_s": 3600, "threads": 64}}
    assert api._solve(greedy, OptimizeLimits(max_solve_seconds=5)) == _EMPTY_PLAN
    modest = {**scenario_json, "solver": {"time_limit_s": 2}}
    api._solve(modest, OptimizeLimits(max_solve_seconds=5))
    assert [(s.time_limit_s, s.threads) for s in seen] == [(5, 1), (2, 1)]
