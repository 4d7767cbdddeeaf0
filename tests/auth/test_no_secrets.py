"""No token, code, verifier, client secret or key in logs (DEBUG), reprs or error messages.

A full flow runs against the sandbox with every logger at DEBUG: consent through the
callback app, a proactive refresh, a 401-driven refresh, client credentials, a denied
consent, a forged callback, a dead grant. Every secret that went by is collected and
searched for in the captured log output, in the reprs of every object involved and in
the messages of every error raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import wattplan.auth._manager as manager_module
from tests.auth._harness import VendorApp, vendor_app, walk_hosted_pages
from wattplan.auth import GrantStatus, PkcePair, TokenCipher, TokenVault, new_pkce_pair
from wattplan.exceptions import ReauthorizationRequiredError, WattplanError
from wattplan.sandbox import DEFAULT_CLIENT_SECRET, RunningSandbox


@pytest.fixture
def key() -> str:
    return TokenCipher.generate_key().get_secret_value()


@pytest.fixture
def app(sandbox: RunningSandbox, tmp_path: Path, key: str) -> Iterator[VendorApp]:
    vault = TokenVault(
        f"sqlite:///{tmp_path / 'v.sqlite3'}", cipher=TokenCipher(key), clock=sandbox.clock.now
    )
    with vendor_app(sandbox.base_url, vault) as running:
        yield running
    vault.close()


def test_no_secret_in_logs_reprs_or_errors(
    app: VendorApp,
    sandbox: RunningSandbox,
    key: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifiers: list[str] = []

    def recording_pkce() -> PkcePair:
        pair = new_pkce_pair()
        verifiers.append(pair.verifier)
        return pair

    monkeypatch.setattr(manager_module, "new_pkce_pair", recording_pkce)
    caplog.set_level(logging.DEBUG)
    codes: list[str] = []
    errors: list[BaseException] = []
    objects: list[Any] = [app.manager, app.manager.vault, app.manager.config]
    manager, vault = app.manager, app.manager.vault

    def connect(browser: httpx.Client, customer: str, decision: str = "allow") -> str:
        r = browser.get(f"{app.base_url}/connect", headers={"X-Customer": customer})
        callback = walk_hosted_pages(r.headers["location"], decision=decision)
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if "code" in query:
            codes.append(query["code"])
        browser.get(callback)
        return callback

    with httpx.Client() as browser:
        connect(browser, "c1")
        connect(browser, "c2")
        connect(browser, "c3", decision="deny")
        forged = connect(browser, "c4").replace("state=", "state=x")
        browser.get(forged)  # state mismatch (the real state was used above)
    objects += [vault.get_grant(client_id=manager.client_id, customer_id=c) for c in ("c1", "c2")]

    sandbox.clock.advance(timedelta(minutes=58))  # proactive refresh
    with httpx.Client(auth=manager.auth("c1")) as api:
        assert api.get(sandbox.url("/subscriptions")).status_code == 200
        objects.append(api.auth)
    httpx.post(
        sandbox.url("/_sandbox/grants/revoke"),
        json={"email": "demo@example.com", "client_id": manager.client_id},
    )
    try:  # c2's grant was revoked at the server: 401, refresh, invalid_grant
        with httpx.Client(auth=manager.auth("c2")) as api:
            api.get(sandbox.url("/subscriptions"))
    except ReauthorizationRequiredError as exc:
        errors.append(exc)
    assert vault.get_grant(client_id=manager.client_id, customer_id="c2").status is (
        GrantStatus.REAUTHORIZATION_REQUIRED
    )
    objects.append(manager.organisation_token())
    objects += vault.list_grants()
    errors += app.errors
    for attempt in (
        lambda: manager.complete_authorization({"code": codes[0], "state": "nope"}),
        lambda: manager.get_token("c2"),
        lambda: TokenVault(vault.engine, cipher=TokenCipher(TokenCipher.generate_key())).get_grant(
            client_id=manager.client_id, customer_id="c1"
        ),
    ):
        with pytest.raises(WattplanError) as info:
            attempt()
        errors.append(info.value)

    # every secret that went by
    tokens: list[str] = []
    for grant in vault.list_grants():
        if grant.token is not None:
            tokens.append(grant.token.access_token.get_secret_value())
            if grant.token.refresh_token is not None:
                tokens.append(grant.token.refresh_token.get_secret_value())
    for exchange in sandbox.state.exchanges:  # every token the server ever issued
        if exchange.path == "/oauth/token" and exchange.status_code == 200:
            body = json.loads(exchange.body)
            tokens += [str(body[k]) for k in ("access_token", "refresh_token") if body.get(k)]
    secrets = [*tokens, *verifiers, DEFAULT_CLIENT_SECRET, key]
    assert len(tokens) >= 6
    assert len(verifiers) >= 4
    assert len(errors) >= 5

    log_text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    library_log = "\n".join(
        r.getMessage() + repr(r.args) for r in caplog.records if r.name.startswith("wattplan")
    )
    assert any(r.levelno == logging.DEBUG and r.name.startswith("wattplan") for r in caplog.records)
    texts = {
        "log": log_text,
        "reprs": "\n".join(repr(o) + str(o) for o in objects),
        "errors": "\n".join(f"{e}\n{e!r}\n{getattr(e, 'message', '')}" for e in errors),
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in the {where}"
    # the browser's own request lines carry the code (that is what a redirect is); the
    # library never logs it
    for code in codes:
        assert code not in library_log
        assert code not in texts["reprs"]
        assert code not in texts["errors"]
