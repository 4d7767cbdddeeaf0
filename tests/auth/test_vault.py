"""The token vault on SQLite and PostgreSQL: encryption at rest, keys, status, sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from wattplan.auth import GrantKind, GrantStatus, Token, TokenCipher, TokenVault
from wattplan.exceptions import (
    ConfigurationError,
    GrantNotFoundError,
    StateMismatchError,
    TokenVaultError,
)
from wattplan.settings import Settings

EXPIRES = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # inside the autumn fold in Berlin


def _token(n: int = 1, *, refresh: bool = True) -> Token:
    return Token(
        access_token=SecretStr(f"ACCESS-{n}-aaaaaaaaaaaa"),
        refresh_token=SecretStr(f"REFRESH-{n}-rrrrrrrrrrr") if refresh else None,
        expires_at=EXPIRES,
        scope="read:*",
    )


def test_round_trip_and_versioning(vault: TokenVault) -> None:
    first = vault.save_grant(client_id="app", customer_id="c1", token=_token(1))
    assert first.version == 1
    assert first.status is GrantStatus.ACTIVE
    assert first.kind is GrantKind.AUTHORIZATION_CODE
    assert first.token is not None
    assert first.token.access_token.get_secret_value() == "ACCESS-1-aaaaaaaaaaaa"
    assert first.expires_at == EXPIRES
    assert first.expires_at.tzinfo is not None
    second = vault.save_grant(client_id="app", customer_id="c1", token=_token(2))
    assert second.version == 2
    assert second.created_at == first.created_at
    # keyed by (client, customer): another app of the same customer is independent
    other = vault.save_grant(client_id="other-app", customer_id="c1", token=_token(3))
    assert other.version == 1
    assert vault.get_grant(client_id="app", customer_id="c1").version == 2
    with pytest.raises(GrantNotFoundError):
        vault.get_grant(client_id="app", customer_id="nobody")


def test_tokens_are_encrypted_at_rest(vault: TokenVault) -> None:
    vault.save_grant(client_id="app", customer_id="c1", token=_token(7))
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {vault._grants.name}")).all()  # noqa: S608
    dump = repr(rows)
    assert "ACCESS-7" not in dump
    assert "REFRESH-7" not in dump
    assert "gAAAA" in dump  # Fernet tokens


def test_wrong_key_is_a_vault_error_without_secrets(
    database: tuple[str, str], encryption_key: str
) -> None:
    url, prefix = database
    good = TokenVault(url, cipher=TokenCipher(encryption_key), table_prefix=prefix)
    good.save_grant(client_id="app", customer_id="c1", token=_token(1))
    bad = TokenVault(url, cipher=TokenCipher(TokenCipher.generate_key()), table_prefix=prefix)
    with pytest.raises(TokenVaultError, match="could not be decrypted") as info:
        bad.get_grant(client_id="app", customer_id="c1")
    assert "ACCESS" not in str(info.value)
    assert encryption_key not in str(info.value)
    good.close()
    bad.close()


def test_key_rotation_reads_old_rows(database: tuple[str, str]) -> None:
    url, prefix = database
    old = TokenCipher.generate_key().get_secret_value()
    new = TokenCipher.generate_key().get_secret_value()
    TokenVault(url, cipher=TokenCipher(old), table_prefix=prefix).save_grant(
        client_id="app", customer_id="c1", token=_token(1)
    )
    rotated = TokenVault(url, cipher=TokenCipher(f"{new},{old}"), table_prefix=prefix)
    token = rotated.get_grant(client_id="app", customer_id="c1").token
    assert token is not None
    assert token.access_token.get_secret_value() == "ACCESS-1-aaaaaaaaaaaa"


def test_missing_key_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="WATTPLAN_ENCRYPTION_KEY is not set"):
        TokenCipher.from_settings(Settings(encryption_key=None, development=False))
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        TokenCipher("not-a-key")
    dev = TokenCipher.from_settings(Settings(encryption_key=None, development=True))
    assert dev.decrypt(dev.encrypt("x")) == "x"
    assert "key" in repr(dev)


def test_sqlite_file_and_folder_created_on_first_use(tmp_path: Path, encryption_key: str) -> None:
    path = tmp_path / "deep" / "folder" / "vault.sqlite3"
    settings = Settings(database_url=f"sqlite:///{path}", encryption_key=SecretStr(encryption_key))
    vault = TokenVault.from_settings(settings)
    assert vault.list_grants() == []
    assert path.exists()
    assert str(path) in repr(vault)
    vault.close()


def test_status_changes_and_listing(vault: TokenVault) -> None:
    for customer in ("a", "b", "c"):
        vault.save_grant(client_id="app", customer_id=customer, token=_token(1))
    dead = vault.set_status(
        client_id="app",
        customer_id="b",
        status=GrantStatus.REAUTHORIZATION_REQUIRED,
        reason="invalid_grant",
    )
    assert dead.token is not None  # nothing deleted
    assert dead.reauthorization_reason == "invalid_grant"
    listed = vault.list_grants(client_id="app", status=GrantStatus.REAUTHORIZATION_REQUIRED)
    assert [g.customer_id for g in listed] == ["b"]
    revoked = vault.set_status(client_id="app", customer_id="c", status=GrantStatus.REVOKED)
    assert revoked.token is None
    assert len(vault.list_grants()) == 3
    again = vault.save_grant(client_id="app", customer_id="b", token=_token(2))
    assert again.status is GrantStatus.ACTIVE
    assert again.reauthorization_reason is None
    vault.delete_grant(client_id="app", customer_id="a")
    assert [g.customer_id for g in vault.list_grants()] == ["b", "c"]


def test_authorization_sessions_are_one_time(vault: TokenVault) -> None:
    vault.create_authorization_session(
        state="state-1",
        client_id="app",
        customer_id="c1",
        redirect_uri="https://v/cb",
        code_verifier="v" * 64,
        ttl=timedelta(minutes=10),
    )
    session = vault.consume_authorization_session(state="state-1")
    assert session.code_verifier == "v" * 64
    assert session.customer_id == "c1"
    assert "v" * 64 not in repr(session)
    with pytest.raises(StateMismatchError, match="already used"):
        vault.consume_authorization_session(state="state-1")
    with pytest.raises(StateMismatchError, match="unknown state"):
        vault.consume_authorization_session(state="state-2")


def test_sessions_expire_and_are_bound_to_a_browser(
    database: tuple[str, str], encryption_key: str
) -> None:
    url, prefix = database
    now = [datetime(2026, 3, 29, 0, 55, tzinfo=UTC)]
    vault = TokenVault(
        url, cipher=TokenCipher(encryption_key), table_prefix=prefix, clock=lambda: now[0]
    )
    common = {
        "client_id": "app",
        "customer_id": "c1",
        "redirect_uri": "https://v/cb",
        "code_verifier": "v" * 43,
        "ttl": timedelta(minutes=10),
    }
    vault.create_authorization_session(state="s-exp", **common)  # type: ignore[arg-type]
    vault.create_authorization_session(state="s-bound", binding="cookie-1", **common)  # type: ignore[arg-type]
    with pytest.raises(StateMismatchError, match="another browser"):
        vault.consume_authorization_session(state="s-bound", binding="cookie-2")
    now[0] += timedelta(minutes=11)
    with pytest.raises(StateMismatchError, match="expired"):
        vault.consume_authorization_session(state="s-exp")
    vault.close()
