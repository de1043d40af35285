"""CUR 2.0 and FOCUS exports read from a real moto S3 server (put_object, then ingest)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from features.exceptions import IngestError
from features.readers.aws.s3_exports import ingest_s3_export, plan_export
from features.readers.cur import read_cur
from features.store import Store
from forecaster.cli import app
from tests.features.cur_fixtures import cur_row, hour, write_cur_export
from tests.features.focus_fixtures import focus_row, write_focus_parquet
from tests.integration._moto import aws_env, moto_url  # noqa: F401

runner = CliRunner()
BUCKET = "cur-bucket"
CUR_ROOT = "exports/finops-cur2"  # what write_cur_export(s3_uris=True) names in manifests


def upload(local: Path, bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3")
    for f in sorted(local.rglob("*")):
        if f.is_file():
            s3.put_object(
                Bucket=bucket,
                Key=f"{prefix}/{f.relative_to(local).as_posix()}",
                Body=f.read_bytes(),
            )


def cur_rows(period_start_day: int, n: int, cost: float, month: int) -> list[dict]:
    from datetime import UTC, datetime

    base = datetime(2025, month, period_start_day, tzinfo=UTC)
    return [
        cur_row(
            cost=cost + i / 100, start=hour(i, base), tags={"user_team": ["nlp", "vision"][i % 2]}
        )
        for i in range(n)
    ]


def stored_total(store: Path, source: str) -> float:
    with Store(store, read_only=True) as st:
        return float(
            st.query(
                "SELECT coalesce(sum(effective_cost), 0) FROM cost WHERE source = ?", [source]
            ).iloc[0, 0]
        )


def test_cur_export_new_and_changed_periods_only(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    local = write_cur_export(
        tmp_path / "cur",
        {
            "2025-03": [cur_rows(1, 10, 2.0, 3), cur_rows(2, 5, 1.0, 3)],
            "2025-04": [cur_rows(1, 8, 3.0, 4)],
        },
        s3_uris=True,
    )
    upload(local, BUCKET, CUR_ROOT)
    oracle = read_cur(local)  # the file reader on the same export
    store = tmp_path / "s.duckdb"
    args = [
        "ingest",
        "s3",
        f"s3://{BUCKET}/{CUR_ROOT}",
        "--store",
        str(store),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["source"] == "cur" and rep["balanced"] is True
    assert rep["rows_accepted"] == oracle.rows_accepted == 23
    assert all(f.startswith(f"s3://{BUCKET}/{CUR_ROOT}/data/BILLING_PERIOD=") for f in rep["files"])
    assert round(stored_total(store, "cur"), 6) == round(
        oracle.table.column("effective_cost").to_pandas().sum(), 6
    )

    # Nothing changed: nothing is read.
    res = runner.invoke(app, args)
    rep2 = json.loads(res.stdout)
    assert rep2["rows_read"] == 0 and rep2["files"] == []
    assert any("up to date, not read again: 2025-03, 2025-04" in w for w in rep2["warnings"])

    # AWS delivers April again with other amounts: only April is read, and it replaces.
    local2 = write_cur_export(
        tmp_path / "cur2", {"2025-04": [cur_rows(1, 4, 10.0, 4)]}, s3_uris=True
    )
    upload(local2, BUCKET, CUR_ROOT)
    res = runner.invoke(app, args)
    rep3 = json.loads(res.stdout)
    assert rep3["rows_accepted"] == 4
    assert all("BILLING_PERIOD=2025-04" in f for f in rep3["files"])
    march = sum(2.0 + i / 100 for i in range(10)) + sum(1.0 + i / 100 for i in range(5))
    april = sum(10.0 + i / 100 for i in range(4))
    assert stored_total(store, "cur") == pytest.approx(march + april)


def test_focus_export_is_detected_and_restated(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="focus-bucket")
    root = "billing/focus-export"

    def deliver(n: int, cost: str, tag: str) -> None:
        local = tmp_path / tag
        write_focus_parquet(
            local / "data" / "BILLING_PERIOD=2025-01" / "focus-export-00001.snappy.parquet",
            [focus_row(i, EffectiveCost=cost, BilledCost=cost) for i in range(n)],
        )
        manifest = {
            "dataFiles": [
                f"s3://focus-bucket/{root}/data/BILLING_PERIOD=2025-01/focus-export-00001.snappy.parquet"
            ]
        }
        (local / "metadata" / "BILLING_PERIOD=2025-01").mkdir(parents=True)
        (local / "metadata" / "BILLING_PERIOD=2025-01" / "focus-export-Manifest.json").write_text(
            json.dumps(manifest) + " " * n
        )
        upload(local, "focus-bucket", root)

    deliver(6, "2.5", "first")
    with Store(tmp_path / "s.duckdb") as st:
        first = ingest_s3_export(st, f"s3://focus-bucket/{root}", cache_dir=tmp_path / "cache")
        assert first.source == "focus" and first.rows_accepted == 6
        assert first.effective_cost_stored == pytest.approx(15.0)
        deliver(3, "4.0", "second")  # restated period: fewer, dearer lines
        second = ingest_s3_export(st, f"s3://focus-bucket/{root}", cache_dir=tmp_path / "cache")
        assert second.rows_accepted == 3
        total = st.query("SELECT sum(effective_cost), count(*) FROM cost").iloc[0].tolist()
        ids = st.query("SELECT DISTINCT line_id FROM cost")["line_id"].tolist()
    assert total == [pytest.approx(12.0), 3]
    assert all(i.startswith(f"s3/focus-bucket/{root}/2025-01/") for i in ids)


def test_manifest_naming_a_missing_object_stores_nothing(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    local = write_cur_export(
        tmp_path / "cur",
        {"2025-03": [cur_rows(1, 3, 2.0, 3)]},
        s3_uris=True,
        extra_listed=[
            f"s3://{BUCKET}/{CUR_ROOT}/data/BILLING_PERIOD=2025-03/gone-00009.snappy.parquet"
        ],
    )
    upload(local, BUCKET, CUR_ROOT)
    store = tmp_path / "s.duckdb"
    with Store(store) as st, pytest.raises(IngestError) as info:
        ingest_s3_export(st, f"s3://{BUCKET}/{CUR_ROOT}", cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "Manifest.json" in msg and "gone-00009.snappy.parquet" in msg and "does not exist" in msg
    with Store(store, read_only=True) as st:
        assert st.totals()["rows"] == 0
    # The CLI says the same in one line, without a traceback, and exits 2.
    res = runner.invoke(
        app,
        [
            "ingest",
            "s3",
            f"s3://{BUCKET}/{CUR_ROOT}",
            "--store",
            str(store),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 2 and "gone-00009" in res.output and "Traceback" not in res.output


def test_planning_picks_the_newest_manifest_and_complains_when_none(aws_env: str) -> None:  # noqa: F811
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="plan-bucket")
    with pytest.raises(IngestError, match="no manifests"):
        plan_export(s3, "plan-bucket", "x/export")
    s3.put_object(
        Bucket="plan-bucket",
        Key="x/export/metadata/BILLING_PERIOD=2025-02/run1/e-Manifest.json",
        Body=b"{}",
    )
    s3.put_object(
        Bucket="plan-bucket",
        Key="x/export/metadata/BILLING_PERIOD=2025-02/run2/e-Manifest.json",
        Body=b"{}",
    )
    plans = plan_export(s3, "plan-bucket", "x/export")
    assert [p.period for p in plans] == ["2025-02"]
    assert plans[0].manifest_key.endswith("run2/e-Manifest.json") and len(plans[0].others) == 1
    with pytest.raises(IngestError, match=r"no manifest for billing periods \['2025-01'\]"):
        plan_export(s3, "plan-bucket", "x/export", ["2025-01"])
    assert math.isfinite(len(plans))
