"""``Planner.run_once(now)``: one pass over every customer, as plain code.

Per customer: fetch the published prices, decide whether anything is new (prices or a
device state beyond the deadband), re-plan on the rolling horizon ``[now, last price)``
if so, store the plan and hand it to the sinks. Every failure is caught per customer,
recorded in the store (visible in ``wattplan status`` and ``/health``) and in memory (a
database that fails cannot record its own failure), and logged; the last good plan stays in
place, marked stale with its age, and the next successful pass clears the mark by itself.
While the store cannot be read, the last plan this process stored or read is served from
memory, marked stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from wattplan.exceptions import (
    AccessError,
    AuthError,
    PlannerError,
    PricesNotPublishedError,
    ScenarioError,
    StoreError,
    WattplanError,
)
from wattplan.planner._events import EventTopic, PlanEvent
from wattplan.planner._executors import PlanExecutor
from wattplan.planner._health import FetchHealth, LiveCustomer
from wattplan.planner._prices import PriceChange, PriceDecision, decide_prices
from wattplan.planner._solve import (
    BAD_STATUSES,
    PlanningCall,
    SolvedPlan,
    classify,
    default_optimize,
    safe_message,
    solve,
)
from wattplan.planner._state import (
    Deadband,
    significant_change,
    validate_device_state,
)
from wattplan.planner._tariff import tariff_slots
from wattplan.planner._timing import floor_to_slot, require_aware
from wattplan.planner._types import Clock, Customer, OptimizeFn, PriceSource, SystemClock
from wattplan.planner._usage import UsageSettings, UsageSource, refresh_usage, usage_due
from wattplan.planner.store import (
    CustomerHealth,
    CustomerStatus,
    DeviceState,
    PlanStore,
    StoredPlan,
    state_fingerprint,
)

__all__ = ["CustomerOutcome", "Outcome", "Planner", "RunReport", "default_optimize"]

logger = logging.getLogger(__name__)

# failures that only a successful price fetch clears (a re-plan on stored prices does not)
_FETCH_ERRORS = {"api_error", "auth_error", "reauthorization_required", "prices_missing"}


class Outcome(StrEnum):
    PLANNED = "planned"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"  # the same inputs failed before; not tried again


@dataclass(frozen=True, slots=True)
class CustomerOutcome:
    customer_id: str
    outcome: Outcome
    reason: str = ""
    plan_id: int | None = None
    error_kind: str | None = None
    optimize_s: float = 0.0  # time spent in the optimizer itself (on whichever worker)


@dataclass(slots=True)
class RunReport:
    at: datetime
    outcomes: list[CustomerOutcome] = field(default_factory=list)

    def by_outcome(self, outcome: Outcome) -> list[str]:
        return [o.customer_id for o in self.outcomes if o.outcome is outcome]

    @property
    def planned(self) -> list[str]:
        return self.by_outcome(Outcome.PLANNED)

    @property
    def failed(self) -> list[str]:
        return self.by_outcome(Outcome.FAILED)

    @property
    def optimize_seconds(self) -> float:
        """The sum of the pure optimizer times of this pass (the floor of its cost)."""
        return sum(o.optimize_s for o in self.outcomes)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A customer's status as read at the start of its turn, and how far this process's
    record of its successes and failures had got then (to tell what was written since)."""

    status: CustomerStatus | None
    exact: bool  # the status as stored: nothing merged in from memory
    ok_seq: int
    failed_seq: int


@dataclass(slots=True)
class _Pending:
    """A customer between deciding to plan and storing the plan (its lock is held)."""

    cid: str
    call: PlanningCall
    before: CustomerStatus | None
    reasons: list[str]
    prices: pd.Series
    decision: PriceDecision
    devices: dict[str, dict[str, Any]]
    attempt: str
    fetched: bool
    tries: int = 0
    seen: _Seen | None = None


