"""Static catalog of the demo fleet: accounts, teams, instance prices and workloads.

Everything :mod:`features.demo` needs that is data rather than logic lives here, so
that the fleet can be read (and changed) in one place. Prices are public us-east-1
Linux rates in USD per hour; the P4d/P5 on-demand rates follow AWS's June 2025 price
cut (``PRICE_CUTS``). Savings Plan discounts are rounded, typical 1-year no-upfront
Compute Savings Plan discounts, not quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

WorkloadKind = Literal["training", "inference", "notebook", "pipeline"]
AnomalyKind = Literal["runaway_training", "forgotten_node", "level_shift", "spike"]

REGION = "us-east-1"
REGION_NAME = "US East (N. Virginia)"
USAGE_PREFIX = "USE1"
LOCAL_TZ = "America/New_York"
AVAILABILITY_ZONES: tuple[str, ...] = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d")

#: Account exported as CUR 2.0 (payer = usage account, standalone).
CUR_ACCOUNT = ("111111111111", "ml-platform-prod")
#: Account exported as FOCUS 1.2 (payer = usage account, standalone).
FOCUS_ACCOUNT = ("222222222222", "ml-research")
ACCOUNT_NAMES: dict[str, str] = dict([CUR_ACCOUNT, FOCUS_ACCOUNT])


@dataclass(frozen=True)
class InstanceType:
    """Capacity and price of one EC2 instance type.

    Attributes
    ----------
    name : str
        EC2 API name, e.g. ``"p4d.24xlarge"``.
    vcpu : int
        vCPUs.
    memory_gib : float
        Memory in GiB.
    gpus : int
        Number of GPUs (0 for CPU instances).
    gpu_model : str
        GPU model, empty for CPU instances.
    gpu_memory_gib : float
        Memory per GPU in GiB.
    on_demand : float
        Public on-demand rate (USD/hour) at the start of 2025.
    spot_discount : float
        Mean spot discount off on-demand (0.65 = spot costs 35% of on-demand).
    sp_discount : float
        Compute Savings Plan discount off on-demand.
    """

    name: str
    vcpu: int
    memory_gib: float
    gpus: int
    gpu_model: str
    gpu_memory_gib: float
    on_demand: float
    spot_discount: float
    sp_discount: float

    @property
    def family(self) -> str:
        return self.name.split(".")[0]


INSTANCE_TYPES: dict[str, InstanceType] = {
    it.name: it
    for it in (
        InstanceType("p4d.24xlarge", 96, 1152.0, 8, "A100", 40.0, 32.7726, 0.66, 0.31),
        InstanceType("p5.48xlarge", 192, 2048.0, 8, "H100", 80.0, 98.32, 0.62, 0.28),
        InstanceType("g5.xlarge", 4, 16.0, 1, "A10G", 24.0, 1.006, 0.68, 0.32),
        InstanceType("g5.12xlarge", 48, 192.0, 4, "A10G", 24.0, 5.672, 0.67, 0.32),
        InstanceType("g6.xlarge", 4, 16.0, 1, "L4", 24.0, 0.8048, 0.64, 0.30),
        InstanceType("g6e.xlarge", 4, 32.0, 1, "L40S", 48.0, 1.861, 0.63, 0.30),
        InstanceType("m6i.2xlarge", 8, 32.0, 0, "", 0.0, 0.384, 0.62, 0.34),
        InstanceType("c6i.4xlarge", 16, 32.0, 0, "", 0.0, 0.68, 0.63, 0.34),
        InstanceType("r6i.2xlarge", 8, 64.0, 0, "", 0.0, 0.504, 0.65, 0.34),
    )
}

#: Published on-demand price changes: instance type -> (effective from, new USD/hour).
PRICE_CUTS: dict[str, tuple[pd.Timestamp, float]] = {
    "p5.48xlarge": (pd.Timestamp("2025-06-01", tz="UTC"), 55.04),
    "p4d.24xlarge": (pd.Timestamp("2025-06-01", tz="UTC"), 21.96),
}

EKS_CONTROL_PLANE_RATE = 0.10  # USD per cluster-hour
S3_STANDARD_RATE = 0.023  # USD per GB-month
DATA_TRANSFER_OUT_RATE = 0.09  # USD per GB to the internet
DATA_TRANSFER_REGIONAL_RATE = 0.01  # USD per GB across AZs
TAX_RATE = 0.0625  # sales tax on the month's charges
SUPPORT_TIERS: tuple[tuple[float, float], ...] = (
    # Business support: share of the month's charges per tier (upper bound, rate).
    (10_000.0, 0.10),
    (80_000.0, 0.07),
    (250_000.0, 0.05),
    (float("inf"), 0.03),
)
#: Monthly promotional credit of the CUR account and research credit of the FOCUS account.
CUR_MONTHLY_CREDIT = -2500.0
FOCUS_MONTHLY_CREDIT = -1500.0
#: One billing correction in the FOCUS export (middle month).
FOCUS_ADJUSTMENT = 318.42


@dataclass(frozen=True)
class Team:
    """A team with its cost center and the owner of its untagged-free resources."""

    name: str
    cost_center: str
    owner: str


TEAMS: dict[str, Team] = {
    t.name: t
    for t in (
        Team("ml-platform", "CC-1010", "priya.shah@example.com"),
        Team("search", "CC-1020", "diego.alvarez@example.com"),
        Team("recsys", "CC-1030", "mei.chen@example.com"),
        Team("vision", "CC-1040", "omar.haddad@example.com"),
        Team("nlp", "CC-1050", "sara.okafor@example.com"),
        Team("data-eng", "CC-1060", "lukas.weber@example.com"),
    )
}

#: Clusters: name -> (account id, orchestrator).
CLUSTERS: dict[str, tuple[str, Literal["eks", "ecs"]]] = {
    "eks-ml-prod": (CUR_ACCOUNT[0], "eks"),
    "ecs-inference-prod": (CUR_ACCOUNT[0], "ecs"),
    "eks-research": (FOCUS_ACCOUNT[0], "eks"),
    "ecs-pipelines": (FOCUS_ACCOUNT[0], "ecs"),
}


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload of the demo fleet.

    The canonical ``team``/``environment`` are what the workload really is; the
    ``*_tag`` fields are the values written in the billing tags (variants on purpose,
    ``None`` = tag missing). Fields after ``gpu_request`` apply to one kind only.

    Attributes
    ----------
    name, cluster, kind, team, project, environment, instance_type
        Identity of the workload (``team`` is ``None`` for unowned workloads).
    team_tag, env_tag : str or None
        Tag values as written; ``team_tag=None`` drops the Team, Project and
        CostCenter tags (untagged spend).
    team_tag_fixed_from : float or None
        Fraction of the period after which new resources carry the canonical team
        value (someone fixed the tag mid-year).
    pods_per_node : int
        Pods (EKS) or tasks (ECS) packed on one instance.
    cpu_request, memory_request_gib, gpu_request : float
        Requests of one pod.
    base_replicas, min_replicas, max_replicas, od_base_nodes, growth_per_month,
    diurnal_amplitude, weekend_factor
        Inference: mean replicas at the start, autoscaler bounds, node slots below
        ``od_base_nodes`` are on-demand and the rest spot, monthly growth, daily
        swing and weekend level.
    jobs_per_week, median_job_hours, nodes_per_job, spot_share
        Training: job arrivals, duration, nodes (choice weights) and spot share.
    users
        Notebook: number of users.
    nodes, start_local_hour, run_hours
        Pipeline: nodes per nightly run, start hour (local time) and duration.
    """

    name: str
    cluster: str
    kind: WorkloadKind
    team: str | None
    project: str
    environment: str
    instance_type: str
    team_tag: str | None
    env_tag: str
    pods_per_node: int
    cpu_request: float
    memory_request_gib: float
    gpu_request: float
    team_tag_fixed_from: float | None = None
    base_replicas: float = 0.0
    min_replicas: int = 0
    max_replicas: int = 0
    od_base_nodes: int = 10_000
    growth_per_month: float = 0.0
    diurnal_amplitude: float = 0.0
    weekend_factor: float = 1.0
    jobs_per_week: float = 0.0
    median_job_hours: float = 0.0
    nodes_per_job: tuple[tuple[int, float], ...] = ((1, 1.0),)
    spot_share: float = 0.0
    users: int = 0
    nodes: int = 0
    start_local_hour: int = 1
    run_hours: float = 0.0
    tags_extra: dict[str, str] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return CLUSTERS[self.cluster][0]

    @property
    def orchestrator(self) -> Literal["eks", "ecs"]:
        return CLUSTERS[self.cluster][1]

    @property
    def namespace(self) -> str:
        return self.team or "default"

    @property
    def workload_id(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.name}"


