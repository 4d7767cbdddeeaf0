"""Solve a built model with HiGHS (default) or CBC, within a bounded time.

HiGHS: PuLP 3's own HiGHS adapter hands the model over one column and one row at a time
(a Python call each); for our few thousand rows that costs more than HiGHS needs to solve
the LP. So we pass the whole matrix at once through ``Highs.passModel`` (the model's rows
are kept row-wise CSR for this). HiGHS honours its own time limit.

CBC: PuLP's bundled binary, run on the MPS file PuLP writes (from ``Model.prob``). CBC
checks ``-sec`` only between branch-and-bound nodes, so presolve or the root LP can overrun
it; we run the process ourselves and kill it at the wall-clock limit (plus a small grace).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import pulp

from wattplan.exceptions import OptimizationError, SolverTimeoutError
from wattplan.optimizer._model import Model, RelaxableGroup
from wattplan.optimizer._scenario import SolverOptions

__all__ = ["SolveOutcome", "SolveResult", "solve"]

log = logging.getLogger(__name__)


class SolveOutcome(Enum):
    OPTIMAL = "optimal"  # proven optimal (within the MIP gap)
    TIME_LIMIT = "time_limit"  # stopped at the limit with a feasible solution
    INFEASIBLE = "infeasible"
    FAILED = "failed"


@dataclass
class SolveResult:
    outcome: SolveOutcome
    solver: str
    seconds: float
    objective_eur: float | None
    mip_gap: float | None
    message: str


_banner_lock = threading.Lock()
_banner_done = False


def new_highs() -> Any:
    """A silent ``highspy.Highs``.

    HiGHS's C++ constructor prints a banner to file descriptor 1 the first time it runs in a
    process, before any option can be set; on stdout it would corrupt ``--json`` output. So
    the first construction runs with fd 1 pointed at /dev/null (once, under a lock).
    """
    global _banner_done
    import highspy

    with _banner_lock:
        if _banner_done:
            h = highspy.Highs()  # type: ignore[no-untyped-call]
        else:
            sys.stdout.flush()
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()  # type: ignore[no-untyped-call]
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def to_highs(model: Model, options: SolverOptions, *, cap: bool = True) -> Any:
    """A ``highspy.Highs`` instance holding ``model`` (also used by the benchmark).

    ``cap``: with the model's cap row (money plus penalties at most the baseline's), if any.
    """
    import highspy

    h = new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(options.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    inf = highspy.kHighsInf
    variables = model.variables
    rows = model.rows
    starts, cols, vals, lo, hi = rows.start, rows.index, rows.value, rows.lower, rows.upper
    if cap and model.cap is not None:
        extra = [(v.index, c) for v, c in model.cap[0] if c != 0.0]
        starts = [*starts, len(cols) + len(extra)]
        cols = cols + [j for j, _c in extra]
        vals = vals + [c for _j, c in extra]
        lo, hi = [*lo, -inf], [*hi, model.cap[1]]
    lp = highspy.HighsLp()
    lp.num_col_ = len(variables)
    lp.num_row_ = len(lo)
    lp.col_cost_ = np.array(model.costs(), dtype=np.float64)
    lp.col_lower_ = np.array(
        [-inf if v.lowBound is None else v.lowBound for v in variables], dtype=np.float64
    )
    lp.col_upper_ = np.array(
        [inf if v.upBound is None else v.upBound for v in variables], dtype=np.float64
    )
    lp.row_lower_ = np.array(lo, dtype=np.float64)
    lp.row_upper_ = np.array(hi, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(cols, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(vals, dtype=np.float64)
    if model.is_mip:
        kinds = highspy.HighsVarType
        lp.integrality_ = [kinds.kInteger if v.integer else kinds.kContinuous for v in variables]
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise OptimizationError("HiGHS refused the model (a bound or coefficient is not finite?)")
    return h


def _violations(model: Model, col: Any) -> list[RelaxableGroup]:
    """Relaxed on/off groups in which some slot has 0 < power < minimum."""
    return [
        g for g in model.relaxable if any(1e-6 < col[v.index] < g.min_kw - 1e-6 for v in g.power)
    ]


def _fractional(col: Any, cols: list[int]) -> bool:
    return any(1e-6 < col[c] < 1.0 - 1e-6 for c in cols)


def _cheapest_window(group: RelaxableGroup, col: Any) -> tuple[int, int]:
    """The contiguous run of slots that delivers the relaxed energy at full power most cheaply."""
    energy = sum(col[v.index] for v in group.power)
    k = min(len(group.power), max(1, int(np.ceil(energy / group.max_kw - 1e-9))))
    sums = np.convolve(group.price, np.ones(k), mode="valid")
    first = int(np.argmin(sums))
    return first, first + k


@dataclass
class _Answer:
    """What one HiGHS run left: status, objective and column values."""

    status: Any  # highspy.HighsModelStatus
    objective: float
    col: list[float]
    has_solution: bool
    mip_gap: float
    message: str

    @classmethod
    def of(cls, h: Any) -> _Answer:
        info = h.getInfo()
        status = h.getModelStatus()
        return cls(
            status,
            float(info.objective_function_value),
            list(h.getSolution().col_value),
            info.primal_solution_status == 2,  # kSolutionStatusFeasible
            float(info.mip_gap),
            h.modelStatusToString(status),
        )


def _round_relaxed(
    h: Any,
    model: Model,
    bad: list[RelaxableGroup],
    bound: float,
    gap: float,
    run: Callable[[], None],
    choices: list[list[int]],
) -> _Answer | None:
    """Round each violated group's on/off variables and solve what is left; keep the best.

    Two candidates: keep on exactly the slots where the relaxation already draws at least
    the minimum (the rest off), and the cheapest full-power window for the relaxed energy.
    The better one is returned when it lies within ``gap`` of the relaxation's ``bound``,
    the guarantee a MIP solver gives; otherwise None, with the bounds restored.
    """
    import highspy

    relaxed = list(h.getSolution().col_value)
    cols = [v.index for g in bad for v in g.on]
    idx = np.array(cols, dtype=np.int32)

    def threshold(g: RelaxableGroup) -> list[float]:
        return [1.0 if relaxed[p.index] >= g.min_kw - 1e-6 else 0.0 for p in g.power]

    def window(g: RelaxableGroup) -> list[float]:
        a, b = _cheapest_window(g, relaxed)
        return [1.0 if a <= t < b else 0.0 for t in range(len(g.on))]

    best: _Answer | None = None
    tried: list[list[float]] = []
    for rounding in (threshold, window):
        fixed = [x for g in bad for x in rounding(g)]
        if fixed in tried:  # both roundings agree: nothing new to solve
            continue
        tried.append(fixed)
        h.changeColsBounds(len(cols), idx, np.array(fixed), np.array(fixed))
        run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            continue
        col = h.getSolution().col_value
        if _violations(model, col) or any(_fractional(col, g) for g in choices):
            continue
        obj = float(h.getInfo().objective_function_value)
        if best is None or obj < best.objective:
            best = _Answer.of(h)
    if best is not None and best.objective - bound <= gap * max(abs(best.objective), 1e-9):
        return best
    h.changeColsBounds(len(cols), idx, np.zeros(len(cols)), np.ones(len(cols)))
    return None


def _reset_thread_scheduler() -> None:
    """Shut down the calling thread's HiGHS task scheduler (if any) and join its workers."""
    import highspy

    # older highspy has only resetGlobalScheduler, which resets the same per-thread scheduler
    reset = getattr(highspy.Highs, "resetThreadScheduler", None)
    (reset or highspy.Highs.resetGlobalScheduler)(True)


