"""The Nomos API client: typed models, pure parsers into pandas, and ``httpx.Auth``\\ s.

Stable names
------------
``NomosClient(*, base_url, auth, transport, timeout_s, api_version, retry, timezone)``
    ``subscriptions()``, ``iter_subscriptions()``, ``subscription(id)``,
    ``active_subscription()``, ``customers()``, ``customer(id)``,
    ``prices(id, start, end)`` → :class:`Prices`, ``prices_series(id, start, end)`` →
    ``pandas.Series`` ``price_ct_per_kwh`` (tz-aware UTC, regular 15/60-minute steps,
    complete or an error), ``prices_frame(...)`` (plus ``electricity_ct_per_kwh``,
    ``grid_ct_per_kwh``, ``levies_ct_per_kwh``), ``usage(...)``/``usage_frame(...)``,
    ``invoices(...)``, ``invoice(id)``, ``invoice_file_url(id)``.
``AsyncNomosClient(...)``
    The same parameters (an ``httpx.AsyncBaseTransport``, an awaitable ``sleep``) and the
    same methods as coroutines (``iter_subscriptions`` is an async iterator); the same
    parsers, errors and retry policy over an ``httpx.AsyncClient``.
``BearerToken(access_token)``, ``ClientCredentials(client_id=, client_secret=, token_url=)``
    ``httpx.Auth`` (sync and async) for a static token and for organisation tokens; the
    customer-grant auth (vault, single-flight refresh) is in :mod:`wattplan.auth`.
``RetryPolicy``
    Bounded retries: 429 honours ``retry-after``/``ratelimit-reset`` (capped); 5xx and
    timeouts retried with full-jitter backoff on GETs only.
Pure parsers
    ``parse_prices``, ``prices_to_series``, ``prices_to_frame``, ``parse_usage``,
    ``usage_to_frame``, ``parse_error``, ``parse_json``, ``expected_slots``.

Errors are those of :mod:`wattplan.exceptions`: ``PricesNotPublishedError`` when the
asked days are not out yet (never zeros, never a Series with holes),
``MalformedResponseError`` for bodies that are not JSON, have the wrong content type, are
truncated or off-schema, ``NomosAPIError`` subclasses for the flat error body (with
``request_id``), ``TransportError`` for timeouts and broken connections.
"""

from __future__ import annotations

from wattplan._extras import requires as _requires

with _requires("nomos", feature="wattplan.nomos"):
    from wattplan.nomos._auth import BearerToken, ClientCredentials, basic_auth_header
    from wattplan.nomos._client import AsyncNomosClient, NomosClient
    from wattplan.nomos._models import (
        Customer,
        Invoice,
        PriceComponent,
        PriceItem,
        Prices,
        Subscription,
        Usage,
        UsagePoint,
    )
    from wattplan.nomos._parse import (
        expected_slots,
        parse_error,
        parse_json,
        parse_prices,
        parse_usage,
        prices_to_frame,
        prices_to_series,
        usage_to_frame,
    )
    from wattplan.nomos._retry import RetryPolicy

__all__ = [
    "AsyncNomosClient",
    "BearerToken",
    "ClientCredentials",
    "Customer",
    "Invoice",
    "NomosClient",
    "PriceComponent",
    "PriceItem",
    "Prices",
    "RetryPolicy",
    "Subscription",
    "Usage",
    "UsagePoint",
    "basic_auth_header",
    "expected_slots",
    "parse_error",
    "parse_json",
    "parse_prices",
    "parse_usage",
    "prices_to_frame",
    "prices_to_series",
    "usage_to_frame",
]
