"""Every shipped scenario solves and passes the independent audit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import wattplan
from tests.optimizer.checks import check_plan

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


def test_at_least_the_promised_scenarios_ship() -> None:
    names = {p.stem for p in SCENARIOS}
    assert len(names) >= 5
    assert {"full-household-48h", "dst-autumn-2025-10-26", "dst-spring-2026-03-29"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_solves_and_meets_every_constraint(path: Path) -> None:
    scenario = wattplan.load_scenario(path)
    plan = wattplan.optimize(scenario)
    check_plan(plan, scenario)
    assert plan.status is wattplan.PlanStatus.OPTIMAL
    assert plan.savings_eur > 0, "wattplan should beat the household's usual behaviour"
    for dev in scenario.devices:
        assert dev.name in plan.explanation


@pytest.mark.parametrize(
    ("path", "day", "quarter_hours"),
    [("dst-autumn-2025-10-26", "2025-10-26", 100), ("dst-spring-2026-03-29", "2026-03-29", 92)],
)
def test_dst_days_have_their_quarter_hours(path: str, day: str, quarter_hours: int) -> None:
    scenario = wattplan.load_scenario(Path(__file__).parents[2] / "scenarios" / f"{path}.yaml")
    plan = wattplan.optimize(scenario)
    local = pd.DatetimeIndex(plan.schedule.index).tz_convert("Europe/Berlin")
    assert (local.strftime("%Y-%m-%d") == day).sum() == quarter_hours
    rows = plan.to_dict()["schedule"]
    starts = [r["start"] for r in rows if r["start"].startswith(day)]
    assert len(starts) == quarter_hours
    assert len(set(starts)) == quarter_hours, "local ISO strings with offsets stay unique"


def test_json_contract_has_every_key() -> None:
    scenario = wattplan.load_scenario(
        Path(__file__).parents[2] / "scenarios" / "full-household-48h.yaml"
    )
    data = json.loads(wattplan.optimize(scenario).to_json())
    for key in (
        "status",
        "cost_eur",
        "baseline_cost_eur",
        "savings_eur",
        "resolution_minutes",
        "devices",
        "schedule",
    ):
        assert key in data
    assert data["resolution_minutes"] == 15
    assert {"name": "car", "kind": "ev"} in data["devices"]
    row = data["schedule"][0]
    for key in (
        "start",
        "price_ct_per_kwh",
        "feed_in_ct_per_kwh",
        "base_load_kw",
        "pv_available_kw",
        "pv_used_kw",
        "grid_import_kw",
        "grid_export_kw",
        "car_kw",
        "home-battery_kw",
        "heat-pump_kw",
        "dishwasher_kw",
        "home-battery_soc_kwh",
        "heat-pump_indoor_c",
    ):
        assert key in row, key
    assert row["start"] == "2026-01-20T12:00:00+01:00"
    # the cost can be audited from the JSON alone
    cost = (
        sum(
            0.25
            * (
                r["price_ct_per_kwh"] * r["grid_import_kw"]
                - r["feed_in_ct_per_kwh"] * r["grid_export_kw"]
            )
            for r in data["schedule"]
        )
        / 100
    )
    assert abs(cost - data["cost_eur"]) < 1e-3
