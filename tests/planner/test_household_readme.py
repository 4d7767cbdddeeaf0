"""The README's profile-only planner.yaml runs with ``wattplan run`` (a real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.readme import ROOT, readme_block
from wattplan.planner import PlanStore
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningSandbox

from .test_integration import KEY, World, _connect, _world

CID = "customer-42"


def test_readme_profile_only_planner_runs(tmp_path: Path, sandbox: RunningSandbox) -> None:
    block = readme_block("example: profile-only planner", lang="yaml")
    config = yaml.safe_load(block)
    assert set(config["customers"][0]) == {"id", "household"}  # no factory, no scenario
    text = block.replace("http://127.0.0.1:8790", sandbox.base_url)
    (tmp_path / "planner.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")  # as in a clean clone
    url = f"sqlite:///{tmp_path / 'wattplan.sqlite3'}"
    # connect the customer once (what `wattplan login --sandbox` does in the browser)
    world: World = _world(sandbox, url, "wattplan_", [])
    _connect(world, CID)
    world.close()
    env = {
        **os.environ,
        "WATTPLAN_DATABASE_URL": url,
        "WATTPLAN_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "WATTPLAN_ENCRYPTION_KEY": KEY.get_secret_value(),
    }
    env.pop("WATTPLAN_CLIENT_ID", None)  # the config names the client
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", "run", "--config", "planner.yaml",
         "--port", "0", "--ready-file", str(ready)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = PlanStore(url)
    try:
        plan = None
        for _ in range(600):
            if proc.poll() is not None:
                break
            if ready.exists():
                plan = store.latest_plan(CID)
                if plan is not None:
                    break
            time.sleep(0.2)
        assert plan is not None, proc.stderr.read() if proc.poll() is not None else "no plan"
        assert plan.status in ("optimal", "feasible_with_shortfall")
        usage = store.usage_status(CID)
        assert usage is not None and usage.ok
        assert len(store.usage_history(CID)) >= 7 * 96  # weeks of the customer's usage
        names = {d["name"] for d in plan.document["devices"]}
        assert names == {"car", "home-battery"}  # the profile's devices
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        store.drop_all()
        store.dispose()
    assert proc.returncode == 0, stderr[-2000:]
    assert DEFAULT_CLIENT_SECRET not in stderr
    assert DEFAULT_CLIENT_ID in text
