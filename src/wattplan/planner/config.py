"""``planner.yaml``: the typed configuration of ``wattplan run``.

Secrets never live in the file: it names environment variables instead (``*_env`` keys),
and the OAuth client secret and the vault's encryption key come from ``WATTPLAN_*``
settings. Paths are relative to the config file. Example::

    database_url: sqlite:///planner.sqlite3   # default: WATTPLAN_DATABASE_URL
    nomos:
      base_url: https://api.nomos.energy       # or a sandbox URL
      client_id: my-hems                       # default: WATTPLAN_CLIENT_ID
    polling: {window_start: "13:30", window_end: "16:00", dense_minutes: 5,
              sparse_minutes: 60, jitter_seconds: 30}
    http: {host: 127.0.0.1, port: 8080, header_timeout_s: 10, body_timeout_s: 10,
           keep_alive_s: 5, max_connections: 200}
    stability: {enabled: true, ct_per_kwh: 0.5, hours: 6}   # re-plans keep to the last plan
    mqtt: {host: 127.0.0.1, port: 1883, topic_prefix: wattplan,
           homeassistant: {enabled: true, discovery_prefix: homeassistant}}
    webhooks:
      - {url: https://hems.example/hooks/plans, secret_env: WATTPLAN_WEBHOOK_SECRET}
    customers:
      - id: customer-42
        scenario: scenarios/full-household-48h.yaml   # planned inside its own window
        api_key_env: WATTPLAN_KEY_CUSTOMER_42     # or api_key_sha256: <hex>
      - id: customer-43
        factory: wattplan.planner:demo_household  # function(start, end) -> Scenario
      - id: customer-44
        household: households/customer-44.yaml    # a household profile: planned on
                                                  # forecasts from the customer's own usage
    usage: {available_after: "16:00", history_days: 28}   # the daily usage refresh
"""

from __future__ import annotations

import importlib
import os
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from wattplan.exceptions import ConfigurationError
from wattplan.planner._state import Deadband
from wattplan.planner._timing import PollSchedule

