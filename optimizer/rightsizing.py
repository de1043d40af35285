"""Right-sizing: recommended CPU, memory and GPU requests per workload.

Input is the utilization frame (``ds, workload_id`` plus ``*_used`` and ``*_requested``
columns, summed over a workload's replicas in each interval; see
:mod:`features.schema`). Usage per replica is ``used / replicas``. A recommendation for one
resource is a :class:`SizingPolicy` applied to that per-replica series; the anchors are
the Kubernetes VPA recommender and AWS Compute Optimizer: CPU at P90 + 15 %, memory at
P99.5 + 20 % (:func:`vpa_like`).

For each workload the result gives the recommendation, the **risk** (share of the
evidence intervals in which the recommendation would have been exceeded: CPU throttled,
memory OOM-killed, GPU over-subscribed), the **expected saving** (USD/hour and per month,
priced with :meth:`optimizer.catalog.Catalog.unit_prices`), and the **evidence window**.

GPU requests are recommended as whole GPUs, a MIG profile (on MIG-capable models) or a
fractional share (MPS / time-slicing) in ``gpu_share_step`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, InvalidFrameError
from features.schema import validate_frame
from optimizer.catalog import Catalog, UnitPrices, load_catalog
from optimizer.mig import MEMORY_SLICES, profiles_for, smallest_profile

HOURS_PER_MONTH = 730.0


class SizingPolicy(Protocol):
    """Turns a per-replica usage series into a recommended request (same unit)."""

    @property
    def name(self) -> str:
        """Label used in outputs."""

    def recommend(self, usage: np.ndarray, weights: np.ndarray | None = None) -> float:
        """Recommended request for ``usage`` (1-D, NaN-free, >= 0)."""


def weighted_quantile(x: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    """Quantile ``q`` in [0, 1] of ``x``; with weights, the inverted weighted CDF.

    Without weights this is numpy's linear-interpolation quantile; with weights it is the
    smallest value whose cumulative weight share reaches ``q`` (as VPA's histograms).
    """
    if x.size == 0:
        return 0.0
    if weights is None:
        return float(np.quantile(x, q))
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(weights[order])
    total = cw[-1]
    if total <= 0:
        return float(np.quantile(x, q))
    k = int(np.searchsorted(cw, q * total - 1e-12 * total, side="left"))
    return float(x[order][min(k, x.size - 1)])


@dataclass(frozen=True)
class PercentileHeadroom:
    """``quantile(usage, percentile) * (1 + headroom)``, floored at ``minimum``.

    Parameters
    ----------
    percentile : float
        In (0, 100].
    headroom : float
        Relative margin added on top, >= 0 (0.15 = +15 %).
    minimum : float
        Smallest request ever recommended (same unit as the usage).
    half_life_hours : float, optional
        With a value, recent intervals weigh more (exponential decay, as VPA's
        decaying histograms); requires the interval ages.
    name : str
        Label used in outputs.
    """

    percentile: float
    headroom: float
    minimum: float = 0.0
    half_life_hours: float | None = None
    name: str = "percentile"

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"parameter percentile must be in (0, 100], got {self.percentile!r}")
        if not self.headroom >= 0:
            raise ConfigError(f"parameter headroom must be >= 0, got {self.headroom!r}")
        if not self.minimum >= 0:
            raise ConfigError(f"parameter minimum must be >= 0, got {self.minimum!r}")

    def recommend(self, usage: np.ndarray, weights: np.ndarray | None = None) -> float:
        if usage.size == 0:
            return self.minimum
        q = weighted_quantile(usage, self.percentile / 100.0, weights)
        return max(q * (1.0 + self.headroom), self.minimum)


@dataclass(frozen=True)
class RiskBudget:
    """The smallest request exceeded in at most ``risk`` of the intervals, plus headroom.

    The empirical quantile at ``1 - risk`` is taken on the evidence, then raised by a
    trend term: the growth of the per-replica daily peak over the window (least squares
    on daily maxima), projected ``horizon_hours`` ahead, so that a request sized on the
    past still covers a growing workload.

    Parameters
    ----------
    risk : float
        Target share of intervals above the request, in (0, 1).
    headroom : float
        Relative margin, >= 0.
    horizon_hours : float
        How far ahead the trend is projected.
    minimum : float
        Floor of the recommendation.
    name : str
        Label used in outputs.
    """

    risk: float = 0.002
    headroom: float = 0.10
    horizon_hours: float = 24.0 * 14
    minimum: float = 0.0
    name: str = "risk-budget"

    def __post_init__(self) -> None:
        if not 0 < self.risk < 1:
            raise ConfigError(f"parameter risk must be in (0, 1), got {self.risk!r}")
        if not self.headroom >= 0:
            raise ConfigError(f"parameter headroom must be >= 0, got {self.headroom!r}")

    def recommend(self, usage: np.ndarray, weights: np.ndarray | None = None) -> float:
        if usage.size == 0:
            return self.minimum
        base = float(np.quantile(usage, 1.0 - self.risk))
        growth = 0.0
        days = usage.size // 24
        if days >= 4:
            peaks = usage[: days * 24].reshape(days, 24).max(axis=1)
            t = np.arange(days, dtype=float)
            slope = float(np.polyfit(t, peaks, 1)[0])
            level = float(peaks.mean())
            if slope > 0 and level > 0:
                growth = min(slope * (self.horizon_hours / 24.0) / level, 1.0)
        return max(base * (1.0 + self.headroom + growth), self.minimum)


@dataclass(frozen=True)
class RightsizingConfig:
    """Which policy sizes which resource, and how GPUs are granted.

    Parameters
    ----------
    cpu, memory, gpu, gpu_memory : SizingPolicy
        Policies for CPU (vCPU), memory (GiB), GPU compute (GPUs) and GPU memory (GiB).
    gpu_share_step : float
        Granularity of fractional GPU shares (MPS / time-slicing), in (0, 1].
    allow_mig : bool
        Recommend MIG profiles on MIG-capable GPUs.
    allow_sharing : bool
        Recommend fractional shares on other GPUs.
    min_intervals : int
        Workloads with fewer intervals of evidence get no recommendation.
    """

    cpu: SizingPolicy = field(
        default_factory=lambda: PercentileHeadroom(90, 0.15, minimum=0.05, name="cpu-p90+15%")
    )
    memory: SizingPolicy = field(
        default_factory=lambda: PercentileHeadroom(
            99.5, 0.20, minimum=0.0625, name="memory-p99.5+20%"
        )
    )
    gpu: SizingPolicy = field(
        default_factory=lambda: PercentileHeadroom(99.5, 0.20, name="gpu-p99.5+20%")
    )
    gpu_memory: SizingPolicy = field(
        default_factory=lambda: PercentileHeadroom(99.5, 0.20, name="gpu-memory-p99.5+20%")
    )
    gpu_share_step: float = 0.1
    allow_mig: bool = True
    allow_sharing: bool = True
    min_intervals: int = 24

    def __post_init__(self) -> None:
        if not 0 < self.gpu_share_step <= 1:
            raise ConfigError(
                f"parameter gpu_share_step must be in (0, 1], got {self.gpu_share_step!r}"
            )
        if self.min_intervals < 1:
            raise ConfigError(f"parameter min_intervals must be >= 1, got {self.min_intervals!r}")


def vpa_like() -> RightsizingConfig:
    """The anchor: VPA / Compute Optimizer style P90 + 15 % CPU, P99.5 + 20 % memory."""
    return RightsizingConfig()


def risk_budgeted(risk: float = 0.002, headroom: float = 0.10) -> RightsizingConfig:
    """Our default: risk-budgeted quantiles with a trend term for every resource."""
    return RightsizingConfig(
        cpu=RiskBudget(risk, headroom, minimum=0.05, name=f"cpu-risk{risk:g}"),
        memory=RiskBudget(risk / 2, headroom + 0.05, minimum=0.0625, name=f"mem-risk{risk / 2:g}"),
        gpu=RiskBudget(risk, headroom, name=f"gpu-risk{risk:g}"),
        gpu_memory=RiskBudget(risk / 2, headroom + 0.05, name=f"gmem-risk{risk / 2:g}"),
    )


@dataclass(frozen=True)
class GpuGrant:
    """A GPU recommendation.

    Attributes
    ----------
    kind : {"none", "whole", "mig", "share"}
    gpus : float
        GPU-equivalents billed (whole count, share, or MIG slice share).
    label : str
        Human form: ``"2 GPU"``, ``"mig 3g.40gb"``, ``"0.3 GPU share"``, ``"none"``.
    """

    kind: str
    gpus: float
    label: str


def grant_gpu(
    compute: float,
    memory_gib: float,
    gpu_model: str,
    gpu_memory_gib: float,
    config: RightsizingConfig,
) -> GpuGrant:
    """Turn a compute (GPUs) and memory (GiB) need into a GPU grant.

    A need above one GPU gets whole GPUs. Below that, MIG-capable models get the smallest
    profile that holds the need (billed at its share of the GPU: the larger of its
    compute and memory slice fractions); other models get a fractional share rounded up
    to ``gpu_share_step``.
    """
    if compute <= 0 and memory_gib <= 0:
        return GpuGrant("none", 0.0, "none")
    mem_frac = memory_gib / gpu_memory_gib if gpu_memory_gib > 0 else 0.0
    need = max(compute, mem_frac)
    if need > 1.0 + 1e-9:
        n = math.ceil(need - 1e-9)
        return GpuGrant("whole", float(n), f"{n} GPU")
    if config.allow_mig and profiles_for(gpu_model):
        prof = smallest_profile(gpu_model, min(compute, 1.0), memory_gib)
        if prof is not None and prof.compute_slices < 7:
            share = max(prof.compute_fraction, prof.memory_slices / MEMORY_SLICES)
            return GpuGrant("mig", share, f"mig {prof.name}")
        return GpuGrant("whole", 1.0, "1 GPU")
    if config.allow_sharing:
        step = config.gpu_share_step
        share = min(math.ceil(need / step - 1e-9) * step, 1.0)
        share = max(share, step)
        if share < 1.0:
            return GpuGrant("share", round(share, 6), f"{share:g} GPU share")
    return GpuGrant("whole", 1.0, "1 GPU")


RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "workload_id",
    "kind",
    "instance_type",
    "evidence_start",
    "evidence_end",
    "intervals",
    "replicas_mean",
    "cpu_request",
    "cpu_recommended",
    "cpu_risk",
    "memory_request_gib",
    "memory_recommended_gib",
    "memory_risk",
    "gpu_request",
    "gpu_recommended",
    "gpu_recommendation",
    "gpu_risk",
    "risk",
    "current_usd_per_hour",
    "recommended_usd_per_hour",
    "saving_usd_per_hour",
    "saving_usd_per_month",
    "policy",
)


def _per_replica(g: pd.DataFrame, col: str) -> np.ndarray:
    reps = g["replicas"].to_numpy(dtype=float) if "replicas" in g else np.ones(len(g))
    vals = g[col].to_numpy(dtype=float) if col in g else np.zeros(len(g))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(reps > 0, vals / np.where(reps > 0, reps, 1.0), np.nan)
    return out


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _mode_str(s: pd.Series) -> str:
    s = s.dropna()
    if s.empty:
        return ""
    return str(s.mode().iloc[0])


@dataclass(frozen=True)
class _Pricing:
    units: UnitPrices
    gpu_memory: Mapping[str, tuple[str, float]]


def _pricing(catalog: Catalog) -> _Pricing:
    units = catalog.unit_prices()
    return _Pricing(units, {it.name: (it.gpu_model, it.gpu_memory_gib) for it in catalog})


def rightsize(
    utilization: pd.DataFrame,
    catalog: Catalog | None = None,
    config: RightsizingConfig | None = None,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Recommend per-replica requests for every workload of a utilization frame.

    Parameters
    ----------
    utilization : pandas.DataFrame
        Utilization frame (``ds, workload_id`` and the ``*_used`` / ``*_requested``
        columns; missing resource columns are treated as 0). Not modified.
    catalog : Catalog, optional
        Prices and GPU models (default: the packaged catalog).
    config : RightsizingConfig, optional
        Policies (default: :func:`vpa_like`).
    start, end : pandas.Timestamp, optional
        Evidence window ``[start, end)`` (default: all rows).

    Returns
    -------
    pandas.DataFrame
        One row per workload with :data:`RECOMMENDATION_COLUMNS`: requests and
        recommendations are per replica (vCPU, GiB, GPUs); risks are shares in [0, 1];
        costs are USD per hour for the mean replica count over the evidence window,
        and the saving is also given per month (730 h). Sorted by saving, largest first.

    Raises
    ------
    InvalidFrameError
        When the frame breaks the utilization contract.
    """
    validate_frame(utilization, "utilization")
    catalog = catalog if catalog is not None else load_catalog()
    config = config if config is not None else vpa_like()
    df = utilization
    if start is not None:
        df = df[df["ds"] >= start]
    if end is not None:
        df = df[df["ds"] < end]
    if "replicas" not in df.columns:
        raise InvalidFrameError(
            "right-sizing needs the replicas column", column="replicas", frame="utilization"
        )
    pricing = _pricing(catalog)
    rows = []
    for wid, g in df.sort_values(["workload_id", "ds"]).groupby("workload_id", sort=True):
        rows.append(_recommend_one(str(wid), g, catalog, pricing, config))
    out = pd.DataFrame([r for r in rows if r is not None], columns=list(RECOMMENDATION_COLUMNS))
    return out.sort_values(
        ["saving_usd_per_hour", "workload_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _recommend_one(
    wid: str, g: pd.DataFrame, catalog: Catalog, pricing: _Pricing, config: RightsizingConfig
) -> dict[str, object] | None:
    reps = g["replicas"].to_numpy(dtype=float)
    live = np.isfinite(reps) & (reps > 0)
    if live.sum() < config.min_intervals:
        return None
    g = g[live]
    reps = reps[live]
    cpu_u = _per_replica(g, "cpu_used")
    mem_u = _per_replica(g, "memory_used_gib")
    gpu_u = _per_replica(g, "gpu_used")
    gmem_u = _per_replica(g, "gpu_memory_used_gib")
    cpu_req = float(np.nanmedian(_per_replica(g, "cpu_requested")))
    mem_req = float(np.nanmedian(_per_replica(g, "memory_requested_gib")))
    gpu_req = float(np.nanmedian(_per_replica(g, "gpu_requested")))
    cpu_req = 0.0 if not np.isfinite(cpu_req) else cpu_req
    mem_req = 0.0 if not np.isfinite(mem_req) else mem_req
    gpu_req = 0.0 if not np.isfinite(gpu_req) else gpu_req
    itype = _mode_str(g["instance_type"]) if "instance_type" in g else ""
    gpu_model, gpu_mem = pricing.gpu_memory.get(itype, ("", 0.0))
    if gpu_mem <= 0 and gpu_req > 0 and "gpu_memory_total_gib" in g:
        tot = _finite(_per_replica(g, "gpu_memory_total_gib"))
        gpu_mem = float(np.median(tot)) / gpu_req if tot.size else 0.0

    cpu_rec = config.cpu.recommend(_finite(cpu_u))
    mem_rec = config.memory.recommend(_finite(mem_u))
    cpu_risk = _exceed(cpu_u, cpu_rec)
    mem_risk = _exceed(mem_u, mem_rec)
    if gpu_req > 0:
        need_c = config.gpu.recommend(_finite(gpu_u)) if np.isfinite(gpu_u).any() else gpu_req
        need_m = config.gpu_memory.recommend(_finite(gmem_u)) if np.isfinite(gmem_u).any() else 0.0
        grant = grant_gpu(need_c, need_m, gpu_model, gpu_mem, config)
        if grant.gpus > gpu_req + 1e-9:
            # Never recommend more GPUs than requested today: flag the risk instead.
            grant = GpuGrant("whole", gpu_req, f"{gpu_req:g} GPU")
        cap_c = grant.gpus if grant.kind != "mig" else _mig_compute(grant, gpu_model)
        cap_m = grant.gpus * gpu_mem if gpu_mem > 0 else np.inf
        over = (gpu_u > cap_c + 1e-9) | (gmem_u > cap_m + 1e-9)
        gpu_risk = float(np.mean(over[np.isfinite(gpu_u)])) if np.isfinite(gpu_u).any() else 0.0
    else:
        grant = GpuGrant("none", 0.0, "none")
        gpu_risk = 0.0
    u = pricing.units
    gpu_price = u.gpu_price(gpu_model)
    reps_mean = float(reps.mean())
    current = reps_mean * (cpu_req * u.vcpu + mem_req * u.memory_gib + gpu_req * gpu_price)
    recommended = reps_mean * (cpu_rec * u.vcpu + mem_rec * u.memory_gib + grant.gpus * gpu_price)
    saving = current - recommended
    policy = f"{config.cpu.name}|{config.memory.name}"
    return {
        "workload_id": wid,
        "kind": _mode_str(g["kind"]) if "kind" in g else "",
        "instance_type": itype,
        "evidence_start": g["ds"].min(),
        "evidence_end": g["ds"].max(),
        "intervals": len(g),
        "replicas_mean": reps_mean,
        "cpu_request": cpu_req,
        "cpu_recommended": cpu_rec,
        "cpu_risk": cpu_risk,
        "memory_request_gib": mem_req,
        "memory_recommended_gib": mem_rec,
        "memory_risk": mem_risk,
        "gpu_request": gpu_req,
        "gpu_recommended": grant.gpus,
        "gpu_recommendation": grant.label,
        "gpu_risk": gpu_risk,
        "risk": max(cpu_risk, mem_risk, gpu_risk),
        "current_usd_per_hour": current,
        "recommended_usd_per_hour": recommended,
        "saving_usd_per_hour": saving,
        "saving_usd_per_month": saving * HOURS_PER_MONTH,
        "policy": policy,
    }


def _mig_compute(grant: GpuGrant, gpu_model: str) -> float:
    name = grant.label.removeprefix("mig ")
    for p in profiles_for(gpu_model):
        if p.name == name:
            return p.compute_fraction
    return grant.gpus


def _exceed(usage: np.ndarray, request: float) -> float:
    """Share of intervals (with data) whose per-replica usage is above ``request``."""
    ok = np.isfinite(usage)
    if not ok.any():
        return 0.0
    return float(np.mean(usage[ok] > request * (1 + 1e-9) + 1e-12))
