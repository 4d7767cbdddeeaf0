"""``wattplan demo``: the main job end to end on the embedded defaults.

Starts the sandbox (the offline Nomos) on a free loopback port, connects the demo
customer through the OAuth authorization-code flow with PKCE (the sandbox approves the
consent by itself), fetches her prices, plans the full household, prints the plan and the
savings and writes a PNG, serves the plan over the planner's HTTP API, then moves the
sandbox clock to the next afternoon and polls as the planner does until tomorrow's prices
are published, and shows the re-plan. Only SQLite in a working folder and the sandbox.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pandas as pd

from wattplan._extras import requires
from wattplan.planner._household import demo_household
from wattplan.planner._planner import Outcome, Planner
from wattplan.planner._timing import PollSchedule
from wattplan.planner._types import Customer

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)

BERLIN = ZoneInfo("Europe/Berlin")
DEMO_CUSTOMER = "demo"
# A winter afternoon with real prices; the sandbox's clock starts here.
DEMO_START = datetime(2026, 1, 20, 15, 0, tzinfo=BERLIN)
REDIRECT_URI = "http://127.0.0.1:8765/callback"
STEPS = 7


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
            store = PlanStore(database)
            customer = Customer(
                id=DEMO_CUSTOMER,
                scenario=demo_household(start, start + timedelta(days=1)),
                scenario_factory=demo_household,
            )
            planner = Planner(
                customers=[customer], store=store, prices=source, optimize=optimize,
                clock=sandbox.clock,
            )  # fmt: skip

            step(3, "fetching her prices and planning the full household")
            subscription = source.subscription_id(customer)
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
            _save_png(plan, png)
            say(f"\n      plot written to {png}")

            step(4, "the plan over the planner's HTTP API (closed: a bearer key per customer)")
            _show_http(planner, say)

            step(5, "next day: the household reports its device state (a re-plan follows)")
            next_day = start.astimezone(BERLIN).date() + timedelta(days=1)
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

            step(6, "polling for tomorrow's prices as the planner does (every 5 min, 13:30-16:00)")
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

            step(7, "the re-plan on the prices published today")
            plan = plans[-1]
            say(
                f"      horizon {_local(new_plan.horizon_start)} to {_local(new_plan.horizon_end)} "
                f"({len(plan.schedule)} slots); plans stored: {store.count_plans(DEMO_CUSTOMER)}\n"
            )
            tomorrow = plan.schedule[
                plan.schedule.index >= pd.Timestamp(morning + timedelta(days=1))
            ]
            say("      tomorrow, hour by hour (means):")
            say(_indent(_short_table(tomorrow)))
            say()
            say(_indent(plan.summary()))
            png2 = folder / "wattplan-demo-replan.png"
            _save_png(plan, png2)
            say(f"\n      plot written to {png2}")
            source.close()
            store.dispose()
        finally:
            manager.close()
            vault.close()
    say(f"\ndone in {time.monotonic() - began:.1f} s; database and plots in {folder}")
    return 0


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
    hourly = rows.resample("1h").mean(numeric_only=True)
    cols = [c for c in _COLUMNS if c in hourly.columns]
    lines = ["           " + "".join(f"{_COLUMNS[c]:>11}" for c in cols)]
    for ts, values in zip(pd.DatetimeIndex(hourly.index), hourly[cols].itertuples(), strict=True):
        stamp = ts.tz_convert(BERLIN).strftime("%a %H:%M")
        lines.append(f"{stamp:<11}" + "".join(f"{v:11.2f}" for v in values[1:]))
    return "\n".join(lines)


def _save_png(plan: Any, path: Path) -> None:
    with requires("plot", feature="the demo's plot"):
        import matplotlib

    matplotlib.use("Agg", force=False)
    figure = plan.plot()
    figure.savefig(path, dpi=100)
