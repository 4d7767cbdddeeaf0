"""The small interfaces the planner is programmed against (all injected).

The planner never constructs a clock, an HTTP client, an optimizer or a sink itself: it
takes objects that satisfy these protocols, so that tests drive it with a fake clock and
a vendor can swap any edge (their own price cache, their own message bus).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

__all__ = [
    "Clock",
    "Customer",
    "OptimizeFn",
    "PlanLike",
    "PlanSink",
    "PriceSource",
    "ScenarioFactory",
    "ScenarioLike",
    "SystemClock",
]


@runtime_checkable
class Clock(Protocol):
    """Something that tells the time (tz-aware)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class ScenarioLike(Protocol):
    """What the planner needs from ``wattplan.Scenario``."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def resolution(self) -> Any: ...
    @property
    def timezone(self) -> Any: ...
    @property
    def devices(self) -> Any: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any: ...

    def with_device_state(self, name: str, /, **fields: Any) -> Any: ...


class PlanLike(Protocol):
    """What the planner needs from ``wattplan.Plan``."""

    @property
    def status(self) -> Any: ...
    @property
    def cost_eur(self) -> float: ...
    @property
    def baseline_cost_eur(self) -> float: ...
    @property
    def savings_eur(self) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


ScenarioFactory = Callable[[datetime, datetime], Any]
"""``factory(start, end) -> Scenario`` for the window ``[start, end)``."""

OptimizeFn = Callable[..., PlanLike]
"""``optimize(scenario, prices) -> Plan``; the default wraps ``wattplan.optimize``.

A function that also accepts ``previous_plan=`` and ``stability=`` keywords gets the
customer's latest stored plan (its JSON document) on every re-plan (plan stability)."""


class PriceSource(Protocol):
    """Where a customer's prices come from (the Nomos API in production).

    ``start`` and ``end`` are local calendar dates, ``end`` inclusive (as Nomos's
    ``/prices``). Returns a tz-aware Series in ct/kWh; raises
    :class:`~wattplan.exceptions.PricesNotPublishedError` when a requested day is not out.
    """

    def fetch_prices(self, customer: Customer, *, start: date, end: date) -> pd.Series: ...


class PlanSink(Protocol):
    """Receives every new plan (and status changes) of every customer."""

    name: str

    def publish(self, customer_id: str, document: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Customer:
    """One planned household.

    ``scenario`` is the household's base scenario (devices, site); the planner moves its
    window along with the clock and the published prices. ``subscription_id`` and
    ``grant`` are handed to the price source untouched (``grant`` is typically the
    ``(client_id, nomos_customer_id)`` pair of the stored OAuth grant).

    A fixed ``scenario`` carries its data (base load, PV, weather, EV sessions) for its own
    window, so the planner plans inside that window only. For open-ended rolling use give a
    ``scenario_factory(start, end) -> Scenario`` that builds the household for any window;
    ``scenario`` then only supplies device names, resolution and timezone.

    ``household`` (a :class:`~wattplan.planner._usage.HouseholdPlanning`) plans the customer
    from a household profile for any window, on the forecasts the planner keeps fresh from
    the customer's own usage; ``scenario`` is then the profile's household for one day.
    """

    id: str
    scenario: Any
    subscription_id: str | None = None
    grant: tuple[str, str] | None = None
    scenario_factory: ScenarioFactory | None = None
    household: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Customer(id={self.id!r}, subscription_id={self.subscription_id!r})"
