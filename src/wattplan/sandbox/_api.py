"""Read endpoints of the sandbox, shaped like Nomos's spec (``2026-05-27.curie``).

``GET /subscriptions`` (cursor pagination, bracket filters), ``GET /subscriptions/{id}``
(related objects expanded), ``GET /subscriptions/{id}/prices``, ``GET
/subscriptions/{id}/usage``, ``GET /customers``, ``GET /customers/{id}``, ``GET
/invoices``, ``GET /invoices/{id}``, ``GET /invoices/{id}/file`` (302 to a signed link,
valid one hour). Every write route of the spec answers 403 to a customer token.

Prices for a local day ``D`` appear at ``D-1`` at the publication time (14:20
Europe/Berlin); later days never. Usage for ``D`` appears at 16:00 on ``D+1``,
``preliminary`` until the 8th working day of the next month, ``final`` from then on; it
comes from the subscription's real household meter (preliminary values carry substitutes)
or, with ``usage_source="h25"``, from the H25 profile.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time as _time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pandas as pd
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from wattplan.sandbox._config import SeedCustomer, SeedSubscription
from wattplan.sandbox._data import (
    BERLIN,
    day_prices,
    day_usage_kwh,
    eighth_working_day,
    local_today,
    meter_day_usage_kwh,
    meter_month_usage_kwh,
    month_usage_kwh,
)
from wattplan.sandbox._errors import api_error
from wattplan.sandbox._oauth_store import TokenInfo
from wattplan.sandbox._state import SandboxState

__all__ = ["api_routes"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FILTER = re.compile(r"^filter\[([a-z_]+)\]\[([a-z_]+)\]$")
MAX_PRICE_DAYS = 366
MAX_USAGE_DAYS = 400
_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
_FILE_KEY = secrets.token_bytes(32)


class _Problem(Exception):  # noqa: N818 - an answer, not a bug
    def __init__(self, status: int, message: str, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or "invalid_value"

    def response(self) -> Response:
        errors = None
        if self.field:
            errors = [{"code": self.code, "field": self.field, "message": self.message}]
        return api_error(self.status, self.message, errors=errors)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _iso_ts(ts: pd.Timestamp) -> str:
    return str(ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def _sandbox(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


# -- seeded objects ------------------------------------------------------------------


def _suffix(owner_id: str) -> str:
    return owner_id.split("_", 1)[1]


def _customer_json(c: SeedCustomer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "customer",
        "id": c.id,
        "type": "company" if c.company_name else "person",
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email": c.email,
        "vat_id": None,
        "created_at": _iso(c.created_at),
    }
    if c.company_name:
        out["company_name"] = c.company_name
    return out


def _address(c: SeedCustomer) -> dict[str, Any]:
    return {
        "object": "address",
        "id": "adr_" + _suffix(c.id),
        "street": "Torstraße",
        "house_number": str(100 + sum(map(ord, c.id)) % 50),
        "zip": "10115",
        "city": "Berlin",
        "created_at": _iso(c.created_at),
    }


def _subscription_json(c: SeedCustomer, s: SeedSubscription, *, expand: bool) -> dict[str, Any]:
    suffix = _suffix(s.id)
    out: dict[str, Any] = {
        "object": "subscription",
        "id": s.id,
        "plan": "pln_dynamic000000000000000001",
        "customer": c.id,
        "address": "adr_" + _suffix(c.id),
        "meter": "mtr_" + suffix,
        "payment_method": "pm_" + suffix,
        "supplier": None,
        "number": s.number,
        "status": s.status,
        "estimated_usage": s.estimated_usage_kwh,
        "created_at": _iso(s.created_at),
        "updated_at": _iso(s.created_at),
        "start_at": _iso(s.start_at),
        "terminated_at": _iso(s.end_at - timedelta(days=60)) if s.end_at else None,
        "end_at": _iso(s.end_at),
        "metadata": None,
        "type": "consumption",
        "billing_address": "adr_" + _suffix(c.id),
    }
    if expand:
        out["customer"] = _customer_json(c)
        out["address"] = _address(c)
        out["billing_address"] = _address(c)
        out["meter"] = {
            "object": "meter",
            "id": "mtr_" + suffix,
            "number": "1APA"
            + str(int(hashlib.sha256(suffix.encode()).hexdigest(), 16) % 10**10).zfill(10),
            "type": s.meter_type,
            "melo": None,
            "malo": None,
            "created_at": _iso(s.created_at),
        }
        out["payment_method"] = {
            "object": "payment_method",
            "id": "pm_" + suffix,
            "type": "sepa_debit",
            "sepa_debit": {
                "iban": "DE************6485",
                "account_holder": f"{c.first_name} {c.last_name}",
            },
            "created_at": _iso(s.created_at),
        }
    return out


def _visible_customers(state: SandboxState, token: TokenInfo) -> list[SeedCustomer]:
    return [
        c for c in state.config.customers if token.customer_id is None or c.id == token.customer_id
    ]


def _find_subscription(
    state: SandboxState, token: TokenInfo, sub_id: str
) -> tuple[SeedCustomer, SeedSubscription]:
    for c in _visible_customers(state, token):
        for s in c.subscriptions:
            if s.id == sub_id:
                return c, s
    raise _Problem(404, "Resource not found")  # unknown, or another customer's


# -- query helpers -------------------------------------------------------------------


def _parse_date(value: str | None, name: str, *, required: bool) -> date | None:
    if value is None:
        if required:
            raise _Problem(400, f"invalid_type in '{name}': Required", name, "invalid_type")
        return None
    if not _DATE.match(value):
        raise _Problem(
            400, f"invalid_format in '{name}': expected YYYY-MM-DD", name, "invalid_format"
        )
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _Problem(
            400, f"invalid_format in '{name}': no such date", name, "invalid_format"
        ) from exc


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return 10
    try:
        number = float(raw)
    except ValueError as exc:
        raise _Problem(
            400, "invalid_type in 'limit': expected number", "limit", "invalid_type"
        ) from exc
    if number != int(number):
        raise _Problem(400, "invalid_type in 'limit': expected integer", "limit", "invalid_type")
    if number < 1:
        raise _Problem(400, "too_small in 'limit': minimum 1", "limit", "too_small")
    if number > 100:
        raise _Problem(400, "too_big in 'limit': maximum 100", "limit", "too_big")
    return int(number)


FieldKinds = Mapping[str, str]  # field -> "string" | "enum:<a,b,c>" | "date"


def _filters(request: Request, kinds: FieldKinds) -> list[Callable[[dict[str, Any]], bool]]:
    """Bracket filters; unknown fields and operators are ignored, as Nomos does."""
    out: list[Callable[[dict[str, Any]], bool]] = []
    for key, value in request.query_params.multi_items():
        m = _FILTER.match(key)
        if m is None:
            continue
        field, op = m.groups()
        kind = kinds.get(field)
        if kind is None:
            continue
        out_pred = _predicate(field, op, value, kind, key)
        if out_pred is not None:
            out.append(out_pred)
    return out


def _predicate(
    field: str, op: str, value: str, kind: str, key: str
) -> Callable[[dict[str, Any]], bool] | None:
    def get(item: dict[str, Any]) -> Any:
        v = item.get(field)
        if isinstance(v, dict):
            v = v.get("id")
        return v

    if op == "is_null":
        if value not in ("true", "false"):
            raise _Problem(400, f"invalid_value in '{key}': expected true or false", key)
        want = value == "true"
        return lambda item: (get(item) is None) == want
    if kind == "date":
        if op not in ("gte", "lte"):
            return None
        try:
            bound = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _Problem(400, f"invalid_format in '{key}': expected ISO 8601", key) from exc
        if bound.tzinfo is None:
            bound = bound.replace(tzinfo=BERLIN)

        def cmp(item: dict[str, Any]) -> bool:
            raw = get(item)
            if raw is None:
                return False
            stamp = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            return stamp >= bound if op == "gte" else stamp <= bound

        return cmp
    values = value.split(",") if op == "in" else [value]
    if kind.startswith("enum:"):
        allowed = kind[5:].split(",")
        if op not in ("eq", "ne", "in"):
            return None
        bad = [v for v in values if v not in allowed]
        if bad:
            raise _Problem(
                400, f"invalid_value in '{key}': expected one of {', '.join(allowed)}", key
            )
    ops: dict[str, Callable[[str, str], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "in": lambda a, b: a in values,
        "contains": lambda a, b: b.lower() in a.lower(),
        "starts_with": lambda a, b: a.lower().startswith(b.lower()),
        "ends_with": lambda a, b: a.lower().endswith(b.lower()),
    }
    fn = ops.get(op)
    if fn is None or (kind.startswith("enum:") and op not in ("eq", "ne", "in")):
        return None
    return lambda item: get(item) is not None and fn(str(get(item)), value)


def _paginate(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Newest first by ``created_at`` then ``id``; Nomos-style base64 JSON cursor."""
    limit = _limit(request)
    items = sorted(items, key=lambda i: (str(i.get("created_at")), str(i["id"])), reverse=True)
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            last = (str(data["last_created_at"]), str(data["last_id"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise _Problem(400, "invalid cursor", "cursor", "invalid_format") from exc
        items = [i for i in items if (str(i.get("created_at")), str(i["id"])) < last]
    page = items[:limit]
    has_more = len(items) > limit
    next_page = None
    if has_more:
        tail = page[-1]
        raw = json.dumps(
            {"last_created_at": tail.get("created_at"), "last_id": tail["id"], "limit": limit}
        ).encode()
        next_page = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"object": "list", "items": page, "has_more": has_more, "next_page": next_page}


def _apply(
    items: Iterable[dict[str, Any]], preds: list[Callable[[dict[str, Any]], bool]]
) -> list[dict[str, Any]]:
    return [i for i in items if all(p(i) for p in preds)]


# -- the request pipeline -------------------------------------------------------------

Handler = Callable[[Request, SandboxState, TokenInfo], Response]


def _authenticate(request: Request, state: SandboxState) -> TokenInfo:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    info = state.oauth.verify_access_token(value.strip()) if scheme.lower() == "bearer" else None
    if info is None:
        raise _Problem(401, "Invalid or malformed token")
    return info


def _break(response: Response, mode: str) -> Response:
    body = bytes(response.body)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers["x-sandbox-fault"] = f"malformed-{mode}"  # lets the conformance check skip it
    if mode == "json":
        return Response(body.replace(b'"', b"'"), response.status_code, headers=headers)
    if mode == "content_type":
        headers["content-type"] = "text/html; charset=utf-8"
        return Response(body, response.status_code, headers=headers)
    return Response(body[: max(1, len(body) // 2)], response.status_code, headers=headers)


def _endpoint(handler: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        state = _sandbox(request)
        state.counters["api_requests"] += 1
        try:
            token = _authenticate(request, state)
        except _Problem as problem:
            resp = problem.response()
            resp.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return resp
        faults = state.faults
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if state.take_fault("rate_limit_next") or not state.allow_rate(
            token.grant_id, _time.monotonic()
        ):
            wait = str(max(1, int(faults.retry_after_s)))
            return api_error(
                429,
                f"Wait {wait} seconds before retrying.",
                headers={
                    "retry-after": wait,
                    "ratelimit-limit": "10",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": wait,
                },
            )
        if state.take_fault("server_error_next"):
            return api_error(500, "Internal Server Error")
        try:
            response = await asyncio.to_thread(handler, request, state, token)
        except _Problem as problem:
            return problem.response()
        mode = faults.malformed
        if mode and response.status_code == 200:
            if faults.malformed_next > 0:
                state.take_fault("malformed_next")
                if faults.malformed_next == 0:
                    faults.malformed = None
            else:
                state.counters["faults_injected"] += 1
            return _break(response, mode)
        return response

    return endpoint


async def _write(request: Request) -> Response:
    state = _sandbox(request)
    try:
        token = _authenticate(request, state)
    except _Problem as problem:
        return problem.response()
    if not token.can_write:
        return api_error(403, "You are not allowed to access this resource")
    return api_error(405, "The sandbox does not implement writes")


# -- handlers -------------------------------------------------------------------------

_SUB_FILTERS: FieldKinds = {
    "status": "enum:pending,active,ended",
    "customer": "string",
    "plan": "string",
    "created_at": "date",
    "updated_at": "date",
}
_CUSTOMER_FILTERS: FieldKinds = {
    "email": "string",
    "type": "enum:person,company",
    "created_at": "date",
}
_INVOICE_FILTERS: FieldKinds = {
    "status": "enum:open,paid,voided,uncollectible",
    "type": "enum:usage,prepayment,void",
    "subscription": "string",
    "period_start": "date",
    "period_end": "date",
}


def list_subscriptions(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    items = [
        _subscription_json(c, s, expand=False)
        for c in _visible_customers(state, token)
        for s in c.subscriptions
    ]
    items = _apply(items, _filters(request, _SUB_FILTERS))
    return JSONResponse(_paginate(request, items))


def get_subscription(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    c, s = _find_subscription(state, token, request.path_params["id"])
    return JSONResponse(_subscription_json(c, s, expand=True))


def list_customers(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    items = [_customer_json(c) for c in _visible_customers(state, token)]
    items = _apply(items, _filters(request, _CUSTOMER_FILTERS))
    return JSONResponse(_paginate(request, items))


def get_customer(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    for c in _visible_customers(state, token):
        if c.id == request.path_params["id"]:
            return JSONResponse(_customer_json(c))
    raise _Problem(404, "Resource not found")


def _published_until(state: SandboxState) -> date:
    """The last local day whose prices are out."""
    now = state.clock.now().astimezone(BERLIN)
    today = now.date()
    if now.time() >= state.config.publication_time_local:
        return today + timedelta(days=1)
    return today


def get_prices(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    _, sub = _find_subscription(state, token, request.path_params["id"])
    start = _parse_date(request.query_params.get("start"), "start", required=True)
    end = _parse_date(request.query_params.get("end"), "end", required=True)
    assert start is not None
    assert end is not None
    if end < start:
        raise _Problem(400, "invalid_value in 'end': before start", "end")
    if (end - start).days + 1 > MAX_PRICE_DAYS:
        raise _Problem(400, f"too_big: at most {MAX_PRICE_DAYS} days", "end", "too_big")
    cfg = state.config
    step = 15 if end >= cfg.quarter_hour_from else 60
    body: dict[str, Any] = {
        "object": "price",
        "subscription": sub.id,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "unit": "ct/kWh",
        "currency": "EUR",
        "resolution": "15min" if step == 15 else cfg.hourly_label,
        "reference": "EPEX Day-Ahead 15min" if step == 15 else "EPEX Day-Ahead Hourly",
        "items": None,
    }
    if sub.status != "active":
        return JSONResponse(body)
    published_until = _published_until(state)
    items: list[dict[str, Any]] = []
    day = start
    while day <= end:
        published = day <= published_until
        if published or cfg.unpublished == "null":
            native = 15 if day >= cfg.quarter_hour_from else 60
            prices = day_prices(day, native)
            repeat = native // step
            for i, ts in enumerate(prices.slots):
                for j in range(repeat):
                    stamp = ts + pd.Timedelta(minutes=step * j)
                    if not published:
                        items.append(_null_item(stamp))
                        continue
                    items.append(
                        {
                            "timestamp": _iso_ts(stamp),
                            "amount": int(prices.amount_cents[i]) / 100,
                            "components": [
                                {
                                    "type": "electricity",
                                    "amount": int(prices.electricity_cents[i]) / 100,
                                },
                                {"type": "grid", "amount": int(prices.grid_cents[i]) / 100},
                                {"type": "levies", "amount": int(prices.levies_cents[i]) / 100},
                            ],
                        }
                    )
        day += timedelta(days=1)
    if state.faults.null_amounts:
        for k in range(3, len(items), 7):
            items[k] = _null_item(pd.Timestamp(items[k]["timestamp"]))
    if state.faults.missing_slots and len(items) > 10:
        mid = len(items) // 2
        del items[mid : mid + 2]
    body["items"] = items
    return JSONResponse(body)


def _null_item(stamp: pd.Timestamp) -> dict[str, Any]:
    return {
        "timestamp": _iso_ts(stamp),
        "amount": None,
        "components": [
            {"type": "electricity", "amount": None},
            {"type": "grid", "amount": None},
            {"type": "levies", "amount": None},
        ],
    }


_USAGE_RESOLUTIONS = ("auto", "15min", "hour", "day", "week", "month")


def get_usage(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    _, sub = _find_subscription(state, token, request.path_params["id"])
    if state.faults.usage_server_error:
        return api_error(500, "Internal Server Error")
    resolution = request.query_params.get("resolution", "auto")
    if resolution not in _USAGE_RESOLUTIONS:
        raise _Problem(
            400,
            f"invalid_value in 'resolution': expected one of {', '.join(_USAGE_RESOLUTIONS)}",
            "resolution",
        )
    now = state.clock.now()
    today = local_today(now)
    start = _parse_date(request.query_params.get("start"), "start", required=False)
    end = _parse_date(request.query_params.get("end"), "end", required=False)
    start = start or today - timedelta(days=1)
    end = end or today
    if end <= start:
        raise _Problem(400, "invalid_value in 'end': must be after start", "end")
    if (end - start).days > MAX_USAGE_DAYS:
        raise _Problem(400, f"too_big: at most {MAX_USAGE_DAYS} days", "end", "too_big")
    if resolution == "auto":
        span = (end - start).days
        resolution = "15min" if span <= 7 else "day" if span <= 92 else "month"
    now_local = now.astimezone(BERLIN)
    frames: list[pd.DataFrame] = []
    day = start
    while day < end:
        available_at = datetime.combine(day + timedelta(days=1), dtime(16, 0), BERLIN)
        in_contract = sub.start_at is not None and (
            datetime.combine(day, dtime(), BERLIN) >= sub.start_at
            and (sub.end_at is None or datetime.combine(day, dtime(), BERLIN) < sub.end_at)
        )
        if now_local >= available_at and in_contract:
            next_month = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            final = today >= eighth_working_day(next_month.year, next_month.month)
            kwh = _day_usage(state, sub, day, final=final)
            if not final:
                kwh = kwh * state.faults.usage_preliminary_factor
            frames.append(pd.DataFrame({"usage": kwh, "final": final}))
        day += timedelta(days=1)
    data: list[dict[str, Any]] = []
    if frames:
        df = pd.concat(frames)
        if resolution != "15min":
            local = pd.DatetimeIndex(df.index).tz_convert(BERLIN)
            if resolution == "hour":
                key = pd.DatetimeIndex(df.index).floor("h")
            elif resolution == "day":
                key = local.normalize().tz_convert("UTC")
            elif resolution == "week":
                key = (local.normalize() - pd.to_timedelta(local.weekday, unit="D")).tz_convert(
                    "UTC"
                )
            else:
                key = pd.DatetimeIndex(
                    [pd.Timestamp(year=t.year, month=t.month, day=1, tz=BERLIN) for t in local]
                ).tz_convert("UTC")
            df = df.groupby(key).agg(usage=("usage", "sum"), final=("final", "all"))
        for ts, row in zip(pd.DatetimeIndex(df.index), df.to_dict("records"), strict=True):
            data.append(
                {
                    "start": _iso(ts.to_pydatetime()),
                    "usage": round(float(row["usage"]), 4),
                    "type": "final" if bool(row["final"]) else "preliminary",
                }
            )
    return JSONResponse(
        {"object": "usage", "meter_type": sub.meter_type, "resolution": resolution, "data": data}
    )


def _day_usage(state: SandboxState, sub: SeedSubscription, day: date, *, final: bool) -> pd.Series:
    if state.config.usage_source == "meters" and sub.household is not None:
        return meter_day_usage_kwh(sub.household, day, final=final)
    return day_usage_kwh(day, annual_kwh=sub.estimated_usage_kwh)


def _month_usage(state: SandboxState, sub: SeedSubscription, month: date) -> float:
    if state.config.usage_source == "meters" and sub.household is not None:
        return meter_month_usage_kwh(sub.household, month.year, month.month)
    return month_usage_kwh(month.year, month.month, annual_kwh=sub.estimated_usage_kwh)


def _invoices(state: SandboxState, token: TokenInfo) -> list[dict[str, Any]]:
    now = state.clock.now()
    out: list[dict[str, Any]] = []
    for c in _visible_customers(state, token):
        for s in c.subscriptions:
            if s.start_at is None:
                continue
            first = s.start_at.astimezone(BERLIN).date().replace(day=1)
            month = first
            number = 0
            while True:
                nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
                period_start = datetime.combine(month, dtime(), BERLIN)
                period_end = datetime.combine(nxt, dtime(), BERLIN)
                issued = datetime.combine(nxt + timedelta(days=2), dtime(8, 0), BERLIN)
                if issued > now or (s.end_at is not None and period_start >= s.end_at):
                    break
                number += 1
                usage = _month_usage(state, s, month)
                paid_at = issued + timedelta(days=5)
                digest = hashlib.sha256(f"{s.id}{month}".encode()).hexdigest()[:24]
                out.append(
                    {
                        "object": "invoice",
                        "id": "inv_" + digest,
                        "customer": c.id,
                        "subscription": s.id,
                        "invoice_number": f"{s.number}-{number:03d}",
                        "month": month.month,
                        "year": month.year,
                        "period_start": _iso(period_start),
                        "period_end": _iso(period_end),
                        "period_number": number,
                        "status": "paid" if paid_at <= now else "open",
                        "issued_at": _iso(issued),
                        "paid_at": _iso(paid_at) if paid_at <= now else None,
                        "type": "usage",
                        "usage": round(usage, 1),
                        "total": round(usage * 0.32 + 14.90, 2),
                        "created_at": _iso(issued),
                    }
                )
                month = nxt
    return out


def list_invoices(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    items = _apply(_invoices(state, token), _filters(request, _INVOICE_FILTERS))
    page = _paginate(request, items)
    for item in page["items"]:
        item.pop("created_at", None)
    return JSONResponse(page)


def _find_invoice(state: SandboxState, token: TokenInfo, invoice_id: str) -> dict[str, Any]:
    for inv in _invoices(state, token):
        if inv["id"] == invoice_id:
            inv.pop("created_at", None)
            return inv
    raise _Problem(404, "Resource not found")


def get_invoice(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    return JSONResponse(_find_invoice(state, token, request.path_params["id"]))


def _sign(invoice_id: str, expires: int) -> str:
    mac = hmac.new(_FILE_KEY, f"{invoice_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return mac[:32]


def get_invoice_file(request: Request, state: SandboxState, token: TokenInfo) -> Response:
    inv = _find_invoice(state, token, request.path_params["id"])
    expires = int((state.clock.now() + timedelta(hours=1)).timestamp())
    base = str(request.base_url).rstrip("/")
    signature = _sign(inv["id"], expires)
    url = f"{base}/files/invoices/{inv['id']}.pdf?expires={expires}&signature={signature}"
    return RedirectResponse(url, status_code=302)


async def invoice_pdf(request: Request) -> Response:
    state = _sandbox(request)
    invoice_id = request.path_params["id"]
    try:
        expires = int(request.query_params.get("expires", ""))
    except ValueError:
        return Response("link invalid", status_code=403)
    given = request.query_params.get("signature", "")
    if not hmac.compare_digest(given, _sign(invoice_id, expires)):
        return Response("link invalid", status_code=403)
    if state.clock.now().timestamp() > expires:
        return Response("link expired", status_code=403)
    return Response(_PDF, media_type="application/pdf")


_WRITE_ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/subscriptions", ("POST",)),
    ("/subscriptions/{id}", ("PATCH",)),
    ("/subscriptions/{id}/terminate", ("POST",)),
    ("/customers/{id}", ("PATCH",)),
    ("/leads", ("POST",)),
    ("/meter-readings", ("POST",)),
    ("/load-forecasts", ("POST",)),
    ("/meter-orders", ("POST",)),
    ("/grid-fee-reductions", ("POST",)),
    ("/admin/magic_link", ("POST",)),
)


def api_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/subscriptions", _endpoint(list_subscriptions), methods=["GET"]),
        Route("/subscriptions/{id}", _endpoint(get_subscription), methods=["GET"]),
        Route("/subscriptions/{id}/prices", _endpoint(get_prices), methods=["GET"]),
        Route("/subscriptions/{id}/usage", _endpoint(get_usage), methods=["GET"]),
        Route("/customers", _endpoint(list_customers), methods=["GET"]),
        Route("/customers/{id}", _endpoint(get_customer), methods=["GET"]),
        Route("/invoices", _endpoint(list_invoices), methods=["GET"]),
        Route("/invoices/{id}", _endpoint(get_invoice), methods=["GET"]),
        Route("/invoices/{id}/file", _endpoint(get_invoice_file), methods=["GET"]),
        Route("/files/invoices/{id}.pdf", invoice_pdf, methods=["GET"]),
    ]
    for path, methods in _WRITE_ROUTES:
        routes.append(Route(path, _write, methods=list(methods), name=f"write:{path}"))
    return routes
