"""Serve an ASGI app with uvicorn on a socket, in a background thread.

The sandbox, the planner's HTTP API and ``wattplan login``'s loopback redirect all need the
same thing: bind first (so port 0 gives a free port we know before serving), run uvicorn in a
daemon thread without letting it configure logging (the library never does), wait until it
accepts connections, and stop it cleanly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from wattplan.exceptions import WattplanError

__all__ = ["BackgroundServer", "serve_in_thread"]


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
        config = uvicorn.Config(
            app,
            log_config=None,  # the library never configures logging
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=512,
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
) -> Iterator[str]:
    """Serve ``app`` for the ``with`` block; yields the base URL."""
    with BackgroundServer(app, host=host, port=port, name=name, error=error) as server:
        yield server.base_url
