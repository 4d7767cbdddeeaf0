"""Connect one customer from a terminal: a loopback redirect (RFC 8252) and a browser.

:func:`run_login` serves ``GET /callback`` on ``127.0.0.1`` for the duration of one
consent, sends the browser to the hosted sign-in, and stores the grant in the vault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from wattplan._http import BackgroundServer
from wattplan.auth._manager import TokenManager
from wattplan.auth._vault import Grant
from wattplan.exceptions import AuthError, WattplanError

__all__ = ["run_login"]

logger = logging.getLogger(__name__)

_DONE = (
    "<!doctype html><meta charset='utf-8'><title>wattplan</title>"
    "<h1>{title}</h1><p>{text} You can close this window.</p>"
)


def run_login(
    manager: TokenManager,
    *,
    customer_id: str,
    open_url: Callable[[str], Any],
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 300.0,
    extra: dict[str, str] | None = None,
) -> Grant:
    """Run one consent for ``customer_id`` through a loopback redirect; return the grant.

    The redirect URI is ``http://<host>:<port>/callback`` (``port=0``: a free one, for
    servers that accept any loopback port); it must be registered for the client.
    ``open_url`` shows the authorization URL (a browser, or a print). Raises the typed
    error of a failed callback, or :class:`~wattplan.AuthError` after ``timeout_s``.
    """

    result: dict[str, Any] = {}
    done = threading.Event()

    async def callback(request: Request) -> Response:
        if done.is_set():
            return HTMLResponse(_DONE.format(title="Already done", text=""), status_code=410)
        try:
            grant = await run_in_threadpool(
                manager.complete_authorization, dict(request.query_params)
            )
        except WattplanError as exc:
            result["error"] = exc
            done.set()
            page = _DONE.format(
                title="Not connected", text=f"The sign-in failed ({type(exc).__name__})."
            )
            return HTMLResponse(page, status_code=400)
        result["grant"] = grant
        done.set()
        return HTMLResponse(
            _DONE.format(title="Connected", text="wattplan may now read your data.")
        )

    app = Starlette(routes=[Route("/callback", callback, methods=["GET"])])
    with BackgroundServer(app, host=host, port=port, name="wattplan-login") as server:
        redirect_uri = f"{server.base_url}/callback"
        start = manager.start_authorization(customer_id, redirect_uri=redirect_uri, extra=extra)
        logger.info("waiting for the redirect to %s", redirect_uri)
        open_url(start.url)
        if not done.wait(timeout_s):
            raise AuthError(f"no redirect arrived within {timeout_s:.0f} s")
    if "error" in result:
        raise result["error"]
    grant: Grant = result["grant"]
    return grant
