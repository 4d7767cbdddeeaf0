"""The scenario model: a household, its devices, the horizon and the prices.

A scenario is validated by pydantic; :func:`load_scenario` reads a YAML file, reads the
CSV files it points to (paths relative to the scenario file) and turns every series into
inline data, so that the optimizer itself never touches a file. Every key is documented in
the JSON Schema printed by ``wattplan schema``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast

import pandas as pd
import yaml
from annotated_types import Ge, Gt, Le
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wattplan.exceptions import ScenarioError

__all__ = [
    "EV",
    "Appliance",
    "Battery",
    "Building",
    "Device",
    "DimmingWindow",
    "EVSession",
    "HeatPump",
    "Penalties",
    "PriceSpec",
    "Scenario",
    "Site",
    "SolverOptions",
    "Stability",
    "TimeSeries",
    "load_scenario",
    "scenario_json_schema",
]

_STRICT = ConfigDict(extra="forbid", frozen=False, validate_assignment=False, allow_inf_nan=False)


def _not_bool(v: Any) -> Any:
    # pydantic's lax mode reads `true` as 1.0; in a numeric key it is a mistake
    if isinstance(v, bool):
        raise ValueError("must be a number, not true or false")
    return v


# Plausible ranges: every number is finite, and absurd magnitudes (1e300 kW) are refused
# with the key named instead of reaching the solver as numerical trouble.
MAX_KW = 1_000.0
MAX_KWH = 10_000.0
MAX_PRICE_CT = 10_000.0  # ct/kWh, 100 EUR/kWh; the day-ahead market is capped at 400
MAX_EUR = 10_000.0
_NUM = BeforeValidator(_not_bool)
Number = Annotated[float, Ge(-1e6), Le(1e6), _NUM]
Kw = Annotated[float, Le(MAX_KW), _NUM]
Kwh = Annotated[float, Le(MAX_KWH), _NUM]
CtPerKwh = Annotated[float, Ge(-MAX_PRICE_CT), Le(MAX_PRICE_CT), _NUM]
# a bound inside the type: Field(ge=0) would not override the type's own Ge
NonNegCtPerKwh = Annotated[float, Ge(0.0), Le(MAX_PRICE_CT), _NUM]
Celsius = Annotated[float, Ge(-60.0), Le(100.0), _NUM]
Eur = Annotated[float, Le(MAX_EUR), _NUM]
Fraction = Annotated[float, Le(1.0), _NUM]
Count = Annotated[int, _NUM]
# with the lower bound inside (not Field(gt=...)), so that it reaches the JSON Schema of an
# optional key as exclusiveMinimum/minimum
PositiveKw = Annotated[float, Gt(0.0), Le(MAX_KW), _NUM]
NonNegKwh = Annotated[float, Ge(0.0), Le(MAX_KWH), _NUM]
PositiveFraction = Annotated[float, Gt(0.0), Le(1.0), _NUM]

# Bounds on counts (see also the file limits near load_scenario)
MAX_HORIZON_DAYS = 366
MAX_SERIES_VALUES = 1_100_000  # a year of one-minute values
MAX_DEVICES = 100
MAX_SESSIONS = 1_000
MAX_PROFILE_STEPS = 1_440
MAX_PROGRAMME_MINUTES = 7 * 24 * 60


class TimeSeries(BaseModel):
    """A time series: inline values (one per slot, or with ``index``) or a CSV file.

    ``file`` is read only by :func:`load_scenario` (relative to the scenario file), with
    ``time_column`` holding interval starts with a UTC offset. Values mean the average over
    the interval starting at each timestamp; they are aligned onto the scenario's slots by
    time-weighted averaging (hourly onto 15 minutes repeats each hour's value).
    """

    model_config = _STRICT

    file: str | None = Field(None, description="CSV file, relative to the scenario file.")
    column: str | None = Field(None, description="Value column of the CSV file.")
    time_column: str = Field("start", description="Column with interval starts (ISO 8601).")
    values: list[Number] | None = Field(
        None, max_length=MAX_SERIES_VALUES, description="Inline values."
    )
    index: list[AwareDatetime] | None = Field(
        None,
        max_length=MAX_SERIES_VALUES,
        description="Interval starts of the inline values; without it, one value a slot.",
    )
    scale: Number = Field(1.0, description="Factor applied to every value (e.g. kWp of PV).")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.file is None) == (self.values is None):
            raise ValueError("give either 'file' or 'values'")
        n_index, n_values = len(self.index or []), len(self.values or [])
        if self.index is not None and n_index != n_values:
            raise ValueError(f"'index' has {n_index} entries but 'values' has {n_values}")
        return self

    def to_series(self) -> pd.Series | None:
        """The series with a UTC index, or None for positional (one value per slot) data."""
        if self.values is None:
            raise ScenarioError(
                key="file",
                reason=f"{self.file!r} was not read: files are read by load_scenario(path)",
            )
        if self.index is None:
            return None
        idx = pd.DatetimeIndex(pd.to_datetime(self.index, utc=True))
        return pd.Series([v * self.scale for v in self.values], index=idx, dtype=float)

    @classmethod
    def from_pandas(cls, series: pd.Series) -> TimeSeries:
        if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
            raise ValueError("a pandas Series needs a tz-aware DatetimeIndex")
        return cls(
            values=series.astype(float).tolist(),
            index=list(pd.DatetimeIndex(series.index).to_pydatetime()),
        )


def _coerce_series(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return TimeSeries.from_pandas(value)
    if isinstance(value, list | tuple):
        return TimeSeries(values=[float(v) for v in value])
    return value


SeriesInput = Annotated[Number | TimeSeries, Field(union_mode="left_to_right")]
# a positive power in kW, or a series of them (checked per slot once aligned)
PositiveKwSeries = Annotated[
    Annotated[float, Gt(0.0), Le(MAX_KW), _NUM] | TimeSeries, Field(union_mode="left_to_right")
]


class PriceSpec(BaseModel):
    """Import prices: all-in ct/kWh (as Nomos sends them), or EPEX spot plus a tariff formula.

    With spot prices the all-in price is ``(1 + vat) * (spot / 10 + markup_ct_per_kwh)``.
    """

    model_config = _STRICT

    file: str | None = Field(None, description="CSV of all-in prices in ct/kWh.")
    column: str = Field("price_ct_per_kwh", description="All-in price column.")
    values: list[CtPerKwh] | None = Field(
        None, max_length=MAX_SERIES_VALUES, description="Inline all-in prices, ct/kWh."
    )
    index: list[AwareDatetime] | None = Field(
        None, max_length=MAX_SERIES_VALUES, description="Interval starts of 'values'."
    )
    spot_file: str | None = Field(None, description="CSV of day-ahead spot prices in EUR/MWh.")
    spot_column: str = Field("price_eur_per_mwh", description="Spot price column.")
    spot_values: list[Annotated[float, Ge(-1e5), Le(1e5), _NUM]] | None = Field(
        None, max_length=MAX_SERIES_VALUES, description="Inline spot prices, EUR/MWh."
    )
    spot_index: list[AwareDatetime] | None = Field(
        None, max_length=MAX_SERIES_VALUES, description="Starts of 'spot_values'."
    )
    markup_ct_per_kwh: CtPerKwh = Field(16.0, description="Net markup on spot (grid, levies).")
    vat: Fraction = Field(0.19, ge=0.0, le=1.0, description="VAT applied to spot + markup.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [
            self.file is not None or self.values is not None,
            self.spot_file is not None or self.spot_values is not None,
        ]
        if sum(sources) != 1:
            raise ValueError("give all-in prices ('file'/'values') or spot ('spot_file'/...)")
        return self

    def to_timeseries(self) -> TimeSeries:
        """All-in ct/kWh as a :class:`TimeSeries` (after :func:`load_scenario` read files)."""
        if self.values is not None:
            return TimeSeries(values=self.values, index=self.index)
        if self.spot_values is not None:
            factor = 1.0 + self.vat
            vals = [factor * (v / 10.0 + self.markup_ct_per_kwh) for v in self.spot_values]
            return TimeSeries(values=vals, index=self.spot_index)
        raise ScenarioError(
            key="prices", reason="price files are read by load_scenario(path), not by optimize"
        )


class Site(BaseModel):
    """The grid connection, base load and PV of the household."""

    model_config = _STRICT

    feed_in_ct_per_kwh: SeriesInput = Field(0.0, description="Feed-in price, ct/kWh.")
    grid_import_limit_kw: PositiveKwSeries = Field(
        30.0,
        description="Grid import limit, kW: a number, or a series (e.g. a grid operator's "
        "signal) with a positive value in every slot. Import above it is a priced overload "
        "reported as a grid_limit shortfall.",
    )
    grid_export_limit_kw: Kw = Field(30.0, ge=0, description="Grid export limit, kW.")
    base_load: SeriesInput = Field(0.0, description="Inflexible household load, kW (mean).")
    pv: SeriesInput = Field(0.0, description="Available PV output, kW (mean); may be curtailed.")
    terminal_price_ct_per_kwh: NonNegCtPerKwh | None = Field(
        None,
        allow_inf_nan=False,
        description="What the horizon leaves behind is worth, ct per kWh of grid energy it "
        "saves later: energy left in a battery (through its discharge efficiency), EV "
        "energy above a session's target (through the charging efficiency) and heat stored "
        "in the building (through the mean COP). The objective and the saving use this one "
        "price, so an optimal plan never reports a negative saving against a feasible "
        "baseline. Default: the lower quartile (25th percentile) of the horizon's import "
        "prices, never below 0 (measured on rolling re-plans, see "
        "benchmarks/terminal_value.py). Devices may override it.",
    )
    export_only_pv: bool = Field(
        True,
        description="Export comes only from PV (export ≤ PV used in every slot): a battery "
        "or car serves the house but is not sold to the grid. false lets a battery (and an "
        "EV with v2h) discharge to the grid too, when the feed-in price pays for the "
        "efficiencies, the wear and the terminal value of the energy.",
    )

    _c1 = field_validator(
        "feed_in_ct_per_kwh", "base_load", "pv", "grid_import_limit_kw", mode="before"
    )(lambda v: _coerce_series(v))


class EVSession(BaseModel):
    """One charging session: the car is plugged in from ``plug_in`` until ``departure``.

    Give ``energy_kwh`` (energy to add to the car's battery), or ``target_soc_kwh`` with
    ``soc_kwh`` (the state of charge at plug-in). With ``soc_kwh`` and the EV's
    ``capacity_kwh`` the plan may charge beyond the need when prices are negative.
    """

    model_config = _STRICT

    plug_in: AwareDatetime = Field(description="When the car is plugged in.")
    departure: AwareDatetime = Field(description="When the car leaves; charging ends before.")
    energy_kwh: Kwh | None = Field(None, ge=0, description="Energy needed in the battery, kWh.")
    soc_kwh: Kwh | None = Field(None, ge=0, description="State of charge at plug-in, kWh.")
    target_soc_kwh: Kwh | None = Field(None, ge=0, description="Wanted SoC at departure, kWh.")
    max_energy_kwh: Kwh | None = Field(
        None,
        ge=0,
        description="Most energy the plan may add, kWh (≥ energy_kwh). Energy above the "
        "target is optional and worth the EV's terminal price: with it the car soaks up PV "
        "surplus or cheap and negative prices. Default: the target (nothing beyond it).",
    )
    max_soc_kwh: Kwh | None = Field(
        None,
        ge=0,
        description="Highest SoC the plan may charge to, kWh (≥ target_soc_kwh; needs "
        "soc_kwh). Like max_energy_kwh, as a state of charge.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.departure <= self.plug_in:
            raise ValueError(
                f"departure ({self.departure.isoformat()}) must be after plug_in "
                f"({self.plug_in.isoformat()})"
            )
        if self.energy_kwh is None and self.target_soc_kwh is None:
            raise ValueError("give energy_kwh or target_soc_kwh")
        if self.target_soc_kwh is not None and self.soc_kwh is None:
            raise ValueError("target_soc_kwh needs soc_kwh (the SoC at plug-in)")
        if self.max_soc_kwh is not None:
            if self.soc_kwh is None:
                raise ValueError("max_soc_kwh needs soc_kwh (the SoC at plug-in)")
            if self.max_energy_kwh is not None:
                raise ValueError("give max_energy_kwh or max_soc_kwh, not both")
            if self.max_soc_kwh < self.soc_kwh + self.needed_kwh() - 1e-9:
                raise ValueError("max_soc_kwh must not be below the target SoC")
        if self.max_energy_kwh is not None and self.max_energy_kwh < self.needed_kwh() - 1e-9:
            raise ValueError("max_energy_kwh must not be below the energy needed")
        return self

    def needed_kwh(self) -> float:
        """The floor: energy that must be in the battery by departure, kWh."""
        if self.target_soc_kwh is not None and self.soc_kwh is not None:
            return max(0.0, self.target_soc_kwh - self.soc_kwh)
        return float(self.energy_kwh or 0.0)

    def ceiling_kwh(self) -> float:
        """The most energy the plan may add (the floor unless a maximum is given), kWh."""
        if self.max_soc_kwh is not None and self.soc_kwh is not None:
            return max(self.needed_kwh(), self.max_soc_kwh - self.soc_kwh)
        if self.max_energy_kwh is not None:
            return max(self.needed_kwh(), self.max_energy_kwh)
        return self.needed_kwh()


class _DeviceBase(BaseModel):
    model_config = _STRICT

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Unique name; used in column names (<name>_kw).",
    )


MAX_DIMMING_WINDOWS = 1_000
DIMMING_DEFAULT_KW = 4.2  # §14a EnWG (BNetzA BK6-22-300): the least a dimmed device may draw


class DimmingWindow(BaseModel):
    """A grid operator's dimming signal (§14a EnWG): a cap on a device's grid draw.

    In every slot that overlaps ``[start, end)`` even partly, the device's power drawn from
    the grid stays at or below ``max_kw`` for the whole slot (a plan holds one power per
    slot, so only a cap on the whole slot keeps the dimmed part below it). Own generation
    behind the meter (PV, a battery discharging, not exported) may cover power beyond the
    cap, and goes to dimmed devices first: §14a limits the grid-effective draw. A dimmed
    battery charges beyond its cap from PV only. Overlapping windows: the lowest cap counts.
    """

    model_config = _STRICT

    start: AwareDatetime = Field(description="Start of the dimming window.")
    end: AwareDatetime = Field(description="End of the dimming window (exclusive).")
    max_kw: Kw = Field(
        DIMMING_DEFAULT_KW,
        ge=0,
        description="Most power the device may draw from the grid in the window, kW; "
        "default 4.2 (the minimum §14a EnWG guarantees a heat pump or wallbox).",
    )

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError(f"must be after start ({start.isoformat()})")
        return v


class _DimmableDevice(_DeviceBase):
    dimming: list[DimmingWindow] = Field(
        default_factory=list,
        max_length=MAX_DIMMING_WINDOWS,
        description="Dimming windows (§14a EnWG grid signals): in each slot that overlaps "
        "one, the device's grid draw (battery: charging) is capped at its max_kw. A hard "
        "limit; a target it makes unreachable is reported as a shortfall.",
    )


class EV(_DimmableDevice):
    """An electric car at a wallbox; with ``v2h`` a bidirectional one that may also discharge."""

    kind: Literal["ev"] = "ev"
    max_power_kw: Kw = Field(gt=0, description="Wallbox maximum charging power, kW (AC).")
    min_power_kw: Kw | None = Field(
        None,
        ge=0,
        description="Minimum power when charging, kW; default 1.4 (IEC 61851: 6 A on one "
        "phase; a three-phase wallbox needs about 4.1). 0 allows any power. Above 0 it adds "
        "an on/off variable per slot, which the solver only makes integral where needed.",
    )
    efficiency: Fraction = Field(0.92, gt=0, le=1, description="AC-to-battery efficiency.")
    capacity_kwh: Kwh | None = Field(None, gt=0, description="Usable battery capacity, kWh.")
    sessions: list[EVSession] = Field(
        default_factory=list, max_length=MAX_SESSIONS, description="Charging sessions."
    )
    start_penalty_eur: Eur = Field(
        0.02,
        ge=0,
        description="Cost of each start of charging, EUR: trades a little money for fewer, "
        "longer charging blocks (15-minute price ripple otherwise fragments charging).",
    )
    min_run_minutes: Count = Field(
        0, ge=0, le=MAX_PROGRAMME_MINUTES, description="Minimum charging block (adds binaries)."
    )
    terminal_price_ct_per_kwh: NonNegCtPerKwh | None = Field(
        None,
        allow_inf_nan=False,
        description="Value of energy charged above a session's target, ct per kWh of grid "
        "energy it saves later (charging above the target pays only below this price); "
        "default: site.terminal_price_ct_per_kwh.",
    )
    v2h: bool = Field(
        False,
        description="Bidirectional (vehicle-to-home): while plugged in the car may discharge "
        "to the house, and to the grid when site.export_only_pv is false. Each session's "
        "floor (energy_kwh or target_soc_kwh) must still be reached by departure; the SoC "
        "never exceeds the session's ceiling. Discharge has no minimum power.",
    )
    max_discharge_kw: PositiveKw | None = Field(
        None,
        description="Maximum discharging power (AC), kW; needs v2h. Default: max_power_kw.",
    )
    discharge_efficiency: PositiveFraction | None = Field(
        None, description="Battery-to-AC efficiency; needs v2h. Default: efficiency."
    )
    wear_cost_ct_per_kwh: NonNegCtPerKwh | None = Field(
        None,
        description="Wear cost per kWh discharged (AC), ct/kWh; needs v2h. Default: 1.0, like "
        "the home battery's; the car's battery price over its cycle life is often higher.",
    )
    v2h_min_soc_kwh: NonNegKwh | None = Field(
        None,
        description="Discharging never draws the car below this SoC, kWh (≤ capacity_kwh); "
        "needs v2h. A session that starts below it does not discharge. Default: 0. A session "
        "without soc_kwh gives back at most what it took since plug-in.",
    )

    @field_validator("max_discharge_kw", "discharge_efficiency", "wear_cost_ct_per_kwh")
    @classmethod
    def _needs_v2h(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and not info.data.get("v2h", False):
            raise ValueError("applies only to a bidirectional car: set v2h: true")
        return v

    @field_validator("v2h_min_soc_kwh")
    @classmethod
    def _min_soc(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None:
            return v
        if not info.data.get("v2h", False):
            raise ValueError("applies only to a bidirectional car: set v2h: true")
        cap = info.data.get("capacity_kwh")
        if cap is not None and v > cap + 1e-9:
            raise ValueError(f"({v} kWh) exceeds capacity_kwh ({cap} kWh)")
        return v

    @property
    def v2h_max_discharge_kw(self) -> float:
        """Discharging power limit in use (0 without v2h), kW."""
        if not self.v2h:
            return 0.0
        return self.max_power_kw if self.max_discharge_kw is None else self.max_discharge_kw

    @property
    def v2h_discharge_efficiency(self) -> float:
        return self.efficiency if self.discharge_efficiency is None else self.discharge_efficiency

    @property
    def v2h_wear_cost_ct_per_kwh(self) -> float:
        return 1.0 if self.wear_cost_ct_per_kwh is None else self.wear_cost_ct_per_kwh

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_power_kw is None:
            self.min_power_kw = min(1.4, self.max_power_kw)
        if self.min_power_kw > self.max_power_kw:
            raise ValueError("min_power_kw must not exceed max_power_kw")
        for i, s in enumerate(self.sessions):
            cap = self.capacity_kwh
            if cap is not None:
                for f in ("soc_kwh", "target_soc_kwh", "max_soc_kwh"):
                    v = getattr(s, f)
                    if v is not None and v > cap + 1e-9:
                        raise ValueError(
                            f"sessions[{i}].{f} ({v} kWh) exceeds capacity_kwh ({cap} kWh)"
                        )
        ordered = sorted(self.sessions, key=lambda s: s.plug_in)
        for a, b in itertools.pairwise(ordered):
            if b.plug_in < a.departure:
                raise ValueError("sessions overlap")
        return self


_V2H_FIELDS = (
    "max_discharge_kw",
    "discharge_efficiency",
    "wear_cost_ct_per_kwh",
    "v2h_min_soc_kwh",
)


class Battery(_DimmableDevice):
    """A stationary home battery (AC-coupled)."""

    kind: Literal["battery"] = "battery"
    capacity_kwh: Kwh = Field(gt=0, description="Usable capacity, kWh.")
    soc_kwh: Kwh = Field(ge=0, description="State of charge now, kWh.")
    soc_min_kwh: Kwh = Field(0.0, ge=0, description="Lowest allowed SoC, kWh.")
    soc_max_kwh: Kwh | None = Field(None, gt=0, description="Highest allowed SoC (capacity).")
    max_charge_kw: Kw = Field(gt=0, description="Maximum charging power (AC), kW.")
    max_discharge_kw: Kw = Field(gt=0, description="Maximum discharging power (AC), kW.")
    charge_efficiency: Fraction = Field(0.95, gt=0, le=1, description="AC to stored energy.")
    discharge_efficiency: Fraction = Field(0.95, gt=0, le=1, description="Stored energy to AC.")
    end_soc_kwh: Kwh | Literal["start"] | None = Field(
        None,
        description="A floor for the SoC at the end (soft: a miss is a shortfall), kWh, or "
        "'start' for the starting SoC. Default: none; what is left is valued at the "
        "terminal price instead.",
    )
    terminal_price_ct_per_kwh: NonNegCtPerKwh | None = Field(
        None,
        allow_inf_nan=False,
        description="Value of energy left stored at the end, ct per kWh of AC energy it "
        "delivers later (times discharge_efficiency per stored kWh); default: "
        "site.terminal_price_ct_per_kwh.",
    )
    allow_grid_charging: bool = Field(True, description="May charge from the grid.")
    wear_cost_ct_per_kwh: NonNegCtPerKwh = Field(
        1.0,
        description="Wear cost per kWh discharged, ct/kWh (keeps it from cycling "
        "for a tenth of a cent).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        top = self.soc_max_kwh if self.soc_max_kwh is not None else self.capacity_kwh
        if top > self.capacity_kwh + 1e-9:
            raise ValueError("soc_max_kwh must not exceed capacity_kwh")
        if self.soc_min_kwh > top:
            raise ValueError("soc_min_kwh must not exceed soc_max_kwh")
        if not (self.soc_min_kwh - 1e-9 <= self.soc_kwh <= top + 1e-9):
            raise ValueError(
                f"soc_kwh ({self.soc_kwh}) must lie within [soc_min_kwh, soc_max_kwh] = "
                f"[{self.soc_min_kwh}, {top}]"
            )
        end = self.end_soc_kwh
        if isinstance(end, float) and not (self.soc_min_kwh - 1e-9 <= end <= top + 1e-9):
            raise ValueError("end_soc_kwh must lie within [soc_min_kwh, soc_max_kwh]")
        return self

    @property
    def top_kwh(self) -> float:
        return self.soc_max_kwh if self.soc_max_kwh is not None else self.capacity_kwh


class Building(BaseModel):
    """A 1R1C building model: ``C dθ/dt = heat − U (θ − θout) + gains``."""

    model_config = _STRICT

    heat_capacity_kwh_per_k: Kwh = Field(gt=0, description="Thermal capacity C, kWh/K.")
    heat_loss_kw_per_k: Annotated[float, Le(100.0), _NUM] = Field(
        gt=0, description="Heat-loss coefficient U, kW/K."
    )
    indoor_c: Celsius = Field(description="Indoor temperature now, °C.")
    comfort_min_c: SeriesInput = Field(description="Lowest comfortable temperature, °C.")
    comfort_max_c: SeriesInput = Field(description="Highest comfortable temperature, °C.")
    gains_kw: SeriesInput = Field(0.0, description="Internal and solar heat gains, kW.")
    end_indoor_c: Celsius | Literal["start"] | None = Field(
        None,
        description="A floor for the temperature at the end (soft), °C, or 'start' for the "
        "starting temperature (within the comfort band). Default: none; the heat stored "
        "is valued at the heat pump's terminal price instead.",
    )
    setpoint_c: Annotated[float, Ge(0.0), Le(40.0), _NUM] | None = Field(
        None, description="The baseline thermostat's set point; default: clamp(indoor_c)."
    )

    _c = field_validator("comfort_min_c", "comfort_max_c", "gains_kw", mode="before")(
        lambda v: _coerce_series(v)
    )


class HeatPump(_DimmableDevice):
    """A modulating space-heating heat pump heating a 1R1C building."""

    kind: Literal["heat_pump"] = "heat_pump"
    max_power_kw: Kw = Field(gt=0, description="Maximum electric power, kW.")
    building: Building = Field(description="The house it heats (1R1C model).")
    outdoor_c: SeriesInput = Field(description="Outdoor temperature, °C.")
    cop: SeriesInput | None = Field(
        None,
        description="Coefficient of performance per slot; default: from outdoor_c with the "
        "Staffell et al. (2012) air-source fit at flow_temperature_c.",
    )
    flow_temperature_c: Annotated[float, Ge(20.0), Le(90.0), _NUM] = Field(
        35.0, description="Flow (sink) temperature for the COP fit, °C."
    )
    start_penalty_eur: Eur = Field(
        0.01,
        ge=0,
        description="Cost of each start, EUR, priced as ramp-up: keeps the compressor from "
        "short-cycling with the 15-minute price ripple (on the full household, 23 starts in "
        "48 h become 5 for 3 ct). 0 turns it off.",
    )
    min_run_minutes: Count = Field(
        0, ge=0, le=MAX_PROGRAMME_MINUTES, description="Minimum run time once started (binaries)."
    )
    terminal_price_ct_per_kwh: NonNegCtPerKwh | None = Field(
        None,
        allow_inf_nan=False,
        description="Value of heat stored in the building at the end, ct per kWh of "
        "electricity it saves later (each K is C kWh of heat, over the horizon's mean COP); "
        "default: site.terminal_price_ct_per_kwh.",
    )

    _c = field_validator("outdoor_c", "cop", mode="before")(lambda v: _coerce_series(v))


class Appliance(_DeviceBase):
    """A shiftable appliance that runs a fixed power profile once, uninterrupted."""

    kind: Literal["appliance"] = "appliance"
    profile_kw: list[Annotated[float, Ge(0.0), Le(MAX_KW), _NUM]] = Field(
        min_length=1,
        max_length=MAX_PROFILE_STEPS,
        description="Power per step of the programme, kW.",
    )
    profile_minutes: Count | None = Field(
        None,
        gt=0,
        le=MAX_PROGRAMME_MINUTES,
        description="Length of one profile step; default: the scenario resolution. The "
        "programme (steps × minutes) may last at most 7 days.",
    )
    earliest_start: AwareDatetime = Field(description="Not before this time.")
    latest_end: AwareDatetime = Field(description="Finished by this time.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.latest_end <= self.earliest_start:
            raise ValueError("latest_end must be after earliest_start")
        return self


Device = Annotated[EV | Battery | HeatPump | Appliance, Field(discriminator="kind")]


class SolverOptions(BaseModel):
    """Which solver and how long it may take."""

    model_config = _STRICT

    name: Literal["highs", "cbc"] = Field("highs", description="HiGHS (default) or CBC.")
    time_limit_s: Annotated[float, Le(86_400.0), _NUM] = Field(
        10.0, gt=0, description="Wall-clock limit for one solve, s."
    )
    mip_gap: Fraction = Field(
        0.001,
        ge=0,
        description="Relative MIP gap where binaries exist (relative to the whole bill, so keep "
        "it small enough for start penalties of a few cents to count).",
    )
    threads: Annotated[int, Le(256), _NUM] = Field(1, ge=1, description="Solver threads.")


class Penalties(BaseModel):
    """Prices of soft constraints and tie-breaks (EUR), all far above or below real money."""

    model_config = _STRICT

    shortfall_eur_per_kwh: Eur = Field(10.0, gt=0, description="Per kWh of unmet EV energy.")
    comfort_eur_per_kelvin_hour: Eur = Field(5.0, gt=0, description="Per K·h outside comfort.")
    grid_overload_eur_per_kwh: Eur = Field(50.0, gt=0, description="Per kWh over a grid limit.")
    not_run_eur: Eur = Field(50.0, gt=0, description="An appliance that cannot run at all.")
    change_eur_per_kw: Fraction = Field(
        1e-5,
        ge=0,
        description="Tie-break per kW of power change between slots: among plans of (nearly) "
        "equal cost it prefers fewer starts.",
    )


class Stability(BaseModel):
    """How a re-plan keeps to the previously published plan (``optimize(previous_plan=...)``).

    Used only when a previous plan is given. Each kWh by which a device's power differs
    from the previous plan within the next ``hours`` costs ``ct_per_kwh`` in the objective
    (``|new − previous|`` per device and slot); this price is not money: it is left out of
    ``cost_eur`` and ``savings_eur`` and reported as ``Plan.stability_cost_eur``. With
    ``freeze_running_slot`` the first slot (the one running now: the planner starts every
    horizon at the slot that contains now) keeps the previous plan's power for each device
    wherever the device's limits and state allow it.
    """

    model_config = _STRICT

    # Ge(0) inside Annotated: a Field(ge=...) next to CtPerKwh's own Ge would be ignored
    ct_per_kwh: Annotated[float, Ge(0.0), Le(MAX_PRICE_CT), _NUM] = Field(
        0.5,
        description="Price of deviating from the previous plan, ct per kWh of |new − previous| "
        "device energy within the next 'hours' (0: no price); not part of the cost.",
    )
    hours: Annotated[float, Ge(0.0), Le(168.0), _NUM] = Field(
        6.0, description="How far ahead deviations are priced, hours from the start."
    )
    freeze_running_slot: bool = Field(
        True, description="Keep the previous plan's power in the first slot (running now)."
    )


class Scenario(BaseModel):
    """A household over a planning horizon. See ``wattplan schema`` for every key."""

    model_config = _STRICT

    name: str = Field("scenario", description="A name for reports.")
    timezone: str = Field("Europe/Berlin", description="Time zone for display.")
    start: AwareDatetime = Field(description="Start of the horizon (with UTC offset).")
    end: AwareDatetime = Field(description="End of the horizon (exclusive).")
    resolution: Literal["15min", "30min", "60min"] = Field("15min", description="Slot length.")
    prices: PriceSpec | None = Field(
        None, description="Import prices; may instead be passed to optimize(prices=...)."
    )
    site: Site = Field(default_factory=Site, description="Grid connection, base load, PV.")
    devices: list[Device] = Field(
        default_factory=list,
        max_length=MAX_DEVICES,
        description="Flexible devices: ev, battery, heat_pump, appliance.",
    )
    solver: SolverOptions = Field(default_factory=SolverOptions, description="Solver settings.")
    penalties: Penalties = Field(
        default_factory=Penalties, description="Prices of soft constraints and tie-breaks."
    )
    stability: Stability = Field(
        default_factory=Stability,
        description="Keeping to a previous plan on re-plans (with optimize(previous_plan=...)).",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            pd.Timestamp("2026-01-01", tz=v)
        except Exception as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=MAX_HORIZON_DAYS):
            raise ValueError(f"the horizon is longer than {MAX_HORIZON_DAYS} days")
        for d in self.devices:
            if isinstance(d, Appliance):
                minutes = len(d.profile_kw) * (d.profile_minutes or self.resolution_minutes)
                if minutes > MAX_PROGRAMME_MINUTES:
                    raise ValueError(
                        f"appliance {d.name!r}: the programme lasts {minutes} minutes; "
                        "at most 7 days"
                    )
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def resolution_minutes(self) -> int:
        return int(self.resolution.removesuffix("min"))

    def device(self, name: str) -> EV | Battery | HeatPump | Appliance:
        for d in self.devices:
            if d.name == name:
                return d
        raise ScenarioError(key="devices", reason=f"no device named {name!r}")

    def with_device_state(self, name: str, **fields: Any) -> Scenario:
        """A copy with one device's fields replaced, validated again.

        For a battery ``soc_kwh``; for a heat pump ``indoor_c`` (the building's); for an EV
        ``sessions`` or the fields of a single session (``plug_in``, ``departure``,
        ``energy_kwh``, ``soc_kwh``, ``target_soc_kwh``), which replace all sessions by one,
        and ``v2h`` (``v2h=False`` also drops the discharge settings not given with it).
        Any other field of the device is replaced as given, e.g. ``dimming`` (a list of
        :class:`DimmingWindow` or mappings) for an EV, battery or heat pump.
        """
        dev = self.device(name)
        data = dev.model_dump()
        if isinstance(dev, HeatPump):
            for k in ("indoor_c", "end_indoor_c", "setpoint_c"):
                if k in fields:
                    data["building"][k] = fields.pop(k)
        if isinstance(dev, EV):
            session_keys = {"plug_in", "departure", "energy_kwh", "soc_kwh", "target_soc_kwh"}
            sess = {k: fields.pop(k) for k in list(fields) if k in session_keys}
            if sess:
                data["sessions"] = [sess]
            if fields.get("v2h") is False:
                for k in _V2H_FIELDS:
                    data[k] = fields.pop(k, None)
        data.update(fields)
        devices = [data if d.name == name else d.model_dump() for d in self.devices]
        return _validate(Scenario, {**self.model_dump(), "devices": devices}, prefix="")

    def _repr_html_(self) -> str:
        """A compact overview for Jupyter: horizon, prices, site and one row per device."""
        import html

        e = html.escape

        def series(v: float | TimeSeries | None, unit: str) -> str:
            if v is None:
                return "–"
            if isinstance(v, TimeSeries):
                vals = [x * v.scale for x in v.values or []]
                if not vals:
                    return f"from {v.file}"
                return f"series, {min(vals):.3g}–{max(vals):.3g} {unit} ({len(vals)} values)"
            return f"{v:g} {unit}"

        tz = self.timezone
        start, end = pd.Timestamp(self.start).tz_convert(tz), pd.Timestamp(self.end).tz_convert(tz)
        if self.prices is None:
            prices = "none (pass optimize(prices=...))"
        elif self.prices.values is not None:
            prices = f"all-in, {len(self.prices.values)} values"
        elif self.prices.spot_values is not None:
            prices = (
                f"spot, {len(self.prices.spot_values)} values + "
                f"{self.prices.markup_ct_per_kwh:g} ct/kWh, VAT {100 * self.prices.vat:g} %"
            )
        else:
            prices = "from file"
        site = self.site
        head = [
            ("horizon", f"{start:%a %d %b %Y %H:%M} – {end:%a %d %b %Y %H:%M} ({tz})"),
            ("resolution", self.resolution),
            ("prices", prices),
            ("base load", series(site.base_load, "kW")),
            ("PV", series(site.pv, "kW")),
            ("feed-in", series(site.feed_in_ct_per_kwh, "ct/kWh")),
            (
                "grid limits",
                f"import {series(site.grid_import_limit_kw, 'kW')}, "
                f"export {site.grid_export_limit_kw:g} kW",
            ),
        ]
        rows = "".join(
            f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in head
        )
        devs = []
        for d in self.devices:
            if isinstance(d, EV):
                need = sum(s.needed_kwh() for s in d.sessions)
                what = f"{d.max_power_kw:g} kW, {len(d.sessions)} session(s), {need:g} kWh needed"
            elif isinstance(d, Battery):
                what = (
                    f"{d.capacity_kwh:g} kWh, SoC {d.soc_kwh:g} kWh, "
                    f"{d.max_charge_kw:g}/{d.max_discharge_kw:g} kW charge/discharge"
                )
            elif isinstance(d, HeatPump):
                b = d.building
                what = (
                    f"{d.max_power_kw:g} kW, indoor {b.indoor_c:g} °C, comfort "
                    f"{series(b.comfort_min_c, '°C')} to {series(b.comfort_max_c, '°C')}, "
                    f"outdoor {series(d.outdoor_c, '°C')}"
                )
            else:
                es = pd.Timestamp(d.earliest_start).tz_convert(tz)
                le = pd.Timestamp(d.latest_end).tz_convert(tz)
                what = (
                    f"{len(d.profile_kw)}-step programme, peak {max(d.profile_kw):g} kW, "
                    f"{es:%a %H:%M}–{le:%a %H:%M}"
                )
            devs.append(f"<tr><td>{e(d.name)}</td><td>{e(d.kind)}</td><td>{e(what)}</td></tr>")
        devices = (
            "<table><tr><th>device</th><th>kind</th><th>parameters</th></tr>"
            + "".join(devs)
            + "</table>"
            if devs
            else "<p>no devices</p>"
        )
        return f"<div><b>wattplan Scenario: {e(self.name)}</b><table>{rows}</table>{devices}</div>"

    def horizon(self, start: datetime, end: datetime) -> Scenario:
        """A copy with another horizon ``[start, end)``."""
        return _validate(Scenario, {**self.model_dump(), "start": start, "end": end}, prefix="")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("ev", "battery", "heat_pump", "appliance", "float", "TimeSeries"):
            continue  # discriminator / union branch names are not keys
        elif part.startswith(("function-", "union[", "float")):
            continue
        else:
            out += ("." if out else "") + part
    return out


def _validate(cls: type[Scenario], data: Any, *, prefix: str) -> Scenario:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            key = prefix + _loc(tuple(err["loc"]))
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid":
                msg = f"unknown device kind; expected one of {err['ctx']['expected_tags']}"
            if (key, msg) not in problems:
                problems.append((key or "scenario", msg))
        # a bad branch of a float|TimeSeries union reports twice; keep the most specific
        first_key, first_msg = problems[0]
        text = "; ".join(f"{k}: {m}" for k, m in problems)
        raise ScenarioError(text, key=first_key, reason=first_msg, errors=problems) from None


# Bounds on what a scenario file may make us read or build: a hostile or broken file gets
# an error naming the key instead of minutes of CPU and gigabytes of memory.
MAX_SCENARIO_BYTES = 16 * 1024 * 1024  # a year of 15-minute inline series for several keys
MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_YAML_DEPTH = 32  # the schema nests 6 levels deep
MAX_YAML_ALIASES = 256  # anchors for repeated devices are fine; alias bombs are not
MAX_YAML_NODES = 2_000_000  # values after aliases are expanded


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting depth and alias uses.

    PyYAML has no such limits of its own (its composer recurses once per level and expands
    every alias by reference), so they are counted here while composing.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                mark = cast(Any, self).peek_event().start_mark
                raise ScenarioError(
                    key="scenario",
                    reason=f"more than {MAX_YAML_ALIASES} YAML aliases (line {mark.line + 1})",
                )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = cast(Any, self).peek_event().start_mark
                raise ScenarioError(
                    key="scenario",
                    reason=f"nested deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1})",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(node: Any) -> None:
    """Refuse a tree that expands (through aliases) to more than MAX_YAML_NODES values."""
    count = 0
    stack = [node]
    while stack:
        n = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ScenarioError(
                key="scenario",
                reason=f"more than {MAX_YAML_NODES:,} values once YAML aliases are expanded",
            )
        if isinstance(n, dict):
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)


def _parse_yaml(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _resolve(base: Path, name: Any, key: str, allow_outside: bool) -> Path:
    if not isinstance(name, str) or not name:
        raise ScenarioError(key=key, reason="'file' must be a non-empty path")
    path = (base / name).resolve()
    if not allow_outside and not path.is_relative_to(base.resolve()):
        raise ScenarioError(
            key=key,
            reason=f"{name!r} lies outside the scenario's folder; files are read only below "
            "it unless load_scenario(..., allow_outside_files=True) "
            "(wattplan plan --allow-outside-files)",
        )
    return path


def _read_csv(path: Path, column: Any, time_column: Any, key: str) -> pd.Series:
    for name, value in (("column", column), ("time_column", time_column)):
        if value is not None and not isinstance(value, str):
            raise ScenarioError(key=f"{key}.{name}", reason="must be a column name (a string)")
    if not path.is_file():
        raise ScenarioError(key=key, reason=f"file not found: {path.name}")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ScenarioError(
            key=key, reason=f"{path.name} is larger than {MAX_CSV_BYTES // 2**20} MiB"
        )
    try:
        df = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            key=key, reason=f"{path.name} is not UTF-8 text (byte {exc.start})"
        ) from None
    except Exception as exc:
        raise ScenarioError(key=key, reason=f"cannot read {path.name}: {exc}") from exc
    if time_column not in df.columns:
        raise ScenarioError(key=key, reason=f"{path.name} has no column {time_column!r}")
    value_cols = [c for c in df.columns if c != time_column]
    if column is None:
        if len(value_cols) != 1:
            raise ScenarioError(
                key=key, reason=f"{path.name} has several columns; name one with 'column'"
            )
        column = value_cols[0]
    if column not in df.columns:
        raise ScenarioError(
            key=key, reason=f"{path.name} has no column {column!r} (has {', '.join(value_cols)})"
        )
    try:
        idx = pd.to_datetime(df[time_column], utc=True)
    except Exception as exc:
        raise ScenarioError(key=key, reason=f"{path.name}: unreadable timestamps: {exc}") from exc
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any():
        row = int(values.isna().to_numpy().nonzero()[0][0]) + 2
        raise ScenarioError(key=key, reason=f"{path.name} line {row}: {column} is not a number")
    return pd.Series(values.to_numpy(dtype=float), index=pd.DatetimeIndex(idx))


def _inline_files(node: Any, base: Path, key: str, allow_outside: bool = False) -> Any:
    """Replace every {file: ...} in the raw YAML tree by inline values and index."""
    if isinstance(node, list):
        return [_inline_files(v, base, f"{key}[{i}]", allow_outside) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out = {
        k: _inline_files(v, base, f"{key}.{k}" if key else str(k), allow_outside)
        for k, v in node.items()
    }
    if key == "prices":
        for file_key, col_key, vals, idx, default_col in (
            ("file", "column", "values", "index", "price_ct_per_kwh"),
            ("spot_file", "spot_column", "spot_values", "spot_index", "price_eur_per_mwh"),
        ):
            if out.get(file_key) is not None:
                path = _resolve(base, out.pop(file_key), f"{key}.{file_key}", allow_outside)
                s = _read_csv(path, out.get(col_key, default_col), "start", key)
                out[vals] = s.tolist()
                out[idx] = list(pd.DatetimeIndex(s.index).to_pydatetime())
        return out
    if out.get("file") is not None:
        path = _resolve(base, out.pop("file"), f"{key}.file", allow_outside)
        s = _read_csv(path, out.get("column"), out.get("time_column", "start"), key)
        out["values"] = s.tolist()
        out["index"] = list(pd.DatetimeIndex(s.index).to_pydatetime())
    return out


def load_scenario(path: str | Path, *, allow_outside_files: bool = False) -> Scenario:
    """Read and validate a YAML scenario; CSV paths in it are relative to the file.

    Files are read only from the scenario's folder and below it unless
    ``allow_outside_files`` is true. The file may be at most ``MAX_SCENARIO_BYTES``, nest
    ``MAX_YAML_DEPTH`` levels, use ``MAX_YAML_ALIASES`` aliases and expand to
    ``MAX_YAML_NODES`` values; a CSV file at most ``MAX_CSV_BYTES``.

    Raises
    ------
    ScenarioError
        Naming the key and the reason, for unreadable files and invalid values.
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(
                key="scenario", reason=f"larger than {MAX_SCENARIO_BYTES // 2**20} MiB"
            )
        raw = _parse_yaml(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ScenarioError(key="scenario", reason=f"file not found: {p}") from None
    except IsADirectoryError:
        raise ScenarioError(key="scenario", reason=f"is a directory: {p}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            key="scenario", reason=f"not UTF-8 text (byte {exc.start} of the file)"
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(key="scenario", reason=f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(key="scenario", reason="must be a YAML mapping")
    _check_size(raw)
    return _validate(Scenario, _inline_files(raw, p.parent, "", allow_outside_files), prefix="")


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Validate a scenario given as a mapping (inline series only)."""
    return _validate(Scenario, data, prefix="")


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (``wattplan schema``)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "wattplan scenario"
    return schema
