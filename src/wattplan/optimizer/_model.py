"""Build the household's linear program (DESIGN.md §3), and read the solution back.

The rows are kept as a sparse matrix for HiGHS; :attr:`Model.prob` gives the same model as
a PuLP problem (for CBC and MPS files).

Notation per slot t of length Δ h: import u_t (split into u_t within the limit and an
overload o_t priced as a soft constraint), export e_t, PV used v_t, device powers, storage
states after the slot. Binaries appear only where a feature needs them:

* EV minimum power or minimum run time: an on/off binary per available slot;
* heat-pump minimum run time: an on/off binary per slot;
* an appliance: one binary per feasible start;
* a battery that could profit from charging and discharging at once (to make room for a
  negative import price later): a direction binary in every slot up to the last negative price;
* import and export at once (import price below the feed-in price while export is
  possible): a direction binary in those slots only; where the import price is not below
  the feed-in, :func:`net_grid_exchange` nets the two after solving (equal prices);
* a bidirectional EV (``v2h``): a direction binary per slot of a session that may discharge.

Export is at most the PV used in each slot (``site.export_only_pv``, the default) and then
exists only where there is PV; without that rule it exists in every slot, so batteries and
bidirectional cars may discharge to the grid.

Every comfort or energy target is soft (priced in :class:`~wattplan.Penalties`), so a
sensible request always gets a plan, with its shortfall reported. A tiny cost on each kW of
change between slots makes the solver prefer fewer, longer blocks among plans of equal cost.

What the horizon leaves behind (battery energy, EV energy above a session's floor, heat in
the building) enters the objective at its terminal price, the same price at which the
baseline's end state is valued (DESIGN.md §3, End state). The objective's terms are kept in
three groups: money (the bill less the end state's value), penalties of soft constraints,
and the rest (wear, start-ups, tie-breaks). With ``cap_eur`` one more row says money plus
penalties must not exceed the baseline's: the baseline satisfies it, so when the baseline is
feasible for the model the plan can never report a negative saving, whatever the wear,
start penalties or MIP gap would otherwise trade.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pulp

from wattplan.optimizer._inputs import (
    ApplianceIn,
    BatteryIn,
    EVIn,
    EVSessionIn,
    HeatPumpIn,
    Inputs,
)
from wattplan.optimizer._stability import PreviousIn
from wattplan.optimizer._timeseries import FloatArray

__all__ = ["Model", "RelaxableGroup", "build_model", "net_grid_exchange"]


class Var:
    """One column of the model, with the attributes of PuLP's ``LpVariable`` that we use.

    Hand-written because creating ~3,000 ``LpVariable`` and ~1,500 ``LpConstraint`` objects
    per plan took longer than HiGHS needs to solve the model: the builder keeps columns
    like this and rows as a matrix, and makes PuLP objects only for CBC (:meth:`Model.prob`).
    """

    __slots__ = ("index", "integer", "lowBound", "name", "upBound", "varValue")

    def __init__(
        self, name: str, index: int, lb: float | None, ub: float | None, integer: bool = False
    ) -> None:
        self.name = name
        self.index = index  # column in the model
        self.lowBound = lb
        self.upBound = ub
        self.integer = integer
        self.varValue: float | None = None

    def __repr__(self) -> str:
        return f"Var({self.name!r}, value={self.varValue!r})"


Terms = list[tuple[Var, float]]
LE, GE, EQ = pulp.LpConstraintLE, pulp.LpConstraintGE, pulp.LpConstraintEQ
_INF = float("inf")


@dataclass
class Rows:
    """Constraint rows in compressed sparse row form (as ``highspy`` takes them)."""

    start: list[int] = field(default_factory=lambda: [0])
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)

    def add(self, terms: Terms, sense: int, rhs: float) -> None:
        index, value = self.index, self.value
        for var, coef in terms:
            if coef != 0.0:
                index.append(var.index)
                value.append(coef)
        self.start.append(len(index))
        if sense == EQ:
            self.lower.append(rhs)
            self.upper.append(rhs)
        elif sense == LE:
            self.lower.append(-_INF)
            self.upper.append(rhs)
        else:
            self.lower.append(rhs)
            self.upper.append(_INF)

    def __len__(self) -> int:
        return len(self.lower)


@dataclass
class _EVVars:
    spec: EVIn
    x: dict[int, Var]
    shortfall: dict[int, Var]  # per session index
    extra: dict[int, Var]  # energy above the floor, per session index (when allowed)
    y: dict[int, Var] = field(default_factory=dict)  # v2h: discharge power (AC), kW


@dataclass
class _BatteryVars:
    spec: BatteryIn
    c: list[Var]
    d: list[Var]
    soc: list[Var]  # after slot t
    end_short: Var | None


@dataclass
class _HPVars:
    spec: HeatPumpIn
    h: list[Var]
    theta: list[Var]  # after slot t
    too_cold: list[Var]
    too_warm: list[Var]
    end_short: Var | None


@dataclass
class _ApplianceVars:
    spec: ApplianceIn
    y: dict[int, Var]
    not_run: Var | None


@dataclass
class RelaxableGroup:
    """On/off variables of one availability window that only enforce a minimum power."""

    on: list[Var]
    power: list[Var]
    min_kw: float
    max_kw: float
    price: FloatArray  # import price of the window's slots, ct/kWh


@dataclass
class Model:
    """A built model: its columns, rows and objective, and handles on its variables."""

    inputs: Inputs
    rows: Rows
    variables: list[Var]
    u: list[Var]
    o: list[Var]
    e: dict[int, Var]
    v: dict[int, Var]
    evs: list[_EVVars] = field(default_factory=list)
    batteries: list[_BatteryVars] = field(default_factory=list)
    heat_pumps: list[_HPVars] = field(default_factory=list)
    appliances: list[_ApplianceVars] = field(default_factory=list)
    n_binaries: int = 0
    # the objective, one term per column that has a cost (in the order they first came)
    objective: Terms = field(default_factory=list)
    # money plus penalties must not exceed the baseline's: the row's terms and its bound;
    # kept apart from ``rows`` because the solver adds it only when a plan would break it
    cap: tuple[Terms, float] | None = None
    # on/off binaries that only enforce a minimum power: the solver tries them relaxed first
    relaxable: list[RelaxableGroup] = field(default_factory=list)
    # direction binaries (z, a, b): a > 0 needs z = 1, b > 0 needs z = 0; no cost of their own
    exclusive: list[tuple[Var, Var, Var]] = field(default_factory=list)
    # solve as one MIP from the start: the relaxed-first rounds are slower on this model
    # (binding dimming windows with a battery: 0.6 s whole against 2.5-4 s in rounds)
    whole_mip: bool = False

    @property
    def is_mip(self) -> bool:
        return self.n_binaries > 0

    @property
    def capped(self) -> bool:
        """Whether the money-and-penalties row against the baseline is in the model."""
        return self.cap is not None

    def costs(self) -> list[float]:
        """The objective's coefficient of each column."""
        out = [0.0] * len(self.variables)
        for var, coef in self.objective:
            out[var.index] = coef
        return out

    @property
    def prob(self) -> pulp.LpProblem:
        """The model as a PuLP problem (the cap row last), made on first use (CBC, MPS)."""
        return self.pulp_model()[0]

    def pulp_model(self) -> tuple[pulp.LpProblem, list[Any]]:
        """The PuLP problem and its variables, in the order of :attr:`variables`."""
        if self._pulp is None:
            prob = pulp.LpProblem("wattplan", pulp.LpMinimize)
            kinds = (pulp.LpContinuous, pulp.LpInteger)
            cols = [
                prob.add_variable(v.name, v.lowBound, v.upBound, kinds[v.integer])
                for v in self.variables
            ]
            r = self.rows
            rows = [
                ([(cols[j], c) for j, c in zip(r.index[a:b], r.value[a:b], strict=True)], lo, hi)
                for a, b, lo, hi in zip(r.start[:-1], r.start[1:], r.lower, r.upper, strict=True)
            ]
            if self.cap is not None:
                terms, bound = self.cap
                rows.append(([(cols[v.index], c) for v, c in terms if c != 0.0], -_INF, bound))
            for i, (terms, lo, hi) in enumerate(rows, start=1):
                sense, rhs = (EQ, lo) if lo == hi else (LE, hi) if lo == -_INF else (GE, lo)
                expr = pulp.LpAffineExpression(terms)
                prob.addConstraint(pulp.LpConstraint(expr, sense, rhs=rhs), f"r{i}")
            prob.setObjective(
                pulp.LpAffineExpression([(cols[v.index], c) for v, c in self.objective])
            )
            self._pulp = (prob, cols)
        return self._pulp

    _pulp: tuple[pulp.LpProblem, list[Any]] | None = field(default=None, init=False, repr=False)


