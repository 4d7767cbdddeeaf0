"""``wattplan sandbox``: serve the offline Nomos until Ctrl-C."""

from __future__ import annotations

import argparse
import time
from typing import Any

from wattplan.datasets import METER_ATTRIBUTION, PRICE_ATTRIBUTION
from wattplan.exceptions import ConfigurationError
from wattplan.sandbox._config import DEFAULT_CLIENT_ID, DEMO_EMAIL, SandboxConfig

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="serve the offline Nomos sandbox (a development tool)",
        description=(
            "Serve the offline Nomos sandbox: OAuth sign-in pages, token endpoint and the "
            "read API with real day-ahead prices. A development tool: binds to loopback; "
            "another --host needs --allow-remote, and then serves no control endpoints "
            "unless --control asks for them. One-time sign-in codes are printed to the log."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8790, help="port (0: a free one)")
    parser.add_argument(
        "--lenient-refresh",
        action="store_true",
        help="do not revoke a grant when a rotated refresh token is replayed",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the control endpoints are then off)",
    )
    parser.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the /_sandbox control endpoints, which sign anyone in (default: on "
        "loopback only)",
    )
    parser.add_argument(
        "--usage",
        choices=("meters", "h25"),
        default="meters",
        help="usage source: the real household meters, with preliminary substitutes before "
        "the final values (default), or the smooth, fault-free H25 standard profile",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wattplan.sandbox._server import is_loopback, serve

    loopback = is_loopback(args.host)
    if not loopback and not args.allow_remote:
        raise ConfigurationError(
            f"--host {args.host} is not a loopback address: the sandbox is a development tool "
            "whose control endpoints sign anyone in (auto-approve, headless consent, one-time "
            "codes). Pass --allow-remote to serve it on the network (control endpoints then "
            "off unless --control)"
        )
    control = loopback if args.control is None else args.control
    config = SandboxConfig(
        strict_refresh_reuse=not args.lenient_refresh,
        control_endpoints=control,
        usage_source=args.usage,
    )
    with serve(config, host=args.host, port=args.port, allow_remote=args.allow_remote) as running:
        print(f"wattplan sandbox (development tool) on {running.base_url}", flush=True)
        print(
            f"  demo customer {DEMO_EMAIL}, client {DEFAULT_CLIENT_ID}; "
            f"metadata {running.base_url}/.well-known/oauth-authorization-server",
            flush=True,
        )
        print(f"  day-ahead prices: {PRICE_ATTRIBUTION}", flush=True)
        if args.usage == "meters":
            print(f"  usage from real household meters: {METER_ATTRIBUTION}", flush=True)
        else:
            print("  usage from the H25 standard load profile", flush=True)
        if not control:
            print("  control endpoints (/_sandbox/...) are off", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0
