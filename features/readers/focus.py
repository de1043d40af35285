"""FOCUS 1.0-1.2 reader (CSV and parquet) into the cost frame.

EffectiveCost (amortized) becomes ``effective_cost``, the forecast target;
BilledCost (``billed_cost``) is what budgets are checked against. Every
ChargeCategory is kept and classified (Usage, Purchase, Tax, Credit,
Adjustment): credits and refunds are negative costs, which are valid data.
``Tags`` (a JSON object) is expanded into the team/project/... dimensions and
``x_*`` provider columns are kept verbatim in ``extras``. Files may mix
providers (ProviderName / ServiceProviderName per row).

The work runs in DuckDB; only the few thousand distinct tag sets pass through
Python. Row numbers in rejections are 1-based physical lines for CSV (the
header is line 1) and 0-based row indices for parquet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from features.exceptions import IngestError
from features.readers.base import (
    COST_ARROW_SCHEMA,
    ReadResult,
    Rejection,
    connect,
    run,
    sql_str,
)
from features.schema import COST_FRAME_COLUMNS
from features.tagkeys import TAG_DIMENSIONS, tag_lookup_table

#: Columns a FOCUS file must have (by FOCUS ColumnId, matched case-insensitively).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "ChargePeriodStart",
    "ChargeCategory",
    "BilledCost",
    "EffectiveCost",
)

#: FOCUS columns read when present (ColumnId -> kept as is).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "ChargePeriodEnd",
    "BillingAccountId",
    "SubAccountId",
    "BillingCurrency",
    "ProviderName",
    "ServiceProviderName",
    "RegionId",
    "ServiceName",
    "ResourceId",
    "ResourceName",
    "PricingCategory",
    "ListCost",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "Tags",
    "SkuPriceDetails",
    "SkuMeter",
    "ChargeClass",
    "ChargeDescription",
    "CommitmentDiscountId",
    "CommitmentDiscountStatus",
    "BillingPeriodStart",
    "SkuId",
)
_COST_TYPES_OK = (
    "DOUBLE",
    "FLOAT",
    "DECIMAL",
    "INTEGER",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "UBIGINT",
    "UINTEGER",
    "VARCHAR",
)
_TS_TYPES_OK = ("TIMESTAMP", "DATE", "VARCHAR")
_CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and (p.suffix.lower() in (".csv", ".parquet") or p.name.endswith(".csv.gz"))
        )
        if not files:
            raise IngestError("no .csv or .parquet files found in folder", path=str(path))
        return files
    if not path.exists():
        raise IngestError("file not found", path=str(path))
    return [path]


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _scan_csv(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, list[Rejection]]:
    """Register ``raw`` (all-varchar rows with ``_line``) and return structural rejects."""
    if path.stat().st_size == 0:
        raise IngestError("file is empty (0 bytes)", path=str(path))
    run(con, "DROP TABLE IF EXISTS raw")
    try:
        run(
            con,
            f"""
            CREATE TEMP TABLE raw AS
            SELECT *, row_number() OVER () AS _ord
            FROM read_csv({sql_str(path)}, all_varchar=true, header=true, auto_detect=true,
                          store_rejects=true, ignore_errors=true,
                          rejects_table='csv_reject_errors', rejects_scan='csv_reject_scans')
            """,
        )
    except duckdb.Error as exc:
        raise IngestError(f"not a readable CSV file ({_first_line(exc)})", path=str(path)) from exc
    errors = con.execute(
        "SELECT line, column_name, error_type FROM csv_reject_errors ORDER BY line"
    ).fetchall()
    run(con, "DROP TABLE IF EXISTS csv_reject_errors")
    run(con, "DROP TABLE IF EXISTS csv_reject_scans")
    rejections: list[Rejection] = []
    bad_lines: list[int] = []
    seen: set[int] = set()
    for line, column, etype in errors:
        line = int(line)
        if line in seen:  # one row can fail on several columns; count it once
            continue
        seen.add(line)
        bad_lines.append(line)
        reason = "invalid_encoding" if "ENCODING" in str(etype) else "malformed_row"
        detail = str(etype).lower().replace(" ", "_")
        rejections.append(
            Rejection(
                str(path),
                line,
                column,
                reason if reason == "invalid_encoding" else f"{reason}:{detail}",
            )
        )
    # Map accepted ordinals to physical lines: data lines start at 2 and skip rejected ones.
    n_ok = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]  # type: ignore[index]
    total = n_ok + len(bad_lines)
    lines = np.arange(2, total + 2, dtype=np.int64)
    if bad_lines:
        lines = np.setdiff1d(lines, np.asarray(bad_lines, dtype=np.int64), assume_unique=True)
    con.register(
        "_line_map",
        pa.table({"_ord": np.arange(1, n_ok + 1, dtype=np.int64), "_line": lines[:n_ok]}),
    )
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE raw_l AS SELECT r.* EXCLUDE (_ord), m._line "
        "FROM raw r JOIN _line_map m USING (_ord) ORDER BY m._line",
    )
    con.unregister("_line_map")
    run(con, "DROP TABLE raw")
    return "raw_l", rejections


def _scan_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    try:
        run(
            con,
            f"CREATE OR REPLACE TEMP VIEW raw_l AS SELECT * EXCLUDE (file_row_number), "
            f"file_row_number AS _line FROM read_parquet({sql_str(path)}, file_row_number=true)",
        )
        con.execute("SELECT count(*) FROM raw_l").fetchall()[0]
    except duckdb.Error as exc:
        raise IngestError(
            f"not a readable parquet file, truncated or corrupt ({_first_line(exc)})",
            path=str(path),
        ) from exc
    return "raw_l"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE {rel}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _resolve(cols: dict[str, str], wanted: str) -> str | None:
    lower = {c.lower(): c for c in cols}
    return lower.get(wanted.lower())


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_focus(path: str | Path) -> ReadResult:
    """Read a FOCUS export (one file or a folder of CSV/parquet files).

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (optionally ``.csv.gz``) or ``.parquet`` file, or a folder
        holding such files (read recursively, in sorted order).

    Returns
    -------
    ReadResult
        Accepted rows in the cost-frame layout and every rejected row with its
        reason. Row-level problems (unparsable dates, NaN or infinite costs,
        unknown ChargeCategory, duplicated lines, malformed CSV rows, invalid
        UTF-8) are rejections; negative costs are accepted.

    Raises
    ------
    IngestError
        When a file cannot be read at all (empty, not CSV/parquet, missing a
        required column, a required column of an incompatible type). The
        message names the file, and the column where relevant.
    """
    root = Path(path)
    files = _files_of(root)
    tables: list[pa.Table] = []
    rejections: list[Rejection] = []
    warnings: list[str] = []
    rows_read = 0
    eff_read = 0.0
    for file in files:
        res = _read_one(file)
        tables.append(res.table)
        rejections += res.rejections
        warnings += res.warnings
        rows_read += res.rows_read
        eff_read += res.effective_cost_read
    table = pa.concat_tables(tables) if tables else COST_ARROW_SCHEMA.empty_table()
    # Lines repeated across files (same content) are duplicates too.
    if len(files) > 1 and table.num_rows:
        table, dup_rej = _drop_cross_file_duplicates(table)
        rejections += dup_rej
    return ReadResult(
        source="focus",
        paths=[str(f) for f in files],
        table=table,
        rejections=rejections,
        rows_read=rows_read,
        effective_cost_read=eff_read,
        warnings=warnings,
    )


def _drop_cross_file_duplicates(table: pa.Table) -> tuple[pa.Table, list[Rejection]]:
    con = connect()
    con.register("t", table)
    run(con, "CREATE TEMP TABLE n AS SELECT *, row_number() OVER () AS _i FROM t")
    dup = con.execute(
        "SELECT _i, json_extract_string(extras, '$._file'), "
        "CAST(json_extract_string(extras, '$._row') AS BIGINT), effective_cost FROM ("
        " SELECT *, row_number() OVER (PARTITION BY line_id ORDER BY _i) AS k FROM n) WHERE k > 1"
    ).fetchall()
    if not dup:
        return table, []
    keep = con.sql(
        "SELECT * EXCLUDE (_i) FROM (SELECT *, row_number() OVER (PARTITION BY line_id ORDER BY _i)"
        " AS k FROM n) WHERE k = 1 ORDER BY _i"
    ).to_arrow_table()
    keep = keep.drop_columns(["k"])
    rej = [Rejection(str(f), int(r), None, "duplicate_line_item", float(c)) for _, f, r, c in dup]
    return keep, rej


def _read_one(file: Path) -> ReadResult:
    con = connect()
    rejections: list[Rejection] = []
    warnings: list[str] = []
    if _is_parquet(file):
        rel = _scan_parquet(con, file)
    else:
        rel, rejections = _scan_csv(con, file)
    cols = _columns(con, rel)
    names: dict[str, str | None] = {}
    missing = [c for c in REQUIRED_COLUMNS if _resolve(cols, c) is None]
    if missing:
        hint = ""
        if len(cols) <= 3:
            hint = (
                f"; the header parsed as {len(cols) - 1} column(s) - "
                "check the delimiter and that this is a FOCUS export"
            )
        listed = ", ".join(repr(c) for c in missing)
        raise IngestError(
            f"missing required FOCUS column(s) {listed}{hint}",
            path=str(file),
            row=1,
            column=missing[0],
        )
    for c in REQUIRED_COLUMNS:
        names[c] = _resolve(cols, c)
    for c in OPTIONAL_COLUMNS:
        names[c] = _resolve(cols, c)
    for c in ("BilledCost", "EffectiveCost", "ListCost"):
        real_col = names.get(c)
        if real_col and not cols[real_col].upper().startswith(_COST_TYPES_OK):
            raise IngestError(
                f"column has type {cols[real_col]}, expected a decimal number",
                path=str(file),
                column=c,
            )
    for c in ("ChargePeriodStart", "ChargePeriodEnd"):
        real_col = names.get(c)
        if real_col and not cols[real_col].upper().startswith(_TS_TYPES_OK):
            raise IngestError(
                f"column has type {cols[real_col]}, expected a timestamp",
                path=str(file),
                column=c,
            )
    x_cols = [c for c in cols if c.lower().startswith("x_")]

    def col(name: str, cast: str | None = None) -> str:
        real = names.get(name)
        if real is None:
            return f"CAST(NULL AS {cast or 'VARCHAR'})"
        expr = _q(real)
        return f"TRY_CAST({expr} AS {cast})" if cast else f"CAST({expr} AS VARCHAR)"

    def ts(name: str) -> str:
        real = names.get(name)
        if real is None:
            return "CAST(NULL AS TIMESTAMPTZ)"
        if cols[real].upper().startswith("TIMESTAMP WITH TIME ZONE"):
            return _q(real)
        return f"TRY_CAST(CAST({_q(real)} AS VARCHAR) AS TIMESTAMPTZ)"

    x_by_lower = {c.lower(): c for c in x_cols}
    usage_type = x_by_lower.get("x_usagetype")
    instance_type = x_by_lower.get("x_instancetype")
    usage_expr = f"CAST({_q(usage_type)} AS VARCHAR)" if usage_type else "CAST(NULL AS VARCHAR)"
    itype_expr = (
        f"NULLIF(CAST({_q(instance_type)} AS VARCHAR), '')"
        if instance_type
        else "CAST(NULL AS VARCHAR)"
    )
    sku_details = names.get("SkuPriceDetails")
    if sku_details:
        itype_expr = (
            f"coalesce({itype_expr}, TRY(json_extract_string(CAST({_q(sku_details)} AS VARCHAR),"
            f" '$.InstanceType')))"
        )
    itype_expr = (
        f"coalesce({itype_expr}, NULLIF(regexp_extract({usage_expr}, "
        f"'(?:Box|Spot|Dedicated|Host)Usage:([a-z0-9-]+\\.[a-z0-9-]+)', 1), ''))"
    )
    extra_fields = [
        c
        for c in (
            "ChargeClass",
            "ChargeDescription",
            "CommitmentDiscountId",
            "CommitmentDiscountStatus",
            "BillingPeriodStart",
            "SkuId",
            "ResourceName",
            "SkuMeter",
        )
        if names.get(c)
    ]
    json_args = ", ".join(
        [f"{sql_str(c)}, CAST({_q(names[c] or c)} AS VARCHAR)" for c in extra_fields]
        + [f"{sql_str(c)}, CAST({_q(c)} AS VARCHAR)" for c in x_cols]
    )
    extras_expr = f"CAST(json_object({json_args}) AS VARCHAR)" if json_args else "'{}'"
    all_cols_hash = " || '\x1f' || ".join(
        f"coalesce(CAST({_q(c)} AS VARCHAR), '\x00')" for c in cols if c != "_line"
    )
    tags_col = names.get("Tags")
    tags_expr = f"CAST({_q(tags_col)} AS VARCHAR)" if tags_col else "CAST(NULL AS VARCHAR)"
    provider_expr = f"coalesce(NULLIF({col('ServiceProviderName')}, ''), {col('ProviderName')})"

    run(
        con,
        f"""
        CREATE TEMP TABLE parsed AS
        SELECT
            _line,
            {ts("ChargePeriodStart")} AS ds,
            {ts("ChargePeriodEnd")} AS ds_end,
            {col("ChargePeriodStart")} AS _ds_raw,
            {provider_expr} AS provider,
            coalesce(NULLIF({col("SubAccountId")}, ''), {col("BillingAccountId")}) AS account,
            {col("RegionId")} AS region,
            {col("ServiceName")} AS service,
            {itype_expr} AS instance_type,
            {col("ResourceId")} AS resource_id,
            {usage_expr} AS usage_type,
            {col("PricingCategory")} AS pricing_category,
            {col("ChargeCategory")} AS _cc_raw,
            {col("EffectiveCost", "DOUBLE")} AS effective_cost,
            {col("BilledCost", "DOUBLE")} AS billed_cost,
            {col("ListCost", "DOUBLE")} AS list_cost,
            coalesce({col("ConsumedQuantity", "DOUBLE")}, {col("PricingQuantity", "DOUBLE")})
                AS usage_quantity,
            coalesce({col("ConsumedUnit")}, {col("PricingUnit")}) AS usage_unit,
            {col("BillingCurrency")} AS currency,
            {tags_expr} AS _tags_raw,
            {extras_expr} AS extras,
            md5({all_cols_hash}) AS line_id
        FROM {rel}
        """,
    )
    n_rows = con.execute("SELECT count(*) FROM parsed").fetchall()[0][0]  # type: ignore[index]
    rows_read = int(n_rows) + len(rejections)

    # Tags: canonicalise the distinct raw values in Python, join back.
    distinct = [r[0] for r in con.execute("SELECT DISTINCT _tags_raw FROM parsed").fetchall()]
    lookup = tag_lookup_table(distinct)
    con.register("tag_lookup", lookup)
    bad_tags = con.execute(
        "SELECT count(*), min(p._line) FROM parsed p JOIN tag_lookup t "
        "ON p._tags_raw IS NOT DISTINCT FROM t.raw WHERE NOT t.tags_ok"
    ).fetchall()[0]
    if bad_tags and bad_tags[0]:
        warnings.append(
            f"file {file}: {bad_tags[0]} row(s) have a Tags value that is not a JSON object "
            f"(first at row {bad_tags[1]}); their tags were read as empty"
        )
    naive = (
        con.execute(
            "SELECT count(*) FROM parsed WHERE ds IS NOT NULL AND NOT regexp_matches(_ds_raw, "
            "'(Z|[+-][0-9]{2}:?[0-9]{2})\\s*$')"
        ).fetchall()[0]
        if not _is_parquet(file)
        else (0,)
    )
    if naive and naive[0]:
        warnings.append(
            f"file {file}: {naive[0]} row(s) have ChargePeriodStart without a timezone; read as UTC"
        )
    cc_case = (
        "CASE "
        + " ".join(
            f"WHEN lower(trim(p._cc_raw)) = {sql_str(c.lower())} THEN {sql_str(c)}"
            for c in _CHARGE_CATEGORIES
        )
        + " ELSE NULL END"
    )
    dims_sel = ", ".join(f"t.tag_{d} AS {d}" for d in TAG_DIMENSIONS if d != "cluster")
    run(
        con,
        f"""
        CREATE TEMP TABLE classified AS
        SELECT p.*, {cc_case} AS charge_category,
               t.tags AS tags, t.tag_cluster AS cluster, {dims_sel},
               CASE
                 WHEN p.ds IS NULL THEN 'invalid_timestamp'
                 WHEN p.effective_cost IS NULL OR NOT isfinite(p.effective_cost)
                   THEN 'invalid_cost'
                 WHEN p.billed_cost IS NULL OR NOT isfinite(p.billed_cost) THEN 'invalid_cost'
                 WHEN ({cc_case}) IS NULL THEN 'invalid_charge_category'
                 WHEN row_number() OVER (PARTITION BY p.line_id ORDER BY p._line) > 1
                   THEN 'duplicate_line_item'
                 ELSE NULL
               END AS _reason,
               CASE
                 WHEN p.ds IS NULL THEN 'ChargePeriodStart'
                 WHEN p.effective_cost IS NULL OR NOT isfinite(p.effective_cost)
                   THEN 'EffectiveCost'
                 WHEN p.billed_cost IS NULL OR NOT isfinite(p.billed_cost) THEN 'BilledCost'
                 WHEN ({cc_case}) IS NULL THEN 'ChargeCategory'
                 ELSE NULL
               END AS _reason_col
        FROM parsed p LEFT JOIN tag_lookup t ON p._tags_raw IS NOT DISTINCT FROM t.raw
        """,
    )
    for line, reason, rcol, eff in con.execute(
        "SELECT _line, _reason, _reason_col, effective_cost FROM classified "
        "WHERE _reason IS NOT NULL ORDER BY _line"
    ).fetchall():
        cost = float(eff) if eff is not None and math.isfinite(float(eff)) else math.nan
        rejections.append(Rejection(str(file), int(line), rcol, str(reason), cost))
    eff_read = con.execute(
        "SELECT coalesce(sum(effective_cost), 0) FROM parsed "
        "WHERE effective_cost IS NOT NULL AND isfinite(effective_cost)"
    ).fetchall()[0][0]  # type: ignore[index]

    purchase = """
        CASE
          WHEN charge_category <> 'Usage' THEN 'other'
          WHEN lower(pricing_category) = 'dynamic' OR usage_type ILIKE '%SpotUsage%' THEN 'spot'
          WHEN lower(pricing_category) = 'committed' THEN 'committed'
          WHEN lower(pricing_category) = 'standard' OR pricing_category IS NULL THEN 'on_demand'
          ELSE 'other'
        END"""
    select = []
    for c in COST_FRAME_COLUMNS:
        if c == "purchase_option":
            select.append(f"{purchase} AS purchase_option")
        elif c == "source":
            select.append("'focus' AS source")
        elif c == "extras":
            select.append(
                f"json_merge_patch(extras, json_object('_file', {sql_str(file)}, '_row', _line))"
                " AS extras"
            )
        else:
            select.append(c)
    table = con.sql(
        f"SELECT {', '.join(select)} FROM classified WHERE _reason IS NULL ORDER BY _line"
    ).to_arrow_table()
    table = table.cast(COST_ARROW_SCHEMA)
    return ReadResult(
        source="focus",
        paths=[str(file)],
        table=table,
        rejections=rejections,
        rows_read=rows_read,
        effective_cost_read=float(eff_read),
        warnings=warnings,
    )


def focus_columns(spec_csv: str | Path) -> Sequence[str]:
    """ColumnIds listed in a FOCUS columns CSV (e.g. ``focus_columns_v1.2.csv``)."""
    con = connect()
    rows = con.execute(f"SELECT ColumnId FROM read_csv({sql_str(spec_csv)})").fetchall()
    return [str(r[0]) for r in rows]
