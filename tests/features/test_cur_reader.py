"""CUR 2.0 reader: amortized cost, split cost allocation, tags, manifests, rejections, errors."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features.exceptions import ConfigError, IngestError
from features.readers._tags import (
    TAG_DIMENSIONS,
    normalize_tag_key,
    normalize_tags,
    tag_dimensions,
    tag_lookup_table,
    tags_to_json,
)
from features.readers.base import COST_ARROW_SCHEMA, ReadResult
from features.readers.cur import read_cur
from features.schema import COST_FRAME_COLUMNS, validate_frame
from tests.features.cur_fixtures import (
    T0,
    cur_row,
    cur_table,
    hour,
    pod_row,
    synthetic_cur_table,
    write_cur_export,
)

NODE = "i-0node"
EKS_POD = "arn:aws:eks:us-east-1:111122223333:pod/prod-gpu/ml/trainer-0/3f2a"
ECS_TASK = "arn:aws:ecs:us-east-1:111122223333:task/batch-cluster/0a1b2c3d"


def export(tmp_path: Path, rows: list[dict[str, Any]], **kwargs: Any) -> Path:
    """A one-period, one-file export of ``rows``."""
    return write_cur_export(tmp_path / "cur", {"2025-03": [rows]}, **kwargs)


def frame(res: ReadResult) -> pd.DataFrame:
    return res.table.to_pandas()


def assert_accounting(res: ReadResult) -> None:
    """rows read = accepted + rejected, and the cost read is the accepted plus rejected cost."""
    assert res.rows_read == res.rows_accepted + len(res.rejections)
    rejected = math.fsum(
        r.effective_cost for r in res.rejections if math.isfinite(r.effective_cost)
    )
    accepted = math.fsum(res.table["effective_cost"].to_pylist())
    assert res.effective_cost_read == pytest.approx(accepted + rejected, abs=1e-9)


def node_hour(
    start: datetime = T0, node_cost: float = 10.0, **node_cols: Any
) -> list[dict[str, Any]]:
    """One GPU node-hour split across an EKS pod and an ECS task (6 + 4 = node cost)."""
    line_type = node_cols.pop("line_item_type", "Usage")
    return [
        cur_row(
            line_type,
            node_cost,
            start=start,
            resource_id=NODE,
            instance_type="g5.12xlarge",
            tags={"user_team": "platform", "user_Environment": "prod"},
            **node_cols,
        ),
        pod_row(
            NODE,
            node_cost * 0.5,
            node_cost * 0.1,
            arn=EKS_POD,
            start=start,
            tags={"user_team": "ml", "user_CostCenter": "cc-42"},
        ),
        pod_row(
            NODE,
            node_cost * 0.3,
            node_cost * 0.1,
            arn=ECS_TASK,
            start=start,
            tags={"user_Team": "search"},
        ),
    ]


# -- mapping -----------------------------------------------------------------------------------


def test_maps_to_canonical_cost_frame(tmp_path: Path) -> None:
    res = read_cur(export(tmp_path, [cur_row("Usage", 1.25, tags={"user_team": "ml"})]))
    assert res.table.schema == COST_ARROW_SCHEMA
    df = frame(res)
    assert list(df.columns) == list(COST_FRAME_COLUMNS)
    validate_frame(df, "cost")
    row = df.iloc[0]
    assert row["ds"] == pd.Timestamp("2025-03-01T00:00", tz="UTC")
    assert row["ds_end"] == pd.Timestamp("2025-03-01T01:00", tz="UTC")
    assert (row["provider"], row["account"], row["region"]) == ("AWS", "111122223333", "us-east-1")
    assert (row["service"], row["instance_type"]) == ("AmazonEC2", "g5.xlarge")
    assert (row["resource_id"], row["usage_type"]) == ("i-0aaa", "USE1-BoxUsage:g5.xlarge")
    assert (row["effective_cost"], row["billed_cost"], row["list_cost"]) == (1.25, 1.25, 1.25)
    assert (row["usage_quantity"], row["usage_unit"], row["currency"]) == (1.0, "Hrs", "USD")
    assert (row["source"], row["team"]) == ("cur", "ml")
    assert json.loads(row["tags"]) == {"team": "ml"}
    assert json.loads(row["extras"]) == {
        "line_item_type": "Usage",
        "operation": "RunInstances",
        "split_parent_resource_id": None,
    }
    # payer / billing period / line item id @ usage start (epoch seconds)
    assert row["line_id"] == "111122223333/2025-03/2025-03-1-00000@1740787200"
    assert res.paths == [
        str(tmp_path.resolve() / "cur/data/BILLING_PERIOD=2025-03/finops-cur2-00001.snappy.parquet")
    ]
    assert_accounting(res)


AMORTIZED_CASES: list[tuple[str, dict[str, Any], float, float, str, str, str]] = [
    # line type, columns, effective, billed, charge category, purchase option, pricing category
    ("Usage", {}, 4.0, 4.0, "Usage", "on_demand", "Standard"),
    (
        "SavingsPlanCoveredUsage",
        {"savings_plan_savings_plan_effective_cost": 2.5},
        2.5,
        4.0,
        "Usage",
        "committed",
        "Committed",
    ),
    ("SavingsPlanNegation", {}, 0.0, 4.0, "Usage", "committed", "Committed"),
    ("SavingsPlanUpfrontFee", {}, 0.0, 4.0, "Purchase", "committed", "Committed"),
    (
        "SavingsPlanRecurringFee",
        {"savings_plan_total_commitment_to_date": 4.0, "savings_plan_used_commitment": 3.25},
        0.75,
        4.0,
        "Purchase",
        "committed",
        "Committed",
    ),
    (
        "DiscountedUsage",
        {"reservation_effective_cost": 1.5},
        1.5,
        4.0,
        "Usage",
        "committed",
        "Committed",
    ),
    (
        "RIFee",
        {
            "reservation_unused_amortized_upfront_fee_for_billing_period": 0.5,
            "reservation_unused_recurring_fee": 0.25,
        },
        0.75,
        4.0,
        "Purchase",
        "committed",
        "Committed",
    ),
    (
        "Fee",
        {"reservation_reservation_a_r_n": "arn:aws:ec2:us-east-1:1:reserved-instances/r-1"},
        0.0,
        4.0,
        "Purchase",
        "committed",
        "Committed",
    ),
    ("Fee", {}, 4.0, 4.0, "Purchase", "other", "Other"),
    ("Tax", {}, 4.0, 4.0, "Tax", "other", "Other"),
    ("EdpDiscount", {}, 4.0, 4.0, "Adjustment", "other", "Other"),
    ("BundledDiscount", {}, 4.0, 4.0, "Adjustment", "other", "Other"),
]


@pytest.fixture(scope="module")
def amortized_read(tmp_path_factory: pytest.TempPathFactory) -> ReadResult:
    """One export holding one row per case of AMORTIZED_CASES, in that order (read once)."""
    rows = [cur_row(case[0], 4.0, **case[1]) for case in AMORTIZED_CASES]
    return read_cur(write_cur_export(tmp_path_factory.mktemp("amortized"), {"2025-03": [rows]}))


@pytest.mark.parametrize(
    "case", range(len(AMORTIZED_CASES)), ids=[f"{i}-{c[0]}" for i, c in enumerate(AMORTIZED_CASES)]
)
def test_amortized_cost_per_line_item_type(amortized_read: ReadResult, case: int) -> None:
    line_type, _, effective, billed, charge, purchase, pricing = AMORTIZED_CASES[case]
    row = frame(amortized_read).iloc[case]
    assert json.loads(row["extras"])["line_item_type"] == line_type
    assert row["effective_cost"] == pytest.approx(effective)
    assert row["billed_cost"] == pytest.approx(billed)
    assert (row["charge_category"], row["purchase_option"]) == (charge, purchase)
    assert row["pricing_category"] == pricing


def test_effective_cost_read_is_the_amortized_total(amortized_read: ReadResult) -> None:
    expected = math.fsum(case[2] for case in AMORTIZED_CASES)
    assert amortized_read.effective_cost_read == pytest.approx(expected)
    assert_accounting(amortized_read)


def test_amortized_formula_treats_missing_columns_as_zero(tmp_path: Path) -> None:
    rows = [
        cur_row("SavingsPlanRecurringFee", 4.0, savings_plan_total_commitment_to_date=4.0),
        cur_row("Usage", 2.0),
    ]
    table = cur_table(rows, drop=("savings_plan_used_commitment", "pricing_public_on_demand_cost"))
    path = tmp_path / "one.parquet"
    pq.write_table(table, path)
    df = frame(read_cur(path))
    assert df["effective_cost"].tolist() == [4.0, 2.0]
    assert df["list_cost"].isna().all()  # no public on-demand cost column -> NaN


def test_credits_and_refunds_are_negative_and_kept(tmp_path: Path) -> None:
    rows = [
        cur_row("Usage", 5.0),
        cur_row("Credit", -3.0, resource_id=None),
        cur_row("Refund", -1.5, resource_id=None),
    ]
    res = read_cur(export(tmp_path, rows))
    df = frame(res)
    assert res.rejections == []
    assert df["effective_cost"].tolist() == [5.0, -3.0, -1.5]
    assert df["charge_category"].tolist() == ["Usage", "Credit", "Credit"]
    assert res.effective_cost_read == pytest.approx(0.5)
    validate_frame(df, "cost")


@pytest.mark.parametrize(
    ("cols", "expected"),
    [
        ({"pricing_term": "Spot"}, "spot"),
        ({"usage_type": "USE1-SpotUsage:g5.2xlarge", "pricing_term": None}, "spot"),
        ({"pricing_term": "OnDemand"}, "on_demand"),
    ],
)
def test_spot_detection(tmp_path: Path, cols: dict[str, Any], expected: str) -> None:
    df = frame(read_cur(export(tmp_path, [cur_row("Usage", 1.0, **cols)])))
    assert df["purchase_option"].tolist() == [expected]
    assert df["pricing_category"].tolist() == [
        {"spot": "Dynamic", "on_demand": "Standard"}[expected]
    ]


# -- split cost allocation ---------------------------------------------------------------------


def test_split_allocation_moves_node_cost_to_pods_without_double_counting(tmp_path: Path) -> None:
    rows = node_hour(hour(0), 10.0) + node_hour(hour(1), 7.77) + [cur_row("Tax", 1.0)]
    res = read_cur(export(tmp_path, rows))
    df = frame(res)
    assert res.rejections == []
    non_split_amortized = 10.0 + 7.77 + 1.0
    assert round(df["effective_cost"].sum(), 2) == round(non_split_amortized, 2)
    assert df["effective_cost"].sum() == pytest.approx(non_split_amortized, abs=1e-9)
    assert df["billed_cost"].sum() == pytest.approx(non_split_amortized, abs=1e-9)
    assert res.effective_cost_read == pytest.approx(non_split_amortized)

    node = df[df["resource_id"] == NODE]
    assert node["effective_cost"].abs().max() < 1e-9  # residual of a fully split node ~0
    pods = df[df["resource_id"] == EKS_POD]
    assert pods["effective_cost"].tolist() == pytest.approx([6.0, 7.77 * 0.6])
    assert set(pods["team"]) == {"ml"} and set(pods["cost_center"]) == {"cc-42"}
    assert set(pods["cluster"]) == {"prod-gpu"}
    assert set(pods["instance_type"]) == {"g5.12xlarge"}  # inherited from the node row
    tasks = df[df["resource_id"] == ECS_TASK]
    assert set(tasks["cluster"]) == {"batch-cluster"} and set(tasks["team"]) == {"search"}
    assert tasks["effective_cost"].tolist() == pytest.approx([4.0, 7.77 * 0.4])
    assert set(node["team"]) == {"platform"} and set(node["environment"]) == {"prod"}
    assert json.loads(pods["extras"].iloc[0])["split_parent_resource_id"] == NODE
    assert_accounting(res)


def test_split_residual_is_kept_on_the_node(tmp_path: Path) -> None:
    rows = node_hour(hour(0), 10.0)
    rows[0]["line_item_unblended_cost"] = 12.5  # node costs more than its pods use
    df = frame(read_cur(export(tmp_path, rows)))
    assert df.loc[df["resource_id"] == NODE, "effective_cost"].tolist() == pytest.approx([2.5])
    assert df["effective_cost"].sum() == pytest.approx(12.5)


def test_split_of_savings_plan_covered_node_uses_amortized_cost(tmp_path: Path) -> None:
    rows = node_hour(
        hour(0),
        10.0,
        line_item_type="SavingsPlanCoveredUsage",
        savings_plan_savings_plan_effective_cost=10.0,
    )
    rows[0]["line_item_unblended_cost"] = 16.0  # on-demand price; SP effective cost 10
    df = frame(read_cur(export(tmp_path, rows)))
    node = df[df["resource_id"] == NODE].iloc[0]
    assert node["effective_cost"] == pytest.approx(0.0, abs=1e-9)
    assert node["billed_cost"] == pytest.approx(6.0)  # billed total is preserved too
    assert df["billed_cost"].sum() == pytest.approx(16.0)
    assert set(df["purchase_option"]) == {"committed"}  # pods inherit how the node was bought


def test_split_children_share_several_parent_rows_of_one_hour(tmp_path: Path) -> None:
    rows = node_hour(hour(0), 10.0)
    rows[0]["line_item_unblended_cost"] = 6.0
    rows.append(
        cur_row(
            "SavingsPlanCoveredUsage",
            9.0,
            resource_id=NODE,
            savings_plan_savings_plan_effective_cost=4.0,
        )
    )
    res = read_cur(export(tmp_path, rows))
    df = frame(res)
    assert df["effective_cost"].sum() == pytest.approx(10.0, abs=1e-9)
    node = df[df["resource_id"] == NODE]
    assert node["effective_cost"].tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert_accounting(res)


def test_spot_node_makes_its_pods_spot(tmp_path: Path) -> None:
    rows = node_hour(hour(0), 3.0, pricing_term="Spot", usage_type="USE1-SpotUsage:g5.12xlarge")
    df = frame(read_cur(export(tmp_path, rows)))
    assert set(df["purchase_option"]) == {"spot"}
    assert set(df["pricing_category"]) == {"Dynamic"}


def test_split_row_without_parent_is_rejected(tmp_path: Path) -> None:
    rows = [
        cur_row("Usage", 2.0),
        pod_row("i-gone", 1.0, 0.5),  # row 1: parent not in the data
        *node_hour(hour(0), 10.0),  # rows 2-4
        pod_row(NODE, 1.0, 0.0, start=hour(5)),  # row 5: node has no row at 05:00
    ]
    root = export(tmp_path, rows)
    res = read_cur(root)
    assert res.rejection_counts == {"split_row_without_parent": 2}
    assert [r.row for r in res.rejections] == [1, 5]
    assert {r.column for r in res.rejections} == {"split_line_item_parent_resource_id"}
    assert {r.effective_cost for r in res.rejections} == {0.0}
    assert res.rejections[0].file.endswith(
        "BILLING_PERIOD=2025-03/finops-cur2-00001.snappy.parquet"
    )
    df = frame(res)
    assert df["effective_cost"].sum() == pytest.approx(12.0)  # orphans add nothing
    assert_accounting(res)


def test_split_children_of_a_rejected_parent_are_rejected(tmp_path: Path) -> None:
    rows = node_hour(hour(0), 10.0)
    rows[0]["line_item_unblended_cost"] = float("nan")
    res = read_cur(export(tmp_path, rows))
    assert res.rejection_counts == {"invalid_cost": 1, "split_row_without_parent": 2}
    assert res.rows_accepted == 0
    assert res.effective_cost_read == 0.0
    assert_accounting(res)


# -- tags --------------------------------------------------------------------------------------

RAW_TAGS = {
    "user_Team": "ML-Platform",
    "user_cost-center": "CC 42",
    "resourceTags/user:Env": "Prod",
    "user_Project": "llm",
    "user_owner": "ana@example.com",
    "aws_eks_cluster_name": "prod-gpu",
    "user_": "",
}


@pytest.mark.parametrize("tags_as", ["map", "json"])
def test_resource_tags_as_map_or_json_string(tmp_path: Path, tags_as: str) -> None:
    res = read_cur(export(tmp_path, [cur_row("Usage", 1.0, tags=RAW_TAGS)], tags_as=tags_as))
    row = frame(res).iloc[0]
    assert (row["team"], row["cost_center"], row["environment"]) == ("ML-Platform", "CC 42", "Prod")
    assert (row["project"], row["owner"], row["cluster"]) == ("llm", "ana@example.com", "prod-gpu")
    assert json.loads(row["tags"]) == {  # canonical keys, as features.tagkeys spells them
        "aws_eks_cluster_name": "prod-gpu",
        "cost_center": "CC 42",
        "env": "Prod",
        "owner": "ana@example.com",
        "project": "llm",
        "team": "ML-Platform",
    }


def test_map_and_json_tags_give_identical_frames(tmp_path: Path) -> None:
    rows = [*node_hour(hour(0)), cur_row("Usage", 2.0, tags=RAW_TAGS), cur_row("Usage", 3.0)]
    as_map = read_cur(write_cur_export(tmp_path / "m", {"2025-03": [rows]}, tags_as="map"))
    as_json = read_cur(write_cur_export(tmp_path / "j", {"2025-03": [rows]}, tags_as="json"))
    assert as_map.table.equals(as_json.table)


def test_tags_that_are_not_json_objects_are_read_as_untagged_with_a_warning(
    tmp_path: Path,
) -> None:
    rows = [cur_row("Usage", 1.0), cur_row("Usage", 2.0), cur_row("Usage", 3.0)]
    table = cur_table(rows, tags_as="json")
    texts = ['{"user_team": "ml"}', "{not json", '["a list"]']
    table = table.set_column(
        table.schema.get_field_index("resource_tags"), "resource_tags", pa.array(texts)
    )
    pq.write_table(table, tmp_path / "tags.parquet")
    res = read_cur(tmp_path / "tags.parquet")
    assert res.table["team"].to_pylist() == ["ml", None, None]
    assert res.table["tags"].to_pylist()[1:] == ["{}", "{}"]
    assert res.rows_accepted == 3
    assert any("2 row(s) have resource_tags that are not a JSON object" in w for w in res.warnings)


def test_tag_prefixes_are_a_parameter(tmp_path: Path) -> None:
    tags = {"acme:CostCenter": "cc-1", "Owner": "me"}
    root = export(tmp_path, [cur_row("Usage", 1.0, tags=tags)])
    res = read_cur(root, tag_prefixes=("acme:",))
    assert res.table["tags"].to_pylist() == ['{"cost_center":"cc-1","owner":"me"}']
    assert res.table["cost_center"].to_pylist() == ["cc-1"]


@pytest.mark.parametrize(
    ("raw", "key", "dimension"),
    [
        ("CostCenter", "cost_center", "cost_center"),
        ("cost_center", "cost_center", "cost_center"),
        ("cost-center", "cost_center", "cost_center"),
        ("user_CostCentre", "cost_centre", "cost_center"),
        ("Team", "team", "team"),
        ("resourceTags/user:team", "team", "team"),
        ("Env", "env", "environment"),
        ("user:Environment", "environment", "environment"),
        ("aws:eks:cluster-name", "aws_eks_cluster_name", "cluster"),
        ("resourceTags/aws:ecs:clusterName", "aws_ecs_cluster_name", "cluster"),
        ("user_GpuType", "gpu_type", None),
    ],
)
def test_tag_keys_follow_the_shared_canonical_form(raw: str, key: str, dimension: str) -> None:
    assert normalize_tag_key(raw) == key
    assert tag_dimensions({key: "v"}).get(dimension or "", None) == ("v" if dimension else None)


def test_normalize_tags_is_order_independent_and_drops_empty_values() -> None:
    a = normalize_tags({"user_team": "b", "user_Team": "a", "user_owner": " ", "x": None})
    b = normalize_tags({"x": None, "user_Team": "a", "user_team": "b"})
    assert a == b == {"team": "a"}
    assert tags_to_json({"team": "ml", "cost_center": "c"}) == '{"cost_center":"c","team":"ml"}'
    assert tag_dimensions({"eks_cluster_name": "c1", "team": "t"})["cluster"] == "c1"


def test_tag_lookup_matches_the_focus_reader_convention() -> None:
    from features.tagkeys import tag_lookup_table as shared_lookup

    raw = json.dumps({"Team": "ml", "CostCenter": "cc-1", "Env": "prod", "eks:cluster-name": "c"})
    ours = tag_lookup_table([raw]).to_pylist()[0]
    theirs = shared_lookup([raw]).to_pylist()[0]
    assert ours["tags"] == theirs["tags"]
    for dim in ("cluster", *TAG_DIMENSIONS):
        assert ours[dim] == theirs[f"tag_{dim}"]


def test_manifest_selects_listed_files_and_warns_about_stale_ones(tmp_path: Path) -> None:
    root = write_cur_export(
        tmp_path / "cur",
        {"2025-03": [[cur_row("Usage", 1.0)], [cur_row("Usage", 2.0, start=hour(1))]]},
        stale={"2025-03": [cur_row("Usage", 100.0)]},
    )
    res = read_cur(root)
    assert frame(res)["effective_cost"].tolist() == [1.0, 2.0]
    assert len(res.paths) == 2 and not any("old" in p for p in res.paths)
    assert len(res.warnings) == 1
    assert "ignored 1 data file(s) not listed in the manifests read" in res.warnings[0]
    assert "finops-cur2-old-00001.snappy.parquet" in res.warnings[0]


def test_newest_manifest_of_a_period_wins(tmp_path: Path) -> None:
    root = write_cur_export(tmp_path / "cur", {"2025-03": [[cur_row("Usage", 1.0)]]})
    v2 = root / "data/BILLING_PERIOD=2025-03/run-2"
    v2.mkdir()
    pq.write_table(cur_table([cur_row("Usage", 7.0)], id_prefix="v2"), v2 / "part-0.parquet")
    manifest = root / "metadata/BILLING_PERIOD=2025-03/run-2/finops-cur2-Manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(
        json.dumps({"dataFiles": ["data/BILLING_PERIOD=2025-03/run-2/part-0.parquet"]})
    )
    later = manifest.stat().st_mtime + 60
    os.utime(manifest, (later, later))
    res = read_cur(root)
    assert frame(res)["effective_cost"].tolist() == [7.0]
    assert "billing period 2025-03 has 2 manifests; read the newest" in res.warnings[0]
    assert "ignored 1 data file(s)" in res.warnings[1]


def test_manifest_with_s3_uris(tmp_path: Path) -> None:
    root = write_cur_export(
        tmp_path / "cur",
        {
            "2025-03": [[cur_row("Usage", 1.0)]],
            "2025-04": [[cur_row("Usage", 2.0, start=datetime(2025, 4, 1))]],
        },
        s3_uris=True,
    )
    doc = json.loads(
        (root / "metadata/BILLING_PERIOD=2025-03/finops-cur2-Manifest.json").read_text()
    )
    assert doc["dataFiles"][0].startswith("s3://cur-bucket/exports/finops-cur2/data/")
    res = read_cur(root)
    assert res.rows_accepted == 2 and res.warnings == []


def test_billing_periods_filter(tmp_path: Path) -> None:
    april = pd.Timestamp("2025-04-02", tz="UTC").to_pydatetime()
    root = write_cur_export(
        tmp_path / "cur",
        {"2025-03": [[cur_row("Usage", 1.0)]], "2025-04": [[cur_row("Usage", 2.0, start=april)]]},
        stale={"2025-04": [cur_row("Usage", 100.0, start=april)]},
    )
    res = read_cur(root, billing_periods=["2025-03"])
    assert res.rows_read == 1 and frame(res)["effective_cost"].tolist() == [1.0]
    assert res.warnings == []  # the stale April file is outside the selection
    both = read_cur(root, billing_periods=("2025-03", "2025-04"))
    assert both.rows_read == 2 and len(both.warnings) == 1
    with pytest.raises(IngestError, match="no manifest for billing periods"):
        read_cur(root, billing_periods=["2024-12"])


def test_billing_periods_filter_rows_of_unpartitioned_files(tmp_path: Path) -> None:
    april = pd.Timestamp("2025-04-02", tz="UTC").to_pydatetime()
    rows = [cur_row("Usage", 1.0), cur_row("Usage", 2.0, start=april), cur_row("Usage", 3.0)]
    pq.write_table(cur_table(rows), tmp_path / "all.parquet")
    res = read_cur(tmp_path / "all.parquet", billing_periods="2025-03")
    assert res.rows_read == 2
    assert frame(res)["effective_cost"].tolist() == [1.0, 3.0]


def test_folder_without_manifests_reads_every_parquet_file(tmp_path: Path) -> None:
    root = write_cur_export(
        tmp_path / "cur",
        {"2025-03": [[cur_row("Usage", 1.0)], [cur_row("Usage", 2.0, start=hour(3))]]},
        manifest=False,
    )
    res = read_cur(root)
    assert res.rows_accepted == 2 and res.warnings == []


def test_files_with_different_schemas_are_unioned_by_name(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    pq.write_table(cur_table([cur_row("Usage", 1.0, tags={"user_team": "a"})]), root / "a.parquet")
    pq.write_table(
        cur_table(
            [cur_row("Usage", 2.0, start=hour(1), tags={"user_team": "b"})],
            id_prefix="b",
            tags_as="json",
            drop=("product", "product_instance_type", "line_item_usage_start_date"),
        ),
        root / "b.parquet",
    )
    res = read_cur(root)
    df = frame(res)
    assert df["team"].tolist() == ["a", "b"]
    assert df["ds"].tolist() == [pd.Timestamp(T0), pd.Timestamp(hour(1))]  # b: from interval
    assert res.table["instance_type"].to_pylist() == ["g5.xlarge", None]


def test_time_interval_replaces_missing_usage_dates(tmp_path: Path) -> None:
    rows = [cur_row("Usage", 1.0, start=hour(2))]
    table = cur_table(rows, drop=("line_item_usage_start_date", "line_item_usage_end_date"))
    pq.write_table(table, tmp_path / "iv.parquet")
    row = frame(read_cur(tmp_path / "iv.parquet")).iloc[0]
    assert row["ds"] == pd.Timestamp(hour(2)) and row["ds_end"] == pd.Timestamp(hour(3))


def test_product_map_fills_missing_product_columns(tmp_path: Path) -> None:
    table = cur_table(
        [cur_row("Usage", 1.0, instance_type="p5.48xlarge")],
        drop=("product_instance_type", "product_region_code"),
    )
    pq.write_table(table, tmp_path / "p.parquet")
    row = frame(read_cur(tmp_path / "p.parquet")).iloc[0]
    assert (row["instance_type"], row["region"]) == ("p5.48xlarge", "us-east-1")


def test_timestamps_as_text_and_zone_aware(tmp_path: Path) -> None:
    rows = [cur_row("Usage", 1.0, start=hour(4))]
    text = cur_table(rows, types={"line_item_usage_start_date": pa.string()})
    text = text.set_column(
        text.schema.get_field_index("line_item_usage_start_date"),
        "line_item_usage_start_date",
        pa.array(["2025-03-01T04:00:00Z"]),
    )
    pq.write_table(text, tmp_path / "text.parquet")
    aware = cur_table(rows, types={"line_item_usage_start_date": pa.timestamp("us", tz="UTC")})
    pq.write_table(aware, tmp_path / "aware.parquet")
    for name in ("text.parquet", "aware.parquet"):
        assert frame(read_cur(tmp_path / name))["ds"].tolist() == [pd.Timestamp(hour(4))]


# -- rejections --------------------------------------------------------------------------------


def test_invalid_timestamps_are_rejected_with_row_and_column(tmp_path: Path) -> None:
    rows = [cur_row("Usage", 1.0), cur_row("Usage", 2.0, line_item_usage_start_date=None)]
    res = read_cur(export(tmp_path, rows))
    (rej,) = res.rejections
    assert (rej.row, rej.reason, rej.column) == (
        1,
        "invalid_timestamp",
        "line_item_usage_start_date",
    )
    assert rej.effective_cost == 2.0
    assert_accounting(res)

    text = cur_table(rows, types={"line_item_usage_start_date": pa.string()})
    text = text.set_column(
        text.schema.get_field_index("line_item_usage_start_date"),
        "line_item_usage_start_date",
        pa.array(["2025-03-01T00:00:00Z", "yesterday-ish"]),
    )
    pq.write_table(text, tmp_path / "text.parquet")
    res = read_cur(tmp_path / "text.parquet")
    assert [(r.row, r.reason) for r in res.rejections] == [(1, "invalid_timestamp")]


def test_invalid_costs_are_rejected_negative_costs_are_not(tmp_path: Path) -> None:
    rows = [
        cur_row("Usage", 1.0),
        cur_row("Usage", float("nan")),
        cur_row("Usage", float("inf")),
        cur_row("Usage", None),
        cur_row("Usage", -2.0),
        cur_row(
            "SavingsPlanCoveredUsage", 3.0, savings_plan_savings_plan_effective_cost=float("nan")
        ),
        pod_row("i-0aaa", float("inf")),
    ]
    res = read_cur(export(tmp_path, rows))
    assert [(r.row, r.reason, r.column) for r in res.rejections] == [
        (1, "invalid_cost", "line_item_unblended_cost"),
        (2, "invalid_cost", "line_item_unblended_cost"),
        (3, "invalid_cost", "line_item_unblended_cost"),
        (5, "invalid_cost", "savings_plan_savings_plan_effective_cost"),
        (6, "invalid_cost", "split_line_item_split_cost"),
    ]
    assert all(math.isnan(r.effective_cost) for r in res.rejections)
    assert frame(res)["effective_cost"].tolist() == [1.0, -2.0]
    assert res.effective_cost_read == pytest.approx(-1.0)
    assert_accounting(res)


def test_duplicate_line_items_keep_the_first(tmp_path: Path) -> None:
    dup = cur_row("Usage", 1.0, line_item_id="li-dup")
    later = cur_row("Usage", 1.0, line_item_id="li-dup", start=hour(1))  # same id, next hour
    root = write_cur_export(
        tmp_path / "cur",
        {
            "2025-03": [
                [dup, later],
                [cur_row("Usage", 5.0), dict(dup, line_item_unblended_cost=9.0)],
            ]
        },
    )
    res = read_cur(root)
    (rej,) = res.rejections
    assert (rej.row, rej.reason, rej.column) == (1, "duplicate_line_item", "identity_line_item_id")
    assert rej.file.endswith("finops-cur2-00002.snappy.parquet")
    assert rej.effective_cost == 9.0
    df = frame(res)
    assert [x.split("/")[-1] for x in df["line_id"].tolist()[:2]] == [
        "li-dup@1740787200",
        "li-dup@1740790800",
    ]
    assert df["line_id"].is_unique
    assert_accounting(res)


def test_rows_without_line_item_id_get_a_unique_deterministic_hash(tmp_path: Path) -> None:
    rows = [cur_row("Usage", 1.0), cur_row("Usage", 1.0), cur_row("Usage", 2.0)]
    table = cur_table(rows, drop=("identity_line_item_id",))
    pq.write_table(table, tmp_path / "noid.parquet")
    first = frame(read_cur(tmp_path / "noid.parquet"))["line_id"].tolist()
    again = frame(read_cur(tmp_path / "noid.parquet"))["line_id"].tolist()
    assert first == again and len(set(first)) == 3
    assert first[0].split("/")[-1].startswith("md5:") and first[1] == first[0] + "#1"
    assert first[0].endswith("@1740787200")


def test_accounting_over_a_dirty_export(tmp_path: Path) -> None:
    rows = [
        *node_hour(hour(0), 10.0),
        cur_row("Usage", float("nan")),
        cur_row("Usage", 2.0, line_item_usage_start_date=None),
        cur_row("Credit", -1.0, line_item_id="c-1"),
        cur_row("Credit", -1.0, line_item_id="c-1"),
        pod_row("i-missing", 3.0),
    ]
    res = read_cur(export(tmp_path, rows))
    assert res.rows_read == len(rows)
    assert res.rejection_counts == {
        "invalid_cost": 1,
        "invalid_timestamp": 1,
        "duplicate_line_item": 1,
        "split_row_without_parent": 1,
    }
    # read: node 10 + invalid-timestamp row 2 + two credits; accepted: node + pods + one credit
    assert res.effective_cost_read == pytest.approx(10.0 + 2.0 - 1.0 - 1.0)
    assert frame(res)["effective_cost"].sum() == pytest.approx(9.0)
    assert_accounting(res)


def test_reading_is_deterministic(tmp_path: Path) -> None:
    root = write_cur_export(
        tmp_path / "cur",
        {"2025-03": [node_hour(hour(0)) + node_hour(hour(1), 3.3), [cur_row("Tax", 0.1)]]},
    )
    a, b = read_cur(root), read_cur(root)
    assert a.table.equals(b.table)
    assert a.rejections == b.rejections and a.effective_cost_read == b.effective_cost_read


# -- file-level errors -------------------------------------------------------------------------


def _only_data_file(root: Path) -> Path:
    (path,) = sorted((root / "data").rglob("*.parquet"))
    return path.resolve()


def test_not_a_parquet_file_names_the_file(tmp_path: Path) -> None:
    root = export(tmp_path, [cur_row()])
    data = _only_data_file(root)
    data.write_bytes(b"line_item_usage_start_date,line_item_unblended_cost\n")
    with pytest.raises(IngestError, match="not a readable parquet file") as err:
        read_cur(root)
    assert err.value.path == str(data)


def test_truncated_parquet_names_the_file(tmp_path: Path) -> None:
    root = export(tmp_path, [cur_row()] * 50)
    data = _only_data_file(root)
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(IngestError) as err:
        read_cur(root)
    assert err.value.path == str(data)


@pytest.mark.parametrize(
    ("drop", "column"),
    [
        (("line_item_unblended_cost",), "line_item_unblended_cost"),
        (("line_item_line_item_type",), "line_item_line_item_type"),
        (("line_item_usage_start_date", "identity_time_interval"), "line_item_usage_start_date"),
    ],
)
def test_missing_required_column(tmp_path: Path, drop: tuple[str, ...], column: str) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(cur_table([cur_row()], drop=drop), path)
    with pytest.raises(IngestError, match="missing required column") as err:
        read_cur(path)
    assert (err.value.path, err.value.column) == (str(path.resolve()), column)


@pytest.mark.parametrize(
    ("column", "typ"),
    [
        ("line_item_unblended_cost", pa.date32()),
        ("line_item_usage_start_date", pa.float64()),
        ("line_item_line_item_type", pa.int64()),
        ("reservation_effective_cost", pa.bool_()),
    ],
)
def test_column_of_incompatible_type(tmp_path: Path, column: str, typ: pa.DataType) -> None:
    table = cur_table([cur_row()])
    values = {
        "line_item_unblended_cost": [pd.Timestamp("2025-03-01").date()],
        "line_item_usage_start_date": [1.0],
        "line_item_line_item_type": [1],
        "reservation_effective_cost": [True],
    }[column]
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, typ))
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    with pytest.raises(IngestError, match="got type") as err:
        read_cur(path)
    assert (err.value.path, err.value.column) == (str(path.resolve()), column)


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no parquet data files") as err:
        read_cur(tmp_path / "empty")
    assert err.value.path == str(tmp_path / "empty")
    with pytest.raises(IngestError, match="no such file"):
        read_cur(tmp_path / "nope")


def test_manifest_that_is_not_json(tmp_path: Path) -> None:
    root = export(tmp_path, [cur_row()])
    manifest = root / "metadata/BILLING_PERIOD=2025-03/finops-cur2-Manifest.json"
    manifest.write_text('{"dataFiles": [', encoding="utf-8")
    with pytest.raises(IngestError, match="not valid JSON") as err:
        read_cur(root)
    assert err.value.path == str(manifest)


def test_manifest_naming_a_missing_file(tmp_path: Path) -> None:
    missing = "data/BILLING_PERIOD=2025-03/finops-cur2-00099.snappy.parquet"
    root = export(tmp_path, [cur_row()], extra_listed=[missing])
    with pytest.raises(IngestError, match="finops-cur2-00099") as err:
        read_cur(root)
    assert err.value.path == str(root / "metadata/BILLING_PERIOD=2025-03/finops-cur2-Manifest.json")
    assert err.value.column == "dataFiles"


@pytest.mark.parametrize("periods", [["2025-3"], ["March"], [], [202503]])
def test_billing_periods_must_be_year_month(tmp_path: Path, periods: list[Any]) -> None:
    with pytest.raises(ConfigError, match="billing_periods"):
        read_cur(export(tmp_path, [cur_row()]), billing_periods=periods)


# -- scale -------------------------------------------------------------------------------------


def test_large_synthetic_file_is_read_vectorised(tmp_path: Path) -> None:
    table = synthetic_cur_table(200_000)
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=50_000)
    res = read_cur(path)  # a couple of seconds: all row work happens in DuckDB
    out = res.table
    assert res.rows_read == res.rows_accepted == 200_000
    node_cost = math.fsum(table["line_item_unblended_cost"].to_pylist())
    assert math.fsum(out["effective_cost"].to_pylist()) == pytest.approx(node_cost, rel=1e-12)
    assert res.effective_cost_read == pytest.approx(node_cost, rel=1e-12)
    is_pod = pc.starts_with(out["resource_id"], "arn:")
    pods, nodes = out.filter(is_pod), out.filter(pc.invert(is_pod))
    assert pods.num_rows == 160_000
    assert set(pc.unique(pods["cluster"]).to_pylist()) == {"cluster-0", "cluster-1", "cluster-2"}
    assert set(pc.unique(out["team"]).to_pylist()) == {"ml", "search", "ads", "infra"}
    assert out["cost_center"].null_count == 0
    assert pc.max(pc.abs(nodes["effective_cost"])).as_py() < 1e-9
    assert pc.count_distinct(out["line_id"]).as_py() == 200_000


def test_corrupt_data_pages_name_the_file(tmp_path: Path) -> None:
    rows = [cur_row("Usage", float(i), start=hour(i % 24)) for i in range(2000)]
    root = write_cur_export(tmp_path / "cur", {"2025-03": [rows[:10], rows]})
    bad = sorted((root / "data").rglob("*00002.snappy.parquet"))[0].resolve()
    data = bytearray(bad.read_bytes())
    for i in range(200, len(data) // 2, 7):  # scramble the pages, keep the footer intact
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(IngestError, match="cannot read parquet data") as err:
        read_cur(root)
    assert err.value.path == str(bad)


def test_restated_period_replaces_the_old_one_in_the_store(tmp_path: Path) -> None:
    """AWS re-delivers whole billing periods with new line item ids: no double counting."""
    from datetime import datetime

    from features.store import Store

    march = datetime(2025, 3, 1)
    april = datetime(2025, 4, 1)
    first = write_cur_export(
        tmp_path / "v1",
        {
            "2025-03": [
                [
                    cur_row(cost=10.0, start=march, line_item_id="a1"),
                    cur_row(cost=5.0, start=march, line_item_id="a2"),
                ]
            ],
            "2025-04": [[cur_row(cost=7.0, start=april, line_item_id="b1")]],
        },
    )
    # The restated March has new ids, one line fewer and a corrected amount.
    second = write_cur_export(
        tmp_path / "v2",
        {"2025-03": [[cur_row(cost=12.0, start=march, line_item_id="z9")]]},
    )
    store = Store(tmp_path / "s.duckdb")
    store.ingest(read_cur(first))
    assert store.totals()["effective_cost"] == pytest.approx(22.0)
    report = store.ingest(read_cur(second))
    assert report.rows_new == 1
    assert store.totals()["effective_cost"] == pytest.approx(12.0 + 7.0)  # April untouched
    store.ingest(read_cur(second))  # and re-ingesting the same delivery changes nothing
    assert store.totals()["effective_cost"] == pytest.approx(19.0)
