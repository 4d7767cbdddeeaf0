"""The README's planner example runs as written (from the repository root)."""

from __future__ import annotations

from tests.readme import readme_block, run_python


def test_readme_planner_example_runs() -> None:
    out = run_python(readme_block("example: planner"), timeout_s=300)
    lines = out.stdout.splitlines()
    assert lines[0] == "plan.created customer-42"
    assert lines[1] == "customer.status customer-42"  # pending -> ok
    assert lines[-1] == "['customer-42'] device_state"
