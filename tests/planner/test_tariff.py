"""The tariff feed: a customer's all-in prices for evcc (and as plain JSON), over real HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from wattplan._http import serve_in_thread
from wattplan.planner import BearerKeys, Planner, PlanStore, create_app
from wattplan.planner._tariff import evcc_forecast, tariff_slots

from .conftest import BERLIN, FakeClock, FakeOptimizer, FakePriceSource, fake_customer
from .conftest import synthetic_prices as _prices

KEY = "key-of-customer-c1-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _expected_ct(moment: datetime) -> float:
    """The synthetic curve recomputed from its rule (not from the series the planner saw)."""
    hour = moment.astimezone(BERLIN).hour
    return 30.0 + (10.0 if 17 <= hour < 21 else 0.0) - (8.0 if hour < 5 else 0.0)


def _hourly(start: date, days: int) -> pd.Series:
    quarter = _prices(start, days)
    return quarter[quarter.index.minute == 0]


@contextmanager
def _serve_planner(
    store: PlanStore, *, now: datetime, prices: pd.Series
) -> Iterator[tuple[httpx.Client, Planner]]:
    clock = FakeClock(now)
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=FakePriceSource(clock, prices),
        optimize=FakeOptimizer(),
        clock=clock,
    )
    assert planner.run_once().planned == ["c1"]
    app = create_app(planner, auth=BearerKeys({"c1": KEY}))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, planner


def _day_rows(rows: list[dict[str, object]], day: date) -> list[dict[str, object]]:
    lo = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
    hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
    return [r for r in rows if lo <= datetime.fromisoformat(str(r["start"])) < hi]


def _assert_contiguous_utc(rows: list[dict[str, object]], slot: timedelta) -> None:
    for row in rows:
        assert str(row["start"]).endswith("Z") and str(row["end"]).endswith("Z")
        start = datetime.fromisoformat(str(row["start"]))
        end = datetime.fromisoformat(str(row["end"]))
        assert end - start == slot
    for a, b in itertools.pairwise(rows):
        assert a["end"] == b["start"]


@pytest.mark.parametrize(
    ("day", "slots"),
    [(date(2026, 1, 21), 96), (date(2026, 3, 29), 92), (date(2025, 10, 26), 100)],
    ids=["normal", "spring-23h", "autumn-25h"],
)
def test_evcc_feed_covers_the_next_local_day_slot_by_slot(
    store: PlanStore, day: date, slots: int
) -> None:
    now = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=BERLIN).replace(
        hour=15
    )
    with _serve_planner(store, now=now, prices=_prices(day - timedelta(days=5), 7)) as (
        client,
        _planner,
    ):
        r = client.get("/customers/c1/tariff", params={"format": "evcc"}, headers=AUTH)
        assert r.status_code == 200
        rows = r.json()
        assert isinstance(rows, list)
        assert set(rows[0]) == {"start", "end", "value"}
        # starts at the running slot (15:00 local) and runs to the end of the next day
        assert datetime.fromisoformat(rows[0]["start"]) == now.astimezone(UTC)
        last_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
        assert datetime.fromisoformat(rows[-1]["end"]) == last_end
        _assert_contiguous_utc(rows, timedelta(minutes=15))
        ahead = _day_rows(rows, day)
        assert len(ahead) == slots
        for row in rows:
            expected = _expected_ct(datetime.fromisoformat(row["start"])) / 100
            assert row["value"] == pytest.approx(expected)


def test_hourly_prices_give_hourly_slots(store: PlanStore) -> None:
    now = datetime(2026, 3, 28, 15, 20, tzinfo=BERLIN)
    with _serve_planner(store, now=now, prices=_hourly(date(2026, 3, 25), 6)) as (
        client,
        _planner,
    ):
        rows = client.get("/customers/c1/tariff", params={"format": "evcc"}, headers=AUTH).json()
        _assert_contiguous_utc(rows, timedelta(hours=1))
        assert rows[0]["start"] == "2026-03-28T14:00:00Z"  # the hour running at 15:20 CET
        assert len(_day_rows(rows, date(2026, 3, 29))) == 23
        for row in rows:
            expected = _expected_ct(datetime.fromisoformat(row["start"])) / 100
            assert row["value"] == pytest.approx(expected)


def test_json_format_carries_both_units_and_the_plan_it_came_with(store: PlanStore) -> None:
    now = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)
    with _serve_planner(store, now=now, prices=_prices(date(2026, 1, 15), 7)) as (
        client,
        planner,
    ):
        default = client.get("/customers/c1/tariff", headers=AUTH)
        explicit = client.get("/customers/c1/tariff", params={"format": "json"}, headers=AUTH)
        assert default.status_code == explicit.status_code == 200
        assert default.json() == explicit.json()
        body = default.json()
        assert body["customer_id"] == "c1"
        assert body["currency"] == "EUR"
        assert body["resolution_minutes"] == 15
        assert body["plan_id"] == planner.store.latest_plan("c1").id  # type: ignore[union-attr]
        for slot in body["slots"]:
            assert slot["price_eur_per_kwh"] == pytest.approx(slot["price_ct_per_kwh"] / 100)
        evcc = client.get("/customers/c1/tariff", params={"format": "evcc"}, headers=AUTH).json()
        assert [r["value"] for r in evcc] == [s["price_eur_per_kwh"] for s in body["slots"]]


def test_the_feed_is_behind_the_customers_key_and_names_a_bad_format(store: PlanStore) -> None:
    now = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)
    with _serve_planner(store, now=now, prices=_prices(date(2026, 1, 15), 7)) as (
        client,
        _planner,
    ):
        assert client.get("/customers/c1/tariff", params={"format": "evcc"}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key-of-anybody-at-all"}
        r = client.get("/customers/c1/tariff", params={"format": "evcc"}, headers=wrong)
        assert r.status_code == 403
        assert "value" not in r.text
        r = client.get("/customers/c1/tariff", params={"format": "csv"}, headers=AUTH)
        assert r.status_code == 400
        assert r.json()["key"] == "format"
        assert "evcc" in r.json()["message"]


def test_no_plan_yet_is_a_404_not_an_empty_feed(store: PlanStore) -> None:
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    planner = Planner(
        customers=[fake_customer("c1")],
        store=store,
        prices=FakePriceSource(clock, _prices(date(2026, 1, 15), 7)),
        optimize=FakeOptimizer(),
        clock=clock,
    )
    app = create_app(planner, auth=BearerKeys({"c1": KEY}))
    with serve_in_thread(app) as url:
        r = httpx.get(f"{url}/customers/c1/tariff", params={"format": "evcc"}, headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"] == "no_prices"


# --- the pure function -------------------------------------------------------------------


def _curve(start: str, periods: int, freq: str) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq=freq, tz="UTC")
    return pd.Series(np.arange(periods, dtype=float) + 20.0, index=index)


def test_a_missing_price_or_slot_ends_the_feed() -> None:
    now = datetime(2026, 1, 20, 0, 0, tzinfo=UTC)
    prices = _curve("2026-01-20", 8, "15min")
    prices.iloc[5] = np.nan
    rows = tariff_slots(prices, now=now, default_slot=timedelta(minutes=15))
    assert [r["price_ct_per_kwh"] for r in rows] == [20.0, 21.0, 22.0, 23.0, 24.0]
    holed = _curve("2026-01-20", 8, "15min").drop(index=pd.Timestamp("2026-01-20 00:30Z"))
    rows = tariff_slots(holed, now=now, default_slot=timedelta(minutes=15))
    assert [r["end"] for r in rows] == ["2026-01-20T00:15:00Z", "2026-01-20T00:30:00Z"]


def test_the_feed_starts_at_the_running_slot() -> None:
    prices = _curve("2026-01-20", 8, "15min")
    rows = tariff_slots(
        prices, now=datetime(2026, 1, 20, 0, 40, tzinfo=UTC), default_slot=timedelta(minutes=15)
    )
    assert rows[0]["start"] == "2026-01-20T00:30:00Z"
    assert len(rows) == 6
    assert evcc_forecast(rows)[0] == {
        "start": "2026-01-20T00:30:00Z",
        "end": "2026-01-20T00:45:00Z",
        "value": 0.22,
    }


def test_a_switch_from_hourly_to_quarter_hourly_prices_stays_contiguous() -> None:
    # the day-ahead market went to 15 minutes on 2025-10-01: hourly 30 Sep, 15-minute 1 Oct
    hourly = _curve("2025-09-29 22:00", 24, "1h")
    quarter = _curve("2025-09-30 22:00", 96, "15min")
    rows = tariff_slots(
        pd.concat([hourly, quarter]),
        now=datetime(2025, 9, 29, 22, 0, tzinfo=UTC),
        default_slot=timedelta(minutes=15),
    )
    assert len(rows) == 24 + 96
    assert rows[23]["start"] == "2025-09-30T21:00:00Z" and rows[23]["end"] == rows[24]["start"]
    assert rows[24]["end"] == "2025-09-30T22:15:00Z"
    for a, b in itertools.pairwise(rows):
        assert a["end"] == b["start"]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        tariff_slots(
            _curve("2026-01-20", 4, "15min"),
            now=datetime(2026, 1, 20),
            default_slot=timedelta(minutes=15),
        )


def test_readme_evcc_snippet_reads_the_feed(store: PlanStore) -> None:
    import yaml

    from tests.readme import readme_block

    config = yaml.safe_load(readme_block("example: evcc", "yaml"))
    grid = config["tariffs"]["grid"]
    assert config["tariffs"]["currency"] == "EUR"
    assert grid["type"] == "custom" and grid["forecast"]["source"] == "http"
    uri = httpx.URL(grid["forecast"]["uri"])
    (header,) = grid["forecast"]["headers"]
    customer_id = uri.path.split("/")[2]
    key = "key-of-the-readme-customer-0123456789"
    headers = {
        name: value.replace("<the key of customer-42>", key) for name, value in header.items()
    }
    clock = FakeClock(datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN))
    planner = Planner(
        customers=[fake_customer(customer_id)],
        store=store,
        prices=FakePriceSource(clock, _prices(date(2026, 1, 15), 7)),
        optimize=FakeOptimizer(),
        clock=clock,
    )
    planner.run_once()
    app = create_app(planner, auth=BearerKeys({customer_id: key}))
    with serve_in_thread(app) as url:
        r = httpx.get(f"{url}{uri.raw_path.decode()}", headers=headers, timeout=30)
    assert r.status_code == 200
    rows = r.json()
    assert rows and set(rows[0]) == {"start", "end", "value"}
