"""Plan stability across re-plans: the previous plan as an input (DESIGN.md §3, Stability).

A re-plan may be given the previously published plan. Its device powers are aligned onto
the new slots; the model then (see ``_model.add_stability``)

* freezes the first slot (the one running now) to the previous power of each device,
  clamped to what the device's limits and state allow in that slot, and
* prices ``|new − previous|`` device power over the next ``Stability.hours`` at
  ``Stability.ct_per_kwh`` (two nonnegative deviation variables per device and slot).

That price is not money: it stays out of the bill and the saving and is reported on its
own (:func:`stability_cost_eur`). Without a previous plan nothing here runs and the model
has no extra variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wattplan.exceptions import ScenarioError
from wattplan.optimizer._inputs import Inputs
from wattplan.optimizer._scenario import Stability
from wattplan.optimizer._timeseries import FloatArray

if TYPE_CHECKING:
    from wattplan.optimizer._flows import Flows

__all__ = [
    "PreviousIn",
    "PreviousPlan",
    "frozen_mismatch",
    "prepare_previous",
    "previous_frame",
    "stability_cost_eur",
    "stability_note",
]

PreviousPlan = Any  # Plan | pd.DataFrame | Mapping[str, Any] (see optimize)

_KEY = "previous_plan"
_TOL_KW = 1e-6


@dataclass
class PreviousIn:
    """The previous plan on the new grid, and what the model does with it."""

    settings: Stability
    window: int  # slots [0, window) whose deviation is priced
    kw: dict[str, FloatArray]  # per device: previous power on slots [0, window'), NaN unknown
    frozen_kw: dict[str, float] = field(default_factory=dict)  # slot 0 targets (clamped)
    skipped: dict[str, str] = field(default_factory=dict)  # devices not frozen, and why

    @property
    def eur_per_kwh(self) -> float:
        return self.settings.ct_per_kwh / 100.0


def previous_frame(previous_plan: PreviousPlan) -> tuple[pd.DataFrame, int | None]:
    """The ``<device>_kw`` columns of a previous plan (UTC index) and its slot length.

    Accepts a :class:`Plan`, its ``schedule`` DataFrame (tz-aware index of slot starts) or
    its JSON form (``Plan.to_dict()``, ``wattplan plan --json``, the planner's document).
    """
    from wattplan.optimizer._plan import Plan

    minutes: int | None = None
    if isinstance(previous_plan, Plan):
        frame, minutes = previous_plan.schedule, previous_plan.resolution_minutes
    elif isinstance(previous_plan, pd.DataFrame):
        frame = previous_plan
    elif isinstance(previous_plan, Mapping):
        frame, minutes = _frame_from_document(previous_plan)
    else:
        raise ScenarioError(
            key=_KEY,
            reason=f"must be a Plan, its schedule DataFrame or its JSON form, not "
            f"{type(previous_plan).__name__}",
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ScenarioError(key=_KEY, reason="the schedule needs a tz-aware index of slot starts")
    cols = [c for c in frame.columns if isinstance(c, str) and c.endswith("_kw")]
    numeric = all(frame[c].dtype.kind in "fiub" for c in cols)
    out = (
        frame[cols].astype(float)
        if numeric
        else pd.DataFrame(
            {c: pd.to_numeric(frame[c], errors="coerce") for c in cols}, index=frame.index
        ).astype(float)
    )
    out.index = index.tz_convert("UTC")
    out = out[~out.index.duplicated(keep="last")].sort_index()
    if minutes is None and len(out) > 1:
        minutes = int(pd.Series(out.index[1:] - out.index[:-1]).min() / pd.Timedelta(minutes=1))
    if minutes is not None and minutes <= 0:
        raise ScenarioError(key=f"{_KEY}.resolution_minutes", reason="must be positive")
    return out, minutes


def _frame_from_document(doc: Mapping[str, Any]) -> tuple[pd.DataFrame, int | None]:
    rows = doc.get("schedule")
    if not isinstance(rows, list):
        raise ScenarioError(key=f"{_KEY}.schedule", reason="must be a list of rows")
    minutes = doc.get("resolution_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
        raise ScenarioError(key=f"{_KEY}.resolution_minutes", reason="must be an integer")
    fast = _fast_frame(rows)
    if fast is not None:
        return fast, minutes
    starts: list[pd.Timestamp] = []
    data: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ScenarioError(key=f"{_KEY}.schedule[{i}]", reason="must be a mapping")
        try:
            ts = pd.Timestamp(row["start"])
        except (KeyError, TypeError, ValueError):
            raise ScenarioError(
                key=f"{_KEY}.schedule[{i}].start", reason="must be an ISO 8601 time"
            ) from None
        if ts.tzinfo is None:
            raise ScenarioError(key=f"{_KEY}.schedule[{i}].start", reason="must carry a UTC offset")
        starts.append(ts.tz_convert("UTC"))
        data.append({k: v for k, v in row.items() if isinstance(k, str) and k.endswith("_kw")})
    index = pd.DatetimeIndex(starts, tz="UTC") if starts else pd.DatetimeIndex([], tz="UTC")
    return pd.DataFrame(data, index=index), minutes


_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _fast_frame(rows: list[Any]) -> pd.DataFrame | None:
    """The document's frame in vectorised steps when every row is well-formed (as the
    planner's documents are); None sends the rows through the checks row by row."""
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        return None
    starts = [r.get("start") for r in rows]
    if not all(isinstance(t, str) and _OFFSET.search(t) for t in starts):
        return None
    try:
        index = pd.DatetimeIndex(pd.to_datetime(starts, format="ISO8601", utc=True))
    except (TypeError, ValueError):
        return None
    keys = [k for k in rows[0] if isinstance(k, str) and k.endswith("_kw")]
    if any(len(r) != len(rows[0]) or any(k not in r for k in keys) for r in rows):
        return None
    return pd.DataFrame({k: [r[k] for r in rows] for k in keys}, index=index)


def window_slots(inputs: Inputs, hours: float) -> int:
    """Slots whose start lies within ``hours`` of the horizon's start (real hours: UTC)."""
    limit = inputs.grid.start + pd.Timedelta(hours=hours)
    return int(np.count_nonzero(inputs.grid.index < limit))


def _aligned(
    column: pd.Series, grid_index: pd.DatetimeIndex, minutes: int, res_minutes: int
) -> FloatArray:
    """Previous power per new slot: the mean over the slot where the previous plan covers it."""
    step = pd.Timedelta(minutes=minutes).value
    res = pd.Timedelta(minutes=res_minutes).value
    starts = pd.DatetimeIndex(column.index).as_unit("ns").asi8
    grid = pd.DatetimeIndex(grid_index).as_unit("ns").asi8
    values = column.to_numpy(dtype=float)
    finite = np.isfinite(values)
    # the overlap (ns) of every previous row with every new slot [ts, ts + res); a plan has
    # a few hundred rows and the stability window a few dozen slots, so the matrix is small
    overlap = np.clip(
        np.minimum(starts[None, :] + step, grid[:, None] + res)
        - np.maximum(starts[None, :], grid[:, None]),
        0,
        None,
    )
    overlap[:, ~finite] = 0
    covered = overlap.sum(axis=1)
    total = (np.where(finite, values, 0.0)[None, :] * (overlap / res)).sum(axis=1)
    out: FloatArray = np.where(covered == res, total, np.nan)
    return out


def prepare_previous(
    inputs: Inputs, previous_plan: PreviousPlan, settings: Stability
) -> PreviousIn | None:
    """The previous plan on ``inputs``' grid; None when it adds nothing to the model."""
    frame, minutes = previous_frame(previous_plan)
    grid = inputs.grid
    res = grid.resolution_minutes
    window = window_slots(inputs, settings.hours) if settings.ct_per_kwh > 0 else 0
    span = max(window, 1 if settings.freeze_running_slot else 0)
    if span == 0 or frame.empty:
        return None
    minutes = minutes or res
    index = grid.index[:span]
    kw: dict[str, FloatArray] = {}
    for dev in inputs.scenario.devices:
        col = f"{dev.name}_kw"
        if col in frame.columns:
            kw[dev.name] = _aligned(frame[col], index, minutes, res)
    prev = PreviousIn(settings=settings, window=window, kw=kw)
    if settings.freeze_running_slot:
        _freeze(inputs, prev)
    return prev


def _freeze(inputs: Inputs, prev: PreviousIn) -> None:
    """Slot 0 targets: the previous power, clamped to what each device can do in slot 0."""
    dt = inputs.dt_h

    def want(name: str) -> float | None:
        arr = prev.kw.get(name)
        if arr is None or not np.isfinite(arr[0]):
            prev.skipped[name] = "the previous plan does not cover the first slot"
            return None
        return float(arr[0])

    draw0 = float(inputs.base_load[0])  # a lower bound on what the house takes in slot 0
    for ev in inputs.evs:
        name, d = ev.dev.name, ev.dev
        p = want(name)
        if p is None:
            continue
        sess = next((s for s in ev.sessions if s.first == 0 and s.last > 0), None)
        if sess is None:
            prev.skipped[name] = "not plugged in for the first slot"
            continue
        top = min(d.max_power_kw, sess.max_kwh / (d.efficiency * dt))
        target = float(np.clip(p, 0.0, top))
        if p < 0 and sess.discharge:  # a v2h car discharging: within its floor, into the house
            room = -sess.net_min_kwh * d.v2h_discharge_efficiency / dt
            target = -float(np.clip(-p, 0.0, max(0.0, min(d.v2h_max_discharge_kw, room, draw0))))
        low = d.min_power_kw or 0.0
        if _TOL_KW < target < low - _TOL_KW:
            prev.skipped[name] = "its previous power lies below the minimum power it can now use"
            continue
        prev.frozen_kw[name] = target
        draw0 += target
    for hp in inputs.heat_pumps:
        name = hp.dev.name
        p = want(name)
        if p is None:
            continue
        target = float(np.clip(p, 0.0, hp.dev.max_power_kw))
        if hp.dev.min_run_minutes > 0 and target < 0.01 * hp.dev.max_power_kw:
            target = 0.0  # below the least power that counts as running
        prev.frozen_kw[name] = target
        draw0 += target
    for app in inputs.appliances:
        name = app.dev.name
        p = want(name)
        if p is None:
            continue
        if 0 not in app.starts:
            prev.skipped[name] = "cannot start in the first slot"
            continue
        first = float(app.profile_kw[0])
        if abs(p) <= _TOL_KW:
            prev.frozen_kw[name] = 0.0
        elif abs(p - first) <= 1e-4:
            prev.frozen_kw[name] = first
            draw0 += first
        else:
            prev.skipped[name] = "the previous plan runs another part of its programme"
    for bat in inputs.batteries:
        name, bd = bat.dev.name, bat.dev
        p = want(name)
        if p is None:
            continue
        if p >= 0:
            top = min(bd.max_charge_kw, (bd.top_kwh - bd.soc_kwh) / (bd.charge_efficiency * dt))
            if not bd.allow_grid_charging:
                top = min(top, float(inputs.pv[0]))
            target = float(np.clip(p, 0.0, max(0.0, top)))
            draw0 += target
        else:
            room = (bd.soc_kwh - bd.soc_min_kwh) * bd.discharge_efficiency / dt
            # a battery may not push energy into the grid: at most what the house draws
            top = max(0.0, min(bd.max_discharge_kw, room, draw0))
            target = -float(np.clip(-p, 0.0, top))
            draw0 += target
        prev.frozen_kw[name] = target


def frozen_mismatch(prev: PreviousIn | None, flows: Flows) -> list[str]:
    """The frozen first-slot powers that a (baseline) schedule does not keep."""
    if prev is None:
        return []
    return [
        f"{name} differs from the frozen first slot"
        for name, target in prev.frozen_kw.items()
        if abs(float(flows.device_kw[name][0]) - target) > 1e-6
    ]


def deviation_kwh(prev: PreviousIn, inputs: Inputs, flows: Flows) -> dict[str, float]:
    """Per device: Σ |new − previous| · Δ over the priced window, kWh."""
    out: dict[str, float] = {}
    w = prev.window
    for name, arr in prev.kw.items():
        a = arr[:w]
        ok = np.isfinite(a)
        diff = np.abs(flows.device_kw[name][:w][ok] - a[ok])
        out[name] = float(diff.sum() * inputs.dt_h)
    return out


def stability_cost_eur(prev: PreviousIn | None, inputs: Inputs, flows: Flows) -> float | None:
    """What the deviations from the previous plan are worth at the stability price, EUR."""
    if prev is None:
        return None
    return prev.eur_per_kwh * sum(deviation_kwh(prev, inputs, flows).values())


def stability_note(prev: PreviousIn | None, inputs: Inputs, flows: Flows, tz: str) -> str:
    """One line for the explanation (empty without a previous plan)."""
    if prev is None:
        return ""
    s = prev.settings
    moved = sum(deviation_kwh(prev, inputs, flows).values())
    text = "Stability: "
    if prev.frozen_kw:
        text += f"the running slot keeps the previous plan ({', '.join(sorted(prev.frozen_kw))}); "
    if prev.skipped:
        text += "not frozen: " + "; ".join(f"{k} ({v})" for k, v in prev.skipped.items()) + "; "
    if prev.window:
        end = inputs.grid.index[prev.window - 1] + pd.Timedelta(
            minutes=inputs.grid.resolution_minutes
        )
        text += (
            f"until {end.tz_convert(tz):%a %H:%M} the plan moves {moved:.2f} kWh of device "
            f"energy against the previous plan, priced at {s.ct_per_kwh:g} ct/kWh "
            f"({prev.eur_per_kwh * moved:.2f} EUR, not part of the cost)"
        )
    return text.rstrip("; ") + "."
