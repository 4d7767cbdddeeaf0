"""Backtests: what an EV and a home battery would have saved on real prices, day by day.

:func:`backtest_ev_battery` replays a period of real DE-LU day-ahead prices one planning
window at a time (each day from ``window_start`` local time to the same time on the next
day; 23 and 25 hours long on DST days) and compares three ways of running the household:

* **optimized**: :func:`wattplan.optimize` plans the car and the battery together;
* **plug-in**: the optimizer's baseline, the household without wattplan: the car charges
  at full power from plug-in until it has its energy, the battery does self-consumption
  (it never charges from the grid, so without PV it stays idle);
* **cheapest hours**: the common smart-charging rule, :func:`cheapest_hours_schedule`:
  the car charges in the cheapest slots of its plug-in window; the battery has no such
  simple rule that knows when discharging pays, so it behaves as in the plug-in case.

Every window is planned with all of its prices known: day-ahead prices for the next day
are published by about 14:20, so at an 18:00 plug-in the car knows every price it can use;
the battery sees the window's first hours with the same foresight. The household has no PV
(the backtest measures what price flexibility alone is worth) and its base load is the
BDEW H25 profile shipped in :mod:`wattplan.datasets`, so the comparison needs nothing but
prices. The battery starts and ends each window at the same state of charge, so that every
window is like for like with the baseline.

The function is pure apart from reading the shipped datasets when ``prices`` or
``base_load_kw`` are not given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wattplan.optimizer import Plan, PlanStatus, SolverOptions, optimize, scenario_from_dict

__all__ = [
    "BacktestBattery",
    "BacktestEV",
    "BacktestResult",
    "backtest_ev_battery",
    "cheapest_hours_schedule",
]

_TZ = "Europe/Berlin"


@dataclass(frozen=True)
class BacktestEV:
    """A car that comes home every evening and needs the same energy every night.

    ``plug_in`` and ``departure`` are local wall-clock times (the departure is on the next
    morning when it is earlier than the plug-in time); ``energy_kwh`` goes into the car's
    battery (the wallbox draws ``energy_kwh / efficiency``).
    """

    energy_kwh: float = 10.0
    max_power_kw: float = 11.0
    efficiency: float = 0.92
    plug_in: dt.time = dt.time(18, 0)
    departure: dt.time = dt.time(7, 0)
    start_penalty_eur: float = 0.02

    def __post_init__(self) -> None:
        if self.energy_kwh < 0:
            raise ValueError(f"energy_kwh: must not be negative, got {self.energy_kwh}")
        if self.max_power_kw <= 0:
            raise ValueError(f"max_power_kw: must be positive, got {self.max_power_kw}")
        if not 0 < self.efficiency <= 1:
            raise ValueError(f"efficiency: must lie in (0, 1], got {self.efficiency}")
        if self.start_penalty_eur < 0:
            raise ValueError(
                f"start_penalty_eur: must not be negative, got {self.start_penalty_eur}"
            )


@dataclass(frozen=True)
class BacktestBattery:
    """A stationary home battery; each window starts and ends at ``soc_min_kwh``.

    Starting every window empty keeps the windows independent and like for like with the
    baseline (which, without PV, leaves the battery idle): the battery cycles at most
    about once a day, charging from the grid when it is cheap and discharging into the
    house's own demand when it is dear (it never exports).
    """

    capacity_kwh: float = 10.0
    max_charge_kw: float = 5.0
    max_discharge_kw: float = 5.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    soc_min_kwh: float = 1.0
    wear_cost_ct_per_kwh: float = 1.0

    def __post_init__(self) -> None:
        if self.capacity_kwh <= 0:
            raise ValueError(f"capacity_kwh: must be positive, got {self.capacity_kwh}")
        if not 0 <= self.soc_min_kwh <= self.capacity_kwh:
            raise ValueError("soc_min_kwh: must lie within [0, capacity_kwh]")
        for name in ("max_charge_kw", "max_discharge_kw"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        for name in ("charge_efficiency", "discharge_efficiency"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}: must lie in (0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class BacktestResult:
    """The outcome of :func:`backtest_ev_battery`.

    ``days`` has one row per planning window, indexed by the window's local start date,
    with the household's bill in EUR for the window under each strategy
    (``optimized_eur``, ``plug_in_eur``, ``cheapest_hours_eur``; base load included, the
    same in all three), the savings of the optimized plan against the other two, the car's
    share of each bill (``ev_*_eur``: its energy valued at the slot prices), the car's
    energy and charging starts, the battery's throughput and the window's price statistics.
    """

    days: pd.DataFrame
    ev: BacktestEV | None
    battery: BacktestBattery | None
    plans: dict[dt.date, Plan] = field(default_factory=dict, repr=False)

    @property
    def totals(self) -> pd.Series:
        """Sums over all windows of the money and energy columns."""
        cols = [
            c
            for c in self.days.columns
            if c.endswith(("_eur", "_kwh", "_starts")) and not c.endswith("_per_kwh")
        ]
        return self.days[cols].sum()

    @property
    def savings_vs_plug_in_eur(self) -> float:
        return float(self.days["savings_vs_plug_in_eur"].sum())

    @property
    def savings_vs_cheapest_hours_eur(self) -> float:
        return float(self.days["savings_vs_cheapest_hours_eur"].sum())

    def summary(self) -> str:
        """A few lines with the totals."""
        t = self.totals
        first, last = self.days.index[0], self.days.index[-1]
        return "\n".join(
            [
                f"{len(self.days)} windows from {first} to {last}",
                f"  optimized       {t['optimized_eur']:9.2f} EUR",
                f"  plug-in         {t['plug_in_eur']:9.2f} EUR"
                f"  (optimized saves {t['savings_vs_plug_in_eur']:.2f} EUR)",
                f"  cheapest hours  {t['cheapest_hours_eur']:9.2f} EUR"
                f"  (optimized saves {t['savings_vs_cheapest_hours_eur']:.2f} EUR)",
            ]
        )


def cheapest_hours_schedule(
    prices: pd.Series,
    *,
    energy_kwh: float,
    max_power_kw: float,
    plug_in: pd.Timestamp | dt.datetime,
    departure: pd.Timestamp | dt.datetime,
    efficiency: float = 1.0,
) -> pd.Series:
    """Charge in the cheapest slots of the plug-in window until the energy is in.

    The rule of many smart chargers: take the slots that lie wholly inside
    ``[plug_in, departure)``, sort them by price (earlier first among equal prices) and
    charge at ``max_power_kw`` in the cheapest ones until ``energy_kwh`` has gone into the
    battery (``efficiency`` from the grid side); the last slot may be partial.

    Parameters
    ----------
    prices
        Price per slot (any unit) with a tz-aware index of equally long slots.
    energy_kwh
        Energy to put into the car's battery, kWh.
    max_power_kw
        Charging power from the grid side, kW.
    plug_in, departure
        The window, tz-aware.
    efficiency
        Grid-to-battery efficiency.

    Returns
    -------
    pandas.Series
        Charging power in kW per slot on the index of ``prices`` (0 outside the window).
        If the window is too short, every slot in it is used at full power.
    """
    idx = pd.DatetimeIndex(prices.index)
    if idx.tz is None:
        raise ValueError("prices: the index must be tz-aware")
    if len(idx) < 2:
        raise ValueError("prices: need at least two slots to know their length")
    step = idx[1] - idx[0]
    dt_h = step.total_seconds() / 3600.0
    lo, hi = pd.Timestamp(plug_in), pd.Timestamp(departure)
    if lo.tzinfo is None or hi.tzinfo is None:
        raise ValueError("plug_in and departure must be tz-aware")
    inside = np.flatnonzero((idx >= lo) & (idx + step <= hi))
    values = prices.to_numpy(dtype=float)
    order = inside[np.argsort(values[inside], kind="stable")]
    kw = np.zeros(len(idx))
    left = energy_kwh / efficiency  # from the grid side, kWh
    for t in order:
        if left <= 1e-12:
            break
        p = min(max_power_kw, left / dt_h)
        kw[t] = p
        left -= p * dt_h
    return pd.Series(kw, index=idx, name="cheapest_hours_kw")


def _starts(kw: np.ndarray[Any, np.dtype[np.float64]]) -> int:
    on = kw > 1e-6
    return int(on[0]) + int(np.sum(on[1:] & ~on[:-1])) if len(on) else 0


def _window_scenario(
    start: pd.Timestamp,
    end: pd.Timestamp,
    resolution: str,
    base_load: pd.Series,
    ev: BacktestEV | None,
    battery: BacktestBattery | None,
    plug_in: pd.Timestamp,
    departure: pd.Timestamp,
) -> dict[str, Any]:
    devices: list[dict[str, Any]] = []
    if ev is not None:
        devices.append(
            {
                "kind": "ev",
                "name": "car",
                "max_power_kw": ev.max_power_kw,
                "efficiency": ev.efficiency,
                "start_penalty_eur": ev.start_penalty_eur,
                "sessions": [
                    {
                        "plug_in": plug_in.isoformat(),
                        "departure": departure.isoformat(),
                        "energy_kwh": ev.energy_kwh,
                    }
                ],
            }
        )
    if battery is not None:
        devices.append(
            {
                "kind": "battery",
                "name": "battery",
                "capacity_kwh": battery.capacity_kwh,
                "soc_kwh": battery.soc_min_kwh,
                "soc_min_kwh": battery.soc_min_kwh,
                "end_soc_kwh": battery.soc_min_kwh,
                "max_charge_kw": battery.max_charge_kw,
                "max_discharge_kw": battery.max_discharge_kw,
                "charge_efficiency": battery.charge_efficiency,
                "discharge_efficiency": battery.discharge_efficiency,
                "wear_cost_ct_per_kwh": battery.wear_cost_ct_per_kwh,
            }
        )
    return {
        "name": f"backtest {start.date().isoformat()}",
        "timezone": _TZ,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "resolution": resolution,
        # every window starts with an empty battery: what a window leaves behind is not
        # carried over, so it is worth nothing here
        "site": {"base_load": base_load, "terminal_price_ct_per_kwh": 0.0},
        "devices": devices,
    }


def _default_prices(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
    from wattplan import datasets

    spot = datasets.read_day_ahead_prices(lo, hi)
    return datasets.all_in_price_ct_per_kwh(spot)


def _default_base_load(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
    from wattplan import datasets

    years = range(lo.tz_convert(_TZ).year, hi.tz_convert(_TZ).year + 1)
    parts = []
    for year in years:
        try:
            parts.append(datasets.read_household_load(year))
        except ValueError as exc:
            raise ValueError(
                f"base_load_kw: no shipped household load for {year}; pass base_load_kw"
            ) from exc
    load: pd.Series = pd.concat(parts)
    out: pd.Series = load[~load.index.duplicated()]
    return out


def _local(day: dt.date, at: dt.time) -> pd.Timestamp:
    """``day`` at wall-clock time ``at`` in Europe/Berlin (a skipped time moves forward)."""
    naive = pd.Timestamp(
        year=day.year, month=day.month, day=day.day, hour=at.hour, minute=at.minute
    )
    return naive.tz_localize(_TZ, ambiguous=False, nonexistent="shift_forward")


def backtest_ev_battery(
    start: str | dt.date,
    end: str | dt.date,
    *,
    ev: BacktestEV | None = BacktestEV(),
    battery: BacktestBattery | None = BacktestBattery(),
    prices: pd.Series | None = None,
    base_load_kw: pd.Series | None = None,
    window_start: dt.time = dt.time(12, 0),
    keep_plans: bool = False,
    solver: SolverOptions | None = None,
) -> BacktestResult:
    """Replay real prices day by day: optimized vs plug-in vs cheapest-hours charging.

    Parameters
    ----------
    start, end
        Local dates (Europe/Berlin): one planning window starts on each day of
        ``[start, end)``, at ``window_start``, and ends at the same time on the next day.
    ev, battery
        The car and the battery (either may be None, not both).
    prices
        All-in import prices, ct/kWh, tz-aware index (hourly or 15-minute; each window is
        planned at the resolution its prices have). Default: the shipped DE-LU day-ahead
        prices turned into a Nomos-like all-in price
        (:func:`wattplan.datasets.all_in_price_ct_per_kwh`, 16 ct/kWh markup, 19 % VAT).
    base_load_kw
        The household's base load, kW, tz-aware index. Default: the shipped H25 profile
        for 4000 kWh a year (2025 and 2026 only).
    window_start
        Local time at which each window starts.
    keep_plans
        Keep every window's :class:`~wattplan.Plan` in ``result.plans`` (memory!).
    solver
        Solver options for every window.

    Returns
    -------
    BacktestResult
        One row per window in ``days`` and the totals.

    Raises
    ------
    ValueError
        Bad arguments, or no base load for the period.
    PriceDataError
        Prices that do not cover a window.
    """
    if ev is None and battery is None:
        raise ValueError("ev, battery: give at least one device")
    first, stop = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    if stop <= first:
        raise ValueError(f"end ({stop}) must be after start ({first})")
    days = [first + dt.timedelta(days=i) for i in range((stop - first).days)]
    lo = _local(days[0], window_start).tz_convert("UTC")
    hi = _local(days[-1] + dt.timedelta(days=1), window_start).tz_convert("UTC")
    price_all = _default_prices(lo, hi) if prices is None else prices.astype(float)
    load_all = _default_base_load(lo, hi) if base_load_kw is None else base_load_kw.astype(float)
    for name, s in (("prices", price_all), ("base_load_kw", load_all)):
        if not isinstance(s.index, pd.DatetimeIndex) or s.index.tz is None:
            raise ValueError(f"{name}: needs a tz-aware DatetimeIndex")
    price_all = price_all.tz_convert("UTC").sort_index()
    load_all = load_all.tz_convert("UTC").sort_index()

    rows: list[dict[str, Any]] = []
    plans: dict[dt.date, Plan] = {}
    for day in days:
        w0 = _local(day, window_start)
        w1 = _local(day + dt.timedelta(days=1), window_start)
        plug_in = _local(day, ev.plug_in) if ev is not None else w0
        dep_day = day + dt.timedelta(days=1) if ev and ev.departure <= ev.plug_in else day
        departure = _local(dep_day, ev.departure) if ev is not None else w1
        if ev is not None and not (w0 <= plug_in < departure <= w1):
            raise ValueError("ev: the plug-in window must lie within the planning window")
        p = price_all[(price_all.index >= w0) & (price_all.index < w1)]
        steps = pd.DatetimeIndex(p.index).to_series().diff().dropna()
        resolution = "15min" if len(steps) and steps.min() < pd.Timedelta("60min") else "60min"
        if steps.nunique() > 1:
            # the window of 2025-09-30 holds hourly and then 15-minute prices; the optimizer
            # reads a series' step from its smallest gap, so repeat each hourly price
            quarter = pd.date_range(w0, w1, freq="15min", inclusive="left").tz_convert("UTC")
            p = p.reindex(quarter, method="ffill", limit=3)
        load = load_all[(load_all.index >= w0) & (load_all.index < w1)]
        scenario = scenario_from_dict(
            _window_scenario(w0, w1, resolution, load, ev, battery, plug_in, departure)
        )
        plan = optimize(scenario, prices=p, solver=solver)
        if plan.status not in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE_WITH_SHORTFALL):
            raise RuntimeError(f"window {day}: {plan.status.value}: {plan.message}")
        if keep_plans:
            plans[day] = plan
        rows.append(_row(day, plan, ev, plug_in, departure))
    frame = pd.DataFrame(rows).set_index("date")
    return BacktestResult(days=frame, ev=ev, battery=battery, plans=plans)


def _row(
    day: dt.date,
    plan: Plan,
    ev: BacktestEV | None,
    plug_in: pd.Timestamp,
    departure: pd.Timestamp,
) -> dict[str, Any]:
    sched = plan.schedule
    base = plan.baseline_schedule
    assert base is not None
    idx = pd.DatetimeIndex(sched.index)
    dt_h = plan.resolution_minutes / 60.0
    price = sched["price_ct_per_kwh"].to_numpy(dtype=float)
    load = sched["base_load_kw"].to_numpy(dtype=float)

    def bill(import_kw: np.ndarray[Any, np.dtype[np.float64]]) -> float:
        return float(np.sum(price * import_kw) * dt_h / 100.0)

    optimized = bill(sched["grid_import_kw"].to_numpy(dtype=float))
    plug_in_bill = bill(base["grid_import_kw"].to_numpy(dtype=float))
    row: dict[str, Any] = {"date": day}
    zero = np.zeros(len(idx))
    ev_opt = sched["car_kw"].to_numpy(dtype=float) if ev is not None else zero
    ev_base = base["car_kw"].to_numpy(dtype=float) if ev is not None else zero
    if ev is not None:
        ev_cheap = cheapest_hours_schedule(
            sched["price_ct_per_kwh"],
            energy_kwh=ev.energy_kwh,
            max_power_kw=ev.max_power_kw,
            plug_in=plug_in,
            departure=departure,
            efficiency=ev.efficiency,
        ).to_numpy()
    else:
        ev_cheap = zero
    # cheapest hours: the car as above; the battery as without wattplan, which (empty, no
    # PV, no grid charging) leaves it idle
    cheapest = bill(load + ev_cheap)
    row["optimized_eur"] = optimized
    row["plug_in_eur"] = plug_in_bill
    row["cheapest_hours_eur"] = cheapest
    row["savings_vs_plug_in_eur"] = plug_in_bill - optimized
    row["savings_vs_cheapest_hours_eur"] = cheapest - optimized
    if ev is not None:
        row["ev_optimized_eur"] = bill(ev_opt)
        row["ev_plug_in_eur"] = bill(ev_base)
        row["ev_cheapest_hours_eur"] = bill(ev_cheap)
        row["ev_grid_kwh"] = float(ev_opt.sum() * dt_h)
        row["ev_shortfall_kwh"] = sum(s.amount for s in plan.shortfalls if s.kind == "energy")
        row["ev_optimized_starts"] = _starts(ev_opt)
        row["ev_cheapest_hours_starts"] = _starts(ev_cheap)
    if "battery_kw" in sched:
        bat = sched["battery_kw"].to_numpy(dtype=float)
        row["battery_charged_kwh"] = float(np.clip(bat, 0, None).sum() * dt_h)
        row["battery_discharged_kwh"] = float(np.clip(-bat, 0, None).sum() * dt_h)
    row["mean_price_ct_per_kwh"] = float(price.mean())
    row["price_spread_ct_per_kwh"] = float(price.max() - price.min())
    row["slots"] = len(idx)
    row["resolution_minutes"] = plan.resolution_minutes
    return row
