"""Fleet daily benchmark (issue 3): coherent daily cost forecasts of the demo fleet.

Data: the seeded demo fleet (``forecaster demo``: 12 months of hourly FOCUS and
CUR 2.0 cost, seed 7) aggregated by :func:`features.series.hierarchy_series`
into daily cost per ``total -> team -> project -> service`` (untagged spend as
``(untagged)`` nodes, so the total is the whole bill).

Protocol: 6 rolling origins, 90-day horizon, origins ``--step`` days apart (15
by default: the latest origin is 90 days before the end, the first 165 days).
At every origin each configuration is fitted on the history up to it only
(its own inner 3-window backtest chooses the reconciliation method, estimates
the MinT covariance and calibrates the intervals) and forecasts 90 days.

Configurations, all from the same run and scored by the same code:

* ours: the default base model (global LightGBM, Huber loss) with every
  reconciliation method: ``none`` (base forecasts, not coherent),
  ``bottom_up``, ``top_down``, ``ols``, ``wls_struct``, ``wls_var``,
  ``mint_shrink`` and ``auto`` (the method the inner backtest chose);
* ``--bases lgbm`` adds the L1-loss LightGBM base for comparison;
* anchor: seasonal naive (7 days) per node, which is coherent by itself,
  with intervals from the same conformal procedure.

Metrics per level (pooled over nodes, days and origins): daily WAPE, bias,
coverage of the 80 and 95 % intervals, MSIS; and the **monthly WAPE at a
30-day horizon**: ``sum |Y - F| / sum |Y|`` over nodes and origins, where ``Y``
and ``F`` are the actual and forecast cost of the first 30 days after the
origin. Target (issue 3): team-level monthly WAPE < 5 %, 80 % coverage 77-83 %.

Usage::

    python benchmarks/fleet_daily.py [--store PATH] [--origins 6] [--step 15]
        [--horizon 90] [--bases auto,lgbm] [--n-jobs 2]

Without ``--store`` the demo fleet is generated and ingested into a temporary
folder first (about 30 s). Writes ``benchmarks/results/fleet_daily.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import timed, write_result
from features.series import HierarchySeries, hierarchy_series
from features.store import Store
from models.hierarchy import METHODS, HierarchicalForecaster, default_base, level_metrics

LEVELS = (80, 95)
TARGET_TEAM_M30_WAPE = 5.0
TARGET_COVERAGE_80 = (77.0, 83.0)
console = Console(width=150)


def build_store(folder: Path, seed: int = 7, months: int = 12) -> Path:
    """Generate and ingest the demo fleet, as ``forecaster demo`` does."""
    from features.demo import generate_demo_fleet
    from features.readers.cur import read_cur
    from features.readers.focus import read_focus

    manifest = generate_demo_fleet(folder / "exports", seed=seed, months=months)
    path = folder / "forecaster.duckdb"
    with Store(path) as st:
        st.ingest(read_focus(manifest.focus_path))
        st.ingest(read_cur(manifest.cur_path))
    return path


def _base(name: str, n_jobs: int, seed: int) -> Any:
    if name == "auto":
        return default_base(freq="D", n_jobs=n_jobs, seed=seed)
    if name == "lgbm":
        from models.lgbm import LGBMForecaster

        return LGBMForecaster(freq="D", n_jobs=n_jobs, seed=seed)
    if name == "seasonal_naive":
        from models.baselines import SeasonalNaive

        return SeasonalNaive(freq="D")
    raise SystemExit(f"error: unknown base {name!r} (use auto, lgbm, seasonal_naive)")


def run_origins(
    hs: HierarchySeries,
    base: str,
    methods: list[str],
    *,
    horizon: int,
    origins: int,
    step: int,
    inner_windows: int,
    n_jobs: int,
    seed: int,
) -> dict[str, Any]:
    """Forecasts of every method at every origin: arrays ``(n_nodes, origins, horizon)``."""
    n, t = hs.values.shape
    fc = {m: np.full((n, origins, horizon), np.nan) for m in [*methods, "auto"]}
    lo = {(m, lv): np.full_like(fc[m], np.nan) for m in fc for lv in LEVELS}
    hi = {(m, lv): np.full_like(fc[m], np.nan) for m in fc for lv in LEVELS}
    actual = np.full((n, origins, horizon), np.nan)
    scales = np.full((n, origins), np.nan)
    chosen: list[str] = []
    seconds: list[float] = []
    for o in range(origins):
        drop = horizon + (origins - 1 - o) * step
        train = hs.truncate(drop)
        y = train.values
        scales[:, o] = np.mean(np.abs(y[:, 7:] - y[:, :-7]), axis=1)
        actual[:, o] = hs.values[:, t - drop : t - drop + horizon]
        with timed() as tm, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = HierarchicalForecaster(
                base=_base(base, n_jobs, seed),
                method="auto",
                horizon=horizon,
                n_windows=inner_windows,
                n_jobs=n_jobs,
                seed=seed,
            ).fit(train)
            for m in [*methods, "auto"]:
                meth = est.method_ if m == "auto" else m
                if meth not in est.methods_:
                    continue
                f = est.predict(horizon, level=LEVELS, method=meth)
                fc[m][:, o] = f["yhat"].to_numpy().reshape(n, horizon)
                for lv in LEVELS:
                    lo[(m, lv)][:, o] = f[f"lo_{lv}"].to_numpy().reshape(n, horizon)
                    hi[(m, lv)][:, o] = f[f"hi_{lv}"].to_numpy().reshape(n, horizon)
        chosen.append(est.method_)
        seconds.append(tm.wall_s)
        console.print(
            f"  {base}: origin {o + 1}/{origins} (cutoff {train.ds[-1]:%Y-%m-%d}) "
            f"chose {est.method_} in {tm.wall_s:.1f}s",
            highlight=False,
        )
    return {
        "fc": fc,
        "lo": lo,
        "hi": hi,
        "actual": actual,
        "scales": scales,
        "chosen": chosen,
        "seconds": seconds,
    }


def score(hs: HierarchySeries, run: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """Metric rows per method and level."""
    rows = []
    actual, scales = run["actual"], run["scales"]
    for m, fc in run["fc"].items():
        if not np.isfinite(fc).all():
            continue
        for lvl in hs.level_names:
            sel = hs.node_levels == lvl
            bands = {lv: (run["lo"][(m, lv)][sel], run["hi"][(m, lv)][sel]) for lv in LEVELS}
            r = level_metrics(actual[sel], fc[sel], bands, scales[sel])
            y30 = actual[sel][:, :, :30].sum(axis=2)
            f30 = fc[sel][:, :, :30].sum(axis=2)
            r["wape_m30"] = 100.0 * float(np.abs(y30 - f30).sum() / np.abs(y30).sum())
            flat = fc.reshape(len(fc), -1)
            gap = hs.S.toarray() @ flat[hs.bottom_mask] - flat
            coherent = float(np.max(np.abs(gap)) / max(float(np.max(np.abs(flat))), 1e-12))
            rows.append(
                {
                    "base": label,
                    "method": m,
                    "level": lvl,
                    "n_nodes": int(sel.sum()),
                    **r,
                    "max_rel_incoherence": coherent,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="demo store (default: build)")
    parser.add_argument("--origins", type=int, default=6)
    parser.add_argument("--step", type=int, default=15, help="days between origins")
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--inner-windows", type=int, default=3)
    parser.add_argument("--bases", default="auto", help="comma list: auto, lgbm")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store
        build_s = None
        if store_path is None:
            console.print("generating and ingesting the demo fleet...")
            with timed() as tb:
                store_path = build_store(Path(tmp))
            build_s = tb.wall_s
        with Store(store_path, read_only=True) as st, timed() as ta:
            hs = hierarchy_series(st, ("team", "project", "service"), "D")
    counts = {lv: int((hs.node_levels == lv).sum()) for lv in hs.level_names}
    console.print(
        f"hierarchy: {counts} nodes, {len(hs.ds)} days {hs.ds[0]:%Y-%m-%d}..{hs.ds[-1]:%Y-%m-%d}, "
        f"total ${hs.values[0].sum():,.0f} (store ${hs.info['store_total']:,.0f}); "
        f"aggregated in {ta.wall_s:.1f}s",
        highlight=False,
    )
    for note in hs.notes:
        console.print(f"note: {note}", highlight=False)
    methods = [m for m in METHODS]
    common = {
        "horizon": args.horizon,
        "origins": args.origins,
        "step": args.step,
        "inner_windows": args.inner_windows,
        "n_jobs": args.n_jobs,
        "seed": args.seed,
    }
    rows: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for base in [b.strip() for b in args.bases.split(",") if b.strip()]:
        label = "lgbm_huber" if base == "auto" else base
        runs[label] = run_origins(hs, base, methods, **common)
        rows += score(hs, runs[label], label)
    runs["seasonal_naive"] = run_origins(hs, "seasonal_naive", ["bottom_up"], **common)
    rows += [
        r for r in score(hs, runs["seasonal_naive"], "seasonal_naive") if r["method"] == "bottom_up"
    ]

    for lvl in hs.level_names:
        table = Table(
            title=f"level {lvl} ({counts[lvl]} nodes): {args.origins} origins x {args.horizon} days"
        )
        for col in (
            "base",
            "method",
            "wape_m30",
            "wape",
            "bias",
            "coverage_80",
            "coverage_95",
            "msis",
            "max_rel_incoherence",
        ):
            table.add_column(col, justify="left" if col in ("base", "method") else "right")
        for r in rows:
            if r["level"] != lvl:
                continue
            table.add_row(
                r["base"],
                r["method"],
                *(f"{r[c]:.1f}" for c in ("wape_m30", "wape")),
                f"{r['bias']:+.1f}",
                *(f"{r[c]:.1f}" for c in ("coverage_80", "coverage_95")),
                f"{r['msis']:.2f}",
                f"{r['max_rel_incoherence']:.1e}",
            )
        console.print(table)
    timing = {
        k: {"mean_s": float(np.mean(v["seconds"])), "chosen": v["chosen"]} for k, v in runs.items()
    }
    console.print(
        f"fit+predict seconds per origin: { {k: round(v['mean_s'], 1) for k, v in timing.items()} }"
    )
    head = [
        r
        for r in rows
        if r["base"] == "lgbm_huber" and r["method"] == "auto" and r["level"] == "team"
    ]
    if head:
        h = head[0]
        ok_w = h["wape_m30"] < TARGET_TEAM_M30_WAPE
        ok_c = TARGET_COVERAGE_80[0] <= h["coverage_80"] <= TARGET_COVERAGE_80[1]
        console.print(
            f"target team monthly WAPE < {TARGET_TEAM_M30_WAPE}%: {h['wape_m30']:.1f}% "
            f"({'met' if ok_w else 'NOT met'}); team 80% coverage in {TARGET_COVERAGE_80}: "
            f"{h['coverage_80']:.1f}% ({'met' if ok_c else 'NOT met'})"
        )
    path = write_result(
        "fleet_daily",
        {
            "protocol": {**common, "levels": list(LEVELS), "data": "demo fleet seed 7, 12 months"},
            "hierarchy": {"nodes": counts, "days": len(hs.ds), "notes": hs.notes},
            "build_store_s": build_s,
            "aggregate_s": ta.wall_s,
            "timing": timing,
            "rows": rows,
            "targets": {
                "team_m30_wape_lt": TARGET_TEAM_M30_WAPE,
                "coverage_80": list(TARGET_COVERAGE_80),
            },
        },
        args.out,
    )
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
