"""Drive the sandbox's hosted sign-in pages over real HTTP, as a browser would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_EMAIL, RunningSandbox

REDIRECT_URI = "http://127.0.0.1:8765/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1/other/callback"
DEV_AUTH = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
OTHER_AUTH = ("other-app", "other-app-secret")
_REQUEST_ID = re.compile(r'name="request" value="([^"]+)"')


def new_verifier() -> str:
    return secrets.token_urlsafe(48)[:64]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent(
    sb: RunningSandbox,
    *,
    email: str = DEMO_EMAIL,
    client_id: str = DEFAULT_CLIENT_ID,
    redirect_uri: str = REDIRECT_URI,
    state: str | None = "st-123",
    challenge: str | None = None,
    method: str | None = "S256",
    decision: str = "allow",
    scope: str | None = "read:*",
) -> str:
    """Walk authorize → e-mail → code → consent; return the final redirect Location."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if scope is not None:
        params["scope"] = scope
    if state is not None:
        params["state"] = state
    if challenge is not None:
        params["code_challenge"] = challenge
        if method is not None:
            params["code_challenge_method"] = method
    with httpx.Client(base_url=sb.base_url, follow_redirects=False) as http:
        r = http.get("/oauth/authorize", params=params)
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        if not location.startswith("/oauth/login"):
            return location
        page = http.get(location)
        assert page.status_code == 200
        match = _REQUEST_ID.search(page.text)
        assert match is not None
        request_id = match.group(1)
        r = http.post("/oauth/login", data={"request": request_id, "email": email})
        assert r.status_code == 303
        code = http.get("/_sandbox/one-time-code", params={"email": email}).json()["code"]
        r = http.post("/oauth/verify", data={"request": request_id, "code": code})
        assert r.status_code == 303, r.text
        if not r.headers["location"].startswith("/oauth/consent"):
            return str(r.headers["location"])
        assert "read:*" in http.get(r.headers["location"]).text
        r = http.post("/oauth/consent", data={"request": request_id, "decision": decision})
        assert r.status_code == 303
        return str(r.headers["location"])


def authorize_code(sb: RunningSandbox, verifier: str, **kw: object) -> str:
    location = consent(sb, challenge=s256(verifier), **kw)  # type: ignore[arg-type]
    return query_of(location)["code"]


def exchange(
    sb: RunningSandbox,
    code: str,
    verifier: str | None,
    *,
    auth: tuple[str, str] = DEV_AUTH,
    **extra: str,
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return httpx.post(sb.url("/oauth/token"), data=data, auth=auth)


def refresh(
    sb: RunningSandbox, refresh_token: str, *, auth: tuple[str, str] = DEV_AUTH
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return httpx.post(sb.url("/oauth/token"), data=data, auth=auth)


def customer_tokens(sb: RunningSandbox, **kw: object) -> dict[str, object]:
    """A fresh grant for the demo customer: the token response as a dict."""
    verifier = new_verifier()
    auth = kw.pop("auth", DEV_AUTH)
    code = authorize_code(sb, verifier, **kw)
    r = exchange(sb, code, verifier, auth=auth)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def org_token(sb: RunningSandbox, *, auth: tuple[str, str] = DEV_AUTH) -> str:
    """An organisation token (client credentials): sees every customer."""
    r = httpx.post(sb.url("/oauth/token"), data={"grant_type": "client_credentials"}, auth=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def headless_tokens(sb: RunningSandbox, email: str = DEMO_EMAIL) -> dict[str, object]:
    """A customer grant made through the dev-only headless consent endpoint."""
    verifier = new_verifier()
    body = {
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "email": email,
    }
    r = httpx.post(sb.url("/_sandbox/authorize"), json=body)
    code = query_of(r.json()["redirect_to"])["code"]
    tokens = exchange(sb, code, verifier)
    assert tokens.status_code == 200, tokens.text
    result: dict[str, object] = tokens.json()
    return result


def customer_token(sb: RunningSandbox, email: str = DEMO_EMAIL) -> str:
    return str(headless_tokens(sb, email)["access_token"])
