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


def _subsets(k: int, max_size: int) -> np.ndarray:
    """``(s, k)`` 0/1 rows: every subset of ``k`` slots with at most ``max_size`` members."""
    from itertools import combinations

    rows = [np.zeros(k)]
    for size in range(1, min(max_size, k) + 1):
        for combo in combinations(range(k), size):
            r = np.zeros(k)
            r[list(combo)] = 1.0
            rows.append(r)
    return np.array(rows)


class _Eliminator:
    """State of the bin-elimination search (see :func:`eliminate_bins`).

    Bins are rows of a padded slot matrix ``slots`` (``pad`` marks an empty slot); the
    copies taken out of the packing wait in ``pool``.
    """

    def __init__(self, prob: Problem, sol: Solution, rng: np.random.Generator) -> None:
        kinds = [k for _, items in sol for k in items]
        self.prob = prob
        self.n = len(kinds)
        self.kind = np.array([*kinds, -1], dtype=np.int64)
        d = prob.sizes.shape[1]
        scale = prob.capacities.max(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        # Copy sizes with a zero row for the pad slot.
        self.x = np.zeros((self.n + 1, d))
        self.x[: self.n] = prob.sizes[self.kind[: self.n]]
        xn = self.x / self.scale
        # Weight of a copy in the pool: its normalised size summed over dimensions, with a
        # floor so that copies of zero size still count.
        self.w = xn.sum(axis=1) + 1e-3
        self.w[self.n] = 0.0
        self.types = np.array([t for t, _ in sol], dtype=np.int64)
        self.all_caps = prob.capacities + capacity_slack(prob.capacities)
        self.caps = self.all_caps[self.types]
        self.costs = prob.costs[self.types]
        width = max((len(items) for _, items in sol), default=1) + 1
        self.pad = self.n
        self.slots = np.full((len(sol), width), self.pad, dtype=np.int64)
        start = 0
        for b, (_, items) in enumerate(sol):
            self.slots[b, : len(items)] = np.arange(start, start + len(items))
            start += len(items)
        self.loads = self.x[self.slots].sum(axis=1)
        self.bin_of = np.full(self.n + 1, -1, dtype=np.int64)
        for b in range(len(sol)):
            live = self.slots[b][self.slots[b] != self.pad]
            self.bin_of[live] = b
        self.alive = np.ones(len(sol), dtype=bool)
        self.pool: list[int] = []
        self.rng = rng
        self.steps = 0

    def fill(self) -> np.ndarray:
        """Normalised packed size of each bin divided by its cost (low: a cheap bin to empty)."""
        return (self.loads / self.scale).sum(axis=1) / np.maximum(self.costs, 1e-12)

    def snapshot(self) -> Solution:
        out: Solution = []
        for b in np.flatnonzero(self.alive):
            copies = self.slots[b][self.slots[b] != self.pad]
            if copies.size:
                out.append((int(self.types[b]), [int(k) for k in self.kind[copies]]))
        return out

    def remove_bin(self, b: int) -> None:
        copies = self.slots[b][self.slots[b] != self.pad]
        self.pool.extend(int(c) for c in copies)
        self.bin_of[copies] = -1
        self.slots[b] = self.pad
        self.loads[b] = 0.0
        self.alive[b] = False

    def _room(self, b: int) -> int:
        free = np.flatnonzero(self.slots[b] == self.pad)
        if free.size:
            return int(free[0])
        self.slots = np.hstack([self.slots, np.full((self.slots.shape[0], 1), self.pad)])
        return self.slots.shape[1] - 1

    def pack_pool(self, spare: list[int]) -> Solution | None:
        """First-fit decreasing of the pool into bins of the ``spare`` types (one each)."""
        caps = self.all_caps[spare]
        total = self.x[self.pool].sum(axis=0)
        if np.any(total > caps.sum(axis=0)):
            return None
        loads = np.zeros_like(caps)
        content: list[list[int]] = [[] for _ in spare]
        for c in sorted(self.pool, key=lambda c: (-self.w[c], c)):
            for j in range(len(spare)):
                if np.all(loads[j] + self.x[c] <= caps[j]):
                    loads[j] += self.x[c]
                    content[j].append(int(self.kind[c]))
                    break
            else:
                return None
        return [(int(t), items) for t, items in zip(spare, content, strict=True) if items]

    def search(
        self,
        spare: list[int],
        max_moves: int,
        deadline: Callable[[], bool],
        max_eject: int = 2,
        pen_rate: float = 1.02,
        tenure: int = 3,
    ) -> Solution | None:
        """Tabu search until the pool packs into one bin of each ``spare`` type.

        Each step inserts one pooled copy into a bin, ejecting at most ``max_eject`` of
        its copies back to the pool; the step kept maximises the pooled weight removed
        (weights of copies grow while they wait, so hard copies get priority). A copy
        just inserted may not be ejected for a few steps, and an ejected copy may not go
        straight back. Returns the complete packing, or ``None`` when the move budget or
        the deadline ends first. Per-bin arrays (room left after each ejection, weight
        ejected) are cached; only the bin that changed is refreshed.
        """
        n = self.n
        pen = np.ones(n + 1)
        tabu_until = np.zeros(n + 1, dtype=np.int64)
        came_from = np.full(n + 1, -1, dtype=np.int64)
        bins = np.flatnonzero(self.alive)
        row_of = np.full(len(self.alive), -1, dtype=np.int64)
        row_of[bins] = np.arange(bins.size)
        caps = self.caps[bins]
        e = esize = room = wout = noise = np.zeros(0)
        width = -1
        recent: list[int] = []
        max_pool = 12 if bins.size * self.x.shape[1] < 20_000 else 6

        def refresh(rows: np.ndarray) -> None:
            slots = self.slots[bins[rows]]
            occ = (slots != self.pad).astype(float)
            ok = np.abs(occ @ e.T - esize[None, :]) < 0.5
            removed = np.matmul(e, self.x[slots])
            r = caps[rows][:, None, :] - self.loads[bins[rows]][:, None, :] + removed
            r[~ok] = -np.inf
            # Dimension first: one contiguous (bins, subsets) plane per dimension.
            room[:, rows] = np.moveaxis(r, 2, 0)
            wout[rows] = (self.w[slots] * pen[slots]) @ e.T

        for step in range(1, max_moves + 1):
            self.steps = step
            done = self.pack_pool(spare)
            if done is not None:
                return self.snapshot() + done
            if step % 16 == 0 and deadline():
                return None
            if self.slots.shape[1] != width:
                width = self.slots.shape[1]
                # Pairs of a very full bin are too many to scan each step: single ejections.
                e = _subsets(width, max_eject if width <= 40 else 1)
                esize = e.sum(axis=1)
                room = np.zeros((self.x.shape[1], bins.size, e.shape[0]))
                noise = 1e-7 * self.rng.random((bins.size, e.shape[0]))
                wout = np.zeros((bins.size, e.shape[0]))
                refresh(np.arange(bins.size))
            blocked = np.zeros(wout.shape, dtype=bool)
            recent = [c for c in recent if tabu_until[c] >= step]
            for c in recent:
                r = int(row_of[self.bin_of[c]])
                blocked[r] |= e[:, int(np.flatnonzero(self.slots[bins[r]] == c)[0])] > 0
            pool = np.array(sorted(self.pool, key=lambda c: (-self.w[c] * pen[c], c))[:max_pool])
            xs = self.x[pool]
            fit = np.broadcast_to(~blocked, (pool.size, *blocked.shape)).copy()
            for dim in range(xs.shape[1]):
                fit &= room[dim][None] >= xs[:, dim][:, None, None]
            back = came_from[pool]
            has = back >= 0
            fit[np.flatnonzero(has), row_of[back[has]]] = False
            if not fit.any():
                return None
            # Ties break at random (seeded noise, redrawn now and then).
            if step % 32 == 0:
                noise = 1e-7 * self.rng.random(noise.shape)
            score = np.where(
                fit, (self.w[pool] * pen[pool])[:, None, None] - wout[None] + noise, -np.inf
            )
            pi, bi, si = np.unravel_index(int(np.argmax(score)), score.shape)
            c = int(pool[pi])
            b = int(bins[bi])
            out_slots = np.flatnonzero(e[si] > 0)
            ejected = [int(self.slots[b, k]) for k in out_slots]
            for k in out_slots:
                self.slots[b, k] = self.pad
            self.loads[b] = self.loads[b] - self.x[ejected].sum(axis=0) + self.x[c]
            slot = self._room(b)  # may widen self.slots: index after the call
            self.slots[b, slot] = c
            self.bin_of[c] = b
            self.pool.remove(c)
            self.pool.extend(ejected)
            for j in ejected:
                came_from[j] = b
                self.bin_of[j] = -1
            came_from[c] = -1
            tabu_until[c] = step + tenure + int(self.rng.integers(0, tenure + 1))
            recent.append(c)
            pen[self.pool] *= pen_rate
            if self.slots.shape[1] == width:
                refresh(np.array([bi]))
        return None


def eliminate_bins(
    prob: Problem,
    sol: Solution,
    deadline: Callable[[], bool],
    seed: int = 0,
    max_moves: int = 3000,
    max_attempts: int = 6,
    target_cost: float = 0.0,
    stats: dict[str, int] | None = None,
    **search_options: float,
) -> Solution:
    """Cut bins one at a time, repairing the packing by a tabu search over ejections.

    In the spirit of consistent neighbourhood search (Buljubasic and Vasquez, 2016): to
    go from ``m`` bins to ``m - 1``, the three least-filled bins are emptied into a
    pool and the search moves copies between the pool and the other bins until the pool
    fits into two bins. Each attempt has ``max_moves`` steps; after a failure another
    set of bins is emptied (the two least filled and a random one), at most
    ``max_attempts`` times in a row. Stops at the deadline or once the cost reaches
    ``target_cost`` (a lower bound). Returns the cheapest complete packing found.
    """
    if len(sol) < 2:
        return sol
    rng = np.random.default_rng(seed)
    best = [(t, list(items)) for t, items in sol]
    fails = 0
    while fails < max_attempts and len(best) > 1 and not deadline():
        best_cost = solution_cost(prob, best)
        if best_cost <= target_cost + 1e-9:
            break
        state = _Eliminator(prob, best, rng)
        k = min(2, len(best) - 1)
        order = np.lexsort((np.arange(len(best)), state.fill()))
        out = [int(b) for b in order[: k + 1]]
        if fails:
            extra = order[k : min(len(order), k + 12)]
            out = [int(b) for b in order[:k]] + [int(rng.choice(extra))]
        # The pool may use the dearest k of the emptied bins' types: one bin is saved.
        spare = sorted((int(state.types[b]) for b in out), key=lambda t: -prob.costs[t])[:k]
        for b in out:
            state.remove_bin(b)
        found = state.search(spare, max_moves, deadline, **search_options)  # type: ignore[arg-type]
        if stats is not None:
            stats["ls_moves"] = stats.get("ls_moves", 0) + state.steps
            stats["ls_attempts"] = stats.get("ls_attempts", 0) + 1
        if found is not None and solution_cost(prob, found) < best_cost - 1e-9:
            best = found
            fails = 0
        else:
            fails += 1
    return best
