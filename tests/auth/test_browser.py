"""A real headless Chromium walks sign-in → one-time code → consent → callback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth._harness import VendorApp, vendor_app
from wattplan.auth import GrantStatus, TokenCipher, TokenVault
from wattplan.exceptions import AccessDeniedError
from wattplan.sandbox import DEMO_EMAIL, RunningSandbox

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (Debian packages chromium, chromium-driver)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message + "; `python3 dev.py test` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[TokenVault]:
    v = TokenVault(
        f"sqlite:///{tmp_path / 'vault.sqlite3'}", cipher=TokenCipher(TokenCipher.generate_key())
    )
    yield v
    v.close()


@pytest.fixture
def app(sandbox: RunningSandbox, vault: TokenVault) -> Iterator[VendorApp]:
    with vendor_app(sandbox.base_url, vault) as running:
        yield running


def _sign_in(page: Any, sandbox: RunningSandbox, app: VendorApp) -> None:
    page.goto(f"{app.base_url}/connect")
    page.wait_for_selector("#email")
    assert page.url.startswith(sandbox.url("/oauth/login"))
    page.fill("#email", DEMO_EMAIL)
    page.click("#send-code")
    page.wait_for_selector("#code")
    code = httpx.get(sandbox.url("/_sandbox/one-time-code"), params={"email": DEMO_EMAIL})
    page.fill("#code", code.json()["code"])
    page.click("#verify")
    page.wait_for_selector("#allow")
    assert "read:*" in page.content()


def test_chromium_connects_a_customer(
    browser: Any, sandbox: RunningSandbox, app: VendorApp, vault: TokenVault
) -> None:
    context = browser.new_context(extra_http_headers={"X-Customer": "cust-browser"})
    page = context.new_page()
    _sign_in(page, sandbox, app)
    with page.expect_navigation(url=f"{app.redirect_uri}?*"):
        page.click("#allow")
    assert "Connected" in page.content()
    assert app.errors == []
    assert app.transport.sent == ["authorization_code"]
    grant = vault.get_grant(client_id=app.manager.client_id, customer_id="cust-browser")
    assert grant.status is GrantStatus.ACTIVE
    with httpx.Client(auth=app.manager.auth("cust-browser")) as api:
        subscriptions = api.get(sandbox.url("/subscriptions"))
    assert subscriptions.status_code == 200
    assert subscriptions.json()["items"]
    # the browser never saw the verifier or any token
    cookies = " ".join(c["value"] for c in context.cookies())
    assert grant.token is not None
    assert grant.token.access_token.get_secret_value() not in cookies + page.content()
    context.close()


def test_chromium_deny_ends_in_a_typed_error(
    browser: Any, sandbox: RunningSandbox, app: VendorApp, vault: TokenVault
) -> None:
    context = browser.new_context(extra_http_headers={"X-Customer": "cust-browser"})
    page = context.new_page()
    _sign_in(page, sandbox, app)
    with page.expect_navigation(url=f"{app.redirect_uri}?*") as navigation:
        page.click("#deny")
    assert navigation.value.status == 400
    assert [type(e) for e in app.errors] == [AccessDeniedError]
    assert app.transport.sent == []
    assert vault.list_grants() == []
    context.close()
