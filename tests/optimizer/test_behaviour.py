"""What users of the peers miss: negative prices, flat curves, fragmentation, bounded time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wattplan
from tests.optimizer.checks import check_plan
from tests.optimizer.helpers import at, tiny
from wattplan import SolverOptions, datasets
from wattplan.optimizer._inputs import prepare

ROOT = Path(__file__).parents[2]


def _blocks(kw: pd.Series) -> int:
    on = (kw.to_numpy() > 1e-6).astype(int)
    return int(np.sum(np.diff(np.concatenate(([0], on))) == 1))


def test_negative_prices_charge_curtail_and_never_export_into_them() -> None:
    sc = wattplan.load_scenario(ROOT / "scenarios" / "battery-pv-negative-prices.yaml")
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    df = plan.schedule
    neg = df.price_ct_per_kwh < 0
    assert neg.sum() > 0
    # feed-in pays nothing while spot is negative (scenario file): no export while
    # importing pays, PV curtailed instead of being pushed into the grid
    assert (df.feed_in_ct_per_kwh[neg] == 0).all()
    assert (df.grid_export_kw[neg] < 1e-6).all()
    assert (df.pv_used_kw[neg] < df.pv_available_kw[neg] - 1e-3).any(), "PV is curtailed"
    assert (df.grid_import_kw[neg] > 0).all(), "draws from the grid while it pays"
    # the battery fills up in the negative hours
    assert df["home-battery_charge_kw"][neg].sum() > 0
    # import/export arbitrage is impossible: exported energy never exceeds PV used
    assert (df.grid_export_kw <= df.pv_used_kw + 1e-9).all()


def test_flat_prices_give_a_plan_in_one_block_and_quickly() -> None:
    # evcc's CBC optimizer times out on flat tariffs; a flat curve must be solved outright
    n = 192
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11.0,
        "min_power_kw": 4.2,
        "sessions": [{"plug_in": at(6), "departure": at(40), "energy_kwh": 30.0}],
    }
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 10,
        "soc_kwh": 5,
        "max_charge_kw": 5,
        "max_discharge_kw": 5,
    }
    app = {
        "kind": "appliance",
        "name": "dw",
        "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
        "earliest_start": at(10),
        "latest_end": at(30),
    }
    for solver in ("highs", "cbc"):
        sc = tiny(
            [30.0] * n,
            [ev, bat, app],
            resolution="15min",
            solver={"name": solver, "time_limit_s": 10},
        )
        plan = wattplan.optimize(sc)
        check_plan(plan, sc)
        assert plan.status is wattplan.PlanStatus.OPTIMAL
        assert _blocks(plan.schedule["car_kw"]) == 1, "equal prices: one block, not fragments"
        assert plan.schedule["b_charge_kw"].sum() == pytest.approx(0.0, abs=1e-6)


def test_start_penalty_trades_cents_for_fewer_blocks() -> None:
    sc = wattplan.load_scenario(ROOT / "scenarios" / "full-household-48h.yaml")
    sessions = [s.model_dump() for s in sc.device("car").sessions]
    free = wattplan.optimize(sc.with_device_state("car", start_penalty_eur=0.0, sessions=sessions))
    paid = wattplan.optimize(sc.with_device_state("car", start_penalty_eur=0.05, sessions=sessions))
    assert _blocks(paid.schedule["car_kw"]) < _blocks(free.schedule["car_kw"])
    assert _blocks(paid.schedule["car_kw"]) <= 3
    assert paid.cost_eur >= free.cost_eur - 1e-6
    assert paid.cost_eur - free.cost_eur < 0.25, "a few cents, not euros"


def test_min_run_time_is_exact() -> None:
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 11.0,
        "min_power_kw": 0.0,
        "efficiency": 1.0,
        "min_run_minutes": 120,
        "sessions": [{"plug_in": at(0), "departure": at(8), "energy_kwh": 22.0}],
    }
    prices = [10.0, 50.0, 10.0, 50.0, 10.0, 50.0, 50.0, 50.0]
    plan = wattplan.optimize(tiny(prices, [ev]))
    kw = plan.schedule["car_kw"].to_numpy()
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], kw > 1e-6, [0])).astype(int))))[::2]
    assert (runs >= 2).all(), f"runs shorter than 2 h: {kw}"


def test_cbc_and_highs_agree_on_the_full_household() -> None:
    sc = wattplan.load_scenario(ROOT / "scenarios" / "full-household-48h.yaml")
    highs = wattplan.optimize(sc)
    cbc = wattplan.optimize(sc, solver=SolverOptions(name="cbc", time_limit_s=30))
    check_plan(cbc, sc)
    assert cbc.solver == "cbc" and highs.solver == "highs"
    # both within the MIP gap of each other (the objective includes small penalty terms)
    assert cbc.cost_eur == pytest.approx(highs.cost_eur, rel=5e-3)


@pytest.mark.parametrize(
    ("day", "hours"), [("2025-03-30", 23), ("2024-10-27", 25), ("2025-06-01", 24)]
)
def test_hourly_prices_on_dst_days(day: str, hours: int) -> None:
    start = pd.Timestamp(day, tz="Europe/Berlin")
    end = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize("Europe/Berlin")
    prices = datasets.all_in_price_ct_per_kwh(datasets.read_day_ahead_prices(start, end))
    assert len(prices) == hours
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 7.4,
        "efficiency": 0.92,
        "sessions": [
            {
                "plug_in": start.isoformat(),
                "departure": (start + pd.Timedelta(hours=8)).isoformat(),
                "energy_kwh": 20.0,
            }
        ],
    }
    for res, slots in (("60min", hours), ("15min", 4 * hours)):
        sc = wattplan.scenario_from_dict(
            {"start": start.isoformat(), "end": end.isoformat(), "resolution": res, "devices": [ev]}
        )
        plan = wattplan.optimize(sc, prices=prices)
        check_plan(plan, sc)
        assert len(plan.schedule) == slots
        # hourly prices repeated onto quarter-hours, never shifted by the clock change
        local = plan.schedule.price_ct_per_kwh.to_numpy()
        expect = np.repeat(prices.to_numpy(), slots // hours)
        assert np.allclose(local, expect)


def test_baseline_is_the_households_usual_behaviour() -> None:
    ev = {
        "kind": "ev",
        "name": "car",
        "max_power_kw": 10.0,
        "min_power_kw": 0.0,
        "efficiency": 1.0,
        "sessions": [{"plug_in": at(1), "departure": at(6), "energy_kwh": 15.0}],
    }
    app = {
        "kind": "appliance",
        "name": "dw",
        "profile_kw": [1.0, 2.0],
        "earliest_start": at(2),
        "latest_end": at(6),
    }
    prices = [40.0, 40.0, 30.0, 20.0, 10.0, 10.0]
    plan = wattplan.optimize(tiny(prices, [ev, app]))
    base = plan.baseline_schedule
    assert base is not None
    assert base["car_kw"].tolist() == pytest.approx([0, 10, 5, 0, 0, 0])
    assert base["dw_kw"].tolist() == pytest.approx([0, 0, 1, 2, 0, 0])
    expected = (10 * 40 + (5 + 1) * 30 + 2 * 20) / 100
    assert plan.baseline_bill_eur == pytest.approx(expected)
    assert plan.cost_eur == pytest.approx(
        (10 * 10 + 5 * 10 + 1 * 10 + 2 * 10) / 100 + 0.0, abs=0.02
    )
    assert plan.savings_eur == pytest.approx(plan.baseline_cost_eur - plan.cost_eur)


def test_baseline_end_state_is_valued_like_for_like() -> None:
    # greedy self-consumption empties the battery into the evening; the plan keeps it (its
    # wear is not worth it at flat prices). Both end states are valued at the terminal price
    # (here the lower quartile of the import prices, 30 ct/kWh), so the two valued bills are equal.
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 10,
        "soc_kwh": 8,
        "max_charge_kw": 5,
        "max_discharge_kw": 5,
    }
    sc = tiny([30.0] * 6, [bat], site={"base_load": 1.0})
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.terminal_prices_ct_per_kwh["b"] == pytest.approx(30.0)
    # the baseline covers 6 kWh from the battery (6/0.95 kWh stored): at 30 ct × 0.95 per
    # stored kWh that is worth exactly the 1.80 EUR of grid energy the plan buys instead
    assert plan.baseline_bill_eur == pytest.approx(0.0)
    assert plan.cost_eur == pytest.approx(1.80)
    assert plan.baseline_adjustment_eur == pytest.approx(1.80)
    assert plan.baseline_cost_eur == pytest.approx(
        plan.baseline_bill_eur + plan.baseline_adjustment_eur
    )
    assert plan.savings_eur == pytest.approx(0.0, abs=1e-6)
    assert plan.savings_eur >= -1e-6
    assert "Like-for-like" in plan.explanation
    # a terminal price below the import price: discharging now pays, like the baseline
    cheap = tiny([30.0] * 6, [bat], site={"base_load": 1.0, "terminal_price_ct_per_kwh": 20.0})
    plan = wattplan.optimize(cheap)
    check_plan(plan, cheap)
    assert plan.schedule["b_kw"].sum() == pytest.approx(-6.0)
    assert plan.savings_eur == pytest.approx(0.0, abs=1e-6)


def test_end_soc_rule_stays_available_as_an_option() -> None:
    bat = {
        "kind": "battery",
        "name": "b",
        "capacity_kwh": 10,
        "soc_kwh": 8,
        "max_charge_kw": 5,
        "max_discharge_kw": 5,
        "end_soc_kwh": "start",
    }
    # cheap now, dear later, but the terminal value is low: without the rule the battery
    # would sell its energy into the dear slots and end empty
    site = {"base_load": 2.0, "terminal_price_ct_per_kwh": 1.0}
    sc = tiny([10.0, 10.0, 50.0, 50.0, 50.0, 50.0], [bat], site=site)
    plan = wattplan.optimize(sc)
    check_plan(plan, sc)
    assert plan.schedule["b_soc_kwh"].iloc[-1] >= 8.0 - 1e-6
    free = tiny([10.0, 10.0, 50.0, 50.0, 50.0, 50.0], [{**bat, "end_soc_kwh": None}], site=site)
    plan_free = wattplan.optimize(free)
    check_plan(plan_free, free)
    assert plan_free.schedule["b_soc_kwh"].iloc[-1] < 1.0


def test_plan_renders_for_notebooks_and_plots(tmp_path: Path) -> None:
    sc = wattplan.load_scenario(ROOT / "scenarios" / "full-household-48h.yaml")
    plan = wattplan.optimize(sc)
    html = plan._repr_html_()
    assert "savings" in html and "car" in html
    fig = plan.plot()
    axes = fig.get_axes()
    assert axes[0].get_ylabel() == "price (ct/kWh)"
    assert "local time" in axes[2].get_xlabel()
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert "Plan(status='optimal'" in repr(plan)


def test_optimize_leaves_its_inputs_alone() -> None:
    sc = wattplan.load_scenario(ROOT / "scenarios" / "ev-overnight.yaml")
    before = sc.model_dump_json()
    wattplan.optimize(sc)
    assert sc.model_dump_json() == before


def test_plot_shows_itself_in_a_fresh_kernel() -> None:
    plan = wattplan.optimize(wattplan.load_scenario(ROOT / "scenarios" / "ev-overnight.yaml"))
    png = plan.plot()._repr_png_()  # what IPython displays without %matplotlib
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_pv_no_talk_of_curtailing() -> None:
    plan = wattplan.optimize(tiny([10.0, -5.0, 20.0], []))
    assert "negative import prices" in plan.explanation
    assert "PV" not in plan.explanation


def test_the_slot_grid_hands_out_its_index_afresh() -> None:
    # the grid computes its index once; a caller naming it (as the schedule does) must not
    # rename the grid's own
    grid = prepare(tiny([30.0, 31.0, 32.0])).grid
    index = grid.index
    index.name = "start"
    assert grid.index.name is None
    assert len(grid.index) == grid.n == 3
