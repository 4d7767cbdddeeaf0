"""The token manager: the I/O edge that runs the pure flow against a vault and a server.

It does four things, all single-flight per grant across threads and processes:

* starts and completes authorizations (PKCE S256, one-time ``state`` kept in the vault);
* hands out a customer's access token, refreshing it ahead of expiry or after a 401;
* hands out the organisation's client-credentials token, renewed shortly before expiry;
* marks dead grants ``reauthorization_required`` and lists them for re-consent.

The refresh protocol (DESIGN.md §6): under the row lock re-read the grant, refresh only
if still needed, commit a *refresh in flight* marker, send the refresh, then under the
lock again commit the new pair (keeping the old refresh token if none came back) before
the new access token is handed to anyone. A refresh is never retried blindly: an answer
that is lost after the request was sent leaves the grant ``reauthorization_required``.

Crashes and database blips are survived where that is safe: the marker records when the
request is about to leave (an attempt that died before that is simply taken over, at once
when its process is known to be gone), and a new pair whose write failed is kept in
memory and written again (with backoff, then on the next call) instead of being dropped.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from wattplan.auth._flow import (
    OAuthConfig,
    Token,
    TokenRequest,
    build_authorization_code_request,
    build_authorization_url,
    build_client_credentials_request,
    build_refresh_request,
    build_revocation_request,
    parse_callback,
    parse_token_response,
)
from wattplan.auth._pkce import generate_state, new_pkce_pair
from wattplan.auth._vault import Grant, GrantKind, GrantStatus, TokenVault
from wattplan.exceptions import (
    GrantNotFoundError,
    InvalidGrantError,
    OAuthError,
    ReauthorizationRequiredError,
    StateMismatchError,
    TokenVaultError,
    TransportError,
)

if TYPE_CHECKING:
    from wattplan.auth._httpx import ClientCredentialsAuth, GrantAuth

__all__ = ["AuthorizationStart", "TokenManager", "organisation_customer_id"]

logger = logging.getLogger(__name__)

# Errors that prove the request never reached the server: safe to clear the marker.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _transport_of(client: httpx.Client, url: str) -> httpx.BaseTransport | None:
    # httpx has no public way to ask which transport (mounts included) serves a URL
    pick = getattr(client, "_transport_for_url", None)
    if pick is None:
        return None
    try:
        transport = pick(httpx.URL(url))
    except Exception:  # an unknown client: treat it as one that does not report
        return None
    return transport if isinstance(transport, httpx.BaseTransport) else None


def organisation_customer_id(scope: str | None = None) -> str:
    """The vault key under which the organisation's client-credentials token is kept."""
    return f"@organisation:{scope or ''}"


@dataclass(frozen=True)
class AuthorizationStart:
    """Where to send the customer (``url``), and until when the one-time state is valid."""

    url: str
    state: str
    customer_id: str
    expires_at: datetime

    def __repr__(self) -> str:
        return (
            f"AuthorizationStart(customer_id={self.customer_id!r}, expires_at={self.expires_at!r})"
        )


