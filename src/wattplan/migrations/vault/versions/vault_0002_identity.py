"""The vault's identity: a random fingerprint and where it was made, to notice copies.

A copy of a vault file (or a restore into another database) that refreshes the same
rotating refresh tokens as the original kills both grants; the vault records its identity
here on first use and a copy refuses to refresh (see ``TokenVault.is_copy``).

Revision ID: vault_0002
Revises: vault_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wattplan.migrations import names

revision: str = "vault_0002"
down_revision: str | None = "vault_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    prefix, schema = names()
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    if f"{prefix}vault_meta" not in existing:
        op.create_table(
            f"{prefix}vault_meta",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
            schema=schema,
        )


def downgrade() -> None:
    prefix, schema = names()
    op.drop_table(f"{prefix}vault_meta", schema=schema)
