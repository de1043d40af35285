"""``solve()``: the deterministic, side-effect-free vector bin packer.

The solve runs a portfolio of strategies behind one interface and keeps the cheapest
plan:

1. :class:`GreedyPortfolio` -- item-centric first/best-fit decreasing over several size
   orderings and bin-type rankings, and bin-centric dot-product / L2 fills, each followed
   by the bin-emptying local search and re-typing. Fast on large inputs.
2. :class:`BinElimination` -- a tabu search that cuts one bin at a time from the
   incumbent (three bins emptied into a pool, copies re-inserted with ejections until the
   pool fits two bins); it closes most of the gap on inputs of hundreds of copies.
3. :class:`ColumnGeneration` -- the Gilmore-Gomory LP bound by column generation, then
   the integer master over the generated patterns (price-and-branch). It proves the
   lower bound that the plan reports and, on small and medium inputs, closes most of the
   heuristic gap.
4. :class:`ExactPatterns` -- on tiny inputs, every feasible pattern is enumerated and
   the integer master is solved to optimality.

Given the same inputs, the plan is the same unless a time limit cuts a phase short
(iteration and node limits, not the clock, bound the work in normal runs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, Protocol

import numpy as np
from scipy.optimize import linprog

from features.exceptions import ConfigError
from optimizer.packing import colgen
from optimizer.packing.heuristics import (
    Context,
    Solution,
    bin_centric,
    eliminate_bins,
    empty_bins,
    item_centric,
    make_context,
    orderings,
    perturbed_runs,
    retype,
    solution_cost,
)
from optimizer.packing.model import (
    UNLIMITED,
    BinType,
    Item,
    PackedBin,
    PackingPlan,
    PlanStatus,
    Problem,
    capacity_slack,
    make_problem,
)

Mode = Literal["auto", "heuristic", "exact"]

#: Above this many item copies only the cheap kind-level greedy runs.
LARGE_COPIES = 4000
#: Phase ends, as fractions of the time limit from the start of the solve: the first
#: bin-cutting search, the column generation LP, the integer master, the last search.
ELIMINATE_SHARE = 0.45
LP_SHARE = 0.65
MASTER_SHARE = 0.8
FINAL_SHARE = 0.95
#: Column generation runs (in ``auto`` mode) up to this many distinct item sizes; above
#: it the LP does not converge in seconds and the search gets the time instead.
COLGEN_MAX_GROUPS = 300
#: Up to this many copies column generation (which also proves optimality) runs first.
COLGEN_FIRST_COPIES = 100


@dataclass
class Budget:
    """Wall-clock budget of one solve."""

    start: float
    limit: float

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return max(self.limit - self.elapsed(), 0.0)

    def over(self, share: float = 1.0) -> bool:
        return self.elapsed() >= self.limit * share


@dataclass
class Candidate:
    """A complete or partial solution with its cost and the strategy that made it."""

    solution: Solution
    unplaced: list[int]
    cost: float
    method: str


class PackingStrategy(Protocol):
    """One way of producing a plan; ``run`` must not mutate its inputs."""

    name: str

    def run(self, state: SolveState) -> None:
        """Improve ``state.best`` and/or ``state.lower_bound``."""


@dataclass
class SolveState:
    """What strategies share during one solve."""

    prob: Problem
    ctx: Context
    budget: Budget
    unit: float
    lower_bound: float
    best: Candidate | None = None
    proven: bool = False
    stats: dict[str, float | int | str] | None = None
    #: Bins of every complete heuristic solution seen; column generation reuses them.
    seen_bins: list[tuple[int, list[int]]] | None = None

    def offer(self, cand: Candidate) -> None:
        """Keep ``cand`` if it places more copies, or as many for less cost.

        Candidates that open more bins of a type than its ``max_count`` are ignored.
        """
        if cand.solution:
            used = np.bincount([t for t, _ in cand.solution], minlength=len(self.prob.bin_names))
            if np.any(used > self.prob.max_counts):
                return
        if not cand.unplaced and self.seen_bins is not None and len(self.seen_bins) < 50_000:
            self.seen_bins.extend(cand.solution)
        if self.best is None:
            self.best = cand
            return
        key_new = (len(cand.unplaced), cand.cost)
        key_old = (len(self.best.unplaced), self.best.cost)
        if key_new[0] < key_old[0] or (key_new[0] == key_old[0] and key_new[1] < key_old[1] - 1e-9):
            self.best = cand

    def done(self) -> bool:
        """Whether the incumbent meets the lower bound."""
        return (
            self.best is not None
            and not self.best.unplaced
            and self.best.cost <= self.lower_bound + 1e-9 * max(1.0, abs(self.lower_bound))
        )


def simple_lower_bound(prob: Problem) -> float:
    """Capacity bound: the cheapest fractional fleet covering the total size per dimension.

    With a single bin type this is ``cost * max_d ceil(sum_i q_i s_id / C_d)``.
    """
    total = prob.counts @ prob.sizes
    if not np.any(total > 0):
        return 0.0
    res = linprog(
        prob.costs,
        A_ub=-prob.capacities.T,
        b_ub=-total,
        bounds=[(0, None if m >= UNLIMITED else float(m)) for m in prob.max_counts],
        method="highs",
    )
    if res.status != 0:
        return 0.0
    value = float(res.fun)
    if len(prob.bin_names) == 1:
        return float(prob.costs[0]) * math.ceil(value / max(prob.costs[0], 1e-300) - 1e-7)
    return value


def clique_lower_bound(prob: Problem, max_copies: int = 3000) -> float:
    """Conflict bound: copies that pairwise share no bin each need their own bin.

    Two copies conflict when, for every bin type, their summed size exceeds the
    capacity in some dimension. A greedy clique of the conflict graph (copies taken by
    decreasing degree) costs at least the cheapest type that holds each member.
    """
    kinds = np.repeat(np.arange(prob.n_types), prob.counts)
    n = kinds.size
    if n == 0 or n > max_copies:
        return 0.0
    caps = prob.capacities + capacity_slack(prob.capacities)
    s = prob.sizes
    # Conflicts between kinds (a kind with two copies may conflict with itself).
    together = np.zeros((prob.n_types, prob.n_types), dtype=bool)
    for t in range(caps.shape[0]):
        together |= np.all(s[:, None, :] + s[None, :, :] <= caps[t], axis=2)
    conflict = ~together[np.ix_(kinds, kinds)]
    np.fill_diagonal(conflict, False)
    degree = conflict.sum(axis=1)
    order = np.lexsort((np.arange(n), -degree))
    clique: list[int] = []
    member = np.ones(n, dtype=bool)
    for i in order:
        if member[i]:
            clique.append(int(i))
            member &= conflict[i]
            member[i] = False
    cheapest = np.where(prob.fits(), prob.costs[None, :], np.inf).min(axis=1)
    return float(cheapest[kinds[clique]].sum())


class GreedyPortfolio:
    """Constructive heuristics over several orderings and bin-type rankings.

    Parameters
    ----------
    max_runs : int
        Cap on constructive runs (each followed by local search).
    """

    name = "greedy"

    def __init__(self, max_runs: int = 40) -> None:
        self.max_runs = max_runs

    def _type_orders(self, state: SolveState) -> list[np.ndarray]:
        prob, ctx = state.prob, state.ctx
        t = len(prob.bin_names)
        capn = prob.capacities / ctx.scale
        demand = ctx.xn.sum(axis=0)
        orders: list[np.ndarray] = []
        for w in (demand, np.ones_like(demand)):
            w = w / w.sum() if w.sum() > 0 else np.full(capn.shape[1], 1.0 / capn.shape[1])
            useful = capn @ w
            eff = np.where(useful > 0, prob.costs / np.maximum(useful, 1e-300), np.inf)
            orders.append(np.lexsort((np.arange(t), eff)))
        # Single-type fleets: each bin type that can host every copy, cheapest first.
        fits_all = np.asarray(prob.fits()[prob.counts > 0].all(axis=0), dtype=bool)
        for j in np.lexsort((np.arange(t), prob.costs)):
            if fits_all[j] and prob.max_counts[j] >= UNLIMITED:
                rest = [int(k) for k in orders[0] if k != j]
                orders.append(np.array([int(j), *rest]))
        uniq: list[np.ndarray] = []
        for o in orders:
            if not any(np.array_equal(o, u) for u in uniq):
                uniq.append(o)
        return uniq[:6]

    def run(self, state: SolveState) -> None:
        prob, ctx = state.prob, state.ctx
        type_orders = self._type_orders(state)
        orders = orderings(ctx)
        rank = np.empty(ctx.x.shape[0], dtype=np.int64)
        rank[orders["sum"]] = np.arange(ctx.x.shape[0])
        runs: list[tuple[str, Callable[[], tuple[Solution, list[int]]]]] = []
        for ti, types in enumerate(type_orders):
            for oname, order in orders.items():
                for rule in ("ff", "bf"):
                    runs.append(
                        (f"{rule}d-{oname}-t{ti}", partial(item_centric, ctx, order, rule, types))
                    )
        bc_types = type_orders[0][: min(len(prob.bin_names), 8)]
        for rule in ("dot", "l2", "size"):
            runs.insert(
                min(len(runs), 2 + len(runs) // 4),
                (f"bc-{rule}", partial(bin_centric, ctx, rule, bc_types, rank)),
            )
        stats = state.stats if state.stats is not None else {}
        done_runs = 0
        for name, fn in runs[: self.max_runs]:
            if done_runs and state.budget.over(0.15):
                break
            sol, unplaced = fn()
            done_runs += 1
            if not unplaced:
                sol = empty_bins(prob, sol, lambda: state.budget.over(0.3))
                sol = retype(prob, sol)
            state.offer(Candidate(sol, unplaced, solution_cost(prob, sol), name))
            if state.done():
                break
        stats["greedy_runs"] = done_runs


class RandomRestarts:
    """Seeded random restarts of first/best-fit decreasing with perturbed size weights.

    Parameters
    ----------
    share : float
        Fraction of the time limit (from the solve's start) this strategy may use.
    max_runs : int
        Cap on restarts (keeps the work, and so the plan, independent of the clock on
        fast machines).
    seed : int
        Seed of the random weights.
    """

    name = "random-restarts"

    def __init__(self, share: float = 0.3, max_runs: int = 400, seed: int = 0) -> None:
        self.share = share
        self.max_runs = max_runs
        self.seed = seed

    def run(self, state: SolveState) -> None:
        prob = state.prob
        types = GreedyPortfolio()._type_orders(state)[0]
        draw = perturbed_runs(state.ctx, types, self.seed)
        stats = state.stats if state.stats is not None else {}
        runs = 0
        unit = float(prob.costs.max())
        while runs < self.max_runs and not state.budget.over(self.share) and not state.done():
            sol, unplaced, name = draw()
            runs += 1
            if unplaced:
                continue
            cost = solution_cost(prob, sol)
            best = state.best.cost if state.best is not None else np.inf
            if cost <= best + unit:
                sol = retype(prob, empty_bins(prob, sol, lambda: state.budget.over(self.share)))
                cost = solution_cost(prob, sol)
            state.offer(Candidate(sol, [], cost, name))
        stats["random_runs"] = int(stats.get("random_runs", 0)) + runs


class BinElimination:
    """Tabu search that cuts bins one at a time from the incumbent (see ``eliminate_bins``).

    Parameters
    ----------
    share : float
        Fraction of the time limit (from the solve's start) this strategy may run to.
    seed : int
        Seed of the search's tie breaks and bin choices.
    max_moves : int
        Steps per attempt at removing one bin.
    max_attempts : int
        Failed attempts in a row before giving up (a work cap, so that on small inputs
        the plan does not depend on the clock).
    """

    name = "eliminate"

    def __init__(
        self, share: float = 0.5, seed: int = 0, max_moves: int = 3000, max_attempts: int = 40
    ) -> None:
        self.share = share
        self.seed = seed
        self.max_moves = max_moves
        self.max_attempts = max_attempts

    def run(self, state: SolveState) -> None:
        best = state.best
        if best is None or best.unplaced or len(best.solution) < 2:
            return
        stats = state.stats if state.stats is not None else {}
        counters: dict[str, int] = {}
        sol = eliminate_bins(
            state.prob,
            best.solution,
            lambda: state.budget.over(self.share),
            seed=self.seed,
            max_moves=self.max_moves,
            max_attempts=self.max_attempts,
            target_cost=state.lower_bound,
            stats=counters,
        )
        for key, value in counters.items():
            stats[key] = int(stats.get(key, 0)) + value
        sol = retype(state.prob, sol)
        state.offer(Candidate(sol, [], solution_cost(state.prob, sol), self.name))


class KindGreedy:
    """Kind-level greedy for very large inputs: fill a bin, then repeat its pattern.

    Works on item kinds with counts, so its cost grows with the number of kinds and
    distinct patterns, not with the number of copies.
    """

    name = "pattern-greedy"

    def run(self, state: SolveState) -> None:
        prob = state.prob
        caps = prob.capacities + capacity_slack(prob.capacities)
        scale = prob.capacities.max(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        sn = prob.sizes / scale
        left = prob.counts.copy()
        used = np.zeros(len(prob.bin_names), dtype=np.int64)
        order = np.lexsort((np.arange(prob.n_types), -sn.sum(axis=1)))
        types = GreedyPortfolio()._type_orders(state)[0]
        sol: Solution = []
        unplaced: list[int] = []
        while left.any():
            first = int(order[np.argmax(left[order] > 0)])
            t = next(
                (
                    int(j)
                    for j in types
                    if used[j] < prob.max_counts[j] and np.all(prob.sizes[first] <= caps[j])
                ),
                -1,
            )
            if t < 0:
                unplaced += [first] * int(left[first])
                left[first] = 0
                continue
            resid = caps[t].copy()
            pattern = np.zeros(prob.n_types, dtype=np.int64)
            for i in order:
                if left[i] - pattern[i] <= 0:
                    continue
                s = prob.sizes[i]
                with np.errstate(divide="ignore", invalid="ignore"):
                    k = np.where(s > 0, np.floor(resid / np.where(s > 0, s, 1)), np.inf).min()
                k = int(min(k if np.isfinite(k) else left[i], left[i]))
                if k > 0:
                    pattern[i] += k
                    resid -= k * s
            nz = pattern > 0
            reps = int((left[nz] // pattern[nz]).min())
            reps = max(1, min(reps, int(prob.max_counts[t] - used[t])))
            for _ in range(reps):
                take = np.minimum(pattern, left)
                if not take.any():
                    break
                sol.append((t, [int(i) for i in np.repeat(np.arange(prob.n_types), take)]))
                left -= take
                used[t] += 1
        sol = retype(prob, sol)
        state.offer(Candidate(sol, unplaced, solution_cost(prob, sol), self.name))


def _round_down(
    prob: Problem, inverse: np.ndarray, pool: colgen.Pool, lp_x: np.ndarray, offset: float
) -> tuple[Solution, np.ndarray]:
    """Bins from ``floor(lp_x + offset)`` of each column, and the copies left per kind."""
    x = np.zeros(len(pool), dtype=np.int64)
    x[: lp_x.size] = np.floor(lp_x + offset + 1e-9).astype(np.int64)
    sol = _solution_from_columns(prob, inverse, pool, x)
    left = prob.counts.copy()
    for _, items in sol:
        np.subtract.at(left, items, 1)
    return sol, left


def _solution_from_columns(
    prob: Problem,
    inverse: np.ndarray,
    pool: colgen.Pool,
    x: np.ndarray,
) -> Solution:
    """Turn integer master values over group patterns into bins of item kinds."""
    g = int(inverse.max()) + 1 if inverse.size else 0
    queues: list[list[int]] = [[] for _ in range(g)]
    for kind in range(prob.n_types):
        queues[inverse[kind]].extend([kind] * int(prob.counts[kind]))
    # Over-covered copies are dropped from the most expensive bins first.
    order = sorted(range(len(pool)), key=lambda p: (prob.costs[pool.types[p]], p))
    sol: Solution = []
    for p in order:
        for _ in range(int(x[p])):
            items: list[int] = []
            for grp_idx in np.flatnonzero(pool.patterns[p]):
                for _ in range(int(pool.patterns[p][grp_idx])):
                    if queues[grp_idx]:
                        items.append(queues[grp_idx].pop())
            if items:
                sol.append((pool.types[p], items))
    return sol


def _sub_solve(prob: Problem, budget: Budget, share: float) -> Candidate | None:
    """Greedy portfolio plus a few restarts on a (residual) sub-problem."""
    sub_state = SolveState(
        prob=prob,
        ctx=make_context(prob),
        budget=budget,
        unit=0.0,
        lower_bound=0.0,
        stats={},
        seen_bins=None,
    )
    GreedyPortfolio(max_runs=12).run(sub_state)
    RandomRestarts(share=share, max_runs=30, seed=2).run(sub_state)
    return sub_state.best


def _columns_of(
    prob: Problem, inverse: np.ndarray, sol: Solution, n_groups: int
) -> list[tuple[int, np.ndarray]]:
    out = []
    for t, items in sol:
        a = np.bincount(inverse[items], minlength=n_groups).astype(np.int64)
        out.append((t, a))
    return out


class ColumnGeneration:
    """LP bound by column generation, then the integer master (price-and-branch).

    Parameters
    ----------
    max_iter : int
        Cap on master LP solves.
    node_limit : int
        Branch-and-bound node cap of the integer master (keeps runs deterministic).
    """

    name = "colgen"

    def __init__(
        self,
        max_iter: int = 300,
        node_limit: int = 20_000,
        lp_share: float = 0.6,
        master_share: float = 0.93,
    ) -> None:
        self.max_iter = max_iter
        self.node_limit = node_limit
        self.lp_share = lp_share
        self.master_share = master_share

    def _residual_rounding(
        self, state: SolveState, inverse: np.ndarray, pool: colgen.Pool, lp_x: np.ndarray
    ) -> None:
        """Keep the LP's whole bins, pack what is left with the greedy heuristics."""
        prob = state.prob
        share = min(state.budget.elapsed() / state.budget.limit + 0.1, self.master_share)
        for offset in (0.0, 0.3, 0.5):
            fixed, left = _round_down(prob, inverse, pool, lp_x, offset)
            if not left.any():
                cand = Candidate(fixed, [], solution_cost(prob, fixed), "colgen-round")
                state.offer(cand)
                continue
            rest = _sub_solve(_residual(prob, left), state.budget, share)
            if rest is None or rest.unplaced:
                continue
            sol = fixed + rest.solution
            sol = retype(prob, empty_bins(prob, sol, lambda: state.budget.over(share)))
            state.offer(Candidate(sol, [], solution_cost(prob, sol), "colgen-round"))
            if state.done() or state.budget.over(share):
                return

    def run(self, state: SolveState) -> None:
        prob = state.prob
        grp, inverse = colgen.group_problem(
            prob.sizes,
            prob.counts,
            prob.capacities,
            prob.costs,
            prob.max_counts,
            prob.copies_per_bin(),
        )
        pool = colgen.Pool()
        if state.best is not None:
            for t, a in _columns_of(prob, inverse, state.best.solution, len(grp.counts)):
                pool.add(t, a)

        incumbent = (
            state.best.cost if state.best is not None and not state.best.unplaced else math.inf
        )
        budget = state.budget
        res = colgen.column_generation(
            grp,
            pool,
            incumbent=incumbent,
            unit=state.unit,
            out_of_time=lambda: budget.over(self.lp_share),
            remaining=lambda: budget.limit * self.lp_share - budget.elapsed(),
            max_iter=self.max_iter,
        )
        stats = state.stats if state.stats is not None else {}
        stats["cg_iterations"] = res.iterations
        stats["cg_columns"] = len(pool)
        stats["cg_lp"] = res.lp_value
        stats["cg_converged"] = int(res.converged)
        bound = colgen.round_bound(res.bound, state.unit)
        if np.isfinite(bound):
            state.lower_bound = max(state.lower_bound, bound)
        if state.done() or budget.over(self.master_share):
            return
        if res.lp_x.size:
            self._residual_rounding(state, inverse, pool, res.lp_x)
            if state.done():
                return
        # Bins of the other heuristic plans: the integer master may recombine them.
        for t, a in _columns_of(prob, inverse, state.seen_bins or [], len(grp.counts)):
            pool.add(t, a)
        hint = np.zeros(len(pool), dtype=np.int64)
        if state.best is not None and not state.best.unplaced:
            for t, a in _columns_of(prob, inverse, state.best.solution, len(grp.counts)):
                pool.add(t, a)
                if len(hint) < len(pool):
                    hint = np.concatenate([hint, np.zeros(len(pool) - len(hint), dtype=np.int64)])
                hint[pool.keys[colgen.Pool.key(t, a)]] += 1
        x, _ = colgen.integer_master(
            grp,
            pool,
            time_limit=max(budget.limit * self.master_share - budget.elapsed(), 0.05),
            node_limit=self.node_limit,
            hint=hint if hint.any() else None,
        )
        if x is None:
            return
        sol = _solution_from_columns(prob, inverse, pool, x)
        sol = retype(prob, empty_bins(prob, sol, lambda: budget.over(0.97)))
        if sum(len(items) for _, items in sol) == prob.n_items:
            state.offer(Candidate(sol, [], solution_cost(prob, sol), self.name))


def _residual(prob: Problem, left: np.ndarray) -> Problem:
    return Problem(
        item_names=prob.item_names,
        sizes=prob.sizes,
        counts=left,
        bin_names=prob.bin_names,
        capacities=prob.capacities,
        costs=prob.costs,
        max_counts=prob.max_counts,
        dimensions=prob.dimensions,
    )


def _walk(grp: colgen.Grouped, t: int, ub: np.ndarray, out: list[np.ndarray], limit: int) -> bool:
    """Append every non-empty feasible pattern of type ``t`` to ``out``.

    Returns ``False`` (stopping early) once more than ``limit`` patterns exist.
    """
    g = len(grp.counts)
    cur = np.zeros(g, dtype=np.int64)
    cap = grp.caps[t]

    def rec(i: int, resid: np.ndarray) -> bool:
        if i == g:
            if cur.any():
                out.append(cur.copy())
            return len(out) <= limit
        k = 0
        r = resid
        while True:
            cur[i] = k
            if not rec(i + 1, r):
                cur[i] = 0
                return False
            k += 1
            r = r - grp.sizes[i]
            if k > ub[i] or np.any(r < 0):
                break
        cur[i] = 0
        return True

    return rec(0, cap.copy())


class ExactPatterns:
    """Enumerate every feasible pattern and solve the integer master to optimality.

    Parameters
    ----------
    max_patterns : int
        Give up (leave the plan to other strategies) above this many patterns.
    max_groups : int
        Skip instances with more distinct item sizes than this.
    """

    name = "exact"

    def __init__(self, max_patterns: int = 20_000, max_groups: int = 200) -> None:
        self.max_patterns = max_patterns
        self.max_groups = max_groups

    def run(self, state: SolveState) -> None:
        prob = state.prob
        grp, inverse = colgen.group_problem(
            prob.sizes,
            prob.counts,
            prob.capacities,
            prob.costs,
            prob.max_counts,
            prob.copies_per_bin(),
        )
        if len(grp.counts) > self.max_groups:
            return
        pool = colgen.Pool()
        for t in range(len(grp.costs)):
            pats: list[np.ndarray] = []
            if not _walk(
                grp, t, np.minimum(grp.counts, grp.per_bin[:, t]), pats, self.max_patterns
            ):
                return
            for p in pats:
                pool.add(t, p)
            if len(pool) > self.max_patterns:
                return
        x, bound = colgen.integer_master(grp, pool, time_limit=state.budget.remaining())
        stats = state.stats if state.stats is not None else {}
        stats["exact_patterns"] = len(pool)
        if x is None:
            return
        sol = _solution_from_columns(prob, inverse, pool, x)
        cost = solution_cost(prob, sol)
        state.offer(Candidate(sol, [], cost, self.name))
        if np.isfinite(bound):
            state.lower_bound = max(state.lower_bound, colgen.round_bound(bound, state.unit))
        if bound >= cost - 1e-7 * max(1.0, cost):
            state.lower_bound = max(state.lower_bound, cost)
            state.proven = True


def _plan(state: SolveState, seconds: float) -> PackingPlan:
    prob = state.prob
    best = state.best
    assert best is not None
    bins: list[PackedBin] = []
    # Canonical order: by bin type, then by content, so equal plans print equally.
    keyed = sorted(
        ((t, sorted(items)) for t, items in best.solution if items),
        key=lambda b: (b[0], b[1]),
    )
    for bid, (t, items) in enumerate(keyed):
        kinds, counts = np.unique(np.asarray(items, dtype=np.int64), return_counts=True)
        load = prob.sizes[items].sum(axis=0)
        bins.append(
            PackedBin(
                bin_id=bid,
                bin_type=prob.bin_names[t],
                cost=float(prob.costs[t]),
                items=tuple(
                    (prob.item_names[k], int(c)) for k, c in zip(kinds, counts, strict=True)
                ),
                load=tuple(float(v) for v in load),
            )
        )
    cost = float(sum(b.cost for b in bins))
    unplaced_kinds, unplaced_counts = np.unique(
        np.asarray(best.unplaced, dtype=np.int64), return_counts=True
    )
    unplaced = tuple(
        (prob.item_names[k], int(c)) for k, c in zip(unplaced_kinds, unplaced_counts, strict=True)
    )
    lb = min(state.lower_bound, cost) if not unplaced else state.lower_bound
    status: PlanStatus
    if unplaced:
        status = "infeasible"
    elif state.proven or cost <= lb + 1e-9 * max(1.0, abs(lb)):
        status = "optimal"
        lb = cost
    else:
        status = "feasible"
    gap = 0.0 if cost <= 0 else max(cost - lb, 0.0) / cost
    return PackingPlan(
        bins=tuple(bins),
        total_cost=cost,
        lower_bound=float(lb),
        gap=float(gap),
        status=status,
        method=best.method,
        dimensions=prob.dimensions,
        unplaced=unplaced,
        seconds=seconds,
        stats=dict(state.stats or {}),
    )


def solve(
    items: Sequence[Item],
    bins: Sequence[BinType],
    *,
    time_limit: float = 10.0,
    mode: Mode = "auto",
    dimensions: Sequence[str] | None = None,
) -> PackingPlan:
    """Pack item copies into the cheapest set of bins.

    Parameters
    ----------
    items : sequence of Item
        Item kinds with sizes (one value per dimension) and counts.
    bins : sequence of BinType
        Bin types with capacities, costs and optional ``max_count``.
    time_limit : float
        Wall-clock cap in seconds (> 0). Phases stop early when the plan is proven
        optimal.
    mode : {"auto", "heuristic", "exact"}
        ``heuristic`` runs the greedy portfolio and the bin-cutting search; ``auto`` adds
        column generation (lower bound and price-and-branch) up to 300 distinct sizes;
        ``exact`` also enumerates every pattern on small inputs to prove optimality.
    dimensions : sequence of str, optional
        Names of the resource dimensions (default ``d0, d1, ...``).

    Returns
    -------
    PackingPlan
        Bins, assignment, total cost, lower bound, gap and status.

    Raises
    ------
    ConfigError
        On invalid parameters or an item that fits no bin type.
    """
    if not (isinstance(time_limit, int | float) and math.isfinite(time_limit) and time_limit > 0):
        raise ConfigError(f"parameter time_limit must be a positive number, got {time_limit!r}")
    if mode not in ("auto", "heuristic", "exact"):
        raise ConfigError(f"parameter mode must be auto, heuristic or exact, got {mode!r}")
    t0 = time.perf_counter()
    prob = make_problem(items, bins, dimensions)
    keep = prob.counts > 0
    sub = Problem(
        item_names=tuple(n for n, k in zip(prob.item_names, keep, strict=True) if k),
        sizes=prob.sizes[keep],
        counts=prob.counts[keep],
        bin_names=prob.bin_names,
        capacities=prob.capacities,
        costs=prob.costs,
        max_counts=prob.max_counts,
        dimensions=prob.dimensions,
    )
    budget = Budget(t0, float(time_limit))
    ctx = make_context(sub)
    state = SolveState(
        prob=sub,
        ctx=ctx,
        budget=budget,
        unit=colgen.cost_unit(sub.costs),
        lower_bound=max(simple_lower_bound(sub), clique_lower_bound(sub)),
        stats={},
        seen_bins=[],
    )
    if sub.n_items == 0:
        state.best = Candidate([], [], 0.0, "empty")
        return _plan(state, time.perf_counter() - t0)
    strategies: list[PackingStrategy] = []
    if sub.n_items > LARGE_COPIES:
        strategies.append(KindGreedy())
    else:
        strategies += [GreedyPortfolio(), RandomRestarts(share=0.1, max_runs=60)]
        if sub.n_items > COLGEN_FIRST_COPIES or mode == "heuristic":
            strategies.append(BinElimination(share=ELIMINATE_SHARE))
    if mode != "heuristic":
        if mode == "exact":
            strategies.append(ExactPatterns())
        n_groups = np.unique(sub.sizes, axis=0).shape[0]
        if mode == "exact" or n_groups <= COLGEN_MAX_GROUPS:
            strategies.append(ColumnGeneration(lp_share=LP_SHARE, master_share=MASTER_SHARE))
    if sub.n_items <= LARGE_COPIES:
        # Whatever time is left after the bound and the master goes to the bin-cutting
        # search again, from the (possibly better) incumbent and with a fresh seed.
        strategies.append(BinElimination(share=FINAL_SHARE, seed=1))
    for strategy in strategies:
        if state.done() or state.proven:
            break
        if state.best is not None and budget.over(FINAL_SHARE):
            break
        strategy.run(state)
    return _plan(state, time.perf_counter() - t0)
