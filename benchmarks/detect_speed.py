"""Scoring speed: one new point for 10,000 series (issue #5 target: under 1 s).

Every registered univariate detector (the default first) is warmed up on a
history of ``--history`` points for ``--series`` series (random walks with
daily seasonality and noise), then :meth:`StreamingDetector.update` scores
``--steps`` new points one at a time; the median and worst time of one update
(one new point for every series) are reported. The anchor printed next to us is
the same detector driven one series at a time (a Python loop over 100 series,
scaled to ``--series``): what vectorising across series buys.

Usage::

    python benchmarks/detect_speed.py [--series 10000] [--history 1000] [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import write_result  # noqa: E402
from models.anomaly import DEFAULT_DETECTOR, make_detector  # noqa: E402
from models.anomaly.frame import detector_names  # noqa: E402

console = Console()


def synthetic(n_series: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """``(n_series, n_steps)`` positive series: level x daily season x noise (5-minute)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    level = rng.uniform(10, 1000, n_series)[:, None]
    season = 1 + 0.3 * np.sin(
        2 * np.pi * (t[None, :] + rng.integers(0, 288, n_series)[:, None]) / 288
    )
    noise = np.exp(0.05 * rng.standard_normal((n_series, n_steps)))
    return level * season * noise


def time_updates(name: str, y: np.ndarray, history: int, steps: int) -> dict[str, float]:
    """Warm up on ``history`` columns, then time ``steps`` single-point updates."""
    det = make_detector(name)
    det.reset(y.shape[0])
    t0 = time.perf_counter()
    for t in range(history):
        det.update(y[:, t])
    warm = time.perf_counter() - t0
    times = []
    for t in range(history, history + steps):
        s = time.perf_counter()
        det.update(y[:, t])
        times.append(time.perf_counter() - s)
    return {
        "median_s": float(np.median(times)),
        "max_s": float(np.max(times)),
        "warmup_s_per_step": warm / history,
    }


def per_series_loop(name: str, y: np.ndarray, history: int, steps: int) -> float:
    """Seconds per new point for ``y.shape[0]`` series driven one series at a time."""
    dets = [make_detector(name).reset(1) for _ in range(y.shape[0])]
    for t in range(history):
        for i, d in enumerate(dets):
            d.update(y[i : i + 1, t])
    s = time.perf_counter()
    for t in range(history, history + steps):
        for i, d in enumerate(dets):
            d.update(y[i : i + 1, t])
    return (time.perf_counter() - s) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=1000, help="points before timing")
    parser.add_argument("--steps", type=int, default=30, help="timed new points")
    parser.add_argument(
        "--detectors",
        default=",".join(d for d in detector_names() if d != "iforest"),
        help="comma-separated registered names (iforest refits sklearn forests: not for 10k)",
    )
    args = parser.parse_args(argv)
    y = synthetic(args.series, args.history + args.steps)
    rows: dict[str, Any] = {}
    for name in [n.strip() for n in args.detectors.split(",") if n.strip()]:
        rows[name] = time_updates(name, y, args.history, args.steps)
        console.print(
            f"{name}: {rows[name]['median_s'] * 1000:.1f} ms per new point", highlight=False
        )
    k = min(100, args.series)
    loop_s = per_series_loop(DEFAULT_DETECTOR, y[:k], min(args.history, 400), 5) * (args.series / k)
    table = Table(
        title=f"One new point for {args.series:,} series (target < 1 s)", title_justify="left"
    )
    for col in ("detector", "median", "worst", "target met"):
        table.add_column(col, justify="left" if col == "detector" else "right")
    for name, r in rows.items():
        table.add_row(
            name + (" (default)" if name == DEFAULT_DETECTOR else ""),
            f"{r['median_s'] * 1000:.1f} ms",
            f"{r['max_s'] * 1000:.1f} ms",
            "yes" if r["max_s"] < 1.0 else "no",
        )
    table.add_row(
        f"anchor: {DEFAULT_DETECTOR}, one series at a time", f"{loop_s * 1000:,.0f} ms", "", ""
    )
    console.print(table)
    out = write_result(
        "detect_speed",
        {
            "series": args.series,
            "history": args.history,
            "steps": args.steps,
            "detectors": rows,
            "default": DEFAULT_DETECTOR,
            "anchor_per_series_loop_s": loop_s,
            "target_s": 1.0,
        },
    )
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
