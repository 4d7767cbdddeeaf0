"""The planner process: re-plan whenever new prices arrive, for one customer or many.

``Planner.run_once(now)`` is plain code (clock, price source, optimizer, store and sinks
injected); ``PlannerScheduler`` (the only user of APScheduler) calls it at poll times, at
slot boundaries and after device-state changes; ``create_app`` serves plans and takes device
state over HTTP; ``WebhookSink``, ``MqttSink`` and ``CallbackSink`` hand plans out, and
``HomeAssistantBridge`` makes each customer a Home Assistant device over MQTT.
``HouseholdPlanning`` plans a customer from a household profile on forecasts that the
planner refreshes daily from the customer's own usage (``UsageSettings``).

``PlannerScheduler``, ``create_app``, ``HomeAssistantBridge``, ``NomosPriceSource``,
``demo_household`` and the config models are imported on first use (APScheduler, Starlette
and the optimizer stay unloaded until then).
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

from wattplan._extras import requires as _requires

with _requires("planner", feature="wattplan.planner"):
    from wattplan.planner._events import EventTopic, PlanEvent
    from wattplan.planner._planner import CustomerOutcome, Outcome, Planner, RunReport
    from wattplan.planner._prices import (
        PriceChange,
        PriceDecision,
        decide_prices,
        price_fingerprint,
    )
    from wattplan.planner._state import Deadband, significant_change, validate_device_state
    from wattplan.planner._timing import PollSchedule, floor_to_slot, next_slot_boundary
    from wattplan.planner._types import (
        Clock,
        Customer,
        OptimizeFn,
        PlanLike,
        PriceSource,
        ScenarioFactory,
        ScenarioLike,
        SystemClock,
    )
    from wattplan.planner._usage import HouseholdPlanning, UsageSettings, UsageSource
    from wattplan.planner.sinks import (
        SIGNATURE_HEADER,
        CallbackSink,
        MqttSink,
        WebhookSink,
        sign_payload,
        verify_signature,
    )
    from wattplan.planner.store import (
        CustomerHealth,
        CustomerStatus,
        DeviceState,
        PlanStore,
        StoredPlan,
        UsageStatus,
    )

_LAZY = {
    "NomosPriceSource": "wattplan.planner._nomos",
    "demo_household": "wattplan.planner._household",
    "PlannerConfig": "wattplan.planner.config",
    "load_config": "wattplan.planner.config",
    "PlannerScheduler": "wattplan.planner.scheduler",
    "PollTrigger": "wattplan.planner.scheduler",
    "SlotTrigger": "wattplan.planner.scheduler",
    "BearerKeys": "wattplan.planner.api",
    "HomeAssistantBridge": "wattplan.planner.homeassistant",
    "create_app": "wattplan.planner.api",
}

__all__ = [
    "SIGNATURE_HEADER",
    "BearerKeys",
    "CallbackSink",
    "Clock",
    "Customer",
    "CustomerHealth",
    "CustomerOutcome",
    "CustomerStatus",
    "Deadband",
    "DeviceState",
    "EventTopic",
    "HomeAssistantBridge",
    "HouseholdPlanning",
    "MqttSink",
    "NomosPriceSource",
    "OptimizeFn",
    "Outcome",
    "PlanEvent",
    "PlanLike",
    "PlanStore",
    "Planner",
    "PlannerConfig",
    "PlannerScheduler",
    "PollSchedule",
    "PollTrigger",
    "PriceChange",
    "PriceDecision",
    "PriceSource",
    "RunReport",
    "ScenarioFactory",
    "ScenarioLike",
    "SlotTrigger",
    "StoredPlan",
    "SystemClock",
    "UsageSettings",
    "UsageSource",
    "UsageStatus",
    "WebhookSink",
    "create_app",
    "decide_prices",
    "demo_household",
    "floor_to_slot",
    "load_config",
    "next_slot_boundary",
    "price_fingerprint",
    "sign_payload",
    "significant_change",
    "validate_device_state",
    "verify_signature",
]


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wattplan.planner' has no attribute {name!r}")
    with _requires("planner", feature=f"wattplan.planner.{name}"):
        value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
