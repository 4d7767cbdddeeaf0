"""Assemble the sandbox ASGI app."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wattplan._defaults import DEFAULT_API_VERSION
from wattplan.sandbox._clock import SandboxClock
from wattplan.sandbox._config import SandboxConfig
from wattplan.sandbox._control import control_routes
from wattplan.sandbox._errors import api_error
from wattplan.sandbox._oauth import oauth_routes
from wattplan.sandbox._state import Exchange, SandboxState

__all__ = ["DEVELOPMENT_WARNING", "KNOWN_API_VERSIONS", "create_app"]

logger = logging.getLogger("wattplan.sandbox")

DEVELOPMENT_WARNING = (
    "wattplan sandbox: this is a DEVELOPMENT TOOL that imitates the Nomos API with fake "
    "customers and real public prices; it is not Nomos, has no security worth the name "
    "and must not be exposed beyond this machine."
)
KNOWN_API_VERSIONS = frozenset(
    {"2026-05-27.curie", "2026-01-29.edison", "2025-12-16.batman", "2025-12-01.chucky"}
)


class _EdgeMiddleware:
    """Echo ``X-API-Version``, reject unknown versions, record exchanges if asked."""

    def __init__(self, app: ASGIApp, sandbox: SandboxState) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        control = path.startswith("/_sandbox")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        version = headers.get("x-api-version") or DEFAULT_API_VERSION
        record = self.sandbox.config.record_exchanges and not control
        status = 0
        out_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if not control:
                    raw = list(message.get("headers", []))
                    raw.append((b"x-api-version", version.encode("latin-1")))
                    message = {**message, "headers": raw}
                if record:
                    for k, v in message.get("headers", []):
                        out_headers[k.decode("latin-1").lower()] = v.decode("latin-1")
            elif message["type"] == "http.response.body" and record:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # recorded before the last byte leaves, so a client that has its
                    # answer always finds the exchange in the record
                    self.sandbox.exchanges.append(
                        Exchange(
                            method=scope["method"],
                            path=path,
                            query=scope.get("query_string", b"").decode("latin-1"),
                            request_headers={
                                k: ("<redacted>" if k in ("authorization", "cookie") else v)
                                for k, v in headers.items()
                            },
                            status_code=status,
                            response_headers=dict(out_headers),
                            body=b"".join(chunks),
                        )
                    )
            await send(message)

        if not control and version not in KNOWN_API_VERSIONS:
            version = DEFAULT_API_VERSION
            response = api_error(400, "unknown X-API-Version")
            await response(scope, receive, send_wrapper)
        else:
            await self.app(scope, receive, send_wrapper)


async def _not_found(request: Request, exc: Exception) -> Response:
    # PROBE: unknown paths answer 401 without credentials, 404 with them
    if "authorization" not in request.headers:
        return api_error(401, "Invalid or malformed token")
    return api_error(404, "Resource not found")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return await _not_found(request, exc)
    return api_error(status if status in (400, 405) else 500, "request failed")


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("sandbox: unhandled error on %s", request.url.path)
    return api_error(500, "Internal Server Error")


def create_app(
    config: SandboxConfig | None = None, *, clock: SandboxClock | None = None
) -> Starlette:
    """The sandbox as a Starlette app; its state is ``app.state.sandbox``.

    Parameters
    ----------
    config
        Seeded customers, OAuth clients and switches (default :class:`SandboxConfig`).
    clock
        A :class:`SandboxClock` to share with the test (default: a new real-time clock).
    """
    from wattplan.sandbox._api import api_routes  # imported late: pandas is heavy

    config = config if config is not None else SandboxConfig()
    sandbox = SandboxState(config, clock)
    routes: list[BaseRoute] = [*oauth_routes(), *api_routes()]
    if config.control_endpoints:
        routes.extend(control_routes())
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_EdgeMiddleware, sandbox=sandbox)],
        exception_handlers={404: _not_found, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.sandbox = sandbox
    return app
