"""The sandbox's OAuth 2.0 authorization server, tested over real HTTP on loopback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from tests.sandbox.oauth_helpers import (
    DEV_AUTH,
    OTHER_AUTH,
    OTHER_REDIRECT_URI,
    REDIRECT_URI,
    authorize_code,
    consent,
    customer_tokens,
    exchange,
    new_verifier,
    query_of,
    refresh,
    s256,
)
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEMO_EMAIL, RunningSandbox, SandboxConfig


def _error(r: httpx.Response) -> str:
    body = r.json()
    assert {"code", "message", "requestId", "docs"} <= set(body)
    return str(body["error"])


def test_metadata_document(sandbox: RunningSandbox) -> None:
    meta = httpx.get(sandbox.url("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == sandbox.base_url
    assert meta["token_endpoint"] == sandbox.base_url + "/oauth/token"
    assert meta["authorization_endpoint"] == sandbox.base_url + "/oauth/authorize"
    assert meta["code_challenge_methods_supported"] == ["S256", "plain"]
    assert set(meta["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]


def test_full_flow_issues_a_read_only_60_minute_customer_grant(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    location = consent(sandbox, challenge=s256(verifier), scope="read:* write:*")
    assert location.startswith(REDIRECT_URI + "?")
    params = query_of(location)
    assert params["state"] == "st-123"
    r = exchange(sandbox, params["code"], verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read:*"  # customer tokens never get write:*
    assert len(str(body["refresh_token"])) == 64
    assert sandbox.state.counters["authorization_code_grants_served"] == 1


def test_plain_pkce_is_accepted(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    code = query_of(consent(sandbox, challenge=verifier, method="plain"))["code"]
    assert exchange(sandbox, code, verifier).status_code == 200


@pytest.mark.parametrize(
    ("verifier_sent", "expected"),
    [("wrong", "invalid_grant"), (None, "invalid_grant"), ("short", "invalid_grant")],
)
def test_pkce_verification(
    sandbox: RunningSandbox, verifier_sent: str | None, expected: str
) -> None:
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    sent = {"wrong": new_verifier(), None: None, "short": verifier[:42]}[verifier_sent]
    r = exchange(sandbox, code, sent)
    assert r.status_code == 401
    assert _error(r) == expected
    # the code is burnt even by a failed attempt
    assert _error(exchange(sandbox, code, verifier)) == "invalid_grant"


def test_verifier_without_challenge_is_a_downgrade(sandbox: RunningSandbox) -> None:
    code = query_of(consent(sandbox, challenge=None))["code"]
    r = exchange(sandbox, code, new_verifier())
    assert _error(r) == "invalid_grant"


def test_code_is_single_use_and_a_replay_revokes_its_grant(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    first = exchange(sandbox, code, verifier)
    assert first.status_code == 200
    replay = exchange(sandbox, code, verifier)
    assert replay.status_code == 401
    assert _error(replay) == "invalid_grant"
    assert sandbox.state.counters["code_replays"] == 1
    # RFC 6749 §10.5: what was issued from the replayed code is revoked
    assert refresh(sandbox, str(first.json()["refresh_token"])).status_code == 401


def test_code_expires_after_ten_minutes(sandbox: RunningSandbox) -> None:
    sandbox.clock.set(sandbox.clock.now())
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    sandbox.clock.advance(timedelta(seconds=599))
    assert exchange(sandbox, code, verifier).status_code == 200

    code = authorize_code(sandbox, verifier)
    sandbox.clock.advance(timedelta(seconds=600))
    r = exchange(sandbox, code, verifier)
    assert r.status_code == 401
    assert _error(r) == "invalid_grant"


def test_refresh_rotates_on_every_use(sandbox: RunningSandbox) -> None:
    tokens = customer_tokens(sandbox)
    rt1 = str(tokens["refresh_token"])
    r2 = refresh(sandbox, rt1)
    assert r2.status_code == 200
    rt2 = str(r2.json()["refresh_token"])
    assert rt2 != rt1
    assert r2.json()["access_token"] != tokens["access_token"]
    r3 = refresh(sandbox, rt2)
    assert r3.status_code == 200
    assert sandbox.state.refresh_grants_served == 2


def test_replayed_refresh_token_revokes_the_whole_grant(sandbox: RunningSandbox) -> None:
    rt1 = str(customer_tokens(sandbox)["refresh_token"])
    r2 = refresh(sandbox, rt1)
    rt2 = str(r2.json()["refresh_token"])
    access2 = str(r2.json()["access_token"])
    replay = refresh(sandbox, rt1)
    assert replay.status_code == 401
    assert replay.json()["code"] == "UNAUTHORIZED"
    assert _error(replay) == "invalid_grant"
    # strict: the legitimate, newest refresh token is dead too, and so is its access token
    assert refresh(sandbox, rt2).status_code == 401
    assert sandbox.state.counters["refresh_reuse_detected"] == 1
    assert sandbox.state.oauth.verify_access_token(access2) is None


def test_lenient_mode_rejects_the_replay_but_keeps_the_grant(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sb = sandbox_factory(SandboxConfig(strict_refresh_reuse=False))
    rt1 = str(customer_tokens(sb)["refresh_token"])
    rt2 = str(refresh(sb, rt1).json()["refresh_token"])
    assert refresh(sb, rt1).status_code == 401
    assert refresh(sb, rt2).status_code == 200


def test_revoking_one_app_leaves_the_other_apps_grant(sandbox: RunningSandbox) -> None:
    dev = customer_tokens(sandbox)
    other = customer_tokens(
        sandbox, client_id="other-app", redirect_uri=OTHER_REDIRECT_URI, auth=OTHER_AUTH
    )
    r = httpx.post(
        sandbox.url("/_sandbox/grants/revoke"), json={"client_id": "other-app", "email": DEMO_EMAIL}
    )
    assert r.json() == {"revoked": 1}
    assert refresh(sandbox, str(other["refresh_token"]), auth=OTHER_AUTH).status_code == 401
    assert refresh(sandbox, str(dev["refresh_token"])).status_code == 200


def test_rfc7009_revocation_by_the_client(sandbox: RunningSandbox) -> None:
    dev = customer_tokens(sandbox)
    other = customer_tokens(
        sandbox, client_id="other-app", redirect_uri=OTHER_REDIRECT_URI, auth=OTHER_AUTH
    )
    # another client cannot revoke the dev app's token
    r = httpx.post(
        sandbox.url("/oauth/revoke"), data={"token": dev["refresh_token"]}, auth=OTHER_AUTH
    )
    assert r.status_code == 200
    assert refresh(sandbox, str(other["refresh_token"]), auth=OTHER_AUTH).status_code == 200
    r = httpx.post(
        sandbox.url("/oauth/revoke"), data={"token": dev["refresh_token"]}, auth=DEV_AUTH
    )
    assert r.status_code == 200
    assert refresh(sandbox, str(dev["refresh_token"])).status_code == 401


def test_deny_redirects_with_access_denied_and_state(sandbox: RunningSandbox) -> None:
    location = consent(sandbox, challenge=s256(new_verifier()), decision="deny", state="xyz")
    assert location.startswith(REDIRECT_URI + "?")
    params = query_of(location)
    assert params["error"] == "access_denied"
    assert params["state"] == "xyz"
    assert "code" not in params


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/",
        REDIRECT_URI.replace("callback", "callbacc"),
        REDIRECT_URI + "?x=1",
        "http://localhost:8766/callback",
        "https://127.0.0.1:8765/callback",
        "http://127.0.0.1:8765/Callback",
    ],
)
def test_redirect_uri_must_match_exactly(sandbox: RunningSandbox, redirect_uri: str) -> None:
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "state": "s",
    }
    r = httpx.get(sandbox.url("/oauth/authorize"), params=params)
    assert r.status_code == 400
    assert "location" not in r.headers  # never redirect to an unregistered URI
    assert r.json()["code"] == "BAD_REQUEST"


def test_loopback_redirect_may_use_any_port(sandbox: RunningSandbox) -> None:
    location = consent(
        sandbox, redirect_uri="http://127.0.0.1:51234/callback", challenge=s256(new_verifier())
    )
    assert location.startswith("http://127.0.0.1:51234/callback?code=")


def test_token_request_redirect_uri_must_match_the_authorization(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    r = exchange(sandbox, code, verifier, redirect_uri=REDIRECT_URI + "/")
    assert _error(r) == "invalid_grant"


def test_unknown_client_gets_no_redirect(sandbox: RunningSandbox) -> None:
    params = {"response_type": "code", "client_id": "nope", "redirect_uri": REDIRECT_URI}
    r = httpx.get(sandbox.url("/oauth/authorize"), params=params)
    assert r.status_code == 400
    assert "location" not in r.headers


def test_errors_after_redirect_validation_go_back_with_state(sandbox: RunningSandbox) -> None:
    params = {
        "response_type": "token",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "abc",
    }
    r = httpx.get(sandbox.url("/oauth/authorize"), params=params)
    assert r.status_code == 302
    assert query_of(r.headers["location"]) == {
        "error": "unsupported_response_type",
        "error_description": "response_type must be code",
        "state": "abc",
    }
    params.update(response_type="code", code_challenge="x" * 43, code_challenge_method="S512")
    r = httpx.get(sandbox.url("/oauth/authorize"), params=params)
    assert query_of(r.headers["location"])["error"] == "invalid_request"


def test_token_endpoint_accepts_json_and_client_secret_post(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": DEV_AUTH[0],
        "client_secret": DEV_AUTH[1],
    }
    r = httpx.post(sandbox.url("/oauth/token"), json=body)
    assert r.status_code == 200, r.text
    rt = r.json()["refresh_token"]
    r = httpx.post(
        sandbox.url("/oauth/token"),
        json={"grant_type": "refresh_token", "refresh_token": rt},
        auth=DEV_AUTH,
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "auth",
    [("wattplan-dev", "wrong-secret"), ("nobody", "x"), None],
)
def test_bad_client_authentication(sandbox: RunningSandbox, auth: tuple[str, str] | None) -> None:
    r = httpx.post(
        sandbox.url("/oauth/token"), data={"grant_type": "client_credentials"}, auth=auth
    )
    assert r.status_code == 401
    assert _error(r) == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


def test_two_client_authentication_methods_are_refused(sandbox: RunningSandbox) -> None:
    r = httpx.post(
        sandbox.url("/oauth/token"),
        data={"grant_type": "client_credentials", "client_secret": DEV_AUTH[1]},
        auth=DEV_AUTH,
    )
    assert r.status_code == 400
    assert _error(r) == "invalid_request"


def test_unsupported_grant_type_and_content_type(sandbox: RunningSandbox) -> None:
    r = httpx.post(sandbox.url("/oauth/token"), data={"grant_type": "password"}, auth=DEV_AUTH)
    assert _error(r) == "unsupported_grant_type"
    r = httpx.post(
        sandbox.url("/oauth/token"),
        content=b"grant_type=client_credentials",
        headers={"content-type": "text/plain"},
        auth=DEV_AUTH,
    )
    assert _error(r) == "invalid_request"


@pytest.mark.parametrize("as_json", [False, True])
def test_client_credentials(sandbox: RunningSandbox, as_json: bool) -> None:
    payload = {"grant_type": "client_credentials"}
    r = (
        httpx.post(sandbox.url("/oauth/token"), json=payload, auth=DEV_AUTH)
        if as_json
        else httpx.post(sandbox.url("/oauth/token"), data=payload, auth=DEV_AUTH)
    )
    assert r.status_code == 200
    assert r.json()["scope"] == "read:* write:*"
    assert sandbox.state.counters["client_credentials_grants_served"] == 1


def test_client_credentials_scope_is_limited_to_the_client(sandbox: RunningSandbox) -> None:
    data = {"grant_type": "client_credentials", "scope": "write:*"}
    r = httpx.post(sandbox.url("/oauth/token"), data=data, auth=OTHER_AUTH)
    assert _error(r) == "invalid_scope"
    data["scope"] = "read"
    r = httpx.post(sandbox.url("/oauth/token"), data=data, auth=OTHER_AUTH)
    assert r.json()["scope"] == "read:*"


def test_wrong_one_time_code_is_refused_and_attempts_are_limited(
    sandbox: RunningSandbox,
) -> None:
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": s256(new_verifier()),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=sandbox.base_url) as http:
        login = http.get("/oauth/authorize", params=params, follow_redirects=True)
        request_id = login.text.split('name="request" value="')[1].split('"')[0]
        http.post("/oauth/login", data={"request": request_id, "email": DEMO_EMAIL})
        right = http.get("/_sandbox/one-time-code", params={"email": DEMO_EMAIL}).json()["code"]
        wrong = f"{(int(right) + 1) % 10**6:06d}"
        for _ in range(5):
            r = http.post("/oauth/verify", data={"request": request_id, "code": wrong})
            assert r.status_code == 400
            assert "wrong or has expired" in r.text
        r = http.post("/oauth/verify", data={"request": request_id, "code": right})
        assert r.status_code == 400  # attempts used up


def test_one_time_code_expires(sandbox: RunningSandbox) -> None:
    sandbox.clock.set(sandbox.clock.now())
    params = {"response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT_URI}
    with httpx.Client(base_url=sandbox.base_url) as http:
        login = http.get("/oauth/authorize", params=params, follow_redirects=True)
        request_id = login.text.split('name="request" value="')[1].split('"')[0]
        http.post("/oauth/login", data={"request": request_id, "email": DEMO_EMAIL})
        code = http.get("/_sandbox/one-time-code", params={"email": DEMO_EMAIL}).json()["code"]
        sandbox.clock.advance(timedelta(minutes=11))
        r = http.post("/oauth/verify", data={"request": request_id, "code": code})
        assert r.status_code == 400


def test_unknown_email_gets_the_same_page_but_no_code(sandbox: RunningSandbox) -> None:
    params = {"response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT_URI}
    with httpx.Client(base_url=sandbox.base_url) as http:
        login = http.get("/oauth/authorize", params=params, follow_redirects=True)
        request_id = login.text.split('name="request" value="')[1].split('"')[0]
        r = http.post(
            "/oauth/login",
            data={"request": request_id, "email": "stranger@example.com"},
            follow_redirects=True,
        )
        assert r.status_code == 200
        assert "six-digit code" in r.text
        r = http.get("/_sandbox/one-time-code", params={"email": "stranger@example.com"})
        assert r.status_code == 404


def test_login_flow_type_skips_consent(sandbox: RunningSandbox) -> None:
    location = consent(sandbox, challenge=s256(new_verifier()))
    assert "code=" in location
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "flow_type": "login",
        "state": "q",
    }
    with httpx.Client(base_url=sandbox.base_url) as http:
        login = http.get("/oauth/authorize", params=params, follow_redirects=True)
        request_id = login.text.split('name="request" value="')[1].split('"')[0]
        http.post("/oauth/login", data={"request": request_id, "email": DEMO_EMAIL})
        code = http.get("/_sandbox/one-time-code", params={"email": DEMO_EMAIL}).json()["code"]
        r = http.post("/oauth/verify", data={"request": request_id, "code": code})
        assert r.status_code == 303
        assert r.headers["location"].startswith(REDIRECT_URI + "?code=")


def test_auto_approve_and_headless_consent(sandbox: RunningSandbox) -> None:
    verifier = new_verifier()
    r = httpx.post(sandbox.url("/_sandbox/auto-approve"), json={"email": DEMO_EMAIL})
    assert r.status_code == 200
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "auto",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    r = httpx.get(sandbox.url("/oauth/authorize"), params=params)
    assert r.status_code == 302
    code = query_of(r.headers["location"])["code"]
    assert exchange(sandbox, code, verifier).status_code == 200

    body = {k: v for k, v in params.items() if k != "response_type"}
    r = httpx.post(sandbox.url("/_sandbox/authorize"), json={**body, "email": DEMO_EMAIL})
    code = query_of(r.json()["redirect_to"])["code"]
    assert exchange(sandbox, code, verifier).status_code == 200
    r = httpx.post(
        sandbox.url("/_sandbox/authorize"),
        json={**body, "email": DEMO_EMAIL, "decision": "deny"},
    )
    assert query_of(r.json()["redirect_to"]) == {"error": "access_denied", "state": "auto"}


def test_control_endpoints_can_be_switched_off(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sb = sandbox_factory(SandboxConfig(control_endpoints=False))
    r = httpx.get(sb.url("/_sandbox/state"))
    assert r.status_code == 401  # like any unknown path without credentials
    r = httpx.get(sb.url("/_sandbox/one-time-code"), params={"email": DEMO_EMAIL})
    assert r.status_code == 401


def test_lost_token_response_still_rotated(sandbox: RunningSandbox) -> None:
    rt1 = str(customer_tokens(sandbox)["refresh_token"])
    sandbox.state.faults.token_500_next = 1
    lost = refresh(sandbox, rt1)
    assert lost.status_code == 500
    # the server did rotate: retrying with the old token is a replay
    assert refresh(sandbox, rt1).status_code == 401
    assert sandbox.state.counters["refresh_reuse_detected"] == 1


def test_no_token_or_code_in_the_sandbox_log(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = new_verifier()
    code = authorize_code(sandbox, verifier)
    tokens = exchange(sandbox, code, verifier).json()
    refreshed = refresh(sandbox, tokens["refresh_token"]).json()
    refresh(sandbox, tokens["refresh_token"])  # a replay, logged as a revocation
    # what the server side logs (the test's own HTTP client logs its responses: not ours)
    text = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("wattplan", "uvicorn"))
    )
    assert "revoked" in text
    for secret in (
        code,
        verifier,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["refresh_token"],
        DEV_AUTH[1],
    ):
        assert secret not in text
    assert DEV_AUTH[1] not in repr(sandbox.state.config)


def test_recorded_exchanges_never_show_secrets(sandbox: RunningSandbox) -> None:
    tokens = customer_tokens(sandbox)
    httpx.get(
        sandbox.url("/subscriptions"), headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    shown = repr(list(sandbox.state.exchanges))
    assert str(tokens["access_token"]) not in shown
    assert str(tokens["refresh_token"]) not in shown
    api = [e for e in sandbox.state.exchanges if e.path == "/subscriptions"]
    assert api[0].request_headers["authorization"] == "<redacted>"


def test_pkce_can_be_required(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    sb = sandbox_factory(SandboxConfig(require_pkce=True))
    location = consent(sb, challenge=None)
    assert query_of(location)["error"] == "invalid_request"
    verifier = new_verifier()
    assert exchange(sb, authorize_code(sb, verifier), verifier).status_code == 200


def test_refresh_tokens_can_expire(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    sb = sandbox_factory(SandboxConfig(refresh_token_lifetime_s=3600))
    sb.clock.set(sb.clock.now())
    rt = str(customer_tokens(sb)["refresh_token"])
    sb.clock.advance(timedelta(hours=1, seconds=1))
    r = refresh(sb, rt)
    assert r.status_code == 401
    assert _error(r) == "invalid_grant"


def test_access_token_lifetime_is_configurable(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sb = sandbox_factory(SandboxConfig(access_token_lifetime_s=120))
    assert customer_tokens(sb)["expires_in"] == 120


def test_token_delay_widens_a_refresh_race(sandbox: RunningSandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rt = str(customer_tokens(sandbox)["refresh_token"])
    sandbox.state.faults.token_delay_s = 0.3
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = sorted(pool.map(lambda _: refresh(sandbox, rt).status_code, range(4)))
    assert codes == [200, 401, 401, 401]
    # the first replay revokes the grant; later ones meet an already dead token
    assert sandbox.state.counters["refresh_reuse_detected"] == 1
    assert sandbox.state.counters["grants_revoked"] == 1
