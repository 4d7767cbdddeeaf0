"""Per-slot flows of a schedule, from the solved LP or from the baseline simulation.

The same structure carries both, so that costs, the schedule table and the comparison
are computed by one piece of code for the plan and for the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wattplan.optimizer._inputs import EVIn, Inputs
from wattplan.optimizer._model import Model, values
from wattplan.optimizer._timeseries import FloatArray

__all__ = [
    "Flows",
    "baseline_violations",
    "bill_eur",
    "end_values_eur",
    "flows_from_model",
    "penalties_eur",
    "simulate_baseline",
]


@dataclass
class Flows:
    grid_import_kw: FloatArray
    grid_export_kw: FloatArray
    pv_used_kw: FloatArray
    device_kw: dict[str, FloatArray] = field(default_factory=dict)
    soc_kwh: dict[str, FloatArray] = field(default_factory=dict)  # after each slot
    charged_kwh: dict[str, FloatArray] = field(default_factory=dict)  # EV, cumulative
    indoor_c: dict[str, FloatArray] = field(default_factory=dict)  # after each slot
    heat_kw: dict[str, FloatArray] = field(default_factory=dict)
    charge_kw: dict[str, FloatArray] = field(default_factory=dict)  # battery, v2h EV; ≥ 0
    discharge_kw: dict[str, FloatArray] = field(default_factory=dict)  # battery, v2h EV; ≥ 0
    # the part of each storing device's discharge that goes to the grid (export beyond PV,
    # shared by discharge power); only when site.export_only_pv is false
    export_kw: dict[str, FloatArray] = field(default_factory=dict)
    ev_delivered_kwh: dict[str, float] = field(default_factory=dict)  # into the car battery
    ev_session_kwh: dict[str, list[float]] = field(default_factory=dict)  # per session
    appliance_start: dict[str, int | None] = field(default_factory=dict)


def bill_eur(inputs: Inputs, flows: Flows) -> float:
    """What the household pays for the horizon: Σ Δ·(p·import − f·export) / 100."""
    dt = inputs.dt_h
    return float(
        np.sum(dt * (inputs.price * flows.grid_import_kw - inputs.feed_in * flows.grid_export_kw))
        / 100.0
    )


def end_values_eur(inputs: Inputs, flows: Flows, *, absolute: bool = False) -> dict[str, float]:
    """What each storing device leaves behind, at its terminal price, EUR.

    Battery: stored energy above ``soc_min_kwh`` × discharge efficiency; EV: energy
    delivered above each session's floor (within its ceiling) / charging efficiency; heat
    pump: K above the end of the comfort band × heat capacity / mean COP. With
    ``absolute`` the reference levels are dropped (0 kWh, 0 °C): that is the linear
    expression in the objective, which differs from the reported value by a constant.
    """
    out: dict[str, float] = {}
    for bat in inputs.batteries:
        d = bat.dev
        ref = 0.0 if absolute else d.soc_min_kwh
        soc = float(flows.soc_kwh[d.name][-1])
        out[d.name] = bat.terminal_ct * d.discharge_efficiency * (soc - ref) / 100.0
    for ev in inputs.evs:
        got = flows.ev_session_kwh[ev.dev.name]
        extra = sum(
            min(max(0.0, e - s.required_kwh), s.max_kwh - s.required_kwh)
            for s, e in zip(ev.sessions, got, strict=True)
            if s.last > s.first
        )
        out[ev.dev.name] = ev.terminal_ct / ev.dev.efficiency * extra / 100.0
    for hp in inputs.heat_pumps:
        ref = 0.0 if absolute else float(hp.comfort_min_c[-1])
        out[hp.dev.name] = hp.eur_per_kelvin * (float(flows.indoor_c[hp.dev.name][-1]) - ref)
    return out


def penalties_eur(inputs: Inputs, flows: Flows) -> float:
    """The soft-constraint penalties of a schedule, priced as in the objective, EUR."""
    pen = inputs.scenario.penalties
    dt = inputs.dt_h
    limit = inputs.import_limit_kw
    total = float(np.sum(np.maximum(flows.grid_import_kw - limit, 0.0)) * dt)
    total *= pen.grid_overload_eur_per_kwh
    for ev in inputs.evs:
        for s, e in zip(ev.sessions, flows.ev_session_kwh[ev.dev.name], strict=True):
            total += max(0.0, s.required_kwh - e) * pen.shortfall_eur_per_kwh
    for bat in inputs.batteries:
        if bat.end_kwh is not None:
            short = bat.end_kwh - float(flows.soc_kwh[bat.dev.name][-1])
            total += max(0.0, short) * pen.shortfall_eur_per_kwh
    for hp in inputs.heat_pumps:
        theta = flows.indoor_c[hp.dev.name]
        outside = np.maximum(hp.comfort_min_c - theta, 0.0) + np.maximum(
            theta - hp.comfort_max_c, 0.0
        )
        total += float(outside.sum()) * dt * pen.comfort_eur_per_kelvin_hour
        if hp.end_c is not None:
            total += max(0.0, hp.end_c - float(theta[-1])) * pen.comfort_eur_per_kelvin_hour
    for app in inputs.appliances:
        if app.active and flows.appliance_start.get(app.dev.name) is None:
            total += pen.not_run_eur
    return total


def _short_runs(on: np.ndarray, first: int, last: int, k: int) -> bool:
    """Whether a block of ``on`` slots in [first, last) starts and stops within k slots."""
    t = first
    while t < last:
        if on[t]:
            run = 0
            while t + run < last and on[t + run]:
                run += 1
            if run < min(k, last - t):
                return True
            t += run
        else:
            t += 1
    return False


def baseline_violations(inputs: Inputs, flows: Flows) -> list[str]:
    """The model's hard rules that a (baseline) schedule breaks; empty when it is feasible.

    Soft targets (shortfalls, comfort, the grid limit) are not rules here: they are priced.
    """
    out: list[str] = []
    res = inputs.grid.resolution_minutes
    for ev in inputs.evs:
        d = ev.dev
        kw = flows.device_kw[d.name]
        on = kw > 1e-9
        if (kw[on] < (d.min_power_kw or 0.0) - 1e-9).any():
            out.append(f"{d.name} charges below its minimum power")
        for s, e in zip(ev.sessions, flows.ev_session_kwh[d.name], strict=True):
            if e > (s.net_max_kwh if s.discharge else s.max_kwh) + 1e-9:
                out.append(f"{d.name} charges beyond its ceiling")
            k = -(-d.min_run_minutes // res)
            if k > 1 and _short_runs(on, s.first, s.last, k):
                out.append(f"{d.name} charges in a block shorter than min_run_minutes")
    for hp in inputs.heat_pumps:
        hd = hp.dev
        k = -(-hd.min_run_minutes // res)
        if k > 1:
            h = flows.device_kw[hd.name]
            on = h > 1e-9
            if (h[on] < 0.01 * hd.max_power_kw - 1e-9).any() or _short_runs(
                on, 0, inputs.grid.n, k
            ):
                out.append(f"{hd.name} runs in a block shorter than min_run_minutes")
    return out


def flows_from_model(model: Model) -> Flows:
    inp = model.inputs
    n = inp.grid.n
    imp = values(model.u) + values(model.o)
    exp = np.zeros(n)
    pv = np.zeros(n)
    for t, var in model.e.items():
        exp[t] = var.varValue or 0.0
    for t, var in model.v.items():
        pv[t] = var.varValue or 0.0
    fl = Flows(np.maximum(imp, 0.0), np.maximum(exp, 0.0), np.maximum(pv, 0.0))
    for ev in model.evs:
        name = ev.spec.dev.name
        kw = np.zeros(n)
        for t, var in ev.x.items():
            kw[t] = max(0.0, var.varValue or 0.0)
        dis = np.zeros(n)
        for t, var in ev.y.items():
            dis[t] = max(0.0, var.varValue or 0.0)
        fl.device_kw[name] = kw - dis
        _ev_states(inp, fl, ev.spec, kw, dis)
    for bat in model.batteries:
        name = bat.spec.dev.name
        fl.charge_kw[name] = np.maximum(values(bat.c), 0.0)
        fl.discharge_kw[name] = np.maximum(values(bat.d), 0.0)
        fl.device_kw[name] = fl.charge_kw[name] - fl.discharge_kw[name]
        fl.soc_kwh[name] = values(bat.soc)
    for hp in model.heat_pumps:
        name = hp.spec.dev.name
        h = np.maximum(values(hp.h), 0.0)
        fl.device_kw[name] = h
        fl.heat_kw[name] = h * hp.spec.cop
        fl.indoor_c[name] = values(hp.theta)
    for app in model.appliances:
        name = app.spec.dev.name
        start = None
        for s, var in app.y.items():
            if (var.varValue or 0.0) > 0.5:
                start = s
        fl.device_kw[name] = _appliance_kw(n, app.spec.profile_kw, start)
        fl.appliance_start[name] = start
    _storage_export(inp, fl)
    return fl


def _storage_export(inp: Inputs, fl: Flows) -> None:
    """Attribute export beyond the PV used to the discharging devices, by their power.

    Without ``site.export_only_pv`` export may exceed the PV used; the rest comes from
    discharging (import and export never meet in one slot), so it is at most their sum.
    """
    if inp.scenario.site.export_only_pv:
        return
    beyond = np.maximum(fl.grid_export_kw - fl.pv_used_kw, 0.0)
    total = sum((fl.discharge_kw[name] for name in fl.discharge_kw), np.zeros(inp.grid.n))
    share = np.divide(beyond, total, out=np.zeros_like(beyond), where=total > 1e-9)
    share = np.minimum(share, 1.0)
    for name, dis in fl.discharge_kw.items():
        fl.export_kw[name] = dis * share


def _appliance_kw(n: int, profile: FloatArray, start: int | None) -> FloatArray:
    kw = np.zeros(n)
    if start is not None:
        kw[start : start + len(profile)] = profile
    return kw


def _ev_states(
    inp: Inputs, fl: Flows, spec: EVIn, kw: FloatArray, dis: FloatArray | None = None
) -> None:
    name, eff = spec.dev.name, spec.dev.efficiency
    delivered = kw * eff * inp.dt_h
    if spec.dev.v2h:
        dis = np.zeros(inp.grid.n) if dis is None else dis
        delivered = delivered - dis * inp.dt_h / spec.dev.v2h_discharge_efficiency
        fl.charge_kw[name] = kw
        fl.discharge_kw[name] = dis
    fl.ev_delivered_kwh[name] = float(delivered.sum())
    fl.ev_session_kwh[name] = [float(delivered[s.first : s.last].sum()) for s in spec.sessions]
    cum = np.full(inp.grid.n, np.nan)
    soc = np.full(inp.grid.n, np.nan)
    track_soc = any(s.soc_kwh is not None for s in spec.sessions)
    for s in spec.sessions:
        seg = np.cumsum(delivered[s.first : s.last])
        cum[s.first : s.last] = seg
        if s.soc_kwh is not None:
            soc[s.first : s.last] = s.soc_kwh + seg
    fl.charged_kwh[name] = cum
    if track_soc:
        fl.soc_kwh[name] = soc


def _baseline_top(inputs: Inputs, name: str, max_kw: float) -> FloatArray:
    """A device's most power per slot in the baseline: its maximum, or a dimming cap.

    The grid operator's controller caps the device whether or not wattplan plans it; the
    baseline keeps the whole device power below the cap (ignoring PV that could cover
    more), so it stays a feasible point of the model. A battery needs no cap here: the
    baseline charges it from PV surplus only.
    """
    cap = inputs.dimming_kw.get(name)
    top = np.full(inputs.grid.n, max_kw)
    return top if cap is None else np.minimum(top, cap)


def simulate_baseline(inputs: Inputs) -> Flows:
    """What the household does without wattplan (DESIGN.md §3, Baseline).

    EV charges at full power from plug-in until the session's target is met (a remainder
    below the minimum power shares the slot before it, or is left out when the target is
    smaller than one slot at minimum power); appliances start at
    ``earliest_start``; the heat pump holds its set point like an ideal thermostat; the
    battery does greedy self-consumption (charges from PV surplus only, discharges into the
    house's demand); PV surplus is exported up to the limit, the rest curtailed.
    """
    n, dt = inputs.grid.n, inputs.dt_h
    fl = Flows(np.zeros(n), np.zeros(n), np.zeros(n))
    demand = inputs.base_load.copy()
    for ev in inputs.evs:
        d = ev.dev
        kw = np.zeros(n)
        mn = d.min_power_kw or 0.0
        top = _baseline_top(inputs, d.name, d.max_power_kw)
        for s in ev.sessions:
            left = s.target_kwh
            for t in range(s.first, s.last):
                if left <= 1e-9:
                    break
                p = min(top[t], left / (d.efficiency * dt))
                if p < mn - 1e-9:
                    if t > s.first and kw[t - 1] + p >= 2 * mn and mn <= top[t] + 1e-9:
                        kw[t - 1] += p - mn  # the same energy in two slots at ≥ minimum
                        p = mn
                    else:
                        p = 0.0  # less than one slot at minimum power: cannot be charged
                kw[t] = p
                left -= p * d.efficiency * dt
        fl.device_kw[d.name] = kw
        _ev_states(inputs, fl, ev, kw)
        demand += kw
    for hp in inputs.heat_pumps:
        hd = hp.dev
        b = hd.building
        k = dt / b.heat_capacity_kwh_per_k
        a = 1.0 - k * b.heat_loss_kw_per_k
        theta = b.indoor_c
        h = np.zeros(n)
        temps = np.zeros(n)
        top = _baseline_top(inputs, hd.name, hd.max_power_kw)
        for t in range(n):
            driven = k * (b.heat_loss_kw_per_k * hp.outdoor_c[t] + hp.gains_kw[t])
            need = (hp.setpoint_c - a * theta - driven) / (k * hp.cop[t])
            h[t] = min(max(need, 0.0), top[t])
            theta = a * theta + k * hp.cop[t] * h[t] + driven
            temps[t] = theta
        fl.device_kw[hd.name] = h
        fl.heat_kw[hd.name] = h * hp.cop
        fl.indoor_c[hd.name] = temps
        demand += h
    for app in inputs.appliances:
        start = app.starts[0] if app.starts else None
        kw = _appliance_kw(n, app.profile_kw, start)
        fl.device_kw[app.dev.name] = kw
        fl.appliance_start[app.dev.name] = start
        demand += kw
    net = demand - inputs.pv  # > 0: deficit, < 0: PV surplus
    for bat in inputs.batteries:
        bd = bat.dev
        soc = bd.soc_kwh
        kw = np.zeros(n)
        socs = np.zeros(n)
        for t in range(n):
            if net[t] < 0:
                room = (bd.top_kwh - soc) / (bd.charge_efficiency * dt)
                c = min(-net[t], bd.max_charge_kw, max(room, 0.0))
                kw[t] = c
                soc += c * bd.charge_efficiency * dt
            elif net[t] > 0:
                avail = (soc - bd.soc_min_kwh) * bd.discharge_efficiency / dt
                dis = min(net[t], bd.max_discharge_kw, max(avail, 0.0))
                kw[t] = -dis
                soc -= dis / bd.discharge_efficiency * dt
            socs[t] = soc
            net[t] += kw[t]
        fl.device_kw[bd.name] = kw
        fl.charge_kw[bd.name] = np.maximum(kw, 0.0)
        fl.discharge_kw[bd.name] = np.maximum(-kw, 0.0)
        fl.soc_kwh[bd.name] = socs
    fl.grid_import_kw = np.maximum(net, 0.0)
    surplus = np.maximum(-net, 0.0)
    fl.grid_export_kw = np.minimum(surplus, inputs.scenario.site.grid_export_limit_kw)
    fl.pv_used_kw = inputs.pv - (surplus - fl.grid_export_kw)
    _storage_export(inputs, fl)
    return fl
