"""Reader of AWS Cost and Usage Report 2.0 (Data Exports) parquet into the cost frame.

An export folder looks the way AWS writes it to S3::

    <root>/data/BILLING_PERIOD=2025-03/<export>-00001.snappy.parquet
    <root>/metadata/BILLING_PERIOD=2025-03/<export>-Manifest.json   {"dataFiles": [...], ...}

When manifests exist, exactly the files they list are read (AWS leaves files of overwritten
runs behind; those are ignored with a warning). A single parquet file, or a folder of parquet
files without manifests, is read as is.

All row work happens in one DuckDB scan (``read_parquet(..., union_by_name=true,
filename=true, file_row_number=true)``) and a few SQL passes over it; Python only touches the
distinct tag sets and the rejected rows. The result is a :class:`~features.readers.base.ReadResult`
whose ``effective_cost`` is the AWS amortized cost, with ECS task / EKS pod split cost
allocation applied so that nothing is counted twice:

* a split row (non-empty ``split_line_item_parent_resource_id``) costs
  ``split_line_item_split_cost + split_line_item_unused_cost``;
* its parent instance row (same resource id and usage hour) keeps only the residual, so the
  stored total equals the amortized total of the non-split rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from features.exceptions import ConfigError, IngestError
from features.readers._tags import DEFAULT_TAG_PREFIXES, TAG_DIMENSIONS, tag_lookup_table
from features.readers.base import (
    COST_ARROW_SCHEMA,
    ReadResult,
    Rejection,
    check_regular_file,
    connect,
    cost_ok_sql,
    sql_str,
    ts_ok_sql,
)
from features.schema import COST_FRAME_COLUMNS

__all__ = ["read_cur"]

SOURCE = "cur"

# -- CUR 2.0 columns the reader uses, by how they are read ------------------------------------
START_COL = "line_item_usage_start_date"
END_COL = "line_item_usage_end_date"
INTERVAL_COL = "identity_time_interval"
COST_COL = "line_item_unblended_cost"
TYPE_COL = "line_item_line_item_type"
ID_COL = "identity_line_item_id"
PARENT_COL = "split_line_item_parent_resource_id"
SPLIT_COST_COL = "split_line_item_split_cost"
UNUSED_COST_COL = "split_line_item_unused_cost"

_TIME_COLS = (START_COL, END_COL, "bill_billing_period_start_date")
_NUMERIC_COLS = (
    COST_COL,
    "line_item_usage_amount",
    "pricing_public_on_demand_cost",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    SPLIT_COST_COL,
    UNUSED_COST_COL,
    "split_line_item_public_on_demand_split_cost",
    "split_line_item_public_on_demand_unused_cost",
)
_TEXT_COLS = (
    ID_COL,
    INTERVAL_COL,
    TYPE_COL,
    PARENT_COL,
    "line_item_resource_id",
    "line_item_usage_account_id",
    "bill_payer_account_id",
    "line_item_product_code",
    "product_servicecode",
    "product_region_code",
    "product_instance_type",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_line_item_description",
    "pricing_term",
    "pricing_unit",
    "line_item_currency_code",
    "reservation_reservation_a_r_n",
)
_NESTED_COLS = ("resource_tags", "product")
_USED_COLS = (*_TIME_COLS, *_NUMERIC_COLS, *_TEXT_COLS, *_NESTED_COLS)

# -- line item types ---------------------------------------------------------------------------
_USAGE_TYPES = ("Usage", "SavingsPlanCoveredUsage", "DiscountedUsage", "SavingsPlanNegation")
_PURCHASE_TYPES = ("SavingsPlanUpfrontFee", "RIFee", "SavingsPlanRecurringFee", "Fee")
_COMMITTED_TYPES = (
    "SavingsPlanCoveredUsage",
    "DiscountedUsage",
    "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee",
    "SavingsPlanNegation",
    "RIFee",
)
#: Line item types of an instance row that split rows re-allocate.
_PARENT_TYPES = ("Usage", "SavingsPlanCoveredUsage", "DiscountedUsage")

_PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PARTITION_RE = re.compile(r"^BILLING_PERIOD=(\d{4}-\d{2})$")
_NUMERIC_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "FLOAT",
        "DOUBLE",
    }
)
_NULL_TYPES = frozenset({"NULL", '"NULL"'})
_ARN_WORKLOAD_RE = (
    r"^arn:aws[a-z-]*:(?:eks|ecs):[^:]*:[^:]*:"
    r"(?:pod|task|service|task-set|container-instance|nodegroup|fargateprofile|addon)/([^/]+)/"
)
_ARN_CLUSTER_RE = r"^arn:aws[a-z-]*:(?:eks|ecs):[^:]*:[^:]*:cluster/([^/]+)$"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _in_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(sql_str(v) for v in values) + ")"


def _kind(duck_type: str) -> str:
    """Classify a DuckDB column type: numeric, text, time, nested, null or other."""
    t = duck_type.upper()
    if t in _NULL_TYPES:
        return "null"
    if t in _NUMERIC_TYPES or t.startswith("DECIMAL"):
        return "numeric"
    if t in ("VARCHAR", "JSON"):
        return "text"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "time"
    if t.startswith("MAP(") or t.startswith("STRUCT("):
        return "nested"
    return "other"


# -- locating the data files -------------------------------------------------------------------


@dataclass(frozen=True)
class _Files:
    """The data files to read, in reading order, plus what was noticed on the way."""

    paths: list[str]
    periods: list[str | None]  # BILLING_PERIOD partition of each file, None when unknown
    warnings: list[str]


def _partition_period(path: Path) -> str | None:
    for part in reversed(path.parts):
        m = _PARTITION_RE.match(part)
        if m:
            return m.group(1)
    return None


def _is_data_file(path: Path) -> bool:
    return (
        path.is_file() and path.name.endswith(".parquet") and not path.name.startswith((".", "_"))
    )


def _resolve_listed(entry: str, root: Path) -> Path | None:
    """Map a manifest ``dataFiles`` entry (relative path or s3 URI) to a local file."""
    key = entry
    if "://" in key:  # s3://bucket/prefix/export/data/BILLING_PERIOD=.../f.parquet
        key = key.split("://", 1)[1].split("/", 1)[-1]
    parts = [p for p in key.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts) or "\x00" in key:
        raise IngestError(
            f"manifest entry {entry!r} leaves the export root; refused",
            path=str(root),
            column="dataFiles",
        )
    inside = root.resolve()
    anchors = [
        i
        for i in range(len(parts) - 1)
        if parts[i] == "data" and parts[i + 1].startswith("BILLING_PERIOD=")
    ]
    candidates = [parts[i:] for i in reversed(anchors)] + [parts[i:] for i in range(len(parts))]
    for cand in candidates:
        local = root.joinpath(*cand)
        # Every listed file must resolve (symlinks followed) inside the export root.
        if local.is_file() and local.resolve().is_relative_to(inside):
            return local
    return None


def _manifest_period(manifest: Path, doc: dict[str, Any]) -> str | None:
    period = _partition_period(manifest.parent)
    if period is not None:
        return period
    bp = doc.get("billingPeriod")
    text = bp.get("start") if isinstance(bp, dict) else bp
    if isinstance(text, str):
        m = re.match(r"^(\d{4})-?(\d{2})", text)
        if m:
            return f"{m.group(1)}-{m.group(2)}"
    return None


def _load_manifest(manifest: Path) -> dict[str, Any]:
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(f"manifest is not valid JSON ({exc})", path=str(manifest)) from exc
    except RecursionError as exc:
        raise IngestError("manifest JSON is nested too deeply", path=str(manifest)) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("dataFiles"), list):
        raise IngestError(
            "manifest must be a JSON object with a 'dataFiles' list",
            path=str(manifest),
            column="dataFiles",
        )
    return doc


def _files_from_manifests(root: Path, manifests: list[Path], periods: set[str] | None) -> _Files:
    warnings: list[str] = []
    by_period: dict[str | None, list[tuple[Path, dict[str, Any]]]] = {}
    for manifest in manifests:
        doc = _load_manifest(manifest)
        by_period.setdefault(_manifest_period(manifest, doc), []).append((manifest, doc))
    chosen: list[tuple[Path, dict[str, Any]]] = []
    for period, docs in sorted(by_period.items(), key=lambda kv: kv[0] or ""):
        if periods is not None and period not in periods:
            continue
        if period is None or len(docs) == 1:
            chosen += docs
            continue
        # Versioned exports keep one manifest per run: the newest describes the period.
        newest = max(docs, key=lambda md: (md[0].stat().st_mtime, str(md[0])))
        chosen.append(newest)
        ignored = ", ".join(str(m.relative_to(root)) for m, _ in docs if m != newest[0])
        warnings.append(
            f"billing period {period} has {len(docs)} manifests; read the newest "
            f"({newest[0].relative_to(root)}) and ignored {ignored}"
        )
    if periods is not None and not chosen:
        found = sorted(p for p in by_period if p is not None)
        raise IngestError(
            f"no manifest for billing periods {sorted(periods)}; the export has {found}",
            path=str(root),
        )
    listed: list[Path] = []
    seen: set[Path] = set()
    for manifest, doc in chosen:
        for entry in doc["dataFiles"]:
            name = entry.get("key", entry.get("path")) if isinstance(entry, dict) else entry
            if not isinstance(name, str) or not name:
                raise IngestError(
                    f"dataFiles entries must be file names, got {entry!r}",
                    path=str(manifest),
                    column="dataFiles",
                )
            local = _resolve_listed(name, root)
            if local is None:
                raise IngestError(
                    f"manifest lists data file {name!r}, which does not exist under {root}",
                    path=str(manifest),
                    column="dataFiles",
                )
            local = local.resolve()
            if local not in seen:
                seen.add(local)
                listed.append(local)
    stale = [
        p
        for p in sorted(root.rglob("*.parquet"))
        if _is_data_file(p)
        and "metadata" not in p.relative_to(root).parts
        and p.resolve() not in seen
        and (periods is None or _partition_period(p) in periods)
    ]
    if stale:
        shown = ", ".join(str(p.relative_to(root)) for p in stale[:5])
        more = f" (+{len(stale) - 5} more)" if len(stale) > 5 else ""
        warnings.append(
            f"ignored {len(stale)} data file(s) not listed in the manifests read (left over from "
            f"overwritten export runs?): {shown}{more}"
        )
    return _Files([str(p) for p in listed], [_partition_period(p) for p in listed], warnings)


def _locate(root: Path, periods: set[str] | None) -> _Files:
    if not root.is_dir():
        check_regular_file(root, missing="no such file or folder")
        files = [root.resolve()]
        return _Files([str(p) for p in files], [_partition_period(p) for p in files], [])
    manifests = (
        sorted(p for p in (root / "metadata").rglob("*Manifest.json") if p.is_file())
        if (root / "metadata").is_dir()
        else []
    )
    if manifests:
        found = _files_from_manifests(root, manifests, periods)
    else:
        paths = [p.resolve() for p in sorted(root.rglob("*.parquet")) if _is_data_file(p)]
        if not paths:
            raise IngestError("no parquet data files (and no CUR manifests) found", path=str(root))
        pers = [_partition_period(p) for p in paths]
        keep = [i for i, per in enumerate(pers) if periods is None or per is None or per in periods]
        if not keep:
            raise IngestError(
                f"no data files for billing periods {sorted(periods or ())}; "
                f"the folder has {sorted({p for p in pers if p})}",
                path=str(root),
            )
        found = _Files([str(paths[i]) for i in keep], [pers[i] for i in keep], [])
    if not found.paths:
        raise IngestError("the manifests list no data files", path=str(root))
    return found


# -- schema checks -----------------------------------------------------------------------------


def _describe(con: duckdb.DuckDBPyConnection, path: str) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_str(path)})").fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"not a readable parquet file ({_first_line(exc)})", path=path) from exc
    return {str(r[0]).lower(): str(r[1]) for r in rows}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check_schema(path: str, schema: dict[str, str]) -> dict[str, str]:
    """Validate one file's columns; return the used columns with their DuckDB types."""
    if START_COL not in schema and INTERVAL_COL not in schema:
        raise IngestError(
            f"missing required column: need {START_COL!r} or {INTERVAL_COL!r}",
            path=path,
            column=START_COL,
        )
    for col in (COST_COL, TYPE_COL):
        if col not in schema:
            raise IngestError("missing required column", path=path, column=col)
    used = {c: schema[c] for c in _USED_COLS if c in schema}
    allowed = {
        **dict.fromkeys(_TIME_COLS, ("time", "text", "null")),
        **dict.fromkeys(_NUMERIC_COLS, ("numeric", "text", "null")),
        **dict.fromkeys(_TEXT_COLS, ("text", "numeric", "null")),
        **dict.fromkeys(_NESTED_COLS, ("nested", "text", "null")),
        TYPE_COL: ("text", "null"),
        INTERVAL_COL: ("text", "null"),
    }
    wanted = {
        "time": "a timestamp (or text holding one)",
        "numeric": "numeric (or text holding numbers)",
        "text": "text",
        "nested": "a map (or JSON text)",
    }
    for col, duck_type in used.items():
        if _kind(duck_type) not in allowed[col]:
            raise IngestError(
                f"column must be {wanted[allowed[col][0]]}, got type {duck_type}",
                path=path,
                column=col,
            )
    return used


