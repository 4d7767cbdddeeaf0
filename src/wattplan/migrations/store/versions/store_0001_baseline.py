"""Baseline: the plan store as wattplan 0.1.0 created it.

Creates only the tables that are missing, so that a store made before migrations existed
is adopted as it is (with its plans, device state and health).

Revision ID: store_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wattplan.migrations import names

revision: str = "store_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    prefix, schema = names()
    existing = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    ts = sa.DateTime(timezone=True)
    if f"{prefix}customers" not in existing:
        op.create_table(
            f"{prefix}customers",
            sa.Column("id", sa.String(200), primary_key=True),
            sa.Column("created_at", ts, nullable=False),
            sa.Column("health", sa.String(40), nullable=False),
            sa.Column("last_success_at", ts),
            sa.Column("last_failure_at", ts),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("error_kind", sa.String(80)),
            sa.Column("error", sa.Text),
            sa.Column("attempt_key", sa.String(200)),
            schema=schema,
        )
    if f"{prefix}plans" not in existing:
        op.create_table(
            f"{prefix}plans",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("customer_id", sa.String(200), nullable=False),
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
            schema=schema,
        )
        op.create_index(
            f"ix_{prefix}plans_customer_id", f"{prefix}plans", ["customer_id"], schema=schema
        )
    if f"{prefix}device_state" not in existing:
        op.create_table(
            f"{prefix}device_state",
            sa.Column("customer_id", sa.String(200), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("devices", sa.Text, nullable=False),
            sa.Column("updated_at", ts, nullable=False),
            schema=schema,
        )


def downgrade() -> None:
    prefix, schema = names()
    op.drop_table(f"{prefix}device_state", schema=schema)
    op.drop_index(f"ix_{prefix}plans_customer_id", table_name=f"{prefix}plans", schema=schema)
    op.drop_table(f"{prefix}plans", schema=schema)
    op.drop_table(f"{prefix}customers", schema=schema)