def _solve_highs(model: Model, options: SolverOptions) -> SolveResult:
    # HiGHS keeps one task scheduler per calling thread, sized by that thread's first run, and
    # fails ("Not Set") any later run there with other `threads`. So a solve starts from no
    # scheduler on this thread and leaves none: `threads` is honoured exactly, and HiGHS use
    # before or after us here is unaffected (it builds a new one on its next run). The reset
    # touches only this thread's scheduler, idle between runs, so it is safe while other
    # threads solve. Cost: ~1 us with threads=1 (no workers), ~60 us with 2 (start and join).
    _reset_thread_scheduler()
    try:
        return _run_highs(model, options)
    finally:
        _reset_thread_scheduler()


ROUNDS_SHARE = 0.25
"""Share of the time limit the relaxation rounds may use before the full MIP takes over."""


def _breaks_cap(model: Model, answer: _Answer) -> bool:
    """Whether ``answer`` spends more money plus penalties than the model's cap allows."""
    if model.cap is None or not answer.has_solution:
        return False
    terms, bound = model.cap
    spent = sum(coef * answer.col[v.index] for v, coef in terms)
    return spent > bound + 1e-9 * max(1.0, abs(bound))


def _run_highs(model: Model, options: SolverOptions) -> SolveResult:
    """Solve without the cap row first; with it only when the answer breaks it.

    The cap row (money plus penalties at most the baseline's) is dense and makes every
    HiGHS run several times slower, yet it rarely binds. Without it the model is a
    relaxation of the capped one: an answer that keeps the cap anyway is what the capped
    model would give (within the MIP gap, measured against a bound that holds for both).
    An answer that breaks it is set aside and the capped model solved, within the same time
    limit; only if that finds no plan in the time left is the first answer taken, as one
    stopped at the time limit.
    """
    import highspy

    t0 = time.perf_counter()
    answer, gap_override = _highs_rounds(to_highs(model, options, cap=False), model, options, t0)
    if _breaks_cap(model, answer):
        uncapped, uncapped_gap = answer, gap_override
        answer, gap_override = _highs_rounds(to_highs(model, options), model, options, t0)
        ms = highspy.HighsModelStatus
        if not answer.has_solution and answer.status in (ms.kTimeLimit, ms.kIterationLimit):
            answer = replace(uncapped, status=answer.status, message=answer.message)
            gap_override = uncapped_gap
    return _result(model, options, answer, gap_override, time.perf_counter() - t0)


