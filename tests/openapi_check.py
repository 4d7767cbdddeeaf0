"""Validate every response of wattplan's own HTTP APIs against the document they serve.

``recording()`` patches ``Starlette.__call__`` so that every app carrying
``app.state.openapi`` (the planner's API and the optimize API, however a test builds and
serves them) records each exchange; ``problems()`` checks one exchange against that app's
own OpenAPI document with openapi-core. ``tests/conftest.py`` does this for every test, so
a response that drifts from the document fails the test that received it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from starlette.applications import Starlette


@dataclass
class Exchange:
    document: dict[str, Any] = field(repr=False)
    method: str
    path: str
    query: str
    status_code: int = 0
    content_type: str = ""
    body: bytes = b""


_SPECS: dict[int, tuple[dict[str, Any], OpenAPI]] = {}


def spec_of(document: dict[str, Any]) -> OpenAPI:
    cached = _SPECS.get(id(document))
    if cached is None or cached[0] is not document:
        cached = (document, OpenAPI.from_dict(json.loads(json.dumps(document))))
        _SPECS[id(document)] = cached
    return cached[1]


def problems(exchange: Exchange) -> list[str]:
    """What is wrong with one exchange according to its app's document (empty: fine)."""
    request = MockRequest(
        "http://127.0.0.1",
        exchange.method.lower(),
        exchange.path,
        args=dict(parse_qsl(exchange.query, keep_blank_values=True)),
    )
    response = MockResponse(
        exchange.body,
        status_code=exchange.status_code,
        content_type=exchange.content_type or "application/octet-stream",
    )
    label = f"{exchange.method} {exchange.path} -> {exchange.status_code}"
    try:
        spec_of(exchange.document).validate_response(request, response)
    except (PathNotFound, OperationNotFound):
        # Starlette's own answer to an unknown route or method (not an API response)
        if exchange.status_code not in (404, 405):
            return [f"{label}: route not in the document"]
    except Exception as exc:  # openapi-core raises a family of errors
        detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", [])) or repr(exc)
        return [f"{label}: {detail}"]
    return []


@contextmanager
def recording() -> Iterator[list[Exchange]]:
    """Record every exchange of every app with ``state.openapi`` until the block ends."""
    exchanges: list[Exchange] = []
    original = Starlette.__call__

    async def call(self: Starlette, scope: Any, receive: Any, send: Any) -> None:
        document = getattr(self.state, "openapi", None)
        if document is None or scope["type"] != "http" or scope["method"] == "HEAD":
            await original(self, scope, receive, send)
            return
        exchange = Exchange(
            document=document,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        exchanges.append(exchange)

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                exchange.status_code = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        exchange.content_type = value.decode("latin-1").split(";")[0].strip()
            elif message["type"] == "http.response.body":
                exchange.body += message.get("body", b"")
            await send(message)

        await original(self, scope, receive, recording_send)

    Starlette.__call__ = call  # type: ignore[method-assign]
    try:
        yield exchanges
    finally:
        Starlette.__call__ = original  # type: ignore[method-assign]


def assert_valid(exchanges: list[Exchange]) -> int:
    """Raise AssertionError listing every response off its document; return how many."""
    errors: list[str] = []
    seen: set[tuple[object, ...]] = set()
    checked = 0
    for exchange in list(exchanges):
        if exchange.status_code == 0:  # the client went away before a response started
            continue
        checked += 1
        key = (id(exchange.document), exchange.method, exchange.path, exchange.query,
               exchange.status_code, exchange.content_type, exchange.body)  # fmt: skip
        if key in seen:
            continue
        seen.add(key)
        errors.extend(problems(exchange))
    assert not errors, "responses off the served OpenAPI document:\n" + "\n".join(errors[:20])
    return checked
