"""An independent audit of a Plan: every constraint of DESIGN.md §3 re-checked from the
schedule and the scenario alone (not from the LP), and the cost recomputed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattplan import (
    EV,
    Appliance,
    Battery,
    EVSession,
    HeatPump,
    Plan,
    PlanStatus,
    Scenario,
    TimeSeries,
)

TOL = 1e-6


def _slot_ok(
    index: pd.DatetimeIndex, step: pd.Timedelta, a: pd.Timestamp, b: pd.Timestamp
) -> np.ndarray:
    """Slots that lie wholly inside [a, b)."""
    return np.asarray((index >= a) & (index + step <= b))


def recompute_cost_eur(plan: Plan) -> float:
    df = plan.schedule
    dt = plan.resolution_minutes / 60.0
    return float(
        (
            dt
            * (df.price_ct_per_kwh * df.grid_import_kw - df.feed_in_ct_per_kwh * df.grid_export_kw)
        ).sum()
        / 100.0
    )


def check_plan(plan: Plan, scenario: Scenario) -> None:
    """Assert every physical constraint and the cost; raise AssertionError naming the first."""
    assert plan.status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE_WITH_SHORTFALL), plan.message
    df = plan.schedule
    idx = pd.DatetimeIndex(df.index)
    assert str(idx.tz) == "UTC"
    step = pd.Timedelta(minutes=plan.resolution_minutes)
    dt = plan.resolution_minutes / 60.0
    expected = int((pd.Timestamp(scenario.end) - pd.Timestamp(scenario.start)) / step)
    assert len(df) == expected, f"{len(df)} slots, expected {expected}"
    assert (np.diff(idx.as_unit("ns").asi8) == step.value).all(), "slots are not contiguous"
    site = scenario.site

    # site bounds and balance
    imp, exp, pv = df.grid_import_kw, df.grid_export_kw, df.pv_used_kw
    grid_short = sum(s.amount for s in plan.shortfalls if s.kind == "grid_limit")
    assert (imp >= -TOL).all() and (exp >= -TOL).all()
    limit = import_limit_kw(scenario, idx, step)
    over = np.clip(imp - limit, 0, None).sum() * dt
    assert abs(over - grid_short) < 1e-4, f"grid overload {over} vs reported {grid_short}"
    assert (exp <= site.grid_export_limit_kw + TOL).all()
    assert (pv >= -TOL).all() and (pv <= df.pv_available_kw + TOL).all()
    assert not ((imp > 1e-5) & (exp > 1e-5)).any(), "import and export in the same slot"
    _check_export(df, scenario)
    devices = sum(df[f"{d.name}_kw"] for d in scenario.devices) if scenario.devices else 0.0
    balance = imp - exp + pv - devices - df.base_load_kw
    assert np.abs(balance).max() < 1e-5, f"grid balance off by {np.abs(balance).max()}"

    for dev in scenario.devices:
        kw = df[f"{dev.name}_kw"].to_numpy()
        if isinstance(dev, EV):
            _check_ev(plan, dev, df, idx, step, dt, scenario)
        elif isinstance(dev, Battery):
            _check_battery(plan, dev, df, dt)
        elif isinstance(dev, HeatPump):
            _check_heat_pump(plan, dev, df, dt)
        elif isinstance(dev, Appliance):
            _check_appliance(plan, dev, kw, idx, step)

    check_dimming(plan, scenario)

    cost = recompute_cost_eur(plan)
    assert abs(cost - plan.cost_eur) < 1e-6, f"cost {plan.cost_eur} != recomputed {cost}"
    # a device's energy at the import price of its slots; what it sends to the grid at the
    # feed-in price
    dev_costs = {}
    for d in scenario.devices:
        to_grid = df.get(f"{d.name}_export_kw", pd.Series(0.0, index=df.index))
        house = df[f"{d.name}_kw"] + to_grid
        ct = df.price_ct_per_kwh * house - df.feed_in_ct_per_kwh * to_grid
        dev_costs[d.name] = float((dt * ct).sum() / 100)
    for name, value in dev_costs.items():
        assert abs(plan.device_costs_eur[name] - value) < 1e-6
    assert abs(plan.savings_eur - (plan.baseline_cost_eur - plan.cost_eur)) < 1e-9
    check_end_values(plan, scenario)


def _storing(scenario: Scenario) -> list[EV | Battery]:
    return [d for d in scenario.devices if isinstance(d, Battery) or (isinstance(d, EV) and d.v2h)]


def _check_export(df: pd.DataFrame, scenario: Scenario) -> None:
    """Export from PV only by default; otherwise what goes beyond PV comes from discharging,
    attributed to the devices (``<name>_export_kw``) within their discharge."""
    exp, pv = df.grid_export_kw.to_numpy(), df.pv_used_kw.to_numpy()
    names = [d.name for d in _storing(scenario)]
    if scenario.site.export_only_pv:
        assert (exp <= pv + TOL).all(), "export must come from PV"
        assert not any(f"{n}_export_kw" in df for n in names), "export columns by default"
        return
    beyond = np.clip(exp - pv, 0, None)
    dis = sum((df[f"{n}_discharge_kw"].to_numpy() for n in names), np.zeros(len(df)))
    assert (beyond <= dis + 1e-5).all(), "export beyond PV without discharging"
    attributed = sum((df[f"{n}_export_kw"].to_numpy() for n in names), np.zeros(len(df)))
    assert np.abs(attributed - beyond).max(initial=0.0) < 1e-5, "export attribution"
    for n in names:
        to_grid = df[f"{n}_export_kw"].to_numpy()
        assert (to_grid >= -TOL).all() and (to_grid <= df[f"{n}_discharge_kw"] + TOL).all()


def ev_energy_kwh(dev: EV, df: pd.DataFrame, dt: float) -> np.ndarray:
    """Energy into (out of, when negative) the car's battery per slot, from the schedule."""
    if not dev.v2h:
        return np.asarray(df[f"{dev.name}_kw"].to_numpy() * dev.efficiency * dt)
    c = df[f"{dev.name}_charge_kw"].to_numpy()
    d = df[f"{dev.name}_discharge_kw"].to_numpy()
    eff_d = dev.discharge_efficiency or dev.efficiency
    return np.asarray((c * dev.efficiency - d / eff_d) * dt)


