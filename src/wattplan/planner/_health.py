"""What this planner process saw, kept in memory beside the store.

The store records each customer's health in the database. When that database is the thing
that fails (full, read-only, unreachable), it cannot record its own failure, and health read
back from it says "ok" while every pass fails. So the planner also remembers, per customer,
the outcome of its latest pass and the latest plan it stored or read, and, for the whole
process, how price fetches went. Health answers merge the two: the newer word wins.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wattplan.planner.store import CustomerHealth, CustomerStatus, StoredPlan, dumps

__all__ = ["FetchHealth", "LiveCustomer"]

_ORDER = itertools.count(1)  # orders outcomes that share a (fake or coarse) clock reading

# A price fetch still running after this long counts as stalled (degraded health) before
# its deadline (``RetryPolicy.max_call_s``) turns it into a recorded failure.
FETCH_STALLED_S = 20.0


@dataclass(slots=True)
class LiveCustomer:
    """One customer as this process saw it."""

    customer_id: str
    # the newest plan stored or read, its document kept zlib-compressed JSON (a parsed
    # 48-hour plan is ~200 KB of dicts, its JSON compresses to ~6 KB: 10,000 customers
    # in one process would otherwise hold 2 GB for a fallback that is rarely read)
    _kept: StoredPlan | None = None
    _document_z: bytes = b""
    status: CustomerStatus | None = None  # the latest status read from the store
    ok_at: datetime | None = None
    failed_at: datetime | None = None
    health: CustomerHealth = CustomerHealth.ERROR
    kind: str | None = None
    message: str | None = None
    failures: int = 0  # consecutive, in this process
    ok_seq: int = 0
    failed_seq: int = 0

    def remember_plan(self, plan: StoredPlan | None) -> None:
        if plan is None or (self._kept is not None and plan.id < self._kept.id):
            return
        if self._kept is not None and plan.id == self._kept.id:
            return  # the same plan read again
        text = plan.document_json if plan.document_json is not None else dumps(plan.document)
        self._document_z = zlib.compress(text.encode(), 1)
        self._kept = dataclasses.replace(plan, document={}, document_json=None)

    @property
    def plan(self) -> StoredPlan | None:
        """The newest plan stored or read (its document decompressed on each access)."""
        if self._kept is None:
            return None
        document = json.loads(zlib.decompress(self._document_z))
        return dataclasses.replace(self._kept, document=document)

    def succeeded(self, now: datetime) -> None:
        self.ok_at = now
        self.ok_seq = next(_ORDER)
        self.failures = 0

    def failed(self, now: datetime, kind: str, message: str, health: CustomerHealth) -> None:
        self.failed_at = now
        self.failed_seq = next(_ORDER)
        self.kind, self.message, self.health = kind, message, health
        self.failures += 1

    def effective(self, stored: CustomerStatus | None) -> CustomerStatus | None:
        """``stored`` (or the last one read), unless this process saw a newer failure."""
        base = stored if stored is not None else self.status
        if self.failed_seq <= self.ok_seq:
            return base
        assert self.failed_at is not None
        if (
            base is not None
            and base.last_failure_at is not None
            and base.last_failure_at >= self.failed_at
            and base.error_kind == self.kind
        ):
            return base  # the store has this failure (or a newer one)
        if base is None:
            base = CustomerStatus(
                customer_id=self.customer_id,
                health=CustomerHealth.PENDING,
                last_success_at=None,
                last_failure_at=None,
                failures=0,
                error_kind=None,
                error=None,
                latest_plan_id=None,
                latest_plan_at=None,
            )
        plan_id, plan_at = base.latest_plan_id, base.latest_plan_at
        kept = self._kept
        if kept is not None and (plan_id is None or kept.id > plan_id):
            plan_id, plan_at = kept.id, kept.created_at
        return dataclasses.replace(
            base,
            health=self.health,
            last_failure_at=self.failed_at,
            failures=max(base.failures, self.failures),
            error_kind=self.kind,
            error=self.message,
            latest_plan_id=plan_id,
            latest_plan_at=plan_at,
        )


class FetchHealth:
    """How price fetches went in this process (all customers together)."""

    def __init__(self, stalled_after_s: float = FETCH_STALLED_S) -> None:
        self._stalled_after_s = stalled_after_s
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._in_flight: dict[int, float] = {}
        self.last_ok_at: datetime | None = None
        self.last_error_at: datetime | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0

    def started(self) -> int:
        with self._lock:
            token = next(self._ids)
            self._in_flight[token] = time.monotonic()
            return token

    def finished(self, token: int, now: datetime, error: str | None) -> None:
        """``error`` is None for a success; a kind and message for an API failure."""
        with self._lock:
            self._in_flight.pop(token, None)
            if error is None:
                self.last_ok_at = now
                self.consecutive_failures = 0
            else:
                self.last_error_at = now
                self.last_error = error
                self.consecutive_failures += 1

    def forget(self, token: int) -> None:
        """The fetch ended in a way that says nothing about the API (e.g. not published)."""
        with self._lock:
            self._in_flight.pop(token, None)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            ages = [now - t for t in self._in_flight.values()]
            stalled = sum(1 for a in ages if a > self._stalled_after_s)
            return {
                "ok": self.consecutive_failures == 0 and stalled == 0,
                "last_ok_at": None if self.last_ok_at is None else self.last_ok_at.isoformat(),
                "last_error_at": (
                    None if self.last_error_at is None else self.last_error_at.isoformat()
                ),
                "last_error": self.last_error,
                "consecutive_failures": self.consecutive_failures,
                "in_flight": len(ages),
                "stalled": stalled,
                "longest_in_flight_s": round(max(ages), 1) if ages else None,
            }
