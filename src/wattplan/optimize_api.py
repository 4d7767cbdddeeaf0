"""Stateless optimize over HTTP: ``POST /optimize`` takes a scenario, returns the plan.

For a HEMS that is not written in Python and only wants the optimizer: the body is a
scenario as JSON, the same schema as the YAML scenario files (``wattplan schema``) with
every series inline (``{"values": [...]}``), and the answer is the plan JSON of
``wattplan plan --json`` (DESIGN §4). Nothing is stored and no customer is involved.

``wattplan serve`` runs this app alone; the planner's app (``wattplan run``) mounts the same
route. Closed like every API wattplan serves: a bearer key (401 without, 403 with a wrong
one). A body is ``application/json`` (415), at most ``max_body_bytes`` (413), sent within
``body_timeout_s`` (408), valid JSON (400); a scenario that does not validate gets 422 with
``key`` and ``reason`` naming the field (``devices[0].max_power_kw``). Scenarios from the
network never name files (``file``/``spot_file``: 422), may span at most
``max_horizon_days``, and are solved with at most ``max_solve_seconds`` and one thread,
``max_concurrent`` at a time; beyond that the answer is 503 ``busy`` with ``Retry-After``.

A plan that cannot be made is still a 200 with the plan JSON: its ``status``
(``infeasible``, ``error``) and ``message`` say why, as ``wattplan plan --json`` does.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from wattplan._extras import requires

with requires("planner", feature="wattplan.optimize_api"):
    import anyio
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from wattplan._api import ApiKeys, BadBodyError, error_response, parse_json_body, read_body
from wattplan._openapi import docs_page, openapi_document
from wattplan.exceptions import ScenarioError

__all__ = ["OptimizeLimits", "RequestAuth", "create_optimize_app", "optimize_route"]

logger = logging.getLogger(__name__)

RequestAuth = Callable[[Request], "bool | Awaitable[bool]"]
"""``auth(request) -> bool``: may this request use the optimizer?"""

DOCS_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
_FILE_KEYS = ("file", "spot_file")


class OptimizeLimits:
    """What one request may cost the server."""

    def __init__(
        self,
        *,
        max_body_bytes: int = 4 * 1024 * 1024,
        body_timeout_s: float = 30.0,
        max_horizon_days: float = 14.0,
        max_solve_seconds: float = 30.0,
        max_concurrent: int = 2,
    ) -> None:
        if max_body_bytes <= 0 or body_timeout_s <= 0 or max_horizon_days <= 0:
            raise ValueError("the optimize limits must be positive")
        if max_solve_seconds <= 0 or max_concurrent < 1:
            raise ValueError("the optimize limits must be positive")
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_horizon = timedelta(days=max_horizon_days)
        self.max_solve_seconds = max_solve_seconds
        self.max_concurrent = max_concurrent

    def __repr__(self) -> str:
        return (
            f"OptimizeLimits(max_body_bytes={self.max_body_bytes}, "
            f"max_horizon={self.max_horizon}, max_solve_seconds={self.max_solve_seconds}, "
            f"max_concurrent={self.max_concurrent})"
        )


def _file_key(value: Any, path: str) -> str | None:
    """The dotted path of the first ``file``/``spot_file`` key with a value, if any."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if key in _FILE_KEYS and item is not None:
                return here
            found = _file_key(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _file_key(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _invalid(key: str, reason: str) -> JSONResponse:
    return error_response(422, "invalid_scenario", f"{key}: {reason}", key=key, reason=reason)


def _solve(body: dict[str, Any], limits: OptimizeLimits) -> dict[str, Any] | JSONResponse:
    """Validate and solve in a worker thread (validation of a large scenario is work too)."""
    from wattplan.optimizer import optimize
    from wattplan.optimizer._scenario import SolverOptions, scenario_from_dict

    try:
        scenario = scenario_from_dict(body)
    except ScenarioError as exc:
        return _invalid(exc.key or "scenario", exc.reason or str(exc))
    if scenario.end - scenario.start > limits.max_horizon:
        days = limits.max_horizon.total_seconds() / 86_400
        return _invalid("end", f"the horizon is longer than this server's {days:g} days")
    wanted = scenario.solver
    solver = SolverOptions(
        name=wanted.name,
        time_limit_s=min(wanted.time_limit_s, limits.max_solve_seconds),
        mip_gap=wanted.mip_gap,
        threads=1,
    )
    try:
        plan = optimize(scenario, solver=solver)
    except ScenarioError as exc:
        return _invalid(exc.key or "scenario", exc.reason or str(exc))
    return plan.to_dict()


def optimize_route(auth: RequestAuth, limits: OptimizeLimits | None = None) -> Route:
    """The ``POST /optimize`` route, to add to any Starlette app."""
    limits = limits or OptimizeLimits()
    limiter: anyio.CapacityLimiter | None = None

    async def post_optimize(request: Request) -> Response:
        nonlocal limiter
        allowed = auth(request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            if "authorization" not in request.headers:
                return error_response(401, "unauthorized", "a bearer key is required")
            return error_response(403, "forbidden", "these credentials may not use /optimize")
        raw = await read_body(
            request,
            max_body_bytes=limits.max_body_bytes,
            body_timeout_s=limits.body_timeout_s,
            what="optimize",
        )
        if isinstance(raw, Response):
            return raw
        try:
            body = parse_json_body(raw, invalid_error="invalid_scenario")
        except BadBodyError as exc:
            return error_response(exc.status, exc.error, exc.message, key=exc.key)
        if not isinstance(body, dict):
            return _invalid("scenario", "must be a JSON object")
        named = _file_key(body, "")
        if named is not None:
            return _invalid(named, "files are not read over HTTP: give the series inline")
        if limiter is None:  # made in the server's event loop
            limiter = anyio.CapacityLimiter(limits.max_concurrent)
        if limiter.available_tokens < 1:
            return JSONResponse(
                {"error": "busy", "message": "every solver slot is taken; try again shortly"},
                503,
                headers={"Retry-After": str(max(1, math.ceil(limits.max_solve_seconds / 2)))},
            )
        result = await anyio.to_thread.run_sync(_solve, body, limits, limiter=limiter)
        if isinstance(result, Response):
            return result
        return Response(
            json.dumps(result, allow_nan=False, default=str), media_type="application/json"
        )

    return Route("/optimize", post_optimize, methods=["POST"])


async def _internal(_request: Request, exc: Exception) -> Response:
    logger.error("optimize request failed", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error; see the server log")


def create_optimize_app(
    *, auth: RequestAuth | ApiKeys | None = None, limits: OptimizeLimits | None = None
) -> Starlette:
    """The optimize API alone (``wattplan serve``): ``/optimize``, ``/health``, the docs.

    ``auth`` defaults to refusing everything: pass :class:`~wattplan._api.ApiKeys` or a hook.
    """
    hook: RequestAuth = auth if auth is not None else (lambda _request: False)
    document = openapi_document(planner=False, optimize=True, title="wattplan optimize")

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def get_openapi(_request: Request) -> Response:
        return JSONResponse(document)

    async def get_docs(_request: Request) -> Response:
        return HTMLResponse(docs_page(document), headers=DOCS_HEADERS)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", get_openapi, methods=["GET"]),
            Route("/docs", get_docs, methods=["GET"]),
            optimize_route(hook, limits),
        ],
        exception_handlers={Exception: _internal},
    )
    app.state.openapi = document
    return app
