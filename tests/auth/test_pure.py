"""The pure protocol parts: PKCE, URLs, token requests and answers, callbacks."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from wattplan.auth import (
    OAuthConfig,
    Token,
    build_authorization_code_request,
    build_authorization_url,
    build_client_credentials_request,
    build_refresh_request,
    code_challenge_s256,
    generate_code_verifier,
    new_pkce_pair,
    parse_callback,
    parse_token_response,
)
from wattplan.exceptions import AccessDeniedError, InvalidGrantError, OAuthError

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the spring-forward night in Europe/Berlin
CONFIG = OAuthConfig.for_base_url(
    "https://api.example.test/",
    client_id="app 1:x",
    client_secret="s3cr%t:+",
    redirect_uri="https://vendor.test/cb",
    scope="read:*",
)


def test_verifier_is_fresh_and_in_the_unreserved_set() -> None:
    verifiers = {generate_code_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    for v in verifiers:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", v)
    assert len(generate_code_verifier(32)) == 43
    assert len(generate_code_verifier(96)) == 128
    with pytest.raises(ValueError, match="between 32 and 96"):
        generate_code_verifier(31)


def test_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    with pytest.raises(ValueError, match="43 to 128"):
        code_challenge_s256("too-short")
    pair = new_pkce_pair()
    assert pair.method == "S256"
    assert pair.challenge == code_challenge_s256(pair.verifier)
    assert pair.verifier not in repr(pair)


def test_authorization_url_carries_s256_and_no_verifier() -> None:
    pair = new_pkce_pair()
    url = build_authorization_url(
        authorization_endpoint="https://as.test/oauth/authorize?tenant=7",
        client_id="app",
        redirect_uri="http://127.0.0.1:8765/callback",
        state="st-1",
        code_challenge=pair.challenge,
        scope="read:* openid",
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path == "/oauth/authorize"
    assert query["tenant"] == ["7"]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [pair.challenge]
    assert query["redirect_uri"] == ["http://127.0.0.1:8765/callback"]
    assert query["scope"] == ["read:* openid"]
    assert pair.verifier not in url
    with pytest.raises(ValueError, match="override"):
        build_authorization_url(
            authorization_endpoint="https://as.test/a",
            client_id="a",
            redirect_uri="https://x/cb",
            state="s",
            code_challenge=pair.challenge,
            extra={"state": "evil"},
        )


def test_token_requests_use_basic_auth_with_form_encoded_credentials() -> None:
    req = build_authorization_code_request(CONFIG, code="c0de", code_verifier="v" * 43)
    assert req.url == "https://api.example.test/oauth/token"
    basic = base64.b64decode(req.headers["Authorization"].removeprefix("Basic ")).decode()
    assert basic == "app+1%3Ax:s3cr%25t%3A%2B"  # form encoding: a space is "+"
    assert dict(req.data) == {
        "grant_type": "authorization_code",
        "code": "c0de",
        "redirect_uri": "https://vendor.test/cb",
        "code_verifier": "v" * 43,
    }
    assert "c0de" not in repr(req)
    refresh = build_refresh_request(CONFIG, refresh_token=SecretStr("rt-1"))
    assert dict(refresh.data) == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert "rt-1" not in repr(refresh)
    cc = build_client_credentials_request(CONFIG)
    assert dict(cc.data) == {"grant_type": "client_credentials", "scope": "read:*"}
    public = OAuthConfig(
        client_id="pub", client_secret=None, authorization_endpoint="a", token_endpoint="t"
    )
    assert build_client_credentials_request(public).data["client_id"] == "pub"
    assert "Authorization" not in build_client_credentials_request(public).headers


def _body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_expiry_counts_from_request_start_and_scope_may_be_missing() -> None:
    token = parse_token_response(
        status_code=200,
        body=_body(access_token="at", token_type="bearer", expires_in=3600, refresh_token="rt"),
        requested_at=T0,
        requested_scope="read:*",
    )
    assert token.expires_at == T0 + timedelta(hours=1)
    assert token.scope == "read:*"
    assert token.refresh_token is not None
    assert token.refresh_token.get_secret_value() == "rt"
    assert token.expires_within(timedelta(minutes=5), now=T0 + timedelta(minutes=55))
    assert not token.expires_within(timedelta(minutes=5), now=T0 + timedelta(minutes=54))
    with pytest.raises(ValueError, match="timezone-aware"):
        token.expires_within(timedelta(0), now=datetime(2026, 1, 1))


def test_refresh_answer_without_refresh_token_keeps_the_old_one() -> None:
    token = parse_token_response(
        status_code=200,
        body=_body(access_token="at2", token_type="Bearer", expires_in=60, scope="read:*"),
        requested_at=T0,
        previous_refresh_token=SecretStr("old-rt"),
    )
    assert token.refresh_token is not None
    assert token.refresh_token.get_secret_value() == "old-rt"
    assert token.scope == "read:*"
    no_expiry = parse_token_response(
        status_code=200, body=_body(access_token="a", token_type="Bearer"), requested_at=T0
    )
    assert no_expiry.expires_at is None
    assert not no_expiry.expires_within(timedelta(hours=1), now=T0 + timedelta(days=9))


@pytest.mark.parametrize(
    ("status", "body", "cls", "error", "transient"),
    [
        (
            400,
            _body(error="invalid_grant", error_description="bad"),
            InvalidGrantError,
            "invalid_grant",
            False,
        ),
        (401, _body(error="invalid_client"), OAuthError, "invalid_client", False),
        (
            401,
            _body(code="UNAUTHORIZED", message="Invalid or malformed token", requestId="req-9"),
            InvalidGrantError,
            "UNAUTHORIZED",
            False,
        ),
        (
            401,
            _body(error={"code": "UNAUTHORIZED", "message": "old shape"}),
            InvalidGrantError,
            "UNAUTHORIZED",
            False,
        ),
        (503, b"<html>down</html>", OAuthError, "server_error", True),
        (
            429,
            _body(code="TOO_MANY_REQUESTS", message="Wait"),
            OAuthError,
            "TOO_MANY_REQUESTS",
            True,
        ),
        (200, b"not json", OAuthError, "invalid_response", False),
        (200, _body(token_type="Bearer"), OAuthError, "invalid_response", False),
        (200, _body(access_token="a", token_type="mac"), OAuthError, "invalid_response", False),
    ],
)
def test_token_errors_are_typed(
    status: int, body: bytes, cls: type[OAuthError], error: str, transient: bool
) -> None:
    with pytest.raises(cls) as info:
        parse_token_response(status_code=status, body=body, requested_at=T0)
    assert type(info.value) is cls
    assert info.value.error == error
    assert info.value.transient is transient


def test_flat_error_keeps_request_id_for_support() -> None:
    body = _body(code="UNAUTHORIZED", message="Invalid or malformed token", requestId="req-9")
    with pytest.raises(InvalidGrantError, match="req-9"):
        parse_token_response(status_code=401, body=body, requested_at=T0)


def test_callback_checks_error_first() -> None:
    with pytest.raises(AccessDeniedError):
        parse_callback({"error": "access_denied", "state": "s", "code": "c"})
    with pytest.raises(OAuthError) as info:
        parse_callback({"error": "server_error", "error_description": "x" * 500})
    assert info.value.error == "server_error"
    assert len(str(info.value)) < 260
    with pytest.raises(OAuthError, match="no state"):
        parse_callback({"code": "c"})
    with pytest.raises(OAuthError, match="neither code nor error"):
        parse_callback({"state": "s"})
    ok = parse_callback({"code": "the-code", "state": "s", "iss": "https://as"})
    assert (ok.code, ok.state, ok.iss) == ("the-code", "s", "https://as")
    assert "the-code" not in repr(ok)


def test_token_repr_hides_secrets() -> None:
    token = Token(
        access_token=SecretStr("AT-SECRET"),
        refresh_token=SecretStr("RT-SECRET"),
        expires_at=T0,
        scope="read:*",
    )
    text = repr(token) + str(token)
    assert "AT-SECRET" not in text
    assert "RT-SECRET" not in text
    assert "read:*" in text
    with pytest.raises(ValueError, match="timezone-aware"):
        Token(access_token=SecretStr("a"), expires_at=datetime(2026, 1, 1))


def test_revocation_request_hints_the_refresh_token() -> None:
    from wattplan.auth import build_revocation_request

    req = build_revocation_request(CONFIG, refresh_token=SecretStr("rt-9"))
    assert req.url == "https://api.example.test/oauth/revoke"
    assert dict(req.data) == {"token": "rt-9", "token_type_hint": "refresh_token"}
    assert "rt-9" not in repr(req)
    no_endpoint = OAuthConfig(
        client_id="a", client_secret=None, authorization_endpoint="x", token_endpoint="y"
    )
    with pytest.raises(ValueError, match="revocation_endpoint"):
        build_revocation_request(no_endpoint, refresh_token=SecretStr("r"))