def _inference(
    name: str,
    cluster: str,
    team: str | None,
    project: str,
    instance_type: str,
    *,
    pods_per_node: int,
    cpu: float,
    mem: float,
    gpu: float,
    base: float,
    lo: int,
    hi: int,
    od_base: int = 10_000,
    growth: float = 0.03,
    amp: float = 0.45,
    weekend: float = 0.75,
    environment: str = "prod",
    team_tag: str | None = "",
    env_tag: str = "",
    fixed_from: float | None = None,
) -> WorkloadSpec:
    return WorkloadSpec(
        name=name,
        cluster=cluster,
        kind="inference",
        team=team,
        project=project,
        environment=environment,
        instance_type=instance_type,
        team_tag=(team if team_tag == "" else team_tag),
        env_tag=env_tag or environment,
        team_tag_fixed_from=fixed_from,
        pods_per_node=pods_per_node,
        cpu_request=cpu,
        memory_request_gib=mem,
        gpu_request=gpu,
        base_replicas=base,
        min_replicas=lo,
        max_replicas=hi,
        od_base_nodes=od_base,
        growth_per_month=growth,
        diurnal_amplitude=amp,
        weekend_factor=weekend,
    )


def _training(
    name: str,
    cluster: str,
    team: str,
    project: str,
    instance_type: str,
    *,
    jobs: float,
    median_hours: float,
    nodes: tuple[tuple[int, float], ...],
    spot: float,
    growth: float = 0.05,
    environment: str = "prod",
    env_tag: str = "",
    team_tag: str | None = "",
) -> WorkloadSpec:
    it = INSTANCE_TYPES[instance_type]
    return WorkloadSpec(
        name=name,
        cluster=cluster,
        kind="training",
        team=team,
        project=project,
        environment=environment,
        instance_type=instance_type,
        team_tag=(team if team_tag == "" else team_tag),
        env_tag=env_tag or environment,
        pods_per_node=1,
        cpu_request=it.vcpu - 4.0,
        memory_request_gib=round(it.memory_gib * 0.85),
        gpu_request=float(it.gpus),
        jobs_per_week=jobs,
        median_job_hours=median_hours,
        nodes_per_job=nodes,
        spot_share=spot,
        growth_per_month=growth,
    )