class TokenManager:
    """Access tokens for the customers of one OAuth client, kept in a :class:`TokenVault`.

    Parameters
    ----------
    config:
        The authorization server's endpoints and the client's id, secret, redirect URI
        and scope.
    vault:
        Where grants live (shared by every thread and process of the vendor).
    http:
        The client that talks to the token endpoint (default: a new ``httpx.Client`` with
        a 30 s timeout). Inject ``httpx.Client(transport=...)`` in tests.
    refresh_margin:
        Refresh this long before the access token expires (default 5 min; keep it well
        below the token lifetime, 60 min at Nomos, or every call refreshes).
    refresh_lease:
        How long a refresh may hold the *in flight* marker (default 2 min, more than the
        HTTP timeout). A marker older than this belongs to a dead attempt (one whose
        process is known to have ended on this host is dead at once).
    refresh_wait:
        How long a caller waits for another process's refresh of the same grant before it
        gives up with a transient :class:`~wattplan.TokenVaultError` (default 40 s).
    store_retries:
        How often writing a newly received token pair is tried again (with backoff) when
        the vault fails (default 5); after that the pair is kept in memory and written on
        the next call for that customer.
    session_ttl:
        How long a started authorization (its ``state``) stays valid (default 15 min).
    single_flight:
        ``False`` turns off locking and the marker: each caller refreshes on its own. It
        exists only to demonstrate the race in tests; never use it in production.
    """

    def __init__(
        self,
        *,
        config: OAuthConfig,
        vault: TokenVault,
        http: httpx.Client | None = None,
        refresh_margin: timedelta = timedelta(minutes=5),
        refresh_lease: timedelta = timedelta(minutes=2),
        refresh_wait: timedelta = timedelta(seconds=40),
        store_retries: int = 5,
        session_ttl: timedelta = timedelta(minutes=15),
        single_flight: bool = True,
    ) -> None:
        if refresh_margin < timedelta(0):
            raise ValueError("refresh_margin must not be negative")
        self.config = config
        self.vault = vault
        self._http = http if http is not None else httpx.Client(timeout=30.0)
        self._owns_http = http is None
        self.refresh_margin = refresh_margin
        self.refresh_lease = refresh_lease
        self.refresh_wait = refresh_wait
        self.store_retries = max(0, store_retries)
        self.session_ttl = session_ttl
        self.single_flight = single_flight
        self._sleep: Callable[[float], None] = time.sleep
        # new pairs received but not yet written (vault down): customer -> (attempt, token)
        self._unstored: dict[str, tuple[str, Token]] = {}
        self._unstored_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenManager(client_id={self.config.client_id!r}, vault={self.vault!r})"

    def close(self) -> None:
        """Close the HTTP client if the manager created it."""
        if self._owns_http:
            self._http.close()

    @property
    def client_id(self) -> str:
        """The OAuth client whose grants this manager handles."""
        return self.config.client_id

    # -- authorization ---------------------------------------------------------------

    def start_authorization(
        self,
        customer_id: str,
        *,
        redirect_uri: str | None = None,
        binding: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> AuthorizationStart:
        """Begin a consent for ``customer_id`` (the vendor's own key for the customer).

        A fresh PKCE verifier and one-time state are stored in the vault; the returned URL
        carries only the S256 challenge. ``binding`` ties the state to one browser.
        """
        redirect = redirect_uri or self.config.redirect_uri
        if not redirect:
            raise ValueError("no redirect_uri configured")
        pkce = new_pkce_pair()
        state = generate_state()
        session = self.vault.create_authorization_session(
            state=state,
            client_id=self.client_id,
            customer_id=customer_id,
            redirect_uri=redirect,
            code_verifier=pkce.verifier,
            ttl=self.session_ttl,
            binding=binding,
        )
        url = build_authorization_url(
            authorization_endpoint=self.config.authorization_endpoint,
            client_id=self.client_id,
            redirect_uri=redirect,
            state=state,
            code_challenge=pkce.challenge,
            scope=self.config.scope,
            extra=extra,
        )
        logger.info("authorization started for customer %s", customer_id)
        return AuthorizationStart(
            url=url, state=state, customer_id=customer_id, expires_at=session.expires_at
        )

    def complete_authorization(
        self, params: Mapping[str, str], *, binding: str | None = None
    ) -> Grant:
        """Handle the redirect's query parameters: ``error``, then ``state``, then exchange.

        Raises :class:`~wattplan.AccessDeniedError` / :class:`~wattplan.OAuthError` for an
        ``error=`` callback (its state is used up too), :class:`~wattplan.StateMismatchError`
        for an unknown, replayed, expired or foreign state or a wrong ``iss``, and
        :class:`~wattplan.InvalidGrantError` when the server rejects the code. Only a
        callback that passed every check sends a token request.
        """
        try:
            response = parse_callback(params)
        except OAuthError:
            state = params.get("state")
            if state:
                with contextlib.suppress(StateMismatchError):  # burn it: no second use
                    self.vault.consume_authorization_session(state=state, binding=binding)
            raise
        session = self.vault.consume_authorization_session(state=response.state, binding=binding)
        if session.client_id != self.client_id:
            raise StateMismatchError("authorization callback rejected: state of another client")
        if (
            response.iss is not None
            and self.config.issuer is not None
            and response.iss.rstrip("/") != self.config.issuer.rstrip("/")
        ):
            raise StateMismatchError("authorization callback rejected: wrong issuer (iss)")
        request = build_authorization_code_request(
            self.config,
            code=response.code,
            code_verifier=session.code_verifier,
            redirect_uri=session.redirect_uri,
        )
        token = self._send(request)
        grant = self.vault.save_grant(
            client_id=self.client_id, customer_id=session.customer_id, token=token
        )
        logger.info("customer %s connected (grant version %d)", grant.customer_id, grant.version)
        return grant

    def reauthorization_required(self) -> list[Grant]:
        """This client's grants whose customers must consent again."""
        return self.vault.list_grants(
            client_id=self.client_id, status=GrantStatus.REAUTHORIZATION_REQUIRED
        )

    def revoke(self, customer_id: str, *, at_server: bool = True) -> Grant:
        """Disconnect a customer: revoke the grant at the server, then wipe the tokens.

        With ``at_server`` and a ``revocation_endpoint`` configured, the refresh token is
        revoked there first (RFC 7009; the server ends the grant, and only this app's
        grant). The stored grant is kept with status ``revoked`` and no tokens, also when
        the server could not be reached (that is logged as a warning).
        """
        grant = self.vault.get_grant(client_id=self.client_id, customer_id=customer_id)
        if (
            at_server
            and self.config.revocation_endpoint
            and grant.token is not None
            and grant.token.refresh_token is not None
        ):
            request = build_revocation_request(self.config, refresh_token=grant.token.refresh_token)
            try:
                response = self._http.post(
                    request.url, headers=dict(request.headers), data=dict(request.data)
                )
                if response.status_code != 200:
                    logger.warning(
                        "revocation for customer %s answered HTTP %d",
                        customer_id,
                        response.status_code,
                    )
            except httpx.HTTPError as exc:
                logger.warning(
                    "revocation for customer %s failed: %s", customer_id, type(exc).__name__
                )
        logger.info("customer %s disconnected", customer_id)
        return self.vault.set_status(
            client_id=self.client_id, customer_id=customer_id, status=GrantStatus.REVOKED
        )

    # -- tokens ----------------------------------------------------------------------

    def auth(self, customer_id: str) -> GrantAuth:
        """An ``httpx.Auth`` acting as ``customer_id`` (e.g. for ``NomosClient(auth=...)``)."""
        from wattplan.auth._httpx import GrantAuth

        return GrantAuth(self, customer_id)

    def client_credentials_auth(self, *, scope: str | None = None) -> ClientCredentialsAuth:
        """An ``httpx.Auth`` acting as the organisation (client-credentials grant)."""
        from wattplan.auth._httpx import ClientCredentialsAuth

        return ClientCredentialsAuth(self, scope=scope)

    def get_token(self, customer_id: str, *, rejected_version: int | None = None) -> Grant:
        """A grant whose access token is good for at least ``refresh_margin``.

        ``rejected_version``: the version whose access token the API just refused (401); a
        refresh then happens unless another caller already stored a newer version.
        Raises :class:`~wattplan.ReauthorizationRequiredError` for a dead grant and
        :class:`~wattplan.GrantNotFoundError` when there is none.
        """
        stored = self._store_unstored(customer_id)
        if stored is not None:
            return stored
        grant = self.vault.get_grant(client_id=self.client_id, customer_id=customer_id)
        if grant.status is not GrantStatus.ACTIVE:
            raise ReauthorizationRequiredError(
                f"the grant of client {self.client_id!r} for customer {customer_id!r} needs a "
                f"new consent ({grant.reauthorization_reason or grant.status.value})",
                client_id=self.client_id,
                customer_id=customer_id,
            )
        # Still good: use it, even while another worker refreshes ahead of time (a marker
        # left by a dead attempt is dealt with when the token next needs refreshing).
        if not self._needs_refresh(grant, rejected_version):
            return grant
        return self._refresh(customer_id, rejected_version, grant)

    def organisation_token(
        self, *, scope: str | None = None, rejected_version: int | None = None
    ) -> Grant:
        """The organisation's client-credentials token, renewed shortly before expiry."""
        customer_id = organisation_customer_id(scope)
        stored = self._store_unstored(customer_id)
        if stored is not None:
            return stored
        try:
            grant = self.vault.get_grant(client_id=self.client_id, customer_id=customer_id)
        except GrantNotFoundError:
            # an empty row first, so that even the first token is fetched single-flight
            grant = self.vault.ensure_grant(
                client_id=self.client_id,
                customer_id=customer_id,
                kind=GrantKind.CLIENT_CREDENTIALS,
            )
        if not self._needs_refresh(grant, rejected_version):
            return grant
        return self._refresh(customer_id, rejected_version, grant, scope=scope)

    def _needs_refresh(self, grant: Grant, rejected_version: int | None = None) -> bool:
        if grant.token is None:
            return True
        if rejected_version is not None and grant.version <= rejected_version:
            return True
        margin = self.refresh_margin
        if grant.expires_at is not None and grant.expires_at > grant.updated_at:
            # Never let the margin reach the token's lifetime (from when it was stored):
            # otherwise every fresh token already counts as expiring and each caller
            # refreshes again (Authlib #716). Half the lifetime at most.
            margin = min(margin, (grant.expires_at - grant.updated_at) / 2)
        return grant.token.expires_within(margin, now=self.vault.now())

    def _refresh(
        self,
        customer_id: str,
        rejected_version: int | None,
        seen: Grant,
        *,
        scope: str | None = None,
    ) -> Grant:
        if not self.single_flight:
            return self._refresh_unlocked(seen, scope=scope)
        attempt_id = secrets.token_hex(8)
        wait = min(self.refresh_wait, self.refresh_lease + timedelta(seconds=10))
        deadline = time.monotonic() + wait.total_seconds()
        delay = 0.01
        while True:
            claim = self.vault.claim_refresh(
                client_id=self.client_id,
                customer_id=customer_id,
                attempt_id=attempt_id,
                lease=self.refresh_lease,
                needs_refresh=lambda g: self._needs_refresh(g, rejected_version),
            )
            if claim.outcome == "fresh":
                return claim.grant
            if claim.outcome == "claimed":
                break
            if time.monotonic() > deadline:
                until = claim.busy_until.isoformat() if claim.busy_until else "unknown"
                raise TokenVaultError(
                    f"another refresh of customer {customer_id!r}'s grant is still running "
                    f"(its lease ends {until})",
                    transient=True,
                )
            time.sleep(delay + secrets.randbelow(10) / 1000)
            delay = min(delay * 2, 0.2)

        grant = claim.grant
        kind = grant.kind
        logger.debug(
            "refreshing grant of customer %s (version %d, %s)",
            customer_id,
            grant.version,
            kind.value,
        )
        if kind is GrantKind.CLIENT_CREDENTIALS:
            request = build_client_credentials_request(self.config, scope=scope)
        else:
            if grant.token is None or grant.token.refresh_token is None:
                self.vault.abandon_refresh(
                    client_id=self.client_id,
                    customer_id=customer_id,
                    attempt_id=attempt_id,
                    reauthorization_reason="no_refresh_token",
                )
                raise self._reauth(customer_id, "no refresh token stored")
            request = build_refresh_request(self.config, refresh_token=grant.token.refresh_token)
        previous_rt = grant.token.refresh_token if grant.token is not None else None

        def mark_sent() -> None:
            self.vault.mark_refresh_sent(
                client_id=self.client_id, customer_id=customer_id, attempt_id=attempt_id
            )

        rotating = kind is GrantKind.AUTHORIZATION_CODE
        try:
            token = self._send(
                request,
                previous_refresh_token=previous_rt,
                before_sending=mark_sent if rotating else None,
            )
        except TokenVaultError:
            # the marker could not be moved to "sent", so the request never left
            with contextlib.suppress(TokenVaultError):
                self.vault.abandon_refresh(
                    client_id=self.client_id, customer_id=customer_id, attempt_id=attempt_id
                )
            raise
        except TransportError as exc:
            lost = not isinstance(exc.__cause__, _NOT_SENT)
            reason = (
                "refresh_outcome_unknown" if lost and kind is GrantKind.AUTHORIZATION_CODE else None
            )
            self.vault.abandon_refresh(
                client_id=self.client_id,
                customer_id=customer_id,
                attempt_id=attempt_id,
                reauthorization_reason=reason,
            )
            if reason is not None:
                logger.warning(
                    "refresh of customer %s: the answer was lost after sending; the refresh "
                    "token may be rotated, so the grant is marked reauthorization_required",
                    customer_id,
                )
                raise self._reauth(customer_id, reason) from exc
            raise
        except OAuthError as exc:
            # A 5xx or a garbled 200 may come after the server rotated the refresh token:
            # the outcome is unknown, so the grant cannot be trusted any more.
            unknown = exc.error == "invalid_response" or (exc.status_code or 0) >= 500
            dead = kind is GrantKind.AUTHORIZATION_CODE and (
                isinstance(exc, InvalidGrantError) or unknown
            )
            reason = None
            if dead:
                reason = "refresh_outcome_unknown" if unknown else exc.error
            self.vault.abandon_refresh(
                client_id=self.client_id,
                customer_id=customer_id,
                attempt_id=attempt_id,
                reauthorization_reason=reason,
            )
            if dead:
                logger.warning(
                    "refresh of customer %s rejected (%s): reauthorization required",
                    customer_id,
                    exc.error,
                )
                raise self._reauth(customer_id, reason or exc.error) from exc
            raise
        # Anything else (a bug, KeyboardInterrupt) leaves the marker in place on purpose:
        # the outcome is unknown, the lease runs out and the next caller marks the grant.
        new = self._store(customer_id, attempt_id, token)
        logger.info(
            "grant of customer %s refreshed: version %d, expires %s",
            customer_id,
            new.version,
            new.expires_at.isoformat() if new.expires_at else "unknown",
        )
        return new

    def _store(self, customer_id: str, attempt_id: str, token: Token) -> Grant:
        """Write a new pair; on a vault failure retry with backoff, then keep it in memory."""
        delay = 0.2
        for attempt in range(self.store_retries + 1):
            try:
                new = self.vault.complete_refresh(
                    client_id=self.client_id,
                    customer_id=customer_id,
                    attempt_id=attempt_id,
                    token=token,
                )
            except TokenVaultError as exc:
                if not exc.transient:
                    with self._unstored_lock:
                        self._unstored.pop(customer_id, None)
                    if self._stored_already(customer_id, token):
                        # the earlier try committed, only its answer was lost
                        return self.vault.get_grant(
                            client_id=self.client_id, customer_id=customer_id
                        )
                    raise  # the marker is no longer ours: the pair is of no use
                if attempt == self.store_retries:
                    with self._unstored_lock:
                        self._unstored[customer_id] = (attempt_id, token)
                    logger.warning(
                        "refresh of customer %s: the new tokens could not be stored (%s); "
                        "kept in memory and stored on the next call",
                        customer_id,
                        exc.message,
                    )
                    raise TokenVaultError(
                        f"the new tokens of customer {customer_id!r} could not be stored yet "
                        "(the token vault failed); they are kept in memory and stored on the "
                        "next call",
                        transient=True,
                    ) from exc
                self._sleep(delay + secrets.randbelow(100) / 1000)
                delay = min(delay * 2, 2.0)
            else:
                with self._unstored_lock:
                    self._unstored.pop(customer_id, None)
                return new
        raise AssertionError("unreachable")  # pragma: no cover

    def _stored_already(self, customer_id: str, token: Token) -> bool:
        try:
            grant = self.vault.get_grant(client_id=self.client_id, customer_id=customer_id)
        except (TokenVaultError, GrantNotFoundError):
            return False
        return grant.token is not None and secrets.compare_digest(
            grant.token.access_token.get_secret_value(), token.access_token.get_secret_value()
        )

    def _store_unstored(self, customer_id: str) -> Grant | None:
        """Write a pair kept in memory after a vault failure; ``None`` if there is none."""
        with self._unstored_lock:
            pending = self._unstored.get(customer_id)
        if pending is None:
            return None
        attempt_id, token = pending
        try:
            grant = self._store(customer_id, attempt_id, token)
        except TokenVaultError as exc:
            if exc.transient:
                raise
            return None  # taken over meanwhile (e.g. a new consent): go the normal way
        logger.info("grant of customer %s: new tokens kept in memory now stored", customer_id)
        return grant

    def _refresh_unlocked(self, seen: Grant, *, scope: str | None) -> Grant:
        if seen.kind is GrantKind.CLIENT_CREDENTIALS:
            request = build_client_credentials_request(self.config, scope=scope)
        else:
            if seen.token is None or seen.token.refresh_token is None:
                raise self._reauth(seen.customer_id, "no refresh token stored")
            request = build_refresh_request(self.config, refresh_token=seen.token.refresh_token)
        previous_rt = seen.token.refresh_token if seen.token is not None else None
        try:
            token = self._send(request, previous_refresh_token=previous_rt)
        except InvalidGrantError as exc:
            self.vault.set_status(
                client_id=self.client_id,
                customer_id=seen.customer_id,
                status=GrantStatus.REAUTHORIZATION_REQUIRED,
                reason=exc.error,
            )
            raise self._reauth(seen.customer_id, exc.error) from exc
        return self.vault.save_grant(
            client_id=self.client_id, customer_id=seen.customer_id, token=token, kind=seen.kind
        )

    def _reports_sending(self, url: str) -> bool:
        """Whether the transport reports httpcore trace events (httpx's own HTTPTransport)."""
        return isinstance(_transport_of(self._http, url), httpx.HTTPTransport)

    def _reauth(self, customer_id: str, reason: str) -> ReauthorizationRequiredError:
        return ReauthorizationRequiredError(
            f"the grant of client {self.client_id!r} for customer {customer_id!r} needs a new "
            f"consent ({reason})",
            client_id=self.client_id,
            customer_id=customer_id,
        )

    def _send(
        self,
        request: TokenRequest,
        *,
        previous_refresh_token: SecretStr | None = None,
        before_sending: Callable[[], None] | None = None,
    ) -> Token:
        """POST a token request; typed errors, no retries (a refresh is not idempotent).

        ``before_sending`` runs right before the request's first byte goes out (after the
        connection is made), or before the request is handed to a transport that cannot
        report that moment; if it raises, nothing is sent.
        """
        started = self.vault.now()
        extensions: dict[str, Any] = {}
        if before_sending is not None:
            if self._reports_sending(request.url):
                done: list[bool] = []

                def trace(event: str, info: Mapping[str, Any]) -> None:
                    # httpcore's trace events: "http11.send_request_headers.started" etc.
                    if not done and event.endswith(".send_request_headers.started"):
                        done.append(True)
                        before_sending()

                extensions["trace"] = trace
            else:
                before_sending()
        try:
            response = self._http.post(
                request.url,
                headers=dict(request.headers),
                data=dict(request.data),
                extensions=extensions,
            )
        except httpx.HTTPError as exc:
            logger.warning("token request (%s) failed: %s", request.grant_type, type(exc).__name__)
            raise TransportError(
                f"token request ({request.grant_type}) failed: {type(exc).__name__}"
            ) from exc
        logger.debug("token request (%s): HTTP %d", request.grant_type, response.status_code)
        return parse_token_response(
            status_code=response.status_code,
            body=response.content,
            requested_at=started.astimezone(UTC),
            requested_scope=request.data.get("scope") or self.config.scope,
            previous_refresh_token=previous_refresh_token,
        )
