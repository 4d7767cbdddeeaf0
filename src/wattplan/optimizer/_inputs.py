"""Turn a validated scenario (plus optional prices) into aligned numpy arrays per slot.

Both the LP and the baseline simulation read these arrays, so they see exactly the same
prices, loads, availability windows and targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattplan.exceptions import PriceDataError, ScenarioError
from wattplan.optimizer._scenario import (
    EV,
    Appliance,
    Battery,
    HeatPump,
    Scenario,
    TimeSeries,
)
from wattplan.optimizer._timeseries import FloatArray, SlotGrid, align_series, check_price_series

__all__ = ["ApplianceIn", "BatteryIn", "EVIn", "EVSessionIn", "HeatPumpIn", "Inputs", "prepare"]


@dataclass
class EVSessionIn:
    index: int
    first: int  # first slot wholly inside [plug_in, departure)
    last: int  # exclusive
    required_kwh: float  # floor: energy into the battery needed within the horizon
    max_kwh: float  # ceiling: most energy into the battery within the horizon (≥ floor)
    target_kwh: float  # the session's whole target (what the baseline charges)
    soc_kwh: float | None  # SoC at the first slot, if known
    note: str = ""
    # v2h: bounds on the energy in the car relative to plug-in, after every slot (kWh), and
    # whether the session may discharge at all (not when it starts below v2h_min_soc_kwh)
    net_min_kwh: float = 0.0
    net_max_kwh: float = 0.0
    discharge: bool = False


@dataclass
class EVIn:
    dev: EV
    sessions: list[EVSessionIn]
    terminal_ct: float  # value of energy above the floor, ct per kWh of grid energy

    def available(self, n: int) -> FloatArray:
        mask = np.zeros(n)
        for s in self.sessions:
            mask[s.first : s.last] = 1.0
        return mask


@dataclass
class BatteryIn:
    dev: Battery
    end_kwh: float | None  # soft floor on the end SoC, if any
    terminal_ct: float  # value of stored energy, ct per kWh of AC energy it delivers


@dataclass
class HeatPumpIn:
    dev: HeatPump
    cop: FloatArray
    outdoor_c: FloatArray
    comfort_min_c: FloatArray
    comfort_max_c: FloatArray
    gains_kw: FloatArray
    end_c: float | None  # soft floor on the end temperature, if any
    setpoint_c: float
    terminal_ct: float  # value of stored heat, ct per kWh of electricity it saves

    @property
    def eur_per_kelvin(self) -> float:
        """What one K of indoor temperature at the end is worth, EUR."""
        c = self.dev.building.heat_capacity_kwh_per_k
        return self.terminal_ct / 100.0 * c / float(np.mean(self.cop))


@dataclass
class ApplianceIn:
    dev: Appliance
    profile_kw: FloatArray  # per slot of the grid's resolution
    starts: list[int]  # feasible start slots
    active: bool  # the window overlaps the horizon at all
    note: str = ""


@dataclass
class Inputs:
    scenario: Scenario
    grid: SlotGrid
    price: FloatArray
    feed_in: FloatArray
    base_load: FloatArray
    pv: FloatArray
    evs: list[EVIn] = field(default_factory=list)
    batteries: list[BatteryIn] = field(default_factory=list)
    heat_pumps: list[HeatPumpIn] = field(default_factory=list)
    appliances: list[ApplianceIn] = field(default_factory=list)
    terminal_ct: float = 0.0  # the site's terminal price, ct/kWh
    import_limit_kw: FloatArray = field(default_factory=lambda: np.zeros(0))  # per slot
    # grid-draw cap per slot of each dimmed device (inf where not dimmed); only devices
    # with a window that binds somewhere in the horizon are listed
    dimming_kw: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def dt_h(self) -> float:
        return self.grid.dt_h


# Plausible range of each series after alignment, by its key's last part: finite numbers
# far outside these are typing errors (W for kW, a price in EUR/MWh) or hostile input
SERIES_RANGES: dict[str, tuple[float, float, str]] = {
    "prices": (-10_000.0, 10_000.0, "ct/kWh"),
    "feed_in_ct_per_kwh": (-10_000.0, 10_000.0, "ct/kWh"),
    "base_load": (0.0, 1_000.0, "kW"),
    "pv": (0.0, 1_000.0, "kW"),
    "grid_import_limit_kw": (0.0, 1_000.0, "kW"),
    "outdoor_c": (-60.0, 60.0, "°C"),
    "cop": (0.0, 20.0, ""),
    "comfort_min_c": (-20.0, 60.0, "°C"),
    "comfort_max_c": (-20.0, 60.0, "°C"),
    "gains_kw": (-1_000.0, 1_000.0, "kW"),
}


def _check_range(arr: FloatArray, key: str, grid: SlotGrid, err: type[ScenarioError]) -> None:
    lo, hi, unit = SERIES_RANGES.get(key.rsplit(".", 1)[-1], (-1e6, 1e6, ""))
    bad = np.flatnonzero((arr < lo - 1e-9) | (arr > hi + 1e-9))
    if len(bad):
        at = grid.index[int(bad[0])].isoformat()
        raise err(
            key=key,
            reason=f"{arr[bad[0]]:g} at {at} lies outside the plausible range "
            f"[{lo:g}, {hi:g}]{' ' + unit if unit else ''}",
        )


def _series(
    value: float | TimeSeries, grid: SlotGrid, key: str, err: type[ScenarioError]
) -> FloatArray:
    arr = _aligned(value, grid, key, err)
    _check_range(arr, key, grid, err)
    return arr


def _aligned(
    value: float | TimeSeries, grid: SlotGrid, key: str, err: type[ScenarioError]
) -> FloatArray:
    if isinstance(value, TimeSeries):
        s = value.to_series()
        if s is None:
            assert value.values is not None
            arr = np.asarray(value.values, dtype=np.float64) * value.scale
            if len(arr) != grid.n:
                raise err(
                    key=key,
                    reason=f"has {len(arr)} values but the horizon has {grid.n} slots "
                    "(give 'index' for values that are not one per slot)",
                )
            if not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise err(key=key, reason=f"value {bad} is missing or not finite")
            return arr
        return align_series(s, grid, key=key, error=err)
    return align_series(float(value), grid, key=key, error=err)


def staffell_cop(outdoor_c: FloatArray, flow_c: float) -> FloatArray:
    """Air-source COP fit of Staffell et al. (2012), clamped to its valid 15–60 K lift."""
    lift = np.clip(flow_c - outdoor_c, 15.0, 60.0)
    return np.maximum(1.0, 6.81 - 0.121 * lift + 0.000630 * lift**2)


def _prices(scenario: Scenario, prices: pd.Series | None, grid: SlotGrid) -> FloatArray:
    if prices is not None:
        series = check_price_series(prices, "prices")
        arr = align_series(series, grid, key="prices", error=PriceDataError)
        _check_range(arr, "prices", grid, PriceDataError)
        return arr
    if scenario.prices is None:
        raise PriceDataError(
            key="prices", reason="no prices: give them in the scenario or as optimize(prices=...)"
        )
    ts = scenario.prices.to_timeseries()
    return _series(ts, grid, "prices", PriceDataError)


TERMINAL_PRICE_PERCENTILE = 25.0
"""Percentile of the horizon's import prices used as the default terminal price."""


