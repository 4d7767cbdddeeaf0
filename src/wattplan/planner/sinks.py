"""Where plans go: a Python callback, a signed webhook, MQTT.

Every sink is a callable that takes a :class:`PlanEvent`. The planner calls each sink in
turn and logs (never raises) when one fails, so that a dead webhook endpoint or broker
never stops planning.

Webhook signature
-----------------
In the style of Nomos's own ``X-Nomos-Signature``: the header
``X-Wattplan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` signs ``f"{t}.{raw body}"``
with the endpoint's secret. A receiver recomputes the HMAC over the raw bytes, compares in
constant time and rejects a timestamp more than 300 s away from its clock
(:func:`verify_signature` does all three).

MQTT topics (``<prefix>`` defaults to ``wattplan``; all retained, QoS 1)
---------------------------------------------------------------------
``<prefix>/<customer>/plan``      the latest plan (the JSON of ``GET /customers/{id}/plan``)
``<prefix>/<customer>/setpoint``  the slot that runs now (one schedule row), every slot
``<prefix>/<customer>/status``    health: ok, error (stale plan kept), reauthorization_required
``<prefix>/availability``         ``online`` / ``offline`` when the sink is given an
                                  ``availability_topic`` (the broker sends ``offline`` as
                                  the last will when the process dies)

Home Assistant discovery and inbound device state sit on top of this sink
(:mod:`wattplan.planner.homeassistant`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import httpx

from wattplan._extras import requires
from wattplan.exceptions import PlannerError
from wattplan.planner._events import EventTopic, PlanEvent
from wattplan.planner.store import dumps

__all__ = [
    "SIGNATURE_HEADER",
    "CallbackSink",
    "MqttSink",
    "WebhookSink",
    "sign_payload",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Wattplan-Signature"
SIGNATURE_TOLERANCE_S = 300


class CallbackSink:
    """Calls ``callback(event)`` for the chosen topics (all by default)."""

    name = "callback"

    def __init__(
        self,
        callback: Callable[[PlanEvent], None],
        *,
        topics: Collection[EventTopic] = tuple(EventTopic),
    ) -> None:
        self._callback = callback
        self._topics = frozenset(topics)

    def __call__(self, event: PlanEvent) -> None:
        if event.topic in self._topics:
            self._callback(event)


def sign_payload(secret: str | bytes, body: bytes, *, timestamp: int) -> str:
    """The signature header value ``t=<timestamp>,v1=<hex HMAC-SHA256>`` for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str | bytes,
    header: str,
    body: bytes,
    *,
    now: datetime | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Check a signature header (constant-time compare, timestamp within ``tolerance_s``).

    Any header that is not a valid, timely signature gives ``False``, never an exception:
    it comes from whoever sent the request (non-ASCII text, a 5,000-digit timestamp).
    """
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    stamp = parts.get("t", [""])[0]
    # ASCII digits only (int() would take other scripts' digits), and at most 12 of them:
    # a longer timestamp is far outside any tolerance and too big for a float
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return False
    timestamp = int(stamp)
    moment = (now or datetime.now(UTC)).timestamp()
    if abs(moment - timestamp) > tolerance_s:
        return False
    expected = sign_payload(secret, body, timestamp=timestamp).split("v1=", 1)[1].encode()
    # compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError)
    return any(
        hmac.compare_digest(expected, v.encode("utf-8", "surrogatepass"))
        for v in parts.get("v1", [])
    )


class WebhookSink:
    """POSTs plan and status events as signed JSON to one URL, off the planning threads.

    The body is ``{"id", "timestamp", "topic", "context": {"customer"}, "data"}``, where
    ``data`` is the event payload (for ``plan.created`` the plan document). ``id`` lets a
    receiver deduplicate. Calling the sink only queues the event: one background thread
    delivers, so that a slow or dead endpoint never holds up planning. Failed deliveries
    (5xx, 429, network) are retried a few times with backoff, then dropped with a log line
    and counted in ``failures`` (the plan stays in the store and the HTTP API). A full
    queue drops the newest event, also counted. ``deliver(event)`` sends synchronously and
    raises :class:`~wattplan.exceptions.PlannerError` on failure.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        client: httpx.Client | None = None,
        topics: Collection[EventTopic] = (EventTopic.PLAN_CREATED, EventTopic.CUSTOMER_STATUS),
        retries: int = 2,
        backoff_s: float = 0.5,
        clock: Callable[[], datetime] | None = None,
        customer_ids: Collection[str] | None = None,
        max_queue: int = 10_000,
    ) -> None:
        if not secret:
            raise PlannerError("a webhook needs a signing secret")
        self._url = url
        self._secret = secret
        self._client = client or httpx.Client(timeout=10.0)
        self._topics = frozenset(topics)
        self._retries = retries
        self._backoff_s = backoff_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._customer_ids = None if customer_ids is None else frozenset(customer_ids)
        self._queue: queue.Queue[PlanEvent | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.delivered = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"WebhookSink(url={httpx.URL(self._url).copy_with(query=None)!s})"

    def _wanted(self, event: PlanEvent) -> bool:
        if event.topic not in self._topics:
            return False
        return self._customer_ids is None or event.customer_id in self._customer_ids

    def __call__(self, event: PlanEvent) -> None:
        if not self._wanted(event):
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._worker, name="wattplan-webhook", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.failures += 1
            logger.warning("webhook queue full; event for %s dropped", event.customer_id)

    def _worker(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                self._queue.task_done()
                return
            try:
                self.deliver(event)
                self.delivered += 1
            except PlannerError as exc:
                self.failures += 1
                logger.warning("webhook for %s not delivered: %s", event.customer_id, exc)
            except Exception:  # the worker must survive anything
                self.failures += 1
                logger.exception("webhook delivery crashed")
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        return _drained(self._queue, timeout_s)

    def deliver(self, event: PlanEvent) -> None:
        """Send one event now (with retries); raises ``PlannerError`` when it fails."""
        body = dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "timestamp": event.at.astimezone(UTC).isoformat(),
                "topic": event.topic.value,
                "context": {"customer": event.customer_id},
                "data": dict(event.payload),
            }
        ).encode()
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            signature = sign_payload(self._secret, body, timestamp=int(self._clock().timestamp()))
            try:
                response = self._client.post(
                    self._url,
                    content=body,
                    headers={"content-type": "application/json", SIGNATURE_HEADER: signature},
                )
                if response.status_code < 300:
                    return
                last = PlannerError(f"webhook answered {response.status_code}")
                if response.status_code < 500 and response.status_code != 429:
                    break
            except httpx.HTTPError as exc:
                last = PlannerError(f"webhook delivery failed: {type(exc).__name__}")
            if attempt < self._retries:
                time.sleep(self._backoff_s * 2**attempt)
        raise last or PlannerError("webhook delivery failed")

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop."""
        if self._thread is not None:
            self.flush(timeout_s)
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._client.close()


class MqttSink:
    """Publishes plans, setpoints and status as retained messages (paho-mqtt 2).

    Topics are documented in the module docstring. Broker credentials and TLS are the
    vendor's (the broker's ACLs keep one customer's topics from another's); the password
    never appears in a repr or log line.

    With ``availability_topic`` the connection carries a last will (``offline``, retained)
    and every (re)connection publishes ``online``; ``close()`` publishes ``offline``.
    ``subscribe(topic_filter, handler)`` delivers incoming messages to
    ``handler(topic, payload)`` on paho's network thread (hand work off: a handler must
    not wait for a publish) and survives reconnections.
    """

    name = "mqtt"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic_prefix: str = "wattplan",
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        client_id: str | None = None,
        qos: int = 1,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
        availability_topic: str | None = None,
    ) -> None:
        with requires("mqtt", feature="MqttSink"):
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion

        self._prefix = topic_prefix.rstrip("/")
        self._host, self._port, self._qos = host, port, qos
        self._connected = threading.Event()
        self._publish_timeout_s = publish_timeout_s
        self.availability_topic = availability_topic
        self._handlers: dict[str, Callable[[str, bytes], None]] = {}
        self._handlers_lock = threading.Lock()
        self._acked = threading.Condition()
        self._acked_mids: set[int] = set()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"wattplan-{uuid.uuid4().hex[:12]}",
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set()
        if availability_topic is not None:
            client.will_set(availability_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client = client
        try:
            client.connect(host, port, keepalive=60)
        except OSError as exc:
            raise PlannerError(
                f"cannot connect to the MQTT broker at {host}:{port}: {type(exc).__name__}",
                transient=True,
            ) from exc
        client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            client.loop_stop()
            raise PlannerError(f"MQTT broker at {host}:{port} did not accept the connection")

    def __repr__(self) -> str:
        return f"MqttSink(host={self._host!r}, port={self._port}, prefix={self._prefix!r})"

    @property
    def topic_prefix(self) -> str:
        return self._prefix

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("MQTT connection refused: %s", reason)
            return
        # on paho's network thread: queue, never wait. Subscriptions first: the broker
        # handles one connection's packets in order, so whoever sees "online" may send a
        # command and it is heard.
        with self._handlers_lock:
            filters = list(self._handlers)
        for topic_filter in filters:
            self._client.subscribe(topic_filter, qos=1)
        if self.availability_topic is not None:
            self._client.publish(self.availability_topic, "online", qos=1, retain=True)
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any = None) -> None:
        with self._acked:
            self._acked_mids.add(mid)
            self._acked.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._connected.clear()
        logger.info("MQTT disconnected (%s); paho reconnects by itself", reason)

    def topic(self, customer_id: str, leaf: str) -> str:
        return f"{self._prefix}/{_topic_safe(customer_id)}/{leaf}"

    def __call__(self, event: PlanEvent) -> None:
        leaf = {
            EventTopic.PLAN_CREATED: "plan",
            EventTopic.SETPOINT: "setpoint",
            EventTopic.CUSTOMER_STATUS: "status",
        }[event.topic]
        self.publish(self.topic(event.customer_id, leaf), dumps(dict(event.payload)))

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = True) -> None:
        """Publish one message and wait for the broker's acknowledgement (QoS > 0).

        An empty retained payload deletes the retained message of ``topic``. Raises a
        transient :class:`~wattplan.exceptions.PlannerError` when the broker does not take it.
        """
        info = self._client.publish(topic, payload, qos=self._qos, retain=retain)
        if info.rc != 0:
            raise PlannerError(f"MQTT publish failed with code {info.rc}", transient=True)
        if self._qos > 0:
            try:
                info.wait_for_publish(self._publish_timeout_s)
            except (RuntimeError, ValueError) as exc:
                raise PlannerError(f"MQTT publish failed: {exc}", transient=True) from exc
            if not info.is_published():
                raise PlannerError("the MQTT broker did not acknowledge in time", transient=True)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        """Call ``handler(topic, payload)`` for every message on ``topic_filter`` (QoS 1).

        The subscription is renewed on every reconnection. Returns once the broker
        acknowledged it, so that retained messages are on their way.
        """

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            try:
                handler(message.topic, bytes(message.payload))
            except Exception:  # paho's network thread must survive any handler
                logger.exception("MQTT handler for %s failed", topic_filter)

        with self._handlers_lock:
            self._handlers[topic_filter] = handler
        self._client.message_callback_add(topic_filter, on_message)
        result, mid = self._client.subscribe(topic_filter, qos=1)
        with self._acked:
            acked = result == 0 and self._acked.wait_for(
                lambda: mid in self._acked_mids, self._publish_timeout_s
            )
            self._acked_mids.discard(mid)
        if not acked:
            raise PlannerError(f"the MQTT broker did not accept a subscription (code {result})")

    def unsubscribe(self, topic_filter: str) -> None:
        with self._handlers_lock:
            self._handlers.pop(topic_filter, None)
        self._client.message_callback_remove(topic_filter)
        self._client.unsubscribe(topic_filter)

    def close(self) -> None:
        if self.availability_topic is not None and self._connected.is_set():
            try:  # a clean disconnect sends no last will: say it ourselves
                self.publish(self.availability_topic, "offline")
            except PlannerError as exc:
                logger.info("MQTT availability not updated on close: %s", exc)
        # disconnect first: the network loop sends the DISCONNECT and ends at once, where
        # loop_stop() first would wait out the loop's one-second select
        self._client.disconnect()
        self._client.loop_stop()


def _drained(work: queue.Queue[Any], timeout_s: float) -> bool:
    """Wait until a worker's queue has no unfinished task; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while work.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _topic_safe(customer_id: str) -> str:
    if any(ch in customer_id for ch in "+#/\0") or not customer_id:
        raise PlannerError("a customer id used in MQTT topics may not contain + # / or NUL")
    return customer_id
