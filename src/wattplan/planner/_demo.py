"""``wattplan demo``: the main job end to end on the embedded defaults.

Starts the sandbox (the offline Nomos) on a free loopback port, connects the demo
customer through the OAuth authorization-code flow with PKCE (the sandbox approves the
consent by itself), fetches a year of her metered usage with her grant (the sandbox's
real household meter), forecasts her base load and shows yesterday's forecast (made from
the usage up to the day before yesterday) beside what the meter measured, fetches her
prices and plans the full household on the forecast of her own consumption, prints the
plan and the savings and writes PNGs, serves the plan over the planner's HTTP API, then
moves the sandbox clock to the next afternoon and polls as the planner does until
tomorrow's prices are published, and shows the re-plan. Only SQLite in a working folder
and the sandbox.

The household (EV, heat pump, battery, PV, dishwasher) is a profile
(:func:`demo_profile`); each window's scenario is composed from it, the base-load
forecast (P50) and the shipped typical-year weather by
:func:`wattplan.household.household_scenario`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd

from wattplan._extras import requires
from wattplan.planner._household import DEMO_LATITUDE, DEMO_LONGITUDE
from wattplan.planner._planner import Outcome, Planner
from wattplan.planner._timing import PollSchedule
from wattplan.planner._types import Customer

if TYPE_CHECKING:
    from wattplan.household import Household

__all__ = ["ForecastCheck", "check_forecast", "demo_profile", "run_demo"]

logger = logging.getLogger(__name__)

BERLIN = ZoneInfo("Europe/Berlin")
DEMO_CUSTOMER = "demo"
# A winter afternoon with real prices; the sandbox's clock starts here, when yesterday's
# usage has been published (16:00) and tomorrow's prices too (about 14:20).
DEMO_START = datetime(2026, 1, 20, 16, 0, tzinfo=BERLIN)
REDIRECT_URI = "http://127.0.0.1:8765/callback"
STEPS = 9
#: days of usage history the demo fetches
HISTORY_DAYS = 365


def _local(moment: datetime | pd.Timestamp, fmt: str = "%a %d %b %H:%M") -> str:
    return moment.astimezone(BERLIN).strftime(fmt)


def run_demo(
    *,
    workdir: Path | None = None,
    out: IO[str] | None = None,
    start: datetime = DEMO_START,
) -> int:
    """Run the demo; returns the exit code. Progress goes to ``out`` (stdout)."""
    import sys

    import wattplan
    from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
    from wattplan.forecast import forecast_base_load
    from wattplan.planner._nomos import NomosPriceSource
    from wattplan.planner.store import PlanStore
    from wattplan.sandbox import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEMO_EMAIL,
        SandboxConfig,
        serve,
    )

    stream = out if out is not None else sys.stdout
    began = time.monotonic()

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    def step(n: int, text: str) -> None:
        say(f"\n[{n}/{STEPS}] {text}  (+{time.monotonic() - began:.1f} s)")

    folder = (
        Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wattplan-demo-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    # the demo's own database starts afresh: a re-run in the same folder tells the story again
    (folder / "wattplan-demo.sqlite3").unlink(missing_ok=True)
    database = f"sqlite:///{folder / 'wattplan-demo.sqlite3'}"
    say("wattplan demo: a HEMS backend planning one household on the offline Nomos sandbox")
    say(f"working folder: {folder}")

    step(1, "starting the sandbox (an offline stand-in for api.nomos.energy)")
    with serve(SandboxConfig()) as sandbox:
        sandbox.clock.set(start)
        say(f"      {sandbox.base_url}, sandbox clock set to {_local(start)} (Europe/Berlin)")

        step(2, f"connecting {DEMO_EMAIL} through OAuth 2.0 (authorization code + PKCE)")
        vault = TokenVault(
            database, cipher=TokenCipher(TokenCipher.generate_key()), clock=sandbox.clock.now
        )
        manager = TokenManager(
            config=OAuthConfig.for_base_url(
                sandbox.base_url,
                client_id=DEFAULT_CLIENT_ID,
                client_secret=DEFAULT_CLIENT_SECRET,
                redirect_uri=REDIRECT_URI,
                scope="read:*",
            ),
            vault=vault,
        )
        try:
            grant = _connect(manager, sandbox.base_url, DEMO_EMAIL, say)
            say(
                f"      grant stored encrypted in the vault: status {grant.status.value}, "
                f"access token valid until {_local(grant.token.expires_at, '%H:%M')}"
            )

            plans: list[Any] = []

            def optimize(scenario: Any, prices: pd.Series, **stability: Any) -> Any:
                plan = wattplan.optimize(scenario, prices=prices, **stability)
                plans.append(plan)
                return plan

            source = NomosPriceSource(
                base_url=sandbox.base_url, auth_for=lambda c: manager.auth(c.id)
            )
            probe = Customer(id=DEMO_CUSTOMER, scenario=None)
            subscription = source.subscription_id(probe)
            today = start.astimezone(BERLIN).date()
            yesterday = today - timedelta(days=1)

            step(3, f"fetching a year of her metered usage with her grant ({subscription})")
            # the same call the planner's daily usage refresh makes
            usage = source.fetch_usage(probe, start=today - timedelta(days=HISTORY_DAYS), end=today)
            history = usage["usage_kwh"]
            if history.empty:
                say("      no usage published")
                return 1
            kinds = usage["type"].value_counts()
            stamps = pd.DatetimeIndex(history.index)
            say(
                f"      {len(history):,} quarter-hours, {_local(stamps[0], '%a %d %b %Y')} to "
                f"{_local(stamps[-1], '%a %d %b %Y')}: {history.sum():,.0f} kWh "
                f"({int(kinds.get('final', 0)):,} final, "
                f"{int(kinds.get('preliminary', 0)):,} preliminary values)"
            )

            step(4, "her base-load forecast for yesterday beside what her meter measured")
            check = check_forecast(history, yesterday)
            say(_indent(check.summary()))
            png0 = folder / "wattplan-demo-forecast.png"
            _save_figure(check.plot(), png0)
            check.frame.to_csv(folder / "wattplan-demo-forecast.csv")
            say(f"      plot written to {png0}")

            # the plan windows run to the end of tomorrow's and, after the next
            # publication, the day after's prices; each day from the usage before it
            forecast = forecast_base_load(history, today, today + timedelta(days=3))
            base_load_kw = forecast.kwh["kwh_mean"] * (60 / forecast.resolution_minutes)
            base_load_kw.index = pd.DatetimeIndex(base_load_kw.index).tz_convert("UTC")
            profile = demo_profile()

            def household(lo: datetime, hi: datetime) -> Any:
                return _compose(profile, lo, hi, base_load_kw)

            store = PlanStore(database)
            customer = Customer(
                id=DEMO_CUSTOMER,
                scenario=household(start, start + timedelta(days=1)),
                scenario_factory=household,
            )
            planner = Planner(
                customers=[customer], store=store, prices=source, optimize=optimize,
                clock=sandbox.clock,
            )  # fmt: skip

            step(5, "fetching her prices and planning the household on her own consumption")
            report = planner.run_once()
            if report.failed:
                status = store.status(DEMO_CUSTOMER)
                say(f"      planning failed: {status.error if status else '?'}")
                return 1
            first = store.latest_plan(DEMO_CUSTOMER)
            assert first is not None
            prices = first.prices
            say(
                f"      subscription {subscription}: {len(prices)} quarter-hours "
                f"{_local(prices.index[0], '%a %d %b')} to {_local(prices.index[-1], '%a %d %b')}, "
                f"{prices.min():.1f} to {prices.max():.1f} ct/kWh all-in"
            )
            plan = plans[-1]
            days = (
                forecast.kwh["kwh_mean"]
                .groupby(pd.DatetimeIndex(forecast.kwh.index).tz_convert(BERLIN).date)
                .sum()
            )
            say(
                "      base load: her expected base load, the forecast's mean ("
                + ", ".join(
                    f"{_day_name(d)} {kwh:.1f} kWh" for d, kwh in zip(days.index, days, strict=True)
                )
                + "), PV and the heat pump's weather: the typical year"
            )
            say(
                f"      horizon {_local(first.horizon_start)} to {_local(first.horizon_end)} "
                f"({len(plan.schedule)} slots)\n"
            )
            say(_indent(_short_table(plan.schedule)))
            say()
            say(_indent(plan.summary()))
            say()
            say(_indent(plan.explanation))
            png = folder / "wattplan-demo-plan.png"
            _save_png(plan, png, forecast.kwh, check)
            say(f"\n      plot written to {png}")

            step(6, "the plan over the planner's HTTP API (closed: a bearer key per customer)")
            _show_http(planner, say)

            step(7, "next day: the household reports its device state (a re-plan follows)")
            next_day = today + timedelta(days=1)
            morning = datetime.combine(next_day, datetime.min.time(), tzinfo=BERLIN)
            schedule = PollSchedule()
            window_start, _ = schedule.window(next_day)
            sandbox.clock.set(window_start)
            state = _state_at(plans[-1], window_start)
            planner.update_device_state(DEMO_CUSTOMER, {"devices": state})
            battery = state["home-battery"]["soc_kwh"]
            indoor = state["heat-pump"]["indoor_c"]
            say(f"      {_local(window_start)}: battery {battery:.1f} kWh, indoor {indoor:.1f} °C")
            replanned = planner.run_once(fetch_prices=False)
            latest = store.latest_plan(DEMO_CUSTOMER)
            if replanned.planned and latest is not None:
                say(f"      re-planned on the rolling horizon (reason: {latest.reason})")

            step(8, "polling for tomorrow's prices as the planner does (every 5 min, 13:30-16:00)")
            new_plan = None
            for poll in schedule.polls(
                window_start - timedelta(seconds=1), window_start + timedelta(hours=3)
            ):
                sandbox.clock.set(poll)
                report = planner.run_once()
                outcome = report.outcomes[0]
                if outcome.outcome is Outcome.PLANNED:
                    new_plan = store.latest_plan(DEMO_CUSTOMER)
                    say(f"      {_local(poll, '%H:%M')} new prices ({outcome.reason}): re-planned")
                    break
                say(f"      {_local(poll, '%H:%M')} {outcome.outcome.value}")
            if new_plan is None:
                say("      no new prices within the window")
                return 1

            step(9, "the re-plan on the prices published today")
            plan = plans[-1]
            say(
                f"      horizon {_local(new_plan.horizon_start)} to {_local(new_plan.horizon_end)} "
                f"({len(plan.schedule)} slots); plans stored: {store.count_plans(DEMO_CUSTOMER)}"
            )
            say(
                f"      base load: the same forecast ({_day_name(today)}'s usage is published "
                f"at 16:00, after the prices)\n"
            )
            tomorrow = plan.schedule[
                plan.schedule.index >= pd.Timestamp(morning + timedelta(days=1))
            ]
            say("      tomorrow, hour by hour (means):")
            say(_indent(_short_table(tomorrow)))
            say()
            say(_indent(plan.summary()))
            png2 = folder / "wattplan-demo-replan.png"
            _save_png(plan, png2, forecast.kwh, check)
            say(f"\n      plot written to {png2}")
            source.close()
            store.dispose()
        finally:
            manager.close()
            vault.close()
    say(f"\ndone in {time.monotonic() - began:.1f} s; database and plots in {folder}")
    return 0


def demo_profile() -> Household:
    """The demo household as a profile: the devices of :func:`demo_household`.

    An EV plugged in at 18:00 and leaving at 07:00 every day needing 18 kWh, a 10 kWh
    battery (5 kWh at the start), a heat pump in a 7 kWh/K, 0.25 kW/K house held at
    20-23 °C (21 °C at the start), 8 kWp of PV facing south at 35° in Potsdam and a
    dishwasher that runs once every night between 20:00 and 07:00.
    """
    from wattplan.household import WEEKDAYS, household_from_dict

    evening, morning = dt.time(18), dt.time(7)
    return household_from_dict(
        {
            "name": "demo-household",
            "site": {
                "timezone": "Europe/Berlin",
                "grid_import_limit_kw": 24.0,
                "grid_export_limit_kw": 10.0,
                "feed_in_ct_per_kwh": 7.78,
                "pv": {
                    "latitude": DEMO_LATITUDE,
                    "longitude": DEMO_LONGITUDE,
                    "kwp": 8.0,
                    "tilt_deg": 35.0,
                    "azimuth_deg": 180.0,
                },
            },
            "devices": [
                {
                    "kind": "ev",
                    "name": "car",
                    "max_power_kw": 11.0,
                    "min_power_kw": 4.2,
                    "efficiency": 0.92,
                    "weekly": {
                        day: {"plug_in": evening, "departure": morning, "energy_kwh": 18.0}
                        for day in WEEKDAYS
                    },
                },
                {
                    "kind": "battery",
                    "name": "home-battery",
                    "capacity_kwh": 10.0,
                    "soc_min_kwh": 1.0,
                    "initial_soc_kwh": 5.0,
                    "max_charge_kw": 5.0,
                    "max_discharge_kw": 5.0,
                    "charge_efficiency": 0.95,
                    "discharge_efficiency": 0.95,
                },
                {
                    "kind": "heat_pump",
                    "name": "heat-pump",
                    "max_power_kw": 3.5,
                    "building": {
                        "heat_capacity_kwh_per_k": 7.0,
                        "heat_loss_kw_per_k": 0.25,
                        "comfort_min_c": 20.0,
                        "comfort_max_c": 23.0,
                        "initial_indoor_c": 21.0,
                    },
                },
                {
                    "kind": "appliance",
                    "name": "dishwasher",
                    "profile_kw": [2.0, 2.0, 0.3, 0.3, 1.8, 0.2],
                    "weekly": {
                        day: {"earliest_start": dt.time(20), "latest_end": morning}
                        for day in WEEKDAYS
                    },
                },
            ],
        }
    )


def _compose(profile: Household, lo: datetime, hi: datetime, base_load_kw: pd.Series) -> Any:
    """The scenario of ``[lo, hi)``: the profile on the base-load forecast and the typical
    year's weather. The prices are placeholders: the planner plans on the fetched ones. A
    dishwasher run that can still wait for the next publication's prices is left to it."""
    from wattplan.household import household_scenario
    from wattplan.weather import TypicalYearWeather

    slots = pd.date_range(pd.Timestamp(lo), pd.Timestamp(hi), freq="15min", inclusive="left")
    polls = PollSchedule()
    next_polls, _ = polls.window(lo.astimezone(BERLIN).date())
    if next_polls <= lo:
        next_polls, _ = polls.window(lo.astimezone(BERLIN).date() + timedelta(days=1))
    return household_scenario(
        profile,
        lo,
        hi,
        base_load_kw=base_load_kw,
        prices_ct_per_kwh=pd.Series(0.0, index=slots.tz_convert("UTC")),
        weather=TypicalYearWeather(),
        replan_at=next_polls,
    )