def default_terminal_price(price: FloatArray) -> float:
    """The terminal price when none is given: the lower quartile (25th percentile) of the
    horizon's import prices, never below zero.

    Chosen on rolling day-by-day re-plans settled against what really happened
    (``benchmarks/terminal_value.py``): over four months of 2025, one per season, the lower
    quartile gave the lowest realised bill on both households measured, ahead of the mean
    of the last 24 hours, the mean, the median, the upper quartile, the minimum and zero;
    see the README.
    """
    # stored energy need not be used, so it is never worth less than nothing
    return max(0.0, float(np.percentile(price, TERMINAL_PRICE_PERCENTILE)))


def _ev(dev: EV, i: int, grid: SlotGrid, terminal_ct: float) -> EVIn:
    sessions: list[EVSessionIn] = []
    for j, s in enumerate(dev.sessions):
        if s.departure <= grid.start or s.plug_in >= grid.end:
            continue
        first = grid.slot_of(s.plug_in, ceil=True)
        last = grid.slot_of(s.departure, ceil=False)
        need = s.needed_kwh()
        note = ""
        after_h = max(0.0, (pd.Timestamp(s.departure) - grid.end).total_seconds() / 3600.0)
        if after_h > 0:
            later = dev.max_power_kw * dev.efficiency * after_h
            need_in = max(0.0, need - later)
            note = (
                f"departs after the horizon; {need - need_in:.1f} kWh left for after "
                f"{grid.end.isoformat()}"
            )
        else:
            need_in = need
        sess = EVSessionIn(
            index=j,
            first=first,
            last=max(first, last),
            required_kwh=need_in,
            max_kwh=s.ceiling_kwh(),
            target_kwh=need,
            soc_kwh=s.soc_kwh,
            note=note,
        )
        if dev.v2h:
            _v2h_bounds(dev, sess)
        sessions.append(sess)
    return EVIn(dev, sessions, _terminal(dev.terminal_price_ct_per_kwh, terminal_ct))


