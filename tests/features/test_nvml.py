"""NVML collector on readings recorded from a real GPU, and without a GPU.

``data/nvml_h200_sample.json`` was recorded by :func:`features.readers.nvml.sample` on a
lent NVIDIA H200 machine (driver 580.159.04, MIG off): five samples one second apart, the
first three while a bf16 matrix-product loop ran (see its ``note``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.exceptions import ConfigError, IngestError
from features.readers.nvml import RecordedBackend, load_pynvml, sample
from features.schema import validate_frame
from features.store import Store
from forecaster.cli import app

H200 = Path(__file__).parent / "data" / "nvml_h200_sample.json"
runner = CliRunner()


def _replay(raw: dict, count: int | None = None) -> tuple:
    return sample(
        interval=1.0,
        count=count or len(raw["samples"]),
        backend=RecordedBackend(raw),
        sleep=lambda s: None,
    )


def test_replay_of_the_h200_recording() -> None:
    raw = json.loads(H200.read_text())
    result, again = _replay(raw)
    df = result.table.to_pandas()
    validate_frame(df, "utilization")
    assert list(df["workload_id"].unique()) == ["gpu/vm/0"]
    assert list(df["kind"]) == ["gpu"] * 5
    # What the GPU reported: busy while the matmul loop ran, idle before and after.
    assert list(df["gpu_used"].round(2)) == [0.0, 0.98, 0.98, 0.95, 0.0]
    assert df["gpu_memory_total_gib"].round(1).unique().tolist() == [140.4]
    assert (df["gpu_memory_used_gib"] < 2.0).all()
    assert (df["gpu_requested"] == 1.0).all() and (df["replicas"] == 1.0).all()
    assert [t.isoformat() for t in df["ds"]] == [s["ts"] for s in raw["samples"]]
    assert "NVIDIA H200" in result.warnings[0] and "power 458 W" in result.warnings[0]
    assert "MIG mode off" in result.warnings[0]
    # The replay reads back exactly what was recorded.
    assert again["samples"] == raw["samples"]
    assert again["driver_version"] == "580.159.04"


def _with_mig(raw: dict) -> dict:
    """The H200 recording with MIG mode on and two MIG devices, as NVML answers for
    them: no utilization and no power per MIG device (NOT_SUPPORTED)."""
    out = copy.deepcopy(raw)
    for s in out["samples"]:
        gpu = s["devices"][0]
        gpu.update(mig_mode=1, utilization_gpu_pct=None, utilization_memory_pct=None)
        for k, gib in ((0, 35.0), (2, 70.0)):
            s["devices"].append(
                {
                    "index": 0,
                    "mig": k,
                    "name": "NVIDIA H200 MIG",
                    "uuid": f"MIG-{k}",
                    "utilization_gpu_pct": None,
                    "utilization_memory_pct": None,
                    "memory_used_bytes": 1 << 30,
                    "memory_total_bytes": int(gib * (1 << 30)),
                    "power_w": None,
                    "power_limit_w": None,
                    "mig_mode": None,
                }
            )
    return out


def test_mig_devices_are_rows_with_their_share_of_the_gpu() -> None:
    raw = _with_mig(json.loads(H200.read_text()))
    result, _ = _replay(raw, count=2)
    df = result.table.to_pandas()
    validate_frame(df, "utilization")
    assert sorted(df["workload_id"].unique()) == ["gpu/vm/0", "gpu/vm/0/mig0", "gpu/vm/0/mig2"]
    mig = df[df["kind"] == "mig"]
    assert len(mig) == 4
    assert mig["gpu_used"].isna().all()  # NVML does not report it per MIG device
    share = mig.groupby("workload_id")["gpu_requested"].first().round(3).to_dict()
    total = raw["samples"][0]["devices"][0]["memory_total_bytes"] / (1 << 30)
    assert share == {"gpu/vm/0/mig0": round(35 / total, 3), "gpu/vm/0/mig2": round(70 / total, 3)}
    assert any("MIG mode on" in w for w in result.warnings)


def test_no_driver_is_said_clearly() -> None:
    nv = load_pynvml()
    try:
        nv.nvmlInit()
    except nv.NVMLError:
        pass
    else:  # pragma: no cover - only on a machine with a GPU
        nv.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(IngestError, match="no NVIDIA driver on this machine"):
        sample(count=1)


def test_driver_without_gpu_and_bad_parameters() -> None:
    raw = json.loads(H200.read_text())
    empty = {**raw, "samples": [{"ts": raw["samples"][0]["ts"], "devices": []}]}
    with pytest.raises(IngestError, match="reports no GPU"):
        sample(count=1, backend=RecordedBackend(empty))
    with pytest.raises(IngestError, match="no NVIDIA driver"):
        sample(count=1, backend=RecordedBackend({**raw, "samples": []}))
    with pytest.raises(ConfigError, match="parameter interval"):
        sample(interval=0, backend=RecordedBackend(raw))
    with pytest.raises(ConfigError, match="parameter count"):
        sample(count=0, backend=RecordedBackend(raw))
    with pytest.raises(ConfigError, match="'samples' list"):
        RecordedBackend({"devices": []})


def test_cli_replay_stores_the_samples(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    rec = tmp_path / "again.json"
    res = runner.invoke(
        app,
        [
            "ingest",
            "nvml",
            "--replay",
            str(H200),
            "--count",
            "5",
            "--record",
            str(rec),
            "--store",
            str(store),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["rows_read"] == rep["rows_accepted"] == 5 and rep["balanced"] is True
    with Store(store, read_only=True) as st:
        df = st.utilization_frame()
    assert len(df) == 5 and df["gpu_used"].max() == pytest.approx(0.98)
    assert json.loads(rec.read_text())["samples"] == json.loads(H200.read_text())["samples"]
    missing = runner.invoke(
        app, ["ingest", "nvml", "--replay", str(tmp_path / "nope.json"), "--store", str(store)]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in missing.output
