"""What HTTP adds to a plan: ``POST /optimize`` against ``wattplan.optimize`` in-process.

For each shipped scenario: the body size (its series inline), the median wall time of the
library call (``load_scenario`` excluded: a client sends a scenario it already has) and of
the request over loopback to the optimize app under uvicorn (JSON encoding, validation,
solve, plan JSON), and the difference. Both solve the same model with the same solver
options (one thread), so the difference is what the service costs per plan. Medians of
``--repeat`` runs; wall times on a shared machine vary, so read them as orders of
magnitude.

Run: ``.venv/bin/python benchmarks/optimize_api.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx

import wattplan
from wattplan._api import ApiKeys
from wattplan._http import serve_in_thread
from wattplan.optimize_api import OptimizeLimits, create_optimize_app
from wattplan.optimizer._scenario import SolverOptions

ROOT = Path(__file__).resolve().parents[1]
KEY = "benchmark-key-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    app = create_optimize_app(
        auth=ApiKeys([KEY]), limits=OptimizeLimits(max_solve_seconds=60, max_concurrent=1)
    )
    print(f"{'scenario':34} {'body KiB':>9} {'library s':>10} {'HTTP s':>8} {'added s':>8}")
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        for path in sorted((ROOT / "scenarios").glob("*.yaml")):
            scenario = wattplan.load_scenario(path)
            wanted = scenario.solver
            solver = SolverOptions(
                name=wanted.name,
                time_limit_s=min(wanted.time_limit_s, 60),
                mip_gap=wanted.mip_gap,
                threads=1,
            )
            body = json.dumps(scenario.model_dump(mode="json", exclude_none=True)).encode()
            local, remote = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                wattplan.optimize(scenario, solver=solver).to_dict()
                local.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                r = client.post(
                    "/optimize",
                    content=body,
                    headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
                )
                remote.append(time.perf_counter() - t0)
                r.raise_for_status()
            lib, http = statistics.median(local), statistics.median(remote)
            print(
                f"{path.stem:34} {len(body) / 1024:9.1f} {lib:10.3f} {http:8.3f} {http - lib:8.3f}"
            )


if __name__ == "__main__":
    main()
