"""The token vault: one row per grant, keyed by (client_id, customer_id), in SQLAlchemy.

SQLite (one file, created on first use) by default; PostgreSQL by URL. Access and refresh
tokens are encrypted at rest with :class:`~wattplan.auth.TokenCipher`. Every row carries
a ``version`` that grows by one with each new token pair (compare-and-swap), a ``status``
(:class:`GrantStatus`) and, while a refresh is under way, a *refresh in flight* marker
(``refresh_attempt`` and ``refresh_lease_until``).

The marker is what makes refreshes single-flight across threads and processes *and*
crash-safe. It is claimed and cleared under a row lock (``SELECT … FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and committed before the refresh request is
sent, so it outlives a crash. It goes through two phases (see ``_marker.py``): *intent*
when claimed, *sent* just before the request's first byte leaves. Whoever finds the marker
of a dead attempt (its lease ran out, or its process on this host has ended) takes it over
if it never reached *sent*: the server cannot have seen it. After *sent* the server may
already have rotated the refresh token we hold, so the grant is marked
``reauthorization_required`` instead of being refreshed again with a token that may be
dead (which strict servers punish by revoking the whole grant).

The vault also knows its own identity (a random fingerprint and where it was made). A copy
of it (a copied SQLite file, a database restored elsewhere) refuses to refresh customers'
grants: two planners on two copies would present one rotating refresh token twice.

The table and column layout is private; use the methods.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from wattplan import _db, migrations
from wattplan.auth._crypto import TokenCipher
from wattplan.auth._flow import Token
from wattplan.auth._marker import (
    INTENT,
    SENT,
    Marker,
    attempt_ended,
    attempt_started,
    current_holder,
    is_orphaned,
)
from wattplan.exceptions import (
    GrantConflictError,
    GrantNotFoundError,
    ReauthorizationRequiredError,
    StateMismatchError,
    TokenVaultError,
)
from wattplan.settings import Settings

__all__ = [
    "AuthorizationSession",
    "Grant",
    "GrantKind",
    "GrantStatus",
    "RefreshClaim",
    "TokenVault",
]

logger = logging.getLogger(__name__)

_SQLITE_BEGIN = "wattplan_sqlite_begin"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive: they were stored as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


class GrantStatus(enum.StrEnum):
    """Where a grant stands."""

    ACTIVE = "active"
    """Usable: tokens present, refreshable."""
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    """Dead: the customer must consent again (tokens are kept, nothing is deleted)."""
    REVOKED = "revoked"
    """Disconnected on purpose (by the vendor or the customer); tokens are wiped."""


class GrantKind(enum.StrEnum):
    """How the grant's tokens were obtained."""

    AUTHORIZATION_CODE = "authorization_code"
    """A customer's consent (refreshable with a rotating refresh token)."""
    CLIENT_CREDENTIALS = "client_credentials"
    """The organisation's own token (no refresh token; a new one is simply requested)."""


@dataclass(frozen=True)
class Grant:
    """One stored grant. ``token`` is decrypted (its secrets never show in ``repr``).

    ``expires_at`` is the access token's expiry (tz-aware UTC, ``None`` if unknown);
    ``version`` grows by one with every new token pair; ``refresh_in_flight`` is true while
    a refresh holds the marker.
    """

    client_id: str
    customer_id: str
    kind: GrantKind
    status: GrantStatus
    token: Token | None
    version: int
    scope: str | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    reauthorization_reason: str | None = None
    refresh_in_flight: bool = False


@dataclass(frozen=True)
class RefreshClaim:
    """The answer of :meth:`TokenVault.claim_refresh`.

    ``outcome`` is ``"claimed"`` (the caller now holds the marker and must refresh, then
    :meth:`~TokenVault.complete_refresh` or :meth:`~TokenVault.abandon_refresh`),
    ``"fresh"`` (no refresh needed: use ``grant.token``) or ``"busy"`` (another refresh
    holds the marker until ``busy_until``: wait and ask again).
    """

    outcome: str
    grant: Grant
    busy_until: datetime | None = None


