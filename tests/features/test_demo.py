"""Specification of the demo fleet generator (features.demo).

The fleet is generated a few times per module (two months for most checks, one
year for the shape) and checked with DuckDB SQL as the oracle: export totals,
split cost allocation, Savings Plan accounting, tag coverage, labels and the
utilization frame.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.demo import DemoManifest, generate_demo_fleet
from features.exceptions import ConfigError
from features.schema import UTILIZATION_FRAME_COLUMNS, validate_frame

TEAMS = {"ml-platform", "search", "recsys", "vision", "nlp", "data-eng"}
ANOMALY_KINDS = {"runaway_training", "forgotten_node", "level_shift", "spike"}
HOURS_JAN_FEB_2025 = (31 + 28) * 24

#: Effective (amortized) cost of a CUR 2.0 line, by line item type.
CUR_EFFECTIVE = """
    CASE line_item_line_item_type
        WHEN 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
        WHEN 'SavingsPlanRecurringFee'
            THEN savings_plan_total_commitment_to_date - savings_plan_used_commitment
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'DiscountedUsage' THEN reservation_effective_cost
        WHEN 'RIFee' THEN reservation_unused_amortized_upfront_fee_for_billing_period
            + reservation_unused_recurring_fee
        ELSE line_item_unblended_cost
    END"""


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """Two months, seed 7: most checks run on this."""
    return generate_demo_fleet(tmp_path_factory.mktemp("demo2"), months=2)


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """The default 12 months, for shape and size only."""
    return generate_demo_fleet(tmp_path_factory.mktemp("demo12"))


@pytest.fixture(scope="module")
def month(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DemoManifest, list[tuple[str, float]]]:
    """One month, seed 7, with the progress calls it made."""
    stages: list[tuple[str, float]] = []
    manifest = generate_demo_fleet(
        tmp_path_factory.mktemp("demo1"), months=1, progress=lambda s, f: stages.append((s, f))
    )
    return manifest, stages


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    return c


def focus(m: DemoManifest) -> str:
    return f"read_parquet('{m.focus_path.as_posix()}/*.parquet')"


def cur(m: DemoManifest) -> str:
    return f"read_parquet('{m.cur_path.as_posix()}/data/*/*.parquet')"


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def canonical_team(value: str) -> str:
    """The normalisation a tag governance step must do, as a test oracle."""
    key = re.sub(r"[^a-z]", "", value.lower())
    return {re.sub(r"[^a-z]", "", t): t for t in TEAMS}.get(key, value)


# -- layout -----------------------------------------------------------------------------------
def test_layout_follows_the_export_formats(fleet: DemoManifest) -> None:
    root = fleet.root
    assert [p.name for p in fleet.focus_files] == ["focus-2025-01.parquet", "focus-2025-02.parquet"]
    assert all(p.is_file() for p in (*fleet.focus_files, *fleet.cur_files, fleet.metrics_path))
    assert fleet.labels_path == root / "labels" / "anomalies.csv"
    assert fleet.start == pd.Timestamp("2025-01-01", tz="UTC")
    assert fleet.end == pd.Timestamp("2025-03-01", tz="UTC")
    for manifest_path, month in zip(fleet.cur_manifests, ("2025-01", "2025-02"), strict=True):
        assert manifest_path.parent.name == f"BILLING_PERIOD={month}"
        doc = json.loads(manifest_path.read_text())
        assert doc["exportName"] == "demo-cur2"
        assert doc["billingPeriod"]["start"] == f"{month}-01T00:00:00Z"
        assert doc["dataFiles"] == [f"data/BILLING_PERIOD={month}/demo-cur2-00001.snappy.parquet"]
        assert all((fleet.cur_path / f).is_file() for f in doc["dataFiles"])
        assert {"name": "resource_tags", "type": "map<string, string>"} in doc["columns"]
    written = json.loads((root / "demo-manifest.json").read_text())
    assert written["rows"] == fleet.rows
    assert written["effective_cost"] == fleet.effective_cost
    assert written["focus_path"] == "focus"


# -- FOCUS ------------------------------------------------------------------------------------
def test_focus_totals_are_sums_of_rows(fleet: DemoManifest, con: duckdb.DuckDBPyConnection) -> None:
    rows, effective, billed = con.execute(
        f"SELECT count(*), sum(EffectiveCost), sum(BilledCost) FROM {focus(fleet)}"
    ).fetchone() or (0, 0, 0)
    assert rows == fleet.rows["focus"]
    assert effective == pytest.approx(fleet.effective_cost["focus"], abs=1e-6)
    # A no-upfront Savings Plan: what is billed is what is amortized, over the export.
    assert billed == pytest.approx(effective, abs=1e-6)
    assert billed == pytest.approx(fleet.billed_cost["focus"], abs=1e-6)


def test_focus_columns_and_values(fleet: DemoManifest, con: duckdb.DuckDBPyConnection) -> None:
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {focus(fleet)}").fetchall()}
    for col in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        assert types[col] == "TIMESTAMP WITH TIME ZONE"
    for col in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
        assert types[col] == "DOUBLE"
    for col in ("Tags", "x_UsageType", "x_Operation", "x_InstanceType", "SubAccountId", "SkuId"):
        assert types[col] == "VARCHAR"
    cats = dict(
        con.execute(
            f"SELECT ChargeCategory, sum(EffectiveCost) FROM {focus(fleet)} GROUP BY 1"
        ).fetchall()
    )
    assert set(cats) == {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    assert cats["Credit"] < 0
    pricing = {
        r[0] for r in con.execute(f"SELECT DISTINCT PricingCategory FROM {focus(fleet)}").fetchall()
    }
    assert pricing == {"Standard", "Dynamic", "Committed"}
    assert (
        scalar(con, f"SELECT count(DISTINCT ProviderName || SubAccountId) FROM {focus(fleet)}") == 1
    )
    assert scalar(con, f"SELECT any_value(SubAccountId) FROM {focus(fleet)}") == "222222222222"
    spot = con.execute(
        f"SELECT min(BilledCost / ListCost), max(BilledCost / ListCost) FROM {focus(fleet)} "
        "WHERE PricingCategory = 'Dynamic'"
    ).fetchone()
    assert spot is not None and 0.2 <= spot[0] < spot[1] <= 0.45  # spot is 55-80% off
    usage_types = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT x_UsageType FROM {focus(fleet)} WHERE x_ServiceCode = 'AmazonEC2' "
            "AND ChargeCategory = 'Usage'"
        ).fetchall()
    }
    assert "USE1-SpotUsage:p4d.24xlarge" in usage_types
    assert all(re.fullmatch(r"USE1-(Box|Spot)Usage:[a-z0-9]+\.[0-9a-z]+", u) for u in usage_types)
    tags = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT Tags FROM {focus(fleet)} WHERE Tags IS NOT NULL"
        ).fetchall()
    ]
    assert all(isinstance(json.loads(t), dict) for t in tags)


def test_focus_savings_plan_follows_the_spec(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    purchase, unused, used, hours = con.execute(
        f"""SELECT
            sum(BilledCost) FILTER (
                WHERE ChargeCategory = 'Purchase' AND ResourceType = 'Savings Plan'),
            sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Unused'),
            sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Used'),
            count(*) FILTER (WHERE ChargeCategory = 'Purchase' AND ResourceType = 'Savings Plan')
        FROM {focus(fleet)}"""
    ).fetchone() or (0, 0, 0, 0)
    assert hours == HOURS_JAN_FEB_2025
    assert used > 0 and unused > 0
    assert used + unused == pytest.approx(purchase, rel=1e-9)
    assert scalar(
        con,
        f"SELECT max(abs(EffectiveCost)) FROM {focus(fleet)} WHERE ChargeCategory = 'Purchase' "
        "AND ResourceType = 'Savings Plan'",
    ) == pytest.approx(0.0)
    adjustment = con.execute(
        f"SELECT ChargeClass, ChargePeriodStart < BillingPeriodStart FROM {focus(fleet)} "
        "WHERE ChargeCategory = 'Adjustment'"
    ).fetchall()
    assert adjustment == [("Correction", True)]


# -- CUR 2.0 ----------------------------------------------------------------------------------
def test_cur_totals_and_line_types(fleet: DemoManifest, con: duckdb.DuckDBPyConnection) -> None:
    rows, ids, effective, billed = con.execute(
        f"""SELECT count(*), count(DISTINCT identity_line_item_id),
            sum({CUR_EFFECTIVE}) FILTER (WHERE split_line_item_parent_resource_id IS NULL),
            sum(line_item_unblended_cost)
        FROM {cur(fleet)}"""
    ).fetchone() or (0, 0, 0, 0)
    assert rows == ids == fleet.rows["cur"]
    assert effective == pytest.approx(fleet.effective_cost["cur"], abs=1e-6)
    assert billed == pytest.approx(fleet.billed_cost["cur"], abs=1e-6)
    types = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT line_item_line_item_type FROM {cur(fleet)}"
        ).fetchall()
    }
    assert types == {
        "Usage",
        "SavingsPlanCoveredUsage",
        "SavingsPlanRecurringFee",
        "SavingsPlanNegation",
        "Fee",
        "Tax",
        "Credit",
    }
    products = {
        r[0]
        for r in con.execute(f"SELECT DISTINCT line_item_product_code FROM {cur(fleet)}").fetchall()
    }
    assert {
        "AmazonEC2",
        "AmazonEKS",
        "AmazonECS",
        "AmazonS3",
        "AWSDataTransfer",
        "AWSSupportBusiness",
    } <= products
    interval = scalar(con, f"SELECT min(identity_time_interval) FROM {cur(fleet)}")
    assert interval == "2025-01-01T00:00:00Z/2025-01-01T01:00:00Z"
    assert (
        scalar(con, f"SELECT typeof(resource_tags) FROM {cur(fleet)} LIMIT 1")
        == "MAP(VARCHAR, VARCHAR)"
    )
    assert (
        scalar(
            con,
            f"SELECT count(*) FROM {cur(fleet)} WHERE line_item_usage_account_id <> '111111111111'",
        )
        == 0
    )


def test_cur_split_rows_sum_to_their_parent_instance_hour(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    stats = con.execute(
        f"""
        WITH parents AS (
            SELECT line_item_resource_id AS rid, line_item_usage_start_date AS ts,
                   {CUR_EFFECTIVE} AS cost
            FROM {cur(fleet)}
            WHERE line_item_product_code = 'AmazonEC2'
              AND line_item_line_item_type IN ('Usage', 'SavingsPlanCoveredUsage')
        ), children AS (
            SELECT split_line_item_parent_resource_id AS rid, line_item_usage_start_date AS ts,
                   sum(split_line_item_split_cost + split_line_item_unused_cost) AS cost,
                   max(abs(line_item_unblended_cost)) AS billed
            FROM {cur(fleet)}
            WHERE split_line_item_parent_resource_id IS NOT NULL
            GROUP BY ALL
        )
        SELECT count(*), count(p.rid), max(abs(c.cost - p.cost) / p.cost), max(c.billed)
        FROM children c LEFT JOIN parents p USING (rid, ts)"""
    ).fetchone()
    assert stats is not None
    n_groups, with_parent, worst, billed = stats
    assert n_groups > 10_000
    assert with_parent == n_groups  # every pod-hour ran on an instance-hour of the export
    assert worst < 1e-9
    assert billed == 0.0
    kinds = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT line_item_usage_type FROM {cur(fleet)} "
            "WHERE split_line_item_parent_resource_id IS NOT NULL"
        ).fetchall()
    }
    assert {"USE1-EKS-EC2-vCPU-Hours", "USE1-EKS-EC2-GB-Hours", "USE1-EKS-EC2-GPU-Hours"} <= kinds
    assert {"USE1-ECS-EC2-vCPU-Hours", "USE1-ECS-EC2-GB-Hours"} <= kinds
    ids = con.execute(
        f"SELECT any_value(line_item_resource_id) FROM {cur(fleet)} "
        "WHERE split_line_item_parent_resource_id IS NOT NULL "
        "GROUP BY line_item_product_code ORDER BY 1"
    ).fetchall()
    assert re.fullmatch(
        r"arn:aws:ecs:us-east-1:111111111111:task/ecs-inference-prod/[0-9a-f]{32}", ids[0][0]
    )
    assert re.fullmatch(
        r"arn:aws:eks:us-east-1:111111111111:pod/eks-ml-prod/[a-z-]+/[a-z0-9-]+/[0-9a-f-]{36}",
        ids[1][0],
    )
    # EKS node pools are tagged to the platform team; pods carry the real teams.
    teams = con.execute(
        f"""SELECT DISTINCT resource_tags['user_team'] FROM {cur(fleet)}
        WHERE split_line_item_parent_resource_id IS NOT NULL
          AND line_item_product_code = 'AmazonEKS'"""
    ).fetchall()
    assert {canonical_team(t) for (t,) in teams if t} >= {"recsys", "nlp", "vision", "ml-platform"}


def test_cur_savings_plan_lines_balance(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    covered, negated, n_cov, n_neg, over = con.execute(
        f"""SELECT
            sum(line_item_unblended_cost)
                FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'),
            sum(line_item_unblended_cost)
                FILTER (WHERE line_item_line_item_type = 'SavingsPlanNegation'),
            count(*) FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'),
            count(*) FILTER (WHERE line_item_line_item_type = 'SavingsPlanNegation'),
            count(*) FILTER (WHERE line_item_line_item_type = 'SavingsPlanRecurringFee'
                AND savings_plan_used_commitment
                    > savings_plan_total_commitment_to_date + 1e-9)
        FROM {cur(fleet)}"""
    ).fetchone() or (0, 0, 0, 0, 0)
    assert n_cov == n_neg > 0
    assert negated == pytest.approx(-covered, rel=1e-12)
    assert over == 0
    savings = scalar(
        con,
        f"SELECT sum(line_item_unblended_cost - savings_plan_savings_plan_effective_cost) "
        f"FROM {cur(fleet)} WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'",
    )
    assert savings > 0


# -- fleet content ----------------------------------------------------------------------------
def test_hourly_data_for_both_clusters_of_each_account(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    assert (
        scalar(
            con,
            f"SELECT count(DISTINCT ChargePeriodStart) FROM {focus(fleet)} "
            "WHERE x_ServiceCode = 'AmazonEC2' "
            "AND ChargeCategory = 'Usage'",
        )
        == HOURS_JAN_FEB_2025
    )
    assert (
        scalar(
            con,
            f"SELECT count(DISTINCT line_item_usage_start_date) FROM {cur(fleet)} "
            "WHERE line_item_product_code = 'AmazonEC2' "
            "AND line_item_line_item_type IN ('Usage', 'SavingsPlanCoveredUsage')",
        )
        == HOURS_JAN_FEB_2025
    )
    focus_clusters = con.execute(
        f"""SELECT DISTINCT json_extract_string(Tags, '$."aws:eks:cluster-name"'),
                            json_extract_string(Tags, '$."aws:ecs:clusterName"')
        FROM {focus(fleet)} WHERE ResourceType = 'Instance'"""
    ).fetchall()
    assert {c for row in focus_clusters for c in row if c} == {"eks-research", "ecs-pipelines"}
    cur_clusters = con.execute(
        f"""SELECT DISTINCT coalesce(resource_tags['aws_eks_cluster_name'],
                                     resource_tags['aws_ecs_cluster_name'])
        FROM {cur(fleet)} WHERE split_line_item_parent_resource_id IS NOT NULL"""
    ).fetchall()
    assert {c for (c,) in cur_clusters} == {"eks-ml-prod", "ecs-inference-prod"}
    types = {
        r[0] for r in con.execute(f"SELECT DISTINCT x_InstanceType FROM {focus(fleet)}").fetchall()
    }
    types |= {
        r[0]
        for r in con.execute(f"SELECT DISTINCT product_instance_type FROM {cur(fleet)}").fetchall()
    }
    assert {
        "p4d.24xlarge",
        "p5.48xlarge",
        "g5.xlarge",
        "g5.12xlarge",
        "g6.xlarge",
        "g6e.xlarge",
    } <= types
    assert {"m6i.2xlarge", "c6i.4xlarge", "r6i.2xlarge"} <= types


def test_six_teams_with_tag_variants(fleet: DemoManifest, con: duckdb.DuckDBPyConnection) -> None:
    raw = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT json_extract_string(Tags, '$.Team') FROM {focus(fleet)} "
            f"UNION SELECT DISTINCT resource_tags['user_team'] FROM {cur(fleet)}"
        ).fetchall()
        if r[0]
    }
    assert {canonical_team(t) for t in raw} == TEAMS
    assert {"ML-Platform", "mlplatform", "dataeng"} <= raw  # work for tag normalisation
    envs = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT json_extract_string(Tags, '$.Environment') FROM {focus(fleet)} "
            f"UNION SELECT DISTINCT resource_tags['user_environment'] FROM {cur(fleet)}"
        ).fetchall()
        if r[0]
    }
    assert {"prod", "Prod", "production", "dev", "staging"} <= envs


def test_untagged_share_matches_an_sql_oracle(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    focus_share = scalar(
        con,
        f"""SELECT sum(EffectiveCost) FILTER (WHERE json_extract_string(Tags, '$.Team') IS NULL)
                   / sum(EffectiveCost)
        FROM {focus(fleet)}
        WHERE ChargeCategory = 'Usage' AND coalesce(CommitmentDiscountStatus, '') <> 'Unused'""",
    )
    # Allocation view of CUR: pods instead of the instance-hours they ran on.
    cur_share = scalar(
        con,
        f"""WITH src AS (SELECT * FROM {cur(fleet)}),
        with_pods AS (
            SELECT DISTINCT split_line_item_parent_resource_id AS rid,
                line_item_usage_start_date AS ts
            FROM src WHERE split_line_item_parent_resource_id IS NOT NULL
        ), alloc AS (
            SELECT split_line_item_split_cost + split_line_item_unused_cost AS cost, resource_tags
            FROM src WHERE split_line_item_parent_resource_id IS NOT NULL
            UNION ALL
            SELECT {CUR_EFFECTIVE} AS cost, resource_tags
            FROM src ANTI JOIN with_pods p
              ON p.rid = src.line_item_resource_id AND p.ts = src.line_item_usage_start_date
            WHERE split_line_item_parent_resource_id IS NULL
              AND line_item_line_item_type IN ('Usage', 'SavingsPlanCoveredUsage')
        )
        SELECT sum(cost) FILTER (WHERE resource_tags['user_team'] IS NULL) / sum(cost)
        FROM alloc""",
    )
    assert focus_share == pytest.approx(fleet.untagged_share["focus"], rel=1e-9)
    assert cur_share == pytest.approx(fleet.untagged_share["cur"], rel=1e-9)
    assert 0.05 <= focus_share <= 0.12
    assert 0.05 <= cur_share <= 0.12


# -- labels -----------------------------------------------------------------------------------
def test_labels_cover_every_anomaly_kind_in_both_accounts(fleet: DemoManifest) -> None:
    labels = pd.read_csv(fleet.labels_path, dtype={"account": str})
    assert list(labels.columns[:11]) == [
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
    ]
    assert len(labels) == fleet.rows["labels"]
    assert set(labels["kind"]) == ANOMALY_KINDS
    assert set(labels["account"]) == {"111111111111", "222222222222"}
    assert labels["start"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z").all()
    start = pd.to_datetime(labels["start"], utc=True)
    end = pd.to_datetime(labels["end"], utc=True)
    assert ((fleet.start <= start) & (start < end) & (end <= fleet.end)).all()
    assert (labels["expected_extra_cost"] > 0).all()
    assert labels["anomaly_id"].is_unique


def test_forgotten_nodes_cost_what_the_labels_say(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    labels = pd.read_csv(fleet.labels_path, dtype={"account": str}).query(
        "kind == 'forgotten_node'"
    )
    assert len(labels) == 2
    for row in labels.itertuples():
        if row.account == "111111111111":
            sql = f"""SELECT sum(line_item_unblended_cost), count(*),
                min(line_item_usage_start_date)
                FROM {cur(fleet)} WHERE line_item_resource_id = '{row.resource_id}'
                AND line_item_line_item_type IN ('Usage', 'SavingsPlanCoveredUsage')"""
        else:
            sql = f"""SELECT sum(ListCost), count(*), min(ChargePeriodStart)
                FROM {focus(fleet)} WHERE ResourceId = '{row.resource_id}'"""
        cost, hours, first = con.execute(sql).fetchone() or (0, 0, None)
        assert cost == pytest.approx(row.expected_extra_cost, abs=0.01)
        assert hours == (pd.Timestamp(row.end) - pd.Timestamp(row.start)) / pd.Timedelta(hours=1)
        assert pd.Timestamp(first) == pd.Timestamp(row.start)


# -- utilization ------------------------------------------------------------------------------
def test_utilization_frame_is_canonical_and_consistent_with_cost(
    fleet: DemoManifest, con: duckdb.DuckDBPyConnection
) -> None:
    util = pd.read_parquet(fleet.metrics_path)
    assert tuple(util.columns) == UTILIZATION_FRAME_COLUMNS
    validate_frame(util, "utilization")
    assert len(util) == fleet.rows["metrics"]
    assert set(util["kind"]) == {"training", "inference", "notebook", "pipeline"}
    assert set(util["team"].dropna()) == TEAMS
    assert (util["cpu_used"] <= util["cpu_requested"] + 1e-9).all()
    assert (util["memory_used_gib"] <= util["memory_requested_gib"] + 1e-9).all()
    assert (util["gpu_used"] <= util["gpu_requested"] + 1e-9).all()
    # Over-requested: right-sizing has savings to find.
    assert util["cpu_used"].sum() / util["cpu_requested"].sum() < 0.6
    by_kind = util.groupby("kind")[["gpu_used", "gpu_requested"]].sum()
    assert by_kind.loc["notebook", "gpu_used"] / by_kind.loc["notebook", "gpu_requested"] < 0.2
    assert by_kind.loc["training", "gpu_used"] / by_kind.loc["training", "gpu_requested"] > 0.6
    # A workload that runs in an hour has cost in that hour (CUR pods, FOCUS nodes).
    util_hours = set(util.loc[util["workload_id"] == "eks-ml-prod/recsys/recsys-api", "ds"])
    cost_hours = {
        pd.Timestamp(r[0])
        for r in con.execute(
            f"SELECT DISTINCT line_item_usage_start_date FROM {cur(fleet)} "
            "WHERE resource_tags['aws_eks_workload_name'] = 'recsys-api' "
            "AND split_line_item_split_cost > 0"
        ).fetchall()
    }
    assert util_hours == cost_hours
    nb_hours = set(util.loc[util["workload_id"] == "eks-research/nlp/notebooks", "ds"])
    nb_cost = {
        pd.Timestamp(r[0])
        for r in con.execute(
            f"SELECT DISTINCT ChargePeriodStart FROM {focus(fleet)} WHERE EffectiveCost > 0 "
            "AND json_extract_string(Tags, '$.Team') = 'nlp' "
            "AND json_extract_string(Tags, '$.Project') = 'research-notebooks'"
        ).fetchall()
    }
    assert nb_hours == nb_cost


# -- determinism, parameters, scale -----------------------------------------------------------
def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_other_seed_differs(
    month: tuple[DemoManifest, list[tuple[str, float]]], tmp_path: Path
) -> None:
    first, stages = month
    again = generate_demo_fleet(tmp_path / "again", months=1)
    other = generate_demo_fleet(tmp_path / "other", months=1, seed=8)
    assert _digest(first.root) == _digest(again.root)
    d_first, d_other = _digest(first.root), _digest(other.root)
    assert d_first.keys() == d_other.keys()
    assert d_first["focus/focus-2025-01.parquet"] != d_other["focus/focus-2025-01.parquet"]
    assert first.effective_cost != other.effective_cost
    frame = pd.read_parquet(first.metrics_path)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again.metrics_path))
    assert not frame.equals(pd.read_parquet(other.metrics_path))
    assert {s for s, _ in stages} == {"simulate", "cur", "focus", "metrics", "labels"}
    assert all(0.0 <= f <= 1.0 for _, f in stages)
    assert stages[-1] == ("labels", 1.0)


def test_scale_multiplies_workloads_and_keeps_every_anomaly(
    month: tuple[DemoManifest, list[tuple[str, float]]], tmp_path: Path
) -> None:
    base = month[0]
    more = generate_demo_fleet(tmp_path / "more", months=1, scale=1.5)
    less = generate_demo_fleet(tmp_path / "less", months=1, scale=0.3)
    assert less.rows["labels"] == base.rows["labels"] == more.rows["labels"] == 8
    assert less.rows["metrics"] < base.rows["metrics"] < more.rows["metrics"]
    assert more.rows["cur"] > 1.2 * base.rows["cur"]
    ids = set(pd.read_parquet(more.metrics_path, columns=["workload_id"])["workload_id"])
    assert any(i.endswith("-2") for i in ids)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": "2025-01-15"}, "start"),
        ({"months": 0}, "months"),
        ({"scale": 0.0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_name_the_parameter(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=f"parameter {match}"):
        generate_demo_fleet(tmp_path, **kwargs)  # type: ignore[arg-type]


# -- one full year: shape and size only -------------------------------------------------------
def test_a_year_of_hourly_data(year: DemoManifest, con: duckdb.DuckDBPyConnection) -> None:
    assert len(year.focus_files) == 12
    assert len(year.cur_manifests) == 12
    assert year.end == pd.Timestamp("2026-01-01", tz="UTC")
    hours = scalar(
        con,
        f"SELECT count(DISTINCT ChargePeriodStart) FROM {focus(year)} "
        "WHERE ChargeCategory = 'Usage' "
        "AND x_ServiceCode = 'AmazonEC2'",
    )
    assert hours == 8760
    assert year.rows["cur"] > 500_000
    assert year.rows["focus"] > 100_000
    assert year.rows["metrics"] > 100_000
    # The June 2025 P5 price cut shows in the public on-demand rate.
    p5 = con.execute(
        f"""SELECT month(line_item_usage_start_date) < 6, max(pricing_public_on_demand_cost)
        FROM {cur(year)} WHERE line_item_usage_type = 'USE1-BoxUsage:p5.48xlarge'
        AND line_item_line_item_type IN ('Usage', 'SavingsPlanCoveredUsage')
        GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    assert p5 == [(False, 55.04), (True, 98.32)]
    monthly = np.array(
        [
            r[1]
            for r in con.execute(
                f"SELECT BillingPeriodStart, sum(EffectiveCost) FROM {focus(year)} "
                "WHERE ChargeCategory = 'Usage' GROUP BY 1 ORDER BY 1"
            ).fetchall()
        ]
    )
    assert monthly.size == 12 and (monthly > 0).all()
