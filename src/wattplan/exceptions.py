"""The whole wattplan exception tree.

Every error that wattplan raises on purpose is a :class:`WattplanError`. Foreign errors
(httpx, SQLAlchemy, PuLP, pydantic) are wrapped with ``raise ... from exc`` so that the
cause stays visible in the traceback, but callers only ever need to catch ours.

``transient`` tells a caller whether trying the same thing again later may succeed
(a timeout, a 503, a rate limit) or not (bad input, a revoked grant).

::

    WattplanError
    ├── ConfigurationError            settings missing or invalid (e.g. no encryption key)
    ├── MissingExtraError             a feature's optional extra is not installed (an ImportError)
    ├── ScenarioError                 invalid scenario input; names the key and the reason
    │   └── PriceDataError            prices missing, with holes, or not covering the horizon
    ├── ForecastInputError            invalid metered history or window; names the field or row
    ├── WeatherError                  anything about a weather source (wattplan.weather)
    │   ├── WeatherUnavailableError   connection failed, timed out, or a 5xx answer  [transient]
    │   ├── WeatherRateLimitedError   429 (retry_after_s)                 [transient]
    │   ├── WeatherAPIError           an error body {"error": true, "reason": ...}
    │   └── MalformedWeatherError     body not JSON or off-format, values missing for the window
    │       └── MissingWeatherVariableError   a variable the source needs is absent (variable)
    ├── OptimizationError             the solver failed (not: the plan has a shortfall)
    │   └── SolverTimeoutError        no solution within the time limit   [transient]
    ├── NomosError                    anything about the Nomos API
    │   ├── TransportError            connection failed or timed out      [transient]
    │   ├── MalformedResponseError    body not JSON, wrong content type, truncated, schema off
    │   ├── PricesNotPublishedError   the requested day's prices are not out yet  [transient]
    │   └── NomosAPIError             the API answered with an error body {code, message, requestId}
    │       ├── BadRequestError       400 / 422
    │       ├── UnauthorizedError     401
    │       ├── ForbiddenError        403
    │       ├── NotFoundError         404
    │       ├── RateLimitedError      429 (retry_after_s)                 [transient]
    │       └── ServerError           5xx                                 [transient]
    ├── AuthError                     anything about OAuth and stored grants
    │   ├── OAuthError                an RFC 6749 error answer (error, error_description)
    │   │   ├── AccessDeniedError     the customer said no on the consent page
    │   │   └── InvalidGrantError     code or refresh token rejected
    │   ├── StateMismatchError        callback state unknown, replayed or expired
    │   ├── ReauthorizationRequiredError   the grant is dead: send the customer to consent again
    │   ├── GrantNotFoundError        no stored grant for this client and customer
    │   ├── TokenVaultError           the token store failed (database, decryption)
    │   └── GrantConflictError        a second writer on one grant (a copied vault)
    └── PlannerError                  the planner process (store, sinks, scheduling)
        ├── AccessError               a caller may not see or change this customer's data
        ├── StoreError                the plan store is unreachable, full or read-only [transient]
        └── ConflictError             a concurrent change won; try again  [transient]

Messages never contain secrets: no tokens, codes, verifiers or client secrets.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AccessError",
    "AuthError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "ForecastInputError",
    "GrantConflictError",
    "GrantNotFoundError",
    "InvalidGrantError",
    "MalformedResponseError",
    "MalformedWeatherError",
    "MissingExtraError",
    "MissingWeatherVariableError",
    "NomosAPIError",
    "NomosError",
    "NotFoundError",
    "OAuthError",
    "OptimizationError",
    "PlannerError",
    "PriceDataError",
    "PricesNotPublishedError",
    "RateLimitedError",
    "ReauthorizationRequiredError",
    "ScenarioError",
    "ServerError",
    "SolverTimeoutError",
    "StateMismatchError",
    "StoreError",
    "TokenVaultError",
    "TransportError",
    "UnauthorizedError",
    "WattplanError",
    "WeatherAPIError",
    "WeatherError",
    "WeatherRateLimitedError",
    "WeatherUnavailableError",
]


class WattplanError(Exception):
    """Base class of every error wattplan raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient


class ConfigurationError(WattplanError):
    """A setting is missing or invalid."""


class MissingExtraError(WattplanError, ImportError):
    """A feature needs an optional dependency that is not installed.

    ``feature`` is what was asked for (``wattplan.planner``, ``Plan.plot``), ``extra`` the
    optional extra of the wattplan distribution that brings what is missing, and
    ``distribution`` the missing package(s); the message ends with the pip command to run.
    """

    def __init__(self, *, feature: str, extra: str, distribution: str) -> None:
        self.feature = feature
        self.extra = extra
        self.distribution = distribution
        self.pip_command = f"pip install 'wattplan[{extra}]'"
        super().__init__(
            f"{feature} needs the {extra!r} extra (not installed: {distribution}): "
            f"{self.pip_command}"
        )


class ScenarioError(WattplanError, ValueError):
    """A scenario (or a value passed to the optimizer) is invalid.

    ``key`` is the dotted path of the offending key (``devices[0].capacity_kwh``) and
    ``reason`` says what is wrong with it. ``errors`` lists every problem found, as
    ``(key, reason)`` pairs, when validation found more than one.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        key: str = "",
        reason: str = "",
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        self.key = key
        self.reason = reason
        self.errors = errors if errors is not None else ([(key, reason)] if key else [])
        if message is None:
            message = f"{key}: {reason}" if key else reason
        super().__init__(message)


class PriceDataError(ScenarioError):
    """Prices are missing, have holes, are not tz-aware or do not cover the horizon."""


class ForecastInputError(WattplanError, ValueError):
    """The metered history or the window given to a forecast is invalid.

    ``key`` names the field, column or row (``start``, ``kwh``, ``row 7``) and ``reason``
    says what is wrong with it.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class WeatherError(WattplanError):
    """A weather source could not deliver the weather of a window."""


