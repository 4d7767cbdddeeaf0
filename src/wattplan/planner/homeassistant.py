"""Home Assistant MQTT discovery on top of :class:`~wattplan.planner.sinks.MqttSink`.

Per customer one Home Assistant device (``wattplan <customer>``) whose entities appear by
themselves in Home Assistant, following its documented MQTT discovery schema: retained
``<discovery_prefix>/<component>/<node>/<object>/config`` payloads with ``unique_id``,
``default_entity_id``, a ``device`` block, ``origin``, availability, units, device classes
and state classes. The entities:

================================  =======================================================
``sensor.<node>_price``           all-in price of the running slot, EUR/kWh (the unit
                                  Home Assistant's energy dashboard takes for a price);
                                  attribute ``prices``: the curve from the running slot
                                  to the end of the plan (``start``,
                                  ``price_eur_per_kwh``), and ``resolution_minutes``
``sensor.<node>_<device>_setpoint``  each device's planned power in the running slot, kW
                                  (positive: drawing from the house)
``sensor.<node>_plan_cost``       the plan's cost over its horizon, EUR
``sensor.<node>_plan_savings``    what the plan saves against the baseline, EUR
``sensor.<node>_cheap_window``    start of the cheapest ``cheap_window_hours`` ahead (a
                                  timestamp); attributes ``start``, ``end``, ``hours``,
                                  ``mean_price_eur_per_kwh``
``sensor.<node>_health``          ``pending``, ``ok``, ``error``,
                                  ``reauthorization_required`` (diagnostic)
``sensor.<node>_device_state``    the last device-state command: ``accepted`` or
                                  ``refused``, with the reason as attributes (diagnostic)
================================  =======================================================

All entities read one retained JSON state topic per customer,
``<prefix>/<customer>/homeassistant/state``, republished on every new plan, every slot and
every health change, and are unavailable while ``<prefix>/availability`` says ``offline``
(the connection's last will).

Inbound: ``<prefix>/<customer>/device-state/set`` takes the body of
``POST /customers/{id}/device-state`` (``{"devices": {name: {field: value}}}``, merged) with
the same limits and validation; the outcome goes to ``<prefix>/<customer>/device-state/status``
(retained): the HTTP API's response body with ``"ok": true``, or its error body (``error``,
``message``, ``key``, ``reason``) with ``"ok": false``. A refused body changes nothing. Who
may publish there is the broker's business: give each customer's credentials write access to
its own ``device-state/set`` only.

Removal: every customer's config topics are listed in a retained index
(``<prefix>/<customer>/homeassistant/entities``). At start-up the bridge reads the indexes,
and the entities of customers (and devices) no longer configured are deleted with an empty
retained config, as Home Assistant documents, together with their retained state.
:meth:`HomeAssistantBridge.remove_customer` does the same for one customer at run time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from wattplan.exceptions import PlannerError, ScenarioError, StoreError
from wattplan.planner._events import EventTopic, PlanEvent
from wattplan.planner._planner import Planner, row_at
from wattplan.planner._state import device_kinds
from wattplan.planner.sinks import MqttSink, _drained, _topic_safe
from wattplan.planner.store import dumps

__all__ = [
    "HEALTH_OPTIONS",
    "HomeAssistantBridge",
    "cheapest_window",
    "discovery_configs",
    "node_id",
    "price_curve",
    "state_document",
]

logger = logging.getLogger(__name__)

HEALTH_OPTIONS = ("pending", "ok", "error", "reauthorization_required")
COMMAND_OPTIONS = ("accepted", "refused")
MAX_COMMAND_BYTES = 16 * 1024
_TOPIC_ID = re.compile(r"[^A-Za-z0-9_-]")
_ENTITY_ID = re.compile(r"[^a-z0-9_]+")


def node_id(customer_id: str) -> str:
    """The ``<node>`` of a customer's discovery topics (``[A-Za-z0-9_-]``, as HA requires).

    A customer id with other characters (``.``, ``@``) gets them replaced and a short hash
    of the id appended, so that two ids never share a node.
    """
    safe = _TOPIC_ID.sub("_", customer_id)
    if safe != customer_id:
        safe += "_" + hashlib.sha256(customer_id.encode()).hexdigest()[:8]
    return f"wattplan_{safe}"


def _slug(text: str) -> str:
    return _ENTITY_ID.sub("_", text.lower()).strip("_") or "x"


def _object_ids(devices: Iterable[str]) -> dict[str, str]:
    """``{device name: object id}``, unique within one customer."""
    out: dict[str, str] = {}
    for name in devices:
        slug = _slug(name)
        if slug in out.values():
            slug += "_" + hashlib.sha256(name.encode()).hexdigest()[:6]
        out[name] = slug
    return out


def _state_topic(topic_prefix: str, customer_id: str) -> str:
    return f"{topic_prefix}/{_topic_safe(customer_id)}/homeassistant/state"


def _index_topic(topic_prefix: str, customer_id: str) -> str:
    return f"{topic_prefix}/{_topic_safe(customer_id)}/homeassistant/entities"


def command_topic(topic_prefix: str, customer_id: str) -> str:
    """Where Home Assistant (or anyone allowed) sends a customer's device state."""
    return f"{topic_prefix}/{_topic_safe(customer_id)}/device-state/set"