def terminal_price(scenario: Scenario, plan: Plan, own: float | None) -> float:
    """The terminal price by the documented rule: the device's, the site's, or the lower
    quartile of the horizon's import prices (never below zero)."""
    if own is not None:
        return own
    site = scenario.site.terminal_price_ct_per_kwh
    if site is not None:
        return site
    return max(0.0, float(np.percentile(plan.schedule.price_ct_per_kwh, 25)))


def end_values(plan: Plan, scenario: Scenario, df: pd.DataFrame) -> dict[str, float]:
    """What a schedule leaves stored at the end, valued by hand from the schedule."""
    out: dict[str, float] = {}
    idx = pd.DatetimeIndex(df.index)
    step = pd.Timedelta(minutes=plan.resolution_minutes)
    dt = plan.resolution_minutes / 60.0
    for dev in scenario.devices:
        if isinstance(dev, Battery):
            p = terminal_price(scenario, plan, dev.terminal_price_ct_per_kwh)
            soc = float(df[f"{dev.name}_soc_kwh"].iloc[-1])
            out[dev.name] = p * dev.discharge_efficiency * (soc - dev.soc_min_kwh) / 100
        elif isinstance(dev, EV):
            p = terminal_price(scenario, plan, dev.terminal_price_ct_per_kwh)
            energy = ev_energy_kwh(dev, df, dt)
            extra = 0.0
            for s in dev.sessions:
                inside = _slot_ok(idx, step, pd.Timestamp(s.plug_in), pd.Timestamp(s.departure))
                if not inside.any():
                    continue
                floor = _floor(dev, s.needed_kwh(), pd.Timestamp(s.departure), scenario)
                got = float(energy[inside].sum())
                extra += min(max(0.0, got - floor), s.ceiling_kwh() - floor)
            out[dev.name] = p / dev.efficiency * extra / 100
        elif isinstance(dev, HeatPump):
            p = terminal_price(scenario, plan, dev.terminal_price_ct_per_kwh)
            theta = float(df[f"{dev.name}_indoor_c"].iloc[-1])
            low = float(df[f"{dev.name}_comfort_min_c"].iloc[-1])
            cop = float(df[f"{dev.name}_cop"].mean())
            c = dev.building.heat_capacity_kwh_per_k
            out[dev.name] = p / 100 * c * (theta - low) / cop
    return out


