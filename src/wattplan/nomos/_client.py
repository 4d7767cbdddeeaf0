"""``NomosClient`` and ``AsyncNomosClient``: typed clients of the Nomos API (and the sandbox).

Both share everything but the I/O: :class:`_ClientCore` holds the configuration, builds each
endpoint's path and query, checks and parses the answers (:mod:`wattplan.nomos._parse`) and
decides about retries (:class:`_Retrying` with the :class:`RetryPolicy`); the sync and the
async class only send, wait and await.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from wattplan._defaults import DEFAULT_API_VERSION, DEFAULT_BASE_URL
from wattplan.exceptions import (
    MalformedResponseError,
    NomosAPIError,
    NomosError,
    RateLimitedError,
    TransportError,
)
from wattplan.nomos._models import Customer, Invoice, Prices, Subscription, Usage
from wattplan.nomos._parse import (
    parse_error,
    parse_json,
    parse_model,
    parse_prices,
    parse_usage,
    prices_to_frame,
    prices_to_series,
    usage_to_frame,
)
from wattplan.nomos._retry import RetryPolicy

__all__ = ["AsyncNomosClient", "NomosClient"]

logger = logging.getLogger(__name__)

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_USER_AGENT = "wattplan/0.1 (+https://github.com/wattplan)"
DateLike = date | str
Filters = Mapping[str, str | Sequence[str]]


def _as_date(value: DateLike, name: str) -> date:
    """A local calendar date; datetimes are refused (which day would they mean?)."""
    if isinstance(value, datetime):
        raise TypeError(f"{name}: pass a date (a local calendar day), not a datetime")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected YYYY-MM-DD, got {value!r}") from exc


def _filter_params(filters: Filters | None, **shorthand: str | None) -> dict[str, str]:
    """``{"status[eq]": "active"}`` → ``{"filter[status][eq]": "active"}``."""
    out: dict[str, str] = {}
    for key, value in (filters or {}).items():
        field, _, op = key.partition("[")
        if not op.endswith("]") or not field:
            raise ValueError(f"filter keys look like 'field[op]', got {key!r}")
        text = value if isinstance(value, str) else ",".join(value)
        out[f"filter[{field}][{op[:-1]}]"] = text
    for name, given in shorthand.items():
        if given is not None:
            out[f"filter[{name}][eq]"] = given
    return out


class _ClientCore:
    """What the sync and the async client share: configuration, queries, checks, parsing."""

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        retry: RetryPolicy | None,
        timezone: str,
        rng: random.Random | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.retry = retry if retry is not None else RetryPolicy()
        self.timezone = timezone
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_version={self.api_version!r})"
        )

    def _client_options(self, timeout_s: float | httpx.Timeout) -> dict[str, Any]:
        """Keyword arguments of the ``httpx`` client, sync or async."""
        return {
            "base_url": self.base_url,
            "timeout": timeout_s
            if isinstance(timeout_s, httpx.Timeout)
            else httpx.Timeout(timeout_s),
            "follow_redirects": False,
            "headers": {
                "X-API-Version": self.api_version,
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
        }

    # -- retries ---------------------------------------------------------------------
    @staticmethod
    def _within(timeout: httpx.Timeout, left_s: float) -> httpx.Timeout:
        """``timeout`` with no part longer than ``left_s`` (httpx has no total deadline)."""

        def cut(value: float | None) -> float:
            return left_s if value is None else min(value, left_s)

        return httpx.Timeout(
            connect=cut(timeout.connect),
            read=cut(timeout.read),
            write=cut(timeout.write),
            pool=cut(timeout.pool),
        )

    def _retry_wait(self, method: str, error: NomosError, retry_number: int) -> float | None:
        policy = self.retry
        if isinstance(error, RateLimitedError):
            wait_s = policy.rate_limit_wait_s(retry_number, error.retry_after_s, self._rng)
            return wait_s if wait_s <= policy.max_wait_s else None
        if method.upper() not in _IDEMPOTENT:
            return None
        if isinstance(error, TransportError) or (
            isinstance(error, NomosAPIError) and error.status_code >= 500
        ):
            return min(policy.backoff_s(retry_number, self._rng), policy.max_wait_s)
        return None

    # -- answers ---------------------------------------------------------------------
    def _json_of(self, path: str, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise MalformedResponseError(f"GET {path}: unexpected status {response.status_code}")
        echoed = response.headers.get("x-api-version")
        if echoed and echoed != self.api_version:
            logger.warning("asked for API version %s, got %s", self.api_version, echoed)
        return parse_json(response.content, response.headers.get("content-type"))

    @staticmethod
    def _page_of(path: str, page: Any) -> tuple[list[dict[str, Any]], str | None]:
        """The items of one list page and the cursor of the next (None: the last page)."""
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise MalformedResponseError(f"GET {path}: not a list envelope")
        cursor = page.get("next_page")
        return page["items"], str(cursor) if page.get("has_more") and cursor else None

    @staticmethod
    def _too_many_pages(path: str, max_pages: int) -> NomosError:
        return NomosError(f"GET {path}: more than {max_pages} pages; narrow the filters")

    @staticmethod
    def _id(value: str) -> str:
        if not value:
            raise ValueError("an ID is required")
        return quote(value, safe="")

    @staticmethod
    def _only_active(subscriptions: list[Subscription]) -> Subscription:
        active = [s for s in subscriptions if s.active and s.type == "consumption"]
        if not active:
            raise NomosError("no active consumption subscription for these credentials")
        if len(active) > 1:
            logger.info("%d active subscriptions; using the newest", len(active))
        return active[0]

    # -- queries ---------------------------------------------------------------------
    def _prices_query(
        self, subscription_id: str, start: DateLike, end: DateLike
    ) -> tuple[str, dict[str, str]]:
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        if hi < lo:
            raise ValueError("end: must not be before start")
        path = f"/subscriptions/{self._id(subscription_id)}/prices"
        return path, {"start": lo.isoformat(), "end": hi.isoformat()}

    def _usage_query(
        self,
        subscription_id: str,
        start: DateLike | None,
        end: DateLike | None,
        resolution: str,
    ) -> tuple[str, dict[str, str]]:
        params = {"resolution": resolution}
        if start is not None:
            params["start"] = _as_date(start, "start").isoformat()
        if end is not None:
            params["end"] = _as_date(end, "end").isoformat()
        return f"/subscriptions/{self._id(subscription_id)}/usage", params

    def _series(self, prices: Prices, start: DateLike, end: DateLike) -> pd.Series:
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        return prices_to_series(prices, start=lo, end=hi, tz=self.timezone)

    def _frame(self, prices: Prices, start: DateLike, end: DateLike) -> pd.DataFrame:
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        return prices_to_frame(prices, start=lo, end=hi, tz=self.timezone)

    @staticmethod
    def _file_url(response: httpx.Response) -> str:
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise MalformedResponseError("invoice file: expected a redirect to the PDF")
        return str(response.url.join(location))


class _Retrying:
    """The retry bookkeeping of one logical request: deadline, tries, waiting so far."""

    def __init__(self, core: _ClientCore, timeout: httpx.Timeout, method: str, path: str) -> None:
        self._core = core
        self._timeout = timeout
        self.method = method
        self.path = path
        self.waited_s = 0.0
        self.retry_number = 0
        self.deadline = time.monotonic() + core.retry.max_call_s

    def timeout(self) -> httpx.Timeout:
        """The timeouts of the next try, cut to what is left of the deadline."""
        left_s = self.deadline - time.monotonic()
        if left_s <= 0:
            raise httpx.TimeoutException("no time left")
        return self._core._within(self._timeout, left_s)

    def transport_failed(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before the next try, or raise the typed error."""
        error = TransportError(f"{self.method} {self.path}: {type(exc).__name__}")
        if isinstance(exc, httpx.TimeoutException):
            error = TransportError(f"{self.method} {self.path}: timed out")
            if time.monotonic() >= self.deadline - 1e-3:
                error = TransportError(
                    f"{self.method} {self.path}: no answer within {self._core.retry.max_call_s:g} s"
                )
        error.__cause__ = exc
        return self._failed(error)

    def answered(self, response: httpx.Response) -> float:
        """After an error answer: seconds to wait before the next try, or raise it typed."""
        return self._failed(
            parse_error(
                response.status_code, response.content, response.headers, now=datetime.now(UTC)
            )
        )

    def _failed(self, error: NomosError) -> float:
        policy = self._core.retry
        wait_s = self._core._retry_wait(self.method, error, self.retry_number)
        attempts = self.retry_number + 1
        if (
            wait_s is None
            or attempts >= policy.max_attempts
            or self.waited_s + wait_s > policy.max_total_wait_s
            or time.monotonic() + wait_s >= self.deadline
        ):
            raise error from error.__cause__
        logger.info(
            "%s %s: %s; retry %d in %.2f s",
            self.method,
            self.path,
            type(error).__name__,
            attempts,
            wait_s,
        )
        self.waited_s += wait_s
        self.retry_number += 1
        return wait_s


