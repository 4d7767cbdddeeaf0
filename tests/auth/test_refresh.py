"""Refresh: ahead of expiry, after a 401, single-flight over threads and processes, crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth._servers import CLIENT_ID, CLIENT_SECRET, FakeAuthorizationServer
from wattplan.auth import (
    GrantKind,
    GrantStatus,
    OAuthConfig,
    TokenManager,
    TokenVault,
    parse_token_response,
)
from wattplan.exceptions import ReauthorizationRequiredError, TransportError

ROOT = Path(__file__).resolve().parents[2]
FakeAS = tuple[FakeAuthorizationServer, str]


def connect(
    server: FakeAuthorizationServer,
    vault: TokenVault,
    customer: str,
    *,
    expired: bool = False,
    expires_in: int | None = None,
) -> None:
    """Store a grant as if ``customer`` had just consented."""
    body = server.seed_grant(customer, expired=expired)
    if expires_in is not None:
        body["expires_in"] = expires_in
    token = parse_token_response(
        status_code=200, body=json.dumps(body).encode(), requested_at=datetime.now(UTC)
    )
    vault.save_grant(client_id=CLIENT_ID, customer_id=customer, token=token)


@pytest.fixture
def manager(vault: TokenVault, fake_config: OAuthConfig) -> TokenManager:
    return TokenManager(config=fake_config, vault=vault)


def get_me(manager: TokenManager, base_url: str, customer: str) -> httpx.Response:
    with httpx.Client(auth=manager.auth(customer)) as client:
        return client.get(f"{base_url}/api/me")


def test_bearer_attached_and_no_refresh_while_fresh(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1")
    for _ in range(3):
        response = get_me(manager, base_url, "c1")
        assert response.status_code == 200
        assert response.json() == {"customer": "c1"}
    assert server.refreshes_served == 0


def test_refreshes_ahead_of_expiry_and_persists_the_rotated_pair(
    fake_as: FakeAS, vault: TokenVault, fake_config: OAuthConfig, database: tuple[str, str]
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1")  # a 60-minute token
    before = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    url, prefix = database
    at_54 = TokenVault(
        url,
        cipher=vault._cipher,
        table_prefix=prefix,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=54),
    )
    assert get_me(TokenManager(config=fake_config, vault=at_54), base_url, "c1").status_code == 200
    assert server.refreshes_served == 0  # 6 minutes left: outside the 5-minute margin
    at_56 = TokenVault(
        url,
        cipher=vault._cipher,
        table_prefix=prefix,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=56),
    )
    assert get_me(TokenManager(config=fake_config, vault=at_56), base_url, "c1").status_code == 200
    at_54.close()
    at_56.close()
    after = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert server.refreshes_served == 1
    assert after.version == before.version + 1
    assert before.token is not None
    assert after.token is not None
    assert before.token.refresh_token is not None
    assert after.token.refresh_token is not None
    assert after.token.refresh_token != before.token.refresh_token
    assert (
        after.token.refresh_token.get_secret_value()
        == server.grants[next(iter(server.grants))].current_rt
    )
    assert after.expires_at is not None
    assert after.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    assert not after.refresh_in_flight


def test_401_refreshes_once_and_retries_once(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1")
    for record in server.grants.values():  # the server drops the access token early
        record.access_tokens.clear()
    response = get_me(manager, base_url, "c1")
    assert response.status_code == 200
    assert server.refreshes_served == 1
    assert server.api_calls == 2


def test_a_second_401_is_returned_not_looped(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1")
    server.reject_all_access_tokens = True  # the API keeps saying 401, even to new tokens
    response = get_me(manager, base_url, "c1")
    assert response.status_code == 401
    assert server.refreshes_served == 1
    assert server.api_calls == 2


def test_invalid_grant_marks_reauthorization_and_deletes_nothing(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1", expired=True)
    connect(server, vault, "c2")
    for record in server.grants.values():
        if record.customer == "c1":
            record.revoked = True  # the customer revoked the app at Nomos
    with pytest.raises(ReauthorizationRequiredError) as info:
        get_me(manager, base_url, "c1")
    assert info.value.customer_id == "c1"
    dead = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert dead.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert dead.reauthorization_reason == "invalid_grant"
    assert dead.token is not None
    assert not dead.refresh_in_flight
    # no second refresh attempt on the next use: the grant is known dead
    requests_before = server.token_requests
    with pytest.raises(ReauthorizationRequiredError):
        get_me(manager, base_url, "c1")
    assert server.token_requests == requests_before
    # the other customer is untouched; the vendor lists dead grants and re-sends the customer
    assert get_me(manager, base_url, "c2").status_code == 200
    assert [g.customer_id for g in manager.reauthorization_required()] == ["c1"]
    start = manager.start_authorization("c1")
    assert start.url.startswith(f"{base_url}/oauth/authorize?")
    assert "code_challenge_method=S256" in start.url


def test_lost_refresh_answer_marks_reauthorization(
    fake_as: FakeAS, vault: TokenVault, fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1", expired=True)

    class LoseTokenAnswers(httpx.BaseTransport):
        inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            response.read()  # the server did its work ...
            raise httpx.ReadTimeout("answer lost", request=request)  # ... we never hear of it

    manager = TokenManager(
        config=fake_config, vault=vault, http=httpx.Client(transport=LoseTokenAnswers())
    )
    with pytest.raises(ReauthorizationRequiredError, match="refresh_outcome_unknown"):
        get_me(manager, base_url, "c1")
    assert server.refreshes_served == 1  # the refresh happened at the server
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert grant.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert grant.reauthorization_reason == "refresh_outcome_unknown"
    # and a healthy manager does not try the (possibly rotated) refresh token again
    healthy = TokenManager(config=fake_config, vault=vault)
    with pytest.raises(ReauthorizationRequiredError):
        get_me(healthy, base_url, "c1")
    assert server.token_requests == 1


def test_unreachable_token_endpoint_is_transient_and_keeps_the_grant(
    fake_as: FakeAS, vault: TokenVault, fake_config: OAuthConfig
) -> None:
    server, _ = fake_as
    connect(server, vault, "c1", expired=True)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    manager = TokenManager(
        config=fake_config, vault=vault, http=httpx.Client(transport=httpx.MockTransport(refuse))
    )
    with pytest.raises(TransportError) as info:
        manager.get_token("c1")
    assert info.value.transient
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert grant.status is GrantStatus.ACTIVE
    assert not grant.refresh_in_flight


def _spawn(spec: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.auth._worker", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_together(procs: list[subprocess.Popen[str]]) -> list[Any]:
    """Wait until every burst worker is ready, start them at once, collect their results."""
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results: list[Any] = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results += json.loads(out.strip().splitlines()[-1])["results"]
    return results


def _spec(
    database: tuple[str, str], encryption_key: str, base_url: str, **extra: Any
) -> dict[str, Any]:
    url, prefix = database
    return {
        "database_url": url,
        "table_prefix": prefix,
        "encryption_key": encryption_key,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_endpoint": f"{base_url}/oauth/token",
        "api_url": f"{base_url}/api/me",
        "customer_id": "c1",
        **extra,
    }


def test_process_killed_after_token_answer_leaves_a_marked_grant(
    fake_as: FakeAS,
    vault: TokenVault,
    database: tuple[str, str],
    encryption_key: str,
    fake_config: OAuthConfig,
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1", expired=True)
    proc = _spawn(_spec(database, encryption_key, base_url, mode="crash_after_token_response"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err
    assert server.refreshes_served == 1  # the server rotated; the new pair died with the process
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert grant.refresh_in_flight
    assert grant.status is GrantStatus.ACTIVE
    # after the lease, the next user sees the dead attempt and marks the grant
    url, prefix = database
    later = TokenVault(
        url,
        cipher=vault._cipher,
        table_prefix=prefix,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=3),
    )
    manager = TokenManager(config=fake_config, vault=later)
    with pytest.raises(ReauthorizationRequiredError, match="refresh_interrupted"):
        manager.get_token("c1")
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert grant.status is GrantStatus.REAUTHORIZATION_REQUIRED
    assert grant.reauthorization_reason == "refresh_interrupted"
    assert server.token_requests == 1  # the possibly rotated refresh token was not sent again
    assert server.reuse_detected == 0
    later.close()


def _burst(manager: TokenManager, base_url: str, n: int) -> list[Any]:
    """``n`` threads, each with its own client (built beforehand), GET at the same moment."""
    clients = [httpx.Client(auth=manager.auth("c1"), timeout=60) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def one(client: httpx.Client) -> None:
        barrier.wait()
        try:
            status: Any = client.get(f"{base_url}/api/me").status_code
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


@pytest.mark.slow
def test_50_threads_on_an_expired_token_refresh_exactly_once(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager
) -> None:
    server, base_url = fake_as
    server.refresh_delay_s = 0.2
    connect(server, vault, "c1", expired=True)
    results = _burst(manager, base_url, 50)
    assert results == [200] * 50
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0
    assert vault.get_grant(client_id=CLIENT_ID, customer_id="c1").version == 2


@pytest.mark.slow
def test_50_threads_without_the_lock_kill_the_grant(
    fake_as: FakeAS, vault: TokenVault, fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    server.refresh_delay_s = 0.2
    connect(server, vault, "c1", expired=True)
    unlocked = TokenManager(config=fake_config, vault=vault, single_flight=False)
    results = _burst(unlocked, base_url, 50)
    assert server.refreshes_served >= 1
    assert server.reuse_detected >= 1
    assert server.grant_revoked("c1")
    assert results != [200] * 50


@pytest.mark.slow
def test_4_processes_on_an_expired_token_refresh_exactly_once(
    fake_as: FakeAS,
    vault: TokenVault,
    database: tuple[str, str],
    encryption_key: str,
) -> None:
    server, base_url = fake_as
    server.refresh_delay_s = 0.2
    connect(server, vault, "c1", expired=True)
    spec = _spec(database, encryption_key, base_url, mode="burst", threads=5)
    results = run_together([_spawn(spec) for _ in range(4)])
    assert results == [200] * 20
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0


def test_client_credentials_cached_until_shortly_before_expiry(
    fake_as: FakeAS, vault: TokenVault, manager: TokenManager, database: tuple[str, str]
) -> None:
    server, base_url = fake_as
    server.access_ttl_s = 3600
    auth = manager.client_credentials_auth()
    with httpx.Client(auth=auth) as client:
        for _ in range(3):
            assert client.get(f"{base_url}/api/me").json() == {"customer": "@org"}
    assert server.token_requests == 1
    grant = manager.organisation_token()
    assert grant.kind is GrantKind.CLIENT_CREDENTIALS
    assert grant.token is not None
    assert grant.token.refresh_token is None
    # a second manager (another process) reuses the stored token
    other = TokenManager(config=manager.config, vault=vault)
    assert other.organisation_token().version == grant.version
    assert server.token_requests == 1
    # near expiry (58 minutes later): exactly one new token, even for many threads at once
    url, prefix = database
    later_vault = TokenVault(
        url,
        cipher=vault._cipher,
        table_prefix=prefix,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=58),
    )
    later = TokenManager(config=manager.config, vault=later_vault)
    barrier = threading.Barrier(10)
    versions: list[int] = []

    def one() -> None:
        barrier.wait()
        versions.append(later.organisation_token().version)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.token_requests == 2
    assert versions == [grant.version + 1] * 10
    later_vault.close()
