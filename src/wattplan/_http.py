"""Serve an ASGI app with uvicorn on a socket, in a background thread.

The sandbox, the planner's HTTP API and ``wattplan login``'s loopback redirect all need the
same thing: bind first (so port 0 gives a free port we know before serving), run uvicorn in a
daemon thread without letting it configure logging (the library never does), wait until it
accepts connections, and stop it cleanly.

Slow clients are bounded when asked: ``header_timeout_s`` closes a connection whose request
head is not complete in time, ``keep_alive_s`` an idle kept-alive one, ``max_connections``
answers 503 beyond that many open connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from wattplan.exceptions import WattplanError

__all__ = ["BackgroundServer", "serve_in_thread"]

logger = logging.getLogger(__name__)


def _guarded_h11(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol plus a deadline for each request head.

    uvicorn has no such timeout: its keep-alive timer starts only after a first response
    and any byte received cancels it, so a client that sends half a request line holds the
    connection for ever. The timer here starts when a connection opens and after every
    response, and only a complete request head stops it.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being served: its body has its own deadline
            if not self.transport.is_closing():
                logger.info(
                    "closing a connection: no complete request head within %g s",
                    header_timeout_s,
                )
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # before: a pipelined request started by super() disarms it
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


class BackgroundServer:
    """``app`` served on ``host:port`` (0: a free port) by uvicorn in a daemon thread."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "wattplan-http",
        error: type[WattplanError] = WattplanError,
        header_timeout_s: float | None = None,
        keep_alive_s: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        import uvicorn

        self._error = error
        bind_host = host.strip("[]")
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((bind_host, port))
            self._sock.listen(512)
        except OSError as exc:
            self._sock.close()
            raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port: int = self._sock.getsockname()[1]
        shown = f"[{bind_host}]" if ":" in bind_host else bind_host
        self.base_url = f"http://{shown}:{self.port}"
        options: dict[str, Any] = {}
        if header_timeout_s is not None:
            options["http"] = _guarded_h11(header_timeout_s)
        if keep_alive_s is not None:
            options["timeout_keep_alive"] = keep_alive_s
        if max_connections is not None:
            options["limit_concurrency"] = max_connections
        config = uvicorn.Config(
            app,
            log_config=None,  # the library never configures logging
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=512,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=name, daemon=True
        )

    def __repr__(self) -> str:
        return f"BackgroundServer(base_url={self.base_url!r})"

    def start(self, *, timeout_s: float = 10.0) -> BackgroundServer:
        """Start serving; return once connections are accepted."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise self._error(f"the HTTP server on {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str = "wattplan-http",
    error: type[WattplanError] = WattplanError,
    header_timeout_s: float | None = None,
    keep_alive_s: float | None = None,
    max_connections: int | None = None,
) -> Iterator[str]:
    """Serve ``app`` for the ``with`` block; yields the base URL."""
    with BackgroundServer(
        app,
        host=host,
        port=port,
        name=name,
        error=error,
        header_timeout_s=header_timeout_s,
        keep_alive_s=keep_alive_s,
        max_connections=max_connections,
    ) as server:
        yield server.base_url