class _Builder:
    def __init__(self) -> None:
        self.variables: list[Var] = []
        self.rows = Rows()
        self.objective: Terms = []
        self.money_terms: Terms = []  # the bill less the end state's value
        self.penalty_terms: Terms = []  # soft constraints
        self.binaries = 0

    def var(
        self, name: str, lb: float | None = 0.0, ub: float | None = None, *, binary: bool = False
    ) -> Var:
        if binary:
            v = Var(name, len(self.variables), 0.0, 1.0, True)
            self.binaries += 1
        else:
            v = Var(name, len(self.variables), lb, ub)
        self.variables.append(v)
        return v

    def series(
        self, prefix: str, n: int, lb: float | None, ub: float | Sequence[float] | None
    ) -> list[Var]:
        if ub is None or isinstance(ub, float | int):
            return [self.var(f"{prefix}_{t}", lb, ub) for t in range(n)]
        return [self.var(f"{prefix}_{t}", lb, float(ub[t])) for t in range(n)]

    def row(self, terms: Terms, sense: int, rhs: float) -> None:
        self.rows.add(terms, sense, rhs)

    def cost(self, var: Var, eur: float) -> None:
        """Wear, start-ups and tie-breaks: in the objective, not on the bill."""
        if eur != 0.0:
            self.objective.append((var, eur))

    def money(self, var: Var, eur: float) -> None:
        if eur != 0.0:
            self.objective.append((var, eur))
            self.money_terms.append((var, eur))

    def penalty(self, var: Var, eur: float) -> None:
        if eur != 0.0:
            self.objective.append((var, eur))
            self.penalty_terms.append((var, eur))


