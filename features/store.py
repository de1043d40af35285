"""The embedded store: one DuckDB file holding ingested cost and utilization.

Ingest is idempotent and atomic. Each accepted cost row has a stable
``line_id`` (the export's line item id, or a content hash); re-ingesting the
same export replaces rows with the same ``(source, line_id)`` instead of adding
them, so totals never change, and a restated export (same ids, new amounts)
updates them. Each ingest runs in one transaction: a failure leaves the store
as it was. Every ingest returns an :class:`IngestReport` whose figures balance:
``rows_read == rows_accepted + rows_rejected``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from features.exceptions import StoreError
from features.readers.base import ReadResult, Rejection, run
from features.schema import (
    COST_COLUMNS,
    COST_FRAME_COLUMNS,
    UTILIZATION_FRAME_COLUMNS,
    UTILIZATION_NUMERIC,
)

_SCHEMA_VERSION = 1


CURRENT_STORE_FILE = "current_store"
"""File in the data dir naming the current store (written by ``forecaster demo``)."""


def default_store_path(data_dir: Path) -> Path:
    """The store used when ``FORECASTER_STORE`` is not set.

    ``data_dir/forecaster.duckdb`` when it exists (or when nothing else is recorded),
    else the store named in ``data_dir/current_store`` (the demo writes it), so every
    command reads the demo's data after ``forecaster demo`` with no extra flags.
    """
    default = Path(data_dir) / "forecaster.duckdb"
    pointer = Path(data_dir) / CURRENT_STORE_FILE
    if not default.exists() and pointer.is_file():
        recorded = Path(pointer.read_text(encoding="utf-8").strip())
        if recorded.exists():
            return recorded
    return default


def record_current_store(data_dir: Path, store: Path) -> None:
    """Record ``store`` as the data dir's current store (see :func:`default_store_path`)."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    (Path(data_dir) / CURRENT_STORE_FILE).write_text(
        str(Path(store).resolve()) + "\n", encoding="utf-8"
    )


def _sql_type(col: str) -> str:
    if col in ("ds", "ds_end"):
        return "TIMESTAMPTZ"
    if col in (*COST_COLUMNS, "usage_quantity", *UTILIZATION_NUMERIC):
        return "DOUBLE"
    return "VARCHAR"


_COST_DDL = ", ".join(f"{c} {_sql_type(c)}" for c in COST_FRAME_COLUMNS)
_UTIL_DDL = ", ".join(f"{c} {_sql_type(c)}" for c in UTILIZATION_FRAME_COLUMNS)


@dataclass
class IngestReport:
    """The accounting of one ingest; every figure is checked to balance."""

    source: str
    files: list[str]
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejections: dict[str, int]
    effective_cost_read: float
    effective_cost_stored: float
    effective_cost_rejected: float
    billed_cost_stored: float
    rows_new: int
    rows_replaced: int
    ingest_id: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    rejected_examples: list[dict[str, Any]] = field(default_factory=list)
    #: Rows of earlier ingests deleted because this delivery restates their whole period
    #: (``replaced_periods``, the line-id prefixes the delivery replaces).
    rows_removed: int = 0
    replaced_periods: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """True when read = stored + rejected (rows, and cost to the cent)."""
        rows_ok = self.rows_read == self.rows_accepted + self.rows_rejected
        cost_ok = math.isclose(
            self.effective_cost_read,
            self.effective_cost_stored + self.effective_cost_rejected,
            abs_tol=0.005,
        )
        return rows_ok and cost_ok

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["balanced"] = self.balanced
        for k in (
            "effective_cost_read",
            "effective_cost_stored",
            "effective_cost_rejected",
            "billed_cost_stored",
        ):
            d[k] = round(float(d[k]), 6)
        return d


