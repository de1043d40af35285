"""Seeded, deterministic demo fleet: billing exports, utilization and anomaly labels.

:func:`generate_demo_fleet` writes one year (by default) of hourly data for a
made-up AI platform on AWS, in the formats our readers ingest:

* ``focus/focus-YYYY-MM.parquet``: a **FOCUS 1.2** export of account
  ``222222222222`` ("ml-research").
* ``cur/``: a **CUR 2.0** data export of account ``111111111111``
  ("ml-platform-prod"): ``data/BILLING_PERIOD=YYYY-MM/demo-cur2-00001.snappy.parquet``
  and ``metadata/BILLING_PERIOD=YYYY-MM/demo-cur2-Manifest.json``.
* ``metrics/utilization.parquet``: the canonical utilization frame
  (:data:`features.schema.UTILIZATION_FRAME_COLUMNS`).
* ``labels/anomalies.csv``: ground truth of the injected anomalies.
* ``demo-manifest.json``: the :class:`DemoManifest` (paths relative to the root).

The two exports cover different accounts, so ingesting both never double counts.

The fleet
---------
Six teams (ml-platform, search, recsys, vision, nlp, data-eng) run workloads on four
clusters (see :mod:`features.demo_catalog`):

* ``eks-ml-prod`` and ``ecs-inference-prod`` (CUR account): multi-GPU training on
  p4d.24xlarge/p5.48xlarge (mostly spot, interrupted runs restart from a checkpoint
  after 1-3 hours), and autoscaled inference on g5/g6/g6e/m6i/c6i with diurnal,
  weekly and holiday seasonality (node slots below a base are on-demand, the rest
  spot). EKS nodes belong to platform-owned node pools (tagged ml-platform); the team
  of a pod is only visible in the split cost allocation rows.
* ``eks-research`` and ``ecs-pipelines`` (FOCUS account): training experiments,
  per-team Jupyter notebooks (weekday business hours in New York, GPUs mostly idle,
  a few left running overnight), a small always-on eval service and nightly CPU
  pipelines on m6i/c6i/r6i. Nodes carry their workload's tags.

Shapes: load grows month over month, US holidays (``holidays`` package) lower
inference and stop notebooks, AWS's June 2025 P4d/P5 on-demand price cut applies
from 2025-06-01, spot prices drift daily at 55-80% off on-demand, a Compute Savings
Plan in each account covers the base on-demand load, and about 8% of usage spend is
untagged (no Team/Project). Tag values have variants on purpose ("ML-Platform",
"mlplatform", "dataeng", "Data-Eng"; "Prod", "production", "Dev"); one workload fixes
its tag mid-period. Requests exceed usage (right-sizing has savings to find).

Anomalies (``labels/anomalies.csv``, timestamps ISO 8601 UTC, ``end`` exclusive):
runaway training (nodes held after the job's work ended), forgotten GPU node (an
on-demand node without pods for about a week), level shift (an inference baseline
steps up for good) and spike (a few hours at 5-10x), in both accounts.
``expected_extra_cost`` is priced at the line's own rate (on-demand or spot) before
commitment discounts.

Conventions the readers rely on
-------------------------------
FOCUS: costs are float64, timestamps ``timestamp[us, UTC]``. ``Tags`` is a JSON
object string (``null`` when a row has no tags) with keys ``Team``, ``Project``,
``Environment``, ``CostCenter``, ``Owner`` and ``aws:eks:cluster-name`` /
``aws:ecs:clusterName``. Provider columns: ``x_UsageType`` (also in ``SkuMeter``),
``x_Operation``, ``x_ServiceCode``, ``x_InstanceType``. The Savings Plan follows the
FOCUS spec: hourly ``Purchase`` rows (BilledCost = commitment, EffectiveCost = 0),
``Committed`` usage rows with status ``Used`` (BilledCost 0, EffectiveCost = SP
cost) and ``Unused`` rows (ResourceId = the plan's ARN). Sum(BilledCost) equals
Sum(EffectiveCost) over the export. One ``Adjustment`` row (ChargeClass
``Correction``) has a charge period in the month before its billing period.

CUR 2.0: rates (``*_rate`` except ``savings_plan_savings_plan_rate``) are strings as
in real exports; ``resource_tags`` is ``map<string, string>`` with keys
``user_team``, ``user_project``, ``user_environment``, ``user_cost_center``,
``user_owner``, ``aws_eks_cluster_name``, ``aws_ecs_cluster_name``,
``aws_eks_namespace``, ``aws_eks_workload_name``, ``aws_ecs_service_name`` and
``karpenter_sh_nodepool`` (empty map when untagged). Effective cost of a line:
``SavingsPlanCoveredUsage`` -> ``savings_plan_savings_plan_effective_cost``;
``SavingsPlanRecurringFee`` -> ``savings_plan_total_commitment_to_date -
savings_plan_used_commitment``; ``SavingsPlanNegation`` -> 0 (these rows carry no
usage amount); otherwise ``line_item_unblended_cost``. Split cost allocation rows
(``split_line_item_parent_resource_id`` not null) have zero unblended cost; per pod
and hour there is one row per resource (``USE1-EKS-EC2-vCPU-Hours``, ``-GB-Hours`` and,
for EKS pods on GPU instances, ``-GPU-Hours``; ECS: ``USE1-ECS-EC2-*``), and
``split_line_item_split_cost + split_line_item_unused_cost`` summed over the rows of
one instance-hour equals the parent's effective (amortized) cost. Totals therefore
come from the non-split rows; team allocation comes from the split rows plus the
instance rows that have none (e.g. a forgotten node). Pod rows repeat the parent's
``product_instance_type`` and availability zone. Split weights: GPU instances give
80% of their cost to the GPU pool (EKS), the rest is split vCPU:GiB at 9:1 per unit;
a pod's allocated usage is max(request, used).

Shared costs: S3 buckets (daily GB-Mo rows, mostly tagged), data transfer (daily
per cluster, untagged), the EKS control plane (hourly, tagged ml-platform), and per
month a Business support fee (CUR ``Fee`` / FOCUS ``Purchase``), sales tax per
product or service and a credit (negative). ECS instances carry their service's
tags plus ``aws_ecs_cluster_name``.

Files: parquet (snappy) written without an embedded Arrow schema, so any reader sees
plain strings, ``timestamp[us, UTC]`` and ``map<string, string>``; string columns
use dictionary pages. Rows of a file come block by block (instance-hours, split
rows, negations, Savings Plan fees, shared usage, monthly charges), each block in
time order. A CUR billing period is split into files of at most 2,000,000 rows.

Every output is byte-identical for the same ``(seed, start, months, scale)``.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.signal import lfilter

from features.demo_catalog import (
    ACCOUNT_NAMES,
    ANOMALIES,
    AVAILABILITY_ZONES,
    CLUSTERS,
    CUR_ACCOUNT,
    CUR_MONTHLY_CREDIT,
    DATA_TRANSFER_OUT_RATE,
    DATA_TRANSFER_REGIONAL_RATE,
    EKS_CONTROL_PLANE_RATE,
    FLEET,
    FOCUS_ACCOUNT,
    FOCUS_ADJUSTMENT,
    FOCUS_MONTHLY_CREDIT,
    INSTANCE_TYPES,
    LOCAL_TZ,
    PRICE_CUTS,
    REGION,
    REGION_NAME,
    S3_BUCKETS,
    S3_STANDARD_RATE,
    SUPPORT_TIERS,
    TAX_RATE,
    TEAMS,
    USAGE_PREFIX,
    AnomalySpec,
    WorkloadSpec,
)
from features.exceptions import ConfigError
from features.schema import UTILIZATION_NUMERIC

__all__ = ["CUR_EXPORT_NAME", "DemoManifest", "generate_demo_fleet"]

Progress = Callable[[str, float], None]

CUR_EXPORT_NAME = "demo-cur2"
_HOUR_US = 3_600_000_000
_HOURS_PER_MONTH = 730.5
_MAX_ROWS_PER_FILE = 2_000_000
_TYPE_NAMES: tuple[str, ...] = tuple(INSTANCE_TYPES)
_TYPE_INDEX = {name: i for i, name in enumerate(_TYPE_NAMES)}
_VCPU = np.array([INSTANCE_TYPES[t].vcpu for t in _TYPE_NAMES], dtype=np.float64)
_MEM = np.array([INSTANCE_TYPES[t].memory_gib for t in _TYPE_NAMES], dtype=np.float64)
_GPUS = np.array([INSTANCE_TYPES[t].gpus for t in _TYPE_NAMES], dtype=np.float64)
_SP_DISCOUNT = np.array([INSTANCE_TYPES[t].sp_discount for t in _TYPE_NAMES])
_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_F64 = pa.float64()
_TAG_MAP = pa.map_(pa.string(), pa.string())
_CUR_TAG_KEYS = {
    "Team": "user_team",
    "Project": "user_project",
    "Environment": "user_environment",
    "CostCenter": "user_cost_center",
    "Owner": "user_owner",
    "Name": "user_name",
}


# --------------------------------------------------------------------------------------
# Public value object
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoManifest:
    """Where the demo fleet was written and what a correct reader must find in it.

    Attributes
    ----------
    root : Path
        Output folder.
    focus_path : Path
        Folder of the FOCUS 1.2 export (``focus-YYYY-MM.parquet``, one per month).
    cur_path : Path
        Root of the CUR 2.0 export (``data/`` and ``metadata/`` below it).
    metrics_path : Path
        Utilization frame parquet file.
    labels_path : Path
        Ground-truth anomalies CSV.
    start, end : pandas.Timestamp
        Covered period in UTC, ``end`` exclusive.
    seed : int
        Seed of the generator.
    months : int
        Number of billing periods.
    scale : float
        Workload multiplier.
    focus_files, cur_files, cur_manifests : tuple of Path
        Every file written, in month order.
    rows : dict of str to int
        Row counts: ``focus``, ``cur``, ``cur_split`` (split cost allocation rows
        included in ``cur``), ``metrics``, ``labels``.
    effective_cost, billed_cost : dict of str to float
        Export totals in USD: ``focus`` sums EffectiveCost / BilledCost over every
        row; ``cur`` sums the effective (amortized) / unblended cost over the rows
        that are not split cost allocation rows.
    untagged_share : dict of str to float
        Share of usage spend (allocation view: pods instead of their instances in
        CUR; unused commitment excluded) whose rows carry no Team tag.
    accounts : dict of str to str
        Account id -> account name.
    teams : tuple of str
        Canonical team names.
    """

    root: Path
    focus_path: Path
    cur_path: Path
    metrics_path: Path
    labels_path: Path
    start: pd.Timestamp
    end: pd.Timestamp
    seed: int
    months: int
    scale: float
    focus_files: tuple[Path, ...] = ()
    cur_files: tuple[Path, ...] = ()
    cur_manifests: tuple[Path, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)
    effective_cost: dict[str, float] = field(default_factory=dict)
    billed_cost: dict[str, float] = field(default_factory=dict)
    untagged_share: dict[str, float] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    teams: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with paths relative to ``root`` (``root`` itself left out)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "root":  # the file sits in root; keeping it out keeps runs byte-identical
                continue
            if isinstance(value, Path):
                out[key] = "." if value == self.root else value.relative_to(self.root).as_posix()
            elif isinstance(value, tuple) and value and isinstance(value[0], Path):
                out[key] = [p.relative_to(self.root).as_posix() for p in value]
            elif isinstance(value, pd.Timestamp):
                out[key] = _iso(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        return out


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _rng(seed: int, *labels: str) -> np.random.Generator:
    """An independent stream per (seed, labels): adding workloads never shifts others."""
    return np.random.default_rng([seed, *(zlib.crc32(lb.encode()) for lb in labels)])


def _mix64(x: np.ndarray, key: int) -> np.ndarray:
    """SplitMix64 finaliser of ``x + key``: a bijection, so distinct inputs stay distinct."""
    with np.errstate(over="ignore"):
        z = np.asarray(x).astype(np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _fixed_strings(n: int, parts: Sequence[str | tuple[np.ndarray, int]]) -> pa.Array:
    """Equal-width strings built from constants and hex digits, without a Python loop.

    ``parts`` holds constant strings and ``(words, k)`` pairs, which write the low
    ``k`` hex digits of each uint64 word.
    """
    cols = []
    for part in parts:
        if isinstance(part, str):
            raw = np.frombuffer(part.encode(), dtype=np.uint8)
            cols.append(np.broadcast_to(raw, (n, raw.size)))
        else:
            words, k = part
            raw = np.ascontiguousarray(words, dtype=">u8").view(np.uint8).reshape(n, 8)
            digits = np.empty((n, 16), dtype=np.uint8)
            digits[:, 0::2] = _HEX[raw >> 4]
            digits[:, 1::2] = _HEX[raw & 15]
            cols.append(digits[:, 16 - k :])
    body = (
        np.ascontiguousarray(np.concatenate(cols, axis=1)) if cols else np.zeros((n, 0), np.uint8)
    )
    width = body.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(body.tobytes())
    )


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) noise of length ``n``."""
    eps = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), n)
    eps[0] = rng.normal(0.0, sigma)
    return np.asarray(lfilter([1.0], [1.0, -phi], eps))


