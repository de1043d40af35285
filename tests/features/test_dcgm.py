# ruff: noqa: E501  (the scrape below is quoted verbatim, one sample per line)
"""DCGM exporter text and CSV into the utilization frame."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.exceptions import IngestError
from features.readers.dcgm import read_dcgm
from features.schema import validate_frame
from features.store import Store
from forecaster.cli import app

runner = CliRunner()
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# Shaped like dcgm-exporter 3.x output in Kubernetes mode (two GPUs of one pod, one idle GPU).
SCRAPE = """\
# HELP DCGM_FI_DEV_SM_CLOCK SM frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 1410
DCGM_FI_DEV_SM_CLOCK{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 1410
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 91
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 85
DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-c",Hostname="node-1"} 0
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 61440
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-b",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 40960
DCGM_FI_DEV_FB_USED{gpu="2",UUID="GPU-c",Hostname="node-1"} 0
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 20480
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-b",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 40960
DCGM_FI_DEV_FB_FREE{gpu="2",UUID="GPU-c",Hostname="node-1"} 81920
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 0.8
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="1",UUID="GPU-b",Hostname="node-1",container="trainer",namespace="ml",pod="llm-train-0"} 0.7
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",Hostname="node-1"} 312.5
"""


def test_text_scrape_per_pod_and_idle_gpu(tmp_path: Path) -> None:
    p = tmp_path / "metrics.prom"
    p.write_text(SCRAPE)
    res = read_dcgm(p, at=AT)
    df = res.table.to_pandas()
    validate_frame(df, "utilization")
    assert res.rows_read == 2 and not res.rejections
    pod = df[df["workload_id"] == "k8s/ml/llm-train-0"].iloc[0]
    # Engine-active ratios are preferred to GPU_UTIL when present.
    assert pod["gpu_used"] == pytest.approx(1.5) and pod["gpu_requested"] == 2.0
    assert pod["gpu_memory_used_gib"] == pytest.approx(100.0)
    assert pod["gpu_memory_total_gib"] == pytest.approx(160.0)
    idle = df[df["workload_id"] == "gpu/node-1/2"].iloc[0]
    assert (idle["kind"], idle["gpu_used"], idle["gpu_memory_total_gib"]) == ("gpu", 0.0, 80.0)
    assert set(df["ds"]) == {AT}
    # Unknown metrics are ignored and counted.
    assert res.warnings == [
        "ignored 3 sample(s) of 2 metric(s) this reader does not use: "
        "DCGM_FI_DEV_SM_CLOCK (2), DCGM_FI_DEV_POWER_USAGE (1)"
    ]


def test_bad_lines_are_rejected_with_their_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "bad.prom"
    p.write_text(
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",Hostname="n"} 50 1740830400000\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",Hostname="n"} 60 1740830460000\n'
        'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",Hostname="n" 10\n'
        'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",Hostname="n"} banana\n'
        "this is not a sample\n"
    )
    res = read_dcgm(p)
    assert [(r.row, r.reason) for r in res.rejections] == [
        (3, "malformed_line"),
        (4, "invalid_value"),
        (5, "malformed_line"),
    ]
    df = res.table.to_pandas()
    assert list(df["gpu_used"]) == [0.5, 0.6]  # two timestamps from the samples themselves
    assert df["ds"].iloc[0] == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert res.rows_read == len(df) + len(res.rejections)


def test_csv_long_and_wide(tmp_path: Path) -> None:
    long = tmp_path / "long.csv"
    long.write_text(
        "timestamp,metric,value,gpu,UUID,Hostname,namespace,pod\n"
        "2025-03-01T12:00:00Z,DCGM_FI_DEV_GPU_UTIL,40,0,GPU-a,n1,ml,infer-1\n"
        "2025-03-01T12:00:00Z,DCGM_FI_DEV_FB_USED,2048,0,GPU-a,n1,ml,infer-1\n"
        "2025-03-01T12:00:00Z,DCGM_FI_DEV_FB_FREE,6144,0,GPU-a,n1,ml,infer-1\n"
        "2025-03-01T12:00:00Z,DCGM_FI_DEV_MEM_CLOCK,1593,0,GPU-a,n1,ml,infer-1\n"
        "yesterday,DCGM_FI_DEV_GPU_UTIL,40,0,GPU-a,n1,ml,infer-1\n"
    )
    res = read_dcgm(long)
    df = res.table.to_pandas()
    assert len(df) == 1 and df.iloc[0]["gpu_used"] == pytest.approx(0.4)
    assert df.iloc[0]["gpu_memory_total_gib"] == pytest.approx(8.0)
    assert [(r.row, r.column, r.reason) for r in res.rejections] == [
        (6, "timestamp", "invalid_timestamp")
    ]
    assert "DCGM_FI_DEV_MEM_CLOCK (1)" in res.warnings[0]

    wide = tmp_path / "wide.csv"
    wide.write_text(
        "timestamp,Hostname,gpu,namespace,pod,DCGM_FI_DEV_GPU_UTIL,DCGM_FI_DEV_FB_USED,DCGM_FI_DEV_XID_ERRORS\n"
        "1740830400,n1,0,ml,infer-1,30,1024,0\n"
        "1740830460,n1,0,ml,infer-1,,1024,0\n"
    )
    res = read_dcgm(wide)
    df = res.table.to_pandas()
    assert len(df) == 2 and df["gpu_used"].isna().tolist() == [False, True]  # a gap stays a gap
    with pytest.raises(IngestError, match="needs a 'metric'"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        read_dcgm(tmp_path / "x.csv")
    with pytest.raises(IngestError, match="empty"):
        (tmp_path / "e.prom").write_text("")
        read_dcgm(tmp_path / "e.prom")


def test_cli_ingests_a_scrape(tmp_path: Path) -> None:
    p = tmp_path / "metrics.prom"
    p.write_text(SCRAPE)
    store = tmp_path / "s.duckdb"
    res = runner.invoke(
        app,
        ["ingest", "dcgm", str(p), "--at", "2025-03-01T12:00:00Z", "--store", str(store), "--json"],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["rows_accepted"] == 2 and rep["balanced"] is True and rep["warnings"]
    with Store(store, read_only=True) as st:
        assert sorted(st.utilization_frame()["workload_id"]) == [
            "gpu/node-1/2",
            "k8s/ml/llm-train-0",
        ]
    missing = runner.invoke(app, ["ingest", "dcgm", str(tmp_path / "nope"), "--store", str(store)])
    assert missing.exit_code == 2 and "file not found" in missing.output
