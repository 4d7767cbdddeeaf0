"""``NomosClient``: a typed, sync client of the Nomos API (and of wattplan's sandbox)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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

__all__ = ["NomosClient"]

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


class NomosClient:
    """A client of the Nomos API (``https://api.nomos.energy``) or the wattplan sandbox.

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

    Examples
    --------
    >>> from wattplan.nomos import NomosClient, ClientCredentials      # doctest: +SKIP
    >>> auth = ClientCredentials(client_id=..., client_secret=...,
    ...                          token_url="https://api.nomos.energy/oauth/token")
    >>> with NomosClient(auth=auth) as nomos:
    ...     sub = nomos.active_subscription()
    ...     prices = nomos.prices_series(sub.id, "2026-11-28", "2026-11-29")
    """

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
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.retry = retry if retry is not None else RetryPolicy()
        self.timezone = timezone
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        timeout = timeout_s if isinstance(timeout_s, httpx.Timeout) else httpx.Timeout(timeout_s)
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={
                "X-API-Version": api_version,
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
        )

    def __repr__(self) -> str:
        return f"NomosClient(base_url={self.base_url!r}, api_version={self.api_version!r})"

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
        policy = self.retry
        waited_s = 0.0
        retry_number = 0
        deadline = time.monotonic() + policy.max_call_s
        while True:
            error: NomosError
            left_s = deadline - time.monotonic()
            try:
                if left_s <= 0:
                    raise httpx.TimeoutException("no time left")
                response = self._http.request(
                    method, path, params=params, timeout=self._timeout_within(left_s)
                )
                response.read()
            except httpx.TimeoutException as exc:
                error = TransportError(f"{method} {path}: timed out")
                if time.monotonic() >= deadline - 1e-3:
                    error = TransportError(
                        f"{method} {path}: no answer within {policy.max_call_s:g} s"
                    )
                error.__cause__ = exc
            except httpx.TransportError as exc:
                error = TransportError(f"{method} {path}: {type(exc).__name__}")
                error.__cause__ = exc
            else:
                if response.status_code < 400:
                    return response
                error = parse_error(
                    response.status_code, response.content, response.headers, now=datetime.now(UTC)
                )
            wait_s = self._retry_wait(method, error, retry_number)
            attempts = retry_number + 1
            if (
                wait_s is None
                or attempts >= policy.max_attempts
                or waited_s + wait_s > policy.max_total_wait_s
                or time.monotonic() + wait_s >= deadline
            ):
                raise error from error.__cause__
            logger.info(
                "%s %s: %s; retry %d in %.2f s",
                method,
                path,
                type(error).__name__,
                attempts,
                wait_s,
            )
            self._sleep(wait_s)
            waited_s += wait_s
            retry_number += 1

    def _timeout_within(self, left_s: float) -> httpx.Timeout:
        """The client's timeouts, none longer than ``left_s`` (httpx has no total deadline)."""
        t = self._http.timeout

        def cut(value: float | None) -> float:
            return left_s if value is None else min(value, left_s)

        return httpx.Timeout(
            connect=cut(t.connect), read=cut(t.read), write=cut(t.write), pool=cut(t.pool)
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

    def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self._send("GET", path, params)
        if response.status_code != 200:
            raise MalformedResponseError(f"GET {path}: unexpected status {response.status_code}")
        echoed = response.headers.get("x-api-version")
        if echoed and echoed != self.api_version:
            logger.warning("asked for API version %s, got %s", self.api_version, echoed)
        return parse_json(response.content, response.headers.get("content-type"))

    def _pages(
        self, path: str, params: Mapping[str, str], *, limit: int, max_pages: int
    ) -> Iterator[dict[str, Any]]:
        query = dict(params)
        query["limit"] = str(limit)
        for _ in range(max_pages):
            page = self._get_json(path, query)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise MalformedResponseError(f"GET {path}: not a list envelope")
            yield from page["items"]
            cursor = page.get("next_page")
            if not page.get("has_more") or not cursor:
                return
            query["cursor"] = str(cursor)
        raise NomosError(f"GET {path}: more than {max_pages} pages; narrow the filters")

    @staticmethod
    def _id(value: str) -> str:
        if not value:
            raise ValueError("an ID is required")
        return quote(value, safe="")

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
        active = [
            s
            for s in self.iter_subscriptions(status="active", customer=customer)
            if s.active and s.type == "consumption"
        ]
        if not active:
            raise NomosError("no active consumption subscription for these credentials")
        if len(active) > 1:
            logger.info("%d active subscriptions; using the newest", len(active))
        return active[0]

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
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        if hi < lo:
            raise ValueError("end: must not be before start")
        payload = self._get_json(
            f"/subscriptions/{self._id(subscription_id)}/prices",
            {"start": lo.isoformat(), "end": hi.isoformat()},
        )
        return parse_prices(payload)

    def prices_frame(self, subscription_id: str, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Price and components (ct/kWh) per slot for local days ``start``..``end``.

        See :func:`wattplan.nomos.prices_to_frame` for the columns and the errors.
        """
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        prices = self.prices(subscription_id, lo, hi)
        return prices_to_frame(prices, start=lo, end=hi, tz=self.timezone)

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
        lo, hi = _as_date(start, "start"), _as_date(end, "end")
        prices = self.prices(subscription_id, lo, hi)
        return prices_to_series(prices, start=lo, end=hi, tz=self.timezone)

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
        params = {"resolution": resolution}
        if start is not None:
            params["start"] = _as_date(start, "start").isoformat()
        if end is not None:
            params["end"] = _as_date(end, "end").isoformat()
        payload = self._get_json(f"/subscriptions/{self._id(subscription_id)}/usage", params)
        return parse_usage(payload)

    def usage_frame(
        self,
        subscription_id: str,
        *,
        start: DateLike | None = None,
        end: DateLike | None = None,
        resolution: str = "auto",
    ) -> pd.DataFrame:
        """Usage as a DataFrame: ``usage_kwh`` and ``type`` (final/preliminary), UTC index."""
        usage = self.usage(subscription_id, start=start, end=end, resolution=resolution)
        return usage_to_frame(usage)

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
        response = self._send("GET", f"/invoices/{self._id(invoice_id)}/file")
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise MalformedResponseError("invoice file: expected a redirect to the PDF")
        return str(response.url.join(location))