def _expand(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand runs into rows: (run index, hour) for every hour of every run, run by run."""
    length = np.asarray(length, dtype=np.int64)
    owner = np.repeat(np.arange(length.size, dtype=np.int64), length)
    offsets = np.cumsum(length) - length
    hour = np.asarray(start, np.int64)[owner] + (
        np.arange(owner.size, dtype=np.int64) - offsets[owner]
    )
    return owner, hour


def _runs(on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous runs of True in each column of ``on`` (hours x slots).

    Returns ``(slot, start, length)`` sorted by slot, then start.
    """
    n_hours, n_slots = on.shape
    padded = np.zeros((n_slots, n_hours + 2), dtype=np.int8)
    padded[:, 1:-1] = on.T
    d = np.diff(padded, axis=1)
    s_slot, s_hour = np.nonzero(d == 1)
    _, e_hour = np.nonzero(d == -1)
    return s_slot.astype(np.int64), s_hour.astype(np.int64), (e_hour - s_hour).astype(np.int64)


@dataclass(frozen=True)
class _Codes:
    """A string column as codes into a vocabulary; code -1 is null."""

    vocab: pa.Array
    codes: np.ndarray


def _codes(vocab: Sequence[str | None] | pa.Array, codes: np.ndarray | int, n: int = 0) -> _Codes:
    v = vocab if isinstance(vocab, pa.Array) else pa.array(list(vocab), type=_STR)
    c = np.asarray(codes).astype(np.int32, copy=False)  # int32: half the memory of blocks
    return _Codes(v, np.broadcast_to(c, (n,)) if c.ndim == 0 else c)


def _keyed(fn: Callable[[int], str], key: np.ndarray) -> _Codes:
    """Format each distinct integer key once: strings for millions of rows cheaply."""
    uniq, inverse = np.unique(np.asarray(key, dtype=np.int64), return_inverse=True)
    return _codes([fn(int(k)) for k in uniq], inverse.reshape(-1))


def _rates(rate: np.ndarray) -> _Codes:
    """CUR rate strings (CUR 2.0 stores rates as strings)."""
    uniq, inverse = np.unique(np.round(rate, 10) + 0.0, return_inverse=True)
    return _codes([f"{r:.10f}" for r in uniq], inverse.reshape(-1))


def _us(hours: np.ndarray | int, start_us: int) -> np.ndarray:
    return start_us + np.asarray(hours, dtype=np.int64) * _HOUR_US


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64).view("datetime64[us]")).cast(_TS)


def _fsum(x: np.ndarray) -> float:
    return math.fsum(np.asarray(x, dtype=np.float64).tolist())


