"""Usage history, base-load forecasts, forecast errors and the usage refresh status.

The planner fetches each customer's metered usage once a day, keeps the history it
forecasts from (with what wattplan's own devices drew), the forecast it plans on and the
forecast error per day.

Revision ID: store_0002
Revises: store_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wattplan.migrations import names

revision: str = "store_0002"
down_revision: str | None = "store_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    prefix, schema = names()
    ts = sa.DateTime(timezone=True)
    op.create_table(
        f"{prefix}usage",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("start", ts, primary_key=True),
        sa.Column("kwh", sa.Float, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("controlled_kwh", sa.Float, nullable=False),
        sa.Column("fetched_at", ts, nullable=False),
        schema=schema,
    )
    op.create_table(
        f"{prefix}forecast",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("start", ts, primary_key=True),
        sa.Column("kwh_p10", sa.Float, nullable=False),
        sa.Column("kwh_p50", sa.Float, nullable=False),
        sa.Column("kwh_p90", sa.Float, nullable=False),
        sa.Column("made_at", ts, nullable=False),
        schema=schema,
    )
    op.create_table(
        f"{prefix}forecast_errors",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("mae_kwh", sa.Float, nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("computed_at", ts, nullable=False),
        schema=schema,
    )
    op.create_table(
        f"{prefix}usage_refresh",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("last_success_at", ts),
        sa.Column("last_failure_at", ts),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("forecast_made_at", ts),
        schema=schema,
    )


def downgrade() -> None:
    prefix, schema = names()
    for name in ("usage_refresh", "forecast_errors", "forecast", "usage"):
        op.drop_table(f"{prefix}{name}", schema=schema)
