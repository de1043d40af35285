"""Fixture builders: small hand-built cost and utilization frames with known answers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from features.readers.base import ReadResult
from features.schema import COST_FRAME_COLUMNS
from features.store import Store

START = pd.Timestamp("2025-01-01", tz="UTC")

#: Hourly cost per resource of each team in :func:`cost_frame` (two resources per team).
TEAM_RATES: dict[str, float] = {"alpha": 10.0, "beta": 4.0}


def _rows(
    ds: pd.DatetimeIndex,
    cost: np.ndarray,
    *,
    team: str | None,
    resource: str,
    project: str | None = None,
    instance_type: str = "m5.xlarge",
    purchase_option: str = "on_demand",
    environment: str | None = "prod",
    charge_category: str = "Usage",
    list_cost: np.ndarray | None = None,
    account: str = "111111111111",
) -> pd.DataFrame:
    n = len(ds)
    return pd.DataFrame(
        {
            "ds": ds,
            "account": account,
            "cluster": "eks-test",
            "service": "AmazonEC2",
            "team": team,
            "project": project if project is not None else (f"{team}-proj" if team else None),
            "environment": environment,
            "owner": None,
            "instance_type": instance_type,
            "resource_id": resource,
            "usage_type": f"BoxUsage:{instance_type}",
            "purchase_option": purchase_option,
            "charge_category": charge_category,
            "effective_cost": cost,
            "list_cost": cost if list_cost is None else list_cost,
        },
        index=range(n),
    )


def cost_frame(
    days: int = 35,
    *,
    rates: Mapping[str, float] | None = None,
    noise: float = 0.0,
    weekend_factor: float = 1.0,
    seed: int = 0,
    start: pd.Timestamp = START,
) -> pd.DataFrame:
    """Hourly cost of two resources per team (``{team}-r1``, ``{team}-r2``), ``days`` long.

    Each resource costs ``rates[team]`` per hour, times ``weekend_factor`` on
    Saturdays and Sundays, times ``1 + noise * N(0, 1)`` (clipped at 0).
    """
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=24 * days, freq="h")
    weekly = np.where(ds.day_of_week >= 5, weekend_factor, 1.0)
    parts = []
    for team, rate in (rates or TEAM_RATES).items():
        for k in (1, 2):
            c = rate * weekly * np.clip(1 + noise * rng.standard_normal(len(ds)), 0, None)
            parts.append(_rows(ds, c, team=team, resource=f"{team}-r{k}"))
    return (
        pd.concat(parts, ignore_index=True).sort_values("ds", kind="stable").reset_index(drop=True)
    )


def inject(
    frame: pd.DataFrame,
    start: str | pd.Timestamp,
    hours: int,
    cost_per_hour: float,
    *,
    team: str | None,
    resource: str,
    **kw: object,
) -> pd.DataFrame:
    """Add ``hours`` hourly rows of ``cost_per_hour`` on ``resource`` from ``start``."""
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0
    ds = pd.date_range(t0, periods=hours, freq="h")
    extra = _rows(ds, np.full(hours, float(cost_per_hour)), team=team, resource=resource, **kw)  # type: ignore[arg-type]
    return (
        pd.concat([frame, extra], ignore_index=True)
        .sort_values("ds", kind="stable")
        .reset_index(drop=True)
    )


def utilization_frame(
    workloads: Mapping[str, tuple[float, int]],
    *,
    hours: int = 72,
    kind: str = "training",
    instance_type: str = "p4d.24xlarge",
    start: pd.Timestamp = START,
    team: str = "alpha",
) -> pd.DataFrame:
    """Hourly GPU use: ``{workload_id: (utilization, gpus_requested)}`` for ``hours`` hours."""
    ds = pd.date_range(start, periods=hours, freq="h")
    parts = []
    for wid, (util, gpus) in workloads.items():
        parts.append(
            pd.DataFrame(
                {
                    "ds": ds,
                    "workload_id": wid,
                    "cluster": "eks-test",
                    "team": team,
                    "kind": kind,
                    "instance_type": instance_type,
                    "gpu_used": util * gpus,
                    "gpu_requested": float(gpus),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def store_with(path: object, frame: pd.DataFrame) -> Store:
    """A store holding ``frame`` (a partial cost frame; other canonical columns are null)."""
    df = frame.copy()
    df["ds_end"] = df["ds"] + pd.Timedelta(hours=1)
    df["billed_cost"] = df["effective_cost"]
    df["source"] = "test"
    df["line_id"] = [f"l{i}" for i in range(len(df))]
    df["currency"] = "USD"
    for col in COST_FRAME_COLUMNS:
        if col not in df.columns:
            df[col] = None
    table = pa.Table.from_pandas(df[list(COST_FRAME_COLUMNS)], preserve_index=False)
    st = Store(str(path))
    st.ingest(
        ReadResult(
            source="test",
            paths=[],
            table=table,
            rows_read=len(df),
            effective_cost_read=float(df["effective_cost"].sum()),
        )
    )
    return st
