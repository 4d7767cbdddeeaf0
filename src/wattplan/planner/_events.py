"""What the planner hands to its sinks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["EventTopic", "PlanEvent"]


class EventTopic(StrEnum):
    PLAN_CREATED = "plan.created"  # a new plan (payload: the plan document)
    CUSTOMER_STATUS = "customer.status"  # health changed (ok, error, stale, ...)
    SETPOINT = "setpoint.current"  # the slot that starts now (payload: one schedule row)


@dataclass(frozen=True, slots=True)
class PlanEvent:
    topic: EventTopic
    customer_id: str
    at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