def _highs_rounds(
    h: Any, model: Model, options: SolverOptions, t0: float
) -> tuple[_Answer, float | None]:
    """Relaxed-first solve of ``h``: the last answer, and its gap where not HiGHS's own."""
    import highspy

    kinds = highspy.HighsVarType
    lazy = np.array([v.index for g in model.relaxable for v in g.on], dtype=np.int32)
    directions = [(z.index, a.index, b.index) for z, a, b in model.exclusive]

    # The relaxation rounds below are a shortcut; on hard instances (prices that make
    # import, export and storage compete in many slots) they can take longer than the full
    # MIP. They get a quarter of the time limit, so the full MIP always has the rest; a
    # quarter because HiGHS can overrun a partially integral run's limit about twofold.
    rounds_until = t0 + ROUNDS_SHARE * options.time_limit_s

    relaxed = len(lazy) + len(directions) + sum(len(app.y) for app in model.appliances)
    # HiGHS's presolve costs more than it saves on these LPs (a third of the 48 h
    # household's solve time); a MIP keeps it
    lp = [relaxed == model.n_binaries]

    def run(final: bool = False) -> None:
        # one time limit for all rounds together, not per round
        now = time.perf_counter()
        left = options.time_limit_s - (now - t0) if final else rounds_until - now
        h.setOptionValue("time_limit", max(0.05, left))
        h.setOptionValue("presolve", "off" if lp[0] else "choose")
        h.run()

    def set_kind(cols: Any, kind: Any) -> None:
        cols = np.asarray(cols, dtype=np.int32)
        if len(cols):
            h.changeColsIntegrality(len(cols), cols, np.array([kind] * len(cols)))
            lp[0] = lp[0] and kind == kinds.kContinuous

    # Binaries that carry no cost and only forbid something the relaxation rarely does
    # start relaxed: direction binaries (charge and discharge, or import and export, at
    # once) and minimum-power on/off variables. A relaxed solution that breaks none of
    # their rules is optimal for the full MIP too. Violated direction binaries are made
    # integral and the model solved again (partial integrality is still a relaxation, so
    # the argument holds each round); after three rounds all of them are.
    # Appliance starts are real choices, but their one-hot relaxation is usually integral
    # already: an appliance whose relaxed starts are fractional is made integral.
    choices = [[y.index for y in app.y.values()] for app in model.appliances]
    if model.whole_mip:  # every binary integral as built: one MIP with the whole limit
        lp[0] = False
        run(final=True)
        return _Answer.of(h), None
    set_kind([zc for zc, _a, _b in directions], kinds.kContinuous)
    set_kind([c for group in choices for c in group], kinds.kContinuous)
    set_kind(lazy, kinds.kContinuous)
    run()
    pending = list(directions)
    open_choices = [g for g in choices if g]
    out_of_time = False
    for _round in range(4):
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        if time.perf_counter() >= rounds_until:  # out of the rounds' share: the full MIP
            out_of_time = True
            break
        col = h.getSolution().col_value
        bad = [zc for zc, ac, bc in pending if col[ac] > 1e-6 and col[bc] > 1e-6]
        bad_choices = [g for g in open_choices if _fractional(col, g)]
        if not bad and not bad_choices:
            break
        if _round == 3:
            bad, bad_choices = [zc for zc, _a, _b in pending], open_choices
        set_kind(bad + [c for g in bad_choices for c in g], kinds.kInteger)
        pending = [p for p in pending if p[0] not in set(bad)]
        open_choices = [g for g in open_choices if g not in bad_choices]
        run()
    solved = not out_of_time and h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    if len(lazy):
        # Minimum power: if the relaxed powers break it, round each violated group to its
        # cheapest full-power window and keep that when it lies within the MIP gap of the
        # relaxation's bound; only otherwise solve with the on/off variables integral.
        bad_groups = _violations(model, h.getSolution().col_value) if solved else []
        if solved and bad_groups:
            bound = float(h.getInfo().objective_function_value)
            rounded = _round_relaxed(h, model, bad_groups, bound, options.mip_gap, run, choices)
            if rounded is not None:
                obj = rounded.objective
                return rounded, (obj - bound) / max(abs(obj), 1e-9)
            solved = False
    if not solved:
        set_kind(lazy, kinds.kInteger)
        set_kind([zc for zc, _a, _b in directions], kinds.kInteger)
        set_kind([c for group in choices for c in group], kinds.kInteger)
        run(final=True)
    return _Answer.of(h), None


