"""A rolling backtest of a household profile, settled against what really happened.

:func:`rolling_backtest` runs as the planner will (DESIGN §3a): each day at the price
publication (14:00 local) it plans from then to the end of the published prices (local
midnight after the next day) with only what is known at that time, executes the plan
until the next publication against the ACTUAL base load and PV (the grid absorbs the
difference; import and export are settled at the real prices), carries the battery's SoC,
the energy already in the car, the indoor temperature and the appliance runs already
started forward, and repeats. The shipped day-ahead prices stand for the published prices.

The outdoor temperature (for a heat pump) is ACTUALS' ``outdoor_c`` or, without it, the
shipped typical year (:func:`wattplan.datasets.read_weather`, by month, day and hour).
ACTUALS has no weather forecast, so every strategy plans on the actual temperature as its
day-ahead temperature forecast: day-ahead temperature forecasts are accurate to about 1 K,
so this flatters the ``forecast`` strategy a little where a heat pump is concerned.

Strategies (each its own chain of states):

* ``forecast``: the base load is forecast with
  :func:`wattplan.forecast.forecast_base_load` from the usage up to the end of the day
  before yesterday (the usage of yesterday is not published yet at 14:00) and planned on
  as its mean, the expected energy (the reported ``forecast_error`` is that of its P50,
  the figure the forecast benchmark measures); PV is a persistence forecast: each slot
  gets the mean metered PV of the same wall-clock time over the last fourteen published
  days (ACTUALS.csv has no weather, so the pvlib model is not used here).
* ``perfect_forecast``: the same loop with the actual base load and PV as the forecast.
* ``baseline``: the optimizer's baseline (the car charges at full power from plug-in, the
  battery does self-consumption, the heat pump is a thermostat holding its set point,
  each appliance run starts at its earliest start), computed on the actual base load and
  PV, chained.
* ``cheapest_slots``: evcc-style: each car session charges at full power in the cheapest
  slots of its plug-in window (all its prices are published by the plug-in in the usual
  evening habits), each appliance run starts at the cheapest start that fits its window,
  the heat pump is the baseline's thermostat, the battery greedily does self-consumption
  on the actual load.
* ``bound``: the whole period as one optimize call with perfect foresight, where what is
  left stored at the end is worth nothing. It minimizes the bill plus battery wear and
  start penalties, so it bounds that sum rather than the bill alone; and the rolling
  strategies end with some energy and heat stored that no bill credits. Both make the
  bound approximate by a few cents a week. It drops the cars' minimum charging power and
  the heat pumps' minimum run time (their on/off binaries make a month a MIP of minutes,
  see :func:`_relaxed`), which can only lower it.

Appliance runs: a run whose window reaches past a plan's end is left to the next plan when
it can still run in full after the next publication (that plan knows the prices of its
night); otherwise it must be done by the plan's end. A run that has started is not planned
again; the rest of a programme still running at a publication is a fixed load of the next
plan. Runs at the edges of the period count as far as they are executed inside it.

Every strategy starts with the batteries at ``initial_soc_kwh`` (default ``soc_min_kwh``)
and the buildings at ``initial_indoor_c``. Executing a plan: the car, the heat pumps and
the appliances draw the planned power. A building's indoor temperature is recomputed with
the optimizer's 1R1C equations on the actual outdoor temperature
(:func:`indoor_temperatures`) and carried forward. The plan sets each battery's mode per
slot and the battery's controller follows the actual load within it, as home batteries
do (up to its power and SoC):

* **discharge** (the plan discharges): the planned power plus what the house draws beyond
  the plan's expectation, less when it draws less; never exporting with ``export_only_pv``;
* **grid charge** (the plan charges more than the PV surplus it expects): the planned power
  plus any actual PV surplus; the house draws from the grid;
* **hold** (idle while the plan expects the house to draw from the grid: the plan keeps the
  stored energy for a dearer slot): the battery covers the house only with the energy it
  holds above the plan's SoC for the slot (after a sunnier or leaner day than forecast),
  and stores any actual PV surplus;
* **self-consumption** (the plan expects a PV surplus and charges at most that): the
  battery covers whatever the house actually draws beyond PV, or stores the actual PV
  surplus (less than planned on a cloudier slot than forecast: it never charges from the
  grid to make up the plan's charge).

The rest is the grid's: import and export settled at the real prices; PV beyond the
export limit is curtailed.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from wattplan.exceptions import WattplanError
from wattplan.forecast import forecast_base_load, same_slot_week_before
from wattplan.household import (
    Household,
    HouseholdAppliance,
    HouseholdBattery,
    HouseholdEV,
    HouseholdHeatPump,
    HouseholdState,
    appliance_runs,
    ev_sessions,
    household_scenario,
    programme_kw,
)
from wattplan.optimizer import Plan, PlanStatus, SolverOptions, optimize
from wattplan.optimizer._inputs import prepare, staffell_cop

__all__ = [
    "ActualsError",
    "BacktestOutcome",
    "household_prices",
    "indoor_temperatures",
    "read_actuals_csv",
    "rolling_backtest",
    "shift_actuals",
]

PUBLICATION = dt.time(14, 0)
# The bound is one plan over the whole period (a year is 35,000 quarter-hours): the daily
# plans' 10 s limit would cut it short and return a poor incumbent.
BOUND_SOLVER = SolverOptions(time_limit_s=1800.0)
Strategy = Literal["forecast", "perfect_forecast", "baseline", "cheapest_slots", "bound"]
STRATEGIES: tuple[Strategy, ...] = (
    "forecast",
    "perfect_forecast",
    "baseline",
    "cheapest_slots",
    "bound",
)


class ActualsError(WattplanError, ValueError):
    """ACTUALS.csv (or the series given) is unusable; the message names column and row."""


def read_actuals_csv(path: str | Path) -> pd.DataFrame:
    """Read ACTUALS.csv: ``start`` (ISO 8601 with offset), ``base_kwh``, optional ``pv_kwh``
    and ``outdoor_c``.

    Returns a frame with a UTC index and the columns ``base_kwh``, ``pv_kwh`` (0 when the
    file has none), ``outdoor_c`` (the mean outdoor temperature of the interval, °C; only
    when the file has it) and ``trusted`` (False where a ``quality`` column says other
    than ``ok`` or the base load is empty). Empty ``base_kwh`` and ``outdoor_c`` values are
    allowed (gaps); text that is not a number, an outdoor temperature outside [-60, 60]
    °C, naive, unsorted or duplicate times are errors naming the row (line numbers count
    the header as line 1).
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ActualsError(f"actuals: file not found: {p}") from None
    except Exception as exc:
        raise ActualsError(f"actuals: cannot read {p.name}: {exc}") from exc
    for column in ("start", "base_kwh"):
        if column not in df.columns:
            raise ActualsError(f"actuals: {p.name} has no column {column!r}")
    if df.empty:
        raise ActualsError(f"actuals: {p.name} has no rows")
    starts = []
    for i, text in enumerate(df["start"]):
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ActualsError(f"actuals: line {i + 2}: start {text!r} is not a time") from None
        if ts.tzinfo is None:
            raise ActualsError(
                f"actuals: line {i + 2}: start {text!r} has no UTC offset (naive timestamp)"
            )
        starts.append(ts.tz_convert("UTC"))
    index = pd.DatetimeIndex(starts)
    steps = np.diff(index.as_unit("ns").asi8)
    if (steps < 0).any():
        row = int(np.argmax(steps < 0)) + 1
        raise ActualsError(
            f"actuals: line {row + 2}: start is not sorted (earlier than line above)"
        )
    if (steps == 0).any():
        row = int(np.argmax(steps == 0)) + 1
        raise ActualsError(f"actuals: line {row + 2}: duplicate start {df['start'].iloc[row]}")
    out = pd.DataFrame(index=index)
    for column in ("base_kwh", "pv_kwh", "outdoor_c"):
        if column not in df.columns:
            if column != "outdoor_c":
                out[column] = 0.0
            continue
        raw = df[column].str.strip()
        values = pd.Series(pd.to_numeric(raw, errors="coerce"), index=raw.index, dtype=float)
        bad = values.isna() & (raw != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ActualsError(
                f"actuals: line {row + 2}: {column} {raw.iloc[row]!r} is not a number"
            )
        finite = values.dropna()
        if (~np.isfinite(finite)).any():
            row = int(np.flatnonzero(~np.isfinite(values.fillna(0).to_numpy()))[0])
            raise ActualsError(f"actuals: line {row + 2}: {column} is not finite")
        if column == "outdoor_c" and ((finite < -60.0) | (finite > 60.0)).any():
            row = int(np.flatnonzero(((values < -60.0) | (values > 60.0)).to_numpy())[0])
            raise ActualsError(
                f"actuals: line {row + 2}: outdoor_c {raw.iloc[row]} lies outside [-60, 60] °C"
            )
        out[column] = values.to_numpy(dtype=float)
    if "pv_kwh" in df.columns and out["pv_kwh"].isna().any():
        row = int(np.flatnonzero(out["pv_kwh"].isna().to_numpy())[0])
        raise ActualsError(f"actuals: line {row + 2}: pv_kwh is empty")
    trusted = out["base_kwh"].notna().to_numpy().copy()
    if "quality" in df.columns:
        trusted &= (df["quality"].str.strip() == "ok").to_numpy()
    out["trusted"] = trusted
    return out


def _resolution_minutes(index: pd.DatetimeIndex) -> int:
    if len(index) < 2:
        raise ActualsError("actuals: need at least two rows")
    step = int(np.diff(index.as_unit("ns").asi8).min() // 60_000_000_000)
    if step not in (15, 60):
        raise ActualsError(f"actuals: interval must be 15 or 60 minutes, found {step}")
    return step


def shift_actuals(
    actuals: pd.DataFrame, start: dt.date, end: dt.date, *, history_days: int = 35
) -> tuple[pd.DataFrame, int]:
    """Shift actuals from another year onto ``[start, end)`` by whole weeks.

    Returns the shifted frame and the shift in weeks (0 when the actuals already cover
    the period and ``history_days`` before it). Weekdays are kept; the season is matched
    as closely as whole weeks allow, taking the latest year whose data cover the period.
    """
    need_lo = pd.Timestamp(start - dt.timedelta(days=history_days), tz="UTC")
    need_hi = pd.Timestamp(end + dt.timedelta(days=2), tz="UTC")
    first, last = actuals.index[0], actuals.index[-1]
    if first <= need_lo and last >= need_hi:
        return actuals, 0
    for year in range(last.year, first.year - 1, -1):
        try:
            same = start.replace(year=year)
        except ValueError:  # 29 February
            same = start.replace(year=year, day=28)
        weeks = round((start - same).days / 7)
        delta = pd.Timedelta(weeks=weeks)
        if first + delta <= need_lo and last + delta >= need_hi:
            shifted = actuals.copy()
            shifted.index = actuals.index + delta
            return shifted, weeks
    raise ActualsError(
        f"actuals: cover {first.date()} to {last.date()}; need {history_days} days of history "
        f"before {start} and data to {end}, also after a shift by whole weeks"
    )


def household_prices(
    household: Household, lo: pd.Timestamp, hi: pd.Timestamp, base: Path | None = None
) -> pd.Series:
    """The household's all-in import prices, ct/kWh, on ``[lo, hi)`` (UTC index)."""
    t = household.tariff
    if t.source == "day_ahead":
        from wattplan import datasets

        spot = datasets.read_day_ahead_prices(lo, hi)
        prices = datasets.all_in_price_ct_per_kwh(
            spot, markup_ct_per_kwh=t.markup_ct_per_kwh, vat=t.vat
        )
    else:
        from wattplan.optimizer._scenario import _read_csv

        assert t.file is not None
        path = (base or Path(".")) / t.file
        prices = _read_csv(path, t.column, "start", "tariff.file")
        prices = prices[(prices.index >= lo) & (prices.index < hi)]
    prices = prices.astype(float).sort_index()
    steps = pd.DatetimeIndex(prices.index).to_series().diff().dropna().unique()
    if len(steps) > 1:
        # hourly before and 15-minute after a market change: repeat each hourly price
        quarter = pd.date_range(prices.index[0], hi, freq="15min", inclusive="left")
        prices = prices.reindex(quarter, method="ffill", limit=3)
    return prices


@dataclass
class BacktestOutcome:
    """What :func:`rolling_backtest` found.

    ``bill_eur`` per strategy; ``executed`` per strategy: the executed schedule (one row
    per slot: ``price_ct_per_kwh``, ``feed_in_ct_per_kwh``, ``base_load_kw``, ``pv_kw``,
    ``grid_import_kw``, ``grid_export_kw``, ``slot_hours``, ``<device>_kw`` (one column
    per appliance, all its runs) and per heat pump ``<name>_outdoor_c`` and
    ``<name>_indoor_c`` (after the slot)), from which every bill is recomputed as
    Σ (import × price − export × feed-in) × hours.
    ``forecast_error`` holds the base-load forecast's ``mae_kwh`` and ``mase`` (against
    the same slot 7 days earlier) over the executed hours; ``shortfall_kwh`` per strategy
    the EV energy missing at departures.
    """

    days: int
    start: pd.Timestamp
    end: pd.Timestamp
    bill_eur: dict[str, float]
    executed: dict[str, pd.DataFrame]
    forecast_error: dict[str, float]
    shortfall_kwh: dict[str, float]
    shift_weeks: int = 0
    filled_base_hours: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "bill_eur": {k: round(v, 4) for k, v in self.bill_eur.items()},
            "forecast_error": {k: round(v, 4) for k, v in self.forecast_error.items()},
        }


def _local(day: dt.date, at: dt.time, tz: str) -> pd.Timestamp:
    naive = pd.Timestamp(
        year=day.year, month=day.month, day=day.day, hour=at.hour, minute=at.minute
    )
    return naive.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")


def _midnight(day: dt.date, tz: str) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(tz)


def _quarter_kw(kwh: pd.Series, resolution: int) -> pd.Series:
    """Energy per interval as mean kW on a 15-minute grid (each value repeated)."""
    kw = kwh / (resolution / 60.0)
    if resolution == 15:
        return kw
    idx = pd.date_range(kw.index[0], kw.index[-1] + pd.Timedelta(minutes=resolution - 15),
                        freq="15min")  # fmt: skip
    return kw.reindex(idx, method="ffill", limit=resolution // 15 - 1)


def _on_slots(quarter: pd.Series, slots: pd.DatetimeIndex, step_minutes: int) -> np.ndarray:
    if step_minutes == 15:
        return quarter.reindex(slots).to_numpy(dtype=float)
    k = step_minutes // 15
    parts = [quarter.reindex(slots + pd.Timedelta(minutes=15 * j)).to_numpy() for j in range(k)]
    out: np.ndarray = np.mean(parts, axis=0).astype(float)
    return out


def _execute(
    household: Household,
    schedule: pd.DataFrame,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    base_q: pd.Series,
    pv_q: pd.Series,
    state: HouseholdState,
    shortfall: list[float],
    outdoor_q: pd.Series | None = None,
) -> pd.DataFrame:
    """Run the planned device powers on ``[lo, hi)`` against the actual base load and PV.

    ``outdoor_q``: the actual outdoor temperature (°C, 15-minute), needed with a heat pump.
    """
    sched = schedule[(schedule.index >= lo) & (schedule.index < hi)]
    idx = pd.DatetimeIndex(sched.index)
    step = int((idx[1] - idx[0]).total_seconds() // 60) if len(idx) > 1 else 15
    hours = step / 60.0
    out = pd.DataFrame(index=idx)
    out["price_ct_per_kwh"] = sched["price_ct_per_kwh"].to_numpy(dtype=float)
    out["feed_in_ct_per_kwh"] = sched["feed_in_ct_per_kwh"].to_numpy(dtype=float)
    out["base_load_kw"] = _on_slots(base_q, idx, step)
    out["pv_kw"] = _on_slots(pv_q, idx, step)
    net = out["base_load_kw"].to_numpy() - out["pv_kw"].to_numpy()
    tz = household.site.timezone
    batteries = [d for d in household.devices if isinstance(d, HouseholdBattery)]
    for d in household.devices:
        if isinstance(d, HouseholdEV):
            kw = sched[f"{d.name}_kw"].to_numpy(dtype=float)
            out[f"{d.name}_kw"] = kw
            net = net + kw
            _credit_ev(d, idx, kw * hours * d.efficiency, state, tz, hi, shortfall)
    # heat pumps and appliances draw their planned power, as the car does
    fixed = np.zeros(len(idx))
    for d in household.devices:
        if isinstance(d, HouseholdHeatPump):
            if outdoor_q is None:
                raise ActualsError(f"outdoor_c: heat pump {d.name!r} needs the outdoor temperature")
            kw = sched[f"{d.name}_kw"].to_numpy(dtype=float)
            outdoor = _on_slots(outdoor_q, idx, step)
            start_c = state.indoor_c.get(d.name, d.building.start_c)
            indoor = indoor_temperatures(d, start_c, kw, outdoor, hours)
            out[f"{d.name}_kw"] = kw
            out[f"{d.name}_outdoor_c"] = outdoor
            out[f"{d.name}_indoor_c"] = indoor
            if len(indoor):
                state.indoor_c[d.name] = float(indoor[-1])
            fixed = fixed + kw
        elif isinstance(d, HouseholdAppliance):
            kw = _run_appliance(d, sched, idx, step, hi, state, tz)
            out[f"{d.name}_kw"] = kw
            fixed = fixed + kw
    net = net + fixed
    # what the plan expected the house to draw before the batteries (kW, may be < 0)
    planned_net = sched["base_load_kw"].to_numpy(dtype=float) - sched["pv_used_kw"].to_numpy(
        dtype=float
    )
    for d in household.devices:
        if isinstance(d, HouseholdEV):
            planned_net = planned_net + sched[f"{d.name}_kw"].to_numpy(dtype=float)
    planned_net = planned_net + fixed
    for d in batteries:
        plan_ch = sched[f"{d.name}_charge_kw"].to_numpy(dtype=float)
        plan_dis = sched[f"{d.name}_discharge_kw"].to_numpy(dtype=float)
        plan_soc = sched[f"{d.name}_soc_kwh"].to_numpy(dtype=float)
        kw = np.zeros(len(idx))
        soc = state.battery_soc_kwh[d.name]
        for t in range(len(idx)):
            # the plan sets the battery's mode per slot; the battery's own controller follows
            # the actual load within it (see the module docstring)
            room = max(0.0, (d.capacity_kwh - soc) / (d.charge_efficiency * hours))
            left = max(0.0, (soc - d.soc_min_kwh) * d.discharge_efficiency / hours)
            surplus = max(-planned_net[t], 0.0)  # PV the plan expected beyond the house
            deficit = max(net[t], 0.0)  # what the house actually draws beyond PV and car
            from_grid = False
            if plan_dis[t] > plan_ch[t] + 1e-9:
                # discharge: the planned power, corrected by the house's actual draw
                give = max(plan_dis[t] + net[t] - planned_net[t], 0.0)
                if household.site.export_only_pv:
                    give = min(give, deficit)
            elif plan_ch[t] > surplus + 1e-6:
                give = 0.0  # charging from the grid: the house draws from the grid too
                from_grid = True
            elif planned_net[t] > 1e-6:
                # hold: the plan keeps its stored energy for a dearer slot; only energy above
                # the plan's SoC for this slot (a sunnier or leaner day than forecast) serves now
                above = max(soc - plan_soc[t], 0.0) * d.discharge_efficiency / hours
                give = min(deficit, above)
            else:
                give = deficit  # self-consumption: the plan expected PV to cover the house
            if give > 1e-12:
                x = min(give, d.max_discharge_kw, left)
                kw[t] = -x
                soc -= x / d.discharge_efficiency * hours
            else:
                # grid charge: the planned power plus any actual PV surplus beyond it; otherwise
                # the actual PV surplus only (a cloudier slot than forecast charges less)
                c = (
                    plan_ch[t] + max(-(net[t] + plan_ch[t]), 0.0)
                    if from_grid
                    else max(-net[t], 0.0)
                )
                c = min(c, d.max_charge_kw, room)
                kw[t] = c
                soc += c * d.charge_efficiency * hours
        state.battery_soc_kwh[d.name] = min(max(soc, d.soc_min_kwh), d.capacity_kwh)
        out[f"{d.name}_kw"] = kw
        net = net + kw
    out["grid_import_kw"] = np.clip(net, 0.0, None)
    export = np.clip(-net, 0.0, None)
    # PV beyond the export limit is curtailed (not paid)
    out["grid_export_kw"] = np.minimum(export, household.site.grid_export_limit_kw)
    out["slot_hours"] = hours
    return out


def indoor_temperatures(
    hp: HouseholdHeatPump,
    indoor_c: float,
    power_kw: np.ndarray,
    outdoor_c: np.ndarray,
    hours: float,
) -> np.ndarray:
    """The indoor temperature after each slot, °C, from the optimizer's 1R1C equations.

    ``θ_{t+1} = θ_t + (Δ/C)·(COP_t·h_t − U·(θ_t − θout_t) + Q)``, with COP_t from the
    outdoor temperature through the optimizer's air-source fit at the flow temperature.
    """
    b = hp.building
    cop = staffell_cop(np.asarray(outdoor_c, dtype=float), hp.flow_temperature_c)
    k = hours / b.heat_capacity_kwh_per_k
    out = np.zeros(len(power_kw))
    theta = indoor_c
    for t in range(len(power_kw)):
        heat = cop[t] * power_kw[t] - b.heat_loss_kw_per_k * (theta - outdoor_c[t]) + b.gains_kw
        theta = theta + k * heat
        out[t] = theta
    return out


def _run_appliance(
    app: HouseholdAppliance,
    sched: pd.DataFrame,
    idx: pd.DatetimeIndex,
    step: int,
    hi: pd.Timestamp,
    state: HouseholdState,
    tz: str,
) -> np.ndarray:
    """Each run draws its planned programme; a run that starts here is marked started."""
    started = state.appliance_started.setdefault(app.name, {})
    total = np.zeros(len(idx))
    if not len(idx):
        return total
    lead = int(np.argmax(programme_kw(app, step) > 0.0))  # slots before the first draw
    for run in appliance_runs(app, idx[0], hi, tz):
        column = f"{run.device}_kw"
        if column not in sched.columns:
            continue  # done, or left to a later plan
        kw = sched[column].to_numpy(dtype=float)
        total += kw
        on = np.flatnonzero(kw > 1e-9)
        if run.key not in started and len(on):
            started[run.key] = idx[max(int(on[0]) - lead, 0)].tz_convert("UTC")
    for key in [k for k in started if k < idx[0] - pd.Timedelta(days=8)]:
        del started[key]
    return total


def _credit_ev(
    ev: HouseholdEV,
    idx: pd.DatetimeIndex,
    stored_kwh: np.ndarray,
    state: HouseholdState,
    tz: str,
    hi: pd.Timestamp,
    shortfall: list[float],
) -> None:
    delivered = state.ev_delivered_kwh.setdefault(ev.name, {})
    if not len(idx):
        return
    for plug, dep, energy in ev_sessions(ev, idx[0], hi, tz):
        key = plug.tz_convert("UTC")
        inside = (idx >= plug) & (idx < dep)
        delivered[key] = delivered.get(key, 0.0) + float(stored_kwh[inside].sum())
        if idx[0] <= dep <= hi:
            shortfall.append(max(0.0, energy - delivered[key]))
    for key in [k for k in delivered if k < idx[0] - pd.Timedelta(days=3)]:
        del delivered[key]


PV_DAYS = 14
"""Published days the PV forecast averages (measured on residential3 over a year, car and
battery: 1 day 1515.43 EUR, 7 days 1510.63, 14 days 1509.22, 21 days 1510.21, 28 days
1511.07; the actual PV as forecast 1490.97)."""


def _persistence_pv(
    pv_q: pd.Series, known_day: dt.date, slots: pd.DatetimeIndex, tz: str, days: int = PV_DAYS
) -> pd.Series:
    """Each slot gets the mean metered PV of the same local wall-clock time over the
    ``days`` published days up to ``known_day`` (those with data)."""
    profiles = []
    ls = slots.tz_convert(tz)
    minutes = ls.hour * 60 + ls.minute
    for back in range(days):
        d = known_day - dt.timedelta(days=back)
        lo, hi = _midnight(d, tz), _midnight(d + dt.timedelta(days=1), tz)
        day = pv_q[(pv_q.index >= lo) & (pv_q.index < hi)]
        if day.empty:
            continue
        local = pd.DatetimeIndex(day.index).tz_convert(tz)
        by_clock = dict(zip(local.hour * 60 + local.minute, day.to_numpy(dtype=float), strict=True))
        profiles.append([by_clock.get(m, 0.0) for m in minutes])
    if not profiles:
        return pd.Series(0.0, index=slots, dtype=float)
    return pd.Series(np.mean(profiles, axis=0), index=slots, dtype=float).fillna(0.0)


def rolling_backtest(
    household: Household,
    actuals: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    *,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    prices: pd.Series | None = None,
    tariff_base: Path | None = None,
) -> BacktestOutcome:
    """Roll day by day over ``[start, end)``, planning at 14:00 local (see the module).

    ``actuals`` as :func:`read_actuals_csv` returns it; from another year it is shifted
    onto the period by whole weeks (:func:`shift_actuals`). ``prices`` (all-in ct/kWh,
    tz-aware) default to the household's tariff.
    """
    if end <= start:
        raise ActualsError(f"end ({end}) must be after start ({start})")
    tz = household.site.timezone
    actuals, weeks = shift_actuals(actuals, start, end)
    resolution = _resolution_minutes(pd.DatetimeIndex(actuals.index))
    base = actuals["base_kwh"]
    missing = int(base.isna().sum())
    filled = base.interpolate(limit_direction="both")
    base_q = _quarter_kw(filled, resolution)
    pv_q = _quarter_kw(actuals["pv_kwh"].fillna(0.0), resolution)
    history = base.where(actuals["trusted"].astype(bool)).dropna()
    days = [start + dt.timedelta(days=i) for i in range((end - start).days)]
    t_first = _local(days[0], PUBLICATION, tz)
    t_last = _local(end, PUBLICATION, tz)
    horizon_end = _midnight(end + dt.timedelta(days=1), tz)
    if prices is None:
        prices = household_prices(
            household, t_first.tz_convert("UTC"), horizon_end.tz_convert("UTC"), tariff_base
        )
    prices = prices.tz_convert("UTC")
    if len(prices) == 0 or prices.index[-1] < horizon_end - pd.Timedelta(hours=1):
        raise ActualsError(f"prices: the published prices do not reach {horizon_end.isoformat()}")
    outdoor_q = _outdoor(household, actuals, resolution, t_first, horizon_end)
    in_window = filled[(filled.index >= t_first) & (filled.index < t_last)]
    executed_hours = int(in_window.index.size)
    missing_in_window = int(base[(base.index >= t_first) & (base.index < t_last)].isna().sum())

    bills: dict[str, float] = {}
    executed: dict[str, pd.DataFrame] = {}
    shortfalls: dict[str, float] = {}
    fc_rows: list[pd.Series] = []
    loop = [s for s in strategies if s not in ("bound", "cheapest_slots")]
    for strategy in loop:
        state = HouseholdState.initial(household)
        parts: list[pd.DataFrame] = []
        short: list[float] = []
        for day in days:
            t0 = _local(day, PUBLICATION, tz)
            t1 = _local(day + dt.timedelta(days=1), PUBLICATION, tz)
            w_end = _midnight(day + dt.timedelta(days=2), tz)
            price = prices[(prices.index >= t0) & (prices.index < w_end)]
            step = pd.DatetimeIndex(price.index).to_series().diff().min()
            res: Literal["15min", "60min"] = "15min" if step < pd.Timedelta("60min") else "60min"
            slots = pd.DatetimeIndex(price.index)
            if strategy == "forecast":
                known = _midnight(day - dt.timedelta(days=1), tz)
                fc = forecast_base_load(
                    history[history.index < known], day, day + dt.timedelta(days=2),
                    timezone=tz, resolution_minutes=resolution,
                )  # fmt: skip
                fc_kwh = fc.kwh.set_index(pd.DatetimeIndex(fc.kwh.index).tz_convert("UTC"))
                # the plan is made on the expected energy; the error is reported of P50
                fq = _quarter_kw(fc_kwh["kwh_mean"], resolution)
                base_kw = pd.Series(_on_slots(fq, slots, int(step.total_seconds() // 60)), slots)
                p50 = fc_kwh["kwh_p50"]
                fc_rows.append(p50[(p50.index >= t0) & (p50.index < t1)])
                pv_kw = _persistence_pv(pv_q, day - dt.timedelta(days=2), slots, tz)
            else:
                minutes = int(step.total_seconds() // 60)
                base_kw = pd.Series(_on_slots(base_q, slots, minutes), slots)
                pv_kw = pd.Series(_on_slots(pv_q, slots, minutes), slots)
            # every strategy plans on the actual outdoor temperature: it stands for the
            # day-ahead temperature forecast (accurate to about 1 K), which ACTUALS lacks
            outdoor = None
            if outdoor_q is not None:
                minutes = int(step.total_seconds() // 60)
                outdoor = pd.Series(_on_slots(outdoor_q, slots, minutes), slots)
            scenario = household_scenario(
                household, t0, w_end, base_load_kw=base_kw, pv_kw=pv_kw,
                prices_ct_per_kwh=price, state=state, resolution=res,
                outdoor_c=outdoor, replan_at=t1,
            )  # fmt: skip
            plan = _optimize(scenario, day)
            sched = plan.schedule
            if strategy == "baseline":
                assert plan.baseline_schedule is not None
                sched = plan.baseline_schedule
            parts.append(_execute(household, sched, t0, t1, base_q, pv_q, state, short, outdoor_q))
        frame = pd.concat(parts)
        executed[strategy] = frame
        bills[strategy] = _bill(frame)
        shortfalls[strategy] = float(sum(short))
    if "cheapest_slots" in strategies:
        frame, missing_kwh = _cheapest_slots(
            household, prices, t_first, t_last, base_q, pv_q, outdoor_q
        )
        executed["cheapest_slots"] = frame
        bills["cheapest_slots"] = _bill(frame)
        shortfalls["cheapest_slots"] = missing_kwh
    if "bound" in strategies:
        slots_price = prices[(prices.index >= t_first) & (prices.index < t_last)]
        step = pd.DatetimeIndex(slots_price.index).to_series().diff().min()
        minutes = int(step.total_seconds() // 60)
        slots = pd.DatetimeIndex(slots_price.index)
        scenario = household_scenario(
            _relaxed(household), t_first, t_last,
            base_load_kw=pd.Series(_on_slots(base_q, slots, minutes), slots),
            pv_kw=pd.Series(_on_slots(pv_q, slots, minutes), slots),
            prices_ct_per_kwh=slots_price, resolution="15min" if minutes == 15 else "60min",
            terminal_price_ct_per_kwh=0.0,  # nothing after the period counts
            outdoor_c=None if outdoor_q is None
            else pd.Series(_on_slots(outdoor_q, slots, minutes), slots),
        )  # fmt: skip
        plan = _optimize(scenario, start, solver=BOUND_SOLVER)
        short = []
        frame = _execute(
            household, plan.schedule, t_first, t_last, base_q, pv_q,
            HouseholdState.initial(household), short, outdoor_q,
        )  # fmt: skip
        executed["bound"] = frame
        bills["bound"] = _bill(frame)
        shortfalls["bound"] = float(sum(short))
    error: dict[str, float] = {}
    if fc_rows:
        f = pd.concat(fc_rows)
        a = base.reindex(f.index)
        naive = same_slot_week_before(base, pd.DatetimeIndex(f.index), tz)
        ok = a.notna() & naive.notna()
        mae = float((f[ok] - a[ok]).abs().mean())
        scale = float((naive[ok] - a[ok]).abs().mean())
        error = {"mae_kwh": mae, "mase": mae / scale if scale > 0 else math.nan}
    notes = []
    if weeks:
        notes.append(
            f"actuals shifted by {weeks} whole weeks ({weeks * 7} days) onto the price period "
            "(weekdays kept)"
        )
    if missing_in_window:
        notes.append(
            f"{missing_in_window} of {executed_hours} executed intervals had no base_kwh; "
            "filled by linear interpolation"
        )
    if outdoor_q is not None:
        if "outdoor_c" in actuals.columns:
            temps = actuals["outdoor_c"]
            gaps = int(temps[(temps.index >= t_first) & (temps.index < t_last)].isna().sum())
            if gaps:
                notes.append(
                    f"{gaps} of {executed_hours} executed intervals had no outdoor_c; "
                    "filled by linear interpolation"
                )
        else:
            notes.append("no outdoor_c in the actuals: the typical-year temperature stands in")
    return BacktestOutcome(
        days=len(days), start=t_first, end=t_last, bill_eur=bills, executed=executed,
        forecast_error=error, shortfall_kwh=shortfalls, shift_weeks=weeks,
        filled_base_hours=missing, notes=notes,
    )  # fmt: skip


def _outdoor(
    household: Household,
    actuals: pd.DataFrame,
    resolution: int,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
) -> pd.Series | None:
    """The actual outdoor temperature on a 15-minute grid (°C), or None without heat pump.

    From ACTUALS' ``outdoor_c`` (gaps interpolated), else the shipped typical year
    (:func:`wattplan.datasets.read_weather`: the same month, day and hour).
    """
    if not any(isinstance(d, HouseholdHeatPump) for d in household.devices):
        return None
    if "outdoor_c" in actuals.columns:
        temps = actuals["outdoor_c"].interpolate(limit_direction="both")
        if temps.isna().all():
            raise ActualsError("actuals: outdoor_c has no values")
        step = resolution
    else:
        from wattplan import datasets

        temps = datasets.read_weather(lo.floor("h"), hi.ceil("h"))["temp_air_c"]
        step = 60
    if step == 15:
        return temps.astype(float)
    idx = pd.date_range(temps.index[0], temps.index[-1] + pd.Timedelta(minutes=step - 15),
                        freq="15min")  # fmt: skip
    return temps.astype(float).reindex(idx, method="ffill", limit=step // 15 - 1)


def _relaxed(household: Household) -> Household:
    """The household without the binaries that only enforce a minimum power or run time.

    For the bound: its heat pumps' minimum run times and its cars' minimum charging powers
    are dropped, which can only lower what the bound minimizes (the bill plus wear and
    start penalties). A month of 15-minute slots with those on/off binaries is a MIP of
    minutes: with an EV, a battery, a heat pump with a one-hour minimum run and a
    dishwasher (``benchmarks/household_bound.py``, 31 days) 82 s with both kinds, 9 s with
    only the car's, 7.5 s with neither, and the bill moves by less than 0.3 %. With the
    synthetic actuals of ``tests/household/test_backtest.py`` over a month: 309 s, 112 s
    and 3 s.
    """
    devices = [
        d.model_copy(update={"min_run_minutes": 0})
        if isinstance(d, HouseholdHeatPump)
        else d.model_copy(update={"min_power_kw": 0.0})
        if isinstance(d, HouseholdEV)
        else d
        for d in household.devices
    ]
    return household.model_copy(update={"devices": devices})


def _cheapest_slots(
    household: Household,
    prices: pd.Series,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    base_q: pd.Series,
    pv_q: pd.Series,
    outdoor_q: pd.Series | None = None,
) -> tuple[pd.DataFrame, float]:
    from wattplan.backtest import cheapest_hours_schedule

    price = prices[(prices.index >= lo) & (prices.index < hi)]
    idx = pd.DatetimeIndex(price.index)
    step = int((idx[1] - idx[0]).total_seconds() // 60)
    hours = step / 60.0
    out = pd.DataFrame(index=idx)
    out["price_ct_per_kwh"] = price.to_numpy(dtype=float)
    out["feed_in_ct_per_kwh"] = household.site.feed_in_ct_per_kwh
    out["base_load_kw"] = _on_slots(base_q, idx, step)
    out["pv_kw"] = _on_slots(pv_q, idx, step)
    net = out["base_load_kw"].to_numpy() - out["pv_kw"].to_numpy()
    short = 0.0
    for d in household.devices:
        if isinstance(d, HouseholdEV):
            kw = np.zeros(len(idx))
            for plug, dep, energy in ev_sessions(d, lo, hi, household.site.timezone):
                if dep > hi:
                    continue  # departs after the period: the next period charges it
                ev = cheapest_hours_schedule(
                    price, energy_kwh=energy, max_power_kw=d.max_power_kw,
                    plug_in=max(plug, lo), departure=dep, efficiency=d.efficiency,
                ).to_numpy()  # fmt: skip
                short += max(0.0, energy - float(ev.sum()) * hours * d.efficiency)
                kw += ev
            out[f"{d.name}_kw"] = kw
            net = net + kw
        elif isinstance(d, HouseholdAppliance):
            kw = _cheapest_runs(d, price, household.site.timezone)
            out[f"{d.name}_kw"] = kw
            net = net + kw
        elif isinstance(d, HouseholdHeatPump):
            assert outdoor_q is not None
            outdoor = _on_slots(outdoor_q, idx, step)
            kw, indoor = _thermostat(household, d, price, outdoor)
            out[f"{d.name}_kw"] = kw
            out[f"{d.name}_outdoor_c"] = outdoor
            out[f"{d.name}_indoor_c"] = indoor
            net = net + kw
    for d in household.devices:
        if isinstance(d, HouseholdBattery):
            soc = d.soc_min_kwh if d.initial_soc_kwh is None else d.initial_soc_kwh
            kw = np.zeros(len(idx))
            for t in range(len(idx)):
                room = max(0.0, (d.capacity_kwh - soc) / (d.charge_efficiency * hours))
                left = max(0.0, (soc - d.soc_min_kwh) * d.discharge_efficiency / hours)
                if net[t] < 0:
                    kw[t] = min(-net[t], d.max_charge_kw, room)
                    soc += kw[t] * d.charge_efficiency * hours
                else:
                    kw[t] = -min(net[t], d.max_discharge_kw, left)
                    soc += kw[t] / d.discharge_efficiency * hours
            out[f"{d.name}_kw"] = kw
            net = net + kw
    out["grid_import_kw"] = np.clip(net, 0.0, None)
    out["grid_export_kw"] = np.minimum(
        np.clip(-net, 0.0, None), household.site.grid_export_limit_kw
    )
    out["slot_hours"] = hours
    return out, short


def _cheapest_runs(app: HouseholdAppliance, price: pd.Series, tz: str) -> np.ndarray:
    """Each run of the period starts at its cheapest start (ties: the earliest)."""
    idx = pd.DatetimeIndex(price.index)
    step = int((idx[1] - idx[0]).total_seconds() // 60)
    slot = pd.Timedelta(minutes=step)
    lo, hi = idx[0], idx[-1] + slot
    p = price.to_numpy(dtype=float)
    prof = programme_kw(app, step)
    k = len(prof)
    kw = np.zeros(len(idx))
    for run in appliance_runs(app, lo, hi, tz):
        first = math.ceil((max(run.earliest_start, lo) - lo) / slot - 1e-9)
        last = math.floor((min(run.latest_end, hi) - lo) / slot + 1e-9)
        if last - first < k:
            continue  # does not fit within the period: a run at its edge
        costs = [float(prof @ p[s : s + k]) for s in range(first, last - k + 1)]
        best = first + int(np.argmin(costs))
        kw[best : best + k] += prof
    return kw


def _thermostat(
    household: Household, hp: HouseholdHeatPump, price: pd.Series, outdoor_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The heat pump as in the optimizer's baseline: a thermostat holding its set point.

    Returns the electric power and the indoor temperature after each slot.
    """
    from wattplan.optimizer._flows import simulate_baseline

    idx = pd.DatetimeIndex(price.index)
    minutes = int((idx[1] - idx[0]).total_seconds() // 60)
    only = household.model_copy(update={"devices": [hp]})
    zero = pd.Series(0.0, index=idx)
    scenario = household_scenario(
        only, idx[0], idx[-1] + pd.Timedelta(minutes=minutes), base_load_kw=zero,
        prices_ct_per_kwh=price, resolution="15min" if minutes == 15 else "60min",
        outdoor_c=pd.Series(outdoor_c, index=idx),
    )  # fmt: skip
    flows = simulate_baseline(prepare(scenario))
    return flows.device_kw[hp.name], flows.indoor_c[hp.name]


def _optimize(scenario: Any, day: dt.date, solver: SolverOptions | None = None) -> Plan:
    plan = optimize(scenario, solver=solver)
    if plan.status not in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE_WITH_SHORTFALL):
        raise WattplanError(f"plan of {day}: {plan.status.value}: {plan.message}")
    return plan


def _bill(frame: pd.DataFrame) -> float:
    h = frame["slot_hours"]
    cost = frame["grid_import_kw"] * frame["price_ct_per_kwh"] * h
    credit = frame["grid_export_kw"] * frame["feed_in_ct_per_kwh"] * h
    return float((cost - credit).sum() / 100.0)
