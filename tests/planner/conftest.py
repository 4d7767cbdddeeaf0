"""Fixtures for the planner tests: stores on both backends, a fake clock, stand-ins.

PostgreSQL and Mosquitto tests skip with a reason when the service is unreachable and CI
is unset; under CI they fail instead (a missing service must not pass silently).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from wattplan.exceptions import PricesNotPublishedError, ServerError
from wattplan.planner import Customer, PlanStore

BERLIN = ZoneInfo("Europe/Berlin")
POSTGRES_URL = os.environ.get(
    "WATTPLAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(host: str, port: int, name: str) -> None:
    if _port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the service is required)")
    pytest.skip(f"{message}; start it or set CI to make this a failure")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'planner.sqlite3'}"
    require_service("127.0.0.1", 5432, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture
def table_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def store(db_url: str, table_prefix: str) -> Iterator[PlanStore]:
    s = PlanStore(db_url, table_prefix=table_prefix)
    yield s
    s.drop_all()
    s.dispose()


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def synthetic_prices(start: date, days: int) -> pd.Series:
    """15-minute all-in prices for whole local days: cheap at night, dear in the evening."""
    lo = datetime.combine(start, datetime.min.time(), tzinfo=BERLIN)
    hi = datetime.combine(start + timedelta(days=days), datetime.min.time(), tzinfo=BERLIN)
    index = pd.date_range(lo.astimezone(UTC), hi.astimezone(UTC), freq="15min", inclusive="left")
    local_hour = index.tz_convert(BERLIN).hour
    values = 30.0 + 10.0 * ((local_hour >= 17) & (local_hour < 21)) - 8.0 * (local_hour < 5)
    return pd.Series(values.astype(float), index=index, name="price_ct_per_kwh")


class FakePriceSource:
    """Prices for day D become visible at ``publication`` local time on D-1."""

    def __init__(self, clock: FakeClock, prices: pd.Series, *, publication: str = "14:20") -> None:
        self.clock = clock
        self.prices = prices
        hour, minute = (int(x) for x in publication.split(":"))
        self.publication = (hour, minute)
        self.outage = False
        self.failing: set[str] = set()
        self.calls = 0

    def published(self, day: date) -> bool:
        now_local = self.clock.now().astimezone(BERLIN)
        if day <= now_local.date():
            return True
        if day == now_local.date() + timedelta(days=1):
            return (now_local.hour, now_local.minute) >= self.publication
        return False

    def fetch_prices(self, customer: Customer, *, start: date, end: date) -> pd.Series:
        self.calls += 1
        if self.outage or customer.id in self.failing:
            raise ServerError("sandbox outage", status_code=503)
        day = start
        while day <= end:
            if not self.published(day):
                raise PricesNotPublishedError(f"prices for {day} are not published yet")
            day += timedelta(days=1)
        lo = datetime.combine(start, datetime.min.time(), tzinfo=BERLIN).astimezone(UTC)
        hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
        idx = self.prices.index
        return self.prices[(idx >= lo) & (idx < hi.astimezone(UTC))].copy()


@dataclass(frozen=True)
class FakeDevice:
    name: str
    kind: str
    capacity_kwh: float = 10.0


@dataclass(frozen=True)
class FakeScenario:
    """Stands in for ``wattplan.Scenario`` in unit tests (same planner-facing surface)."""

    start: datetime
    end: datetime
    resolution: str = "15min"
    timezone: str = "Europe/Berlin"
    devices: tuple[FakeDevice, ...] = (
        FakeDevice("car", "ev"),
        FakeDevice("home-battery", "battery"),
        FakeDevice("heat-pump", "heat_pump"),
    )
    state: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    infeasible: bool = False

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        return replace(self, **dict(update or {}))

    def with_device_state(self, name: str, /, **fields: Any) -> FakeScenario:
        device = next((d for d in self.devices if d.name == name), None)
        if device is None:
            raise ValueError(f"no device {name}")
        soc = fields.get("soc_kwh")
        if soc is not None and float(soc) > device.capacity_kwh:
            from wattplan.exceptions import ScenarioError

            raise ScenarioError(key=f"devices.{name}.soc_kwh", reason="above capacity_kwh")
        merged = {**self.state, name: {**self.state.get(name, {}), **fields}}
        return replace(self, state=merged)


@dataclass
class FakePlan:
    status: str
    cost_eur: float
    baseline_cost_eur: float
    savings_eur: float
    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "cost_eur": self.cost_eur,
            "baseline_cost_eur": self.baseline_cost_eur,
            "savings_eur": self.savings_eur,
            "resolution_minutes": 15,
            "devices": [],
            "schedule": self.rows,
        }


class FakeOptimizer:
    """Charges the battery in the cheapest quarter of the slots; records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, pd.Series]] = []

    def __call__(self, scenario: Any, prices: pd.Series) -> FakePlan:
        self.calls.append((scenario, prices))
        if scenario.infeasible:
            return FakePlan("infeasible", 0.0, 0.0, 0.0, [])
        slots = pd.date_range(scenario.start, scenario.end, freq="15min", inclusive="left")
        p = prices.reindex(slots, method="ffill")
        cheap = p <= p.quantile(0.25)
        rows = [
            {
                "start": ts.isoformat(),
                "price_ct_per_kwh": float(v),
                "home-battery_kw": 2.0 if c else 0.0,
            }
            for ts, v, c in zip(slots, p.to_numpy(), cheap.to_numpy(), strict=True)
        ]
        cost = float((p * cheap * 2.0 * 0.25).sum() / 100)
        return FakePlan("optimal", cost, cost + 1.0, 1.0, rows)


def fake_customer(customer_id: str, *, rolling: bool = True, **scenario_kw: Any) -> Customer:
    """A customer on a fake scenario; ``rolling`` gives it a factory for any window."""
    t0 = datetime(2026, 1, 20, tzinfo=BERLIN)
    template = FakeScenario(start=t0, end=t0 + timedelta(days=2), **scenario_kw)

    def factory(start: datetime, end: datetime) -> FakeScenario:
        return replace(template, start=start, end=end)

    return Customer(
        id=customer_id,
        scenario=template,
        subscription_id=f"sub_{customer_id}",
        scenario_factory=factory if rolling else None,
    )


# a weekday morning, before the next day's prices are out, with two weeks of prices


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 20, 9, 0, tzinfo=BERLIN))


@pytest.fixture
def source(clock: FakeClock) -> FakePriceSource:
    return FakePriceSource(clock, synthetic_prices(date(2026, 1, 15), 14))
