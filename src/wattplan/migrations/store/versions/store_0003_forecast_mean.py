"""The mean of each base-load forecast slot, which plans are made on.

A plan's cost is linear in the energy it expects; the median (P50) of a right-skewed
household load falls short of its mean. Forecasts stored before this revision have no
mean (NULL): the planner plans on their P50 until the next forecast replaces them.

Revision ID: store_0003
Revises: store_0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wattplan.migrations import names

revision: str = "store_0003"
down_revision: str | None = "store_0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    prefix, schema = names()
    with op.batch_alter_table(f"{prefix}forecast", schema=schema) as batch:
        batch.add_column(sa.Column("kwh_mean", sa.Float, nullable=True))


def downgrade() -> None:
    prefix, schema = names()
    with op.batch_alter_table(f"{prefix}forecast", schema=schema) as batch:
        batch.drop_column("kwh_mean")
