"""The pure planning call: (scenario, prices, device state) -> plan summary.

This is the only piece of a planning pass that may leave the planner process (a process
pool or a Dask worker runs it; see ``_executors``). Its input and output are plain,
picklable values; it touches no database, no HTTP client and no clock. Failures come back
as values (kind, message, health), not as exceptions, because our exceptions take keyword
arguments that do not survive pickling and a foreign error's text might carry a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from wattplan.exceptions import (
    AuthError,
    NomosError,
    OptimizationError,
    PlannerError,
    PricesNotPublishedError,
    ReauthorizationRequiredError,
    ScenarioError,
    StoreError,
    WattplanError,
)
from wattplan.planner._state import live_state
from wattplan.planner._types import OptimizeFn, ScenarioFactory

__all__ = ["PlanningCall", "SolvedPlan", "classify", "default_optimize", "safe_message", "solve"]

logger = logging.getLogger(__name__)

BAD_STATUSES = frozenset({"infeasible", "error"})


def default_optimize(
    scenario: Any, prices: pd.Series, *, previous_plan: Any = None, stability: Any = None
) -> Any:
    """``wattplan.optimize(scenario, prices=prices, ...)``, imported on first use."""
    import wattplan

    return wattplan.optimize(
        scenario, prices=prices, previous_plan=previous_plan, stability=stability
    )


def classify(exc: BaseException) -> tuple[str, str]:
    """``(error_kind, health)`` of a failure, as stored (health is a ``CustomerHealth`` value)."""
    if isinstance(exc, ReauthorizationRequiredError):
        return "reauthorization_required", "reauthorization_required"
    if isinstance(exc, PricesNotPublishedError):
        kind = "prices_missing"
    elif isinstance(exc, NomosError):
        kind = "api_error"
    elif isinstance(exc, AuthError):
        kind = "auth_error"
    elif isinstance(exc, ScenarioError):
        kind = "invalid_scenario"
    elif isinstance(exc, OptimizationError):
        kind = "solver_error"
    elif isinstance(exc, StoreError):
        kind = "store_error"
    elif isinstance(exc, PlannerError):
        kind = "planner_error"
    else:
        kind = "internal_error"
    return kind, "error"


def safe_message(exc: BaseException) -> str:
    # Our own errors never carry secrets (house rule); a foreign error's text might,
    # so only its type is recorded.
    if isinstance(exc, WattplanError):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


@dataclass(frozen=True, slots=True)
class PlanningCall:
    """Everything one customer's plan depends on, and nothing else.

    ``scenario`` is the customer's base scenario; with a ``factory`` the scenario for
    ``[start, end)`` is built by it (on the worker), otherwise the base scenario is cut to
    the window. ``device_state`` is the stored state (JSON values) applied at ``now``.
    """

    customer_id: str
    optimize: OptimizeFn
    scenario: Any
    factory: ScenarioFactory | None
    start: datetime
    end: datetime
    now: datetime
    device_state: Mapping[str, Mapping[str, Any]]
    prices: pd.Series
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"PlanningCall(customer_id={self.customer_id!r}, start={self.start.isoformat()})"


@dataclass(frozen=True, slots=True)
class SolvedPlan:
    """What comes back from a planning call: the plan's summary and document, or a failure."""

    status: str
    cost_eur: float | None = None
    baseline_cost_eur: float | None = None
    savings_eur: float | None = None
    document: dict[str, Any] | None = None
    optimize_s: float = 0.0
    error_kind: str | None = None
    error: str | None = None
    health: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_kind is not None


def scenario_for(
    scenario: Any, factory: ScenarioFactory | None, start: datetime, end: datetime
) -> Any:
    """The customer's scenario for the window ``[start, end)``."""
    if factory is not None:
        return factory(start, end)
    horizon = getattr(scenario, "horizon", None)
    if callable(horizon):
        return horizon(start, end)
    return scenario.model_copy(update={"start": start, "end": end})


def status_value(plan: Any) -> str:
    status = getattr(plan, "status", "error")
    return str(getattr(status, "value", status))


def number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def solve(call: PlanningCall, *, catch: bool = True) -> SolvedPlan:
    """Build the scenario, apply the device state, optimize; summarise the plan.

    With ``catch`` (the default, for workers) a failure comes back as a ``SolvedPlan``
    with ``error_kind``; without it the exception propagates (the in-process path).
    """
    try:
        scenario = scenario_for(call.scenario, call.factory, call.start, call.end)
        for device, fields in call.device_state.items():
            scenario = scenario.with_device_state(device, **live_state(fields, call.now))
        t0 = time.perf_counter()
        plan = call.optimize(scenario, call.prices, **dict(call.kwargs))
        elapsed = time.perf_counter() - t0
        status = status_value(plan)
        document = None if status in BAD_STATUSES else plan.to_dict()
    except Exception as exc:
        if not catch:
            raise
        kind, health = classify(exc)
        if not isinstance(exc, WattplanError):
            logger.exception("customer %s: unexpected failure in planning", call.customer_id)
        return SolvedPlan(status="error", error_kind=kind, error=safe_message(exc), health=health)
    return SolvedPlan(
        status=status,
        cost_eur=number(getattr(plan, "cost_eur", None)),
        baseline_cost_eur=number(getattr(plan, "baseline_cost_eur", None)),
        savings_eur=number(getattr(plan, "savings_eur", None)),
        document=document,
        optimize_s=elapsed,
    )
