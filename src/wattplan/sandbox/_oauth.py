"""HTTP side of the sandbox's OAuth 2.0 authorization server.

Routes
------
``GET /oauth/authorize``
    Validates ``client_id`` and the byte-identical ``redirect_uri`` (a bad one gives a 400
    page and never a redirect), then the rest (errors go back on the redirect with the
    ``state``), and sends the browser to the hosted pages.
``GET|POST /oauth/login``, ``/oauth/verify``, ``/oauth/consent``
    The hosted pages: e-mail → six-digit code → consent (allow/deny).
``POST /oauth/token``
    ``authorization_code``, ``refresh_token``, ``client_credentials``; Basic client auth or
    ``client_id``/``client_secret`` in the body; form or JSON bodies.
``POST /oauth/revoke``
    RFC 7009 revocation (client-authenticated) of the grant behind a token.
``GET /.well-known/oauth-authorization-server``
    RFC 8414 metadata.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from wattplan._basic_auth import parse_basic_auth
from wattplan.sandbox._errors import api_error, oauth_error
from wattplan.sandbox._oauth_store import (
    READ,
    WRITE,
    AuthorizationRequest,
    OAuthProblem,
    redirect_uri_allowed,
)
from wattplan.sandbox._state import SandboxState

__all__ = ["oauth_routes"]

MAX_TOKEN_BODY_BYTES = 16_384
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
}
_SCOPE_TEXT = {
    READ: "your subscriptions, prices, consumption and invoices",
    WRITE: "change your data",
}
_AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "flow_type",
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("wattplan.sandbox", "templates"),
    autoescape=jinja2.select_autoescape(default=True),
)


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


def _message(title: str, message: str, status_code: int = 400) -> HTMLResponse:
    return _page("message.html", status_code, title=title, message=message)


def redirect_with(uri: str, params: Mapping[str, str | None], *, status_code: int) -> Response:
    """Redirect to ``uri`` with ``params`` added to its query (None values dropped)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(
        f"{uri}{sep}{query}", status_code=status_code, headers={"Cache-Control": "no-store"}
    )


def _error_redirect(req_uri: str, state: str | None, problem: OAuthProblem, code: int) -> Response:
    return redirect_with(
        req_uri,
        {"error": problem.error, "error_description": problem.description, "state": state},
        status_code=code,
    )


def _code_redirect(sandbox: SandboxState, req: AuthorizationRequest, status_code: int) -> Response:
    code = sandbox.oauth.issue_code(req)
    return redirect_with(
        req.redirect_uri, {"code": code, "state": req.state}, status_code=status_code
    )


async def authorize(request: Request) -> Response:
    sandbox = _state(request)
    store = sandbox.oauth
    q = request.query_params
    client = store.client(q.get("client_id"))
    if client is None:
        return api_error(400, "unknown client_id")
    redirect_uri = q.get("redirect_uri") or ""
    if not redirect_uri_allowed(
        client, redirect_uri, loopback_any_port=sandbox.config.loopback_any_port
    ):
        return api_error(400, "redirect_uri is not registered for this client")
    state = q.get("state")
    repeated = [p for p in _AUTHORIZE_PARAMS if len(q.getlist(p)) > 1]
    if repeated:
        problem = OAuthProblem("invalid_request", f"parameter repeated: {repeated[0]}")
        return _error_redirect(redirect_uri, state, problem, 302)
    if q.get("response_type") != "code":
        problem = OAuthProblem("unsupported_response_type", "response_type must be code")
        return _error_redirect(redirect_uri, state, problem, 302)
    try:
        req = store.start_request(
            client=client,
            redirect_uri=redirect_uri,
            scope=q.get("scope"),
            state=state,
            code_challenge=q.get("code_challenge"),
            code_challenge_method=q.get("code_challenge_method"),
            flow_type=q.get("flow_type"),
        )
    except OAuthProblem as problem:
        return _error_redirect(redirect_uri, state, problem, 302)
    email = store.auto_approve_email
    if email and store.sign_in_directly(req, email):
        return _code_redirect(sandbox, req, 302)
    return RedirectResponse(
        f"/oauth/login?{urlencode({'request': req.id})}",
        status_code=302,
        headers={"Cache-Control": "no-store"},
    )


def _expired() -> HTMLResponse:
    return _message(
        "Sign-in expired",
        "This sign-in is unknown, finished or expired. Go back to the app and start again.",
    )


async def login(request: Request) -> Response:
    store = _state(request).oauth
    if request.method == "GET":
        req = store.request(request.query_params.get("request"))
        if req is None:
            return _expired()
        return _page(
            "login.html", request_id=req.id, client_name=req.client.name, action="/oauth/login"
        )
    form = await request.form()
    req = store.request(str(form.get("request", "")))
    if req is None:
        return _expired()
    email = str(form.get("email", "")).strip()
    if not email or "@" not in email or len(email) > 254:
        return _page(
            "login.html", 400, request_id=req.id, client_name=req.client.name, action="/oauth/login"
        )
    store.send_one_time_code(req, email)
    return RedirectResponse(f"/oauth/verify?{urlencode({'request': req.id})}", status_code=303)


