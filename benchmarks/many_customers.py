"""Many customers in one planner process against the sandbox on loopback.

Every customer has her own OAuth grant (authorization code + PKCE, consent automated by
the sandbox), her own price requests and her own household; all share one process, one
SQLite database and one connection pool. The sandbox runs in a separate process (``wattplan
sandbox``) so that the memory figure is the planner's alone.

Measured: connecting everybody, the first plan (today's prices only), and the figure the
issue asks for: after tomorrow's prices are published at 14:20, one planner pass that
re-plans every customer. Peak memory is the process's maximum resident set size.

Run: ``.venv/bin/python benchmarks/many_customers.py [--customers 1000] [--workers 4]``
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.nomos import RetryPolicy
from wattplan.planner import Customer, Planner, PlanStore
from wattplan.planner._household import demo_household
from wattplan.planner._nomos import NomosPriceSource
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_EMAIL

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 1, 20, tzinfo=BERLIN)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattplan.cli", "sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/_sandbox/state", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the sandbox did not start")


def set_clock(url: str, moment: datetime) -> None:
    httpx.post(
        f"{url}/_sandbox/clock", json={"now": moment.isoformat(), "ticking": False}
    ).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wattplan-bench-"))
    database = f"sqlite:///{folder / 'planner.sqlite3'}"
    proc, url = start_sandbox()
    clock_now = [DAY.replace(hour=13)]

    class Clock:
        def now(self) -> datetime:
            return clock_now[0]

    try:
        set_clock(url, clock_now[0])
        vault = TokenVault(
            database, cipher=TokenCipher(TokenCipher.generate_key()), clock=Clock().now
        )
        manager = TokenManager(
            config=OAuthConfig.for_base_url(
                url,
                client_id=DEFAULT_CLIENT_ID,
                client_secret=DEFAULT_CLIENT_SECRET,
                redirect_uri="http://127.0.0.1:8765/callback",
                scope="read:*",
            ),
            vault=vault,
        )
        ids = [f"customer-{i:05d}" for i in range(args.customers)]
        t0 = time.perf_counter()
        with httpx.Client(timeout=30) as http:
            http.post(f"{url}/_sandbox/auto-approve", json={"email": DEMO_EMAIL})
            for cid in ids:
                start = manager.start_authorization(cid)
                answer = http.get(start.url, follow_redirects=False)
                query = parse_qs(urlsplit(answer.headers["location"]).query)
                manager.complete_authorization({k: v[0] for k, v in query.items()})
        t_connect = time.perf_counter() - t0

        source = NomosPriceSource(
            base_url=url,
            auth_for=lambda c: manager.auth(c.id),
            client_options={"retry": RetryPolicy(max_attempts=2)},
            transport=httpx.HTTPTransport(limits=httpx.Limits(max_connections=args.workers)),
        )
        store = PlanStore(database)
        template = demo_household(DAY, DAY + timedelta(days=1))
        planner = Planner(
            customers=[
                Customer(id=cid, scenario=template, scenario_factory=demo_household) for cid in ids
            ],
            store=store,
            prices=source,
            clock=Clock(),
            workers=args.workers,
        )
        t0 = time.perf_counter()
        first = planner.run_once()
        t_first = time.perf_counter() - t0
        rss_first = peak_rss_mib()

        clock_now[0] = DAY.replace(hour=14, minute=20)
        set_clock(url, clock_now[0])
        t0 = time.perf_counter()
        report = planner.run_once()
        t_publication = time.perf_counter() - t0
        rss_after = peak_rss_mib()

        clock_now[0] = DAY.replace(hour=14, minute=25)
        set_clock(url, clock_now[0])
        t0 = time.perf_counter()
        idle = planner.run_once()
        t_idle = time.perf_counter() - t0

        print(f"{args.customers} customers in one process, {args.workers} worker threads")
        print(f"  connect (OAuth code + PKCE each)     {t_connect:7.1f} s")
        print(
            f"  first plan (today's prices)          {t_first:7.1f} s   "
            f"planned {len(first.planned)}, failed {len(first.failed)}"
        )
        print(
            f"  publication at 14:20: one pass       {t_publication:7.1f} s   "
            f"re-planned {len(report.planned)} of {args.customers}, failed {len(report.failed)}"
            f" ({t_publication / max(1, len(report.planned)) * 1000:.0f} ms a customer)"
        )
        print(
            f"  next poll, nothing new               {t_idle:7.1f} s   "
            f"re-planned {len(idle.planned)}"
        )
        print(f"  plans stored                         {store.count_plans():7d}")
        print(
            f"  peak memory (max RSS)                {rss_after:7.0f} MiB "
            f"(after the first pass {rss_first:.0f} MiB)"
        )
        source.close()
        store.dispose()
        manager.close()
        vault.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