@dataclass(frozen=True)
class ForecastCheck:
    """A day's base-load forecast beside the metered usage, per slot and summed up.

    ``frame`` has ``kwh_p10``, ``kwh_p50``, ``kwh_p90`` (the forecast), ``metered_kwh`` and
    ``naive_kwh`` (the same wall-clock slot 7 days earlier) per slot of the local day.
    ``mae_kwh`` is the mean absolute error of P50 per slot and ``mase`` that over the naive
    forecast's, both on the slots where the meter and the naive forecast have a value;
    ``coverage`` is the share of metered slots inside [P10, P90].
    """

    day: dt.date
    history_until: dt.date
    frame: pd.DataFrame
    forecast_kwh: float
    metered_kwh: float
    mae_kwh: float
    mase: float
    coverage: float

    def summary(self) -> str:
        gap = self.forecast_kwh - self.metered_kwh
        share = gap / self.metered_kwh * 100 if self.metered_kwh > 0 else math.nan
        slot = _slot_name(self.frame)
        return "\n".join(
            [
                f"forecast for {_day_name(self.day)} as its plan knew it, from her usage up to "
                f"{_day_name(self.history_until)} (P50 and the P10-P90 band per {slot}):",
                f"  energy    forecast {self.forecast_kwh:.2f} kWh, metered "
                f"{self.metered_kwh:.2f} kWh ({share:+.0f} %)",
                f"  MAE       {self.mae_kwh:.3f} kWh per {slot}",
                f"  MASE      {self.mase:.2f} (against the same {slot} a week earlier: "
                f"below 1 is better)",
                f"  coverage  {self.coverage * 100:.0f} % of the {slot}s inside P10-P90",
            ]
        )

    def plot(self) -> Any:
        """The forecast band, its P50 and the metered usage (a matplotlib Figure)."""
        with requires("plot", feature="the demo's plot"):
            from matplotlib.figure import Figure

        f = self.frame
        x = pd.DatetimeIndex(f.index).tz_convert(BERLIN)
        fig = Figure(figsize=(11.0, 4.0), layout="constrained")
        ax = fig.subplots()
        kw = 60 / _slot_minutes(f)
        ax.fill_between(x, f["kwh_p10"] * kw, f["kwh_p90"] * kw, step="post", alpha=0.3,
                        color="tab:blue", label="forecast P10-P90")  # fmt: skip
        ax.step(x, f["kwh_p50"] * kw, where="post", color="tab:blue", label="forecast P50")
        ax.step(x, f["metered_kwh"] * kw, where="post", color="black", label="metered")
        ax.set_ylabel("base load, kW")
        ax.set_title(
            f"{_day_name(self.day)}: forecast {self.forecast_kwh:.1f} kWh, metered "
            f"{self.metered_kwh:.1f} kWh; MAE {self.mae_kwh:.3f} kWh, MASE {self.mase:.2f}, "
            f"P10-P90 coverage {self.coverage * 100:.0f} %"
        )
        ax.legend(loc="upper left")
        return fig


