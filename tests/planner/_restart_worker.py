"""A planner process for the restart test: ``python -m tests.planner._restart_worker '<json>'``.

Plans every customer once at a fixed time (the sandbox's clock) with the real optimizer,
one customer after the other, printing ``planned <id>`` as it goes; the test kills it with
SIGKILL somewhere in the middle and starts it again.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

from wattplan.auth import OAuthConfig, TokenCipher, TokenManager, TokenVault
from wattplan.nomos import RetryPolicy
from wattplan.planner import Customer, NomosPriceSource, Planner, PlanStore, demo_household


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def main(spec: dict[str, Any]) -> int:
    now = datetime.fromisoformat(spec["now"])
    clock = FixedClock(now)
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
    template = demo_household(now, now + timedelta(days=1))
    planner = Planner(
        customers=[
            Customer(id=cid, scenario=template, scenario_factory=demo_household)
            for cid in spec["customers"]
        ],
        store=store,
        prices=source,
        clock=clock,
    )
    for cid in spec["customers"]:
        report = planner.run_once(customer_ids=[cid])
        print(report.outcomes[0].outcome.value, cid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
