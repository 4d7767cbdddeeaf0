"""Assemble a running planner from a :class:`PlannerConfig` (what ``wattplan run`` does)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wattplan.exceptions import ConfigurationError, PlannerError, TokenVaultError
from wattplan.planner._events import PlanEvent
from wattplan.planner._planner import Planner
from wattplan.planner._types import Customer
from wattplan.planner.config import PlannerConfig
from wattplan.planner.store import PlanStore
from wattplan.settings import Settings

__all__ = ["Runtime", "build_runtime", "customers_from_config"]

logger = logging.getLogger(__name__)


def _household_planning(customer_id: str, path: Path, store: PlanStore) -> Any:
    from wattplan.exceptions import ScenarioError
    from wattplan.household import load_household
    from wattplan.planner._usage import HouseholdPlanning

    try:  # the forecasts need the forecast extra: say so at start-up, not at the first plan
        import wattplan.forecast  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(f"customers[{customer_id}].household: {exc}") from exc
    try:
        household = load_household(path)
    except ScenarioError as exc:
        raise ConfigurationError(f"customers[{customer_id}].household: {path}: {exc}") from exc
    return HouseholdPlanning(household, customer_id=customer_id, store=store, source=path)


def customers_from_config(
    config: PlannerConfig, store: PlanStore, *, now: datetime
) -> list[Customer]:
    """The :class:`Customer` of every ``customers`` entry: a household profile planned on
    forecasts kept in ``store``, a fixed scenario file, or a factory."""
    import wattplan

    customers = []
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for c in config.customers:
        factory = c.load_factory()
        planning = None
        if c.household is not None:
            planning = _household_planning(c.id, c.household, store)
            scenario = planning.base_scenario(now)
        elif c.scenario is not None:
            scenario = wattplan.load_scenario(c.scenario)
        else:  # the factory's household for a day gives the devices and resolution
            scenario = factory(today, today + timedelta(days=1))
        customers.append(
            Customer(
                id=c.id,
                scenario=scenario,
                subscription_id=c.subscription_id,
                scenario_factory=factory,
                household=planning,
            )
        )
    return customers


@dataclass
class Runtime:
    """Everything ``wattplan run`` starts; ``close()`` stops it in reverse order."""

    config: PlannerConfig
    store: PlanStore
    planner: Planner
    scheduler: Any
    app: Any | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                logger.exception("error while shutting down")


def build_runtime(
    config: PlannerConfig,
    *,
    settings: Settings | None = None,
    price_source: Any | None = None,
) -> Runtime:
    """Store, vault, Nomos client, planner, sinks, scheduler and HTTP app from a config."""
    from wattplan.planner.api import BearerKeys, create_app
    from wattplan.planner.scheduler import PlannerScheduler
    from wattplan.planner.sinks import MqttSink, WebhookSink

    settings = settings or Settings()
    url = config.database_url or settings.database_url
    # the key a start-up error names: the one the user has to fix
    url_key = "database_url" if config.database_url else "WATTPLAN_DATABASE_URL"
    closers: list[Callable[[], None]] = []
    try:
        store = PlanStore(url, table_prefix=config.table_prefix)
    except PlannerError as exc:
        raise ConfigurationError(f"{url_key}: {exc}") from exc
    closers.append(store.dispose)
    if price_source is None:
        from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
        from wattplan.planner._nomos import NomosPriceSource

        base_url = config.nomos.base_url or settings.nomos_base_url
        client_id = config.nomos.client_id or settings.client_id
        if not client_id:
            raise ConfigurationError("nomos.client_id (or WATTPLAN_CLIENT_ID) is not set")
        cipher = TokenCipher.from_settings(settings)
        try:
            vault = TokenVault(url, cipher=cipher, table_prefix=config.table_prefix)
            closers.append(vault.close)
            vault.create_tables()  # fail here, not in the first pass, on a database it cannot use
        except TokenVaultError as exc:
            store.dispose()
            raise ConfigurationError(f"{url_key}: {exc}") from exc
        manager = TokenManager(
            config=OAuthConfig.for_base_url(
                base_url,
                client_id=client_id,
                client_secret=settings.client_secret,
                redirect_uri=settings.redirect_uri,
                scope=config.nomos.scope,
            ),
            vault=vault,
        )
        closers.append(manager.close)
        source = NomosPriceSource(
            base_url=base_url, auth_for=lambda customer: manager.auth(customer.id)
        )
        closers.append(source.close)
        price_source = source
    sinks: list[Callable[[PlanEvent], None]] = []
    mqtt: MqttSink | None = None
    homeassistant = config.mqtt is not None and config.mqtt.homeassistant.enabled
    if config.mqtt is not None:
        prefix = config.mqtt.topic_prefix.rstrip("/")
        mqtt = MqttSink(
            host=config.mqtt.host,
            port=config.mqtt.port,
            topic_prefix=config.mqtt.topic_prefix,
            username=config.mqtt.username,
            password=config.mqtt.password(),
            tls=config.mqtt.tls,
            availability_topic=f"{prefix}/availability" if homeassistant else None,
        )
        closers.append(mqtt.close)
        sinks.append(mqtt)
    for hook in config.webhooks:
        webhook = WebhookSink(hook.url, secret=hook.secret(), customer_ids=hook.customers)
        closers.append(webhook.close)
        sinks.append(webhook)
    customers = customers_from_config(config, store, now=datetime.now(UTC))
    planner = Planner(
        customers=customers,
        store=store,
        prices=price_source,
        sinks=sinks,
        deadband=config.deadband,
        max_horizon=timedelta(hours=config.max_horizon_hours),
        workers=config.workers,
        previous_plan=config.stability.enabled,
        stability=config.stability.settings(),
        usage_settings=config.usage.settings(),
    )
    scheduler = PlannerScheduler(
        planner,
        poll=config.polling.schedule(),
        jitter=timedelta(seconds=config.polling.jitter_seconds),
        slot=timedelta(minutes=config.slot_minutes),
    )
    closers.append(lambda: scheduler.shutdown(wait=True))
    closers.append(planner.stop)  # runs first: a long pass ends after its current customer
    if mqtt is not None and config.mqtt is not None and homeassistant:
        from wattplan.planner.homeassistant import HomeAssistantBridge

        ha = config.mqtt.homeassistant
        bridge = HomeAssistantBridge(
            mqtt,
            discovery_prefix=ha.discovery_prefix,
            cheap_window_hours=ha.cheap_window_hours,
            commands=ha.commands,
            max_command_bytes=config.http.max_body_bytes if config.http else 16 * 1024,
        )
        closers.append(bridge.close)  # before the sink closes (closers run in reverse)
        bridge.start(planner)
    app = None
    if config.http is not None:
        keys = BearerKeys()
        for c in config.customers:
            key = c.api_key()
            if key is not None:
                keys.add_key(c.id, key)
            if c.api_key_sha256 is not None:
                keys.add_digest(c.id, c.api_key_sha256)
        app = create_app(
            planner,
            auth=keys,
            max_body_bytes=config.http.max_body_bytes,
            body_timeout_s=config.http.body_timeout_s,
            extra_health=scheduler.health,
        )
    return Runtime(config, store, planner, scheduler, app, closers)
