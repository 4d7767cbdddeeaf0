"""``httpx.Auth`` adapters: a customer's grant, or the organisation's own token.

Both attach ``Authorization: Bearer …``, refresh ahead of expiry (the manager's
``refresh_margin``) and, when the API still answers 401, refresh once under the lock and
retry once. They are synchronous (``httpx.Client``) and thread-safe; many threads and
processes may share one grant.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Generator

import httpx

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

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError(f"{type(self).__name__} is synchronous: use it with httpx.Client")
        yield request  # type: ignore[unreachable]  # (makes this an async generator)


class GrantAuth(_BearerAuth):
    """Authenticate as one customer, from that customer's grant in the vault.

    ``httpx.Client(auth=manager.auth(customer_id))`` or
    ``NomosClient(auth=manager.auth(customer_id))``. Raises
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