def _combined(terms: Terms) -> Terms:
    """Add up the coefficients of repeated variables (one term per variable)."""
    out: dict[int, tuple[Var, float]] = {}
    for var, coef in terms:
        prev = out.get(var.index)
        out[var.index] = (var, coef + (prev[1] if prev else 0.0))
    return list(out.values())


def _changes(
    b: _Builder,
    name: str,
    power: dict[int, Var],
    first: int,
    last: int,
    *,
    tie_eur_per_kw: float,
    up_eur_per_kw: float,
) -> None:
    """Price each kW of change of ``power`` over slots [first, last), from and to zero."""
    for t in range(first, last + 1):
        terms: Terms = []
        if t < last:
            terms.append((power[t], 1.0))
        if t > first:
            terms.append((power[t - 1], -1.0))
        up = b.var(f"{name}_up_{t}")
        dn = b.var(f"{name}_dn_{t}")
        b.row([*terms, (up, -1.0), (dn, 1.0)], EQ, 0.0)
        b.cost(up, tie_eur_per_kw + up_eur_per_kw)
        b.cost(dn, tie_eur_per_kw)


def _on_off(
    b: _Builder,
    name: str,
    power: dict[int, Var],
    slots: Sequence[tuple[int, int]],
    *,
    max_kw: float,
    min_kw: float,
    min_run_slots: int,
    start_eur: float,
) -> list[tuple[list[Var], list[Var]]]:
    """On/off binaries: min power when on, exact start penalty, minimum run time."""
    groups: list[tuple[list[Var], list[Var]]] = []
    if min_run_slots > 1:
        # "running" must mean drawing power, or a minimum run could be met at 0 kW
        min_kw = max(min_kw, 0.01 * max_kw)
    for first, last in slots:
        on = {t: b.var(f"{name}_on_{t}", binary=True) for t in range(first, last)}
        for t in range(first, last):
            b.row([(power[t], 1.0), (on[t], -max_kw)], LE, 0.0)
            if min_kw > 0:
                b.row([(power[t], 1.0), (on[t], -min_kw)], GE, 0.0)
            if start_eur > 0 or min_run_slots > 1:
                s = b.var(f"{name}_start_{t}", 0.0, 1.0)
                prev: Terms = [(on[t - 1], 1.0)] if t > first else []
                b.row([(s, 1.0), (on[t], -1.0), *prev], GE, 0.0)  # s_t ≥ on_t − on_{t−1}
                b.cost(s, start_eur)
                k = min(min_run_slots, last - t)
                if k > 1:
                    b.row([*((on[tau], 1.0) for tau in range(t, t + k)), (s, -float(k))], GE, 0.0)
        groups.append((list(on.values()), [power[t] for t in range(first, last)]))
    return groups


def _dimmed_power(model: Model) -> dict[str, dict[int, Var]]:
    """The grid-drawing power variable of each dimmable device, by slot."""
    out: dict[str, dict[int, Var]] = {ev.spec.dev.name: ev.x for ev in model.evs}
    out.update({hp.spec.dev.name: dict(enumerate(hp.h)) for hp in model.heat_pumps})
    out.update({bat.spec.dev.name: dict(enumerate(bat.c)) for bat in model.batteries})
    return out


