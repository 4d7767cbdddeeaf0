"""A vendor app on loopback wired to a sandbox, and a headless walk of the hosted pages."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.auth._servers import serve_app
from wattplan.auth import OAuthConfig, TokenManager, TokenVault, create_callback_app
from wattplan.exceptions import WattplanError
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_EMAIL

_REQUEST_ID = re.compile(r'name="request" value="([^"]+)"')


class CountingTransport(httpx.BaseTransport):
    """Counts the token requests the manager sends (by grant type)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read().decode()
        grant = re.search(r"grant_type=([a-z_]+)", body)
        with self.lock:
            self.sent.append(grant.group(1) if grant else "?")
        return self.inner.handle_request(request)


@dataclass
class VendorApp:
    """The vendor's callback app serving at ``base_url``; errors it saw in ``errors``."""

    base_url: str
    manager: TokenManager
    transport: CountingTransport
    errors: list[WattplanError] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"


@contextmanager
def vendor_app(
    sandbox_url: str, vault: TokenVault, *, redirect_path: str = "/callback"
) -> Iterator[VendorApp]:
    """Serve the callback app; the signed-in customer is named by the X-Customer header."""
    holder: dict[str, Any] = {}

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    with serve_app(asgi) as base_url:
        transport = CountingTransport()
        config = OAuthConfig.for_base_url(
            sandbox_url,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uri=f"{base_url}{redirect_path}",
            scope="read:*",
        )
        manager = TokenManager(
            config=config, vault=vault, http=httpx.Client(transport=transport, timeout=30)
        )
        app = VendorApp(base_url=base_url, manager=manager, transport=transport)

        def on_error(request: Request, exc: WattplanError) -> Response:
            app.errors.append(exc)
            return JSONResponse({"error": type(exc).__name__}, status_code=400)

        holder["app"] = create_callback_app(
            manager,
            authenticate=lambda request: request.headers.get("x-customer"),
            on_error=on_error,
        )
        yield app


def walk_hosted_pages(
    authorize_url: str, *, email: str = DEMO_EMAIL, decision: str = "allow"
) -> str:
    """Sign in, type the one-time code, decide; return where the server redirects to."""
    with httpx.Client(follow_redirects=False) as http:
        r = http.get(authorize_url)
        assert r.status_code == 302, r.text
        base = str(r.url.copy_with(path="/", query=None))[:-1]
        page = http.get(base + r.headers["location"])
        match = _REQUEST_ID.search(page.text)
        assert match is not None, page.text
        request_id = match.group(1)
        r = http.post(f"{base}/oauth/login", data={"request": request_id, "email": email})
        assert r.status_code == 303
        code = http.get(f"{base}/_sandbox/one-time-code", params={"email": email}).json()["code"]
        r = http.post(f"{base}/oauth/verify", data={"request": request_id, "code": code})
        assert r.status_code == 303
        r = http.post(f"{base}/oauth/consent", data={"request": request_id, "decision": decision})
        assert r.status_code == 303
        return str(r.headers["location"])
