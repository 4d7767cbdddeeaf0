"""Home Assistant MQTT discovery: payloads checked against HA's documented schema.

The pure parts (topics, configs, the price curve and the cheap window on normal and DST
days) run anywhere; the rest against the real Mosquitto at 127.0.0.1:1883: read back the
retained configs and states, render every template with Jinja2 as Home Assistant does,
send device state on the command topic, remove customers.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pandas as pd
import pytest
import yaml

from wattplan.exceptions import ConfigurationError
from wattplan.planner import Customer, MqttSink, Planner, PlanStore, validate_device_state
from wattplan.planner.config import PlannerConfig, load_config
from wattplan.planner.homeassistant import (
    HomeAssistantBridge,
    cheapest_window,
    command_status_topic,
    command_topic,
    discovery_configs,
    node_id,
    price_curve,
    state_document,
)

from ..readme import readme_block
from . import ha_discovery_schema as schema
from .conftest import (
    FakeClock,
    FakeDevice,
    FakeOptimizer,
    FakePriceSource,
    FakeScenario,
    fake_customer,
    require_service,
    synthetic_prices,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOST, PORT = "127.0.0.1", 1883
DEVICES = ["car", "home-battery", "heat-pump"]
PER_CUSTOMER = 6  # price, cost, savings, cheap window, health, device-state update
JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701


def _render(template: str, value_json: Any) -> str:
    return JINJA.from_string(template).render(value_json=value_json)


# pure -------------------------------------------------------------------------------------


def test_every_config_follows_the_documented_schema() -> None:
    configs = discovery_configs(
        "c1",
        DEVICES,
        topic_prefix="wp",
        discovery_prefix="homeassistant",
        availability_topic="wp/availability",
        sw_version="0.1.0",
    )
    assert len(configs) == PER_CUSTOMER + len(DEVICES)
    for topic, payload in configs.items():
        assert schema.problems(topic, payload) == [], topic
        assert "object_id" not in payload
    ids = [p["unique_id"] for p in configs.values()]
    assert len(set(ids)) == len(ids)
    entity_ids = [p["default_entity_id"] for p in configs.values()]
    assert len(set(entity_ids)) == len(entity_ids)
    setpoints = [p for p in configs.values() if p.get("device_class") == "power"]
    assert sorted(p["name"] for p in setpoints) == sorted(f"{d} set-point" for d in DEVICES)
    assert {json.dumps(p["device"], sort_keys=True) for p in configs.values()} == {
        json.dumps(next(iter(configs.values()))["device"], sort_keys=True)
    }, "one device block for all of a customer's entities"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"object_id": "c1_price"}, "object_id"),
        ({"state_class": "measurement", "device_class": "monetary"}, "impossible"),
        ({"device_class": "power", "unit_of_measurement": "kWh"}, "not allowed"),
        ({"device_class": "enum"}, "without options"),
        ({"default_entity_id": "binary_sensor.x"}, "default_entity_id"),
        ({"device": {"name": "no identifiers"}}, "device"),
        ({"availability": [{"payload_available": "online"}]}, "topic"),
        ({"qos": 3}, "qos"),
    ],
)
def test_the_schema_check_catches_a_doctored_config(change: dict[str, Any], complaint: str) -> None:
    topic, payload = next(iter(discovery_configs("c1", DEVICES).items()))
    found = schema.problems(topic, {**payload, **change})
    assert found, f"{change} passed the check"
    assert any(complaint in p for p in found), found


def test_node_ids_are_topic_safe_and_distinct() -> None:
    for odd in ("anna@example.org", "a.b", "x y"):
        node = node_id(odd)
        assert schema.TOPIC.match(f"homeassistant/sensor/{node}/price/config"), node
    assert node_id("a.b") != node_id("a_b")
    assert node_id("customer-42") == "wattplan_customer-42"


def _plan(day: date, *, minutes: int, price: Callable[[datetime], float]) -> dict[str, Any]:
    """A plan document over one local day, built like the optimizer's (local offsets)."""
    lo = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN).astimezone(UTC)
    hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
    index = pd.date_range(lo, hi.astimezone(UTC), freq=f"{minutes}min", inclusive="left")
    rows = [
        {
            "start": ts.tz_convert(BERLIN).isoformat(),
            "price_ct_per_kwh": price(ts.to_pydatetime().astimezone(BERLIN)),
            "home-battery_kw": 1.5,
        }
        for ts in index
    ]
    return {
        "status": "optimal",
        "cost_eur": 1.25,
        "baseline_cost_eur": 2.0,
        "savings_eur": 0.75,
        "resolution_minutes": minutes,
        "schedule": rows,
    }