def check_forecast(
    history: pd.Series, day: dt.date, *, timezone: str = "Europe/Berlin"
) -> ForecastCheck:
    """Forecast local ``day`` from ``history`` before it and compare with what was metered.

    ``history`` is energy per interval (kWh) with a tz-aware index, as the usage endpoint
    gives it. The forecast is the one a plan for ``day`` rests on: made on the afternoon of
    the day before, it sees only the intervals before local midnight of that day (the usage
    of the day before is not yet published then; DESIGN §3a).
    """
    from wattplan.forecast import forecast_base_load, same_slot_week_before

    cutoff = pd.Timestamp(day - timedelta(days=1)).tz_localize(timezone)
    index = pd.DatetimeIndex(history.index)
    before = history[index < cutoff]
    forecast = forecast_base_load(
        before, day, day + timedelta(days=1), timezone=timezone,
        resolution_minutes=_minutes(index),
    ).kwh  # fmt: skip
    slots = pd.DatetimeIndex(forecast.index)
    metered = history.reindex(slots.tz_convert(index.tz)).to_numpy(dtype=float)
    # the naive forecast: the same local wall-clock slot one week earlier
    naive = same_slot_week_before(history, slots, timezone).to_numpy()
    frame = forecast.assign(metered_kwh=metered, naive_kwh=naive)
    p10, p50, p90 = (forecast[c].to_numpy() for c in ("kwh_p10", "kwh_p50", "kwh_p90"))
    seen = ~np.isnan(metered)
    both = seen & ~np.isnan(naive)
    mae = float(np.abs(p50[both] - metered[both]).mean()) if both.any() else math.nan
    scale = float(np.abs(naive[both] - metered[both]).mean()) if both.any() else math.nan
    inside = (metered[seen] >= p10[seen]) & (metered[seen] <= p90[seen])
    return ForecastCheck(
        day=day,
        history_until=day - timedelta(days=2),
        frame=frame,
        forecast_kwh=float(p50.sum()),
        metered_kwh=float(metered[seen].sum()),
        mae_kwh=mae,
        mase=mae / scale if scale > 0 else math.nan,
        coverage=float(inside.mean()) if seen.any() else math.nan,
    )


