"""CloudWatch Container Insights ingestion against a real moto server.

The inventory is created through the ECS and EKS APIs (task definitions with GPU
resourceRequirements, a GPU node group), metrics are written with put_metric_data, and the
CLI reads them back through get_metric_data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.readers.aws.cloudwatch import read_cloudwatch
from features.readers.aws.inventory import discover
from features.schema import validate_frame
from features.store import Store
from forecaster.cli import app
from tests.integration._moto import dummy_aws_env, moto_url, post  # noqa: F401

runner = CliRunner()
# Recent enough for CloudWatch, on whole 5-minute periods.
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
PERIODS = 4  # 4 x 5 minutes


def _put(
    batch: dict, namespace: str, dims: dict[str, str], metric: str, ts: datetime, value: float
) -> None:
    batch.setdefault(namespace, []).append(
        {
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": ts,
            "Value": value,
        }
    )


def seed_fleet() -> None:
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="ml")
    ecs.register_task_definition(
        family="infer",
        cpu="2048",
        memory="8192",
        containerDefinitions=[
            {
                "name": "model",
                "image": "model:1",
                "memory": 4096,
                "resourceRequirements": [{"type": "GPU", "value": "1"}],
            },
            {"name": "sidecar", "image": "envoy:1", "memory": 256},
        ],
    )
    ecs.register_task_definition(
        family="api", containerDefinitions=[{"name": "api", "image": "api:1", "memory": 512}]
    )
    ecs.create_service(cluster="ml", serviceName="infer", taskDefinition="infer", desiredCount=2)
    ecs.create_service(cluster="ml", serviceName="api", taskDefinition="api", desiredCount=1)

    subnet = "subnet-0123456789abcdef0"  # moto's EKS does not look the subnet up
    eks = boto3.client("eks")
    role = "arn:aws:iam::123456789012:role/eks"
    eks.create_cluster(name="eks-a", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
    eks.create_nodegroup(
        clusterName="eks-a",
        nodegroupName="gpu",
        subnets=[subnet],
        nodeRole=role,
        instanceTypes=["g5.xlarge"],
        amiType="AL2_x86_64_GPU",
    )

    cw: dict = {}
    for p in range(PERIODS):
        ts = T0 + timedelta(minutes=5 * p)
        svc = {"ClusterName": "ml", "ServiceName": "infer"}
        _put(cw, "ECS/ContainerInsights", svc, "CpuUtilized", ts, 1024.0 + 512 * p)
        _put(cw, "ECS/ContainerInsights", svc, "CpuReserved", ts, 4096.0)
        if p != 2:  # a gap: no memory reading in the third period
            _put(cw, "ECS/ContainerInsights", svc, "MemoryUtilized", ts, 6144.0)
        _put(cw, "ECS/ContainerInsights", svc, "MemoryReserved", ts, 16384.0)
        _put(cw, "ECS/ContainerInsights", svc, "RunningTaskCount", ts, 2.0)
        api = {"ClusterName": "ml", "ServiceName": "api"}
        _put(cw, "ECS/ContainerInsights", api, "CpuUtilized", ts, 256.0)
        _put(cw, "ECS/ContainerInsights", api, "RunningTaskCount", ts, 1.0)

        pod = {"ClusterName": "eks-a", "Namespace": "ml", "PodName": "trainer"}
        for minute in range(5):  # two pods, each reporting once a minute
            for _ in range(2):
                _put(
                    cw,
                    "ContainerInsights",
                    pod,
                    "pod_cpu_usage_total",
                    ts + timedelta(minutes=minute),
                    1500.0,
                )
        for metric, value in (
            ("pod_cpu_utilization", 37.5),
            ("pod_cpu_request", 2000.0),
            ("pod_memory_working_set", 3 * 2**30),
            ("pod_memory_request", 4 * 2**30),
            ("pod_gpu_utilization", 60.0),
            ("pod_gpu_memory_used", 10 * 2**30),
            ("pod_gpu_request", 1.0),
        ):
            _put(cw, "ContainerInsights", pod, metric, ts, value)
        node = {"ClusterName": "eks-a"}
        for metric, value in (
            ("cluster_node_count", 3.0),
            ("node_cpu_usage_total", 2000.0),
            ("node_cpu_limit", 4000.0),
            ("node_memory_working_set", 8 * 2**30),
            ("node_memory_limit", 16 * 2**30),
            ("node_gpu_utilization", 50.0),
            ("node_gpu_limit", 1.0),
        ):
            _put(cw, "ContainerInsights", node, metric, ts, value)

    client = boto3.client("cloudwatch")
    for namespace, data in cw.items():
        for start in range(0, len(data), 500):
            client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])


@pytest.fixture(scope="module")
def fleet(moto_url: str) -> Iterator[str]:  # noqa: F811
    """The fleet seeded once for the module (the tests only read it)."""
    post(moto_url, "/moto-api/reset", {})
    with pytest.MonkeyPatch.context() as mp:
        dummy_aws_env(mp, moto_url)
        seed_fleet()
        yield moto_url


def test_inventory_from_ecs_eks_and_metrics(fleet: str) -> None:
    inv = discover()
    assert [(s.workload_id, s.gpus_per_task, s.cpu_units) for s in inv.ecs] == [
        ("ecs/ml/api", 0.0, None),
        ("ecs/ml/infer", 1.0, 2048.0),
    ]
    assert [(c.name, c.instance_types, c.gpu) for c in inv.eks_clusters] == [
        ("eks-a", ("g5.xlarge",), True)
    ]
    assert [p.workload_id for p in inv.eks_pods] == ["eks/eks-a/ml/trainer"]
    assert discover(clusters=["nope"]).ecs == []


def test_cli_stores_ecs_eks_pod_and_node_rows(fleet: str, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    end = T0 + timedelta(minutes=5 * PERIODS)
    res = runner.invoke(
        app,
        [
            "ingest",
            "cloudwatch",
            "--start",
            T0.isoformat(),
            "--end",
            end.isoformat(),
            "--period",
            "300",
            "--store",
            str(store),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["balanced"] is True and rep["rows_rejected"] == 0
    assert rep["rows_accepted"] == 4 * PERIODS  # 2 ECS services, 1 pod group, 1 cluster
    assert any("missing in some periods (gaps)" in w for w in rep["warnings"])
    with Store(store, read_only=True) as st:
        df = st.utilization_frame()
    validate_frame(df, "utilization")
    infer = df[df["workload_id"] == "ecs/ml/infer"].reset_index(drop=True)
    assert list(infer["cpu_used"]) == [1.0, 1.5, 2.0, 2.5]
    assert set(infer["cpu_requested"]) == {4.0} and set(infer["gpu_requested"]) == {2.0}
    assert infer["memory_used_gib"].isna().tolist() == [False, False, True, False]  # the gap
    assert infer["gpu_used"].isna().all()  # ECS Container Insights has no GPU utilization
    pod = df[df["workload_id"] == "eks/eks-a/ml/trainer"].iloc[0]
    assert pod["replicas"] == pytest.approx(2.0)  # 10 samples in 5 minutes
    assert pod["cpu_used"] == pytest.approx(3.0) and pod["cpu_requested"] == pytest.approx(4.0)
    assert pod["memory_used_gib"] == pytest.approx(6.0)
    assert pod["gpu_used"] == pytest.approx(1.2) and pod["gpu_requested"] == pytest.approx(2.0)
    assert pod["gpu_memory_used_gib"] == pytest.approx(20.0)
    nodes = df[df["workload_id"] == "eks/eks-a/nodes"].iloc[0]
    assert (nodes["kind"], nodes["instance_type"]) == ("eks_nodes", "g5.xlarge")
    assert nodes["gpu_requested"] == pytest.approx(3.0) and nodes["gpu_used"] == pytest.approx(1.5)
    assert nodes["cpu_used"] == pytest.approx(6.0)
    assert pd.Timestamp(df["ds"].min()) == pd.Timestamp(T0)


def test_small_batches_give_the_same_frame(fleet: str) -> None:
    inv = discover()
    end = T0 + timedelta(minutes=5 * PERIODS)
    one = read_cloudwatch(inv, T0, end, period=300)
    many = read_cloudwatch(inv, T0, end, period=300, max_queries=4)
    assert "in 1 get_metric_data call(s)" in one.warnings[0]
    n_queries = int(one.warnings[0].split("; ")[1].split()[0])
    assert f"in {-(-n_queries // 4)} get_metric_data call(s)" in many.warnings[0]
    pd.testing.assert_frame_equal(one.table.to_pandas(), many.table.to_pandas())