def _dimming(b: _Builder, model: Model) -> None:
    """Grid signals (§14a EnWG): cap each dimmed device's grid draw in its dimmed slots.

    Where no own generation can be there (no PV, no battery) the cap is the power
    variable's upper bound. Elsewhere own supply o_t = PV used + battery discharge − export
    may cover the part above the cap: x_dt − s_dt ≤ cap_dt with Σ_d s_dt ≤ o_t, s ≥ 0 (own
    generation goes to dimmed devices first); a dimmed battery's charging only from PV
    (s_bt ≤ PV used − export). In those slots no battery charges and discharges at once.
    """
    inputs = model.inputs
    power = _dimmed_power(model)
    discharge = [bat.d for bat in model.batteries]
    batteries = {bat.spec.dev.name for bat in model.batteries}
    relief: dict[int, list[Var]] = {}
    for name, cap in inputs.dimming_kw.items():
        x = power[name]
        # a dimmed battery's own discharge must not pass for own supply: PV only
        pv_only = name in batteries
        for t, var in x.items():
            if not np.isfinite(cap[t]) or (var.upBound is not None and cap[t] >= var.upBound):
                continue
            if t not in model.v and (pv_only or not discharge):
                var.upBound = float(cap[t])
                continue
            s = b.var(f"dim_{name}_{t}", 0.0, None)
            b.row([(var, 1.0), (s, -1.0)], LE, float(cap[t]))
            relief.setdefault(t, []).append(s)
            if pv_only:
                b.row(
                    [(s, 1.0), (model.v[t], -1.0), *([(model.e[t], 1.0)] if t in model.e else [])],
                    LE,
                    0.0,
                )
    # a battery that charged and discharged in one slot would pass grid energy off as own
    # supply: a direction binary where the battery loop has none (no later negative price)
    price = inputs.price
    later_negative = np.minimum.accumulate(price[::-1])[::-1] < 0
    for t in relief:
        if later_negative[t]:
            continue
        for i, bat in enumerate(model.batteries):
            bd = bat.spec.dev
            z = b.var(f"bat{i}_zd_{t}", binary=True)
            b.row([(bat.c[t], 1.0), (z, -bd.max_charge_kw)], LE, 0.0)
            b.row([(bat.d[t], 1.0), (z, bd.max_discharge_kw)], LE, bd.max_discharge_kw)
            model.exclusive.append((z, bat.c[t], bat.d[t]))
            model.whole_mip = True
    for t, ss in relief.items():
        own: Terms = [(d[t], -1.0) for d in discharge]
        if t in model.v:
            own.append((model.v[t], -1.0))
        if t in model.e:
            own.append((model.e[t], 1.0))
        b.row([*((s, 1.0) for s in ss), *own], LE, 0.0)


def _v2h_session(
    b: _Builder,
    model: Model,
    ev: EVIn,
    s: EVSessionIn,
    nm: str,
    x: dict[int, Var],
    y: dict[int, Var],
    draw: list[Terms],
    tie: float,
) -> Terms:
    """Discharge variables and the energy path of one bidirectional session.

    q_t (energy in the car relative to plug-in, after slot t) stays within the session's
    bounds; a direction binary per slot keeps the car from charging and discharging at
    once (with a minimum charging power that could otherwise be dodged). Returns the
    session's delivered energy as terms: q at its last slot.
    """
    d = ev.dev
    dt = model.inputs.dt_h
    eff_d = d.v2h_discharge_efficiency
    pd_max = d.v2h_max_discharge_kw
    wear = dt * d.v2h_wear_cost_ct_per_kwh / 100.0
    q: Var | None = None
    for t in range(s.first, s.last):
        y[t] = b.var(f"{nm}_y_{t}", 0.0, pd_max)
        draw[t].append((y[t], -1.0))
        b.cost(y[t], wear + tie)
        prev = q
        q = b.var(f"{nm}_q_{t}", s.net_min_kwh, s.net_max_kwh)
        b.row(
            [
                (q, 1.0),
                *([(prev, -1.0)] if prev is not None else []),
                (x[t], -d.efficiency * dt),
                (y[t], dt / eff_d),
            ],
            EQ,
            0.0,
        )
        z = b.var(f"{nm}_z_{t}", binary=True)
        b.row([(x[t], 1.0), (z, -d.max_power_kw)], LE, 0.0)
        b.row([(y[t], 1.0), (z, pd_max)], LE, pd_max)
        model.exclusive.append((z, x[t], y[t]))
    return [] if q is None else [(q, 1.0)]