def _cheap_between(lo: str, hi: str) -> Callable[[datetime], float]:
    """10 ct/kWh between two local times given with their offsets, 30 otherwise."""
    start, end = datetime.fromisoformat(lo), datetime.fromisoformat(hi)
    return lambda t: 10.0 if start <= t < end else 30.0 + (t.hour % 3)


@pytest.mark.parametrize(
    ("day", "lo", "hi", "hours", "slots"),
    [
        # an ordinary winter day
        (date(2026, 1, 20), "2026-01-20T02:00:00+01:00", "2026-01-20T04:00:00+01:00", 2, 96),
        # spring forward: 01:45 +01:00 is followed by 03:00 +02:00 (92 quarter-hours)
        (date(2026, 3, 29), "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", 1, 92),
        # fall back: the hour 02:00-03:00 happens twice (100 quarter-hours)
        (date(2025, 10, 26), "2025-10-26T02:00:00+02:00", "2025-10-26T03:00:00+01:00", 2, 100),
    ],
)
def test_cheap_window_and_curve_on_normal_and_dst_days(
    day: date, lo: str, hi: str, hours: float, slots: int
) -> None:
    plan = _plan(day, minutes=15, price=_cheap_between(lo, hi))
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
    window = cheapest_window(plan, midnight, hours=hours)
    assert window is not None
    assert datetime.fromisoformat(window["start"]) == datetime.fromisoformat(lo)
    assert datetime.fromisoformat(window["end"]) == datetime.fromisoformat(hi)
    assert window["hours"] == pytest.approx(hours)
    assert window["mean_price_eur_per_kwh"] == pytest.approx(0.10)
    curve = price_curve(plan, midnight)
    assert len(curve) == slots
    starts = [datetime.fromisoformat(c["start"]) for c in curve]
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(starts))
    # from the running slot on: 10 minutes into a slot keeps that slot
    later = curve[9]["start"]
    at = datetime.fromisoformat(later) + timedelta(minutes=10)
    assert price_curve(plan, at)[0]["start"] == later


def test_cheap_window_on_hourly_prices_and_when_the_plan_is_too_short() -> None:
    day = date(2026, 3, 29)
    plan = _plan(
        day,
        minutes=60,
        price=_cheap_between("2026-03-29T04:00:00+02:00", "2026-03-29T06:00:00+02:00"),
    )
    assert len(plan["schedule"]) == 23
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
    window = cheapest_window(plan, midnight, hours=2)
    assert window is not None
    assert window["start"] == "2026-03-29T04:00:00+02:00"
    assert window["end"] == "2026-03-29T06:00:00+02:00"
    # the running slot counts: at 22:30 the last two hours are still a window ...
    late = cheapest_window(plan, datetime.fromisoformat("2026-03-29T22:30:00+02:00"), hours=2)
    assert late is not None
    assert late["start"] == "2026-03-29T22:00:00+02:00"
    # ... at 23:30 the plan no longer reaches two hours ahead
    assert (
        cheapest_window(plan, datetime.fromisoformat("2026-03-29T23:30:00+02:00"), hours=2) is None
    )


