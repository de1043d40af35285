"""The workloads whose utilization CloudWatch holds: ECS services, EKS pods and node groups.

ECS services come from ``ecs.list_clusters`` / ``list_services`` / ``describe_services``
and their task definitions (``describe_task_definition``: task CPU and memory, and the GPUs
each container asks for in ``resourceRequirements``). EKS clusters and their node groups
come from ``eks.list_clusters`` / ``list_nodegroups`` / ``describe_nodegroup`` (instance
types, GPU AMI); EKS pod groups, which no AWS API lists, come from the Container Insights
metrics themselves (``cloudwatch.list_metrics`` of ``pod_cpu_utilization`` with the
``ClusterName, Namespace, PodName`` dimensions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from features.readers.aws._client import AwsOptions, aws_errors, make_client

__all__ = ["EcsService", "EksCluster", "EksPodGroup", "Inventory", "discover"]


@dataclass(frozen=True)
class EcsService:
    """An ECS service and what one of its tasks reserves."""

    cluster: str
    service: str
    task_definition: str = ""
    gpus_per_task: float = 0.0
    cpu_units: float | None = None  # task-level CPU (1024 = 1 vCPU)
    memory_mib: float | None = None

    @property
    def workload_id(self) -> str:
        return f"ecs/{self.cluster}/{self.service}"


@dataclass(frozen=True)
class EksCluster:
    """An EKS cluster and its managed node groups."""

    name: str
    nodegroups: tuple[str, ...] = ()
    instance_types: tuple[str, ...] = ()
    gpu: bool = False

    @property
    def workload_id(self) -> str:
        return f"eks/{self.name}/nodes"


@dataclass(frozen=True)
class EksPodGroup:
    """The pods Container Insights aggregates under one ``PodName`` of a namespace."""

    cluster: str
    namespace: str
    pod: str

    @property
    def workload_id(self) -> str:
        return f"eks/{self.cluster}/{self.namespace}/{self.pod}"


@dataclass
class Inventory:
    """Everything :func:`discover` found."""

    ecs: list[EcsService] = field(default_factory=list)
    eks_clusters: list[EksCluster] = field(default_factory=list)
    eks_pods: list[EksPodGroup] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ecs) + len(self.eks_clusters) + len(self.eks_pods)


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _paginate(client: Any, op: str, key: str, what: str, **params: Any) -> list[Any]:
    out: list[Any] = []
    with aws_errors(what):
        for page in client.get_paginator(op).paginate(**params):
            out += page.get(key, [])
    return out


def _gpus(task_def: dict[str, Any]) -> float:
    total = 0.0
    for c in task_def.get("containerDefinitions", []):
        for r in c.get("resourceRequirements", []) or []:
            if str(r.get("type", "")).upper() == "GPU":
                total += float(r.get("value", 0) or 0)
    return total


def _num(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def discover_ecs(client: Any, clusters: Sequence[str] | None = None) -> list[EcsService]:
    """ECS services of every (or the named) cluster with their task definitions' sizes."""
    arns = _paginate(client, "list_clusters", "clusterArns", "ecs.list_clusters")
    wanted = set(clusters) if clusters else None
    out: list[EcsService] = []
    task_defs: dict[str, dict[str, Any]] = {}
    for arn in sorted(arns):
        cluster = _name(arn)
        if wanted is not None and cluster not in wanted:
            continue
        services = _paginate(
            client, "list_services", "serviceArns", f"ecs.list_services {cluster}", cluster=arn
        )
        for start in range(0, len(services), 10):  # describe_services takes 10 at a time
            with aws_errors(f"ecs.describe_services {cluster}"):
                desc = client.describe_services(cluster=arn, services=services[start : start + 10])
            for svc in desc.get("services", []):
                td_arn = str(svc.get("taskDefinition", ""))
                if td_arn and td_arn not in task_defs:
                    with aws_errors(f"ecs.describe_task_definition {td_arn}"):
                        task_defs[td_arn] = client.describe_task_definition(taskDefinition=td_arn)[
                            "taskDefinition"
                        ]
                td = task_defs.get(td_arn, {})
                out.append(
                    EcsService(
                        cluster=cluster,
                        service=str(svc["serviceName"]),
                        task_definition=td_arn,
                        gpus_per_task=_gpus(td),
                        cpu_units=_num(td.get("cpu")),
                        memory_mib=_num(td.get("memory")),
                    )
                )
    return sorted(out, key=lambda s: s.workload_id)


def discover_eks(client: Any, clusters: Sequence[str] | None = None) -> list[EksCluster]:
    """EKS clusters with their node groups' instance types and whether they carry GPUs."""
    names = _paginate(client, "list_clusters", "clusters", "eks.list_clusters")
    wanted = set(clusters) if clusters else None
    out = []
    for name in sorted(names):
        if wanted is not None and name not in wanted:
            continue
        groups = _paginate(
            client, "list_nodegroups", "nodegroups", f"eks.list_nodegroups {name}", clusterName=name
        )
        types: set[str] = set()
        gpu = False
        for ng in sorted(groups):
            with aws_errors(f"eks.describe_nodegroup {name}/{ng}"):
                d = client.describe_nodegroup(clusterName=name, nodegroupName=ng)["nodegroup"]
            types.update(d.get("instanceTypes") or [])
            ami = str(d.get("amiType", ""))
            gpu = gpu or "GPU" in ami or "NVIDIA" in ami
        out.append(EksCluster(name, tuple(sorted(groups)), tuple(sorted(types)), gpu))
    return out


def discover_eks_pods(cw: Any, clusters: Sequence[str] | None = None) -> list[EksPodGroup]:
    """Pod groups that report Container Insights metrics (``ClusterName, Namespace, PodName``)."""
    metrics = _paginate(
        cw,
        "list_metrics",
        "Metrics",
        "cloudwatch.list_metrics ContainerInsights pod_cpu_utilization",
        Namespace="ContainerInsights",
        MetricName="pod_cpu_utilization",
    )
    wanted = set(clusters) if clusters else None
    found = set()
    for m in metrics:
        dims = {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}
        if set(dims) != {"ClusterName", "Namespace", "PodName"}:
            continue
        if wanted is not None and dims["ClusterName"] not in wanted:
            continue
        found.add(EksPodGroup(dims["ClusterName"], dims["Namespace"], dims["PodName"]))
    return sorted(found, key=lambda p: p.workload_id)


def discover(
    *,
    options: AwsOptions | None = None,
    ecs: bool = True,
    eks: bool = True,
    clusters: Sequence[str] | None = None,
    ecs_client: Any = None,
    eks_client: Any = None,
    cloudwatch_client: Any = None,
) -> Inventory:
    """Discover ECS services, EKS clusters (node groups) and EKS pod groups.

    Parameters
    ----------
    options : AwsOptions, optional
        Endpoint, region, profile, retries of the default clients.
    ecs, eks : bool
        Which orchestrators to look at.
    clusters : sequence of str, optional
        Only these cluster names (ECS and EKS).
    ecs_client, eks_client, cloudwatch_client : boto3 clients, optional
        Ready clients (default: made from ``options``).
    """
    inv = Inventory()
    if ecs:
        inv.ecs = discover_ecs(ecs_client or make_client("ecs", options), clusters)
    if eks:
        inv.eks_clusters = discover_eks(eks_client or make_client("eks", options), clusters)
        inv.eks_pods = discover_eks_pods(
            cloudwatch_client or make_client("cloudwatch", options), clusters
        )
    return inv
