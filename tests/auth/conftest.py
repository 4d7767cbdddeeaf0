"""Fixtures of the auth tests: a vault on SQLite and on PostgreSQL, and a strict fake AS."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth._servers import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    FakeAuthorizationServer,
    serve_app,
)
from wattplan.auth import OAuthConfig, TokenCipher, TokenVault

POSTGRES_URL = os.environ.get(
    "WATTPLAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_reachable() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def postgres_or_skip() -> str:
    """The PostgreSQL URL; skip when it is down, except under CI (then fail)."""
    if not _postgres_reachable():
        message = f"PostgreSQL not reachable at {POSTGRES_URL}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must test PostgreSQL)")
        pytest.skip(message + " (start it, or set WATTPLAN_TEST_POSTGRES_URL)")
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, table prefix) of an empty vault database; cleaned up afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vault' / 'tokens.sqlite3'}", prefix
        return
    url = postgres_or_skip()
    yield url, prefix
    cleanup = TokenVault(url, cipher=TokenCipher(TokenCipher.generate_key()), table_prefix=prefix)
    cleanup.drop_tables()
    cleanup.close()


@pytest.fixture
def encryption_key() -> str:
    return TokenCipher.generate_key().get_secret_value()


@pytest.fixture
def vault(database: tuple[str, str], encryption_key: str) -> Iterator[TokenVault]:
    url, prefix = database
    v = TokenVault(url, cipher=TokenCipher(encryption_key), table_prefix=prefix)
    yield v
    v.close()


@pytest.fixture
def fake_as() -> Iterator[tuple[FakeAuthorizationServer, str]]:
    server = FakeAuthorizationServer()
    with serve_app(server.app) as base_url:
        yield server, base_url


@pytest.fixture
def fake_config(fake_as: tuple[FakeAuthorizationServer, str]) -> OAuthConfig:
    _, base_url = fake_as
    return OAuthConfig.for_base_url(
        base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI
    )