def _notebooks(
    team: str | None, instance_type: str, users: int, *, team_tag: str | None = ""
) -> WorkloadSpec:
    it = INSTANCE_TYPES[instance_type]
    return WorkloadSpec(
        name="notebooks" if team else "sandbox-notebooks",
        cluster="eks-research",
        kind="notebook",
        team=team,
        project="research-notebooks" if team else "sandbox",
        environment="dev",
        instance_type=instance_type,
        team_tag=(team if team_tag == "" else team_tag),
        env_tag="dev",
        pods_per_node=1,
        cpu_request=it.vcpu - 0.5,
        memory_request_gib=it.memory_gib - 2.0,
        gpu_request=float(it.gpus),
        users=users,
    )


def _pipeline(
    name: str,
    team: str,
    project: str,
    instance_type: str,
    *,
    nodes: int,
    tasks: int,
    start: int,
    hours: float,
    growth: float = 0.02,
    env_tag: str = "prod",
    team_tag: str | None = "",
) -> WorkloadSpec:
    it = INSTANCE_TYPES[instance_type]
    return WorkloadSpec(
        name=name,
        cluster="ecs-pipelines",
        kind="pipeline",
        team=team,
        project=project,
        environment="prod",
        instance_type=instance_type,
        team_tag=(team if team_tag == "" else team_tag),
        env_tag=env_tag,
        pods_per_node=tasks,
        cpu_request=(it.vcpu - 1.0) / tasks,
        memory_request_gib=round((it.memory_gib - 4.0) / tasks, 1),
        gpu_request=0.0,
        nodes=nodes,
        start_local_hour=start,
        run_hours=hours,
        growth_per_month=growth,
    )


