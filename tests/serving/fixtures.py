"""Fixture builders: small result frames of the docs/results.md contract, and a store holding them.

Each builder returns the frame the pipeline would store, with values a test can recompute
(``yhat = base + step``, symmetric intervals of known widths), so answers are checked
against arithmetic, not against themselves.
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from features.store import Store

Z80 = NormalDist().inv_cdf(0.9)
Z95 = NormalDist().inv_cdf(0.975)
START = pd.Timestamp("2025-01-01", tz="UTC")


def forecast_frame(
    ids: dict[str, str] | None = None, horizon: int = 14, base: float = 100.0, sd: float = 10.0
) -> pd.DataFrame:
    """Daily forecast: ``yhat = base * (k+1) + day``; intervals Gaussian with ``sd``."""
    ids = ids or {"total": "total", "team=nlp": "team", "team=vision": "team"}
    rows = []
    for k, (uid, level) in enumerate(ids.items()):
        for d in range(horizon):
            yhat = base * (k + 1) + d
            rows.append(
                {
                    "level": level,
                    "unique_id": uid,
                    "ds": START + pd.Timedelta(days=d),
                    "yhat": yhat,
                    "lo_80": yhat - Z80 * sd,
                    "hi_80": yhat + Z80 * sd,
                    "lo_95": yhat - Z95 * sd,
                    "hi_95": yhat + Z95 * sd,
                    "model": "ets",
                }
            )
    return pd.DataFrame(rows)


def load_frame(
    workloads: dict[str, dict[str, float]] | None = None, horizon: int = 72, sd: float = 2.0
) -> pd.DataFrame:
    """Hourly load: ``yhat = level + hour % 24`` with Gaussian intervals of ``sd``."""
    workloads = workloads or {
        "llm-serve": {"level": 10.0, "cap": 4.0, "min": 2, "max": 20},
        "batch-etl": {"level": 1.0, "cap": 0.5, "min": 1, "max": 8},
    }
    rows = []
    for wid, w in workloads.items():
        for h in range(horizon):
            yhat = w["level"] + (h % 24)
            rows.append(
                {
                    "unique_id": wid,
                    "ds": START + pd.Timedelta(hours=h),
                    "yhat": yhat,
                    "lo_80": yhat - Z80 * sd,
                    "hi_80": yhat + Z80 * sd,
                    "lo_95": yhat - Z95 * sd,
                    "hi_95": yhat + Z95 * sd,
                    "metric": "gpu",
                    "capacity_per_replica": w["cap"],
                    "min_replicas": w["min"],
                    "max_replicas": w["max"],
                }
            )
    return pd.DataFrame(rows)


def anomalies_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "rule": ["spike", "daily_threshold", "idle_gpu"],
            "title": ["GPU spend spike", "Daily spend over threshold", "Idle GPUs"],
            "severity": ["high", "medium", "low"],
            "team": ["nlp", "vision", "nlp"],
            "service": ["training", "inference", "training"],
            "resource": ["llm-train-7", "", "pod-3"],
            "period_start": pd.to_datetime(["2024-12-01", "2024-12-10", "2024-12-20"], utc=True),
            "period_end": pd.to_datetime(["2024-12-02", "2024-12-11", "2024-12-21"], utc=True),
            "detected_at": pd.to_datetime(["2024-12-02", "2024-12-11", "2024-12-21"], utc=True),
            "expected": [100.0, 50.0, np.nan],
            "actual": [912.0, 80.0, 10.0],
            "impact": [812.0, 30.0, 10.0],
            "score": [8.1, 3.2, 1.0],
            "root_cause": ["team=nlp / service=training / pod=llm-train-7: +$812", "", ""],
            "labelled": ["found", "", "false_alarm"],
        }
    )


def rightsizing_frame() -> pd.DataFrame:
    from optimizer.rightsizing import RECOMMENDATION_COLUMNS

    row = {c: 1.0 for c in RECOMMENDATION_COLUMNS}
    row.update(
        workload_id="llm-serve",
        kind="inference",
        instance_type="g5.xlarge",
        evidence_start=START - pd.Timedelta(days=14),
        evidence_end=START,
        intervals=336,
        gpu_recommendation="mig 3g.40gb",
        policy="vpa-like",
        saving_usd_per_month=420.0,
    )
    other = dict(row, workload_id="batch-etl", saving_usd_per_month=42.0, cpu_risk=np.nan)
    return pd.DataFrame([row, other], columns=list(RECOMMENDATION_COLUMNS))


def placement_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "policy": ["fgd", "best-fit"],
            "pods": [100, 100],
            "placed": [98, 95],
            "gpu_allocation_pct": [91.0, 85.5],
            "gpus_used": [40.0, 44.0],
            "nodes_used": [10, 11],
            "usd_per_month": [21000.0, 23100.0],
        }
    )


def savings_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["rightsizing", "spot", "mig"],
            "description": ["right-size llm-serve", "training on Spot", "MIG for notebooks"],
            "usd_per_month": [420.0, 1300.0, 250.0],
            "team": ["nlp", "nlp", "vision"],
        }
    )


def write_store(path: Path, *, run_id: str = "run-1", forecast: pd.DataFrame | None = None) -> Path:
    """A store with every result serving reads (forecast meta names model v3)."""
    with Store(path) as st:
        st.write_result(
            "forecast",
            forecast if forecast is not None else forecast_frame(),
            run_id=run_id,
            meta={
                "horizon_days": 14,
                "cutoff": "2024-12-31T00:00:00+00:00",
                "model_name": "demo-team-daily",
                "model_version": "3",
                "mlflow_run_id": "abc123",
            },
        )
        st.write_result(
            "load_forecast",
            load_frame(),
            run_id=run_id,
            meta={"freq": "h", "cutoff": "2024-12-31T23:00:00+00:00", "model_name": "load-lgbm"},
        )
        st.write_result("anomalies", anomalies_frame(), run_id=run_id)
        st.write_result("rightsizing", rightsizing_frame(), run_id=run_id)
        st.write_result("placement", placement_frame(), run_id=run_id)
        st.write_result("savings", savings_frame(), run_id=run_id)
    return path


def scenario_baseline(_store_path: object = None) -> object:
    """A small scenario baseline: two teams, three months, a GPU and a CPU workload."""
    from optimizer.scenarios import BaselineInputs

    months = pd.date_range("2025-01-01", periods=3, freq="MS", tz="UTC")
    team_rows = []
    for team, cost in (("nlp", 20_000.0), ("vision", 8_000.0)):
        for m in months:
            team_rows.append(
                {
                    "team": team,
                    "month": m,
                    "cost": cost,
                    "lo_80": cost * 0.9,
                    "hi_80": cost * 1.1,
                    "lo_95": cost * 0.85,
                    "hi_95": cost * 1.15,
                }
            )
    teams = pd.DataFrame(team_rows)
    total = teams.groupby("month", as_index=False)[
        ["cost", "lo_80", "hi_80", "lo_95", "hi_95"]
    ].sum()
    workloads = pd.DataFrame(
        [
            {
                "workload_id": "llm-serve",
                "team": "nlp",
                "kind": "inference",
                "instance_type": "g5.xlarge",
                "gpu_model": "A10G",
                "production": True,
                "replicas": 3,
                "cpu": 3.0,
                "memory_gib": 12.0,
                "gpu": 1.0,
                "gpu_memory_gib": 20.0,
                "cpu_recommended": 2.0,
                "memory_recommended_gib": 8.0,
                "gpu_recommended": 1.0,
            },
            {
                "workload_id": "etl",
                "team": "vision",
                "kind": "batch",
                "instance_type": "m5.2xlarge",
                "gpu_model": "",
                "production": False,
                "replicas": 4,
                "cpu": 2.0,
                "memory_gib": 8.0,
                "gpu": 0.0,
                "gpu_memory_gib": 0.0,
                "cpu_recommended": 1.0,
                "memory_recommended_gib": 4.0,
                "gpu_recommended": 0.0,
            },
        ]
    )
    return BaselineInputs(team_monthly=teams, total_monthly=total, workloads=workloads)