__all__ = [
    "CustomerConfig",
    "HomeAssistantConfig",
    "HttpConfig",
    "MqttConfig",
    "NomosConfig",
    "PlannerConfig",
    "PollingConfig",
    "StabilityConfig",
    "UsageConfig",
    "WebhookConfig",
    "load_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"{what}: environment variable {name} is not set")
    return value


class PollingConfig(_Model):
    timezone: str = "Europe/Berlin"
    window_start: time = time(13, 30)
    window_end: time = time(16, 0)
    dense_minutes: float = Field(5, gt=0, le=60)
    sparse_minutes: float = Field(60, gt=0, le=24 * 60)
    jitter_seconds: float = Field(30, ge=0)

    def schedule(self) -> PollSchedule:
        return PollSchedule(
            timezone=self.timezone,
            window_start=self.window_start,
            window_end=self.window_end,
            dense=timedelta(minutes=self.dense_minutes),
            sparse=timedelta(minutes=self.sparse_minutes),
        )


class StabilityConfig(_Model):
    """Plan stability: every re-plan gets the customer's last plan as ``previous_plan``.

    The running slot keeps the last plan's device powers (``freeze_running_slot``) and each
    kWh of device energy that differs from it within the next ``hours`` costs
    ``ct_per_kwh`` in the objective (not on the bill). ``enabled: false`` re-plans afresh.
    """

    enabled: bool = True
    ct_per_kwh: float = Field(0.5, ge=0, le=100, description="price of deviation, ct/kWh")
    hours: float = Field(6, ge=0, le=168, description="how far ahead deviations are priced")
    freeze_running_slot: bool = True

    def settings(self) -> Any:
        """The optimizer's ``wattplan.Stability`` (imported on first use)."""
        from wattplan.optimizer import Stability

        return Stability(
            ct_per_kwh=self.ct_per_kwh,
            hours=self.hours,
            freeze_running_slot=self.freeze_running_slot,
        )


class UsageConfig(_Model):
    """The daily usage refresh of customers planned from a household profile.

    At the first pass after ``available_after`` (local time; Nomos publishes the previous
    day's usage in the afternoon) the planner fetches the usage since the oldest value
    that is still preliminary, stores the history and refreshes the forecast; a failed
    fetch is tried again at every pass until it succeeds.
    """

    available_after: time = Field(time(16, 0), description="local time of the daily fetch")
    history_days: int = Field(28, ge=1, le=365, description="history fetched at the start")
    refetch_days: int = Field(
        45, ge=1, le=365, description="how far back preliminary values are fetched again"
    )
    forecast_days: int = Field(2, ge=1, le=7, description="days ahead each refresh forecasts")

    @field_validator("available_after", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 16:00 as the sexagesimal integer 960 (minutes)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < 24 * 60:
                raise ValueError("a local time HH:MM")
            return time(value // 60, value % 60)
        return value

    def settings(self) -> Any:
        from wattplan.planner._usage import UsageSettings

        return UsageSettings(
            available_after=self.available_after,
            history_days=self.history_days,
            refetch_days=self.refetch_days,
            forecast_days=self.forecast_days,
        )


class NomosConfig(_Model):
    base_url: str | None = Field(None, description="default: WATTPLAN_NOMOS_BASE_URL")
    client_id: str | None = Field(None, description="default: WATTPLAN_CLIENT_ID")
    scope: str | None = None


class HttpConfig(_Model):
    """The planner's HTTP API, with bounds on slow and numerous clients."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(16 * 1024, gt=0, le=1024 * 1024)
    header_timeout_s: float = Field(
        10.0, gt=0, le=300, strict=True, description="a request head must arrive within, s"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=300, strict=True, description="a request body must arrive within, s"
    )
    keep_alive_s: float = Field(
        5.0, gt=0, le=300, strict=True, description="an idle kept-alive connection closes, s"
    )
    max_connections: int = Field(
        200, ge=1, le=10_000, strict=True, description="open connections; beyond: 503"
    )


class HomeAssistantConfig(_Model):
    """Home Assistant MQTT discovery (off by default; see ``wattplan.planner.homeassistant``)."""

    enabled: bool = False
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration setting)",
    )
    cheap_window_hours: float = Field(
        2.0, gt=0, le=24, description="length of the 'next cheap window' entity, h"
    )
    commands: bool = Field(
        True, description="accept device state on <prefix>/<customer>/device-state/set"
    )


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, le=65535)
    topic_prefix: str = Field("wattplan", pattern=r"^[^+#\x00]+$")
    username: str | None = None
    password_env: str | None = None
    tls: bool = False
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()

    def password(self) -> str | None:
        return _env(self.password_env, "mqtt.password_env")


class WebhookConfig(_Model):
    url: str
    secret_env: str
    customers: list[str] | None = Field(None, description="only these customers (default all)")

    def secret(self) -> str:
        value = _env(self.secret_env, f"webhook {self.url}")
        assert value is not None
        return value


class CustomerConfig(_Model):
    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")]
    scenario: Path | None = Field(None, description="scenario file, planned inside its window")
    household: Path | None = Field(
        None,
        description="household profile (relative to planner.yaml): planned for any window on "
        "forecasts from the customer's own usage",
    )
    factory: str | None = Field(
        None,
        description="'package.module:function' with function(start, end) -> Scenario, for "
        "rolling use (e.g. 'wattplan.planner:demo_household')",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    )
    subscription_id: str | None = None
    api_key_env: str | None = None
    api_key_sha256: str | None = None

    @model_validator(mode="after")
    def _source(self) -> CustomerConfig:
        given = [k for k in ("scenario", "factory", "household") if getattr(self, k) is not None]
        if not given:
            raise ValueError("give a household profile, a scenario file or a factory")
        if len(given) > 1:
            raise ValueError(f"give only one of household, scenario, factory (got {given})")
        return self

    def load_factory(self) -> Any:
        """The factory callable named by ``factory`` (or ``None``)."""
        if self.factory is None:
            return None
        module, _, name = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"customers[{self.id}].factory: cannot import {self.factory}"
            ) from exc

    def api_key(self) -> str | None:
        return _env(self.api_key_env, f"customers[{self.id}].api_key_env")


class PlannerConfig(_Model):
    database_url: str | None = Field(None, description="default: WATTPLAN_DATABASE_URL")
    table_prefix: str = "wattplan_"
    nomos: NomosConfig = NomosConfig()
    polling: PollingConfig = PollingConfig()
    slot_minutes: int = Field(15, description="slot-boundary job period")
    max_horizon_hours: float = Field(48, gt=0, le=24 * 7)
    workers: int = Field(4, ge=1, le=64)
    deadband: Deadband = Deadband()
    stability: StabilityConfig = StabilityConfig()
    usage: UsageConfig = UsageConfig()
    http: HttpConfig | None = HttpConfig()
    mqtt: MqttConfig | None = None
    webhooks: list[WebhookConfig] = []
    customers: list[CustomerConfig] = Field(min_length=1)

    @field_validator("slot_minutes")
    @classmethod
    def _slot(cls, value: int) -> int:
        if value not in (15, 30, 60):
            raise ValueError("must be 15, 30 or 60")
        return value

    @field_validator("customers")
    @classmethod
    def _unique(cls, value: list[CustomerConfig]) -> list[CustomerConfig]:
        seen: set[str] = set()
        for customer in value:
            if customer.id in seen:
                raise ValueError(f"customer id {customer.id!r} is listed twice")
            seen.add(customer.id)
        return value


def load_config(path: str | Path) -> PlannerConfig:
    """Read and validate ``planner.yaml``; scenario paths become absolute."""
    file = Path(path)
    try:
        raw: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"{file}: cannot read the planner config ({exc.strerror})"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{file}: the planner config must be a mapping")
    try:
        config = PlannerConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"{file}: {problems}") from None
    for customer in config.customers:
        if customer.scenario is not None and not customer.scenario.is_absolute():
            customer.scenario = (file.parent / customer.scenario).resolve()
        if customer.household is not None and not customer.household.is_absolute():
            customer.household = (file.parent / customer.household).resolve()
    return config
