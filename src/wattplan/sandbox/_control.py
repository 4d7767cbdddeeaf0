"""Dev-only control endpoints under ``/_sandbox`` (present only if the config enables them).

``GET  /_sandbox/state``                 counters, faults, clock
``POST /_sandbox/clock``                 ``{"now": ISO, "ticking": false}`` | ``{"advance_s": N}`` |
                                         ``{"real_time": true}``
``GET|POST /_sandbox/faults``            read / update fault switches (partial JSON)
``GET  /_sandbox/one-time-code?email=``  the last six-digit sign-in code sent to an address
``POST /_sandbox/auto-approve``          ``{"email": "demo@example.com"}`` (``null`` to stop):
                                         ``/oauth/authorize`` then signs that customer in
                                         and consents at once
``POST /_sandbox/authorize``             headless consent: the authorize parameters plus
                                         ``email`` and ``decision`` (allow|deny) →
                                         ``{"redirect_to": ...}``
``GET  /_sandbox/grants``                grants (no tokens), filters ``email``, ``client_id``
``POST /_sandbox/grants/revoke``         ``{"client_id", "email"}``: the customer withdraws
                                         one app's access
``POST /_sandbox/reset-counters``
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wattplan.sandbox._config import Faults
from wattplan.sandbox._errors import api_error
from wattplan.sandbox._oauth_store import OAuthProblem, redirect_uri_allowed
from wattplan.sandbox._state import SandboxState

__all__ = ["control_routes"]


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as exc:
        raise ValueError("body must be JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def get_state(request: Request) -> Response:
    return JSONResponse(_state(request).snapshot())


async def set_clock(request: Request) -> Response:
    sandbox = _state(request)
    try:
        data = await _json(request)
        if data.get("real_time"):
            sandbox.clock.resume_real_time()
        elif "advance_s" in data:
            sandbox.clock.advance(timedelta(seconds=float(data["advance_s"])))
        elif "now" in data:
            when = datetime.fromisoformat(str(data["now"]).replace("Z", "+00:00"))
            sandbox.clock.set(when, ticking=bool(data.get("ticking", False)))
        else:
            raise ValueError("give now, advance_s or real_time")
    except (ValueError, TypeError) as exc:
        return api_error(400, str(exc))
    return JSONResponse({"now": sandbox.clock.now().isoformat(), "frozen": sandbox.clock.frozen})


async def faults(request: Request) -> Response:
    sandbox = _state(request)
    if request.method == "POST":
        names = {f.name for f in dataclasses.fields(Faults)}
        try:
            data = await _json(request)
            unknown = set(data) - names
            if unknown:
                raise ValueError(f"unknown fault switch: {sorted(unknown)[0]}")
            for key, value in data.items():
                _check_fault(key, value)
            with sandbox.lock:
                for key, value in data.items():
                    setattr(sandbox.faults, key, value)
        except ValueError as exc:
            return api_error(400, str(exc))
    return JSONResponse(sandbox.faults.to_dict())


_MALFORMED_MODES = (None, "json", "content_type", "truncated")


def _check_fault(key: str, value: Any) -> None:
    """Reject values of the wrong kind before they reach a running sandbox."""
    if key == "malformed":
        if value not in _MALFORMED_MODES:
            raise ValueError(f"malformed: one of {_MALFORMED_MODES}")
        return
    if key == "rate_limit_per_s" and value is None:
        return
    default = getattr(Faults(), key)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if not ok:
        raise ValueError(f"{key}: expected a non-negative {type(default).__name__}")


async def one_time_code(request: Request) -> Response:
    email = request.query_params.get("email", "")
    found = _state(request).oauth.last_one_time_code(email)
    if found is None:
        return api_error(404, "no code was sent to this address")
    code, expires = found
    return JSONResponse(
        {"email": email.lower(), "code": code, "expires_at": expires.isoformat()},
        headers={"Cache-Control": "no-store"},
    )


async def auto_approve(request: Request) -> Response:
    store = _state(request).oauth
    try:
        data = await _json(request)
    except ValueError as exc:
        return api_error(400, str(exc))
    email = data.get("email")
    if email is not None and store.customer_by_email(str(email)) is None:
        return api_error(404, "no customer with this e-mail")
    store.auto_approve_email = str(email) if email else None
    return JSONResponse({"auto_approve_email": store.auto_approve_email})


async def headless_authorize(request: Request) -> Response:
    sandbox = _state(request)
    store = sandbox.oauth
    try:
        data = await _json(request)
    except ValueError as exc:
        return api_error(400, str(exc))
    client = store.client(data.get("client_id"))
    redirect_uri = str(data.get("redirect_uri", ""))
    if client is None or not redirect_uri_allowed(
        client, redirect_uri, loopback_any_port=sandbox.config.loopback_any_port
    ):
        return api_error(400, "unknown client_id or unregistered redirect_uri")
    state = data.get("state")
    sep = "&" if "?" in redirect_uri else "?"

    def target(params: dict[str, Any]) -> Response:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return JSONResponse({"redirect_to": f"{redirect_uri}{sep}{query}"})

    try:
        req = store.start_request(
            client=client,
            redirect_uri=redirect_uri,
            scope=data.get("scope"),
            state=state,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            flow_type=data.get("flow_type"),
        )
    except OAuthProblem as problem:
        return target({"error": problem.error, "state": state})
    if not store.sign_in_directly(req, str(data.get("email", ""))):
        return api_error(404, "no customer with this e-mail")
    if data.get("decision", "allow") != "allow":
        store.deny(req)
        return target({"error": "access_denied", "state": state})
    return target({"code": store.issue_code(req), "state": state})


async def grants(request: Request) -> Response:
    store = _state(request).oauth
    email = request.query_params.get("email")
    client_id = request.query_params.get("client_id")
    customer = store.customer_by_email(email) if email else None
    items = [
        g.to_public_dict()
        for g in store.grants()
        if (email is None or (customer is not None and g.customer_id == customer.id))
        and (client_id is None or g.client_id == client_id)
    ]
    return JSONResponse({"items": items})


async def revoke_grants(request: Request) -> Response:
    store = _state(request).oauth
    try:
        data = await _json(request)
    except ValueError as exc:
        return api_error(400, str(exc))
    customer = store.customer_by_email(str(data.get("email", "")))
    if customer is None:
        return api_error(404, "no customer with this e-mail")
    n = store.revoke_customer_grants(str(data.get("client_id", "")), customer.id)
    return JSONResponse({"revoked": n})


async def reset_counters(request: Request) -> Response:
    _state(request).reset_counters()
    return JSONResponse({"ok": True})


def control_routes() -> list[Route]:
    return [
        Route("/_sandbox/state", get_state, methods=["GET"]),
        Route("/_sandbox/clock", set_clock, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST"]),
        Route("/_sandbox/one-time-code", one_time_code, methods=["GET"]),
        Route("/_sandbox/auto-approve", auto_approve, methods=["POST"]),
        Route("/_sandbox/authorize", headless_authorize, methods=["POST"]),
        Route("/_sandbox/grants", grants, methods=["GET"]),
        Route("/_sandbox/grants/revoke", revoke_grants, methods=["POST"]),
        Route("/_sandbox/reset-counters", reset_counters, methods=["POST"]),
    ]
