"""What every reader returns, and the DuckDB helpers they share.

A reader never writes to the store: it turns files into a :class:`ReadResult`,
an Arrow table of accepted rows in the canonical cost-frame layout plus the
rejected rows with their reasons, so that::

    rows_read == accepted.num_rows + len(rejections)

holds exactly. Structural problems that make a whole file unreadable (missing
required column, wrong delimiter, empty file, non-UTF-8 bytes, parquet schema
with wrong types, manifest naming a missing file) raise
:class:`~features.exceptions.IngestError` naming the file, row and column.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from features.schema import (
    COST_FRAME_COLUMNS,
    DIMENSIONS,
    MAX_ABS_COST,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
)

#: Arrow schema of the accepted rows every reader returns.
COST_ARROW_SCHEMA = pa.schema(
    [
        ("ds", pa.timestamp("us", tz="UTC")),
        ("ds_end", pa.timestamp("us", tz="UTC")),
        *[(d, pa.string()) for d in DIMENSIONS],
        ("effective_cost", pa.float64()),
        ("billed_cost", pa.float64()),
        ("list_cost", pa.float64()),
        ("usage_quantity", pa.float64()),
        ("usage_unit", pa.string()),
        ("currency", pa.string()),
        ("tags", pa.string()),  # JSON object of normalised tag key -> value
        ("extras", pa.string()),  # JSON object of provider columns (x_*) kept verbatim
        ("source", pa.string()),  # "focus" | "cur" | ...
        ("line_id", pa.string()),  # stable key: line item id or content hash
    ]
)
assert tuple(COST_ARROW_SCHEMA.names) == COST_FRAME_COLUMNS

#: Columns of the rejections table.
REJECTION_COLUMNS = ("file", "row", "column", "reason", "effective_cost")


@dataclass(frozen=True)
class Rejection:
    """One rejected input row.

    ``row`` is the 1-based line number in a CSV file (header = line 1) or the
    0-based row index in a parquet file; ``effective_cost`` is the row's cost
    when it could be parsed, else NaN.
    """

    file: str
    row: int
    column: str | None
    reason: str
    effective_cost: float = math.nan


@dataclass
class ReadResult:
    """Accepted rows in the canonical layout plus every rejected row."""

    source: str
    paths: list[str]
    table: pa.Table
    rejections: list[Rejection] = field(default_factory=list)
    rows_read: int = 0
    #: Sum of the effective cost of every row read whose cost parsed (accepted or not).
    effective_cost_read: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: Line-id prefixes this read fully replaces in the store (a whole billing period of
    #: one payer, for exports that restate complete periods, as CUR 2.0 does). Rows of
    #: the same source whose ``line_id`` starts with one of them are deleted first.
    replace_prefixes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.table.schema != COST_ARROW_SCHEMA:
            self.table = self.table.select(list(COST_FRAME_COLUMNS)).cast(COST_ARROW_SCHEMA)
        accepted = self.table.num_rows
        if accepted + len(self.rejections) != self.rows_read:
            raise AssertionError(
                f"reader accounting broken: read {self.rows_read} rows, accepted {accepted}, "
                f"rejected {len(self.rejections)}"
            )

    @property
    def rows_accepted(self) -> int:
        return int(self.table.num_rows)

    @property
    def rejection_counts(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejections))


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set to UTC, used for scanning files."""
    con = duckdb.connect(":memory:")
    run(con, "SET TimeZone = 'UTC'")
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> None:
    """Execute a statement and consume its result (DuckDB 2 refuses a new
    statement while the previous result is unread)."""
    if params is None:
        con.execute(sql).fetchall()
    else:
        con.execute(sql, params).fetchall()


def sql_str(value: str | Path) -> str:
    """Quote a string literal for DuckDB SQL."""
    return "'" + str(value).replace("'", "''") + "'"


def cost_ok_sql(expr: str) -> str:
    """SQL: ``expr`` is a cost in the valid domain (finite, ``|x| <= MAX_ABS_COST``)."""
    return f"coalesce(isfinite({expr}) AND abs({expr}) <= {MAX_ABS_COST!r}, false)"


def ts_ok_sql(expr: str) -> str:
    """SQL: timestamp ``expr`` lies in the valid domain ``[MIN_TIMESTAMP, MAX_TIMESTAMP)``."""
    return (
        f"coalesce({expr} >= TIMESTAMPTZ {sql_str(MIN_TIMESTAMP + ' 00:00:00+00')} "
        f"AND {expr} < TIMESTAMPTZ {sql_str(MAX_TIMESTAMP + ' 00:00:00+00')}, false)"
    )


def cost_in_domain(value: float | None) -> bool:
    """A cost in the valid domain (finite, ``|x| <= MAX_ABS_COST``)."""
    return value is not None and math.isfinite(value) and abs(value) <= MAX_ABS_COST


def check_regular_file(path: Path, missing: str = "file not found") -> None:
    """Refuse anything but a readable regular file (FIFOs would hang, devices never end).

    Raises :class:`~features.exceptions.IngestError` naming the file: "symlink loop",
    "file not found" or "not a regular file (...)".
    """
    from features.exceptions import IngestError

    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IngestError("symlink loop", path=str(path)) from exc
        raise IngestError(missing, path=str(path)) from exc
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a named pipe"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a special file"
        )
        raise IngestError(f"not a regular file ({kind})", path=str(path))
