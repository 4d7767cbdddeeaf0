"""The vendor's callback app against the real sandbox: the happy path and every attack.

Each case checks the typed error *and* how many token requests left the vendor (counted
at the manager's transport): none may be sent that should not be.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.auth._harness import VendorApp, vendor_app, walk_hosted_pages
from wattplan.auth import (
    GrantStatus,
    TokenCipher,
    TokenVault,
    build_authorization_url,
    new_pkce_pair,
)
from wattplan.exceptions import (
    AccessDeniedError,
    GrantNotFoundError,
    InvalidGrantError,
    StateMismatchError,
    TransportError,
)
from wattplan.sandbox import RunningSandbox


@pytest.fixture
def sqlite_vault(tmp_path: Path) -> Iterator[TokenVault]:
    v = TokenVault(
        f"sqlite:///{tmp_path / 'vault.sqlite3'}", cipher=TokenCipher(TokenCipher.generate_key())
    )
    yield v
    v.close()


@pytest.fixture
def app(sandbox: RunningSandbox, sqlite_vault: TokenVault) -> Iterator[VendorApp]:
    with vendor_app(sandbox.base_url, sqlite_vault) as running:
        yield running


def _connect(app: VendorApp, http: httpx.Client, customer: str = "cust-1") -> str:
    r = http.get(f"{app.base_url}/connect", headers={"X-Customer": customer})
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    return str(r.headers["location"])


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_connect_callback_stores_a_working_grant(
    app: VendorApp, sandbox: RunningSandbox, sqlite_vault: TokenVault
) -> None:
    with httpx.Client() as browser:
        authorize_url = _connect(app, browser)
        query = _query(authorize_url)
        assert query["code_challenge_method"] == "S256"
        assert "code_verifier" not in query
        callback = walk_hosted_pages(authorize_url)
        assert callback.startswith(app.redirect_uri + "?")
        r = browser.get(callback)
    assert r.status_code == 200, r.text
    assert "Connected" in r.text
    assert app.transport.sent == ["authorization_code"]
    grant = sqlite_vault.get_grant(client_id=app.manager.client_id, customer_id="cust-1")
    assert grant.status is GrantStatus.ACTIVE
    assert grant.token is not None
    assert grant.token.refresh_token is not None
    with httpx.Client(auth=app.manager.auth("cust-1")) as api:
        r = api.get(sandbox.url("/subscriptions"))
    assert r.status_code == 200
    assert r.json()["items"][0]["id"].startswith("sub_")


def test_endpoints_are_closed_without_the_hook(app: VendorApp, sqlite_vault: TokenVault) -> None:
    from tests.auth._servers import serve_app
    from wattplan.auth import create_callback_app

    with serve_app(create_callback_app(app.manager)) as closed, httpx.Client() as http:
        headers = {"X-Customer": "cust-1"}
        assert http.get(f"{closed}/connect", headers=headers).status_code == 401
        assert http.post(f"{closed}/token/refresh", headers=headers).status_code == 401
    with httpx.Client() as http:
        assert http.get(f"{app.base_url}/connect").status_code == 401  # hook says: nobody
        assert http.post(f"{app.base_url}/token/refresh").status_code == 401
    assert app.transport.sent == []
    with pytest.raises(GrantNotFoundError):
        sqlite_vault.get_grant(client_id=app.manager.client_id, customer_id="cust-1")


def test_deny_ends_in_access_denied_without_token_request(
    app: VendorApp, sandbox: RunningSandbox
) -> None:
    with httpx.Client() as browser:
        callback = walk_hosted_pages(_connect(app, browser), decision="deny")
        assert _query(callback)["error"] == "access_denied"
        r = browser.get(callback)
        assert r.status_code == 400
        # the state is burned: the same state cannot be used for a code afterwards
        again = browser.get(
            app.redirect_uri + "?" + urlencode({"code": "x", "state": _query(callback)["state"]})
        )
        assert again.status_code == 400
    assert [type(e) for e in app.errors] == [AccessDeniedError, StateMismatchError]
    assert app.transport.sent == []


def test_state_mismatch_sends_no_token_request(app: VendorApp) -> None:
    with httpx.Client() as browser:
        callback = walk_hosted_pages(_connect(app, browser))
        query = _query(callback)
        forged = app.redirect_uri + "?" + urlencode({"code": query["code"], "state": "forged"})
        assert browser.get(forged).status_code == 400
    assert [type(e) for e in app.errors] == [StateMismatchError]
    assert "unknown state" in str(app.errors[0])
    assert app.transport.sent == []


def test_state_from_another_browser_is_rejected(app: VendorApp) -> None:
    with httpx.Client() as victim, httpx.Client() as attacker:
        callback = walk_hosted_pages(_connect(app, attacker))
        assert victim.get(callback).status_code == 400  # no binding cookie in this browser
    assert [type(e) for e in app.errors] == [StateMismatchError]
    assert "another browser" in str(app.errors[0])
    assert app.transport.sent == []


def test_replayed_state_sends_no_second_token_request(app: VendorApp) -> None:
    with httpx.Client() as browser:
        callback = walk_hosted_pages(_connect(app, browser))
        assert browser.get(callback).status_code == 200
        assert browser.get(callback).status_code == 400
    assert [type(e) for e in app.errors] == [StateMismatchError]
    assert "already used" in str(app.errors[0])
    assert app.transport.sent == ["authorization_code"]


def test_replayed_code_under_a_fresh_state_is_invalid_grant(
    app: VendorApp, sandbox: RunningSandbox
) -> None:
    with httpx.Client() as browser:
        first = walk_hosted_pages(_connect(app, browser))
        assert browser.get(first).status_code == 200
        fresh = _query(walk_hosted_pages(_connect(app, browser, "cust-2")))
        injected = (
            app.redirect_uri
            + "?"
            + urlencode({"code": _query(first)["code"], "state": fresh["state"]})
        )
        assert browser.get(injected).status_code == 400
    assert [type(e) for e in app.errors] == [InvalidGrantError]
    # one exchange per state, as it must be: the server recognises the replay
    assert app.transport.sent == ["authorization_code", "authorization_code"]
    assert sandbox.state.counters["code_replays"] == 1


def test_code_of_another_flow_fails_the_verifier_check(app: VendorApp) -> None:
    with httpx.Client() as browser:
        a = _query(walk_hosted_pages(_connect(app, browser, "cust-a")))
        b = _query(walk_hosted_pages(_connect(app, browser, "cust-b")))
        swapped = app.redirect_uri + "?" + urlencode({"code": a["code"], "state": b["state"]})
        assert browser.get(swapped).status_code == 400
    assert [type(e) for e in app.errors] == [InvalidGrantError]
    assert app.transport.sent == ["authorization_code"]


def test_issuer_mismatch_sends_no_token_request(app: VendorApp) -> None:
    with httpx.Client() as browser:
        q = _query(walk_hosted_pages(_connect(app, browser)))
        mixed_up = app.redirect_uri + "?" + urlencode({**q, "iss": "https://evil.example"})
        assert browser.get(mixed_up).status_code == 400
    assert [type(e) for e in app.errors] == [StateMismatchError]
    assert app.transport.sent == []


def test_redirect_uri_one_character_off(
    app: VendorApp, sandbox: RunningSandbox, sqlite_vault: TokenVault
) -> None:
    # 1. at the authorization server: no redirect at all, so no callback and no exchange
    pair = new_pkce_pair()
    url = build_authorization_url(
        authorization_endpoint=sandbox.url("/oauth/authorize"),
        client_id=app.manager.client_id,
        redirect_uri=app.redirect_uri + "x",
        state="s-1",
        code_challenge=pair.challenge,
    )
    r = httpx.get(url)
    assert r.status_code == 400
    assert "location" not in r.headers
    # 2. at the token endpoint: the exchange repeats a redirect URI one character off
    sqlite_vault.create_authorization_session(
        state="s-2",
        client_id=app.manager.client_id,
        customer_id="cust-1",
        redirect_uri=app.redirect_uri + "/",
        code_verifier=pair.verifier,
        ttl=app.manager.session_ttl,
    )
    url = build_authorization_url(
        authorization_endpoint=sandbox.url("/oauth/authorize"),
        client_id=app.manager.client_id,
        redirect_uri=app.redirect_uri,
        state="s-2",
        code_challenge=pair.challenge,
    )
    with httpx.Client() as browser:
        assert browser.get(walk_hosted_pages(url)).status_code == 400
    assert [type(e) for e in app.errors] == [InvalidGrantError]
    assert app.transport.sent == ["authorization_code"]


def test_token_refresh_proxy_never_hands_out_the_refresh_token(
    app: VendorApp, sandbox: RunningSandbox, sqlite_vault: TokenVault
) -> None:
    with httpx.Client() as browser:
        assert browser.get(walk_hosted_pages(_connect(app, browser))).status_code == 200
        grant = sqlite_vault.get_grant(client_id=app.manager.client_id, customer_id="cust-1")
        assert grant.token is not None
        assert grant.token.refresh_token is not None
        r = browser.post(f"{app.base_url}/token/refresh", headers={"X-Customer": "cust-1"})
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"access_token", "token_type", "scope", "expires_at", "expires_in"}
        assert grant.token.refresh_token.get_secret_value() not in r.text
        assert body["access_token"] == grant.token.access_token.get_secret_value()
        assert r.headers["cache-control"] == "no-store"
        other = browser.post(f"{app.base_url}/token/refresh", headers={"X-Customer": "cust-9"})
        assert other.status_code == 404


def test_unreachable_token_endpoint_is_a_typed_transient_error(app: VendorApp) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client() as browser:
        callback = walk_hosted_pages(_connect(app, browser))
        app.transport.inner = httpx.MockTransport(refuse)  # type: ignore[assignment]
        assert browser.get(callback).status_code == 400
    assert [type(e) for e in app.errors] == [TransportError]
    assert app.errors[0].transient