def check_end_values(plan: Plan, scenario: Scenario) -> None:
    """End values recomputed by hand; the saving is the difference of the valued bills."""
    mine = end_values(plan, scenario, plan.schedule)
    for name, value in mine.items():
        assert abs(plan.end_values_eur[name] - value) < 1e-6, f"{name} end value"
    assert plan.baseline_schedule is not None
    base = end_values(plan, scenario, plan.baseline_schedule)
    for name, value in base.items():
        assert abs(plan.baseline_end_values_eur[name] - value) < 1e-6, f"{name} baseline value"
    valued_plan = recompute_cost_eur(plan) - sum(mine.values())
    base_bill = float(
        (
            plan.resolution_minutes
            / 60.0
            * (
                plan.baseline_schedule.price_ct_per_kwh * plan.baseline_schedule.grid_import_kw
                - plan.baseline_schedule.feed_in_ct_per_kwh * plan.baseline_schedule.grid_export_kw
            )
        ).sum()
        / 100.0
    )
    valued_base = base_bill - sum(base.values())
    assert abs(plan.savings_eur - (valued_base - valued_plan)) < 1e-6, "saving ≠ valued bills"


def _floor(dev: EV, need: float, departure: pd.Timestamp, scenario: Scenario) -> float:
    """The part of a session's target that must be charged within the horizon."""
    horizon_end = pd.Timestamp(scenario.end)
    if departure > horizon_end:
        later = dev.max_power_kw * dev.efficiency * (departure - horizon_end).total_seconds() / 3600
        return max(0.0, need - later)
    return need


def _check_ev(
    plan: Plan,
    dev: EV,
    df: pd.DataFrame,
    idx: pd.DatetimeIndex,
    step: pd.Timedelta,
    dt: float,
    scenario: Scenario,
) -> None:
    kw = df[f"{dev.name}_kw"].to_numpy()
    energy = ev_energy_kwh(dev, df, dt)
    if dev.v2h:
        c = df[f"{dev.name}_charge_kw"].to_numpy()
        d = df[f"{dev.name}_discharge_kw"].to_numpy()
        assert np.allclose(kw, c - d, atol=TOL)
        pd_max = dev.max_discharge_kw or dev.max_power_kw
        assert (d >= -TOL).all() and (d <= pd_max + TOL).all(), f"{dev.name} discharge bound"
        assert not ((c > 1e-5) & (d > 1e-5)).any(), f"{dev.name} charges and discharges at once"
        kw = c
    assert (kw >= -TOL).all() and (kw <= dev.max_power_kw + TOL).all(), f"{dev.name} power bound"
    allowed = np.zeros(len(kw), dtype=bool)
    for s in dev.sessions:
        a, b = pd.Timestamp(s.plug_in), pd.Timestamp(s.departure)
        inside = _slot_ok(idx, step, a, b)
        allowed |= inside
        delivered = float(energy[inside].sum())
        if dev.v2h:
            _check_v2h_path(dev, s, np.cumsum(energy[inside]))
        need = _floor(dev, s.needed_kwh(), b, scenario)
        short = sum(
            x.amount
            for x in plan.shortfalls
            if x.device == dev.name and x.kind == "energy" and x.end == b.tz_convert("UTC")
        )
        assert delivered + short >= need - 1e-4, f"{dev.name}: {delivered} + {short} < {need}"
        if short > 1e-4:
            assert delivered < need
        assert delivered <= s.ceiling_kwh() + 1e-4, f"{dev.name} charges beyond its ceiling"
        if s.soc_kwh is not None and dev.capacity_kwh is not None:
            assert s.soc_kwh + delivered <= dev.capacity_kwh + 1e-4
    assert (np.abs(df[f"{dev.name}_kw"].to_numpy()[~allowed]) < TOL).all(), (
        f"{dev.name} charges or discharges while not plugged in"
    )
    mn = dev.min_power_kw or 0.0
    on = kw > 1e-5
    assert (kw[on] >= mn - 1e-5).all(), f"{dev.name} below its minimum power"


