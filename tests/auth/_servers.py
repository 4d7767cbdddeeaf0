"""Test servers: run an ASGI app with uvicorn on a free loopback port, and a strict fake AS.

The fake authorization server is deliberately small and strict (it revokes the whole grant
when a rotated refresh token comes back, like oidc-provider and the sandbox); it lets the
auth layer be tested on its own. The end-to-end tests use the real sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port in a thread; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CLIENT_ID = "test-app"
CLIENT_SECRET = "test-secret-Zq8"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def _challenge(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


@dataclass
class _GrantRecord:
    customer: str
    current_rt: str | None
    used_rts: set[str] = field(default_factory=set)
    access_tokens: dict[str, datetime] = field(default_factory=dict)
    revoked: bool = False


class FakeAuthorizationServer:
    """A strict OAuth server with rotation and reuse detection, plus ``GET /api/me``.

    Counters: ``refreshes_served`` (successful refresh grants), ``token_requests`` (every
    POST to /oauth/token), ``reuse_detected`` (rotated refresh tokens that came back).
    """

    def __init__(self, *, access_ttl_s: int = 3600, refresh_delay_s: float = 0.0) -> None:
        self.access_ttl_s = access_ttl_s
        self.refresh_delay_s = refresh_delay_s
        self.offset = timedelta(0)
        self.lock = threading.Lock()
        self.grants: dict[str, _GrantRecord] = {}  # grant id -> record
        self.rt_index: dict[str, str] = {}  # refresh token (current or used) -> grant id
        self.codes: dict[str, dict[str, str]] = {}
        self.used_codes: set[str] = set()
        self.refreshes_served = 0
        self.token_requests = 0
        self.reuse_detected = 0
        self.api_calls = 0
        self.reject_all_access_tokens = False
        self.app = Starlette(
            routes=[
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/api/me", self._me, methods=["GET"]),
            ]
        )

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    # -- test helpers -------------------------------------------------------------

    def issue_code(self, customer: str, *, challenge: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = {
                "customer": customer,
                "challenge": challenge,
                "redirect": redirect_uri,
            }
        return code

    def seed_grant(self, customer: str, *, expired: bool = False) -> dict[str, Any]:
        """A token answer for ``customer`` as if a consent had just happened."""
        with self.lock:
            gid = secrets.token_hex(4)
            self.grants[gid] = _GrantRecord(customer=customer, current_rt=None)
            body = self._issue(gid, with_refresh=True)
        if expired:
            with self.lock:
                record = self.grants[gid]
                for at in record.access_tokens:
                    record.access_tokens[at] = self.now() - timedelta(minutes=1)
            body["expires_in"] = 0
        return body

    def grant_revoked(self, customer: str) -> bool:
        return any(g.revoked for g in self.grants.values() if g.customer == customer)

    # -- endpoints ----------------------------------------------------------------

    def _issue(self, gid: str, *, with_refresh: bool) -> dict[str, Any]:
        record = self.grants[gid]
        at = "at-" + secrets.token_urlsafe(24)
        record.access_tokens[at] = self.now() + timedelta(seconds=self.access_ttl_s)
        body: dict[str, Any] = {
            "access_token": at,
            "token_type": "Bearer",
            "expires_in": self.access_ttl_s,
        }
        if with_refresh:
            rt = "rt-" + secrets.token_urlsafe(24)
            if record.current_rt:
                record.used_rts.add(record.current_rt)
            record.current_rt = rt
            self.rt_index[rt] = gid
            body["refresh_token"] = rt
        return body

    @staticmethod
    def _error(error: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": "rejected"}, status_code=status)

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        with self.lock:
            self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return self._error("invalid_client", 401)
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            if self.refresh_delay_s:
                await asyncio.sleep(self.refresh_delay_s)  # widen the race window
            rt = str(form.get("refresh_token", ""))
            with self.lock:
                gid = self.rt_index.get(rt)
                record = self.grants.get(gid) if gid else None
                if record is None or record.revoked:
                    return self._error("invalid_grant")
                if rt != record.current_rt:
                    self.reuse_detected += 1
                    record.revoked = True
                    record.access_tokens.clear()
                    return self._error("invalid_grant")
                self.refreshes_served += 1
                return JSONResponse(
                    self._issue(gid, with_refresh=True), headers={"Cache-Control": "no-store"}
                )
        if grant_type == "authorization_code":
            code = str(form.get("code", ""))
            with self.lock:
                if code in self.used_codes:
                    return self._error("invalid_grant")
                info = self.codes.pop(code, None)
                if info is None:
                    return self._error("invalid_grant")
                self.used_codes.add(code)
                if form.get("redirect_uri") != info["redirect"]:
                    return self._error("invalid_grant")
                if _challenge(str(form.get("code_verifier", ""))) != info["challenge"]:
                    return self._error("invalid_grant")
                gid = secrets.token_hex(4)
                self.grants[gid] = _GrantRecord(customer=info["customer"], current_rt=None)
                return JSONResponse(self._issue(gid, with_refresh=True))
        if grant_type == "client_credentials":
            with self.lock:
                gid = "org"
                self.grants.setdefault(gid, _GrantRecord(customer="@org", current_rt=None))
                return JSONResponse(self._issue(gid, with_refresh=False))
        return self._error("unsupported_grant_type")

    async def _me(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        with self.lock:
            self.api_calls += 1
            for record in self.grants.values():
                expiry = record.access_tokens.get(token)
                if (
                    expiry is not None
                    and expiry > self.now()
                    and not record.revoked
                    and not self.reject_all_access_tokens
                ):
                    return JSONResponse({"customer": record.customer})
        return JSONResponse(
            {"code": "UNAUTHORIZED", "message": "Invalid or malformed token", "requestId": "r1"},
            status_code=401,
        )
