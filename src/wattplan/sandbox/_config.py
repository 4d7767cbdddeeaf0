"""Typed configuration of the sandbox: seeded customers, OAuth clients, switches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Literal

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEMO_EMAIL",
    "Faults",
    "OAuthClient",
    "SandboxConfig",
    "SeedCustomer",
    "SeedSubscription",
    "default_clients",
    "default_customers",
]

DEMO_EMAIL = "demo@example.com"
#: The development client every sandbox knows. Its secret is public on purpose: the
#: sandbox is a development tool and never holds real data.
DEFAULT_CLIENT_ID = "wattplan-dev"
DEFAULT_CLIENT_SECRET = "wattplan-dev-secret"  # noqa: S105 - published sandbox credential

Scope = str
UnpublishedMode = Literal["omit", "null"]
UsageSource = Literal["meters", "h25"]
MalformedMode = Literal["json", "content_type", "truncated"]


@dataclass(frozen=True)
class OAuthClient:
    """An app registered with the sandbox's authorization server.

    ``client_secret=None`` makes a public client (PKCE required, ``client_id`` in the body).
    ``redirect_uris`` are matched byte for byte; for ``http://127.0.0.1``/``[::1]``
    loopback URIs any port is accepted when ``SandboxConfig.loopback_any_port`` is on
    (RFC 8252 §7.3).
    """

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    name: str = "Development app"
    allowed_scopes: tuple[Scope, ...] = ("read:*", "write:*")
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")

    def __repr__(self) -> str:  # never show the secret
        return f"OAuthClient(client_id={self.client_id!r}, name={self.name!r})"


@dataclass(frozen=True)
class SeedSubscription:
    """A subscription of a seeded customer (ids keep the Nomos prefixes)."""

    id: str
    status: Literal["pending", "active", "ended"]
    start_at: datetime | None
    end_at: datetime | None = None
    estimated_usage_kwh: float = 3500.0
    created_at: datetime = datetime(2024, 11, 20, 9, 30, tzinfo=UTC)
    number: str = "4X44EMKX"
    meter_type: Literal["smart", "analog"] = "smart"
    household: str | None = None
    """The real household meter that serves the usage (one of
    :data:`wattplan.datasets.HOUSEHOLD_METERS`); ``None``: H25 scaled to
    ``estimated_usage_kwh``."""

    def __post_init__(self) -> None:
        from wattplan.datasets import HOUSEHOLD_METERS

        if self.household is not None and self.household not in HOUSEHOLD_METERS:
            raise ValueError(
                f"household: must be one of {list(HOUSEHOLD_METERS)}, got {self.household!r}"
            )


@dataclass(frozen=True)
class SeedCustomer:
    """A customer the sandbox knows, with her subscriptions."""

    id: str
    email: str
    first_name: str
    last_name: str
    subscriptions: tuple[SeedSubscription, ...]
    company_name: str | None = None
    created_at: datetime = datetime(2024, 11, 20, 9, 0, tzinfo=UTC)


def default_customers() -> tuple[SeedCustomer, ...]:
    """Three customers: the demo (active), one with an ended and one with a pending contract.

    Each is metered by one of the real households shipped with wattplan: the demo by
    residential3 (PV), the ended contract by residential2, the company by residential1
    (PV and a heat pump on the meter).
    """
    return (
        SeedCustomer(
            id="cus_demo00000000000000000001",
            email=DEMO_EMAIL,
            first_name="Dana",
            last_name="Demo",
            created_at=datetime(2024, 11, 20, 9, 0, tzinfo=UTC),
            subscriptions=(
                SeedSubscription(
                    id="sub_demo00000000000000000001",
                    status="active",
                    start_at=datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
                    estimated_usage_kwh=4000.0,
                    number="4X44EMKX",
                    created_at=datetime(2024, 11, 20, 9, 30, tzinfo=UTC),
                    household="residential3",
                ),
            ),
        ),
        SeedCustomer(
            id="cus_ended0000000000000000002",
            email="ended@example.com",
            first_name="Erik",
            last_name="Ended",
            created_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
            subscriptions=(
                SeedSubscription(
                    id="sub_ended0000000000000000002",
                    status="ended",
                    start_at=datetime(2024, 3, 31, 22, 0, tzinfo=UTC),
                    end_at=datetime(2025, 6, 30, 22, 0, tzinfo=UTC),
                    estimated_usage_kwh=2500.0,
                    number="7KQ2M9ZD",
                    created_at=datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
                    household="residential2",
                ),
            ),
        ),
        SeedCustomer(
            id="cus_firma0000000000000000003",
            email="firma@example.com",
            first_name="Frida",
            last_name="Firma",
            company_name="Firma Solar GmbH",
            created_at=datetime(2026, 10, 1, 10, 0, tzinfo=UTC),
            subscriptions=(
                SeedSubscription(
                    id="sub_firma0000000000000000003",
                    status="pending",
                    start_at=datetime(2027, 1, 31, 23, 0, tzinfo=UTC),
                    estimated_usage_kwh=12000.0,
                    number="P3NDNG01",
                    created_at=datetime(2026, 10, 1, 10, 30, tzinfo=UTC),
                    household="residential1",
                ),
            ),
        ),
    )


def default_clients() -> tuple[OAuthClient, ...]:
    """The development client plus a second app (to show that grants are per app)."""
    return (
        OAuthClient(
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            redirect_uris=(
                "http://127.0.0.1/callback",
                "http://localhost:8765/callback",
                "http://127.0.0.1:8765/callback",
            ),
            name="wattplan (development)",
        ),
        OAuthClient(
            client_id="other-app",
            client_secret="other-app-secret",  # noqa: S106 - published sandbox credential
            redirect_uris=("http://127.0.0.1/other/callback",),
            name="Another home-energy app",
            allowed_scopes=("read:*",),
        ),
    )


@dataclass
class Faults:
    """Fault-injection switches; change them at run time through ``state.faults``.

    Counters (``*_next``) are decremented as requests consume them. Faults apply to
    the read API only, except ``token_500_next`` and ``token_delay_s`` (the token
    endpoint).
    """

    rate_limit_next: int = 0
    """Answer the next N API requests with 429 and the rate-limit headers."""
    retry_after_s: int = 1
    """``retry-after`` / ``ratelimit-reset`` sent with an injected 429."""
    rate_limit_per_s: float | None = None
    """A real token-bucket limit per access token (the old docs say 10 req/s)."""
    server_error_next: int = 0
    """Answer the next N API requests with 500."""
    delay_s: float = 0.0
    """Sleep this long before answering each API request."""
    null_amounts: bool = False
    """Send ``amount: null`` for every 7th price item."""
    missing_slots: bool = False
    """Drop two price items in the middle of the series."""
    malformed: MalformedMode | None = None
    """Send a broken body: invalid JSON, the wrong content type, or a truncated JSON body."""
    malformed_next: int = 0
    """With ``malformed`` set: break only the next N responses (0: every response)."""
    token_500_next: int = 0
    """Process the next N token requests, then answer 500 (a lost token response)."""
    token_delay_s: float = 0.0
    """Hold every token request this long before processing it (widens refresh races)."""
    usage_server_error: bool = False
    """Answer every usage request with 500 while set (the meter data are out; prices not)."""
    usage_preliminary_factor: float = 1.0
    """Serve preliminary usage values times this factor; final values stay as metered (a
    correction shows when the final value replaces the preliminary one)."""

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox is started with.

    Parameters
    ----------
    customers, clients
        Seeded customers and registered OAuth clients (defaults:
        :func:`default_customers`, :func:`default_clients`).
    publication_time_local
        When tomorrow's prices appear (Europe/Berlin wall time), default 14:20.
    unpublished
        How prices that are not published yet are answered: ``"omit"`` leaves the items
        out, ``"null"`` sends them with ``amount: null`` (Nomos does not document it).
    strict_refresh_reuse
        A replayed (already rotated) refresh token revokes the whole grant, as strict
        servers do. Off: the replay is rejected but the grant lives on.
    access_token_lifetime_s, code_lifetime_s, one_time_code_lifetime_s
        Lifetimes of access tokens (3600), authorization codes (600) and the six-digit
        sign-in codes (600).
    refresh_token_lifetime_s
        Idle lifetime of refresh tokens (``None``: no expiry; Nomos does not document one).
    require_pkce
        Reject authorization requests without a PKCE challenge (Nomos: optional).
    loopback_any_port
        Accept any port for registered ``http://127.0.0.1``/``[::1]`` redirect URIs.
    control_endpoints
        Serve the dev-only ``/_sandbox/...`` endpoints (clock, faults, one-time codes,
        headless consent). On by default: the sandbox is a development tool.
    log_one_time_codes
        Write the six-digit sign-in codes to the ``wattplan.sandbox`` log (WARNING).
    quarter_hour_from
        Local date from which prices are served in 15-minute steps (hourly before).
    hourly_label
        ``resolution`` value for hourly prices (SPEC: ``hourly``; older docs: ``60min``).
    usage_source
        Where usage comes from: ``"meters"`` (default) serves each subscription's real
        household meter with preliminary substitutes before the final values;
        ``"h25"`` serves the BDEW H25 profile scaled to the estimated usage, smooth and
        fault-free (final equals preliminary).
    record_exchanges
        Keep every request/response pair in ``state.exchanges`` (for conformance tests).
    faults
        Initial fault switches.
    issuer
        Issuer URL for the metadata document (default: the request's base URL).
    """

    customers: tuple[SeedCustomer, ...] = field(default_factory=default_customers)
    clients: tuple[OAuthClient, ...] = field(default_factory=default_clients)
    publication_time_local: time = time(14, 20)
    unpublished: UnpublishedMode = "omit"
    strict_refresh_reuse: bool = True
    access_token_lifetime_s: int = 3600
    code_lifetime_s: int = 600
    one_time_code_lifetime_s: int = 600
    refresh_token_lifetime_s: int | None = None
    require_pkce: bool = False
    loopback_any_port: bool = True
    control_endpoints: bool = True
    log_one_time_codes: bool = True
    quarter_hour_from: date = date(2025, 10, 1)
    hourly_label: Literal["hourly", "60min"] = "hourly"
    usage_source: UsageSource = "meters"
    record_exchanges: bool = False
    faults: Faults = field(default_factory=Faults)
    issuer: str | None = None

    def __post_init__(self) -> None:
        if self.access_token_lifetime_s <= 0 or self.code_lifetime_s <= 0:
            raise ValueError("token and code lifetimes must be positive")
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("clients: duplicate client_id")
        emails = [c.email.lower() for c in self.customers]
        if len(emails) != len(set(emails)):
            raise ValueError("customers: duplicate email")
