"""What Home Assistant documents for an MQTT-discovered sensor, as a checker for the tests.

Written independently of ``wattplan.planner.homeassistant`` from Home Assistant's own
documentation: the MQTT discovery page (topic format, empty payload removes, device and
origin blocks, ``default_entity_id`` replacing the deprecated ``object_id``), the MQTT sensor
page (configuration variables and their types) and the sensor integration's device classes
with their units and allowed state classes (``homeassistant/components/sensor/const.py``).
Only the device classes wattplan could use are listed; anything else is refused, so a
typo fails the test rather than passing unchecked.

``problems(topic, payload)`` lists what is wrong with one retained config (empty: valid).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import jsonschema

TOPIC = re.compile(
    r"^(?P<prefix>[A-Za-z0-9_/-]+)/(?P<component>sensor|binary_sensor)/"
    r"(?P<node>[A-Za-z0-9_-]+)/(?P<object>[A-Za-z0-9_-]+)/config$"
)
ENTITY_ID = re.compile(r"^(?P<domain>[a-z_]+)\.(?P<slug>[a-z0-9_]+)$")
TEMPLATE = {"type": "string", "minLength": 1}
MQTT_TOPIC = {"type": "string", "minLength": 1, "pattern": r"^[^#+\u0000]+$"}

DEVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "configuration_url": {"type": "string"},
        "connections": {
            "type": "array",
            "items": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "hw_version": {"type": "string"},
        "identifiers": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "manufacturer": {"type": "string"},
        "model": {"type": "string"},
        "model_id": {"type": "string"},
        "name": {"type": "string"},
        "serial_number": {"type": "string"},
        "suggested_area": {"type": "string"},
        "sw_version": {"type": "string"},
        "via_device": {"type": "string"},
    },
    # "at least one of identifiers or connections must be present"
    "anyOf": [
        {"required": ["identifiers"], "properties": {"identifiers": {"minItems": 1}}},
        {"required": ["connections"], "properties": {"connections": {"minItems": 1}}},
    ],
}

ORIGIN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "sw_version": {"type": "string"},
        "support_url": {"type": "string"},
    },
}

AVAILABILITY_ITEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["topic"],
    "properties": {
        "topic": MQTT_TOPIC,
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "value_template": TEMPLATE,
    },
}

SENSOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["state_topic", "unique_id", "device", "default_entity_id"],
    "properties": {
        "availability": {"type": "array", "items": AVAILABILITY_ITEM, "minItems": 1},
        "availability_mode": {"enum": ["all", "any", "latest"]},
        "availability_template": TEMPLATE,
        "availability_topic": MQTT_TOPIC,
        "default_entity_id": {"type": "string"},
        "device": DEVICE,
        "device_class": {"type": ["string", "null"]},
        "enabled_by_default": {"type": "boolean"},
        "encoding": {"type": "string"},
        "entity_category": {"enum": ["diagnostic"]},  # a sensor cannot be "config"
        "entity_picture": {"type": "string"},
        "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"},
        "icon": {"type": "string", "pattern": r"^[a-z0-9-]+:[a-z0-9-]+$"},
        "json_attributes_template": TEMPLATE,
        "json_attributes_topic": MQTT_TOPIC,
        "last_reset_value_template": TEMPLATE,
        "name": {"type": ["string", "null"]},
        "options": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "origin": ORIGIN,
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "platform": {"const": "mqtt"},
        "qos": {"enum": [0, 1, 2]},
        "state_class": {"enum": ["measurement", "total", "total_increasing"]},
        "state_topic": MQTT_TOPIC,
        "suggested_display_precision": {"type": "integer", "minimum": 0},
        "unique_id": {"type": "string", "minLength": 1},
        "unit_of_measurement": {"type": ["string", "null"]},
        "value_template": TEMPLATE,
        # "object_id" is deprecated (2025.10; removed in 2026.4): not accepted here
    },
    "not": {"required": ["availability", "availability_topic"]},  # one or the other
}

# device class -> (allowed units, allowed state classes); None in units: no unit allowed
DEVICE_CLASSES: dict[str, tuple[set[str | None], set[str]]] = {
    "power": ({"mW", "W", "kW", "MW", "GW", "TW"}, {"measurement"}),
    "energy": (
        {"Wh", "kWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ"},
        {"total", "total_increasing"},
    ),
    "energy_storage": ({"Wh", "kWh", "MWh"}, {"measurement"}),
    "temperature": ({"°C", "°F", "K"}, {"measurement"}),
    "monetary": (set(), {"total"}),  # the unit is an ISO 4217 currency code
    "timestamp": ({None}, set()),
    "enum": ({None}, set()),
    "date": ({None}, set()),
    "duration": ({"d", "h", "min", "s", "ms"}, {"measurement", "total", "total_increasing"}),
}
NON_NUMERIC = {"timestamp", "enum", "date"}
CURRENCIES = {"EUR", "CHF", "USD", "GBP", "DKK", "SEK", "NOK", "PLN", "CZK"}


def problems(topic: str, payload: dict[str, Any]) -> list[str]:
    """Everything in one sensor discovery config that Home Assistant's documentation forbids."""
    found: list[str] = []
    match = TOPIC.match(topic)
    if match is None:
        return [f"{topic}: not <prefix>/<component>/<node_id>/<object_id>/config"]
    validator = jsonschema.Draft202012Validator(SENSOR)
    found += [
        f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(payload)
    ]
    entity = ENTITY_ID.match(str(payload.get("default_entity_id", "")))
    if entity is None or entity["domain"] != match["component"]:
        given = payload.get("default_entity_id")
        found.append(f"default_entity_id {given!r} is not {match['component']}.<slug>")
    device_class = payload.get("device_class")
    unit = payload.get("unit_of_measurement")
    state_class = payload.get("state_class")
    if device_class is not None:
        if device_class not in DEVICE_CLASSES:
            found.append(f"device_class {device_class!r} unknown to this checker")
        else:
            units, state_classes = DEVICE_CLASSES[device_class]
            if device_class == "monetary":
                if unit not in CURRENCIES:
                    found.append(f"monetary needs an ISO 4217 currency unit, not {unit!r}")
            elif unit not in units:
                found.append(f"unit {unit!r} not allowed for device_class {device_class}")
            if state_class is not None and state_class not in state_classes:
                found.append(
                    f"state_class {state_class} impossible for device_class {device_class}"
                )
    if device_class in NON_NUMERIC and "suggested_display_precision" in payload:
        found.append("suggested_display_precision on a non-numeric sensor")
    if "options" in payload and device_class != "enum":
        found.append("options given without device_class enum")
    if device_class == "enum" and not payload.get("options"):
        found.append("device_class enum without options")
    return found


def check_rendered(payload: dict[str, Any], value: str) -> list[str]:
    """Whether a rendered state suits the sensor (``None`` renders as ``"None"``: unknown)."""
    if value == "None":
        return []
    device_class = payload.get("device_class")
    if device_class == "enum":
        return [] if value in payload["options"] else [f"{value!r} not in options"]
    if device_class == "timestamp":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return [f"{value!r} is not ISO 8601"]
        return [] if moment.tzinfo is not None else [f"{value!r} has no UTC offset"]
    if "unit_of_measurement" in payload or "state_class" in payload:
        try:
            float(value)
        except ValueError:
            return [f"{value!r} is not a number"]
    return []
