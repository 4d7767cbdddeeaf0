"""The httpx.Auth classes of wattplan.nomos, through httpx.MockTransport."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from wattplan.exceptions import MalformedResponseError, OAuthError
from wattplan.nomos import ClientCredentials, basic_auth_header


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _server(
    token_bodies: list[tuple[int, object]], api_status: list[int]
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # a copy: httpx re-sends the same Request object with new headers
        seen.append(
            httpx.Request(
                request.method, request.url, headers=request.headers, content=request.content
            )
        )
        if request.url.path == "/oauth/token":
            status, body = token_bodies.pop(0)
            return httpx.Response(status, json=body)
        return httpx.Response(api_status.pop(0) if api_status else 200, json={})

    return httpx.MockTransport(handler), seen


def test_basic_header_form_encodes_id_and_secret() -> None:
    header = basic_auth_header("app:1", "s&cret ")
    decoded = base64.b64decode(header.split()[1]).decode()
    assert decoded == "app%3A1:s%26cret+"


def test_token_without_scope_is_fine_and_cached() -> None:
    clock = _Clock()
    transport, seen = _server(
        [(200, {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})], []
    )
    auth = ClientCredentials(
        client_id="id", client_secret="sec", token_url="https://api.x/oauth/token", clock=clock
    )
    with httpx.Client(transport=transport, auth=auth) as http:
        for _ in range(3):
            assert http.get("https://api.x/subscriptions").status_code == 200
    token_requests = [r for r in seen if r.url.path == "/oauth/token"]
    assert len(token_requests) == 1
    form = parse_qs(token_requests[0].content.decode())
    assert form == {"grant_type": ["client_credentials"]}
    assert token_requests[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_requests[0].headers["authorization"].startswith("Basic ")
    assert seen[-1].headers["authorization"] == "Bearer at-1"


def test_early_refresh_stays_below_half_a_short_lifetime() -> None:
    clock = _Clock()
    transport, seen = _server(
        [
            (200, {"access_token": "a", "expires_in": 60}),
            (200, {"access_token": "b", "expires_in": 60}),
        ],
        [],
    )
    auth = ClientCredentials(
        client_id="id",
        client_secret="sec",
        token_url="https://api.x/oauth/token",
        early_refresh_s=120,
        clock=clock,
    )
    with httpx.Client(transport=transport, auth=auth) as http:
        http.get("https://api.x/a")
        clock.now += timedelta(seconds=29)
        http.get("https://api.x/a")
        assert auth.tokens_fetched == 1  # a 120 s margin on a 60 s token would refetch always
        clock.now += timedelta(seconds=2)
        http.get("https://api.x/a")
    assert auth.tokens_fetched == 2
    assert seen[-1].headers["authorization"] == "Bearer b"


def test_a_401_refetches_once_and_retries_once() -> None:
    transport, seen = _server(
        [
            (200, {"access_token": "old", "expires_in": 3600}),
            (200, {"access_token": "new", "expires_in": 3600}),
        ],
        [401, 401],
    )
    auth = ClientCredentials(
        client_id="id", client_secret="sec", token_url="https://api.x/oauth/token"
    )
    with httpx.Client(transport=transport, auth=auth) as http:
        r = http.get("https://api.x/subscriptions")
    assert r.status_code == 401  # retried once only
    api = [q.headers["authorization"] for q in seen if q.url.path != "/oauth/token"]
    assert api == ["Bearer old", "Bearer new"]


def test_token_errors_are_typed_and_hold_no_secret() -> None:
    body = {
        "code": "UNAUTHORIZED",
        "message": "client authentication failed",
        "requestId": "r",
        "docs": "d",
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    transport, _ = _server([(401, body)], [])
    auth = ClientCredentials(
        client_id="id", client_secret="sec-123", token_url="https://api.x/oauth/token"
    )
    with httpx.Client(transport=transport, auth=auth) as http, pytest.raises(OAuthError) as info:
        http.get("https://api.x/subscriptions")
    assert info.value.error == "invalid_client"
    assert info.value.status_code == 401
    assert "sec-123" not in str(info.value)


def test_token_response_without_access_token_is_malformed() -> None:
    transport, _ = _server([(200, {"token_type": "Bearer"})], [])
    auth = ClientCredentials(
        client_id="id", client_secret="s", token_url="https://api.x/oauth/token"
    )
    with (
        httpx.Client(transport=transport, auth=auth) as http,
        pytest.raises(MalformedResponseError),
    ):
        http.get("https://api.x/subscriptions")
