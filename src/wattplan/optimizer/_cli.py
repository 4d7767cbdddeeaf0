"""``wattplan plan`` and ``wattplan schema``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wattplan.optimizer._optimize import optimize
from wattplan.optimizer._scenario import SolverOptions, load_scenario, scenario_json_schema

__all__ = ["register"]


def _plan(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, allow_outside_files=args.allow_outside_files)
    solver = scenario.solver
    if args.solver or args.time_limit:
        solver = SolverOptions(
            **{
                **solver.model_dump(),
                **({"name": args.solver} if args.solver else {}),
                **({"time_limit_s": args.time_limit} if args.time_limit else {}),
            }
        )
    plan = optimize(scenario, solver=solver)
    if args.plot:
        plan.plot().savefig(args.plot, dpi=110)
    if args.json:
        json.dump(plan.to_dict(), sys.stdout, indent=2 if args.indent else None)
        sys.stdout.write("\n")
    else:
        print(plan.table(hourly=not args.all_slots))
        print()
        print(plan.summary())
        print()
        print(plan.explanation)
        if args.plot:
            print(f"\nplot written to {args.plot}")
    if not plan.ok:
        print(f"wattplan: no plan: {plan.status.value}: {plan.message}", file=sys.stderr)
        return 1
    return 0


def _schema(args: argparse.Namespace) -> int:
    schema: dict[str, Any]
    if args.household:
        from wattplan.household import household_json_schema

        schema = household_json_schema()
    else:
        schema = scenario_json_schema()
    json.dump(schema, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="plan a scenario file and print the schedule and the savings",
        description="Plan a YAML scenario. Exit code 0 when a plan was made.",
    )
    p.add_argument("scenario", help="the scenario YAML file")
    p.add_argument("--json", action="store_true", help="print the Plan as JSON")
    p.add_argument("--indent", action="store_true", help="indent the JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw prices, power and states to a PNG")
    p.add_argument("--all-slots", action="store_true", help="table of every slot, not hourly")
    p.add_argument("--solver", choices=["highs", "cbc"], help="override the scenario's solver")
    p.add_argument("--time-limit", type=float, metavar="S", help="solver time limit, seconds")
    p.add_argument(
        "--allow-outside-files",
        action="store_true",
        help="read CSV files the scenario names outside its own folder (absolute or ../ paths)",
    )
    p.set_defaults(func=_plan)
    s = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    s.add_argument(
        "--household", action="store_true", help="the schema of household profiles instead"
    )
    s.set_defaults(func=_schema)
