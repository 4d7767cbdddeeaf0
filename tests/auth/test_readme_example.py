"""The README's "Connecting a customer" example runs as written (from the repository root)."""

from __future__ import annotations

from tests.readme import readme_block, run_python


def test_readme_connect_example_runs() -> None:
    out = run_python(readme_block("example: connect-customer"), timeout_s=300)
    assert out.stdout.startswith("active ['sub_")
