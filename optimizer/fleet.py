"""Fleet planning: which instance types, how many, on-demand or Spot, for a set of workloads.

Built on :func:`optimizer.packing.solve`. Workloads (replica demand at a chosen quantile,
per-replica requests) are split by purchase option (Spot for Spot-tolerant workloads, with
an on-demand floor for production) and by GPU needs; each group is one vector packing
over the dimensions ``vcpu, memory_gib, pods, gpus`` with the catalog's instance types as
bin types priced for that purchase option.

Fractional GPU requests (MPS / time-slicing) and MIG profiles are first packed onto
*virtual GPUs* of one model (first-fit decreasing on shares; MIG with
:func:`optimizer.mig.fit_profiles`, so NVIDIA's placement rules hold), and each virtual
GPU then travels as one whole-GPU item carrying its pods' CPU and memory.

:func:`plan` is side-effect free; a :class:`Scenario` (grow a team, move training to Spot,
turn on MIG) returns a new plan without touching its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from features.exceptions import ConfigError
from optimizer.catalog import Catalog, InstanceType, PurchaseOption
from optimizer.mig import fit_profiles, get_profile, is_mig_capable, smallest_profile
from optimizer.packing import BinType, Item, PackingPlan, solve

DIMENSIONS = ("vcpu", "memory_gib", "pods", "gpus")


@dataclass(frozen=True)
class Workload:
    """Demand of one workload.

    Parameters
    ----------
    name : str
        Unique name.
    replicas : int
        Pods to place (forecast demand at the chosen quantile).
    cpu, memory_gib : float
        Per-replica requests.
    gpu : float
        GPUs per replica: a whole count (>= 1) or a fractional share (< 1).
    gpu_memory_gib : float
        GPU memory needed per replica (used to pick a MIG profile).
    gpu_models : tuple of str
        Allowed GPU models (catalog ``gpu_model`` values); empty = any.
    mig_profile : str, optional
        An explicit MIG profile (e.g. ``"3g.40gb"``); implies one of the MIG models.
    spot_tolerant : bool
        Whether replicas may run on Spot.
    production : bool
        Production workloads keep ``FleetConfig.on_demand_floor`` of replicas on-demand.
    team, kind : str
        Labels used by scenarios (``kind`` e.g. ``training``, ``inference``).
    """

    name: str
    replicas: int
    cpu: float
    memory_gib: float
    gpu: float = 0.0
    gpu_memory_gib: float = 0.0
    gpu_models: tuple[str, ...] = ()
    mig_profile: str | None = None
    spot_tolerant: bool = False
    production: bool = False
    team: str = ""
    kind: str = ""


@dataclass(frozen=True)
class FleetConfig:
    """Knobs of fleet planning.

    Parameters
    ----------
    on_demand_floor : float
        Share of a production workload's replicas kept on-demand, in [0, 1].
    max_pods : int
        Per-node pod limit.
    reserved_cpu, reserved_memory_gib : float
        Per-node capacity kept for the system (kubelet, daemonsets).
    time_limit : float
        Seconds for each packing.
    families : tuple of str, optional
        Instance families allowed (default: all in the catalog).
    use_mig : bool
        Pack fractional GPU requests as MIG profiles on MIG-capable models.
    """

    on_demand_floor: float = 0.3
    max_pods: int = 110
    reserved_cpu: float = 0.1
    reserved_memory_gib: float = 0.5
    time_limit: float = 5.0
    families: tuple[str, ...] | None = None
    use_mig: bool = False


@dataclass(frozen=True)
class Scenario:
    """A what-if applied to the workloads before planning.

    Parameters
    ----------
    name : str
    growth : mapping of str to float
        Multiplier of replicas per team (or workload name); ``{"nlp": 1.3}`` = +30 %.
    spot_kinds : tuple of str
        Workload kinds moved to Spot (made Spot-tolerant).
    use_mig : bool, optional
        Override ``FleetConfig.use_mig``.
    on_demand_floor : float, optional
        Override ``FleetConfig.on_demand_floor``.
    """

    name: str = "baseline"
    growth: Mapping[str, float] = field(default_factory=dict)
    spot_kinds: tuple[str, ...] = ()
    use_mig: bool | None = None
    on_demand_floor: float | None = None

    def apply(
        self, workloads: Sequence[Workload], config: FleetConfig
    ) -> tuple[list[Workload], FleetConfig]:
        """New workloads and config with the scenario applied (inputs untouched)."""
        out = []
        for w in workloads:
            factor = self.growth.get(w.name, self.growth.get(w.team, 1.0))
            if not (factor >= 0 and math.isfinite(factor)):
                raise ConfigError(f"scenario growth must be finite and >= 0, got {factor!r}")
            reps = math.ceil(w.replicas * factor - 1e-9)
            spot = w.spot_tolerant or (w.kind in self.spot_kinds)
            out.append(replace(w, replicas=reps, spot_tolerant=spot))
        cfg = config
        if self.use_mig is not None:
            cfg = replace(cfg, use_mig=self.use_mig)
        if self.on_demand_floor is not None:
            cfg = replace(cfg, on_demand_floor=self.on_demand_floor)
        return out, cfg


@dataclass(frozen=True)
class FleetGroup:
    """One packing of the plan: a purchase option and a GPU class."""

    key: str
    purchase_option: PurchaseOption
    packing: PackingPlan


@dataclass(frozen=True)
class FleetPlan:
    """Result of :func:`plan`.

    Attributes
    ----------
    scenario : str
    groups : tuple of FleetGroup
        One packing per (purchase option, GPU class).
    total_usd_per_hour : float
    lower_bound_usd_per_hour : float
        Sum of the packings' proven lower bounds.
    unplaced : tuple of (str, int)
        Workloads and replicas no instance type could take (empty when feasible).
    """

    scenario: str
    groups: tuple[FleetGroup, ...]
    total_usd_per_hour: float
    lower_bound_usd_per_hour: float
    unplaced: tuple[tuple[str, int], ...] = ()

    @property
    def gap(self) -> float:
        """Relative gap to the lower bound."""
        t = self.total_usd_per_hour
        return 0.0 if t <= 0 else max(t - self.lower_bound_usd_per_hour, 0.0) / t

    def nodes(self) -> pd.DataFrame:
        """``instance_type, purchase_option, count, usd_per_hour`` (one row per type/option)."""
        rows: dict[tuple[str, str], list[float]] = {}
        for g in self.groups:
            for b in g.packing.bins:
                key = (b.bin_type, g.purchase_option)
                cur = rows.setdefault(key, [0, 0.0])
                cur[0] += 1
                cur[1] += b.cost
        df = pd.DataFrame(
            [(k[0], k[1], int(v[0]), float(v[1])) for k, v in sorted(rows.items())],
            columns=["instance_type", "purchase_option", "count", "usd_per_hour"],
        )
        return df

    def assignment(self) -> pd.DataFrame:
        """``group, node, instance_type, purchase_option, item, count`` per placed item."""
        parts = []
        for g in self.groups:
            a = g.packing.assignment_frame()
            a.insert(0, "group", g.key)
            a.insert(3, "purchase_option", g.purchase_option)
            parts.append(a.rename(columns={"bin_id": "node", "bin_type": "instance_type"}))
        if not parts:
            return pd.DataFrame(
                columns=["group", "node", "instance_type", "purchase_option", "item", "count"]
            )
        return pd.concat(parts, ignore_index=True)

    def summary(self) -> dict[str, object]:
        """JSON-friendly totals."""
        nodes = self.nodes()
        return {
            "scenario": self.scenario,
            "total_usd_per_hour": round(self.total_usd_per_hour, 4),
            "total_usd_per_month": round(self.total_usd_per_hour * 730.0, 2),
            "lower_bound_usd_per_hour": round(self.lower_bound_usd_per_hour, 4),
            "gap": round(self.gap, 5),
            "nodes": int(nodes["count"].sum()) if len(nodes) else 0,
            "spot_usd_per_hour": round(
                float(nodes.loc[nodes["purchase_option"] == "spot", "usd_per_hour"].sum()), 4
            ),
            "unplaced": [list(u) for u in self.unplaced],
        }


@dataclass
class _Pod:
    workload: str
    cpu: float
    memory_gib: float
    gpus: float


def _split_options(w: Workload, floor: float) -> dict[PurchaseOption, int]:
    if not w.spot_tolerant:
        return {"on_demand": w.replicas}
    od = math.ceil(floor * w.replicas - 1e-9) if w.production else 0
    return {"on_demand": od, "spot": w.replicas - od}


def _gpu_types(catalog: Catalog, models: Sequence[str]) -> list[InstanceType]:
    return [it for it in catalog if it.is_gpu and (not models or it.gpu_model in models)]


def _bundle_shares(
    w: Workload, n: int, model: str, use_mig: bool
) -> list[tuple[str, dict[str, int], float, float]]:
    """Pack ``n`` fractional replicas of ``w`` onto virtual GPUs of ``model``.

    Returns ``(label, {workload: pods}, cpu, memory)`` per virtual GPU.
    """
    if use_mig and is_mig_capable(model):
        if w.mig_profile:
            prof = get_profile(model, w.mig_profile)
        else:
            found = smallest_profile(model, w.gpu, w.gpu_memory_gib)
            if found is None:
                raise ConfigError(f"workload {w.name!r}: no MIG profile of {model} fits its need")
            prof = found
        gpus: list[list[str]] = []
        for _ in range(n):
            for g in gpus:
                if fit_profiles(model, [*g, prof.name]) is not None:
                    g.append(prof.name)
                    break
            else:
                gpus.append([prof.name])
        return [
            (f"mig:{prof.name}", {w.name: len(g)}, w.cpu * len(g), w.memory_gib * len(g))
            for g in gpus
        ]
    per_gpu = max(math.floor(1.0 / w.gpu + 1e-9), 1)
    out = []
    left = n
    while left > 0:
        k = min(per_gpu, left)
        out.append((f"share:{w.gpu:g}", {w.name: k}, w.cpu * k, w.memory_gib * k))
        left -= k
    return out


def plan(
    workloads: Sequence[Workload],
    catalog: Catalog,
    scenario: Scenario | None = None,
    config: FleetConfig | None = None,
) -> FleetPlan:
    """Choose instance types, counts and purchase options that host every replica.

    Parameters
    ----------
    workloads : sequence of Workload
        Demand; not modified.
    catalog : Catalog
        Instance types and prices.
    scenario : Scenario, optional
        A what-if applied first (default: none).
    config : FleetConfig, optional

    Returns
    -------
    FleetPlan

    Raises
    ------
    ConfigError
        On duplicate or invalid workloads, or a GPU model constraint no type meets.
    """
    config = config if config is not None else FleetConfig()
    scen = scenario if scenario is not None else Scenario()
    wl, cfg = scen.apply(workloads, config)
    if not 0 <= cfg.on_demand_floor <= 1:
        raise ConfigError(
            f"parameter on_demand_floor must be in [0, 1], got {cfg.on_demand_floor!r}"
        )
    names = [w.name for w in wl]
    if len(set(names)) != len(names):
        raise ConfigError("workload names must be unique")
    cat = catalog.select(families=cfg.families) if cfg.families else catalog
    # group key -> (option, bin types, items as {label: (size, count, workloads)})
    # (purchase option, GPU class) -> item name -> (size, count)
    groups: dict[tuple[PurchaseOption, str], dict[str, tuple[tuple[float, ...], int]]] = {}
    types_of: dict[tuple[PurchaseOption, str], list[InstanceType]] = {}
    for w in wl:
        if w.replicas < 0 or w.cpu < 0 or w.memory_gib < 0 or w.gpu < 0:
            raise ConfigError(f"workload {w.name!r}: replicas and requests must be >= 0")
        for option, n in _split_options(w, cfg.on_demand_floor).items():
            if n <= 0:
                continue
            if w.gpu <= 0:
                key = (option, "cpu")
                types_of.setdefault(key, [it for it in cat if not it.is_gpu])
                groups.setdefault(key, {})[w.name] = ((w.cpu, w.memory_gib, 1.0, 0.0), n)
                continue
            models = tuple(sorted(w.gpu_models))
            if w.gpu >= 1:
                key = (option, "gpu:" + ("|".join(models) or "any"))
                types_of.setdefault(key, _gpu_types(cat, models))
                groups.setdefault(key, {})[w.name] = (
                    (w.cpu, w.memory_gib, 1.0, float(math.ceil(w.gpu - 1e-9))),
                    n,
                )
                continue
            # Fractional: pin to the cheapest allowed model (per GPU), MIG-capable first
            # when MIG is on or a profile is asked for.
            cands = _gpu_types(cat, models)
            want_mig = cfg.use_mig or w.mig_profile is not None
            if want_mig and any(it.mig_capable for it in cands):
                cands = [it for it in cands if it.mig_capable]
            if not cands:
                raise ConfigError(f"workload {w.name!r}: no instance type has GPU model {models}")
            best = min(cands, key=lambda it: (it.price(option) / it.gpus, it.name))
            model = best.gpu_model
            key = (option, f"gpu:{model}")
            types_of.setdefault(key, _gpu_types(cat, (model,)))
            for j, (label, pods, cpu, mem) in enumerate(
                _bundle_shares(w, n, model, want_mig and best.mig_capable)
            ):
                npods = sum(pods.values())
                groups.setdefault(key, {})[f"{w.name}#{label}#{j}"] = (
                    (cpu, mem, float(npods), 1.0),
                    1,
                )
    out_groups = []
    total = 0.0
    bound = 0.0
    unplaced: list[tuple[str, int]] = []
    for key in sorted(groups):
        option, klass = key
        types = types_of[key]
        if not types:
            raise ConfigError(f"no instance type in the catalog can host group {klass}")
        bins = [
            BinType(
                it.name,
                (
                    max(it.vcpu - cfg.reserved_cpu, 0.0),
                    max(it.memory_gib - cfg.reserved_memory_gib, 0.0),
                    float(cfg.max_pods),
                    float(it.gpus),
                ),
                cost=it.price(option),
            )
            for it in types
        ]
        items = [
            Item(name, tuple(float(v) for v in size), int(count))
            for name, (size, count) in sorted(groups[key].items())
        ]
        packing = solve(items, bins, time_limit=cfg.time_limit, dimensions=DIMENSIONS)
        out_groups.append(FleetGroup(f"{option}/{klass}", option, packing))
        total += packing.total_cost
        bound += packing.lower_bound
        unplaced += list(packing.unplaced)
    return FleetPlan(
        scenario=scen.name,
        groups=tuple(out_groups),
        total_usd_per_hour=total,
        lower_bound_usd_per_hour=bound,
        unplaced=tuple(unplaced),
    )


def workloads_from_frame(
    frame: pd.DataFrame,
    *,
    quantile: float = 0.9,
    spot_kinds: Sequence[str] = ("training", "pipeline"),
    production_env: Literal["prod"] | str = "prod",
) -> list[Workload]:
    """Derive workloads from a utilization frame: replicas at ``quantile``, median requests.

    Per-replica requests come from ``*_requested / replicas``; ``kind`` in ``spot_kinds``
    marks a workload Spot-tolerant; a workload id containing ``production_env`` is
    production.
    """
    if not 0 < quantile <= 1:
        raise ConfigError(f"parameter quantile must be in (0, 1], got {quantile!r}")
    out = []
    for wid, g in frame.groupby("workload_id", sort=True):
        reps = g["replicas"].to_numpy(dtype=float)
        live = reps > 0
        if not live.any():
            continue
        g = g[live]
        reps = reps[live]
        per = {
            col: float((g[col].to_numpy(dtype=float) / reps).mean()) if col in g else 0.0
            for col in (
                "cpu_requested",
                "memory_requested_gib",
                "gpu_requested",
                "gpu_memory_used_gib",
            )
        }
        kind = str(g["kind"].iloc[0]) if "kind" in g else ""
        out.append(
            Workload(
                name=str(wid),
                replicas=math.ceil(float(pd.Series(reps).quantile(quantile)) - 1e-9),
                cpu=per["cpu_requested"],
                memory_gib=per["memory_requested_gib"],
                gpu=per["gpu_requested"],
                gpu_memory_gib=per["gpu_memory_used_gib"],
                spot_tolerant=kind in spot_kinds,
                production=production_env in str(wid),
                team=str(g["team"].iloc[0]) if "team" in g else "",
                kind=kind,
            )
        )
    return out
