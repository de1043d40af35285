"""M4 Hourly benchmark: our ``auto`` and LightGBM next to statsforecast anchors.

Data: ``m4/Hourly-train.csv`` (414 series, ``V1`` = id then values). The
official test set is held out from us, so the **last 48 points of every train
series are the validation set** and everything before them is the history.
Timestamps are hourly from an arbitrary start (2000-01-01 00:00 UTC).
``--split inner`` instead holds out the 48 points *before* the validation
window (and drops the validation points): the split to choose settings on, so
that the validation figures stay out of the tuning.

In the same run, on the same split and with the same metric code:

* ours: ``auto`` (the CLI's default configuration) and ``lgbm`` alone;
* anchors from statsforecast (``n_jobs=2``): AutoETS, AutoTheta,
  MSTL(24, 168) and SeasonalNaive;
* Naive2 (M4's benchmark, seasonally adjusted naive) computed here, to express
  OWA relative to this split as well as with the README's test-set constants.

Reported per model: sMAPE, MASE, OWA (README constants), OWA against this
run's Naive2, 95 % coverage, MSIS (alpha 0.05) and fit+predict wall/CPU
seconds. Writes ``benchmarks/results/m4_hourly.json`` with the git commit.

Usage::

    python benchmarks/m4_hourly.py [--data ../shared/data] [--n-jobs 2]
        [--models auto,lgbm] [--no-anchors] [--limit N] [--split inner]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import resolve_data, timed, write_result
from models import AutoForecaster, LGBMForecaster
from models.metrics import (
    M4_HOURLY_NAIVE2_MASE,
    M4_HOURLY_NAIVE2_SMAPE,
    evaluate,
)

H = 48
SEASON = 24
LEVELS = (80, 95)
START = pd.Timestamp("2000-01-01", tz="UTC")
TARGET_OWA = 0.40
TARGET_MSIS = 6.0
TARGET_COVERAGE_95 = (93.0, 97.0)
TARGET_WALL_S = 30.0
console = Console(width=130)


def load(
    data: Path, limit: int | None, split: str = "validation"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (history, validation) series frames: the last 48 points are validation.

    With ``split="inner"`` the last 48 points are dropped first, so the
    validation frame is the 48 points before the usual validation window.
    """
    raw = pd.read_csv(data / "m4" / "Hourly-train.csv")
    if limit:
        raw = raw.head(limit)
    ids = raw.iloc[:, 0].astype(str).to_numpy()
    values = raw.iloc[:, 1:].to_numpy(dtype=float)
    hist, val = [], []
    for uid, row in zip(ids, values, strict=True):
        y = row[~np.isnan(row)]
        if split == "inner":
            y = y[:-H]
        ds = pd.date_range(START, periods=len(y), freq="h")
        hist.append(pd.DataFrame({"unique_id": uid, "ds": ds[:-H], "y": y[:-H]}))
        val.append(pd.DataFrame({"unique_id": uid, "ds": ds[-H:], "y": y[-H:]}))
    return pd.concat(hist, ignore_index=True), pd.concat(val, ignore_index=True)


def naive2(history: pd.DataFrame) -> pd.DataFrame:
    """M4's Naive2: naive on the seasonally adjusted series (classical multiplicative).

    Seasonality is used when the lag-24 autocorrelation passes the M4 90 % test.
    """
    rows = []
    for uid, g in history.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(dtype=float)
        n = len(y)
        m = SEASON
        idx = np.ones(m)
        yc = y - y.mean()
        acf = np.array([np.sum(yc[k:] * yc[: n - k]) for k in range(m + 1)]) / np.sum(yc * yc)
        limit = 1.645 * np.sqrt((1 + 2 * np.sum(acf[1:m] ** 2)) / n)
        if n >= 3 * m and abs(acf[m]) > limit and (y > 0).all():
            # Centred 2x24 moving average, ratio to trend, mean ratio per phase.
            w = np.r_[0.5, np.ones(m - 1), 0.5] / m
            trend = np.convolve(y, w, mode="valid")
            ratio = y[m // 2 : m // 2 + len(trend)] / trend
            phase = (np.arange(len(ratio)) + m // 2) % m
            idx = np.array([ratio[phase == p].mean() for p in range(m)])
            idx = idx / idx.mean()
        season_hist = idx[np.arange(n) % m]
        last = y[-1] / season_hist[-1]
        fut = last * idx[np.arange(n, n + H) % m]
        ds = pd.date_range(g["ds"].iloc[-1], periods=H + 1, freq="h")[1:]
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds, "yhat": fut}))
    out = pd.concat(rows, ignore_index=True)
    for lv in LEVELS:
        out[f"lo_{lv}"] = out["yhat"]
        out[f"hi_{lv}"] = out["yhat"]
    return out


