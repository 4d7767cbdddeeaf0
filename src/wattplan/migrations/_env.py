"""The Alembic environment both histories share (each folder's ``env.py`` runs it).

Only online migrations on the connection :func:`wattplan.migrations.upgrade` hands over,
inside its transaction; there is no ``alembic.ini`` and no offline SQL generation.
"""

from __future__ import annotations

from alembic import context


def run() -> None:
    attributes = context.config.attributes
    connection = attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "wattplan's migrations run through wattplan.migrations.upgrade(engine, ...)"
        )
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=attributes["version_table"],
        version_table_schema=attributes.get("schema"),
    )
    with context.begin_transaction():
        context.run_migrations()
