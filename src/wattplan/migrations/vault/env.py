"""Alembic environment of the vault migrations."""

from wattplan.migrations._env import run

run()