def _v2h_bounds(dev: EV, sess: EVSessionIn) -> None:
    """Energy bounds of a bidirectional session, relative to the SoC at plug-in.

    Never above the session's ceiling (nor the capacity); never below v2h_min_soc_kwh, or
    below the plug-in level when the SoC at plug-in is unknown. A session that starts below
    v2h_min_soc_kwh does not discharge (a linear rule: "discharge only once above it" would
    need a binary per slot).
    """
    top = sess.max_kwh
    floor = 0.0
    sess.discharge = True
    if sess.soc_kwh is not None:
        if dev.capacity_kwh is not None:
            top = min(top, dev.capacity_kwh - sess.soc_kwh)
        low = dev.v2h_min_soc_kwh or 0.0
        if sess.soc_kwh < low - 1e-9:
            sess.discharge = False
        else:
            floor = low - sess.soc_kwh
    sess.net_min_kwh = floor
    sess.net_max_kwh = max(0.0, top)


def _terminal(own: float | None, site: float) -> float:
    return site if own is None else float(own)


def _appliance(dev: Appliance, i: int, grid: SlotGrid) -> ApplianceIn:
    res = grid.resolution_minutes
    step = dev.profile_minutes or res
    prof = np.asarray(dev.profile_kw, dtype=np.float64)
    if step != res:
        # energy of the programme per slot, with the programme starting on a slot edge
        total_min = len(prof) * step
        n_slots = math.ceil(total_min / res)
        edges = np.arange(n_slots + 1) * res
        cum = np.concatenate(([0.0], np.cumsum(prof * step)))
        t = np.arange(len(prof) + 1) * step
        energy = np.diff(np.interp(np.minimum(edges, total_min), t, cum))
        prof = energy / res
    k = len(prof)
    active = dev.latest_end > grid.start and dev.earliest_start < grid.end
    lo = grid.slot_of(dev.earliest_start, ceil=True)
    hi = grid.slot_of(dev.latest_end, ceil=False)
    starts = list(range(lo, hi - k + 1)) if active else []
    note = ""
    if active and not starts:
        note = (
            f"its {k * res}-minute programme does not fit between earliest_start and "
            "latest_end within the horizon"
        )
    return ApplianceIn(dev, prof, starts, active, note)


def _heat_pump(dev: HeatPump, i: int, grid: SlotGrid, terminal_ct: float) -> HeatPumpIn:
    key = f"devices[{i}]"
    outdoor = _series(dev.outdoor_c, grid, f"{key}.outdoor_c", ScenarioError)
    if dev.cop is None:
        cop = staffell_cop(outdoor, dev.flow_temperature_c)
    else:
        cop = _series(dev.cop, grid, f"{key}.cop", ScenarioError)
        if (cop <= 0).any():
            raise ScenarioError(key=f"{key}.cop", reason="must be positive in every slot")
    b = dev.building
    cmin = _series(b.comfort_min_c, grid, f"{key}.building.comfort_min_c", ScenarioError)
    cmax = _series(b.comfort_max_c, grid, f"{key}.building.comfort_max_c", ScenarioError)
    if (cmin > cmax + 1e-9).any():
        at = grid.index[int(np.flatnonzero(cmin > cmax + 1e-9)[0])]
        raise ScenarioError(
            key=f"{key}.building.comfort_min_c",
            reason=f"is above comfort_max_c at {at.isoformat()}",
        )
    gains = _series(b.gains_kw, grid, f"{key}.building.gains_kw", ScenarioError)
    if grid.dt_h * b.heat_loss_kw_per_k / b.heat_capacity_kwh_per_k >= 1.0:
        raise ScenarioError(
            key=f"{key}.building.heat_capacity_kwh_per_k",
            reason="too small for the resolution (time constant shorter than one slot)",
        )
    end_c: float | None
    if b.end_indoor_c == "start":
        end_c = float(np.clip(b.indoor_c, cmin[-1], cmax[-1]))
    else:
        end_c = b.end_indoor_c
    setpoint = (
        b.setpoint_c if b.setpoint_c is not None else float(np.clip(b.indoor_c, cmin[0], cmax[0]))
    )
    return HeatPumpIn(
        dev,
        cop,
        outdoor,
        cmin,
        cmax,
        gains,
        end_c,
        setpoint,
        _terminal(dev.terminal_price_ct_per_kwh, terminal_ct),
    )


