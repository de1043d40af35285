"""Right-sizing math against hand-computed percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError
from optimizer.catalog import load_catalog
from optimizer.rightsizing import (
    PercentileHeadroom,
    RightsizingConfig,
    RiskBudget,
    grant_gpu,
    rightsize,
    risk_budgeted,
    vpa_like,
)


def util_frame(
    cpu: np.ndarray,
    mem: np.ndarray,
    *,
    replicas: int = 2,
    cpu_req: float = 4.0,
    mem_req: float = 16.0,
    gpu: np.ndarray | None = None,
    gpu_req: float = 0.0,
    gmem: np.ndarray | None = None,
    instance_type: str = "m6i.2xlarge",
    wid: str = "w1",
) -> pd.DataFrame:
    """Per-replica usage arrays -> a utilization frame (values summed over replicas)."""
    n = len(cpu)
    gpu = np.zeros(n) if gpu is None else gpu
    gmem = np.zeros(n) if gmem is None else gmem
    return pd.DataFrame(
        {
            "ds": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
            "workload_id": wid,
            "kind": "inference",
            "instance_type": instance_type,
            "cpu_used": cpu * replicas,
            "cpu_requested": cpu_req * replicas,
            "memory_used_gib": mem * replicas,
            "memory_requested_gib": mem_req * replicas,
            "gpu_used": gpu * replicas,
            "gpu_requested": gpu_req * replicas,
            "gpu_memory_used_gib": gmem * replicas,
            "replicas": replicas,
        }
    )


def test_vpa_anchor_matches_hand_computed_percentiles() -> None:
    cpu = np.arange(1, 101, dtype=float) / 100.0  # 0.01 .. 1.00
    mem = np.linspace(1.0, 8.0, 100)
    recs = rightsize(util_frame(cpu, mem), load_catalog(), vpa_like())
    r = recs.iloc[0]
    # numpy linear quantile: P90 of 0.01..1.00 = 0.9010; P99.5 of linspace(1, 8, 100).
    assert r["cpu_recommended"] == pytest.approx(0.9010 * 1.15)
    p995 = 1.0 + 7.0 * (0.995 * 99) / 99
    assert r["memory_recommended_gib"] == pytest.approx(p995 * 1.20)
    # Risk: share of intervals above the recommendation.
    assert r["cpu_risk"] == pytest.approx(np.mean(cpu > 0.9010 * 1.15))
    assert r["memory_risk"] == 0.0
    assert r["intervals"] == 100 and r["replicas_mean"] == 2
    u = load_catalog().unit_prices()
    saving = 2 * (
        (4.0 - r["cpu_recommended"]) * u.vcpu + (16.0 - r["memory_recommended_gib"]) * u.memory_gib
    )
    assert r["saving_usd_per_hour"] == pytest.approx(saving)
    assert r["saving_usd_per_month"] == pytest.approx(saving * 730)
    assert r["evidence_start"] == pd.Timestamp("2025-01-01", tz="UTC")


def test_policies_are_configurable() -> None:
    cpu = np.full(48, 1.0)
    cfg = RightsizingConfig(cpu=PercentileHeadroom(50, 0.0), memory=PercentileHeadroom(100, 0.5))
    r = rightsize(util_frame(cpu, np.full(48, 2.0)), load_catalog(), cfg).iloc[0]
    assert r["cpu_recommended"] == pytest.approx(1.0)
    assert r["memory_recommended_gib"] == pytest.approx(3.0)
    with pytest.raises(ConfigError):
        PercentileHeadroom(0, 0.1)
    with pytest.raises(ConfigError):
        RiskBudget(risk=1.5)


def test_risk_budget_adds_trend() -> None:
    flat = np.tile(np.linspace(0.2, 1.0, 24), 14)
    growing = flat * np.repeat(np.linspace(1.0, 1.5, 14), 24)
    pol = RiskBudget(risk=0.01, headroom=0.0)
    assert pol.recommend(growing) > np.quantile(growing, 0.99)
    assert pol.recommend(flat) == pytest.approx(np.quantile(flat, 0.99))


def test_gpu_grants() -> None:
    cfg = vpa_like()
    assert grant_gpu(0.2, 15, "H100-80GB", 80, cfg).label == "mig 2g.20gb"
    assert grant_gpu(0.3, 5, "L4", 24, cfg).label == "0.3 GPU share"
    assert grant_gpu(1.4, 10, "L4", 24, cfg).label == "2 GPU"
    assert grant_gpu(0.1, 30, "L4", 24, cfg).label == "2 GPU"
    assert grant_gpu(0, 0, "L4", 24, cfg).kind == "none"


def test_gpu_workload_gets_a_mig_profile() -> None:
    n = 48
    frame = util_frame(
        np.full(n, 2.0),
        np.full(n, 20.0),
        gpu=np.full(n, 0.2),
        gmem=np.full(n, 12.0),
        gpu_req=1.0,
        cpu_req=8,
        mem_req=64,
        instance_type="p5.48xlarge",
    )
    r = rightsize(frame, load_catalog(), risk_budgeted()).iloc[0]
    assert r["gpu_recommendation"] == "mig 2g.20gb"
    assert r["gpu_recommended"] == pytest.approx(2 / 7)
    assert r["gpu_risk"] == 0 and r["saving_usd_per_hour"] > 0


def test_too_little_evidence_and_bad_frames() -> None:
    assert rightsize(util_frame(np.ones(5), np.ones(5)), load_catalog()).empty
    bad = util_frame(np.ones(30), np.ones(30))
    bad.loc[3, "cpu_used"] = -1.0
    with pytest.raises(ValueError, match="cpu_used"):
        rightsize(bad, load_catalog())
