"""Household profiles: a scenario without time series (DESIGN §3a).

A profile holds what stays true from day to day: the grid connection and feed-in price,
the PV geometry, the devices with their habits (an EV's plug-in and departure per weekday
and the energy it needs each time) and the tariff. :func:`household_scenario` composes a
:class:`wattplan.Scenario` for any window from a profile, the base-load and PV series
(forecasts or actuals), the outdoor temperature (for a heat pump), the devices' state and
the prices. :func:`load_household` reads a YAML profile; ``wattplan schema --household``
prints the JSON Schema.

A heat pump is described by its building (the optimizer's 1R1C model with a constant
comfort band and gains) and its flow temperature (the COP follows the outdoor temperature
through the optimizer's fit); a shiftable appliance by its programme and, per weekday, the
window it may run in (one run a day, e.g. the dishwasher every evening).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
import yaml
from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from wattplan.exceptions import ScenarioError
from wattplan.optimizer import Scenario, scenario_from_dict
from wattplan.optimizer._scenario import (
    _NUM,
    _STRICT,
    MAX_PROFILE_STEPS,
    MAX_PROGRAMME_MINUTES,
    Celsius,
    CtPerKwh,
    Fraction,
    Kw,
    Kwh,
    NonNegCtPerKwh,
    PositiveKw,
    _loc,
)

if TYPE_CHECKING:
    from wattplan.forecast import PVCorrection
    from wattplan.weather import WeatherSource

__all__ = [
    "WEEKDAYS",
    "ApplianceHabit",
    "ApplianceRun",
    "EVHabit",
    "Household",
    "HouseholdAppliance",
    "HouseholdBattery",
    "HouseholdBuilding",
    "HouseholdEV",
    "HouseholdHeatPump",
    "HouseholdSite",
    "HouseholdState",
    "PVGeometry",
    "Tariff",
    "appliance_run_name",
    "appliance_runs",
    "ev_sessions",
    "household_json_schema",
    "household_pv_kw",
    "household_scenario",
    "load_household",
    "programme_kw",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class PVGeometry(BaseModel):
    """The PV system's location and geometry (the fields of ``wattplan.forecast.PVSite``)."""

    model_config = _STRICT

    latitude: Annotated[float, Ge(-90.0), Le(90.0), _NUM] = Field(description="Degrees north.")
    longitude: Annotated[float, Ge(-180.0), Le(180.0), _NUM] = Field(description="Degrees east.")
    kwp: PositiveKw = Field(description="Peak DC power, kWp.")
    tilt_deg: Annotated[float, Ge(0.0), Le(90.0), _NUM] = Field(
        30.0, description="Module angle from horizontal, degrees."
    )
    azimuth_deg: Annotated[float, Ge(0.0), Le(360.0), _NUM] = Field(
        180.0, description="Compass direction the modules face (180 = south), degrees."
    )
    losses: Annotated[float, Ge(0.0), Le(0.99), _NUM] = Field(
        0.14, description="DC losses as a fraction (PVWatts' default 0.14)."
    )
    inverter_kw: PositiveKw | None = Field(None, description="Inverter AC rating, kW.")