class Store:
    """A DuckDB file with the ``cost``, ``utilization``, ``ingests`` and ``rejections`` tables.

    Parameters
    ----------
    path : str or Path
        Database file; its folder is created. ``":memory:"`` for tests.
    read_only : bool
        Open without taking the write lock (reports, serving).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if read_only and not Path(self.path).exists():
                raise StoreError(f"store {self.path} does not exist; run `forecaster ingest` first")
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        run(self.con, "SET TimeZone = 'UTC'")
        # Queries order explicitly; not keeping insertion order makes bulk inserts faster.
        run(self.con, "SET preserve_insertion_order = false")
        if not read_only:
            self._migrate()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        run(self.con, "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        run(self.con, f"CREATE TABLE IF NOT EXISTS cost ({_COST_DDL}, ingest_id BIGINT)")
        run(self.con, f"CREATE TABLE IF NOT EXISTS utilization ({_UTIL_DDL}, ingest_id BIGINT)")
        run(
            self.con,
            "CREATE TABLE IF NOT EXISTS ingests (ingest_id BIGINT PRIMARY KEY, "
            "ingested_at TIMESTAMPTZ, kind VARCHAR, source VARCHAR, files VARCHAR, report VARCHAR)",
        )
        run(
            self.con,
            "CREATE TABLE IF NOT EXISTS rejections (ingest_id BIGINT, file VARCHAR, row BIGINT, "
            "column_name VARCHAR, reason VARCHAR, effective_cost DOUBLE)",
        )
        run(
            self.con,
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
            [str(_SCHEMA_VERSION)],
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        run(self.con, "BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            run(self.con, "ROLLBACK")
            raise
        run(self.con, "COMMIT")

    def _next_ingest_id(self) -> int:
        row = self.con.execute("SELECT coalesce(max(ingest_id), 0) + 1 FROM ingests").fetchall()
        return int(row[0][0])

    # -- cost ------------------------------------------------------------------------------
    def ingest(self, result: ReadResult) -> IngestReport:
        """Write a reader's accepted rows and rejections atomically; return the accounting."""
        t0 = time.perf_counter()
        table = result.table
        with self._transaction():
            ingest_id = self._next_ingest_id()
            self.con.register("_staged", table)
            try:
                replaced = self.con.execute(
                    "SELECT count(*) FROM cost c WHERE c.source = ? AND c.line_id IN "
                    "(SELECT line_id FROM _staged)",
                    [result.source],
                ).fetchall()[0][0]
                if replaced:
                    run(
                        self.con,
                        "DELETE FROM cost WHERE source = ? AND line_id IN "
                        "(SELECT line_id FROM _staged)",
                        [result.source],
                    )
                # A restated billing period replaces the old one as a whole (its line ids
                # may differ between deliveries): drop what is left of the old rows.
                removed = 0
                for prefix in result.replace_prefixes:
                    ((n_removed,),) = self.con.execute(
                        "DELETE FROM cost WHERE source = ? AND starts_with(line_id, ?)",
                        [result.source, prefix],
                    ).fetchall()
                    removed += int(n_removed)
                run(
                    self.con,
                    f"INSERT INTO cost SELECT {', '.join(COST_FRAME_COLUMNS)}, {ingest_id} "
                    "FROM _staged",
                )
                sums = self.con.execute(
                    "SELECT coalesce(sum(effective_cost), 0), coalesce(sum(billed_cost), 0) "
                    "FROM cost WHERE ingest_id = ?",
                    [ingest_id],
                ).fetchall()[0]
            finally:
                self.con.unregister("_staged")
            self._write_rejections(ingest_id, result.rejections)
            rej_cost = sum(
                r.effective_cost for r in result.rejections if not math.isnan(r.effective_cost)
            )
            report = IngestReport(
                source=result.source,
                files=list(result.paths),
                rows_read=result.rows_read,
                rows_accepted=result.rows_accepted,
                rows_rejected=len(result.rejections),
                rejections=dict(Counter(r.reason for r in result.rejections)),
                effective_cost_read=result.effective_cost_read,
                effective_cost_stored=float(sums[0]),
                effective_cost_rejected=float(rej_cost),
                billed_cost_stored=float(sums[1]),
                rows_new=result.rows_accepted - int(replaced),
                rows_replaced=int(replaced),
                ingest_id=ingest_id,
                seconds=0.0,
                warnings=list(result.warnings),
                rejected_examples=[_rej_dict(r) for r in result.rejections[:20]],
                rows_removed=removed,
                replaced_periods=list(result.replace_prefixes),
            )
            report.seconds = round(time.perf_counter() - t0, 3)
            self._log_ingest(ingest_id, "cost", report.source, report.files, report.to_dict())
        return report

    def _write_rejections(self, ingest_id: int, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        tbl = pa.table(
            {
                "ingest_id": pa.array([ingest_id] * len(rejections), pa.int64()),
                "file": [r.file for r in rejections],
                "row": pa.array([r.row for r in rejections], pa.int64()),
                "column_name": [r.column for r in rejections],
                "reason": [r.reason for r in rejections],
                "effective_cost": pa.array([r.effective_cost for r in rejections], pa.float64()),
            }
        )
        self.con.register("_rej", tbl)
        try:
            run(self.con, "INSERT INTO rejections SELECT * FROM _rej")
        finally:
            self.con.unregister("_rej")

    def _log_ingest(
        self, ingest_id: int, kind: str, source: str, files: list[str], report: dict[str, Any]
    ) -> None:
        run(
            self.con,
            "INSERT INTO ingests VALUES (?, now(), ?, ?, ?, ?)",
            [ingest_id, kind, source, json.dumps(files), json.dumps(report, default=str)],
        )

    # -- utilization -----------------------------------------------------------------------
    def ingest_utilization(self, result: UtilizationRead) -> IngestReport:
        """Upsert a utilization frame keyed by ``(workload_id, ds)``."""
        t0 = time.perf_counter()
        with self._transaction():
            ingest_id = self._next_ingest_id()
            self.con.register("_staged_u", result.table)
            try:
                replaced = self.con.execute(
                    "SELECT count(*) FROM utilization u JOIN _staged_u s USING (workload_id, ds)"
                ).fetchall()[0][0]
                if replaced:
                    run(
                        self.con,
                        "DELETE FROM utilization u USING _staged_u s "
                        "WHERE u.workload_id = s.workload_id AND u.ds = s.ds",
                    )
                run(
                    self.con,
                    f"INSERT INTO utilization SELECT {', '.join(UTILIZATION_FRAME_COLUMNS)}, "
                    f"{ingest_id} FROM _staged_u",
                )
            finally:
                self.con.unregister("_staged_u")
            self._write_rejections(ingest_id, result.rejections)
            report = IngestReport(
                source="metrics",
                files=list(result.paths),
                rows_read=result.rows_read,
                rows_accepted=result.table.num_rows,
                rows_rejected=len(result.rejections),
                rejections=dict(Counter(r.reason for r in result.rejections)),
                effective_cost_read=0.0,
                effective_cost_stored=0.0,
                effective_cost_rejected=0.0,
                billed_cost_stored=0.0,
                rows_new=result.table.num_rows - int(replaced),
                rows_replaced=int(replaced),
                ingest_id=ingest_id,
                seconds=round(time.perf_counter() - t0, 3),
                warnings=list(result.warnings),
                rejected_examples=[_rej_dict(r) for r in result.rejections[:20]],
            )
            self._log_ingest(ingest_id, "utilization", "metrics", report.files, report.to_dict())
        return report

    # -- queries ---------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query and return a pandas frame (timestamps stay UTC)."""
        return self.con.execute(sql, params or []).df()

    def totals(self) -> dict[str, float]:
        """Row count and cost totals of the cost table, per source and overall."""
        rows = self.con.execute(
            "SELECT source, count(*), coalesce(sum(effective_cost), 0), "
            "coalesce(sum(billed_cost), 0) FROM cost GROUP BY source ORDER BY source"
        ).fetchall()
        out: dict[str, float] = {"rows": 0, "effective_cost": 0.0, "billed_cost": 0.0}
        for src, n, eff, billed in rows:
            out[f"{src}.rows"] = int(n)
            out[f"{src}.effective_cost"] = float(eff)
            out["rows"] += int(n)
            out["effective_cost"] += float(eff)
            out["billed_cost"] += float(billed)
        return out

    def cost_frame(self, where: str = "TRUE", params: list[Any] | None = None) -> pd.DataFrame:
        """The stored cost frame (canonical columns), optionally filtered by a SQL predicate."""
        return self.query(
            f"SELECT {', '.join(COST_FRAME_COLUMNS)} FROM cost WHERE {where} ORDER BY ds, line_id",
            params,
        )

    def utilization_frame(self) -> pd.DataFrame:
        return self.query(
            f"SELECT {', '.join(UTILIZATION_FRAME_COLUMNS)} FROM utilization "
            "ORDER BY workload_id, ds"
        )

    def ingest_log(self) -> pd.DataFrame:
        return self.query("SELECT * FROM ingests ORDER BY ingest_id")

    # -- results (forecasts, anomalies, recommendations, scenarios) ------------------------
    def write_result(
        self, name: str, frame: pd.DataFrame, *, run_id: str, meta: dict[str, Any] | None = None
    ) -> None:
        """Store a result frame of a pipeline stage under ``name`` for ``run_id``.

        Each name is one table ``result_<name>`` with the frame's columns plus ``run_id``;
        writing the same ``(name, run_id)`` again replaces it. ``meta`` (JSON-able: model
        name and version, horizon, ...) is kept in ``results`` next to the row count, so
        readers (report, serving) find the latest run of each result without scanning.
        """
        _check_result_name(name)
        table = f"result_{name}"
        df = frame.copy()
        df["run_id"] = run_id
        with self._transaction():
            exists = self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchall()[0][0]
            self.con.register("_result_df", df)
            try:
                if exists:
                    cols = {r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()}
                    if cols != set(df.columns):
                        # A new shape of this result replaces the old table.
                        run(self.con, f"DROP TABLE {table}")
                        exists = 0
                if exists:
                    run(self.con, f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                    run(self.con, f"INSERT INTO {table} BY NAME SELECT * FROM _result_df")
                else:
                    run(self.con, f"CREATE TABLE {table} AS SELECT * FROM _result_df")
            finally:
                self.con.unregister("_result_df")
            run(
                self.con,
                "CREATE TABLE IF NOT EXISTS results (name VARCHAR, run_id VARCHAR, "
                "created_at TIMESTAMPTZ, rows BIGINT, meta VARCHAR, PRIMARY KEY (name, run_id))",
            )
            run(
                self.con,
                "INSERT OR REPLACE INTO results VALUES (?, ?, now(), ?, ?)",
                [name, run_id, len(df), json.dumps(meta or {}, default=str)],
            )

    def read_result(self, name: str, run_id: str | None = None) -> pd.DataFrame:
        """The result frame ``name`` of ``run_id`` (default: the latest run that wrote it).

        Raises :class:`StoreError` naming the result when it was never written.
        """
        info = self.result_info(name, run_id)
        return self.query(
            f"SELECT * EXCLUDE (run_id) FROM result_{name} WHERE run_id = ?", [info["run_id"]]
        )

    def result_info(self, name: str, run_id: str | None = None) -> dict[str, Any]:
        """``run_id``, ``created_at``, ``rows`` and ``meta`` of a stored result."""
        _check_result_name(name)
        has = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'results'"
        ).fetchall()[0][0]
        rows = (
            self.con.execute(
                "SELECT run_id, created_at, rows, meta FROM results WHERE name = ? "
                "AND (? IS NULL OR run_id = ?) ORDER BY created_at DESC LIMIT 1",
                [name, run_id, run_id],
            ).fetchall()
            if has
            else []
        )
        if not rows:
            which = f" of run {run_id}" if run_id else ""
            raise StoreError(
                f"no result {name!r}{which} in store {self.path}; run the stage that writes it "
                "(for example `forecaster demo` or `forecaster run`)"
            )
        rid, created, n, meta = rows[0]
        return {"run_id": rid, "created_at": created, "rows": int(n), "meta": json.loads(meta)}

    def update_result_meta(self, name: str, run_id: str, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into the stored meta of result ``name`` of ``run_id`` (frame kept)."""
        info = self.result_info(name, run_id)
        merged = json.dumps({**info["meta"], **meta}, default=str)
        run(
            self.con,
            "UPDATE results SET meta = ? WHERE name = ? AND run_id = ?",
            [merged, name, run_id],
        )

    def result_names(self) -> list[str]:
        """Names of the results stored so far."""
        has = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'results'"
        ).fetchall()[0][0]
        if not has:
            return []
        return [
            r[0]
            for r in self.con.execute("SELECT DISTINCT name FROM results ORDER BY 1").fetchall()
        ]


def _check_result_name(name: str) -> None:
    if not name.replace("_", "").isalnum() or not name[:1].isalpha():
        raise StoreError(f"result name must be letters, digits and underscores, got {name!r}")


def _rej_dict(r: Rejection) -> dict[str, Any]:
    cost = None if math.isnan(r.effective_cost) else r.effective_cost
    return {
        "file": r.file,
        "row": r.row,
        "column": r.column,
        "reason": r.reason,
        "effective_cost": cost,
    }


@dataclass
class UtilizationRead:
    """Accepted utilization rows (Arrow, canonical columns) and rejections."""

    paths: list[str]
    table: pa.Table
    rejections: list[Rejection]
    rows_read: int
    warnings: list[str] = field(default_factory=list)
