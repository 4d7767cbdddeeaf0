"""Plan stability in the planner: every re-plan gets the customer's last stored plan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import wattplan
from wattplan.exceptions import ConfigurationError
from wattplan.planner import Customer, Planner, PlanStore
from wattplan.planner._household import demo_household
from wattplan.planner.config import load_config

from .conftest import (
    BERLIN,
    FakeClock,
    FakeOptimizer,
    FakePriceSource,
    fake_customer,
)


class RecordingOptimize:
    """The real optimizer, recording what each call was given."""

    def __init__(self) -> None:
        self.previous: list[Any] = []
        self.stability: list[Any] = []
        self.plans: list[wattplan.Plan] = []

    def __call__(
        self, scenario: Any, prices: pd.Series, *, previous_plan: Any = None, stability: Any = None
    ) -> wattplan.Plan:
        self.previous.append(previous_plan)
        self.stability.append(stability)
        plan = wattplan.optimize(
            scenario, prices=prices, previous_plan=previous_plan, stability=stability
        )
        self.plans.append(plan)
        return plan


def _household(start: datetime, end: datetime) -> Any:
    return demo_household(start, end, dishwasher=False)


def _customer() -> Customer:
    t0 = datetime(2026, 1, 20, tzinfo=BERLIN)
    return Customer(
        id="c1", scenario=_household(t0, t0.replace(day=21)), scenario_factory=_household
    )


def test_a_replan_gets_the_last_stored_plan_and_keeps_its_running_slot(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    optimize = RecordingOptimize()
    settings = wattplan.Stability(ct_per_kwh=0.8, hours=4)
    planner = Planner(
        customers=[_customer()],
        store=store,
        prices=source,
        optimize=optimize,
        clock=clock,
        stability=settings,
    )
    assert planner.run_once().planned == ["c1"]
    first = store.latest_plan("c1")
    assert first is not None
    assert optimize.previous == [None]  # nothing to keep to yet
    assert first.document["stability_cost_eur"] is None

    clock.set(datetime(2026, 1, 20, 14, 30, tzinfo=BERLIN))  # tomorrow's prices are out
    assert planner.run_once().planned == ["c1"]
    second = store.latest_plan("c1")
    assert second is not None and second.id != first.id
    assert optimize.previous[1] == first.document  # the stored plan, as stored
    assert optimize.stability[1] is settings
    assert second.document["stability_cost_eur"] is not None
    # the running slot (14:30) keeps what the first plan had for it, device by device
    old = {row["start"]: row for row in first.document["schedule"]}
    new_row = second.document["schedule"][0]
    assert new_row["start"] == datetime(2026, 1, 20, 14, 30, tzinfo=BERLIN).isoformat()
    for name in ("home-battery", "heat-pump"):
        assert new_row[f"{name}_kw"] == pytest.approx(old[new_row["start"]][f"{name}_kw"], abs=1e-6)


def test_previous_plan_off_or_an_optimize_without_the_keyword_replans_afresh(
    store: PlanStore, clock: FakeClock, source: FakePriceSource
) -> None:
    optimize = RecordingOptimize()
    planner = Planner(
        customers=[_customer()],
        store=store,
        prices=source,
        optimize=optimize,
        clock=clock,
        previous_plan=False,
    )
    planner.run_once()
    clock.set(datetime(2026, 1, 20, 14, 30, tzinfo=BERLIN))
    planner.run_once()
    assert optimize.previous == [None, None]
    assert store.latest_plan("c1").document["stability_cost_eur"] is None  # type: ignore[union-attr]

    # an optimize function of two arguments keeps working (it gets no previous plan)
    fake = FakeOptimizer()
    clock.set(datetime(2026, 1, 20, 9, 0, tzinfo=BERLIN))
    other = Planner(
        customers=[fake_customer("c2")],
        store=store,
        prices=source,
        optimize=fake,
        clock=clock,
    )
    other.run_once()
    clock.set(datetime(2026, 1, 20, 14, 30, tzinfo=BERLIN))
    assert other.run_once().planned == ["c2"]
    assert len(fake.calls) == 2


def test_config_stability_section(tmp_path: Path) -> None:
    config = tmp_path / "planner.yaml"
    config.write_text("customers: [{id: c1, scenario: s.yaml}]\n")
    default = load_config(config).stability
    assert default.enabled and default.settings() == wattplan.Stability()
    config.write_text(
        "customers: [{id: c1, scenario: s.yaml}]\n"
        "stability: {enabled: false, ct_per_kwh: 1.5, hours: 3, freeze_running_slot: false}\n"
    )
    loaded = load_config(config).stability
    assert not loaded.enabled
    assert loaded.settings() == wattplan.Stability(
        ct_per_kwh=1.5, hours=3, freeze_running_slot=False
    )
    config.write_text(
        "customers: [{id: c1, scenario: s.yaml}]\nstability: {ct_per_kwh: -1, hours: 200}\n"
    )
    with pytest.raises(ConfigurationError) as info:
        load_config(config)
    assert "stability.ct_per_kwh" in str(info.value)
    assert "stability.hours" in str(info.value)
