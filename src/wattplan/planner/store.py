"""The plan store: customers, plans with their history and prices, device state.

SQLAlchemy 2 (Core) over SQLite by default and PostgreSQL by URL. Every table name takes
a prefix (and optionally a schema), so that several planners or parallel test runs can
share one database without colliding.

Failures are typed: a database that is unreachable, full or read-only raises
:class:`~wattplan.exceptions.StoreError`, and the store counts its failed reads and writes
in memory (:meth:`PlanStore.health`), because a broken database cannot record its own
breakage.

Restart safety: a plan row is keyed by its inputs (customer, horizon start, price
fingerprint, device-state fingerprint). Saving the same inputs twice, as a restarted
process does when it was killed between the commit and its bookkeeping, returns the row
that is already there instead of adding a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from wattplan import _db, migrations
from wattplan.exceptions import ConflictError, PlannerError, StoreError
from wattplan.planner._prices import utc_isoformats

__all__ = [
    "CustomerHealth",
    "CustomerStatus",
    "DeviceState",
    "PlanStore",
    "StoredPlan",
    "UsageMerge",
    "UsageStatus",
]

logger = logging.getLogger(__name__)

# A compare-and-swap of one customer's device state is retried this often (with a short
# jittered backoff) before the caller gets a ConflictError to retry later.
_STATE_CAS_ATTEMPTS = 12


class CustomerHealth(StrEnum):
    """How a customer's planning is doing."""

    PENDING = "pending"  # no attempt yet
    OK = "ok"
    ERROR = "error"  # the last attempt failed (API, solver); last good plan kept, stale
    REAUTHORIZATION_REQUIRED = "reauthorization_required"


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan as stored: the plan document (DESIGN §4) plus how and when it was made."""

    id: int
    customer_id: str
    created_at: datetime
    horizon_start: datetime
    horizon_end: datetime
    reason: str
    status: str
    cost_eur: float | None
    baseline_cost_eur: float | None
    savings_eur: float | None
    prices_fingerprint: str
    state_fingerprint: str
    document: dict[str, Any]
    prices_json: str = field(repr=False)
    device_state: dict[str, dict[str, Any]] = field(repr=False)
    # the document as stored (JSON text), when at hand: kept copies of the plan compress
    # it instead of serialising the document again
    document_json: str | None = field(default=None, repr=False, compare=False)

    @property
    def prices(self) -> pd.Series:
        """The price curve (ct/kWh, UTC index) this plan was made on."""
        return _prices_from_json(self.prices_json)


@dataclass(frozen=True, slots=True)
class UsageStatus:
    """How the customer's daily usage refresh is doing (``usage`` in ``status``).

    ``ok`` is false while the latest fetch failed: the planner then plans on the last good
    forecast (``forecast_made_at``) and tries again at its next pass.
    """

    customer_id: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failures: int
    error: str | None
    forecast_made_at: datetime | None
    history_until: datetime | None

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "last_success_at": _iso(self.last_success_at),
            "last_failure_at": _iso(self.last_failure_at),
            "consecutive_failures": self.failures,
            "error": self.error,
            "forecast_made_at": _iso(self.forecast_made_at),
            "history_until": _iso(self.history_until),
        }


@dataclass(frozen=True, slots=True)
class UsageMerge:
    """What merging fetched usage into the stored history changed."""

    inserted: int
    corrected: int  # stored values replaced (a final value over a preliminary one)
    finalized: int  # preliminary rows that became final, value unchanged
    kept_final: int  # preliminary values fetched for rows already final (ignored)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The latest device state of one customer (``{device: {field: value}}``)."""

    customer_id: str
    version: int
    devices: dict[str, dict[str, Any]]
    updated_at: datetime | None

    @property
    def fingerprint(self) -> str:
        return state_fingerprint(self.devices)


@dataclass(frozen=True, slots=True)
class CustomerStatus:
    customer_id: str
    health: CustomerHealth
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failures: int
    error_kind: str | None
    error: str | None
    latest_plan_id: int | None
    latest_plan_at: datetime | None

    def stale(self) -> bool:
        """The latest plan is kept although the latest attempt failed."""
        return self.health is not CustomerHealth.OK and self.latest_plan_id is not None

    def as_dict(self, now: datetime) -> dict[str, Any]:
        age = None if self.latest_plan_at is None else (now - self.latest_plan_at).total_seconds()
        return {
            "customer_id": self.customer_id,
            "health": self.health.value,
            "stale": self.stale(),
            "plan_age_seconds": age,
            "last_success_at": _iso(self.last_success_at),
            "last_failure_at": _iso(self.last_failure_at),
            "consecutive_failures": self.failures,
            "error_kind": self.error_kind,
            "error": self.error,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return str(value)


def dumps(value: Any) -> str:
    """JSON with NaN/inf as null and datetimes as ISO 8601 (what the store and sinks send)."""
    try:
        # the fast path: the C encoder, for the common document without NaN or infinity
        # (a plan document is walked in Python only when it has them)
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_default)
    except (ValueError, TypeError):
        return json.dumps(_json_safe(value), separators=(",", ":"), allow_nan=False, default=str)


