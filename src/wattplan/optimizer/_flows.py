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

__all__ = ["Flows", "bill_eur", "flows_from_model", "simulate_baseline"]


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
    charge_kw: dict[str, FloatArray] = field(default_factory=dict)  # battery, ≥ 0
    discharge_kw: dict[str, FloatArray] = field(default_factory=dict)  # battery, ≥ 0
    ev_delivered_kwh: dict[str, float] = field(default_factory=dict)  # into the car battery
    appliance_start: dict[str, int | None] = field(default_factory=dict)


def bill_eur(inputs: Inputs, flows: Flows) -> float:
    """What the household pays for the horizon: Σ Δ·(p·import − f·export) / 100."""
    dt = inputs.dt_h
    return float(
        np.sum(dt * (inputs.price * flows.grid_import_kw - inputs.feed_in * flows.grid_export_kw))
        / 100.0
    )


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
        fl.device_kw[name] = kw
        _ev_states(inp, fl, ev.spec, kw)
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
    return fl


def _appliance_kw(n: int, profile: FloatArray, start: int | None) -> FloatArray:
    kw = np.zeros(n)
    if start is not None:
        kw[start : start + len(profile)] = profile
    return kw


def _ev_states(inp: Inputs, fl: Flows, spec: EVIn, kw: FloatArray) -> None:
    name, eff = spec.dev.name, spec.dev.efficiency
    delivered = kw * eff * inp.dt_h
    fl.ev_delivered_kwh[name] = float(delivered.sum())
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


def simulate_baseline(inputs: Inputs) -> Flows:
    """What the household does without wattplan (DESIGN.md §3, Baseline).

    EV charges at full power from plug-in until the need is met; appliances start at
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
        for s in ev.sessions:
            left = s.required_kwh
            for t in range(s.first, s.last):
                if left <= 1e-9:
                    break
                p = min(d.max_power_kw, left / (d.efficiency * dt))
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
        for t in range(n):
            driven = k * (b.heat_loss_kw_per_k * hp.outdoor_c[t] + hp.gains_kw[t])
            need = (hp.setpoint_c - a * theta - driven) / (k * hp.cop[t])
            h[t] = min(max(need, 0.0), hd.max_power_kw)
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
    return fl