def test_state_document_values_come_from_the_running_slot() -> None:
    plan = _plan(date(2026, 1, 20), minutes=15, price=lambda t: 20.0 + t.hour)
    now = datetime(2026, 1, 20, 7, 20, tzinfo=BERLIN)
    doc = state_document(
        plan=plan,
        status={"health": "ok", "stale": False},
        devices=["car", "home-battery"],
        now=now,
    )
    assert doc["price_eur_per_kwh"] == pytest.approx((20.0 + 7) / 100)
    assert doc["setpoints_kw"] == {"car": None, "home-battery": 1.5}
    assert doc["cost_eur"] == 1.25
    assert doc["savings_eur"] == 0.75
    assert doc["health"] == "ok"
    assert doc["prices"][0]["start"] == "2026-01-20T07:15:00+01:00"
    empty = state_document(plan=None, status=None, devices=["car"], now=now)
    assert empty["price_eur_per_kwh"] is None
    assert empty["health"] is None
    assert empty["cheap_window"] == {}


@pytest.mark.parametrize(
    ("moment", "expected_start"),
    [
        # the hour 02:00-03:00 runs twice on 2025-10-26: first at +02:00, then at +01:00
        ("2025-10-26T02:20:00+02:00", "2025-10-26T02:15:00+02:00"),
        ("2025-10-26T02:20:00+01:00", "2025-10-26T02:15:00+01:00"),
        # 2026-03-29 has no 02:xx: 01:59 +01:00 is followed by 03:00 +02:00
        ("2026-03-29T03:05:00+02:00", "2026-03-29T03:00:00+02:00"),
    ],
)
def test_state_document_on_dst_days_takes_the_slot_that_really_runs(
    moment: str, expected_start: str
) -> None:
    now = datetime.fromisoformat(moment)
    # a price that differs in every real quarter-hour: minutes since midnight UTC
    plan = _plan(
        now.astimezone(BERLIN).date(),
        minutes=15,
        price=lambda t: float(t.astimezone(UTC).hour * 60 + t.astimezone(UTC).minute),
    )
    doc = state_document(plan=plan, status=None, devices=["home-battery"], now=now)
    start = datetime.fromisoformat(expected_start).astimezone(UTC)
    assert doc["price_eur_per_kwh"] == pytest.approx((start.hour * 60 + start.minute) / 100)
    assert doc["prices"][0]["start"] == expected_start
    assert doc["setpoints_kw"] == {"home-battery": 1.5}


def test_config_is_off_by_default_and_checks_its_keys(tmp_path: Path) -> None:
    base = {"customers": [{"id": "c1", "factory": "wattplan.planner:demo_household"}]}
    config = PlannerConfig.model_validate({**base, "mqtt": {}})
    assert config.mqtt is not None
    assert not config.mqtt.homeassistant.enabled
    assert config.mqtt.homeassistant.discovery_prefix == "homeassistant"
    bad = tmp_path / "planner.yaml"
    bad.write_text(
        "customers: [{id: c1, factory: 'wattplan.planner:demo_household'}]\n"
        "mqtt: {homeassistant: {enabled: true, discovery_prefix: 'home/+'}}\n"
    )
    with pytest.raises(ConfigurationError, match=r"mqtt\.homeassistant\.discovery_prefix"):
        load_config(bad)


def test_readme_config_block_is_a_valid_planner_config() -> None:
    block = yaml.safe_load(readme_block("homeassistant-config", "yaml"))
    config = PlannerConfig.model_validate(
        {**block, "customers": [{"id": "customer-42", "factory": "wattplan.planner:x"}]}
    )
    assert config.mqtt is not None
    assert config.mqtt.homeassistant.enabled
    assert config.mqtt.homeassistant.discovery_prefix == "homeassistant"


