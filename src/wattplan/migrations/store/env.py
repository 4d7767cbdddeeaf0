"""Alembic environment of the store migrations."""

from wattplan.migrations._env import run

run()
