"""The OpenAPI 3.1 document of the HTTP APIs wattplan serves, generated from pydantic models.

Every body the planner's API (:mod:`wattplan.planner.api`) and the optimize API
(:mod:`wattplan.optimize_api`) send, and the scenario ``POST /optimize`` takes, is
described by a pydantic model; the paths below list each route with its parameters and
every status it can answer. The schemas come from
``pydantic``'s JSON Schema (draft 2020-12, which OpenAPI 3.1 uses as is), so the document
and the models cannot drift apart; the tests validate every response the suite receives
against the served document, and compare its paths with the app's routes.

The models describe, they do not build the responses: the handlers keep their dicts, and a
handler that drifts from its model fails the tests, not the customer.
"""

from __future__ import annotations

import functools
import html
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

__all__ = ["docs_page", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"


class _Open(BaseModel):
    """A body that may gain keys in a later version (clients must ignore unknown keys)."""

    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every refusal: a machine-readable ``error``, a sentence, and the key at fault."""

    error: str = Field(description="e.g. unauthorized, invalid_query, body_too_large")
    message: str
    key: str | None = Field(None, description="the key or field at fault (dotted path)")
    reason: str | None = None


class Shortfall(_Open):
    device: str
    kind: str = Field(description="energy, end_soc, comfort, end_temperature, not_run, ...")
    amount: float | None
    unit: str
    start: str | None = Field(description="ISO 8601 with offset")
    end: str | None = Field(description="ISO 8601 with offset")
    message: str


class ScheduleRow(BaseModel):
    """One slot: ``start`` and one number (kW, kWh, °C, ct/kWh) per column; null: unknown."""

    model_config = ConfigDict(extra="allow")
    start: str = Field(description="ISO 8601 with offset")
    __pydantic_extra__: dict[str, float | None] = Field(init=False)


class PlanDocument(_Open):
    """The plan as ``wattplan plan --json`` prints it (README: "Planning a household")."""

    status: Literal["optimal", "feasible_with_shortfall", "infeasible", "error"]
    cost_eur: float | None
    baseline_cost_eur: float | None
    savings_eur: float | None
    resolution_minutes: int
    devices: list[dict[str, str]]
    schedule: list[ScheduleRow]
    shortfalls: list[Shortfall] = []
    explanation: str = ""


class PlanEnvelope(BaseModel):
    customer_id: str
    plan_id: int
    made_at: str = Field(description="ISO 8601 with offset")
    reason: str
    horizon_start: str
    horizon_end: str
    prices_fingerprint: str
    stale: bool
    age_seconds: float
    health: str | None
    error_kind: str | None
    plan_status: str
    shortfalls: list[Shortfall]
    plan: PlanDocument
    source: Literal["memory"] | None = Field(
        None, description="present when the store could not be read"
    )


class Setpoint(BaseModel):
    customer_id: str
    at: str = Field(description="ISO 8601 with offset")
    plan_id: int
    stale: bool
    age_seconds: float
    shortfalls: list[Shortfall]
    setpoint: ScheduleRow


class UsageRefresh(BaseModel):
    """The daily usage refresh of a customer planned from a household profile."""

    ok: bool
    last_success_at: str | None
    last_failure_at: str | None
    consecutive_failures: int
    error: str | None
    forecast_made_at: str | None = Field(description="when the forecast in use was made")
    history_until: str | None = Field(description="start of the newest stored usage interval")


class CustomerStatus(BaseModel):
    customer_id: str
    health: Literal["pending", "ok", "error", "reauthorization_required"]
    stale: bool
    plan_age_seconds: float | None
    last_success_at: str | None
    last_failure_at: str | None
    consecutive_failures: int
    error_kind: str | None
    error: str | None
    source: Literal["memory"] | None = None
    usage: UsageRefresh | None = Field(
        None, description="profile-planned customers: the daily usage refresh (null: not yet)"
    )


class DatabaseHealth(_Open):
    ok: bool
    failing: list[str]
    last_ok_at: str | None
    last_error_at: str | None
    last_error: str | None


class PriceFetchHealth(_Open):
    ok: bool
    last_ok_at: str | None
    last_error_at: str | None
    last_error: str | None
    consecutive_failures: int
    in_flight: int
    stalled: int
    longest_in_flight_s: float | None


class UsageFetchHealth(_Open):
    ok: bool
    failing_customers: int = Field(description="customers whose latest usage fetch failed")


class SchedulerHealth(_Open):
    running: bool
    next_poll_at: str | None
    last_poll_at: str | None
    job_errors: int
    missed_runs: int


class Health(_Open):
    """Liveness and counts; no customer data."""

    status: Literal["ok", "degraded"]
    customers: int
    health: dict[str, int] = Field(description="customers per health")
    stale_plans: int
    database: DatabaseHealth
    price_fetches: PriceFetchHealth
    usage_fetches: UsageFetchHealth
    scheduler: SchedulerHealth | None = None


class ServiceHealth(BaseModel):
    """``wattplan serve``'s liveness."""

    status: Literal["ok"]


class DeviceStateIn(BaseModel):
    """``{"devices": {name: {field: value}}}``; fields per device kind (README: HTTP API)."""

    devices: dict[str, dict[str, Any]]


class DeviceState(BaseModel):
    customer_id: str
    version: int
    devices: dict[str, dict[str, Any]]


class DeviceStateUpdated(DeviceState):
    replan: bool = Field(description="the change was significant: a re-plan follows")
    shortfalls: list[Shortfall]


class TariffSlot(BaseModel):
    start: str = Field(description="UTC, ISO 8601 with Z")
    end: str = Field(description="UTC, ISO 8601 with Z; the next slot's start")
    price_ct_per_kwh: float
    price_eur_per_kwh: float


class Tariff(BaseModel):
    customer_id: str
    plan_id: int
    currency: Literal["EUR"]
    resolution_minutes: int | None
    slots: list[TariffSlot]


class EvccRate(BaseModel):
    """One row of evcc's custom-tariff forecast."""

    start: str = Field(description="UTC, ISO 8601 with Z")
    end: str = Field(description="UTC, ISO 8601 with Z")
    value: float = Field(description="EUR/kWh, all-in")


_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    PlanDocument,
    PlanEnvelope,
    Setpoint,
    CustomerStatus,
    Health,
    DeviceStateIn,
    DeviceState,
    DeviceStateUpdated,
    Tariff,
    EvccRate,
    ServiceHealth,
)


