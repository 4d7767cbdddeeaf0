"""Typed views of Nomos payloads (tolerant: unknown fields are ignored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Customer",
    "Invoice",
    "PriceComponent",
    "PriceItem",
    "Prices",
    "Subscription",
    "Usage",
    "UsagePoint",
]


def _id_of(value: Any) -> Any:
    """Related objects come as ID strings in lists and expanded in retrieves."""
    if isinstance(value, dict):
        return value.get("id")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return value


class Customer(_Model):
    """A customer (person or company)."""

    id: str
    type: str = "person"
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    created_at: datetime | None = None

    _tz = field_validator("created_at")(_aware)


class Subscription(_Model):
    """A supply contract. Related objects are kept as IDs (``customer_id``, ...)."""

    id: str
    status: str
    customer_id: str | None = Field(default=None, alias="customer")
    plan_id: str | None = Field(default=None, alias="plan")
    meter_id: str | None = Field(default=None, alias="meter")
    address_id: str | None = Field(default=None, alias="address")
    type: str = "consumption"
    number: str | None = None
    estimated_usage_kwh: float | None = Field(default=None, alias="estimated_usage")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    terminated_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    _ids = field_validator("customer_id", "plan_id", "meter_id", "address_id", mode="before")(
        _id_of
    )
    _tz = field_validator("created_at", "updated_at", "start_at", "end_at", "terminated_at")(_aware)

    @property
    def active(self) -> bool:
        return self.status == "active"


class PriceComponent(_Model):
    """One part of a price: ``electricity``, ``grid`` or ``levies`` (ct/kWh)."""

    type: str
    amount_ct_per_kwh: float | None = Field(alias="amount")


class PriceItem(_Model):
    """The all-in price of one slot, starting at ``timestamp`` (UTC)."""

    timestamp: datetime
    amount_ct_per_kwh: float | None = Field(alias="amount")
    components: tuple[PriceComponent, ...] = ()

    _tz = field_validator("timestamp")(_aware)

    def component(self, kind: str) -> float | None:
        for c in self.components:
            if c.type == kind:
                return c.amount_ct_per_kwh
        return None


class Prices(_Model):
    """``GET /subscriptions/{id}/prices``; ``items`` is None for an inactive subscription."""

    subscription: str
    period: dict[str, str] = Field(default_factory=dict)
    unit: str = "ct/kWh"
    currency: str = "EUR"
    resolution: str
    reference: str | None = None
    items: tuple[PriceItem, ...] | None

    @property
    def resolution_minutes(self) -> int:
        """15 or 60 (``hourly``, ``60min`` and ``hour`` all mean 60)."""
        value = self.resolution.strip().lower()
        if value in ("15min", "15m", "quarter_hour", "quarterhourly"):
            return 15
        if value in ("hourly", "60min", "60m", "hour", "1h"):
            return 60
        raise ValueError(f"unknown price resolution {self.resolution!r}")


class UsagePoint(_Model):
    """Consumption (kWh) in the interval starting at ``start``."""

    start: datetime
    usage_kwh: float = Field(alias="usage")
    type: str

    _tz = field_validator("start")(_aware)


class Usage(_Model):
    """``GET /subscriptions/{id}/usage``."""

    meter_type: str | None = None
    resolution: str
    data: tuple[UsagePoint, ...] = ()


class Invoice(_Model):
    """An invoice (``usage``, ``prepayment`` or ``void``); ``total_eur`` includes VAT."""

    id: str
    type: str = "usage"
    status: str
    customer_id: str | None = Field(default=None, alias="customer")
    subscription_id: str | None = Field(default=None, alias="subscription")
    invoice_number: str | None = None
    month: int | None = None
    year: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    period_number: int | None = None
    issued_at: datetime | None = None
    paid_at: datetime | None = None
    usage_kwh: float | None = Field(default=None, alias="usage")
    total_eur: float = Field(alias="total")
    voids: str | None = None

    _tz = field_validator("period_start", "period_end", "issued_at", "paid_at")(_aware)
