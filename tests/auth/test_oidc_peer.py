"""The client against an independently written, certified server: panva's oidc-provider.

The server (tests/auth/oidc_peer/server.mjs) requires PKCE S256, rotates refresh tokens on
every use and revokes the grant when a rotated one comes back. Its npm dependencies are
installed with ``npm ci`` into a cache folder outside the repository on first use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.auth._harness import CountingTransport
from wattplan.auth import GrantStatus, OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.exceptions import ReauthorizationRequiredError

pytestmark = pytest.mark.slow

PEER_SOURCE = Path(__file__).parent / "oidc_peer"
CLIENT_ID = "wattplan-peer"
CLIENT_SECRET = "peer-secret:with/odd&chars"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
SCOPE = "openid offline_access api:read"


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI must run the independent-server test)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def peer_dir() -> Path:
    """A cache folder with server.mjs and its node_modules (``npm ci`` once, under a lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed (Debian packages nodejs, npm)")
    files = ["package.json", "package-lock.json", "server.mjs"]
    digest = hashlib.sha256(b"".join((PEER_SOURCE / f).read_bytes() for f in files)).hexdigest()
    cache = Path(os.environ.get("WATTPLAN_TEST_CACHE", Path.home() / ".cache" / "wattplan-tests"))
    target = cache / f"oidc-peer-{digest[:16]}"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers install once
        if not (target / "node_modules" / "oidc-provider" / "package.json").exists():
            for f in files:
                shutil.copy2(PEER_SOURCE / f, target / f)
            result = subprocess.run(
                [str(npm), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=target,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                _unavailable(f"npm ci failed: {result.stderr[-2000:]}")
    return target


@pytest.fixture
def issuer(peer_dir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "PEER_CLIENT_ID": CLIENT_ID,
        "PEER_CLIENT_SECRET": CLIENT_SECRET,
        "PEER_REDIRECT_URIS": REDIRECT_URI,
    }
    proc = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=peer_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "oidc-provider did not start"
        yield str(json.loads(line)["issuer"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[TokenVault]:
    v = TokenVault(
        f"sqlite:///{tmp_path / 'vault.sqlite3'}", cipher=TokenCipher(TokenCipher.generate_key())
    )
    yield v
    v.close()


def _manager(
    issuer: str, vault: TokenVault, *, transport: httpx.BaseTransport | None = None, **kw: Any
) -> TokenManager:
    metadata = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    config = OAuthConfig.from_metadata(
        metadata,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        scope=SCOPE,
    )
    http = httpx.Client(transport=transport or httpx.HTTPTransport(), timeout=30)
    return TokenManager(config=config, vault=vault, http=http, **kw)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"')


def _dev_interactions(authorize_url: str, *, login: str) -> dict[str, str]:
    """Sign in and consent on oidc-provider's development pages; return the callback query."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        url = authorize_url
        for _ in range(12):
            if url.startswith(REDIRECT_URI):
                return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            r = browser.get(url)
            if r.status_code in (302, 303):
                url = urljoin(url, r.headers["location"])
                continue
            assert r.status_code == 200, r.text
            action = _FORM.search(r.text)
            assert action is not None, r.text
            if 'name="password"' in r.text:
                form = {"prompt": "login", "login": login, "password": "any"}
            else:
                form = {"prompt": "consent"}
            r = browser.post(urljoin(url, action.group(1)), data=form)
            assert r.status_code in (302, 303), r.text
            url = urljoin(url, r.headers["location"])
    raise AssertionError("the interaction did not end at the redirect URI")


def _connect(manager: TokenManager, customer: str) -> None:
    start = manager.start_authorization(customer, extra={"prompt": "consent"})
    params = _dev_interactions(start.url, login=customer)
    assert params.get("iss") == manager.config.issuer  # RFC 9207, checked by the manager
    manager.complete_authorization(params)


def _userinfo_endpoint(manager: TokenManager) -> str:
    metadata = httpx.get(f"{manager.config.issuer}/.well-known/openid-configuration").json()
    return str(metadata["userinfo_endpoint"])


def _userinfo(manager: TokenManager, customer: str) -> httpx.Response:
    with httpx.Client(auth=manager.auth(customer), timeout=30) as client:
        return client.get(_userinfo_endpoint(manager))


def _burst(manager: TokenManager, customer: str, n: int) -> list[str]:
    """``n`` threads, clients built beforehand, call userinfo at the same moment."""
    endpoint = _userinfo_endpoint(manager)
    clients = [httpx.Client(auth=manager.auth(customer), timeout=30) for _ in range(n)]
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def one(client: httpx.Client) -> None:
        barrier.wait()
        try:
            outcomes.append(str(client.get(endpoint).status_code))
        except ReauthorizationRequiredError:
            outcomes.append("reauthorization_required")

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return outcomes


def _later(vault: TokenVault, minutes: int) -> TokenVault:
    return TokenVault(
        vault.engine,
        cipher=vault._cipher,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=minutes),
    )


def test_pkce_flow_refresh_rotation_and_single_flight(issuer: str, vault: TokenVault) -> None:
    transport = CountingTransport()
    manager = _manager(issuer, vault, transport=transport)
    _connect(manager, "alice")
    assert transport.sent == ["authorization_code"]
    first = vault.get_grant(client_id=CLIENT_ID, customer_id="alice")
    assert first.token is not None
    assert first.token.refresh_token is not None
    assert first.scope is not None
    assert "offline_access" in first.scope
    r = _userinfo(manager, "alice")
    assert r.status_code == 200
    assert r.json()["sub"] == "alice"

    # 58 minutes later, 20 threads at once: one refresh, and the rotated token is stored
    later = _manager(issuer, _later(vault, 58), transport=transport)
    statuses = _burst(later, "alice", 20)
    assert statuses == ["200"] * 20
    assert transport.sent == ["authorization_code", "refresh_token"]
    second = vault.get_grant(client_id=CLIENT_ID, customer_id="alice")
    assert second.version == first.version + 1
    assert second.token is not None
    assert second.token.refresh_token is not None
    assert second.token.refresh_token != first.token.refresh_token  # rotated, persisted

    # the stored (rotated) refresh token still works: the grant was never reused
    even_later = _manager(issuer, _later(vault, 2 * 58), transport=transport)
    assert _userinfo(even_later, "alice").status_code == 200
    assert transport.sent == ["authorization_code", "refresh_token", "refresh_token"]


def test_without_the_lock_the_peer_revokes_the_grant(issuer: str, vault: TokenVault) -> None:
    _connect(_manager(issuer, vault), "bob")
    unlocked = _manager(issuer, _later(vault, 58), single_flight=False)
    outcomes = _burst(unlocked, "bob", 10)
    assert "reauthorization_required" in outcomes
    # whatever pair the last writer stored, the peer has revoked the whole grant
    locked = _manager(issuer, _later(vault, 2 * 58))
    if vault.get_grant(client_id=CLIENT_ID, customer_id="bob").status is GrantStatus.ACTIVE:
        with pytest.raises(ReauthorizationRequiredError):
            locked.get_token("bob")
    assert (
        vault.get_grant(client_id=CLIENT_ID, customer_id="bob").status
        is GrantStatus.REAUTHORIZATION_REQUIRED
    )


def test_client_credentials_against_the_peer(issuer: str, vault: TokenVault) -> None:
    transport = CountingTransport()
    manager = _manager(issuer, vault, transport=transport)
    grant = manager.organisation_token(scope="api:read")
    assert grant.token is not None
    assert grant.token.refresh_token is None
    assert manager.organisation_token(scope="api:read").version == grant.version
    assert transport.sent == ["client_credentials"]
