"""Many customers in one planner process against the sandbox on loopback.

Every customer has her own OAuth grant (authorization code + PKCE, consent automated by
the sandbox), her own price requests and her own household; all share one process, one
SQLite database (the grants in another) and one connection pool. The sandbox runs in a
separate process (``wattplan sandbox``) so that the memory figure is the planner's alone.

Measured: connecting everybody, the first plan (today's prices only) at 13:00, the poll at
14:15 that the publication window makes (tomorrow not out yet; every access token, an hour
old by then, is refreshed), and the figure the issue asks for: after tomorrow's prices are
published at 14:20, one planner pass that re-plans every customer; then a poll that finds
nothing new. For the publication pass:
wall time, time per customer, and its ratio to the sum of the pure ``optimize`` times
(measured on whichever worker ran them; 1.0 would be a pass that costs nothing but its
optimizations). Peak memory is the largest sum of the resident set sizes of the planner
process and all its children (pool processes, Dask scheduler-side threads and workers),
sampled every 0.1 s; the sandbox is not counted. The last lines do the arithmetic for
100,000 customers from the measured per-customer costs.

Several executors in one run (``--executor threads,processes,dask``) share the customers'
grants, so the OAuth connection is made once: each executor then plans on a fresh database,
a day after the one before (every access token has expired by its first plan, as on the
first day), and its peak memory is counted from what is resident when it starts.

Run: ``.venv/bin/python benchmarks/many_customers.py [--customers 1000] [--workers 4]
[--executor threads|processes|dask[,...]] [--executor-workers 2]``
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, cast
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.nomos import RetryPolicy
from wattplan.planner import Customer, Planner, PlanStore
from wattplan.planner._executors import make_executor
from wattplan.planner._household import demo_household
from wattplan.planner._nomos import NomosPriceSource
from wattplan.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_EMAIL

ExecutorKind = Literal["threads", "processes", "dask"]
BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 1, 20, tzinfo=BERLIN)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class MemorySampler:
    """Peak of the summed RSS of this process and its descendants (not ``exclude``)."""

    def __init__(self, exclude: int) -> None:
        import psutil

        self._psutil = psutil
        self.exclude = exclude
        self.peak_mib = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        me = self._psutil.Process(os.getpid())
        total, count = 0, 0
        for proc in [me, *me.children(recursive=True)]:
            if proc.pid == self.exclude:
                continue
            try:
                total += proc.memory_info().rss
                count += 1
            except self._psutil.Error:
                continue
        mib = total / 2**20
        if mib > self.peak_mib:
            self.peak_mib, self.peak_processes = mib, count
        return mib

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def cpu_seconds(self) -> tuple[float, float, float]:
        """CPU seconds (user + system) so far: this process, its other descendants (pool or
        Dask workers), the sandbox.

        Children that ended are not counted; the pool and Dask workers live to the end.
        """
        me = self._psutil.Process(os.getpid())
        planner, workers, sandbox = 0.0, 0.0, 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except self._psutil.Error:
                continue
            used = times.user + times.system
            if proc.pid == self.exclude:
                sandbox += used
            elif proc.pid == me.pid:
                planner += used
            else:
                workers += used
        return planner, workers, sandbox

    def reset(self) -> None:
        """Start a new peak (one executor's round), from what is resident now."""
        self.peak_mib, self.peak_processes = 0.0, 0
        self.sample()

    def sample_peak(self) -> float:
        self.sample()
        return self.peak_mib

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peak_mib


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
    parser.add_argument("--workers", type=int, default=4, help="fetch/decide/store threads")
    parser.add_argument(
        "--executor",
        default="threads",
        help="threads, processes or dask; several comma-separated run one after the other on "
        "the same connected customers (each on a fresh database and a day later)",
    )
    parser.add_argument("--executor-workers", type=int, default=None)
    args = parser.parse_args()
    kinds = [k.strip() for k in args.executor.split(",") if k.strip()]
    for kind in kinds:
        if kind not in ("threads", "processes", "dask"):
            parser.error(f"--executor: {kind!r} is not threads, processes or dask")
    folder = Path(tempfile.mkdtemp(prefix="wattplan-bench-"))
    proc, url = start_sandbox()
    memory = MemorySampler(exclude=proc.pid)
    clock_now = [DAY.replace(hour=13)]

    class Clock:
        def now(self) -> datetime:
            return clock_now[0]

    try:
        set_clock(url, clock_now[0])
        vault = TokenVault(
            f"sqlite:///{folder / 'vault.sqlite3'}",
            cipher=TokenCipher(TokenCipher.generate_key()),
            clock=Clock().now,
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
        for n, kind in enumerate(kinds):
            # each executor on its own day: every access token has expired by its first
            # plan, as on the first day, and the publication pass refreshes them again
            day = DAY + timedelta(days=n)
            clock_now[0] = day.replace(hour=13)
            set_clock(url, clock_now[0])
            memory.reset()
            one_round(args, kind, ids, url, manager, folder / f"planner-{kind}.sqlite3",
                      day, clock_now, Clock(), memory, t_connect)  # fmt: skip
        memory.stop()
        manager.close()
        vault.close()
    finally:
        proc.terminate()
        proc.wait(10)


def one_round(
    args: argparse.Namespace,
    kind: str,
    ids: list[str],
    url: str,
    manager: TokenManager,
    path: Path,
    day: datetime,
    clock_now: list[datetime],
    clock: object,
    memory: MemorySampler,
    t_connect: float,
) -> None:
    """First plan, the publication pass and an idle poll of every customer on ``kind``."""
    source = NomosPriceSource(
        base_url=url,
        auth_for=lambda c: manager.auth(c.id),
        client_options={"retry": RetryPolicy(max_attempts=2)},
        transport=httpx.HTTPTransport(limits=httpx.Limits(max_connections=args.workers)),
    )
    store = PlanStore(f"sqlite:///{path}")
    executor = make_executor(cast(ExecutorKind, kind), workers=args.executor_workers)
    template = demo_household(day, day + timedelta(days=1))
    planner = Planner(
        customers=[
            Customer(id=cid, scenario=template, scenario_factory=demo_household) for cid in ids
        ],
        store=store,
        prices=source,
        clock=clock,  # type: ignore[arg-type]
        workers=args.workers,
        executor=executor,
    )
    t0 = time.perf_counter()
    first = planner.run_once()
    t_first = time.perf_counter() - t0
    rss_first = peak_rss_mib()

    # the poll five minutes before the publication, as the dense window (every 5 minutes
    # from 13:30) makes it: tomorrow is not out yet, and each customer's access token, an
    # hour old, is refreshed here rather than in the publication pass
    clock_now[0] = day.replace(hour=14, minute=15)
    set_clock(url, clock_now[0])
    t0 = time.perf_counter()
    before = planner.run_once()
    t_before = time.perf_counter() - t0

    clock_now[0] = day.replace(hour=14, minute=20)
    set_clock(url, clock_now[0])
    cpu0 = memory.cpu_seconds()
    t0 = time.perf_counter()
    report = planner.run_once()
    t_publication = time.perf_counter() - t0
    cpu1 = memory.cpu_seconds()
    rss_after = peak_rss_mib()

    clock_now[0] = day.replace(hour=14, minute=25)
    set_clock(url, clock_now[0])
    t0 = time.perf_counter()
    idle = planner.run_once()
    t_idle = time.perf_counter() - t0

    where = {
        "threads": f"{args.workers} threads in one process",
        "processes": f"{getattr(executor, 'workers', '?')} pool processes",
        "dask": f"an embedded Dask LocalCluster of {getattr(executor, 'workers', '?')} workers",
    }[kind]
    peak = memory.sample_peak()
    n = max(1, len(report.planned))
    opt = report.optimize_seconds
    per_customer = t_publication / n
    print(f"{len(ids)} customers, executor {kind}: optimizations on {where}")
    print(f"  ({args.workers} threads fetch, decide and store; {os.cpu_count()} cores)")
    print(f"  connect (OAuth code + PKCE each)     {t_connect:7.1f} s")
    print(
        f"  first plan (today's prices)          {t_first:7.1f} s   "
        f"planned {len(first.planned)}, failed {len(first.failed)}"
    )
    print(
        f"  poll at 14:15, before publication    {t_before:7.1f} s   "
        f"re-planned {len(before.planned)}, failed {len(before.failed)} "
        f"({t_before / len(ids) * 1000:.1f} ms a customer: both days asked, today's answered;"
        " tokens refreshed)"
    )
    print(
        f"  publication at 14:20: one pass       {t_publication:7.1f} s   "
        f"re-planned {len(report.planned)} of {args.customers}, failed {len(report.failed)}"
        f" ({per_customer * 1000:.0f} ms a customer)"
    )
    print(
        f"  sum of pure optimize times           {opt:7.1f} s   "
        f"({opt / n * 1000:.0f} ms a customer); "
        f"pass / sum = {t_publication / max(opt, 1e-9):.2f}"
    )
    planner_cpu, workers_cpu, sandbox_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    print(
        f"  CPU during that pass                 "
        f"{planner_cpu + workers_cpu + sandbox_cpu:7.1f} s   "
        f"(the planner process {planner_cpu:.1f} s = {planner_cpu / n * 1000:.0f} ms a "
        f"customer, its workers {workers_cpu:.1f} s, the sandbox answering the price "
        f"requests {sandbox_cpu:.1f} s; {os.cpu_count()} cores x {t_publication:.1f} s = "
        f"{(os.cpu_count() or 1) * t_publication:.1f} s)"
    )
    print(
        f"  next poll, nothing new               {t_idle:7.2f} s   "
        f"re-planned {len(idle.planned)} ({t_idle / args.customers * 1000:.1f} ms a customer)"
    )
    print(f"  plans stored                         {store.count_plans():7d}")
    print(
        f"  peak memory, all processes           {peak:7.0f} MiB "
        f"({memory.peak_processes} processes; planner alone max RSS {rss_after:.0f} MiB,"
        f" {rss_first:.0f} after the first pass)"
    )
    # what 100,000 customers need, from the per-customer figures measured here
    big = 100_000
    opt_core_s = opt / n * big
    parallel = getattr(executor, "workers", None)
    print("  100,000 customers, from these figures:")
    print(
        f"    optimizations {opt / n * 1000:.0f} ms x 100,000 = {opt_core_s / 3600:.1f} "
        f"core-hours: {opt_core_s / 60 / 60:.1f} min on 60 cores, "
        f"{opt_core_s / 200 / 60:.1f} min on 200"
    )
    if parallel:
        # what the pass cost beyond its optimizations spread over the workers: the
        # leader's own work (fetch, decide, store) where it did not overlap them
        control_s = max(0.0, t_publication - opt / parallel) / n
        print(
            f"    the leader's own work beyond the optimizations ~{control_s * 1000:.0f} ms"
            f" a customer = {control_s * big / 60:.0f} min per pass at this rate"
        )
    print(
        f"    a poll that finds nothing new: {t_idle / args.customers * big:.0f} s"
        f" ({t_idle / args.customers * 1000:.1f} ms a customer)"
    )
    if executor is not None:
        executor.close()
    source.close()
    store.dispose()


if __name__ == "__main__":
    main()
