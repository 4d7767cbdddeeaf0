"""Run the sandbox with uvicorn in a background thread (tests, notebooks, the demo)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from wattplan.sandbox._app import DEVELOPMENT_WARNING, create_app
from wattplan.sandbox._clock import SandboxClock
from wattplan.sandbox._config import SandboxConfig
from wattplan.sandbox._state import SandboxState

__all__ = ["RunningSandbox", "is_loopback", "serve"]

logger = logging.getLogger("wattplan.sandbox")
_START_TIMEOUT_S = 20.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RunningSandbox:
    """A sandbox served by uvicorn in a daemon thread.

    Attributes
    ----------
    base_url : str
        ``http://127.0.0.1:<port>`` (no trailing slash).
    clock : SandboxClock
    state : SandboxState
        Counters (``state.refresh_grants_served``, ``state.counters``), fault switches
        (``state.faults``), the authorization server (``state.oauth``).
    app : Starlette
    """

    def __init__(self, app: Starlette, sock: socket.socket, host: str) -> None:
        self.app = app
        self.state: SandboxState = app.state.sandbox
        self.clock: SandboxClock = self.state.clock
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}"
        self._sock = sock
        config = uvicorn.Config(
            app,
            log_config=None,  # the library never configures logging
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            limit_concurrency=None,
            backlog=512,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="wattplan-sandbox",
            daemon=True,
        )

    def __repr__(self) -> str:
        return f"RunningSandbox(base_url={self.base_url!r})"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path``."""
        return self.base_url + (path if path.startswith("/") else "/" + path)


@contextlib.contextmanager
def serve(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: SandboxClock | None = None,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on ``host:port`` (port 0: a free one) for the ``with`` block.

    Examples
    --------
    >>> from wattplan.sandbox import serve
    >>> with serve() as sb:                                  # doctest: +SKIP
    ...     httpx.get(sb.base_url + "/.well-known/oauth-authorization-server")
    """
    app = create_app(config, clock=clock)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    logger.warning(DEVELOPMENT_WARNING)
    if not is_loopback(host):
        logger.warning("wattplan sandbox: listening on %s, which is NOT loopback", host)
    running = RunningSandbox(app, sock, host)
    running.start()
    logger.info("wattplan sandbox serving on %s", running.base_url)
    try:
        yield running
    finally:
        running.stop()
