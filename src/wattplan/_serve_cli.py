"""``wattplan serve``: the optimize API alone (``POST /optimize``), served by uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from wattplan.exceptions import ConfigurationError
from wattplan.optimize_api import OptimizeLimits, create_optimize_app

__all__ = ["register"]

DEFAULT_KEY_ENV = "WATTPLAN_API_KEY"


def _keys(args: argparse.Namespace) -> Any:
    from wattplan._api import ApiKeys

    digests = [d.strip() for d in args.api_key_sha256 or [] if d.strip()]
    key = os.environ.get(args.api_key_env, "")
    if not key and not digests:
        raise ConfigurationError(
            f"{args.api_key_env} is not set: the optimize API needs a key "
            "(or --api-key-sha256 HEX); it never runs open"
        )
    try:
        return ApiKeys([key] if key else [], digests=digests)
    except ValueError as exc:
        source = args.api_key_env if key else "--api-key-sha256"
        raise ConfigurationError(f"{source}: {exc}") from None


def _serve(args: argparse.Namespace) -> int:
    from wattplan._http import serve_in_thread

    log = logging.getLogger("wattplan.serve")
    keys = _keys(args)
    try:
        limits = OptimizeLimits(
            max_body_bytes=args.max_body_bytes,
            max_horizon_days=args.max_horizon_days,
            max_solve_seconds=args.max_solve_seconds,
            max_concurrent=args.max_concurrent,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    app = create_optimize_app(auth=keys, limits=limits)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with serve_in_thread(
            app,
            host=args.host,
            port=args.port,
            header_timeout_s=10.0,
            keep_alive_s=5.0,
            max_connections=100,
        ) as url:
            print(f"optimize API on {url} (POST {url}/optimize, docs {url}/docs)", flush=True)
            if args.ready_file:
                Path(args.ready_file).write_text(url, encoding="utf-8")
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the optimizer alone over HTTP (POST /optimize)",
        description="Serve POST /optimize: a scenario as JSON in, the plan JSON out; nothing "
        f"stored. The bearer key comes from ${DEFAULT_KEY_ENV} (or --api-key-env NAME).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=8080, help="port (0: a free one)")
    p.add_argument(
        "--api-key-env",
        default=DEFAULT_KEY_ENV,
        metavar="NAME",
        help=f"environment variable holding the bearer key (default {DEFAULT_KEY_ENV})",
    )
    p.add_argument(
        "--api-key-sha256",
        action="append",
        metavar="HEX",
        help="accept the key with this SHA-256 digest (repeatable)",
    )
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--max-horizon-days", type=float, default=14.0)
    p.add_argument("--max-solve-seconds", type=float, default=30.0)
    p.add_argument("--max-concurrent", type=int, default=2, help="solves at a time")
    p.add_argument("--ready-file", help=argparse.SUPPRESS)
    p.set_defaults(func=_serve)
