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

import csv
import gzip
import math
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.exceptions import IngestError
from features.readers.base import (
    COST_ARROW_SCHEMA,
    ReadResult,
    Rejection,
    check_regular_file,
    connect,
    cost_in_domain,
    cost_ok_sql,
    run,
    sql_str,
    ts_ok_sql,
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
_NULL_KEY = "\x00<null>"

#: Longest CSV line (bytes) read; a longer line is rejected on its own line number with
#: ``malformed_row:line_size_over_maximum`` (a 550 KB Tags cell fits, a 10 MB cell does not).
MAX_CSV_LINE_BYTES = 4 * 1024 * 1024


#: Row checks in order: the SQL condition that fails a row, its reason and its column.
_ROW_CHECKS: tuple[tuple[str, str, str], ...] = (
    (f"NOT {ts_ok_sql('ds')}", "invalid_timestamp", "ChargePeriodStart"),
    (f"ds_end IS NOT NULL AND NOT {ts_ok_sql('ds_end')}", "invalid_timestamp", "ChargePeriodEnd"),
    ("ds_end < ds", "invalid_period", "ChargePeriodEnd"),
    (f"NOT {cost_ok_sql('effective_cost')}", "invalid_cost", "EffectiveCost"),
    (f"NOT {cost_ok_sql('billed_cost')}", "invalid_cost", "BilledCost"),
    (
        f"list_cost IS NOT NULL AND NOT isnan(list_cost) AND NOT {cost_ok_sql('list_cost')}",
        "invalid_cost",
        "ListCost",
    ),
    ("charge_category IS NULL", "invalid_charge_category", "ChargeCategory"),
)


def _row_checks_sql() -> str:
    """``_reason, _reason_col`` of the first failing row check (NULL when the row passes)."""
    reason = " ".join(f"WHEN {c} THEN '{r}'" for c, r, _ in _ROW_CHECKS)
    column = " ".join(f"WHEN {c} THEN '{col}'" for c, _, col in _ROW_CHECKS)
    return f"CASE {reason} END AS _reason,\n            CASE {column} END AS _reason_col"


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _files_of(path: Path) -> tuple[list[Path], list[str]]:
    """The files to read, plus warnings (hidden files skipped in a folder)."""
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and (p.suffix.lower() in (".csv", ".parquet") or p.name.endswith(".csv.gz"))
        )
        # Hidden files (.DS_Store, dotfiles, _SUCCESS markers, editor backups) are not data.
        hidden = [p for p in path.rglob("*") if p.is_file() and _is_hidden(p, path)]
        files = [p for p in found if not _is_hidden(p, path)]
        warnings = []
        if hidden:
            shown = ", ".join(str(p.relative_to(path)) for p in hidden[:5])
            warnings.append(f"skipped {len(hidden)} hidden file(s) in {path}: {shown}")
        if not files:
            raise IngestError("no .csv or .parquet files found in folder", path=str(path))
        return files, warnings
    check_regular_file(path)
    return [path], []


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _header_cells(path: Path, delim: str) -> list[str]:
    """The header line of ``path`` split on ``delim`` (RFC 4180 quoting), names deduplicated
    the way DuckDB does (``c``, ``c_1``) so the duplicate-column check still sees them."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline(MAX_CSV_LINE_BYTES).decode("utf-8", errors="replace")
    first = first.lstrip("\ufeff").rstrip("\r\n")
    cells = next(csv.reader([first], delimiter=delim), [])
    names: list[str] = []
    for i, cell in enumerate(cells):
        name = cell or f"column{i}"
        base, k = name, 0
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


def _explicit_dialect(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """``read_csv`` options: auto-detection, unless it is misled by a broken line.

    One stray double quote makes DuckDB's sniffer pick "no quoting", after which every line
    holding a quoted cell (a Tags JSON) has too many columns and the whole file is rejected;
    a line over the size limit makes the sniffer fail and the error names line 1. In both
    cases the file is read with the standard dialect (the sniffed or header-guessed
    delimiter, ``"`` quote and escape) and explicit all-varchar columns from the header, so
    no sniffing happens: only the broken lines are rejected, each on its own line number.
    """
    delim: str | None = None
    try:
        sniffed = con.execute(
            f"SELECT Delimiter, Quote FROM sniff_csv({sql_str(path)}, "
            f"max_line_size={MAX_CSV_LINE_BYTES})"
        ).fetchall()
        if sniffed and sniffed[0][1] == '"':
            return "auto_detect=true,"
        if sniffed and len(str(sniffed[0][0])) == 1:
            delim = str(sniffed[0][0])
    except duckdb.Error:
        pass
    if delim is None:  # the sniffer failed: the most frequent candidate in the header
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            first = fh.readline(MAX_CSV_LINE_BYTES).decode("utf-8", errors="replace")
        delim = max(",;\t|", key=first.count)
    header = _header_cells(path, delim)
    if len(header) < 2:
        return "auto_detect=true,"
    columns = "{" + ", ".join(f"{sql_str(h)}: 'VARCHAR'" for h in header) + "}"
    return f"auto_detect=false, columns={columns}, delim={sql_str(delim)}, quote='\"', escape='\"',"


def _scan_csv(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, list[Rejection]]:
    """Register ``raw`` (all-varchar rows with ``_line``) and return structural rejects."""
    if path.stat().st_size == 0:
        raise IngestError("file is empty (0 bytes)", path=str(path))
    run(con, "DROP TABLE IF EXISTS raw")
    dialect = _explicit_dialect(con, path)
    try:
        run(
            con,
            f"""
            CREATE TEMP TABLE raw AS
            SELECT *, row_number() OVER () AS _ord
            FROM read_csv({sql_str(path)}, all_varchar=true, header=true, {dialect}
                          max_line_size={MAX_CSV_LINE_BYTES},
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


def _scan_parquet(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> str:
    """Register ``raw_l``: the rows of all ``paths`` with ``_fidx`` and ``_line``."""
    con.register(
        "_files",
        pa.table(
            {
                "_fidx": pa.array(range(len(paths)), pa.int32()),
                "_fname": [str(p) for p in paths],
            }
        ),
    )
    listed = "[" + ", ".join(sql_str(p) for p in paths) + "]"
    try:
        run(
            con,
            "CREATE OR REPLACE TEMP VIEW raw_l AS SELECT r.* EXCLUDE (file_row_number, filename),"
            " f._fidx, file_row_number AS _line FROM read_parquet("
            f"{listed}, file_row_number=true, filename=true, union_by_name=true) r "
            "JOIN _files f ON r.filename = f._fname",
        )
        con.execute("SELECT count(*) FROM raw_l").fetchall()
    except duckdb.Error as exc:
        raise IngestError(
            f"not a readable parquet file, truncated or corrupt ({_first_line(exc)})",
            path=str(paths[0]) if len(paths) == 1 else None,
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
    files, warnings = _files_of(root)
    tables: list[pa.Table] = []
    rejections: list[Rejection] = []
    rows_read = 0
    eff_read = 0.0
    refs: list[pa.Table] = []
    # Parquet files are scanned together in one DuckDB pass (after a per-file schema check
    # that names the bad file); CSV files one by one (their structural rejects are per file).
    parquet = [f for f in files if _is_parquet(f)]
    groups = [parquet] if parquet else []
    groups += [[f] for f in files if f not in set(parquet)]
    index = {f: i for i, f in enumerate(files)}
    for group in groups:
        res, fidx, lines = _read_one(group)
        tables.append(res.table)
        global_idx = np.asarray([index[f] for f in group], dtype=np.int32)[fidx]
        refs.append(pa.table({"file_idx": pa.array(global_idx), "row": lines}))
        rejections += res.rejections
        warnings += res.warnings
        rows_read += res.rows_read
        eff_read += res.effective_cost_read
    table = pa.concat_tables(tables) if tables else COST_ARROW_SCHEMA.empty_table()
    # Lines repeated across files (same content) are duplicates too.
    if len(files) > 1 and table.num_rows:
        table, dup_rej = _drop_cross_file_duplicates(table, pa.concat_tables(refs), files)
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


def _drop_cross_file_duplicates(
    table: pa.Table, refs: pa.Table, files: list[Path]
) -> tuple[pa.Table, list[Rejection]]:
    """Reject lines whose id already appeared in an earlier file of the same read."""
    ids = table.column("line_id").to_numpy(zero_copy_only=False)
    first = pd.Index(ids).duplicated(keep="first")
    if not first.any():
        return table, []
    pos = np.flatnonzero(first)
    file_idx = refs.column("file_idx").to_numpy()[pos]
    rows = refs.column("row").to_numpy()[pos]
    costs = table.column("effective_cost").to_numpy(zero_copy_only=False)[pos]
    rej = [
        Rejection(str(files[int(f)]), int(r), None, "duplicate_line_item", float(c))
        for f, r, c in zip(file_idx, rows, costs, strict=True)
    ]
    return table.filter(pa.array(~first)), rej


def _columns_of(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _check_columns(cols: dict[str, str], file: Path) -> None:
    """Required FOCUS columns present, with usable types; else IngestError naming the file."""
    for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        # A header naming a column twice (exactly - DuckDB renames the copy to ``c_1`` - or
        # differing only in case) is ambiguous: which one holds the data cannot be known.
        same = [k for k in cols if re.fullmatch(re.escape(c.lower()) + r"(_\d+)?", k.lower())]
        if len(same) > 1 and any(k.lower() == c.lower() for k in same):
            raise IngestError(
                f"column {c!r} appears {len(same)} times in the header "
                f"({', '.join(repr(k) for k in same)}); remove the duplicate",
                path=str(file),
                row=1,
                column=c,
            )
    names = {c: _resolve(cols, c) for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
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


def _read_one(files: list[Path]) -> tuple[ReadResult, np.ndarray, pa.ChunkedArray]:
    """Read one CSV file, or a group of parquet files in one pass.

    Returns the result plus, per accepted row, the index of its file in ``files`` and its
    row in that file.
    """
    con = connect()
    rejections: list[Rejection] = []
    warnings: list[str] = []
    file = files[0]
    is_parquet = _is_parquet(file)
    if is_parquet:
        for f in files:  # per-file schema checks name the file at fault
            try:
                fcols = _columns_of(con, f"read_parquet({sql_str(f)})")
            except duckdb.Error as exc:
                raise IngestError(
                    f"not a readable parquet file, truncated or corrupt ({_first_line(exc)})",
                    path=str(f),
                ) from exc
            _check_columns(fcols, f)
        rel = _scan_parquet(con, files)
    else:
        rel, rejections = _scan_csv(con, file)
        run(con, "CREATE OR REPLACE TEMP VIEW raw_f AS SELECT *, 0 AS _fidx FROM raw_l")
        rel = "raw_f"
    cols = {c: t for c, t in _columns(con, rel).items() if c != "_fidx"}
    _check_columns(cols, file)
    names: dict[str, str | None] = {}
    for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        names[c] = _resolve(cols, c)
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
            "CommitmentDiscountId",
            "CommitmentDiscountStatus",
            "BillingPeriodStart",
            "SkuId",
        )
        if names.get(c)
    ]
    tags_col = names.get("Tags")
    tags_expr = f"CAST(r.{_q(tags_col)} AS VARCHAR)" if tags_col else "CAST(NULL AS VARCHAR)"
    provider_expr = f"coalesce(NULLIF({col('ServiceProviderName')}, ''), {col('ProviderName')})"

    # Tags: canonicalise the few distinct raw values in Python, join them back on a key.
    distinct = [
        row[0] for row in con.execute(f"SELECT DISTINCT {tags_expr} FROM {rel} r").fetchall()
    ]
    lookup = tag_lookup_table(distinct)
    lookup = lookup.append_column(
        "raw_key", pa.array([_NULL_KEY if v is None else v for v in distinct], pa.string())
    )
    con.register("tag_lookup", lookup)
    # Identity of a charge (amounts excluded): a restated export keeps the ids of its lines,
    # so re-ingesting it replaces amounts instead of adding rows.
    # Hash of a row's whole content (exact repeats are duplicates); _fidx/_line excluded.
    full_hash = "hash(" + ", ".join(f"r.{_q(c)}" for c in cols if c not in ("_line", "_fidx")) + ")"
    identity_parts = [
        col("BillingAccountId"),
        col("SubAccountId"),
        provider_expr,
        col("RegionId"),
        col("ServiceName"),
        col("ResourceId"),
        usage_expr,
        col("PricingCategory"),
        col("ChargeCategory"),
        col("ChargeClass"),
        col("SkuId"),
        col("CommitmentDiscountId"),
        col("ChargeDescription"),
        *[f"CAST({_q(c)} AS VARCHAR)" for c in x_cols],
        "t.tag_key",
    ]
    # The identity of a line = what it charges for, over which period (amounts excluded).
    # md5 is slow per row, so it runs once per distinct non-time part (a few thousand
    # resources x usage types), keyed in-run by DuckDB's fast hash(); the period is appended.
    id_concat = "concat_ws('|', " + ", ".join(f"coalesce({e}, '')" for e in identity_parts) + ")"
    id_hash = "hash(" + ", ".join(identity_parts) + ")"
    extras_json = ", ".join(
        [f"{sql_str(c)}, CAST({_q(names[c] or c)} AS VARCHAR)" for c in extra_fields]
        + [f"{sql_str(c)}, CAST({_q(c)} AS VARCHAR)" for c in x_cols]
    )
    dims_sel = ", ".join(f"t.tag_{d} AS {d}" for d in TAG_DIMENSIONS if d != "cluster")
    cc_case = (
        "CASE "
        + " ".join(
            f"WHEN lower(trim({col('ChargeCategory')})) = {sql_str(c.lower())} THEN {sql_str(c)}"
            for c in _CHARGE_CATEGORIES
        )
        + " ELSE NULL END"
    )
    pricing = col("PricingCategory")
    # One pass over the file; the inner select casts each column once, the outer one
    # derives the classification and the rejection reason from the cast values.
    run(
        con,
        f"""
        CREATE TEMP VIEW parsed0 AS
        SELECT
            _line, _fidx, _ord, ds, ds_end, provider, account, region, cluster, service,
            {", ".join(d for d in TAG_DIMENSIONS if d != "cluster")},
            instance_type, resource_id, usage_type, pricing_category,
            CASE
              WHEN charge_category <> 'Usage' THEN 'other'
              WHEN lower(pricing_category) = 'dynamic' OR usage_type ILIKE '%SpotUsage%'
                THEN 'spot'
              WHEN lower(pricing_category) = 'committed' THEN 'committed'
              WHEN lower(pricing_category) = 'standard' OR pricing_category IS NULL
                THEN 'on_demand'
              ELSE 'other'
            END AS purchase_option,
            charge_category, effective_cost, billed_cost, list_cost, usage_quantity,
            usage_unit, currency, tags_canon, extras, _h, _full, _tags_ok,
            {_row_checks_sql()}
        FROM (
          SELECT
            _line,
            r._fidx AS _fidx,
            (CAST(r._fidx AS BIGINT) << 40) + _line AS _ord,
            {ts("ChargePeriodStart")} AS ds,
            {ts("ChargePeriodEnd")} AS ds_end,
            {provider_expr} AS provider,
            coalesce(NULLIF({col("SubAccountId")}, ''), {col("BillingAccountId")}) AS account,
            {col("RegionId")} AS region,
            t.tag_cluster AS cluster,
            {col("ServiceName")} AS service,
            {dims_sel},
            {itype_expr} AS instance_type,
            {col("ResourceId")} AS resource_id,
            {usage_expr} AS usage_type,
            {pricing} AS pricing_category,
            {cc_case} AS charge_category,
            {col("EffectiveCost", "DOUBLE")} AS effective_cost,
            {col("BilledCost", "DOUBLE")} AS billed_cost,
            {col("ListCost", "DOUBLE")} AS list_cost,
            coalesce({col("ConsumedQuantity", "DOUBLE")}, {col("PricingQuantity", "DOUBLE")})
                AS usage_quantity,
            coalesce({col("ConsumedUnit")}, {col("PricingUnit")}) AS usage_unit,
            {col("BillingCurrency")} AS currency,
            t.tags AS tags_canon,
            CAST(json_object({extras_json}) AS VARCHAR) AS extras,
            {id_hash} AS _h,
            {full_hash} AS _full,
            t.tags_ok AS _tags_ok
          FROM {rel} r JOIN tag_lookup t ON coalesce({tags_expr}, '{_NULL_KEY}') = t.raw_key
        ) AS base
        """,
    )
    run(
        con,
        f"""CREATE TEMP TABLE hrep AS
        SELECT _h, min(_o) AS _o FROM (
            SELECT {id_hash} AS _h, (CAST(r._fidx AS BIGINT) << 40) + r._line AS _o
            FROM {rel} r JOIN tag_lookup t ON coalesce({tags_expr}, '{_NULL_KEY}') = t.raw_key
        ) GROUP BY _h""",
    )
    # md5 only for one representative row per distinct identity part.
    run(
        con,
        f"""CREATE TEMP TABLE hk AS
        SELECT h._h, md5({id_concat}) AS _md
        FROM {rel} r
        JOIN hrep h ON (CAST(r._fidx AS BIGINT) << 40) + r._line = h._o
        JOIN tag_lookup t ON coalesce({tags_expr}, '{_NULL_KEY}') = t.raw_key""",
    )
    run(
        con,
        """CREATE TEMP VIEW parsed AS
        SELECT p.*, hk._md || ':' || coalesce(CAST(epoch_us(p.ds) AS VARCHAR), '') || ':'
               || coalesce(CAST(epoch_us(p.ds_end) AS VARCHAR), '') AS _identity
        FROM parsed0 p JOIN hk USING (_h)""",
    )
    n_rows = con.execute("SELECT count(*) FROM parsed").fetchall()[0][0]
    rows_read = int(n_rows) + len(rejections)
    bad_tags = con.execute(
        "SELECT count(*), arg_min(_fidx, _ord), arg_min(_line, _ord) FROM parsed WHERE NOT _tags_ok"
    ).fetchall()[0]
    if bad_tags and bad_tags[0]:
        warnings.append(
            f"file {files[int(bad_tags[1])]}: {bad_tags[0]} row(s) have a Tags value that is not "
            f"a JSON object (first at row {bad_tags[2]}); their tags were read as empty"
        )
    if not _is_parquet(file):
        raw_ds = col("ChargePeriodStart")
        naive = con.execute(
            f"SELECT count(*) FROM {rel} WHERE {raw_ds} IS NOT NULL AND NOT regexp_matches("
            f"{raw_ds}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})\\s*$') AND {ts('ChargePeriodStart')} "
            "IS NOT NULL"
        ).fetchall()[0][0]
        if naive:
            warnings.append(
                f"file {file}: {naive} row(s) have ChargePeriodStart without a timezone; "
                "read as UTC"
            )
    # Line ids: the identity hash. Exact repeats of a row are duplicates, while distinct rows
    # sharing an identity get an occurrence suffix. This only runs when ids collide (rare).
    run(
        con,
        """CREATE TEMP TABLE coll AS
        SELECT p._ord, p._h, p.ds, p.ds_end, p._full
        FROM parsed0 p SEMI JOIN (
            SELECT _h, ds, ds_end FROM parsed0 WHERE _reason IS NULL
            GROUP BY ALL HAVING count(*) > 1) g
          ON p._h = g._h AND p.ds IS NOT DISTINCT FROM g.ds
             AND p.ds_end IS NOT DISTINCT FROM g.ds_end
        WHERE p._reason IS NULL""",
    )
    collisions = con.execute("SELECT count(*) FROM coll").fetchall()[0][0]
    if collisions:
        run(
            con,
            """CREATE TEMP TABLE ids AS
            SELECT _ord, _dup,
                   row_number() OVER (PARTITION BY _h, ds, ds_end, _dup ORDER BY _ord) AS _k
            FROM (SELECT _ord, _h, ds, ds_end, row_number() OVER (
                    PARTITION BY _h, ds, ds_end, _full ORDER BY _ord) > 1 AS _dup FROM coll)""",
        )
        src = (
            "(SELECT p.* REPLACE ("
            "coalesce(p._reason, CASE WHEN i._dup THEN 'duplicate_line_item' END) AS _reason, "
            "CASE WHEN i._k > 1 AND NOT i._dup THEN p._identity || '#' || i._k "
            "ELSE p._identity END AS _identity) FROM parsed p LEFT JOIN ids i USING (_ord))"
        )
    else:
        src = "parsed"
    for fi, line, reason_, rcol, eff_ in con.execute(
        f"SELECT _fidx, _line, _reason, _reason_col, effective_cost FROM {src} "
        "WHERE _reason IS NOT NULL ORDER BY _ord"
    ).fetchall():
        cost = float(eff_) if cost_in_domain(eff_) else math.nan
        rejections.append(Rejection(str(files[int(fi)]), int(line), rcol, str(reason_), cost))
    eff_read = con.execute(
        "SELECT coalesce(fsum(effective_cost), 0) FROM parsed "
        f"WHERE {cost_ok_sql('effective_cost')}"
    ).fetchall()[0][0]
    select = []
    for c in COST_FRAME_COLUMNS:
        if c == "source":
            select.append("'focus' AS source")
        elif c == "tags":
            select.append("tags_canon AS tags")
        elif c == "line_id":
            select.append("_identity AS line_id")
        else:
            select.append(c)
    table = con.sql(
        f"SELECT {', '.join(select)}, _ord, _fidx, _line FROM {src} WHERE _reason IS NULL"
    ).to_arrow_table()
    table = table.sort_by("_ord")  # deterministic output: file order
    lines = table.column("_line")
    fidx = table.column("_fidx").to_numpy()
    table = table.drop_columns(["_ord", "_fidx", "_line"])
    table = table.cast(COST_ARROW_SCHEMA)
    result = ReadResult(
        source="focus",
        paths=[str(f) for f in files],
        table=table,
        rejections=rejections,
        rows_read=rows_read,
        effective_cost_read=float(eff_read),
        warnings=warnings,
    )
    return result, fidx, lines


def focus_columns(spec_csv: str | Path) -> Sequence[str]:
    """ColumnIds listed in a FOCUS columns CSV (e.g. ``focus_columns_v1.2.csv``)."""
    con = connect()
    rows = con.execute(f"SELECT ColumnId FROM read_csv({sql_str(spec_csv)})").fetchall()
    return [str(r[0]) for r in rows]
