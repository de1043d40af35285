"""CloudWatch Container Insights (``get_metric_data``) into the utilization frame.

One row per workload and period (``period`` seconds, ``ds`` = the period's start):

ECS services (``ECS/ContainerInsights``, dimensions ``ClusterName, ServiceName``; the
service-level values are totals over the service's tasks):
    ``cpu_used`` = CpuUtilized / 1024, ``cpu_requested`` = CpuReserved / 1024 (CPU units to
    vCPUs), ``memory_used_gib`` / ``memory_requested_gib`` = MemoryUtilized / MemoryReserved
    (MiB) / 1024, ``replicas`` = RunningTaskCount, ``gpu_requested`` = the GPUs the task
    definition reserves per task x RunningTaskCount.
EKS pod groups (``ContainerInsights``, ``ClusterName, Namespace, PodName``; values are per
pod averages):
    ``replicas`` = the average number of pods reporting = SampleCount(pod_cpu_usage_total) /
    (period / ``collection_interval``); per-pod pod_cpu_usage_total and pod_cpu_request
    (millicores / 1000), pod_memory_working_set and pod_memory_request (bytes), pod_gpu_request
    and pod_gpu_memory_used (bytes), times ``replicas``; ``gpu_used`` = pod_gpu_utilization / 100
    x pod_gpu_request x ``replicas`` (GPU-equivalents busy).
EKS nodes (``ContainerInsights``, ``ClusterName``; per-node averages), one row per cluster:
    ``replicas`` = cluster_node_count; ``cpu_used`` / ``cpu_requested`` = node_cpu_usage_total /
    node_cpu_limit (millicores / 1000) x nodes (the requested columns hold the capacity for
    node rows); memory likewise from node_memory_working_set / node_memory_limit;
    ``gpu_requested`` = node_gpu_limit x nodes, ``gpu_used`` = node_gpu_utilization / 100 x
    that.

Queries are batched up to 500 per call (the API's limit) and every ``NextToken`` is
followed. A metric without a value in a period (a gap) leaves its columns NaN for that row,
and the count of such gaps is reported; nothing is interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from features.exceptions import ConfigError, IngestError
from features.readers.aws._client import AwsOptions, aws_errors, make_client
from features.readers.aws.inventory import Inventory
from features.readers.base import Rejection
from features.schema import UTILIZATION_FRAME_COLUMNS, UTILIZATION_NUMERIC
from features.store import UtilizationRead

__all__ = ["MAX_QUERIES", "MetricQuery", "build_queries", "read_cloudwatch"]

#: get_metric_data accepts at most 500 queries per call.
MAX_QUERIES = 500
_GIB = float(1 << 30)

ECS_NAMESPACE = "ECS/ContainerInsights"
EKS_NAMESPACE = "ContainerInsights"
#: ECS metric -> key used in the row builder.
ECS_METRICS = ("CpuUtilized", "CpuReserved", "MemoryUtilized", "MemoryReserved", "RunningTaskCount")
EKS_POD_METRICS = (
    "pod_cpu_usage_total",
    "pod_cpu_request",
    "pod_memory_working_set",
    "pod_memory_request",
    "pod_gpu_utilization",
    "pod_gpu_memory_used",
    "pod_gpu_request",
)
EKS_NODE_METRICS = (
    "cluster_node_count",
    "node_cpu_usage_total",
    "node_cpu_limit",
    "node_memory_working_set",
    "node_memory_limit",
    "node_gpu_utilization",
    "node_gpu_limit",
)


@dataclass(frozen=True)
class MetricQuery:
    """One MetricStat query and the workload it belongs to."""

    workload: str
    metric: str
    namespace: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str = "Average"

    def to_api(self, qid: str, period: int) -> dict[str, Any]:
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": period,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


@dataclass(frozen=True)
class _Workload:
    workload_id: str
    kind: str
    cluster: str
    instance_type: str | None
    gpus_per_task: float = 0.0


def build_queries(inventory: Inventory) -> tuple[list[MetricQuery], dict[str, _Workload]]:
    """Every metric query the inventory needs, and the workloads by id."""
    queries: list[MetricQuery] = []
    workloads: dict[str, _Workload] = {}
    for svc in inventory.ecs:
        dims: tuple[tuple[str, str], ...] = (
            ("ClusterName", svc.cluster),
            ("ServiceName", svc.service),
        )
        workloads[svc.workload_id] = _Workload(
            svc.workload_id, "ecs_service", svc.cluster, None, svc.gpus_per_task
        )
        queries += [MetricQuery(svc.workload_id, m, ECS_NAMESPACE, dims) for m in ECS_METRICS]
    for pod in inventory.eks_pods:
        dims = (("ClusterName", pod.cluster), ("Namespace", pod.namespace), ("PodName", pod.pod))
        workloads[pod.workload_id] = _Workload(pod.workload_id, "eks_pod", pod.cluster, None)
        queries += [MetricQuery(pod.workload_id, m, EKS_NAMESPACE, dims) for m in EKS_POD_METRICS]
        queries.append(
            MetricQuery(pod.workload_id, "pods_reporting", EKS_NAMESPACE, dims, "SampleCount")
        )
    for cl in inventory.eks_clusters:
        dims = (("ClusterName", cl.name),)
        itype = cl.instance_types[0] if len(cl.instance_types) == 1 else None
        workloads[cl.workload_id] = _Workload(cl.workload_id, "eks_nodes", cl.name, itype)
        metrics = EKS_NODE_METRICS if cl.gpu else EKS_NODE_METRICS[:5]
        queries += [MetricQuery(cl.workload_id, m, EKS_NAMESPACE, dims) for m in metrics]
    return queries, workloads


def _api_metric(q: MetricQuery) -> MetricQuery:
    # The replica count of a pod group is the sample count of its CPU metric.
    if q.metric == "pods_reporting":
        return MetricQuery(q.workload, "pod_cpu_usage_total", q.namespace, q.dimensions, q.stat)
    return q


def fetch(
    client: Any,
    queries: list[MetricQuery],
    start: datetime,
    end: datetime,
    period: int,
    *,
    max_queries: int = MAX_QUERIES,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[dict[int, dict[datetime, float]], int]:
    """Values of each query (by position) per timestamp, and the number of API calls."""
    if not 1 <= max_queries <= MAX_QUERIES:
        raise ConfigError(f"parameter max_queries must be in 1..{MAX_QUERIES}, got {max_queries}")
    values: dict[int, dict[datetime, float]] = {i: {} for i in range(len(queries))}
    batches = [
        range(s, min(s + max_queries, len(queries))) for s in range(0, len(queries), max_queries)
    ]
    calls = 0
    for b, idx in enumerate(batches):
        api = [_api_metric(queries[i]).to_api(f"q{i}", period) for i in idx]
        token: str | None = None
        page = 0
        while True:
            page += 1
            params: dict[str, Any] = {
                "MetricDataQueries": api,
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                params["NextToken"] = token
            what = f"cloudwatch.get_metric_data (batch {b + 1}/{len(batches)}, page {page})"
            with aws_errors(what):
                resp = client.get_metric_data(**params)
            calls += 1
            for r in resp.get("MetricDataResults", []):
                i = int(str(r["Id"])[1:])
                if str(r.get("StatusCode", "Complete")) == "Forbidden":
                    raise IngestError(f"{what}: access to {queries[i].metric} is forbidden")
                for ts, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                    values[i][ts.astimezone(UTC)] = float(v)
            token = resp.get("NextToken") or None
            if token is None:
                break
        if on_batch is not None:
            on_batch(b + 1, len(batches))
    return values, calls


def _row(
    w: _Workload, ts: datetime, m: dict[str, float], period: int, interval: int
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(UTILIZATION_FRAME_COLUMNS)
    for c in UTILIZATION_NUMERIC:
        row[c] = math.nan
    row.update(
        ds=ts,
        workload_id=w.workload_id,
        cluster=w.cluster,
        kind=w.kind,
        instance_type=w.instance_type,
    )
    g = lambda k: m.get(k, math.nan)  # noqa: E731 - a gap reads as NaN
    if w.kind == "ecs_service":
        n = g("RunningTaskCount")
        row.update(
            cpu_used=g("CpuUtilized") / 1024,
            cpu_requested=g("CpuReserved") / 1024,
            memory_used_gib=g("MemoryUtilized") / 1024,
            memory_requested_gib=g("MemoryReserved") / 1024,
            replicas=n,
            gpu_requested=w.gpus_per_task * n,
        )
    elif w.kind == "eks_pod":
        n = g("pods_reporting") / (period / interval)
        req = g("pod_gpu_request")
        row.update(
            replicas=n,
            cpu_used=g("pod_cpu_usage_total") / 1000 * n,
            cpu_requested=g("pod_cpu_request") / 1000 * n,
            memory_used_gib=g("pod_memory_working_set") / _GIB * n,
            memory_requested_gib=g("pod_memory_request") / _GIB * n,
            gpu_requested=req * n,
            gpu_used=g("pod_gpu_utilization") / 100 * req * n,
            gpu_memory_used_gib=g("pod_gpu_memory_used") / _GIB * n,
        )
    else:
        n = g("cluster_node_count")
        gpus = g("node_gpu_limit") * n
        row.update(
            replicas=n,
            cpu_used=g("node_cpu_usage_total") / 1000 * n,
            cpu_requested=g("node_cpu_limit") / 1000 * n,
            memory_used_gib=g("node_memory_working_set") / _GIB * n,
            memory_requested_gib=g("node_memory_limit") / _GIB * n,
            gpu_requested=gpus,
            gpu_used=g("node_gpu_utilization") / 100 * gpus,
        )
    return row


def read_cloudwatch(
    inventory: Inventory,
    start: datetime,
    end: datetime,
    *,
    period: int = 3600,
    collection_interval: int = 60,
    client: Any = None,
    options: AwsOptions | None = None,
    max_queries: int = MAX_QUERIES,
    on_batch: Callable[[int, int], None] | None = None,
) -> UtilizationRead:
    """Read the inventory's Container Insights metrics into the utilization frame.

    Parameters
    ----------
    inventory : Inventory
        From :func:`features.readers.aws.inventory.discover`.
    start, end : datetime
        Time range (timezone-aware; ``end`` excluded).
    period : int
        Seconds per row, a multiple of 60.
    collection_interval : int
        Seconds between two samples of one pod (the CloudWatch agent's, 60 by default);
        turns sample counts into pod counts.
    client, options
        A ready CloudWatch client, or how to make one.
    max_queries : int
        Queries per ``get_metric_data`` call (at most 500).
    on_batch : callable, optional
        ``on_batch(done, total)`` after each batch (progress bars).

    Returns
    -------
    UtilizationRead
        Rows with at least one value; a row with a negative or non-finite measurement is
        rejected (``invalid_measurement``). Warnings count the calls and the gaps.
    """
    if period < 60 or period % 60:
        raise ConfigError(f"parameter period must be a multiple of 60 seconds, got {period}")
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ConfigError(
            f"parameters start and end must be timezone-aware with end > start, got {start}..{end}"
        )
    if collection_interval <= 0 or period % collection_interval:
        raise ConfigError(
            f"parameter collection_interval must divide period ({period}), "
            f"got {collection_interval}"
        )
    queries, workloads = build_queries(inventory)
    warnings = [
        f"{len(inventory.ecs)} ECS service(s), {len(inventory.eks_pods)} EKS pod group(s), "
        f"{len(inventory.eks_clusters)} EKS cluster(s); {len(queries)} metric queries"
    ]
    if not queries:
        warnings.append("no workloads found: nothing to read")
        empty = pa.Table.from_pylist([], schema=_schema())
        return UtilizationRead(paths=[], table=empty, rejections=[], rows_read=0, warnings=warnings)
    cw = client if client is not None else make_client("cloudwatch", options)
    values, calls = fetch(
        cw, queries, start, end, period, max_queries=max_queries, on_batch=on_batch
    )
    warnings[0] += f" in {calls} get_metric_data call(s)"
    per: dict[str, dict[datetime, dict[str, float]]] = {}
    expected: dict[str, list[str]] = {}
    for i, q in enumerate(queries):
        expected.setdefault(q.workload, []).append(q.metric)
        for ts, v in values[i].items():
            per.setdefault(q.workload, {}).setdefault(ts, {})[q.metric] = v
    rows: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    gaps = 0
    for wid in sorted(per):
        w = workloads[wid]
        for n, ts in enumerate(sorted(per[wid])):
            m = per[wid][ts]
            gaps += sum(1 for k in expected[wid] if k not in m)
            row = _row(w, ts, m, period, collection_interval)
            bad = next(
                (
                    c
                    for c in UTILIZATION_NUMERIC
                    if not math.isnan(row[c]) and (row[c] < 0 or math.isinf(row[c]))
                ),
                None,
            )
            if bad is not None:
                rejections.append(Rejection(f"cloudwatch:{wid}", n + 1, bad, "invalid_measurement"))
            else:
                rows.append(row)
    if gaps:
        warnings.append(
            f"{gaps} metric value(s) missing in some periods (gaps); left empty, not filled"
        )
    table = pa.Table.from_pylist(rows, schema=_schema())
    return UtilizationRead(
        paths=[f"cloudwatch:{wid}" for wid in sorted(per)],
        table=table,
        rejections=rejections,
        rows_read=len(rows) + len(rejections),
        warnings=warnings,
    )


def _schema() -> pa.Schema:
    return pa.schema(
        [
            ("ds", pa.timestamp("us", tz="UTC")),
            *[(c, pa.string()) for c in UTILIZATION_FRAME_COLUMNS[1:6]],
            *[(c, pa.float64()) for c in UTILIZATION_NUMERIC],
        ]
    )
