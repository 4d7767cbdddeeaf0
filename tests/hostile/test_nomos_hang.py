"""A Nomos API that accepts connections and never answers.

Before: every try waited out its 30 s timeout, four tries plus backoff, and the planner's
``/health`` said ok for over two minutes. Now a call has a total deadline
(``RetryPolicy.max_call_s``) and ``/health`` reports price fetches: a hanging one shows as
stalled while it hangs, and as a failure once its deadline ends it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.hostile._servers import api
from tests.planner.conftest import BERLIN, FakeClock, FakeOptimizer, fake_customer
from wattplan.exceptions import TransportError
from wattplan.nomos import BearerToken, NomosClient, RetryPolicy
from wattplan.planner import Planner, PlanStore
from wattplan.planner._nomos import NomosPriceSource

GIVE_UP_S = 20.0  # upper bound for a fixed server to react; never reached when it works


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts every connection and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def test_a_hanging_call_ends_at_its_deadline_not_after_minutes() -> None:
    policy = RetryPolicy(max_call_s=0.5)
    with (
        silent_server() as url,
        NomosClient(base_url=url, auth=BearerToken("t"), retry=policy) as c,
        pytest.raises(TransportError, match=r"no answer within 0.5 s"),
    ):
        c.prices_series("sub_1", "2026-01-20", "2026-01-21")


def test_the_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_call_s"):
        RetryPolicy(max_call_s=0)


def test_a_hanging_nomos_shows_in_health_while_it_hangs_and_after(tmp_path: Any) -> None:
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}")
    with silent_server() as url:
        source = NomosPriceSource(
            base_url=url,
            auth_for=lambda _customer: BearerToken("t"),
            client_options={"retry": RetryPolicy(max_call_s=3.0)},
        )
        planner = Planner(
            customers=[fake_customer("a")],
            store=store,
            prices=source,
            optimize=FakeOptimizer(),
            clock=clock,
            fetch_stalled_after=timedelta(seconds=0.2),
        )
        with api(planner) as client:
            before = client.get("/health").json()
            assert before["status"] == "ok"
            assert before["price_fetches"]["in_flight"] == 0

            passes: list[Any] = []
            worker = threading.Thread(target=lambda: passes.append(planner.run_once()))
            worker.start()
            deadline = time.monotonic() + GIVE_UP_S
            health: dict[str, Any] = {}
            while time.monotonic() < deadline and worker.is_alive():
                health = client.get("/health").json()
                if health["price_fetches"]["stalled"]:
                    break
                time.sleep(0.05)
            assert health["status"] == "degraded"  # while the call still hangs
            assert health["price_fetches"]["in_flight"] == 1

            worker.join(GIVE_UP_S)
            assert not worker.is_alive()
            assert passes[0].failed == ["a"]
            health = client.get("/health").json()
            fetches = health["price_fetches"]
            assert health["status"] == "degraded"
            assert (fetches["ok"], fetches["consecutive_failures"], fetches["in_flight"]) == (
                False,
                1,
                0,
            )
            assert "no answer within 3 s" in fetches["last_error"]
            assert fetches["last_ok_at"] is None
        source.close()
    store.dispose()
