"""No process-global solver state: a plan does not depend on earlier or concurrent HiGHS use.

HiGHS keeps a task scheduler per calling thread, sized by the first run's ``threads``, and
refuses a later run on that thread with another ``threads``. Each order below runs in a
fresh interpreter (so it cannot depend on what other tests did to this process) and is
compared with the plan a fresh process makes for the same thread count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

SCENARIO = Path(__file__).parents[2] / "scenarios" / "ev-overnight.yaml"

# argv: scenario path, then steps: "plan:<threads>", "highs:<threads>" (a plain highspy
# MIP), "concurrent:<threads>,<threads>,..." (one Python thread per entry, all starting
# together, each planning a few times). Prints one JSON list of results on its last line.
SCRIPT = r"""
import json, sys, threading
import highspy
import wattplan

scenario = wattplan.load_scenario(sys.argv[1])


def plan(threads):
    solver = scenario.solver.model_copy(update={"threads": threads})
    p = wattplan.optimize(scenario, solver=solver)
    return {"kind": "plan", "threads": threads, "status": p.status.value,
            "cost": p.cost_eur, "message": p.message, "schedule": p.schedule.to_csv()}


def highs(threads):
    # min -x0 - 2 x1  s.t.  x0 + x1 <= 3.5,  x0, x1 integer in [0, 3]: optimum -6.0
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    for cost in (-1.0, -2.0):
        h.addVar(0.0, 3.0)
        h.changeColCost(h.getNumCol() - 1, cost)
        h.changeColIntegrality(h.getNumCol() - 1, highspy.HighsVarType.kInteger)
    h.addRow(-highspy.kHighsInf, 3.5, 2, [0, 1], [1.0, 1.0])
    h.run()
    return {"kind": "highs", "threads": threads,
            "status": h.modelStatusToString(h.getModelStatus()),
            "objective": h.getInfo().objective_function_value}


def concurrent(counts):
    barrier = threading.Barrier(len(counts))
    results = [None] * len(counts)

    def work(i, threads):
        barrier.wait()
        results[i] = [plan(threads if k % 2 == 0 else 3 - threads) for k in range(4)]

    workers = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(counts)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [r for rs in results for r in rs]


out = []
for step in sys.argv[2:]:
    kind, _, arg = step.partition(":")
    if kind == "plan":
        out.append(plan(int(arg)))
    elif kind == "highs":
        out.append(highs(int(arg)))
    else:
        out.extend(concurrent([int(t) for t in arg.split(",")]))
print()
print(json.dumps(out))
"""


def run_steps(*steps: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SCENARIO), *steps],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def fresh() -> dict[int, dict[str, Any]]:
    """The plan of a fresh process, per thread count (each in its own process)."""
    with ThreadPoolExecutor(2) as pool:
        plans = list(pool.map(lambda t: run_steps(f"plan:{t}")[0], (1, 2)))
    for p in plans:
        assert p["status"] == "optimal", p["message"]
    return {p["threads"]: p for p in plans}


def check(results: list[dict[str, Any]], fresh: dict[int, dict[str, Any]]) -> None:
    for r in results:
        if r["kind"] == "highs":
            assert r["status"] == "Optimal"
            assert r["objective"] == pytest.approx(-6.0, abs=1e-9)
            continue
        assert r["status"] == "optimal", f"threads={r['threads']}: {r['message']}"
        expected = fresh[r["threads"]]
        assert r["cost"] == pytest.approx(expected["cost"], rel=1e-9, abs=1e-12)
        assert r["schedule"] == expected["schedule"]


def test_fresh_plans_do_not_depend_on_the_thread_count(fresh: dict[int, dict[str, Any]]) -> None:
    assert fresh[2]["cost"] == pytest.approx(fresh[1]["cost"], rel=1e-9)


def test_two_threads_then_the_default(fresh: dict[int, dict[str, Any]]) -> None:
    check(run_steps("plan:2", "plan:1"), fresh)


def test_the_default_then_two_threads(fresh: dict[int, dict[str, Any]]) -> None:
    check(run_steps("plan:1", "plan:2"), fresh)


def test_a_plain_highspy_model_with_three_threads_first(fresh: dict[int, dict[str, Any]]) -> None:
    check(run_steps("highs:3", "plan:1", "plan:2"), fresh)


def test_concurrent_plans_with_equal_and_differing_thread_counts(
    fresh: dict[int, dict[str, Any]],
) -> None:
    results = run_steps("plan:2", "concurrent:1,2,1,2", "plan:1")
    assert len(results) == 2 + 4 * 4
    check(results, fresh)


def test_a_plain_highspy_model_still_works_after_a_plan(
    fresh: dict[int, dict[str, Any]],
) -> None:
    check(run_steps("plan:1", "highs:3", "plan:2", "highs:1"), fresh)
