"""An offline Nomos: OAuth 2.0 authorization server, hosted sign-in pages and read API.

**A development tool.** It serves fake customers with real public day-ahead prices, says
so at start-up and binds to loopback unless told otherwise. It follows Nomos's OpenAPI
spec (``2026-05-27.curie``; a copy ships with this package as
``openapi.2026-05-27.curie.json``), and a test validates every response the suite
produces against it.

Prices are the real DE-LU day-ahead series shipped in :mod:`wattplan.datasets` (Data:
Bundesnetzagentur | SMARD.de, CC BY 4.0); how they become all-in prices, and how dates
after the shipped period are served, is described in :mod:`wattplan.sandbox._data`.
Usage comes from five real household meters shipped in :mod:`wattplan.datasets` (Open
Power System Data, CoSSMic, CC BY 4.0; one per seeded customer, moved onto the current
dates by whole weeks, preliminary values with substitutes before the final ones), or from
the smooth BDEW H25 profile with ``SandboxConfig(usage_source="h25")``; see
:mod:`wattplan.sandbox._data` too.

Stable names
------------
``create_app(config=None, *, clock=None) -> Starlette``
    The ASGI app; its run-time state is ``app.state.sandbox`` (a :class:`SandboxState`).
``serve(config=None, *, host="127.0.0.1", port=0, clock=None)``
    Context manager: uvicorn in a background thread on a free loopback port; yields a
    :class:`RunningSandbox` with ``.base_url``, ``.clock``, ``.state``, ``.url(path)``
    and ``.stop()``.
``SandboxConfig``
    Seeded customers (:data:`DEMO_EMAIL` ``demo@example.com`` with an active 15-minute
    subscription, ``ended@example.com`` with an ended one, ``firma@example.com`` with a
    pending one), OAuth clients (:data:`DEFAULT_CLIENT_ID` ``wattplan-dev`` /
    :data:`DEFAULT_CLIENT_SECRET`, and ``other-app``), publication time (14:20
    Europe/Berlin), ``strict_refresh_reuse`` (on), ``access_token_lifetime_s`` (3600),
    ``usage_source`` (``"meters"`` or ``"h25"``), :class:`Faults`.
``SandboxClock``
    ``now()``, ``set(dt, ticking=False)``, ``advance(timedelta)``, ``resume_real_time()``;
    real time by default. Governs token, code and sign-in-code expiry, price publication
    and usage availability.
``SandboxState``
    ``counters`` (``refresh_grants_served``, ``authorization_code_grants_served``,
    ``client_credentials_grants_served``, ``refresh_reuse_detected``, ``grants_revoked``,
    ``code_replays``, ``api_requests``, ...), ``faults`` (settable at run time),
    ``oauth`` (grants; ``oauth.last_one_time_code(email)``; ``oauth.auto_approve_email``),
    ``exchanges`` (recorded request/response pairs when ``record_exchanges`` is on).

OAuth 2.0
---------
``GET /oauth/authorize`` → hosted pages ``/oauth/login`` (e-mail) → ``/oauth/verify``
(six-digit code) → ``/oauth/consent`` (allow/deny) → redirect to the registered
``redirect_uri`` (matched byte for byte; registered ``http://127.0.0.1`` URIs accept any
port) with ``code`` and ``state``, or ``error=access_denied`` and ``state``. PKCE S256
and plain; codes are single-use and valid 10 minutes (a replayed code revokes the grant
made from it). ``POST /oauth/token``: Basic client auth (or ``client_secret_post``), form
or JSON bodies; ``authorization_code``, ``refresh_token`` (rotated on every use; a
replayed refresh token revokes the whole grant while ``strict_refresh_reuse`` is on) and
``client_credentials`` (an organisation token that may read every customer; it also gets
a refresh token, as the spec's token response requires one). Token errors carry both the
flat Nomos body and RFC 6749 ``error``/``error_description``; ``invalid_grant`` and
``invalid_client`` come with HTTP 401 ``UNAUTHORIZED``. Customer tokens are read-only
(``read:*``; writes give 403) and last 60 minutes. ``POST /oauth/revoke`` (RFC 7009)
and ``/.well-known/oauth-authorization-server`` (RFC 8414) are there too.

Page elements (stable, for browser tests): ``#email`` and ``#send-code`` on the sign-in
page, ``#code`` and ``#verify`` on the code page, ``#allow`` and ``#deny`` on the consent
page; each form carries the hidden ``request`` field.

**The one-time code.** The sandbox sends no e-mail. The six-digit code is written to the
``wattplan.sandbox`` logger at WARNING level (so ``wattplan sandbox`` prints it), and
``GET /_sandbox/one-time-code?email=demo@example.com`` returns the last one. For demos
and headless tests, ``POST /_sandbox/auto-approve {"email": "demo@example.com"}`` makes
``/oauth/authorize`` sign that customer in and consent at once, and
``POST /_sandbox/authorize`` runs the whole consent without a browser.

Control endpoints (``/_sandbox/...``; only when ``SandboxConfig.control_endpoints``)
are listed in :mod:`wattplan.sandbox._control`.
"""

from __future__ import annotations

from wattplan._extras import requires as _requires

with _requires("sandbox", feature="wattplan.sandbox"):
    from wattplan.sandbox._app import DEVELOPMENT_WARNING, create_app
    from wattplan.sandbox._clock import SandboxClock
    from wattplan.sandbox._config import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEMO_EMAIL,
        Faults,
        OAuthClient,
        SandboxConfig,
        SeedCustomer,
        SeedSubscription,
        default_clients,
        default_customers,
    )
    from wattplan.sandbox._server import RunningSandbox, serve
    from wattplan.sandbox._state import Exchange, SandboxState

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEMO_EMAIL",
    "DEVELOPMENT_WARNING",
    "Exchange",
    "Faults",
    "OAuthClient",
    "RunningSandbox",
    "SandboxClock",
    "SandboxConfig",
    "SandboxState",
    "SeedCustomer",
    "SeedSubscription",
    "create_app",
    "default_clients",
    "default_customers",
    "serve",
]
