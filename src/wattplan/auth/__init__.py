"""OAuth 2.0 client for Nomos (and the sandbox): PKCE flow, token vault, httpx.Auth.

* pure protocol parts: :func:`new_pkce_pair`, :func:`build_authorization_url`,
  ``build_*_request`` / :func:`parse_token_response`, :func:`parse_callback`, :class:`Token`;
* :class:`TokenVault`: many customers' grants, encrypted at rest (SQLite or PostgreSQL);
* :class:`TokenManager`: authorizations, single-flight refresh, client credentials;
* :class:`GrantAuth` / :class:`ClientCredentialsAuth`: ``httpx.Auth`` for any client;
* :func:`create_callback_app`: the vendor's mountable ``/connect``, ``/callback`` and
  ``/token/refresh`` endpoints.

Building an auth for one customer::

    from wattplan.auth import OAuthConfig, TokenManager, TokenVault

    vault = TokenVault.from_settings()
    manager = TokenManager(config=OAuthConfig.from_settings(), vault=vault)
    client = NomosClient(auth=manager.auth("customer-42"))
"""

from __future__ import annotations

from wattplan._extras import requires as _requires

with _requires("auth", feature="wattplan.auth"):
    from wattplan.auth._app import create_callback_app
    from wattplan.auth._crypto import TokenCipher
    from wattplan.auth._flow import (
        AuthorizationResponse,
        OAuthConfig,
        Token,
        TokenRequest,
        build_authorization_code_request,
        build_authorization_url,
        build_client_credentials_request,
        build_refresh_request,
        build_revocation_request,
        parse_callback,
        parse_token_error,
        parse_token_response,
    )
    from wattplan.auth._httpx import ClientCredentialsAuth, GrantAuth
    from wattplan.auth._manager import AuthorizationStart, TokenManager, organisation_customer_id
    from wattplan.auth._pkce import (
        PkcePair,
        code_challenge_s256,
        generate_code_verifier,
        generate_state,
        new_pkce_pair,
    )
    from wattplan.auth._vault import AuthorizationSession, Grant, GrantKind, GrantStatus, TokenVault

__all__ = [
    "AuthorizationResponse",
    "AuthorizationSession",
    "AuthorizationStart",
    "ClientCredentialsAuth",
    "Grant",
    "GrantAuth",
    "GrantKind",
    "GrantStatus",
    "OAuthConfig",
    "PkcePair",
    "Token",
    "TokenCipher",
    "TokenManager",
    "TokenRequest",
    "TokenVault",
    "build_authorization_code_request",
    "build_authorization_url",
    "build_client_credentials_request",
    "build_refresh_request",
    "build_revocation_request",
    "code_challenge_s256",
    "create_callback_app",
    "generate_code_verifier",
    "generate_state",
    "new_pkce_pair",
    "organisation_customer_id",
    "parse_callback",
    "parse_token_error",
    "parse_token_response",
]
