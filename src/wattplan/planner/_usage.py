"""Customers planned from a household profile, on forecasts kept fresh from their own meter.

:class:`HouseholdPlanning` composes a customer's scenario for any window (DESIGN §3a) with
:func:`wattplan.household.household_scenario`: the profile, the latest base-load forecast
(stored by the daily refresh, or made from the stored history where none covers a slot),
the PV forecast (pvlib on the shipped typical-year weather) and the window's prices; the
planner then applies the device state.

:func:`refresh_usage` runs once a day per customer, after the previous day's usage is
published: it fetches the usage with the customer's grant (from the oldest value that is
still preliminary, so that a final value replaces it), subtracts what wattplan's own
devices drew according to the executed plans, stores the history, logs the error of the
forecast that was made for each newly complete day, and stores the forecast of the next
days. A failing fetch is recorded (``usage`` in ``status``, ``usage_fetches`` in
``/health``) and tried again at the next pass; planning goes on on the last good forecast.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from wattplan.exceptions import PlannerError, WattplanError
from wattplan.planner._types import Customer
from wattplan.planner.store import PlanStore, StoredPlan

__all__ = [
    "DEFAULT_ANNUAL_KWH",
    "HouseholdPlanning",
    "UsageSettings",
    "UsageSource",
    "executed_device_kwh",
    "refresh_usage",
]

logger = logging.getLogger(__name__)

DEFAULT_ANNUAL_KWH = 3500.0
"""Cold start without a profile's ``annual_kwh``: a typical German household's base load."""

# The forecast looks back 84 days (``wattplan.forecast``); older history is not read.
_HISTORY_READ = pd.Timedelta(days=91)


class UsageSource(Protocol):
    """Where a customer's metered usage comes from (the Nomos API in production).

    ``start`` inclusive, ``end`` exclusive, local calendar dates (as Nomos's ``/usage``).
    Returns ``usage_kwh`` and ``type`` (``final`` / ``preliminary``) per interval, with a
    tz-aware index of interval starts.
    """

    def fetch_usage(self, customer: Customer, *, start: dt.date, end: dt.date) -> pd.DataFrame: ...


@dataclass(frozen=True)
class UsageSettings:
    """When and how much usage the planner fetches.

    ``available_after``: local time after which the previous day's usage is published
    (the refresh runs at the first pass after it, once a day, and at the very first pass);
    ``history_days``: the history fetched at the start; ``refetch_days``: how far back
    preliminary values are fetched again to pick up their final values;
    ``forecast_days``: the days after today whose forecast each refresh stores.
    """

    available_after: dt.time = dt.time(16, 0)
    history_days: int = 28
    refetch_days: int = 45
    forecast_days: int = 2


def _local_midnight(day: dt.date, tz: str) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(tz)


def executed_device_kwh(
    plans: Sequence[StoredPlan], index: pd.DatetimeIndex, resolution_minutes: int
) -> pd.Series:
    """Energy wattplan's devices drew per usage interval, according to the executed plans.

    The plan in force in a slot is the latest plan whose horizon starts at or before it (a
    re-plan replaces the rest of the previous plan). A device's column ``<name>_kw`` is
    its power (a battery's is net: charging minus discharging, so a discharge gives back
    what the meter did not see); slots no plan covered count as zero.
    """
    drawn: dict[pd.Timestamp, float] = {}
    for plan in sorted(plans, key=lambda p: (p.created_at, p.id)):
        doc = plan.document
        names = [str(d.get("name")) for d in doc.get("devices") or [] if d.get("name")]
        hours = float(doc.get("resolution_minutes") or 15) / 60.0
        for row in doc.get("schedule") or []:
            start = pd.Timestamp(str(row["start"])).tz_convert("UTC")
            if start < pd.Timestamp(plan.horizon_start):
                continue
            kw = sum(float(row.get(f"{n}_kw") or 0.0) for n in names)
            drawn[start] = kw * hours
    utc = pd.DatetimeIndex(index).tz_convert("UTC")
    if not drawn or not len(utc):
        return pd.Series(0.0, index=index, dtype=float)
    series = pd.Series(drawn, dtype=float).sort_index()
    buckets = pd.DatetimeIndex(series.index).floor(f"{resolution_minutes}min")
    per_interval = series.groupby(buckets).sum()
    out = per_interval.reindex(utc).fillna(0.0)
    return pd.Series(out.to_numpy(dtype=float), index=index, dtype=float)


class HouseholdPlanning:
    """Composes the scenarios of one customer from its household profile and forecasts.

    Parameters
    ----------
    household:
        The profile (``wattplan.household.Household``).
    customer_id, store:
        Whose forecasts and history, and where they are stored.
    annual_kwh:
        The annual base-load energy for a cold start (no or too little history); default
        the profile's ``site.annual_kwh``, else :data:`DEFAULT_ANNUAL_KWH`.
    source:
        The profile's path (for messages).
    weather:
        A ``wattplan.weather.WeatherSource`` for the PV forecast; default the shipped
        typical year (offline, never fails).
    """

    def __init__(
        self,
        household: Any,
        *,
        customer_id: str,
        store: PlanStore,
        annual_kwh: float | None = None,
        source: Path | None = None,
        weather: Any = None,
    ) -> None:
        if weather is None:
            from wattplan.weather import TypicalYearWeather

            weather = TypicalYearWeather()
        self.weather = weather
        self.household = household
        self.customer_id = customer_id
        self.store = store
        self.source = source
        profile_kwh = getattr(household.site, "annual_kwh", None)
        self.annual_kwh = float(annual_kwh or profile_kwh or DEFAULT_ANNUAL_KWH)

    def __repr__(self) -> str:
        return f"HouseholdPlanning(customer_id={self.customer_id!r}, name={self.household.name!r})"

    @property
    def timezone(self) -> str:
        return str(self.household.site.timezone)

    # scenarios ---------------------------------------------------------------------------

    def base_scenario(self, now: dt.datetime) -> Any:
        """The household for the local day of ``now`` on placeholder series (device names,
        resolution and time zone, for validating device state)."""
        from wattplan.household import household_scenario

        day = pd.Timestamp(now).tz_convert(self.timezone).date()
        lo = _local_midnight(day, self.timezone).tz_convert("UTC")
        hi = _local_midnight(day + dt.timedelta(days=1), self.timezone).tz_convert("UTC")
        slots = pd.date_range(lo, hi, freq="15min", inclusive="left")
        zero = pd.Series(0.0, index=slots)
        return household_scenario(
            self.household, lo, hi, base_load_kw=zero, prices_ct_per_kwh=zero, weather=self.weather
        )

    def scenario(self, start: dt.datetime, end: dt.datetime, *, prices: pd.Series) -> Any:
        """The scenario of ``[start, end)`` on the latest forecasts and these prices."""
        from wattplan.household import household_scenario

        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        slots = pd.date_range(lo, hi, freq="15min", inclusive="left")
        price = prices.reindex(slots, method="ffill")
        return household_scenario(
            self.household,
            lo,
            hi,
            base_load_kw=self.base_load_kw(slots),
            pv_kw=self.pv_kw(slots),
            prices_ct_per_kwh=price,
            resolution="15min",
            weather=self.weather,  # a heat pump's outdoor temperature, so its COP
        )

    def base_load_kw(self, slots: pd.DatetimeIndex) -> pd.Series:
        """Expected base load (the forecast's mean, in mean kW) on 15-minute ``slots``: the
        stored forecast, and where none is stored, a forecast from the stored history (cold
        start: H25 scaled)."""
        from wattplan.household_backtest import _on_slots, _quarter_kw

        lo, hi = slots[0], slots[-1] + pd.Timedelta(minutes=15)
        stored = self.store.forecast(self.customer_id, since=lo.to_pydatetime(),
                                     until=hi.to_pydatetime())  # fmt: skip
        resolution = _resolution(stored.index)
        kwh = stored["kwh_mean"]
        if len(stored) < 2 or len(kwh) < _intervals(lo, hi, resolution):
            # not (all) stored: forecast from the history (read only when needed)
            history = self.store.usage_history(
                self.customer_id, since=(lo - _HISTORY_READ).to_pydatetime()
            )
            resolution = _resolution(history.index, stored.index)
            made = self.forecast(history, lo, hi, resolution).kwh["kwh_mean"]
            made.index = pd.DatetimeIndex(made.index).tz_convert("UTC")
            kwh = kwh.combine_first(made) if len(kwh) else made
        quarter = _quarter_kw(kwh.sort_index(), resolution)
        values = _on_slots(quarter, slots, 15)
        return pd.Series(np.nan_to_num(values, nan=0.0), index=slots, dtype=float)

    def forecast(
        self, history: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp, resolution: int
    ) -> Any:
        """The base-load forecast of the local days covering ``[lo, hi)`` from ``history``
        (as :meth:`PlanStore.usage_history` returns it), each day from the data before it."""
        from wattplan.forecast import forecast_base_load

        tz = self.timezone
        first = lo.tz_convert(tz).date()
        last = (hi - pd.Timedelta(seconds=1)).tz_convert(tz).date()
        # a battery's net energy is negative while it discharges: the house drew that much
        # more than the meter saw, so it is added to the metered energy instead
        net = history["controlled_kwh"]
        return forecast_base_load(
            history["kwh"] + (-net).clip(lower=0.0),
            first,
            last + dt.timedelta(days=1),
            controlled=net.clip(lower=0.0),
            annual_kwh=self.annual_kwh,
            timezone=tz,
            resolution_minutes=resolution,
        )

    def pv_kw(self, slots: pd.DatetimeIndex) -> pd.Series | None:
        """P50 PV power (mean kW) of the profile's PV from the weather source (default:
        the shipped typical year)."""
        if self.household.site.pv is None:
            return None
        from wattplan.household import household_pv_kw

        lo, hi = slots[0], slots[-1] + pd.Timedelta(minutes=15)
        kw = household_pv_kw(self.household, self.weather, lo, hi, resolution_minutes=15)
        kw.index = pd.DatetimeIndex(kw.index).tz_convert("UTC")
        return kw.reindex(slots).fillna(0.0).clip(lower=0.0)


def _resolution(*indexes: pd.Index) -> int:
    for any_index in indexes:
        index = pd.DatetimeIndex(any_index)
        if len(index) > 1:
            step = int(pd.Series(index[1:] - index[:-1]).min().total_seconds() // 60)
            if step in (15, 60):
                return step
    return 15


def _intervals(lo: pd.Timestamp, hi: pd.Timestamp, resolution: int) -> int:
    return int((hi - lo).total_seconds() // (resolution * 60))


def _safe(exc: BaseException) -> str:
    if isinstance(exc, WattplanError):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


def _checked(usage: pd.DataFrame) -> pd.DataFrame:
    """Fetched usage as the store takes it, or a :class:`PlannerError` naming the problem
    (then nothing is stored)."""
    if not isinstance(usage, pd.DataFrame):
        raise PlannerError(f"usage: expected a DataFrame, got {type(usage).__name__}")
    for column in ("usage_kwh", "type"):
        if column not in usage.columns:
            raise PlannerError(f"usage: no column {column!r}")
    index = usage.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise PlannerError("usage: the index must hold tz-aware interval starts")
    if index.has_duplicates:
        raise PlannerError(f"usage: duplicate interval {index[index.duplicated()][0].isoformat()}")
    values = pd.to_numeric(usage["usage_kwh"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        at = index[np.flatnonzero(bad)[0]].isoformat()
        raise PlannerError(f"usage: usage_kwh at {at} is not a non-negative number")
    kinds = set(usage["type"].astype(str))
    if not kinds <= {"final", "preliminary"}:
        raise PlannerError(f"usage: unknown type {sorted(kinds - {'final', 'preliminary'})[0]!r}")
    out = pd.DataFrame({"usage_kwh": values, "type": usage["type"].astype(str).to_numpy()},
                       index=index.tz_convert("UTC"))  # fmt: skip
    return out.sort_index()


def usage_due(
    store: PlanStore, customer_id: str, now: dt.datetime, tz: str, settings: UsageSettings
) -> bool:
    """Whether the daily refresh should run now (see :class:`UsageSettings`)."""
    status = store.usage_status(customer_id)
    if status is None or status.last_success_at is None:
        return True  # nothing fetched yet: fetch the history at once
    local = pd.Timestamp(now).tz_convert(tz)
    after = pd.Timestamp.combine(local.date(), settings.available_after).tz_localize(
        tz, ambiguous=False, nonexistent="shift_forward"
    )
    if local < after:
        return False
    done = status.last_success_at
    return done is None or pd.Timestamp(done) < after


def refresh_usage(
    customer: Customer,
    planning: HouseholdPlanning,
    source: UsageSource,
    now: dt.datetime,
    settings: UsageSettings,
) -> bool:
    """Fetch new usage, store the history, log the forecast error, store new forecasts.

    Returns whether it succeeded. Never raises for the customer's data or the API: a
    failure is recorded (the last good forecast stays) and the next call tries again.
    """
    store, cid, tz = planning.store, customer.id, planning.timezone
    today = pd.Timestamp(now).tz_convert(tz).date()
    try:
        start = today - dt.timedelta(days=settings.history_days)
        status = store.usage_status(cid)
        if status is not None and status.history_until is not None:
            last = pd.Timestamp(status.history_until).tz_convert(tz).date()
            oldest = store.earliest_preliminary(cid)
            first = (
                last if oldest is None else min(last, pd.Timestamp(oldest).tz_convert(tz).date())
            )
            start = max(first, today - dt.timedelta(days=settings.refetch_days))
        usage = _checked(source.fetch_usage(customer, start=start, end=today))
    except Exception as exc:
        message = _safe(exc)
        logger.warning(
            "customer %s: usage fetch failed (planning goes on on the last forecast): %s",
            cid,
            message,
        )
        store.record_usage_refresh(cid, now=now, error=f"usage fetch failed: {message}")
        return False
    index = pd.DatetimeIndex(usage.index)
    resolution = _resolution(index)
    lo = _local_midnight(start, tz).tz_convert("UTC") - pd.Timedelta(days=2)
    plans = store.plans_since(cid, lo.to_pydatetime())
    controlled = executed_device_kwh(plans, index, resolution)
    merge = store.merge_usage(cid, usage, controlled_kwh=controlled, now=now)
    logger.info(
        "customer %s: usage %s to %s fetched: %d new, %d corrected, %d finalized",
        cid,
        start,
        today,
        merge.inserted,
        merge.corrected,
        merge.finalized,
    )
    since = pd.Timestamp(now) - _HISTORY_READ
    history = store.usage_history(cid, since=since.to_pydatetime())
    _log_errors(planning, history, now, resolution)
    made = False
    if len(history):
        first_day = today + dt.timedelta(days=1)
        lo_f = _local_midnight(first_day, tz)
        hi_f = _local_midnight(first_day + dt.timedelta(days=settings.forecast_days), tz)
        fc = planning.forecast(history, lo_f.tz_convert("UTC"), hi_f.tz_convert("UTC"), resolution)
        store.save_forecast(cid, fc.kwh, now=now)
        made = True
        if fc.negative_residue_slots:
            logger.info(
                "customer %s: the devices drew more than the meter in %d intervals (%.2f kWh)",
                cid,
                fc.negative_residue_slots,
                fc.negative_residue_kwh,
            )
    store.record_usage_refresh(cid, now=now, error=None, forecast_made=made)
    return True


def _log_errors(
    planning: HouseholdPlanning, history: pd.DataFrame, now: dt.datetime, resolution: int
) -> None:
    """Log and store the forecast error of each complete day that has a stored forecast."""
    if history.empty:
        return
    tz, cid, store = planning.timezone, planning.customer_id, planning.store
    base = (history["kwh"] - history["controlled_kwh"]).clip(lower=0.0)  # as the forecast
    local_days = pd.DatetimeIndex(history.index).tz_convert(tz).date
    known = store.forecast_errors(cid)
    for day in sorted(set(local_days))[-7:]:
        if day.isoformat() in known:
            continue
        lo = _local_midnight(day, tz).tz_convert("UTC")
        hi = _local_midnight(day + dt.timedelta(days=1), tz).tz_convert("UTC")
        actual = base[(base.index >= lo) & (base.index < hi)]
        if len(actual) < _intervals(lo, hi, resolution):
            continue  # not complete yet
        fc = store.forecast(cid, since=lo.to_pydatetime(), until=hi.to_pydatetime())
        if len(fc) < len(actual):
            continue  # no forecast was made for this day (before the first refresh)
        diff = (fc["kwh_p50"].reindex(actual.index) - actual).abs().dropna()
        if not len(diff):
            continue
        mae = float(diff.mean())
        if store.save_forecast_error(cid, day.isoformat(), mae_kwh=mae, slots=len(diff), now=now):
            logger.info(
                "customer %s: base-load forecast error on %s: MAE %.4f kWh per interval "
                "over %d intervals",
                cid,
                day.isoformat(),
                mae,
                len(diff),
                extra={"customer_id": cid, "day": day.isoformat(), "mae_kwh": mae},
            )