# -- SQL building ------------------------------------------------------------------------------


class _Exprs:
    """SQL expressions over one group of files that share the types of the used columns."""

    def __init__(self, types: dict[str, str], start_from_interval: bool) -> None:
        self.types = types
        self.start_from_interval = start_from_interval

    def kind(self, col: str) -> str | None:
        return _kind(self.types[col]) if col in self.types else None

    def text(self, col: str) -> str:
        kind = self.kind(col)
        if kind in (None, "null"):
            return "CAST(NULL AS VARCHAR)"
        # trim() copies every string (5x slower than the cast); AWS writes no padding, so
        # only blank-padded values pay for it.
        c = f"CAST({_q(col)} AS VARCHAR)"
        return (
            f"CASE WHEN {c} = '' THEN NULL WHEN {c} LIKE ' %' OR {c} LIKE '% ' "
            f"THEN nullif(trim({c}), '') ELSE {c} END"
        )

    def num(self, col: str) -> str:
        kind = self.kind(col)
        if kind in (None, "null"):
            return "CAST(NULL AS DOUBLE)"
        if kind == "text":
            return f"TRY_CAST(trim({_q(col)}) AS DOUBLE)"
        return f"CAST({_q(col)} AS DOUBLE)"

    def time(self, col: str) -> str:
        kind = self.kind(col)
        if kind in (None, "null"):
            return "CAST(NULL AS TIMESTAMP)"
        if kind == "text":
            return f"CAST(TRY_CAST(trim({_q(col)}) AS TIMESTAMPTZ) AS TIMESTAMP)"
        # Zone-aware values become UTC wall time (the session runs in UTC); plain
        # timestamps are UTC already, as AWS writes them.
        return f"CAST({_q(col)} AS TIMESTAMP)"

    def interval(self, part: int) -> str:
        if self.kind(INTERVAL_COL) in (None, "null"):
            return "CAST(NULL AS TIMESTAMP)"
        part_sql = f"trim(split_part({_q(INTERVAL_COL)}, '/', {part}))"
        return f"CAST(TRY_CAST({part_sql} AS TIMESTAMPTZ) AS TIMESTAMP)"

    def nested_key(self, col: str, keys: Sequence[str]) -> str:
        """First non-empty value among ``keys`` of a MAP / STRUCT / JSON-text column."""
        kind = self.kind(col)
        if kind in (None, "null"):
            return "CAST(NULL AS VARCHAR)"
        c = _q(col)
        if kind == "nested" and self.types[col].upper().startswith("MAP("):
            parts = [f"CAST(map_extract({c}, {sql_str(k)})[1] AS VARCHAR)" for k in keys]
        else:
            doc = f"to_json({c})" if kind == "nested" else f"CASE WHEN json_valid({c}) THEN {c} END"
            parts = [f"json_extract_string({doc}, {sql_str('$.' + k)})" for k in keys]
        return "nullif(trim(coalesce(" + ", ".join(parts) + ")), '')"

    def tags_text(self) -> str:
        kind = self.kind("resource_tags")
        if kind in (None, "null"):
            return "CAST(NULL AS VARCHAR)"
        if kind == "nested":
            return "CAST(to_json(resource_tags) AS VARCHAR)"
        return "CAST(resource_tags AS VARCHAR)"

    def tags_hash(self) -> str:
        """A fast in-run key of the raw tag set; the text is built once per distinct set."""
        if self.kind("resource_tags") in (None, "null"):
            return "CAST(NULL AS UBIGINT)"
        return "hash(resource_tags)"

    def distinct_tags(self, paths: Sequence[str]) -> str:
        files_sql = "[" + ", ".join(sql_str(p) for p in paths) + "]"
        return (
            f"SELECT {self.tags_hash()} AS tags_h, {self.tags_text()} AS tags_text FROM ("
            f"SELECT DISTINCT resource_tags FROM read_parquet({files_sql}, union_by_name = true))"
        )

    def select(self, paths: Sequence[str], first_idx: int) -> str:
        lt = self.text(TYPE_COL)
        unblended = self.num(COST_COL)
        z = {c: f"coalesce({self.num(c)}, 0)" for c in _NUMERIC_COLS}
        rarn = self.text("reservation_reservation_a_r_n")
        amortized = f"""CASE {lt}
            WHEN 'SavingsPlanCoveredUsage' THEN {z["savings_plan_savings_plan_effective_cost"]}
            WHEN 'SavingsPlanRecurringFee' THEN {z["savings_plan_total_commitment_to_date"]}
                                               - {z["savings_plan_used_commitment"]}
            WHEN 'SavingsPlanNegation' THEN 0.0
            WHEN 'SavingsPlanUpfrontFee' THEN 0.0
            WHEN 'DiscountedUsage' THEN {z["reservation_effective_cost"]}
            WHEN 'RIFee' THEN {z["reservation_unused_amortized_upfront_fee_for_billing_period"]}
                              + {z["reservation_unused_recurring_fee"]}
            WHEN 'Fee' THEN CASE WHEN {rarn} IS NOT NULL THEN 0.0 ELSE {unblended} END
            ELSE {unblended} END"""
        # The column to blame when the amortized cost is not finite.
        amort_col = f"""CASE {lt}
            WHEN 'SavingsPlanCoveredUsage' THEN 'savings_plan_savings_plan_effective_cost'
            WHEN 'SavingsPlanRecurringFee' THEN CASE
                WHEN {cost_ok_sql(z["savings_plan_total_commitment_to_date"])}
                THEN 'savings_plan_used_commitment'
                ELSE 'savings_plan_total_commitment_to_date' END
            WHEN 'DiscountedUsage' THEN 'reservation_effective_cost'
            WHEN 'RIFee' THEN CASE
                WHEN {cost_ok_sql(z["reservation_unused_amortized_upfront_fee_for_billing_period"])}
                THEN 'reservation_unused_recurring_fee'
                ELSE 'reservation_unused_amortized_upfront_fee_for_billing_period' END
            ELSE {sql_str(COST_COL)} END"""
        split_cost = f"{z[SPLIT_COST_COL]} + {z[UNUSED_COST_COL]}"
        split_col = f"""CASE WHEN {cost_ok_sql(z[SPLIT_COST_COL])} THEN {sql_str(UNUSED_COST_COL)}
            ELSE {sql_str(SPLIT_COST_COL)} END"""
        od_split = self.num("split_line_item_public_on_demand_split_cost")
        od_unused = self.num("split_line_item_public_on_demand_unused_cost")
        split_list = f"""CASE WHEN {od_split} IS NULL AND {od_unused} IS NULL THEN NULL
            ELSE coalesce({od_split}, 0) + coalesce({od_unused}, 0) END"""
        if self.start_from_interval:
            ds, ds_end = self.interval(1), f"coalesce({self.interval(2)}, {self.time(END_COL)})"
        else:
            ds = self.time(START_COL)
            ds_end = f"coalesce({self.time(END_COL)}, {self.interval(2)})"
        start_raw = self.text(START_COL if not self.start_from_interval else INTERVAL_COL)
        files_sql = "[" + ", ".join(sql_str(p) for p in paths) + "]"
        if len(paths) == 1:
            file_idx, join = str(first_idx), ""
        else:
            file_idx, join = "f.idx", "JOIN cur_files AS f ON r.filename = f.path"
        return f"""
        SELECT
            {file_idx} AS file_idx,
            r.file_row_number AS row_no,
            {ds} AS ds,
            {ds_end} AS ds_end,
            {start_raw} AS start_raw,
            {sql_str(INTERVAL_COL if self.start_from_interval else START_COL)} AS ts_col,
            strftime(coalesce({self.time("bill_billing_period_start_date")}, {ds}), '%Y-%m')
                AS period_key,
            {lt} AS lt,
            {self.text(ID_COL)} AS line_item_id,
            {self.text(PARENT_COL)} AS parent_id,
            {self.text("line_item_resource_id")} AS resource_id,
            {self.text("line_item_usage_account_id")} AS account,
            coalesce({self.text("product_region_code")},
                     {self.nested_key("product", ("region_code", "region"))}) AS region,
            coalesce({self.text("line_item_product_code")}, {self.text("product_servicecode")},
                     {self.nested_key("product", ("servicecode", "service_code"))}) AS service,
            coalesce({self.text("product_instance_type")},
                     {self.nested_key("product", ("instance_type", "instanceType"))})
                AS instance_type,
            {self.text("line_item_usage_type")} AS usage_type,
            {self.text("line_item_operation")} AS operation,
            {self.text("line_item_line_item_description")} AS description,
            {self.text("pricing_term")} AS pricing_term,
            {self.text("pricing_unit")} AS usage_unit,
            {self.text("line_item_currency_code")} AS currency,
            {rarn} AS reservation_arn,
            {unblended} AS unblended,
            {amortized} AS amortized,
            {amort_col} AS amort_col,
            {split_cost} AS split_cost,
            {split_col} AS split_col,
            {split_list} AS split_list,
            {self.num("pricing_public_on_demand_cost")} AS list_cost,
            {self.num("line_item_usage_amount")} AS usage_amount,
            {self.text("bill_payer_account_id")} AS payer,
            {self.tags_hash()} AS tags_h
        FROM read_parquet({files_sql}, union_by_name = true, filename = true,
                          file_row_number = true) AS r
        {join}"""


