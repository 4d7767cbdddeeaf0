"""The README's sandbox example runs as written (from the repository root)."""

from __future__ import annotations

from tests.readme import readme_block, run_python


def test_readme_example_fetches_prices_and_plans() -> None:
    code = readme_block("example: sandbox-prices")
    assert "prices_series" in code
    assert "wattplan.optimize(scenario, prices=prices)" in code
    out = run_python(code)
    assert "EUR, saving" in out.stdout
    assert "optimal" in out.stdout.lower() or "feasible" in out.stdout.lower()


def test_readme_async_example_fetches_prices() -> None:
    code = readme_block("example: async-prices")
    assert "AsyncNomosClient" in code and "asyncio.gather" in code
    out = run_python(code)
    assert "ct/kWh over 96 slots" in out.stdout
