"""``httpx.Auth`` implementations for the Nomos API: a static bearer and client credentials.

The customer-grant auth with the token vault and single-flight refresh lives in
:mod:`wattplan.auth`; :class:`~wattplan.nomos.NomosClient` accepts any ``httpx.Auth``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx

from wattplan._aio import LoopLocks
from wattplan._basic_auth import basic_auth_header
from wattplan.exceptions import MalformedResponseError, OAuthError

__all__ = ["BearerToken", "ClientCredentials", "basic_auth_header"]

logger = logging.getLogger(__name__)


class BearerToken(httpx.Auth):
    """A fixed access token (e.g. one you obtained elsewhere). Never shown in reprs."""

    def __init__(self, access_token: str) -> None:
        if not access_token:
            raise ValueError("access_token is empty")
        self._header = f"Bearer {access_token}"

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


@dataclass
class _Token:
    access_token: str
    expires_at: datetime
    refresh_at: datetime
    scope: str | None

    def __repr__(self) -> str:
        return f"_Token(expires_at={self.expires_at.isoformat()}, scope={self.scope!r})"


class ClientCredentials(httpx.Auth):
    """Organisation token by the client-credentials grant, cached until shortly before expiry.

    One token fetch at a time per instance (a lock, re-checked after waiting); on a 401
    from the API the token is fetched again once and the request retried once. The
    token's expiry is timed from the start of the token request. Works with sync
    ``httpx.Client``\\ s (:class:`~wattplan.nomos.NomosClient`; a thread lock) and with
    ``httpx.AsyncClient``\\ s (:class:`~wattplan.nomos.AsyncNomosClient`; an asyncio lock
    per event loop, so waiting never blocks the loop). The sync and the async side share
    the cached token; they do not wait for each other's fetch (at worst one token too many).

    Parameters
    ----------
    client_id, client_secret
        The organisation's credentials (sent with HTTP Basic, form body).
    token_url
        ``https://api.nomos.energy/oauth/token`` or the sandbox's.
    scope
        Optional ``scope`` to ask for.
    early_refresh_s
        Fetch a new token this long before expiry (kept below half the lifetime).
    clock
        Returns the current tz-aware time (injectable for tests).
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        token_url: str,
        scope: str | None = None,
        early_refresh_s: float = 120.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.scope = scope
        self.early_refresh_s = early_refresh_s
        self._clock = clock
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self._async_locks = LoopLocks()
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def _fresh(self, token: _Token | None) -> bool:
        return token is not None and self._clock() < token.refresh_at

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return httpx.Request(
            "POST",
            self.token_url,
            content=urlencode(form).encode(),
            headers={
                "Authorization": basic_auth_header(self.client_id, self._secret),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )

    def _store(self, response: httpx.Response, started: datetime) -> _Token:
        try:
            body = json.loads(response.content or b"{}")
        except ValueError as exc:
            raise MalformedResponseError("token response is not JSON") from exc
        if not isinstance(body, dict):
            raise MalformedResponseError("token response is not a JSON object")
        if response.status_code != 200:
            error = str(body.get("error") or body.get("code") or "token_request_failed")
            description = body.get("error_description") or body.get("message")
            raise OAuthError(
                error,
                str(description)[:200] if description else None,
                status_code=response.status_code,
                transient=response.status_code >= 500,
            )
        access = body.get("access_token")
        expires_in = body.get("expires_in", 3600)
        if not isinstance(access, str) or not isinstance(expires_in, int | float):
            raise MalformedResponseError("token response lacks access_token or expires_in")
        # the margin stays below half the lifetime: a short-lived token is not refetched
        # on every request
        lifetime = timedelta(seconds=float(expires_in))
        margin = timedelta(seconds=min(self.early_refresh_s, float(expires_in) / 2))
        token = _Token(
            access_token=access,
            expires_at=started + lifetime,
            refresh_at=started + lifetime - margin,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        )
        self._token = token
        self.tokens_fetched += 1
        logger.debug("client-credentials token obtained (expires %s)", token.expires_at)
        return token

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, _Token]:
        started = self._clock()
        response = yield self._token_request()
        response.read()
        return self._store(response, started)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            token = self._token
            if not self._fresh(token):
                token = yield from self._fetch()
        assert token is not None
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._lock:
            if self._token is token:  # nobody replaced it meanwhile: fetch once more
                self._token = None
                token = yield from self._fetch()
            else:
                assert self._token is not None
                token = self._token
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._async_locks.get():
            token = self._token
            if not self._fresh(token):
                started = self._clock()
                response = yield self._token_request()
                await response.aread()
                token = self._store(response, started)
        assert token is not None
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._async_locks.get():
            if self._token is token:  # nobody replaced it meanwhile: fetch once more
                self._token = None
                started = self._clock()
                response = yield self._token_request()
                await response.aread()
                token = self._store(response, started)
            else:
                assert self._token is not None
                token = self._token
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        yield request
