"""What every HTTP API wattplan serves shares: bearer keys, error bodies, bounded JSON bodies.

The planner's API (:mod:`wattplan.planner.api`) and the optimize API
(:mod:`wattplan.optimize_api`) read request bodies the same way: ``application/json`` only
(415), at most ``max_body_bytes`` whether declared or streamed (413), within a deadline
(408), nested at most 32 deep with numbers of sane length (400/422), and refuse with
``{"error", "message", "key"}`` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_CHARS",
    "ApiKeys",
    "BadBodyError",
    "bearer_token",
    "error_response",
    "parse_json_body",
    "read_body",
]

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 64  # digits, sign, point and exponent of one JSON number
MIN_KEY_CHARS = 16


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def error_response(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    """``{"error", "message", **extra}``; a 401 also says how to authenticate."""
    headers = {"WWW-Authenticate": 'Bearer realm="wattplan"'} if status == 401 else None
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


class ApiKeys:
    """A set of bearer keys for a route without a customer (only SHA-256 digests kept)."""

    def __init__(self, keys: Iterable[str] = (), *, digests: Iterable[str] = ()) -> None:
        self._digests: list[bytes] = []
        for key in keys:
            if len(key) < MIN_KEY_CHARS:
                raise ValueError(f"an API key is shorter than {MIN_KEY_CHARS} characters")
            self._digests.append(hashlib.sha256(key.encode()).digest())
        for digest in digests:
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                raise ValueError("an API key digest is not hex") from None
            if len(raw) != 32:
                raise ValueError("an API key digest is not a SHA-256")
            self._digests.append(raw)

    def __repr__(self) -> str:
        return f"ApiKeys(keys={len(self._digests)})"

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __call__(self, request: Request) -> bool:
        token = bearer_token(request)
        if token is None:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        # compare with every key, not stopping at a match: the time says nothing
        found = False
        for expected in self._digests:
            found |= hmac.compare_digest(digest, expected)
        return found


class BadBodyError(Exception):
    def __init__(self, status: int, error: str, key: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.key, self.message = status, error, key, message


class _LongNumber(str):
    """A JSON number too long to convert (Python refuses ints of over 4,300 digits)."""


def _long_number_path(value: Any, path: str) -> str | None:
    if isinstance(value, _LongNumber):
        return path or "body"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _long_number_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def parse_json_body(raw: bytes, *, invalid_error: str = "invalid_body") -> Any:
    """Decode a request body: UTF-8 JSON, nested at most 32 deep, numbers of sane length.

    The standard parser recurses once per level (8,000 levels: RecursionError) and turns
    a 5,000-digit integer into a ValueError; both are refused first, with the key named.
    A too-long number is a 422 with ``invalid_error`` as its ``error``.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBodyError(
            400, "malformed_json", "body", "the body is not valid JSON: not UTF-8"
        ) from None
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        raise BadBodyError(
            400, "malformed_json", "body", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        )

    def number(kind: type[int] | type[float]) -> Callable[[str], Any]:
        return lambda s: _LongNumber(s) if len(s) > MAX_NUMBER_CHARS else kind(s)

    def constant(name: str) -> Any:
        raise BadBodyError(400, "malformed_json", "body", f"the body is not valid JSON: {name}")

    try:
        value = json.loads(
            text, parse_int=number(int), parse_float=number(float), parse_constant=constant
        )
    except json.JSONDecodeError as exc:
        raise BadBodyError(
            400, "malformed_json", "body", f"the body is not valid JSON: {exc.msg}"
        ) from None
    path = _long_number_path(value, "")
    if path is not None:
        raise BadBodyError(
            422,
            invalid_error,
            path,
            f"{path}: a number of more than {MAX_NUMBER_CHARS} characters",
        )
    return value


async def read_body(
    request: Request, *, max_body_bytes: int, body_timeout_s: float, what: str
) -> bytes | Response:
    """The raw body of a JSON request, or the refusal to send (415, 400, 413, 408).

    uvicorn bounds neither the time to send a body nor notices one that is shorter than
    its Content-Length, so the deadline is kept here; a body longer than declared is cut
    off at ``max_body_bytes`` all the same.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return error_response(
            415, "unsupported_media_type", "the body must be application/json", key="content-type"
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > max_body_bytes
        except ValueError:
            return error_response(
                400, "invalid_header", "content-length is not a number", key="content-length"
            )
        if too_big:
            return error_response(
                413, "body_too_large", f"the body exceeds {max_body_bytes} bytes", key="body"
            )
    raw = bytearray()
    try:
        with anyio.fail_after(body_timeout_s):
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > max_body_bytes:
                    return error_response(
                        413,
                        "body_too_large",
                        f"the body exceeds {max_body_bytes} bytes",
                        key="body",
                    )
    except TimeoutError:
        logger.info("%s: body late (over %g s)", what, body_timeout_s)
        response = error_response(
            408, "request_timeout", f"the body did not arrive within {body_timeout_s:g} s"
        )
        response.headers["Connection"] = "close"
        return response
    except ClientDisconnect:
        logger.info("%s: client disconnected mid-body", what)
        return error_response(400, "client_disconnected", "the body ended early")
    return bytes(raw)