def _minutes(index: pd.DatetimeIndex) -> int | None:
    if len(index) < 2:
        return None
    return int(pd.Series(index[1:] - index[:-1]).min() / pd.Timedelta(minutes=1))


def _slot_minutes(frame: pd.DataFrame) -> int:
    return _minutes(pd.DatetimeIndex(frame.index)) or 15


def _slot_name(frame: pd.DataFrame) -> str:
    return "hour" if _slot_minutes(frame) == 60 else "quarter-hour"


def _day_name(day: dt.date) -> str:
    return day.strftime("%a %d %b")


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def _connect(manager: Any, base_url: str, email: str, say: Callable[[str], None]) -> Any:
    start = manager.start_authorization(DEMO_CUSTOMER)
    say("      authorization URL built (S256 challenge, one-time state kept server-side)")
    with httpx.Client(timeout=10) as http:
        http.post(f"{base_url}/_sandbox/auto-approve", json={"email": email}).raise_for_status()
        answer = http.get(start.url, follow_redirects=False)
    location = answer.headers.get("location", "")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    say("      sandbox: signed in and consented; redirected back with a one-time code")
    grant = manager.complete_authorization(params)
    say("      code exchanged at /oauth/token (PKCE verifier checked)")
    return grant


def _show_http(planner: Planner, say: Callable[[str], None]) -> None:
    from wattplan._http import serve_in_thread
    from wattplan.planner.api import BearerKeys, create_app

    key = "demo-key-" + "0" * 24
    app = create_app(planner, auth=BearerKeys({DEMO_CUSTOMER: key}))
    path = f"/customers/{DEMO_CUSTOMER}"
    with serve_in_thread(app) as api, httpx.Client(base_url=api, timeout=10) as http:
        refused = http.get(f"{path}/plan")
        answer = http.get(f"{path}/setpoint", headers={"Authorization": f"Bearer {key}"})
    row = answer.json()["setpoint"]
    say(f"      GET {path}/plan without the key -> {refused.status_code}")
    slot = _local(datetime.fromisoformat(row["start"]), "%H:%M")
    powers = ", ".join(
        f"{k.removesuffix('_kw')} {row[k]:+.2f} kW"
        for k in ("car_kw", "home-battery_kw", "heat-pump_kw", "grid_import_kw")
        if k in row
    )
    say(f"      GET {path}/setpoint with the key -> slot {slot}: {powers}")