def _takes_previous_plan(fn: Callable[..., Any]) -> bool:
    """Whether an optimize function accepts ``previous_plan=`` (and ``stability=``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "previous_plan" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


def _resolution(scenario: Any) -> timedelta:
    value = getattr(scenario, "resolution", "15min")
    value = getattr(value, "value", value)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(minutes=float(value))
    return pd.Timedelta(str(value)).to_pytimedelta()


def _timezone(scenario: Any) -> ZoneInfo:
    value = getattr(scenario, "timezone", "Europe/Berlin")
    return value if isinstance(value, ZoneInfo) else ZoneInfo(str(value))


def _error_kind(exc: BaseException) -> tuple[str, CustomerHealth]:
    kind, health = classify(exc)
    return kind, CustomerHealth(health)


_safe_message = safe_message


class Planner:
    """Plans many customers in one process.

    Parameters
    ----------
    customers:
        The customers to plan (each with its base scenario).
    store:
        Where plans, device state and health live.
    prices:
        The price source (``NomosPriceSource`` in production).
    optimize:
        ``optimize(scenario, prices) -> Plan``; defaults to ``wattplan.optimize``.
    clock:
        Tells the time when ``run_once`` gets no ``now``.
    sinks:
        Callables that receive every :class:`PlanEvent` (see ``wattplan.planner.sinks``).
    deadband:
        Device-state drift that does not cause a re-plan.
    max_horizon:
        The longest window planned at once (prices may reach further).
    workers:
        Customers handled in parallel threads within one pass (fetching, deciding,
        storing; with the default executor also the optimization).
    executor:
        Where the pure planning calls run (``ProcessExecutor``, ``DaskExecutor``; see
        ``wattplan.planner._executors``). ``None``: on the pass's own threads. The caller
        owns the executor and closes it.
    max_tries:
        How often a planning call is submitted when its worker is lost before the
        customer's attempt counts as failed.
    max_in_flight:
        With an executor: customers between fetching and storing at once (their prices
        and previous plans are in memory). ``None``: four per thread, or two per executor
        worker plus one per thread, whichever is more.
    previous_plan:
        Pass each customer's latest stored plan to every re-plan as
        ``optimize(..., previous_plan=document)`` (plan stability: the running slot is
        kept and deviations within the next hours are priced). Only for an ``optimize``
        that accepts the keyword (the default does).
    stability:
        A ``wattplan.Stability`` passed along with the previous plan; it replaces the
        scenario's own ``stability`` settings. ``None``: the scenario's.
    price_recheck:
        A customer whose stored prices already reach the end of tomorrow (local time), and
        whose last fetch succeeded less than this long ago, is not fetched again by a poll:
        nothing new can be published before the next afternoon, and such a poll costs a
        few database reads instead of an API call. A corrected amount is seen within this
        time. ``timedelta(0)``: fetch at every poll.
    max_fetches_per_second:
        Price requests of one pass are spread to stay below this rate (Nomos has
        documented 10 requests per second); ``None``: only ``workers`` bounds them.
    fetch_stalled_after:
        A price fetch still running after this long makes health ``degraded`` before its
        deadline (``RetryPolicy.max_call_s``) ends it.
    usage:
        Where customers planned from a household profile get their metered usage (the
        ``NomosPriceSource`` in production); default ``prices`` when it can fetch usage.
    usage_settings:
        When the daily usage refresh runs and how much it fetches.
    """

    def __init__(
        self,
        *,
        customers: Iterable[Customer],
        store: PlanStore,
        prices: PriceSource,
        optimize: OptimizeFn | None = None,
        clock: Clock | None = None,
        sinks: Sequence[Callable[[PlanEvent], None]] = (),
        deadband: Deadband | None = None,
        max_horizon: timedelta = timedelta(hours=48),
        workers: int = 1,
        executor: PlanExecutor | None = None,
        max_tries: int = 3,
        max_in_flight: int | None = None,
        previous_plan: bool = True,
        stability: Any = None,
        price_recheck: timedelta = timedelta(hours=1),
        max_fetches_per_second: float | None = None,
        fetch_stalled_after: timedelta = timedelta(seconds=20),
        usage: UsageSource | None = None,
        usage_settings: UsageSettings | None = None,
    ) -> None:
        self._customers: dict[str, Customer] = {}
        for customer in customers:
            if customer.id in self._customers:
                raise PlannerError(f"customer {customer.id!r} is listed twice")
            self._customers[customer.id] = customer
        self.store = store
        self._prices = prices
        if usage is None and hasattr(prices, "fetch_usage"):
            usage = prices  # type: ignore[assignment]
        self._usage = usage
        self._usage_settings = usage_settings or UsageSettings()
        self._optimize: OptimizeFn = optimize or default_optimize
        self._stability = stability
        self._pass_previous = previous_plan and _takes_previous_plan(self._optimize)
        if previous_plan and not self._pass_previous:
            logger.info("the optimize function takes no previous_plan: re-plans start afresh")
        self.clock: Clock = clock or SystemClock()
        self._sinks = list(sinks)
        self._deadband = deadband or Deadband()
        self._max_horizon = max_horizon
        self._workers = max(1, workers)
        self._executor = executor
        self._price_recheck = price_recheck
        self._fetch_gate = _RateGate(max_fetches_per_second)
        self._max_tries = max(1, max_tries)
        self._max_in_flight = max_in_flight
        self._state_listeners: list[Callable[[str], None]] = []
        self._locks = {cid: threading.Lock() for cid in self._customers}
        self._live = {cid: LiveCustomer(cid) for cid in self._customers}
        self._fetches = FetchHealth(fetch_stalled_after.total_seconds())
        self._stopping = threading.Event()
        now = self.clock.now()
        for cid in self._customers:
            self.store.ensure_customer(cid, now=now)

    def __repr__(self) -> str:
        return f"Planner(customers={len(self._customers)}, store={self.store!r})"

    # public API --------------------------------------------------------------------------

    @property
    def customer_ids(self) -> list[str]:
        return list(self._customers)

    def customer(self, customer_id: str) -> Customer:
        try:
            return self._customers[customer_id]
        except KeyError:
            raise AccessError(f"unknown customer {customer_id!r}") from None

    def stop(self) -> None:
        """Finish the customer in progress and skip the rest of a running pass (shutdown)."""
        self._stopping.set()

    def add_sink(self, sink: Callable[[PlanEvent], None]) -> None:
        self._sinks.append(sink)

    def on_device_state_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(customer_id)`` after a state change beyond the deadband."""
        self._state_listeners.append(listener)

    def run_once(
        self,
        now: datetime | None = None,
        *,
        fetch_prices: bool = True,
        customer_ids: Iterable[str] | None = None,
    ) -> RunReport:
        """One pass: every customer (or the given ones) fetched, decided, maybe re-planned.

        With ``fetch_prices=False`` the prices of each customer's latest plan are reused
        (a re-plan after a device-state change or at a slot boundary needs no API call).
        Never raises for one customer's failure: see the report and the store.
        """
        moment = require_aware(now if now is not None else self.clock.now())
        ids = list(self._customers) if customer_ids is None else list(customer_ids)
        report = RunReport(at=moment)

        def one(cid: str) -> CustomerOutcome:
            if self._stopping.is_set():
                return CustomerOutcome(cid, Outcome.SKIPPED, "shutting down")
            return self._run_customer(cid, moment, fetch_prices=fetch_prices)

        if self._executor is not None and ids:
            report.outcomes = self._run_pipeline(ids, moment, fetch_prices=fetch_prices)
        elif self._workers == 1 or len(ids) <= 1:
            report.outcomes = [one(cid) for cid in ids]
        else:
            with ThreadPoolExecutor(self._workers, thread_name_prefix="wattplan-plan") as pool:
                report.outcomes = list(pool.map(one, ids))
        logger.info(
            "planner pass at %s%s: %d planned, %d unchanged, %d failed",
            moment.isoformat(),
            "" if self._executor is None else f" on {self._executor.name}",
            len(report.planned),
            len(report.by_outcome(Outcome.UNCHANGED)),
            len(report.failed),
        )
        return report

    def update_device_state(
        self,
        customer_id: str,
        body: Mapping[str, Any],
        *,
        replace: bool = False,
        now: datetime | None = None,
    ) -> tuple[DeviceState, bool]:
        """Validate and store ``{"devices": {name: {field: value}}}``.

        Returns the stored state and whether it differs from the latest plan's state by
        more than the deadband (then the listeners are told, and the scheduler re-plans).
        Invalid input raises :class:`~wattplan.exceptions.ScenarioError` and stores nothing.
        """
        customer = self.customer(customer_id)
        moment = require_aware(now if now is not None else self.clock.now())
        clean = validate_device_state(body, scenario=customer.scenario, now=moment)
        state = self.store.update_device_state(customer_id, clean, now=moment, replace=replace)
        live = self._live[customer_id]
        try:
            latest = self.store.latest_plan(customer_id)
        except StoreError:  # the state is stored: compare with the plan in memory
            latest = live.plan
        live.remember_plan(latest)
        planned = latest.device_state if latest is not None else {}
        significant = significant_change(planned, state.devices, self._deadband)
        logger.info(
            "device state of %s updated to version %d (%s)",
            customer_id,
            state.version,
            "re-plan" if significant else "within deadband",
        )
        if significant:
            for listener in list(self._state_listeners):
                try:
                    listener(customer_id)
                except Exception:
                    logger.exception("device-state listener failed for %s", customer_id)
        return state, significant

    def foreseeable_shortfalls(
        self,
        customer_id: str,
        devices: Mapping[str, Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """EV energy that no plan can deliver for this device state, before any planning.

        A car charges only in slots that lie wholly inside ``[plug_in, departure)`` and
        not before the running slot; at most ``max_power_kw`` × ``efficiency`` in each.
        Each session that needs more is listed like ``Plan.shortfalls`` (``kind: energy``,
        ``amount`` in kWh), so that the caller hears at once that it cannot be served.
        """
        scenario = self.customer(customer_id).scenario
        moment = require_aware(now if now is not None else self.clock.now())
        step = _resolution(scenario)
        hours = step.total_seconds() / 3600
        tz = _timezone(scenario)
        out: list[dict[str, Any]] = []
        for device in scenario.devices:
            kind = getattr(getattr(device, "kind", None), "value", getattr(device, "kind", None))
            fields = devices.get(str(device.name))
            power = getattr(device, "max_power_kw", None)
            if kind != "ev" or not fields or power is None:
                continue
            plug_in, departure = _moment(fields.get("plug_in")), _moment(fields.get("departure"))
            need = _needed_kwh(fields)
            if plug_in is None or departure is None or need is None or departure <= moment:
                continue
            first = floor_to_slot(plug_in, resolution=step)
            if first < plug_in:
                first += step
            first = max(first, floor_to_slot(moment, resolution=step))
            slots = max(0, int((departure - first) / step))
            most = slots * hours * float(power) * float(getattr(device, "efficiency", 1.0))
            short = need - most
            if short <= 1e-6:
                continue
            why = (
                "the car is not plugged in for a whole slot"
                if slots == 0
                else "the plug-in window is too short for the charging power"
            )
            out.append(
                {
                    "device": str(device.name),
                    "kind": "energy",
                    "amount": round(short, 6),
                    "unit": "kWh",
                    "start": plug_in.astimezone(tz).isoformat(),
                    "end": departure.astimezone(tz).isoformat(),
                    "message": f"{device.name} falls {short:.2f} kWh short of its target by "
                    f"{departure.astimezone(tz):%Y-%m-%d %H:%M}: {why}",
                }
            )
        return out

    def plan_document(self, customer_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The latest plan of a customer with its freshness (``stale``, ``age_seconds``).

        When the store cannot be read, the latest plan this process stored or read is
        returned, marked stale, with ``"source": "memory"``; without one the
        :class:`~wattplan.exceptions.StoreError` is raised.
        """
        self.customer(customer_id)
        moment = require_aware(now if now is not None else self.clock.now())
        live = self._live[customer_id]
        try:
            latest = self.store.latest_plan(customer_id)
            stored = self.store.status(customer_id)
        except StoreError:
            kept = live.plan
            if kept is None:
                raise
            status = live.effective(None)
            meta = status.as_dict(moment) if status is not None else {}
            meta.update(stale=True, error_kind="store_error")
            return {**plan_envelope(kept, meta, moment), "source": "memory"}
        live.remember_plan(latest)
        if stored is not None:
            live.status = stored
        if latest is None:
            raise PlannerError(f"no plan yet for customer {customer_id}")
        status = live.effective(stored)
        return plan_envelope(latest, status.as_dict(moment) if status else {}, moment)

    def tariff(self, customer_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The customer's all-in prices from the running slot on, contiguous, in UTC.

        The curve is the one the latest plan was made on (the newest prices fetched); while
        the store cannot be read, that of the latest plan this process holds. Returns
        ``customer_id``, ``plan_id``, ``resolution_minutes`` (of the first slot) and
        ``slots`` (see :func:`wattplan.planner._tariff.tariff_slots`). Raises
        :class:`~wattplan.exceptions.PlannerError` before a first plan.
        """
        customer = self.customer(customer_id)
        moment = require_aware(now if now is not None else self.clock.now())
        live = self._live[customer_id]
        try:
            latest = self.store.latest_plan(customer_id)
        except StoreError:
            if live.plan is None:
                raise
            latest = live.plan
        live.remember_plan(latest)
        if latest is None:
            raise PlannerError(f"no prices yet for customer {customer_id}")
        slots = tariff_slots(
            latest.prices,
            now=moment,
            default_slot=_resolution(customer.scenario),
            timezone=str(_timezone(customer.scenario)),
        )
        minutes = None
        if slots:
            first = slots[0]
            span = datetime.fromisoformat(first["end"]) - datetime.fromisoformat(first["start"])
            minutes = int(span.total_seconds() // 60)
        return {
            "customer_id": customer_id,
            "plan_id": latest.id,
            "currency": "EUR",
            "resolution_minutes": minutes,
            "slots": slots,
        }

    def customer_status(
        self, customer_id: str, *, now: datetime | None = None
    ) -> dict[str, Any] | None:
        """Health of one customer: stored, unless this process saw a newer failure.

        While the store cannot be read, the last status read plus what this process saw,
        with ``"source": "memory"``.
        """
        self.customer(customer_id)
        moment = require_aware(now if now is not None else self.clock.now())
        live = self._live[customer_id]
        try:
            stored = self.store.status(customer_id)
        except StoreError:
            status = live.effective(None)
            if status is None:
                raise
            return {**status.as_dict(moment), "source": "memory"}
        if stored is not None:
            live.status = stored
        status = live.effective(stored)
        if status is None:
            return None
        out = status.as_dict(moment)
        if self._customers[customer_id].household is not None:
            try:
                usage = self.store.usage_status(customer_id)
            except StoreError:
                usage = None
            out["usage"] = None if usage is None else usage.as_dict()
        return out

    def health(self) -> dict[str, Any]:
        """Process health: customer counts, the database, price fetches (no customer data).

        ``status`` is ``degraded`` when a customer fails, the database failed its latest
        read or write, or price fetches fail or hang.
        """
        try:
            stored = {s.customer_id: s for s in self.store.statuses()}
        except StoreError:
            stored = {}
        database = self.store.health()  # after the read: it counts too
        counts = {h.value: 0 for h in CustomerHealth}
        stale = 0
        for cid, live in self._live.items():
            if cid in stored:
                live.status = stored[cid]
            status = live.effective(stored.get(cid))
            health = CustomerHealth.PENDING if status is None else status.health
            counts[health.value] += 1
            stale += bool(status is not None and status.stale())
        prices = self._fetches.as_dict()
        failing = counts["error"] + counts["reauthorization_required"]
        usage_failing = 0
        if any(c.household is not None for c in self._customers.values()):
            with contextlib.suppress(StoreError):  # the database block says so
                usage_failing = self.store.usage_failing()
        ok = failing == 0 and database["ok"] and prices["ok"] and usage_failing == 0
        return {
            "status": "ok" if ok else "degraded",
            "customers": len(self._live),
            "health": counts,
            "stale_plans": stale,
            "database": database,
            "price_fetches": prices,
            "usage_fetches": {"ok": usage_failing == 0, "failing_customers": usage_failing},
        }

    def setpoint(self, customer_id: str, *, at: datetime | None = None) -> dict[str, Any]:
        """The schedule row of the latest plan that covers ``at`` (default: now)."""
        doc = self.plan_document(customer_id, now=at)
        moment = require_aware(at if at is not None else self.clock.now())
        row = row_at(doc["plan"], moment)
        if row is None:
            raise PlannerError(f"the latest plan of customer {customer_id} does not cover now")
        return {
            "customer_id": customer_id,
            "at": moment.isoformat(),
            "plan_id": doc["plan_id"],
            "stale": doc["stale"],
            "age_seconds": doc["age_seconds"],
            "shortfalls": doc["shortfalls"],
            "setpoint": row,
        }

    def publish_setpoints(self, now: datetime | None = None) -> None:
        """Send the current slot of every customer's plan to the sinks."""
        moment = require_aware(now if now is not None else self.clock.now())
        for cid in self._customers:
            try:
                payload = self.setpoint(cid, at=moment)
            except PlannerError:
                continue
            self._emit(PlanEvent(EventTopic.SETPOINT, cid, moment, payload))

    def _emit(self, event: PlanEvent) -> None:
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception as exc:  # a failing sink never stops planning
                logger.warning(
                    "sink %s failed for customer %s (%s): %s",
                    getattr(sink, "name", type(sink).__name__),
                    event.customer_id,
                    event.topic.value,
                    _safe_message(exc),
                )

    # one customer ------------------------------------------------------------------------

    def _stored_status(self, cid: str) -> CustomerStatus | None:
        """The stored status merged with what this process saw (memory if unreadable)."""
        return self._read_status(cid).status

    def _read_status(self, cid: str) -> _Seen:
        live = self._live[cid]
        try:
            stored = self.store.status(cid)
        except StoreError:
            return _Seen(live.effective(None), False, live.ok_seq, live.failed_seq)
        if stored is not None:
            live.status = stored
        status = live.effective(stored)
        exact = stored is not None and status is stored
        return _Seen(status, exact, live.ok_seq, live.failed_seq)

    def _known_after(
        self, cid: str, seen: _Seen, created: StoredPlan | None
    ) -> CustomerStatus | None:
        """The status a read of the store would give now, when this process knows it.

        That is when the turn began with the status as stored and since then at most a
        success and a new plan were written, both by this process under the customer's
        lock: the stored row is the one read with those writes applied. ``None`` (read
        it) after a failure or when the turn began from memory.
        """
        live = self._live[cid]
        after = seen.status
        if after is None or not seen.exact or live.failed_seq != seen.failed_seq:
            return None
        if live.ok_seq != seen.ok_seq:  # record_success wrote these fields
            if live.ok_at is None:
                return None
            after = dataclasses.replace(
                after,
                health=CustomerHealth.OK,
                last_success_at=live.ok_at,
                failures=0,
                error_kind=None,
                error=None,
            )
        if created is not None:  # a row inserted now: the customer's newest plan
            after = dataclasses.replace(
                after, latest_plan_id=created.id, latest_plan_at=created.created_at
            )
        live.status = after
        return live.effective(after)

    def _record_success(self, cid: str, now: datetime, attempt: str) -> None:
        self.store.record_success(cid, now=now, attempt_key=attempt)
        self._live[cid].succeeded(now)

    def _record_failure(
        self,
        cid: str,
        now: datetime,
        *,
        kind: str,
        message: str,
        health: CustomerHealth = CustomerHealth.ERROR,
        attempt: str | None = None,
    ) -> None:
        self._live[cid].failed(now, kind, message, health)  # first: the store may be broken
        self.store.record_failure(
            cid, now=now, kind=kind, message=message, health=health, attempt_key=attempt
        )

    def _run_customer(self, cid: str, now: datetime, *, fetch_prices: bool) -> CustomerOutcome:
        with self._locks[cid]:
            self._refresh_usage(cid, now)
            seen = self._read_status(cid)
            before = seen.status
            created: StoredPlan | None = None
            try:
                step = self._decide(cid, now, fetch_prices=fetch_prices, before=before)
                if isinstance(step, CustomerOutcome):
                    outcome = step
                else:
                    solved = solve(step.call, catch=False)
                    outcome, created = self._store_result(step, now, solved)
            except Exception as exc:  # one customer never stops the others
                outcome = self._failed(cid, now, exc)
            self._announce(cid, now, before, created, seen)
            return outcome

    def _refresh_usage(self, cid: str, now: datetime) -> None:
        """The daily usage refresh of a household customer; its failure never stops planning."""
        customer = self._customers[cid]
        planning = customer.household
        if planning is None or self._usage is None:
            return
        try:
            if usage_due(self.store, cid, now, planning.timezone, self._usage_settings):
                refresh_usage(customer, planning, self._usage, now, self._usage_settings)
        except Exception as exc:  # e.g. the store: planning goes on on the last forecast
            logger.warning("customer %s: usage refresh failed: %s", cid, _safe_message(exc))

    def _failed(self, cid: str, now: datetime, exc: BaseException) -> CustomerOutcome:
        kind, health = _error_kind(exc)
        message = _safe_message(exc)
        if isinstance(exc, WattplanError):
            logger.warning("customer %s: %s: %s", cid, kind, message)
        else:
            logger.error("customer %s: unexpected failure", cid, exc_info=exc)
        return self._failure_outcome(cid, now, kind, message, health)

    def _failure_outcome(
        self, cid: str, now: datetime, kind: str, message: str, health: CustomerHealth
    ) -> CustomerOutcome:
        try:
            self._record_failure(cid, now, kind=kind, message=message, health=health)
        except PlannerError as again:
            logger.warning(
                "customer %s: the failure is kept in memory only: %s",
                cid,
                _safe_message(again),
            )
        return CustomerOutcome(cid, Outcome.FAILED, error_kind=kind)

    def _announce(
        self,
        cid: str,
        now: datetime,
        before: CustomerStatus | None,
        created: StoredPlan | None,
        seen: _Seen | None = None,
    ) -> None:
        after = self._known_after(cid, seen, created) if seen is not None else None
        if after is None:
            after = self._stored_status(cid)
        if created is not None:
            meta = after.as_dict(now) if after is not None else {}
            self._emit(
                PlanEvent(EventTopic.PLAN_CREATED, cid, now, plan_envelope(created, meta, now))
            )
        if after is not None and (before is None or before.health != after.health):
            self._emit(PlanEvent(EventTopic.CUSTOMER_STATUS, cid, now, after.as_dict(now)))

    # a pass on an executor -----------------------------------------------------------------

    def _run_pipeline(
        self, ids: list[str], moment: datetime, *, fetch_prices: bool
    ) -> list[CustomerOutcome]:
        """Fetch and decide on threads, solve on the executor, store as results arrive.

        Each customer's lock is held from deciding to storing. A call whose worker was
        lost is submitted again (``max_tries``); any other failure is that customer's.
        """
        executor = self._executor
        assert executor is not None
        events: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
        done: dict[str, CustomerOutcome] = {}

        def prepare(cid: str) -> CustomerOutcome | _Pending:
            if self._stopping.is_set():
                return CustomerOutcome(cid, Outcome.SKIPPED, "shutting down")
            lock = self._locks[cid]
            lock.acquire()
            keep = False
            try:
                self._refresh_usage(cid, moment)
                seen = self._read_status(cid)
                before = seen.status
                try:
                    step = self._decide(cid, moment, fetch_prices=fetch_prices, before=before)
                except Exception as exc:
                    outcome = self._failed(cid, moment, exc)
                    self._announce(cid, moment, before, None, seen)
                    return outcome
                if isinstance(step, CustomerOutcome):
                    self._announce(cid, moment, before, None, seen)
                    return step
                step.seen = seen
                keep = True  # released by finish()
                return step
            finally:
                if not keep:
                    lock.release()

        def finish(pending: _Pending, result: SolvedPlan | BaseException) -> CustomerOutcome:
            cid = pending.cid
            created: StoredPlan | None = None
            try:
                try:
                    if isinstance(result, BaseException):
                        raise result
                    outcome, created = self._store_result(pending, moment, result)
                except Exception as exc:
                    outcome = self._failed(cid, moment, exc)
                self._announce(cid, moment, pending.before, created, pending.seen)
                return outcome
            finally:
                self._locks[cid].release()

        def submit(pending: _Pending) -> None:
            pending.tries += 1
            try:
                future = executor.submit(pending.call)
            except Exception as exc:
                events.put(("solved", pending.cid, (pending, exc)))
                return
            future.add_done_callback(lambda f: events.put(("solved", pending.cid, (pending, f))))

        # Customers enter the pipeline as others leave it: a bounded number of calls,
        # with their prices and previous plans, are in memory at once, however many
        # customers the pass has.
        limit = self._max_in_flight or max(
            4 * self._workers, 2 * int(getattr(executor, "workers", 1) or 1) + self._workers
        )
        waiting = iter(ids)

        with ThreadPoolExecutor(self._workers, thread_name_prefix="wattplan-pass") as io:

            def admit() -> None:
                cid = next(waiting, None)
                if cid is not None:
                    io.submit(prepare, cid).add_done_callback(
                        partial(_put, events, "prepared", cid)
                    )

            for _ in range(min(limit, len(ids))):
                admit()
            while len(done) < len(ids):
                kind, cid, payload = events.get()
                if kind == "prepared":
                    step = payload.result()
                    if isinstance(step, CustomerOutcome):
                        done[cid] = step
                        admit()
                    else:
                        submit(step)
                elif kind == "solved":
                    pending, future = payload
                    result: SolvedPlan | BaseException
                    if isinstance(future, BaseException):
                        result = future
                    else:
                        try:
                            result = future.result()
                        except BaseException as exc:
                            result = exc
                    if isinstance(result, BaseException) and executor.lost(result):
                        if pending.tries < self._max_tries and not self._stopping.is_set():
                            logger.warning(
                                "customer %s: planning worker lost (%s); submitting again",
                                cid,
                                type(result).__name__,
                            )
                            submit(pending)
                            continue
                        result = PlannerError(
                            f"the planning call for customer {cid} lost its worker "
                            f"{pending.tries} times ({type(result).__name__})"
                        )
                    io.submit(finish, pending, result).add_done_callback(
                        partial(_put, events, "finished", cid)
                    )
                else:
                    done[cid] = payload.result()
                    admit()
        return [done[cid] for cid in ids]

    def price_fetch_health(self) -> dict[str, Any]:
        """How price fetches went: last success and error, failures in a row, hanging calls."""
        return self._fetches.as_dict()

    def _fetch(self, customer: Customer, now: datetime) -> pd.Series:
        token = self._fetches.started()
        try:
            prices = self._fetch_days(customer, now)
        except (PricesNotPublishedError, AuthError):
            # the API answered; a missing day or one customer's grant says nothing about it
            self._fetches.forget(token)
            raise
        except Exception as exc:
            kind, _ = _error_kind(exc)
            self._fetches.finished(token, self.clock.now(), f"{kind}: {_safe_message(exc)}")
            raise
        self._fetches.finished(token, self.clock.now(), None)
        return prices

    def _fetch_days(self, customer: Customer, now: datetime) -> pd.Series:
        today = now.astimezone(_timezone(customer.scenario)).date()
        try:
            self._fetch_gate.wait()
            return self._prices.fetch_prices(customer, start=today, end=today + timedelta(days=1))
        except PricesNotPublishedError:
            self._fetch_gate.wait()
            return self._prices.fetch_prices(customer, start=today, end=today)

    def _decide(
        self, cid: str, now: datetime, *, fetch_prices: bool, before: CustomerStatus | None
    ) -> CustomerOutcome | _Pending:
        """Fetch and decide; an outcome when nothing is to be planned, else the pending call."""
        customer = self._customers[cid]
        latest = self.store.latest_plan(cid)
        self._live[cid].remember_plan(latest)
        state = self.store.device_state(cid)
        known = latest.prices if latest is not None else None  # parsed once
        if (
            latest is not None
            and known is not None
            and (not fetch_prices or self._prices_complete(customer, known, before, now))
        ):
            # the stored curve is all there is (no fetch asked, or nothing new can be out
            # yet): no API call, and the decision is known without comparing curves
            fetch_prices = False
            prices = known
            decision = PriceDecision(PriceChange.UNCHANGED, latest.prices_fingerprint)
        else:
            prices = _clean_prices(self._fetch(customer, now))
            decision = decide_prices(known, prices)
        reasons: list[str] = []
        if latest is None:
            reasons.append("initial")
        elif decision.change is not PriceChange.UNCHANGED:
            reasons.append(decision.change.value)
        if latest is not None and significant_change(
            latest.device_state, state.devices, self._deadband
        ):
            reasons.append("device_state")
        attempt = f"{decision.fingerprint}|{state_fingerprint(state.devices)}"
        if not reasons:
            if fetch_prices:  # only a successful fetch proves the API is back
                self._record_success(cid, now, attempt)
            return CustomerOutcome(cid, Outcome.UNCHANGED, "unchanged")
        if (
            before is not None
            and before.health is CustomerHealth.ERROR
            and before.error_kind in ("invalid_scenario", "infeasible")
            and self.store.attempt_key(cid) == attempt
        ):
            return CustomerOutcome(cid, Outcome.SKIPPED, "same inputs failed before")

        start, end, window = self._window(customer, now, prices)
        call = PlanningCall(
            customer_id=cid,
            optimize=self._optimize,
            # a household's scenario is composed here: it reads the forecasts from the store
            scenario=(
                customer.household.scenario(start, end, prices=window)
                if customer.household is not None
                else customer.scenario
            ),
            factory=None if customer.household is not None else customer.scenario_factory,
            start=start,
            end=end,
            now=now,
            device_state=state.devices,
            prices=window,
            kwargs=self._stability_kwargs(latest),
        )
        return _Pending(
            cid=cid,
            call=call,
            before=before,
            reasons=reasons,
            prices=prices,
            decision=decision,
            devices=state.devices,
            attempt=attempt,
            fetched=fetch_prices,
        )

    def _store_result(
        self, pending: _Pending, now: datetime, solved: SolvedPlan
    ) -> tuple[CustomerOutcome, StoredPlan | None]:
        """Store a solved plan (or record why there is none); the plan if a new one was stored."""
        cid, call = pending.cid, pending.call
        if solved.failed:
            kind = solved.error_kind or "internal_error"
            message = solved.error or "the planning call failed"
            logger.warning("customer %s: %s: %s", cid, kind, message)
            health = CustomerHealth(solved.health or CustomerHealth.ERROR.value)
            return self._failure_outcome(cid, now, kind, message, health), None
        status = solved.status
        if status in BAD_STATUSES or solved.document is None:
            message = f"the optimizer returned a plan with status {status}"
            self._record_failure(
                cid, now, kind="infeasible", message=message, attempt=pending.attempt
            )
            logger.warning("customer %s: %s", cid, message)
            outcome = CustomerOutcome(
                cid, Outcome.FAILED, error_kind="infeasible", optimize_s=solved.optimize_s
            )
            return outcome, None
        stored, created = self.store.save_plan(
            cid,
            now=now,
            horizon_start=call.start,
            horizon_end=call.end,
            reason="+".join(pending.reasons),
            status=status,
            cost_eur=solved.cost_eur,
            baseline_cost_eur=solved.baseline_cost_eur,
            savings_eur=solved.savings_eur,
            prices=pending.prices,
            prices_fingerprint=pending.decision.fingerprint,
            device_state=pending.devices,
            document=solved.document,
        )
        self._live[cid].remember_plan(stored)
        before = pending.before
        if pending.fetched or before is None or before.error_kind not in _FETCH_ERRORS:
            self._record_success(cid, now, pending.attempt)
        logger.info(
            "customer %s: plan %d (%s), %s to %s",
            cid,
            stored.id,
            stored.reason,
            call.start.isoformat(),
            call.end.isoformat(),
        )
        outcome = CustomerOutcome(
            cid, Outcome.PLANNED, stored.reason, stored.id, optimize_s=solved.optimize_s
        )
        return outcome, (stored if created else None)

    def _prices_complete(
        self,
        customer: Customer,
        prices: pd.Series,
        before: CustomerStatus | None,
        now: datetime,
    ) -> bool:
        """The latest plan's prices reach the end of tomorrow and were fetched recently."""
        if (
            before is None
            or before.health is not CustomerHealth.OK
            or before.last_success_at is None
            or self._price_recheck <= timedelta(0)
            or now - before.last_success_at >= self._price_recheck
        ):
            return False
        tz = _timezone(customer.scenario)
        tomorrow_end = datetime.combine(
            now.astimezone(tz).date() + timedelta(days=2), datetime.min.time(), tzinfo=tz
        )
        index = pd.DatetimeIndex(prices.index)
        if len(index) == 0:
            return False
        step = _price_step(index, _resolution(customer.scenario))
        ahead = prices[index >= pd.Timestamp(floor_to_slot(now, resolution=step))]
        if len(ahead) == 0 or bool(ahead.isna().any()):
            return False
        last_end = pd.DatetimeIndex(ahead.index)[-1] + step
        slots = (last_end - pd.DatetimeIndex(ahead.index)[0]) / step
        return bool(last_end >= pd.Timestamp(tomorrow_end) and len(ahead) == round(slots))

    def _stability_kwargs(self, latest: StoredPlan | None) -> dict[str, Any]:
        """``previous_plan`` (the latest stored plan's document) and ``stability``."""
        if not self._pass_previous or latest is None:
            return {}
        kwargs: dict[str, Any] = {"previous_plan": latest.document}
        if self._stability is not None:
            kwargs["stability"] = self._stability
        return kwargs

    def _window(
        self, customer: Customer, now: datetime, prices: pd.Series
    ) -> tuple[datetime, datetime, pd.Series]:
        resolution = _resolution(customer.scenario)
        start = floor_to_slot(now, resolution=resolution)
        index = pd.DatetimeIndex(prices.index)
        step = _price_step(index, resolution)
        # the price slot that contains ``start`` and everything after it
        first = pd.Timestamp(start) - step + pd.Timedelta(seconds=1)
        ahead = prices[index >= first]
        # the horizon ends at the first missing amount (or hole) after ``start``
        end_ts = _covered_until(pd.Timestamp(start), pd.DatetimeIndex(ahead.index), ahead, step)
        limit = pd.Timestamp(start + self._max_horizon)
        end_ts = min(end_ts, limit)
        end = floor_to_slot(end_ts.to_pydatetime(), resolution=resolution)
        if end <= start:
            raise PricesNotPublishedError(
                f"no prices cover {start.isoformat()} for customer {customer.id}"
            )
        if customer.scenario_factory is None and customer.household is None:
            # a fixed scenario carries data (load, PV, weather, sessions) for its own
            # window only: plan inside it
            own_start = require_aware(customer.scenario.start, "scenario.start")
            own_end = require_aware(customer.scenario.end, "scenario.end")
            start, end = max(start, own_start), min(end, own_end)
            if end <= start:
                raise ScenarioError(
                    key="end",
                    reason=(
                        f"the scenario of customer {customer.id} ends at {own_end.isoformat()}; "
                        "nothing left to plan (give a scenario factory for rolling use)"
                    ),
                )
        window = ahead[pd.DatetimeIndex(ahead.index) < pd.Timestamp(end)]
        return start, end, window


class _RateGate:
    """At most ``per_second`` passages a second, spread evenly, across threads."""

    def __init__(
        self,
        per_second: float | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 0.0 if not per_second else 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()
        self._monotonic, self._sleep = monotonic, sleep

    def wait(self) -> None:
        if self._interval <= 0:
            return
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def _put(events: queue.SimpleQueue[tuple[str, str, Any]], kind: str, cid: str, f: Any) -> None:
    events.put((kind, cid, f))


def _moment(value: Any) -> datetime | None:
    """A stored device-state time (ISO 8601 text after the JSON round trip) in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return value.astimezone(UTC)


def _needed_kwh(fields: Mapping[str, Any]) -> float | None:
    target, soc = fields.get("target_soc_kwh"), fields.get("soc_kwh")
    if isinstance(target, int | float) and isinstance(soc, int | float):
        return max(0.0, float(target) - float(soc))
    energy = fields.get("energy_kwh")
    return float(energy) if isinstance(energy, int | float) else None


def _covered_until(
    start: pd.Timestamp, index: pd.DatetimeIndex, prices: pd.Series, step: pd.Timedelta
) -> pd.Timestamp:
    """The end of the run of slots from ``start`` on that have amounts and no hole between.

    Walking the slots in order: a slot that begins after the end so far, or has no amount,
    ends the run; otherwise the run reaches to the slot's start plus ``step``.
    """
    if len(index) == 0:
        return start
    starts = index.tz_convert("UTC").tz_convert(None).to_numpy().astype("datetime64[ns]")
    width = step.to_timedelta64().astype("timedelta64[ns]")
    ends = starts + width
    first = start.tz_convert("UTC").tz_localize(None).to_datetime64().astype("datetime64[ns]")
    # the end of the run before each slot, if the run got that far
    before = np.concatenate(([first], ends[:-1]))
    stops = (starts > before) | np.isnan(prices.to_numpy(dtype=float))
    reached = before[int(np.argmax(stops))] if stops.any() else ends[-1]
    out = pd.Timestamp(reached).tz_localize("UTC")
    return out.tz_convert(start.tz) if start.tz is not None else out


def _price_step(index: pd.DatetimeIndex, resolution: timedelta) -> pd.Timedelta:
    if len(index) > 1:
        return pd.Timedelta(pd.Series(index[1:] - index[:-1]).min())
    return pd.Timedelta(resolution)


def _clean_prices(prices: pd.Series) -> pd.Series:
    index = prices.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise PlannerError("the price source returned prices without a tz-aware index")
    out = pd.Series(
        pd.to_numeric(prices, errors="coerce").to_numpy(dtype=float),
        index=index.tz_convert("UTC"),
        name="price_ct_per_kwh",
    )
    return out[~out.index.duplicated(keep="last")].sort_index()


def plan_envelope(plan: StoredPlan, status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The JSON that the HTTP API, the webhook and MQTT carry for a plan.

    ``plan_status`` and ``shortfalls`` repeat the plan's own (``optimal`` or
    ``feasible_with_shortfall``; what cannot be met, by how much), so that a target the
    plan cannot reach is visible without reading the schedule.
    """
    return {
        "customer_id": plan.customer_id,
        "plan_id": plan.id,
        "made_at": plan.created_at.isoformat(),
        "reason": plan.reason,
        "horizon_start": plan.horizon_start.isoformat(),
        "horizon_end": plan.horizon_end.isoformat(),
        "prices_fingerprint": plan.prices_fingerprint,
        "stale": bool(status.get("stale", False)),
        "age_seconds": (now - plan.created_at).total_seconds(),
        "health": status.get("health"),
        "error_kind": status.get("error_kind"),
        "plan_status": plan.document.get("status", plan.status),
        "shortfalls": plan.document.get("shortfalls") or [],
        "plan": plan.document,
    }


def row_at(document: Mapping[str, Any], moment: datetime) -> dict[str, Any] | None:
    """The schedule row of a plan document (DESIGN §4) whose slot contains ``moment``."""
    rows = document.get("schedule") or []
    minutes = document.get("resolution_minutes") or 15
    step = timedelta(minutes=float(minutes))
    for row in rows:
        try:
            start = datetime.fromisoformat(str(row["start"]))
        except (KeyError, ValueError):
            continue
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if start <= moment < start + step:
            return dict(row)
    return None