class HouseholdSite(BaseModel):
    """The grid connection, the feed-in price, the time zone and the PV geometry."""

    model_config = _STRICT

    timezone: str = Field("Europe/Berlin", description="Local time zone of the habits.")
    grid_import_limit_kw: PositiveKw = Field(30.0, description="Grid import limit, kW.")
    grid_export_limit_kw: Kw = Field(30.0, ge=0, description="Grid export limit, kW.")
    feed_in_ct_per_kwh: NonNegCtPerKwh = Field(0.0, description="Feed-in price, ct/kWh.")
    export_only_pv: bool = Field(True, description="Export comes only from PV.")
    pv: PVGeometry | None = Field(None, description="The PV system, if there is one.")
    annual_kwh: Annotated[float, Gt(0.0), Le(1_000_000.0), _NUM] | None = Field(
        None,
        description="Annual base-load energy, kWh: scales the standard profile while the "
        "metered history is too short (the planner's cold start).",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            pd.Timestamp(0, tz=v)
        except Exception as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


def _wall_clock(v: Any) -> Any:
    # YAML 1.1 reads an unquoted 18:00 as the sexagesimal integer 1080
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 24 * 60:
        return dt.time(v // 60, v % 60)
    if isinstance(v, dt.time) and v.tzinfo is not None:
        raise ValueError("a local wall-clock time, without a UTC offset")
    return v


class EVHabit(BaseModel):
    """One weekday's charging habit: plug-in and departure (local wall-clock times).

    A departure at or before the plug-in time is on the next day.
    """

    model_config = _STRICT

    plug_in: dt.time = Field(description="Local plug-in time, HH:MM.")
    departure: dt.time = Field(description="Local departure time, HH:MM.")
    energy_kwh: Annotated[float, Ge(0.0), Le(1_000.0), _NUM] = Field(
        description="Energy to put into the car's battery in this session, kWh."
    )

    @field_validator("plug_in", "departure", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        return _wall_clock(v)


class HouseholdEV(BaseModel):
    """An electric car at a wallbox with weekly habits."""

    model_config = _STRICT

    kind: Literal["ev"] = "ev"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Unique name.")
    max_power_kw: PositiveKw = Field(description="Wallbox maximum charging power, kW.")
    min_power_kw: Kw | None = Field(None, ge=0, description="Minimum power when charging, kW.")
    efficiency: Fraction = Field(0.92, gt=0, description="AC-to-battery efficiency.")
    capacity_kwh: Kwh | None = Field(None, gt=0, description="Usable battery capacity, kWh.")
    start_penalty_eur: Annotated[float, Ge(0.0), Le(100.0), _NUM] = Field(
        0.02, description="Cost of each start of charging, EUR."
    )
    weekly: dict[Weekday, EVHabit] = Field(
        default_factory=dict,
        description="Habit per weekday of the plug-in (mon … sun); days without one: no session.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.capacity_kwh is not None:
            for day, habit in self.weekly.items():
                if habit.energy_kwh > self.capacity_kwh + 1e-9:
                    raise ValueError(
                        f"weekly.{day}.energy_kwh ({habit.energy_kwh} kWh) exceeds "
                        f"capacity_kwh ({self.capacity_kwh} kWh)"
                    )
        return self


class HouseholdBattery(BaseModel):
    """A stationary home battery (AC-coupled)."""

    model_config = _STRICT

    kind: Literal["battery"] = "battery"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Unique name.")
    capacity_kwh: Annotated[float, Gt(0.0), Le(10_000.0), _NUM] = Field(
        description="Usable capacity, kWh."
    )
    soc_min_kwh: Kwh = Field(0.0, ge=0, description="Lowest allowed SoC, kWh.")
    initial_soc_kwh: Kwh | None = Field(
        None, ge=0, description="SoC at the start of a backtest, kWh; default soc_min_kwh."
    )
    max_charge_kw: PositiveKw = Field(description="Maximum charging power (AC), kW.")
    max_discharge_kw: PositiveKw = Field(description="Maximum discharging power (AC), kW.")
    charge_efficiency: Fraction = Field(0.95, gt=0, description="AC to stored energy.")
    discharge_efficiency: Fraction = Field(0.95, gt=0, description="Stored energy to AC.")
    wear_cost_ct_per_kwh: NonNegCtPerKwh = Field(
        1.0, description="Wear cost per kWh discharged, ct/kWh."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.soc_min_kwh > self.capacity_kwh:
            raise ValueError("soc_min_kwh must not exceed capacity_kwh")
        if self.initial_soc_kwh is not None and not (
            self.soc_min_kwh <= self.initial_soc_kwh <= self.capacity_kwh
        ):
            raise ValueError("initial_soc_kwh must lie within [soc_min_kwh, capacity_kwh]")
        return self


class HouseholdBuilding(BaseModel):
    """The house a heat pump heats: the optimizer's 1R1C ``Building`` without time series.

    ``C dθ/dt = COP·h − U (θ − θout) + gains``; the comfort band and the gains are constant.
    """

    model_config = _STRICT

    heat_capacity_kwh_per_k: Annotated[float, Gt(0.0), Le(10_000.0), _NUM] = Field(
        description="Thermal capacity C, kWh/K."
    )
    heat_loss_kw_per_k: Annotated[float, Gt(0.0), Le(100.0), _NUM] = Field(
        description="Heat-loss coefficient U, kW/K."
    )
    comfort_min_c: Celsius = Field(description="Lowest comfortable indoor temperature, °C.")
    comfort_max_c: Celsius = Field(description="Highest comfortable indoor temperature, °C.")
    gains_kw: Annotated[float, Ge(-1_000.0), Le(1_000.0), _NUM] = Field(
        0.0, description="Internal and solar heat gains, kW (constant)."
    )
    setpoint_c: Annotated[float, Ge(0.0), Le(40.0), _NUM] | None = Field(
        None,
        description="The baseline thermostat's set point, °C; default: initial_indoor_c "
        "clamped to the comfort band.",
    )
    initial_indoor_c: Celsius | None = Field(
        None,
        description="Indoor temperature at the start of a backtest, °C; default: setpoint_c, "
        "else comfort_min_c.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.comfort_min_c > self.comfort_max_c:
            raise ValueError("comfort_min_c must not exceed comfort_max_c")
        return self

    @property
    def start_c(self) -> float:
        """The indoor temperature a backtest starts from, °C."""
        if self.initial_indoor_c is not None:
            return self.initial_indoor_c
        return self.setpoint_c if self.setpoint_c is not None else self.comfort_min_c

    @property
    def thermostat_c(self) -> float:
        """The baseline thermostat's set point, °C."""
        if self.setpoint_c is not None:
            return self.setpoint_c
        return min(max(self.start_c, self.comfort_min_c), self.comfort_max_c)


class HouseholdHeatPump(BaseModel):
    """A modulating space-heating heat pump (the optimizer's ``HeatPump`` without series).

    Its COP per slot follows the outdoor temperature through the optimizer's air-source fit
    at ``flow_temperature_c``; the outdoor temperature comes with each window.
    """

    model_config = _STRICT

    kind: Literal["heat_pump"] = "heat_pump"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Unique name.")
    max_power_kw: PositiveKw = Field(description="Maximum electric power, kW.")
    building: HouseholdBuilding = Field(description="The house it heats (1R1C model).")
    flow_temperature_c: Annotated[float, Ge(20.0), Le(90.0), _NUM] = Field(
        35.0, description="Flow (sink) temperature for the COP fit, °C."
    )
    start_penalty_eur: Annotated[float, Ge(0.0), Le(100.0), _NUM] = Field(
        0.01, description="Cost of each start of the compressor, EUR."
    )
    min_run_minutes: Annotated[int, Ge(0), Le(24 * 60), _NUM] = Field(
        0, description="Minimum run time once started, minutes (adds binaries)."
    )


class ApplianceHabit(BaseModel):
    """One weekday's run: the window the programme must run in (local wall-clock times).

    A latest end at or before the earliest start is on the next day.
    """

    model_config = _STRICT

    earliest_start: dt.time = Field(description="Local time the run may start, HH:MM.")
    latest_end: dt.time = Field(description="Local time the run must be done by, HH:MM.")

    _hhmm = field_validator("earliest_start", "latest_end", mode="before")(lambda v: _wall_clock(v))

    def minutes(self) -> int:
        """The window's length in minutes (wall clock)."""
        a = self.earliest_start.hour * 60 + self.earliest_start.minute
        b = self.latest_end.hour * 60 + self.latest_end.minute
        return b - a if b > a else b - a + 24 * 60


class HouseholdAppliance(BaseModel):
    """A shiftable appliance (dishwasher, washing machine): one programme run per habit."""

    model_config = _STRICT

    kind: Literal["appliance"] = "appliance"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Unique name.")
    profile_kw: list[Annotated[float, Ge(0.0), Le(1_000.0), _NUM]] = Field(
        min_length=1, max_length=MAX_PROFILE_STEPS, description="Power per programme step, kW."
    )
    profile_minutes: Annotated[int, Gt(0), Le(24 * 60), _NUM] = Field(
        15, description="Length of one programme step, minutes."
    )
    weekly: dict[Weekday, ApplianceHabit] = Field(
        default_factory=dict,
        description="Run per weekday of the earliest start (mon … sun); days without one: no run.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if max(self.profile_kw) <= 0.0:
            raise ValueError("profile_kw needs at least one step above 0 kW")
        if self.duration_minutes > MAX_PROGRAMME_MINUTES:
            raise ValueError("the programme lasts more than 7 days")
        for day, habit in self.weekly.items():
            if habit.minutes() < self.duration_minutes:
                raise ValueError(
                    f"weekly.{day}: the {self.duration_minutes}-minute programme does not fit "
                    f"between earliest_start and latest_end ({habit.minutes()} minutes)"
                )
        return self

    @property
    def duration_minutes(self) -> int:
        return len(self.profile_kw) * self.profile_minutes


HouseholdDevice = Annotated[
    HouseholdEV | HouseholdBattery | HouseholdHeatPump | HouseholdAppliance,
    Field(discriminator="kind"),
]


class Tariff(BaseModel):
    """All-in import prices: the shipped day-ahead prices through a formula, or a CSV.

    With ``source: day_ahead`` the all-in price is ``(1 + vat) * (spot / 10 + markup)``
    ct/kWh, as the scenario's ``prices`` key computes it. With ``source: file`` ``file``
    names a CSV (relative to the profile) with ``start`` and ``price_ct_per_kwh``.
    """

    model_config = _STRICT

    source: Literal["day_ahead", "file"] = Field(
        "day_ahead", description="'day_ahead' (shipped DE-LU prices) or 'file'."
    )
    markup_ct_per_kwh: CtPerKwh = Field(16.0, description="Net markup on spot, ct/kWh.")
    vat: Fraction = Field(0.19, ge=0.0, description="VAT applied to spot + markup.")
    file: str | None = Field(None, description="CSV of all-in prices (source: file).")
    column: str = Field("price_ct_per_kwh", description="All-in price column of the CSV.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.source == "file" and not self.file:
            raise ValueError("source 'file' needs 'file'")
        if self.source == "day_ahead" and self.file is not None:
            raise ValueError("'file' applies only to source: file")
        return self


class Household(BaseModel):
    """A household profile: site, devices with their habits, tariff; no time series."""

    model_config = _STRICT

    name: str = Field("household", description="A name for reports.")
    site: HouseholdSite = Field(default_factory=HouseholdSite, description="The site.")
    devices: list[HouseholdDevice] = Field(
        default_factory=list,
        max_length=20,
        description="Flexible devices: ev, battery, heat_pump, appliance.",
    )
    tariff: Tariff = Field(default_factory=Tariff, description="Import prices.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [d.name for d in self.devices]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"device names must be unique: {', '.join(dup)}")
        return self


def _validate_household(data: Any) -> Household:
    try:
        return Household.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            key = _loc(tuple(err["loc"])) or "household"
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid":
                msg = f"unknown device kind; expected one of {err['ctx']['expected_tags']}"
            if (key, msg) not in problems:
                problems.append((key, msg))
        text = "; ".join(f"{k}: {m}" for k, m in problems)
        raise ScenarioError(
            text, key=problems[0][0], reason=problems[0][1], errors=problems
        ) from None


def load_household(path: str | Path) -> Household:
    """Read and validate a YAML household profile (errors name the key)."""
    from wattplan.optimizer._scenario import MAX_SCENARIO_BYTES, _parse_yaml

    p = Path(path)
    try:
        if p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(key="household", reason="file too large")
        raw = _parse_yaml(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ScenarioError(key="household", reason=f"file not found: {p}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(key="household", reason=f"not UTF-8 (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(key="household", reason=f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(key="household", reason="must be a YAML mapping")
    return _validate_household(raw)


def household_from_dict(data: dict[str, Any]) -> Household:
    """Validate a household profile given as a mapping."""
    return _validate_household(data)


def household_json_schema() -> dict[str, Any]:
    """The JSON Schema of household profiles (``wattplan schema --household``)."""
    schema = Household.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "wattplan household profile"
    return schema


@dataclass
class HouseholdState:
    """What carries over from one window to the next.

    ``battery_soc_kwh`` per battery name; ``ev_delivered_kwh`` per EV name maps a
    session's plug-in time (UTC) to the energy already put into the car; ``indoor_c`` per
    heat pump name: the indoor temperature now; ``appliance_started`` per appliance name
    maps a run's earliest start (UTC, its key) to the time the run really started (UTC). A
    started run is not planned again: its rest, if it still runs, is a fixed load.
    """

    battery_soc_kwh: dict[str, float] = field(default_factory=dict)
    ev_delivered_kwh: dict[str, dict[pd.Timestamp, float]] = field(default_factory=dict)
    indoor_c: dict[str, float] = field(default_factory=dict)
    appliance_started: dict[str, dict[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)

    @classmethod
    def initial(cls, household: Household) -> HouseholdState:
        socs = {
            d.name: d.soc_min_kwh if d.initial_soc_kwh is None else d.initial_soc_kwh
            for d in household.devices
            if isinstance(d, HouseholdBattery)
        }
        indoor = {
            d.name: d.building.start_c
            for d in household.devices
            if isinstance(d, HouseholdHeatPump)
        }
        return cls(battery_soc_kwh=socs, indoor_c=indoor)

    def copy(self) -> HouseholdState:
        return HouseholdState(
            dict(self.battery_soc_kwh),
            {k: dict(v) for k, v in self.ev_delivered_kwh.items()},
            dict(self.indoor_c),
            {k: dict(v) for k, v in self.appliance_started.items()},
        )


def _local(day: dt.date, at: dt.time, tz: str) -> pd.Timestamp:
    naive = pd.Timestamp(
        year=day.year, month=day.month, day=day.day, hour=at.hour, minute=at.minute
    )
    return naive.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")


def ev_sessions(
    ev: HouseholdEV, start: pd.Timestamp, end: pd.Timestamp, timezone: str
) -> list[tuple[pd.Timestamp, pd.Timestamp, float]]:
    """The EV's sessions (plug-in, departure, energy) from its habits that overlap a window.

    Times are tz-aware; a session is listed by its full plug-in and departure, not clipped.
    """
    lo, hi = start.tz_convert(timezone), end.tz_convert(timezone)
    out = []
    day = lo.date() - dt.timedelta(days=2)
    while day <= hi.date():
        habit = ev.weekly.get(WEEKDAYS[day.weekday()])  # type: ignore[call-overload]
        if habit is not None:
            plug = _local(day, habit.plug_in, timezone)
            dep_day = day + dt.timedelta(days=1) if habit.departure <= habit.plug_in else day
            dep = _local(dep_day, habit.departure, timezone)
            if dep > lo and plug < hi and dep > plug:
                out.append((plug, dep, habit.energy_kwh))
        day += dt.timedelta(days=1)
    return out


def _heat_pump(hp: HouseholdHeatPump, state: HouseholdState, outdoor: pd.Series) -> dict[str, Any]:
    b = hp.building
    return {
        "kind": "heat_pump",
        "name": hp.name,
        "max_power_kw": hp.max_power_kw,
        "flow_temperature_c": hp.flow_temperature_c,
        "start_penalty_eur": hp.start_penalty_eur,
        "min_run_minutes": hp.min_run_minutes,
        "outdoor_c": outdoor,
        "building": {
            "heat_capacity_kwh_per_k": b.heat_capacity_kwh_per_k,
            "heat_loss_kw_per_k": b.heat_loss_kw_per_k,
            "indoor_c": state.indoor_c.get(hp.name, b.start_c),
            "comfort_min_c": b.comfort_min_c,
            "comfort_max_c": b.comfort_max_c,
            "gains_kw": b.gains_kw,
            # fixed, so that a chained baseline holds the same set point every day
            "setpoint_c": b.thermostat_c,
        },
    }


@dataclass(frozen=True)
class ApplianceRun:
    """One run of an appliance from its weekly habits: the window it must run in.

    ``key`` (the earliest start in UTC) identifies the run in :class:`HouseholdState`;
    ``device`` is the name of its optimizer appliance (:func:`appliance_run_name`).
    """

    appliance: str
    earliest_start: pd.Timestamp
    latest_end: pd.Timestamp
    device: str

    @property
    def key(self) -> pd.Timestamp:
        return self.earliest_start.tz_convert("UTC")


def appliance_run_name(name: str, earliest_start: pd.Timestamp, timezone: str) -> str:
    """The optimizer device (and schedule column ``<name>_kw``) of one appliance run."""
    return f"{name}-{earliest_start.tz_convert(timezone):%Y%m%d-%H%M}"


def appliance_runs(
    app: HouseholdAppliance, start: pd.Timestamp, end: pd.Timestamp, timezone: str
) -> list[ApplianceRun]:
    """The appliance's runs from its habits whose window overlaps ``[start, end)``.

    Times are tz-aware; a run is listed by its full window, not clipped.
    """
    lo, hi = start.tz_convert(timezone), end.tz_convert(timezone)
    out = []
    day = lo.date() - dt.timedelta(days=2)
    while day <= hi.date():
        habit = app.weekly.get(WEEKDAYS[day.weekday()])  # type: ignore[call-overload]
        if habit is not None:
            first = _local(day, habit.earliest_start, timezone)
            end_day = (
                day + dt.timedelta(days=1) if habit.latest_end <= habit.earliest_start else day
            )
            last = _local(end_day, habit.latest_end, timezone)
            if last > lo and first < hi and last > first:
                name = appliance_run_name(app.name, first, timezone)
                out.append(ApplianceRun(app.name, first, last, name))
        day += dt.timedelta(days=1)
    return out


def programme_kw(
    app: HouseholdAppliance, resolution_minutes: int, offset_minutes: float = 0.0
) -> np.ndarray:
    """Mean power per slot of the programme from ``offset_minutes`` into it, kW.

    The programme starts on a slot edge; steps of another length than the slots are
    spread by energy (as the optimizer does with ``profile_minutes``).
    """
    step = app.profile_minutes
    total = app.duration_minutes
    cum = np.concatenate(([0.0], np.cumsum(np.asarray(app.profile_kw, dtype=float) * step)))
    t = np.arange(len(app.profile_kw) + 1) * step
    n = max(0, math.ceil((total - offset_minutes) / resolution_minutes - 1e-9))
    edges = offset_minutes + np.arange(n + 1) * resolution_minutes
    energy = np.diff(np.interp(np.minimum(edges, total), t, cum))
    out: np.ndarray = energy / resolution_minutes
    return out


def _appliance(
    app: HouseholdAppliance,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    res: int,
    tz: str,
    state: HouseholdState,
    next_plan: pd.Timestamp | None,
) -> list[dict[str, Any]]:
    slot = pd.Timedelta(minutes=res)
    window_slots = int((hi - lo) / slot)
    started = state.appliance_started.get(app.name, {})
    out = []
    for run in appliance_runs(app, lo, hi, tz):
        began = started.get(run.key)
        if began is not None:
            # the run is under way or done: only the rest of a running programme is left
            elapsed = max(0.0, (lo - began).total_seconds() / 60.0)
            rest = programme_kw(app, res, elapsed)[:window_slots]
            if not len(rest) or rest.max() <= 0.0:
                continue
            first, last = lo, lo + len(rest) * slot
            profile = rest
        else:
            profile = programme_kw(app, res)
            need = len(profile) * slot
            first, last = max(run.earliest_start, lo), run.latest_end
            if last > hi:
                if next_plan is not None and max(run.earliest_start, next_plan) + need <= last:
                    continue  # the next plan, which knows more prices, can still run it
                last = hi
                if _ceil_slot(first, lo, slot) + need > last:
                    continue  # no longer fits in this window: left to the next
        out.append(
            {
                "kind": "appliance",
                "name": run.device,
                "profile_kw": [float(x) for x in profile],
                "profile_minutes": res,
                "earliest_start": first.isoformat(),
                "latest_end": last.isoformat(),
            }
        )
    return out


def _ceil_slot(when: pd.Timestamp, lo: pd.Timestamp, slot: pd.Timedelta) -> pd.Timestamp:
    k = math.ceil((when - lo) / slot - 1e-9)
    return lo + k * slot


def household_scenario(
    household: Household,
    start: pd.Timestamp | dt.datetime,
    end: pd.Timestamp | dt.datetime,
    *,
    base_load_kw: pd.Series,
    pv_kw: pd.Series | None = None,
    prices_ct_per_kwh: pd.Series,
    state: HouseholdState | None = None,
    resolution: Literal["15min", "30min", "60min"] = "15min",
    terminal_price_ct_per_kwh: float | None = None,
    outdoor_c: pd.Series | None = None,
    replan_at: pd.Timestamp | dt.datetime | None = None,
    weather: WeatherSource | None = None,
) -> Scenario:
    """Compose the scenario of ``[start, end)`` from a profile, series and device state.

    ``base_load_kw``, ``pv_kw`` (kW means), ``prices_ct_per_kwh`` (all-in) and, with a heat
    pump, ``outdoor_c`` (°C) have tz-aware indexes covering the window. A session the car
    is plugged in for at ``start`` starts at ``start`` with the energy still missing
    (``state``); a session that departs after ``end`` must deliver nothing in this window
    but may charge up to what it still needs (the next window plans the rest).
    ``terminal_price_ct_per_kwh`` values what the window leaves stored (default: the
    scenario's, the lower quartile of the window's prices). Without ``pv_kw``, a
    ``weather`` source gives the PV forecast of the profile's PV geometry
    (:func:`household_pv_kw`, P50); without ``outdoor_c``, its ``temp_air_c``.

    A heat pump starts from ``state.indoor_c`` (default: the building's
    ``initial_indoor_c``). Each appliance run whose window overlaps ``[start, end)``
    becomes one optimizer appliance named by :func:`appliance_run_name`, unless
    ``state.appliance_started`` says it started already: then only the rest of a
    programme still running at ``start`` is in the scenario, as a fixed load from
    ``start``, and a finished run is left out. A run whose latest end is after ``end`` (its
    cheapest start may lie where prices are not known yet) is left to the next plan when
    it can still run in full after ``replan_at`` (when the next plan takes over); otherwise
    it must be done by ``end`` and is left out when it no longer fits.
    """
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if lo.tzinfo is None or hi.tzinfo is None:
        raise ScenarioError(key="start", reason="start and end need a time zone")
    next_plan = None if replan_at is None else pd.Timestamp(replan_at)
    if next_plan is not None and next_plan.tzinfo is None:
        raise ScenarioError(key="replan_at", reason="needs a time zone")
    if pv_kw is None and weather is not None and household.site.pv is not None:
        minutes = {"15min": 15, "30min": 30, "60min": 60}[resolution]
        pv_kw = household_pv_kw(household, weather, lo, hi, resolution_minutes=minutes)
    has_hp = any(isinstance(d, HouseholdHeatPump) for d in household.devices)
    if has_hp and outdoor_c is None and weather is not None:
        # hourly values: each covers its hour, so the series is not cut at ``start``
        outdoor_c = weather.get_weather(start=lo, end=hi)["temp_air_c"]
    elif outdoor_c is not None:
        outdoor_c = _window(outdoor_c, lo, hi)
    state = state or HouseholdState.initial(household)
    tz = household.site.timezone
    res = int(resolution.removesuffix("min"))
    devices: list[dict[str, Any]] = []
    for d in household.devices:
        if isinstance(d, HouseholdHeatPump):
            if outdoor_c is None:
                raise ScenarioError(
                    key="outdoor_c",
                    reason=f"heat pump {d.name!r} needs the outdoor temperature (or a weather "
                    "source)",
                )
            devices.append(_heat_pump(d, state, outdoor_c))
            continue
        if isinstance(d, HouseholdAppliance):
            devices.extend(_appliance(d, lo, hi, res, tz, state, next_plan))
            continue
        if isinstance(d, HouseholdBattery):
            devices.append(
                {
                    "kind": "battery",
                    "name": d.name,
                    "capacity_kwh": d.capacity_kwh,
                    "soc_kwh": state.battery_soc_kwh.get(
                        d.name, d.soc_min_kwh if d.initial_soc_kwh is None else d.initial_soc_kwh
                    ),
                    "soc_min_kwh": d.soc_min_kwh,
                    "max_charge_kw": d.max_charge_kw,
                    "max_discharge_kw": d.max_discharge_kw,
                    "charge_efficiency": d.charge_efficiency,
                    "discharge_efficiency": d.discharge_efficiency,
                    "wear_cost_ct_per_kwh": d.wear_cost_ct_per_kwh,
                }
            )
            continue
        delivered = state.ev_delivered_kwh.get(d.name, {})
        sessions = []
        for plug, dep, energy in ev_sessions(d, lo, hi, tz):
            left = max(0.0, energy - delivered.get(plug.tz_convert("UTC"), 0.0))
            s0 = max(plug, lo)
            if dep <= hi:
                sessions.append(
                    {"plug_in": s0.isoformat(), "departure": dep.isoformat(), "energy_kwh": left}
                )
            else:
                sessions.append(
                    {
                        "plug_in": s0.isoformat(),
                        "departure": hi.isoformat(),
                        "energy_kwh": 0.0,
                        "max_energy_kwh": left,
                    }
                )
        ev: dict[str, Any] = {
            "kind": "ev",
            "name": d.name,
            "max_power_kw": d.max_power_kw,
            "efficiency": d.efficiency,
            "start_penalty_eur": d.start_penalty_eur,
            "sessions": sessions,
        }
        if d.min_power_kw is not None:
            ev["min_power_kw"] = d.min_power_kw
        if d.capacity_kwh is not None:
            ev["capacity_kwh"] = d.capacity_kwh
        devices.append(ev)
    site: dict[str, Any] = {
        "feed_in_ct_per_kwh": household.site.feed_in_ct_per_kwh,
        "grid_import_limit_kw": household.site.grid_import_limit_kw,
        "grid_export_limit_kw": household.site.grid_export_limit_kw,
        "export_only_pv": household.site.export_only_pv,
        "base_load": _window(base_load_kw, lo, hi),
    }
    if terminal_price_ct_per_kwh is not None:
        site["terminal_price_ct_per_kwh"] = terminal_price_ct_per_kwh
    if pv_kw is not None:
        site["pv"] = _window(pv_kw, lo, hi)
    price = _window(prices_ct_per_kwh, lo, hi)
    return scenario_from_dict(
        {
            "name": household.name,
            "timezone": tz,
            "start": lo.isoformat(),
            "end": hi.isoformat(),
            "resolution": resolution,
            "prices": {
                "values": price.tolist(),
                "index": list(pd.DatetimeIndex(price.index).to_pydatetime()),
            },
            "site": site,
            "devices": devices,
        }
    )


def household_pv_kw(
    household: Household,
    weather: WeatherSource,
    start: pd.Timestamp | dt.datetime,
    end: pd.Timestamp | dt.datetime,
    *,
    resolution_minutes: int = 15,
    correction: PVCorrection | None = None,
    quantile: Literal["kw_p10", "kw_p50", "kw_p90"] = "kw_p50",
) -> pd.Series:
    """The PV forecast (mean kW per slot of ``[start, end)``) of the profile's PV system.

    The weather comes from ``weather`` (Open-Meteo, the shipped typical year, or one
    falling back to the other); ``correction`` is the site's learned correction
    (:func:`wattplan.forecast.fit_pv_correction`). A profile without PV gives zeros.
    """
    from wattplan.forecast import forecast_pv

    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if lo.tzinfo is None or hi.tzinfo is None:
        raise ScenarioError(key="start", reason="start and end need a time zone")
    geometry = household.site.pv
    if geometry is None:
        index = pd.date_range(lo, hi, freq=f"{resolution_minutes}min", inclusive="left")
        return pd.Series(0.0, index=index.tz_convert("UTC"), name="pv_kw")
    forecast = forecast_pv(
        geometry.model_dump(),
        weather,
        start=lo,
        end=hi,
        correction=correction,
        resolution_minutes=resolution_minutes,
    )
    out = forecast.kw[quantile].rename("pv_kw")
    return out


def _window(series: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
    idx = pd.DatetimeIndex(series.index)
    if idx.tz is None:
        raise ScenarioError(key="series", reason="needs a tz-aware index")
    out = series[(idx >= lo) & (idx < hi)].astype(float)
    return out
