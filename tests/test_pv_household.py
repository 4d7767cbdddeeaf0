"""The PV household over two weeks with the spring DST change: savings are valued bills.

Runs the check of ``benchmarks/pv_household_year.py`` (which runs it on the whole year):
every day planned from noon to noon on the shipped data, the reported saving compared
with the difference of the two valued bills recomputed by hand from the schedules.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "pv_household_year.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pv_household_year", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _benchmark()


@pytest.fixture(scope="module")
def checks(bench: ModuleType) -> list:
    # 2025-03-29 noon to 2025-03-30 noon has 23 hours (CET → CEST)
    return bench.check_days(date(2025, 3, 24), date(2025, 4, 7))


def test_the_weeks_include_the_dst_day(checks: list) -> None:
    slots = {c.day: c.slots for c in checks}
    assert slots[date(2025, 3, 29)] == 92
    assert all(n == 96 for d, n in slots.items() if d != date(2025, 3, 29))


def test_no_optimal_plan_reports_a_negative_saving(bench: ModuleType, checks: list) -> None:
    s = bench.summarize(checks)
    assert s.optimal >= 10, s.statuses
    assert s.negative == 0, [(c.day, c.savings_eur) for c in checks if c.savings_eur < -1e-6]


def test_savings_are_the_difference_of_valued_bills(bench: ModuleType, checks: list) -> None:
    s = bench.summarize(checks)
    assert s.max_error_eur <= 0.01
    assert s.savings_eur == pytest.approx(s.valued_difference_eur, abs=0.01 * s.days)
    # not vacuous: the plans do save money
    assert any(abs(c.savings_eur) > 0.05 for c in checks)


def test_the_default_terminal_price_is_the_windows_lower_quartile(checks: list) -> None:
    for c in checks:
        assert c.terminal_ct == pytest.approx(max(0.0, c.quartile_ct), abs=1e-9)


def test_the_hand_valuation_counts_end_states(bench: ModuleType) -> None:
    """The recomputation is not vacuous: the valued bills differ from the plain bills."""
    import wattplan

    day = date(2025, 3, 25)
    plan = wattplan.optimize(bench.household(day, 5.0), prices=bench.prices(day))
    terminal = plan.terminal_prices_ct_per_kwh
    valued = bench.valued_bill_eur(plan.schedule, terminal)
    assert valued == pytest.approx(plan.cost_eur - plan.end_value_eur, abs=1e-6)
    assert plan.end_value_eur > 0.01
