"""Every sandbox response is checked against Nomos's spec when a test using the ``sandbox``
fixture ends (tests/conftest.py). These tests make sure that check has teeth."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from tests.sandbox.conformance import assert_conformant, spec
from tests.sandbox.oauth_helpers import customer_token, org_token
from wattplan.sandbox import Exchange, RunningSandbox

DEMO_SUB = "sub_demo00000000000000000001"


def _sweep(sb: RunningSandbox) -> None:
    for token in (customer_token(sb), org_token(sb)):
        h = {"Authorization": f"Bearer {token}"}
        for path, params in [
            ("/subscriptions", {}),
            (f"/subscriptions/{DEMO_SUB}", {}),
            (f"/subscriptions/{DEMO_SUB}/prices", {"start": "2025-09-30", "end": "2025-10-01"}),
            (f"/subscriptions/{DEMO_SUB}/usage", {"resolution": "hour"}),
            ("/customers", {"limit": "2"}),
            ("/customers/cus_demo00000000000000000001", {}),
            ("/invoices", {"filter[type][eq]": "usage"}),
            ("/subscriptions/sub_nope", {}),
            (f"/subscriptions/{DEMO_SUB}/prices", {}),
        ]:
            httpx.get(sb.url(path), params=params, headers=h)
        httpx.patch(sb.url(f"/subscriptions/{DEMO_SUB}"), json={}, headers=h)
    httpx.get(sb.url("/subscriptions"))
    httpx.post(sb.url("/oauth/token"), data={"grant_type": "client_credentials"})


def test_a_sweep_of_the_api_is_conformant(sandbox: RunningSandbox) -> None:
    _sweep(sandbox)
    assert assert_conformant(sandbox.state.exchanges) >= 20


def test_the_check_catches_a_response_off_the_spec(sandbox: RunningSandbox) -> None:
    token = customer_token(sandbox)
    httpx.get(
        sandbox.url(f"/subscriptions/{DEMO_SUB}/prices"),
        params={"start": "2026-01-20", "end": "2026-01-20"},
        headers={"Authorization": f"Bearer {token}"},
    )
    good = next(e for e in sandbox.state.exchanges if e.path.endswith("/prices"))
    body = json.loads(good.body)
    del body["items"][0]["components"]
    body["resolution"] = "5min"
    bad = dataclasses.replace(good, body=json.dumps(body).encode())
    with pytest.raises(AssertionError, match="off the official spec"):
        assert_conformant([bad])
    error_without_request_id = dataclasses.replace(
        good, status_code=400, body=b'{"code": "BAD_REQUEST", "message": "x"}'
    )
    with pytest.raises(AssertionError):
        assert_conformant([error_without_request_id])


def test_the_spec_copy_is_the_curie_version() -> None:
    assert spec().spec["info"]["version"] == "2026-05-27.curie"


def test_exchange_is_a_plain_record() -> None:
    ex = Exchange("GET", "/x", "", {}, 200, {}, b"")
    assert ex.status_code == 200
