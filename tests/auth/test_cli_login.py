"""``wattplan login`` against the sandbox: a loopback redirect, then the grant in the vault."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path

import httpx
import pytest

from tests.auth._harness import walk_hosted_pages
from wattplan.auth import GrantStatus, TokenCipher, TokenVault
from wattplan.cli import main
from wattplan.sandbox import DEFAULT_CLIENT_ID, RunningSandbox


def _browser(decision: str) -> tuple[list[int], object]:
    statuses: list[int] = []

    def open_url(url: str) -> bool:
        def walk() -> None:
            callback = walk_hosted_pages(url, decision=decision)
            statuses.append(httpx.get(callback).status_code)

        threading.Thread(target=walk, daemon=True).start()
        return True

    return statuses, open_url


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    key = TokenCipher.generate_key().get_secret_value()
    monkeypatch.setenv("WATTPLAN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("WATTPLAN_ENCRYPTION_KEY", key)
    for name in ("WATTPLAN_CLIENT_ID", "WATTPLAN_CLIENT_SECRET", "WATTPLAN_DEVELOPMENT"):
        monkeypatch.delenv(name, raising=False)
    return key


def test_login_stores_a_working_grant(
    sandbox: RunningSandbox,
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    statuses, open_url = _browser("allow")
    monkeypatch.setattr(webbrowser, "open", open_url)
    argv = ["login", "--sandbox", "--base-url", sandbox.base_url, "--port", "0"]
    code = main([*argv, "--customer", "me", "--timeout", "60"])
    assert code == 0
    assert statuses == [200]
    out = capsys.readouterr().out
    assert "Connected: client wattplan-dev, customer me" in out
    vault = TokenVault(f"sqlite:///{tmp_path / 'cli.sqlite3'}", cipher=TokenCipher(key))
    grant = vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id="me")
    assert grant.status is GrantStatus.ACTIVE
    assert grant.token is not None
    assert grant.token.access_token.get_secret_value() not in out
    headers = {"Authorization": f"Bearer {grant.token.access_token.get_secret_value()}"}
    assert httpx.get(sandbox.url("/subscriptions"), headers=headers).status_code == 200
    vault.close()


def test_login_denied_exits_with_a_typed_error(
    sandbox: RunningSandbox,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    statuses, open_url = _browser("deny")
    monkeypatch.setattr(webbrowser, "open", open_url)
    argv = ["login", "--sandbox", "--base-url", sandbox.base_url, "--port", "0"]
    assert main([*argv, "--timeout", "60"]) == 2
    assert statuses == [400]
    assert "access_denied" in capsys.readouterr().err


def test_login_outside_the_sandbox_needs_a_client_id(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--no-browser"]) == 2
    assert "WATTPLAN_CLIENT_ID" in capsys.readouterr().err