def _result(
    model: Model,
    options: SolverOptions,
    answer: _Answer,
    gap_override: float | None,
    seconds: float,
) -> SolveResult:
    """The outcome of the last answer; its values go into the model's variables."""
    import highspy

    status = answer.status
    ms = highspy.HighsModelStatus
    gap = answer.mip_gap if model.is_mip else None
    if gap_override is not None:
        gap = max(gap_override, 0.0)
    if status == ms.kOptimal:
        outcome = SolveOutcome.OPTIMAL
    elif status in (ms.kTimeLimit, ms.kIterationLimit, ms.kInterrupt) and answer.has_solution:
        outcome = SolveOutcome.TIME_LIMIT
    elif status in (ms.kTimeLimit, ms.kIterationLimit):
        raise SolverTimeoutError(f"HiGHS found no feasible plan within {options.time_limit_s:g} s")
    elif status in (ms.kInfeasible, ms.kUnboundedOrInfeasible):
        return SolveResult(SolveOutcome.INFEASIBLE, "highs", seconds, None, None, "infeasible")
    else:
        return SolveResult(SolveOutcome.FAILED, "highs", seconds, None, None, answer.message)
    if gap is not None and not np.isfinite(gap) and outcome is SolveOutcome.OPTIMAL:
        gap = 0.0  # the last solve was an LP whose answer is feasible for the MIP
    for var, val in zip(model.variables, answer.col, strict=True):
        var.varValue = val
    return SolveResult(outcome, "highs", seconds, answer.objective, gap, answer.message)


def _solve_cbc(model: Model, options: SolverOptions) -> SolveResult:
    from pulp.apis import coin_api

    # PuLP 3 bundles CBC (the reason for pulp<4); COIN_CMD reads its solution files.
    path = coin_api.COIN_CMD.executableExtension(coin_api.pulp_cbc_path)
    cmd = coin_api.COIN_CMD(path=path, msg=False)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wattplan-cbc-") as tmp:
        mps = os.path.join(tmp, "model.mps")
        sol = os.path.join(tmp, "model.sol")
        prob, columns = model.pulp_model()
        vs, vnames, cnames, _ = prob.writeMPS(mps, rename=1)
        args = [
            path,
            mps,
            "-sec",
            f"{options.time_limit_s:g}",
            "-timeMode",
            "elapsed",
            "-ratio",
            f"{options.mip_gap:g}",
            "-threads",
            str(options.threads),
            "-randomSeed",
            "1",
            "-solve" if model.is_mip else "-initialSolve",
            "-printingOptions",
            "all",
            "-solution",
            sol,
        ]
        grace = 2.0 + 0.2 * options.time_limit_s
        try:
            subprocess.run(
                args,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                timeout=options.time_limit_s + grace,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SolverTimeoutError(
                f"CBC did not stop within {options.time_limit_s + grace:g} s and was killed"
            ) from exc
        seconds = time.perf_counter() - t0
        if not os.path.exists(sol):
            raise OptimizationError("CBC wrote no solution file")
        status, values, _, _, _, sol_status = cmd.readsol_MPS(sol, prob, vs, vnames, cnames)
    for var, column in zip(model.variables, columns, strict=True):
        column.varValue = var.varValue = values.get(column.name, 0.0)
    if status == pulp.LpStatusOptimal and sol_status == pulp.LpSolutionOptimal:
        outcome = SolveOutcome.OPTIMAL
    elif sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionOptimal):
        outcome = SolveOutcome.TIME_LIMIT
    elif status == pulp.LpStatusInfeasible:
        return SolveResult(SolveOutcome.INFEASIBLE, "cbc", seconds, None, None, "infeasible")
    elif status == pulp.LpStatusNotSolved:
        raise SolverTimeoutError(f"CBC found no feasible plan within {options.time_limit_s:g} s")
    else:
        return SolveResult(SolveOutcome.FAILED, "cbc", seconds, None, None, pulp.LpStatus[status])
    obj = float(pulp.value(prob.objective) or 0.0)
    return SolveResult(outcome, "cbc", seconds, obj, None, pulp.LpStatus[status])


def solve(model: Model, options: SolverOptions) -> SolveResult:
    """Solve ``model``; raise :class:`SolverTimeoutError` when no plan came within the limit."""
    try:
        if options.name == "cbc":
            return _solve_cbc(model, options)
        return _solve_highs(model, options)
    except OptimizationError:  # includes SolverTimeoutError
        raise
    except Exception as exc:  # a solver library failing in an unforeseen way
        raise OptimizationError(f"{options.name} failed: {type(exc).__name__}: {exc}") from exc