async def verify(request: Request) -> Response:
    sandbox = _state(request)
    store = sandbox.oauth
    if request.method == "GET":
        req = store.request(request.query_params.get("request"))
        if req is None or req.email is None:
            return _expired()
        return _page("verify.html", request_id=req.id, email=req.email, action="/oauth/verify")
    form = await request.form()
    req = store.request(str(form.get("request", "")))
    if req is None or req.email is None:
        return _expired()
    if not store.check_one_time_code(req, str(form.get("code", ""))):
        return _page(
            "verify.html",
            400,
            request_id=req.id,
            email=req.email,
            action="/oauth/verify",
            error="That code is wrong or has expired.",
        )
    if req.flow_type == "login":  # Nomos: the login flow skips the consent screen
        return _code_redirect(sandbox, req, 303)
    return RedirectResponse(f"/oauth/consent?{urlencode({'request': req.id})}", status_code=303)


async def consent(request: Request) -> Response:
    sandbox = _state(request)
    store = sandbox.oauth
    if request.method == "GET":
        req = store.request(request.query_params.get("request"))
        if req is None or not req.signed_in:
            return _expired()
        return _page(
            "consent.html",
            request_id=req.id,
            client_name=req.client.name,
            email=req.email,
            scopes=[(s, _SCOPE_TEXT.get(s, s)) for s in req.scopes],
            action="/oauth/consent",
        )
    form = await request.form()
    req = store.request(str(form.get("request", "")))
    if req is None or not req.signed_in:
        return _expired()
    if form.get("decision") == "allow":
        return _code_redirect(sandbox, req, 303)
    store.deny(req)
    problem = OAuthProblem("access_denied", "the customer denied access")
    return _error_redirect(req.redirect_uri, req.state, problem, 303)


async def _read_params(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_TOKEN_BODY_BYTES:
        raise OAuthProblem("invalid_request", "request body too large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthProblem("invalid_request", "body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise OAuthProblem("invalid_request", "body must be a JSON object")
        out: dict[str, str] = {}
        for key, value in data.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise OAuthProblem("invalid_request", f"{key} must be a string")
            out[str(key)] = value
        return out
    if ctype == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise OAuthProblem("invalid_request", "body is not UTF-8") from exc
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise OAuthProblem("invalid_request", f"parameter repeated: {key}")
            form[key] = value
        return form
    raise OAuthProblem(
        "invalid_request", "use application/x-www-form-urlencoded or application/json"
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthProblem("invalid_client", "unsupported authorization scheme", status_code=401)
    try:
        # RFC 6749 §2.3.1: id and secret were form-urlencoded before the Basic encoding
        return parse_basic_auth(value)
    except ValueError as exc:
        raise OAuthProblem(
            "invalid_client", "malformed Basic credentials", status_code=401
        ) from exc


async def token(request: Request) -> Response:
    sandbox = _state(request)
    store = sandbox.oauth
    if sandbox.faults.token_delay_s > 0:
        await asyncio.sleep(sandbox.faults.token_delay_s)
    try:
        params = await _read_params(request)
        basic = _basic_credentials(request)
        if basic is not None:
            if "client_secret" in params:
                raise OAuthProblem("invalid_request", "use one client authentication method")
            body_id = params.get("client_id")
            if body_id is not None and body_id != basic[0]:
                raise OAuthProblem("invalid_client", "client_id mismatch", status_code=401)
            client = store.authenticate_client(basic[0], basic[1])
        else:
            client = store.authenticate_client(params.get("client_id"), params.get("client_secret"))
        grant_type = params.get("grant_type")
        if grant_type not in client.grant_types:
            if grant_type in ("authorization_code", "refresh_token", "client_credentials"):
                raise OAuthProblem("unauthorized_client", "grant type not allowed for this client")
            raise OAuthProblem("unsupported_grant_type", "unsupported grant_type")
        if grant_type == "authorization_code":
            body = store.exchange_code(
                client,
                code=params.get("code"),
                code_verifier=params.get("code_verifier"),
                redirect_uri=params.get("redirect_uri"),
            )
        elif grant_type == "refresh_token":
            body = store.refresh(
                client, refresh_token=params.get("refresh_token"), scope=params.get("scope")
            )
        else:
            body = store.client_credentials(client, scope=params.get("scope"))
    except OAuthProblem as problem:
        headers = {}
        if problem.error == "invalid_client":
            headers["WWW-Authenticate"] = 'Basic realm="nomos-sandbox"'
        return oauth_error(
            problem.error, problem.description, status_code=problem.status_code, headers=headers
        )
    if sandbox.take_fault("token_500_next"):  # processed, but the answer is "lost"
        return api_error(500, "Internal Server Error", headers={"Cache-Control": "no-store"})
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def revoke(request: Request) -> Response:
    store = _state(request).oauth
    try:
        params = await _read_params(request)
        basic = _basic_credentials(request)
        if basic is not None:
            client = store.authenticate_client(basic[0], basic[1])
        else:
            client = store.authenticate_client(params.get("client_id"), params.get("client_secret"))
        tok = params.get("token")
        if not tok:
            raise OAuthProblem("invalid_request", "token is required")
    except OAuthProblem as problem:
        return oauth_error(problem.error, problem.description, status_code=problem.status_code)
    store.revoke_token(client, tok)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def metadata(request: Request) -> Response:
    config = _state(request).config
    base = (config.issuer or str(request.base_url)).rstrip("/")
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "scopes_supported": [READ, WRITE],
        }
    )


def oauth_routes() -> list[Route]:
    return [
        Route("/oauth/authorize", authorize, methods=["GET"]),
        Route("/oauth/login", login, methods=["GET", "POST"]),
        Route("/oauth/verify", verify, methods=["GET", "POST"]),
        Route("/oauth/consent", consent, methods=["GET", "POST"]),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    ]
