"""The planner's HTTP API (Starlette): plans out, device state in, health.

Closed by default (DESIGN §7): every route except ``/health`` needs a bearer key that
belongs to the customer in the path, or an auth hook supplied by the vendor. A key of one
customer can neither read nor change another's plan or state (403). Device-state bodies are
limited in size, must be JSON objects and are validated against the customer's devices
before anything is stored; a refusal names the problem and changes nothing.

Routes
------
``GET  /health``                         liveness and counts (open, no customer data)
``GET  /customers/{id}/plan``            the latest plan (DESIGN §4 JSON in ``plan``), with
                                         ``stale`` and ``age_seconds``
``GET  /customers/{id}/setpoint[?at=]``  the schedule row for now (or ``at``, ISO 8601)
``GET  /customers/{id}/status``          health of this customer
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
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wattplan.exceptions import AccessError, PlannerError, ScenarioError
from wattplan.planner._planner import Planner
from wattplan.planner._timing import require_aware
from wattplan.planner.store import CustomerHealth, dumps

__all__ = ["AuthHook", "BearerKeys", "create_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024

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


def create_app(
    planner: Planner,
    *,
    auth: AuthHook | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_health: Callable[[], Mapping[str, Any]] | None = None,
) -> Starlette:
    """The ASGI app. ``auth`` defaults to refusing everything: pass ``BearerKeys`` or a hook."""
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
        statuses = await run_in_threadpool(planner.store.statuses)
        known = set(planner.customer_ids)
        mine = [s for s in statuses if s.customer_id in known]
        counts = {h.value: 0 for h in CustomerHealth}
        for s in mine:
            counts[s.health.value] += 1
        stale = sum(1 for s in mine if s.stale())
        failing = counts["error"] + counts["reauthorization_required"]
        body: dict[str, Any] = {
            "status": "ok" if failing == 0 else "degraded",
            "customers": len(mine),
            "health": counts,
            "stale_plans": stale,
        }
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
                at = require_aware(datetime.fromisoformat(request.query_params["at"]), "at")
            except ValueError as exc:
                return _error(400, "invalid_query", f"at: {exc}")
        try:
            body = await run_in_threadpool(lambda: planner.setpoint(customer_id, at=at))
        except PlannerError as exc:
            return _error(404, "no_setpoint", str(exc))
        return _json(body)

    async def get_status(request: Request) -> Response:
        customer_id, refused = await authorize(request)
        if refused is not None:
            return refused
        status = await run_in_threadpool(planner.store.status, customer_id)
        if status is None:
            return _error(404, "not_found", "no such customer")
        return _json(status.as_dict(planner.clock.now()))

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
        async for chunk in request.stream():
            raw.extend(chunk)
            if len(raw) > max_body_bytes:
                return _error(413, "body_too_large", f"the body exceeds {max_body_bytes} bytes")
        try:
            body = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            return _error(400, "malformed_json", f"the body is not valid JSON: {reason}")
        replace = request.method == "PUT"
        try:
            state, significant = await run_in_threadpool(
                lambda: planner.update_device_state(customer_id, body, replace=replace)
            )
        except ScenarioError as exc:
            return _error(422, "invalid_device_state", str(exc), key=exc.key, reason=exc.reason)
        return _json(
            {
                "customer_id": customer_id,
                "version": state.version,
                "devices": state.devices,
                "replan": significant,
            }
        )

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/customers/{customer_id}/plan", get_plan, methods=["GET"]),
        Route("/customers/{customer_id}/setpoint", get_setpoint, methods=["GET"]),
        Route("/customers/{customer_id}/status", get_status, methods=["GET"]),
        Route(
            "/customers/{customer_id}/device-state",
            device_state,
            methods=["GET", "POST", "PUT"],
        ),
    ]
    return Starlette(routes=routes)