def _ref(model: type[BaseModel] | str) -> dict[str, Any]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_STATUS_TEXT = {
    400: "bad query or body (malformed JSON, bad header); `key` names it",
    401: "no credentials (`WWW-Authenticate: Bearer`)",
    403: "these credentials may not act on this customer",
    404: "no such customer, or nothing to show yet",
    408: "the body did not arrive in time",
    409: "lost to concurrent writers; retry (`Retry-After`)",
    413: "the body is too large",
    415: "the body is not application/json",
    422: "the body is well-formed but invalid; `key` and `reason` name the field",
    500: "an unexpected error (see the server log)",
    503: "the plan store cannot be used right now, or the server is busy (`Retry-After`)",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(_ref(Error), _STATUS_TEXT[s]) for s in statuses}


def _operation(
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    secured: bool = True,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*errors, 500)}}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = [{"bearer": []}] if secured else []
    return op


_CUSTOMER = {
    "name": "customer_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _planner_paths() -> dict[str, Any]:
    customer = [401, 403, 404, 503]
    write = [*customer, 400, 408, 409, 413, 415, 422]
    return {
        "/health": {
            "get": _operation(
                "Liveness and counts (open, no customer data)",
                _json(_ref(Health), "process health"),
                503,
                secured=False,
            )
        },
        "/customers/{customer_id}/plan": {
            "parameters": [_CUSTOMER],
            "get": _operation(
                "The latest plan, with its freshness",
                _json(_ref(PlanEnvelope), "the latest plan"),
                *customer,
            ),
        },
        "/customers/{customer_id}/setpoint": {
            "parameters": [_CUSTOMER],
            "get": _operation(
                "The schedule row of the slot that runs now (or at `at`)",
                _json(_ref(Setpoint), "the running slot"),
                400,
                *customer,
                parameters=[
                    {
                        "name": "at",
                        "in": "query",
                        "required": False,
                        "description": "ISO 8601 with offset, within a year of now",
                        "schema": {"type": "string"},
                    }
                ],
            ),
        },
        "/customers/{customer_id}/status": {
            "parameters": [_CUSTOMER],
            "get": _operation(
                "Health of this customer",
                _json(_ref(CustomerStatus), "the customer's health"),
                *customer,
            ),
        },
        "/customers/{customer_id}/tariff": {
            "parameters": [_CUSTOMER],
            "get": _operation(
                "All-in prices from the running slot on (UTC, contiguous)",
                _json(
                    {
                        "oneOf": [
                            _ref(Tariff),
                            {"type": "array", "items": _ref(EvccRate)},
                        ]
                    },
                    "`format=json`: a Tariff; `format=evcc`: evcc's custom-tariff forecast",
                ),
                400,
                *customer,
                parameters=[
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "evcc"], "default": "json"},
                    }
                ],
            ),
        },
        "/customers/{customer_id}/device-state": {
            "parameters": [_CUSTOMER],
            "get": _operation(
                "The stored device state",
                _json(_ref(DeviceState), "the device state and its version"),
                *customer,
            ),
            "post": _operation(
                "Merge device state (changes nothing when refused)",
                _json(_ref(DeviceStateUpdated), "the merged state"),
                *write,
                body=_ref(DeviceStateIn),
            ),
            "put": _operation(
                "Replace the whole device state",
                _json(_ref(DeviceStateUpdated), "the new state"),
                *write,
                body=_ref(DeviceStateIn),
            ),
        },
    }


