"""The OAuth 2.0 protocol as pure functions (oauthlib/h11 style): no I/O, no clock.

``build_*`` functions turn arguments into URLs and :class:`TokenRequest` values; ``parse_*``
functions turn what came back into a :class:`Token` or a typed error. Sending and storing
are the caller's business (see :class:`~wattplan.auth.TokenManager`).

Token endpoint errors come in two shapes and both are understood:

* RFC 6749 §5.2: ``{"error": "invalid_grant", "error_description": "..."}``;
* Nomos's flat envelope: ``{"code": "UNAUTHORIZED", "message": "...", "requestId": "..."}``
  (also nested as ``{"error": {...}}`` in older documentation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from wattplan._basic_auth import basic_auth_header
from wattplan.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InvalidGrantError,
    OAuthError,
)
from wattplan.settings import Settings

__all__ = [
    "AuthorizationResponse",
    "OAuthConfig",
    "Token",
    "TokenRequest",
    "build_authorization_code_request",
    "build_authorization_url",
    "build_client_credentials_request",
    "build_refresh_request",
    "build_revocation_request",
    "parse_callback",
    "parse_token_error",
    "parse_token_response",
]

_REDACTED = "**********"

# Error codes that mean "this code or refresh token is dead": the customer must consent again.
# ``UNAUTHORIZED`` is Nomos's answer to a revoked or expired refresh token.
_INVALID_GRANT_CODES = frozenset({"invalid_grant", "UNAUTHORIZED"})


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class OAuthConfig:
    """Where the authorization server is and who the vendor's app is.

    ``revocation_endpoint`` (RFC 7009) is used when a customer is disconnected.
    ``redirect_uri`` is sent byte-identical in the authorization and the token request;
    ``scope`` is a space-separated list (``None``: the server's default). ``issuer`` is
    compared with the callback's ``iss`` parameter when the server sends one (RFC 9207).
    """

    client_id: str
    client_secret: SecretStr | None
    authorization_endpoint: str
    token_endpoint: str
    redirect_uri: str | None = None
    scope: str | None = None
    issuer: str | None = None
    revocation_endpoint: str | None = None

    def __post_init__(self) -> None:
        secret: object = self.client_secret
        if isinstance(secret, str):  # accept a plain string, keep it hidden
            object.__setattr__(self, "client_secret", SecretStr(secret))

    @classmethod
    def for_base_url(
        cls,
        base_url: str,
        *,
        client_id: str,
        client_secret: str | SecretStr | None,
        redirect_uri: str | None = None,
        scope: str | None = None,
    ) -> OAuthConfig:
        """Nomos's (and the sandbox's) layout: ``/oauth/authorize`` and ``/oauth/token``."""
        base = base_url.rstrip("/")
        secret = SecretStr(client_secret) if isinstance(client_secret, str) else client_secret
        return cls(
            client_id=client_id,
            client_secret=secret,
            authorization_endpoint=f"{base}/oauth/authorize",
            token_endpoint=f"{base}/oauth/token",
            redirect_uri=redirect_uri,
            scope=scope,
            issuer=base,
            revocation_endpoint=f"{base}/oauth/revoke",
        )

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, scope: str | None = None
    ) -> OAuthConfig:
        """From ``WATTPLAN_CLIENT_ID``, ``_CLIENT_SECRET``, ``_REDIRECT_URI``, ``_NOMOS_BASE_URL``

        ``scope`` is requested as given (``None``: the server's default).
        """
        settings = settings if settings is not None else Settings()
        if not settings.client_id:
            raise ConfigurationError("WATTPLAN_CLIENT_ID is not set")
        return cls.for_base_url(
            settings.nomos_base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            redirect_uri=settings.redirect_uri,
            scope=scope,
        )

    @classmethod
    def from_metadata(
        cls,
        metadata: Mapping[str, Any],
        *,
        client_id: str,
        client_secret: str | SecretStr | None,
        redirect_uri: str | None = None,
        scope: str | None = None,
    ) -> OAuthConfig:
        """Build from RFC 8414 server metadata (``/.well-known/oauth-authorization-server``)."""
        secret = SecretStr(client_secret) if isinstance(client_secret, str) else client_secret
        try:
            return cls(
                client_id=client_id,
                client_secret=secret,
                authorization_endpoint=str(metadata["authorization_endpoint"]),
                token_endpoint=str(metadata["token_endpoint"]),
                redirect_uri=redirect_uri,
                scope=scope,
                issuer=str(metadata["issuer"]) if metadata.get("issuer") else None,
                revocation_endpoint=(
                    str(metadata["revocation_endpoint"])
                    if metadata.get("revocation_endpoint")
                    else None
                ),
            )
        except KeyError as exc:
            raise ValueError(f"server metadata lacks {exc.args[0]!r}") from None


@dataclass(frozen=True, repr=False)
class Token:
    """An access token (and maybe a refresh token) as the token endpoint issued it.

    ``expires_at`` is tz-aware and computed from ``expires_in`` counted from the moment the
    token *request* started (conservative: the server's clock started later); ``None`` when
    the server sent no ``expires_in`` (then only a 401 triggers a refresh). ``scope`` is
    the granted scope; when the response omits it, the requested scope (RFC 6749 §5.1).
    The secrets are :class:`~pydantic.SecretStr` and never appear in ``repr``.
    """

    access_token: SecretStr
    token_type: str = "Bearer"  # noqa: S105 (a type name, not a secret)
    expires_at: datetime | None = None
    refresh_token: SecretStr | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        if self.expires_at is not None:
            _require_aware(self.expires_at, "expires_at")

    def expires_within(self, margin: timedelta, *, now: datetime) -> bool:
        """True if the token is expired or expires within ``margin`` of ``now``."""
        _require_aware(now, "now")
        return self.expires_at is not None and self.expires_at - margin <= now

    def __repr__(self) -> str:
        rt = _REDACTED if self.refresh_token is not None else None
        return (
            f"Token(token_type={self.token_type!r}, expires_at={self.expires_at!r}, "
            f"scope={self.scope!r}, access_token={_REDACTED!r}, refresh_token={rt!r})"
        )


@dataclass(frozen=True, repr=False)
class TokenRequest:
    """A POST to the token endpoint: ``url``, ``headers`` and the form ``data``.

    Send it with any HTTP client, e.g. ``httpx.post(r.url, headers=r.headers, data=r.data)``.
    ``grant_type`` is repeated for logging; the repr hides the body and the headers.
    """

    url: str
    headers: Mapping[str, str]
    data: Mapping[str, str]
    grant_type: str

    def __repr__(self) -> str:
        return f"TokenRequest(grant_type={self.grant_type!r}, url={self.url!r})"


def build_authorization_url(
    *,
    authorization_endpoint: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str,
    scope: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Return the URL that sends the customer to the hosted sign-in and consent pages.

    Always PKCE S256 (``code_challenge_method=S256`` is sent explicitly, RFC 7636 §4.3).
    Query parameters already present in ``authorization_endpoint`` are kept.
    """
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if scope:
        params["scope"] = scope
    if extra:
        for key, value in extra.items():
            if key in params:
                raise ValueError(f"extra parameter {key!r} would override a protocol parameter")
            params[key] = value
    parts = urlsplit(authorization_endpoint)
    query = urlencode(params, quote_via=quote)
    query = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _client_auth_headers(client_id: str, client_secret: SecretStr | None) -> dict[str, str]:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        "Cache-Control": "no-store",
    }
    if client_secret is not None:
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding
        headers["Authorization"] = basic_auth_header(client_id, client_secret.get_secret_value())
    return headers


def _body(
    config_client_id: str, client_secret: SecretStr | None, **fields: str | None
) -> dict[str, str]:
    data = {k: v for k, v in fields.items() if v is not None}
    if client_secret is None:  # a public client identifies itself in the body
        data["client_id"] = config_client_id
    return data


def build_authorization_code_request(
    config: OAuthConfig, *, code: str, code_verifier: str, redirect_uri: str | None = None
) -> TokenRequest:
    """Exchange an authorization code (with its PKCE verifier) for tokens (RFC 6749 §4.1.3)."""
    redirect = redirect_uri if redirect_uri is not None else config.redirect_uri
    if not redirect:
        raise ValueError("a redirect_uri is needed to exchange an authorization code")
    data = _body(
        config.client_id,
        config.client_secret,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect,
        code_verifier=code_verifier,
    )
    return TokenRequest(
        url=config.token_endpoint,
        headers=_client_auth_headers(config.client_id, config.client_secret),
        data=data,
        grant_type="authorization_code",
    )


def build_refresh_request(config: OAuthConfig, *, refresh_token: SecretStr) -> TokenRequest:
    """Trade a refresh token for a new pair (RFC 6749 §6). Not idempotent: never retry blindly."""
    data = _body(
        config.client_id,
        config.client_secret,
        grant_type="refresh_token",
        refresh_token=refresh_token.get_secret_value(),
    )
    return TokenRequest(
        url=config.token_endpoint,
        headers=_client_auth_headers(config.client_id, config.client_secret),
        data=data,
        grant_type="refresh_token",
    )


def build_client_credentials_request(
    config: OAuthConfig, *, scope: str | None = None
) -> TokenRequest:
    """Ask for an organisation token with the client's own credentials (RFC 6749 §4.4)."""
    data = _body(
        config.client_id,
        config.client_secret,
        grant_type="client_credentials",
        scope=scope if scope is not None else config.scope,
    )
    return TokenRequest(
        url=config.token_endpoint,
        headers=_client_auth_headers(config.client_id, config.client_secret),
        data=data,
        grant_type="client_credentials",
    )


def build_revocation_request(config: OAuthConfig, *, refresh_token: SecretStr) -> TokenRequest:
    """Revoke a refresh token, and with it the grant, at the server (RFC 7009)."""
    if not config.revocation_endpoint:
        raise ValueError("no revocation_endpoint configured")
    data = _body(
        config.client_id,
        config.client_secret,
        token=refresh_token.get_secret_value(),
        token_type_hint="refresh_token",  # noqa: S106 (a hint name)
    )
    return TokenRequest(
        url=config.revocation_endpoint,
        headers=_client_auth_headers(config.client_id, config.client_secret),
        data=data,
        grant_type="revocation",
    )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def parse_token_error(status_code: int, body: bytes) -> OAuthError:
    """Turn an unsuccessful token-endpoint answer into a typed :class:`OAuthError`.

    ``invalid_grant`` (RFC 6749) and ``UNAUTHORIZED`` (Nomos) give
    :class:`InvalidGrantError`; 429 and 5xx are ``transient``. The description is the
    server's own text (servers don't echo tokens back; it is cut to 200 characters).
    """
    transient = status_code == 429 or status_code >= 500
    obj = _json_object(body)
    error: str | None = None
    description: str | None = None
    if obj is not None:
        nested = obj.get("error")
        if isinstance(nested, str):
            error = nested
            desc = obj.get("error_description")
            description = str(desc) if desc is not None else None
        else:
            flat = nested if isinstance(nested, dict) else obj
            if isinstance(flat.get("code"), str):
                error = flat["code"]
                msg = flat.get("message")
                description = str(msg) if msg is not None else None
                if flat.get("requestId"):
                    description = f"{description or ''} (requestId {flat['requestId']})".strip()
    if error is None:
        error = "server_error" if status_code >= 500 else "invalid_response"
        description = f"HTTP {status_code} without an OAuth error body"
    if description is not None and len(description) > 200:
        description = description[:200] + "…"
    cls = InvalidGrantError if error in _INVALID_GRANT_CODES else OAuthError
    if error == "access_denied":
        cls = AccessDeniedError
    return cls(error, description, status_code=status_code, transient=transient)


def parse_token_response(
    *,
    status_code: int,
    body: bytes,
    requested_at: datetime,
    requested_scope: str | None = None,
    previous_refresh_token: SecretStr | None = None,
) -> Token:
    """Parse a token-endpoint answer into a :class:`Token`, or raise a typed error.

    ``requested_at`` is when the request was *started* (tz-aware): the expiry is
    ``requested_at + expires_in``. When a refresh answer carries no ``refresh_token``,
    ``previous_refresh_token`` is kept (RFC 6749 §6). A missing ``scope`` means the
    requested one. A 200 that is not a usable token answer raises :class:`OAuthError`
    with ``error="invalid_response"``.
    """
    _require_aware(requested_at, "requested_at")
    if status_code != 200:
        raise parse_token_error(status_code, body)
    obj = _json_object(body)
    if obj is None:
        raise OAuthError("invalid_response", "the token endpoint did not answer with JSON")
    if "error" in obj and "access_token" not in obj:
        raise parse_token_error(400, body)
    access = obj.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError("invalid_response", "the token answer has no access_token")
    token_type = obj.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise OAuthError("invalid_response", f"unsupported token_type {token_type!r}")
    expires_at: datetime | None = None
    expires_in = obj.get("expires_in")
    if expires_in is not None:
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            raise OAuthError("invalid_response", "expires_in is not a number") from None
        if seconds < 0:
            raise OAuthError("invalid_response", "expires_in is negative")
        expires_at = requested_at + timedelta(seconds=seconds)
    refresh = obj.get("refresh_token")
    refresh_token = SecretStr(refresh) if isinstance(refresh, str) and refresh else None
    if refresh_token is None:
        refresh_token = previous_refresh_token
    scope = obj.get("scope")
    return Token(
        access_token=SecretStr(access),
        token_type="Bearer",  # noqa: S106
        expires_at=expires_at,
        refresh_token=refresh_token,
        scope=scope if isinstance(scope, str) else requested_scope,
    )


@dataclass(frozen=True, repr=False)
class AuthorizationResponse:
    """A successful callback: the one-time ``code``, the ``state`` and maybe ``iss``."""

    code: str = field(repr=False)
    state: str
    iss: str | None = None

    def __repr__(self) -> str:
        return f"AuthorizationResponse(code={_REDACTED!r}, iss={self.iss!r})"


def parse_callback(params: Mapping[str, str]) -> AuthorizationResponse:
    """Read the redirect's query parameters, ``error`` first (RFC 6749 §4.1.2.1).

    Raises :class:`AccessDeniedError` for ``error=access_denied``, :class:`OAuthError` for
    any other ``error`` or when ``code`` or ``state`` is missing. Checking ``state``
    against the stored one is the caller's next step, *before* the code is exchanged.
    """
    error = params.get("error")
    if error:
        description = params.get("error_description")
        if description is not None and len(description) > 200:
            description = description[:200] + "…"
        cls = AccessDeniedError if error == "access_denied" else OAuthError
        raise cls(error, description)
    code = params.get("code")
    state = params.get("state")
    if not state:
        raise OAuthError("invalid_request", "the callback carries no state")
    if not code:
        raise OAuthError("invalid_request", "the callback carries neither code nor error")
    return AuthorizationResponse(code=code, state=state, iss=params.get("iss"))
