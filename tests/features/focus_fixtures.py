"""Builders of small FOCUS exports for tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd

FOCUS_COLUMNS = [
    "BillingAccountId",
    "SubAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "PricingCategory",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ProviderName",
    "RegionId",
    "ServiceName",
    "ResourceId",
    "Tags",
    "x_UsageType",
    "x_Operation",
]


def focus_row(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """One valid FOCUS usage row; hour ``i`` of 2025-01-01, deterministic values."""
    start = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=i)
    team = ["nlp", "vision", "search"][i % 3]
    row: dict[str, Any] = {
        "BillingAccountId": "222222222222",
        "SubAccountId": "222222222222",
        "BillingCurrency": "USD",
        "BillingPeriodStart": "2025-01-01T00:00:00Z",
        "ChargePeriodStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ChargePeriodEnd": (start + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "PricingCategory": "Standard",
        "BilledCost": f"{1.006 + i * 0.01:.6f}",
        "EffectiveCost": f"{1.006 + i * 0.01:.6f}",
        "ListCost": f"{1.006 + i * 0.01:.6f}",
        "ConsumedQuantity": "1",
        "ConsumedUnit": "Hours",
        "ProviderName": "AWS",
        "RegionId": "us-east-1",
        "ServiceName": "Amazon Elastic Compute Cloud",
        "ResourceId": f"i-{i % 4:04d}",
        "Tags": json.dumps(
            {
                "Team": team,
                "Project": f"{team}-p",
                "Environment": "prod",
                "CostCenter": "CC-1",
                "Owner": "a@example.com",
                "aws:eks:cluster-name": "eks-research",
            }
        ),
        "x_UsageType": "USE1-BoxUsage:g5.xlarge",
        "x_Operation": "RunInstances",
    }
    row.update(overrides)
    return row


def write_focus_csv(
    path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None, delimiter: str = ","
) -> Path:
    cols = columns or FOCUS_COLUMNS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, delimiter=delimiter, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_focus_parquet(path: Path, rows: list[dict[str, Any]], typed: bool = True) -> Path:
    df = pd.DataFrame(rows)
    if typed:
        for c in ("BilledCost", "EffectiveCost", "ListCost", "ConsumedQuantity"):
            if c in df:
                df[c] = pd.to_numeric(df[c])
        for c in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart"):
            if c in df:
                df[c] = pd.to_datetime(df[c], utc=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def rows(n: int = 6, **overrides: Any) -> list[dict[str, Any]]:
    return [focus_row(i, **overrides) for i in range(n)]
