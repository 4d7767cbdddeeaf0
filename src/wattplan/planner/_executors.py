"""Where the pure planning calls of a pass run: threads, a process pool or Dask distributed.

The planner keeps the control plane (fetching, deciding, storing, publishing) and hands
only :func:`~wattplan.planner._solve.solve` with a :class:`PlanningCall` to an executor.
Every executor returns futures with ``add_done_callback`` and ``result()``, so the
planner takes results as they finish, whatever runs them.

A worker that dies takes its calls with it: :meth:`PlanExecutor.lost` tells the planner
that a failure was the worker's, not the customer's, and the planner submits the call
again (a broken process pool is replaced on the next submit; Dask reschedules the tasks
of a dead worker by itself and gives up on a task only after it killed several workers).
The store keys a plan by its inputs, so a call that ran twice still stores one plan.

Dask (``distributed``) is an optional dependency (``pip install wattplan[dask]``),
imported only when a Dask executor is made.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol

from wattplan.exceptions import ConfigurationError
from wattplan.planner._solve import PlanningCall, SolvedPlan, solve

__all__ = [
    "DaskExecutor",
    "ExecutorKind",
    "PlanExecutor",
    "ProcessExecutor",
    "ThreadExecutor",
    "make_executor",
]

logger = logging.getLogger(__name__)

ExecutorKind = Literal["threads", "processes", "dask"]


class PlanFuture(Protocol):
    def add_done_callback(self, fn: Any) -> None: ...

    def result(self, timeout: float | None = None) -> Any: ...


class PlanExecutor(Protocol):
    """Runs planning calls somewhere; see the module docstring."""

    name: str

    def submit(self, call: PlanningCall) -> PlanFuture: ...

    def lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the worker was lost (submit again), not the customer failed."""
        ...

    def close(self) -> None: ...


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class ThreadExecutor:
    """Planning calls on threads of this process (the GIL-bound default)."""

    name = "threads"

    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="wattplan-solve")

    def __repr__(self) -> str:
        return f"ThreadExecutor(workers={self.workers})"

    def submit(self, call: PlanningCall) -> Future[SolvedPlan]:
        return self._pool.submit(solve, call)

    def lost(self, exc: BaseException) -> bool:
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor:
    """Planning calls in a pool of worker processes on this machine (spawned, not forked:
    the planner process runs threads, and a fork copies their locks in whatever state)."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or _default_workers()
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        self.replaced = 0  # pools replaced after a worker died

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=self._context)

    def submit(self, call: PlanningCall) -> Future[SolvedPlan]:
        try:
            return self._pool.submit(solve, call)
        except BrokenProcessPool:
            # a worker died: every call still in the pool fails with BrokenProcessPool and
            # is submitted again by the planner, to a fresh pool
            logger.warning("a planning process died; starting a new pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            self.replaced += 1
            return self._pool.submit(solve, call)

    def lost(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenProcessPool | CancelledError)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Planning calls on Dask distributed workers.

    Without ``address`` an embedded ``distributed.LocalCluster`` of ``workers`` processes
    (one thread each: HiGHS and PuLP hold the GIL for most of a solve) is started and
    closed with this executor; with ``address`` (``tcp://scheduler:8786``) the planner
    connects to an existing cluster, whose workers need ``wattplan`` installed.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        client: Any = None,
    ) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise ConfigurationError(
                "executor: dask needs the 'distributed' package (pip install 'wattplan[dask]')"
            ) from exc
        dd: Any = distributed  # untyped calls
        self._distributed = dd
        self._cluster: Any = None
        self.address = address
        self.workers = workers or _default_workers()
        if client is not None:
            self.client = client
        elif address is None:
            self._cluster = dd.LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                # loopback only; the scheduler's HTTP endpoint on a free port, not 8787
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.WARNING,
            )
            self.client = dd.Client(self._cluster, set_as_default=False)
        else:
            try:
                self.client = dd.Client(address, set_as_default=False, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConfigurationError(
                    f"dask_address: cannot reach the Dask scheduler ({type(exc).__name__})"
                ) from exc
            if workers is None:  # the cluster's threads, to keep them all busy
                self.workers = max(1, sum(self.client.nthreads().values()))

    def __repr__(self) -> str:
        where = "embedded LocalCluster" if self._cluster is not None else "cluster"
        return f"DaskExecutor({where}, workers={self.workers})"

    def submit(self, call: PlanningCall) -> Any:
        # pure=False: a call submitted again after a lost worker gets a task of its own
        return self.client.submit(solve, call, pure=False)

    def lost(self, exc: BaseException) -> bool:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker | CommClosedError | CancelledError | OSError)

    def worker_pids(self) -> dict[str, int]:
        """``{worker address: process id}`` of the cluster's workers (tests, benchmarks)."""
        return dict(self.client.run(os.getpid))

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(
    kind: ExecutorKind, *, workers: int | None = None, address: str | None = None
) -> PlanExecutor | None:
    """The executor a config names; ``None`` for ``threads`` (the planner's own pool)."""
    if kind == "threads":
        return None
    if kind == "processes":
        return ProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(address, workers=workers)
    raise ConfigurationError(f"executor: unknown kind {kind!r} (threads, processes or dask)")