def _derive_sql(source: str) -> str:
    """Per-row rejection reason, line id, purchase option and split key, in one projection.

    ``source`` yields the typed rows of :meth:`_Exprs.select`. Duplicates and orphan split
    rows need other rows, so they are marked afterwards by :data:`_DUPLICATES_SQL` and
    :data:`_SPLIT_SQL` (in place, touching only the few rows concerned).
    """
    # A cost outside the valid domain (not finite, or beyond MAX_ABS_COST) is not a cost.
    not_finite = "NOT " + cost_ok_sql("{0}")
    bad_list = "list_cost IS NOT NULL AND NOT isnan(list_cost) AND NOT " + cost_ok_sql("list_cost")
    key_fields = ", ".join(
        f"coalesce(CAST({c} AS VARCHAR), '')"
        for c in (
            "account",
            "lt",
            "service",
            "usage_type",
            "operation",
            "resource_id",
            "parent_id",
            "start_raw",
            "ds_end",
            "unblended",
            "usage_amount",
            "description",
        )
    )
    return f"""
    SELECT *,
        date_trunc('hour', ds) AS hour,
        CASE WHEN is_split THEN parent_id
             WHEN lt IN {_in_list(_PARENT_TYPES)} THEN resource_id END AS split_key,
        CASE
            WHEN lt IN {_in_list(_COMMITTED_TYPES)} OR (lt = 'Fee' AND reservation_arn IS NOT NULL)
                THEN 'committed'
            WHEN lt = 'Usage' AND (pricing_term = 'Spot' OR contains(usage_type, 'SpotUsage'))
                THEN 'spot'
            WHEN lt = 'Usage' THEN 'on_demand'
            ELSE 'other'
        END AS purchase_option,
        CASE
            WHEN lt IN {_in_list(_USAGE_TYPES)} THEN 'Usage'
            WHEN lt IN {_in_list(_PURCHASE_TYPES)} THEN 'Purchase'
            WHEN lt = 'Tax' THEN 'Tax'
            WHEN lt IN ('Credit', 'Refund') THEN 'Credit'
            ELSE 'Adjustment'
        END AS charge_category,
        coalesce(payer, account, '') || '/' || coalesce(period_key, '') || '/' || key_id || '@'
            || coalesce(CAST(epoch(ds) AS BIGINT), 0) AS line_id,
        CASE
            WHEN is_split THEN CASE WHEN {not_finite.format("split_cost")}
                                    THEN 'NaN'::DOUBLE ELSE 0.0 END
            WHEN {not_finite.format("unblended")} OR {not_finite.format("amortized")}
                THEN 'NaN'::DOUBLE
            ELSE amortized
        END AS cost_read
    FROM (
        SELECT *,
            parent_id IS NOT NULL AS is_split,
            CASE
                WHEN NOT {ts_ok_sql("ds")} THEN 'invalid_timestamp'
                WHEN ds_end IS NOT NULL AND NOT {ts_ok_sql("ds_end")} THEN 'invalid_timestamp'
                WHEN ds_end < ds THEN 'invalid_period'
                WHEN parent_id IS NOT NULL AND {not_finite.format("split_cost")}
                    THEN 'invalid_cost'
                WHEN parent_id IS NULL AND {not_finite.format("unblended")} THEN 'invalid_cost'
                WHEN parent_id IS NULL AND {not_finite.format("amortized")} THEN 'invalid_cost'
                WHEN parent_id IS NULL AND {bad_list} THEN 'invalid_cost'
            END AS reason,
            CASE
                WHEN NOT {ts_ok_sql("ds")} THEN ts_col
                WHEN ds_end IS NOT NULL AND NOT {ts_ok_sql("ds_end")} THEN {sql_str(END_COL)}
                WHEN ds_end < ds THEN {sql_str(END_COL)}
                WHEN parent_id IS NOT NULL THEN split_col
                WHEN {not_finite.format("unblended")} THEN {sql_str(COST_COL)}
                WHEN {not_finite.format("amortized")} THEN amort_col
                WHEN parent_id IS NULL AND {bad_list} THEN 'pricing_public_on_demand_cost'
                ELSE amort_col
            END AS reason_column,
            CASE WHEN line_item_id IS NOT NULL THEN line_item_id
                 ELSE 'md5:' || md5(concat_ws(chr(31), {key_fields})) END AS key_id
        FROM ({source})
    )
    """