def _import_limit(value: float | TimeSeries, grid: SlotGrid) -> FloatArray:
    key = "site.grid_import_limit_kw"
    arr = _series(value, grid, key, ScenarioError)
    if (arr <= 0).any():
        at = grid.index[int(np.flatnonzero(arr <= 0)[0])]
        raise ScenarioError(key=key, reason=f"must be positive in every slot (at {at.isoformat()})")
    return arr


def _dimming_caps(scenario: Scenario, grid: SlotGrid) -> dict[str, FloatArray]:
    """Per dimmed device, the cap on its grid draw in each slot (inf where none).

    A slot is capped when it overlaps a window at all (DimmingWindow: a plan holds one
    power per slot). Devices whose windows miss the horizon or never bind are left out,
    so that a scenario without binding dimming builds exactly the model it did before.
    """
    edges = grid.edges_s()
    out: dict[str, FloatArray] = {}
    for dev in scenario.devices:
        windows = getattr(dev, "dimming", None)
        if not windows:
            continue
        top = dev.max_charge_kw if isinstance(dev, Battery) else getattr(dev, "max_power_kw", 0.0)
        cap = np.full(grid.n, np.inf)
        for w in windows:
            a = pd.Timestamp(w.start).value / 1e9
            b = pd.Timestamp(w.end).value / 1e9
            hit = (edges[:-1] < b) & (edges[1:] > a)
            cap[hit] = np.minimum(cap[hit], w.max_kw)
        if (cap < top - 1e-9).any():
            out[dev.name] = cap
    return out


def prepare(scenario: Scenario, prices: pd.Series | None = None) -> Inputs:
    """Validate the time series of ``scenario`` against its horizon and align them."""
    grid = SlotGrid.build(scenario.start, scenario.end, scenario.resolution_minutes)
    site = scenario.site
    inputs = Inputs(
        scenario=scenario,
        grid=grid,
        price=_prices(scenario, prices, grid),
        feed_in=_series(site.feed_in_ct_per_kwh, grid, "site.feed_in_ct_per_kwh", ScenarioError),
        base_load=_series(site.base_load, grid, "site.base_load", ScenarioError),
        pv=_series(site.pv, grid, "site.pv", ScenarioError),
    )
    for key, arr in (("site.base_load", inputs.base_load), ("site.pv", inputs.pv)):
        if (arr < -1e-9).any():
            at = grid.index[int(np.flatnonzero(arr < -1e-9)[0])]
            raise ScenarioError(key=key, reason=f"must not be negative (at {at.isoformat()})")
    inputs.base_load = np.maximum(inputs.base_load, 0.0)
    inputs.import_limit_kw = _import_limit(site.grid_import_limit_kw, grid)
    inputs.dimming_kw = _dimming_caps(scenario, grid)
    inputs.pv = np.maximum(inputs.pv, 0.0)
    site_ct = site.terminal_price_ct_per_kwh
    tc = default_terminal_price(inputs.price) if site_ct is None else float(site_ct)
    inputs.terminal_ct = tc
    for i, dev in enumerate(scenario.devices):
        if isinstance(dev, EV):
            inputs.evs.append(_ev(dev, i, grid, tc))
        elif isinstance(dev, Battery):
            end = dev.soc_kwh if dev.end_soc_kwh == "start" else dev.end_soc_kwh
            inputs.batteries.append(
                BatteryIn(dev, end, _terminal(dev.terminal_price_ct_per_kwh, tc))
            )
        elif isinstance(dev, HeatPump):
            inputs.heat_pumps.append(_heat_pump(dev, i, grid, tc))
        else:
            inputs.appliances.append(_appliance(dev, i, grid))
    return inputs