def _check_v2h_path(dev: EV, s: EVSession, path: np.ndarray) -> None:
    """The energy in a bidirectional car after each slot, relative to plug-in: never below
    v2h_min_soc_kwh (or the plug-in level when the SoC is unknown), never above the
    session's ceiling nor the capacity; no discharging in a session that starts below
    v2h_min_soc_kwh."""
    if path.size == 0:
        return
    top = s.ceiling_kwh()
    low = 0.0
    if s.soc_kwh is not None:
        if dev.capacity_kwh is not None:
            top = min(top, dev.capacity_kwh - s.soc_kwh)
        vmin = dev.v2h_min_soc_kwh or 0.0
        if s.soc_kwh >= vmin:
            low = vmin - s.soc_kwh
        else:
            steps = np.diff(np.concatenate(([0.0], path)))
            assert (steps >= -1e-6).all(), f"{dev.name} discharges below v2h_min_soc_kwh"
    assert path.min() >= low - 1e-5, f"{dev.name} drawn below its floor: {path.min()} < {low}"
    assert path.max() <= max(top, 0.0) + 1e-5, f"{dev.name} above its ceiling"


def _check_battery(plan: Plan, dev: Battery, df: pd.DataFrame, dt: float) -> None:
    c = df[f"{dev.name}_charge_kw"].to_numpy()
    d = df[f"{dev.name}_discharge_kw"].to_numpy()
    soc = df[f"{dev.name}_soc_kwh"].to_numpy()
    assert (c >= -TOL).all() and (c <= dev.max_charge_kw + TOL).all()
    assert (d >= -TOL).all() and (d <= dev.max_discharge_kw + TOL).all()
    assert not ((c > 1e-5) & (d > 1e-5)).any(), f"{dev.name} charges and discharges at once"
    assert np.allclose(df[f"{dev.name}_kw"], c - d, atol=TOL)
    prev = np.concatenate(([dev.soc_kwh], soc[:-1]))
    expect = prev + dt * (dev.charge_efficiency * c - d / dev.discharge_efficiency)
    assert np.abs(soc - expect).max() < 1e-6, "SoC recursion"
    assert (soc >= dev.soc_min_kwh - 1e-6).all() and (soc <= dev.top_kwh + 1e-6).all()
    end_target = dev.soc_kwh if dev.end_soc_kwh == "start" else dev.end_soc_kwh
    short = sum(x.amount for x in plan.shortfalls if x.device == dev.name and x.kind == "end_soc")
    if isinstance(end_target, float):
        assert soc[-1] + short >= end_target - 1e-5


def _check_heat_pump(plan: Plan, dev: HeatPump, df: pd.DataFrame, dt: float) -> None:
    h = df[f"{dev.name}_kw"].to_numpy()
    theta = df[f"{dev.name}_indoor_c"].to_numpy()
    cop = df[f"{dev.name}_cop"].to_numpy()
    out = df[f"{dev.name}_outdoor_c"].to_numpy()
    lo = df[f"{dev.name}_comfort_min_c"].to_numpy()
    hi = df[f"{dev.name}_comfort_max_c"].to_numpy()
    b = dev.building
    gains = np.full(len(h), float(b.gains_kw)) if isinstance(b.gains_kw, float) else None
    assert gains is not None, "checks support constant gains only"
    assert (h >= -TOL).all() and (h <= dev.max_power_kw + TOL).all()
    prev = np.concatenate(([b.indoor_c], theta[:-1]))
    expect = prev + dt / b.heat_capacity_kwh_per_k * (
        cop * h - b.heat_loss_kw_per_k * (prev - out) + gains
    )
    assert np.abs(theta - expect).max() < 1e-6, "temperature recursion"
    outside = (np.clip(lo - theta, 0, None) + np.clip(theta - hi, 0, None)).sum() * dt
    reported = sum(
        x.amount for x in plan.shortfalls if x.device == dev.name and x.kind == "comfort"
    )
    assert abs(outside - reported) < 1e-3, f"comfort violation {outside} K·h vs reported {reported}"


