"""A planner process for the leader tests: ``python -m tests.planner._fleet_worker '<json>'``.

The real leader election on the real database and the real scheduler: the process stands
by until it leads, then the scheduler's first poll plans every customer (one after the
other, each optimization slowed a little so that the test can kill it in the middle).
It prints ``standby``, ``leader``, ``planned <id>`` for every plan it stores and ``pass``
when its first pass is over; with ``exit_after_pass`` it then exits (handing over).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.nomos import RetryPolicy
from wattplan.planner import Customer, NomosPriceSource, Planner, PlanStore, demo_household
from wattplan.planner._events import EventTopic, PlanEvent
from wattplan.planner._leader import LeaderElection, leader_lock
from wattplan.planner._planner import default_optimize
from wattplan.planner.scheduler import PlannerScheduler


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def say(text: str) -> None:
    print(text, flush=True)


def main(spec: dict[str, Any]) -> int:
    now = datetime.fromisoformat(spec["now"])
    clock = FixedClock(now)
    delay = float(spec.get("delay_s", 0.0))
    vault = TokenVault(
        spec["database_url"],
        cipher=TokenCipher(spec["encryption_key"]),
        table_prefix=spec["table_prefix"],
        clock=clock.now,
    )
    manager = TokenManager(
        config=OAuthConfig.for_base_url(
            spec["base_url"],
            client_id=spec["client_id"],
            client_secret=spec["client_secret"],
            scope="read:*",
        ),
        vault=vault,
    )
    source = NomosPriceSource(
        base_url=spec["base_url"],
        auth_for=lambda c: manager.auth(c.id),
        client_options={"retry": RetryPolicy(max_attempts=1)},
    )
    store = PlanStore(spec["database_url"], table_prefix=spec["table_prefix"])

    def optimize(scenario: Any, prices: pd.Series, **kwargs: Any) -> Any:
        time.sleep(delay)
        return default_optimize(scenario, prices, **kwargs)

    def printer(event: PlanEvent) -> None:
        if event.topic is EventTopic.PLAN_CREATED:
            say(f"planned {event.customer_id}")

    template = demo_household(now, now + timedelta(days=1))
    planner = Planner(
        customers=[
            Customer(id=cid, scenario=template, scenario_factory=demo_household)
            for cid in spec["customers"]
        ],
        store=store,
        prices=source,
        clock=clock,
        optimize=optimize,
        sinks=[printer],
    )
    passed = threading.Event()
    scheduler = PlannerScheduler(
        planner, slot=None, jitter=timedelta(0), on_poll=lambda _: passed.set()
    )
    election = LeaderElection(
        leader_lock(store.engine, table_prefix=spec["table_prefix"]),
        check_every=timedelta(seconds=float(spec["check_seconds"])),
        on_elected=lambda: (say("leader"), scheduler.activate()),
        on_lost=scheduler.standby,
    )
    election.start()
    if not election.is_leader:
        say("standby")
    passed.wait(float(spec.get("timeout_s", 120)))
    say("pass")
    if not spec.get("exit_after_pass"):
        time.sleep(float(spec.get("timeout_s", 120)))
    scheduler.shutdown(wait=True)
    election.stop()
    source.close()
    manager.close()
    vault.close()
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