#: A repeated line item id within one usage start is a duplicate (the first copy is kept);
#: a repeated content hash (rows without an id) is a distinct row and gets a "#n" suffix.
#: Grouping first keeps the window to the few rows concerned.
_DUPLICATES_SQL = f"""
CREATE TEMP TABLE cur_repeats AS
WITH groups AS (
    SELECT key_id, ds FROM cur_rows WHERE reason IS NULL
    GROUP BY key_id, ds HAVING count(*) > 1
)
SELECT r.row_key, r.line_item_id IS NOT NULL AS has_id,
    row_number() OVER (PARTITION BY r.key_id, r.ds ORDER BY r.row_key) AS occurrence
FROM cur_rows AS r SEMI JOIN groups AS g ON r.key_id = g.key_id AND r.ds = g.ds
WHERE r.reason IS NULL;

UPDATE cur_rows SET reason = 'duplicate_line_item', reason_column = {sql_str(ID_COL)}
FROM cur_repeats AS d
WHERE cur_rows.row_key = d.row_key AND d.has_id AND d.occurrence > 1;

UPDATE cur_rows SET line_id = line_id || '#' || CAST(d.occurrence - 1 AS VARCHAR)
FROM cur_repeats AS d
WHERE cur_rows.row_key = d.row_key AND NOT d.has_id AND d.occurrence > 1;
"""


