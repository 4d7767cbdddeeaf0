"""Single-flight refresh and crash safety against the real (strict) sandbox.

The sandbox revokes the whole grant when a rotated refresh token comes back, so a
second refresh with the same token is not silently tolerated: the "without the lock"
tests show that these tests can fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.auth._harness import walk_hosted_pages
from tests.auth.test_refresh import _spawn, run_together
from wattplan.auth import GrantStatus, OAuthConfig, TokenManager, TokenVault
from wattplan.exceptions import ReauthorizationRequiredError
from wattplan.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    RunningSandbox,
    SandboxConfig,
)

REDIRECT = "http://127.0.0.1:8765/callback"
CUSTOMER = "cust-1"


def _config(sandbox: RunningSandbox) -> OAuthConfig:
    return OAuthConfig.for_base_url(
        sandbox.base_url,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri=REDIRECT,
        scope="read:*",
    )


def _on_sandbox_time(vault: TokenVault, sandbox: RunningSandbox) -> TokenVault:
    """The same database, seen with the sandbox's clock (so expiry agrees on both sides)."""
    return TokenVault(
        vault.engine,
        cipher=vault._cipher,
        table_prefix=vault._grants.name[: -len("grants")],
        clock=sandbox.clock.now,
    )


def _connect(manager: TokenManager) -> None:
    start = manager.start_authorization(CUSTOMER)
    location = walk_hosted_pages(start.url)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    manager.complete_authorization(params)


