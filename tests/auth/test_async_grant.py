"""GrantAuth as an async httpx auth flow, with AsyncNomosClient against the strict sandbox.

The sandbox revokes the whole grant when a rotated refresh token comes back, so a second
refresh is never silently tolerated. The async flow runs the TokenManager's own calls in a
worker thread; these tests check that it keeps the sync flow's invariants (one refresh per
expiry, one refresh and one retry on a 401, a failed refresh leaves the stored pair alone)
and that a burst of coroutines costs a single manager call.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

import pytest

from tests.auth.test_sandbox_refresh import CUSTOMER, _config, _connect, _on_sandbox_time
from wattplan.auth import Grant, GrantStatus, TokenManager, TokenVault
from wattplan.exceptions import ReauthorizationRequiredError
from wattplan.nomos import AsyncNomosClient, RetryPolicy
from wattplan.sandbox import DEFAULT_CLIENT_ID, RunningSandbox


class CountingManager(TokenManager):
    """A real TokenManager that counts its token calls (and the threads they ran on)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.calls: Counter[int | None] = Counter()
        self.threads: set[int] = set()

    def get_token(self, customer_id: str, *, rejected_version: int | None = None) -> Grant:
        self.calls[rejected_version] += 1
        self.threads.add(threading.get_ident())
        return super().get_token(customer_id, rejected_version=rejected_version)

    def organisation_token(
        self, *, scope: str | None = None, rejected_version: int | None = None
    ) -> Grant:
        self.calls[rejected_version] += 1
        return super().organisation_token(scope=scope, rejected_version=rejected_version)


async def _burst(manager: TokenManager, sandbox: RunningSandbox, n: int) -> list[int]:
    async with AsyncNomosClient(
        base_url=sandbox.base_url,
        auth=manager.auth(CUSTOMER),
        retry=RetryPolicy(max_attempts=1),  # any error would surface
    ) as client:
        found = await asyncio.gather(*(client.subscriptions() for _ in range(n)))
    return [len(subs) for subs in found]


def test_a_burst_on_an_expired_token_refreshes_once(
    sandbox: RunningSandbox, vault: TokenVault
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    _connect(TokenManager(config=_config(sandbox), vault=v))
    sandbox.clock.advance(timedelta(minutes=61))  # the access token is now expired everywhere
    sandbox.state.faults.token_delay_s = 0.2  # every coroutine arrives during the refresh
    manager = CountingManager(config=_config(sandbox), vault=v)

    assert asyncio.run(_burst(manager, sandbox, 50)) == [1] * 50
    counters = sandbox.state.counters
    assert counters["refresh_grants_served"] == 1
    assert counters["refresh_reuse_detected"] == 0
    grant = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert grant.status is GrantStatus.ACTIVE
    assert grant.version == 2
    # single flight on the loop: the other 49 waited on the asyncio lock, then found the
    # new grant cached; the manager (and a worker thread) was asked once
    assert manager.calls == Counter({None: 1})
    assert threading.get_ident() not in manager.threads, "the vault was used on the loop"


def test_a_401_refreshes_once_and_retries_once(sandbox: RunningSandbox, vault: TokenVault) -> None:
    # the vault on real time, the sandbox an hour ahead: wattplan believes the access token
    # good, the API refuses it
    manager = CountingManager(config=_config(sandbox), vault=vault)
    _connect(manager)
    sandbox.clock.advance(timedelta(minutes=61))
    manager.calls.clear()

    assert asyncio.run(_burst(manager, sandbox, 20)) == [1] * 20
    counters = sandbox.state.counters
    assert counters["refresh_grants_served"] == 1
    assert counters["refresh_reuse_detected"] == 0
    assert vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER).version == 2
    # every coroutine that saw the 401 reported version 1 as rejected; only the first one
    # refreshed, the others were handed version 2
    assert set(manager.calls) == {None, 1}
    assert 1 <= manager.calls[1] <= 20


def test_a_failed_refresh_leaves_the_stored_pair_and_marks_the_grant(
    sandbox: RunningSandbox, vault: TokenVault
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    manager = TokenManager(config=_config(sandbox), vault=v)
    _connect(manager)
    before = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert before.token is not None
    sandbox.clock.advance(timedelta(minutes=61))
    sandbox.state.faults.token_500_next = 1  # processed (rotated), then answered 500

    async def once() -> None:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=manager.auth(CUSTOMER)) as c:
            await c.subscriptions()

    with pytest.raises(ReauthorizationRequiredError, match="refresh_outcome_unknown"):
        asyncio.run(once())
    after = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert after.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert after.version == before.version
    assert after.token is not None
    assert (
        after.token.refresh_token.get_secret_value()  # type: ignore[union-attr]
        == before.token.refresh_token.get_secret_value()  # type: ignore[union-attr]
    )
    assert sandbox.state.counters["refresh_grants_served"] == 1
    with pytest.raises(ReauthorizationRequiredError):
        asyncio.run(once())
    assert sandbox.state.counters["refresh_reuse_detected"] == 0  # never sent again
    # re-consent brings the customer back, and the async client works again
    _connect(manager)
    asyncio.run(once())
    assert manager.reauthorization_required() == []


def test_organisation_auth_from_the_vault_works_async(
    sandbox: RunningSandbox, vault: TokenVault
) -> None:
    manager = CountingManager(config=_config(sandbox), vault=_on_sandbox_time(vault, sandbox))
    auth = manager.client_credentials_auth()

    async def main() -> list[int]:
        async with AsyncNomosClient(base_url=sandbox.base_url, auth=auth) as client:
            found = await asyncio.gather(*(client.subscriptions() for _ in range(10)))
        return [len(subs) for subs in found]

    assert asyncio.run(main()) == [3] * 10  # the organisation sees every customer
    assert sandbox.state.counters["client_credentials_grants_served"] == 1
    assert sum(manager.calls.values()) == 1
