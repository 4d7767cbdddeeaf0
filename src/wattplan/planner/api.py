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
``POST /optimize``                       a scenario in, its plan out, nothing stored
                                         (:mod:`wattplan.optimize_api`)

A device's state may carry grid signals (§14a EnWG): ``"dimming": [{"start": ISO 8601,
"end": ISO 8601, "max_kw": 4.2}]`` caps its grid draw while valid; the list replaces the
device's earlier signals (``[]`` clears them), and a re-plan ignores signals that ended.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from wattplan._api import BadBodyError, bearer_token, parse_json_body, read_body
from wattplan._api import error_response as _error
from wattplan._openapi import docs_page, openapi_document
from wattplan.exceptions import AccessError, ConflictError, PlannerError, ScenarioError, StoreError
from wattplan.optimize_api import OptimizeLimits, RequestAuth, optimize_route
from wattplan.planner._planner import Planner
from wattplan.planner._tariff import evcc_forecast
from wattplan.planner.store import dumps

__all__ = ["AuthHook", "BearerKeys", "create_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
BODY_TIMEOUT_S = 10.0
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

    def any_customer(self, request: Request) -> bool:
        """Does the request carry the key of some customer (for routes without one)?"""
        token = bearer_token(request)
        if token is None:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        found = False
        for expected in self._digests.values():  # no early exit: the time says nothing
            found |= hmac.compare_digest(digest, expected)
        return found

    def __call__(self, request: Request, customer_id: str) -> bool:
        token = bearer_token(request)
        expected = self._digests.get(customer_id)
        if token is None or expected is None:
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), expected)


def _nobody(_request: Request) -> bool:
    return False


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status, media_type="application/json")


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
    optimize_auth: RequestAuth | None = None,
    optimize_limits: OptimizeLimits | None = None,
) -> Starlette:
    """The ASGI app. ``auth`` defaults to refusing everything: pass ``BearerKeys`` or a hook.

    ``body_timeout_s`` bounds the time a client may take to send a request body.
    ``POST /optimize`` (:mod:`wattplan.optimize_api`) is mounted too: ``optimize_auth``
    decides who may use it; by default any customer's key when ``auth`` is ``BearerKeys``,
    nobody otherwise.
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
        raw = await read_body(
            request,
            max_body_bytes=max_body_bytes,
            body_timeout_s=body_timeout_s,
            what=f"device-state of {customer_id}",
        )
        if isinstance(raw, Response):
            return raw
        try:
            body = parse_json_body(raw, invalid_error="invalid_device_state")
        except BadBodyError as exc:
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

    if optimize_auth is None:
        optimize_auth = auth.any_customer if isinstance(auth, BearerKeys) else _nobody
    document = openapi_document(planner=True, optimize=True)

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
        optimize_route(optimize_auth, optimize_limits),
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