_CLIENT_PARAMETERS = """
    Parameters
    ----------
    base_url
        API root, without a trailing slash.
    auth
        Any ``httpx.Auth``: :class:`~wattplan.nomos.BearerToken`,
        :class:`~wattplan.nomos.ClientCredentials`, or the vault-backed auth of
        :mod:`wattplan.auth` (refresh once and retry once on a 401).
    transport
        An ``httpx`` transport (e.g. ``httpx.MockTransport``) instead of the network.
    timeout_s
        Per-request timeout (seconds, or an ``httpx.Timeout``).
    api_version
        Sent as ``X-API-Version`` (default :data:`wattplan.settings.DEFAULT_API_VERSION`).
    retry
        :class:`~wattplan.nomos.RetryPolicy` (bounded tries and waiting).
    timezone
        The customer's time zone; price and usage dates are its calendar days.
    sleep, rng
        Injected for tests: how to wait, and the jitter source.
"""


class NomosClient(_ClientCore):
    __doc__ = (
        """A client of the Nomos API (``https://api.nomos.energy``) or the wattplan sandbox.
"""
        + _CLIENT_PARAMETERS
        + """
    Examples
    --------
    >>> from wattplan.nomos import NomosClient, ClientCredentials      # doctest: +SKIP
    >>> auth = ClientCredentials(client_id=..., client_secret=...,
    ...                          token_url="https://api.nomos.energy/oauth/token")
    >>> with NomosClient(auth=auth) as nomos:
    ...     sub = nomos.active_subscription()
    ...     prices = nomos.prices_series(sub.id, "2026-11-28", "2026-11-29")
    """
    )

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float | httpx.Timeout = 30.0,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = None,
        timezone: str = "Europe/Berlin",
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url, api_version=api_version, retry=retry, timezone=timezone, rng=rng
        )
        self._sleep = sleep
        self._http = httpx.Client(auth=auth, transport=transport, **self._client_options(timeout_s))

    def __enter__(self) -> NomosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport -------------------------------------------------------------------
    def _send(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One logical request with bounded retries; 2xx/3xx responses are returned."""
        retrying = _Retrying(self, self._http.timeout, method, path)
        while True:
            try:
                response = self._http.request(
                    method, path, params=params, timeout=retrying.timeout()
                )
                response.read()
            except httpx.TransportError as exc:
                wait_s = retrying.transport_failed(exc)
            else:
                if response.status_code < 400:
                    return response
                wait_s = retrying.answered(response)
            self._sleep(wait_s)

    def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._json_of(path, self._send("GET", path, params))

    def _pages(
        self, path: str, params: Mapping[str, str], *, limit: int, max_pages: int
    ) -> Iterator[dict[str, Any]]:
        query = {**params, "limit": str(limit)}
        for _ in range(max_pages):
            items, cursor = self._page_of(path, self._get_json(path, query))
            yield from items
            if cursor is None:
                return
            query["cursor"] = cursor
        raise self._too_many_pages(path, max_pages)

    # -- subscriptions and customers -------------------------------------------------
    def iter_subscriptions(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        filters: Filters | None = None,
        page_size: int = 100,
        max_pages: int = 100,
    ) -> Iterator[Subscription]:
        """Walk ``GET /subscriptions`` page by page (newest first)."""
        params = _filter_params(filters, status=status, customer=customer)
        for item in self._pages("/subscriptions", params, limit=page_size, max_pages=max_pages):
            yield parse_model(Subscription, item, "subscription")

    def subscriptions(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        filters: Filters | None = None,
    ) -> list[Subscription]:
        """Every subscription the credentials can see (all pages)."""
        return list(self.iter_subscriptions(status=status, customer=customer, filters=filters))

    def subscription(self, subscription_id: str) -> Subscription:
        """``GET /subscriptions/{id}``."""
        payload = self._get_json(f"/subscriptions/{self._id(subscription_id)}")
        return parse_model(Subscription, payload, "subscription")

    def active_subscription(self, *, customer: str | None = None) -> Subscription:
        """The active consumption subscription (the newest one if there are several)."""
        return self._only_active(self.subscriptions(status="active", customer=customer))

    def customers(self, *, filters: Filters | None = None) -> list[Customer]:
        """Every customer the credentials can see (a customer token: just herself)."""
        params = _filter_params(filters)
        return [
            parse_model(Customer, item, "customer")
            for item in self._pages("/customers", params, limit=100, max_pages=100)
        ]

    def customer(self, customer_id: str) -> Customer:
        """``GET /customers/{id}``."""
        return parse_model(
            Customer, self._get_json(f"/customers/{self._id(customer_id)}"), "customer"
        )

    # -- prices ----------------------------------------------------------------------
    def prices(self, subscription_id: str, start: DateLike, end: DateLike) -> Prices:
        """``GET /subscriptions/{id}/prices`` for local days ``start``..``end`` (inclusive)."""
        return parse_prices(self._get_json(*self._prices_query(subscription_id, start, end)))

    def prices_frame(self, subscription_id: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Price and components (ct/kWh) per slot for local days ``start``..``end``.

        See :func:`wattplan.nomos.prices_to_frame` for the columns and the errors.
        """
        return self._frame(self.prices(subscription_id, start, end), start, end)

    def prices_series(self, subscription_id: str, start: DateLike, end: DateLike) -> pd.Series:
        """All-in price in ct/kWh per slot, ready for ``wattplan.optimize(..., prices=...)``.

        Parameters
        ----------
        subscription_id
            ``sub_...``.
        start, end
            Local calendar days (the customer's time zone), ``end`` inclusive.

        Returns
        -------
        pandas.Series
            Named ``price_ct_per_kwh``, float, indexed by tz-aware UTC slot starts with a
            regular 15- or 60-minute frequency that covers the days exactly (92, 96 or
            100 quarter-hours a day).

        Raises
        ------
        PricesNotPublishedError
            (Some of) the days are not published yet: tomorrow before ~14:20 CET.
        MalformedResponseError
            The answer has holes, duplicates or is not what the spec says.
        NomosAPIError, TransportError
            The request failed (after the retries the policy allows).
        """
        return self._series(self.prices(subscription_id, start, end), start, end)

    # -- usage -----------------------------------------------------------------------
    def usage(
        self,
        subscription_id: str,
        *,
        start: DateLike | None = None,
        end: DateLike | None = None,
        resolution: str = "auto",
    ) -> Usage:
        """``GET /subscriptions/{id}/usage``; ``start`` inclusive, ``end`` exclusive (local)."""
        return parse_usage(
            self._get_json(*self._usage_query(subscription_id, start, end, resolution))
        )

    def usage_frame(
        self,
        subscription_id: str,
        *,
        start: DateLike | None = None,
        end: DateLike | None = None,
        resolution: str = "auto",
    ) -> pd.DataFrame:
        """Usage as a DataFrame: ``usage_kwh`` and ``type`` (final/preliminary), UTC index."""
        return usage_to_frame(
            self.usage(subscription_id, start=start, end=end, resolution=resolution)
        )

    # -- invoices --------------------------------------------------------------------
    def invoices(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        subscription: str | None = None,
        filters: Filters | None = None,
    ) -> list[Invoice]:
        """Invoices the credentials can see (a customer: her own), newest first."""
        params = _filter_params(filters, status=status, type=type, subscription=subscription)
        return [
            parse_model(Invoice, item, "invoice")
            for item in self._pages("/invoices", params, limit=100, max_pages=100)
        ]

    def invoice(self, invoice_id: str) -> Invoice:
        """``GET /invoices/{id}``."""
        return parse_model(Invoice, self._get_json(f"/invoices/{self._id(invoice_id)}"), "invoice")

    def invoice_file_url(self, invoice_id: str) -> str:
        """The signed PDF link behind ``GET /invoices/{id}/file`` (valid for one hour)."""
        return self._file_url(self._send("GET", f"/invoices/{self._id(invoice_id)}/file"))


class AsyncNomosClient(_ClientCore):
    __doc__ = (
        """:class:`NomosClient` for asyncio hosts (Home Assistant, FastAPI): ``await`` each call.

    The same endpoints, parsers, errors and :class:`~wattplan.nomos.RetryPolicy`, over an
    ``httpx.AsyncClient``; waiting between retries does not block the event loop. ``auth``
    must support httpx's async flow: :class:`~wattplan.nomos.BearerToken`,
    :class:`~wattplan.nomos.ClientCredentials` and :class:`wattplan.auth.GrantAuth` do.
"""
        + _CLIENT_PARAMETERS.replace("``httpx`` transport", "``httpx`` async transport")
        + """
    Examples
    --------
    >>> async with AsyncNomosClient(auth=auth) as nomos:          # doctest: +SKIP
    ...     sub = await nomos.active_subscription()
    ...     prices = await nomos.prices_series(sub.id, "2026-11-28", "2026-11-29")
    """
    )

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float | httpx.Timeout = 30.0,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = None,
        timezone: str = "Europe/Berlin",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url, api_version=api_version, retry=retry, timezone=timezone, rng=rng
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            auth=auth, transport=transport, **self._client_options(timeout_s)
        )

    async def __aenter__(self) -> AsyncNomosClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- transport -------------------------------------------------------------------
    async def _send(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One logical request with bounded retries; 2xx/3xx responses are returned."""
        retrying = _Retrying(self, self._http.timeout, method, path)
        while True:
            try:
                response = await self._http.request(
                    method, path, params=params, timeout=retrying.timeout()
                )
                await response.aread()
            except httpx.TransportError as exc:
                wait_s = retrying.transport_failed(exc)
            else:
                if response.status_code < 400:
                    return response
                wait_s = retrying.answered(response)
            await self._sleep(wait_s)

    async def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._json_of(path, await self._send("GET", path, params))

    async def _pages(
        self, path: str, params: Mapping[str, str], *, limit: int, max_pages: int
    ) -> AsyncIterator[dict[str, Any]]:
        query = {**params, "limit": str(limit)}
        for _ in range(max_pages):
            items, cursor = self._page_of(path, await self._get_json(path, query))
            for item in items:
                yield item
            if cursor is None:
                return
            query["cursor"] = cursor
        raise self._too_many_pages(path, max_pages)

    # -- subscriptions and customers -------------------------------------------------
    async def iter_subscriptions(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        filters: Filters | None = None,
        page_size: int = 100,
        max_pages: int = 100,
    ) -> AsyncIterator[Subscription]:
        """Walk ``GET /subscriptions`` page by page (newest first): ``async for``."""
        params = _filter_params(filters, status=status, customer=customer)
        async for item in self._pages(
            "/subscriptions", params, limit=page_size, max_pages=max_pages
        ):
            yield parse_model(Subscription, item, "subscription")

    async def subscriptions(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        filters: Filters | None = None,
    ) -> list[Subscription]:
        """Every subscription the credentials can see (all pages)."""
        return [
            s
            async for s in self.iter_subscriptions(
                status=status, customer=customer, filters=filters
            )
        ]

    async def subscription(self, subscription_id: str) -> Subscription:
        """``GET /subscriptions/{id}``."""
        payload = await self._get_json(f"/subscriptions/{self._id(subscription_id)}")
        return parse_model(Subscription, payload, "subscription")

    async def active_subscription(self, *, customer: str | None = None) -> Subscription:
        """The active consumption subscription (the newest one if there are several)."""
        return self._only_active(await self.subscriptions(status="active", customer=customer))

    async def customers(self, *, filters: Filters | None = None) -> list[Customer]:
        """Every customer the credentials can see (a customer token: just herself)."""
        params = _filter_params(filters)
        return [
            parse_model(Customer, item, "customer")
            async for item in self._pages("/customers", params, limit=100, max_pages=100)
        ]

    async def customer(self, customer_id: str) -> Customer:
        """``GET /customers/{id}``."""
        payload = await self._get_json(f"/customers/{self._id(customer_id)}")
        return parse_model(Customer, payload, "customer")

    # -- prices ----------------------------------------------------------------------
    async def prices(self, subscription_id: str, start: DateLike, end: DateLike) -> Prices:
        """``GET /subscriptions/{id}/prices`` for local days ``start``..``end`` (inclusive)."""
        return parse_prices(await self._get_json(*self._prices_query(subscription_id, start, end)))

    async def prices_frame(
        self, subscription_id: str, start: DateLike, end: DateLike
    ) -> pd.DataFrame:
        """Price and components (ct/kWh) per slot: :meth:`NomosClient.prices_frame`."""
        return self._frame(await self.prices(subscription_id, start, end), start, end)

    async def prices_series(
        self, subscription_id: str, start: DateLike, end: DateLike
    ) -> pd.Series:
        """All-in price in ct/kWh per slot: :meth:`NomosClient.prices_series`."""
        return self._series(await self.prices(subscription_id, start, end), start, end)

    # -- usage -----------------------------------------------------------------------
    async def usage(
        self,
        subscription_id: str,
        *,
        start: DateLike | None = None,
        end: DateLike | None = None,
        resolution: str = "auto",
    ) -> Usage:
        """``GET /subscriptions/{id}/usage``; ``start`` inclusive, ``end`` exclusive (local)."""
        query = self._usage_query(subscription_id, start, end, resolution)
        return parse_usage(await self._get_json(*query))

    async def usage_frame(
        self,
        subscription_id: str,
        *,
        start: DateLike | None = None,
        end: DateLike | None = None,
        resolution: str = "auto",
    ) -> pd.DataFrame:
        """Usage as a DataFrame: ``usage_kwh`` and ``type`` (final/preliminary), UTC index."""
        usage = await self.usage(subscription_id, start=start, end=end, resolution=resolution)
        return usage_to_frame(usage)

    # -- invoices --------------------------------------------------------------------
    async def invoices(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        subscription: str | None = None,
        filters: Filters | None = None,
    ) -> list[Invoice]:
        """Invoices the credentials can see (a customer: her own), newest first."""
        params = _filter_params(filters, status=status, type=type, subscription=subscription)
        return [
            parse_model(Invoice, item, "invoice")
            async for item in self._pages("/invoices", params, limit=100, max_pages=100)
        ]

    async def invoice(self, invoice_id: str) -> Invoice:
        """``GET /invoices/{id}``."""
        payload = await self._get_json(f"/invoices/{self._id(invoice_id)}")
        return parse_model(Invoice, payload, "invoice")

    async def invoice_file_url(self, invoice_id: str) -> str:
        """The signed PDF link behind ``GET /invoices/{id}/file`` (valid for one hour)."""
        return self._file_url(await self._send("GET", f"/invoices/{self._id(invoice_id)}/file"))