def command_status_topic(topic_prefix: str, customer_id: str) -> str:
    """Where the outcome of the last device-state command is published (retained)."""
    return f"{topic_prefix}/{_topic_safe(customer_id)}/device-state/status"


def discovery_configs(
    customer_id: str,
    devices: Sequence[str],
    *,
    topic_prefix: str = "wattplan",
    discovery_prefix: str = "homeassistant",
    availability_topic: str | None = None,
    sw_version: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``{config topic: payload}`` of one customer's entities (pure; nothing is sent).

    ``devices`` are the names of the customer's devices (one set-point sensor each).
    """
    node = node_id(customer_id)
    state = _state_topic(topic_prefix, customer_id)
    entity_base = _slug(node)
    device: dict[str, Any] = {
        "identifiers": [node],
        "name": f"wattplan {customer_id}",
        "manufacturer": "wattplan",
        "model": "load-shifting planner",
    }
    origin: dict[str, Any] = {"name": "wattplan"}
    if sw_version is not None:
        device["sw_version"] = sw_version
        origin["sw_version"] = sw_version
    common: dict[str, Any] = {"state_topic": state, "device": device, "origin": origin, "qos": 1}
    if availability_topic is not None:
        common["availability"] = [
            {
                "topic": availability_topic,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]

    def entity(obj: str, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        topic = f"{discovery_prefix}/sensor/{node}/{obj}/config"
        payload = {
            "name": name,
            "unique_id": f"wattplan_{customer_id}_{obj}",
            "default_entity_id": f"sensor.{entity_base}_{obj}",
            **common,
            **fields,
        }
        return topic, payload

    items = [
        entity(
            "price",
            "Price",
            value_template="{{ value_json.price_eur_per_kwh }}",
            unit_of_measurement="EUR/kWh",
            state_class="measurement",
            suggested_display_precision=4,
            icon="mdi:currency-eur",
            json_attributes_topic=state,
            json_attributes_template=(
                "{{ {'prices': value_json.prices, "
                "'resolution_minutes': value_json.resolution_minutes} | tojson }}"
            ),
        ),
        entity(
            "plan_cost",
            "Plan cost",
            value_template="{{ value_json.cost_eur }}",
            unit_of_measurement="EUR",
            device_class="monetary",
            suggested_display_precision=2,
        ),
        entity(
            "plan_savings",
            "Plan savings",
            value_template="{{ value_json.savings_eur }}",
            unit_of_measurement="EUR",
            device_class="monetary",
            suggested_display_precision=2,
            json_attributes_topic=state,
            json_attributes_template="{{ value_json.plan | tojson }}",
        ),
        entity(
            "cheap_window",
            "Next cheap window",
            value_template="{{ value_json.cheap_window_start }}",
            device_class="timestamp",
            icon="mdi:clock-start",
            json_attributes_topic=state,
            json_attributes_template="{{ value_json.cheap_window | tojson }}",
        ),
        entity(
            "health",
            "Health",
            value_template="{{ value_json.health }}",
            device_class="enum",
            options=list(HEALTH_OPTIONS),
            entity_category="diagnostic",
            json_attributes_topic=state,
            json_attributes_template="{{ value_json.status | tojson }}",
        ),
        entity(
            "device_state",
            "Device-state update",
            state_topic=command_status_topic(topic_prefix, customer_id),
            value_template="{{ 'accepted' if value_json.ok else 'refused' }}",
            device_class="enum",
            options=list(COMMAND_OPTIONS),
            entity_category="diagnostic",
            json_attributes_topic=command_status_topic(topic_prefix, customer_id),
        ),
    ]
    for name, obj in _object_ids(devices).items():
        items.append(
            entity(
                f"{obj}_setpoint",
                f"{name} set-point",
                value_template="{{ value_json.setpoints_kw[" + json.dumps(name) + "] }}",
                unit_of_measurement="kW",
                device_class="power",
                state_class="measurement",
                suggested_display_precision=2,
            )
        )
    return dict(items)


# state ------------------------------------------------------------------------------------


def _rows(plan: Mapping[str, Any]) -> list[tuple[datetime, datetime, dict[str, Any]]]:
    """``(start, end, row)`` of a plan document's schedule, in order, tz-aware."""
    step = timedelta(minutes=float(plan.get("resolution_minutes") or 15))
    out = []
    for row in plan.get("schedule") or []:
        try:
            start = datetime.fromisoformat(str(row["start"]))
        except (KeyError, ValueError):
            continue
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        out.append((start, start + step, dict(row)))
    out.sort(key=lambda item: item[0])
    return out


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _eur(ct: Any) -> float | None:
    value = _number(ct)
    return None if value is None else round(value / 100, 6)


def price_curve(plan: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The plan's all-in prices from the slot that runs at ``now`` on, in EUR/kWh.

    Each item: ``start`` (ISO 8601 with the plan's offset) and ``price_eur_per_kwh``; a slot
    lasts the plan's ``resolution_minutes`` (real time: right on 23- and 25-hour days).
    Without ``end`` a two-day curve stays below the 16 KiB of attributes that Home
    Assistant's recorder keeps.
    """
    return [
        {"start": start.isoformat(), "price_eur_per_kwh": _eur(row.get("price_ct_per_kwh"))}
        for start, end, row in _rows(plan)
        if end > now
    ]


def cheapest_window(
    plan: Mapping[str, Any], now: datetime, *, hours: float
) -> dict[str, Any] | None:
    """The contiguous ``hours`` with the lowest mean price, from the running slot on.

    ``None`` when the plan reaches less far ahead. Ties go to the earliest window.
    Returns ``start``, ``end``, ``hours`` and ``mean_price_eur_per_kwh``.
    """
    rows = [
        (start, end, row["price_ct_per_kwh"])
        for start, end, row in _rows(plan)
        if end > now and _eur(row.get("price_ct_per_kwh")) is not None
    ]
    if not rows:
        return None
    step = rows[0][1] - rows[0][0]
    n = max(1, math.ceil(timedelta(hours=hours) / step))
    best: tuple[float, int] | None = None
    for i in range(len(rows) - n + 1):
        window = rows[i : i + n]
        if window[-1][0] - window[0][0] != step * (n - 1):
            continue  # a hole in the schedule: not contiguous
        mean = sum(float(p) for _, _, p in window) / n
        if best is None or mean < best[0] - 1e-12:
            best = (mean, i)
    if best is None:
        return None
    mean, i = best
    start, end = rows[i][0], rows[i + n - 1][1]
    return {
        "start": start.isoformat(),
        "end": end.astimezone(start.tzinfo).isoformat(),
        "hours": (end - start).total_seconds() / 3600,
        "mean_price_eur_per_kwh": round(mean / 100, 6),
    }


def state_document(
    *,
    plan: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
    devices: Sequence[str],
    now: datetime,
    cheap_window_hours: float = 2.0,
) -> dict[str, Any]:
    """The JSON on a customer's state topic: every entity's value, ``null`` when unknown.

    ``plan`` is a plan document (DESIGN §4, as in ``GET …/plan``'s ``plan``); ``status`` the
    customer's status (as ``GET …/status``).
    """
    row = row_at(plan, now) if plan else None
    window = cheapest_window(plan, now, hours=cheap_window_hours) if plan else None
    setpoints: dict[str, float | None] = {}
    for name in devices:
        value = row.get(f"{name}_kw") if row else None
        setpoints[name] = _number(value)
    health = (status or {}).get("health")
    return {
        "at": now.isoformat(),
        "price_eur_per_kwh": _eur(row.get("price_ct_per_kwh")) if row else None,
        "setpoints_kw": setpoints,
        "cost_eur": (plan or {}).get("cost_eur"),
        "baseline_cost_eur": (plan or {}).get("baseline_cost_eur"),
        "savings_eur": (plan or {}).get("savings_eur"),
        "plan": {
            "status": (plan or {}).get("status"),
            "baseline_cost_eur": (plan or {}).get("baseline_cost_eur"),
            "shortfalls": (plan or {}).get("shortfalls") or [],
        },
        "prices": price_curve(plan, now) if plan else [],
        "resolution_minutes": (plan or {}).get("resolution_minutes"),
        "cheap_window_start": window["start"] if window else None,
        "cheap_window": window or {},
        "health": health if health in HEALTH_OPTIONS else None,
        "status": dict(status or {}),
    }


# the bridge -------------------------------------------------------------------------------


class HomeAssistantBridge:
    """Home Assistant discovery, state and device-state commands for a planner's customers.

    Give it a connected :class:`MqttSink` (with an ``availability_topic``), then
    ``start(planner)``: it deletes the entities of customers that are gone, publishes every
    customer's discovery configs and current state, subscribes to the command topics and
    adds itself to the planner's sinks. ``close()`` stops the command worker (the sink is
    closed by its owner).
    """

    name = "homeassistant"

    def __init__(
        self,
        sink: MqttSink,
        *,
        discovery_prefix: str = "homeassistant",
        cheap_window_hours: float = 2.0,
        commands: bool = True,
        max_command_bytes: int = MAX_COMMAND_BYTES,
        sync_timeout_s: float = 5.0,
    ) -> None:
        if not discovery_prefix or any(ch in discovery_prefix for ch in "+#\0"):
            raise PlannerError("homeassistant.discovery_prefix may not be empty or hold + # NUL")
        if not 0 < cheap_window_hours <= 24:
            raise PlannerError("homeassistant.cheap_window_hours must lie in (0, 24]")
        self._sink = sink
        self._prefix = sink.topic_prefix
        self._discovery_prefix = discovery_prefix.strip("/")
        self._hours = cheap_window_hours
        self._commands = commands
        self._max_bytes = max_command_bytes
        self._sync_timeout_s = sync_timeout_s
        self._planner: Planner | None = None
        self._lock = threading.Lock()
        self._plans: dict[str, Mapping[str, Any]] = {}
        self._statuses: dict[str, Mapping[str, Any]] = {}
        self._published: dict[str, list[str]] = {}
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=1000)
        self._worker: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"HomeAssistantBridge(prefix={self._prefix!r}, "
            f"discovery_prefix={self._discovery_prefix!r})"
        )

    # setup ----------------------------------------------------------------------------

    def _devices(self, customer_id: str) -> list[str]:
        assert self._planner is not None
        return list(device_kinds(self._planner.customer(customer_id).scenario))

    def _configs(self, customer_id: str) -> dict[str, dict[str, Any]]:
        from wattplan import __version__

        return discovery_configs(
            customer_id,
            self._devices(customer_id),
            topic_prefix=self._prefix,
            discovery_prefix=self._discovery_prefix,
            availability_topic=self._sink.availability_topic,
            sw_version=__version__,
        )

    def start(self, planner: Planner) -> None:
        """Sync discovery with the planner's customers and start listening for commands."""
        self._planner = planner
        previous = self._read_indexes()
        current = set(planner.customer_ids)
        for customer_id, topics in previous.items():
            if customer_id not in current:
                self._remove(customer_id, topics)
        for customer_id in planner.customer_ids:
            configs = self._configs(customer_id)
            for topic in previous.get(customer_id, []):
                if topic not in configs:  # a device that is gone
                    self._sink.publish(topic, b"")
            for topic, payload in configs.items():
                self._sink.publish(topic, json.dumps(payload, sort_keys=True))
            self._sink.publish(_index_topic(self._prefix, customer_id), json.dumps(sorted(configs)))
            self._published[customer_id] = sorted(configs)
            self._load(customer_id)
            self._publish_state(customer_id, planner.clock.now())
        if self._commands:
            self._worker = threading.Thread(
                target=self._work, name="wattplan-homeassistant", daemon=True
            )
            self._worker.start()
            self._sink.subscribe(f"{self._prefix}/+/device-state/set", self._on_command)
        planner.add_sink(self)

    def _read_indexes(self) -> dict[str, list[str]]:
        """The retained entity indexes of every customer published before (any process)."""
        found: dict[str, list[str]] = {}
        probe = f"{self._prefix}/probe-{uuid.uuid4().hex}"
        seen = threading.Event()
        index_filter = f"{self._prefix}/+/homeassistant/entities"

        def on_index(topic: str, payload: bytes) -> None:
            customer_id = topic[len(self._prefix) + 1 :].split("/", 1)[0]
            try:
                topics = json.loads(payload) if payload else []
            except ValueError:
                topics = []
            if isinstance(topics, list):
                found[customer_id] = [
                    t for t in topics if isinstance(t, str) and self._is_ours(t, customer_id)
                ]

        self._sink.subscribe(index_filter, on_index)
        self._sink.subscribe(probe, lambda _t, _p: seen.set())
        try:
            # the broker sends retained messages while handling SUBSCRIBE, so once our own
            # later message comes back, every retained index has arrived
            self._sink.publish(probe, b"1", retain=False)
            if not seen.wait(self._sync_timeout_s):
                logger.warning("MQTT probe did not return; old entities may be left over")
        finally:
            self._sink.unsubscribe(index_filter)
            self._sink.unsubscribe(probe)
        return found

    def _is_ours(self, topic: str, customer_id: str) -> bool:
        """Only config topics under our discovery prefix and the customer's node are touched."""
        parts = topic.split("/")
        prefix = self._discovery_prefix.split("/")
        return (
            parts[: len(prefix)] == prefix
            and len(parts) == len(prefix) + 4
            and parts[-3] == node_id(customer_id)
            and parts[-1] == "config"
        )

    def _load(self, customer_id: str) -> None:
        assert self._planner is not None
        try:
            envelope = self._planner.plan_document(customer_id)
            with self._lock:
                self._plans[customer_id] = envelope["plan"]
        except PlannerError:
            pass  # no plan yet (or the store is down): the state says unknown
        try:
            status = self._planner.customer_status(customer_id)
        except PlannerError:
            status = None
        if status is not None:
            with self._lock:
                self._statuses[customer_id] = status

    # removal --------------------------------------------------------------------------

    def remove_customer(self, customer_id: str) -> None:
        """Delete a customer's entities from Home Assistant and its retained topics."""
        topics = self._published.pop(customer_id, None)
        if topics is None:
            topics = self._read_indexes().get(customer_id, [])
        self._remove(customer_id, topics)

    def _remove(self, customer_id: str, topics: Iterable[str]) -> None:
        for topic in topics:
            self._sink.publish(topic, b"")  # an empty retained config removes the entity
        leaves = [
            _state_topic(self._prefix, customer_id),
            command_status_topic(self._prefix, customer_id),
            *(self._sink.topic(customer_id, leaf) for leaf in ("plan", "setpoint", "status")),
            _index_topic(self._prefix, customer_id),
        ]
        for topic in leaves:
            self._sink.publish(topic, b"")
        with self._lock:
            self._plans.pop(customer_id, None)
            self._statuses.pop(customer_id, None)
        logger.info("Home Assistant entities of customer %s removed", customer_id)

    # outbound -------------------------------------------------------------------------

    def __call__(self, event: PlanEvent) -> None:
        if self._planner is None or event.customer_id not in self._published:
            return
        payload = dict(event.payload)
        with self._lock:
            if event.topic is EventTopic.PLAN_CREATED and isinstance(payload.get("plan"), dict):
                self._plans[event.customer_id] = payload["plan"]
                if payload.get("health") is not None:
                    status = dict(self._statuses.get(event.customer_id, {}))
                    status.update(health=payload["health"], stale=payload.get("stale", False))
                    self._statuses[event.customer_id] = status
            elif event.topic is EventTopic.CUSTOMER_STATUS:
                self._statuses[event.customer_id] = payload
        self._publish_state(event.customer_id, event.at)

    def _publish_state(self, customer_id: str, now: datetime) -> None:
        with self._lock:
            plan = self._plans.get(customer_id)
            status = self._statuses.get(customer_id)
        doc = state_document(
            plan=plan,
            status=status,
            devices=self._devices(customer_id),
            now=now,
            cheap_window_hours=self._hours,
        )
        self._sink.publish(_state_topic(self._prefix, customer_id), dumps(doc))

    # inbound --------------------------------------------------------------------------

    def _on_command(self, topic: str, payload: bytes) -> None:
        # paho's network thread: hand over, never block
        try:
            self._queue.put_nowait((topic, payload))
        except queue.Full:
            logger.warning("Home Assistant command queue full; a device-state update dropped")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.handle_command(*item)
            except Exception:  # the worker must survive anything
                logger.exception("Home Assistant device-state command crashed")
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every received command was handled; False on timeout."""
        return _drained(self._queue, timeout_s)

    def handle_command(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Apply one device-state command; publish and return its outcome.

        ``None`` when the topic names no configured customer (nothing is published: a
        stranger's topic gets no answer).
        """
        from wattplan._api import BadBodyError, parse_json_body

        planner = self._planner
        rest = topic[len(self._prefix) + 1 :] if topic.startswith(self._prefix + "/") else ""
        customer_id, _, leaf = rest.partition("/")
        if planner is None or leaf != "device-state/set" or customer_id not in self._published:
            logger.info("device-state command on an unknown topic ignored")
            return None
        now = planner.clock.now()
        result: dict[str, Any]
        if len(payload) > self._max_bytes:
            result = _refusal("body_too_large", f"the body exceeds {self._max_bytes} bytes")
        else:
            try:
                body = parse_json_body(payload)
                state, significant = planner.update_device_state(customer_id, body, now=now)
            except BadBodyError as exc:
                result = _refusal(exc.error, exc.message, key=exc.key)
            except ScenarioError as exc:
                result = _refusal("invalid_device_state", str(exc), key=exc.key, reason=exc.reason)
            except StoreError:
                result = _refusal(
                    "store_unavailable", "the plan store cannot be used right now; try again"
                )
            else:
                result = {
                    "ok": True,
                    "customer_id": customer_id,
                    "version": state.version,
                    "devices": state.devices,
                    "replan": significant,
                    "shortfalls": planner.foreseeable_shortfalls(
                        customer_id, state.devices, now=now
                    ),
                }
        result["at"] = now.isoformat()
        logger.info(
            "device-state command for %s %s",
            customer_id,
            "accepted" if result["ok"] else f"refused ({result['error']})",
        )
        self._sink.publish(command_status_topic(self._prefix, customer_id), dumps(result))
        return result

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish the queued commands (up to ``timeout_s``) and stop the worker."""
        if self._worker is not None:
            self.flush(timeout_s)
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None


def _refusal(error: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": error, "message": message, **extra}
