"""Baseline: the token vault as wattplan 0.1.0 created it.

Creates only the tables that are missing, so that a vault made before migrations existed
is adopted as it is (with its grants).

Revision ID: vault_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wattplan.migrations import names

revision: str = "vault_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    prefix, schema = names()
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    tz = sa.DateTime(timezone=True)
    if f"{prefix}grants" not in existing:
        op.create_table(
            f"{prefix}grants",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("client_id", sa.String(255), nullable=False),
            sa.Column("customer_id", sa.String(255), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("access_token_enc", sa.Text, nullable=True),
            sa.Column("refresh_token_enc", sa.Text, nullable=True),
            sa.Column("token_type", sa.String(32), nullable=False),
            sa.Column("expires_at", tz, nullable=True),
            sa.Column("scope", sa.Text, nullable=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("refresh_attempt", sa.String(64), nullable=True),
            sa.Column("refresh_lease_until", tz, nullable=True),
            sa.Column("reauthorization_reason", sa.Text, nullable=True),
            sa.Column("created_at", tz, nullable=False),
            sa.Column("updated_at", tz, nullable=False),
            sa.UniqueConstraint("client_id", "customer_id", name=f"{prefix}grants_key"),
            schema=schema,
        )
    if f"{prefix}auth_sessions" not in existing:
        op.create_table(
            f"{prefix}auth_sessions",
            sa.Column("state_hash", sa.String(64), primary_key=True),
            sa.Column("client_id", sa.String(255), nullable=False),
            sa.Column("customer_id", sa.String(255), nullable=False),
            sa.Column("redirect_uri", sa.Text, nullable=False),
            sa.Column("verifier_enc", sa.Text, nullable=False),
            sa.Column("binding_hash", sa.String(64), nullable=True),
            sa.Column("created_at", tz, nullable=False),
            sa.Column("expires_at", tz, nullable=False),
            sa.Column("used_at", tz, nullable=True),
            schema=schema,
        )


def downgrade() -> None:
    prefix, schema = names()
    op.drop_table(f"{prefix}auth_sessions", schema=schema)
    op.drop_table(f"{prefix}grants", schema=schema)