@dataclass(frozen=True, repr=False)
class AuthorizationSession:
    """A pending authorization: what ``/connect`` stored under a one-time ``state``."""

    client_id: str
    customer_id: str
    redirect_uri: str
    code_verifier: str = field(repr=False)
    created_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return (
            f"AuthorizationSession(client_id={self.client_id!r}, "
            f"customer_id={self.customer_id!r}, expires_at={self.expires_at!r})"
        )


def _tables(metadata: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table, sa.Table]:
    tz = sa.DateTime(timezone=True)
    grants = sa.Table(
        f"{prefix}grants",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("access_token_enc", sa.Text, nullable=True),
        sa.Column("refresh_token_enc", sa.Text, nullable=True),
        sa.Column("token_type", sa.String(32), nullable=False, default="Bearer"),
        sa.Column("expires_at", tz, nullable=True),
        sa.Column("scope", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("refresh_attempt", sa.String(64), nullable=True),
        sa.Column("refresh_lease_until", tz, nullable=True),
        sa.Column("reauthorization_reason", sa.Text, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("client_id", "customer_id", name=f"{prefix}grants_key"),
    )
    sessions = sa.Table(
        f"{prefix}auth_sessions",
        metadata,
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("verifier_enc", sa.Text, nullable=False),
        sa.Column("binding_hash", sa.String(64), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=False),
        sa.Column("used_at", tz, nullable=True),
    )
    # the vault's identity: a random fingerprint and where it was made ("home")
    meta = sa.Table(
        f"{prefix}vault_meta",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    return grants, sessions, meta


class TokenVault:
    """Encrypted storage of many customers' grants, with the row locking refreshes need.

    Parameters
    ----------
    url:
        SQLAlchemy URL (``sqlite:///path.sqlite3``, ``postgresql+psycopg://…``) or an
        existing :class:`~sqlalchemy.engine.Engine`. A SQLite file and its folder are
        created on first use.
    cipher:
        Encrypts the tokens; see :meth:`TokenCipher.from_settings`.
    table_prefix:
        Prefix of the two table names (``<prefix>grants``, ``<prefix>auth_sessions``).
    clock:
        Returns the current tz-aware time; injected for tests.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        cipher: TokenCipher,
        table_prefix: str = "wattplan_",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._cipher = cipher
        self._clock = clock
        self._owns_engine = not isinstance(url, Engine)
        self._engine = url if isinstance(url, Engine) else _make_engine(url)
        self._is_sqlite = self._engine.dialect.name == "sqlite"
        if self._is_sqlite:
            _install_sqlite_hooks(self._engine)
        self._prefix = table_prefix
        self._metadata = sa.MetaData()
        self._grants, self._sessions, self._meta = _tables(self._metadata, table_prefix)
        self._schema_ready = False
        self._fingerprint: str | None = None
        self._copy_of: str | None = None
        self._schema_lock = threading.Lock()
        # SQLite's busy handler makes a waiting writer sleep 1, 2, 5, 10... ms between tries,
        # so refreshes of many customers on several threads spend more time asleep than
        # writing; this process's writers queue here and start as soon as the last commits.
        self._write_lock: threading.RLock | None = threading.RLock() if self._is_sqlite else None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, table_prefix: str = "wattplan_"
    ) -> TokenVault:
        """The vault at ``WATTPLAN_DATABASE_URL`` with the key ``WATTPLAN_ENCRYPTION_KEY``."""
        settings = settings if settings is not None else Settings()
        return cls(
            settings.database_url,
            cipher=TokenCipher.from_settings(settings),
            table_prefix=table_prefix,
        )

    def __repr__(self) -> str:
        return f"TokenVault(url={self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (shared with the planner's store if it wants)."""
        return self._engine

    def now(self) -> datetime:
        """The vault's clock (tz-aware)."""
        return self._clock()

    def close(self) -> None:
        """Dispose of the connection pool (only if the vault created the engine)."""
        if self._owns_engine:
            self._engine.dispose()

    def create_tables(self) -> None:
        """Create or upgrade the tables (schema migrations; done automatically on first use)."""
        if self._schema_ready:
            return
        with self._schema_lock:  # the migration locks across processes; this one in-process
            for attempt in range(3):
                try:
                    migrations.upgrade(self._engine, store="vault", table_prefix=self._prefix)
                    break
                except sa.exc.DBAPIError as exc:  # e.g. a parallel process held the lock too long
                    if attempt == 2:
                        raise TokenVaultError(
                            f"cannot open the token vault at {_db.shown(self._engine)}: "
                            f"{_db.problem(exc, self._engine)}"
                        ) from exc
            self._check_home()
            self._schema_ready = True

    @property
    def fingerprint(self) -> str | None:
        """The vault's random identity (kept by copies of it); ``None`` before first use."""
        self.create_tables()
        return self._fingerprint

    @property
    def is_copy(self) -> bool:
        """True when this vault was made elsewhere and copied here (see :meth:`adopt`).

        A copy hands out stored tokens but refuses to refresh customers' grants
        (:class:`~wattplan.exceptions.GrantConflictError`): the original may be refreshing
        them with the same rotating refresh tokens.
        """
        self.create_tables()
        return self._copy_of is not None

    def adopt(self) -> None:
        """Make this copy the vault's home, once the original is retired for good.

        Only then may it refresh grants. If the original refreshed a grant after the copy
        was taken, that grant's refresh token here is stale and it needs a new consent.
        """
        self.create_tables()
        with self._write() as conn:
            here = self._location(conn)
            m = self._meta
            conn.execute(m.delete().where(m.c.key == "home"))
            conn.execute(m.insert().values(key="home", value=here or ""))
        if self._copy_of is not None:
            logger.warning("vault %s adopted at its new home", self._copy_of[:8])
        self._copy_of = None

    def _location(self, conn: Connection) -> str | None:
        """Where this vault's data lives: a copy elsewhere answers differently."""
        if self._is_sqlite:
            database = self._engine.url.database
            if not database or database == ":memory:" or database.startswith("file:"):
                return None
            try:  # the file's inode: kept by renames and in-place writes, new for a copy
                return f"sqlite-inode:{Path(database).expanduser().stat().st_ino}"
            except OSError:
                return None
        if self._engine.dialect.name == "postgresql":
            system_id = None
            try:  # the cluster's identity (a restore into another cluster differs)
                with conn.begin_nested():
                    system_id = conn.execute(
                        sa.text("SELECT system_identifier FROM pg_control_system()")
                    ).scalar()
            except sa.exc.DBAPIError:
                system_id = None  # not allowed for this role: the database name must do
            database = conn.execute(sa.text("SELECT current_database()")).scalar()
            return f"postgresql:{system_id or ''}:{database}"
        return None

    def _check_home(self) -> None:
        """Record the vault's identity on first use; later, notice if it was copied.

        Only reads unless something is missing, so that a vault the process may only read
        stays readable (without a recorded identity, copies of it are not recognised).
        """
        m = self._meta
        try:
            with self._engine.connect() as conn, conn.begin():
                rows = _meta_rows(conn, m)
                here = self._location(conn)
            if "fingerprint" not in rows or (here and not rows.get("home")):
                rows = self._record_home(rows, here)
            elif here and rows["home"] != here:
                self._copy_of = rows["fingerprint"]
                logger.warning(
                    "vault %s is a copy made elsewhere: it will not refresh customers' "
                    "grants (stop the other planner, or adopt the copy)",
                    self._copy_of[:8],
                )
        except sa.exc.SQLAlchemyError as exc:
            raise TokenVaultError(
                f"token vault read failed ({type(exc).__name__})", transient=_transient(exc)
            ) from exc
        self._fingerprint = rows.get("fingerprint")

    def _record_home(self, seen: dict[str, str], here: str | None) -> dict[str, str]:
        m = self._meta
        try:
            with self._engine.connect() as conn:
                if self._is_sqlite:
                    conn = conn.execution_options(**{_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
                with conn.begin():  # re-read under the write lock: another process may be first
                    rows = _meta_rows(conn, m)
                    if "fingerprint" not in rows:
                        rows["fingerprint"] = uuid.uuid4().hex
                        conn.execute(
                            m.insert().values(key="fingerprint", value=rows["fingerprint"])
                        )
                    if here and not rows.get("home"):
                        rows["home"] = here
                        conn.execute(m.delete().where(m.c.key == "home"))
                        conn.execute(m.insert().values(key="home", value=here))
            return rows
        except sa.exc.IntegrityError:  # recorded by a parallel process (PostgreSQL)
            with self._engine.connect() as conn, conn.begin():
                return _meta_rows(conn, m)
        except sa.exc.SQLAlchemyError as exc:
            logger.warning(
                "could not record the vault's identity (%s); copies of it are not recognised",
                type(exc).__name__,
            )
            return seen

    def _conflict(self, client_id: str, customer_id: str) -> GrantConflictError:
        fingerprint = (self._copy_of or "")[:8]
        return GrantConflictError(
            f"the grant of client {client_id!r} for customer {customer_id!r} is not refreshed "
            f"here: this vault is a copy of vault {fingerprint} made elsewhere, and a second "
            "planner refreshing the same grant would get it revoked for both; stop the other "
            "planner, or adopt this copy (TokenVault.adopt) once the original is retired",
            client_id=client_id,
            customer_id=customer_id,
        )

    def drop_tables(self) -> None:
        """Drop the vault's tables and its schema version (tests and tear-down only)."""
        self._metadata.drop_all(self._engine, checkfirst=True)
        migrations.drop_version_table(self._engine, store="vault", table_prefix=self._prefix)
        self._schema_ready = False

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self.create_tables()
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise TokenVaultError(
                f"token vault read failed ({type(exc).__name__})", transient=_transient(exc)
            ) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that holds the write lock (SQLite) or may take row locks (PostgreSQL)."""
        self.create_tables()
        try:
            with self._write_lock or nullcontext(), self._engine.connect() as conn:
                if self._is_sqlite:
                    conn = conn.execution_options(**{_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise TokenVaultError(
                f"token vault write failed ({type(exc).__name__})", transient=_transient(exc)
            ) from exc

    def _select_locked(self, conn: Connection, client_id: str, customer_id: str) -> Any:
        g = self._grants
        stmt = (
            sa.select(g)
            .where(g.c.client_id == client_id, g.c.customer_id == customer_id)
            .with_for_update()
        )
        return conn.execute(stmt).mappings().first()

    def _to_grant(self, row: Any) -> Grant:
        token: Token | None = None
        if row["access_token_enc"] is not None:
            refresh = row["refresh_token_enc"]
            token = Token(
                access_token=SecretStr(self._cipher.decrypt(row["access_token_enc"])),
                token_type=row["token_type"],
                expires_at=_aware(row["expires_at"]),
                refresh_token=SecretStr(self._cipher.decrypt(refresh)) if refresh else None,
                scope=row["scope"],
            )
        created = _aware(row["created_at"])
        updated = _aware(row["updated_at"])
        assert created is not None
        assert updated is not None
        return Grant(
            client_id=row["client_id"],
            customer_id=row["customer_id"],
            kind=GrantKind(row["kind"]),
            status=GrantStatus(row["status"]),
            token=token,
            version=int(row["version"]),
            scope=row["scope"],
            expires_at=_aware(row["expires_at"]),
            created_at=created,
            updated_at=updated,
            reauthorization_reason=row["reauthorization_reason"],
            refresh_in_flight=row["refresh_attempt"] is not None,
        )

    def _token_values(self, token: Token) -> dict[str, Any]:
        return {
            "access_token_enc": self._cipher.encrypt(token.access_token.get_secret_value()),
            "refresh_token_enc": (
                self._cipher.encrypt(token.refresh_token.get_secret_value())
                if token.refresh_token is not None
                else None
            ),
            "token_type": token.token_type,
            "expires_at": token.expires_at.astimezone(UTC) if token.expires_at else None,
            "scope": token.scope,
        }

    # -- grants -------------------------------------------------------------------------

    def save_grant(
        self,
        *,
        client_id: str,
        customer_id: str,
        token: Token,
        kind: GrantKind = GrantKind.AUTHORIZATION_CODE,
    ) -> Grant:
        """Store a fresh grant (after a consent), replacing and reactivating any old one."""
        now = self._clock()
        for attempt in range(2):
            try:
                with self._write() as conn:
                    row = self._select_locked(conn, client_id, customer_id)
                    values = {
                        **self._token_values(token),
                        "kind": kind.value,
                        "status": GrantStatus.ACTIVE.value,
                        "refresh_attempt": None,
                        "refresh_lease_until": None,
                        "reauthorization_reason": None,
                        "updated_at": now,
                    }
                    g = self._grants
                    if row is None:
                        conn.execute(
                            g.insert().values(
                                client_id=client_id,
                                customer_id=customer_id,
                                version=1,
                                created_at=now,
                                **values,
                            )
                        )
                    else:
                        conn.execute(
                            g.update()
                            .where(g.c.id == row["id"])
                            .values(version=row["version"] + 1, **values)
                        )
                break
            except TokenVaultError as exc:
                # two first-time saves of one key raced on PostgreSQL: the loser updates
                if attempt == 1 or not isinstance(exc.__cause__, sa.exc.IntegrityError):
                    raise
        logger.info("grant stored: client %s customer %s (%s)", client_id, customer_id, kind.value)
        return self.get_grant(client_id=client_id, customer_id=customer_id)

    def ensure_grant(self, *, client_id: str, customer_id: str, kind: GrantKind) -> Grant:
        """The stored grant, or a new empty one (no token yet, version 0) if there is none."""
        now = self._clock()
        try:
            with self._write() as conn:
                if self._select_locked(conn, client_id, customer_id) is None:
                    conn.execute(
                        self._grants.insert().values(
                            client_id=client_id,
                            customer_id=customer_id,
                            kind=kind.value,
                            status=GrantStatus.ACTIVE.value,
                            version=0,
                            created_at=now,
                            updated_at=now,
                        )
                    )
        except TokenVaultError as exc:  # created by a parallel process in the meantime
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
        return self.get_grant(client_id=client_id, customer_id=customer_id)

    def get_grant(self, *, client_id: str, customer_id: str) -> Grant:
        """The stored grant; :class:`GrantNotFoundError` when there is none."""
        g = self._grants
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(g).where(g.c.client_id == client_id, g.c.customer_id == customer_id)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise GrantNotFoundError(
                f"no grant stored for client {client_id!r} and customer {customer_id!r}"
            )
        return self._to_grant(row)

    def list_grants(
        self,
        *,
        client_id: str | None = None,
        status: GrantStatus | None = None,
        kind: GrantKind | None = None,
    ) -> list[Grant]:
        """Grants, optionally filtered, ordered by client and customer."""
        g = self._grants
        stmt = sa.select(g).order_by(g.c.client_id, g.c.customer_id)
        if client_id is not None:
            stmt = stmt.where(g.c.client_id == client_id)
        if status is not None:
            stmt = stmt.where(g.c.status == status.value)
        if kind is not None:
            stmt = stmt.where(g.c.kind == kind.value)
        with self._read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [self._to_grant(r) for r in rows]

    def set_status(
        self,
        *,
        client_id: str,
        customer_id: str,
        status: GrantStatus,
        reason: str | None = None,
    ) -> Grant:
        """Change a grant's status. ``REVOKED`` wipes its tokens; nothing else deletes any."""
        now = self._clock()
        with self._write() as conn:
            row = self._select_locked(conn, client_id, customer_id)
            if row is None:
                raise GrantNotFoundError(
                    f"no grant stored for client {client_id!r} and customer {customer_id!r}"
                )
            values: dict[str, Any] = {
                "status": status.value,
                "reauthorization_reason": reason if status is not GrantStatus.ACTIVE else None,
                "updated_at": now,
            }
            if status is GrantStatus.REVOKED:
                values.update(
                    access_token_enc=None,
                    refresh_token_enc=None,
                    expires_at=None,
                    refresh_attempt=None,
                    refresh_lease_until=None,
                )
            conn.execute(self._grants.update().where(self._grants.c.id == row["id"]).values(values))
        logger.info(
            "grant of client %s customer %s is now %s", client_id, customer_id, status.value
        )
        return self.get_grant(client_id=client_id, customer_id=customer_id)

    def delete_grant(self, *, client_id: str, customer_id: str) -> None:
        """Forget a grant entirely (after revoking it at the server, if it should die there)."""
        g = self._grants
        with self._write() as conn:
            conn.execute(
                g.delete().where(g.c.client_id == client_id, g.c.customer_id == customer_id)
            )

    # -- the refresh protocol -------------------------------------------------------------

    def claim_refresh(
        self,
        *,
        client_id: str,
        customer_id: str,
        attempt_id: str,
        lease: timedelta,
        needs_refresh: Callable[[Grant], bool],
        now: datetime | None = None,
    ) -> RefreshClaim:
        """Under the row lock: re-read, decide, and if needed claim the refresh marker.

        ``needs_refresh`` is asked with the current row. When it says yes, the marker
        (``attempt_id``, lease until ``now + lease``) is committed before this returns.
        Raises :class:`ReauthorizationRequiredError` for a dead grant, including one whose
        marker was left behind by an attempt that died (marked here, committed, then raised).
        """
        now = now if now is not None else self._clock()
        dead_reason: str | None = None
        with self._write() as conn:
            row = self._select_locked(conn, client_id, customer_id)
            if row is None:
                raise GrantNotFoundError(
                    f"no grant stored for client {client_id!r} and customer {customer_id!r}"
                )
            grant = self._to_grant(row)
            g = self._grants
            if grant.kind is GrantKind.AUTHORIZATION_CODE and self._copy_of is not None:
                raise self._conflict(client_id, customer_id)
            marker = Marker.parse(row["refresh_attempt"])
            if grant.status is not GrantStatus.ACTIVE:
                dead_reason = grant.reauthorization_reason or grant.status.value
            elif marker is not None:
                lease_until = _aware(row["refresh_lease_until"])
                holder_gone = is_orphaned(marker)
                if lease_until is not None and lease_until > now and not holder_gone:
                    return RefreshClaim("busy", grant, busy_until=lease_until)
                if grant.kind is GrantKind.AUTHORIZATION_CODE and marker.sent:
                    # An earlier refresh died after sending: its refresh token may be rotated.
                    # The marker stays, so that its holder (if it lives on after all) can
                    # still store the new pair it holds in memory.
                    dead_reason = "refresh_interrupted"
                    conn.execute(
                        g.update()
                        .where(g.c.id == row["id"])
                        .values(
                            status=GrantStatus.REAUTHORIZATION_REQUIRED.value,
                            reauthorization_reason=dead_reason,
                            refresh_lease_until=None,
                            updated_at=now,
                        )
                    )
                    logger.warning(
                        "grant of client %s customer %s: an earlier refresh never finished "
                        "after its request was sent; marked reauthorization_required",
                        client_id,
                        customer_id,
                    )
                else:
                    # It died before its request left (or it needs no rotation): the server
                    # never saw it, so the grant is refreshed again as if nothing happened.
                    logger.info(
                        "grant of client %s customer %s: an earlier refresh stopped before "
                        "sending (%s); it is taken over",
                        client_id,
                        customer_id,
                        "holder gone" if holder_gone else "lease over",
                    )
                    conn.execute(
                        g.update()
                        .where(g.c.id == row["id"])
                        .values(refresh_attempt=None, refresh_lease_until=None)
                    )
            if dead_reason is None:
                if not needs_refresh(grant):
                    return RefreshClaim("fresh", grant)
                mine = Marker(phase=INTENT, attempt=attempt_id, holder=current_holder())
                conn.execute(
                    g.update()
                    .where(g.c.id == row["id"])
                    .values(refresh_attempt=mine.format(), refresh_lease_until=now + lease)
                )
                attempt_started(attempt_id)
        if dead_reason is not None:
            raise ReauthorizationRequiredError(
                f"the grant of client {client_id!r} for customer {customer_id!r} needs a new "
                f"consent ({dead_reason})",
                client_id=client_id,
                customer_id=customer_id,
            )
        return RefreshClaim("claimed", grant)

    def mark_refresh_sent(self, *, client_id: str, customer_id: str, attempt_id: str) -> None:
        """Under the row lock: record that attempt ``attempt_id`` is about to send its request.

        Called just before the first byte of the refresh request goes out. Raises
        :class:`TokenVaultError` when the marker is no longer ours (then the request must
        not be sent) or the write fails (likewise).
        """
        g = self._grants
        with self._write() as conn:
            row = self._select_locked(conn, client_id, customer_id)
            marker = Marker.parse(row["refresh_attempt"]) if row is not None else None
            if row is None or marker is None or marker.attempt != attempt_id:
                raise TokenVaultError(
                    f"the refresh of the grant of client {client_id!r} for customer "
                    f"{customer_id!r} was taken over by another process; not sent"
                )
            sent = Marker(phase=SENT, attempt=attempt_id, holder=marker.holder)
            conn.execute(
                g.update().where(g.c.id == row["id"]).values(refresh_attempt=sent.format())
            )

    def complete_refresh(
        self, *, client_id: str, customer_id: str, attempt_id: str, token: Token
    ) -> Grant:
        """Under the row lock: store the new pair if ``attempt_id`` still holds the marker.

        Compare-and-swap: if the marker is no longer ours (another process decided the
        attempt was dead), nothing is written and :class:`TokenVaultError` is raised.
        """
        now = self._clock()
        g = self._grants
        with self._write() as conn:
            row = self._select_locked(conn, client_id, customer_id)
            if (
                row is None
                or not _holds(row, attempt_id)
                or row["status"] == GrantStatus.REVOKED.value  # disconnected meanwhile
            ):
                attempt_ended(attempt_id)
                raise TokenVaultError(
                    f"the grant of client {client_id!r} for customer {customer_id!r} changed "
                    "while it was being refreshed; the new tokens were not stored"
                )
            conn.execute(
                g.update()
                .where(g.c.id == row["id"], g.c.version == row["version"])
                .values(
                    **self._token_values(token),
                    version=row["version"] + 1,
                    status=GrantStatus.ACTIVE.value,
                    reauthorization_reason=None,
                    refresh_attempt=None,
                    refresh_lease_until=None,
                    updated_at=now,
                )
            )
            stored = self._select_locked(conn, client_id, customer_id)  # read in the same commit
        attempt_ended(attempt_id)
        return self._to_grant(stored)

    def abandon_refresh(
        self,
        *,
        client_id: str,
        customer_id: str,
        attempt_id: str,
        reauthorization_reason: str | None = None,
    ) -> None:
        """Under the row lock: drop our marker; with a reason, mark the grant dead too.

        If the write fails, the marker stays, and this process treats it as an ended
        attempt at once (by its phase: taken over if unsent, re-consent if sent).
        """
        now = self._clock()
        g = self._grants
        try:
            with self._write() as conn:
                row = self._select_locked(conn, client_id, customer_id)
                if row is None or not _holds(row, attempt_id):
                    return
                values: dict[str, Any] = {
                    "refresh_attempt": None,
                    "refresh_lease_until": None,
                    "updated_at": now,
                }
                if reauthorization_reason is not None:
                    values["status"] = GrantStatus.REAUTHORIZATION_REQUIRED.value
                    values["reauthorization_reason"] = reauthorization_reason
                conn.execute(g.update().where(g.c.id == row["id"]).values(values))
        finally:
            attempt_ended(attempt_id)

    # -- pending authorizations (state + PKCE verifier, kept server-side) ---------------

    def create_authorization_session(
        self,
        *,
        state: str,
        client_id: str,
        customer_id: str,
        redirect_uri: str,
        code_verifier: str,
        ttl: timedelta,
        binding: str | None = None,
    ) -> AuthorizationSession:
        """Store a pending authorization under a hash of its one-time ``state``.

        ``binding`` (optional) ties it to one browser: the same value must be presented
        when it is consumed (the callback app keeps it in an HttpOnly cookie).
        """
        now = self._clock()
        s = self._sessions
        with self._write() as conn:
            # forget sessions that expired more than a day ago (used or not)
            conn.execute(s.delete().where(s.c.expires_at < now - timedelta(days=1)))
            conn.execute(
                s.insert().values(
                    state_hash=_state_hash(state),
                    client_id=client_id,
                    customer_id=customer_id,
                    redirect_uri=redirect_uri,
                    verifier_enc=self._cipher.encrypt(code_verifier),
                    binding_hash=_state_hash(binding) if binding is not None else None,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return AuthorizationSession(
            client_id=client_id,
            customer_id=customer_id,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            created_at=now,
            expires_at=now + ttl,
        )

    def consume_authorization_session(
        self, *, state: str, binding: str | None = None
    ) -> AuthorizationSession:
        """Use up a pending authorization: exactly once, unexpired, from the same browser.

        Raises :class:`StateMismatchError` for an unknown, replayed, expired or
        wrongly bound ``state`` (the message says which, never the value).
        """
        now = self._clock()
        s = self._sessions
        problem: str | None = None
        with self._write() as conn:
            row = (
                conn.execute(
                    sa.select(s).where(s.c.state_hash == _state_hash(state)).with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                problem = "unknown state"
            elif row["used_at"] is not None:
                problem = "state already used (replayed callback)"
            else:
                conn.execute(
                    s.update().where(s.c.state_hash == row["state_hash"]).values(used_at=now)
                )
                expires = _aware(row["expires_at"])
                assert expires is not None
                if expires <= now:
                    problem = "state expired"
                elif row["binding_hash"] is not None and (
                    binding is None or _state_hash(binding) != row["binding_hash"]
                ):
                    problem = "state was issued to another browser"
        if problem is not None:
            logger.warning("authorization callback rejected: %s", problem)
            raise StateMismatchError(f"authorization callback rejected: {problem}")
        assert row is not None
        created, expires = _aware(row["created_at"]), _aware(row["expires_at"])
        assert created is not None
        assert expires is not None
        return AuthorizationSession(
            client_id=row["client_id"],
            customer_id=row["customer_id"],
            redirect_uri=row["redirect_uri"],
            code_verifier=self._cipher.decrypt(row["verifier_enc"]),
            created_at=created,
            expires_at=expires,
        )


def _meta_rows(conn: Connection, meta: sa.Table) -> dict[str, str]:
    return {str(row[0]): str(row[1]) for row in conn.execute(sa.select(meta.c.key, meta.c.value))}


def _transient(exc: sa.exc.SQLAlchemyError) -> bool:
    """A lost connection, a locked database, a server going away: worth trying again."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)


def _holds(row: Any, attempt_id: str) -> bool:
    marker = Marker.parse(row["refresh_attempt"])
    return marker is not None and marker.attempt == attempt_id


def _make_engine(url: str) -> Engine:
    try:
        parsed = _db.parse_url(url, "token vault url")
    except ValueError as exc:
        raise TokenVaultError(str(exc)) from None
    where = f"cannot open the token vault at {_db.shown(parsed)}"
    if parsed.get_backend_name() == "sqlite":
        try:
            _db.ensure_sqlite_folder(parsed)
        except OSError as exc:
            raise TokenVaultError(
                f"{where}: cannot create its folder ({_db.problem(exc)})"
            ) from exc
        return sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 60.0},
            pool_size=10,
            max_overflow=60,
            pool_timeout=120,
        )
    try:
        return sa.create_engine(
            # at most 15 connections per process: many workers must stay under the server's
            # max_connections (100 by default); extra threads queue for a pooled connection
            parsed,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            pool_timeout=120,
        )
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise TokenVaultError(f"{where}: {_db.problem(exc, parsed)}") from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_SQLITE_BEGIN, "BEGIN"))


def _install_sqlite_hooks(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN, so that BEGIN IMMEDIATE works.

    The documented recipe ("Serializable isolation / Savepoints / Transactional DDL" in
    SQLAlchemy's SQLite dialect notes): sqlite3's own implicit transactions begin late
    and deferred, which would let two writers read the same row before either locks it.
    Installed once per engine (several vaults may share one).
    """
    if not event.contains(engine, "connect", _sqlite_on_connect):
        event.listen(engine, "connect", _sqlite_on_connect)
    if not event.contains(engine, "begin", _sqlite_on_begin):
        event.listen(engine, "begin", _sqlite_on_begin)
