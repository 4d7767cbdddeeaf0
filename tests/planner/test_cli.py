"""``wattplan demo``, ``wattplan run`` (a real process, stopped by SIGTERM) and ``status``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from wattplan.auth import TokenCipher
from wattplan.cli import main
from wattplan.exceptions import ConfigurationError
from wattplan.planner.config import load_config
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningSandbox

API_KEY = "customer-one-key-0123456789"


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[9/9]" in out
    assert "14:20 new prices (horizon_grew): re-planned" in out
    assert "-> 401" in out  # the API refused the request without a key
    assert (tmp_path / "wattplan-demo-plan.png").stat().st_size > 10_000
    assert (tmp_path / "wattplan-demo-replan.png").stat().st_size > 10_000
    assert (tmp_path / "wattplan-demo.sqlite3").exists()


def _config(tmp_path: Path, base_url: str) -> Path:
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "full-household-48h.yaml"
    config = tmp_path / "planner.yaml"
    config.write_text(
        f"""
database_url: sqlite:///{tmp_path / "planner.sqlite3"}
nomos: {{base_url: "{base_url}", client_id: {DEFAULT_CLIENT_ID}}}
polling: {{jitter_seconds: 0}}
http: {{host: 127.0.0.1, port: 0}}
customers:
  - id: c1
    scenario: {scenario}
    api_key_env: WATTPLAN_TEST_KEY_C1
""",
        encoding="utf-8",
    )
    return config


def test_run_serves_health_and_stops_cleanly_on_sigterm(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    config = _config(tmp_path, sandbox.base_url)
    ready = tmp_path / "ready"
    key = TokenCipher.generate_key().get_secret_value()
    env = {
        **os.environ,
        "WATTPLAN_CLIENT_ID": DEFAULT_CLIENT_ID,
        "WATTPLAN_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "WATTPLAN_ENCRYPTION_KEY": key,
        "WATTPLAN_TEST_KEY_C1": API_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", "run", "--config", str(config),
         "--ready-file", str(ready)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "no ready file"
        url = ready.read_text()
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["customers"] == 1
        assert "scheduler" in health
        assert health["scheduler"]["running"] is True
        assert httpx.get(f"{url}/customers/c1/plan", timeout=10).status_code == 401
        for _ in range(100):  # the first poll runs at start-up
            if httpx.get(f"{url}/health", timeout=10).json()["scheduler"]["last_poll_at"]:
                break
            time.sleep(0.1)
        status = httpx.get(
            f"{url}/customers/c1/status",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        ).json()
        # no grant was ever stored for c1: visible as a failing customer, not a crash
        assert status["health"] == "error"
        assert status["error_kind"] == "auth_error"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert any("shutting down" in m for m in messages)
    assert messages[-1] == "planner stopped"
    for secret in (DEFAULT_CLIENT_SECRET, key, API_KEY):
        assert secret not in stderr

    # the database keeps the health for `wattplan status`
    out = subprocess.run(
        [sys.executable, "-m", "wattplan.cli", "status", "--config", str(config), "--json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    statuses = json.loads(out)
    assert statuses[0]["customer_id"] == "c1"
    assert statuses[0]["health"] == "error"
    strict = subprocess.run(
        [sys.executable, "-m", "wattplan.cli", "status", "--config", str(config), "--strict"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert strict.returncode == 1
    assert "auth_error" in strict.stdout


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "planner.yaml"
    bad.write_text("customers: [{id: 'a b', scenario: x.yaml}]\npolling: {dense_minutes: 0}\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(bad)
    assert "customers.0.id" in str(info.value)
    assert "polling.dense_minutes" in str(info.value)
    bad.write_text("customers: []\n")
    with pytest.raises(ConfigurationError, match="customers"):
        load_config(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_config_resolves_scenarios_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    config = tmp_path / "sub" / "planner.yaml"
    config.write_text("customers: [{id: c1, scenario: ../s.yaml, api_key_env: NOPE_NOT_SET}]\n")
    loaded = load_config(config)
    assert loaded.customers[0].scenario == (tmp_path / "s.yaml").resolve()
    with pytest.raises(ConfigurationError, match="NOPE_NOT_SET"):
        loaded.customers[0].api_key()


def test_json_log_lines_redact_credentials() -> None:
    import logging

    from wattplan.planner._cli import JsonLogFormatter

    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "sent Authorization: Bearer abc.def and code=xyz", (), None
    )
    line = json.loads(JsonLogFormatter().format(record))
    assert "abc.def" not in line["msg"]
    assert "xyz" not in line["msg"]
    assert line["level"] == "info"


def test_config_customers_need_a_scenario_or_an_importable_factory(tmp_path: Path) -> None:
    from wattplan.planner import demo_household

    config = tmp_path / "planner.yaml"
    config.write_text("customers: [{id: c1, factory: 'wattplan.planner:demo_household'}]\n")
    assert load_config(config).customers[0].load_factory() is demo_household
    config.write_text("customers: [{id: c1, factory: 'wattplan.planner:no_such_thing'}]\n")
    with pytest.raises(ConfigurationError, match="cannot import"):
        load_config(config).customers[0].load_factory()
    config.write_text("customers: [{id: c1}]\n")
    with pytest.raises(ConfigurationError, match="scenario file or a factory"):
        load_config(config)


def test_status_on_an_empty_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--database-url", f"sqlite:///{tmp_path / 'empty.sqlite3'}"]) == 1
    assert "no planner data" in capsys.readouterr().out
