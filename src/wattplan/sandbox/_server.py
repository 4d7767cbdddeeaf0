"""Run the sandbox with uvicorn in a background thread (tests, notebooks, the demo)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterator

from starlette.applications import Starlette

from wattplan._http import BackgroundServer
from wattplan.exceptions import ConfigurationError
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

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.app = app
        self.state: SandboxState = app.state.sandbox
        self.clock: SandboxClock = self.state.clock
        self._server = BackgroundServer(app, host=host, port=port, name="wattplan-sandbox")
        self.base_url = self._server.base_url

    def __repr__(self) -> str:
        return f"RunningSandbox(base_url={self.base_url!r})"

    def start(self) -> None:
        self._server.start(timeout_s=_START_TIMEOUT_S)

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self._server.stop()

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
    allow_remote: bool = False,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on ``host:port`` (port 0: a free one) for the ``with`` block.

    A ``host`` that is not loopback needs ``allow_remote=True`` (a development tool with
    fake customers and, unless ``config.control_endpoints`` is off, endpoints that sign
    anyone in); otherwise :class:`~wattplan.exceptions.ConfigurationError`.

    Examples
    --------
    >>> from wattplan.sandbox import serve
    >>> with serve() as sb:                                  # doctest: +SKIP
    ...     httpx.get(sb.base_url + "/.well-known/oauth-authorization-server")
    """
    if not is_loopback(host) and not allow_remote:
        raise ConfigurationError(
            f"sandbox host {host!r} is not a loopback address; pass allow_remote=True to "
            "serve the development sandbox on the network"
        )
    app = create_app(config, clock=clock)
    running = RunningSandbox(app, host, port)
    logger.warning(DEVELOPMENT_WARNING)
    if not is_loopback(host):
        logger.warning("wattplan sandbox: listening on %s, which is NOT loopback", host)
        if app.state.sandbox.config.control_endpoints:
            logger.warning(
                "wattplan sandbox: the /_sandbox control endpoints (sign-in shortcuts) are "
                "reachable from the network"
            )
    running.start()
    logger.info("wattplan sandbox serving on %s", running.base_url)
    try:
        yield running
    finally:
        running.stop()
