"""Typed settings read from the environment (``WATTPLAN_*``) at the application edge.

The optimizer never reads settings: the CLI, the planner and the auth layer build a
:class:`Settings` once and pass the values they need down as arguments.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from wattplan._defaults import DEFAULT_API_VERSION, DEFAULT_BASE_URL
from wattplan._extras import requires

with requires("auth", feature="wattplan.settings"):
    from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "Settings"]


class Settings(BaseSettings):
    """wattplan's settings; every field can be set as ``WATTPLAN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="WATTPLAN_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///wattplan.sqlite3",
        description="SQLAlchemy URL of the token vault and plan store (SQLite file or PostgreSQL).",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key (urlsafe base64, 32 bytes) that encrypts tokens at rest.",
    )
    development: bool = Field(
        default=False,
        description="Development mode: allows a generated, unsafe encryption key and the sandbox.",
    )
    nomos_base_url: str = Field(default=DEFAULT_BASE_URL, description="Base URL of the Nomos API.")
    nomos_api_version: str = Field(
        default=DEFAULT_API_VERSION, description="Value of the X-API-Version header."
    )
    client_id: str | None = Field(default=None, description="OAuth client id of the vendor's app.")
    client_secret: SecretStr | None = Field(
        default=None, description="OAuth client secret of the vendor's app."
    )
    redirect_uri: str | None = Field(
        default=None, description="Pre-registered OAuth redirect URI (byte-identical)."
    )
