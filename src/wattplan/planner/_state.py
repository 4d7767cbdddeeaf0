"""Device state coming in from the vendor: validation and the re-plan deadband.

Everything that arrives from the network is checked here before it reaches the store or
the optimizer: known devices only, known fields per device kind, numbers in range, times
tz-aware and near the present. Errors name the offending key.

The deadband keeps plans stable: a battery whose charge drifted by 50 Wh or a room that
is 0.1 K warmer than modelled does not cause a re-plan (and a plan that flaps between two
near-equal schedules); a car that was plugged in does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from wattplan.exceptions import ScenarioError

__all__ = [
    "Deadband",
    "DimmingSignal",
    "device_kinds",
    "live_state",
    "significant_change",
    "validate_device_state",
]

MAX_DEVICES_PER_UPDATE = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)


MAX_DIMMING_SIGNALS = 16


class DimmingSignal(_Strict):
    """A grid operator's dimming signal (§14a EnWG) for one device, valid ``[start, end)``.

    While it is valid the device's grid draw is capped at ``max_kw`` (default 4.2 kW, the
    minimum §14a guarantees). A re-plan drops the signals that have ended.
    """

    start: AwareDatetime
    end: AwareDatetime
    max_kw: float = Field(default=4.2, ge=0, le=1000)

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError("must be after start")
        return v


_DIMMING = Field(
    default=None,
    max_length=MAX_DIMMING_SIGNALS,
    description="dimming signals; replaces the device's earlier ones ([] clears them)",
)


class EvState(_Strict):
    """An EV's charging session: plug-in, departure, energy needed or SoC and target."""

    plug_in: AwareDatetime | None = None
    departure: AwareDatetime | None = None
    energy_kwh: float | None = Field(default=None, ge=0, le=500)
    soc_kwh: float | None = Field(default=None, ge=0, le=500)
    target_soc_kwh: float | None = Field(default=None, ge=0, le=500)
    dimming: list[DimmingSignal] | None = _DIMMING


class BatteryState(_Strict):
    soc_kwh: float | None = Field(default=None, ge=0, le=1000)
    dimming: list[DimmingSignal] | None = _DIMMING


class HeatPumpState(_Strict):
    indoor_c: float | None = Field(default=None, ge=-30, le=60)
    dimming: list[DimmingSignal] | None = _DIMMING


_MODELS: dict[str, type[_Strict]] = {
    "ev": EvState,
    "battery": BatteryState,
    "heat_pump": HeatPumpState,
}

# Times more than this far from now are refused: a typo in a year, not a real session.
_MAX_TIME_DISTANCE = timedelta(days=14)


def _kind(device: Any) -> str:
    kind = getattr(device, "kind", None)
    return str(getattr(kind, "value", kind))


def device_kinds(scenario: Any) -> dict[str, str]:
    """``{device name: kind}`` of a scenario."""
    return {str(d.name): _kind(d) for d in scenario.devices}


def validate_device_state(body: Any, *, scenario: Any, now: datetime) -> dict[str, dict[str, Any]]:
    """Validate ``{"devices": {name: {field: value}}}``; return the clean update.

    Raises :class:`~wattplan.exceptions.ScenarioError` naming the key (``devices.car.soc_kwh``)
    and the reason. The update is also applied to ``scenario`` (``with_device_state``) so
    that the optimizer's own checks (a SoC above capacity) run before anything is stored.
    """
    if not isinstance(body, Mapping):
        raise ScenarioError(key="body", reason="must be a JSON object")
    unknown = set(body) - {"devices"}
    if unknown:
        raise ScenarioError(key=sorted(unknown)[0], reason="unknown key (expected 'devices')")
    devices = body.get("devices")
    if not isinstance(devices, Mapping) or not devices:
        raise ScenarioError(key="devices", reason="must be a non-empty object of device states")
    if len(devices) > MAX_DEVICES_PER_UPDATE:
        raise ScenarioError(key="devices", reason=f"at most {MAX_DEVICES_PER_UPDATE} devices")
    kinds = device_kinds(scenario)
    clean: dict[str, dict[str, Any]] = {}
    for name, fields in devices.items():
        key = f"devices.{name}"
        if name not in kinds:
            raise ScenarioError(
                key=key, reason=f"no such device (known: {', '.join(sorted(kinds))})"
            )
        model = _MODELS.get(kinds[name])
        if model is None:
            raise ScenarioError(key=key, reason=f"a {kinds[name]} takes no state updates")
        if not isinstance(fields, Mapping):
            raise ScenarioError(key=key, reason="must be an object")
        try:
            parsed = model.model_validate(dict(fields))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ScenarioError(
                key=f"{key}.{loc}" if loc else key,
                reason=str(err["msg"]).removeprefix("Value error, "),
            ) from None
        values = parsed.model_dump(exclude_none=True)
        if not values:
            raise ScenarioError(key=key, reason="no fields given")
        for field, value in values.items():
            if isinstance(value, datetime) and abs(value - now) > _MAX_TIME_DISTANCE:
                raise ScenarioError(key=f"{key}.{field}", reason="more than 14 days away from now")
        _check_signal_times(values.get("dimming", []), key, now)
        if (
            "plug_in" in values
            and "departure" in values
            and values["departure"] <= values["plug_in"]
        ):
            raise ScenarioError(key=f"{key}.departure", reason="must be after plug_in")
        clean[str(name)] = values
    trial = scenario
    for name, values in clean.items():
        try:
            trial = trial.with_device_state(name, **values)
        except ScenarioError:
            raise
        except (ValueError, TypeError) as exc:
            raise ScenarioError(key=f"devices.{name}", reason=str(exc)) from None
    return clean


def _check_signal_times(signals: list[dict[str, Any]], key: str, now: datetime) -> None:
    for i, signal in enumerate(signals):
        for field in ("start", "end"):
            if abs(signal[field] - now) > _MAX_TIME_DISTANCE:
                raise ScenarioError(
                    key=f"{key}.dimming.{i}.{field}", reason="more than 14 days away from now"
                )


def live_state(fields: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A device's stored state for a plan from ``at``: dimming signals that ended are dropped.

    Stored signals come back from JSON with ISO 8601 strings for their times.
    """
    out = dict(fields)
    signals = out.get("dimming")
    if signals:
        out["dimming"] = [s for s in signals if _when(s["end"]) > at]
    return out


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class Deadband(BaseModel):
    """How far a device state may drift from the one the plan was made on before a re-plan."""

    model_config = ConfigDict(extra="forbid")

    soc_kwh: float = Field(default=0.25, ge=0, description="battery/EV state of charge, kWh")
    indoor_c: float = Field(default=0.3, ge=0, description="indoor temperature, K")
    energy_kwh: float = Field(default=0.5, ge=0, description="EV energy still needed, kWh")


def significant_change(
    planned: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    deadband: Deadband,
) -> bool:
    """True when ``current`` differs from ``planned`` by more than the deadband.

    Numbers listed in the deadband count only beyond their threshold; any other change
    (a new session, a new departure, a device appearing) always counts.
    """
    thresholds = deadband.model_dump()
    for device in set(planned) | set(current):
        a, b = planned.get(device, {}), current.get(device, {})
        for field in set(a) | set(b):
            x, y = a.get(field), b.get(field)
            if x == y:
                continue
            if (
                field in thresholds
                and isinstance(x, int | float)
                and isinstance(y, int | float)
                and math.isfinite(float(x))
                and math.isfinite(float(y))
                and abs(float(x) - float(y)) <= thresholds[field]
            ):
                continue
            return True
    return False
