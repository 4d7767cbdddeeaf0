"""The sandbox's read API over real HTTP: shapes, access rules, data, publication, faults."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.sandbox.oauth_helpers import customer_token, headless_tokens, org_token
from wattplan.sandbox import RunningSandbox, SandboxConfig

BERLIN = ZoneInfo("Europe/Berlin")
DEMO_SUB = "sub_demo00000000000000000001"
ENDED_SUB = "sub_ended0000000000000000002"


def _get(sb: RunningSandbox, token: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(
        sb.url(path), params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _prices(sb: RunningSandbox, token: str, start: str, end: str | None = None) -> dict:
    r = _get(sb, token, f"/subscriptions/{DEMO_SUB}/prices", start=start, end=end or start)
    assert r.status_code == 200, r.text
    body: dict = r.json()
    return body


@pytest.fixture
def demo_token(sandbox: RunningSandbox) -> str:
    return customer_token(sandbox)


@pytest.mark.parametrize(
    ("day", "count", "resolution", "step_min"),
    [
        ("2025-10-26", 100, "15min", 15),  # autumn: 25 hours
        ("2026-03-29", 92, "15min", 15),  # spring: 23 hours
        ("2026-01-20", 96, "15min", 15),
        ("2025-06-11", 24, "hourly", 60),  # before quarter-hour products
        ("2025-03-30", 23, "hourly", 60),
        ("2026-11-28", 96, "15min", 15),  # after the shipped data: mapped
    ],
)
def test_prices_of_one_local_day(
    sandbox: RunningSandbox,
    demo_token: str,
    day: str,
    count: int,
    resolution: str,
    step_min: int,
) -> None:
    sandbox.clock.set(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))
    body = _prices(sandbox, demo_token, day)
    assert body["resolution"] == resolution
    assert body["unit"] == "ct/kWh"
    items = body["items"]
    assert len(items) == count
    stamps = [datetime.fromisoformat(i["timestamp"].replace("Z", "+00:00")) for i in items]
    assert stamps[0] == datetime.combine(date.fromisoformat(day), datetime.min.time(), BERLIN)
    assert all(b - a == timedelta(minutes=step_min) for a, b in itertools.pairwise(stamps))
    for item in items:
        parts = [Decimal(str(c["amount"])) for c in item["components"]]
        assert sum(parts) == Decimal(str(item["amount"]))  # to the cent
        assert [c["type"] for c in item["components"]] == ["electricity", "grid", "levies"]


def test_prices_follow_the_spot_market(sandbox: RunningSandbox, demo_token: str) -> None:
    from wattplan import datasets

    items = _prices(sandbox, demo_token, "2026-01-20")["items"]
    spot = datasets.read_day_ahead_prices("2026-01-20", "2026-01-21")
    expected = datasets.all_in_price_ct_per_kwh(spot).round(2).tolist()
    assert [i["amount"] for i in items] == pytest.approx(expected, abs=0.006)


def test_days_after_the_data_map_onto_the_same_weekday(
    sandbox: RunningSandbox, demo_token: str
) -> None:
    later = _prices(sandbox, demo_token, "2026-11-26")["items"]  # a Thursday
    source = _prices(sandbox, demo_token, "2025-11-27")["items"]  # 52 weeks earlier
    assert [i["amount"] for i in later] == [i["amount"] for i in source]
    dst = _prices(sandbox, demo_token, "2026-10-25")["items"]
    assert len(dst) == 100


def test_a_range_is_end_inclusive(sandbox: RunningSandbox, demo_token: str) -> None:
    items = _prices(sandbox, demo_token, "2026-01-20", "2026-01-22")["items"]
    assert len(items) == 3 * 96


@pytest.mark.parametrize(
    ("local_time", "tomorrow_items"), [((14, 19), 0), ((14, 20), 96), ((23, 59), 96)]
)
def test_tomorrow_appears_at_the_publication_time(
    sandbox: RunningSandbox, demo_token: str, local_time: tuple[int, int], tomorrow_items: int
) -> None:
    sandbox.clock.set(datetime(2026, 11, 27, *local_time, tzinfo=BERLIN))
    items = _prices(sandbox, demo_token, "2026-11-27", "2026-11-28")["items"]
    assert len(items) == 96 + tomorrow_items
    assert all(i["amount"] is not None for i in items)
    assert _prices(sandbox, demo_token, "2026-11-30")["items"] == []


def test_unpublished_prices_as_nulls_when_configured(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sb = sandbox_factory(SandboxConfig(unpublished="null"))
    sb.clock.set(datetime(2026, 11, 27, 10, 0, tzinfo=BERLIN))
    items = _prices(sb, customer_token(sb), "2026-11-28")["items"]
    assert len(items) == 96
    assert all(i["amount"] is None for i in items)


def test_inactive_subscription_has_items_null(sandbox: RunningSandbox) -> None:
    token = org_token(sandbox)
    r = _get(
        sandbox, token, f"/subscriptions/{ENDED_SUB}/prices", start="2025-01-01", end="2025-01-01"
    )
    assert r.status_code == 200
    assert r.json()["items"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-01-01"}, "end"),
        ({"start": "2026-1-1", "end": "2026-01-02"}, "start"),
        ({"start": "2026-01-05", "end": "2026-01-02"}, "end"),
        ({"start": "2026-02-30", "end": "2026-03-02"}, "start"),
    ],
)
def test_bad_price_queries(
    sandbox: RunningSandbox, demo_token: str, params: dict[str, str], field: str
) -> None:
    r = _get(sandbox, demo_token, f"/subscriptions/{DEMO_SUB}/prices", **params)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "BAD_REQUEST"
    assert body["errors"][0]["field"] == field


def test_missing_end_message_matches_nomos(sandbox: RunningSandbox, demo_token: str) -> None:
    r = _get(sandbox, demo_token, f"/subscriptions/{DEMO_SUB}/prices", start="2026-01-01")
    assert r.json()["message"] == "invalid_type in 'end': Required"


def test_customer_sees_only_her_own_data(sandbox: RunningSandbox, demo_token: str) -> None:
    subs = _get(sandbox, demo_token, "/subscriptions").json()["items"]
    assert [s["id"] for s in subs] == [DEMO_SUB]
    assert _get(sandbox, demo_token, f"/subscriptions/{ENDED_SUB}").status_code == 404
    assert (
        _get(
            sandbox,
            demo_token,
            f"/subscriptions/{ENDED_SUB}/prices",
            start="2025-01-01",
            end="2025-01-01",
        ).status_code
        == 404
    )
    customers = _get(sandbox, demo_token, "/customers").json()["items"]
    assert [c["email"] for c in customers] == ["demo@example.com"]
    assert _get(sandbox, demo_token, "/customers/cus_ended0000000000000000002").status_code == 404
    invoices = _get(sandbox, demo_token, "/invoices", limit=100).json()["items"]
    assert invoices
    assert {i["customer"] for i in invoices} == {"cus_demo00000000000000000001"}


def test_subscription_detail_is_expanded(sandbox: RunningSandbox, demo_token: str) -> None:
    sub = _get(sandbox, demo_token, f"/subscriptions/{DEMO_SUB}").json()
    assert sub["customer"]["email"] == "demo@example.com"
    assert sub["meter"]["object"] == "meter"
    assert sub["status"] == "active"


def test_cursor_pagination_walks_every_item_once(sandbox: RunningSandbox) -> None:
    token = org_token(sandbox)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = _get(sandbox, token, "/subscriptions", **params).json()
        seen += [i["id"] for i in page["items"]]
        if not page["has_more"]:
            assert page["next_page"] is None
            break
        cursor = page["next_page"]
    assert len(seen) == 3
    assert len(set(seen)) == 3
    created = [_get(sandbox, token, f"/subscriptions/{s}").json()["created_at"] for s in seen]
    assert created == sorted(created, reverse=True)  # newest first


def test_bad_limit_and_cursor(sandbox: RunningSandbox) -> None:
    token = org_token(sandbox)
    for limit in ("0", "101", "ten", "2.5"):
        r = _get(sandbox, token, "/subscriptions", limit=limit)
        assert r.status_code == 400
        assert r.json()["errors"][0]["field"] == "limit"
    r = _get(sandbox, token, "/subscriptions", cursor="not-a-cursor")
    assert r.status_code == 400
    forged = base64.urlsafe_b64encode(json.dumps({"x": 1}).encode()).decode()
    assert _get(sandbox, token, "/subscriptions", cursor=forged).status_code == 400


def test_bracket_filters(sandbox: RunningSandbox) -> None:
    token = org_token(sandbox)

    def ids(**params: object) -> list[str]:
        r = _get(sandbox, token, "/subscriptions", **params)
        assert r.status_code == 200, r.text
        return sorted(i["id"] for i in r.json()["items"])

    assert ids(**{"filter[status][eq]": "active"}) == [DEMO_SUB]
    assert len(ids(**{"filter[status][in]": "active,ended"})) == 2
    assert len(ids(**{"filter[status][ne]": "active"})) == 2
    assert len(ids(**{"filter[nonsense][eq]": "x"})) == 3  # unknown field: ignored
    assert len(ids(**{"filter[status][gte]": "x"})) == 3  # disallowed operator: ignored
    assert ids(**{"filter[created_at][gte]": "2026-01-01T00:00:00Z"}) == [
        "sub_firma0000000000000000003"
    ]
    r = _get(sandbox, token, "/subscriptions", **{"filter[status][eq]": "sleeping"})
    assert r.status_code == 400
    emails = [
        c["email"]
        for c in _get(
            sandbox, token, "/customers", **{"filter[email][starts_with]": "DEMO"}
        ).json()["items"]
    ]
    assert emails == ["demo@example.com"]


def test_usage_end_exclusive_and_availability(sandbox: RunningSandbox, demo_token: str) -> None:
    path = f"/subscriptions/{DEMO_SUB}/usage"
    sandbox.clock.set(datetime(2026, 11, 28, 15, 59, tzinfo=BERLIN))
    body = _get(sandbox, demo_token, path, start="2026-11-26", end="2026-11-28").json()
    assert body["resolution"] == "15min"
    assert len(body["data"]) == 96  # the 27th is not out before 16:00 on the 28th
    sandbox.clock.set(datetime(2026, 11, 28, 16, 0, tzinfo=BERLIN))
    body = _get(sandbox, demo_token, path, start="2026-11-26", end="2026-11-28").json()
    assert len(body["data"]) == 192
    assert {d["type"] for d in body["data"]} == {"preliminary"}
    old = _get(sandbox, demo_token, path, start="2026-10-25", end="2026-10-26").json()
    assert len(old["data"]) == 100
    assert {d["type"] for d in old["data"]} == {"final"}
    daily = _get(sandbox, demo_token, path, start="2026-10-25", end="2026-10-26", resolution="day")
    assert daily.json()["data"][0]["usage"] == pytest.approx(
        sum(d["usage"] for d in old["data"]), abs=0.01
    )
    assert daily.json()["data"][0]["start"] == "2026-10-24T22:00:00.000Z"


def test_default_usage_window_is_yesterday(sandbox: RunningSandbox, demo_token: str) -> None:
    sandbox.clock.set(datetime(2026, 11, 28, 17, 0, tzinfo=BERLIN))
    body = _get(sandbox, demo_token, f"/subscriptions/{DEMO_SUB}/usage").json()
    assert len(body["data"]) == 96
    assert body["data"][0]["start"] == "2026-11-26T23:00:00.000Z"


def test_usage_faults_an_outage_and_preliminary_values_that_differ(
    sandbox: RunningSandbox, demo_token: str
) -> None:
    sandbox.clock.set(datetime(2026, 11, 28, 17, 0, tzinfo=BERLIN))
    path = f"/subscriptions/{DEMO_SUB}/usage"
    window = {"start": "2026-10-30", "end": "2026-11-02", "resolution": "15min"}
    plain = _get(sandbox, demo_token, path, **window).json()["data"]
    sandbox.state.faults.usage_server_error = True
    r = _get(sandbox, demo_token, path, **window)
    assert r.status_code == 500
    assert r.json()["code"] == "INTERNAL_SERVER_ERROR"
    prices = _get(
        sandbox,
        demo_token,
        f"/subscriptions/{DEMO_SUB}/prices",
        start="2026-11-28",
        end="2026-11-28",
    )
    assert prices.status_code == 200  # prices are served as usual
    sandbox.state.faults.usage_server_error = False
    sandbox.state.faults.usage_preliminary_factor = 0.5
    scaled = _get(sandbox, demo_token, path, **window).json()["data"]
    assert [d["start"] for d in scaled] == [d["start"] for d in plain]
    for before, now in zip(plain, scaled, strict=True):
        if before["type"] == "final":  # October: final since the eighth working day
            assert now["usage"] == before["usage"]
        else:  # November: preliminary
            assert now["usage"] == pytest.approx(before["usage"] * 0.5, abs=1e-4)
    assert {d["type"] for d in plain} == {"final", "preliminary"}


def test_invoices_and_the_file_link(sandbox: RunningSandbox, demo_token: str) -> None:
    sandbox.clock.set(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    page = _get(sandbox, demo_token, "/invoices", limit=2).json()
    assert page["has_more"] is True
    newest = page["items"][0]
    assert (newest["year"], newest["month"]) == (2026, 10)
    assert _get(sandbox, demo_token, f"/invoices/{newest['id']}").json() == newest
    r = _get(sandbox, demo_token, f"/invoices/{newest['id']}/file")
    assert r.status_code == 302
    link = r.headers["location"]
    pdf = httpx.get(link)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    sandbox.clock.advance(timedelta(hours=1, seconds=1))
    assert httpx.get(link).status_code == 403  # valid for one hour


def test_customer_tokens_are_read_only(sandbox: RunningSandbox, demo_token: str) -> None:
    headers = {"Authorization": f"Bearer {demo_token}"}
    r = httpx.patch(sandbox.url(f"/subscriptions/{DEMO_SUB}"), json={}, headers=headers)
    assert r.status_code == 403
    assert r.json()["code"] == "FORBIDDEN"
    r = httpx.post(sandbox.url("/meter-readings"), json={}, headers=headers)
    assert r.status_code == 403
    org = {"Authorization": f"Bearer {org_token(sandbox)}"}
    r = httpx.post(sandbox.url("/meter-readings"), json={}, headers=org)
    assert r.status_code == 405  # allowed, but the sandbox implements no writes


def test_missing_bad_and_expired_tokens(sandbox: RunningSandbox) -> None:
    r = httpx.get(sandbox.url("/subscriptions"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.get(sandbox.url("/subscriptions"), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    sandbox.clock.set(datetime.now(UTC))
    token = customer_token(sandbox)
    sandbox.clock.advance(timedelta(minutes=59))
    assert _get(sandbox, token, "/subscriptions").status_code == 200
    sandbox.clock.advance(timedelta(minutes=1))
    assert _get(sandbox, token, "/subscriptions").status_code == 401


def test_revoked_grant_stops_its_access_token(sandbox: RunningSandbox) -> None:
    tokens = headless_tokens(sandbox)
    access = str(tokens["access_token"])
    assert _get(sandbox, access, "/subscriptions").status_code == 200
    httpx.post(
        sandbox.url("/_sandbox/grants/revoke"),
        json={"client_id": "wattplan-dev", "email": "demo@example.com"},
    )
    assert _get(sandbox, access, "/subscriptions").status_code == 401


def test_api_version_is_echoed(sandbox: RunningSandbox, demo_token: str) -> None:
    r = _get(sandbox, demo_token, "/subscriptions")
    assert r.headers["x-api-version"] == "2026-05-27.curie"
    r = httpx.get(
        sandbox.url("/subscriptions"),
        headers={"Authorization": f"Bearer {demo_token}", "X-API-Version": "2026-01-29.edison"},
    )
    assert r.headers["x-api-version"] == "2026-01-29.edison"
    r = httpx.get(
        sandbox.url("/subscriptions"),
        headers={"Authorization": f"Bearer {demo_token}", "X-API-Version": "1999-01-01.nope"},
    )
    assert r.status_code == 400


def test_unknown_paths(sandbox: RunningSandbox, demo_token: str) -> None:
    assert httpx.get(sandbox.url("/.well-known/openid-configuration")).status_code == 401
    assert _get(sandbox, demo_token, "/no-such-thing").status_code == 404


def test_injected_rate_limit_and_server_errors(sandbox: RunningSandbox, demo_token: str) -> None:
    sandbox.state.faults.rate_limit_next = 1
    sandbox.state.faults.retry_after_s = 3
    r = _get(sandbox, demo_token, "/subscriptions")
    assert r.status_code == 429
    assert r.json()["code"] == "TOO_MANY_REQUESTS"
    assert r.headers["retry-after"] == "3"
    assert r.headers["ratelimit-reset"] == "3"
    assert r.headers["ratelimit-remaining"] == "0"
    sandbox.state.faults.server_error_next = 1
    assert _get(sandbox, demo_token, "/subscriptions").status_code == 500
    assert _get(sandbox, demo_token, "/subscriptions").status_code == 200
    assert sandbox.state.counters["faults_injected"] == 2


def test_token_bucket_rate_limit(sandbox: RunningSandbox, demo_token: str) -> None:
    sandbox.state.faults.rate_limit_per_s = 2
    codes = [_get(sandbox, demo_token, "/subscriptions").status_code for _ in range(6)]
    assert 429 in codes
    assert codes[0] == 200


@pytest.mark.parametrize("mode", ["json", "content_type", "truncated"])
def test_injected_malformed_bodies(sandbox: RunningSandbox, demo_token: str, mode: str) -> None:
    r = httpx.post(sandbox.url("/_sandbox/faults"), json={"malformed": mode, "malformed_next": 1})
    assert r.status_code == 200
    broken = _get(sandbox, demo_token, "/subscriptions")
    if mode == "content_type":
        assert broken.headers["content-type"].startswith("text/html")
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(broken.content)
    assert _get(sandbox, demo_token, "/subscriptions").json()["object"] == "list"


def test_null_amount_and_missing_slot_faults(sandbox: RunningSandbox, demo_token: str) -> None:
    sandbox.state.faults.null_amounts = True
    items = _prices(sandbox, demo_token, "2026-01-20")["items"]
    assert sum(i["amount"] is None for i in items) == len(range(3, 96, 7))
    sandbox.state.faults.null_amounts = False
    sandbox.state.faults.missing_slots = True
    assert len(_prices(sandbox, demo_token, "2026-01-20")["items"]) == 94


def test_control_clock_endpoint(sandbox: RunningSandbox) -> None:
    r = httpx.post(sandbox.url("/_sandbox/clock"), json={"now": "2026-11-27T14:19:00+01:00"})
    assert r.json()["frozen"] is True
    assert sandbox.clock.now() == datetime(2026, 11, 27, 13, 19, tzinfo=UTC)
    httpx.post(sandbox.url("/_sandbox/clock"), json={"advance_s": 60})
    assert sandbox.clock.now() == datetime(2026, 11, 27, 13, 20, tzinfo=UTC)
    state = httpx.get(sandbox.url("/_sandbox/state")).json()
    assert state["now"].startswith("2026-11-27T13:20")
    assert httpx.post(sandbox.url("/_sandbox/clock"), json={"now": "yesterday"}).status_code == 400
    assert httpx.post(sandbox.url("/_sandbox/faults"), json={"nope": 1}).status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"malformed": "sometimes"},
        {"rate_limit_next": -1},
        {"rate_limit_next": "3"},
        {"null_amounts": 1},
        {"delay_s": "slow"},
    ],
)
def test_fault_values_are_checked(sandbox: RunningSandbox, change: dict[str, object]) -> None:
    r = httpx.post(sandbox.url("/_sandbox/faults"), json=change)
    assert r.status_code == 400
    assert sandbox.state.faults.malformed is None
    assert sandbox.state.faults.rate_limit_next == 0