# --------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Clock:
    start: pd.Timestamp
    end: pd.Timestamp
    n_hours: int
    start_us: int
    local_hour: np.ndarray  # (H,) hour of day in New York
    weekday: np.ndarray  # (H,) 0 = Monday, local
    holiday: np.ndarray  # (H,) local date is a US federal holiday
    month_bounds: np.ndarray  # (months + 1,) hour index of each billing period start, then H
    day_start: np.ndarray  # (D,) hour index of each local midnight (first may be < 0)
    day_workday: np.ndarray  # (D,) weekday and not a holiday

    @property
    def months(self) -> int:
        return len(self.month_bounds) - 1

    def month_of(self, hour: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.month_bounds, hour, side="right") - 1

    def month_start(self, m: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(hours=int(self.month_bounds[m]))

    def growth(self, rate_per_month: float) -> np.ndarray:
        return (1.0 + rate_per_month) ** (np.arange(self.n_hours) / _HOURS_PER_MONTH)


def _make_clock(start: str | pd.Timestamp, months: int) -> _Clock:
    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts != ts.normalize() or ts.day != 1:
        raise ConfigError(f"parameter start must be the first day of a month (UTC), got {start!r}")
    end = ts + pd.DateOffset(months=months)
    n_hours = int((end - ts) / pd.Timedelta(hours=1))
    ds = pd.date_range(ts, periods=n_hours, freq="h")
    local = ds.tz_convert(LOCAL_TZ)
    local_dates = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
    hol = holidays.country_holidays("US", years=range(ts.year - 1, end.year + 2))
    hol_dates = np.array(sorted(hol.keys()), dtype="datetime64[D]")
    days = np.arange(local_dates[0], local_dates[-1] + np.timedelta64(1, "D"))
    midnights = pd.DatetimeIndex(days).tz_localize(LOCAL_TZ).tz_convert("UTC")
    day_start = ((midnights - ts) / pd.Timedelta(hours=1)).to_numpy().astype(np.int64)
    day_weekday = pd.DatetimeIndex(days).day_of_week.to_numpy()
    bounds = [
        int(((ts + pd.DateOffset(months=i)) - ts) / pd.Timedelta(hours=1))
        for i in range(months + 1)
    ]
    return _Clock(
        start=ts,
        end=end,
        n_hours=n_hours,
        start_us=int(ts.value // 1000),
        local_hour=local.hour.to_numpy().astype(np.int64),
        weekday=local.day_of_week.to_numpy().astype(np.int64),
        holiday=np.isin(local_dates, hol_dates),
        month_bounds=np.array(bounds, dtype=np.int64),
        day_start=day_start,
        day_workday=(day_weekday < 5) & ~np.isin(days, hol_dates),
    )


# --------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Prices:
    od: np.ndarray  # (types, H) on-demand USD/hour
    spot: np.ndarray  # (types, H) spot USD/hour

    def rate(self, type_idx: np.ndarray, hour: np.ndarray, spot: np.ndarray) -> np.ndarray:
        return np.where(spot, self.spot[type_idx, hour], self.od[type_idx, hour])


def _make_prices(clock: _Clock, seed: int) -> _Prices:
    n = clock.n_hours
    n_days = -(-n // 24)
    od = np.empty((len(_TYPE_NAMES), n))
    spot = np.empty_like(od)
    for i, name in enumerate(_TYPE_NAMES):
        it = INSTANCE_TYPES[name]
        od[i] = it.on_demand
        if name in PRICE_CUTS:
            when, new_rate = PRICE_CUTS[name]
            cut = int(np.clip((when - clock.start) / pd.Timedelta(hours=1), 0, n))
            od[i, cut:] = new_rate
        drift = _ar1(_rng(seed, "spot", name), n_days, 0.9, 0.04)
        discount = np.clip(it.spot_discount + drift, 0.55, 0.80)
        spot[i] = np.round(od[i] * (1.0 - discount[np.arange(n) // 24]), 4)
    return _Prices(od=od, spot=spot)


# --------------------------------------------------------------------------------------
# Workload simulation
# --------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Label:
    anomaly: AnomalySpec
    sim: _Sim
    start: int
    end: int
    extra_cost: float
    node: int | None = None  # local node index whose instance id is the resource


@dataclass(eq=False)
class _Sim:
    """Node runs, pod runs and per pod-hour usage of one workload.

    A node run is one instance (one id) running ``node_len`` hours from
    ``node_start``; a pod run lives on one node run. Pod-hour arrays are in the
    order of ``_expand(pod_start, pod_len)``.
    """

    spec: WorkloadSpec
    node_start: np.ndarray
    node_len: np.ndarray
    node_spot: np.ndarray
    pod_node: np.ndarray
    pod_start: np.ndarray
    pod_len: np.ndarray
    cpu_used: np.ndarray
    mem_used: np.ndarray
    gpu_used: np.ndarray
    gmem_used: np.ndarray
    in_metrics: bool = True
    managed: bool = True  # False: launched by hand, outside the cluster's node pools

    @property
    def type_idx(self) -> int:
        return _TYPE_INDEX[self.spec.instance_type]


def _empty_usage() -> dict[str, Any]:
    z = np.zeros(0)
    return {"cpu_used": z, "mem_used": z, "gpu_used": z, "gmem_used": z}


def _sim_inference(
    spec: WorkloadSpec,
    clock: _Clock,
    prices: _Prices,
    rng: np.random.Generator,
    anomalies: Sequence[AnomalySpec],
) -> tuple[_Sim, list[_Label]]:
    """Autoscaled service: load -> replicas -> nodes, hour by hour.

    Load (in replicas at 60% target utilization) = base x monthly growth x diurnal
    curve (peak 14:00 New York) x weekend and holiday levels x AR(1) noise; spikes
    and level shifts multiply it. Replicas follow ``ceil(load)`` within the
    autoscaler bounds, nodes ``ceil(replicas / pods_per_node)``. Node slot ``k``
    is a run of consecutive hours with more than ``k`` nodes (one instance id per
    run); slots at or above ``od_base_nodes`` are spot.
    """
    n = clock.n_hours
    diurnal = 1.0 + spec.diurnal_amplitude * np.cos(2 * np.pi * (clock.local_hour - 14) / 24)
    weekly = np.where(clock.weekday >= 5, spec.weekend_factor, 1.0)
    holiday = np.where(clock.holiday, 0.7, 1.0)
    noise = np.exp(_ar1(rng, n, 0.92, 0.06))
    base_load = spec.base_replicas * clock.growth(spec.growth_per_month) * diurnal * weekly
    base_load = base_load * holiday * noise
    load = base_load.copy()
    windows = []
    for a in anomalies:
        h0 = int(a.at * n)
        if a.kind == "spike":  # at the daily peak (13:00 New York) of the anomaly's day
            day = int(np.searchsorted(clock.day_start, h0, side="right") - 1)
            h0 = int(np.clip(clock.day_start[day] + 13, 0, max(n - a.hours, 0)))
        h1 = n if a.kind == "level_shift" else min(n, h0 + a.hours)
        load[h0:h1] *= a.factor
        windows.append((a, h0, h1))

    per_node = spec.pods_per_node

    def replicas_of(x: np.ndarray) -> np.ndarray:
        return np.clip(np.ceil(x), spec.min_replicas, spec.max_replicas).astype(np.int64)

    replicas = replicas_of(load)
    nodes = -(-replicas // per_node)
    n_slots = -(-spec.max_replicas // per_node)
    node_slot, node_start, node_len = _runs(np.arange(n_slots) < nodes[:, None])
    pod_slot, pod_start, pod_len = _runs(np.arange(spec.max_replicas) < replicas[:, None])
    node_key = node_slot * (n + 1) + node_start
    pod_key = (pod_slot // per_node) * (n + 1) + pod_start
    pod_node = np.searchsorted(node_key, pod_key, side="right") - 1

    _, hour = _expand(pod_start, pod_len)
    util = np.minimum(0.6 * load / replicas, 0.97)[hour]
    m = hour.size
    gpu = spec.gpu_request
    usage: dict[str, Any] = {
        "gpu_used": gpu * np.clip(util * rng.normal(1.0, 0.08, m), 0.01, 0.98),
        "gmem_used": gpu
        * INSTANCE_TYPES[spec.instance_type].gpu_memory_gib
        * np.clip(0.55 + 0.25 * util + rng.normal(0, 0.02, m), 0.05, 0.98),
        "cpu_used": spec.cpu_request
        * np.clip(
            (0.10 + 0.35 * util if gpu else 0.12 + 0.7 * util) + rng.normal(0, 0.03, m), 0.02, 1.0
        ),
        "mem_used": spec.memory_request_gib
        * np.clip(0.30 + 0.15 * util + rng.normal(0, 0.02, m), 0.05, 1.0),
    }
    sim = _Sim(
        spec,
        node_start,
        node_len,
        node_slot >= spec.od_base_nodes,
        pod_node,
        pod_start,
        pod_len,
        **usage,
    )

    labels = []
    base_nodes = -(-replicas_of(base_load) // per_node)
    odb = spec.od_base_nodes
    type_idx = _TYPE_INDEX[spec.instance_type]
    for a, h0, h1 in windows:
        na, nb = nodes[h0:h1], base_nodes[h0:h1]
        extra_od = np.minimum(na, odb) - np.minimum(nb, odb)
        extra_spot = np.maximum(na, odb) - np.maximum(nb, odb)
        cost = extra_od * prices.od[type_idx, h0:h1] + extra_spot * prices.spot[type_idx, h0:h1]
        labels.append(_Label(a, sim, h0, h1, round(_fsum(cost), 2)))
    return sim, labels


def _sim_training(
    spec: WorkloadSpec,
    clock: _Clock,
    prices: _Prices,
    rng: np.random.Generator,
    anomalies: Sequence[AnomalySpec],
) -> tuple[_Sim, list[_Label]]:
    """Batch jobs: Poisson arrivals (fewer on weekends and holidays, growing),
    log-normal durations (2-120 h), 1-4 nodes with one pod each.

    Spot jobs lose all nodes when one is reclaimed (1.2% per node-hour), lose the
    hour since their last checkpoint and restart on new instances 1-3 hours later.
    A runaway anomaly adds an on-demand job whose pods hang (GPUs idle) after 18
    hours of work, for ``hours`` more.
    """
    n = clock.n_hours
    weight = np.where(clock.holiday, 0.4, np.where(clock.weekday >= 5, 0.5, 1.2))
    lam = spec.jobs_per_week / 168.0 * clock.growth(spec.growth_per_month) * weight
    job_start = np.repeat(np.arange(n), rng.poisson(lam))
    n_jobs = job_start.size
    duration = np.clip(
        np.round(rng.lognormal(np.log(spec.median_job_hours), 0.7, n_jobs)), 2, 120
    ).astype(np.int64)
    choices = np.array([c for c, _ in spec.nodes_per_job])
    weights = np.array([w for _, w in spec.nodes_per_job])
    job_nodes = rng.choice(choices, size=n_jobs, p=weights / weights.sum())
    job_spot = rng.random(n_jobs) < spec.spot_share

    seg_start: list[int] = []
    seg_len: list[int] = []
    seg_nodes: list[int] = []
    seg_spot: list[bool] = []
    seg_hung: list[int] = []
    p_node = 0.012  # hourly chance that one spot node is reclaimed
    for j in range(n_jobs):  # per job (hundreds), not per row
        t, remaining, k = int(job_start[j]), int(duration[j]), int(job_nodes[j])
        p_job = 1.0 - (1.0 - p_node) ** k
        while remaining > 0 and t < n:
            run = int(rng.geometric(p_job)) if job_spot[j] else remaining
            done = run >= remaining
            length = min(remaining if done else run, n - t)
            seg_start.append(t)
            seg_len.append(length)
            seg_nodes.append(k)
            seg_spot.append(bool(job_spot[j]))
            seg_hung.append(n)
            if done:
                break
            remaining -= max(run - 1, 0)  # the hour since the last checkpoint is lost
            t += run + int(rng.integers(1, 4))

    labels_pending = []
    for a in anomalies:  # runaway: a job whose pods hang after the work is done
        h0 = min(int(a.at * n), max(n - 24, 0))
        nominal = 18
        k = 2 if INSTANCE_TYPES[spec.instance_type].gpus and spec.nodes_per_job[-1][0] > 1 else 1
        end = min(n, h0 + nominal + a.hours)
        seg_start.append(h0)
        seg_len.append(end - h0)
        seg_nodes.append(k)
        seg_spot.append(False)
        seg_hung.append(h0 + nominal)
        labels_pending.append((a, len(seg_start) - 1, h0 + nominal, end, k))

    s_start = np.array(seg_start, dtype=np.int64)
    s_nodes = np.array(seg_nodes, dtype=np.int64)
    seg_of_node = np.repeat(np.arange(s_start.size), s_nodes)
    node_start = s_start[seg_of_node]
    node_len = np.array(seg_len, dtype=np.int64)[seg_of_node]
    node_spot = np.array(seg_spot, dtype=bool)[seg_of_node]
    hung_from = np.array(seg_hung, dtype=np.int64)[seg_of_node]

    owner, hour = _expand(node_start, node_len)
    m = hour.size
    first = hour == node_start[owner]
    hung = hour >= hung_from[owner]
    it = INSTANCE_TYPES[spec.instance_type]
    gpu_frac = np.where(first, 0.35, 1.0) * np.clip(rng.normal(0.86, 0.07, m), 0.3, 0.99)
    gpu_frac = np.where(hung, rng.uniform(0.0, 0.02, m), gpu_frac)
    cpu_frac = np.where(hung, rng.uniform(0.02, 0.05, m), rng.uniform(0.25, 0.55, m))
    usage: dict[str, Any] = {
        "gpu_used": spec.gpu_request * gpu_frac,
        "gmem_used": spec.gpu_request
        * it.gpu_memory_gib
        * np.where(hung, 0.9, rng.uniform(0.7, 0.95, m)),
        "cpu_used": spec.cpu_request * cpu_frac,
        "mem_used": spec.memory_request_gib * rng.uniform(0.35, 0.65, m),
    }
    n_nodes = node_start.size
    sim = _Sim(
        spec, node_start, node_len, node_spot, np.arange(n_nodes), node_start, node_len, **usage
    )
    labels = []
    type_idx = _TYPE_INDEX[spec.instance_type]
    for a, seg, h0, h1, k in labels_pending:
        cost = k * prices.od[type_idx, h0:h1]
        first_node = int(np.flatnonzero(seg_of_node == seg)[0])
        labels.append(_Label(a, sim, h0, h1, round(_fsum(cost), 2), node=first_node))
    return sim, labels


def _merge_intervals(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping [s, e) intervals sorted by ``s``."""
    if s.size == 0:
        return s, e
    reach = np.maximum.accumulate(e)
    new = np.r_[True, s[1:] > reach[:-1]]
    idx = np.flatnonzero(new)
    return s[new], np.maximum.reduceat(e, idx)


def _sim_notebooks(spec: WorkloadSpec, clock: _Clock, rng: np.random.Generator) -> _Sim:
    """Jupyter notebooks, one node per user session.

    Workdays: 85% of users start around 09:00 and stop around 17:30 New York time;
    other days 4% do. 2.5% of sessions are forgotten until the idle culler stops
    them 12-40 hours later. GPUs are mostly idle (Beta(0.8, 10) utilization) with
    rare bursts.
    """
    n = clock.n_hours
    n_days = clock.day_start.size
    shape = (spec.users, n_days)
    active = rng.random(shape) < np.where(clock.day_workday, 0.85, 0.04)[None, :]
    begin = np.clip(np.round(rng.normal(9.3, 1.0, shape)), 7, 12).astype(np.int64)
    finish = np.clip(np.round(rng.normal(17.6, 1.3, shape)), begin + 2, 21).astype(np.int64)
    forgot = rng.random(shape) < 0.025
    finish = np.where(forgot, finish + rng.integers(12, 40, shape), finish)  # idle culler
    starts, lens = [], []
    for u in range(spec.users):  # per user: merge a forgotten session into the next one
        keep = active[u]
        s = clock.day_start[keep] + begin[u, keep]
        e = clock.day_start[keep] + finish[u, keep]
        s, e = _merge_intervals(s, e)
        s, e = np.clip(s, 0, n), np.clip(e, 0, n)
        ok = e > s
        starts.append(s[ok])
        lens.append((e - s)[ok])
    node_start = np.concatenate(starts)
    node_len = np.concatenate(lens)

    _, hour = _expand(node_start, node_len)
    m = hour.size
    lh = clock.local_hour[hour]
    working = (lh >= 8) & (lh < 19) & (clock.weekday[hour] < 5) & ~clock.holiday[hour]
    burst = working & (rng.random(m) < 0.06)
    gpu_frac = np.where(burst, rng.uniform(0.4, 0.95, m), rng.beta(0.8, 10.0, m))
    gpu_frac = np.where(working, gpu_frac, rng.uniform(0.0, 0.01, m))
    it = INSTANCE_TYPES[spec.instance_type]
    usage: dict[str, Any] = {
        "gpu_used": spec.gpu_request * gpu_frac,
        "gmem_used": spec.gpu_request
        * it.gpu_memory_gib
        * np.where(burst, rng.uniform(0.6, 0.9, m), rng.uniform(0.05, 0.35, m)),
        "cpu_used": spec.cpu_request
        * np.where(working, rng.uniform(0.03, 0.25, m), rng.uniform(0.01, 0.03, m)),
        "mem_used": spec.memory_request_gib * rng.uniform(0.15, 0.45, m),
    }
    k = node_start.size
    return _Sim(
        spec, node_start, node_len, np.zeros(k, bool), np.arange(k), node_start, node_len, **usage
    )


def _sim_pipeline(
    spec: WorkloadSpec,
    clock: _Clock,
    prices: _Prices,
    rng: np.random.Generator,
    anomalies: Sequence[AnomalySpec],
) -> tuple[_Sim, list[_Label]]:
    """Nightly pipeline: every local day at ``start_local_hour``, ``nodes`` on-demand
    CPU instances with ``pods_per_node`` tasks each, for about ``run_hours`` (both
    growing with the data). A spike anomaly adds a midday backfill.
    """
    n = clock.n_hours
    start = clock.day_start + spec.start_local_hour
    keep = (start >= 0) & (start < n)
    start = start[keep]
    g = (1.0 + spec.growth_per_month) ** (start / _HOURS_PER_MONTH)
    hours = np.maximum(1, np.round(spec.run_hours * g * rng.uniform(0.85, 1.25, start.size)))
    length = np.minimum(hours.astype(np.int64), n - start)
    run_nodes = np.maximum(1, np.round(spec.nodes * np.sqrt(g))).astype(np.int64)
    run_start, run_len = list(start), list(length)
    run_n = list(run_nodes)
    pending = []
    for a in anomalies:  # spike: a manual backfill at 11:00 local on the anomaly's day
        day = int(np.searchsorted(clock.day_start, int(a.at * n), side="right") - 1)
        h0 = int(np.clip(clock.day_start[day] + 11, 0, max(n - a.hours, 0)))
        h1 = min(n, h0 + a.hours)
        k = round(a.factor * spec.nodes)
        run_start.append(h0)
        run_len.append(h1 - h0)
        run_n.append(k)
        pending.append((a, h0, h1, k))
    r_start = np.array(run_start, dtype=np.int64)
    r_nodes = np.array(run_n, dtype=np.int64)
    run_of_node = np.repeat(np.arange(r_start.size), r_nodes)
    node_start = r_start[run_of_node]
    node_len = np.array(run_len, dtype=np.int64)[run_of_node]
    per_node = spec.pods_per_node
    pod_node = np.repeat(np.arange(node_start.size), per_node)
    pod_start, pod_len = node_start[pod_node], node_len[pod_node]
    _, hour = _expand(pod_start, pod_len)
    m = hour.size
    usage: dict[str, Any] = {
        "gpu_used": np.zeros(m),
        "gmem_used": np.zeros(m),
        "cpu_used": spec.cpu_request * rng.uniform(0.55, 0.92, m),
        "mem_used": spec.memory_request_gib * rng.uniform(0.4, 0.8, m),
    }
    sim = _Sim(
        spec,
        node_start,
        node_len,
        np.zeros(node_start.size, bool),
        pod_node,
        pod_start,
        pod_len,
        **usage,
    )
    type_idx = _TYPE_INDEX[spec.instance_type]
    labels = [
        _Label(a, sim, h0, h1, round(_fsum(k * prices.od[type_idx, h0:h1]), 2))
        for a, h0, h1, k in pending
    ]
    return sim, labels


def _sim_forgotten(a: AnomalySpec, clock: _Clock, prices: _Prices) -> tuple[_Sim, _Label]:
    """A hand-launched on-demand node with no pods, left running ``a.hours`` hours."""
    n = clock.n_hours
    it = INSTANCE_TYPES[a.instance_type]
    h0 = min(int(a.at * n), max(n - a.hours, 0))
    h1 = min(n, h0 + a.hours)
    tags = {"Name": f"debug-{it.family}", "Owner": "kenji.sato@example.com"}
    spec = WorkloadSpec(
        name=f"debug-{it.family}",
        cluster=a.workload,
        kind="training",
        team=a.team,
        project="debugging",
        environment="dev",
        instance_type=a.instance_type,
        team_tag=a.team,
        env_tag="dev",
        pods_per_node=0,
        cpu_request=0.0,
        memory_request_gib=0.0,
        gpu_request=0.0,
        tags_extra=tags if a.team is None else {"Name": f"debug-{it.family}"},
    )
    empty = np.zeros(0, dtype=np.int64)
    sim = _Sim(
        spec,
        np.array([h0]),
        np.array([h1 - h0]),
        np.zeros(1, bool),
        empty,
        empty,
        empty,
        in_metrics=False,
        managed=False,
        **_empty_usage(),
    )
    cost = prices.od[_TYPE_INDEX[a.instance_type], h0:h1]
    return sim, _Label(a, sim, h0, h1, round(_fsum(cost), 2), node=0)


def _fleet_specs(scale: float) -> list[tuple[WorkloadSpec, int]]:
    """Workloads for ``scale``: whole copies, then a deterministic subset for the fraction."""
    n = len(FLEET)
    whole = math.floor(scale)
    frac = scale - whole
    rank = np.argsort([zlib.crc32(s.workload_id.encode()) for s in FLEET], kind="stable")
    order = np.empty(n, dtype=np.int64)
    order[rank] = np.arange(n)
    anomalous = {a.workload for a in ANOMALIES}
    out = []
    for copy in range(whole + (1 if frac > 0 else 0)):
        for i, spec in enumerate(FLEET):
            include = copy < whole or order[i] < round(frac * n)
            if copy == 0 and spec.name in anomalous:
                include = True
            if include:
                out.append(
                    (spec if copy == 0 else replace(spec, name=f"{spec.name}-{copy + 1}"), copy)
                )
    return out


def _simulate(
    clock: _Clock, prices: _Prices, seed: int, scale: float
) -> tuple[list[_Sim], list[_Label]]:
    """Every workload of the fleet (and the forgotten nodes), with anomaly labels."""
    sims: list[_Sim] = []
    labels: list[_Label] = []
    for spec, copy in _fleet_specs(scale):
        rng = _rng(seed, spec.cluster, spec.name)
        mine = [a for a in ANOMALIES if copy == 0 and a.workload == spec.name]
        if spec.kind == "inference":
            sim, lab = _sim_inference(spec, clock, prices, rng, mine)
        elif spec.kind == "training":
            sim, lab = _sim_training(spec, clock, prices, rng, mine)
        elif spec.kind == "notebook":
            sim, lab = _sim_notebooks(spec, clock, rng), []
        else:
            sim, lab = _sim_pipeline(spec, clock, prices, rng, mine)
        sims.append(sim)
        labels += lab
    for a in ANOMALIES:
        if a.kind == "forgotten_node":
            sim, label = _sim_forgotten(a, clock, prices)
            sims.append(sim)
            labels.append(label)
    labels.sort(key=lambda lb: lb.anomaly.anomaly_id)
    return sims, labels


# --------------------------------------------------------------------------------------
# Accounts: entities, hourly rows, Savings Plan
# --------------------------------------------------------------------------------------
class _TagSets:
    """Registry of distinct tag sets (ordered key/value pairs) of one export; 0 = no tags."""

    def __init__(self) -> None:
        self.sets: list[tuple[tuple[str, str], ...]] = []
        self._index: dict[tuple[tuple[str, str], ...], int] = {}
        self.add({})

    def add(self, tags: Mapping[str, str]) -> int:
        key = tuple(tags.items())
        if key not in self._index:
            self._index[key] = len(self.sets)
            self.sets.append(key)
        return self._index[key]

    def has(self, key: str) -> np.ndarray:
        return np.array([any(k == key for k, _ in s) for s in self.sets], dtype=bool)

    def as_map(self, idx: np.ndarray) -> pa.Array:
        lengths = np.array([len(s) for s in self.sets], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        keys = pa.array([k for s in self.sets for k, _ in s], _STR)
        values = pa.array([v for s in self.sets for _, v in s], _STR)
        table = pa.MapArray.from_arrays(pa.array(offsets), keys, values)
        return table.take(pa.array(np.asarray(idx, dtype=np.int64)))

    def as_json(self, idx: np.ndarray) -> _Codes:
        texts = [json.dumps(dict(s), separators=(",", ":")) if s else None for s in self.sets]
        return _codes(texts, idx)


def _logical_tags(spec: WorkloadSpec, fixed: bool) -> dict[str, str]:
    """Tags as written by the team (``fixed``: after the mid-period tag clean-up)."""
    tags: dict[str, str] = {}
    owned = spec.team_tag is not None and spec.team is not None
    if owned:
        tags["Team"] = spec.team if fixed and spec.team else str(spec.team_tag)
        tags["Project"] = spec.project
    tags["Environment"] = spec.env_tag
    if owned and spec.team is not None:
        tags["CostCenter"] = TEAMS[spec.team].cost_center
        tags["Owner"] = TEAMS[spec.team].owner
    tags.update(spec.tags_extra)
    return tags


def _cur_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {_CUR_TAG_KEYS.get(k, k): v for k, v in tags.items()}


def _entity_tags(sim: _Sim, style: str, fixed: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(instance tags, pod tags) of a workload in one export style."""
    spec = sim.spec
    logical = _logical_tags(spec, fixed)
    if style == "focus":  # no split cost data in FOCUS: nodes carry the workload's tags
        key = "aws:eks:cluster-name" if spec.orchestrator == "eks" else "aws:ecs:clusterName"
        node = {**logical, key: spec.cluster}
        return node, node
    cur = _cur_tags(logical)
    if spec.orchestrator == "ecs":
        pod = {**cur, "aws_ecs_cluster_name": spec.cluster, "aws_ecs_service_name": spec.name}
        return {**cur, "aws_ecs_cluster_name": spec.cluster}, pod
    pod = {
        **cur,
        "aws_eks_cluster_name": spec.cluster,
        "aws_eks_namespace": spec.namespace,
        "aws_eks_workload_name": spec.name,
    }
    if not sim.managed:
        return {**cur, "aws_eks_cluster_name": spec.cluster}, pod
    platform = TEAMS["ml-platform"]  # EKS node pools belong to the platform team
    node = {
        "user_team": "ml-platform",
        "user_environment": "prod",
        "user_cost_center": platform.cost_center,
        "aws_eks_cluster_name": spec.cluster,
        "karpenter_sh_nodepool": spec.name,
    }
    return node, pod


@dataclass(eq=False)
class _Account:
    """Every priced instance-hour and pod-hour of one account (one export).

    ``nh_*`` arrays have one entry per instance-hour, ``ph_*`` one per pod-hour;
    ``ph_parent`` is the instance-hour row a pod-hour ran on.
    """

    account_id: str
    account_name: str
    style: str  # "cur" or "focus"
    sims: list[_Sim]
    tags: _TagSets
    node_base: np.ndarray  # first instance of each sim
    node_ids: pa.Array
    node_az: np.ndarray
    node_tag: np.ndarray
    nh_node: np.ndarray
    nh_hour: np.ndarray
    nh_type: np.ndarray
    nh_spot: np.ndarray
    nh_rate: np.ndarray  # billed USD for the hour (on-demand or spot)
    nh_od: np.ndarray  # public on-demand USD for the hour
    nh_sp_rate: np.ndarray  # Savings Plan rate (0 for spot)
    nh_covered: np.ndarray
    nh_effective: np.ndarray  # amortized: SP cost when covered, else billed
    commitment: float  # USD per hour
    sp_used: np.ndarray  # (H,) commitment used per hour
    sp_arn: str
    pod_sim: np.ndarray
    pod_ids: pa.Array
    pod_tag: np.ndarray
    ph_pod: np.ndarray
    ph_hour: np.ndarray
    ph_parent: np.ndarray
    ph_request: np.ndarray  # (3, pod-hours): vCPU, GiB, GPUs
    ph_used: np.ndarray  # (3, pod-hours)

    @property
    def eks(self) -> np.ndarray:
        return np.array([s.spec.orchestrator == "eks" for s in self.sims], dtype=bool)


def _ids(account_id: str, sims: Sequence[_Sim], owner: np.ndarray, salt: int) -> pa.Array:
    """Task ARNs (ECS) and pod ARNs with a replica-set style name and a uid (EKS)."""
    chunks = []
    index = np.arange(owner.size, dtype=np.uint64)
    w1, w2 = _mix64(index, salt ^ 0x5EED), _mix64(index, salt ^ 0xFACE)
    bounds = np.searchsorted(owner, np.arange(len(sims) + 1))
    for i, sim in enumerate(sims):
        a, b = w1[bounds[i] : bounds[i + 1]], w2[bounds[i] : bounds[i + 1]]
        spec, n = sim.spec, int(bounds[i + 1] - bounds[i])
        if spec.orchestrator == "ecs":
            prefix = f"arn:aws:ecs:{REGION}:{account_id}:task/{spec.cluster}/"
            chunks.append(_fixed_strings(n, [prefix, (a, 16), (b, 16)]))
            continue
        prefix = (
            f"arn:aws:eks:{REGION}:{account_id}:pod/{spec.cluster}/{spec.namespace}/{spec.name}-"
        )
        s32, s16, s48 = np.uint64(32), np.uint64(16), np.uint64(48)
        parts: list[str | tuple[np.ndarray, int]] = [
            prefix, (a >> s16, 10), "-", (b >> s48, 5), "/",
            (a >> s32, 8), "-", (a >> s16, 4), "-", (a, 4), "-", (b >> s48, 4), "-", (b, 12),
        ]  # fmt: skip
        chunks.append(_fixed_strings(n, parts))
    return pa.concat_arrays(chunks) if chunks else pa.array([], _STR)


def _build_account(
    account_id: str, style: str, sims: list[_Sim], clock: _Clock, prices: _Prices, seed: int
) -> _Account:
    """Give instances and pods their ids and tags, price every instance-hour and apply
    the account's Compute Savings Plan."""
    n = clock.n_hours
    tags = _TagSets()
    salt = zlib.crc32(f"{account_id}:{seed}".encode())

    # Instances: one per node run.
    node_counts = np.array([s.node_start.size for s in sims], dtype=np.int64)
    node_base = np.concatenate([[0], np.cumsum(node_counts)])
    node_sim = np.repeat(np.arange(len(sims)), node_counts)
    node_start = np.concatenate([s.node_start for s in sims]).astype(np.int64)
    node_len = np.concatenate([s.node_len for s in sims]).astype(np.int64)
    node_spot = np.concatenate([s.node_spot for s in sims]).astype(bool)
    node_type = np.array([s.type_idx for s in sims], dtype=np.int64)[node_sim]
    words = _mix64(np.arange(node_start.size), salt)
    node_ids = _fixed_strings(node_start.size, ["i-0", (words, 16)])
    node_az = ((words >> np.uint64(7)) % np.uint64(len(AVAILABILITY_ZONES))).astype(np.int64)

    # Tags: one set before and one after a workload's mid-period tag fix.
    node_tag = np.empty(node_start.size, dtype=np.int64)
    pod_counts = np.array([s.pod_start.size for s in sims], dtype=np.int64)
    pod_base = np.concatenate([[0], np.cumsum(pod_counts)])
    pod_tag = np.empty(int(pod_base[-1]), dtype=np.int64)
    for i, sim in enumerate(sims):
        fixed_from = sim.spec.team_tag_fixed_from
        fix_hour = n if fixed_from is None else int(fixed_from * n)
        (nb, pb), (na, pa_) = (
            tuple(tags.add(t) for t in _entity_tags(sim, style, fixed)) for fixed in (False, True)
        )
        node_tag[node_base[i] : node_base[i + 1]] = np.where(sim.node_start >= fix_hour, na, nb)
        pod_tag[pod_base[i] : pod_base[i + 1]] = np.where(sim.pod_start >= fix_hour, pa_, pb)

    # Instance-hours, node run by node run.
    nh_node, nh_hour = _expand(node_start, node_len)
    nh_type = node_type[nh_node]
    nh_spot = node_spot[nh_node]
    nh_od = prices.od[nh_type, nh_hour]
    nh_rate = prices.rate(nh_type, nh_hour, nh_spot)
    nh_sp_rate = np.where(nh_spot, 0.0, np.round(nh_od * (1.0 - _SP_DISCOUNT[nh_type]), 4))

    # Compute Savings Plan: commitment = 90% of the 10th percentile of the first
    # month's eligible hourly spend at SP rates; each hour it covers whole on-demand
    # lines, highest discount first, while the commitment lasts.
    eligible = np.flatnonzero(~nh_spot)
    hourly = np.bincount(nh_hour[eligible], weights=nh_sp_rate[eligible], minlength=n)
    commitment = max(1.0, round(0.9 * float(np.quantile(hourly[: min(n, 720)], 0.10)), 2))
    order = eligible[np.lexsort((eligible, -_SP_DISCOUNT[nh_type[eligible]], nh_hour[eligible]))]
    cost = nh_sp_rate[order]
    hrs = nh_hour[order]
    cum = np.cumsum(cost)
    first = np.r_[True, hrs[1:] != hrs[:-1]] if hrs.size else np.zeros(0, bool)
    within = cum - (cum - cost)[first][np.cumsum(first) - 1]
    nh_covered = np.zeros(nh_node.size, dtype=bool)
    nh_covered[order[within <= commitment + 1e-9]] = True
    sp_used = np.bincount(nh_hour[nh_covered], weights=nh_sp_rate[nh_covered], minlength=n)

    # Pod-hours and the instance-hour each ran on.
    pod_sim = np.repeat(np.arange(len(sims)), pod_counts)
    pod_node = np.concatenate([s.pod_node + node_base[i] for i, s in enumerate(sims)]).astype(
        np.int64
    )
    pod_start = np.concatenate([s.pod_start for s in sims]).astype(np.int64)
    pod_len = np.concatenate([s.pod_len for s in sims]).astype(np.int64)
    ph_pod, ph_hour = _expand(pod_start, pod_len)
    parent_node = pod_node[ph_pod]
    node_row0 = np.cumsum(node_len) - node_len
    ph_parent = node_row0[parent_node] + (ph_hour - node_start[parent_node])
    request = np.array(
        [[s.spec.cpu_request, s.spec.memory_request_gib, s.spec.gpu_request] for s in sims]
    )
    ph_sim = pod_sim[ph_pod]
    used = np.stack(
        [
            np.concatenate([getattr(s, k) for s in sims])
            for k in ("cpu_used", "mem_used", "gpu_used")
        ]
    )
    sp_id = int(_mix64(np.array([salt]), 0x5A)[0])
    return _Account(
        account_id=account_id,
        account_name=ACCOUNT_NAMES[account_id],
        style=style,
        sims=sims,
        tags=tags,
        node_base=node_base,
        node_ids=node_ids,
        node_az=node_az,
        node_tag=node_tag,
        nh_node=nh_node,
        nh_hour=nh_hour,
        nh_type=nh_type,
        nh_spot=nh_spot,
        nh_rate=nh_rate,
        nh_od=nh_od,
        nh_sp_rate=nh_sp_rate,
        nh_covered=nh_covered,
        nh_effective=np.where(nh_covered, nh_sp_rate, nh_rate),
        commitment=commitment,
        sp_used=sp_used,
        sp_arn=f"arn:aws:savingsplans::{account_id}:savingsplan/{sp_id:016x}",
        pod_sim=pod_sim,
        pod_ids=_ids(account_id, sims, pod_sim, salt),
        pod_tag=pod_tag,
        ph_pod=ph_pod,
        ph_hour=ph_hour,
        ph_parent=ph_parent,
        ph_request=request[ph_sim].T.copy(),
        ph_used=used,
    )


# --------------------------------------------------------------------------------------
# Table assembly: numpy columns and vocabularies, one sort, dictionary arrays out
# --------------------------------------------------------------------------------------
class _Rows:
    """Blocks of rows of one schema, written out one billing period at a time.

    Column values per block: ``None`` (null), a scalar (constant), a numpy array
    (numbers, NaN = null; µs since the epoch for timestamps; tag-set indices for the
    map column) or :class:`_Codes` (strings). Each block is sorted by (period, start) when added,
    so a period is a slice of every block: its rows come block by block, each block
    in time order. String columns come out dictionary-encoded with only the values
    the period uses.
    """

    def __init__(self, schema: pa.Schema, tags: _TagSets) -> None:
        self.schema = schema
        self.tags = tags
        self.blocks: list[dict[str, object]] = []
        self.period: list[np.ndarray] = []

    def add(self, n: int, period: np.ndarray, start_us: np.ndarray, **cols: object) -> None:
        unknown = set(cols) - set(self.schema.names)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        if n == 0:
            return
        per = np.broadcast_to(np.asarray(period, np.int64), (n,))
        order = np.lexsort((np.broadcast_to(np.asarray(start_us, np.int64), (n,)), per))
        for key, value in cols.items():
            if isinstance(value, np.ndarray):
                if pa.types.is_map(self.schema.field(key).type):
                    value = value.astype(np.int32, copy=False)  # tag-set indices
                cols[key] = _reorder(np.broadcast_to(value, (n,)), order)
            elif isinstance(value, _Codes):
                cols[key] = _Codes(value.vocab, _reorder(np.broadcast_to(value.codes, (n,)), order))
        self.blocks.append(cols)
        self.period.append(per[order])

    @property
    def num_rows(self) -> int:
        return int(sum(p.size for p in self.period))

    def release(self) -> None:
        """Drop the blocks once written (they are most of the generator's memory)."""
        self.blocks.clear()
        self.period.clear()

    def periods(self, n_periods: int) -> Iterator[pa.Table]:
        """Yield one table per billing period."""
        vocabs = {
            f.name: self._vocabulary(f.name) for f in self.schema if pa.types.is_string(f.type)
        }
        bounds = [np.searchsorted(p, np.arange(n_periods + 1)) for p in self.period]
        for m in range(n_periods):
            spans = [(int(b[m]), int(b[m + 1])) for b in bounds]
            arrays = [self._column(f, spans, vocabs.get(f.name)) for f in self.schema]
            yield pa.Table.from_arrays(arrays, names=self.schema.names)

    def _vocabulary(self, name: str) -> tuple[list[int], np.ndarray, pa.Array]:
        """Per block offset into all the column's vocabularies, their map to unique values."""
        parts: list[pa.Array] = []
        bases: list[int] = []
        size = 0
        for block in self.blocks:
            v = block.get(name)
            bases.append(size)
            if isinstance(v, str):
                parts.append(pa.array([v], _STR))
            elif isinstance(v, _Codes):
                parts.append(v.vocab.cast(_STR))
            elif v is not None:
                raise TypeError(f"column {name}: unsupported value {type(v).__name__}")
            else:
                continue
            size += len(parts[-1])
        every = pa.concat_arrays(parts) if parts else pa.array([], _STR)
        uniq = pc.unique(every.drop_null())
        remap = pc.index_in(every, value_set=uniq).fill_null(-1).to_numpy(zero_copy_only=False)
        return bases, np.append(remap.astype(np.int64), -1), uniq  # code -1 stays null

    def _column(
        self,
        f: pa.Field,
        spans: list[tuple[int, int]],
        vocab: tuple[list[int], np.ndarray, pa.Array] | None,
    ) -> pa.Array:
        parts = [b.get(f.name) for b in self.blocks]
        if vocab is not None:
            bases, remap, uniq = vocab
            chunks = []
            for v, (lo, hi), base in zip(parts, spans, bases, strict=True):
                if v is None:
                    chunks.append(np.full(hi - lo, -1, np.int64))
                elif isinstance(v, str):
                    chunks.append(np.full(hi - lo, base, np.int64))
                elif isinstance(v, _Codes):
                    c = v.codes[lo:hi].astype(np.int64)
                    chunks.append(np.where(c < 0, -1, c + base))
            codes = remap[np.concatenate(chunks)]
            valid = codes >= 0
            used = np.zeros(len(uniq), dtype=bool)
            used[codes[valid]] = True
            compact = np.cumsum(used) - 1
            out = np.zeros(codes.size, dtype=np.int32)
            out[valid] = compact[codes[valid]]
            mask = None if valid.all() else ~valid
            return pa.DictionaryArray.from_arrays(
                pa.array(out, mask=mask), uniq.filter(pa.array(used))
            )
        fill = 0 if pa.types.is_map(f.type) else np.nan
        values = np.concatenate(
            [_span(v, lo, hi, fill) for v, (lo, hi) in zip(parts, spans, strict=True)]
        )
        if pa.types.is_map(f.type):
            return self.tags.as_map(values.astype(np.int64))
        if pa.types.is_timestamp(f.type):
            return _ts(values.astype(np.int64))
        values = values.astype(np.float64)
        nulls = np.isnan(values)  # None blocks were filled with NaN; NaN means null
        return pa.array(values, type=f.type, mask=nulls if nulls.any() else None)


def _reorder(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values[order]``, keeping constant (stride-0) arrays as they are."""
    return values if values.strides == (0,) else values[order]


def _span(value: object, lo: int, hi: int, fill: float) -> np.ndarray:
    """Rows ``lo:hi`` of one block's column value (array, scalar or ``None`` -> ``fill``)."""
    if value is None:
        return np.full(hi - lo, fill)
    if isinstance(value, np.ndarray):
        return value[lo:hi]
    return np.full(hi - lo, value)


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write as an AWS export looks to a reader.

    Dictionary pages are written as built and no Arrow schema is stored, so every
    reader sees plain strings, UTC timestamps and maps. Statistics are kept for the
    timestamp columns only (filter push-down on time), which halves the write time.
    """
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    pq.write_table(table, path, compression="snappy", store_schema=False, write_statistics=stamps)


class _Files:
    """Writes parquet files on a small thread pool (Arrow releases the GIL while encoding).

    At most ``depth`` tables wait in memory; leaving the ``with`` block waits for all
    writes and re-raises the first error.
    """

    def __init__(self, workers: int = 2, depth: int = 3) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-write")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def write(self, table: pa.Table, path: Path) -> None:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(_write_parquet, table, path))

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)


def _intervals(start_hour: np.ndarray, hours: np.ndarray | int, clock: _Clock) -> _Codes:
    """``identity_time_interval`` strings, formatted once per distinct interval."""
    start_hour = np.asarray(start_hour, np.int64)
    span = np.broadcast_to(np.asarray(hours, np.int64), start_hour.shape)
    if span.size and (span == 1).all():  # hourly rows: one string per hour of the period
        return _codes(_hourly_intervals(clock.start, clock.n_hours), start_hour)
    uniq, inverse = np.unique((start_hour << 20) | span, return_inverse=True)
    starts = clock.start + pd.to_timedelta(uniq >> 20, unit="h")
    ends = starts + pd.to_timedelta(uniq & 0xFFFFF, unit="h")
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    texts = [f"{a}/{b}" for a, b in zip(starts.strftime(fmt), ends.strftime(fmt), strict=True)]
    return _codes(texts, inverse.reshape(-1))


@lru_cache(maxsize=4)
def _hourly_intervals(start: pd.Timestamp, n_hours: int) -> pa.Array:
    edges = pd.date_range(start, periods=n_hours + 1, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
    return pa.array([f"{a}/{b}" for a, b in pairwise(edges)], _STR)


def _month_bounds_us(clock: _Clock) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (µs) of each billing period."""
    us = _us(clock.month_bounds, clock.start_us)
    return us[:-1], us[1:]


class _Ledger:
    """Billed USD per (billing period, product) and the allocation view of usage."""

    def __init__(self, months: int, tags: _TagSets, team_key: str) -> None:
        self.months = months
        self.billed: dict[str, np.ndarray] = {}
        self.tags = tags
        self.team_key = team_key
        self.alloc_total = 0.0
        self.alloc_untagged = 0.0

    def bill(self, product: str, period: np.ndarray, cost: np.ndarray) -> None:
        add = np.bincount(np.broadcast_to(period, cost.shape), weights=cost, minlength=self.months)
        self.billed[product] = self.billed.get(product, np.zeros(self.months)) + add

    def allocate(self, cost: np.ndarray, tag_idx: np.ndarray) -> None:
        """Usage spend as showback sees it; rows without a team tag are untagged."""
        untagged = ~self.tags.has(self.team_key)[tag_idx]
        self.alloc_total += _fsum(cost)
        self.alloc_untagged += _fsum(cost[untagged])

    @property
    def charges(self) -> np.ndarray:
        return np.sum(list(self.billed.values()), axis=0) if self.billed else np.zeros(self.months)

    @property
    def untagged_share(self) -> float:
        return self.alloc_untagged / self.alloc_total if self.alloc_total else 0.0


def _support_fee(charges: float) -> float:
    """AWS Business support: tiered share of the month's charges."""
    fee, lower = 0.0, 0.0
    for upper, rate in SUPPORT_TIERS:
        fee += max(0.0, min(charges, upper) - lower) * rate
        lower = upper
    return round(fee, 2)


# --------------------------------------------------------------------------------------
# Shared (non-instance) usage: EKS control plane, S3, data transfer
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Shared:
    """Priced rows of one kind of shared usage (hourly or daily)."""

    kind: str  # key of _SHARED_META
    start_hour: np.ndarray
    hours: np.ndarray  # length of each charge period in hours
    amount: np.ndarray  # usage quantity in the kind's unit
    cost: np.ndarray
    resource: str | None
    cluster: str | None
    tag: int  # tag set of the account (0 = none)


_SHARED_META: dict[str, dict[str, str]] = {
    "eks": {
        "product": "AmazonEKS",
        "usage_type": f"{USAGE_PREFIX}-AmazonEKS-Hours:perCluster",
        "operation": "CreateOperation",
        "unit": "Hrs",
        "focus_unit": "Hours",
        "service": "Amazon Elastic Kubernetes Service",
        "category": "Compute",
        "subcategory": "Containers",
        "resource_type": "Cluster",
        "family": "Compute",
        "description": "$0.10 per hour per Amazon EKS cluster",
    },
    "s3": {
        "product": "AmazonS3",
        "usage_type": f"{USAGE_PREFIX}-TimedStorage-ByteHrs",
        "operation": "StandardStorage",
        "unit": "GB-Mo",
        "focus_unit": "GB-Mo",
        "service": "Amazon Simple Storage Service",
        "category": "Storage",
        "subcategory": "Object Storage",
        "resource_type": "Bucket",
        "family": "Storage",
        "description": "$0.023 per GB - first 50 TB / month of storage used",
    },
    "dt_out": {
        "product": "AWSDataTransfer",
        "usage_type": f"{USAGE_PREFIX}-DataTransfer-Out-Bytes",
        "operation": "RunInstances",
        "unit": "GB",
        "focus_unit": "GB",
        "service": "AWS Data Transfer",
        "category": "Networking",
        "subcategory": "Network Connectivity",
        "resource_type": "",
        "family": "Data Transfer",
        "description": "$0.09 per GB - first 10 TB / month data transfer out",
    },
    "dt_regional": {
        "product": "AWSDataTransfer",
        "usage_type": f"{USAGE_PREFIX}-DataTransfer-Regional-Bytes",
        "operation": "InterZone-In",
        "unit": "GB",
        "focus_unit": "GB",
        "service": "AWS Data Transfer",
        "category": "Networking",
        "subcategory": "Network Connectivity",
        "resource_type": "",
        "family": "Data Transfer",
        "description": "$0.01 per GB - regional data transfer - in/out/between EC2 AZs",
    },
}


def _team_tags(team: str, project: str, environment: str, style: str) -> dict[str, str]:
    t = TEAMS[team]
    logical = {
        "Team": team,
        "Project": project,
        "Environment": environment,
        "CostCenter": t.cost_center,
        "Owner": t.owner,
    }
    return _cur_tags(logical) if style == "cur" else logical


def _shared_usage(acc: _Account, clock: _Clock, seed: int, scale: float) -> list[_Shared]:
    """EKS control planes (hourly), S3 buckets and data transfer (daily) of an account."""
    n = clock.n_hours
    out: list[_Shared] = []
    clusters = [c for c, (a, _) in CLUSTERS.items() if a == acc.account_id]
    hours = np.arange(n)
    for c in clusters:  # EKS control plane, hourly, owned by the platform team
        if CLUSTERS[c][1] != "eks":
            continue
        tags = _team_tags("ml-platform", c, "prod" if acc.style == "cur" else "dev", acc.style)
        key = "aws_eks_cluster_name" if acc.style == "cur" else "aws:eks:cluster-name"
        arn = f"arn:aws:eks:{REGION}:{acc.account_id}:cluster/{c}"
        rate = np.full(n, EKS_CONTROL_PLANE_RATE)
        out.append(
            _Shared(
                "eks",
                hours,
                np.ones(n, np.int64),
                np.ones(n),
                rate,
                arn,
                c,
                acc.tags.add({**tags, key: c}),
            )
        )
    day0 = np.arange(0, n, 24)
    day_hours = np.minimum(24, n - day0)
    month_hours = np.diff(clock.month_bounds)[clock.month_of(day0)]
    for b in S3_BUCKETS:  # S3 Standard, daily per bucket, GB-Mo of the day
        if b.account != acc.account_id:
            continue
        rng = _rng(seed, "s3", b.name)
        gb = b.start_gb * scale * (1.0 + b.daily_growth) ** np.arange(day0.size)
        gb = np.round(gb * rng.uniform(0.995, 1.005, day0.size), 3)
        gb_month = np.round(gb * day_hours / month_hours, 8)
        tag = acc.tags.add(_team_tags(b.team, b.project, "prod", acc.style)) if b.team else 0
        cost = np.round(gb_month * S3_STANDARD_RATE, 8)
        out.append(_Shared("s3", day0, day_hours, gb_month, cost, b.name, None, tag))
    # Data transfer, daily per cluster: egress of inference, cross-AZ traffic of
    # training and pipelines. Untagged, as in most real bills.
    day = acc.ph_hour // 24
    kind = np.array([s.spec.kind for s in acc.sims])[acc.pod_sim[acc.ph_pod]]
    where = np.array([s.spec.cluster for s in acc.sims])[acc.pod_sim[acc.ph_pod]]
    for c in clusters:
        rng = _rng(seed, "dt", c)
        here = where == c
        for k, pods, gb_per, price in (
            ("dt_out", here & (kind == "inference"), 0.5, DATA_TRANSFER_OUT_RATE),
            ("dt_regional", here & (kind == "training"), 20.0, DATA_TRANSFER_REGIONAL_RATE),
            ("dt_regional", here & (kind == "pipeline"), 3.0, DATA_TRANSFER_REGIONAL_RATE),
        ):
            pod_hours = np.bincount(day[pods], minlength=day0.size)[: day0.size]
            gb = np.round(pod_hours * gb_per * rng.uniform(0.8, 1.2, day0.size), 6)
            keep = gb > 0
            cost = np.round(gb[keep] * price, 8)
            out.append(_Shared(k, day0[keep], day_hours[keep], gb[keep], cost, None, c, 0))
    return out


def _ec2_usage_types() -> list[str]:
    """Usage types indexed by ``type + spot * n_types``."""
    return [f"{USAGE_PREFIX}-{k}:{t}" for k in ("BoxUsage", "SpotUsage") for t in _TYPE_NAMES]


def _ec2_descriptions(type_idx: np.ndarray, spot: np.ndarray, rate: np.ndarray) -> _Codes:
    def fmt(key: int) -> str:
        name, price = _TYPE_NAMES[(key >> 1) & 31], (key >> 6) / 1e4
        if key & 1:
            return f"${price:.4f} per Linux/UNIX Spot Instance-hour for {name} in {REGION}"
        return f"${price:.4f} per On Demand Linux {name} Instance Hour"

    return _keyed(fmt, (np.round(rate * 1e4).astype(np.int64) << 6) | (type_idx << 1) | spot)


def _sp_description(commitment: float) -> str:
    return f"1 year No Upfront Compute Savings Plan, ${commitment:.2f}/hour commitment"


def _sku(*parts: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    x = int(_mix64(np.array([zlib.crc32("|".join(parts).encode())]), 0x5C0FFEE)[0])
    return "".join(alphabet[(x >> (5 * i)) & 31] for i in range(12))


# --------------------------------------------------------------------------------------
# Split cost allocation
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Split:
    """Split cost allocation rows: one per pod-hour and resource, in output order."""

    ph: np.ndarray  # pod-hour
    resource: np.ndarray  # 0 vCPU, 1 GB, 2 GPU
    eks: np.ndarray
    usage: np.ndarray
    actual: np.ndarray
    ratio: np.ndarray
    split_cost: np.ndarray
    unused_cost: np.ndarray
    od_split_cost: np.ndarray
    od_unused_cost: np.ndarray


def _split_allocation(acc: _Account) -> _Split:
    """Share every instance-hour's amortized cost among its pods, exactly.

    The cost is divided into resource pools (GPU 80% on EKS GPU instances; vCPU and
    memory by 9:1 per unit). A pod's allocated usage is max(request, used); its
    split cost is its share of each pool, and a pool's unallocated remainder is
    shared in proportion to those shares, so the pods of an instance-hour add up to
    the instance's cost.
    """
    p = acc.ph_parent
    t = acc.nh_type[p]
    eks = acc.eks[acc.pod_sim[acc.ph_pod]]
    capacity = np.stack([_VCPU[t], _MEM[t], np.maximum(_GPUS[t], 1.0)])
    alloc = np.maximum(acc.ph_request, acc.ph_used)
    gpu_pool = eks & (_GPUS[t] > 0)
    alloc[2] = np.where(gpu_pool, alloc[2], 0.0)
    ratio = alloc / capacity
    total = np.stack(
        [np.bincount(p, weights=ratio[r], minlength=acc.nh_node.size)[p] for r in range(3)]
    )
    gpu_pool &= total[2] > 0
    cpu_weight = 9.0 * _VCPU[t] / (9.0 * _VCPU[t] + _MEM[t])
    gpu_share = np.where(gpu_pool, 0.8, 0.0)
    share = np.stack([(1 - gpu_share) * cpu_weight, (1 - gpu_share) * (1 - cpu_weight), gpu_share])
    split = share * ratio
    unused = share * (1.0 - total) * ratio / np.where(total > 0, total, 1.0)

    per_pod = np.where(gpu_pool, 3, 2)
    ph = np.repeat(np.arange(p.size), per_pod)
    res = np.arange(ph.size) - (np.cumsum(per_pod) - per_pod)[ph]
    cost, od = acc.nh_effective[p][ph], acc.nh_od[p][ph]
    return _Split(
        ph=ph,
        resource=res,
        eks=eks[ph],
        usage=alloc[res, ph],
        actual=acc.ph_used[res, ph],
        ratio=ratio[res, ph],
        split_cost=cost * split[res, ph],
        unused_cost=cost * unused[res, ph],
        od_split_cost=od * split[res, ph],
        od_unused_cost=od * unused[res, ph],
    )


# --------------------------------------------------------------------------------------
# CUR 2.0
# --------------------------------------------------------------------------------------
_CUR_SCHEMA = pa.schema(
    [(name, _STR) for name in ("bill_bill_type", "bill_billing_entity")]
    + [("bill_billing_period_end_date", _TS), ("bill_billing_period_start_date", _TS)]
    + [
        (name, _STR)
        for name in (
            "bill_invoice_id",
            "bill_invoicing_entity",
            "bill_payer_account_id",
            "bill_payer_account_name",
            "identity_line_item_id",
            "identity_time_interval",
            "line_item_availability_zone",
        )
    ]
    + [
        ("line_item_blended_cost", _F64),
        ("line_item_blended_rate", _STR),
        ("line_item_currency_code", _STR),
        ("line_item_legal_entity", _STR),
        ("line_item_line_item_description", _STR),
        ("line_item_line_item_type", _STR),
        ("line_item_net_unblended_cost", _F64),
        ("line_item_net_unblended_rate", _STR),
        ("line_item_operation", _STR),
        ("line_item_product_code", _STR),
        ("line_item_resource_id", _STR),
        ("line_item_tax_type", _STR),
        ("line_item_unblended_cost", _F64),
        ("line_item_unblended_rate", _STR),
        ("line_item_usage_account_id", _STR),
        ("line_item_usage_account_name", _STR),
        ("line_item_usage_amount", _F64),
        ("line_item_usage_end_date", _TS),
        ("line_item_usage_start_date", _TS),
        ("line_item_usage_type", _STR),
        ("pricing_currency", _STR),
        ("pricing_public_on_demand_cost", _F64),
        ("pricing_public_on_demand_rate", _STR),
        ("pricing_term", _STR),
        ("pricing_unit", _STR),
        ("product_instance_family", _STR),
        ("product_instance_type", _STR),
        ("product_location", _STR),
        ("product_product_family", _STR),
        ("product_region_code", _STR),
        ("product_servicecode", _STR),
        ("reservation_effective_cost", _F64),
        ("reservation_reservation_a_r_n", _STR),
        ("reservation_unused_amortized_upfront_fee_for_billing_period", _F64),
        ("reservation_unused_recurring_fee", _F64),
        ("resource_tags", _TAG_MAP),
        ("savings_plan_offering_type", _STR),
        ("savings_plan_payment_option", _STR),
        ("savings_plan_purchase_term", _STR),
        ("savings_plan_recurring_commitment_for_billing_period", _F64),
        ("savings_plan_savings_plan_a_r_n", _STR),
        ("savings_plan_savings_plan_effective_cost", _F64),
        ("savings_plan_savings_plan_rate", _F64),
        ("savings_plan_total_commitment_to_date", _F64),
        ("savings_plan_used_commitment", _F64),
        ("split_line_item_actual_usage", _F64),
        ("split_line_item_net_split_cost", _F64),
        ("split_line_item_net_unused_cost", _F64),
        ("split_line_item_parent_resource_id", _STR),
        ("split_line_item_public_on_demand_split_cost", _F64),
        ("split_line_item_public_on_demand_unused_cost", _F64),
        ("split_line_item_split_cost", _F64),
        ("split_line_item_split_usage", _F64),
        ("split_line_item_split_usage_ratio", _F64),
        ("split_line_item_unused_cost", _F64),
    ]
)


@dataclass
class _Export:
    """One export: its rows (written period by period) and the totals a reader must find."""

    rows: _Rows
    n_rows: int
    split_rows: int
    effective: float
    billed: float
    untagged_share: float


def _cur_export(acc: _Account, clock: _Clock, seed: int, scale: float) -> _Export:
    """Every CUR 2.0 line item of the account, with the export's totals."""
    rows = _Rows(_CUR_SCHEMA, acc.tags)
    ledger = _Ledger(clock.months, acc.tags, "user_team")
    p_start, p_end = _month_bounds_us(clock)
    totals = {"effective": [0.0], "billed": [0.0]}
    common: dict[str, object] = {
        "bill_bill_type": "Anniversary",
        "bill_billing_entity": "AWS",
        "bill_invoicing_entity": "Amazon Web Services, Inc.",
        "bill_payer_account_id": acc.account_id,
        "bill_payer_account_name": acc.account_name,
        "line_item_usage_account_id": acc.account_id,
        "line_item_usage_account_name": acc.account_name,
        "line_item_currency_code": "USD",
        "line_item_legal_entity": "Amazon Web Services, Inc.",
        "pricing_currency": "USD",
        "product_region_code": REGION,
        "product_location": REGION_NAME,
        "reservation_effective_cost": 0.0,
        "reservation_unused_amortized_upfront_fee_for_billing_period": 0.0,
        "reservation_unused_recurring_fee": 0.0,
        "savings_plan_savings_plan_effective_cost": 0.0,
        "savings_plan_savings_plan_rate": 0.0,
        "savings_plan_total_commitment_to_date": 0.0,
        "savings_plan_used_commitment": 0.0,
        "savings_plan_recurring_commitment_for_billing_period": 0.0,
        "pricing_public_on_demand_cost": 0.0,
        "line_item_usage_amount": 0.0,
        "resource_tags": 0,
        "pricing_term": "",
        "line_item_operation": "",
        "line_item_usage_type": "",
    }

    def add(
        hour: np.ndarray, hours: np.ndarray | int, effective: np.ndarray | None, **cols: object
    ) -> None:
        hour = np.asarray(hour, np.int64)
        period = clock.month_of(hour)
        s = _us(hour, clock.start_us)
        e = s + np.asarray(hours, np.int64) * _HOUR_US
        if effective is not None:  # not a split row: counts towards the export totals
            totals["effective"].append(_fsum(effective))
            totals["billed"].append(
                _fsum(np.broadcast_to(np.asarray(cols["line_item_unblended_cost"]), hour.shape))
            )
        rows.add(
            hour.size,
            period,
            s,
            bill_billing_period_start_date=p_start[period],
            bill_billing_period_end_date=p_end[period],
            identity_time_interval=_intervals(hour, hours, clock),
            line_item_usage_start_date=s,
            line_item_usage_end_date=e,
            **{**common, **cols},
        )

    def money(v: np.ndarray, rate: _Codes | str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "line_item_unblended_cost": v,
            "line_item_blended_cost": v,
            "line_item_net_unblended_cost": v,
        }
        if rate is not None:
            out |= {
                "line_item_unblended_rate": rate,
                "line_item_blended_rate": rate,
                "line_item_net_unblended_rate": rate,
            }
        return out

    n_types = len(_TYPE_NAMES)
    families = [INSTANCE_TYPES[t].family for t in _TYPE_NAMES]

    # 1. EC2 instance-hours (the parents of split rows).
    nh, spot, cov = acc.nh_node, acc.nh_spot, acc.nh_covered
    spot_i, cov_i = spot.astype(np.int64), cov.astype(np.int64)
    add(
        acc.nh_hour,
        1,
        acc.nh_effective,
        line_item_line_item_type=_codes(["Usage", "SavingsPlanCoveredUsage"], cov_i),
        line_item_line_item_description=_ec2_descriptions(acc.nh_type, spot_i, acc.nh_rate),
        line_item_product_code="AmazonEC2",
        product_servicecode="AmazonEC2",
        product_product_family="Compute Instance",
        line_item_usage_type=_codes(_ec2_usage_types(), acc.nh_type + spot_i * n_types),
        line_item_operation=_codes(["RunInstances", "RunInstances:SV001"], spot_i),
        line_item_resource_id=_codes(acc.node_ids, nh),
        line_item_availability_zone=_codes(AVAILABILITY_ZONES, acc.node_az[nh]),
        line_item_usage_amount=1.0,
        **money(acc.nh_rate, _rates(acc.nh_rate)),
        pricing_public_on_demand_cost=acc.nh_od,
        pricing_public_on_demand_rate=_rates(acc.nh_od),
        pricing_term=_codes(["OnDemand", "Spot"], spot_i),
        pricing_unit="Hrs",
        product_instance_type=_codes(_TYPE_NAMES, acc.nh_type),
        product_instance_family=_codes(families, acc.nh_type),
        resource_tags=acc.node_tag[nh],
        savings_plan_savings_plan_a_r_n=_codes([None, acc.sp_arn], cov_i),
        savings_plan_savings_plan_effective_cost=np.where(cov, acc.nh_sp_rate, 0.0),
        savings_plan_savings_plan_rate=np.where(cov, acc.nh_sp_rate, 0.0),
    )
    ledger.bill("AmazonEC2", clock.month_of(acc.nh_hour), acc.nh_rate)

    # 2. Split cost allocation: one row per pod-hour and resource (cost 0 billed).
    sp = _split_allocation(acc)
    parent = acc.ph_parent[sp.ph]
    pod = acc.ph_pod[sp.ph]
    kinds = ("vCPU", "GB", "GPU")
    code = sp.eks.astype(np.int64) * 3 + sp.resource
    eks_i = sp.eks.astype(np.int64)
    add(
        acc.ph_hour[sp.ph],
        1,
        None,
        line_item_line_item_type="Usage",
        line_item_line_item_description=_codes(
            [f"{k}-Hours allocated to an {o}" for o in ("ECS task", "EKS pod") for k in kinds], code
        ),
        line_item_product_code=_codes(["AmazonECS", "AmazonEKS"], eks_i),
        product_servicecode=_codes(["AmazonECS", "AmazonEKS"], eks_i),
        line_item_usage_type=_codes(
            [f"{USAGE_PREFIX}-{o}-EC2-{k}-Hours" for o in ("ECS", "EKS") for k in kinds], code
        ),
        line_item_operation=_codes(["ECSTask-EC2", "EKSPod-EC2"], eks_i),
        line_item_resource_id=_codes(acc.pod_ids, pod),
        line_item_availability_zone=_codes(AVAILABILITY_ZONES, acc.node_az[acc.nh_node[parent]]),
        line_item_usage_amount=sp.usage,
        **money(np.zeros(1), "0.0000000000"),
        pricing_public_on_demand_rate="0.0000000000",
        pricing_unit=_codes([f"{k}-Hours" for k in kinds], sp.resource),
        product_instance_type=_codes(_TYPE_NAMES, acc.nh_type[parent]),
        product_instance_family=_codes(families, acc.nh_type[parent]),
        resource_tags=acc.pod_tag[pod],
        split_line_item_parent_resource_id=_codes(acc.node_ids, acc.nh_node[parent]),
        split_line_item_split_cost=sp.split_cost,
        split_line_item_unused_cost=sp.unused_cost,
        split_line_item_net_split_cost=sp.split_cost,
        split_line_item_net_unused_cost=sp.unused_cost,
        split_line_item_split_usage=sp.usage,
        split_line_item_split_usage_ratio=sp.ratio,
        split_line_item_actual_usage=sp.actual,
        split_line_item_public_on_demand_split_cost=sp.od_split_cost,
        split_line_item_public_on_demand_unused_cost=sp.od_unused_cost,
    )
    ledger.allocate(sp.split_cost + sp.unused_cost, acc.pod_tag[pod])
    lonely = np.bincount(acc.ph_parent, minlength=nh.size) == 0  # e.g. a forgotten node
    ledger.allocate(acc.nh_effective[lonely], acc.node_tag[nh[lonely]])

    # 3. Savings Plan negation of covered lines (no usage amount, zero effective cost).
    ci = np.flatnonzero(cov)
    neg = -acc.nh_rate[ci]
    add(
        acc.nh_hour[ci],
        1,
        np.zeros(ci.size),
        line_item_line_item_type="SavingsPlanNegation",
        line_item_line_item_description=_codes(
            [
                f"SavingsPlanNegation used by AccountId : {acc.account_id} "
                f"and UsageSku : {_sku(t, 'od')}"
                for t in _TYPE_NAMES
            ],
            acc.nh_type[ci],
        ),
        line_item_product_code="AmazonEC2",
        product_servicecode="AmazonEC2",
        product_product_family="Compute Instance",
        line_item_usage_type=_codes(_ec2_usage_types(), acc.nh_type[ci]),
        line_item_operation="RunInstances",
        line_item_resource_id=_codes(acc.node_ids, nh[ci]),
        line_item_availability_zone=_codes(AVAILABILITY_ZONES, acc.node_az[nh[ci]]),
        **money(neg, _rates(neg)),
        pricing_public_on_demand_rate="0.0000000000",
        pricing_term="OnDemand",
        pricing_unit="Hrs",
        product_instance_type=_codes(_TYPE_NAMES, acc.nh_type[ci]),
        product_instance_family=_codes(families, acc.nh_type[ci]),
        resource_tags=acc.node_tag[nh[ci]],
        savings_plan_savings_plan_a_r_n=acc.sp_arn,
        savings_plan_savings_plan_rate=acc.nh_sp_rate[ci],
    )
    ledger.bill("AmazonEC2", clock.month_of(acc.nh_hour[ci]), neg)

    # 4. Savings Plan recurring fee, hourly; its unused part is its effective cost.
    n = clock.n_hours
    hours = np.arange(n)
    fee = np.full(n, acc.commitment)
    add(
        hours,
        1,
        fee - acc.sp_used,
        line_item_line_item_type="SavingsPlanRecurringFee",
        line_item_line_item_description=_sp_description(acc.commitment),
        line_item_product_code="ComputeSavingsPlans",
        product_servicecode="ComputeSavingsPlans",
        line_item_usage_type="ComputeSP:1yrNoUpfront",
        line_item_resource_id=acc.sp_arn,
        line_item_usage_amount=1.0,
        **money(fee, _rates(fee)),
        pricing_unit="Hrs",
        savings_plan_savings_plan_a_r_n=acc.sp_arn,
        savings_plan_offering_type="ComputeSavingsPlans",
        savings_plan_payment_option="No Upfront",
        savings_plan_purchase_term="1yr",
        savings_plan_recurring_commitment_for_billing_period=acc.commitment
        * np.diff(clock.month_bounds)[clock.month_of(hours)],
        savings_plan_total_commitment_to_date=fee,
        savings_plan_used_commitment=acc.sp_used,
    )
    ledger.bill("ComputeSavingsPlans", clock.month_of(hours), fee)

    # 5. Shared usage.
    for sh in _shared_usage(acc, clock, seed, scale):
        meta = _SHARED_META[sh.kind]
        rate = np.round(sh.cost / np.where(sh.amount > 0, sh.amount, 1.0), 10)
        add(
            sh.start_hour,
            sh.hours,
            sh.cost,
            line_item_line_item_type="Usage",
            line_item_line_item_description=meta["description"],
            line_item_product_code=meta["product"],
            product_servicecode=meta["product"],
            product_product_family=meta["family"],
            line_item_usage_type=meta["usage_type"],
            line_item_operation=meta["operation"],
            line_item_resource_id=sh.resource,
            line_item_usage_amount=sh.amount,
            **money(sh.cost, _rates(rate)),
            pricing_public_on_demand_cost=sh.cost,
            pricing_public_on_demand_rate=_rates(rate),
            pricing_term="OnDemand",
            pricing_unit=meta["unit"],
            resource_tags=sh.tag,
        )
        ledger.bill(meta["product"], clock.month_of(sh.start_hour), sh.cost)
        ledger.allocate(sh.cost, np.full(sh.cost.size, sh.tag))

    # 6. Monthly: Business support fee, sales tax per product, promotional credit.
    first, span = clock.month_bounds[:-1], np.diff(clock.month_bounds)
    support = np.array([_support_fee(float(c)) for c in ledger.charges])
    ledger.bill("AWSSupportBusiness", np.arange(clock.months), support)
    monthly: list[tuple[str, str, str, np.ndarray, str | None]] = [
        ("Fee", "AWS Support (Business)", "AWSSupportBusiness", support, None)
    ]
    for product in sorted(ledger.billed):
        tax = np.round(ledger.billed[product] * TAX_RATE, 2)
        monthly.append(("Tax", f"Tax for product code {product}", product, tax, "USSalesTax"))
    credit = np.full(clock.months, CUR_MONTHLY_CREDIT)
    monthly.append(("Credit", "AWS Credits: GenAI Accelerator program", "AmazonEC2", credit, None))
    for line_type, description, product, amount, tax_type in monthly:
        add(
            first,
            span,
            amount,
            line_item_line_item_type=line_type,
            line_item_line_item_description=description,
            line_item_product_code=product,
            product_servicecode=product,
            line_item_usage_type="Dollar" if line_type == "Fee" else "",
            line_item_tax_type=tax_type,
            **money(amount),
        )

    return _Export(
        rows=rows,
        n_rows=rows.num_rows,
        split_rows=int(sp.ph.size),
        effective=math.fsum(totals["effective"]),
        billed=math.fsum(totals["billed"]),
        untagged_share=ledger.untagged_share,
    )


def _write_cur(
    export: _Export, acc: _Account, clock: _Clock, seed: int, root: Path, files: _Files
) -> tuple[list[Path], list[Path]]:
    """Data files and manifests per billing period, laid out as AWS Data Exports does."""
    data_files: list[Path] = []
    manifests: list[Path] = []
    columns = [{"name": f.name, "type": str(f.type)} for f in _CUR_SCHEMA]
    id_col = _CUR_SCHEMA.get_field_index("identity_line_item_id")
    first_row = 0
    for m, table in enumerate(export.rows.periods(clock.months)):
        # Line item ids: a bijection of the row number, so unique across the export.
        numbers = np.arange(first_row, first_row + table.num_rows)
        table = table.set_column(
            id_col,
            "identity_line_item_id",
            _fixed_strings(table.num_rows, [(_mix64(numbers, seed ^ 0x1D), 16)]),
        )
        first_row += table.num_rows
        label = clock.month_start(m).strftime("%Y-%m")
        folder = root / "data" / f"BILLING_PERIOD={label}"
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for k, offset in enumerate(range(0, max(table.num_rows, 1), _MAX_ROWS_PER_FILE)):
            path = folder / f"{CUR_EXPORT_NAME}-{k + 1:05d}.snappy.parquet"
            files.write(table.slice(offset, _MAX_ROWS_PER_FILE), path)
            data_files.append(path)
            names.append(path.relative_to(root).as_posix())
        w = _mix64(np.array([m, m + 7919]), seed ^ 0xC0FFEE).tolist()
        doc = {
            "exportName": CUR_EXPORT_NAME,
            "exportArn": f"arn:aws:bcm-data-exports:{REGION}:{acc.account_id}:export/"
            f"{CUR_EXPORT_NAME}-{w[0] % 10**8:08d}",
            "reportId": f"{w[0]:016x}{w[1]:016x}",
            "executionId": f"{w[1]:016x}",
            "billingPeriod": {
                "start": _iso(clock.month_start(m)),
                "end": _iso(clock.month_start(m + 1)),
            },
            "dataFiles": names,
            "columns": columns,
        }
        meta = root / "metadata" / f"BILLING_PERIOD={label}"
        meta.mkdir(parents=True, exist_ok=True)
        path = meta / f"{CUR_EXPORT_NAME}-Manifest.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        manifests.append(path)
    return data_files, manifests


# --------------------------------------------------------------------------------------
# FOCUS 1.2
# --------------------------------------------------------------------------------------
_FOCUS_SCHEMA = pa.schema(
    [
        ("AvailabilityZone", _STR),
        ("BilledCost", _F64),
        ("BillingAccountId", _STR),
        ("BillingAccountName", _STR),
        ("BillingAccountType", _STR),
        ("BillingCurrency", _STR),
        ("BillingPeriodEnd", _TS),
        ("BillingPeriodStart", _TS),
        ("ChargeCategory", _STR),
        ("ChargeClass", _STR),
        ("ChargeDescription", _STR),
        ("ChargeFrequency", _STR),
        ("ChargePeriodEnd", _TS),
        ("ChargePeriodStart", _TS),
        ("CommitmentDiscountCategory", _STR),
        ("CommitmentDiscountId", _STR),
        ("CommitmentDiscountName", _STR),
        ("CommitmentDiscountQuantity", _F64),
        ("CommitmentDiscountStatus", _STR),
        ("CommitmentDiscountType", _STR),
        ("CommitmentDiscountUnit", _STR),
        ("ConsumedQuantity", _F64),
        ("ConsumedUnit", _STR),
        ("ContractedCost", _F64),
        ("ContractedUnitPrice", _F64),
        ("EffectiveCost", _F64),
        ("InvoiceId", _STR),
        ("InvoiceIssuerName", _STR),
        ("ListCost", _F64),
        ("ListUnitPrice", _F64),
        ("PricingCategory", _STR),
        ("PricingCurrency", _STR),
        ("PricingQuantity", _F64),
        ("PricingUnit", _STR),
        ("ProviderName", _STR),
        ("PublisherName", _STR),
        ("RegionId", _STR),
        ("RegionName", _STR),
        ("ResourceId", _STR),
        ("ResourceName", _STR),
        ("ResourceType", _STR),
        ("ServiceCategory", _STR),
        ("ServiceName", _STR),
        ("ServiceSubcategory", _STR),
        ("SkuId", _STR),
        ("SkuMeter", _STR),
        ("SkuPriceId", _STR),
        ("SubAccountId", _STR),
        ("SubAccountName", _STR),
        ("SubAccountType", _STR),
        ("Tags", _STR),
        ("x_InstanceType", _STR),
        ("x_Operation", _STR),
        ("x_ServiceCode", _STR),
        ("x_UsageType", _STR),
    ]
)
_EC2_SERVICE = "Amazon Elastic Compute Cloud"
_SP_SERVICE = "Savings Plans for AWS Compute usage"
_SUPPORT_SERVICE = "AWS Support (Business)"


def _focus_export(acc: _Account, clock: _Clock, seed: int, scale: float) -> _Export:
    """Every FOCUS 1.2 row of the account, with the export's totals."""
    rows = _Rows(_FOCUS_SCHEMA, acc.tags)
    ledger = _Ledger(clock.months, acc.tags, "Team")
    p_start, p_end = _month_bounds_us(clock)
    invoices = [
        f"INV-{acc.account_id[-4:]}-{clock.month_start(m):%Y%m}" for m in range(clock.months)
    ]
    totals: dict[str, list[float]] = {"EffectiveCost": [], "BilledCost": []}
    common: dict[str, object] = {
        "BillingAccountId": acc.account_id,
        "BillingAccountName": acc.account_name,
        "BillingAccountType": "Billing Account",
        "SubAccountId": acc.account_id,
        "SubAccountName": acc.account_name,
        "SubAccountType": "Linked Account",
        "BillingCurrency": "USD",
        "PricingCurrency": "USD",
        "ProviderName": "AWS",
        "PublisherName": "Amazon Web Services, Inc.",
        "InvoiceIssuerName": "Amazon Web Services, Inc.",
        "RegionId": REGION,
        "RegionName": REGION_NAME,
        "PricingCategory": "Standard",
    }

    def add(
        hour: np.ndarray, hours: np.ndarray | int, period: np.ndarray | None = None, **cols: object
    ) -> None:
        hour = np.asarray(hour, np.int64)
        per = clock.month_of(hour) if period is None else np.broadcast_to(period, hour.shape)
        s = _us(hour, clock.start_us)
        for key, parts in totals.items():
            parts.append(_fsum(np.broadcast_to(np.asarray(cols[key], np.float64), hour.shape)))
        rows.add(
            hour.size,
            per,
            s,
            BillingPeriodStart=p_start[per],
            BillingPeriodEnd=p_end[per],
            InvoiceId=_codes(invoices, per),
            ChargePeriodStart=s,
            ChargePeriodEnd=s + np.asarray(hours, np.int64) * _HOUR_US,
            **{**common, **cols},
        )

    def flat(v: np.ndarray) -> dict[str, Any]:
        return {"BilledCost": v, "EffectiveCost": v, "ListCost": v, "ContractedCost": v}

    # 1. EC2 instance-hours: Standard (on-demand), Dynamic (spot), Committed (SP).
    nh, spot, cov = acc.nh_node, acc.nh_spot, acc.nh_covered
    spot_i, cov_i = spot.astype(np.int64), cov.astype(np.int64)
    n_types = len(_TYPE_NAMES)
    skus = [_sku(t, "od") for t in _TYPE_NAMES] + [_sku(t, "spot") for t in _TYPE_NAMES]
    sku_code = acc.nh_type + spot_i * n_types
    contracted = np.where(spot, acc.nh_rate, acc.nh_od)
    add(
        acc.nh_hour,
        1,
        ChargeCategory="Usage",
        ChargeFrequency="Usage-Based",
        ChargeDescription=_ec2_descriptions(acc.nh_type, spot_i, acc.nh_rate),
        PricingCategory=_codes(["Standard", "Dynamic", "Committed"], np.where(cov, 2, spot_i)),
        BilledCost=np.where(cov, 0.0, acc.nh_rate),
        EffectiveCost=acc.nh_effective,
        ListCost=acc.nh_od,
        ListUnitPrice=acc.nh_od,
        ContractedCost=contracted,
        ContractedUnitPrice=contracted,
        PricingQuantity=1.0,
        PricingUnit="Hours",
        ConsumedQuantity=1.0,
        ConsumedUnit="Hours",
        CommitmentDiscountId=_codes([None, acc.sp_arn], cov_i),
        CommitmentDiscountName=_codes([None, "compute-sp-1yr-no-upfront"], cov_i),
        CommitmentDiscountCategory=_codes([None, "Spend"], cov_i),
        CommitmentDiscountType=_codes([None, "Compute Savings Plan"], cov_i),
        CommitmentDiscountStatus=_codes([None, "Used"], cov_i),
        CommitmentDiscountQuantity=np.where(cov, acc.nh_sp_rate, np.nan),  # NaN -> null
        CommitmentDiscountUnit=_codes([None, "USD"], cov_i),
        AvailabilityZone=_codes(AVAILABILITY_ZONES, acc.node_az[nh]),
        ResourceId=_codes(acc.node_ids, nh),
        ResourceType="Instance",
        ServiceName=_EC2_SERVICE,
        ServiceCategory="Compute",
        ServiceSubcategory="Virtual Machines",
        SkuId=_codes(skus, sku_code),
        SkuPriceId=_codes(
            [f"{s}.{'JRTCKXETXF' if i < n_types else 'SPOT'}" for i, s in enumerate(skus)], sku_code
        ),
        SkuMeter=_codes(_ec2_usage_types(), sku_code),
        Tags=acc.tags.as_json(acc.node_tag[nh]),
        x_UsageType=_codes(_ec2_usage_types(), sku_code),
        x_Operation=_codes(["RunInstances", "RunInstances:SV001"], spot_i),
        x_ServiceCode="AmazonEC2",
        x_InstanceType=_codes(_TYPE_NAMES, acc.nh_type),
    )
    ledger.bill(_EC2_SERVICE, clock.month_of(acc.nh_hour), np.where(cov, 0.0, acc.nh_rate))
    ledger.allocate(acc.nh_effective, acc.node_tag[nh])

    # 2. Savings Plan (FOCUS spec): hourly recurring Purchase (EffectiveCost 0, it is
    # amortized into the Committed usage rows) and Unused commitment rows.
    n = clock.n_hours
    hours = np.arange(n)
    fee = np.full(n, acc.commitment)
    sp_cols: dict[str, Any] = {
        "ResourceId": acc.sp_arn,
        "ResourceName": "compute-sp-1yr-no-upfront",
        "ResourceType": "Savings Plan",
        "ServiceName": _SP_SERVICE,
        "ServiceCategory": "Compute",
        "ServiceSubcategory": "Other (Compute)",
        "CommitmentDiscountId": acc.sp_arn,
        "CommitmentDiscountName": "compute-sp-1yr-no-upfront",
        "CommitmentDiscountCategory": "Spend",
        "CommitmentDiscountType": "Compute Savings Plan",
        "CommitmentDiscountUnit": "USD",
        "SkuMeter": "ComputeSP:1yrNoUpfront",
        "x_UsageType": "ComputeSP:1yrNoUpfront",
        "x_ServiceCode": "ComputeSavingsPlans",
        "PricingUnit": "Hours",
    }
    add(
        hours,
        1,
        ChargeCategory="Purchase",
        ChargeFrequency="Recurring",
        ChargeDescription=_sp_description(acc.commitment),
        BilledCost=fee,
        EffectiveCost=0.0,
        ListCost=fee,
        ContractedCost=fee,
        PricingQuantity=1.0,
        CommitmentDiscountQuantity=fee,
        **sp_cols,
    )
    ledger.bill(_SP_SERVICE, clock.month_of(hours), fee)
    unused = np.round(acc.commitment - acc.sp_used, 10)
    ui = np.flatnonzero(unused > 1e-9)
    add(
        ui,
        1,
        ChargeCategory="Usage",
        ChargeFrequency="Usage-Based",
        ChargeDescription="Unused Compute Savings Plan commitment",
        PricingCategory="Committed",
        BilledCost=0.0,
        EffectiveCost=unused[ui],
        ListCost=0.0,
        ContractedCost=0.0,
        CommitmentDiscountStatus="Unused",
        CommitmentDiscountQuantity=unused[ui],
        **sp_cols,
    )

    # 3. Shared usage.
    for sh in _shared_usage(acc, clock, seed, scale):
        meta = _SHARED_META[sh.kind]
        unit_price = np.round(sh.cost / np.where(sh.amount > 0, sh.amount, 1.0), 10)
        add(
            sh.start_hour,
            sh.hours,
            ChargeCategory="Usage",
            ChargeFrequency="Usage-Based",
            ChargeDescription=meta["description"],
            **flat(sh.cost),
            ListUnitPrice=unit_price,
            ContractedUnitPrice=unit_price,
            PricingQuantity=sh.amount,
            PricingUnit=meta["focus_unit"],
            ConsumedQuantity=sh.amount,
            ConsumedUnit=meta["focus_unit"],
            ResourceId=sh.resource,
            ResourceName=sh.resource if sh.kind == "s3" else sh.cluster,
            ResourceType=meta["resource_type"] or None,
            ServiceName=meta["service"],
            ServiceCategory=meta["category"],
            ServiceSubcategory=meta["subcategory"],
            SkuId=_sku(meta["usage_type"]),
            SkuMeter=meta["usage_type"],
            Tags=acc.tags.as_json(np.full(sh.cost.size, sh.tag)),
            x_UsageType=meta["usage_type"],
            x_Operation=meta["operation"],
            x_ServiceCode=meta["product"],
        )
        ledger.bill(meta["service"], clock.month_of(sh.start_hour), sh.cost)
        ledger.allocate(sh.cost, np.full(sh.cost.size, sh.tag))

    # 4. Monthly: support (a Purchase, like AWS maps Fee lines), tax per service,
    # research credits; one correction of the previous period.
    first, span = clock.month_bounds[:-1], np.diff(clock.month_bounds)
    support = np.array([_support_fee(float(c)) for c in ledger.charges])
    ledger.bill(_SUPPORT_SERVICE, np.arange(clock.months), support)
    add(
        first,
        span,
        ChargeCategory="Purchase",
        ChargeFrequency="Recurring",
        ChargeDescription=_SUPPORT_SERVICE,
        ServiceName=_SUPPORT_SERVICE,
        ServiceCategory="Other",
        ServiceSubcategory="Support",
        x_ServiceCode="AWSSupportBusiness",
        x_UsageType="Dollar",
        **flat(support),
    )
    categories = {
        _EC2_SERVICE: ("Compute", "AmazonEC2"),
        _SP_SERVICE: ("Compute", "ComputeSavingsPlans"),
        _SUPPORT_SERVICE: ("Other", "AWSSupportBusiness"),
        **{meta["service"]: (meta["category"], meta["product"]) for meta in _SHARED_META.values()},
    }
    for service in sorted(ledger.billed):
        add(
            first,
            span,
            ChargeCategory="Tax",
            ChargeFrequency="Recurring",
            ChargeDescription=f"Tax for {service}",
            ServiceName=service,
            ServiceCategory=categories[service][0],
            x_ServiceCode=categories[service][1],
            **flat(np.round(ledger.billed[service] * TAX_RATE, 2)),
        )
    add(
        first,
        span,
        ChargeCategory="Credit",
        ChargeFrequency="One-Time",
        ChargeDescription="AWS Research Credits",
        ServiceName=_EC2_SERVICE,
        ServiceCategory="Compute",
        x_ServiceCode="AmazonEC2",
        **flat(np.full(clock.months, FOCUS_MONTHLY_CREDIT)),
    )
    billing = clock.months // 2
    corrected = max(billing - 1, 0)
    add(
        first[corrected : corrected + 1],
        span[corrected : corrected + 1],
        period=np.array([billing]),
        ChargeCategory="Adjustment",
        ChargeClass="Correction",
        ChargeFrequency="One-Time",
        ChargeDescription="Billing correction: EBS snapshot charges missing from a past invoice",
        ServiceName=_EC2_SERVICE,
        ServiceCategory="Compute",
        x_ServiceCode="AmazonEC2",
        **flat(np.array([FOCUS_ADJUSTMENT])),
    )
    return _Export(
        rows=rows,
        n_rows=rows.num_rows,
        split_rows=0,
        effective=math.fsum(totals["EffectiveCost"]),
        billed=math.fsum(totals["BilledCost"]),
        untagged_share=ledger.untagged_share,
    )


def _write_focus(export: _Export, clock: _Clock, root: Path, files: _Files) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, table in enumerate(export.rows.periods(clock.months)):
        path = root / f"focus-{clock.month_start(m):%Y-%m}.parquet"
        files.write(table, path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------
# Utilization frame and labels
# --------------------------------------------------------------------------------------
_UTIL_SCHEMA = pa.schema(
    [
        ("ds", _TS),
        *[(c, _STR) for c in ("workload_id", "cluster", "team", "kind", "instance_type")],
        *[(c, _F64) for c in UTILIZATION_NUMERIC if c != "replicas"],
        ("replicas", pa.int64()),
    ]
)


def _utilization(sims: Sequence[_Sim], clock: _Clock) -> pa.Table:
    """Hourly used and requested resources per workload, summed over its pods."""
    n = clock.n_hours
    chosen = sorted(
        (s for s in sims if s.in_metrics and s.pod_start.size), key=lambda s: s.spec.workload_id
    )
    cols: dict[str, list[np.ndarray]] = {f.name: [] for f in _UTIL_SCHEMA}
    owner = []
    for i, sim in enumerate(chosen):
        spec = sim.spec
        _, hour = _expand(sim.pod_start, sim.pod_len)
        count = np.bincount(hour, minlength=n)
        active = np.flatnonzero(count)
        reps = count[active].astype(np.float64)
        gpu_mem = INSTANCE_TYPES[spec.instance_type].gpu_memory_gib
        sums = {
            k: np.round(np.bincount(hour, weights=getattr(sim, k), minlength=n)[active], 4)
            for k in ("cpu_used", "mem_used", "gpu_used", "gmem_used")
        }
        cols["ds"].append(_us(active, clock.start_us))
        cols["cpu_used"].append(sums["cpu_used"])
        cols["cpu_requested"].append(reps * spec.cpu_request)
        cols["memory_used_gib"].append(sums["mem_used"])
        cols["memory_requested_gib"].append(reps * spec.memory_request_gib)
        cols["gpu_used"].append(sums["gpu_used"])
        cols["gpu_requested"].append(reps * spec.gpu_request)
        cols["gpu_memory_used_gib"].append(sums["gmem_used"])
        cols["gpu_memory_total_gib"].append(reps * spec.gpu_request * gpu_mem)
        cols["replicas"].append(count[active].astype(np.int64))
        owner.append(np.full(active.size, i))
    who = np.concatenate(owner) if owner else np.zeros(0, np.int64)
    strings = {
        "workload_id": [s.spec.workload_id for s in chosen],
        "cluster": [s.spec.cluster for s in chosen],
        "team": [s.spec.team for s in chosen],
        "kind": [s.spec.kind for s in chosen],
        "instance_type": [s.spec.instance_type for s in chosen],
    }
    arrays = []
    for f in _UTIL_SCHEMA:
        if f.name in strings:
            arrays.append(pa.array(strings[f.name], _STR).take(pa.array(who)))
        elif f.name == "ds":
            arrays.append(_ts(np.concatenate(cols["ds"]) if owner else np.zeros(0, np.int64)))
        else:
            values = np.concatenate(cols[f.name]) if owner else np.zeros(0)
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=_UTIL_SCHEMA)


_LABEL_COLUMNS = (
    "anomaly_id",
    "kind",
    "start",
    "end",
    "account",
    "cluster",
    "team",
    "project",
    "service",
    "resource_id",
    "expected_extra_cost",
    "workload_id",
    "description",
)


def _labels_frame(
    labels: Sequence[_Label], accounts: Sequence[_Account], clock: _Clock
) -> pd.DataFrame:
    records = []
    for lb in labels:
        spec = lb.sim.spec
        resource = ""
        if lb.node is not None:
            acc = next(a for a in accounts if a.account_id == spec.account)
            i = next(k for k, s in enumerate(acc.sims) if s is lb.sim)
            resource = str(acc.node_ids[int(acc.node_base[i]) + lb.node].as_py())
        records.append(
            {
                "anomaly_id": lb.anomaly.anomaly_id,
                "kind": lb.anomaly.kind,
                "start": _iso(clock.start + pd.Timedelta(hours=lb.start)),
                "end": _iso(clock.start + pd.Timedelta(hours=lb.end)),
                "account": spec.account,
                "cluster": spec.cluster,
                "team": spec.team or "",
                "project": spec.project,
                "service": _EC2_SERVICE,
                "resource_id": resource,
                "expected_extra_cost": lb.extra_cost,
                "workload_id": spec.workload_id,
                "description": lb.anomaly.description,
            }
        )
    return pd.DataFrame.from_records(records, columns=list(_LABEL_COLUMNS))


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
def generate_demo_fleet(
    out_dir: str | Path,
    *,
    seed: int = 7,
    start: str = "2025-01-01",
    months: int = 12,
    scale: float = 1.0,
    progress: Progress | None = None,
) -> DemoManifest:
    """Generate the demo fleet's billing exports, utilization frame and anomaly labels.

    Parameters
    ----------
    out_dir : str or Path
        Output folder; its ``focus/``, ``cur/``, ``metrics/`` and ``labels/``
        subfolders and ``demo-manifest.json`` are replaced, nothing else is touched.
    seed : int, default 7
        Non-negative seed; the same arguments give byte-identical files.
    start : str, default "2025-01-01"
        First day of the first billing period (UTC, the first of a month).
    months : int, default 12
        Number of monthly billing periods (hourly data throughout).
    scale : float, default 1.0
        Multiplier of the number of workloads (and of stored data); copies get a
        numeric suffix and their own random streams. Anomalies are injected once.
    progress : callable, optional
        Called as ``progress(stage, fraction)`` with ``stage`` one of
        ``simulate``, ``cur``, ``focus``, ``metrics``, ``labels`` and
        ``fraction`` in [0, 1].

    Returns
    -------
    DemoManifest
        Paths and the totals a correct reader must reproduce.

    Raises
    ------
    ConfigError
        When a parameter is out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"parameter seed must be a non-negative integer, got {seed!r}")
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ConfigError(f"parameter months must be a positive integer, got {months!r}")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf:
        raise ConfigError(f"parameter scale must be a positive finite number, got {scale!r}")
    seed, months, scale = int(seed), int(months), float(scale)

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    root = Path(out_dir)
    clock = _make_clock(start, months)
    prices = _make_prices(clock, seed)
    report("simulate", 0.0)
    sims, labels = _simulate(clock, prices, seed, scale)
    accounts = {
        acct: _build_account(
            acct, style, [s for s in sims if s.spec.account == acct], clock, prices, seed
        )
        for acct, style in ((CUR_ACCOUNT[0], "cur"), (FOCUS_ACCOUNT[0], "focus"))
    }
    cur_acc, focus_acc = accounts[CUR_ACCOUNT[0]], accounts[FOCUS_ACCOUNT[0]]
    report("simulate", 1.0)

    for sub in ("focus", "cur", "metrics", "labels"):
        shutil.rmtree(root / sub, ignore_errors=True)
    with _Files() as files:
        report("cur", 0.0)
        cur = _cur_export(cur_acc, clock, seed, scale)
        cur_files, cur_manifests = _write_cur(cur, cur_acc, clock, seed, root / "cur", files)
        cur.rows.release()
        report("cur", 1.0)
        report("focus", 0.0)
        focus = _focus_export(focus_acc, clock, seed, scale)
        focus_files = _write_focus(focus, clock, root / "focus", files)
        focus.rows.release()
    report("focus", 1.0)

    report("metrics", 0.0)
    metrics_path = root / "metrics" / "utilization.parquet"
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    util = _utilization(sims, clock)
    pq.write_table(util, metrics_path, compression="snappy")
    report("metrics", 1.0)

    labels_path = root / "labels" / "anomalies.csv"
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    frame = _labels_frame(labels, [cur_acc, focus_acc], clock)
    frame.to_csv(labels_path, index=False, lineterminator="\n")
    report("labels", 1.0)

    manifest = DemoManifest(
        root=root,
        focus_path=root / "focus",
        cur_path=root / "cur",
        metrics_path=metrics_path,
        labels_path=labels_path,
        start=clock.start,
        end=clock.end,
        seed=seed,
        months=months,
        scale=scale,
        focus_files=tuple(focus_files),
        cur_files=tuple(cur_files),
        cur_manifests=tuple(cur_manifests),
        rows={
            "focus": focus.n_rows,
            "cur": cur.n_rows,
            "cur_split": cur.split_rows,
            "metrics": util.num_rows,
            "labels": len(frame),
        },
        effective_cost={"focus": round(focus.effective, 6), "cur": round(cur.effective, 6)},
        billed_cost={"focus": round(focus.billed, 6), "cur": round(cur.billed, 6)},
        untagged_share={"focus": focus.untagged_share, "cur": cur.untagged_share},
        accounts=dict(ACCOUNT_NAMES),
        teams=tuple(TEAMS),
    )
    (root / "demo-manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest
