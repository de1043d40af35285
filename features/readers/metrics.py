"""Reader of utilization metrics (CSV or parquet) into the utilization frame.

Expected columns are those of :data:`features.schema.UTILIZATION_FRAME_COLUMNS`;
only ``ds`` and ``workload_id`` are required, missing numeric columns are NULL.
Rows with an unparsable timestamp, a missing workload id, a negative or
non-finite measurement, or a repeated ``(workload_id, ds)`` are rejected with
the file, row and column.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from features.exceptions import IngestError
from features.readers.base import Rejection, connect, run, sql_str
from features.schema import UTILIZATION_FRAME_COLUMNS, UTILIZATION_NUMERIC
from features.store import UtilizationRead


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_utilization(path: str | Path) -> UtilizationRead:
    """Read a utilization export (file or folder of CSV/parquet files).

    Raises
    ------
    IngestError
        When a file is empty, unreadable or lacks ``ds`` / ``workload_id``.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".csv", ".parquet"))
        if not files:
            raise IngestError("no .csv or .parquet files found in folder", path=str(root))
    elif root.exists():
        files = [root]
    else:
        raise IngestError("file not found", path=str(root))
    con = connect()
    rejections: list[Rejection] = []
    warnings: list[str] = []
    rows_read = 0
    parts: list[str] = []
    for i, file in enumerate(files):
        if file.stat().st_size == 0:
            raise IngestError("file is empty (0 bytes)", path=str(file))
        parquet = file.suffix.lower() == ".parquet"
        try:
            if parquet:
                src = f"read_parquet({sql_str(file)}, file_row_number=true)"
                run(
                    con,
                    f"CREATE TEMP TABLE raw{i} AS SELECT * EXCLUDE (file_row_number), "
                    f"file_row_number AS _line FROM {src}",
                )
            else:
                src = f"read_csv({sql_str(file)}, header=true, all_varchar=true)"
                run(
                    con,
                    f"CREATE TEMP TABLE raw{i} AS SELECT *, row_number() OVER () + 1 AS _line "
                    f"FROM {src}",
                )
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0]
            raise IngestError(f"unreadable metrics file ({msg})", path=str(file)) from exc
        cols = {str(r[0]).lower(): str(r[0]) for r in con.execute(f"DESCRIBE raw{i}").fetchall()}
        for req in ("ds", "workload_id"):
            if req not in cols:
                raise IngestError(f"missing required column {req!r}", path=str(file), column=req)
        sel = [f"TRY_CAST(CAST({_q(cols['ds'])} AS VARCHAR) AS TIMESTAMPTZ) AS ds"]
        for c in UTILIZATION_FRAME_COLUMNS[1:]:
            if c in cols:
                expr = _q(cols[c])
                sel.append(
                    f"TRY_CAST({expr} AS DOUBLE) AS {c}"
                    if c in UTILIZATION_NUMERIC
                    else f"NULLIF(CAST({expr} AS VARCHAR), '') AS {c}"
                )
            else:
                sel.append(
                    f"CAST(NULL AS {'DOUBLE' if c in UTILIZATION_NUMERIC else 'VARCHAR'}) AS {c}"
                )
        bad_num = " OR ".join(
            f"({c} IS NOT NULL AND (NOT isfinite({c}) OR {c} < 0))" for c in UTILIZATION_NUMERIC
        )
        first_bad_col = (
            "CASE "
            + " ".join(
                f"WHEN {c} IS NOT NULL AND (NOT isfinite({c}) OR {c} < 0) THEN '{c}'"
                for c in UTILIZATION_NUMERIC
            )
            + " END"
        )
        run(
            con,
            f"""
            CREATE TEMP TABLE p{i} AS
            SELECT *, {sql_str(str(file))} AS _file,
              CASE WHEN ds IS NULL THEN 'invalid_timestamp'
                   WHEN workload_id IS NULL THEN 'missing_workload_id'
                   WHEN {bad_num} THEN 'invalid_measurement' END AS _reason,
              CASE WHEN ds IS NULL THEN 'ds' WHEN workload_id IS NULL THEN 'workload_id'
                   ELSE {first_bad_col} END AS _col
            FROM (SELECT {", ".join(sel)}, _line FROM raw{i})
            """,
        )
        parts.append(f"SELECT * FROM p{i}")
        rows_read += con.execute(f"SELECT count(*) FROM p{i}").fetchall()[0][0]
    run(
        con,
        f"""CREATE TEMP TABLE allp AS
        SELECT *, CASE WHEN _reason IS NULL AND row_number() OVER (
            PARTITION BY workload_id, ds, _reason IS NULL ORDER BY _file, _line) > 1
            THEN 'duplicate_row' ELSE _reason END AS reason
        FROM ({" UNION ALL ".join(parts)})""",
    )
    for file, line, reason, col in con.execute(
        "SELECT _file, _line, reason, _col FROM allp WHERE reason IS NOT NULL ORDER BY _file, _line"
    ).fetchall():
        rejections.append(
            Rejection(
                str(file),
                int(line),
                col or ("ds" if reason == "duplicate_row" else None),
                str(reason),
            )
        )
    table = con.sql(
        f"SELECT {', '.join(UTILIZATION_FRAME_COLUMNS)} FROM allp WHERE reason IS NULL "
        "ORDER BY workload_id, ds"
    ).to_arrow_table()
    return UtilizationRead(
        paths=[str(f) for f in files],
        table=table,
        rejections=rejections,
        rows_read=int(rows_read),
        warnings=warnings,
    )
