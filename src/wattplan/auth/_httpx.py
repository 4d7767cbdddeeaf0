"""``httpx.Auth`` adapters: a customer's grant, or the organisation's own token.

Both attach ``Authorization: Bearer …``, refresh ahead of expiry (the manager's
``refresh_margin``) and, when the API still answers 401, refresh once under the lock and
retry once. They are thread-safe; many threads and processes may share one grant.

They work with ``httpx.Client`` and with ``httpx.AsyncClient`` alike. The async flow runs
the very same :class:`TokenManager` calls (vault, cross-process lock, rotation, marking a
dead grant) in a worker thread, so its invariants are the sync ones: a failed refresh
leaves the stored pair as it was. Before that, coroutines of one event loop queue on an
asyncio lock and re-check the cached grant, so that a burst of requests on an expired
token costs one refresh and one worker thread, and waiting never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Generator

import httpx

from wattplan._aio import LoopLocks
from wattplan.auth._manager import TokenManager
from wattplan.auth._vault import Grant

__all__ = ["ClientCredentialsAuth", "GrantAuth"]

logger = logging.getLogger(__name__)


class _BearerAuth(httpx.Auth):
    requires_request_body = False
    requires_response_body = False

    def __init__(self, manager: TokenManager) -> None:
        self._manager = manager
        self._cached: Grant | None = None  # replaced whole, never mutated: thread-safe
        self._async_locks = LoopLocks()

    def _fetch(self, rejected_version: int | None) -> Grant:  # pragma: no cover - abstract
        raise NotImplementedError

    def _current(self) -> Grant:
        cached = self._cached
        if cached is not None and not self._manager._needs_refresh(cached):
            return cached
        grant = self._fetch(None)
        self._cached = grant
        return grant

    @staticmethod
    def _attach(request: httpx.Request, grant: Grant) -> None:
        assert grant.token is not None
        request.headers["Authorization"] = f"Bearer {grant.token.access_token.get_secret_value()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        grant = self._current()
        self._attach(request, grant)
        response = yield request
        if response.status_code != 401:
            return
        logger.debug("API answered 401 for token version %d: refreshing once", grant.version)
        grant = self._fetch(grant.version)
        self._cached = grant
        self._attach(request, grant)
        yield request

    async def _acurrent(self) -> Grant:
        cached = self._cached
        if cached is not None and not self._manager._needs_refresh(cached):
            return cached
        async with self._async_locks.get():
            cached = self._cached  # another coroutine may have refreshed while we waited
            if cached is not None and not self._manager._needs_refresh(cached):
                return cached
            grant = await asyncio.to_thread(self._fetch, None)
            self._cached = grant
            return grant

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        grant = await self._acurrent()
        self._attach(request, grant)
        response = yield request
        if response.status_code != 401:
            return
        logger.debug("API answered 401 for token version %d: refreshing once", grant.version)
        async with self._async_locks.get():
            # the manager refreshes only if nobody stored a newer version than the rejected one
            grant = await asyncio.to_thread(self._fetch, grant.version)
            self._cached = grant
        self._attach(request, grant)
        yield request


class GrantAuth(_BearerAuth):
    """Authenticate as one customer, from that customer's grant in the vault.

    ``httpx.Client(auth=manager.auth(customer_id))``,
    ``NomosClient(auth=manager.auth(customer_id))`` or, in an asyncio host,
    ``AsyncNomosClient(auth=manager.auth(customer_id))``. Raises
    :class:`~wattplan.ReauthorizationRequiredError` when the customer must consent again.
    """

    def __init__(self, manager: TokenManager, customer_id: str) -> None:
        super().__init__(manager)
        self.customer_id = customer_id

    def _fetch(self, rejected_version: int | None) -> Grant:
        return self._manager.get_token(self.customer_id, rejected_version=rejected_version)

    def __repr__(self) -> str:
        return f"GrantAuth(client_id={self._manager.client_id!r}, customer_id={self.customer_id!r})"


class ClientCredentialsAuth(_BearerAuth):
    """Authenticate as the organisation itself (client-credentials grant, no customer)."""

    def __init__(self, manager: TokenManager, *, scope: str | None = None) -> None:
        super().__init__(manager)
        self.scope = scope

    def _fetch(self, rejected_version: int | None) -> Grant:
        return self._manager.organisation_token(scope=self.scope, rejected_version=rejected_version)

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(client_id={self._manager.client_id!r}, scope={self.scope!r})"
