"""Fast constructive heuristics and a bin-emptying local search.

A solution is a list of bins, each a ``(bin type index, item kind indices)`` pair, one
index per copy. Every heuristic here is deterministic: ties break on the lowest index.

Item-centric rules follow first-fit / best-fit decreasing over several size orderings;
bin-centric rules fill one bin at a time with the item that best matches the residual
capacity (dot product or L2 norm, Panigrahy et al., 2011). Bin types are chosen by cost
per unit of packed size, then every bin is re-typed to the cheapest type that still holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optimizer.packing.model import Problem, capacity_slack

#: ``(bin type index, item kind index per copy)``.
Bin = tuple[int, list[int]]
Solution = list[Bin]


@dataclass(frozen=True)
class Context:
    """Arrays shared by the heuristics of one solve.

    Attributes
    ----------
    prob : Problem
        The instance.
    kinds : numpy.ndarray
        ``(n,)`` item kind of each copy.
    x : numpy.ndarray
        ``(n, d)`` size of each copy.
    xn : numpy.ndarray
        ``(n, d)`` sizes divided by the largest capacity of each dimension.
    caps : numpy.ndarray
        ``(t, d)`` capacities plus the float slack.
    scale : numpy.ndarray
        ``(d,)`` normalising capacity per dimension (1 where every capacity is 0).
    value : numpy.ndarray
        ``(n,)`` cost estimate of each copy: the cheapest fractional share of a bin.
    """

    prob: Problem
    kinds: np.ndarray
    x: np.ndarray
    xn: np.ndarray
    caps: np.ndarray
    scale: np.ndarray
    value: np.ndarray


def make_context(prob: Problem) -> Context:
    """Expand item kinds into copies and precompute normalised sizes."""
    kinds = np.repeat(np.arange(prob.n_types), prob.counts)
    x = prob.sizes[kinds]
    scale = prob.capacities.max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    xn = x / scale
    caps = prob.capacities + capacity_slack(prob.capacities)
    # Cheapest fractional share of a bin for each kind: cost_t * max_d(size / cap_t).
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(
            prob.sizes[:, None, :] > 0,
            prob.sizes[:, None, :] / prob.capacities[None, :, :],
            0.0,
        ).max(axis=2)
    share = np.where(prob.fits(), frac * prob.costs[None, :], np.inf).min(axis=1)
    share = np.where(np.isfinite(share), share, 0.0)
    return Context(prob, kinds, x, xn, caps, scale, share[kinds] if kinds.size else share[:0])


def solution_cost(prob: Problem, sol: Solution) -> float:
    """Total cost of a solution."""
    return float(sum(prob.costs[t] for t, _ in sol))


def orderings(ctx: Context) -> dict[str, np.ndarray]:
    """Item orders (copy indices, largest first) by several size measures.

    Ties break on the copy index, so each order is deterministic.
    """
    xn = ctx.xn
    n = xn.shape[0]
    if n == 0:
        return {"sum": np.arange(0)}
    pressure = xn.sum(axis=0)
    pressure = pressure / pressure.sum() if pressure.sum() > 0 else np.ones_like(pressure)
    keys = {
        "sum": xn.sum(axis=1),
        "max": xn.max(axis=1) + 1e-6 * xn.sum(axis=1),
        "l2": np.sqrt((xn**2).sum(axis=1)),
        "pressure": xn @ pressure,
        "value": ctx.value + 1e-9 * xn.sum(axis=1),
    }
    idx = np.arange(n)
    return {name: np.lexsort((idx, -key)) for name, key in keys.items()}


def _type_rank(ctx: Context) -> np.ndarray:
    """Bin types from most to least cost-efficient (cost per unit of normalised capacity)."""
    prob = ctx.prob
    capn = prob.capacities / ctx.scale
    # Weight capacity by how much of each dimension the items ask for.
    demand = ctx.xn.sum(axis=0) if ctx.xn.size else np.ones(capn.shape[1])
    w = demand / demand.sum() if demand.sum() > 0 else np.full(capn.shape[1], 1 / capn.shape[1])
    useful = capn @ w
    eff = np.where(useful > 0, prob.costs / np.maximum(useful, 1e-300), np.inf)
    return np.lexsort((np.arange(len(eff)), eff))


def item_centric(
    ctx: Context,
    order: np.ndarray,
    rule: str,
    types: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[Solution, list[int]]:
    """First-fit (``rule="ff"``) or best-fit (``"bf"``) decreasing over ``order``.

    A new bin takes the first type in ``types`` that holds the item and still has
    bins left. Best-fit scores the slack left with per-dimension ``weights`` (default
    equal weights on normalised sizes). Returns the solution and the copies that could
    not be placed.
    """
    prob = ctx.prob
    n, d = ctx.x.shape
    loads = np.zeros((max(n, 1), d))
    caps = np.zeros((max(n, 1), d))
    btype: list[int] = []
    content: list[list[int]] = []
    used = np.zeros(len(prob.bin_names), dtype=np.int64)
    unplaced: list[int] = []
    w = ctx.scale**-1 if weights is None else weights / ctx.scale
    m = 0
    for i in order:
        xi = ctx.x[i]
        j = -1
        if m:
            fit = np.all(loads[:m] + xi <= caps[:m], axis=1)
            if fit.any():
                if rule == "ff":
                    j = int(np.argmax(fit))
                else:
                    slack = ((caps[:m] - loads[:m] - xi) * w).sum(axis=1)
                    slack[~fit] = np.inf
                    j = int(np.argmin(slack))
        if j < 0:
            for t in types:
                if used[t] < prob.max_counts[t] and np.all(xi <= ctx.caps[t]):
                    j = m
                    caps[m] = ctx.caps[t]
                    btype.append(int(t))
                    content.append([])
                    used[t] += 1
                    m += 1
                    break
        if j < 0:
            unplaced.append(int(ctx.kinds[i]))
            continue
        loads[j] += xi
        content[j].append(int(ctx.kinds[i]))
    return list(zip(btype, content, strict=True)), unplaced


def perturbed_runs(
    ctx: Context, types: np.ndarray, seed: int
) -> Callable[[], tuple[Solution, list[int], str]]:
    """A generator of randomised item-centric runs (seeded, so repeatable).

    Each call draws dimension weights from a flat Dirichlet and multiplies every item's
    weighted size by a factor in [0.85, 1.15], then runs first- or best-fit decreasing.
    """
    rng = np.random.default_rng(seed)
    n, d = ctx.xn.shape
    idx = np.arange(n)
    counter = [0]

    def run() -> tuple[Solution, list[int], str]:
        counter[0] += 1
        w = rng.dirichlet(np.ones(d)) * d
        noise = rng.uniform(0.85, 1.15, size=n)
        key = (ctx.xn @ w) * noise
        order = np.lexsort((idx, -key))
        rule = "bf" if counter[0] % 2 else "ff"
        sol, unplaced = item_centric(ctx, order, rule, types, weights=w)
        return sol, unplaced, f"{rule}d-random{counter[0]}"

    return run


def _pick_dot(cand: np.ndarray, xn: np.ndarray, resid_n: np.ndarray) -> int:
    score = xn[cand] @ resid_n
    return int(cand[np.argmax(score)])


def _pick_l2(cand: np.ndarray, xn: np.ndarray, resid_n: np.ndarray) -> int:
    left = resid_n[None, :] - xn[cand]
    score = (left**2).sum(axis=1)
    return int(cand[np.argmin(score)])


def _fill(
    ctx: Context,
    t: int,
    remaining: np.ndarray,
    rule: str,
    rank: np.ndarray,
) -> list[int]:
    """Fill one empty bin of type ``t`` from the remaining copies; returns copy indices."""
    resid = ctx.caps[t].copy()
    resid_n = resid / ctx.scale
    picked: list[int] = []
    avail = remaining.copy()
    while True:
        cand = np.flatnonzero(avail & np.all(ctx.x <= resid, axis=1))
        if cand.size == 0:
            return picked
        if rule == "size":
            i = int(cand[np.argmin(rank[cand])])
        elif rule == "dot":
            i = _pick_dot(cand, ctx.xn, resid_n)
        else:
            i = _pick_l2(cand, ctx.xn, resid_n)
        picked.append(i)
        avail[i] = False
        resid = resid - ctx.x[i]
        resid_n = resid / ctx.scale


def bin_centric(
    ctx: Context, rule: str, types: np.ndarray, rank: np.ndarray
) -> tuple[Solution, list[int]]:
    """Open one bin at a time and fill it before opening the next.

    With several candidate types, each is filled tentatively and the type with the
    lowest cost per unit of packed value wins. Returns the solution and the copies left
    unplaced (only when ``max_count`` limits run out).
    """
    prob = ctx.prob
    n = ctx.x.shape[0]
    remaining = np.ones(n, dtype=bool)
    used = np.zeros(len(prob.bin_names), dtype=np.int64)
    sol: Solution = []
    value = np.where(ctx.value > 0, ctx.value, 1e-12)
    while remaining.any():
        best: tuple[float, int, list[int]] | None = None
        for t in types:
            if used[t] >= prob.max_counts[t]:
                continue
            picked = _fill(ctx, int(t), remaining, rule, rank)
            if not picked:
                continue
            ratio = prob.costs[t] / value[picked].sum()
            if best is None or ratio < best[0] - 1e-12:
                best = (ratio, int(t), picked)
            if len(types) == 1:
                break
        if best is None:
            break
        _, t, picked = best
        used[t] += 1
        remaining[picked] = False
        sol.append((t, [int(ctx.kinds[i]) for i in picked]))
    return sol, [int(k) for k in ctx.kinds[remaining]]


def retype(prob: Problem, sol: Solution) -> Solution:
    """Move every bin to the cheapest type that holds its items (respecting max_count).

    Bins are processed from the most expensive down so that scarce cheap types go
    where they save the most.
    """
    if len(prob.bin_names) == 1:
        return sol
    caps = prob.capacities + capacity_slack(prob.capacities)
    order = sorted(range(len(sol)), key=lambda b: (-prob.costs[sol[b][0]], b))
    # Start from the current counts: a move frees its old slot, so limits keep holding.
    used = np.bincount([t for t, _ in sol], minlength=len(prob.bin_names)).astype(np.int64)
    loads = [prob.sizes[items].sum(axis=0) for _, items in sol]
    new_types = [t for t, _ in sol]
    cost_order = np.lexsort((np.arange(len(prob.costs)), prob.costs))
    for b in order:
        t_old = sol[b][0]
        for t in cost_order:
            if prob.costs[t] >= prob.costs[t_old]:
                break
            if used[t] < prob.max_counts[t] and np.all(loads[b] <= caps[t]):
                new_types[b] = int(t)
                used[t] += 1
                used[t_old] -= 1
                break
    return [(new_types[b], items) for b, (_, items) in enumerate(sol)]


def empty_bins(prob: Problem, sol: Solution, deadline: Callable[[], bool]) -> Solution:
    """Local search: try to empty bins, cheapest-filled first, into the other bins.

    An item moves to the open bin where it leaves the least normalised slack. A bin is
    closed only when all of its items found a place; otherwise nothing moves.
    """
    if len(sol) < 2:
        return sol
    caps_t = prob.capacities + capacity_slack(prob.capacities)
    scale = prob.capacities.max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    types = [t for t, _ in sol]
    contents = [list(items) for _, items in sol]
    loads = np.array([prob.sizes[c].sum(axis=0) for c in contents])
    caps = caps_t[types]
    alive = np.ones(len(sol), dtype=bool)
    fill = ((loads / np.maximum(caps, 1e-300)).max(axis=1)) * prob.costs[types]
    improved = True
    while improved and not deadline():
        improved = False
        order = np.lexsort((np.arange(len(sol)), -prob.costs[types], fill))
        for b in order:
            if not alive[b] or deadline():
                continue
            trial = loads.copy()
            moves: list[tuple[int, int]] = []
            ok = True
            for kind in sorted(contents[b], key=lambda k: -float((prob.sizes[k] / scale).sum())):
                xi = prob.sizes[kind]
                fit = alive & np.all(trial + xi <= caps, axis=1)
                fit[b] = False
                if not fit.any():
                    ok = False
                    break
                slack = ((caps - trial - xi) / scale).sum(axis=1)
                slack[~fit] = np.inf
                j = int(np.argmin(slack))
                trial[j] += xi
                moves.append((j, kind))
            if ok:
                for j, kind in moves:
                    contents[j].append(kind)
                loads = trial
                loads[b] = 0
                contents[b] = []
                alive[b] = False
                improved = True
                fill = ((loads / np.maximum(caps, 1e-300)).max(axis=1)) * prob.costs[types]
    return [(types[b], contents[b]) for b in range(len(sol)) if alive[b]]
