"""The production price source: a customer's own prices from Nomos (or the sandbox)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pandas as pd

from wattplan.planner._types import Customer

__all__ = ["NomosPriceSource"]

logger = logging.getLogger(__name__)


class NomosPriceSource:
    """Fetches prices (and usage) with one :class:`~wattplan.nomos.NomosClient` per customer.

    ``auth_for(customer)`` returns the customer's ``httpx.Auth`` (typically
    ``token_manager.auth(customer.id)``: the vault-backed grant with single-flight
    refresh). A customer without ``subscription_id`` uses its active subscription, looked
    up once. All clients share one connection pool.
    """

    def __init__(
        self,
        *,
        base_url: str,
        auth_for: Callable[[Customer], httpx.Auth],
        transport: httpx.BaseTransport | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._base_url = base_url
        self._auth_for = auth_for
        self._transport = transport if transport is not None else httpx.HTTPTransport(retries=0)
        self._options = dict(client_options or {})
        self._clients: dict[str, Any] = {}
        self._subscriptions: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NomosPriceSource(base_url={self._base_url!r}, customers={len(self._clients)})"

    def client(self, customer: Customer) -> Any:
        from wattplan.nomos import NomosClient

        with self._lock:
            client = self._clients.get(customer.id)
            if client is None:
                client = NomosClient(
                    base_url=self._base_url,
                    auth=self._auth_for(customer),
                    transport=self._transport,
                    **self._options,
                )
                self._clients[customer.id] = client
            return client

    def subscription_id(self, customer: Customer) -> str:
        if customer.subscription_id:
            return customer.subscription_id
        cached = self._subscriptions.get(customer.id)
        if cached is not None:
            return cached
        subscription = self.client(customer).active_subscription()
        self._subscriptions[customer.id] = str(subscription.id)
        logger.info("customer %s plans on subscription %s", customer.id, subscription.id)
        return str(subscription.id)

    def fetch_prices(self, customer: Customer, *, start: date, end: date) -> pd.Series:
        series: pd.Series = self.client(customer).prices_series(
            self.subscription_id(customer), start, end
        )
        return series

    def fetch_usage(self, customer: Customer, *, start: date, end: date) -> pd.DataFrame:
        """The customer's metered usage per 15 minutes, ``start`` inclusive, ``end``
        exclusive (local dates): ``usage_kwh`` and ``type`` (final/preliminary)."""
        frame: pd.DataFrame = self.client(customer).usage_frame(
            self.subscription_id(customer), start=start, end=end, resolution="15min"
        )
        return frame

    def close(self) -> None:
        with self._lock:
            self._clients.clear()
        self._transport.close()