def _docs_paths() -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": _operation(
                "This document", _json({"type": "object"}, "OpenAPI 3.1"), secured=False
            )
        },
        "/docs": {
            "get": _operation(
                "A plain page listing the routes (loads nothing from elsewhere)",
                {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                secured=False,
            )
        },
    }


@functools.cache
def _components() -> dict[str, Any]:
    from wattplan.optimizer import Scenario

    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "serialization") for m in _MODELS
    ]
    models.append((Scenario, "validation"))
    _, top = models_json_schema(models, ref_template=_REF, title="wattplan")
    return dict(top.get("$defs", {}))


def _optimize_paths() -> dict[str, Any]:
    return {
        "/optimize": {
            "post": _operation(
                "Plan a scenario (the YAML schema as JSON, series inline); nothing is stored",
                _json(_ref(PlanDocument), "the plan, as `wattplan plan --json` prints it"),
                400,
                401,
                403,
                408,
                413,
                415,
                422,
                503,
                body=_ref("Scenario"),
            )
        }
    }


def openapi_document(
    *, planner: bool = True, optimize: bool = True, title: str = "wattplan"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of an app: the planner's routes (``planner``), ``/optimize``
    (``optimize``) and the docs; without the planner ``/health`` is a bare liveness check."""
    paths: dict[str, Any] = {}
    if planner:
        paths.update(_planner_paths())
    else:
        paths["/health"] = {
            "get": _operation(
                "Liveness", _json(_ref(ServiceHealth), "the server runs"), secured=False
            )
        }
    if optimize:
        paths.update(_optimize_paths())
    paths.update(_docs_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"{title} API",
            "version": _version(),
            "description": "Closed by default: every route but /health, /openapi.json and "
            "/docs needs `Authorization: Bearer <key>`. Errors are JSON with `error`, "
            "`message` and, where a key or field is at fault, `key`.",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wattplan")
    except PackageNotFoundError:
        return "0+unknown"


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML page listing the routes of ``document`` (no scripts, no CDN)."""
    rows = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            statuses = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td><td>{statuses}</td></tr>"
            )
    title = html.escape(document["info"]["title"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{padding:.2em .8em;text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>{title}</h1><p>{html.escape(document['info']['description'])}</p>"
        '<p>The machine-readable document: <a href="openapi.json">openapi.json</a> '
        "(OpenAPI 3.1).</p><table><tr><th>method</th><th>path</th><th>what</th>"
        f"<th>statuses</th></tr>{''.join(rows)}</table></body></html>"
    )
