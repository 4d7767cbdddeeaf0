"""Validate recorded sandbox responses against Nomos's official OpenAPI spec.

Paths the spec does not describe (the hosted sign-in pages, ``/_sandbox``, RFC 8414
metadata, RFC 7009 revocation, the signed file links) are skipped; everything else must
match an operation and its documented response.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse

from wattplan.sandbox import Exchange

SPEC_NAME = "openapi.2026-05-27.curie.json"
UNDOCUMENTED_PREFIXES = (
    "/_sandbox",
    "/oauth/login",
    "/oauth/verify",
    "/oauth/consent",
    "/oauth/revoke",
    "/.well-known/",
    "/files/",
)


@functools.cache
def spec() -> OpenAPI:
    text = resources.files("wattplan.sandbox").joinpath(SPEC_NAME).read_text("utf-8")
    return OpenAPI.from_dict(json.loads(text))


def documented(exchange: Exchange) -> bool:
    """False for paths the spec does not describe and for deliberately broken bodies."""
    if "x-sandbox-fault" in exchange.response_headers:
        return False
    return not exchange.path.startswith(UNDOCUMENTED_PREFIXES)


def problems(exchange: Exchange) -> list[str]:
    """What is wrong with one exchange according to the spec (empty: conformant)."""
    request = MockRequest(
        "https://api.nomos.energy",
        exchange.method.lower(),
        exchange.path,
        args=dict(parse_qsl(exchange.query, keep_blank_values=True)),
    )
    ctype = exchange.response_headers.get("content-type", "").split(";")[0] or None
    response = MockResponse(
        exchange.body,
        status_code=exchange.status_code,
        content_type=ctype or "application/json",
    )
    found: list[str] = []
    try:
        spec().validate_response(request, response)
    except (PathNotFound, OperationNotFound):
        # an unknown route: fine if the sandbox refused it the way Nomos does
        if exchange.status_code not in (401, 404, 405):
            found.append(f"{exchange.method} {exchange.path}: not in the spec")
    except Exception as exc:  # openapi-core raises a family of errors
        detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", [])) or str(exc)
        found.append(f"{exchange.method} {exchange.path} -> {exchange.status_code}: {detail}")
    return found


def assert_conformant(exchanges: Iterable[Exchange]) -> int:
    """Raise AssertionError listing every non-conformant response; return how many checked."""
    checked = 0
    errors: list[str] = []
    seen: set[tuple[object, ...]] = set()
    for exchange in list(exchanges):
        if not documented(exchange):
            continue
        checked += 1
        key = (
            exchange.method,
            exchange.path,
            exchange.status_code,
            exchange.response_headers.get("content-type"),
            exchange.body,
        )
        if key in seen:  # byte-identical answers need one check
            continue
        seen.add(key)
        errors.extend(problems(exchange))
    assert not errors, "sandbox responses off the official spec:\n" + "\n".join(errors[:20])
    return checked