def state_fingerprint(devices: Mapping[str, Mapping[str, Any]]) -> str:
    return hashlib.sha256(dumps(devices).encode()).hexdigest()[:32]


def _prices_to_json(prices: pd.Series) -> str:
    starts = utc_isoformats(pd.DatetimeIndex(prices.index))
    values = prices.to_numpy()
    if values.dtype.kind == "f":
        amounts = [None if math.isnan(v) else v for v in values.tolist()]
    else:
        amounts = [None if pd.isna(v) else float(v) for v in values]
    rows = [[ts, v] for ts, v in zip(starts, amounts, strict=True)]
    return json.dumps(rows, separators=(",", ":"))


def _json_native(value: Any) -> bool:
    """Whether ``json.loads(dumps(value)) == value``: dicts with text keys, lists, text,
    finite numbers, booleans and ``None`` only (no tuples, datetimes or NaN)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is list:
        return all(_json_native(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_native(v) for k, v in value.items())
    return False


def _is_utc(moment: datetime) -> bool:
    offset = moment.utcoffset()
    return offset is not None and not offset


def _prices_from_json(text: str) -> pd.Series:
    rows = json.loads(text)
    if rows:  # one vectorised parse, not a Timestamp per row (ISO 8601: no format guessing)
        starts = pd.to_datetime([r[0] for r in rows], utc=True, format="ISO8601")
        index = pd.DatetimeIndex(starts, name="start")
    else:
        index = pd.DatetimeIndex([], tz="UTC", name="start")
    values = [math.nan if r[1] is None else float(r[1]) for r in rows]
    return pd.Series(values, index=index, name="price_ct_per_kwh", dtype=float)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    """A query or row time in UTC: SQLite keeps the wall-clock digits and drops the offset."""
    if moment.tzinfo is None:
        raise PlannerError("times given to the plan store must be tz-aware")
    return moment.astimezone(UTC)


def _must(moment: datetime | None) -> datetime:
    value = _aware(moment)
    assert value is not None
    return value


def _tables(prefix: str, schema: str | None) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData(schema=schema)
    ts = sa.DateTime(timezone=True)
    customers = sa.Table(
        f"{prefix}customers",
        md,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("health", sa.String(40), nullable=False),
        sa.Column("last_success_at", ts),
        sa.Column("last_failure_at", ts),
        sa.Column("failures", sa.Integer, nullable=False, default=0),
        sa.Column("error_kind", sa.String(80)),
        sa.Column("error", sa.Text),
        sa.Column("attempt_key", sa.String(200)),
    )
    plans = sa.Table(
        f"{prefix}plans",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(200), nullable=False, index=True),
        sa.Column("inputs_key", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("horizon_start", ts, nullable=False),
        sa.Column("horizon_end", ts, nullable=False),
        sa.Column("reason", sa.String(80), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("cost_eur", sa.Float),
        sa.Column("baseline_cost_eur", sa.Float),
        sa.Column("savings_eur", sa.Float),
        sa.Column("prices_fingerprint", sa.String(64), nullable=False),
        sa.Column("state_fingerprint", sa.String(64), nullable=False),
        sa.Column("prices", sa.Text, nullable=False),
        sa.Column("device_state", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.UniqueConstraint("customer_id", "inputs_key", name=f"{prefix}plans_inputs_uq"),
    )
    states = sa.Table(
        f"{prefix}device_state",
        md,
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("devices", sa.Text, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )
    usage = sa.Table(
        f"{prefix}usage",
        md,
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("start", ts, primary_key=True),
        sa.Column("kwh", sa.Float, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("controlled_kwh", sa.Float, nullable=False),
        sa.Column("fetched_at", ts, nullable=False),
    )
    forecast = sa.Table(
        f"{prefix}forecast",
        md,
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("start", ts, primary_key=True),
        sa.Column("kwh_p10", sa.Float, nullable=False),
        sa.Column("kwh_p50", sa.Float, nullable=False),
        sa.Column("kwh_p90", sa.Float, nullable=False),
        sa.Column("made_at", ts, nullable=False),
        sa.Column("kwh_mean", sa.Float, nullable=True),
    )
    errors = sa.Table(
        f"{prefix}forecast_errors",
        md,
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("mae_kwh", sa.Float, nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("computed_at", ts, nullable=False),
    )
    refresh = sa.Table(
        f"{prefix}usage_refresh",
        md,
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("last_success_at", ts),
        sa.Column("last_failure_at", ts),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("forecast_made_at", ts),
    )
    return md, {
        "customers": customers,
        "plans": plans,
        "states": states,
        "usage": usage,
        "forecast": forecast,
        "forecast_errors": errors,
        "usage_refresh": refresh,
    }


class PlanStore:
    """Plans, device state and customer health in one SQL database.

    Parameters
    ----------
    url:
        SQLAlchemy URL, e.g. ``sqlite:///planner.sqlite3`` or
        ``postgresql+psycopg://user@host:5432/db``. Credentials in the URL never appear in
        ``repr`` or log lines.
    table_prefix, schema:
        Namespace for the tables; ``create_all()`` creates or upgrades them (migrations).
    engine:
        An existing engine to share (e.g. with the token vault) instead of ``url``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        table_prefix: str = "wattplan_",
        schema: str | None = None,
        engine: Engine | None = None,
        create: bool = True,
    ) -> None:
        if engine is None:
            if url is None:
                raise PlannerError("PlanStore needs a database url or an engine")
            engine = _make_engine(url)
        self._engine = engine
        self._prefix, self._schema = table_prefix, schema
        self._metadata, self._t = _tables(table_prefix, schema)
        self._health_lock = threading.Lock()
        self._failing: dict[str, str] = {}  # operation -> its latest error
        self._last_ok_at: datetime | None = None
        self._last_error_at: datetime | None = None
        self._last_error: str | None = None
        # Device-state writers of this process queue here instead of racing each other's
        # compare-and-swap; SQLite takes one writer at a time anyway, so one lock for all.
        self._sqlite = engine.url.get_backend_name() == "sqlite"
        self._state_locks: dict[str, threading.Lock] = {}
        self._state_locks_guard = threading.Lock()
        # SQLite takes one writer at a time, and its busy handler makes the others sleep
        # 1, 2, 5, 10... ms between tries: with several planning threads writing, those
        # sleeps, not the writes, set the pace. This process's writers queue here instead
        # and each starts the moment the one before commits (other processes still meet
        # the busy timeout).
        self._write_lock: threading.RLock | None = threading.RLock() if self._sqlite else None
        if create:
            self.create_all()

    def __repr__(self) -> str:
        return f"PlanStore(url={self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    def create_all(self) -> None:
        """Create or upgrade the tables (schema migrations shipped in ``wattplan.migrations``)."""
        try:
            migrations.upgrade(
                self._engine, store="store", table_prefix=self._prefix, schema=self._schema
            )
        except SQLAlchemyError as exc:
            raise PlannerError(
                f"cannot open the plan store at {_db.shown(self._engine)}: "
                f"{_db.problem(exc, self._engine)}"
            ) from exc

    def has_tables(self) -> bool:
        """True when this database holds the planner's tables (with this prefix)."""
        table = self._t["customers"]
        try:
            return bool(sa.inspect(self._engine).has_table(table.name, schema=table.schema))
        except SQLAlchemyError as exc:
            raise PlannerError(
                f"cannot open the plan store at {_db.shown(self._engine)}: "
                f"{_db.problem(exc, self._engine)}"
            ) from exc

    def drop_all(self) -> None:
        """Drop the tables and their schema version (tests and tear-down only)."""
        self._metadata.drop_all(self._engine)
        migrations.drop_version_table(
            self._engine, store="store", table_prefix=self._prefix, schema=self._schema
        )

    def dispose(self) -> None:
        self._engine.dispose()

    def health(self) -> dict[str, Any]:
        """How the database answered, kept in memory (a broken database cannot say so).

        ``failing`` lists the operations (``read``, ``save_plan``, ``record_success``, ...)
        whose latest attempt failed: on a full disk an update in place may still work
        while every new plan fails, so one success does not clear the others (except a
        stored plan, the largest write, which clears every write).
        """
        with self._health_lock:
            return {
                "ok": not self._failing,
                "failing": sorted(self._failing),
                "last_ok_at": _iso(self._last_ok_at),
                "last_error_at": _iso(self._last_error_at),
                "last_error": self._last_error,
            }

    def _note(self, op: str, error: BaseException | None) -> None:
        now = datetime.now(UTC)
        with self._health_lock:
            if error is None:
                self._last_ok_at = now
                self._failing.pop(op, None)
                if op == "save_plan":  # a new plan stored: every smaller write works too
                    self._failing = {k: v for k, v in self._failing.items() if k == "read"}
            else:
                self._last_error_at = now
                self._last_error = self._failing[op] = f"{op}: {_describe(error)}"

    @contextmanager
    def _tx(self, op: str = "read") -> Iterator[Connection]:
        writer = self._write_lock if op != "read" else None
        with writer or nullcontext():
            try:
                with self._engine.begin() as conn:
                    yield conn
            except IntegrityError:
                self._note(op, None)  # the database answered: a constraint, not an outage
                raise
            except SQLAlchemyError as exc:
                self._note(op, exc)
                raise StoreError(f"plan store failed: {_describe(exc)}") from exc
        self._note(op, None)

    # customers ---------------------------------------------------------------------------

    def ensure_customer(self, customer_id: str, *, now: datetime | None = None) -> None:
        t = self._t["customers"]
        moment = now or datetime.now(UTC)
        with self._tx("ensure_customer") as conn:
            exists = conn.execute(sa.select(t.c.id).where(t.c.id == customer_id)).first()
            if exists is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            t.insert().values(
                                id=customer_id,
                                created_at=moment,
                                health=CustomerHealth.PENDING.value,
                                failures=0,
                            )
                        )
                except IntegrityError:
                    pass  # created concurrently

    def record_success(self, customer_id: str, *, now: datetime, attempt_key: str) -> None:
        t = self._t["customers"]
        with self._tx("record_success") as conn:
            conn.execute(
                t.update()
                .where(t.c.id == customer_id)
                .values(
                    health=CustomerHealth.OK.value,
                    last_success_at=now,
                    failures=0,
                    error_kind=None,
                    error=None,
                    attempt_key=attempt_key,
                )
            )

    def record_failure(
        self,
        customer_id: str,
        *,
        now: datetime,
        kind: str,
        message: str,
        health: CustomerHealth = CustomerHealth.ERROR,
        attempt_key: str | None = None,
    ) -> None:
        """Mark the customer failing; the message must not contain secrets."""
        t = self._t["customers"]
        with self._tx("record_failure") as conn:
            conn.execute(
                t.update()
                .where(t.c.id == customer_id)
                .values(
                    health=health.value,
                    last_failure_at=now,
                    failures=t.c.failures + 1,
                    error_kind=kind,
                    error=message[:500],
                    attempt_key=attempt_key,
                )
            )

    def attempt_key(self, customer_id: str) -> str | None:
        t = self._t["customers"]
        with self._tx() as conn:
            value = conn.execute(sa.select(t.c.attempt_key).where(t.c.id == customer_id)).first()
        return None if value is None else value[0]

    def customer_ids(self) -> list[str]:
        t = self._t["customers"]
        with self._tx() as conn:
            return [r[0] for r in conn.execute(sa.select(t.c.id).order_by(t.c.id))]

    def status(self, customer_id: str) -> CustomerStatus | None:
        statuses = self._statuses(customer_id)
        return statuses[0] if statuses else None

    def statuses(self) -> list[CustomerStatus]:
        return self._statuses(None)

    def _statuses(self, customer_id: str | None) -> list[CustomerStatus]:
        c, p = self._t["customers"], self._t["plans"]
        latest_q = sa.select(p.c.customer_id, sa.func.max(p.c.id).label("plan_id"))
        if customer_id is not None:
            latest_q = latest_q.where(p.c.customer_id == customer_id)
        latest = latest_q.group_by(p.c.customer_id).subquery()
        query = (
            sa.select(c, latest.c.plan_id, p.c.created_at.label("plan_at"))
            .outerjoin(latest, latest.c.customer_id == c.c.id)
            .outerjoin(p, p.c.id == latest.c.plan_id)
            .order_by(c.c.id)
        )
        if customer_id is not None:
            query = query.where(c.c.id == customer_id)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            CustomerStatus(
                customer_id=r["id"],
                health=CustomerHealth(r["health"]),
                last_success_at=_aware(r["last_success_at"]),
                last_failure_at=_aware(r["last_failure_at"]),
                failures=r["failures"] or 0,
                error_kind=r["error_kind"],
                error=r["error"],
                latest_plan_id=r["plan_id"],
                latest_plan_at=_aware(r["plan_at"]),
            )
            for r in rows
        ]

    # plans -------------------------------------------------------------------------------

    def save_plan(
        self,
        customer_id: str,
        *,
        now: datetime,
        horizon_start: datetime,
        horizon_end: datetime,
        reason: str,
        status: str,
        cost_eur: float | None,
        baseline_cost_eur: float | None,
        savings_eur: float | None,
        prices: pd.Series,
        prices_fingerprint: str,
        device_state: Mapping[str, Mapping[str, Any]],
        document: Mapping[str, Any],
    ) -> tuple[StoredPlan, bool]:
        """Store a plan; returns ``(plan, created)``. Same inputs twice: no second row."""
        p = self._t["plans"]
        s_fp = state_fingerprint(device_state)
        key = hashlib.sha256(
            f"{horizon_start.isoformat()}|{prices_fingerprint}|{s_fp}".encode()
        ).hexdigest()
        cost, baseline = _finite(cost_eur), _finite(baseline_cost_eur)
        savings = _finite(savings_eur)
        prices_text, document_text = _prices_to_json(prices), dumps(document)
        row = {
            "customer_id": customer_id,
            "inputs_key": key,
            "created_at": now,
            "horizon_start": horizon_start,
            "horizon_end": horizon_end,
            "reason": reason,
            "status": status,
            "cost_eur": cost,
            "baseline_cost_eur": baseline,
            "savings_eur": savings,
            "prices_fingerprint": prices_fingerprint,
            "state_fingerprint": s_fp,
            "prices": prices_text,
            "device_state": dumps(device_state),
            "document": document_text,
        }
        created = True
        try:
            with self._tx("save_plan") as conn:
                inserted = conn.execute(p.insert().values(**row))
        except IntegrityError:
            created = False
            logger.info("plan for customer %s with these inputs exists already", customer_id)
        else:
            new_id = inserted.inserted_primary_key[0] if inserted.inserted_primary_key else None
            if (
                new_id is not None
                and _is_utc(now)
                and _is_utc(horizon_start)
                and _is_utc(horizon_end)
                and _json_native(document)
                and _json_native(device_state)
            ):
                # the row just inserted, without reading it back: the same values the read
                # would give (UTC times come back as they went in; a JSON-native document
                # and state equal their JSON round trip)
                return StoredPlan(
                    id=int(new_id),
                    customer_id=customer_id,
                    created_at=now.astimezone(UTC),
                    horizon_start=horizon_start.astimezone(UTC),
                    horizon_end=horizon_end.astimezone(UTC),
                    reason=reason,
                    status=status,
                    cost_eur=cost,
                    baseline_cost_eur=baseline,
                    savings_eur=savings,
                    prices_fingerprint=prices_fingerprint,
                    state_fingerprint=s_fp,
                    document=dict(document),
                    prices_json=prices_text,
                    device_state={k: dict(v) for k, v in device_state.items()},
                    document_json=document_text,
                ), True
        with self._tx() as conn:
            found = (
                conn.execute(
                    sa.select(p).where(p.c.customer_id == customer_id, p.c.inputs_key == key)
                )
                .mappings()
                .first()
            )
        if found is None:  # pragma: no cover - the insert or the conflict guarantees a row
            raise PlannerError(f"plan for customer {customer_id} vanished after saving")
        return _plan_from_row(found), created

    def latest_plan(self, customer_id: str) -> StoredPlan | None:
        plans = self.plan_history(customer_id, limit=1)
        return plans[0] if plans else None

    def plan_history(self, customer_id: str, *, limit: int = 50) -> list[StoredPlan]:
        """The customer's plans, newest first."""
        p = self._t["plans"]
        query = (
            sa.select(p).where(p.c.customer_id == customer_id).order_by(p.c.id.desc()).limit(limit)
        )
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [_plan_from_row(r) for r in rows]

    def plans_since(self, customer_id: str, since: datetime) -> list[StoredPlan]:
        """The customer's plans created at or after ``since``, oldest first."""
        p = self._t["plans"]
        query = (
            sa.select(p)
            .where(p.c.customer_id == customer_id, p.c.created_at >= _utc(since))
            .order_by(p.c.created_at, p.c.id)
        )
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [_plan_from_row(r) for r in rows]

    def count_plans(self, customer_id: str | None = None) -> int:
        p = self._t["plans"]
        query = sa.select(sa.func.count()).select_from(p)
        if customer_id is not None:
            query = query.where(p.c.customer_id == customer_id)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # usage history, forecasts, forecast errors ---------------------------------------------

    def merge_usage(
        self, customer_id: str, usage: pd.DataFrame, *, controlled_kwh: pd.Series, now: datetime
    ) -> UsageMerge:
        """Merge fetched usage (``usage_kwh``, ``type``; tz-aware index) into the history.

        A final value replaces a stored preliminary one; a preliminary value never replaces
        a final one. ``controlled_kwh`` (same index) is what wattplan's devices drew.
        """
        u = self._t["usage"]
        now = _utc(now)
        if usage.empty:
            return UsageMerge(0, 0, 0, 0)
        index = pd.DatetimeIndex(usage.index).tz_convert("UTC")
        lo, hi = index.min().to_pydatetime(), index.max().to_pydatetime()
        inserted = corrected = finalized = kept = 0
        controlled = controlled_kwh.reindex(usage.index).fillna(0.0).to_numpy(dtype=float)
        with self._tx("merge_usage") as conn:
            stored = {
                _must(r["start"]): (float(r["kwh"]), str(r["type"]))
                for r in conn.execute(
                    sa.select(u.c.start, u.c.kwh, u.c.type).where(
                        u.c.customer_id == customer_id, u.c.start >= lo, u.c.start <= hi
                    )
                ).mappings()
            }
            new_rows = []
            for ts, kwh, kind, ctl in zip(
                index, usage["usage_kwh"].to_numpy(dtype=float), usage["type"], controlled,
                strict=True,
            ):  # fmt: skip
                start = ts.to_pydatetime()
                kind = "final" if str(kind) == "final" else "preliminary"
                old = stored.get(start)
                if old is None:
                    new_rows.append(
                        {
                            "customer_id": customer_id,
                            "start": start,
                            "kwh": float(kwh),
                            "type": kind,
                            "controlled_kwh": float(ctl),
                            "fetched_at": now,
                        }
                    )
                    continue
                if old[1] == "final" and kind != "final":
                    kept += 1
                    continue
                if math.isclose(old[0], float(kwh), abs_tol=1e-9) and old[1] == kind:
                    continue
                if math.isclose(old[0], float(kwh), abs_tol=1e-9):
                    finalized += 1
                else:
                    corrected += 1
                conn.execute(
                    u.update()
                    .where(u.c.customer_id == customer_id, u.c.start == start)
                    .values(kwh=float(kwh), type=kind, fetched_at=now)
                )
            if new_rows:
                conn.execute(u.insert(), new_rows)
                inserted = len(new_rows)
        return UsageMerge(inserted, corrected, finalized, kept)

    def usage_history(
        self, customer_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> pd.DataFrame:
        """Stored usage: ``kwh``, ``type``, ``controlled_kwh``, ``fetched_at`` (UTC index)."""
        u = self._t["usage"]
        query = sa.select(u.c.start, u.c.kwh, u.c.type, u.c.controlled_kwh, u.c.fetched_at).where(
            u.c.customer_id == customer_id
        )
        if since is not None:
            query = query.where(u.c.start >= _utc(since))
        if until is not None:
            query = query.where(u.c.start < _utc(until))
        with self._tx() as conn:
            rows = conn.execute(query.order_by(u.c.start)).mappings().all()
        index = pd.DatetimeIndex([_must(r["start"]) for r in rows], name="start")
        if not len(index):
            index = pd.DatetimeIndex([], tz="UTC", name="start")
        return pd.DataFrame(
            {
                "kwh": [float(r["kwh"]) for r in rows],
                "type": [str(r["type"]) for r in rows],
                "controlled_kwh": [float(r["controlled_kwh"]) for r in rows],
                "fetched_at": [_must(r["fetched_at"]) for r in rows],
            },
            index=index,
        )

    def earliest_preliminary(self, customer_id: str) -> datetime | None:
        """The start of the oldest stored preliminary usage value (to fetch again)."""
        u = self._t["usage"]
        with self._tx() as conn:
            value = conn.execute(
                sa.select(sa.func.min(u.c.start)).where(
                    u.c.customer_id == customer_id, u.c.type == "preliminary"
                )
            ).scalar_one()
        return _aware(value)

    def save_forecast(self, customer_id: str, forecast: pd.DataFrame, *, now: datetime) -> None:
        """Store (replace) the base-load forecast of the slots in ``forecast``.

        ``forecast`` has ``kwh_p10``, ``kwh_p50``, ``kwh_p90``, optionally ``kwh_mean``, and
        a tz-aware index.
        """
        f = self._t["forecast"]
        now = _utc(now)
        if forecast.empty:
            return
        index = pd.DatetimeIndex(forecast.index).tz_convert("UTC")
        means = forecast["kwh_mean"] if "kwh_mean" in forecast.columns else forecast["kwh_p50"]
        rows = [
            {
                "customer_id": customer_id,
                "start": ts.to_pydatetime(),
                "kwh_p10": float(p10),
                "kwh_p50": float(p50),
                "kwh_p90": float(p90),
                "kwh_mean": float(mean),
                "made_at": now,
            }
            for ts, p10, p50, p90, mean in zip(
                index,
                forecast["kwh_p10"],
                forecast["kwh_p50"],
                forecast["kwh_p90"],
                means,
                strict=True,
            )
        ]
        lo, hi = index.min().to_pydatetime(), index.max().to_pydatetime()
        with self._tx("save_forecast") as conn:
            conn.execute(
                f.delete().where(f.c.customer_id == customer_id, f.c.start >= lo, f.c.start <= hi)
            )
            conn.execute(f.insert(), rows)

    def forecast(self, customer_id: str, *, since: datetime, until: datetime) -> pd.DataFrame:
        """The stored forecast on ``[since, until)``: ``kwh_p10/p50/p90``, ``kwh_mean`` (P50
        where a forecast stored before the mean existed has none), ``made_at``."""
        f = self._t["forecast"]
        query = (
            sa.select(f)
            .where(
                f.c.customer_id == customer_id,
                f.c.start >= _utc(since),
                f.c.start < _utc(until),
            )
            .order_by(f.c.start)
        )
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        index = pd.DatetimeIndex([_must(r["start"]) for r in rows], name="start")
        if not len(index):
            index = pd.DatetimeIndex([], tz="UTC", name="start")
        return pd.DataFrame(
            {
                "kwh_p10": [float(r["kwh_p10"]) for r in rows],
                "kwh_p50": [float(r["kwh_p50"]) for r in rows],
                "kwh_p90": [float(r["kwh_p90"]) for r in rows],
                "kwh_mean": [
                    float(r["kwh_p50"] if r["kwh_mean"] is None else r["kwh_mean"]) for r in rows
                ],
                "made_at": [_must(r["made_at"]) for r in rows],
            },
            index=index,
        )

    def save_forecast_error(
        self, customer_id: str, day: str, *, mae_kwh: float, slots: int, now: datetime
    ) -> bool:
        """Record the forecast error of a local day once; False when it was recorded before."""
        e = self._t["forecast_errors"]
        now = _utc(now)
        with self._tx("save_forecast_error") as conn:
            exists = conn.execute(
                sa.select(e.c.day).where(e.c.customer_id == customer_id, e.c.day == day)
            ).first()
            if exists is not None:
                return False
            conn.execute(
                e.insert().values(
                    customer_id=customer_id, day=day, mae_kwh=mae_kwh, slots=slots, computed_at=now
                )
            )
        return True

    def forecast_errors(self, customer_id: str) -> dict[str, float]:
        """The recorded forecast error per local day (ISO date → MAE in kWh per slot)."""
        e = self._t["forecast_errors"]
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(e.c.day, e.c.mae_kwh).where(e.c.customer_id == customer_id)
            ).all()
        return {str(day): float(mae) for day, mae in sorted(rows)}

    def record_usage_refresh(
        self,
        customer_id: str,
        *,
        now: datetime,
        error: str | None,
        forecast_made: bool = False,
    ) -> None:
        """Record a usage refresh: a success (``error`` None) resets the failure count."""
        r = self._t["usage_refresh"]
        now = _utc(now)
        with self._tx("record_usage_refresh") as conn:
            row = (
                conn.execute(sa.select(r).where(r.c.customer_id == customer_id)).mappings().first()
            )
            if error is None:
                values: dict[str, Any] = {"last_success_at": now, "failures": 0, "error": None}
                if forecast_made:
                    values["forecast_made_at"] = now
            else:
                failures = 1 if row is None else int(row["failures"]) + 1
                values = {"last_failure_at": now, "failures": failures, "error": error}
            if row is None:
                conn.execute(
                    r.insert().values(customer_id=customer_id, **{"failures": 0, **values})
                )
            else:
                conn.execute(r.update().where(r.c.customer_id == customer_id).values(**values))

    def usage_status(self, customer_id: str) -> UsageStatus | None:
        """The usage refresh of one customer (``None``: never attempted)."""
        r, u = self._t["usage_refresh"], self._t["usage"]
        with self._tx() as conn:
            row = (
                conn.execute(sa.select(r).where(r.c.customer_id == customer_id)).mappings().first()
            )
            last = conn.execute(
                sa.select(sa.func.max(u.c.start)).where(u.c.customer_id == customer_id)
            ).scalar_one()
        if row is None:
            return None
        return UsageStatus(
            customer_id,
            _aware(row["last_success_at"]),
            _aware(row["last_failure_at"]),
            int(row["failures"]),
            row["error"],
            _aware(row["forecast_made_at"]),
            _aware(last),
        )

    def usage_failing(self) -> int:
        """How many customers' latest usage refresh failed."""
        r = self._t["usage_refresh"]
        with self._tx() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(r).where(r.c.failures > 0)
                ).scalar_one()
            )

    # device state ------------------------------------------------------------------------

    def device_state(self, customer_id: str) -> DeviceState:
        s = self._t["states"]
        with self._tx() as conn:
            row = (
                conn.execute(sa.select(s).where(s.c.customer_id == customer_id)).mappings().first()
            )
        if row is None:
            return DeviceState(customer_id, 0, {}, None)
        return DeviceState(
            customer_id, row["version"], json.loads(row["devices"]), _aware(row["updated_at"])
        )

    def update_device_state(
        self,
        customer_id: str,
        updates: Mapping[str, Mapping[str, Any]],
        *,
        now: datetime,
        replace: bool = False,
    ) -> DeviceState:
        """Merge ``{device: {field: value}}`` into the stored state (or replace it).

        Writers in this process take turns; a writer of another process that wins the
        compare-and-swap makes this one retry, a bounded number of times, before it raises
        :class:`~wattplan.exceptions.ConflictError` (the caller may try again at once).
        """
        with self._state_lock(customer_id):
            return self._update_device_state(customer_id, updates, now=now, replace=replace)

    def _state_lock(self, customer_id: str) -> threading.Lock:
        key = "" if self._sqlite else customer_id
        with self._state_locks_guard:
            lock = self._state_locks.get(key)
            if lock is None:
                lock = self._state_locks[key] = threading.Lock()
            return lock

    def _update_device_state(
        self,
        customer_id: str,
        updates: Mapping[str, Mapping[str, Any]],
        *,
        now: datetime,
        replace: bool,
    ) -> DeviceState:
        s = self._t["states"]
        for attempt in range(_STATE_CAS_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
            with self._tx("update_device_state") as conn:
                row = (
                    conn.execute(sa.select(s).where(s.c.customer_id == customer_id))
                    .mappings()
                    .first()
                )
                current: dict[str, dict[str, Any]] = (
                    {} if row is None else json.loads(row["devices"])
                )
                merged = {} if replace else {k: dict(v) for k, v in current.items()}
                for device, fields in updates.items():
                    merged.setdefault(device, {}).update(_json_safe(dict(fields)))
                text = dumps(merged)
                if row is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                s.insert().values(
                                    customer_id=customer_id, version=1, devices=text, updated_at=now
                                )
                            )
                    except IntegrityError:
                        continue  # inserted concurrently: retry as an update
                    return DeviceState(customer_id, 1, json.loads(text), now)
                version = int(row["version"])
                done = conn.execute(
                    s.update()
                    .where(s.c.customer_id == customer_id, s.c.version == version)
                    .values(version=version + 1, devices=text, updated_at=now)
                )
                if done.rowcount == 1:
                    return DeviceState(customer_id, version + 1, json.loads(text), now)
            logger.debug(
                "device state of %s changed concurrently (attempt %d)", customer_id, attempt
            )
        raise ConflictError(
            f"device state of customer {customer_id} changed concurrently "
            f"{_STATE_CAS_ATTEMPTS} times; try again"
        )


