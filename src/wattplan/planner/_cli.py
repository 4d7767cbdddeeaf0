"""``wattplan run``, ``wattplan status`` and ``wattplan demo``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from wattplan._jsonlog import JsonLogFormatter
from wattplan._logging import configure_logging

__all__ = ["JsonLogFormatter", "register"]


def _configure_logging(fmt: str, verbose: int) -> None:
    configure_logging(fmt, logging.DEBUG if verbose > 1 else logging.INFO)


def _run(args: argparse.Namespace) -> int:
    from wattplan._http import serve_in_thread
    from wattplan.planner._runtime import build_runtime
    from wattplan.planner.config import load_config

    _configure_logging(args.log_format, args.verbose)
    log = logging.getLogger("wattplan.run")
    config = load_config(args.config)
    if args.port is not None and config.http is not None:
        config.http.port = args.port
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    runtime = build_runtime(config)
    try:
        log.info(
            "planner starting: %d customers, database %s",
            len(config.customers),
            runtime.store.engine.url.render_as_string(hide_password=True),
        )
        runtime.start()
        if runtime.app is not None and config.http is not None:
            with serve_in_thread(
                runtime.app,
                host=config.http.host,
                port=config.http.port,
                header_timeout_s=config.http.header_timeout_s,
                keep_alive_s=config.http.keep_alive_s,
                max_connections=config.http.max_connections,
            ) as url:
                log.info("HTTP API on %s (health: %s/health)", url, url)
                if args.ready_file:
                    Path(args.ready_file).write_text(url, encoding="utf-8")
                stop.wait()
        else:
            if args.ready_file:
                Path(args.ready_file).write_text("", encoding="utf-8")
            stop.wait()
    finally:
        runtime.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("planner stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    from wattplan.exceptions import StoreError
    from wattplan.planner.store import CustomerHealth, PlanStore
    from wattplan.settings import Settings

    url = args.database_url
    prefix = "wattplan_"
    config = None
    if args.config is not None:
        from wattplan.planner.config import load_config

        config = load_config(args.config)
        if url is None:
            url, prefix = config.database_url, config.table_prefix
    url = url or Settings().database_url
    store = PlanStore(url, table_prefix=prefix, create=False)
    try:
        if not store.has_tables():
            shown = store.engine.url.render_as_string(hide_password=True)
            print(f"wattplan: no planner data in {shown} (has 'wattplan run' used it?)")
            return 1
        now = datetime.now(UTC)
        statuses = [s.as_dict(now) for s in store.statuses()]
        for s in statuses:
            try:
                usage = store.usage_status(s["customer_id"])
            except StoreError:  # a store from before usage histories: nothing to show
                break
            if usage is not None:
                s["usage"] = usage.as_dict()
    finally:
        store.dispose()
    if args.json:
        json.dump(statuses, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{'customer':<24} {'health':<26} {'stale':<6} {'plan age':>9}  error")
        for s in statuses:
            age = s["plan_age_seconds"]
            shown = "-" if age is None else f"{age / 60:.0f} min"
            error = f"{s['error_kind']}: {s['error']}" if s["error_kind"] else ""
            print(
                f"{s['customer_id']:<24} {s['health']:<26} {'yes' if s['stale'] else 'no':<6} "
                f"{shown:>9}  {error}"
            )
            usage = s.get("usage")
            if usage is not None and not usage["ok"]:
                print(
                    f"{'':<24} usage fetch failing ({usage['consecutive_failures']} in a row, "
                    f"planning on the forecast of {usage['forecast_made_at']}): {usage['error']}"
                )
    process = _process_health(config) if config is not None and not args.json else None
    if process is not None:
        print(process[1])
    failing = [
        s
        for s in statuses
        if s["health"] != CustomerHealth.OK.value or not (s.get("usage") or {}).get("ok", True)
    ]
    degraded = process is not None and not process[0]
    return 1 if (args.strict and (failing or degraded)) else 0


def _process_health(config: Any) -> tuple[bool, str] | None:
    """``(ok, one line)`` from the running planner's ``/health``, which sees what the
    database cannot hold (its own write failures, hanging price fetches)."""
    import httpx

    http = config.http
    if http is None or http.port == 0:
        return None
    wildcard = {"0.0.0.0", "", "::"}  # noqa: S104 - a listen address, mapped to loopback
    host = "127.0.0.1" if http.host in wildcard else http.host
    url = f"http://{f'[{host}]' if ':' in host else host}:{http.port}/health"
    try:
        body = httpx.get(url, timeout=3.0).json()
    except (httpx.HTTPError, ValueError):
        return False, f"planner process: not reachable at {url} (is 'wattplan run' running?)"
    if not isinstance(body, dict) or "status" not in body:
        return False, f"planner process: {url} does not answer like a planner"
    notes = []
    database = body.get("database") or {}
    if database.get("failing"):
        failing = ", ".join(database["failing"])
        notes.append(f"database failing ({failing}): {database.get('last_error')}")
    fetches = body.get("price_fetches") or {}
    if fetches.get("consecutive_failures"):
        notes.append(
            f"price fetches failing ({fetches['consecutive_failures']} in a row): "
            f"{fetches.get('last_error')}"
        )
    if fetches.get("stalled"):
        notes.append(f"{fetches['stalled']} price fetch(es) hanging")
    usage = body.get("usage_fetches") or {}
    if usage.get("failing_customers"):
        notes.append(f"usage fetches failing for {usage['failing_customers']} customer(s)")
    ok = body.get("status") == "ok"
    shown = "; ".join(notes)
    return ok, f"planner process: {body.get('status')}" + (f"; {shown}" if shown else "")


def _demo(args: argparse.Namespace) -> int:
    from wattplan.planner._demo import run_demo

    return run_demo(workdir=args.dir)


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the planner process (polls prices, re-plans, serves plans)",
        description="Run the planner: poll prices, re-plan on news, publish plans. "
        "Stops cleanly on SIGTERM or SIGINT.",
    )
    run.add_argument("--config", required=True, type=Path, help="planner.yaml")
    run.add_argument("--port", type=int, help="override http.port (0: a free port)")
    run.add_argument("--log-format", choices=("json", "text"), default="json")
    run.add_argument("--ready-file", type=Path, help="write the API URL here once serving")
    run.set_defaults(func=_run)

    status = subparsers.add_parser(
        "status",
        help="show each customer's planning health from the database",
        description="Health of every planned customer: ok, error (stale plan kept) or "
        "reauthorization_required, with the age of the latest plan.",
    )
    status.add_argument("--config", type=Path, help="planner.yaml (for its database)")
    status.add_argument("--database-url", help="default: WATTPLAN_DATABASE_URL")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--strict", action="store_true", help="exit 1 if any customer fails")
    status.set_defaults(func=_status)

    demo = subparsers.add_parser(
        "demo",
        help="the main job end to end on the offline sandbox (under a minute)",
        description="Start the sandbox, connect the demo customer through OAuth, fetch a "
        "year of her usage, show yesterday's base-load forecast beside her meter, plan the "
        "full household on her forecast, then show the re-plan after the next publication.",
    )
    demo.add_argument("--dir", type=Path, help="working folder (default: a new temp folder)")
    demo.set_defaults(func=_demo)
