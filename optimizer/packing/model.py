"""Inputs and outputs of the vector bin packer: items, bin types and the plan.

Everything here is a frozen value object. :class:`Problem` is the validated, array
form the strategies work on; :class:`PackingPlan` is what :func:`~optimizer.packing.solve`
returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError

PlanStatus = Literal["optimal", "feasible", "infeasible"]

#: Relative tolerance of capacity checks (sums of floats such as 0.1 + 0.2).
CAPACITY_RTOL = 1e-9


def capacity_slack(capacity: np.ndarray) -> np.ndarray:
    """Absolute tolerance added to a capacity vector in every fit test."""
    return CAPACITY_RTOL * np.maximum(np.abs(capacity), 1.0)


@dataclass(frozen=True)
class Item:
    """One kind of item to pack, demanded ``count`` times.

    Parameters
    ----------
    name : str
        Unique name of the item kind.
    size : sequence of float
        Size in each resource dimension (same order as the bin capacities), >= 0.
    count : int
        How many copies must be placed, >= 0.
    """

    name: str
    size: tuple[float, ...]
    count: int = 1


@dataclass(frozen=True)
class BinType:
    """One kind of bin that may be opened.

    Parameters
    ----------
    name : str
        Unique name of the bin type (an instance type, a node shape, ...).
    capacity : sequence of float
        Capacity in each resource dimension, >= 0.
    cost : float
        Cost of opening one bin (e.g. USD/hour), finite and >= 0.
    max_count : int, optional
        Most bins of this type that may be opened; ``None`` means no limit.
    """

    name: str
    capacity: tuple[float, ...]
    cost: float = 1.0
    max_count: int | None = None


@dataclass(frozen=True)
class PackedBin:
    """One opened bin of a plan.

    Attributes
    ----------
    bin_id : int
        0-based position of the bin in the plan.
    bin_type : str
        Name of its :class:`BinType`.
    cost : float
        Cost of the bin.
    items : tuple of (str, int)
        Item names and how many copies of each the bin holds, in item order.
    load : tuple of float
        Sum of the sizes of its items, per dimension.
    """

    bin_id: int
    bin_type: str
    cost: float
    items: tuple[tuple[str, int], ...]
    load: tuple[float, ...]


@dataclass(frozen=True)
class PackingPlan:
    """Result of :func:`optimizer.packing.solve`: which bins to open and what goes in each.

    Attributes
    ----------
    bins : tuple of PackedBin
        The opened bins.
    total_cost : float
        Sum of the costs of the opened bins.
    lower_bound : float
        A proven lower bound on the cost of any plan that places every item.
    gap : float
        ``(total_cost - lower_bound) / total_cost`` (0 when both are 0).
    status : {"optimal", "feasible", "infeasible"}
        ``optimal`` when the cost meets the lower bound, ``infeasible`` when some copies
        could not be placed (see ``unplaced``; only possible with ``max_count`` limits).
    method : str
        Which strategy produced the plan.
    dimensions : tuple of str
        Names of the resource dimensions.
    unplaced : tuple of (str, int)
        Item names and copies left out (empty unless ``status == "infeasible"``).
    seconds : float
        Wall time of the solve.
    stats : mapping
        Diagnostics (candidates tried, columns generated, ...). Not part of the contract.
    """

    bins: tuple[PackedBin, ...]
    total_cost: float
    lower_bound: float
    gap: float
    status: PlanStatus
    method: str
    dimensions: tuple[str, ...]
    unplaced: tuple[tuple[str, int], ...] = ()
    seconds: float = 0.0
    stats: Mapping[str, float | int | str] = field(default_factory=dict)

    @property
    def n_bins(self) -> int:
        """Number of opened bins."""
        return len(self.bins)

    def bins_by_type(self) -> dict[str, int]:
        """Number of opened bins per bin type."""
        out: dict[str, int] = {}
        for b in self.bins:
            out[b.bin_type] = out.get(b.bin_type, 0) + 1
        return out

    def assignment_frame(self) -> pd.DataFrame:
        """The plan as a frame with columns ``bin_id, bin_type, item, count``."""
        rows = [(b.bin_id, b.bin_type, name, count) for b in self.bins for name, count in b.items]
        return pd.DataFrame(rows, columns=["bin_id", "bin_type", "item", "count"])


@dataclass(frozen=True)
class Problem:
    """Validated array form of a packing instance.

    Items with identical size vectors are *not* merged here (names matter for the
    output); strategies may group them.

    Attributes
    ----------
    item_names : tuple of str
        Shape ``(k,)``.
    sizes : numpy.ndarray
        Shape ``(k, d)``, float64, >= 0.
    counts : numpy.ndarray
        Shape ``(k,)``, int64, >= 0.
    bin_names : tuple of str
        Shape ``(t,)``.
    capacities : numpy.ndarray
        Shape ``(t, d)``, float64, >= 0.
    costs : numpy.ndarray
        Shape ``(t,)``, float64, >= 0.
    max_counts : numpy.ndarray
        Shape ``(t,)``, int64; a large sentinel where unlimited.
    dimensions : tuple of str
        Names of the ``d`` dimensions.
    """

    item_names: tuple[str, ...]
    sizes: np.ndarray
    counts: np.ndarray
    bin_names: tuple[str, ...]
    capacities: np.ndarray
    costs: np.ndarray
    max_counts: np.ndarray
    dimensions: tuple[str, ...]

    @property
    def n_types(self) -> int:
        """Number of item kinds ``k``."""
        return len(self.item_names)

    @property
    def n_items(self) -> int:
        """Number of item copies (sum of counts)."""
        return int(self.counts.sum())

    def fits(self) -> np.ndarray:
        """Boolean ``(k, t)``: whether one copy of item ``i`` fits an empty bin of type ``j``."""
        cap = self.capacities + capacity_slack(self.capacities)
        return np.all(self.sizes[:, None, :] <= cap[None, :, :], axis=2)

    def copies_per_bin(self) -> np.ndarray:
        """Int ``(k, t)``: most copies of item ``i`` one empty bin of type ``j`` holds."""
        cap = self.capacities + capacity_slack(self.capacities)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(
                self.sizes[:, None, :] > 0,
                np.floor(cap[None, :, :] / np.where(self.sizes > 0, self.sizes, 1.0)[:, None, :]),
                np.inf,
            )
        per = ratio.min(axis=2)
        per = np.where(np.isfinite(per), per, np.iinfo(np.int32).max)
        return per.astype(np.int64)


UNLIMITED = np.iinfo(np.int32).max


def _finite_number(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{what} must be finite, got {value!r}")
    return x


def make_problem(
    items: Sequence[Item],
    bins: Sequence[BinType],
    dimensions: Sequence[str] | None = None,
) -> Problem:
    """Validate items and bin types and return the array form.

    Raises
    ------
    ConfigError
        On empty bin types, mismatched dimensions, NaN/negative sizes or costs,
        duplicate names, or an item that fits no bin type.
    """
    if not bins:
        raise ConfigError("parameter bins must hold at least one bin type, got none")
    d = len(bins[0].capacity)
    if d == 0:
        raise ConfigError("bin capacities must have at least one dimension, got 0")
    dims = tuple(dimensions) if dimensions is not None else tuple(f"d{j}" for j in range(d))
    if len(dims) != d:
        raise ConfigError(f"parameter dimensions must have {d} names, got {len(dims)}")
    names_seen: set[str] = set()
    caps = np.zeros((len(bins), d))
    costs = np.zeros(len(bins))
    maxc = np.full(len(bins), UNLIMITED, dtype=np.int64)
    for j, b in enumerate(bins):
        if b.name in names_seen:
            raise ConfigError(f"bin type names must be unique, got {b.name!r} twice")
        names_seen.add(b.name)
        if len(b.capacity) != d:
            raise ConfigError(
                f"bin type {b.name!r} capacity must have {d} dimensions, got {len(b.capacity)}"
            )
        for k, v in enumerate(b.capacity):
            x = _finite_number(v, f"bin type {b.name!r} capacity {dims[k]!r}")
            if x < 0:
                raise ConfigError(f"bin type {b.name!r} capacity {dims[k]!r} must be >= 0, got {x}")
            caps[j, k] = x
        c = _finite_number(b.cost, f"bin type {b.name!r} cost")
        if c < 0:
            raise ConfigError(f"bin type {b.name!r} cost must be >= 0, got {c}")
        costs[j] = c
        if b.max_count is not None:
            if int(b.max_count) != b.max_count or b.max_count < 0:
                raise ConfigError(
                    f"bin type {b.name!r} max_count must be an integer >= 0, got {b.max_count!r}"
                )
            maxc[j] = min(int(b.max_count), UNLIMITED)
    names_seen = set()
    sizes = np.zeros((len(items), d))
    counts = np.zeros(len(items), dtype=np.int64)
    for i, it in enumerate(items):
        if it.name in names_seen:
            raise ConfigError(f"item names must be unique, got {it.name!r} twice")
        names_seen.add(it.name)
        if len(it.size) != d:
            raise ConfigError(f"item {it.name!r} size must have {d} dimensions, got {len(it.size)}")
        for k, v in enumerate(it.size):
            x = _finite_number(v, f"item {it.name!r} size {dims[k]!r}")
            if x < 0:
                raise ConfigError(f"item {it.name!r} size {dims[k]!r} must be >= 0, got {x}")
            sizes[i, k] = x
        if int(it.count) != it.count or it.count < 0:
            raise ConfigError(f"item {it.name!r} count must be an integer >= 0, got {it.count!r}")
        counts[i] = int(it.count)
    prob = Problem(
        item_names=tuple(it.name for it in items),
        sizes=sizes,
        counts=counts,
        bin_names=tuple(b.name for b in bins),
        capacities=caps,
        costs=costs,
        max_counts=maxc,
        dimensions=dims,
    )
    fits = prob.fits() & (maxc > 0)[None, :]
    bad = np.flatnonzero(~fits.any(axis=1) & (counts > 0))
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"item {prob.item_names[i]!r} fits no bin type: size "
            f"{dict(zip(dims, sizes[i].tolist(), strict=True))} exceeds every capacity"
        )
    return prob
