"""Ingest throughput: our readers + store vs pandas ``read_parquet`` + groupby.

Generates the demo fleet at a scale that yields at least ``--rows`` cost rows
per export format (cached under ``benchmarks/.cache``), then, for FOCUS and for
CUR 2.0, measures in the same run:

* **ours**: read + validate + classify + write to a fresh DuckDB store
  (``read_focus`` / ``read_cur`` then ``Store.ingest``), then a daily cost per
  service query on the store;
* **anchor**: what an analyst's notebook does: ``pandas.read_parquet`` of the
  same files + ``groupby(day, service)`` sum of the cost column (no validation,
  no tags, no storage).

Rows/s are medians over ``--repeat`` runs. Usage::

    python benchmarks/ingest.py [--rows 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import git_commit  # noqa: E402
from features.demo import generate_demo_fleet  # noqa: E402
from features.readers.cur import read_cur  # noqa: E402
from features.readers.focus import read_focus  # noqa: E402
from features.store import Store  # noqa: E402

console = Console()


def parquet_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def data_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*.parquet"))


def ensure_data(cache: Path, target_rows: int, seed: int) -> tuple[Path, Path]:
    """Generate (or reuse) exports with >= target_rows rows each.

    The CUR 2.0 export is the demo fleet at the scale that reaches the target. The
    fleet's FOCUS account is smaller, so its export is replicated as further sub-accounts
    (SubAccountId and ResourceId suffixed per copy, so every line stays distinct) until it
    reaches the target as well.
    """
    marker = cache / f"fleet-{target_rows}-{seed}.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return Path(info["focus"]), Path(info["cur"])
    probe = generate_demo_fleet(cache / "probe", seed=seed, months=12, scale=1.0)
    cur_rows = parquet_rows(data_files(probe.cur_path / "data"))
    shutil.rmtree(cache / "probe")
    scale = max(1.0, 1.05 * target_rows / max(cur_rows, 1))
    while True:  # rows do not grow exactly linearly with the scale: check and retry
        console.print(f"generating the demo fleet at scale {scale:.2f}")
        t0 = time.perf_counter()
        m = generate_demo_fleet(cache / "fleet", seed=seed, months=12, scale=scale)
        got = parquet_rows(data_files(m.cur_path / "data"))
        console.print(f"generated {got:,} CUR rows in {time.perf_counter() - t0:.1f}s")
        if got >= target_rows:
            break
        scale *= 1.05 * target_rows / got
    focus_files = data_files(m.focus_path)
    base_rows = parquet_rows(focus_files)
    copies = max(1, -(-target_rows // base_rows))
    out = cache / "focus_replicated"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for f in focus_files:
        tbl = pq.read_table(f)
        for k in range(copies):
            t = tbl
            for col in ("SubAccountId", "ResourceId"):
                i = t.schema.get_field_index(col)
                t = t.set_column(
                    i, col, pc.binary_join_element_wise(t.column(col), pa.scalar(f"-{k:03d}"), "")
                )
            pq.write_table(t, out / f"{f.stem}-copy{k:03d}.parquet")
    console.print(f"FOCUS: {base_rows:,} rows x {copies} sub-account copies")
    marker.write_text(json.dumps({"focus": str(out), "cur": str(m.cur_path)}))
    return out, m.cur_path


def ours(kind: str, path: Path) -> tuple[float, float, int, float]:
    """Seconds to ingest, seconds for the daily query, rows stored, cost stored."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        t0 = time.perf_counter()
        result = read_focus(path) if kind == "focus" else read_cur(path)
        report = store.ingest(result)
        t_ingest = time.perf_counter() - t0
        del result
        t0 = time.perf_counter()
        daily = store.query(
            "SELECT date_trunc('day', ds) AS day, service, sum(effective_cost) AS cost "
            "FROM cost GROUP BY ALL"
        )
        t_query = time.perf_counter() - t0
        assert len(daily) > 0 and report.balanced
        store.close()
    return t_ingest, t_query, report.rows_accepted, report.effective_cost_stored


def anchor(kind: str, files: list[Path]) -> tuple[float, int]:
    """pandas read_parquet + groupby(day, service) sum."""
    t0 = time.perf_counter()
    if kind == "focus":
        df = pd.read_parquet(files, columns=["ChargePeriodStart", "ServiceName", "EffectiveCost"])
        out = df.groupby([df["ChargePeriodStart"].dt.floor("D"), "ServiceName"])[
            "EffectiveCost"
        ].sum()
    else:
        df = pd.read_parquet(
            files,
            columns=[
                "line_item_usage_start_date",
                "line_item_product_code",
                "line_item_unblended_cost",
            ],
        )
        out = df.groupby(
            [df["line_item_usage_start_date"].dt.floor("D"), "line_item_product_code"]
        )["line_item_unblended_cost"].sum()
    elapsed = time.perf_counter() - t0
    n = len(df)
    assert len(out) > 0
    del df, out
    gc.collect()
    return elapsed, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="minimum rows per export")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "ingest")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    focus_path, cur_path = ensure_data(args.cache, args.rows, args.seed)
    results = []
    table = Table(title="Ingest throughput (median of runs, same files, same machine)")
    for col in (
        "export",
        "rows",
        "ours ingest rows/s",
        "ours daily query s",
        "pandas read+groupby rows/s",
        "ours / pandas",
    ):
        table.add_column(col, justify="right")
    for kind, path in (("focus", focus_path), ("cur", cur_path)):
        files = data_files(path if kind == "focus" else path / "data")
        n_rows = parquet_rows(files)
        ing, qry, anc = [], [], []
        stored, cost = 0, 0.0
        for i in range(args.repeat):
            t_i, t_q, stored, cost = ours(kind, path)
            t_a, _ = anchor(kind, files)
            ing.append(t_i)
            qry.append(t_q)
            anc.append(t_a)
            console.print(
                f"{kind} run {i + 1}: ours {t_i:.2f}s (+{t_q:.2f}s query), pandas {t_a:.2f}s"
            )
        ours_rps = n_rows / statistics.median(ing)
        anchor_rps = n_rows / statistics.median(anc)
        results.append(
            {
                "export": kind,
                "rows": n_rows,
                "rows_stored": stored,
                "effective_cost_stored": cost,
                "ours_seconds": ing,
                "ours_rows_per_s": ours_rps,
                "ours_query_seconds": qry,
                "pandas_seconds": anc,
                "pandas_rows_per_s": anchor_rps,
                "ratio": ours_rps / anchor_rps,
            }
        )
        table.add_row(
            kind,
            f"{n_rows:,}",
            f"{ours_rps:,.0f}",
            f"{statistics.median(qry):.2f}",
            f"{anchor_rps:,.0f}",
            f"{ours_rps / anchor_rps:.2f}x",
        )
    console.print(table)
    console.print(
        "ours = parse + validate + classify + tag expansion + write to the store; "
        "pandas = read three columns + groupby, no validation or storage."
    )
    out = ROOT / "benchmarks" / "results" / "ingest.json"
    out.write_text(
        json.dumps(
            {
                "commit": git_commit(),
                "rows_target": args.rows,
                "repeat": args.repeat,
                "results": results,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
