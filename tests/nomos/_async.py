"""Drive an ``AsyncNomosClient`` from the sync client's tests, on an event loop of its own.

``SyncDriven(**kwargs)`` takes ``NomosClient``'s arguments (a plain ``sleep`` callable is
wrapped into a coroutine), builds an ``AsyncNomosClient`` with them and runs every call on
one event loop, so that the sync tests check the async client's behaviour as they stand.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from wattplan.nomos import AsyncNomosClient


class SyncDriven:
    def __init__(self, **kwargs: Any) -> None:
        sleep: Callable[[float], object] | None = kwargs.pop("sleep", None)
        if sleep is not None:

            async def _sleep(seconds: float) -> None:
                sleep(seconds)

            kwargs["sleep"] = _sleep
        transport = kwargs.pop("transport", None)
        if transport is not None:  # an httpx.MockTransport serves sync and async clients
            kwargs["transport"] = transport
        self._loop = asyncio.new_event_loop()
        self.client = AsyncNomosClient(**kwargs)

    def run(self, awaitable: Any) -> Any:
        return self._loop.run_until_complete(awaitable)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.client, name)
        if inspect.iscoroutinefunction(value):
            return lambda *a, **kw: self.run(value(*a, **kw))
        if inspect.isasyncgenfunction(value):

            async def collect(*a: Any, **kw: Any) -> list[Any]:
                return [item async for item in value(*a, **kw)]

            return lambda *a, **kw: self.run(collect(*a, **kw))
        return value

    def __repr__(self) -> str:
        return repr(self.client)

    def close(self) -> None:
        if not self._loop.is_closed():
            self.run(self.client.aclose())
            self._loop.close()

    def __enter__(self) -> SyncDriven:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
