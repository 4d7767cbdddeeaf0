"""One leader among several planner processes on one database.

Only the leader polls prices and runs the scheduled passes; the other processes stand by
(they may serve the HTTP API: plans and device state live in the database) and try to
become the leader every ``check_every``.

* **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held on a
  dedicated connection that never goes back to the pool. PostgreSQL releases it when that
  session ends, so a leader that dies (or is killed) hands over as soon as the server sees
  its connection close: at once when the process dies on a live host (the kernel closes the
  socket), after the server's TCP keepalive (``tcp_keepalives_idle`` and friends) when the
  whole host is gone. A standby takes over at its next check, so the takeover time is at
  most ``check_every`` after the release. The leader checks its connection every
  ``check_every`` too and steps down when it is broken (it can no longer know that it
  still holds the lock).
* **SQLite** serves one planner process only: an exclusive ``flock`` on a file next to
  the database marks it taken, and a second process refuses to start with a clear error.

The lock's key is derived from the database and the table prefix, so planners with
different prefixes in one database elect their leaders independently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from wattplan.exceptions import ConfigurationError

__all__ = ["LeaderElection", "LeaderLock", "PostgresLeaderLock", "SqliteProcessLock", "leader_lock"]

logger = logging.getLogger(__name__)


class LeaderLock(Protocol):
    """Something at most one process holds at a time."""

    def try_acquire(self) -> bool:
        """Take the lock if free; True while this process holds it (also when it did before)."""
        ...

    def release(self) -> None: ...


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.sha256(f"wattplan-leader|{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLeaderLock:
    """``pg_try_advisory_lock`` on a dedicated connection (see the module docstring)."""

    def __init__(self, engine: Engine, *, name: str) -> None:
        self._engine = engine
        self.key = lock_key(name)
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresLeaderLock(key={self.key}, held={self._conn is not None})"

    def try_acquire(self) -> bool:
        with self._lock:
            if self._conn is not None:
                return self._alive()
            try:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                conn.detach()  # closed for real, never handed to another user with the lock
                got = bool(
                    conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
                    ).scalar_one()
                )
            except SQLAlchemyError as exc:
                logger.warning("leader lock: database unreachable (%s)", type(exc).__name__)
                return False
            if got:
                self._conn = conn
            else:
                conn.close()
            return got

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute(sa.text("SELECT 1")).scalar_one()
            return True
        except SQLAlchemyError as exc:
            logger.error("leader lock: its connection broke (%s)", type(exc).__name__)
            self._drop()
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                # closing the session releases it as well
                with contextlib.suppress(SQLAlchemyError):
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._drop()


class SqliteProcessLock:
    """An exclusive ``flock`` on ``<database>.leader``: one planner process per SQLite file."""

    def __init__(self, database: str) -> None:
        self.path = Path(f"{database}.leader")
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        return f"SqliteProcessLock(path={str(self.path)!r}, held={self._file is not None})"

    def try_acquire(self) -> bool:
        import fcntl

        if self._file is not None:
            return True
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigurationError(
                f"database_url: another planner process uses this SQLite database (lock "
                f"{self.path.name}); SQLite serves one planner process only: stop the other "
                "one, or use PostgreSQL to run several processes with one leader"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


class _AlwaysLeader:
    """An in-memory SQLite database belongs to this process alone."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def leader_lock(engine: Engine, *, table_prefix: str) -> LeaderLock:
    """The leader lock that fits the store's database."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        where = engine.url.render_as_string(hide_password=True)
        return PostgresLeaderLock(engine, name=f"{where}|{table_prefix}")
    if backend == "sqlite":
        database = engine.url.database
        if database in (None, "", ":memory:"):
            return _AlwaysLeader()
        return SqliteProcessLock(os.path.abspath(str(database)))
    raise ConfigurationError(
        f"database_url: no leader election for the {backend} backend (PostgreSQL or SQLite)"
    )


class LeaderElection:
    """Tries to become (and checks that it stays) the leader every ``check_every``.

    ``on_elected`` runs when this process becomes the leader, ``on_lost`` when it stops
    being one; both on the election's thread. ``start()`` makes the first attempt at once,
    so that the caller knows the role before it starts serving.
    """

    def __init__(
        self,
        lock: LeaderLock,
        *,
        check_every: timedelta = timedelta(seconds=5),
        on_elected: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.lock = lock
        self.check_every = check_every
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LeaderElection(leader={self._leader}, lock={self.lock!r})"

    @property
    def is_leader(self) -> bool:
        return self._leader

    def start(self) -> None:
        self._step()
        if not self._leader:
            logger.info(
                "standing by: another planner process is the leader (next try in %.0f s)",
                self.check_every.total_seconds(),
            )
        self._thread = threading.Thread(target=self._loop, name="wattplan-leader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.check_every.total_seconds()):
            try:
                self._step()
            except Exception:
                logger.exception("leader election step failed")

    def _step(self) -> None:
        held = self.lock.try_acquire()
        if held and not self._leader:
            self._leader = True
            logger.info("this planner process is now the leader")
            self._on_elected()
        elif not held and self._leader:
            self._leader = False
            logger.warning("this planner process is no longer the leader")
            self._on_lost()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.check_every.total_seconds() + 5)
        self.lock.release()
        self._leader = False

    def health(self) -> dict[str, Any]:
        seconds = self.check_every.total_seconds()
        return {"leader": {"is_leader": self._leader, "check_seconds": seconds}}
