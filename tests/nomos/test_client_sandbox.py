"""NomosClient and AsyncNomosClient against the sandbox over real HTTP on loopback (uvicorn)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from tests.nomos._async import SyncDriven
from tests.sandbox.oauth_helpers import customer_token
from wattplan.exceptions import (
    ForbiddenError,
    MalformedResponseError,
    NomosError,
    NotFoundError,
    PricesNotPublishedError,
    ServerError,
    TransportError,
)
from wattplan.nomos import BearerToken, ClientCredentials, NomosClient, RetryPolicy
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningSandbox

BERLIN = ZoneInfo("Europe/Berlin")
DEMO_SUB = "sub_demo00000000000000000001"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture(params=["sync", "async"])
def nomos(
    request: pytest.FixtureRequest, sandbox: RunningSandbox, sleeps: list[float]
) -> Iterator[NomosClient]:
    """The sync client, and the async one driven on an event loop of its own (same tests)."""
    auth = BearerToken(customer_token(sandbox))
    make: Any = NomosClient if request.param == "sync" else SyncDriven
    with make(
        base_url=sandbox.base_url, auth=auth, sleep=sleeps.append, rng=random.Random(3)
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("day", "count", "step"),
    [("2025-10-26", 100, "15min"), ("2026-03-29", 92, "15min"), ("2025-09-30", 24, "60min")],
)
def test_acceptance_days(nomos: NomosClient, day: str, count: int, step: str) -> None:
    series = nomos.prices_series(DEMO_SUB, day, day)
    assert len(series) == count
    assert series.index.freq == pd.Timedelta(step)
    assert series.notna().all()
    assert series.index.tz_convert(BERLIN)[0] == pd.Timestamp(day, tz=BERLIN)
    frame = nomos.prices_frame(DEMO_SUB, day, day)
    parts = frame[["electricity_ct_per_kwh", "grid_ct_per_kwh", "levies_ct_per_kwh"]].sum(axis=1)
    assert (parts - frame["price_ct_per_kwh"]).abs().max() < 1e-9


def test_tomorrow_before_publication_is_an_error_not_zeros(
    sandbox: RunningSandbox, nomos: NomosClient
) -> None:
    sandbox.clock.set(datetime(2026, 11, 27, 14, 19, tzinfo=BERLIN))
    with pytest.raises(PricesNotPublishedError) as info:
        nomos.prices_series(DEMO_SUB, date(2026, 11, 27), date(2026, 11, 28))
    assert info.value.transient
    with pytest.raises(PricesNotPublishedError):
        nomos.prices_series(DEMO_SUB, "2026-11-28", "2026-11-28")
    today = nomos.prices_series(DEMO_SUB, "2026-11-27", "2026-11-27")
    assert len(today) == 96
    sandbox.clock.advance(timedelta(minutes=1))
    both = nomos.prices_series(DEMO_SUB, date(2026, 11, 27), date(2026, 11, 28))
    assert len(both) == 192
    assert both.notna().all()


def test_unpublished_as_nulls_is_also_an_error(sandbox: RunningSandbox, nomos: NomosClient) -> None:
    from wattplan.sandbox import SandboxConfig

    assert SandboxConfig().unpublished == "omit"
    sandbox.state.faults.null_amounts = True
    with pytest.raises(PricesNotPublishedError):
        nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")
    sandbox.state.faults.null_amounts = False
    sandbox.state.faults.missing_slots = True
    with pytest.raises(MalformedResponseError, match="missing inside"):
        nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")


def test_injected_429s_are_waited_out_boundedly(
    sandbox: RunningSandbox, nomos: NomosClient, sleeps: list[float]
) -> None:
    sandbox.state.faults.rate_limit_next = 3
    sandbox.state.faults.retry_after_s = 2
    series = nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")
    assert len(series) == 96
    assert len(sleeps) == 3
    assert all(2.0 <= s <= 2.2 for s in sleeps)
    assert sandbox.state.counters["faults_injected"] == 3


def test_injected_500s_are_retried(
    sandbox: RunningSandbox, nomos: NomosClient, sleeps: list[float]
) -> None:
    sandbox.state.faults.server_error_next = 2
    assert len(nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")) == 96
    assert len(sleeps) == 2
    assert all(s <= nomos.retry.backoff_cap_s for s in sleeps)


def test_a_lasting_outage_ends_after_max_attempts(
    sandbox: RunningSandbox, nomos: NomosClient, sleeps: list[float]
) -> None:
    sandbox.state.faults.server_error_next = 1000
    before = sandbox.state.counters["api_requests"]
    with pytest.raises(ServerError) as info:
        nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")
    assert info.value.request_id
    assert sandbox.state.counters["api_requests"] - before == nomos.retry.max_attempts
    assert len(sleeps) == nomos.retry.max_attempts - 1
    assert sum(sleeps) <= nomos.retry.max_total_wait_s


@pytest.mark.parametrize("mode", ["json", "content_type", "truncated"])
def test_broken_bodies_raise_a_typed_error(
    sandbox: RunningSandbox, nomos: NomosClient, mode: str
) -> None:
    sandbox.state.faults.malformed = mode  # type: ignore[assignment]
    with pytest.raises(MalformedResponseError):
        nomos.prices_series(DEMO_SUB, "2026-01-20", "2026-01-20")
    with pytest.raises(MalformedResponseError):
        nomos.subscriptions()


def test_slow_answers_time_out_as_transport_errors(sandbox: RunningSandbox) -> None:
    sandbox.state.faults.delay_s = 2.0
    with (
        NomosClient(
            base_url=sandbox.base_url,
            auth=BearerToken(customer_token(sandbox)),
            timeout_s=0.2,
            retry=RetryPolicy(max_attempts=2),
            sleep=lambda s: None,
        ) as client,
        pytest.raises(TransportError) as info,
    ):
        client.subscriptions()
    assert info.value.transient


def test_customer_token_sees_her_own_and_may_not_write(
    sandbox: RunningSandbox, nomos: NomosClient
) -> None:
    subs = nomos.subscriptions()
    assert [s.id for s in subs] == [DEMO_SUB]
    assert nomos.active_subscription().id == DEMO_SUB
    assert [c.email for c in nomos.customers()] == ["demo@example.com"]
    with pytest.raises(NotFoundError):
        nomos.subscription("sub_ended0000000000000000002")
    with pytest.raises(ForbiddenError) as info:
        nomos._send("POST", "/meter-readings")
    assert info.value.status_code == 403


def test_usage_invoices_and_file(sandbox: RunningSandbox, nomos: NomosClient) -> None:
    sandbox.clock.set(datetime(2026, 11, 28, 17, 0, tzinfo=BERLIN))
    usage = nomos.usage_frame(DEMO_SUB, start="2026-11-26", end="2026-11-28")
    assert len(usage) == 192  # end exclusive: the 26th and the 27th
    assert set(usage["type"]) == {"preliminary"}
    assert usage.index[0] == pd.Timestamp("2026-11-25T23:00:00Z")
    invoices = nomos.invoices(subscription=DEMO_SUB)
    assert invoices[0].year == 2026
    assert invoices[0].month == 10
    assert nomos.invoice(invoices[0].id) == invoices[0]
    link = nomos.invoice_file_url(invoices[0].id)
    assert httpx.get(link).content.startswith(b"%PDF")


def test_client_credentials_are_cached_and_renewed(sandbox: RunningSandbox) -> None:
    sandbox.clock.set(datetime.now(UTC))
    auth = ClientCredentials(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        token_url=sandbox.url("/oauth/token"),
        clock=sandbox.clock.now,
    )
    with NomosClient(base_url=sandbox.base_url, auth=auth) as client:
        assert len(client.subscriptions()) == 3  # the organisation sees every customer
        client.customers()
        assert auth.tokens_fetched == 1
        sandbox.clock.advance(timedelta(minutes=59))  # inside the early-refresh margin
        client.customers()
        assert auth.tokens_fetched == 2
        with pytest.raises(NomosError, match="not active"):
            client.prices_series("sub_ended0000000000000000002", "2025-01-01", "2025-01-01")
        # the server revokes the token early: one refetch, one retry
        token = auth._token
        assert token is not None
        httpx.post(
            sandbox.url("/oauth/revoke"),
            data={"token": token.access_token},
            auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        )
        assert len(client.subscriptions()) == 3
        assert auth.tokens_fetched == 3
    assert sandbox.state.counters["client_credentials_grants_served"] == 3


def test_fifty_concurrent_clients(sandbox: RunningSandbox) -> None:
    tokens = [customer_token(sandbox) for _ in range(5)]

    def work(i: int) -> tuple[int, float]:
        with NomosClient(
            base_url=sandbox.base_url,
            auth=BearerToken(tokens[i % len(tokens)]),
            retry=RetryPolicy(max_attempts=1),  # any error would surface
        ) as client:
            total = 0.0
            for _ in range(3):
                series = client.prices_series(DEMO_SUB, "2026-01-20", "2026-01-21")
                total += float(series.sum())
                client.subscriptions()
            return len(series), total

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(work, range(50)))
    assert len(results) == 50
    assert {n for n, _ in results} == {192}
    assert len({round(t, 6) for _, t in results}) == 1