def test_readme_automation_sends_a_body_the_command_topic_accepts() -> None:
    block = yaml.safe_load(readme_block("homeassistant-automation", "yaml"))
    data = block["automation"][0]["actions"][0]["data"]
    assert data["topic"] == command_topic("wattplan", "customer-42")
    # rendered as Home Assistant would, with the battery entity at 6.1 kWh
    body = JINJA.from_string(data["payload"]).render(states=lambda _entity: "6.1")
    now = datetime(2026, 1, 20, 12, tzinfo=BERLIN)
    scenario = FakeScenario(start=now, end=now + timedelta(days=1))
    clean = validate_device_state(json.loads(body), scenario=scenario, now=now)
    assert clean == {"home-battery": {"soc_kwh": 6.1}}


# against Mosquitto ------------------------------------------------------------------------


def _client() -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(HOST, PORT)
    client.loop_start()
    return client


def read_retained(topic_filter: str, timeout_s: float = 10.0) -> dict[str, bytes]:
    """Every retained message under ``topic_filter`` (deleted ones are not delivered)."""
    got: dict[str, bytes] = {}
    subscribed, probed = threading.Event(), threading.Event()
    probe = f"probe-{uuid.uuid4().hex}"

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic == probe:
            probed.set()
        elif msg.retain:
            got[msg.topic] = bytes(msg.payload)

    client = _client()
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    try:
        client.subscribe([(topic_filter, 1), (probe, 1)])
        assert subscribed.wait(timeout_s)
        # retained messages are sent while the broker handles SUBSCRIBE: once our own
        # later message comes back, all of them are in
        client.publish(probe, b"1", qos=1).wait_for_publish(timeout_s)
        assert probed.wait(timeout_s), "probe did not come back"
    finally:
        client.disconnect()  # first: it wakes the loop, which then ends at once
        client.loop_stop()
    return got