def _state_at(plan: Any, moment: datetime) -> dict[str, dict[str, float]]:
    """The battery charge and room temperature the plan expected at ``moment``."""
    schedule = plan.schedule
    before = schedule[schedule.index < pd.Timestamp(moment)]
    row = before.iloc[-1] if len(before) else schedule.iloc[0]
    return {
        "home-battery": {"soc_kwh": round(float(row["home-battery_soc_kwh"]), 2)},
        "heat-pump": {"indoor_c": round(float(row["heat-pump_indoor_c"]), 2)},
    }


_COLUMNS = {
    "price_ct_per_kwh": "ct/kWh",
    "grid_import_kw": "grid kW",
    "pv_used_kw": "PV kW",
    "car_kw": "car kW",
    "home-battery_kw": "battery kW",
    "heat-pump_kw": "heat kW",
    "dishwasher_kw": "dishw. kW",
    "home-battery_soc_kwh": "SoC kWh",
    "heat-pump_indoor_c": "room °C",
}


def _short_table(rows: pd.DataFrame) -> str:
    """Hourly means of the columns that tell the story, in local time."""
    runs = [c for c in rows.columns if c.startswith("dishwasher-") and c.endswith("_kw")]
    if runs:  # one column per run of the dishwasher's habit: show them as one
        rows = rows.assign(dishwasher_kw=rows[runs].sum(axis=1))
    hourly = rows.resample("1h").mean(numeric_only=True)
    cols = [c for c in _COLUMNS if c in hourly.columns]
    lines = ["           " + "".join(f"{_COLUMNS[c]:>11}" for c in cols)]
    for ts, values in zip(pd.DatetimeIndex(hourly.index), hourly[cols].itertuples(), strict=True):
        stamp = ts.tz_convert(BERLIN).strftime("%a %H:%M")
        lines.append(f"{stamp:<11}" + "".join(f"{v:11.2f}" for v in values[1:]))
    return "\n".join(lines)


