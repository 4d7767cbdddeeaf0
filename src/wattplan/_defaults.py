"""Defaults shared by the Nomos client, the sandbox and :class:`wattplan.Settings`.

A module of its own so that the client and the sandbox need no pydantic-settings.
"""

from __future__ import annotations

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://api.nomos.energy"
DEFAULT_API_VERSION = "2026-05-27.curie"
