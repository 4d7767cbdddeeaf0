"""Schema migrations (Alembic) of the token vault and the plan store, shipped in the package.

Two independent histories, one folder each: ``vault/`` (``<prefix>grants``,
``<prefix>auth_sessions``) and ``store/`` (``<prefix>customers``, ``<prefix>plans``,
``<prefix>device_state``). They are separate because the two stores live separately: the
vault is used without a planner (``wattplan login``, the callback app), either may sit in
its own database, and each records its revision in its own table
(``<prefix>vault_alembic``, ``<prefix>store_alembic``), so that several table prefixes
(planners, test runs) share one database without sharing a version.

:func:`upgrade` runs when a :class:`~wattplan.auth.TokenVault` or a
:class:`~wattplan.planner.PlanStore` opens its tables: under a lock (a PostgreSQL advisory
lock, SQLite's write lock) so that processes starting together migrate once, in one
transaction where the database allows it (PostgreSQL). A database made before migrations
existed (wattplan 0.1.0) has the tables but no version: the baseline revision creates only
what is missing, so it is adopted as it is, data included.

Revision scripts read the table prefix and schema with :func:`names`; they never import the
stores' models (a revision is a snapshot, the models move on). A new revision goes in
``<store>/versions/`` (``alembic revision`` with ``script_location`` pointing there, or by
hand), and ``tests/hostile/test_operations.py`` checks that the migrated schema equals the
model.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

__all__ = ["Store", "current", "drop_version_table", "head", "names", "upgrade", "version_table"]

Store = Literal["vault", "store"]

_HERE = Path(__file__).resolve().parent
# the option the vault's SQLite "begin" hook reads (it then emits BEGIN IMMEDIATE itself)
_SQLITE_BEGIN = "wattplan_sqlite_begin"


def version_table(store: Store, table_prefix: str) -> str:
    """Name of the table that records the revision of one store under one prefix."""
    return f"{table_prefix}{store}_alembic"


@functools.cache
def _script(store: Store) -> ScriptDirectory:
    return ScriptDirectory(str(_HERE / store))


def head(store: Store) -> str:
    """The newest revision shipped for ``store``."""
    revision = _script(store).get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection, store: Store, table_prefix: str, schema: str | None) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": version_table(store, table_prefix),
            "version_table_schema": schema,
        },
    )
    return context.get_current_revision()


def names() -> tuple[str, str | None]:
    """``(table_prefix, schema)`` of the migration that is running (for revision scripts)."""
    from alembic import context

    attributes = context.config.attributes
    return str(attributes["table_prefix"]), attributes.get("schema")


def upgrade(engine: Engine, *, store: Store, table_prefix: str, schema: str | None = None) -> None:
    """Bring ``store``'s tables under ``table_prefix`` (and ``schema``) to the newest revision.

    Cheap when they are there already (one read of the version table). Raises SQLAlchemy's
    errors; the stores wrap them in their own.
    """
    target = head(store)
    with engine.connect() as conn:
        if current(conn, store, table_prefix, schema) == target:
            return
    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            conn = conn.execution_options(**{_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        with conn.begin():
            if sqlite and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # hold the write lock from here on
            elif engine.dialect.name == "postgresql":
                conn.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(_lock_key(store, table_prefix, schema)))
                )
            config = Config()
            config.set_main_option("script_location", str(_HERE / store))
            config.attributes.update(
                connection=conn,
                table_prefix=table_prefix,
                schema=schema,
                version_table=version_table(store, table_prefix),
            )
            command.upgrade(config, "head")


def drop_version_table(
    engine: Engine, *, store: Store, table_prefix: str, schema: str | None = None
) -> None:
    """Forget the revision (after the store dropped its tables: tests and tear-down)."""
    table = sa.Table(version_table(store, table_prefix), sa.MetaData(schema=schema))
    table.drop(engine, checkfirst=True)


def _lock_key(store: Store, table_prefix: str, schema: str | None) -> int:
    digest = hashlib.sha256(f"wattplan:{schema}:{table_prefix}:{store}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