def _check_appliance(
    plan: Plan, dev: Appliance, kw: np.ndarray, idx: pd.DatetimeIndex, step: pd.Timedelta
) -> None:
    on = np.flatnonzero(kw > 1e-9)
    if not any(s.device == dev.name and s.kind == "not_run" for s in plan.shortfalls):
        assert on.size > 0, f"{dev.name} did not run"
    if on.size:
        start = int(on[0])
        prof = np.asarray(dev.profile_kw)
        assert np.allclose(kw[start : start + len(prof)], prof), f"{dev.name} profile broken"
        assert np.abs(np.delete(kw, range(start, start + len(prof)))).max(initial=0) < 1e-9
        assert idx[start] >= pd.Timestamp(dev.earliest_start)
        assert idx[start] + step * len(prof) <= pd.Timestamp(dev.latest_end)


def import_limit_kw(scenario: Scenario, idx: pd.DatetimeIndex, step: pd.Timedelta) -> np.ndarray:
    """The grid import limit per slot, by hand: a number, one value a slot, or an indexed
    series averaged over each slot minute by minute."""
    value = scenario.site.grid_import_limit_kw
    if not isinstance(value, TimeSeries):
        return np.full(len(idx), float(value))
    assert value.values is not None
    vals = np.asarray(value.values, dtype=float) * value.scale
    if value.index is None:
        return vals
    series = pd.Series(vals, index=pd.DatetimeIndex(value.index).tz_convert("UTC")).sort_index()
    minutes = pd.date_range(idx[0], idx[-1] + step, freq="1min", inclusive="left")
    per_minute = series.reindex(series.index.union(minutes)).ffill().reindex(minutes)
    return per_minute.groupby(np.arange(len(minutes)) // int(step / pd.Timedelta("1min"))).mean()


def dimming_caps(plan: Plan, scenario: Scenario) -> dict[str, np.ndarray]:
    """Per device with dimming windows, the cap per slot (inf where none): every slot that
    overlaps a window at all takes the lowest cap of the windows it overlaps."""
    idx = pd.DatetimeIndex(plan.schedule.index)
    step = pd.Timedelta(minutes=plan.resolution_minutes)
    out: dict[str, np.ndarray] = {}
    for dev in scenario.devices:
        windows = getattr(dev, "dimming", [])
        if not windows:
            continue
        cap = np.full(len(idx), np.inf)
        for w in windows:
            hit = np.asarray((idx < pd.Timestamp(w.end)) & (idx + step > pd.Timestamp(w.start)))
            cap[hit] = np.minimum(cap[hit], w.max_kw)
        out[dev.name] = cap
    return out


def check_dimming(plan: Plan, scenario: Scenario) -> None:
    """In dimmed slots, the power of each dimmed device above its cap (battery: charging)
    must come from own generation: PV used plus battery discharge less export."""
    df = plan.schedule
    caps = dimming_caps(plan, scenario)
    if not caps:
        return
    own = df.pv_used_kw.to_numpy() - df.grid_export_kw.to_numpy()
    for dev in scenario.devices:
        if isinstance(dev, Battery):
            own = own + df[f"{dev.name}_discharge_kw"].to_numpy()
    pv_left = np.clip(df.pv_used_kw.to_numpy() - df.grid_export_kw.to_numpy(), 0, None)
    above = np.zeros(len(df))
    for dev in scenario.devices:
        if dev.name not in caps:
            continue
        col = f"{dev.name}_charge_kw" if isinstance(dev, Battery) else f"{dev.name}_kw"
        excess = np.clip(df[col].to_numpy() - caps[dev.name], 0, None)
        if isinstance(dev, Battery):  # a dimmed battery charges beyond its cap from PV only
            assert (excess <= pv_left + 1e-5).all(), f"{dev.name} charges above its cap"
        above += excess
    worst = float((above - np.clip(own, 0, None)).max())
    assert worst < 1e-5, f"a dimmed device draws {worst:.4f} kW above its cap from the grid"
