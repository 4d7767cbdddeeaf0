"""The authorization server's records and rules, without HTTP.

Tokens, codes and one-time codes are kept only as SHA-256 digests, except the last
one-time sign-in code per e-mail address, which the dev-only control endpoint shows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from wattplan.sandbox._clock import SandboxClock
from wattplan.sandbox._config import OAuthClient, SandboxConfig, SeedCustomer

__all__ = ["AuthorizationRequest", "Grant", "OAuthProblem", "OAuthStore", "TokenInfo"]

logger = logging.getLogger("wattplan.sandbox")

READ = "read:*"
WRITE = "write:*"
KNOWN_SCOPES = (READ, WRITE)
_SCOPE_ALIASES = {"read": READ, "write": WRITE, READ: READ, WRITE: WRITE}
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
MAX_OTP_ATTEMPTS = 5
REQUEST_LIFETIME = timedelta(minutes=30)


class OAuthProblem(Exception):  # noqa: N818 - an answer, not a bug
    """An RFC 6749 error to send back (never contains a secret)."""

    def __init__(self, error: str, description: str, *, status_code: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status_code = status_code


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scopes(raw: str | None) -> tuple[str, ...] | None:
    """Normalise a scope string (``read``/``write`` aliases allowed); None if absent."""
    if raw is None or not raw.strip():
        return None
    out: list[str] = []
    for part in raw.split():
        scope = _SCOPE_ALIASES.get(part)
        if scope is None:
            raise OAuthProblem("invalid_scope", f"unknown scope {part[:40]!r}")
        if scope not in out:
            out.append(scope)
    return tuple(out)


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    """RFC 7636 §4.6: does ``verifier`` match the stored ``challenge``?"""
    if method == "S256":
        computed = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
        return hmac.compare_digest(computed, challenge)
    return hmac.compare_digest(verifier, challenge)


def redirect_uri_allowed(client: OAuthClient, uri: str, *, loopback_any_port: bool) -> bool:
    """Exact string match, or (for registered http loopback IPs) any port."""
    if uri in client.redirect_uris:
        return True
    if not loopback_any_port:
        return False
    try:
        want = urlsplit(uri)
        want_port = want.port
    except ValueError:
        return False
    if want.scheme != "http" or want.hostname not in ("127.0.0.1", "::1") or want_port is None:
        return False
    for registered in client.redirect_uris:
        reg = urlsplit(registered)
        if (reg.scheme, reg.hostname, reg.path, reg.query, reg.fragment) == (
            want.scheme,
            want.hostname,
            want.path,
            want.query,
            want.fragment,
        ):
            return True
    return False


@dataclass
class AuthorizationRequest:
    """One run through the hosted pages (sign-in, one-time code, consent)."""

    id: str
    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    flow_type: str | None
    created_at: datetime
    email: str | None = None
    customer_id: str | None = None
    otp_digest: str | None = None
    otp_expires_at: datetime | None = None
    otp_attempts: int = 0
    signed_in: bool = False
    finished: bool = False

    def __repr__(self) -> str:
        return (
            f"AuthorizationRequest(client_id={self.client.client_id!r}, signed_in={self.signed_in})"
        )


@dataclass
class _Code:
    client_id: str
    customer_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: datetime
    used: bool = False
    grant_id: str | None = None


@dataclass
class Grant:
    """What a customer (or, for client credentials, the organisation) allowed an app."""

    id: str
    client_id: str
    customer_id: str | None
    scopes: tuple[str, ...]
    kind: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    refreshes: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_public_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "customer": self.customer_id,
            "scope": " ".join(self.scopes),
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_reason": self.revoked_reason,
            "refreshes": self.refreshes,
        }


@dataclass
class _Refresh:
    grant_id: str
    client_id: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True)
class TokenInfo:
    """What a valid access token stands for."""

    grant_id: str
    client_id: str
    customer_id: str | None
    scopes: tuple[str, ...]
    expires_at: datetime

    @property
    def can_write(self) -> bool:
        return WRITE in self.scopes and self.customer_id is None


@dataclass
class OAuthStore:
    """In-memory authorization server state, guarded by one lock."""

    config: SandboxConfig
    clock: SandboxClock
    counters: Counter[str] = field(default_factory=Counter)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _requests: dict[str, AuthorizationRequest] = field(default_factory=dict)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _grants: dict[str, Grant] = field(default_factory=dict)
    _access: dict[str, TokenInfo] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _last_otp: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    auto_approve_email: str | None = None

    def __repr__(self) -> str:
        return f"OAuthStore(grants={len(self._grants)})"

    # -- lookups ---------------------------------------------------------------------
    def client(self, client_id: str | None) -> OAuthClient | None:
        for c in self.config.clients:
            if c.client_id == client_id:
                return c
        return None

    def customer_by_email(self, email: str) -> SeedCustomer | None:
        wanted = email.strip().lower()
        for c in self.config.customers:
            if c.email.lower() == wanted:
                return c
        return None

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> OAuthClient:
        """Check client credentials (constant-time); raise ``invalid_client`` otherwise."""
        client = self.client(client_id)
        problem = OAuthProblem("invalid_client", "client authentication failed", status_code=401)
        if client is None:
            raise problem
        if client.client_secret is None:
            if client_secret:
                raise problem
            return client
        given = (client_secret or "").encode()
        if not hmac.compare_digest(given, client.client_secret.encode()):
            raise problem
        return client

    # -- the authorization endpoint --------------------------------------------------
    def start_request(
        self,
        *,
        client: OAuthClient,
        redirect_uri: str,
        scope: str | None,
        state: str | None,
        code_challenge: str | None,
        code_challenge_method: str | None,
        flow_type: str | None,
    ) -> AuthorizationRequest:
        """Validate the parts of an authorization request that are answered by redirect."""
        if "authorization_code" not in client.grant_types:
            raise OAuthProblem("unauthorized_client", "client may not use the code flow")
        requested = parse_scopes(scope) or (READ,)
        # customer tokens are read-only: write scopes are never granted to them
        granted = tuple(s for s in requested if s in client.allowed_scopes and s == READ)
        if not granted:
            raise OAuthProblem("invalid_scope", "customer tokens can only be granted read:*")
        method = code_challenge_method
        if code_challenge is None:
            if method is not None:
                raise OAuthProblem("invalid_request", "code_challenge_method without challenge")
            if self.config.require_pkce or client.client_secret is None:
                raise OAuthProblem("invalid_request", "PKCE code_challenge required")
        else:
            method = method or "plain"  # RFC 7636 §4.3
            if method not in ("S256", "plain"):
                raise OAuthProblem("invalid_request", "code_challenge_method must be S256 or plain")
            pattern = _S256_CHALLENGE if method == "S256" else _VERIFIER
            if not pattern.match(code_challenge):
                raise OAuthProblem("invalid_request", "malformed code_challenge")
        if flow_type not in (None, "login", "signup"):
            raise OAuthProblem("invalid_request", "flow_type must be login or signup")
        req = AuthorizationRequest(
            id="ar_" + secrets.token_urlsafe(24),
            client=client,
            redirect_uri=redirect_uri,
            scopes=granted,
            state=state,
            code_challenge=code_challenge,
            code_challenge_method=method if code_challenge else None,
            flow_type=flow_type,
            created_at=self.clock.now(),
        )
        with self._lock:
            self._purge()
            self._requests[req.id] = req
        return req

    def request(self, request_id: str | None) -> AuthorizationRequest | None:
        """A live authorization request, or None (unknown, expired, finished)."""
        with self._lock:
            req = self._requests.get(request_id or "")
            if req is None or req.finished:
                return None
            if self.clock.now() - req.created_at > REQUEST_LIFETIME:
                return None
            return req

    def send_one_time_code(self, req: AuthorizationRequest, email: str) -> None:
        """Step 1: the customer gives her e-mail; a six-digit code is 'sent' if known."""
        customer = self.customer_by_email(email)
        with self._lock:
            req.email = email.strip().lower()
            req.otp_attempts = 0
            req.customer_id = customer.id if customer else None
            if customer is None:  # same page either way: no account enumeration
                req.otp_digest = None
                return
            code = f"{secrets.randbelow(10**6):06d}"
            now = self.clock.now()
            req.otp_digest = _digest(req.id + code)
            req.otp_expires_at = now + timedelta(seconds=self.config.one_time_code_lifetime_s)
            self._last_otp[req.email] = (code, req.otp_expires_at)
            self.counters["one_time_codes_sent"] += 1
        if self.config.log_one_time_codes:
            logger.warning(
                "sandbox sign-in code for %s: %s (development only; valid %d s)",
                req.email,
                code,
                self.config.one_time_code_lifetime_s,
            )

    def check_one_time_code(self, req: AuthorizationRequest, code: str) -> bool:
        """Step 2: the six-digit code; at most five attempts per sent code."""
        with self._lock:
            if req.otp_digest is None or req.otp_expires_at is None:
                return False
            if req.otp_attempts >= MAX_OTP_ATTEMPTS or self.clock.now() > req.otp_expires_at:
                return False
            req.otp_attempts += 1
            ok = hmac.compare_digest(_digest(req.id + code.strip()), req.otp_digest)
            if ok:
                req.signed_in = True
                req.otp_digest = None
            return ok

    def last_one_time_code(self, email: str) -> tuple[str, datetime] | None:
        """Dev only: the last code 'sent' to ``email`` and when it expires."""
        with self._lock:
            return self._last_otp.get(email.strip().lower())

    def issue_code(self, req: AuthorizationRequest) -> str:
        """Step 3 (allow): a single-use authorization code for the signed-in customer."""
        if not req.signed_in or req.customer_id is None:
            raise OAuthProblem("access_denied", "customer not signed in")
        code = secrets.token_urlsafe(32)
        with self._lock:
            req.finished = True
            self._codes[_digest(code)] = _Code(
                client_id=req.client.client_id,
                customer_id=req.customer_id,
                redirect_uri=req.redirect_uri,
                scopes=req.scopes,
                code_challenge=req.code_challenge,
                code_challenge_method=req.code_challenge_method,
                expires_at=self.clock.now() + timedelta(seconds=self.config.code_lifetime_s),
            )
            self.counters["authorization_codes_issued"] += 1
        return code

    def deny(self, req: AuthorizationRequest) -> None:
        with self._lock:
            req.finished = True
            self.counters["consents_denied"] += 1

    def sign_in_directly(self, req: AuthorizationRequest, email: str) -> bool:
        """Dev only: mark the request as signed in for ``email`` (headless consent)."""
        customer = self.customer_by_email(email)
        if customer is None:
            return False
        with self._lock:
            req.email = customer.email.lower()
            req.customer_id = customer.id
            req.signed_in = True
        return True

    # -- the token endpoint ----------------------------------------------------------
    def _new_access(self, grant: Grant, scopes: tuple[str, ...]) -> tuple[str, TokenInfo]:
        now = self.clock.now()
        expires = now + timedelta(seconds=self.config.access_token_lifetime_s)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = {
            "iss": self.config.issuer or "wattplan-sandbox",
            "sub": grant.customer_id or f"org:{grant.client_id}",
            "client_id": grant.client_id,
            "scope": " ".join(scopes),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(12),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        sig = _b64(hmac.new(self._signing_key, signing_input, hashlib.sha256).digest())
        token = f"{header}.{payload}.{sig}"
        info = TokenInfo(grant.id, grant.client_id, grant.customer_id, scopes, expires)
        self._access[_digest(token)] = info
        return token, info

    def _new_refresh(self, grant: Grant) -> str:
        token = secrets.token_hex(32)
        self._refresh[_digest(token)] = _Refresh(grant.id, grant.client_id, self.clock.now())
        return token

    def _token_response(
        self, grant: Grant, scopes: tuple[str, ...] | None = None
    ) -> dict[str, object]:
        access, _ = self._new_access(grant, scopes or grant.scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.config.access_token_lifetime_s,
            "refresh_token": self._new_refresh(grant),
            "scope": " ".join(scopes or grant.scopes),
        }

    def _revoke_grant(self, grant: Grant, reason: str) -> None:
        if grant.revoked_at is None:
            grant.revoked_at = self.clock.now()
            grant.revoked_reason = reason
            self.counters["grants_revoked"] += 1
        for key in [k for k, v in self._access.items() if v.grant_id == grant.id]:
            del self._access[key]
        for key in [k for k, v in self._refresh.items() if v.grant_id == grant.id]:
            del self._refresh[key]
        logger.info("sandbox grant %s revoked (%s)", grant.id, reason)

    def exchange_code(
        self,
        client: OAuthClient,
        *,
        code: str | None,
        code_verifier: str | None,
        redirect_uri: str | None,
    ) -> dict[str, object]:
        """``grant_type=authorization_code``."""
        if not code:
            raise OAuthProblem("invalid_request", "code is required")
        bad = OAuthProblem("invalid_grant", "authorization code invalid", status_code=401)
        with self._lock:
            self.counters["token_requests"] += 1
            record = self._codes.get(_digest(code))
            if record is None or record.client_id != client.client_id:
                raise bad
            if record.used:
                # RFC 6749 §10.5: a replayed code revokes what was issued from it
                self.counters["code_replays"] += 1
                grant = self._grants.get(record.grant_id or "")
                if grant is not None:
                    self._revoke_grant(grant, "authorization code replayed")
                raise bad
            record.used = True  # burnt, whatever happens next
            if self.clock.now() >= record.expires_at:
                raise OAuthProblem("invalid_grant", "authorization code expired", status_code=401)
            if redirect_uri is not None and redirect_uri != record.redirect_uri:
                raise OAuthProblem("invalid_grant", "redirect_uri mismatch", status_code=401)
            if record.code_challenge is None:
                if code_verifier:  # RFC 9700 §4.8: PKCE downgrade
                    raise OAuthProblem(
                        "invalid_grant", "no PKCE challenge was sent", status_code=401
                    )
            else:
                if not code_verifier or not _VERIFIER.match(code_verifier):
                    raise OAuthProblem(
                        "invalid_grant", "code_verifier missing or malformed", status_code=401
                    )
                if not pkce_matches(
                    code_verifier, record.code_challenge, record.code_challenge_method or "plain"
                ):
                    raise OAuthProblem("invalid_grant", "PKCE verification failed", status_code=401)
            grant = Grant(
                id="grt_" + secrets.token_hex(12),
                client_id=client.client_id,
                customer_id=record.customer_id,
                scopes=record.scopes,
                kind="authorization_code",
                created_at=self.clock.now(),
            )
            record.grant_id = grant.id
            self._grants[grant.id] = grant
            self.counters["authorization_code_grants_served"] += 1
            return self._token_response(grant)

    def refresh(
        self, client: OAuthClient, *, refresh_token: str | None, scope: str | None
    ) -> dict[str, object]:
        """``grant_type=refresh_token``: rotate; a replayed token kills the grant (strict)."""
        if not refresh_token:
            raise OAuthProblem("invalid_request", "refresh_token is required")
        bad = OAuthProblem("invalid_grant", "refresh token invalid or revoked", status_code=401)
        with self._lock:
            self.counters["token_requests"] += 1
            record = self._refresh.get(_digest(refresh_token))
            if record is None or record.client_id != client.client_id:
                self.counters["refresh_rejected"] += 1
                raise bad
            grant = self._grants[record.grant_id]
            if not grant.active:
                self.counters["refresh_rejected"] += 1
                raise bad
            now = self.clock.now()
            if record.used_at is not None:
                self.counters["refresh_reuse_detected"] += 1
                self.counters["refresh_rejected"] += 1
                if self.config.strict_refresh_reuse:
                    self._revoke_grant(grant, "refresh token reused")
                raise bad
            lifetime = self.config.refresh_token_lifetime_s
            if lifetime is not None and now - record.issued_at > timedelta(seconds=lifetime):
                self.counters["refresh_rejected"] += 1
                raise OAuthProblem("invalid_grant", "refresh token expired", status_code=401)
            scopes = grant.scopes
            wanted = parse_scopes(scope)
            if wanted is not None:
                if not set(wanted) <= set(grant.scopes):
                    raise OAuthProblem("invalid_scope", "scope exceeds the grant")
                scopes = wanted
            record.used_at = now
            grant.refreshes += 1
            self.counters["refresh_grants_served"] += 1
            return self._token_response(grant, scopes)

    def client_credentials(self, client: OAuthClient, *, scope: str | None) -> dict[str, object]:
        """``grant_type=client_credentials``: an organisation token (may write)."""
        if client.client_secret is None:
            raise OAuthProblem("unauthorized_client", "public clients cannot use this grant")
        if "client_credentials" not in client.grant_types:
            raise OAuthProblem("unauthorized_client", "grant type not allowed for this client")
        wanted = parse_scopes(scope) or client.allowed_scopes
        if not set(wanted) <= set(client.allowed_scopes):
            raise OAuthProblem("invalid_scope", "scope not allowed for this client")
        with self._lock:
            self.counters["token_requests"] += 1
            grant = Grant(
                id="grt_" + secrets.token_hex(12),
                client_id=client.client_id,
                customer_id=None,
                scopes=tuple(wanted),
                kind="client_credentials",
                created_at=self.clock.now(),
            )
            self._grants[grant.id] = grant
            self.counters["client_credentials_grants_served"] += 1
            return self._token_response(grant)

    def revoke_token(self, client: OAuthClient, token: str) -> None:
        """RFC 7009: revoke the grant behind ``token`` if it belongs to ``client``."""
        key = _digest(token)
        with self._lock:
            grant_id: str | None = None
            if key in self._refresh and self._refresh[key].client_id == client.client_id:
                grant_id = self._refresh[key].grant_id
            elif key in self._access and self._access[key].client_id == client.client_id:
                grant_id = self._access[key].grant_id
            if grant_id is not None:
                self._revoke_grant(self._grants[grant_id], "revoked by the client")

    def revoke_customer_grants(self, client_id: str, customer_id: str) -> int:
        """The customer withdraws one app's access; other apps' grants stay."""
        with self._lock:
            hits = [
                g
                for g in self._grants.values()
                if g.client_id == client_id and g.customer_id == customer_id and g.active
            ]
            for g in hits:
                self._revoke_grant(g, "revoked by the customer")
            return len(hits)

    def grants(self) -> list[Grant]:
        with self._lock:
            return list(self._grants.values())

    def verify_access_token(self, token: str) -> TokenInfo | None:
        """The token's grant, or None when unknown, expired or revoked."""
        with self._lock:
            info = self._access.get(_digest(token))
            if info is None:
                return None
            if self.clock.now() >= info.expires_at:
                return None
            grant = self._grants.get(info.grant_id)
            if grant is None or not grant.active:
                return None
            return info

    def _purge(self) -> None:
        now = self.clock.now()
        # requests are kept in the order they were made: the expired ones lead, and the scan
        # stops at the first live one instead of reading every request on each new one (a
        # clock set back only delays a purge; request() checks the lifetime itself)
        expired = []
        for key, r in self._requests.items():
            if now - r.created_at <= REQUEST_LIFETIME:
                break
            expired.append(key)
        for key in expired:
            del self._requests[key]
        stale = now - timedelta(hours=1)
        for key in [
            k for k, c in self._codes.items() if c.expires_at < stale and c.grant_id is None
        ]:
            del self._codes[key]
