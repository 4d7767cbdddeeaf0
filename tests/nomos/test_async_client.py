"""AsyncNomosClient: the sync client's retry tests re-run on it, plus what only async has.

The sandbox tests of tests/nomos/test_client_sandbox.py run on both clients (its ``nomos``
fixture is parametrized); here the retry-policy tests run again with ``NomosClient``
replaced by the async client, and the async auth flows and concurrency on one event loop
are checked against the sandbox over loopback.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.nomos import test_client_retries as retries
from tests.nomos._async import SyncDriven
from tests.sandbox.oauth_helpers import customer_token
from wattplan.exceptions import NomosError, TransportError
from wattplan.nomos import AsyncNomosClient, BearerToken, ClientCredentials, RetryPolicy
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningSandbox

DEMO_SUB = "sub_demo00000000000000000001"
RETRY_TESTS = sorted(
    name for name in vars(retries) if name.startswith("test_") and callable(vars(retries)[name])
)


@pytest.fixture
def async_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SyncDriven]]:
    """``NomosClient`` in the retry tests' module becomes a sync-driven async client."""
    made: list[SyncDriven] = []

    def make(**kwargs: Any) -> SyncDriven:
        client = SyncDriven(**kwargs)
        made.append(client)
        return client

    monkeypatch.setattr(retries, "NomosClient", make)
    yield made
    for client in made:
        client.close()


@pytest.mark.parametrize("name", RETRY_TESTS)
def test_retry_policy_is_the_sync_one(name: str, async_clients: list[SyncDriven]) -> None:
    getattr(retries, name)()
    assert async_clients, "the test built no client: it did not run on the async one"
    assert all(isinstance(c.client, AsyncNomosClient) for c in async_clients)


def test_waiting_between_retries_does_not_block_the_loop() -> None:
    ticks = 0
    seen: list[int] = []  # the ticker's count when each request arrives

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(ticks)
        if len(seen) == 1:
            return retries._error(503, "INTERNAL_SERVER_ERROR")
        return httpx.Response(200, json=retries.OK)

    async def main() -> list[Any]:
        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker starts before the first request
        async with AsyncNomosClient(
            base_url="https://api.example",
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(backoff_base_s=0.3, backoff_cap_s=0.3),
            rng=random.Random(1),  # a backoff of about 0.13 s with this seed
        ) as client:
            subs = await client.subscriptions()
        task.cancel()
        return subs

    subs = asyncio.run(main())
    assert subs == []
    assert len(seen) == 2
    # a blocking wait (time.sleep) would keep the ticker from running between the two
    # requests however fast or slow the machine is
    assert seen[1] > seen[0], "the event loop stood still while the client waited"


# -- against the sandbox over loopback -----------------------------------------------


def test_concurrent_calls_on_one_loop(sandbox: RunningSandbox) -> None:
    token = customer_token(sandbox)

    async def main() -> list[int]:
        async with AsyncNomosClient(
            base_url=sandbox.base_url,
            auth=BearerToken(token),
            retry=RetryPolicy(max_attempts=1),  # any error would surface
        ) as client:
            series = await asyncio.gather(
                *(client.prices_series(DEMO_SUB, "2026-01-20", "2026-01-21") for _ in range(30))
            )
        assert len({round(float(s.sum()), 6) for s in series}) == 1
        return [len(s) for s in series]

    before = sandbox.state.counters["api_requests"]
    assert asyncio.run(main()) == [192] * 30
    assert sandbox.state.counters["api_requests"] - before == 30


def test_slow_answers_time_out_as_transport_errors(sandbox: RunningSandbox) -> None:
    sandbox.state.faults.delay_s = 2.0

    async def main() -> None:
        async def no_wait(_s: float) -> None:
            return None

        async with AsyncNomosClient(
            base_url=sandbox.base_url,
            auth=BearerToken(customer_token(sandbox)),
            timeout_s=0.2,
            retry=RetryPolicy(max_attempts=2),
            sleep=no_wait,
        ) as client:
            await client.subscriptions()

    with pytest.raises(TransportError) as info:
        asyncio.run(main())
    assert info.value.transient


def _credentials(sandbox: RunningSandbox) -> ClientCredentials:
    return ClientCredentials(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        token_url=sandbox.url("/oauth/token"),
        clock=sandbox.clock.now,
    )


def test_client_credentials_are_cached_and_renewed_async(sandbox: RunningSandbox) -> None:
    sandbox.clock.set(datetime.now(UTC))
    auth = _credentials(sandbox)

    async def main() -> None:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=auth) as client:
            assert len(await client.subscriptions()) == 3  # the organisation sees everyone
            await client.customers()
            assert auth.tokens_fetched == 1
            sandbox.clock.advance(timedelta(minutes=59))  # inside the early-refresh margin
            await client.customers()
            assert auth.tokens_fetched == 2
            with pytest.raises(NomosError, match="not active"):
                await client.prices_series(
                    "sub_ended0000000000000000002", "2025-01-01", "2025-01-01"
                )
            # the server revokes the token early: one refetch, one retry
            token = auth._token
            assert token is not None
            async with httpx.AsyncClient() as plain:
                await plain.post(
                    sandbox.url("/oauth/revoke"),
                    data={"token": token.access_token},
                    auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
                )
            assert len(await client.subscriptions()) == 3
            assert auth.tokens_fetched == 3

    asyncio.run(main())
    assert sandbox.state.counters["client_credentials_grants_served"] == 3


def test_a_burst_of_coroutines_fetches_one_client_credentials_token(
    sandbox: RunningSandbox,
) -> None:
    sandbox.clock.set(datetime.now(UTC))
    sandbox.state.faults.token_delay_s = 0.3  # every coroutine arrives while it is fetched
    auth = _credentials(sandbox)

    async def main() -> list[int]:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=auth) as client:
            found = await asyncio.gather(*(client.subscriptions() for _ in range(20)))
        return [len(subs) for subs in found]

    assert asyncio.run(main()) == [3] * 20
    assert auth.tokens_fetched == 1
    assert sandbox.state.counters["client_credentials_grants_served"] == 1


def test_one_auth_serves_two_event_loops_one_after_another(sandbox: RunningSandbox) -> None:
    sandbox.clock.set(datetime.now(UTC))
    auth = _credentials(sandbox)

    async def count() -> int:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=auth) as client:
            counts = await asyncio.gather(*(client.subscriptions() for _ in range(3)))
        return sum(len(c) for c in counts)

    assert asyncio.run(count()) == 9
    assert asyncio.run(count()) == 9  # a new loop: the lock of the first is not reused
    assert auth.tokens_fetched == 1


def test_sync_and_async_clients_share_one_credentials_auth(sandbox: RunningSandbox) -> None:
    from wattplan.nomos import NomosClient

    sandbox.clock.set(datetime.now(UTC))
    auth = _credentials(sandbox)
    results: list[int] = []
    done = threading.Event()

    def in_thread() -> None:
        with NomosClient(base_url=sandbox.base_url, auth=auth) as client:
            results.append(len(client.subscriptions()))
        done.set()

    async def main() -> int:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=auth) as client:
            return len(await client.subscriptions())

    results.append(asyncio.run(main()))
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=60)
    assert done.is_set()
    assert results == [3, 3]
    assert auth.tokens_fetched == 1  # the async side's token served the sync side