def run_ours(name: str, history: pd.DataFrame, n_jobs: int) -> tuple[pd.DataFrame, Any]:
    model: AutoForecaster | LGBMForecaster
    if name == "auto":
        model = AutoForecaster(horizon=H, n_jobs=n_jobs, seed=0)
    else:
        model = LGBMForecaster(n_jobs=n_jobs, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with timed() as t:
            fc = model.fit(history).predict(H, level=LEVELS)
    return fc, t


def run_anchors(history: pd.DataFrame, n_jobs: int) -> dict[str, tuple[pd.DataFrame, Any]]:
    try:
        from statsforecast import StatsForecast
        from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive
    except ImportError:
        console.print(
            "[yellow]statsforecast not installed (pip install -e '.[bench]'); "
            "skipping anchors[/yellow]"
        )
        return {}
    sf_df = history.assign(ds=history["ds"].dt.tz_convert(None))
    specs = {
        "statsforecast AutoETS": AutoETS(season_length=SEASON),
        "statsforecast AutoTheta": AutoTheta(season_length=SEASON),
        "statsforecast MSTL(24,168)": MSTL(season_length=[SEASON, 7 * SEASON]),
        "statsforecast SeasonalNaive": SeasonalNaive(season_length=SEASON),
    }
    out = {}
    for label, mdl in specs.items():
        sf = StatsForecast(models=[mdl], freq="h", n_jobs=n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with timed() as t:
                raw = sf.forecast(df=sf_df, h=H, level=list(LEVELS))
        col = str(mdl)
        fc = pd.DataFrame(
            {
                "unique_id": raw["unique_id"].astype(str).to_numpy(),
                "ds": pd.to_datetime(raw["ds"]).dt.tz_localize("UTC"),
                "yhat": raw[col].to_numpy(dtype=float),
            }
        )
        for lv in LEVELS:
            fc[f"lo_{lv}"] = raw[f"{col}-lo-{lv}"].to_numpy(dtype=float)
            fc[f"hi_{lv}"] = raw[f"{col}-hi-{lv}"].to_numpy(dtype=float)
        out[label] = (fc, t)
    return out


def score(fc: pd.DataFrame, history: pd.DataFrame, val: pd.DataFrame) -> dict[str, float]:
    merged = val.merge(fc, on=["unique_id", "ds"], how="left", validate="one_to_one")
    if merged["yhat"].isna().any():
        raise SystemExit("forecast is missing rows of the validation set")
    table = evaluate(merged, history, SEASON, LEVELS)
    row = table[table["unique_id"] == "ALL"].iloc[0]
    return {
        "smape": float(row["smape"]),
        "mase": float(row["mase"]),
        "owa": float(row["owa"]),
        "coverage_80": float(row["coverage_80"]),
        "coverage_95": float(row["coverage_95"]),
        "msis": float(row["msis"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="folder holding m4/")
    parser.add_argument("--n-jobs", type=int, default=2, help="workers for every model")
    parser.add_argument("--models", default="auto,lgbm", help="ours to run: auto,lgbm")
    parser.add_argument("--no-anchors", action="store_true", help="skip statsforecast")
    parser.add_argument("--limit", type=int, default=None, help="first N series only")
    parser.add_argument(
        "--split",
        choices=("validation", "inner"),
        default="validation",
        help="validation: last 48 of train held out; inner: the 48 before those",
    )
    parser.add_argument("--output", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)

    data = resolve_data(args.data, "m4")
    history, val = load(data, args.limit, args.split)
    n_series = history["unique_id"].nunique()
    where = "last" if args.split == "validation" else f"the {H} before the last"
    console.print(f"M4 Hourly: {n_series} series, {args.split} split = {where} {H} points of train")

    runs: dict[str, tuple[pd.DataFrame, Any]] = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        console.print(f"running ours: {name} ...")
        runs[f"ours {name}"] = run_ours(name, history, args.n_jobs)
    if not args.no_anchors:
        console.print("running statsforecast anchors ...")
        runs.update(run_anchors(history, args.n_jobs))

    n2 = score(naive2(history), history, val)
    results: dict[str, dict[str, float]] = {}
    for label, (fc, t) in runs.items():
        r = score(fc, history, val)
        r["owa_vs_run_naive2"] = 0.5 * (r["smape"] / n2["smape"] + r["mase"] / n2["mase"])
        r["wall_s"] = round(t.wall_s, 2)
        r["cpu_s"] = round(t.cpu_s, 2)
        results[label] = r
    results["Naive2 (computed here)"] = {
        **{k: n2[k] for k in ("smape", "mase", "owa")},
        "owa_vs_run_naive2": 1.0,
    }

    table = Table(title=f"M4 Hourly {args.split} split ({where} {H} of train), {n_series} series")
    for col in (
        "model",
        "sMAPE",
        "MASE",
        "OWA",
        "OWA/run N2",
        "cov95 %",
        "MSIS",
        "wall s",
        "CPU s",
    ):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)

    def fmt(r: dict[str, float], k: str, spec: str) -> str:
        return format(r[k], spec) if k in r else "-"

    for label, r in results.items():
        table.add_row(
            label,
            fmt(r, "smape", ".3f"),
            fmt(r, "mase", ".3f"),
            fmt(r, "owa", ".3f"),
            fmt(r, "owa_vs_run_naive2", ".3f"),
            fmt(r, "coverage_95", ".1f"),
            fmt(r, "msis", ".2f"),
            fmt(r, "wall_s", ".1f"),
            fmt(r, "cpu_s", ".1f"),
        )
    console.print(table)
    console.print(
        f"OWA uses the README Naive2 constants (sMAPE {M4_HOURLY_NAIVE2_SMAPE}, MASE "
        f"{M4_HOURLY_NAIVE2_MASE}, test set); 'OWA/run N2' uses Naive2 on this split."
    )
    ours = results.get("ours auto")
    checks: dict[str, bool] = {}
    if ours:
        lo, hi = TARGET_COVERAGE_95
        mstl = results.get("statsforecast MSTL(24,168)")
        checks = {
            "owa<=0.40": ours["owa"] <= TARGET_OWA,
            "msis<=6.0": ours["msis"] <= TARGET_MSIS,
            "coverage95 in [93,97]": lo <= ours["coverage_95"] <= hi,
            "wall<30s": ours["wall_s"] < TARGET_WALL_S,
        }
        if mstl:
            checks["faster than MSTL"] = ours["wall_s"] < mstl["wall_s"]
        console.print(
            "targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
        )
    path = write_result(
        "m4_hourly",
        {
            "data": (
                "m4/Hourly-train.csv, last 48 points of each series held out"
                if args.split == "validation"
                else "m4/Hourly-train.csv without its last 48 points, the 48 before held out"
            ),
            "split": args.split,
            "n_series": int(n_series),
            "horizon": H,
            "n_jobs": args.n_jobs,
            "results": results,
            "targets": {
                "owa": TARGET_OWA,
                "msis": TARGET_MSIS,
                "coverage_95": list(TARGET_COVERAGE_95),
                "wall_s": TARGET_WALL_S,
            },
            "targets_met": checks,
        },
        args.output,
    )
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