def _grid_bounds(inputs: Inputs, t: int) -> tuple[float, float]:
    """The most the site can import and export in slot t, kW (for direction binaries).

    Import: base load plus every device's most draw; export: PV plus every device's most
    discharge. Valid for every solution that does not import and export at once.
    """
    draws = float(inputs.base_load[t])
    supply = float(inputs.pv[t])
    for ev in inputs.evs:
        if any(s.first <= t < s.last for s in ev.sessions):
            draws += ev.dev.max_power_kw
            supply += ev.dev.v2h_max_discharge_kw
    for bat in inputs.batteries:
        draws += bat.dev.max_charge_kw
        supply += bat.dev.max_discharge_kw
    draws += sum(hp.dev.max_power_kw for hp in inputs.heat_pumps)
    draws += sum(float(app.profile_kw.max()) for app in inputs.appliances)
    return draws, supply


def build_model(
    inputs: Inputs, *, cap_eur: float | None = None, previous: PreviousIn | None = None
) -> Model:
    """Build the LP/MILP for ``inputs`` (see the module docstring for the formulation).

    ``cap_eur``: the baseline's money plus penalties, in the objective's terms (the bill
    less the end state's value, without constant offsets); the plan may not exceed it.
    ``previous``: the previous plan (frozen first slot, priced deviations), if any.
    """
    sc = inputs.scenario
    pen = sc.penalties
    n, dt = inputs.grid.n, inputs.dt_h
    price, feed = inputs.price, inputs.feed_in
    b = _Builder()
    tie = pen.change_eur_per_kw

    # site: import within the limit, overload (soft), export, PV used
    u = b.series("u", n, 0.0, inputs.import_limit_kw.tolist())
    o = b.series("o", n, 0.0, None)
    v = {t: b.var(f"v_{t}", 0.0, float(inputs.pv[t])) for t in range(n) if inputs.pv[t] > 0}
    exp_lim = float(sc.site.grid_export_limit_kw)
    only_pv = sc.site.export_only_pv
    export_slots = v if only_pv else range(n)
    e = {t: b.var(f"e_{t}", 0.0, exp_lim) for t in export_slots} if exp_lim > 0 else {}
    for t in range(n):
        b.money(u[t], dt * price[t] / 100.0)
        b.money(o[t], dt * price[t] / 100.0)
        b.penalty(o[t], dt * pen.grid_overload_eur_per_kwh)
    model = Model(inputs, b.rows, b.variables, u, o, e, v)
    directed: list[int] = []  # slots with an import/export direction binary
    for t, et in e.items():
        b.money(et, -dt * feed[t] / 100.0)
        b.cost(et, tie)  # where import and export cost the same, do neither at once
        if only_pv:
            b.row([(et, 1.0), (v[t], -1.0)], LE, 0.0)  # export only from PV
        if price[t] < feed[t]:
            # importing and exporting at once would pay: forbid it with a direction binary
            z = b.var(f"zg_{t}", binary=True)
            if only_pv:
                big = float(inputs.import_limit_kw[t])
                b.row([(u[t], 1.0), (z, -big)], LE, 0.0)
                b.row([(o[t], 1.0), (z, -1e4)], LE, 0.0)
                b.row([(et, 1.0), (z, exp_lim)], LE, exp_lim)
            else:  # tight bounds: the slot's own most import and export
                m_u, m_e = _grid_bounds(inputs, t)
                m_e = min(exp_lim, m_e)
                b.row([(u[t], 1.0), (o[t], 1.0), (z, -m_u)], LE, 0.0)
                b.row([(et, 1.0), (z, m_e)], LE, m_e)
            model.exclusive.append((z, u[t], et))
            directed.append(t)

    # balance terms: what devices draw in slot t (kW)
    draw: list[Terms] = [[] for _ in range(n)]
    # Charging and discharging at once burns stored energy at no cost of money (the grid
    # sees c − d). That pays only to make room for a later negative price, so the direction
    # binaries of a battery exist in every slot up to the last negative price.
    later_negative = np.minimum.accumulate(price[::-1])[::-1] < 0

    for ev in inputs.evs:
        d = ev.dev
        nm = f"ev{len(model.evs)}"
        x: dict[int, Var] = {}
        y: dict[int, Var] = {}
        short: dict[int, Var] = {}
        extra: dict[int, Var] = {}
        for s in ev.sessions:
            for t in range(s.first, s.last):
                x[t] = b.var(f"{nm}_x_{t}", 0.0, d.max_power_kw)
                draw[t].append((x[t], 1.0))
            energy: Terms = [(x[t], d.efficiency * dt) for t in range(s.first, s.last)]
            if s.discharge and s.last > s.first:
                energy = _v2h_session(b, model, ev, s, nm, x, y, draw, tie)
            # delivered energy = floor − shortfall + extra, extra within the ceiling; the
            # row exists for every session, so a session without a whole slot shows its
            # whole floor as a shortfall
            sh = b.var(f"{nm}_short_{s.index}", 0.0, s.required_kwh)
            short[s.index] = sh
            b.penalty(sh, pen.shortfall_eur_per_kwh)
            balance: Terms = [*energy, (sh, 1.0)]
            room = s.max_kwh - s.required_kwh
            if room > 1e-9 and energy:
                ex = b.var(f"{nm}_extra_{s.index}", 0.0, room)
                extra[s.index] = ex
                b.money(ex, -ev.terminal_ct / d.efficiency / 100.0)
                balance.append((ex, -1.0))
            b.row(balance, EQ, s.required_kwh)
        slots = [(s.first, s.last) for s in ev.sessions if s.last > s.first]
        # Starts are priced as ramp-up (kW of increase / max power): exact for full-power
        # blocks and free of binaries. Exact start variables only come with a minimum run
        # time, which needs them anyway (their LP relaxation is weak and slows the MIP).
        exact_starts = d.min_run_minutes > 0
        run_slots = math.ceil(d.min_run_minutes / inputs.grid.resolution_minutes)
        for first, last in slots:
            _changes(
                b,
                f"{nm}_{first}",
                x,
                first,
                last,
                tie_eur_per_kw=tie,
                up_eur_per_kw=0.0 if exact_starts else d.start_penalty_eur / d.max_power_kw,
            )
        if (d.min_power_kw or 0.0) > 0 or exact_starts:
            groups = _on_off(
                b,
                nm,
                x,
                slots,
                max_kw=d.max_power_kw,
                min_kw=d.min_power_kw or 0.0,
                min_run_slots=run_slots,
                start_eur=d.start_penalty_eur if exact_starts else 0.0,
            )
            if not exact_starts:
                for (first, last), (on, pw) in zip(slots, groups, strict=True):
                    model.relaxable.append(
                        RelaxableGroup(
                            on, pw, d.min_power_kw or 0.0, d.max_power_kw, price[first:last]
                        )
                    )
        model.evs.append(_EVVars(ev, x, short, extra, y))

    for bat in inputs.batteries:
        bd = bat.dev
        nm = f"bat{len(model.batteries)}"
        c = b.series(f"{nm}_c", n, 0.0, bd.max_charge_kw)
        dis = b.series(f"{nm}_d", n, 0.0, bd.max_discharge_kw)
        soc = b.series(f"{nm}_s", n, bd.soc_min_kwh, bd.top_kwh)
        for t in range(n):
            prev: Terms = [(soc[t - 1], -1.0)] if t > 0 else []
            rhs = bd.soc_kwh if t == 0 else 0.0
            b.row(
                [
                    (soc[t], 1.0),
                    *prev,
                    (c[t], -dt * bd.charge_efficiency),
                    (dis[t], dt / bd.discharge_efficiency),
                ],
                EQ,
                rhs,
            )
            draw[t].append((c[t], 1.0))
            draw[t].append((dis[t], -1.0))
            b.cost(dis[t], dt * bd.wear_cost_ct_per_kwh / 100.0 + tie)
            b.cost(c[t], tie)
            if later_negative[t]:
                z = b.var(f"{nm}_z_{t}", binary=True)
                b.row([(c[t], 1.0), (z, -bd.max_charge_kw)], LE, 0.0)
                b.row([(dis[t], 1.0), (z, bd.max_discharge_kw)], LE, bd.max_discharge_kw)
                model.exclusive.append((z, c[t], dis[t]))
            if not bd.allow_grid_charging:
                b.row([(c[t], 1.0), *([(v[t], -1.0)] if t in v else [])], LE, 0.0)
        b.money(soc[n - 1], -bat.terminal_ct * bd.discharge_efficiency / 100.0)
        end_short = None
        if bat.end_kwh is not None:
            end_short = b.var(f"{nm}_endshort", 0.0, bat.end_kwh)
            b.row([(soc[n - 1], 1.0), (end_short, 1.0)], GE, bat.end_kwh)
            b.penalty(end_short, pen.shortfall_eur_per_kwh)
        model.batteries.append(_BatteryVars(bat, c, dis, soc, end_short))

    for hp in inputs.heat_pumps:
        hd = hp.dev
        bld = hd.building
        nm = f"hp{len(model.heat_pumps)}"
        k = dt / bld.heat_capacity_kwh_per_k
        a = 1.0 - k * bld.heat_loss_kw_per_k
        h = b.series(f"{nm}_h", n, 0.0, hd.max_power_kw)
        theta = b.series(f"{nm}_th", n, None, None)
        cold = b.series(f"{nm}_lo", n, 0.0, None)
        warm = b.series(f"{nm}_hi", n, 0.0, None)
        comfort_eur = pen.comfort_eur_per_kelvin_hour * dt
        for t in range(n):
            driven = k * (bld.heat_loss_kw_per_k * hp.outdoor_c[t] + hp.gains_kw[t])
            prev = [(theta[t - 1], -a)] if t > 0 else []
            rhs = driven + (a * bld.indoor_c if t == 0 else 0.0)
            b.row([(theta[t], 1.0), *prev, (h[t], -k * hp.cop[t])], EQ, rhs)
            b.row([(theta[t], 1.0), (cold[t], 1.0)], GE, float(hp.comfort_min_c[t]))
            b.row([(theta[t], 1.0), (warm[t], -1.0)], LE, float(hp.comfort_max_c[t]))
            b.penalty(cold[t], comfort_eur)
            b.penalty(warm[t], comfort_eur)
            draw[t].append((h[t], 1.0))
        b.money(theta[n - 1], -hp.eur_per_kelvin)
        end_short = None
        if hp.end_c is not None:
            end_short = b.var(f"{nm}_endshort", 0.0, None)
            b.row([(theta[n - 1], 1.0), (end_short, 1.0)], GE, hp.end_c)
            b.penalty(end_short, pen.comfort_eur_per_kelvin_hour)
        h_by_t = dict(enumerate(h))
        use_bin = hd.min_run_minutes > 0
        _changes(
            b,
            nm,
            h_by_t,
            0,
            n,
            tie_eur_per_kw=tie,
            up_eur_per_kw=0.0 if use_bin else hd.start_penalty_eur / hd.max_power_kw,
        )
        if use_bin:
            _on_off(
                b,
                nm,
                h_by_t,
                [(0, n)],
                max_kw=hd.max_power_kw,
                min_kw=0.0,
                min_run_slots=math.ceil(hd.min_run_minutes / inputs.grid.resolution_minutes),
                start_eur=hd.start_penalty_eur,
            )
        model.heat_pumps.append(_HPVars(hp, h, theta, cold, warm, end_short))

    for app in inputs.appliances:
        nm = f"app{len(model.appliances)}"
        y = {st: b.var(f"{nm}_y_{st}", binary=True) for st in app.starts}
        not_run = None
        if app.active:
            not_run = b.var(f"{nm}_skip", 0.0, 1.0)
            b.penalty(not_run, pen.not_run_eur)
            b.row([*((ys, 1.0) for ys in y.values()), (not_run, 1.0)], EQ, 1.0)
        for st, ys in y.items():
            for j, p in enumerate(app.profile_kw):
                if p > 0:
                    draw[st + j].append((ys, float(p)))
        model.appliances.append(_ApplianceVars(app, y, not_run))

    if inputs.dimming_kw:
        _dimming(b, model)
    if previous is not None:
        add_stability(b, model, previous)

    # the balance: import − export + PV used − devices = base load
    for t in range(n):
        terms: Terms = [(u[t], 1.0), (o[t], 1.0)]
        if t in v:
            terms.append((v[t], 1.0))
        if t in e:
            terms.append((e[t], -1.0))
        terms.extend((var, -coef) for var, coef in draw[t])
        b.row(terms, EQ, float(inputs.base_load[t]))
    if not only_pv:
        # Export beyond PV lets the relaxation import energy only to export it again (at the
        # limits, wherever import is cheaper than feed-in), which leaves the direction
        # binaries a weak bound. Two inequalities that every solution without import and
        # export at once keeps cut that off: import at most what the house and devices
        # draw, export at most the PV used and what devices discharge. With the tight
        # bounds above, battery-pv-negative-prices solves in 0.13 s instead of 1.6 s.
        for t in directed:
            b.row(
                [(u[t], 1.0), (o[t], 1.0), *((var, -c) for var, c in draw[t] if c > 0)],
                LE,
                float(inputs.base_load[t]),
            )
            b.row(
                [
                    (e[t], 1.0),
                    *([(v[t], -1.0)] if t in v else []),
                    *((var, c) for var, c in draw[t] if c < 0),
                ],
                LE,
                0.0,
            )

    if cap_eur is not None:
        # the stability price is not money: it stays out of the cap (see add_stability)
        model.cap = (_combined([*b.money_terms, *b.penalty_terms]), cap_eur)
    model.objective = _combined(b.objective)
    model.n_binaries = b.binaries
    model.variables = b.variables
    return model


