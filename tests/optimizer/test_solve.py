"""The relaxed-first handling of binaries gives the full MIP's answer (within its gap)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import wattplan
from tests.optimizer.helpers import tiny
from wattplan.optimizer._flows import bill_eur, end_values_eur, penalties_eur, simulate_baseline
from wattplan.optimizer._inputs import prepare
from wattplan.optimizer._model import Model, build_model
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


def test_rounds_out_of_their_share_hand_the_rest_to_the_full_mip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rounds that eat the time limit must not starve the full MIP (it found no plan then).

    The rounds' share of the limit is set to nothing and every HiGHS run made to take half
    a second longer: the rounds stop at once and a full MIP run gets what is left of the
    limit, not the 0.05 s that was left before the share existed.
    """
    import time

    import highspy

    from wattplan.optimizer import _solve

    limits: list[float] = []
    original = highspy.Highs.run

    def slow_run(self: object) -> object:
        value = self.getOptionValue("time_limit")  # type: ignore[attr-defined]
        limits.append(float(value[1] if isinstance(value, tuple) else value))
        time.sleep(0.5)
        return original(self)  # type: ignore[arg-type]

    monkeypatch.setattr(highspy.Highs, "run", slow_run)
    monkeypatch.setattr(_solve, "ROUNDS_SHARE", 0.0)
    path = next(p for p in SCENARIOS if p.stem == "dst-autumn-2025-10-26")
    scenario = wattplan.load_scenario(path)
    opts = scenario.solver.model_copy(update={"time_limit_s": 6.0})
    result = solve(build_model(prepare(scenario)), opts)
    assert limits[0] <= 0.1, limits  # the rounds had no share
    assert max(limits[1:]) >= 4.0, limits  # the full MIP had the rest
    assert result.outcome is SolveOutcome.OPTIMAL


def _capped_model(scenario: wattplan.Scenario) -> Model:
    """The model as ``optimize`` builds it: money plus penalties capped at the baseline's."""
    inputs = prepare(scenario)
    base = simulate_baseline(inputs)
    cap = (
        bill_eur(inputs, base)
        - sum(end_values_eur(inputs, base, absolute=True).values())
        + penalties_eur(inputs, base)
    )
    return build_model(inputs, cap_eur=cap)


_WEAR_BEATS_THE_SPREAD = tiny(
    [31.0, 31.0],
    [
        {
            "kind": "battery",
            "name": "b",
            "capacity_kwh": 10,
            "soc_kwh": 5,
            "max_charge_kw": 5,
            "max_discharge_kw": 5,
            "charge_efficiency": 1.0,
            "discharge_efficiency": 1.0,
            "wear_cost_ct_per_kwh": 3.0,
        }
    ],
    site={"base_load": 1.0, "terminal_price_ct_per_kwh": 30.0},
)


@pytest.mark.parametrize(
    "scenario",
    [*(wattplan.load_scenario(p) for p in SCENARIOS), _WEAR_BEATS_THE_SPREAD],
    ids=[*(p.stem for p in SCENARIOS), "cap-binds"],
)
def test_the_cap_row_added_only_when_broken_gives_the_capped_optimum(
    scenario: wattplan.Scenario,
) -> None:
    """HiGHS gets the cap row only when an answer breaks it: same optimum as with it from
    the start, and the answer keeps the cap (in "cap-binds" the uncapped optimum breaks it)."""
    opts = scenario.solver.model_copy(update={"mip_gap": 1e-4, "time_limit_s": 60})
    model = _capped_model(scenario)
    ours = solve(model, opts)
    assert ours.outcome is SolveOutcome.OPTIMAL
    assert model.cap is not None
    terms, cap = model.cap
    assert sum(c * (v.varValue or 0.0) for v, c in terms) <= cap + 1e-6

    h = to_highs(_capped_model(scenario), opts)  # the cap row and every binary from the start
    h.run()
    full = float(h.getInfo().objective_function_value)
    assert ours.objective_eur == pytest.approx(full, rel=2e-4, abs=1e-6)


def test_a_capped_solve_out_of_time_keeps_the_answer_without_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the answer breaks the cap and the capped model finds no plan in the time left,
    the plan is the first answer, reported as stopped at the time limit (not no plan)."""
    import highspy

    from wattplan.optimizer import _solve

    original = _solve._highs_rounds
    calls: list[int] = []

    def capped_out_of_time(h: Any, *args: Any) -> Any:
        calls.append(h.getNumRow())
        answer, gap = original(h, *args)
        if len(calls) == 2:  # the capped model: as if the time ran out before any plan
            timeout = highspy.HighsModelStatus.kTimeLimit
            answer = replace(answer, status=timeout, has_solution=False, message="time limit")
        return answer, gap

    monkeypatch.setattr(_solve, "_highs_rounds", capped_out_of_time)
    model = _capped_model(_WEAR_BEATS_THE_SPREAD)
    result = solve(model, _WEAR_BEATS_THE_SPREAD.solver)
    assert calls == [len(model.rows), len(model.rows) + 1]  # without the cap row, then with
    assert result.outcome is SolveOutcome.TIME_LIMIT
    assert result.message == "time limit"
    assert all(v.varValue is not None for v in model.variables)
