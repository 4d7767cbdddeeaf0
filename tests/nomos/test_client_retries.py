"""Retry policy of NomosClient, driven through httpx.MockTransport with an injected sleep."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import httpx
import pytest

from wattplan.exceptions import RateLimitedError, ServerError, TransportError, UnauthorizedError
from wattplan.nomos import NomosClient, RetryPolicy

OK = {"object": "list", "items": [], "has_more": False, "next_page": None}


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"code": code, "message": "m", "requestId": "r", "docs": "d"}
    return httpx.Response(status, json=body, headers=headers or {})


def _client(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **kw: object
) -> NomosClient:
    return NomosClient(
        base_url="https://api.example",
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        rng=random.Random(7),
        **kw,  # type: ignore[arg-type]
    )


def test_429_honours_retry_after_and_then_succeeds() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 2:
            return _error(429, "TOO_MANY_REQUESTS", {"retry-after": "2"})
        return httpx.Response(200, json=OK)

    sleeps: list[float] = []
    assert _client(handler, sleeps).subscriptions() == []
    assert len(calls) == 3
    assert len(sleeps) == 2
    assert all(2.0 <= s <= 2.2 for s in sleeps)  # what was asked, plus at most 10 % jitter


def test_429_with_ratelimit_reset_only() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return _error(429, "TOO_MANY_REQUESTS", {"ratelimit-reset": "4"})
        return httpx.Response(200, json=OK)

    sleeps: list[float] = []
    _client(handler, sleeps).subscriptions()
    assert 4.0 <= sleeps[0] <= 4.4


def test_endless_429s_stop_after_a_bounded_number_of_tries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(429, "TOO_MANY_REQUESTS", {"retry-after": "1"})

    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=5)
    with pytest.raises(RateLimitedError) as info:
        _client(handler, sleeps, retry=policy).subscriptions()
    assert calls == 5
    assert len(sleeps) == 4
    assert sum(sleeps) <= policy.max_total_wait_s
    assert info.value.retry_after_s == 1.0
    assert info.value.request_id == "r"


def test_a_long_retry_after_is_raised_not_waited_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _error(429, "TOO_MANY_REQUESTS", {"retry-after": "3600"})

    sleeps: list[float] = []
    with pytest.raises(RateLimitedError) as info:
        _client(handler, sleeps).subscriptions()
    assert sleeps == []
    assert info.value.retry_after_s == 3600.0
    assert info.value.transient


def test_5xx_backoff_is_capped_jittered_and_bounded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(500, "INTERNAL_SERVER_ERROR")

    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=6, backoff_base_s=1.0, backoff_cap_s=3.0)
    with pytest.raises(ServerError):
        _client(handler, sleeps, retry=policy).subscriptions()
    assert calls == 6
    assert len(sleeps) == 5
    assert all(0.0 <= s <= 3.0 for s in sleeps)
    assert len(set(sleeps)) == 5  # jittered, not a fixed ladder


def test_total_wait_budget_ends_retrying() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _error(429, "TOO_MANY_REQUESTS", {"retry-after": "20"})

    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=10, max_total_wait_s=45.0)
    with pytest.raises(RateLimitedError):
        _client(handler, sleeps, retry=policy).subscriptions()
    assert len(sleeps) == 2
    assert sum(sleeps) <= 45.0


def test_timeouts_are_retried_on_get_then_wrapped() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    sleeps: list[float] = []
    with pytest.raises(TransportError, match="timed out") as info:
        _client(handler, sleeps).subscriptions()
    assert calls == 4
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_transient_5xx_then_success() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return _error(503, "INTERNAL_SERVER_ERROR")
        return httpx.Response(200, json=OK)

    sleeps: list[float] = []
    assert _client(handler, sleeps).subscriptions() == []
    assert calls == 3


def test_5xx_is_not_retried_for_writes() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(500, "INTERNAL_SERVER_ERROR")

    sleeps: list[float] = []
    client = _client(handler, sleeps)
    with pytest.raises(ServerError):
        client._send("POST", "/load-forecasts")
    assert calls == 1
    assert sleeps == []


def test_4xx_is_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(401, "UNAUTHORIZED")

    sleeps: list[float] = []
    with pytest.raises(UnauthorizedError):
        _client(handler, sleeps).subscriptions()
    assert calls == 1


def test_headers_and_pagination() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "cursor" not in request.url.params:
            item = {"id": "sub_1", "status": "active", "customer": "cus_1"}
            return httpx.Response(
                200, json={"object": "list", "items": [item], "has_more": True, "next_page": "c2"}
            )
        item = {"id": "sub_2", "status": "ended", "customer": {"id": "cus_2"}}
        return httpx.Response(200, json={"object": "list", "items": [item], "has_more": False})

    subs = _client(handler, []).subscriptions(filters={"created_at[gte]": "2026-01-01"})
    assert [s.id for s in subs] == ["sub_1", "sub_2"]
    assert subs[1].customer_id == "cus_2"
    assert seen[0].headers["x-api-version"] == "2026-05-27.curie"
    assert seen[0].url.params["filter[created_at][gte]"] == "2026-01-01"
    assert seen[1].url.params["cursor"] == "c2"


def test_dates_not_datetimes() -> None:
    from datetime import UTC, datetime

    client = _client(lambda r: httpx.Response(200, json={}), [])
    with pytest.raises(TypeError, match="not a datetime"):
        client.prices("sub_1", datetime(2026, 1, 1, tzinfo=UTC), "2026-01-02")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        client.prices("sub_1", "01.01.2026", "2026-01-02")


def test_ids_are_quoted_into_the_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return _error(404, "NOT_FOUND")

    with pytest.raises(Exception, match="404"):
        _client(handler, []).subscription("../customers")
    assert seen == ["/subscriptions/..%2Fcustomers"]


def test_repr_and_messages_hold_no_secret() -> None:
    from wattplan.nomos import BearerToken, ClientCredentials

    token = "secret-token-value"
    assert token not in repr(BearerToken(token))
    cc = ClientCredentials(client_id="id", client_secret="s3cr3t-value", token_url="https://x/t")
    assert "s3cr3t-value" not in repr(cc)
    body = json.dumps({"code": "UNAUTHORIZED", "message": "bad", "requestId": "q", "docs": "d"})
    handler_seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        handler_seen.append(request.headers["authorization"])
        return httpx.Response(401, content=body, headers={"content-type": "application/json"})

    client = NomosClient(
        base_url="https://api.example",
        auth=BearerToken(token),
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(UnauthorizedError) as info:
        client.subscriptions()
    assert handler_seen == [f"Bearer {token}"]
    assert token not in str(info.value)
    assert token not in repr(client)
