"""The relaxed-first handling of binaries gives the full MIP's answer (within its gap)."""

from __future__ import annotations

from pathlib import Path

import pytest

import wattplan
from wattplan.optimizer._inputs import prepare
from wattplan.optimizer._model import build_model
from wattplan.optimizer._solve import SolveOutcome, solve, to_highs

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_relaxed_first_matches_the_full_mip(path: Path) -> None:
    scenario = wattplan.load_scenario(path)
    opts = scenario.solver.model_copy(update={"mip_gap": 1e-4, "time_limit_s": 60})
    ours = solve(build_model(prepare(scenario)), opts)
    assert ours.outcome is SolveOutcome.OPTIMAL
    assert ours.objective_eur is not None

    h = to_highs(build_model(prepare(scenario)), opts)  # every binary integral from the start
    h.run()
    full = float(h.getInfo().objective_function_value)
    # both are within 1e-4 of the true optimum, so within 2e-4 of each other
    assert ours.objective_eur == pytest.approx(full, rel=2e-4, abs=1e-6)
