"""``optimize``: scenario (+ prices) → Plan, as a pure function (no I/O, no global state)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from wattplan.exceptions import OptimizationError
from wattplan.optimizer._flows import (
    Flows,
    baseline_violations,
    bill_eur,
    end_values_eur,
    flows_from_model,
    penalties_eur,
    simulate_baseline,
)
from wattplan.optimizer._inputs import Inputs, prepare
from wattplan.optimizer._model import Model, build_model, net_grid_exchange
from wattplan.optimizer._plan import Plan, PlanStatus, Shortfall
from wattplan.optimizer._scenario import Scenario, SolverOptions, Stability
from wattplan.optimizer._solve import SolveOutcome, SolveResult, solve
from wattplan.optimizer._stability import (
    PreviousIn,
    PreviousPlan,
    frozen_mismatch,
    prepare_previous,
    stability_cost_eur,
    stability_note,
)
from wattplan.optimizer._timeseries import FloatArray

__all__ = ["optimize"]

log = logging.getLogger(__name__)

_EPS_KWH = 1e-4
_EPS_K = 1e-3


def _schedule(inputs: Inputs, fl: Flows) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "price_ct_per_kwh": inputs.price,
        "feed_in_ct_per_kwh": inputs.feed_in,
        "base_load_kw": inputs.base_load,
        "pv_available_kw": inputs.pv,
        "pv_used_kw": fl.pv_used_kw,
        "grid_import_kw": fl.grid_import_kw,
        "grid_export_kw": fl.grid_export_kw,
    }
    for dev in inputs.scenario.devices:
        cols[f"{dev.name}_kw"] = fl.device_kw[dev.name]
    for name in fl.charge_kw:
        cols[f"{name}_charge_kw"] = fl.charge_kw[name]
        cols[f"{name}_discharge_kw"] = fl.discharge_kw[name]
    for name, arr in fl.export_kw.items():
        cols[f"{name}_export_kw"] = arr
    for name, arr in fl.soc_kwh.items():
        cols[f"{name}_soc_kwh"] = arr
    for name, arr in fl.charged_kwh.items():
        cols[f"{name}_charged_kwh"] = arr
    for hp in inputs.heat_pumps:
        name = hp.dev.name
        cols[f"{name}_indoor_c"] = fl.indoor_c[name]
        cols[f"{name}_heat_kw"] = fl.heat_kw[name]
        cols[f"{name}_outdoor_c"] = hp.outdoor_c
        cols[f"{name}_cop"] = hp.cop
        cols[f"{name}_comfort_min_c"] = hp.comfort_min_c
        cols[f"{name}_comfort_max_c"] = hp.comfort_max_c
    df = pd.DataFrame(cols, index=inputs.grid.index)
    df.index.name = "start"
    return df


def _device_costs(inputs: Inputs, fl: Flows) -> dict[str, float]:
    """Each device's energy valued at the import price of its slots (attribution), EUR.

    What a device discharges to the grid (``export_kw``) earns the feed-in price instead.
    """
    dt, p, f = inputs.dt_h, inputs.price, inputs.feed_in
    out = {}
    for name, kw in fl.device_kw.items():
        exp = fl.export_kw.get(name)
        ct = p * kw if exp is None else p * (kw + exp) - f * exp
        out[name] = float(np.sum(dt * ct) / 100.0)
    return out


def _end_state_notes(
    inputs: Inputs, plan: Flows, base: Flows, values: dict[str, float], bvalues: dict[str, float]
) -> list[str]:
    """Where the plan leaves a different end state than the baseline, and its worth."""
    notes: list[str] = []
    for bat in inputs.batteries:
        name = bat.dev.name
        ds = float(plan.soc_kwh[name][-1] - base.soc_kwh[name][-1])
        if abs(ds) > 1e-3:
            v = values[name] - bvalues[name]
            notes.append(f"{name} ends {ds:+.2f} kWh against the baseline ({v:+.2f} EUR)")
    for ev in inputs.evs:
        name = ev.dev.name
        de = plan.ev_delivered_kwh[name] - base.ev_delivered_kwh[name]
        v = values[name] - bvalues[name]
        if abs(v) > 5e-4:
            notes.append(f"{name} gets {de:+.2f} kWh against the baseline ({v:+.2f} EUR)")
    for hp in inputs.heat_pumps:
        name = hp.dev.name
        dth = float(plan.indoor_c[name][-1] - base.indoor_c[name][-1])
        if abs(dth) > 1e-3:
            v = values[name] - bvalues[name]
            notes.append(
                f"{name} leaves the house {dth:+.2f} K against the baseline ({v:+.2f} EUR)"
            )
    return notes


def _periods(
    grid_index: pd.DatetimeIndex, mask: npt.NDArray[np.bool_], res_min: int
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return out
    splits = np.flatnonzero(np.diff(idx) > 1) + 1
    for block in np.split(idx, splits):
        out.append((grid_index[block[0]], grid_index[block[-1]] + pd.Timedelta(minutes=res_min)))
    return out


def _fmt(ts: pd.Timestamp, tz: str) -> str:
    return ts.tz_convert(tz).strftime("%a %H:%M")


def _fmt_periods(periods: list[tuple[pd.Timestamp, pd.Timestamp]], tz: str) -> str:
    shown = [f"{_fmt(a, tz)}–{_fmt(b, tz)}" for a, b in periods[:4]]
    more = f" and {len(periods) - 4} more" if len(periods) > 4 else ""
    return ", ".join(shown) + more


def _dimmed_within(inputs: Inputs, name: str, first: int, last: int) -> bool:
    cap = inputs.dimming_kw.get(name)
    return cap is not None and bool(np.isfinite(cap[first:last]).any())


def _shortfalls(model: Model, inputs: Inputs, fl: Flows) -> list[Shortfall]:
    tz = inputs.scenario.timezone
    res = inputs.grid.resolution_minutes
    idx = inputs.grid.index
    out: list[Shortfall] = []
    for ev in model.evs:
        d = ev.spec.dev
        for s in ev.spec.sessions:
            short = ev.shortfall[s.index].varValue or 0.0
            if short > _EPS_KWH:
                sess = d.sessions[s.index]
                dep = pd.Timestamp(sess.departure).tz_convert("UTC")
                why = (
                    "the car is not plugged in for a whole slot within the horizon"
                    if s.last <= s.first
                    else "the plug-in window is too short for the charging power"
                )
                if _dimmed_within(inputs, d.name, s.first, s.last):
                    why += " under the dimming cap (grid signal)"
                out.append(
                    Shortfall(
                        d.name,
                        "energy",
                        short,
                        "kWh",
                        pd.Timestamp(sess.plug_in).tz_convert("UTC"),
                        dep,
                        f"{d.name} falls {short:.2f} kWh short of its target by "
                        f"{_fmt(dep, tz)}: {why}",
                    )
                )
    for bat in model.batteries:
        short = 0.0 if bat.end_short is None else bat.end_short.varValue or 0.0
        if short > _EPS_KWH:
            out.append(
                Shortfall(
                    bat.spec.dev.name,
                    "end_soc",
                    short,
                    "kWh",
                    None,
                    inputs.grid.end,
                    f"{bat.spec.dev.name} ends {short:.2f} kWh below its end target",
                )
            )
    for hp in model.heat_pumps:
        name = hp.spec.dev.name
        for kind, arr, word in (
            ("comfort", hp.too_cold, "below"),
            ("comfort", hp.too_warm, "above"),
        ):
            dev_k = np.array([v.varValue or 0.0 for v in arr])
            mask = dev_k > _EPS_K
            if mask.any():
                kh = float(dev_k.sum() * inputs.dt_h)
                periods = _periods(idx, mask, res)
                out.append(
                    Shortfall(
                        name,
                        kind,
                        kh,
                        "K·h",
                        periods[0][0],
                        periods[-1][1],
                        f"{name}: {kh:.2f} K·h {word} the comfort band (up to "
                        f"{dev_k.max():.2f} K), {_fmt_periods(periods, tz)}"
                        + (" (dimmed by a grid signal)" if name in inputs.dimming_kw else ""),
                    )
                )
        end_short = 0.0 if hp.end_short is None else hp.end_short.varValue or 0.0
        if end_short > _EPS_K and hp.spec.end_c is not None:
            out.append(
                Shortfall(
                    name,
                    "end_temperature",
                    end_short,
                    "K",
                    None,
                    inputs.grid.end,
                    f"{name} ends {end_short:.2f} K below its end temperature "
                    f"({hp.spec.end_c:.1f} °C)",
                )
            )
    for app in model.appliances:
        if app.not_run is not None and (app.not_run.varValue or 0.0) > 0.5:
            ad = app.spec.dev
            out.append(
                Shortfall(
                    ad.name,
                    "not_run",
                    1.0,
                    "run",
                    pd.Timestamp(ad.earliest_start).tz_convert("UTC"),
                    pd.Timestamp(ad.latest_end).tz_convert("UTC"),
                    f"{ad.name} cannot run: {app.spec.note or 'no feasible start'}",
                )
            )
    over = np.array([v.varValue or 0.0 for v in model.o])
    if (over > 1e-6).any():
        kwh = float(over.sum() * inputs.dt_h)
        periods = _periods(idx, over > 1e-6, res)
        out.append(
            Shortfall(
                "site",
                "grid_limit",
                kwh,
                "kWh",
                periods[0][0],
                periods[-1][1],
                f"the household needs {kwh:.2f} kWh above the grid import limit, "
                f"{_fmt_periods(periods, tz)}",
            )
        )
    return out


def _avg_price(price: FloatArray, kw: FloatArray) -> float | None:
    w = np.clip(kw, 0.0, None)
    total = float(w.sum())
    return float(np.sum(price * w) / total) if total > 1e-9 else None


def _exported_note(inputs: Inputs, plan: Flows, name: str) -> str:
    """' (x kWh of it to the grid at y ct/kWh feed-in)' where a device exports."""
    exp = plan.export_kw.get(name)
    if exp is None or float(exp.sum() * inputs.dt_h) < 1e-3:
        return ""
    fp = _avg_price(inputs.feed_in, exp)
    return f" ({float(exp.sum() * inputs.dt_h):.1f} kWh of it to the grid at {fp:.1f} ct/kWh)"


def _discharge_note(inputs: Inputs, plan: Flows, name: str, verb: str) -> str:
    """'; gives back x kWh when power costs y ct/kWh on average' for a discharging car."""
    dis = plan.discharge_kw.get(name)
    if dis is None or float(dis.sum() * inputs.dt_h) < 1e-3:
        return ""
    dp = _avg_price(inputs.price, dis)
    return (
        f"; {verb} {float(dis.sum() * inputs.dt_h):.1f} kWh when power costs {dp:.1f} ct/kWh "
        "on average" + _exported_note(inputs, plan, name)
    )


def _explain(
    inputs: Inputs,
    plan: Flows,
    base: Flows,
    costs: dict[str, float],
    base_costs: dict[str, float],
    cost: float,
    base_cost: float,
    adj_notes: list[str],
    shortfalls: list[Shortfall],
    values: dict[str, float] | None = None,
    bvalues: dict[str, float] | None = None,
) -> tuple[str, dict[str, str]]:
    """The explanation lines. A device's saving is the difference of its valued costs:
    attributed cost less the worth of what it leaves stored (``values``, ``bvalues``)."""
    tz = inputs.scenario.timezone

    def saved(name: str) -> float:
        left = (values or {}).get(name, 0.0) - (bvalues or {}).get(name, 0.0)
        return base_costs[name] - costs[name] + left

    dt = inputs.dt_h
    p = inputs.price
    res = inputs.grid.resolution_minutes
    idx = inputs.grid.index
    per: dict[str, str] = {}
    for ev in inputs.evs:
        name = ev.dev.name
        kw = plan.charge_kw.get(name, plan.device_kw[name])
        energy = float(kw.sum() * dt)
        periods = _periods(idx, kw > 1e-3, res)
        if energy < 1e-3:
            short = any(s.device == name and s.kind == "energy" for s in shortfalls)
            per[name] = (
                f"{name}: cannot charge in this horizon (see the shortfall)."
                if short
                else f"{name}: no charging needed in this horizon"
                + _discharge_note(inputs, plan, name, "gives back")
                + "."
            )
            continue
        ap, bp = _avg_price(p, kw), _avg_price(p, base.device_kw[name])
        text = (
            f"{name}: charges {energy:.1f} kWh from the grid side in {len(periods)} block"
            f"{'s' if len(periods) != 1 else ''} ({_fmt_periods(periods, tz)}) at "
            f"{ap:.1f} ct/kWh on average"
        )
        if bp is not None:
            text += f"; charging at plug-in would pay {bp:.1f} ct/kWh"
        text += _discharge_note(inputs, plan, name, "gives back")
        text += f"; saves {saved(name):.2f} EUR."
        per[name] = text
    for bat in inputs.batteries:
        name = bat.dev.name
        kw = plan.device_kw[name]
        ch, dis = np.clip(kw, 0, None), np.clip(-kw, 0, None)
        e_ch, e_dis = float(ch.sum() * dt), float(dis.sum() * dt)
        if e_ch + e_dis < 1e-3:
            per[name] = f"{name}: stays idle (no price spread worth its losses and wear)."
            continue
        cp, dp = _avg_price(p, ch), _avg_price(p, dis)
        per[name] = (
            f"{name}: charges {e_ch:.1f} kWh"
            + (f" at {cp:.1f} ct/kWh on average" if cp is not None else "")
            + f" and discharges {e_dis:.1f} kWh"
            + (f" when power costs {dp:.1f} ct/kWh on average" if dp is not None else "")
            + _exported_note(inputs, plan, name)
            + f"; ends at {plan.soc_kwh[name][-1]:.1f} kWh (greedy self-consumption would end at "
            f"{base.soc_kwh[name][-1]:.1f} kWh)."
        )
    for hp in inputs.heat_pumps:
        name = hp.dev.name
        kw = plan.device_kw[name]
        energy = float(kw.sum() * dt)
        temps = plan.indoor_c[name]
        ap, bp = _avg_price(p, kw), _avg_price(p, base.device_kw[name])
        text = f"{name}: uses {energy:.1f} kWh"
        if ap is not None:
            text += f" at {ap:.1f} ct/kWh on average"
        if bp is not None:
            text += f" (holding the set point would pay {bp:.1f} ct/kWh)"
        text += (
            f"; indoor {float(temps.min()):.1f}–{float(temps.max()):.1f} °C; saves "
            f"{saved(name):.2f} EUR."
        )
        per[name] = text
    for app in inputs.appliances:
        name = app.dev.name
        start = plan.appliance_start.get(name)
        if start is None:
            per[name] = f"{name}: does not run in this horizon." + (
                f" ({app.note})" if app.note else ""
            )
            continue
        end_ts = idx[start] + pd.Timedelta(minutes=res * len(app.profile_kw))
        ap = _avg_price(p, plan.device_kw[name])
        bstart = base.appliance_start.get(name)
        text = (
            f"{name}: starts {_fmt(idx[start], tz)}, done by {_fmt(end_ts, tz)}, at {ap:.1f} ct/kWh"
        )
        if bstart is not None and bstart != start:
            bp = _avg_price(p, base.device_kw[name])
            text += f" (starting {_fmt(idx[bstart], tz)} would pay {bp:.1f} ct/kWh)"
        text += f"; saves {saved(name):.2f} EUR."
        per[name] = text
    saving = base_cost - cost
    pct = 100.0 * saving / abs(base_cost) if abs(base_cost) > 1e-9 else 0.0
    lines = [
        f"The plan costs {cost:.2f} EUR against {base_cost:.2f} EUR for the household's usual "
        f"behaviour: it saves {saving:.2f} EUR ({pct:.1f} %)."
    ]
    negative = inputs.price < 0
    if negative.any():
        text = (
            f"{int(negative.sum())} slots have negative import prices: the plan draws from "
            "the grid then"
        )
        if (inputs.pv[negative] > 0).any():
            curtailed = float(np.sum((inputs.pv - plan.pv_used_kw)[negative]) * dt)
            text += f" and curtails {curtailed:.1f} kWh of PV" if curtailed > 1e-3 else ""
        lines.append(text + ".")
    lines.extend(per[d.name] for d in inputs.scenario.devices)
    if adj_notes:
        lines.append(
            "Like-for-like: what each side leaves stored at the end is valued at the "
            f"terminal price ({inputs.terminal_ct:.1f} ct/kWh unless a device sets its own), "
            "in the objective and in the saving alike; the baseline cost includes the "
            "difference (" + "; ".join(adj_notes) + ")."
        )
    lines.extend(f"Shortfall: {s.message}." for s in shortfalls)
    return "\n".join(lines), per


@dataclass
class _DimmingReport:
    moved_kwh: dict[str, float]  # per dimmed device
    out_kwh: dict[str, float]  # of it, what left the dimmed windows (net per window)
    cost_eur: float | None  # valued bill with dimming less without; None if not solved
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]  # dimmed slots, by device


def _dimming_report(inputs: Inputs, fl: Flows, opts: SolverOptions) -> _DimmingReport | None:
    """What the dimming windows moved: the plan against the same household undimmed.

    ``moved_kwh`` per device is the energy the optimal undimmed plan draws in the device's
    dimmed slots beyond what the dimmed plan draws there (battery: charging), i.e. what the
    caps pushed out of their windows. It takes a second solve, made only when a window
    binds somewhere in the horizon.
    """
    if not inputs.dimming_kw:
        return None
    idx, res = inputs.grid.index, inputs.grid.resolution_minutes
    windows = {
        name: _periods(idx, np.isfinite(cap), res) for name, cap in inputs.dimming_kw.items()
    }
    free = build_model(replace(inputs, dimming_kw={}))
    try:
        outcome = solve(free, opts).outcome
    except OptimizationError as exc:
        log.warning("%s: no plan without dimming to compare with: %s", inputs.scenario.name, exc)
        outcome = SolveOutcome.FAILED
    if outcome not in (SolveOutcome.OPTIMAL, SolveOutcome.TIME_LIMIT):
        nan = float("nan")
        blank = dict.fromkeys(inputs.dimming_kw, nan)
        return _DimmingReport(blank, dict(blank), None, windows)
    net_grid_exchange(free)
    ref = flows_from_model(free)
    moved: dict[str, float] = {}
    out: dict[str, float] = {}
    for name, cap in inputs.dimming_kw.items():
        mine = fl.charge_kw.get(name, fl.device_kw[name])
        theirs = ref.charge_kw.get(name, ref.device_kw[name])
        dimmed = np.isfinite(cap)
        moved[name] = float(np.maximum(theirs - mine, 0.0)[dimmed].sum() * inputs.dt_h)
        # per contiguous window, the net energy that left it (shifts inside it cancel)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], dimmed.astype(np.int8), [0]])))
        out[name] = sum(
            max(0.0, float((theirs - mine)[a:b].sum()) * inputs.dt_h)
            for a, b in zip(edges[::2], edges[1::2], strict=True)
        )

    def valued(f: Flows) -> float:
        return bill_eur(inputs, f) - sum(end_values_eur(inputs, f).values())

    return _DimmingReport(moved, out, valued(fl) - valued(ref), windows)


def _dimming_line(inputs: Inputs, rep: _DimmingReport) -> str:
    tz = inputs.scenario.timezone
    parts = []
    for name, periods in rep.windows.items():
        caps = inputs.dimming_kw[name]
        lo = float(caps[np.isfinite(caps)].min())
        parts.append(
            f"{name} to {lo:g} kW {_fmt_periods(periods, tz)} ({rep.moved_kwh[name]:.2f} kWh moved)"
        )
    total, out = sum(rep.moved_kwh.values()), sum(rep.out_kwh.values())
    text = (
        "Grid signal (§14a EnWG): dimmed " + "; ".join(parts) + f". Against the optimal plan "
        f"without dimming, {total:.2f} kWh left the dimmed slots, {out:.2f} kWh of it the "
        "dimmed windows (the rest moved within them)"
    )
    if rep.cost_eur is not None:
        text += f" at a cost of {rep.cost_eur:.2f} EUR"
    return text + "."


def _terminal_prices(inputs: Inputs) -> dict[str, float]:
    out = {"site": inputs.terminal_ct}
    out.update({b.dev.name: b.terminal_ct for b in inputs.batteries})
    out.update({e.dev.name: e.terminal_ct for e in inputs.evs})
    out.update({h.dev.name: h.terminal_ct for h in inputs.heat_pumps})
    return out


def _empty_plan(
    scenario: Scenario,
    inputs: Inputs,
    status: PlanStatus,
    solver: str,
    build_s: float,
    solve_s: float,
    message: str,
    base: Flows,
) -> Plan:
    base_cost = bill_eur(inputs, base)
    bvalues = end_values_eur(inputs, base)
    return Plan(
        status=status,
        schedule=pd.DataFrame(index=inputs.grid.index[:0]),
        cost_eur=float("nan"),
        baseline_cost_eur=base_cost,
        savings_eur=float("nan"),
        baseline_bill_eur=base_cost,
        baseline_adjustment_eur=0.0,
        end_value_eur=float("nan"),
        baseline_end_value_eur=sum(bvalues.values()),
        end_values_eur={},
        baseline_end_values_eur=bvalues,
        terminal_prices_ct_per_kwh=_terminal_prices(inputs),
        device_costs_eur={},
        baseline_device_costs_eur=_device_costs(inputs, base),
        shortfalls=[],
        solver=solver,
        build_seconds=build_s,
        solve_seconds=solve_s,
        mip_gap=None,
        resolution_minutes=inputs.grid.resolution_minutes,
        devices=[{"name": d.name, "kind": d.kind} for d in scenario.devices],
        timezone=scenario.timezone,
        explanation=message,
        baseline_schedule=_schedule(inputs, base),
        scenario_name=scenario.name,
        message=message,
    )


def _solve_unfrozen(
    inputs: Inputs, previous: PreviousIn, cap: float | None, opts: SolverOptions
) -> tuple[Model, SolveResult, PreviousIn]:
    """Solve again without the frozen first slot (kept only where feasible)."""
    log.warning("%s: the frozen first slot is infeasible; solving without it", inputs.scenario.name)
    skipped = {name: "infeasible with the other devices' state" for name in previous.frozen_kw}
    loose = PreviousIn(previous.settings, previous.window, previous.kw, {}, skipped)
    model = build_model(inputs, cap_eur=cap, previous=loose)
    return model, solve(model, opts), loose


def optimize(
    scenario: Scenario,
    *,
    prices: pd.Series | None = None,
    solver: SolverOptions | None = None,
    previous_plan: PreviousPlan | None = None,
    stability: Stability | None = None,
) -> Plan:
    """Plan ``scenario`` at least cost; compare it with the household's usual behaviour.

    Parameters
    ----------
    scenario
        The household and horizon (see :func:`load_scenario`).
    prices
        All-in import prices in ct/kWh with a tz-aware index of interval starts (e.g.
        ``NomosClient.prices_series(...)``); replaces the scenario's prices. Hourly prices
        are repeated onto a 15-minute grid; they must cover the whole horizon.
    solver
        Replaces ``scenario.solver`` (solver name, time limit, MIP gap).
    previous_plan
        The plan published before this re-plan: a :class:`Plan`, its ``schedule``
        DataFrame or its JSON form (``Plan.to_dict()``). The first slot (running now) keeps
        its device powers where feasible, and deviating from it within the next hours
        costs a small price that is not money (see :class:`Stability`); the plan reports
        it as ``stability_cost_eur``. Devices and slots it does not cover are free.
    stability
        Replaces ``scenario.stability`` (price per kWh of deviation, window, freezing).

    Returns
    -------
    Plan
        ``status`` is ``optimal`` or ``feasible_with_shortfall`` when a schedule was made;
        ``infeasible`` or ``error`` otherwise (with ``message``).

    Raises
    ------
    ScenarioError, PriceDataError
        Invalid input, naming the key and the reason.
    SolverTimeoutError
        No feasible plan within the time limit.
    """
    opts = solver or scenario.solver
    inputs = prepare(scenario, prices)
    base = simulate_baseline(inputs)
    base_bill = bill_eur(inputs, base)
    base_penalty = penalties_eur(inputs, base)
    previous = None
    if previous_plan is not None:
        previous = prepare_previous(inputs, previous_plan, stability or scenario.stability)
    # a baseline that does not keep the frozen first slot is not a point of the model
    violations = baseline_violations(inputs, base) + frozen_mismatch(previous, base)
    # the baseline as a point of the model: its money (in the objective's terms) and
    # penalties cap the plan's, so the plan never does worse than the household's usual
    # behaviour when that behaviour keeps every rule of the model
    cap = None
    if not violations:
        cap = base_bill - sum(end_values_eur(inputs, base, absolute=True).values()) + base_penalty
    t0 = time.perf_counter()
    model = build_model(inputs, cap_eur=cap, previous=previous)
    build_s = time.perf_counter() - t0
    result = solve(model, opts)
    if result.outcome is SolveOutcome.INFEASIBLE and previous and previous.frozen_kw:
        model, result, previous = _solve_unfrozen(inputs, previous, cap, opts)
    if result.outcome is SolveOutcome.INFEASIBLE and model.capped:
        # only numerical trouble can get here (the baseline itself satisfies the cap)
        log.warning("%s: infeasible with the baseline cap; solving without it", scenario.name)
        model = build_model(inputs, previous=previous)
        result = solve(model, opts)
    if result.outcome in (SolveOutcome.OPTIMAL, SolveOutcome.TIME_LIMIT):
        net_grid_exchange(model)
    log.debug(
        "solved %s: %d columns, %d binaries, build %.3f s, solve %.3f s, %s",
        scenario.name,
        len(model.variables),
        model.n_binaries,
        build_s,
        result.seconds,
        result.message,
    )
    if result.outcome in (SolveOutcome.INFEASIBLE, SolveOutcome.FAILED):
        status = (
            PlanStatus.INFEASIBLE if result.outcome is SolveOutcome.INFEASIBLE else PlanStatus.ERROR
        )
        msg = f"{result.solver}: {result.message}"
        return _empty_plan(
            scenario, inputs, status, result.solver, build_s, result.seconds, msg, base
        )

    fl = flows_from_model(model)
    cost = bill_eur(inputs, fl)
    values, bvalues = end_values_eur(inputs, fl), end_values_eur(inputs, base)
    adj = sum(values.values()) - sum(bvalues.values())
    adj_notes = _end_state_notes(inputs, fl, base, values, bvalues)
    base_cost = base_bill + adj
    costs, base_costs = _device_costs(inputs, fl), _device_costs(inputs, base)
    shortfalls = _shortfalls(model, inputs, fl)
    explanation, per = _explain(
        inputs,
        fl,
        base,
        costs,
        base_costs,
        cost,
        base_cost,
        adj_notes,
        shortfalls,
        values=values,
        bvalues=bvalues,
    )
    dimming = _dimming_report(inputs, fl, opts)
    if dimming is not None:
        explanation += "\n" + _dimming_line(inputs, dimming)
    note = stability_note(previous, inputs, fl, scenario.timezone)
    explanation += f"\n{note}" if note else ""
    message = ""
    if result.outcome is SolveOutcome.TIME_LIMIT:
        message = f"stopped at the {opts.time_limit_s:g} s time limit with a feasible plan"
        if result.mip_gap is not None:
            message += f" (MIP gap {100 * result.mip_gap:.2f} %)"
    return Plan(
        status=PlanStatus.FEASIBLE_WITH_SHORTFALL if shortfalls else PlanStatus.OPTIMAL,
        schedule=_schedule(inputs, fl),
        cost_eur=cost,
        baseline_cost_eur=base_cost,
        savings_eur=base_cost - cost,
        baseline_bill_eur=base_bill,
        baseline_adjustment_eur=adj,
        end_value_eur=sum(values.values()),
        baseline_end_value_eur=sum(bvalues.values()),
        end_values_eur=values,
        baseline_end_values_eur=bvalues,
        terminal_prices_ct_per_kwh=_terminal_prices(inputs),
        baseline_feasible=not violations and base_penalty < 1e-9,
        device_costs_eur=costs,
        baseline_device_costs_eur=base_costs,
        shortfalls=shortfalls,
        solver=result.solver,
        build_seconds=build_s,
        solve_seconds=result.seconds,
        mip_gap=result.mip_gap,
        resolution_minutes=inputs.grid.resolution_minutes,
        devices=[{"name": d.name, "kind": d.kind} for d in scenario.devices],
        timezone=scenario.timezone,
        explanation=explanation,
        device_explanations=per,
        baseline_schedule=_schedule(inputs, base),
        scenario_name=scenario.name,
        message=message,
        dimming_moved_kwh=None if dimming is None else sum(dimming.moved_kwh.values()),
        dimming_moved_kwh_by_device={} if dimming is None else dimming.moved_kwh,
        stability_cost_eur=stability_cost_eur(previous, inputs, fl),
    )
