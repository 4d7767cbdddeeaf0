"""Real servers for the hostile planner tests: the planner API on loopback.

The cuttable TCP proxy that takes PostgreSQL away from one planner is ``tests._proxy``.
"""

from __future__ import annotations

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