class Watcher:
    """Collects every message on some topics (a subscriber that stays connected)."""

    def __init__(self, *filters: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        ready = threading.Event()
        self._client = _client()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._cond:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
                self._cond.notify_all()

        self._client.on_message = on_message
        self._client.on_subscribe = lambda *_a: ready.set()
        self._client.subscribe([(f, 1) for f in filters])
        assert ready.wait(10)

    def wait_for(
        self, predicate: Callable[[str, bytes], bool], *, start: int = 0, timeout_s: float = 10.0
    ) -> bytes:
        """The first message from index ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            seen = start
            while True:
                for topic, payload, _retain in self.messages[seen:]:
                    if predicate(topic, payload):
                        return payload
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message; got {self.messages[-5:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def clear_retained(*filters: str) -> None:
    client = _client()
    try:
        for topic_filter in filters:
            for topic in read_retained(topic_filter):
                client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()  # first: it wakes the loop, which then ends at once
        client.loop_stop()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    require_service(HOST, PORT, "Mosquitto")
    tag = uuid.uuid4().hex[:8]
    prefix, discovery = f"wattplan-test-{tag}", f"ha-test-{tag}"
    yield prefix, discovery
    clear_retained(f"{prefix}/#", f"{discovery}/#")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[PlanStore]:
    store = PlanStore(f"sqlite:///{tmp_path / 'planner.sqlite3'}", table_prefix="t_")
    yield store
    store.dispose()


class Setup:
    """A planner on fake customers, its MQTT sink and the Home Assistant bridge."""

    def __init__(
        self,
        names: tuple[str, str],
        store: PlanStore,
        customers: list[Customer],
        *,
        clock: FakeClock | None = None,
    ) -> None:
        self.prefix, self.discovery = names
        self.clock = clock or FakeClock(datetime(2026, 1, 20, 15, 7, tzinfo=BERLIN))
        self.source = FakePriceSource(self.clock, synthetic_prices(date(2026, 1, 15), 14))
        self.sink = MqttSink(
            host=HOST,
            port=PORT,
            topic_prefix=self.prefix,
            availability_topic=f"{self.prefix}/availability",
        )
        self.planner = Planner(
            customers=customers,
            store=store,
            prices=self.source,
            optimize=FakeOptimizer(),
            clock=self.clock,
            sinks=[self.sink],
        )
        self.bridge = HomeAssistantBridge(self.sink, discovery_prefix=self.discovery)
        self.bridge.start(self.planner)

    def configs(self) -> dict[str, dict[str, Any]]:
        return {t: json.loads(p) for t, p in read_retained(f"{self.discovery}/#").items() if p}

    def state(self, customer_id: str) -> dict[str, Any]:
        raw = read_retained(f"{self.prefix}/{customer_id}/homeassistant/state")
        return dict(json.loads(raw[f"{self.prefix}/{customer_id}/homeassistant/state"]))

    def close(self) -> None:
        self.bridge.close()
        self.sink.close()


@pytest.mark.mqtt
def test_retained_configs_validate_and_every_template_renders(
    names: tuple[str, str], sqlite_store: PlanStore
) -> None:
    customers = [fake_customer("c1"), fake_customer("anna@example.org")]
    setup = Setup(names, sqlite_store, customers)
    try:
        setup.planner.run_once()
        setup.planner.publish_setpoints()
        configs = setup.configs()
        assert len(configs) == 2 * (PER_CUSTOMER + len(DEVICES))
        for topic, payload in configs.items():
            assert schema.problems(topic, payload) == [], topic
        ids = [p["unique_id"] for p in configs.values()]
        assert len(set(ids)) == len(ids)
        nodes = {schema.TOPIC.match(t)["node"] for t in configs}  # type: ignore[index]
        assert nodes == {node_id("c1"), node_id("anna@example.org")}
        available = read_retained(f"{setup.prefix}/availability")
        assert available == {f"{setup.prefix}/availability": b"online"}

        # every template renders on the retained state, to a value its sensor accepts
        states: dict[str, Any] = {}
        for topic, payload in configs.items():
            state_topic = payload["state_topic"]
            if state_topic not in states:
                raw = read_retained(state_topic)
                if state_topic not in raw:  # no command yet: Home Assistant shows unknown
                    assert payload["unique_id"].endswith("_device_state"), topic
                    continue
                states[state_topic] = json.loads(raw[state_topic])
            value = _render(payload["value_template"], states[state_topic])
            assert schema.check_rendered(payload, value) == [], (topic, value)
            if "json_attributes_template" in payload:
                attributes = json.loads(
                    _render(
                        payload["json_attributes_template"],
                        states[payload["json_attributes_topic"]],
                    )
                )
                assert isinstance(attributes, dict), topic

        # the values, against the planner's own answers
        c1 = {
            p["unique_id"].removeprefix("wattplan_c1_"): p
            for p in configs.values()
            if p["unique_id"].startswith("wattplan_c1_")
        }
        state = setup.state("c1")
        row = setup.planner.setpoint("c1")["setpoint"]
        price = float(setup.source.prices[pd.Timestamp(row["start"]).tz_convert(UTC)])
        assert float(_render(c1["price"]["value_template"], state)) == pytest.approx(price / 100)
        battery = _render(c1["home_battery_setpoint"]["value_template"], state)
        assert float(battery) == row["home-battery_kw"]
        assert _render(c1["car_setpoint"]["value_template"], state) == "None"  # not planned
        plan = setup.planner.plan_document("c1")["plan"]
        assert float(_render(c1["plan_cost"]["value_template"], state)) == plan["cost_eur"]
        assert float(_render(c1["plan_savings"]["value_template"], state)) == plan["savings_eur"]
        assert _render(c1["health"]["value_template"], state) == "ok"
        curve = json.loads(_render(c1["price"]["json_attributes_template"], state))["prices"]
        assert curve[0]["start"] == row["start"]
        assert len(curve) == len(price_curve(plan, setup.clock.now()))
        window = _render(c1["cheap_window"]["value_template"], state)
        cheapest = min(curve, key=lambda c: c["price_eur_per_kwh"])["price_eur_per_kwh"]
        starts = {c["start"]: c["price_eur_per_kwh"] for c in curve}
        assert starts[window] == pytest.approx(cheapest)  # the window opens on a cheapest slot
    finally:
        setup.close()
    assert read_retained(f"{setup.prefix}/availability") == {
        f"{setup.prefix}/availability": b"offline"
    }


@pytest.mark.mqtt
def test_last_will_marks_the_entities_unavailable_and_subscriptions_survive(
    names: tuple[str, str],
) -> None:
    prefix, _ = names
    availability = f"{prefix}/availability"
    watcher = Watcher(availability)
    sink = MqttSink(host=HOST, port=PORT, topic_prefix=prefix, availability_topic=availability)
    received: list[bytes] = []
    got = threading.Event()

    def handler(_topic: str, payload: bytes) -> None:
        received.append(payload)
        got.set()

    sink.subscribe(f"{prefix}/inbox", handler)
    sender = _client()
    try:
        watcher.wait_for(lambda _t, p: p == b"online")
        before = len(watcher.messages)
        # the process "dies": the connection drops without a DISCONNECT
        sock = sink._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        watcher.wait_for(lambda _t, p: p == b"offline", start=before)
        assert watcher.messages[before][1] == b"offline"
        # paho reconnects by itself and says so
        watcher.wait_for(lambda _t, p: p == b"online", start=before + 1, timeout_s=20)
        # ... and its subscriptions come back with it
        sender.publish(f"{prefix}/inbox", b"after the reconnect", qos=1).wait_for_publish(5)
        assert got.wait(10)
        assert received == [b"after the reconnect"]
    finally:
        sender.disconnect()
        sender.loop_stop()
        sink.close()
        watcher.close()
    assert read_retained(availability) == {availability: b"offline"}


@pytest.mark.mqtt
def test_command_topic_takes_good_bodies_and_reports_bad_ones(
    names: tuple[str, str], sqlite_store: PlanStore
) -> None:
    setup = Setup(names, sqlite_store, [fake_customer("c1")])
    status_topic = command_status_topic(setup.prefix, "c1")
    watcher = Watcher(status_topic)
    sender = _client()

    def send(body: bytes, customer: str = "c1") -> dict[str, Any]:
        before = len(watcher.messages)
        sender.publish(command_topic(setup.prefix, customer), body, qos=1).wait_for_publish(5)
        payload = watcher.wait_for(lambda _t, p: bool(p), start=before)
        return dict(json.loads(payload))

    try:
        good = send(b'{"devices": {"home-battery": {"soc_kwh": 6.1}}}')
        assert good["ok"] is True
        assert good["devices"] == {"home-battery": {"soc_kwh": 6.1}}
        stored = sqlite_store.device_state("c1")
        assert stored.devices == {"home-battery": {"soc_kwh": 6.1}}
        assert good["version"] == stored.version

        bad_bodies = {
            b'{"devices": {"home-battery": {"soc_kwh": 50}}}': "devices.home-battery.soc_kwh",
            b'{"devices": {"boat": {"soc_kwh": 1}}}': "devices.boat",
            b'{"devices": {"car": {"plug_in": "2026-01-20T18:00:00"}}}': "devices.car.plug_in",
            b'{"devices": ': "body",
            b'{"devices": {"home-battery": {"soc_kwh": 1' + b"0" * 80 + b"}}}": (
                "devices.home-battery.soc_kwh"
            ),
        }
        for body, key in bad_bodies.items():
            refused = send(body)
            assert refused["ok"] is False, body
            assert refused["key"] == key, refused
            after = sqlite_store.device_state("c1")
            assert (after.version, after.devices) == (stored.version, stored.devices), body
        too_big = send(b'{"devices": {"car": {"energy_kwh": 1}}, "pad": "' + b"x" * 20_000 + b'"}')
        assert too_big["error"] == "body_too_large"
        assert sqlite_store.device_state("c1").version == stored.version

        # the diagnostic entity shows the last outcome
        configs = setup.configs()
        entity = next(p for p in configs.values() if p["unique_id"] == "wattplan_c1_device_state")
        last = json.loads(read_retained(status_topic)[status_topic])
        assert _render(entity["value_template"], last) == "refused"
        assert schema.check_rendered(entity, "refused") == []

        # a customer that is not configured gets no answer and nothing is stored
        sender.publish(command_topic(setup.prefix, "stranger"), b'{"devices": {}}', qos=1)
        assert setup.bridge.flush(10)
        assert command_status_topic(setup.prefix, "stranger") not in read_retained(
            f"{setup.prefix}/#"
        )
    finally:
        sender.disconnect()
        sender.loop_stop()
        watcher.close()
        setup.close()


@pytest.mark.mqtt
def test_a_customer_that_goes_away_loses_its_entities(
    names: tuple[str, str], sqlite_store: PlanStore
) -> None:
    first = Setup(names, sqlite_store, [fake_customer("c1"), fake_customer("c2")])
    first.planner.run_once()
    configs = first.configs()
    first.close()
    assert {node_id("c1"), node_id("c2")} == {schema.TOPIC.match(t)["node"] for t in configs}  # type: ignore[index]
    c2_state = f"{first.prefix}/c2/homeassistant/state"
    assert c2_state in read_retained(f"{first.prefix}/#")

    # restart without c2, and c1 without its heat pump
    c1 = fake_customer("c1")
    fewer = replace(
        c1.scenario, devices=(FakeDevice("car", "ev"), FakeDevice("home-battery", "battery"))
    )
    second = Setup(names, sqlite_store, [replace(c1, scenario=fewer)])
    try:
        left = second.configs()
        assert {schema.TOPIC.match(t)["node"] for t in left} == {node_id("c1")}  # type: ignore[index]
        assert len(left) == PER_CUSTOMER + 2
        assert not any("heat_pump" in t for t in left)
        retained = read_retained(f"{second.prefix}/#")
        assert not any(t.startswith(f"{second.prefix}/c2/") for t in retained), sorted(retained)
        assert f"{second.prefix}/c1/homeassistant/state" in retained

        second.bridge.remove_customer("c1")
        assert second.configs() == {}
        assert not any(
            t.startswith(f"{second.prefix}/c1/") for t in read_retained(f"{second.prefix}/#")
        )
    finally:
        second.close()


@pytest.mark.mqtt
def test_wattplan_run_config_starts_the_bridge(names: tuple[str, str], tmp_path: Path) -> None:
    from wattplan.planner._runtime import build_runtime

    prefix, discovery = names
    scenario = Path(__file__).parents[2] / "scenarios" / "full-household-48h.yaml"
    config = PlannerConfig.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 'planner.sqlite3'}",
            "http": None,
            "mqtt": {
                "topic_prefix": prefix,
                "homeassistant": {"enabled": True, "discovery_prefix": discovery},
            },
            "customers": [{"id": "customer-42", "scenario": str(scenario)}],
        }
    )
    clock = FakeClock(datetime(2026, 1, 20, 12, 0, tzinfo=BERLIN))
    runtime = build_runtime(
        config, price_source=FakePriceSource(clock, synthetic_prices(date(2026, 1, 15), 14))
    )
    try:
        configs = {t: json.loads(p) for t, p in read_retained(f"{discovery}/#").items()}
        devices = ["car", "home-battery", "heat-pump", "dishwasher"]
        assert len(configs) == PER_CUSTOMER + len(devices)
        for topic, payload in configs.items():
            assert schema.problems(topic, payload) == [], topic
            assert payload["availability"][0]["topic"] == f"{prefix}/availability"
        assert read_retained(f"{prefix}/availability") == {f"{prefix}/availability": b"online"}
    finally:
        runtime.close()
    assert read_retained(f"{prefix}/availability") == {f"{prefix}/availability": b"offline"}