#: The fleet at ``scale=1``. Order matters for determinism.
FLEET: tuple[WorkloadSpec, ...] = (
    # --- CUR account, EKS: eks-ml-prod --------------------------------------------
    _training(
        "ranking-train",
        "eks-ml-prod",
        "recsys",
        "ranking",
        "p4d.24xlarge",
        jobs=4.0,
        median_hours=14.0,
        nodes=((1, 0.3), (2, 0.5), (4, 0.2)),
        spot=0.85,
    ),
    _training(
        "llm-finetune",
        "eks-ml-prod",
        "nlp",
        "chatbot",
        "p5.48xlarge",
        jobs=1.5,
        median_hours=20.0,
        nodes=((1, 0.5), (2, 0.5)),
        spot=0.6,
    ),
    _training(
        "detector-train",
        "eks-ml-prod",
        "vision",
        "detector",
        "p4d.24xlarge",
        jobs=3.0,
        median_hours=9.0,
        nodes=((1, 1.0),),
        spot=0.9,
        env_tag="Prod",
    ),
    _inference(
        "recsys-api",
        "eks-ml-prod",
        "recsys",
        "recsys-api",
        "g5.12xlarge",
        pods_per_node=4,
        cpu=10.0,
        mem=40.0,
        gpu=1.0,
        base=8.0,
        lo=4,
        hi=80,
        od_base=3,
    ),
    _inference(
        "chatbot",
        "eks-ml-prod",
        "nlp",
        "chatbot",
        "g6e.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=24.0,
        gpu=1.0,
        base=4.5,
        lo=3,
        hi=30,
        od_base=5,
        growth=0.05,
        env_tag="production",
    ),
    _inference(
        "model-gateway",
        "eks-ml-prod",
        "ml-platform",
        "model-gateway",
        "m6i.2xlarge",
        pods_per_node=2,
        cpu=3.0,
        mem=12.0,
        gpu=0.0,
        base=3.0,
        lo=2,
        hi=16,
        growth=0.02,
        team_tag="ML-Platform",
        fixed_from=0.5,
    ),
    _inference(
        "legacy-reco",
        "eks-ml-prod",
        None,
        "legacy-reco",
        "g5.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=12.0,
        gpu=1.0,
        base=3.5,
        lo=2,
        hi=10,
        growth=0.0,
        team_tag=None,
    ),
    # --- CUR account, ECS: ecs-inference-prod -------------------------------------
    _inference(
        "query-embed",
        "ecs-inference-prod",
        "search",
        "semantic-search",
        "g6.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=12.0,
        gpu=1.0,
        base=4.0,
        lo=2,
        hi=40,
        od_base=3,
    ),
    _inference(
        "ranker",
        "ecs-inference-prod",
        "search",
        "search-ranking",
        "g5.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=12.0,
        gpu=1.0,
        base=3.0,
        lo=2,
        hi=40,
        env_tag="Prod",
    ),
    _inference(
        "image-tagger",
        "ecs-inference-prod",
        "vision",
        "image-tagging",
        "g6.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=12.0,
        gpu=1.0,
        base=3.0,
        lo=1,
        hi=16,
        od_base=2,
    ),
    _inference(
        "stream-enrich",
        "ecs-inference-prod",
        "data-eng",
        "event-enrichment",
        "c6i.4xlarge",
        pods_per_node=2,
        cpu=6.0,
        mem=12.0,
        gpu=0.0,
        base=2.0,
        lo=2,
        hi=10,
        growth=0.02,
        environment="staging",
        team_tag="dataeng",
    ),
    # --- FOCUS account, EKS: eks-research -----------------------------------------
    _training(
        "llm-experiments",
        "eks-research",
        "nlp",
        "llm-research",
        "p5.48xlarge",
        jobs=1.5,
        median_hours=10.0,
        nodes=((1, 0.6), (2, 0.4)),
        spot=0.8,
        environment="dev",
    ),
    _training(
        "vit-experiments",
        "eks-research",
        "vision",
        "vit",
        "p4d.24xlarge",
        jobs=3.0,
        median_hours=8.0,
        nodes=((1, 1.0),),
        spot=0.85,
        environment="dev",
    ),
    _training(
        "research-train",
        "eks-research",
        "recsys",
        "two-tower",
        "g5.12xlarge",
        jobs=5.0,
        median_hours=6.0,
        nodes=((1, 0.6), (2, 0.4)),
        spot=0.9,
        environment="dev",
        env_tag="Dev",
    ),
    _notebooks("nlp", "g5.xlarge", 6),
    _notebooks("vision", "g5.xlarge", 5),
    _notebooks("search", "g6.xlarge", 4),
    _notebooks("ml-platform", "g6.xlarge", 3, team_tag="mlplatform"),
    _notebooks("recsys", "g5.xlarge", 4),
    _notebooks("data-eng", "g6.xlarge", 3),
    _notebooks(None, "g5.xlarge", 4, team_tag=None),
    _inference(
        "model-eval-api",
        "eks-research",
        "nlp",
        "llm-research",
        "g6.xlarge",
        pods_per_node=1,
        cpu=3.0,
        mem=12.0,
        gpu=1.0,
        base=1.5,
        lo=1,
        hi=8,
        environment="dev",
        growth=0.02,
    ),
    # --- FOCUS account, ECS: ecs-pipelines ----------------------------------------
    _pipeline(
        "nightly-etl",
        "data-eng",
        "lakehouse",
        "m6i.2xlarge",
        nodes=6,
        tasks=3,
        start=1,
        hours=3.0,
        env_tag="production",
    ),
    _pipeline(
        "feature-pipeline",
        "data-eng",
        "feature-store",
        "r6i.2xlarge",
        nodes=4,
        tasks=2,
        start=2,
        hours=4.0,
        team_tag="Data-Eng",
    ),
    _pipeline(
        "training-data-build",
        "recsys",
        "ranking",
        "c6i.4xlarge",
        nodes=8,
        tasks=4,
        start=3,
        hours=3.0,
    ),
    _pipeline(
        "index-build",
        "search",
        "semantic-search",
        "c6i.4xlarge",
        nodes=4,
        tasks=4,
        start=0,
        hours=2.0,
    ),
    _pipeline(
        "image-preprocess",
        "vision",
        "image-tagging",
        "m6i.2xlarge",
        nodes=3,
        tasks=3,
        start=4,
        hours=2.0,
        env_tag="Prod",
    ),
)


