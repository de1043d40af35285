"""FOCUS reader: mapping to the cost frame, charge categories, tags, accounting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from features.readers.focus import read_focus
from features.schema import COST_FRAME_COLUMNS, validate_frame
from tests.features.focus_fixtures import focus_row, rows, write_focus_csv, write_focus_parquet


def test_csv_maps_to_cost_frame(tmp_path: Path) -> None:
    res = read_focus(write_focus_csv(tmp_path / "f.csv", rows(6)))
    df = res.table.to_pandas()
    assert list(df.columns) == list(COST_FRAME_COLUMNS)
    validate_frame(df, "cost")
    assert res.rows_read == res.rows_accepted == 6
    assert df["effective_cost"].sum() == pytest.approx(sum(1.006 + i * 0.01 for i in range(6)))
    assert set(df["team"]) == {"nlp", "vision", "search"}
    assert set(df["cluster"]) == {"eks-research"}
    assert set(df["instance_type"]) == {"g5.xlarge"}
    assert set(df["purchase_option"]) == {"on_demand"}
    assert df["ds"].iloc[0] == pd.Timestamp("2025-01-01", tz="UTC")
    extras = json.loads(df["extras"].iloc[0])
    assert extras["x_UsageType"] == "USE1-BoxUsage:g5.xlarge"  # x_ provider columns kept
    tags = json.loads(df["tags"].iloc[0])
    assert tags["cost_center"] == "CC-1" and tags["aws_eks_cluster_name"] == "eks-research"


def test_parquet_and_csv_agree(tmp_path: Path) -> None:
    data = rows(5)
    a = read_focus(write_focus_csv(tmp_path / "f.csv", data)).table.to_pandas()
    b = read_focus(write_focus_parquet(tmp_path / "f.parquet", data)).table.to_pandas()
    cols = [
        "ds",
        "ds_end",
        "team",
        "effective_cost",
        "billed_cost",
        "instance_type",
        "charge_category",
    ]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_dtype=False)


def test_all_charge_categories_kept_and_credits_negative(tmp_path: Path) -> None:
    data = [
        focus_row(0),
        focus_row(
            1, ChargeCategory="Purchase", PricingCategory="", BilledCost="100", EffectiveCost="0"
        ),
        focus_row(2, ChargeCategory="Tax", BilledCost="8.5", EffectiveCost="8.5", Tags=""),
        focus_row(3, ChargeCategory="credit", BilledCost="-50", EffectiveCost="-50", Tags=""),
        focus_row(4, ChargeCategory="Adjustment", BilledCost="-1.25", EffectiveCost="-1.25"),
    ]
    res = read_focus(write_focus_csv(tmp_path / "f.csv", data))
    df = res.table.to_pandas()
    assert res.rows_rejected == 0 if hasattr(res, "rows_rejected") else not res.rejections
    assert sorted(df["charge_category"]) == ["Adjustment", "Credit", "Purchase", "Tax", "Usage"]
    assert df.loc[df.charge_category == "Credit", "effective_cost"].item() == -50
    assert set(df.loc[df.charge_category != "Usage", "purchase_option"]) == {"other"}
    assert res.effective_cost_read == pytest.approx(df["effective_cost"].sum())


def test_spot_and_committed_classified(tmp_path: Path) -> None:
    data = [
        focus_row(0, PricingCategory="Dynamic", x_UsageType="USE1-SpotUsage:p4d.24xlarge"),
        focus_row(1, PricingCategory="", x_UsageType="USE1-SpotUsage:p5.48xlarge"),
        focus_row(2, PricingCategory="Committed"),
    ]
    df = read_focus(write_focus_csv(tmp_path / "f.csv", data)).table.to_pandas()
    assert list(df["purchase_option"]) == ["spot", "spot", "committed"]
    assert list(df["instance_type"]) == ["p4d.24xlarge", "p5.48xlarge", "g5.xlarge"]


def test_multi_provider_file(tmp_path: Path) -> None:
    data = [
        focus_row(0),
        focus_row(
            1,
            ProviderName="Microsoft",
            ServiceName="Virtual Machines",
            x_UsageType="",
            BillingAccountId="sub-1",
            SubAccountId="",
        ),
    ]
    df = read_focus(write_focus_csv(tmp_path / "f.csv", data)).table.to_pandas()
    assert list(df["provider"]) == ["AWS", "Microsoft"]
    assert list(df["account"]) == ["222222222222", "sub-1"]


def test_tag_key_spellings_are_unified(tmp_path: Path) -> None:
    tags = json.dumps(
        {"team": "nlp", "cost-center": "CC-9", "Env": "production", "user:Project": "bot"}
    )
    df = read_focus(
        write_focus_csv(tmp_path / "f.csv", [focus_row(0, Tags=tags)])
    ).table.to_pandas()
    row = df.iloc[0]
    assert (row.team, row.cost_center, row.environment, row.project) == (
        "nlp",
        "CC-9",
        "production",
        "bot",
    )


def test_header_case_insensitive_and_missing_optional_columns(tmp_path: Path) -> None:
    cols = ["chargeperiodstart", "chargecategory", "billedcost", "effectivecost"]
    data = [
        {
            "chargeperiodstart": "2025-02-01T00:00:00Z",
            "chargecategory": "Usage",
            "billedcost": "2",
            "effectivecost": "1.5",
        }
    ]
    df = read_focus(write_focus_csv(tmp_path / "f.csv", data, columns=cols)).table.to_pandas()
    assert df["effective_cost"].item() == 1.5
    assert math.isnan(df["list_cost"].item())


def test_folder_reads_every_file_and_dedups_copies(tmp_path: Path) -> None:
    write_focus_csv(tmp_path / "a" / "part1.csv", rows(4))
    write_focus_csv(tmp_path / "a" / "part2.csv", [focus_row(i) for i in range(4, 8)])
    write_focus_csv(tmp_path / "a" / "copy_of_part1.csv", rows(4))
    res = read_focus(tmp_path / "a")
    assert res.rows_read == 12
    assert res.rows_accepted == 8
    assert res.rejection_counts == {"duplicate_line_item": 4}
    assert res.effective_cost_read == pytest.approx(
        res.table.column("effective_cost").to_pandas().sum()
        + sum(r.effective_cost for r in res.rejections)
    )


def test_deterministic_line_ids(tmp_path: Path) -> None:
    p = write_focus_csv(tmp_path / "f.csv", rows(5))
    a = read_focus(p).table.column("line_id").to_pylist()
    b = read_focus(p).table.column("line_id").to_pylist()
    assert a == b and len(set(a)) == 5


def test_spec_example_if_available() -> None:
    """The FOCUS spec's own worked examples read without error (skipped on a bare clone)."""
    spec = Path(__file__).resolve().parents[3] / "shared/data/focus/spec_examples"
    if not spec.exists():
        pytest.skip("shared data not present")
    res = read_focus(spec / "commitment_discount_scenarios")
    assert res.rows_read == res.rows_accepted + len(res.rejections)
    assert res.rows_accepted > 0