def _save_png(
    plan: Any, path: Path, forecast: pd.DataFrame | None = None, check: ForecastCheck | None = None
) -> None:
    """The plan's figure; with ``forecast`` (kWh per slot, P10/P50/P90) its base-load band
    on the power axis, with ``check`` yesterday's forecast error in the title."""
    with requires("plot", feature="the demo's plot"):
        import matplotlib

    matplotlib.use("Agg", force=False)
    figure = plan.plot()
    schedule = plan.schedule
    if forecast is not None and not schedule.empty and len(figure.axes) > 1:
        index = pd.DatetimeIndex(schedule.index)
        kw = forecast.set_axis(pd.DatetimeIndex(forecast.index).tz_convert(index.tz)).reindex(
            index
        ) * (60 / _slot_minutes(forecast))
        x = index.tz_convert(BERLIN)
        ax = figure.axes[1]
        ax.fill_between(x, kw["kwh_p10"], kw["kwh_p90"], step="post", color="grey", alpha=0.2,
                        label="base load P10-P90")  # fmt: skip
        ax.step(x, kw["kwh_p50"], where="post", color="grey", ls="--", lw=1.0,
                label="base load P50 (planned on)")  # fmt: skip
        ax.legend(loc="upper right", fontsize="small", ncol=3)
    if check is not None:
        figure.suptitle(
            "base load planned on her own forecast (grey)\n"
            f"yesterday ({_day_name(check.day)}): forecast {check.forecast_kwh:.1f} kWh, "
            f"metered {check.metered_kwh:.1f} kWh; MAE {check.mae_kwh:.3f} kWh per "
            f"{_slot_name(check.frame)}, MASE {check.mase:.2f}, "
            f"{check.coverage * 100:.0f} % inside P10-P90",
            fontsize="small",
        )
    _save_figure(figure, path)


def _save_figure(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=100)