_SPLIT_SQL = """
CREATE TEMP TABLE split_parents AS
SELECT split_key, hour,
    count(*) AS n,
    fsum(amortized) AS eff_sum,
    fsum(unblended) AS billed_sum,
    fsum(list_cost) AS list_sum,
    first(instance_type ORDER BY abs(amortized) DESC, row_key)
        FILTER (WHERE instance_type IS NOT NULL) AS instance_type,
    first(purchase_option ORDER BY abs(amortized) DESC, row_key) AS purchase_option
FROM cur_rows
WHERE reason IS NULL AND NOT is_split AND split_key IS NOT NULL
GROUP BY split_key, hour;

UPDATE cur_rows SET reason = 'split_row_without_parent', reason_column = $parent_col
WHERE reason IS NULL AND is_split AND NOT EXISTS (
    SELECT 1 FROM split_parents p WHERE p.split_key = cur_rows.split_key AND p.hour = cur_rows.hour
);

CREATE TEMP TABLE split_children AS
SELECT split_key, hour, fsum(split_cost) AS eff_sum, fsum(split_list) AS list_sum
FROM cur_rows
WHERE reason IS NULL AND is_split
GROUP BY split_key, hour;
"""


def _accepted_sql() -> str:
    arn_cluster = (
        "nullif(coalesce(nullif(regexp_extract({0}, $arn_workload, 1), ''), "
        "regexp_extract({0}, $arn_cluster, 1)), '')"
    )
    # Weight of one parent row in its (resource, hour) group, so that several instance rows
    # of one hour (e.g. part SP-covered, part on-demand) share the children's cost.
    weight = "CASE WHEN p.{s} <> 0 THEN {v} / p.{s} ELSE 1.0 / p.n END"
    is_parent = "(NOT r.is_split AND c.split_key IS NOT NULL)"
    return f"""
    WITH out AS (
        SELECT
            r.row_key, r.line_id,
            r.ds, r.ds_end,
            'AWS' AS provider,
            r.account, r.region,
            CASE WHEN t.cluster IS NOT NULL THEN t.cluster
                 ELSE {arn_cluster.format("r.resource_id")} END AS cluster,
            r.service,
            {", ".join(f"t.{d}" for d in TAG_DIMENSIONS)},
            CASE WHEN r.is_split THEN coalesce(p.instance_type, r.instance_type)
                 ELSE r.instance_type END AS instance_type,
            r.resource_id, r.usage_type,
            CASE WHEN r.is_split THEN coalesce(p.purchase_option, r.purchase_option)
                 ELSE r.purchase_option END AS po,
            r.charge_category,
            CASE
                WHEN r.is_split THEN r.split_cost
                WHEN {is_parent}
                    THEN r.amortized - c.eff_sum * {weight.format(s="eff_sum", v="r.amortized")}
                ELSE r.amortized
            END AS effective_cost,
            CASE
                WHEN r.is_split THEN r.split_cost
                WHEN {is_parent}
                    THEN r.unblended - c.eff_sum * {weight.format(s="billed_sum", v="r.unblended")}
                ELSE r.unblended
            END AS billed_cost,
            CASE
                WHEN r.is_split THEN r.split_list
                WHEN {is_parent} AND r.list_cost IS NOT NULL AND c.list_sum IS NOT NULL
                    THEN r.list_cost
                         - c.list_sum * {weight.format(s="list_sum", v="r.list_cost")}
                ELSE r.list_cost
            END AS list_cost,
            r.usage_amount AS usage_quantity,
            r.usage_unit, r.currency,
            coalesce(t.tags, '{{}}') AS tags,
            json_object('line_item_type', r.lt, 'operation', r.operation,
                        'split_parent_resource_id', r.parent_id) AS extras
        FROM cur_rows AS r
        LEFT JOIN tag_lookup AS t ON r.tags_h = t.tags_h
        LEFT JOIN split_parents AS p ON r.split_key = p.split_key AND r.hour = p.hour
        LEFT JOIN split_children AS c
            ON NOT r.is_split AND r.split_key = c.split_key AND r.hour = c.hour
        WHERE r.reason IS NULL
    )
    SELECT
        row_key,
        ds, ds_end, provider, account, region, cluster, service,
        {", ".join(TAG_DIMENSIONS)},
        instance_type, resource_id, usage_type,
        CASE po WHEN 'spot' THEN 'Dynamic' WHEN 'committed' THEN 'Committed'
                WHEN 'on_demand' THEN 'Standard' ELSE 'Other' END AS pricing_category,
        po AS purchase_option,
        charge_category,
        effective_cost, billed_cost,
        coalesce(list_cost, 'NaN'::DOUBLE) AS list_cost,
        coalesce(usage_quantity, 'NaN'::DOUBLE) AS usage_quantity,
        usage_unit, currency, tags, extras,
        {sql_str(SOURCE)} AS source,
        line_id
    FROM out
    """


