"""Real servers for the hostile planner tests: the planner API, a cuttable TCP proxy.

The proxy stands between the planner and the shared PostgreSQL so that a test can take the
database away from one planner (and give it back) without stopping it for anyone else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import httpx

from tests.planner.conftest import (
    BERLIN,
    FakeClock,
    FakeOptimizer,
    FakePriceSource,
    fake_customer,
    synthetic_prices,
)
from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Planner, PlanStore, create_app

KEY_A = "key-of-customer-a-0123456789"
KEY_B = "key-of-customer-b-9876543210"
KEYS = {"a": KEY_A, "b": KEY_B}


def auth(customer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[customer]}"}


def make_planner(store: PlanStore, **kw: Any) -> tuple[Planner, FakeClock, FakePriceSource]:
    """Customers ``a`` and ``b`` on fake prices at 2026-01-20 15:00 Berlin (not yet run)."""
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    source = FakePriceSource(clock, synthetic_prices(date(2026, 1, 15), 14))
    planner = Planner(
        customers=[fake_customer("a"), fake_customer("b")],
        store=store,
        prices=source,
        optimize=FakeOptimizer(),
        clock=clock,
        **kw,
    )
    return planner, clock, source


@contextmanager
def api(planner: Planner, **app_kw: Any) -> Iterator[httpx.Client]:
    """The planner's API on a free loopback port, with a client."""
    app = create_app(planner, auth=BearerKeys(KEYS), **app_kw)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


class CuttableProxy:
    """A TCP forwarder to ``target`` on a free loopback port; ``cut()`` is an outage."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # the database is "down": the connection drops at once
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._up.clear()
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