class WeatherUnavailableError(WeatherError):
    """The weather service could not be reached, timed out or answered with a 5xx."""

    transient = True


class WeatherRateLimitedError(WeatherError):
    """The weather service answered 429; ``retry_after_s`` from its ``Retry-After`` header."""

    transient = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class WeatherAPIError(WeatherError):
    """The weather service rejected the request (Open-Meteo: ``{"error": true, "reason"}``)."""

    def __init__(self, message: str, *, status_code: int, reason: str) -> None:
        self.status_code = status_code
        self.reason = reason
        super().__init__(message)


class MalformedWeatherError(WeatherError):
    """The answer is not JSON, not in the documented format, or lacks values for the window."""


class MissingWeatherVariableError(MalformedWeatherError):
    """A variable the source needs (``variable``) is missing from the answer."""

    def __init__(self, message: str, *, variable: str) -> None:
        self.variable = variable
        super().__init__(message)


class OptimizationError(WattplanError):
    """The solver failed to produce a plan (a shortfall is not an error: see Plan.status)."""


class SolverTimeoutError(OptimizationError):
    """The solver found no feasible solution within its time limit."""

    transient = True


class NomosError(WattplanError):
    """Anything that went wrong talking to the Nomos API (or the sandbox)."""


class TransportError(NomosError):
    """The connection failed or timed out; no usable answer arrived."""

    transient = True


class MalformedResponseError(NomosError):
    """The answer could not be parsed: not JSON, wrong content type, truncated or off-schema."""


class PricesNotPublishedError(NomosError):
    """The requested day's prices are not published yet (day-ahead prices appear ~14:20 CET)."""

    transient = True


class NomosAPIError(NomosError):
    """The API answered with an error body ``{code, message, requestId, docs, errors}``."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        docs: str | None = None,
        errors: list[dict[str, object]] | None = None,
        transient: bool | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.docs = docs
        self.errors = errors or []
        detail = f"{status_code} {code or 'ERROR'}: {message}"
        if request_id:
            detail += f" (requestId {request_id})"
        super().__init__(detail, transient=transient)


class BadRequestError(NomosAPIError):
    """400 or 422: the request was rejected as invalid."""


class UnauthorizedError(NomosAPIError):
    """401: missing, expired or revoked credentials."""


class ForbiddenError(NomosAPIError):
    """403: the credentials may not do this (e.g. a write with a read-only customer token)."""


class NotFoundError(NomosAPIError):
    """404: no such resource (or not visible to these credentials)."""


class RateLimitedError(NomosAPIError):
    """429: too many requests; ``retry_after_s`` says how long the server asked us to wait."""

    transient = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ServerError(NomosAPIError):
    """5xx: the server failed."""

    transient = True


class AuthError(WattplanError):
    """Anything about OAuth, consent and stored grants."""


class OAuthError(AuthError):
    """An RFC 6749 error answer: ``error`` code and optional ``error_description``."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        *,
        status_code: int | None = None,
        transient: bool | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.status_code = status_code
        msg = error if not description else f"{error}: {description}"
        super().__init__(msg, transient=transient)


class AccessDeniedError(OAuthError):
    """The customer denied consent (``error=access_denied`` at the callback)."""


class InvalidGrantError(OAuthError):
    """The authorization code or refresh token was rejected (``invalid_grant``)."""


class StateMismatchError(AuthError):
    """The callback's ``state`` is unknown, was already used, or has expired."""


class ReauthorizationRequiredError(AuthError):
    """The grant can no longer be refreshed: the customer must consent again.

    Nothing is deleted; the grant is marked ``reauthorization_required``.
    """

    def __init__(self, message: str, *, client_id: str = "", customer_id: str = "") -> None:
        self.client_id = client_id
        self.customer_id = customer_id
        super().__init__(message)


class GrantNotFoundError(AuthError):
    """No grant is stored for this client and customer."""


class TokenVaultError(AuthError):
    """The token store failed (database error, undecryptable row, wrong key)."""


class GrantConflictError(AuthError):
    """A second writer on one grant: this vault is a copy of another one.

    Refreshing a grant from two copies of one vault would present the same rotating
    refresh token twice, and the server then revokes the grant for both. The copy refuses
    to refresh; stop the second planner, or adopt the copy once the original is retired
    (:meth:`~wattplan.auth.TokenVault.adopt`). Carries ``client_id`` and ``customer_id``.
    """

    def __init__(self, message: str, *, client_id: str, customer_id: str) -> None:
        super().__init__(message)
        self.client_id = client_id
        self.customer_id = customer_id


class PlannerError(WattplanError):
    """Something in the planner process failed (store, sinks, scheduling)."""


class AccessError(PlannerError):
    """The caller may not read or change this customer's data."""


class StoreError(PlannerError):
    """The plan store failed: the database is unreachable, full or read-only."""

    transient = True


class ConflictError(PlannerError):
    """A concurrent change to the same record won, more often than the retries allow."""

    transient = True