def _describe(exc: BaseException) -> str:
    """The kind of a database error, without its text (which may carry the URL)."""
    orig = getattr(exc, "orig", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    code = getattr(orig, "sqlite_errorname", None)  # e.g. SQLITE_FULL, SQLITE_READONLY
    return f"{name} ({code})" if code else name


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plan_from_row(row: Mapping[Any, Any]) -> StoredPlan:
    return StoredPlan(
        id=int(row["id"]),
        customer_id=row["customer_id"],
        created_at=_must(row["created_at"]),
        horizon_start=_must(row["horizon_start"]),
        horizon_end=_must(row["horizon_end"]),
        reason=row["reason"],
        status=row["status"],
        cost_eur=row["cost_eur"],
        baseline_cost_eur=row["baseline_cost_eur"],
        savings_eur=row["savings_eur"],
        prices_fingerprint=row["prices_fingerprint"],
        state_fingerprint=row["state_fingerprint"],
        document=json.loads(row["document"]),
        prices_json=row["prices"],
        device_state=json.loads(row["device_state"]),
        document_json=row["document"],
    )


def _make_engine(url: str) -> Engine:
    try:
        parsed = _db.parse_url(url, "database url")
    except ValueError as exc:
        raise PlannerError(str(exc)) from None
    where = f"cannot open the plan store at {_db.shown(parsed)}"
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        try:
            _db.ensure_sqlite_folder(parsed)
        except OSError as exc:
            raise PlannerError(f"{where}: cannot create its folder ({_db.problem(exc)})") from exc
        # No pre-ping: a SQLite connection is a file handle that no server can drop, and
        # the ping was one extra statement on every transaction of a planning pass.
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            **({"poolclass": sa.pool.StaticPool} if memory else {}),
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise PlannerError(f"{where}: {_db.problem(exc, parsed)}") from exc