def values(vars_: Sequence[Var]) -> FloatArray:
    return np.array([v.varValue or 0.0 for v in vars_], dtype=np.float64)


# --- plan stability (DESIGN.md §3, Stability) -------------------------------------------


def _device_power(model: Model, n: int) -> dict[str, list[Terms]]:
    """Each device's power in each slot as terms (an empty list: fixed at 0 kW)."""
    out: dict[str, list[Terms]] = {}
    for ev in model.evs:
        out[ev.spec.dev.name] = [
            [(ev.x[t], 1.0), *([(ev.y[t], -1.0)] if t in ev.y else [])] if t in ev.x else []
            for t in range(n)
        ]
    for bat in model.batteries:
        out[bat.spec.dev.name] = [[(bat.c[t], 1.0), (bat.d[t], -1.0)] for t in range(n)]
    for hp in model.heat_pumps:
        out[hp.spec.dev.name] = [[(hp.h[t], 1.0)] for t in range(n)]
    for app in model.appliances:
        terms: list[Terms] = [[] for _ in range(n)]
        for st, ys in app.y.items():
            for j, p in enumerate(app.spec.profile_kw):
                if p > 0 and st + j < n:
                    terms[st + j].append((ys, float(p)))
        out[app.spec.dev.name] = terms
    return out