# -- tags --------------------------------------------------------------------------------------


def _to_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run ``sql`` and return its result as one Arrow table (DuckDB 1.x and 2.x)."""
    rel = con.sql(sql)
    to_table = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return to_table()


# -- entry point -------------------------------------------------------------------------------


def _check_periods(billing_periods: Sequence[str] | str | None) -> set[str] | None:
    if billing_periods is None:
        return None
    values = [billing_periods] if isinstance(billing_periods, str) else list(billing_periods)
    bad = [v for v in values if not isinstance(v, str) or not _PERIOD_RE.match(v)]
    if bad or not values:
        raise ConfigError(
            "parameter billing_periods must be a non-empty sequence of 'YYYY-MM' strings, "
            f"got {billing_periods!r}"
        )
    return set(values)


def _scan(
    con: duckdb.DuckDBPyConnection,
    files: _Files,
    schemas: list[dict[str, str]],
    periods: set[str] | None,
) -> list[tuple[_Exprs, list[str]]]:
    """Create ``cur_rows``: one row per data row read, typed and classified.

    Returns the groups of files read with one set of expressions (same column types).
    """
    con.execute("CREATE TEMP TABLE cur_files (idx INTEGER, path VARCHAR)")
    con.executemany("INSERT INTO cur_files VALUES (?, ?)", list(enumerate(files.paths)))
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for path, used in zip(files.paths, schemas, strict=True):
        groups.setdefault(tuple(sorted(used.items())), []).append(path)
    selects = []
    used_groups: list[tuple[_Exprs, list[str]]] = []
    for signature, paths in groups.items():
        types = dict(signature)
        exprs = _Exprs(types, start_from_interval=START_COL not in types)
        selects.append(exprs.select(paths, files.paths.index(paths[0])))
        used_groups.append((exprs, paths))
    where = ""
    unpartitioned = [i for i, per in enumerate(files.periods) if per is None]
    if periods is not None and unpartitioned:
        # Files outside a BILLING_PERIOD= folder are filtered row by row, on the bill's period.
        where = (
            f"WHERE file_idx NOT IN ({', '.join(map(str, unpartitioned))}) "
            f"OR period_key IS NULL OR period_key IN {_in_list(sorted(periods))}"
        )
    # The billing period a row belongs to is its delivery's (BILLING_PERIOD= partition or
    # manifest), never the row's own dates: a row outside its delivery's period is kept under
    # the delivery (and reported), so that it can never make the delivery replace another
    # period. Only files without a partition fall back to the row's bill / usage month.
    delivered = [(i, per) for i, per in enumerate(files.periods) if per is not None]
    delivery_sql = (
        "CASE file_idx "
        + " ".join(f"WHEN {i} THEN {sql_str(per)}" for i, per in delivered)
        + " END"
        if delivered
        else "CAST(NULL AS VARCHAR)"
    )
    source = (
        "SELECT (CAST(file_idx AS BIGINT) << 40) + row_no AS row_key, "
        f"* REPLACE (coalesce({delivery_sql}, period_key) AS period_key), "
        f"{delivery_sql} AS delivery_period, period_key AS row_period FROM ("
        + " UNION ALL ".join(selects)
        + f") {where}"
    )
    sql = "CREATE TEMP TABLE cur_rows AS " + _derive_sql(source)
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        m = re.search(r"file [\"']([^\"']+)[\"']", str(exc))
        culprit = m.group(1) if m else _find_unreadable(con, files, schemas)
        raise IngestError(f"cannot read parquet data ({_first_line(exc)})", path=culprit) from exc
    return used_groups


def _find_unreadable(
    con: duckdb.DuckDBPyConnection, files: _Files, schemas: list[dict[str, str]]
) -> str | None:
    """Scan the files one by one to name the one DuckDB could not read (error path only)."""
    for idx, (path, used) in enumerate(zip(files.paths, schemas, strict=True)):
        exprs = _Exprs(used, start_from_interval=START_COL not in used)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE cur_probe AS {exprs.select([path], idx)}")
        except duckdb.Error:
            return path
    return None


def read_cur(
    path: str | Path,
    *,
    billing_periods: Sequence[str] | None = None,
    tag_prefixes: Sequence[str] = DEFAULT_TAG_PREFIXES,
) -> ReadResult:
    """Read an AWS CUR 2.0 export into the canonical cost frame.

    Parameters
    ----------
    path : str or Path
        A CUR 2.0 export folder (``data/BILLING_PERIOD=YYYY-MM/*.parquet`` plus
        ``metadata/BILLING_PERIOD=YYYY-MM/*Manifest.json``), a folder of parquet files
        without manifests, or one parquet file.
    billing_periods : sequence of str, optional
        Only read these billing periods (``"2025-03"``). Files are chosen by their
        ``BILLING_PERIOD=`` folder (or manifest); files outside such a folder are filtered
        row by row on ``bill_billing_period_start_date`` (else the usage start month). Rows
        filtered out are not counted as read.
    tag_prefixes : sequence of str
        Prefixes stripped from ``resource_tags`` keys before canonicalising them
        (see :func:`features.readers._tags.normalize_tag_key`).

    Returns
    -------
    ReadResult
        ``table``: accepted rows in :data:`~features.readers.base.COST_ARROW_SCHEMA`, in file
        order; ``effective_cost`` is the amortized cost in ``currency``, split rows carry their
        ECS task / EKS pod share and their parent instance row the residual. ``rejections``:
        one per rejected row, ``row`` being the 0-based row in its parquet file, with reasons
        ``invalid_timestamp``, ``invalid_cost``, ``duplicate_line_item`` (the first copy is
        kept) and ``split_row_without_parent``; a rejected split row carries cost 0 since it
        only re-allocates its parent. ``rows_read == rows_accepted + len(rejections)`` and
        ``effective_cost_read`` (amortized cost of every non-split row whose cost parsed)
        equals the accepted total plus the finite rejected costs.

    Raises
    ------
    IngestError
        When a whole file or manifest is unusable, naming it (and the column): missing path,
        no data files, manifest not JSON or naming a missing file, not a parquet file,
        missing required column, required column of an incompatible type.
    ConfigError
        When ``billing_periods`` is not a sequence of ``YYYY-MM`` strings.
    """
    root = Path(path)
    periods = _check_periods(billing_periods)
    files = _locate(root, periods)
    con = connect()
    try:
        schemas = [_check_schema(p, _describe(con, p)) for p in files.paths]
        groups = _scan(con, files, schemas, periods)
        con.execute(_DUPLICATES_SQL)
        con.execute(_SPLIT_SQL.replace("$parent_col", sql_str(PARENT_COL)))

        # Tags: the text of each distinct raw tag set, canonicalised once in Python.
        pairs = con.execute(
            " UNION ".join(exprs.distinct_tags(paths) for exprs, paths in groups)
        ).fetchall()
        texts = sorted({str(t) for _, t in pairs if t is not None})
        con.register("tag_lookup_text", tag_lookup_table(texts, tag_prefixes))
        con.register(
            "tag_hash",
            pa.table(
                {
                    "tags_h": pa.array([h for h, t in pairs if t is not None], pa.uint64()),
                    "tags_text": pa.array([t for _, t in pairs if t is not None], pa.string()),
                }
            ),
        )
        con.execute(
            "CREATE TEMP TABLE tag_lookup AS SELECT h.tags_h, l.* "
            "FROM tag_hash AS h JOIN tag_lookup_text AS l USING (tags_text)"
        )
        warnings = list(files.warnings)
        ((n_bad,),) = con.execute(
            "SELECT count(*) FROM cur_rows AS r JOIN tag_lookup AS t ON r.tags_h = t.tags_h "
            "WHERE r.reason IS NULL AND NOT t.tags_ok"
        ).fetchall()
        if n_bad:
            warnings.append(
                f"{n_bad} row(s) have resource_tags that are not a JSON object; read as untagged"
            )
        outside = con.execute(
            "SELECT r.delivery_period, count(*), min(r.row_period), max(r.row_period), "
            "arg_min(f.path, r.row_key), arg_min(r.row_no, r.row_key) "
            "FROM cur_rows AS r JOIN cur_files AS f ON r.file_idx = f.idx "
            "WHERE r.delivery_period IS NOT NULL "
            "AND r.row_period IS DISTINCT FROM r.delivery_period "
            "GROUP BY r.delivery_period ORDER BY r.delivery_period"
        ).fetchall()
        for period, n, lo, hi, first_file, first_row in outside:
            seen = "no billing period" if lo is None else (lo if lo == hi else f"{lo}..{hi}")
            warnings.append(
                f"billing period {period}: {n} row(s) dated outside the delivery ({seen}; first "
                f"{first_file} row {first_row}); kept under {period}, other periods untouched"
            )

        accepted_sql = (
            _accepted_sql()
            .replace("$arn_workload", sql_str(_ARN_WORKLOAD_RE))
            .replace("$arn_cluster", sql_str(_ARN_CLUSTER_RE))
        )
        # Sorting in Arrow on the int key is cheaper than ORDER BY over the wide rows.
        table = _to_arrow(con, accepted_sql).sort_by("row_key").drop_columns(["row_key"])
        rejected = con.execute(
            """SELECT f.path, r.row_no, r.reason_column, r.reason, r.cost_read
            FROM cur_rows AS r JOIN cur_files AS f ON r.file_idx = f.idx
            WHERE r.reason IS NOT NULL ORDER BY r.row_key"""
        ).fetchall()
        cost_read = con.execute("SELECT cost_read FROM cur_rows").fetchnumpy()["cost_read"]
        ((rows_read,),) = con.execute("SELECT count(*) FROM cur_rows").fetchall()
        # A partitioned export (BILLING_PERIOD=... folders, manifests) delivers whole billing
        # periods, and AWS does not keep line item ids stable between deliveries: ingesting
        # a period replaces that payer's period in the store.
        replace: list[str] = []
        if files.paths and all(p is not None for p in files.periods):
            replace = sorted(
                f"{payer}/{period}/"
                for payer, period in con.execute(
                    "SELECT DISTINCT coalesce(payer, account, ''), coalesce(period_key, '') "
                    "FROM cur_rows"
                ).fetchall()
            )
    finally:
        con.close()

    values = np.asarray(cost_read, dtype="float64")
    rejections = [
        Rejection(
            file=str(p),
            row=int(row),
            column=col,
            reason=str(reason),
            effective_cost=float(cost) if cost is not None else math.nan,
        )
        for p, row, col, reason, cost in rejected
    ]
    table = table.select(list(COST_FRAME_COLUMNS)).cast(COST_ARROW_SCHEMA)
    return ReadResult(
        source=SOURCE,
        paths=list(files.paths),
        table=table,
        rejections=rejections,
        rows_read=int(rows_read),
        effective_cost_read=math.fsum(values[np.isfinite(values)].tolist()),
        warnings=warnings,
        replace_prefixes=replace,
    )