def _burst(manager: TokenManager, sandbox: RunningSandbox, n: int) -> list[Any]:
    """``n`` threads, each with its own client (built beforehand), GET at the same moment."""
    clients = [httpx.Client(auth=manager.auth(CUSTOMER), timeout=60) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def one(client: httpx.Client) -> None:
        barrier.wait()
        try:
            status: Any = client.get(sandbox.url("/subscriptions")).status_code
        except Exception as exc:
            status = type(exc).__name__
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return results


def _subscriptions(manager: TokenManager, sandbox: RunningSandbox) -> int:
    with httpx.Client(auth=manager.auth(CUSTOMER), timeout=60) as client:
        return client.get(sandbox.url("/subscriptions")).status_code


@pytest.mark.slow
@pytest.mark.parametrize("single_flight", [True, False], ids=["locked", "unlocked"])
def test_50_threads_on_an_expired_token(
    sandbox: RunningSandbox, vault: TokenVault, single_flight: bool
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    _connect(TokenManager(config=_config(sandbox), vault=v))
    sandbox.clock.advance(timedelta(minutes=61))  # the access token is now expired everywhere
    manager = TokenManager(config=_config(sandbox), vault=v, single_flight=single_flight)
    results = _burst(manager, sandbox, 50)
    counters = sandbox.state.counters
    if single_flight:
        assert results == [200] * 50
        assert counters["refresh_grants_served"] == 1
        assert counters["refresh_reuse_detected"] == 0
        grant = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
        assert grant.status is GrantStatus.ACTIVE
        assert grant.version == 2
    else:  # what the lock prevents: a rotated refresh token reused, the grant revoked
        assert counters["refresh_reuse_detected"] >= 1
        assert counters["grants_revoked"] >= 1
        assert results != [200] * 50


@pytest.mark.slow
@pytest.mark.parametrize("single_flight", [True, False], ids=["locked", "unlocked"])
def test_4_processes_on_an_expired_token(
    sandbox: RunningSandbox,
    vault: TokenVault,
    database: tuple[str, str],
    encryption_key: str,
    single_flight: bool,
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    _connect(TokenManager(config=_config(sandbox), vault=v))
    sandbox.clock.advance(timedelta(minutes=61))
    offset = (sandbox.clock.now() - datetime.now(UTC)).total_seconds()
    url, prefix = database
    spec = {
        "database_url": url,
        "table_prefix": prefix,
        "encryption_key": encryption_key,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token_endpoint": sandbox.url("/oauth/token"),
        "api_url": sandbox.url("/subscriptions"),
        "customer_id": CUSTOMER,
        "clock_offset_s": offset,
        "mode": "burst",
        "single_flight": single_flight,
        "threads": 5,
    }
    results = run_together([_spawn(spec) for _ in range(4)])
    counters = sandbox.state.counters
    if single_flight:
        assert results == [200] * 20
        assert counters["refresh_grants_served"] == 1
        assert counters["refresh_reuse_detected"] == 0
    else:  # what the lock prevents
        # a race: now and then the 20 callers happen not to overlap; the tokens are then
        # fresh and valid, so let them expire and race again (a few tries at most)
        for _ in range(4):
            if counters["refresh_reuse_detected"] >= 1:
                break
            assert results == [200] * 20
            sandbox.clock.advance(timedelta(minutes=61))
            spec["clock_offset_s"] = (sandbox.clock.now() - datetime.now(UTC)).total_seconds()
            results = run_together([_spawn(spec) for _ in range(4)])
        assert counters["refresh_reuse_detected"] >= 1
        assert counters["grants_revoked"] >= 1
        assert results != [200] * 20


def test_refresh_answer_lost_at_the_server_marks_the_grant(
    sandbox: RunningSandbox, vault: TokenVault
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    manager = TokenManager(config=_config(sandbox), vault=v)
    _connect(manager)
    sandbox.clock.advance(timedelta(minutes=61))
    sandbox.state.faults.token_500_next = 1  # processed (rotated), then answered 500
    with pytest.raises(ReauthorizationRequiredError, match="refresh_outcome_unknown"):
        manager.get_token(CUSTOMER)
    grant = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert grant.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert sandbox.state.counters["refresh_grants_served"] == 1
    with pytest.raises(ReauthorizationRequiredError):
        manager.get_token(CUSTOMER)
    assert sandbox.state.counters["refresh_reuse_detected"] == 0  # never sent again
    # re-consent brings the same customer back
    assert [g.customer_id for g in manager.reauthorization_required()] == [CUSTOMER]
    _connect(manager)
    assert _subscriptions(manager, sandbox) == 200
    assert manager.reauthorization_required() == []


def test_process_killed_before_commit_marks_the_grant(
    sandbox: RunningSandbox,
    vault: TokenVault,
    database: tuple[str, str],
    encryption_key: str,
) -> None:
    v = _on_sandbox_time(vault, sandbox)
    _connect(TokenManager(config=_config(sandbox), vault=v))
    sandbox.clock.advance(timedelta(minutes=61))
    url, prefix = database
    proc = _spawn(
        {
            "database_url": url,
            "table_prefix": prefix,
            "encryption_key": encryption_key,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "token_endpoint": sandbox.url("/oauth/token"),
            "customer_id": CUSTOMER,
            "clock_offset_s": (sandbox.clock.now() - datetime.now(UTC)).total_seconds(),
            "mode": "crash_after_token_response",
        }
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err
    assert sandbox.state.counters["refresh_grants_served"] == 1
    sandbox.clock.advance(timedelta(minutes=3))  # past the dead attempt's lease
    manager = TokenManager(config=_config(sandbox), vault=v)
    with pytest.raises(ReauthorizationRequiredError, match="refresh_interrupted"):
        manager.get_token(CUSTOMER)
    grant = v.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert grant.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert grant.reauthorization_reason == "refresh_interrupted"
    assert sandbox.state.counters["refresh_reuse_detected"] == 0


def test_disconnecting_one_app_leaves_the_other_alone(
    sandbox: RunningSandbox, vault: TokenVault
) -> None:
    dev = TokenManager(config=_config(sandbox), vault=vault)
    other = TokenManager(
        config=OAuthConfig.for_base_url(
            sandbox.base_url,
            client_id="other-app",
            client_secret="other-app-secret",
            redirect_uri="http://127.0.0.1:8766/other/callback",
            scope="read:*",
        ),
        vault=vault,
    )
    _connect(dev)
    _connect(other)  # the same customer authorises a second app: its own token pair
    old = vault.get_grant(client_id=DEFAULT_CLIENT_ID, customer_id=CUSTOMER)
    assert old.token is not None
    assert old.token.refresh_token is not None
    revoked = dev.revoke(CUSTOMER)
    assert revoked.status is GrantStatus.REVOKED
    assert revoked.token is None
    with pytest.raises(ReauthorizationRequiredError):
        dev.get_token(CUSTOMER)
    # revoked at the server too: the old refresh token is dead there
    r = httpx.post(
        sandbox.url("/oauth/token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": old.token.refresh_token.get_secret_value(),
        },
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert r.status_code in (400, 401)
    # the other app still works, refresh included
    before = vault.get_grant(client_id="other-app", customer_id=CUSTOMER)
    refreshed = other.get_token(CUSTOMER, rejected_version=before.version)
    assert refreshed.version == before.version + 1
    with httpx.Client(auth=other.auth(CUSTOMER)) as api:
        assert api.get(sandbox.url("/subscriptions")).status_code == 200


def test_margin_never_reaches_a_short_token_lifetime(
    sandbox_factory: Callable[..., RunningSandbox], vault: TokenVault
) -> None:
    # 2-minute tokens and the default 5-minute margin: without a cap every fresh token
    # would already count as expiring, and each of the 20 callers would refresh again
    sandbox = sandbox_factory(SandboxConfig(access_token_lifetime_s=120))
    v = _on_sandbox_time(vault, sandbox)
    _connect(TokenManager(config=_config(sandbox), vault=v))
    sandbox.clock.advance(timedelta(seconds=90))
    manager = TokenManager(config=_config(sandbox), vault=v)
    assert _burst(manager, sandbox, 20) == [200] * 20
    assert sandbox.state.counters["refresh_grants_served"] == 1
    assert _burst(manager, sandbox, 5) == [200] * 5
    assert sandbox.state.counters["refresh_grants_served"] == 1
