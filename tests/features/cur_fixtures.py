"""Builders of small AWS CUR 2.0 exports for reader tests.

Rows are plain dicts keyed by CUR 2.0 column names (see ``cur_row``); ``cur_table`` turns
them into an Arrow table with CUR 2.0 types and ``write_cur_export`` lays them out the way
AWS Data Exports writes to S3, manifests included::

    <root>/data/BILLING_PERIOD=2025-03/<export>-00001.snappy.parquet
    <root>/metadata/BILLING_PERIOD=2025-03/<export>-Manifest.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TS = pa.timestamp("ms")  # CUR 2.0 parquet timestamps carry no zone; they are UTC
TAG_MAP = pa.map_(pa.string(), pa.string())

#: The CUR 2.0 columns the fixtures write, with the types AWS uses.
CUR_FIELDS: dict[str, pa.DataType] = {
    "bill_billing_period_start_date": TS,
    "identity_line_item_id": pa.string(),
    "identity_time_interval": pa.string(),
    "line_item_currency_code": pa.string(),
    "line_item_line_item_description": pa.string(),
    "line_item_line_item_type": pa.string(),
    "line_item_operation": pa.string(),
    "line_item_product_code": pa.string(),
    "line_item_resource_id": pa.string(),
    "line_item_unblended_cost": pa.float64(),
    "line_item_usage_account_id": pa.string(),
    "line_item_usage_amount": pa.float64(),
    "line_item_usage_end_date": TS,
    "line_item_usage_start_date": TS,
    "line_item_usage_type": pa.string(),
    "pricing_public_on_demand_cost": pa.float64(),
    "pricing_term": pa.string(),
    "pricing_unit": pa.string(),
    "product": TAG_MAP,
    "product_instance_type": pa.string(),
    "product_region_code": pa.string(),
    "product_servicecode": pa.string(),
    "reservation_effective_cost": pa.float64(),
    "reservation_reservation_a_r_n": pa.string(),
    "reservation_unused_amortized_upfront_fee_for_billing_period": pa.float64(),
    "reservation_unused_recurring_fee": pa.float64(),
    "resource_tags": TAG_MAP,
    "savings_plan_savings_plan_a_r_n": pa.string(),
    "savings_plan_savings_plan_effective_cost": pa.float64(),
    "savings_plan_total_commitment_to_date": pa.float64(),
    "savings_plan_used_commitment": pa.float64(),
    "split_line_item_parent_resource_id": pa.string(),
    "split_line_item_public_on_demand_split_cost": pa.float64(),
    "split_line_item_public_on_demand_unused_cost": pa.float64(),
    "split_line_item_split_cost": pa.float64(),
    "split_line_item_split_usage_ratio": pa.float64(),
    "split_line_item_unused_cost": pa.float64(),
}

ACCOUNT = "111122223333"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def hour(h: int, base: datetime = T0) -> datetime:
    """``base`` plus ``h`` hours (UTC)."""
    return base + timedelta(hours=h)


def cur_row(
    line_item_type: str = "Usage",
    cost: float | None = 1.0,
    *,
    start: datetime | None = T0,
    resource_id: str | None = "i-0aaa",
    usage_type: str = "USE1-BoxUsage:g5.xlarge",
    instance_type: str | None = "g5.xlarge",
    tags: Mapping[str, str] | None = None,
    line_item_id: str | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """One CUR 2.0 line item; ``columns`` sets any other CUR column by name."""
    row: dict[str, Any] = {
        "bill_billing_period_start_date": datetime(start.year, start.month, 1) if start else None,
        "identity_line_item_id": line_item_id,
        "identity_time_interval": (
            f"{start:%Y-%m-%dT%H:%M:%SZ}/{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"
            if start
            else None
        ),
        "line_item_currency_code": "USD",
        "line_item_line_item_description": f"{line_item_type} {usage_type}",
        "line_item_line_item_type": line_item_type,
        "line_item_operation": "RunInstances",
        "line_item_product_code": "AmazonEC2",
        "line_item_resource_id": resource_id,
        "line_item_unblended_cost": cost,
        "line_item_usage_account_id": ACCOUNT,
        "line_item_usage_amount": 1.0,
        "line_item_usage_end_date": start + timedelta(hours=1) if start else None,
        "line_item_usage_start_date": start,
        "line_item_usage_type": usage_type,
        "pricing_public_on_demand_cost": cost,
        "pricing_term": "OnDemand" if line_item_type == "Usage" else None,
        "pricing_unit": "Hrs",
        "product": {"region": "us-east-1", "instance_type": instance_type or ""},
        "product_instance_type": instance_type,
        "product_region_code": "us-east-1",
        "product_servicecode": "AmazonEC2",
        "resource_tags": dict(tags or {}),
    }
    unknown = set(columns) - set(CUR_FIELDS)
    if unknown:
        raise KeyError(f"not a fixture CUR column: {sorted(unknown)}")
    row.update(columns)
    return row


def pod_row(
    parent_id: str,
    split_cost: float,
    unused_cost: float = 0.0,
    *,
    arn: str = "arn:aws:eks:us-east-1:111122223333:pod/prod-gpu/ml/trainer-0/uid-1",
    start: datetime = T0,
    tags: Mapping[str, str] | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """A split cost allocation row (EKS pod or ECS task) of instance ``parent_id``."""
    return cur_row(
        "Usage",
        0.0,
        start=start,
        resource_id=arn,
        instance_type=None,
        tags=tags,
        split_line_item_parent_resource_id=parent_id,
        split_line_item_split_cost=split_cost,
        split_line_item_unused_cost=unused_cost,
        split_line_item_public_on_demand_split_cost=split_cost * 1.25,
        split_line_item_public_on_demand_unused_cost=unused_cost * 1.25,
        split_line_item_split_usage_ratio=0.25,
        **columns,
    )


def cur_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    id_prefix: str = "li",
    tags_as: str = "map",
    drop: Sequence[str] = (),
    types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """Arrow table of ``rows`` with CUR 2.0 types.

    Parameters
    ----------
    rows : sequence of dict
        From :func:`cur_row` / :func:`pod_row`. A ``None`` line item id becomes
        ``f"{id_prefix}-{i:05d}"`` (unique per table).
    tags_as : {"map", "json"}
        Write ``resource_tags`` as a MAP<string,string> (CUR 2.0) or as a JSON string.
    drop : sequence of str
        Columns to leave out.
    types : mapping, optional
        Override the Arrow type of columns (values are cast; use to inject bad types).
    """
    fields = {k: v for k, v in CUR_FIELDS.items() if k not in drop}
    if tags_as == "json":
        fields["resource_tags"] = pa.string()
    data: dict[str, list[Any]] = {k: [] for k in fields}
    for i, row in enumerate(rows):
        for k in fields:
            v = row.get(k)
            if k == "identity_line_item_id" and v is None:
                v = f"{id_prefix}-{i:05d}"
            if k in ("resource_tags", "product") and isinstance(v, Mapping):
                v = json.dumps(v, sort_keys=True) if fields[k] == pa.string() else list(v.items())
            if fields[k] == TS and isinstance(v, datetime) and v.tzinfo is not None:
                v = v.astimezone(UTC).replace(tzinfo=None)
            data[k].append(v)
    arrays = {}
    for k, typ in fields.items():
        override = (types or {}).get(k)
        values = data[k]
        if override is not None and pa.types.is_string(override) and typ == TS:
            values = [f"{v:%Y-%m-%dT%H:%M:%S}Z" if v is not None else None for v in values]
        arrays[k] = pa.array(values, override if override is not None else typ)
    return pa.table(arrays)


def write_cur_export(
    root: Path,
    periods: Mapping[str, Sequence[Sequence[Mapping[str, Any]] | pa.Table]],
    *,
    export_name: str = "finops-cur2",
    s3_uris: bool = False,
    tags_as: str = "map",
    stale: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    extra_listed: Sequence[str] = (),
    manifest: bool = True,
) -> Path:
    """Write a CUR 2.0 export folder and return its root.

    Parameters
    ----------
    root : Path
        Folder to create (the export prefix).
    periods : mapping
        ``"2025-03" -> [file_rows, ...]``: one parquet file per item (rows or a ready table).
    s3_uris : bool
        List files in manifests as ``s3://bucket/prefix/<export>/data/...`` instead of paths
        relative to ``root``.
    stale : mapping, optional
        ``period -> rows`` written as an extra data file that no manifest lists.
    extra_listed : sequence of str
        Extra ``dataFiles`` entries (to name files that do not exist).
    manifest : bool
        Write manifests at all.
    """
    for period, files in periods.items():
        data_dir = root / "data" / f"BILLING_PERIOD={period}"
        data_dir.mkdir(parents=True, exist_ok=True)
        listed = []
        for n, rows in enumerate(files, start=1):
            name = f"{export_name}-{n:05d}.snappy.parquet"
            table = (
                rows
                if isinstance(rows, pa.Table)
                else cur_table(rows, id_prefix=f"{period}-{n}", tags_as=tags_as)
            )
            pq.write_table(table, data_dir / name)
            rel = f"data/BILLING_PERIOD={period}/{name}"
            listed.append(f"s3://cur-bucket/exports/{export_name}/{rel}" if s3_uris else rel)
        if stale and period in stale:
            old = cur_table(stale[period], id_prefix=f"{period}-stale", tags_as=tags_as)
            pq.write_table(old, data_dir / f"{export_name}-old-00001.snappy.parquet")
        if manifest:
            meta = root / "metadata" / f"BILLING_PERIOD={period}"
            meta.mkdir(parents=True, exist_ok=True)
            doc = {
                "account": ACCOUNT,
                "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
                "bucket": "cur-bucket",
                "exportName": export_name,
                "dataFiles": [*listed, *extra_listed],
            }
            (meta / f"{export_name}-Manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


def synthetic_cur_table(n_rows: int, *, seed: int = 0, n_pods: int = 4) -> pa.Table:
    """A large, vectorised CUR 2.0 table: hourly GPU instances, each split across ``n_pods``.

    Every ``n_pods + 1`` consecutive rows are one instance-hour (a Usage row costing
    ``cost``) followed by its pods, whose split + unused costs add up to ``cost``. Pods run on
    clusters ``cluster-0..2`` and carry ``user_team`` / ``user_CostCenter`` tags.
    """
    rng = np.random.default_rng(seed)
    group = n_pods + 1
    n_groups = n_rows // group
    n = n_groups * group
    g = np.repeat(np.arange(n_groups), group)
    k = np.tile(np.arange(group), n_groups)
    n_instances = max(1, n_groups // 720)
    inst = g % n_instances
    start = np.datetime64("2025-03-01T00:00:00", "ms") + (g // n_instances).astype("timedelta64[h]")
    inst_cost = np.round(rng.uniform(1.0, 40.0, n_groups), 6)
    shares = rng.dirichlet(np.ones(n_pods), n_groups)
    is_pod = k > 0
    pod_cost = inst_cost[g] * np.where(is_pod, shares[g, np.maximum(k - 1, 0)], 0.0)

    instance_ids = pa.array([f"i-{i:08d}" for i in range(n_instances)])
    arns = pa.array(
        [
            f"arn:aws:eks:us-east-1:{ACCOUNT}:pod/cluster-{i % 3}/ml/pod-{i}-{j}/uid"
            for i in range(n_instances)
            for j in range(group)
        ]
    )
    parent_ids = instance_ids.take(pa.array(inst))
    resource_ids = pc.if_else(pa.array(is_pod), arns.take(pa.array(inst * group + k)), parent_ids)
    teams = pa.array(["ml", "search", "ads", "infra"]).take(pa.array((inst + k) % 4))
    centers = pa.array([f"cc-{i}" for i in range(7)]).take(pa.array(inst % 7))
    tag_values = pa.array(np.arange(2 * n) // 2 + (np.arange(2 * n) % 2) * n)
    tags = pa.MapArray.from_arrays(
        pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
        pa.array(["user_team", "user_CostCenter"]).take(pa.array(np.arange(2 * n) % 2)),
        pa.concat_arrays([teams, centers]).take(tag_values),
    )
    line_ids = pc.binary_join_element_wise("syn-", pa.array(np.arange(n)).cast(pa.string()), "")
    return pa.table(
        {
            "identity_line_item_id": line_ids,
            "line_item_line_item_type": pa.array(["Usage"] * n),
            "line_item_usage_start_date": pa.array(start, TS),
            "line_item_usage_end_date": pa.array(start + np.timedelta64(1, "h"), TS),
            "line_item_resource_id": resource_ids,
            "line_item_usage_account_id": pa.array([ACCOUNT] * n),
            "line_item_product_code": pa.array(["AmazonEC2"] * n),
            "line_item_usage_type": pa.array(["USE1-BoxUsage:p4d.24xlarge"] * n),
            "product_instance_type": pa.array(["p4d.24xlarge"] * n, mask=is_pod),
            "line_item_unblended_cost": np.where(is_pod, 0.0, inst_cost[g]),
            "line_item_usage_amount": np.ones(n),
            "pricing_unit": pa.array(["Hrs"] * n),
            "line_item_currency_code": pa.array(["USD"] * n),
            "split_line_item_parent_resource_id": pc.if_else(
                pa.array(is_pod), parent_ids, pa.scalar(None, pa.string())
            ),
            "split_line_item_split_cost": pa.array(pod_cost * 0.9, mask=~is_pod),
            "split_line_item_unused_cost": pa.array(pod_cost * 0.1, mask=~is_pod),
            "resource_tags": tags,
        }
    )