@dataclass(frozen=True)
class AnomalySpec:
    """An injected anomaly.

    Attributes
    ----------
    anomaly_id : str
        Stable id, e.g. ``"A001"``.
    kind : {"runaway_training", "forgotten_node", "level_shift", "spike"}
        What happened.
    workload : str
        Workload name (``FLEET``); for ``forgotten_node`` the cluster it sat in.
    at : float
        Where it starts, as a fraction of the generated period.
    hours : int
        Duration in hours (``level_shift``: until the end of the data).
    factor : float
        Load multiplier (``spike``, ``level_shift``).
    instance_type : str
        Instance type of a forgotten node.
    team : str or None
        Team tag of a forgotten node (``None`` = untagged).
    description : str
        One line for humans.
    """

    anomaly_id: str
    kind: AnomalyKind
    workload: str
    at: float
    hours: int = 0
    factor: float = 1.0
    instance_type: str = ""
    team: str | None = None
    description: str = ""


ANOMALIES: tuple[AnomalySpec, ...] = (
    AnomalySpec(
        "A001",
        "runaway_training",
        "llm-finetune",
        at=0.30,
        hours=84,
        description="fine-tuning job hung after its last epoch; 2 on-demand p5 nodes kept running",
    ),
    AnomalySpec(
        "A002",
        "forgotten_node",
        "eks-ml-prod",
        at=0.68,
        hours=144,
        instance_type="g5.12xlarge",
        team=None,
        description="untagged debug node launched by hand outside the node pool, no pods, 6 days",
    ),
    AnomalySpec(
        "A003",
        "spike",
        "ranker",
        at=0.62,
        hours=4,
        factor=7.0,
        description="bot traffic storm: search ranker scaled out 7x for 4 hours",
    ),
    AnomalySpec(
        "A004",
        "level_shift",
        "query-embed",
        at=0.55,
        factor=1.6,
        description="new, larger embedding model: query-embed baseline up 60% for good",
    ),
    AnomalySpec(
        "A005",
        "forgotten_node",
        "eks-research",
        at=0.40,
        hours=168,
        instance_type="p4d.24xlarge",
        team="vision",
        description="on-demand p4d left idle for a week after a debugging session",
    ),
    AnomalySpec(
        "A006",
        "runaway_training",
        "vit-experiments",
        at=0.80,
        hours=60,
        description="ViT experiment stuck in a data-loader deadlock, node held 60 hours",
    ),
    AnomalySpec(
        "A007",
        "spike",
        "nightly-etl",
        at=0.47,
        hours=5,
        factor=8.0,
        description="manual backfill of the lakehouse: 8x the nightly ETL nodes at midday",
    ),
    AnomalySpec(
        "A008",
        "level_shift",
        "model-eval-api",
        at=0.35,
        factor=2.5,
        description="eval harness moved to always-on evaluation: baseline up 2.5x",
    ),
)


@dataclass(frozen=True)
class Bucket:
    """An S3 bucket billed daily: size at the start (GB) and daily growth."""

    name: str
    account: str
    team: str | None
    project: str
    start_gb: float
    daily_growth: float


S3_BUCKETS: tuple[Bucket, ...] = (
    Bucket("mlp-training-data", CUR_ACCOUNT[0], "ml-platform", "feature-store", 45_000.0, 0.004),
    Bucket("mlp-model-artifacts", CUR_ACCOUNT[0], "nlp", "chatbot", 12_000.0, 0.003),
    Bucket("mlp-access-logs", CUR_ACCOUNT[0], None, "", 8_000.0, 0.002),
    Bucket("research-datasets", FOCUS_ACCOUNT[0], "vision", "vit", 30_000.0, 0.003),
    Bucket("research-checkpoints", FOCUS_ACCOUNT[0], "nlp", "llm-research", 15_000.0, 0.004),
    Bucket("research-scratch", FOCUS_ACCOUNT[0], None, "", 4_000.0, 0.001),
)