def test_parquet_folder_is_read_in_one_pass_with_file_and_row_provenance(tmp_path: Path) -> None:
    write_focus_parquet(tmp_path / "p" / "a.parquet", rows(4))
    write_focus_parquet(tmp_path / "p" / "b.parquet", [focus_row(i) for i in range(4, 7)])
    write_focus_parquet(tmp_path / "p" / "c_copy.parquet", [focus_row(5), focus_row(9)])
    res = read_focus(tmp_path / "p")
    assert res.rows_read == 9 and res.rows_accepted == 8
    (dup,) = res.rejections
    assert (Path(dup.file).name, dup.row, dup.reason) == (
        "c_copy.parquet",
        0,
        "duplicate_line_item",
    )
    ds = res.table.column("ds").to_pylist()
    assert ds == sorted(ds[:7]) + ds[7:]  # file order, then row order


def test_bad_parquet_in_a_folder_is_named(tmp_path: Path) -> None:
    import pandas as pd

    write_focus_parquet(tmp_path / "p" / "good.parquet", rows(3))
    bad = pd.DataFrame(rows(2))
    bad["BilledCost"] = pd.Timestamp("2025-01-01", tz="UTC")
    bad.to_parquet(tmp_path / "p" / "bad.parquet", index=False)
    from features.exceptions import IngestError

    with pytest.raises(IngestError, match=r"bad\.parquet.*BilledCost"):
        read_focus(tmp_path / "p")
