"""A refresh interrupted by a crash or a database blip, and a second planner on a copied vault.

Each case here broke something before: a process killed before its refresh request left
still cost the customer a new consent, and the next process waited two minutes for the
dead one's lease; a new token pair whose write failed was dropped; two copies of one
vault refreshed the same grant and the server revoked it for both.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests._proxy import CuttableProxy
from tests.auth._servers import CLIENT_ID, FakeAuthorizationServer
from tests.auth.conftest import postgres_or_skip
from tests.auth.test_refresh import _spawn, _spec, connect, get_me
from wattplan.auth import GrantStatus, OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.exceptions import GrantConflictError, ReauthorizationRequiredError, TokenVaultError

FakeAS = tuple[FakeAuthorizationServer, str]


# -- a process killed mid-refresh ---------------------------------------------------------


def test_killed_before_the_request_left_is_refreshed_again_at_once(
    fake_as: FakeAS,
    vault: TokenVault,
    database: tuple[str, str],
    encryption_key: str,
    fake_config: OAuthConfig,
) -> None:
    server, base_url = fake_as
    connect(server, vault, "c1", expired=True)
    before = vault.get_grant(client_id=CLIENT_ID, customer_id="c1").version
    proc = _spawn(_spec(database, encryption_key, base_url, mode="hang_before_send"))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "sending", proc.stderr.read() if proc.stderr else line
    os.kill(proc.pid, signal.SIGKILL)  # the request never went out
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert vault.get_grant(client_id=CLIENT_ID, customer_id="c1").refresh_in_flight
    assert server.token_requests == 0
    # the restarted process, with the default lease still running: no wait, no re-consent
    manager = TokenManager(config=fake_config, vault=vault)
    grant = manager.get_token("c1")
    assert grant.status is GrantStatus.ACTIVE
    assert grant.version == before + 1
    assert not grant.refresh_in_flight
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0
    assert get_me(manager, base_url, "c1").status_code == 200


def test_killed_after_sending_is_marked_at_once_not_after_the_lease(
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
    # the server rotated: that grant may really be lost, and the next process says so
    # right away (its holder is gone) instead of waiting for the two-minute lease
    manager = TokenManager(config=fake_config, vault=vault, refresh_lease=timedelta(seconds=1))
    with pytest.raises(ReauthorizationRequiredError, match="refresh_interrupted"):
        manager.get_token("c1")
    assert server.token_requests == 1
    assert server.reuse_detected == 0


def _claim(vault: TokenVault, attempt: str) -> str:
    return vault.claim_refresh(
        client_id=CLIENT_ID,
        customer_id="c1",
        attempt_id=attempt,
        lease=timedelta(minutes=2),
        needs_refresh=lambda g: True,
    ).outcome


def test_an_attempt_of_another_host_is_taken_over_after_its_lease_only_if_unsent(
    fake_as: FakeAS, vault: TokenVault, database: tuple[str, str], encryption_key: str
) -> None:
    server, _ = fake_as
    connect(server, vault, "c1", expired=True)
    connect(server, vault, "c2", expired=True)
    url, prefix = database
    g = vault._grants
    for customer, phase in (("c1", "i"), ("c2", "s")):
        with vault.engine.begin() as conn:  # markers as a process on another host left them
            conn.execute(
                g.update()
                .where(g.c.customer_id == customer)
                .values(
                    refresh_attempt=f"{phase}:0123456789abcdef:ffffffff.4242.17",
                    refresh_lease_until=datetime.now(UTC) + timedelta(minutes=2),
                )
            )
    assert _claim(vault, "aaaaaaaaaaaaaaaa") == "busy"  # alive as far as we know
    later = TokenVault(
        url,
        cipher=TokenCipher(encryption_key),
        table_prefix=prefix,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=3),
    )
    assert _claim(later, "bbbbbbbbbbbbbbbb") == "claimed"  # c1: never sent, taken over
    with pytest.raises(ReauthorizationRequiredError, match="refresh_interrupted"):
        later.claim_refresh(
            client_id=CLIENT_ID,
            customer_id="c2",
            attempt_id="cccccccccccccccc",
            lease=timedelta(minutes=2),
            needs_refresh=lambda g: True,
        )
    later.close()


def test_waiting_for_a_live_refresh_elsewhere_is_bounded_and_transient(
    fake_as: FakeAS, vault: TokenVault, fake_config: OAuthConfig
) -> None:
    server, _ = fake_as
    connect(server, vault, "c1", expired=True)
    g = vault._grants
    with vault.engine.begin() as conn:  # a refresh under way on another host
        conn.execute(
            g.update()
            .where(g.c.customer_id == "c1")
            .values(
                refresh_attempt="s:0123456789abcdef:ffffffff.4242.17",
                refresh_lease_until=datetime.now(UTC) + timedelta(minutes=2),
            )
        )
    manager = TokenManager(config=fake_config, vault=vault, refresh_wait=timedelta(seconds=0.2))
    with pytest.raises(TokenVaultError, match="still running") as info:
        manager.get_token("c1")
    assert info.value.transient  # the pass reports it and moves on; nothing is marked
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert grant.status is GrantStatus.ACTIVE
    assert server.token_requests == 0


# -- the vault fails while the new pair is in memory -----------------------------------------


@pytest.fixture
def proxied_vault(encryption_key: str) -> Iterator[tuple[TokenVault, CuttableProxy]]:
    proxy, url = CuttableProxy.in_front_of(postgres_or_skip())
    prefix = f"blip{os.getpid()}_{id(proxy) % 100000}_"
    vault = TokenVault(url, cipher=TokenCipher(encryption_key), table_prefix=prefix)
    yield vault, proxy
    proxy.restore()
    vault.drop_tables()
    vault.close()
    proxy.close()


class CutAfterTokenAnswer(httpx.BaseTransport):
    """The server answers the refresh; then the database connection drops."""

    def __init__(self, proxy: CuttableProxy) -> None:
        self.inner = httpx.HTTPTransport()
        self.proxy = proxy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/token"):
            response.read()
            self.proxy.cut()
        return response


@pytest.mark.postgres
def test_a_write_that_failed_is_retried_while_the_pair_is_in_memory(
    fake_as: FakeAS, proxied_vault: tuple[TokenVault, CuttableProxy], fake_config: OAuthConfig
) -> None:
    server, _ = fake_as
    vault, proxy = proxied_vault
    connect(server, vault, "c1", expired=True)
    manager = TokenManager(
        config=fake_config, vault=vault, http=httpx.Client(transport=CutAfterTokenAnswer(proxy))
    )
    waits: list[float] = []

    def back_up(seconds: float) -> None:  # the database comes back during the backoff
        waits.append(seconds)
        proxy.restore()

    manager._sleep = back_up
    grant = manager.get_token("c1")
    assert waits  # the first write failed
    assert grant.status is GrantStatus.ACTIVE
    assert not grant.refresh_in_flight
    assert server.refreshes_served == 1
    stored = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert stored.token is not None and grant.token is not None
    assert stored.token.refresh_token == grant.token.refresh_token  # the rotated one is kept


@pytest.mark.postgres
def test_a_long_outage_keeps_the_pair_in_memory_until_the_next_call(
    fake_as: FakeAS, proxied_vault: tuple[TokenVault, CuttableProxy], fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    vault, proxy = proxied_vault
    connect(server, vault, "c1", expired=True)
    manager = TokenManager(
        config=fake_config,
        vault=vault,
        http=httpx.Client(transport=CutAfterTokenAnswer(proxy)),
        store_retries=2,
    )
    manager._sleep = lambda seconds: None
    with pytest.raises(TokenVaultError, match="kept in memory") as info:
        manager.get_token("c1")
    assert info.value.transient
    assert "rt_" not in str(info.value) and "at_" not in str(info.value)
    proxy.restore()
    grant = manager.get_token("c1")  # stored now, without a second refresh
    assert grant.status is GrantStatus.ACTIVE
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0
    assert get_me(manager, base_url, "c1").status_code == 200
    assert server.token_requests == 1


class CutBeforeSending(httpx.HTTPTransport):
    """The database connection drops after the refresh was claimed, before it is sent."""

    def __init__(self, proxy: CuttableProxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.cuts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token") and self.cuts == 0:
            self.cuts += 1
            self.proxy.cut()
        return super().handle_request(request)


@pytest.mark.postgres
def test_a_blip_before_sending_sends_nothing_and_the_next_call_refreshes(
    fake_as: FakeAS, proxied_vault: tuple[TokenVault, CuttableProxy], fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    vault, proxy = proxied_vault
    connect(server, vault, "c1", expired=True)
    manager = TokenManager(
        config=fake_config, vault=vault, http=httpx.Client(transport=CutBeforeSending(proxy))
    )
    with pytest.raises(TokenVaultError) as info:
        manager.get_token("c1")
    assert info.value.transient
    assert server.token_requests == 0  # the refresh did not leave: it could not be marked
    proxy.restore()
    # the marker it left behind is known here to be over and unsent: no lease to wait for
    grant = manager.get_token("c1")
    assert grant.status is GrantStatus.ACTIVE
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0
    assert get_me(manager, base_url, "c1").status_code == 200


# -- a second planner on a copy of the vault ---------------------------------------------------


def _sqlite_vault(path: Path, key: str) -> TokenVault:
    return TokenVault(f"sqlite:///{path}", cipher=TokenCipher(key), table_prefix="wattplan_")


def test_a_copied_vault_refuses_to_refresh_and_the_original_keeps_its_grant(
    fake_as: FakeAS, tmp_path: Path, encryption_key: str, fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    original = _sqlite_vault(tmp_path / "a" / "vault.sqlite3", encryption_key)
    connect(server, original, "c1", expired=True)
    original.close()
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "vault.sqlite3", tmp_path / "b" / "vault.sqlite3")
    original = _sqlite_vault(tmp_path / "a" / "vault.sqlite3", encryption_key)
    copy = _sqlite_vault(tmp_path / "b" / "vault.sqlite3", encryption_key)
    assert copy.fingerprint == original.fingerprint
    assert copy.is_copy and not original.is_copy

    second = TokenManager(config=fake_config, vault=copy)
    with pytest.raises(GrantConflictError, match="'c1'") as info:
        second.get_token("c1")
    assert info.value.customer_id == "c1"
    assert "copy" in str(info.value)
    assert server.token_requests == 0  # the shared refresh token was not presented
    kept = copy.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert kept.status is GrantStatus.ACTIVE  # no silent re-consent either
    assert not kept.refresh_in_flight

    first = TokenManager(config=fake_config, vault=original)
    assert get_me(first, base_url, "c1").status_code == 200
    assert server.refreshes_served == 1
    assert server.reuse_detected == 0
    with pytest.raises(GrantConflictError):  # the copy goes on refusing
        second.get_token("c1")
    assert not server.grant_revoked("c1")
    original.close()
    copy.close()


def test_a_copy_adopted_after_the_original_is_retired_refreshes(
    fake_as: FakeAS, tmp_path: Path, encryption_key: str, fake_config: OAuthConfig
) -> None:
    server, base_url = fake_as
    original = _sqlite_vault(tmp_path / "a" / "vault.sqlite3", encryption_key)
    connect(server, original, "c1", expired=True)
    original.close()
    (tmp_path / "b").mkdir()
    shutil.move(tmp_path / "a" / "vault.sqlite3", tmp_path / "b" / "moved.sqlite3")
    moved = _sqlite_vault(tmp_path / "b" / "moved.sqlite3", encryption_key)
    assert not moved.is_copy  # a move is not a copy
    moved.close()
    shutil.copy(tmp_path / "b" / "moved.sqlite3", tmp_path / "b" / "restored.sqlite3")
    (tmp_path / "b" / "moved.sqlite3").unlink()
    restored = _sqlite_vault(tmp_path / "b" / "restored.sqlite3", encryption_key)
    assert restored.is_copy
    restored.adopt()
    assert not restored.is_copy
    manager = TokenManager(config=fake_config, vault=restored)
    assert get_me(manager, base_url, "c1").status_code == 200
    assert server.refreshes_served == 1
    restored.close()
    reopened = _sqlite_vault(tmp_path / "b" / "restored.sqlite3", encryption_key)
    assert not reopened.is_copy
    reopened.close()


def test_a_late_write_does_not_bring_a_disconnected_grant_back(
    fake_as: FakeAS, vault: TokenVault
) -> None:
    server, _ = fake_as
    connect(server, vault, "c1", expired=True)
    assert _claim(vault, "dddddddddddddddd") == "claimed"
    grant = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    vault.set_status(client_id=CLIENT_ID, customer_id="c1", status=GrantStatus.REVOKED)
    assert grant.token is not None
    with pytest.raises(TokenVaultError, match="not stored"):
        vault.complete_refresh(
            client_id=CLIENT_ID, customer_id="c1", attempt_id="dddddddddddddddd", token=grant.token
        )
    revoked = vault.get_grant(client_id=CLIENT_ID, customer_id="c1")
    assert revoked.status is GrantStatus.REVOKED
    assert revoked.token is None
    assert not revoked.refresh_in_flight


def test_a_read_only_vault_stays_readable(
    fake_as: FakeAS, tmp_path: Path, encryption_key: str
) -> None:
    server, _ = fake_as
    path = tmp_path / "vault.sqlite3"
    writable = _sqlite_vault(path, encryption_key)
    connect(server, writable, "c1")
    writable.close()
    read_only = TokenVault(
        f"sqlite:///file:{path}?mode=ro&uri=true", cipher=TokenCipher(encryption_key)
    )
    assert read_only.get_grant(client_id=CLIENT_ID, customer_id="c1").status is GrantStatus.ACTIVE
    assert read_only.fingerprint is not None and not read_only.is_copy
    read_only.close()
