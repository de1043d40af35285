"""Column generation: a strong lower bound and a price-and-branch plan.

The master is the covering form of the problem over bin *patterns* (how many copies of
each item kind one bin of a type holds): minimise ``sum_p c_p x_p`` subject to
``A x >= q`` (every copy covered) and, per bin type with a limit, ``sum x_p <= M_t``.
Its LP is solved by HiGHS (``scipy.optimize.linprog``); new patterns come from a
vectorised greedy pricer and an exact pair enumeration, and, when those find nothing,
from an exact knapsack MILP (``scipy.optimize.milp``) whose dual bound also gives a
Lagrangian lower bound while the LP is not yet optimal. The integer master over the
generated patterns (``milp``) then yields a plan.

All of it works on *groups*: item kinds with identical size vectors are merged.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from optimizer.packing.model import UNLIMITED, capacity_slack

EPS = 1e-9

#: Whether the optional ``highspy`` package (incremental HiGHS) is importable.
HIGHSPY_INSTALLED = importlib.util.find_spec("highspy") is not None
#: Whether OR-Tools (CP-SAT, used for exact pricing) is importable.
ORTOOLS_INSTALLED = importlib.util.find_spec("ortools") is not None


@dataclass
class Grouped:
    """An instance over item groups (identical sizes merged).

    Attributes
    ----------
    sizes : numpy.ndarray
        ``(g, d)`` size of one copy of each group.
    counts : numpy.ndarray
        ``(g,)`` copies per group.
    caps : numpy.ndarray
        ``(t, d)`` capacities with float slack.
    costs : numpy.ndarray
        ``(t,)``.
    max_counts : numpy.ndarray
        ``(t,)``, ``UNLIMITED`` where no limit.
    per_bin : numpy.ndarray
        ``(g, t)`` most copies of a group one empty bin holds.
    """

    sizes: np.ndarray
    counts: np.ndarray
    caps: np.ndarray
    costs: np.ndarray
    max_counts: np.ndarray
    per_bin: np.ndarray


@dataclass
class Pool:
    """Generated columns: bin type and pattern (copies per group) of each."""

    types: list[int] = field(default_factory=list)
    patterns: list[np.ndarray] = field(default_factory=list)
    keys: dict[bytes, int] = field(default_factory=dict)

    @staticmethod
    def key(t: int, pattern: np.ndarray) -> bytes:
        """Hashable identity of a column."""
        return int(t).to_bytes(4, "little") + np.asarray(pattern, dtype=np.int64).tobytes()

    def add(self, t: int, pattern: np.ndarray) -> bool:
        """Add a column unless it is already there; returns whether it was new."""
        a = np.asarray(pattern, dtype=np.int64)
        key = self.key(t, a)
        if key in self.keys or not a.any():
            return False
        self.keys[key] = len(self.types)
        self.types.append(int(t))
        self.patterns.append(a)
        return True

    def __len__(self) -> int:
        return len(self.types)

    def matrix(self, n_groups: int) -> sparse.csc_matrix:
        """``(g, P)`` sparse pattern matrix."""
        if not self.patterns:
            return sparse.csc_matrix((n_groups, 0))
        return sparse.csc_matrix(np.column_stack(self.patterns).astype(float))


@dataclass
class CGResult:
    """Outcome of :func:`column_generation`.

    Attributes
    ----------
    pool : Pool
        All generated columns (including the starting ones).
    lp_value : float
        Value of the last restricted master LP.
    bound : float
        Best proven lower bound (Lagrangian; equals the LP value once converged).
    converged : bool
        Whether exact pricing proved the LP optimal.
    iterations : int
        LP solves.
    lp_x : numpy.ndarray
        Last LP solution over the pool.
    """

    pool: Pool
    lp_value: float
    bound: float
    converged: bool
    iterations: int
    lp_x: np.ndarray


def cost_unit(costs: np.ndarray) -> float:
    """Largest unit ``g`` such that every cost is a multiple of it (0 if none is found).

    Used to round lower bounds up: with unit costs every plan costs an integer.
    """
    pos = costs[costs > 0]
    if pos.size == 0:
        return 0.0
    scaled = pos * 1e6
    if not np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6):
        return 0.0
    g = 0
    for v in np.round(scaled).astype(np.int64):
        g = math.gcd(g, int(v))
    return g / 1e6


def round_bound(value: float, unit: float) -> float:
    """Round a lower bound up to the next multiple of ``unit`` (with a float tolerance)."""
    if unit <= 0 or not np.isfinite(value):
        return value
    return unit * math.ceil(value / unit - 1e-7)


def _quiet_highs() -> Any:
    """A ``highspy.Highs`` with logging off (its one-time banner kept off stdout)."""
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        # HiGHS prints its banner from C on the first construction; keep stdout clean
        # for ``--json`` output.
        sys.stdout.flush()
        saved = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    return h


_BANNER_SHOWN = False


class _Master:
    """Restricted master LP over a growing pool.

    With ``highspy`` installed the LP lives in one HiGHS instance and new columns are
    appended, so each re-solve warm-starts from the last basis; otherwise every solve
    goes through ``scipy.optimize.linprog``.
    """

    def __init__(self, grp: Grouped, pool: Pool) -> None:
        self.grp = grp
        self.pool = pool
        self.limited = np.flatnonzero(grp.max_counts < UNLIMITED)
        self.limit_row = {int(t): len(grp.counts) + r for r, t in enumerate(self.limited)}
        big = float(grp.costs.max(initial=1.0)) * 10.0 + 1.0
        # One artificial column per group keeps the LP feasible whatever the pool.
        self.art_cost = big * (1.0 + float(grp.counts.max(initial=1)))
        self.highs: Any = None
        self.n_in_lp = 0
        if HIGHSPY_INSTALLED:
            self._build_highs()

    def _build_highs(self) -> None:
        import highspy

        grp = self.grp
        g = len(grp.counts)
        inf = highspy.kHighsInf
        h = _quiet_highs()
        lower = np.concatenate([grp.counts.astype(float), np.full(self.limited.size, -inf)])
        upper = np.concatenate([np.full(g, inf), grp.max_counts[self.limited].astype(float)])
        h.addRows(
            lower.size,
            lower,
            upper,
            0,
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int32),
            np.zeros(0),
        )
        for i in range(g):
            h.addCol(self.art_cost, 0.0, inf, 1, np.array([i], dtype=np.int32), np.ones(1))
        self.highs = h

    def _sync(self) -> None:
        import highspy

        h, pool = self.highs, self.pool
        inf = highspy.kHighsInf
        for p in range(self.n_in_lp, len(pool)):
            a = pool.patterns[p]
            t = pool.types[p]
            idx = np.flatnonzero(a)
            vals = a[idx].astype(float)
            if t in self.limit_row:
                idx = np.append(idx, self.limit_row[t])
                vals = np.append(vals, 1.0)
            h.addCol(float(self.grp.costs[t]), 0.0, inf, idx.size, idx.astype(np.int32), vals)
        self.n_in_lp = len(pool)

    def solve(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Solve the LP; returns ``(value, x over the pool, pi, mu)``."""
        if self.highs is not None:
            return self._solve_highs()
        return self._solve_scipy()

    def _solve_highs(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        self._sync()
        h = self.highs
        h.run()
        sol = h.getSolution()
        g = len(self.grp.counts)
        duals = np.asarray(sol.row_dual)
        x = np.asarray(sol.col_value)[g:]
        pi = np.maximum(duals[:g], 0.0)
        mu = np.zeros(len(self.grp.costs))
        if self.limited.size:
            mu[self.limited] = np.maximum(-duals[g:], 0.0)
        return float(h.getInfo().objective_function_value), x, pi, mu

    def _solve_scipy(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        grp, pool = self.grp, self.pool
        g = len(grp.counts)
        a = pool.matrix(g)
        n_cols = a.shape[1]
        c = np.concatenate([grp.costs[pool.types], np.full(g, self.art_cost)])
        cover = sparse.hstack([-a, -sparse.identity(g, format="csc")], format="csc")
        rows = [cover]
        b = [-grp.counts.astype(float)]
        if self.limited.size:
            types = np.asarray(pool.types)
            lim = np.zeros((self.limited.size, n_cols + g))
            for r, t in enumerate(self.limited):
                lim[r, :n_cols] = types == t
            rows.append(sparse.csc_matrix(lim))
            b.append(grp.max_counts[self.limited].astype(float))
        res = linprog(
            c,
            A_ub=sparse.vstack(rows, format="csc"),
            b_ub=np.concatenate(b),
            bounds=(0, None),
            method="highs-ds",
        )
        if res.status != 0:  # pragma: no cover - the artificial columns keep it feasible
            raise RuntimeError(f"master LP failed: {res.message}")
        marg = -np.asarray(res.ineqlin.marginals)
        pi = np.maximum(marg[:g], 0.0)
        mu = np.zeros(len(grp.costs))
        if self.limited.size:
            mu[self.limited] = np.maximum(marg[g:], 0.0)
        return float(res.fun), np.asarray(res.x[:n_cols]), pi, mu


def _greedy_patterns(
    grp: Grouped, t: int, pi: np.ndarray, ratio: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """Greedy fill from each seed group by decreasing ``ratio``; ``(len(seeds), g)`` patterns."""
    s = grp.sizes
    cap = grp.caps[t]
    g = s.shape[0]
    ns = seeds.size
    used = np.zeros((ns, g), dtype=np.int64)
    resid = np.broadcast_to(cap, (ns, cap.size)).copy()
    ok = np.all(s[seeds] <= resid, axis=1)
    used[np.arange(ns)[ok], seeds[ok]] = 1
    resid[ok] -= s[seeds[ok]]
    limit = np.minimum(grp.counts, grp.per_bin[:, t])
    useful = pi > EPS
    rows = np.arange(ns)
    active = ok.copy()
    while active.any():
        ar = rows[active]
        fit = np.all(s[None, :, :] <= resid[ar, None, :], axis=2)
        fit &= (used[ar] < limit[None, :]) & useful[None, :]
        score = np.where(fit, ratio[None, :], -np.inf)
        best = np.argmax(score, axis=1)
        has = np.isfinite(score[np.arange(ar.size), best])
        active[ar[~has]] = False
        ar, best = ar[has], best[has]
        used[ar, best] += 1
        resid[ar] -= s[best]
    return used[ok]


def _pair_patterns(grp: Grouped, t: int, pi: np.ndarray, floor: float, top: int) -> np.ndarray:
    """Best feasible pairs of groups by dual value above ``floor``; ``(m, g)`` patterns."""
    s = grp.sizes
    g = s.shape[0]
    idx = np.flatnonzero((pi > EPS) & (grp.per_bin[:, t] > 0))
    if idx.size == 0 or idx.size > 1500:
        return np.zeros((0, g), dtype=np.int64)
    si = s[idx]
    fit = np.all(si[:, None, :] + si[None, :, :] <= grp.caps[t], axis=2)
    same_ok = (grp.counts[idx] >= 2) & (grp.per_bin[idx, t] >= 2)
    iu = np.triu_indices(idx.size, k=1)
    val = pi[idx][:, None] + pi[idx][None, :]
    mask = np.zeros_like(fit)
    mask[iu] = True
    mask[np.diag_indices(idx.size)] = same_ok
    mask &= fit & (val > floor)
    a_idx, b_idx = np.nonzero(mask)
    if a_idx.size == 0:
        return np.zeros((0, g), dtype=np.int64)
    v = val[a_idx, b_idx]
    keep = np.lexsort((b_idx, a_idx, -v))[:top]
    out = np.zeros((keep.size, g), dtype=np.int64)
    np.add.at(out, (np.arange(keep.size), idx[a_idx[keep]]), 1)
    np.add.at(out, (np.arange(keep.size), idx[b_idx[keep]]), 1)
    return out


def _complete(grp: Grouped, t: int, base: np.ndarray, ratio: np.ndarray, pi: np.ndarray) -> None:
    """Fill the residual of each base pattern greedily by ``ratio`` (in place)."""
    s = grp.sizes
    limit = np.minimum(grp.counts, grp.per_bin[:, t])
    resid = grp.caps[t][None, :] - base @ s
    useful = pi > EPS
    active = np.ones(base.shape[0], dtype=bool)
    rows = np.arange(base.shape[0])
    while active.any():
        ar = rows[active]
        fit = np.all(s[None, :, :] <= resid[ar, None, :], axis=2)
        fit &= (base[ar] < limit[None, :]) & useful[None, :]
        score = np.where(fit, ratio[None, :], -np.inf)
        best = np.argmax(score, axis=1)
        has = np.isfinite(score[np.arange(ar.size), best])
        active[ar[~has]] = False
        ar, best = ar[has], best[has]
        base[ar, best] += 1
        resid[ar] -= s[best]


def heuristic_pricing(
    grp: Grouped, pi: np.ndarray, mu: np.ndarray, top: int
) -> list[tuple[float, int, np.ndarray]]:
    """Columns with negative reduced cost found by greedy and pair pricing.

    Returns ``(reduced cost, type, pattern)`` triples, most negative first, at most ``top``.
    """
    out: list[tuple[float, int, np.ndarray]] = []
    scale = grp.caps.max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    sn = grp.sizes / scale
    for t in range(len(grp.costs)):
        floor = grp.costs[t] + mu[t] + EPS
        fits = grp.per_bin[:, t] > 0
        seeds = np.flatnonzero(fits & (pi > EPS))
        if seeds.size == 0:
            continue
        # Each greedy fill adds one copy per pass over (seeds, groups, dims): bound the
        # work when patterns are long (many small copies per bin).
        length = float(np.minimum(grp.per_bin[fits, t], grp.counts[fits]).sum())
        length = min(length, float(1.0 / max(float(sn[fits].max(axis=1).mean()), 1e-6)) * 2)
        cap = int(max(20, min(400, 3e6 / max(len(pi) * sn.shape[1] * length, 1.0))))
        if seeds.size > cap:
            seeds = seeds[np.argsort(-pi[seeds], kind="stable")[:cap]]
        cands = []
        for measure in (sn.sum(axis=1), sn.max(axis=1)):
            ratio = pi / np.maximum(measure, 1e-12)
            ratio = np.where(fits, ratio, -np.inf)
            cands.append(_greedy_patterns(grp, t, pi, ratio, seeds))
        pairs = _pair_patterns(grp, t, pi, 0.0, min(4 * top, cap))
        if pairs.shape[0]:
            ratio = pi / np.maximum(sn.sum(axis=1), 1e-12)
            _complete(grp, t, pairs, np.where(fits, ratio, -np.inf), pi)
            cands.append(pairs)
        pats = np.vstack(cands)
        vals = pats @ pi
        good = vals > floor
        for p, v in zip(pats[good], vals[good], strict=True):
            out.append((float(grp.costs[t] + mu[t] - v), t, p))
    out.sort(key=lambda r: r[0])
    chosen: list[tuple[float, int, np.ndarray]] = []
    seen: set[bytes] = set()
    cover = np.zeros(len(pi), dtype=np.int64)
    for rc, t, p in out:
        key = int(t).to_bytes(4, "little") + p.tobytes()
        if key in seen:
            continue
        # Keep the batch diverse: skip a column whose groups are all covered twice already.
        if (cover[p > 0] >= 2).all() and len(chosen) >= top // 2:
            continue
        seen.add(key)
        cover += p > 0
        chosen.append((rc, t, p))
        if len(chosen) >= top:
            break
    return chosen


def _integral_sizes(grp: Grouped, idx: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Integer sizes and capacity for CP-SAT, and whether they are exact.

    Integer data passes unchanged. Otherwise sizes are scaled by 1e4 and rounded *down*
    and the capacity rounded *up*: a relaxation, so the bound stays valid and every
    pattern found is re-checked in floating point.
    """
    sizes = grp.sizes[idx]
    cap = grp.caps[t] - capacity_slack(grp.caps[t]) * 0.999
    if np.allclose(sizes, np.round(sizes)) and np.allclose(cap, np.round(cap)):
        return np.round(sizes).astype(np.int64), np.round(cap).astype(np.int64), True
    scale = 1e4
    return (
        np.floor(sizes * scale).astype(np.int64),
        np.ceil(grp.caps[t] * scale).astype(np.int64),
        False,
    )


def _cpsat_pricing(
    grp: Grouped, t: int, pi: np.ndarray, idx: np.ndarray, ub: np.ndarray, time_limit: float
) -> tuple[list[np.ndarray], float]:
    from ortools.sat.python import cp_model

    scale = 1e6
    weights = np.floor(pi[idx] * scale).astype(np.int64)
    sizes, cap, _ = _integral_sizes(grp, idx, t)
    model = cp_model.CpModel()
    xs = [model.new_int_var(0, int(u), f"x{j}") for j, u in enumerate(ub)]
    for d in range(sizes.shape[1]):
        nz = np.flatnonzero(sizes[:, d] > 0)
        if nz.size and int(sizes[nz, d] @ ub[nz]) > cap[d]:
            model.add(sum(int(sizes[j, d]) * xs[j] for j in nz) <= int(cap[d]))
    model.maximize(sum(int(w) * x for w, x in zip(weights, xs, strict=True)))
    found: list[np.ndarray] = []

    class _Collect(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            found.append(np.array([self.value(x) for x in xs], dtype=np.int64))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit, 0.05)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(model, _Collect())
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return found, float(pi[idx] @ ub)
    # Floor-rounded weights under-state each pattern by < 1/scale per copy.
    upper = (solver.best_objective_bound + float(ub.sum())) / scale
    return found, upper


def exact_pricing(
    grp: Grouped, t: int, pi: np.ndarray, time_limit: float
) -> tuple[float, float, list[np.ndarray]]:
    """Most valuable patterns of bin type ``t`` under duals ``pi`` (a knapsack).

    Solved with CP-SAT when OR-Tools is installed (every improving solution met on the
    way is returned), else with HiGHS (``scipy.optimize.milp``).

    Returns
    -------
    tuple
        ``(best value found, proven upper bound on any pattern's value, patterns)``;
        patterns are ``(g,)`` int arrays, feasible in floating point.
    """
    idx = np.flatnonzero((pi > EPS) & (grp.per_bin[:, t] > 0))
    g = len(pi)
    if idx.size == 0:
        return 0.0, 0.0, []
    ub = np.minimum(grp.counts[idx], grp.per_bin[idx, t]).astype(np.int64)
    if ORTOOLS_INSTALLED:
        sols, upper = _cpsat_pricing(grp, t, pi, idx, ub, time_limit)
    else:
        res = milp(
            -pi[idx],
            constraints=LinearConstraint(grp.sizes[idx].T, -np.inf, grp.caps[t]),
            integrality=np.ones(idx.size),
            bounds=Bounds(np.zeros(idx.size), ub.astype(float)),
            options={"time_limit": max(time_limit, 0.05), "presolve": True},
        )
        sols = [] if res.x is None else [np.round(res.x).astype(np.int64)]
        dual = getattr(res, "mip_dual_bound", None)
        upper = -float(dual) if dual is not None and np.isfinite(dual) else float(pi[idx] @ ub)
        if res.status == 0 and sols:
            upper = float(pi[idx] @ sols[0]) * (1 + 1e-9) + 1e-9
    out: list[np.ndarray] = []
    best = 0.0
    for sol in sols:
        a = np.zeros(g, dtype=np.int64)
        a[idx] = sol
        if np.all(a @ grp.sizes <= grp.caps[t]):
            out.append(a)
            best = max(best, float(pi @ a))
    return best, max(upper, best), out


def lagrangian_bound(
    grp: Grouped, pi: np.ndarray, mu: np.ndarray, upper: np.ndarray, incumbent: float
) -> float:
    """Lower bound ``pi q - mu M + sum_t min(0, c_t + mu_t - u_t) U_t``.

    ``upper[t]`` bounds the dual value of any pattern of type ``t``; ``U_t`` bounds the
    number of bins of type ``t`` in a plan no costlier than ``incumbent``.
    """
    lb = float(pi @ grp.counts)
    lim = grp.max_counts < UNLIMITED
    lb -= float(mu[lim] @ grp.max_counts[lim])
    for t in range(len(grp.costs)):
        rc = grp.costs[t] + mu[t] - upper[t]
        if rc >= 0:
            continue
        bound = float(grp.max_counts[t]) if grp.max_counts[t] < UNLIMITED else math.inf
        if grp.costs[t] > 0 and np.isfinite(incumbent):
            bound = min(bound, math.floor(incumbent / grp.costs[t] + 1e-9))
        if not np.isfinite(bound):
            return -math.inf
        lb += rc * bound
    return lb


def column_generation(
    grp: Grouped,
    pool: Pool,
    *,
    incumbent: float,
    unit: float,
    out_of_time: Callable[[], bool],
    remaining: Callable[[], float],
    max_iter: int = 400,
) -> CGResult:
    """Grow ``pool`` until the master LP is optimal, the bound meets the incumbent, or time ends."""
    master = _Master(grp, pool)
    top = int(min(max(10, len(grp.counts) // 2), 200))
    best_bound = -math.inf
    z, x = math.inf, np.zeros(0)
    converged = False
    it = 0
    last_pricing = 0.0
    for it in range(1, max_iter + 1):
        z, x, pi, mu = master.solve()
        if round_bound(best_bound, unit) >= incumbent - 1e-9:
            break
        if it > 1 and remaining() < last_pricing:
            break  # another pricing round would run past the time share
        started = time.perf_counter()
        cols = heuristic_pricing(grp, pi, mu, top)
        last_pricing = time.perf_counter() - started
        if cols:
            for _, t, p in cols:
                pool.add(t, p)
            if not out_of_time():
                continue
        if out_of_time():
            break
        upper = np.zeros(len(grp.costs))
        added = False
        for t in range(len(grp.costs)):
            _, up, pats = exact_pricing(grp, t, pi, min(3.0, max(remaining() / 3, 0.05)))
            upper[t] = up
            for pat in pats:
                if float(pi @ pat) > grp.costs[t] + mu[t] + EPS:
                    added = pool.add(t, pat) or added
        best_bound = max(best_bound, lagrangian_bound(grp, pi, mu, upper, incumbent))
        if not added:
            converged = bool(np.all(upper <= grp.costs + mu + 1e-7))
            if converged:
                best_bound = max(best_bound, z)
            break
        # The LP value can no longer move the rounded bound: stop pricing.
        if unit > 0 and round_bound(best_bound, unit) >= round_bound(z, unit) - 1e-9:
            break
    return CGResult(pool, z, best_bound, converged, it, x)


def integer_master(
    grp: Grouped,
    pool: Pool,
    time_limit: float,
    node_limit: int | None = None,
    hint: np.ndarray | None = None,
) -> tuple[np.ndarray | None, float]:
    """Solve the covering master over ``pool`` as an integer program (HiGHS).

    Parameters
    ----------
    hint : numpy.ndarray, optional
        ``(P,)`` a feasible integer solution to start from (used with ``highspy``).

    Returns
    -------
    tuple
        ``(x, proven lower bound of this restricted master)``; ``x`` is ``None`` when no
        integer solution was found in time.
    """
    g = len(grp.counts)
    a = pool.matrix(g)
    n = a.shape[1]
    if n == 0:
        return None, -math.inf
    c = grp.costs[pool.types]
    limited = np.flatnonzero(grp.max_counts < UNLIMITED)
    lim = (
        sparse.csc_matrix(np.vstack([(np.asarray(pool.types) == t).astype(float) for t in limited]))
        if limited.size
        else None
    )
    if HIGHSPY_INSTALLED:
        return _integer_master_highs(grp, a, c, lim, limited, time_limit, node_limit, hint)
    cons = [LinearConstraint(a, grp.counts.astype(float), np.inf)]
    if lim is not None:
        cons.append(LinearConstraint(lim, -np.inf, grp.max_counts[limited].astype(float)))
    opts: dict[str, object] = {"time_limit": max(time_limit, 0.05), "presolve": True}
    if node_limit is not None:
        opts["node_limit"] = node_limit
    res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(0, np.inf), options=opts)
    dual = getattr(res, "mip_dual_bound", None)
    bound = float(dual) if dual is not None and np.isfinite(dual) else -math.inf
    if res.x is None:
        return None, bound
    return np.round(res.x).astype(np.int64), bound


def _integer_master_highs(
    grp: Grouped,
    a: sparse.csc_matrix,
    c: np.ndarray,
    lim: sparse.csc_matrix | None,
    limited: np.ndarray,
    time_limit: float,
    node_limit: int | None,
    hint: np.ndarray | None,
) -> tuple[np.ndarray | None, float]:
    import highspy

    inf = highspy.kHighsInf
    n = a.shape[1]
    mat = sparse.vstack([a, lim], format="csc") if lim is not None else a.tocsc()
    lower = np.concatenate([grp.counts.astype(float), np.full(limited.size, -inf)])
    upper = np.concatenate([np.full(len(grp.counts), inf), grp.max_counts[limited].astype(float)])
    h = _quiet_highs()
    h.setOptionValue("time_limit", float(max(time_limit, 0.05)))
    if node_limit is not None:
        h.setOptionValue("mip_max_nodes", int(node_limit))
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.addRows(
        lower.size,
        lower,
        upper,
        0,
        np.zeros(0, dtype=np.int32),
        np.zeros(0, dtype=np.int32),
        np.zeros(0),
    )
    h.addCols(
        n,
        c.astype(float),
        np.zeros(n),
        np.full(n, inf),
        mat.nnz,
        mat.indptr[:-1].astype(np.int32),
        mat.indices.astype(np.int32),
        mat.data.astype(float),
    )
    h.changeColsIntegrality(
        n, np.arange(n, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * n)
    )
    if hint is not None:
        nz = np.flatnonzero(hint)
        h.setSolution(int(nz.size), nz.astype(np.int32), hint[nz].astype(float))
    h.run()
    x, bound = _read_mip(h, a, c, grp.counts)
    if (
        x is not None
        and hint is not None
        and float(c @ x) > h.getInfo().objective_function_value + 1e-6
    ):
        # Some HiGHS versions hand back the user's start instead of the better incumbent
        # they report; solve again without the start.
        h.clearSolver()
        spent = float(h.getRunTime())
        if spent >= time_limit * 0.5:
            return x, bound
        h.setOptionValue("time_limit", float(max(time_limit - spent, 0.05)))
        h.run()
        x2, bound2 = _read_mip(h, a, c, grp.counts)
        if x2 is not None and float(c @ x2) < float(c @ x):
            x = x2
        bound = max(bound, bound2)
    return x, bound


def _read_mip(
    h: Any, a: sparse.csc_matrix, c: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray | None, float]:
    info = h.getInfo()
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else -math.inf
    sol = h.getSolution()
    if not sol.value_valid:
        return None, bound
    x = np.round(np.asarray(sol.col_value)).astype(np.int64)
    if np.any(a @ x < counts):
        return None, bound
    return x, bound


def group_problem(
    sizes: np.ndarray,
    counts: np.ndarray,
    capacities: np.ndarray,
    costs: np.ndarray,
    max_counts: np.ndarray,
    per_bin: np.ndarray,
) -> tuple[Grouped, np.ndarray]:
    """Merge item kinds with identical sizes; returns the grouped instance and kind -> group."""
    uniq, inverse = np.unique(sizes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    gcounts = np.bincount(inverse, weights=counts, minlength=uniq.shape[0]).astype(np.int64)
    first = np.zeros(uniq.shape[0], dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    grp = Grouped(
        sizes=uniq,
        counts=gcounts,
        caps=capacities + capacity_slack(capacities),
        costs=costs.astype(float),
        max_counts=max_counts,
        per_bin=per_bin[first],
    )
    return grp, inverse
