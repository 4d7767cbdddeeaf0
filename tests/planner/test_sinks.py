"""Sinks: the signed webhook (over real HTTP on loopback) and MQTT against Mosquitto."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattplan._http import serve_in_thread
from wattplan.exceptions import PlannerError
from wattplan.planner import (
    SIGNATURE_HEADER,
    EventTopic,
    MqttSink,
    PlanEvent,
    WebhookSink,
    sign_payload,
    verify_signature,
)

from .conftest import require_service

SECRET = "whsec_test_0123456789abcdef"
NOW = datetime(2026, 1, 20, 13, 25, tzinfo=UTC)


def _event(topic: EventTopic = EventTopic.PLAN_CREATED) -> PlanEvent:
    return PlanEvent(topic, "c1", NOW, {"plan_id": 7, "plan": {"status": "optimal"}})


def test_signature_round_trip_and_rejections() -> None:
    body = b'{"a":1}'
    ts = int(NOW.timestamp())
    header = sign_payload(SECRET, body, timestamp=ts)
    assert header.startswith(f"t={ts},v1=")
    assert verify_signature(SECRET, header, body, now=NOW)
    assert not verify_signature(SECRET, header, body + b" ", now=NOW)  # body changed
    assert not verify_signature("other-secret", header, body, now=NOW)  # wrong key
    assert not verify_signature(SECRET, header, body, now=NOW + timedelta(seconds=301))  # old
    assert not verify_signature(SECRET, "v1=abc", body, now=NOW)  # no timestamp
    assert not verify_signature(SECRET, f"t={ts},v1=00", body, now=NOW)


def test_signature_matches_an_independent_computation() -> None:
    import hashlib
    import hmac

    body = b'{"x":"y"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_payload(SECRET, body, timestamp=1700000000) == f"t=1700000000,v1={expected}"


def test_webhook_posts_a_signed_body_over_http() -> None:
    received: list[tuple[bytes, str]] = []
    done = threading.Event()

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        done.set()
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_in_thread(app) as base_url:
        sink = WebhookSink(f"{base_url}/hook", secret=SECRET, clock=lambda: NOW)
        sink(_event())
        sink(_event(EventTopic.SETPOINT))  # not a webhook topic: nothing sent
        assert sink.flush(30)
        sink.close()
    assert done.is_set()
    assert sink.delivered == 1
    assert len(received) == 1
    body, header = received[0]
    assert verify_signature(SECRET, header, body, now=NOW)
    doc = json.loads(body)
    assert doc["topic"] == "plan.created"
    assert doc["context"] == {"customer": "c1"}
    assert doc["id"].startswith("evt_")
    assert doc["data"]["plan"]["status"] == "optimal"
    assert SECRET not in repr(sink)


def test_webhook_retries_5xx_then_gives_up_with_an_error() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    sink = WebhookSink(
        "https://vendor.example/hook",
        secret=SECRET,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        retries=2,
        backoff_s=0,
    )
    with pytest.raises(PlannerError, match="503"):
        sink.deliver(_event())
    assert len(calls) == 3
    for request in calls:
        assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], request.content)


def test_webhook_does_not_retry_a_4xx() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400)

    sink = WebhookSink(
        "https://vendor.example/hook",
        secret=SECRET,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        backoff_s=0,
    )
    with pytest.raises(PlannerError, match="400"):
        sink.deliver(_event())
    assert len(calls) == 1


def test_a_dead_webhook_never_holds_up_the_caller() -> None:
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        release.wait(30)  # an endpoint that hangs
        return httpx.Response(500)

    sink = WebhookSink(
        "https://vendor.example/hook",
        secret=SECRET,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        retries=0,
    )
    for _ in range(5):
        sink(_event())  # returns at once: delivery happens on the sink's own thread
    assert sink.delivered == 0
    release.set()
    assert sink.flush(30)
    assert sink.failures == 5
    sink.close()


def test_webhook_needs_a_secret() -> None:
    with pytest.raises(PlannerError, match="secret"):
        WebhookSink("https://vendor.example/hook", secret="")


@pytest.mark.mqtt
def test_mqtt_publishes_retained_messages_on_documented_topics() -> None:
    require_service("127.0.0.1", 1883, "Mosquitto")
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    prefix = f"wattplan-test-{uuid.uuid4().hex[:8]}"
    sink = MqttSink(host="127.0.0.1", port=1883, topic_prefix=prefix)
    try:
        sink(_event())
        sink(PlanEvent(EventTopic.SETPOINT, "c1", NOW, {"setpoint": {"x_kw": 1.5}}))
        sink(PlanEvent(EventTopic.CUSTOMER_STATUS, "c1", NOW, {"health": "ok"}))
        # a subscriber that connects afterwards still gets all three (retained)
        got: dict[str, Any] = {}
        all_in = threading.Event()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            got[msg.topic] = (json.loads(msg.payload), msg.retain)
            if len(got) == 3:
                all_in.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2)
        sub.on_message = on_message
        sub.connect("127.0.0.1", 1883)
        sub.subscribe(f"{prefix}/#", qos=1)
        sub.loop_start()
        try:
            assert all_in.wait(10), f"got only {sorted(got)}"
        finally:
            sub.loop_stop()
            sub.disconnect()
        assert got[f"{prefix}/c1/plan"] == ({"plan_id": 7, "plan": {"status": "optimal"}}, True)
        assert got[f"{prefix}/c1/setpoint"][0]["setpoint"] == {"x_kw": 1.5}
        assert got[f"{prefix}/c1/status"][0]["health"] == "ok"
    finally:
        for leaf in ("plan", "setpoint", "status"):  # clear the retained messages
            sink._client.publish(f"{prefix}/c1/{leaf}", b"", qos=1, retain=True).wait_for_publish(5)
        sink.close()


def test_mqtt_refuses_wildcards_in_customer_ids() -> None:
    from wattplan.planner.sinks import _topic_safe

    for bad in ("a/b", "a+", "#", ""):
        with pytest.raises(PlannerError):
            _topic_safe(bad)
    assert _topic_safe("cust-1") == "cust-1"


def test_mqtt_unreachable_broker_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(PlannerError, match="MQTT broker"):
        MqttSink(host="127.0.0.1", port=port, connect_timeout_s=1)
