"""The Plan: a solved schedule, its cost against the baseline, and why it looks as it does."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wattplan._extras import requires
from wattplan.optimizer._timeseries import isoformats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Plan", "PlanStatus", "Shortfall"]


def _figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free Figure that Jupyter renders as an image in any kernel."""
    import io

    with requires("plot", feature="Plan.plot"):
        from matplotlib.figure import Figure

    class PlanFigure(Figure):
        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=100)
            return buf.getvalue()

    return PlanFigure(figsize=figsize, layout="constrained")


class PlanStatus(StrEnum):
    """How a plan came out."""

    OPTIMAL = "optimal"
    """Every target met; solved to optimality (within the MIP gap) or to the time limit."""
    FEASIBLE_WITH_SHORTFALL = "feasible_with_shortfall"
    """A plan exists but some target cannot be met: see ``Plan.shortfalls``."""
    INFEASIBLE = "infeasible"
    """No plan satisfies the hard constraints (physical limits)."""
    ERROR = "error"
    """The solver failed."""


@dataclass(frozen=True)
class Shortfall:
    """A target that the plan cannot meet, by how much and when.

    ``kind`` is one of ``energy`` (EV kWh missing at departure), ``end_soc`` (battery
    below its end target, kWh), ``comfort`` (K·h outside the comfort band),
    ``end_temperature`` (K below the end target), ``not_run`` (an appliance could not run),
    ``grid_limit`` (kWh above the grid import limit).
    """

    device: str
    kind: str
    amount: float
    unit: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    message: str

    def to_dict(self, tz: str) -> dict[str, Any]:
        return {
            "device": self.device,
            "kind": self.kind,
            "amount": round(self.amount, 6),
            "unit": self.unit,
            "start": None if self.start is None else self.start.tz_convert(tz).isoformat(),
            "end": None if self.end is None else self.end.tz_convert(tz).isoformat(),
            "message": self.message,
        }


