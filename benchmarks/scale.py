"""Scale benchmark (issue 10): many daily series, 90-day forecasts with intervals.

A synthetic fleet of ``n`` daily cost series (2 years each: random-walk levels,
weekly seasons of random strength, slopes, noise, a share of spiky and of
intermittent series) is written as a folder of series partitions, 2,000
series per parquet file, without ever holding the fleet in one frame. Then,
for each size, each contender runs in its own process while a sampler records
the peak resident memory of that process and all its children (scheduler,
workers):

* ``local``: ``LocalBackend(n_jobs=2)`` over the partitions, ``VectorizedETS``;
* ``dask``: ``DaskBackend`` on a ``LocalCluster`` of 2 worker processes x 1
  thread, same model, each worker reading and writing its own partitions;
* anchor: statsforecast ``AutoETS(season_length=7)``, ``n_jobs=2``, on the
  same series loaded as one frame (its API needs one). Where the anchor would
  take longer than ``--anchor-budget`` minutes (projected from its measured
  time per series at the largest size it ran), its figure is extrapolated and
  labelled so.

Every run writes the forecast (``yhat``, 80 and 95 % intervals) of all series.
A small accuracy check on the first size (last 90 days held out) puts the two
models' MASE and interval coverage next to each other.

    python benchmarks/scale.py                      # 1k, 10k, 100k
    python benchmarks/scale.py --sizes 1000 --no-anchor   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, write_result

HORIZON = 90
LENGTH = 730
SEASON = 7
PER_FILE = 2_000
LEVELS = [80, 95]
ACCURACY_SERIES = 200


# ------------------------------------------------------------------- the data
def fleet_partition(index: int, n_series: int, first_id: int, length: int) -> pd.DataFrame:
    """One partition of the synthetic fleet: ``unique_id, ds, y`` for ``n_series`` series."""
    rng = np.random.default_rng(1_000 + index)
    t = np.arange(length)
    n = n_series
    level = rng.lognormal(3.0, 1.2, (n, 1))
    walk = np.cumsum(rng.normal(0, 0.012, (n, length)), axis=1)
    weekly = rng.uniform(0, 0.35, (n, 1)) * np.sin(2 * np.pi * (t + rng.integers(0, 7, (n, 1))) / 7)
    slope = rng.normal(0, 0.0008, (n, 1)) * t[None, :]
    noise = rng.normal(0, 1, (n, length)) * rng.uniform(0.02, 0.15, (n, 1))
    y = level * (1 + walk + weekly + slope + noise)
    # 10 % spiky series (batch jobs), 10 % intermittent ones (idle days).
    spiky = rng.random(n) < 0.1
    y[spiky] += (
        level[spiky]
        * rng.exponential(1.0, (int(spiky.sum()), length))
        * (rng.random((int(spiky.sum()), length)) < 0.05)
    )
    idle = rng.random(n) < 0.1
    y[idle] *= rng.random((int(idle.sum()), length)) > 0.3
    y = np.maximum(y, 0.0)
    ds = pd.date_range("2024-01-01", periods=length, freq="D", tz="UTC")
    ids = np.array([f"pod-{first_id + i:06d}" for i in range(n)])
    return pd.DataFrame(
        {"unique_id": np.repeat(ids, length), "ds": np.tile(ds, n), "y": y.reshape(-1)}
    )


def write_fleet(folder: Path, n: int, length: int) -> Path:
    """Write the fleet partition by partition (bounded memory)."""
    from models.backends import write_partitions

    # At most PER_FILE series per file, at least 4 files, an even number (2 workers).
    n_files = max(4, -(-n // PER_FILE))
    n_files += n_files % 2
    bounds = [round(i * n / n_files) for i in range(n_files + 1)]

    def parts() -> Iterator[pd.DataFrame]:
        for i in range(n_files):
            yield fleet_partition(i, bounds[i + 1] - bounds[i], bounds[i], length)

    write_partitions(parts(), folder)
    return folder


# ------------------------------------------------------- contenders (child side)
def run_child(kind: str, data: Path, out: Path, horizon: int, workers: int) -> dict[str, Any]:
    """Run one contender in this (child) process; return its timings."""
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if kind in ("local", "dask"):
        from models import VectorizedETS
        from models.backends import SeriesPartitions, get_backend

        parts = SeriesPartitions.from_folder(data)
        model = VectorizedETS(horizon=horizon)
        with get_backend(kind, n_jobs=workers, n_workers=workers) as backend:
            t_ready = time.perf_counter()
            backend.forecast(model, parts, horizon, level=LEVELS, output=out)
        info["startup_s"] = t_ready - t0
    elif kind == "statsforecast":
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS

        df = pd.concat([pd.read_parquet(f) for f in sorted(data.glob("part-*.parquet"))])
        df["ds"] = df["ds"].dt.tz_localize(None)
        sf = StatsForecast(models=[AutoETS(season_length=SEASON)], freq="D", n_jobs=workers)
        t_ready = time.perf_counter()
        fc = sf.forecast(df=df, h=horizon, level=LEVELS)
        out.mkdir(parents=True, exist_ok=True)
        fc.to_parquet(out / "part-00000.parquet")
        info["startup_s"] = t_ready - t0
    else:
        raise SystemExit(f"unknown contender {kind!r}")
    info["wall_s"] = time.perf_counter() - t0
    rows = sum(len(pd.read_parquet(f, columns=["ds"])) for f in out.glob("part-*.parquet"))
    info["forecast_rows"] = rows
    return info


# ------------------------------------------------------------- parent side
def _tree_rss(proc: Any) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except Exception:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except Exception:
            continue
    return total


def measure(kind: str, data: Path, horizon: int, workers: int) -> dict[str, Any]:
    """Run a contender in a child process, sampling the peak RSS of its process tree."""
    import psutil

    out = Path(tempfile.mkdtemp(prefix=f"scale-{kind}-"))
    shutil.rmtree(out)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--data",
        str(data),
        "--out",
        str(out),
        "--horizon",
        str(horizon),
        "--workers",
        str(workers),
    ]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if child.returncode != 0:
        raise SystemExit(f"{kind} failed with exit code {child.returncode}")
    info = json.loads(stdout.strip().splitlines()[-1])
    info["process_wall_s"] = wall
    info["peak_rss_gb"] = peak / 1e9
    return info


def accuracy(data: Path, horizon: int, workers: int, anchor: bool) -> dict[str, Any]:
    """MASE and coverage on the last ``horizon`` days held out (first size, a sample)."""
    import warnings

    from models import VectorizedETS
    from models.metrics import evaluate

    df = pd.concat([pd.read_parquet(f) for f in sorted(data.glob("part-*.parquet"))])
    # The anchor costs about a second per series here: check on a sample.
    df = df[df["unique_id"].isin(df["unique_id"].unique()[:ACCURACY_SERIES])]
    cut = df["ds"].max() - pd.Timedelta(days=horizon)
    train, test = df[df["ds"] <= cut], df[df["ds"] > cut]
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = VectorizedETS(horizon=horizon).fit(train).predict(horizon, level=LEVELS)
    frames = {"vets": fc}
    if anchor:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS

        naive = train.assign(ds=train["ds"].dt.tz_localize(None))
        sf = StatsForecast(models=[AutoETS(season_length=SEASON)], freq="D", n_jobs=workers)
        a = sf.forecast(df=naive, h=horizon, level=LEVELS).reset_index()
        a = a.rename(
            columns={
                "AutoETS": "yhat",
                **{f"AutoETS-{s}-{lv}": f"{s}_{lv}" for s in ("lo", "hi") for lv in LEVELS},
            }
        )
        a["ds"] = a["ds"].dt.tz_localize("UTC")
        frames["statsforecast AutoETS"] = a
    for name, frame in frames.items():
        merged = frame.merge(test, on=["unique_id", "ds"])
        merged["cutoff"] = cut
        ev = evaluate(merged, train, SEASON, LEVELS).set_index("unique_id").loc["ALL"]
        out[name] = {
            k: float(ev[k]) for k in ("mase", "smape", "coverage_80", "coverage_95", "msis")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--horizon", type=int, default=HORIZON)
    parser.add_argument("--length", type=int, default=LENGTH)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--anchor-budget",
        type=float,
        default=15.0,
        help="Minutes: run the anchor only where its projected time is below this.",
    )
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="Results JSON path.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        info = run_child(args.child, args.data, args.out, args.horizon, args.workers)
        print(json.dumps(info))
        return

    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    anchor_per_series: float | None = None
    acc: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        for n in sorted(args.sizes):
            data = root / f"fleet-{n}"
            t0 = time.perf_counter()
            write_fleet(data, n, args.length)
            gen_s = time.perf_counter() - t0
            print(f"[{n:,} series] fleet written in {gen_s:.0f} s", flush=True)
            if not acc and not args.no_accuracy:
                acc = accuracy(data, args.horizon, args.workers, not args.no_anchor)
                print(f"  accuracy (last {args.horizon} days held out): {acc}", flush=True)
            for kind in ("local", "dask"):
                res = measure(kind, data, args.horizon, args.workers)
                rows.append({"series": n, "contender": kind, "model": "vets", **res})
                print(
                    f"  {kind:>5}: {res['process_wall_s']:.1f} s, peak {res['peak_rss_gb']:.2f} GB",
                    flush=True,
                )
            if not args.no_anchor:
                projected = None if anchor_per_series is None else anchor_per_series * n / 60
                if projected is not None and projected > args.anchor_budget:
                    rows.append(
                        {
                            "series": n,
                            "contender": "statsforecast",
                            "model": "AutoETS",
                            "process_wall_s": anchor_per_series * n,
                            "peak_rss_gb": None,
                            "extrapolated": True,
                        }
                    )
                    print(
                        f"  statsforecast: EXTRAPOLATED {anchor_per_series * n:.0f} s "
                        f"({anchor_per_series * 1e3:.1f} ms/series measured at a smaller size)",
                        flush=True,
                    )
                else:
                    res = measure("statsforecast", data, args.horizon, args.workers)
                    # Per-series cost without the one-off start (imports, numba compile).
                    anchor_per_series = (res["wall_s"] - res["startup_s"]) / n
                    rows.append(
                        {
                            "series": n,
                            "contender": "statsforecast",
                            "model": "AutoETS",
                            **res,
                            "extrapolated": False,
                        }
                    )
                    print(
                        f"  statsforecast AutoETS: {res['process_wall_s']:.1f} s, "
                        f"peak {res['peak_rss_gb']:.2f} GB",
                        flush=True,
                    )
            shutil.rmtree(data, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_end = os.getloadavg()
    table = pd.DataFrame(rows)
    table["ms_per_series"] = 1e3 * table["process_wall_s"] / table["series"]
    growth = {}
    for kind, g in table.groupby("contender"):
        g = g.sort_values("series")
        if len(g) >= 2:
            small, big = g.iloc[0], g.iloc[-1]
            growth[kind] = {
                "per_series_ratio_largest_vs_smallest": float(
                    big["ms_per_series"] / small["ms_per_series"]
                ),
                "loglog_slope": float(
                    np.polyfit(np.log(g["series"]), np.log(g["process_wall_s"]), 1)[0]
                ),
            }
    print()
    print(f"90-day forecasts with 80/95 % intervals, daily series of {args.length} days")
    shown = table[
        ["series", "contender", "model", "process_wall_s", "ms_per_series", "peak_rss_gb"]
    ]
    if "extrapolated" in table:
        shown = shown.assign(extrapolated=table["extrapolated"].fillna(False))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("growth of cost with the number of series:", json.dumps(growth, indent=1))
    print(f"load average at start {load_start}, at end {load_end}")
    payload = {
        "horizon": args.horizon,
        "length_days": args.length,
        "workers": args.workers,
        "model": "vets (VectorizedETS, conformal intervals, default grid)",
        "anchor": "statsforecast AutoETS(season_length=7), n_jobs=2",
        "rows": table.replace({np.nan: None}).to_dict("records"),
        "growth": growth,
        "accuracy_first_size": acc,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "machine_at_end": machine(),
    }
    path = write_result("scale", payload, args.output)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
