"""The plan store on SQLite and PostgreSQL: history, restart safety, device state, health."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from wattplan.exceptions import PlannerError
from wattplan.planner import CustomerHealth, PlanStore, price_fingerprint

from .conftest import synthetic_prices

T0 = datetime(2026, 1, 20, 14, 25, tzinfo=UTC)


def _save(store: PlanStore, prices: pd.Series, *, now: datetime = T0, state: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    return store.save_plan(
        "c1",
        now=now,
        horizon_start=now,
        horizon_end=now + timedelta(hours=24),
        reason="initial",
        status="optimal",
        cost_eur=1.5,
        baseline_cost_eur=2.0,
        savings_eur=0.5,
        prices=prices,
        prices_fingerprint=price_fingerprint(prices),
        device_state=state or {},
        document={"status": "optimal", "schedule": [{"start": now.isoformat(), "x_kw": 1.0}]},
    )


def test_plans_keep_history_and_their_prices(store: PlanStore) -> None:
    store.ensure_customer("c1", now=T0)
    today = synthetic_prices(date(2026, 1, 20), 1)
    both = synthetic_prices(date(2026, 1, 20), 2)
    first, created1 = _save(store, today)
    second, created2 = _save(store, both, now=T0 + timedelta(hours=1))
    assert created1
    assert created2
    history = store.plan_history("c1")
    assert [p.id for p in history] == [second.id, first.id]
    pd.testing.assert_series_equal(history[0].prices, both, check_names=False, check_freq=False)
    assert history[1].prices.index.tz is not None
    assert history[0].created_at == T0 + timedelta(hours=1)
    assert history[0].document["schedule"][0]["x_kw"] == 1.0
    assert store.latest_plan("c1") == history[0]


def test_saving_the_same_inputs_twice_adds_no_duplicate(store: PlanStore) -> None:
    store.ensure_customer("c1", now=T0)
    prices = synthetic_prices(date(2026, 1, 20), 1)
    first, created = _save(store, prices)
    again, created_again = _save(store, prices)
    assert created
    assert not created_again
    assert again.id == first.id
    assert store.count_plans("c1") == 1


def test_a_second_store_on_the_same_database_sees_everything(
    store: PlanStore, db_url: str, table_prefix: str
) -> None:
    store.ensure_customer("c1", now=T0)
    _save(store, synthetic_prices(date(2026, 1, 20), 1))
    store.update_device_state("c1", {"home-battery": {"soc_kwh": 4.0}}, now=T0)
    restarted = PlanStore(db_url, table_prefix=table_prefix)
    try:
        assert restarted.count_plans("c1") == 1
        assert restarted.device_state("c1").devices == {"home-battery": {"soc_kwh": 4.0}}
        restarted.ensure_customer("c1", now=T0)  # idempotent
        assert restarted.customer_ids() == ["c1"]
    finally:
        restarted.dispose()


def test_device_state_merges_replaces_and_versions(store: PlanStore) -> None:
    store.ensure_customer("c1", now=T0)
    assert store.device_state("c1").version == 0
    s1 = store.update_device_state("c1", {"car": {"soc_kwh": 10.0}}, now=T0)
    s2 = store.update_device_state("c1", {"home-battery": {"soc_kwh": 3.0}}, now=T0)
    assert (s1.version, s2.version) == (1, 2)
    assert s2.devices == {"car": {"soc_kwh": 10.0}, "home-battery": {"soc_kwh": 3.0}}
    s3 = store.update_device_state("c1", {"car": {"energy_kwh": 5.0}}, now=T0, replace=True)
    assert s3.devices == {"car": {"energy_kwh": 5.0}}
    assert store.device_state("c1").updated_at == T0


def test_health_is_recorded_and_cleared(store: PlanStore) -> None:
    store.ensure_customer("c1", now=T0)
    assert store.status("c1").health is CustomerHealth.PENDING  # type: ignore[union-attr]
    _save(store, synthetic_prices(date(2026, 1, 20), 1))
    store.record_failure("c1", now=T0, kind="api_error", message="503 outage")
    store.record_failure("c1", now=T0 + timedelta(minutes=5), kind="api_error", message="503")
    status = store.status("c1")
    assert status is not None
    assert status.health is CustomerHealth.ERROR
    assert status.failures == 2
    assert status.stale()
    doc = status.as_dict(T0 + timedelta(hours=1))
    assert doc["stale"] is True
    assert doc["plan_age_seconds"] == 3600
    store.record_success("c1", now=T0 + timedelta(hours=1), attempt_key="k")
    healthy = store.status("c1")
    assert healthy is not None
    assert healthy.health is CustomerHealth.OK
    assert not healthy.stale()
    assert healthy.failures == 0


def test_bad_url_is_a_planner_error() -> None:
    with pytest.raises(PlannerError, match="not a valid"):
        PlanStore("not a url at all")


def test_repr_hides_the_password() -> None:
    store = PlanStore("postgresql+psycopg://user:hunter2secret@127.0.0.1:1/db", create=False)
    assert "hunter2secret" not in repr(store)


def test_a_forecast_keeps_its_mean_and_an_older_one_without_plans_on_p50(
    store: PlanStore,
) -> None:
    index = pd.date_range("2026-01-21", periods=4, freq="15min", tz="UTC")
    frame = pd.DataFrame(
        {
            "kwh_p10": [0.01, 0.02, 0.03, 0.04],
            "kwh_p50": [0.05, 0.06, 0.07, 0.08],
            "kwh_p90": [0.2, 0.3, 0.4, 0.5],
            "kwh_mean": [0.09, 0.1, 0.11, 0.12],
        },
        index=index,
    )
    store.save_forecast("c1", frame, now=T0)
    lo, hi = index[0].to_pydatetime(), (index[-1] + pd.Timedelta(minutes=15)).to_pydatetime()
    back = store.forecast("c1", since=lo, until=hi)
    assert back["kwh_mean"].tolist() == [0.09, 0.1, 0.11, 0.12]
    assert back["kwh_p50"].tolist() == [0.05, 0.06, 0.07, 0.08]
    # a forecast stored before the mean existed (NULL) plans on its P50
    table = store._t["forecast"]
    with store.engine.begin() as conn:
        conn.execute(table.update().where(table.c.start == index[1].to_pydatetime()).values(
            kwh_mean=None))  # fmt: skip
    assert store.forecast("c1", since=lo, until=hi)["kwh_mean"].tolist() == [0.09, 0.06, 0.11, 0.12]
    # a frame without the mean stores its P50 as the mean
    store.save_forecast("c2", frame.drop(columns="kwh_mean"), now=T0)
    assert store.forecast("c2", since=lo, until=hi)["kwh_mean"].tolist() == [0.05, 0.06, 0.07, 0.08]
