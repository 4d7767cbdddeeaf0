"""The pure optimization core: scenario model, devices, LP building, solving, Plan.

Build → solve → result are separate steps inside :func:`optimize`; the module does no
I/O except :func:`load_scenario` reading a scenario file and the CSV files it names.
It imports neither httpx nor APScheduler nor a database driver.
"""

from wattplan.optimizer._inputs import staffell_cop
from wattplan.optimizer._optimize import optimize
from wattplan.optimizer._plan import Plan, PlanStatus, Shortfall
from wattplan.optimizer._scenario import (
    EV,
    Appliance,
    Battery,
    Building,
    DimmingWindow,
    EVSession,
    HeatPump,
    Penalties,
    PriceSpec,
    Scenario,
    Site,
    SolverOptions,
    Stability,
    TimeSeries,
    load_scenario,
    scenario_from_dict,
    scenario_json_schema,
)

__all__ = [
    "EV",
    "Appliance",
    "Battery",
    "Building",
    "DimmingWindow",
    "EVSession",
    "HeatPump",
    "Penalties",
    "Plan",
    "PlanStatus",
    "PriceSpec",
    "Scenario",
    "Shortfall",
    "Site",
    "SolverOptions",
    "Stability",
    "TimeSeries",
    "load_scenario",
    "optimize",
    "scenario_from_dict",
    "scenario_json_schema",
    "staffell_cop",
]
