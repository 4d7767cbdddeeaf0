"""The planner's HTTP API (Starlette): plans out, device state in, health.

Closed by default (DESIGN §7): every route except ``/health`` needs a bearer key that
belongs to the customer in the path, or an auth hook supplied by the vendor. A key of one
customer can neither read nor change another's plan or state (403). Device-state bodies are
limited in size, nesting and number length, must arrive within a deadline, must be JSON
objects and are validated against the customer's devices before anything is stored; a
refusal names the problem (``key``) and changes nothing.

Failures are typed JSON, never a bare 500: the store unreachable, full or read-only gives
503 ``store_unavailable`` (the last plan is still served from memory, marked stale, where
this process has one); a device-state write that keeps losing to concurrent writers gives
409 ``conflict``; both with ``Retry-After``.

Routes
------
``GET  /health``                         liveness and counts (open, no customer data)
``GET  /openapi.json``, ``GET /docs``     the OpenAPI 3.1 document and a plain page (open)
``GET  /customers/{id}/plan``            the latest plan (DESIGN §4 JSON in ``plan``), with
                                         ``stale`` and ``age_seconds``
``GET  /customers/{id}/setpoint[?at=]``  the schedule row for now (or ``at``, ISO 8601)
``GET  /customers/{id}/status``          health of this customer
``GET  /customers/{id}/tariff[?format=]``  all-in prices from now on, contiguous, UTC:
                                         ``format=json`` (default) or ``format=evcc``
                                         (evcc's custom-tariff forecast rows)
``GET  /customers/{id}/device-state``    the stored device state
``POST /customers/{id}/device-state``    merge ``{"devices": {name: {field: value}}}``
``PUT  /customers/{id}/device-state``    replace the whole state with the body

A device's state may carry grid signals (§14a EnWG): ``"dimming": [{"start": ISO 8601,
"end": ISO 8601, "max_kw": 4.2}]`` caps its grid draw while valid; the list replaces the
device's earlier signals (``[]`` clears them), and a re-plan ignores signals that ended.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from wattplan._openapi import docs_page, openapi_document
from wattplan.exceptions import AccessError, ConflictError, PlannerError, ScenarioError, StoreError
from wattplan.planner._planner import Planner
from wattplan.planner._tariff import evcc_forecast
from wattplan.planner.store import dumps

__all__ = ["AuthHook", "BearerKeys", "create_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
BODY_TIMEOUT_S = 10.0
MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 64  # digits, sign, point and exponent of one JSON number
MAX_AT_DISTANCE = timedelta(days=366)  # ``setpoint?at=`` further away is a typo, not a plan
TARIFF_FORMATS = ("json", "evcc")
# the docs page is plain HTML with inline style: nothing else may load or run
DOCS_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}

AuthHook = Callable[[Request, str], "bool | Awaitable[bool]"]
"""``hook(request, customer_id) -> bool``: may this request act on this customer?"""


class BearerKeys:
    """Per-customer bearer keys (only their SHA-256 digests are kept in memory)."""

    def __init__(self, keys: Mapping[str, SecretStr | str] | None = None, **digests: str) -> None:
        self._digests: dict[str, bytes] = {}
        for customer_id, key in (keys or {}).items():
            value = key.get_secret_value() if isinstance(key, SecretStr) else key
            self.add_key(customer_id, value)
        for customer_id, digest in digests.items():
            self.add_digest(customer_id, digest)

    def __repr__(self) -> str:
        return f"BearerKeys(customers={len(self._digests)})"

    def add_key(self, customer_id: str, key: str) -> None:
        if len(key) < 16:
            raise PlannerError(
                f"the API key of customer {customer_id} is shorter than 16 characters"
            )
        self._digests[customer_id] = hashlib.sha256(key.encode()).digest()

    def add_digest(self, customer_id: str, sha256_hex: str) -> None:
        try:
            digest = bytes.fromhex(sha256_hex)
        except ValueError:
            raise PlannerError(f"api_key_sha256 of customer {customer_id} is not hex") from None
        if len(digest) != 32:
            raise PlannerError(f"api_key_sha256 of customer {customer_id} is not a SHA-256")
        self._digests[customer_id] = digest

    def __call__(self, request: Request, customer_id: str) -> bool:
        token = _bearer(request)
        expected = self._digests.get(customer_id)
        if token is None or expected is None:
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), expected)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="wattplan"'} if status == 401 else None
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status, media_type="application/json")


class _BadBodyError(Exception):
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


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body: UTF-8 JSON, nested at most 32 deep, numbers of sane length.

    The standard parser recurses once per level (8,000 levels: RecursionError) and turns
    a 5,000-digit integer into a ValueError; both are refused first, with the key named.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadBodyError(
            400, "malformed_json", "body", "the body is not valid JSON: not UTF-8"
        ) from None
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        raise _BadBodyError(
            400, "malformed_json", "body", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        )

    def number(kind: type[int] | type[float]) -> Callable[[str], Any]:
        return lambda s: _LongNumber(s) if len(s) > MAX_NUMBER_CHARS else kind(s)

    def constant(name: str) -> Any:
        raise _BadBodyError(400, "malformed_json", "body", f"the body is not valid JSON: {name}")

    try:
        value = json.loads(
            text, parse_int=number(int), parse_float=number(float), parse_constant=constant
        )
    except json.JSONDecodeError as exc:
        raise _BadBodyError(
            400, "malformed_json", "body", f"the body is not valid JSON: {exc.msg}"
        ) from None
    path = _long_number_path(value, "")
    if path is not None:
        raise _BadBodyError(
            422,
            "invalid_device_state",
            path,
            f"{path}: a number of more than {MAX_NUMBER_CHARS} characters",
        )
    return value


def _parse_at(raw: str, now: datetime) -> datetime:
    """``setpoint?at=``: ISO 8601 with an offset, within a year of now (ValueError)."""
    if len(raw) > 64:
        raise ValueError("longer than an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("must carry a UTC offset (e.g. +01:00 or Z)")
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if abs(moment - now) > MAX_AT_DISTANCE:
        raise ValueError("more than a year away from now")
    return moment


async def _store_unavailable(_request: Request, exc: Exception) -> Response:
    logger.warning("request refused: %s", exc)
    return JSONResponse(
        {
            "error": "store_unavailable",
            "message": "the plan store cannot be used right now; try again shortly",
        },
        503,
        headers={"Retry-After": "5"},
    )


async def _conflict(_request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "conflict", "message": str(exc)}, 409, headers={"Retry-After": "1"}
    )


async def _internal(_request: Request, _exc: Exception) -> Response:
    return JSONResponse(
        {"error": "internal_error", "message": "an unexpected error; see the server log"}, 500
    )


def create_app(
    planner: Planner,
    *,
    auth: AuthHook | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
    extra_health: Callable[[], Mapping[str, Any]] | None = None,
) -> Starlette:
    """The ASGI app. ``auth`` defaults to refusing everything: pass ``BearerKeys`` or a hook.

    ``body_timeout_s`` bounds the time a client may take to send a request body.
    """
    hook: AuthHook = auth if auth is not None else (lambda _req, _cid: False)

    async def authorize(request: Request) -> tuple[str, JSONResponse | None]:
        customer_id = request.path_params["customer_id"]
        allowed = hook(request, customer_id)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            if "authorization" not in request.headers:
                return customer_id, _error(401, "unauthorized", "a bearer key is required")
            return customer_id, _error(
                403, "forbidden", "these credentials may not access this customer"
            )
        if customer_id not in planner.customer_ids:
            return customer_id, _error(404, "not_found", "no such customer")
        return customer_id, None

    async def health(_request: Request) -> Response:
        body = await run_in_threadpool(planner.health)
        if extra_health is not None:
            body.update(extra_health())
        return _json(body)

    async def get_plan(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        try:
            doc = await run_in_threadpool(planner.plan_document, customer_id)
        except AccessError:
            return _error(404, "not_found", "no such customer")
        except StoreError:
            raise
        except PlannerError as exc:
            return _error(404, "no_plan", str(exc))
        return _json(doc)

    async def get_setpoint(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        at: datetime | None = None
        if "at" in request.query_params:
            try:
                at = _parse_at(request.query_params["at"], planner.clock.now())
            except ValueError as exc:
                return _error(400, "invalid_query", f"at: {exc}", key="at")
        try:
            body = await run_in_threadpool(lambda: planner.setpoint(customer_id, at=at))
        except StoreError:
            raise
        except PlannerError as exc:
            return _error(404, "no_setpoint", str(exc))
        return _json(body)

    async def get_status(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        status = await run_in_threadpool(planner.customer_status, customer_id)
        if status is None:
            return _error(404, "not_found", "no such customer")
        return _json(status)

    async def get_tariff(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        fmt = request.query_params.get("format", "json")
        if fmt not in TARIFF_FORMATS:
            return _error(
                400,
                "invalid_query",
                f"format: must be one of {', '.join(TARIFF_FORMATS)}",
                key="format",
            )
        try:
            body = await run_in_threadpool(planner.tariff, customer_id)
        except StoreError:
            raise
        except PlannerError as exc:
            return _error(404, "no_prices", str(exc))
        if fmt == "evcc":
            return _json(evcc_forecast(body["slots"]))
        return _json(body)

    async def device_state(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        if request.method == "GET":
            state = await run_in_threadpool(planner.store.device_state, customer_id)
            return _json(
                {"customer_id": customer_id, "version": state.version, "devices": state.devices}
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, "unsupported_media_type", "the body must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > max_body_bytes
            except ValueError:
                return _error(400, "invalid_header", "content-length is not a number")
            if too_big:
                return _error(413, "body_too_large", f"the body exceeds {max_body_bytes} bytes")
        raw = bytearray()
        # uvicorn bounds neither the time to send a body nor notices one that is shorter
        # than its Content-Length; this is the only route that reads a body, so the
        # deadline sits here rather than in a middleware for every route.
        try:
            with anyio.fail_after(body_timeout_s):
                async for chunk in request.stream():
                    raw.extend(chunk)
                    if len(raw) > max_body_bytes:
                        return _error(
                            413, "body_too_large", f"the body exceeds {max_body_bytes} bytes"
                        )
        except TimeoutError:
            logger.info("device-state body of %s late (over %g s)", customer_id, body_timeout_s)
            response = _error(
                408, "request_timeout", f"the body did not arrive within {body_timeout_s:g} s"
            )
            response.headers["Connection"] = "close"
            return response
        except ClientDisconnect:
            logger.info("device-state request of %s: client disconnected mid-body", customer_id)
            return _error(400, "client_disconnected", "the body ended early")
        try:
            body = parse_json_body(bytes(raw))
        except _BadBodyError as exc:
            return _error(exc.status, exc.error, exc.message, key=exc.key)
        replace = request.method == "PUT"
        try:
            state, significant = await run_in_threadpool(
                lambda: planner.update_device_state(customer_id, body, replace=replace)
            )
        except ScenarioError as exc:
            return _error(422, "invalid_device_state", str(exc), key=exc.key, reason=exc.reason)
        shortfalls = planner.foreseeable_shortfalls(customer_id, state.devices)
        return _json(
            {
                "customer_id": customer_id,
                "version": state.version,
                "devices": state.devices,
                "replan": significant,
                "shortfalls": shortfalls,
            }
        )

    document = openapi_document(planner=True)

    async def get_openapi(_request: Request) -> Response:
        return JSONResponse(document)

    async def get_docs(_request: Request) -> Response:
        return HTMLResponse(docs_page(document), headers=DOCS_HEADERS)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
        Route("/docs", get_docs, methods=["GET"]),
        Route("/customers/{customer_id}/plan", get_plan, methods=["GET"]),
        Route("/customers/{customer_id}/setpoint", get_setpoint, methods=["GET"]),
        Route("/customers/{customer_id}/status", get_status, methods=["GET"]),
        Route("/customers/{customer_id}/tariff", get_tariff, methods=["GET"]),
        Route(
            "/customers/{customer_id}/device-state",
            device_state,
            methods=["GET", "POST", "PUT"],
        ),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            StoreError: _store_unavailable,
            ConflictError: _conflict,
            Exception: _internal,
        },
    )
    app.state.openapi = document
    return app