def add_stability(b: _Builder, model: Model, previous: PreviousIn) -> None:
    """Freeze the first slot and price |power − previous power| over the window.

    The first slot: each device in ``previous.frozen_kw`` keeps that power (a battery's
    charge and discharge are fixed apart). The window: per device and slot with a previous
    value, ``power − previous = up − down`` with ``up, down ≥ 0``, both priced at the
    stability price × Δ (so their sum is |power − previous| at the optimum). The price is
    a cost term (like wear), not money: it stays out of the bill, the saving and the cap.
    """
    n = min(model.inputs.grid.n, max(previous.window, 1))
    dt = model.inputs.dt_h
    power = _device_power(model, n)
    for bat in model.batteries:
        target = previous.frozen_kw.get(bat.spec.dev.name)
        if target is not None:
            b.row([(bat.c[0], 1.0)], EQ, max(target, 0.0))
            b.row([(bat.d[0], 1.0)], EQ, max(-target, 0.0))
    for name, target in previous.frozen_kw.items():
        terms = power[name][0]
        if terms and not any(bat.spec.dev.name == name for bat in model.batteries):
            b.row(terms, EQ, target)
    eur = previous.eur_per_kwh * dt
    for name, prev_kw in previous.kw.items():
        for t in range(min(previous.window, n)):
            terms = power[name][t]
            if not terms or not math.isfinite(prev_kw[t]):
                continue
            up = b.var(f"stab_{len(b.variables)}_up")
            dn = b.var(f"stab_{len(b.variables)}_dn")
            b.row([*terms, (up, -1.0), (dn, 1.0)], EQ, float(prev_kw[t]))
            b.cost(up, eur)
            b.cost(dn, eur)


def net_grid_exchange(model: Model) -> None:
    """Net import against export in each slot whose import price is not below the feed-in.

    There, importing and exporting at once never lowers the bill (the direction binaries
    cover the slots where it would), but with equal prices (and no tie-break, or within the
    MIP gap) a solution may still show both. Lowering both by their minimum keeps the
    balance and every bound and does not raise the bill: the plan never shows both.
    """
    inp = model.inputs
    for t, et in model.e.items():
        if inp.price[t] < inp.feed_in[t]:
            continue
        exp = max(0.0, et.varValue or 0.0)
        for var in (model.o[t], model.u[t]):  # the overload first: it is also penalised
            val = max(0.0, var.varValue or 0.0)
            m = min(val, exp)
            if m > 0.0:
                var.varValue = val - m
                exp -= m
        et.varValue = exp