def _num(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        f = float(x)
        return None if not math.isfinite(f) else round(f, 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


@dataclass(frozen=True)
class Plan:
    """A schedule for every device, its cost, the baseline and the saving.

    Money is in EUR for the whole horizon. ``cost_eur`` and ``baseline_bill_eur`` are the
    two bills. What each leaves behind at the end (battery energy, EV energy above a
    session's floor, heat in the building) is valued at the terminal price
    (``terminal_prices_ct_per_kwh``), the same price the optimizer's objective uses:
    ``end_value_eur`` and ``baseline_end_value_eur``. ``baseline_cost_eur`` is the baseline
    bill plus ``baseline_adjustment_eur`` (= ``end_value_eur − baseline_end_value_eur``), so

        savings_eur = (baseline_bill_eur − baseline_end_value_eur) − (cost_eur − end_value_eur)

    is the difference of the two valued bills. When ``baseline_feasible`` (the usual
    behaviour keeps every rule and target of the model) an ``optimal`` plan never reports
    a negative saving.

    ``dimming_moved_kwh`` (None without a binding dimming window): the energy that grid
    signals (§14a EnWG dimming windows) moved, i.e. what the optimal plan of the same
    household without dimming draws in the dimmed slots of each device beyond what this
    plan draws there (battery: charging), in kWh; per device in
    ``dimming_moved_kwh_by_device``. NaN if the plan without dimming could not be solved.

    ``stability_cost_eur`` is set when the plan was made with a ``previous_plan``: its
    deviation from that plan within the stability window at the stability price (see
    :class:`Stability`). It is a price of changing the plan, not money: it is part of
    neither ``cost_eur`` nor ``savings_eur``. ``None`` without a previous plan.
    """

    status: PlanStatus
    schedule: pd.DataFrame
    cost_eur: float
    baseline_cost_eur: float
    savings_eur: float
    baseline_bill_eur: float
    baseline_adjustment_eur: float
    end_value_eur: float
    baseline_end_value_eur: float
    end_values_eur: dict[str, float]
    baseline_end_values_eur: dict[str, float]
    terminal_prices_ct_per_kwh: dict[str, float]
    device_costs_eur: dict[str, float]
    baseline_device_costs_eur: dict[str, float]
    shortfalls: list[Shortfall]
    solver: str
    build_seconds: float
    solve_seconds: float
    mip_gap: float | None
    resolution_minutes: int
    devices: list[dict[str, str]]
    timezone: str
    explanation: str
    device_explanations: dict[str, str] = field(default_factory=dict)
    baseline_schedule: pd.DataFrame | None = None
    scenario_name: str = "scenario"
    message: str = ""
    baseline_feasible: bool = False
    dimming_moved_kwh: float | None = None
    dimming_moved_kwh_by_device: dict[str, float] = field(default_factory=dict)
    stability_cost_eur: float | None = None

    @property
    def ok(self) -> bool:
        """True when a schedule was made (optimal or with a shortfall)."""
        return self.status in (PlanStatus.OPTIMAL, PlanStatus.FEASIBLE_WITH_SHORTFALL)

    @property
    def savings_pct(self) -> float:
        # relative to the size of the baseline cost: a saving is positive even when the
        # baseline earns money (a negative cost)
        base = self.baseline_cost_eur
        return 100.0 * self.savings_eur / abs(base) if abs(base) > 1e-9 else 0.0

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The Plan as JSON-ready data (the contract of ``wattplan plan --json``)."""
        rows: list[dict[str, Any]] = []
        if not self.schedule.empty:
            local = pd.DatetimeIndex(self.schedule.index).tz_convert(self.timezone)
            cols = list(self.schedule.columns)
            # Python floats (tolist), rounded as _num rounds them, without its type checks
            data: list[list[float]] = self.schedule.to_numpy(dtype=float).tolist()
            for start, vals in zip(isoformats(local), data, strict=True):
                row: dict[str, Any] = {"start": start}
                row.update(
                    {
                        c: round(v, 6) if math.isfinite(v) else None
                        for c, v in zip(cols, vals, strict=True)
                    }
                )
                rows.append(row)
        return {
            "scenario": self.scenario_name,
            "status": self.status.value,
            "cost_eur": _num(self.cost_eur),
            "baseline_cost_eur": _num(self.baseline_cost_eur),
            "savings_eur": _num(self.savings_eur),
            "baseline_bill_eur": _num(self.baseline_bill_eur),
            "baseline_adjustment_eur": _num(self.baseline_adjustment_eur),
            "end_value_eur": _num(self.end_value_eur),
            "baseline_end_value_eur": _num(self.baseline_end_value_eur),
            "end_values_eur": {k: _num(v) for k, v in self.end_values_eur.items()},
            "baseline_end_values_eur": {
                k: _num(v) for k, v in self.baseline_end_values_eur.items()
            },
            "terminal_prices_ct_per_kwh": {
                k: _num(v) for k, v in self.terminal_prices_ct_per_kwh.items()
            },
            "baseline_feasible": self.baseline_feasible,
            "stability_cost_eur": _num(self.stability_cost_eur),
            "resolution_minutes": self.resolution_minutes,
            "timezone": self.timezone,
            "devices": [dict(d) for d in self.devices],
            "device_costs_eur": {k: _num(v) for k, v in self.device_costs_eur.items()},
            "baseline_device_costs_eur": {
                k: _num(v) for k, v in self.baseline_device_costs_eur.items()
            },
            "shortfalls": [s.to_dict(self.timezone) for s in self.shortfalls],
            "dimming_moved_kwh": _num(self.dimming_moved_kwh),
            "dimming_moved_kwh_by_device": {
                k: _num(v) for k, v in self.dimming_moved_kwh_by_device.items()
            },
            "solver": {
                "name": self.solver,
                "build_seconds": _num(self.build_seconds),
                "solve_seconds": _num(self.solve_seconds),
                "mip_gap": _num(self.mip_gap),
            },
            "explanation": self.explanation,
            "message": self.message,
            "schedule": rows,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    # --- display -------------------------------------------------------------------------
    def summary(self) -> str:
        """A few lines: status, cost, baseline, saving."""
        lines = [
            f"{self.scenario_name}: {self.status.value}",
            f"  cost      {self.cost_eur:9.2f} EUR",
            f"  baseline  {self.baseline_cost_eur:9.2f} EUR",
            f"  savings   {self.savings_eur:9.2f} EUR ({self.savings_pct:.1f} %)",
        ]
        if self.dimming_moved_kwh is not None:
            lines.append(f"  dimming   {self.dimming_moved_kwh:9.2f} kWh moved (grid signals)")
        if self.stability_cost_eur is not None:
            lines.append(
                f"  stability {self.stability_cost_eur:9.2f} EUR (deviation from the previous "
                "plan; not in the cost)"
            )
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)

    def table(self, *, hourly: bool = True) -> str:
        """The schedule as a fixed-width text table in local time (hourly means by default)."""
        if self.schedule.empty:
            return "(no schedule)"
        df = self.schedule.copy()
        df.index = pd.DatetimeIndex(df.index).tz_convert(self.timezone)
        if hourly and self.resolution_minutes < 60:
            # group by the UTC hour so that the repeated local hour on a 25-hour day stays two
            hours = pd.DatetimeIndex(self.schedule.index).floor("h")
            df = df.groupby(hours).mean()
            df.index = pd.DatetimeIndex(df.index).tz_convert(self.timezone)
        keep = [
            c
            for c in df.columns
            if c not in ("feed_in_ct_per_kwh", "pv_available_kw")
            and not c.endswith(
                ("_charged_kwh", "_heat_kw", "_outdoor_c", "_cop", "_charge_kw", "_discharge_kw")
            )
            and "_comfort_" not in c
        ]
        df = df[keep]
        df.index = [ts.strftime("%a %d %H:%M%z") for ts in df.index]
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            return df.round(2).to_string()

    def __repr__(self) -> str:
        return (
            f"Plan(status={self.status.value!r}, cost_eur={self.cost_eur:.2f}, "
            f"baseline_cost_eur={self.baseline_cost_eur:.2f}, savings_eur={self.savings_eur:.2f}, "
            f"slots={len(self.schedule)}, devices={[d['name'] for d in self.devices]})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>"
            for k, v in (
                ("status", self.status.value),
                ("cost", f"{self.cost_eur:.2f} EUR"),
                ("baseline", f"{self.baseline_cost_eur:.2f} EUR"),
                ("savings", f"{self.savings_eur:.2f} EUR ({self.savings_pct:.1f} %)"),
                *(
                    [("dimming", f"{self.dimming_moved_kwh:.2f} kWh moved (grid signals)")]
                    if self.dimming_moved_kwh is not None
                    else []
                ),
                ("slots", f"{len(self.schedule)} × {self.resolution_minutes} min"),
                (
                    "solver",
                    f"{self.solver}: build {self.build_seconds * 1e3:.0f} ms, "
                    f"solve {self.solve_seconds * 1e3:.0f} ms",
                ),
            )
        )
        expl = "".join(f"<li>{e(line)}</li>" for line in self.explanation.splitlines())
        head = self.schedule.head(8).copy()
        if not head.empty:
            head.index = pd.DatetimeIndex(head.index).tz_convert(self.timezone)
        table = head.round(2).to_html(max_cols=12) if not head.empty else ""
        return (
            f"<div><b>wattplan Plan: {e(self.scenario_name)}</b><table>{rows}</table>"
            f"<ul>{expl}</ul><details><summary>schedule (first rows of {len(self.schedule)})"
            f"</summary>{table}</details></div>"
        )

    def plot(self, *, figsize: tuple[float, float] = (11.0, 7.5)) -> Figure:
        """Prices, device power and storage states over local time, as a matplotlib Figure.

        The figure is not attached to pyplot (no global state, safe in threads and servers);
        it still shows itself in Jupyter (it has a PNG representation) and saves with
        ``fig.savefig(path)``.
        """
        fig = _figure(figsize)
        axes = fig.subplots(3, 1, sharex=True, height_ratios=[1.0, 1.6, 1.2])
        df = self.schedule
        if df.empty:
            axes[0].set_title(f"{self.scenario_name}: {self.status.value} (no schedule)")
            return fig
        x = pd.DatetimeIndex(df.index).tz_convert(self.timezone)
        ax = axes[0]
        ax.step(x, df["price_ct_per_kwh"], where="post", color="black", label="import price")
        if (df["feed_in_ct_per_kwh"] != 0).any():
            ax.step(
                x,
                df["feed_in_ct_per_kwh"],
                where="post",
                color="grey",
                ls="--",
                label="feed-in price",
            )
        ax.set_ylabel("price (ct/kWh)")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_title(
            f"{self.scenario_name}: {self.cost_eur:.2f} EUR vs baseline "
            f"{self.baseline_cost_eur:.2f} EUR (saves {self.savings_eur:.2f} EUR)"
        )
        ax = axes[1]
        ax.step(x, df["grid_import_kw"], where="post", color="tab:red", lw=1.0, label="grid import")
        if (df["grid_export_kw"] > 0).any():
            ax.step(
                x,
                -df["grid_export_kw"],
                where="post",
                color="tab:green",
                lw=1.0,
                label="grid export (−)",
            )
        if (df["pv_available_kw"] > 0).any():
            ax.fill_between(
                x, df["pv_available_kw"], step="post", color="gold", alpha=0.3, label="PV available"
            )
        for d in self.devices:
            ax.step(x, df[f"{d['name']}_kw"], where="post", lw=1.6, label=f"{d['name']}")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("power (kW)")
        ax.legend(loc="upper right", fontsize="small", ncol=3)
        ax = axes[2]
        soc_cols = [c for c in df.columns if c.endswith("_soc_kwh")]
        temp_cols = [c for c in df.columns if c.endswith("_indoor_c")]
        for c in soc_cols:
            ax.plot(x, df[c], label=c.removesuffix("_soc_kwh") + " SoC")
        ax.set_ylabel("state of charge (kWh)")
        if temp_cols:
            ax2 = ax.twinx()
            for c in temp_cols:
                ax2.plot(
                    x, df[c], color="tab:purple", label=c.removesuffix("_indoor_c") + " indoor"
                )
                lo = df.get(c.replace("_indoor_c", "_comfort_min_c"))
                hi = df.get(c.replace("_indoor_c", "_comfort_max_c"))
                if lo is not None and hi is not None:
                    ax2.fill_between(x, lo, hi, step="post", color="tab:purple", alpha=0.08)
            ax2.set_ylabel("temperature (°C)")
            ax2.legend(loc="upper left", fontsize="small")
        if soc_cols:
            ax.legend(loc="upper right", fontsize="small")
        ax.set_xlabel(f"local time ({self.timezone})")
        import matplotlib.dates as mdates

        ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M", tz=x.tz))  # type: ignore[no-untyped-call]
        return fig
