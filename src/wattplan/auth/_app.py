"""The vendor's callback app (Starlette), mountable in the vendor's own ASGI app.

* ``GET /connect`` starts a consent for the signed-in customer: a one-time ``state`` and
  a PKCE verifier are stored in the vault (never sent to the browser); the state is also
  bound to this browser by an HttpOnly cookie; then a redirect to the hosted sign-in.
* ``GET /callback`` is the registered redirect URI: it checks ``error``, then ``state``
  (one-time, unexpired, same browser), then ``iss``, and only then exchanges the code.
* ``POST /token/refresh`` gives the vendor's browser client a fresh *access* token for its
  own customer (never the refresh token, which never leaves the server).

Closed by default (DESIGN.md §7): ``/connect`` and ``/token/refresh`` answer 401 unless
the vendor supplies ``authenticate(request) -> customer_id | None`` (sync or async), which
says which of the vendor's customers the request comes from (its session, a bearer key).
``/callback`` is the OAuth redirect itself and needs no hook: the state is its proof.
"""

from __future__ import annotations

import hashlib
import html
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from wattplan.auth._manager import TokenManager
from wattplan.auth._vault import Grant
from wattplan.exceptions import (
    AccessDeniedError,
    GrantNotFoundError,
    OAuthError,
    ReauthorizationRequiredError,
    StateMismatchError,
    WattplanError,
)

__all__ = ["create_callback_app"]

logger = logging.getLogger(__name__)

Authenticate = Callable[[Request], "str | Awaitable[str | None] | None"]
OnConnected = Callable[[Request, Grant], "Response | Awaitable[Response]"]
OnError = Callable[[Request, WattplanError], "Response | Awaitable[Response]"]

_COOKIE_PREFIX = "wattplan_oauth_"
_NO_STORE = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def _cookie_name(state: str) -> str:
    return _COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


async def _maybe_await(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


def _page(title: str, message: str, status_code: int) -> HTMLResponse:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status_code, headers=_NO_STORE)


def _error_status(exc: WattplanError) -> int:
    if isinstance(exc, AccessDeniedError):
        return 403
    if exc.transient or (isinstance(exc, OAuthError) and exc.error == "invalid_client"):
        return 502
    return 400


def create_callback_app(
    manager: TokenManager,
    *,
    authenticate: Authenticate | None = None,
    on_connected: OnConnected | None = None,
    on_error: OnError | None = None,
    secure_cookies: bool | None = None,
) -> Starlette:
    """The ``/connect``, ``/callback`` and ``/token/refresh`` endpoints for one OAuth client.

    Parameters
    ----------
    manager:
        Holds the client configuration (its ``redirect_uri`` must point at this app's
        ``/callback``, byte-identical to the registered one) and the vault.
    authenticate:
        ``request -> customer_id`` (or ``None``: not signed in, 401). Without it the two
        endpoints that need a customer are closed.
    on_connected:
        Builds the answer after a successful consent (default: a short HTML page).
    on_error:
        Builds the answer for a failed callback; it receives the typed error
        (:class:`~wattplan.AccessDeniedError`, :class:`~wattplan.StateMismatchError`,
        :class:`~wattplan.InvalidGrantError`, …, or :class:`~wattplan.TransportError` when
        the token endpoint could not be reached). Default: an HTML page, 403 for a denial,
        502 for a server-side problem, 400 otherwise.
    secure_cookies:
        Mark the state cookie ``Secure`` (default: when the redirect URI is https).
    """
    redirect_uri = manager.config.redirect_uri or ""
    secure = redirect_uri.startswith("https://") if secure_cookies is None else secure_cookies

    async def _customer(request: Request) -> str | None:
        if authenticate is None:
            return None
        customer = await _maybe_await(authenticate(request))
        return customer if isinstance(customer, str) and customer else None

    async def connect(request: Request) -> Response:
        customer = await _customer(request)
        if customer is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers=_NO_STORE)
        binding = secrets.token_urlsafe(32)
        start = await run_in_threadpool(manager.start_authorization, customer, binding=binding)
        response = RedirectResponse(start.url, status_code=302, headers=_NO_STORE)
        max_age = int((start.expires_at - datetime.now(UTC)).total_seconds())
        response.set_cookie(
            _cookie_name(start.state),
            binding,
            max_age=max(max_age, 60),
            httponly=True,
            samesite="lax",  # sent on the top-level redirect back from the server
            secure=secure,
            path="/",
        )
        return response

    async def callback(request: Request) -> Response:
        params = dict(request.query_params)
        state = params.get("state")
        binding = request.cookies.get(_cookie_name(state)) if state else None
        try:
            grant = await run_in_threadpool(manager.complete_authorization, params, binding=binding)
        except WattplanError as exc:  # typed auth errors, or the token endpoint unreachable
            logger.info("authorization callback failed: %s", type(exc).__name__)
            if on_error is not None:
                response = await _maybe_await(on_error(request, exc))
                assert isinstance(response, Response)
            elif isinstance(exc, AccessDeniedError):
                response = _page("Not connected", "You declined the access request.", 403)
            elif isinstance(exc, StateMismatchError):
                response = _page("Link expired", "Please start connecting again.", 400)
            else:
                response = _page(
                    "Connection failed",
                    f"The sign-in failed ({type(exc).__name__}).",
                    _error_status(exc),
                )
        else:
            if on_connected is not None:
                response = await _maybe_await(on_connected(request, grant))
                assert isinstance(response, Response)
            else:
                response = _page("Connected", "Your account is connected.", 200)
        if state:
            response.delete_cookie(_cookie_name(state), path="/")
        for key, value in _NO_STORE.items():
            response.headers.setdefault(key, value)
        return response

    async def token_refresh(request: Request) -> Response:
        customer = await _customer(request)
        if customer is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers=_NO_STORE)
        try:
            grant = await run_in_threadpool(manager.get_token, customer)
        except GrantNotFoundError:
            return JSONResponse({"error": "not_connected"}, status_code=404, headers=_NO_STORE)
        except ReauthorizationRequiredError:
            return JSONResponse(
                {"error": "reauthorization_required"}, status_code=409, headers=_NO_STORE
            )
        except WattplanError as exc:
            status = 503 if exc.transient else 502
            return JSONResponse({"error": "unavailable"}, status_code=status, headers=_NO_STORE)
        assert grant.token is not None
        now = datetime.now(UTC)
        body: dict[str, object] = {
            "access_token": grant.token.access_token.get_secret_value(),
            "token_type": "Bearer",
            "scope": grant.scope,
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
            "expires_in": (
                max(int((grant.expires_at - now).total_seconds()), 0) if grant.expires_at else None
            ),
        }
        return JSONResponse(body, headers=_NO_STORE)

    return Starlette(
        routes=[
            Route("/connect", connect, methods=["GET"]),
            Route("/callback", callback, methods=["GET"]),
            Route("/token/refresh", token_refresh, methods=["POST"]),
        ]
    )
