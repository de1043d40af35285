"""Detection on the demo fleet: the default alert rules replayed over 12 months.

Generates the seeded demo fleet (or reuses a store made by an earlier run),
ingests it through the same readers users run, then replays the default alert
rules exactly as the main job's ``detect`` stage does (one evaluation over the
whole window with ``since`` at its start; each alert keeps the time its data was
complete) and scores the alerts against the injected anomalies
(``exports/labels/anomalies.csv``) with :func:`forecaster.alerts.evaluation.score_alerts`.

Reported (issue #5 targets): recall of the labels with more than $100 of
impact, how many were found within 2 hours, detection latency, false alerts per
team per week, precision over all alerts, and the seconds the replay takes.
The anchor in the same run is the rule set the project shipped before this
work (team-level ``CostAnomaly``, ``SpendSpike``, ``UntaggedSpend``, 24-hour
``IdleResources``) replayed on the same store.

Usage::

    python benchmarks/demo_detection.py [--out /tmp/demo-detect] [--seed 7] [--reuse]
        [--window-days 365] [--no-anchor]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import write_result  # noqa: E402
from features.store import Store  # noqa: E402
from forecaster.alerts.base import Rule, evaluate_rules  # noqa: E402
from forecaster.alerts.engine import load_context  # noqa: E402
from forecaster.alerts.evaluation import read_labels, score_alerts  # noqa: E402
from forecaster.alerts.policies import default_rules  # noqa: E402
from forecaster.alerts.rules import (  # noqa: E402
    CostAnomaly,
    IdleResources,
    SpendSpike,
    UntaggedSpend,
)

console = Console(width=130)
MIN_IMPACT = 100.0


def previous_rules() -> list[Rule]:
    """The default rules before issue #5's detection work (the anchor)."""
    return [
        CostAnomaly(),
        SpendSpike(50.0, compare="season", min_impact=500.0),
        UntaggedSpend(0.05),
        IdleResources(0.2, hours=24, exclude_kinds=("notebook",)),
    ]


def build_store(root: Path, seed: int, months: int, reuse: bool) -> tuple[Path, Path, float]:
    """Generate and ingest the demo fleet under ``root`` (or reuse it); store, labels, s."""
    store_path = root / "forecaster.duckdb"
    labels = root / "exports" / "labels" / "anomalies.csv"
    if reuse and store_path.exists() and labels.exists():
        return store_path, labels, 0.0
    from features.demo import generate_demo_fleet
    from features.readers.cur import read_cur
    from features.readers.focus import read_focus
    from features.readers.metrics import read_utilization

    t0 = time.perf_counter()
    manifest = generate_demo_fleet(root / "exports", seed=seed, months=months)
    if store_path.exists():
        store_path.unlink()
    with Store(store_path) as st:
        st.ingest(read_focus(manifest.focus_path))
        st.ingest(read_cur(manifest.cur_path))
        st.ingest_utilization(read_utilization(manifest.metrics_path))
    return store_path, Path(manifest.labels_path), time.perf_counter() - t0


def replay(
    store_path: Path, labels_path: Path, rules: list[Rule], window_days: int
) -> dict[str, Any]:
    """The detect stage's replay: load, evaluate, score (timed)."""
    t0 = time.perf_counter()
    with Store(store_path) as st:
        last = st.con.execute("SELECT max(ds) FROM cost").fetchall()[0][0]
        as_of = pd.Timestamp(last).tz_convert("UTC").floor("h") + pd.Timedelta(hours=1)
        since = as_of - pd.Timedelta(days=window_days)
        ctx = load_context(st, as_of=as_of, since=since, history_days=window_days + 70)
    load_s = time.perf_counter() - t0
    ev = evaluate_rules(rules, ctx)
    seconds = time.perf_counter() - t0
    labels = read_labels(labels_path)
    labels = labels[(labels["start"] >= since) & (labels["start"] < as_of)]
    scored = score_alerts(ev.alerts, labels)
    teams = int(ctx.cost["team"].nunique()) if "team" in ctx.cost else 1
    summary = scored.summary(teams=max(teams, 1), weeks=window_days / 7.0, min_impact=MIN_IMPACT)
    lab = scored.labels
    per_label = [
        {
            "anomaly_id": str(r.anomaly_id),
            "kind": str(r.kind),
            "impact": float(r.expected_extra_cost),
            "found": bool(r.found),
            "latency_h": None if pd.isna(r.latency_h) else float(r.latency_h),
            "detected_by": str(r.detected_by),
        }
        for r in lab.itertuples(index=False)
    ]
    big = lab[lab["expected_extra_cost"] >= MIN_IMPACT]
    by_rule = scored.alerts.groupby("rule")["matched"].agg(
        alerts="size", true=lambda m: int((m != "").sum())
    )
    return {
        **summary,
        "teams": teams,
        "weeks": window_days / 7.0,
        "found_within_2h_all_big": bool(
            len(big) and (big["found"] & (big["latency_h"] <= 2.0)).all()
        ),
        "labels_detail": per_label,
        "alerts_by_rule": {
            str(k): {c: int(v[c]) for c in by_rule.columns} for k, v in by_rule.iterrows()
        },
        "errors": list(ev.errors),
        "seconds": seconds,
        "load_seconds": load_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/forecaster-demo-detection", help="demo folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--window-days", type=int, default=365)
    parser.add_argument("--reuse", action="store_true", help="reuse the store in --out")
    parser.add_argument("--no-anchor", action="store_true", help="skip the previous rules")
    parser.add_argument("--output", default=None, help="results JSON (default results/)")
    args = parser.parse_args(argv)

    store_path, labels_path, build_s = build_store(
        Path(args.out), args.seed, args.months, args.reuse
    )
    runs = {
        "ours (default_rules)": replay(store_path, labels_path, default_rules(), args.window_days)
    }
    if not args.no_anchor:
        runs["anchor (previous rules)"] = replay(
            store_path, labels_path, previous_rules(), args.window_days
        )

    table = Table(
        title=f"Demo fleet (seed {args.seed}), {args.window_days} days replayed, labels > $100",
        title_justify="left",
    )
    cols = (
        "rules",
        "recall",
        "within 2 h",
        "latency med/max (h)",
        "false / team-week",
        "precision",
        "alerts",
        "seconds",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "rules" else "right")
    for name, r in runs.items():
        lat = (
            f"{r['latency_h_median']:.0f} / {r['latency_h_max']:.0f}"
            if r["latency_h_median"] is not None
            else "-"
        )
        table.add_row(
            name,
            f"{r['found']}/{r['labels']}",
            f"{r['found_within_2h']}/{r['labels']}",
            lat,
            f"{r['false_alerts_per_team_week']:.3f}",
            f"{r['precision']:.3f}" if r["precision"] is not None else "-",
            str(r["alerts"]),
            f"{r['seconds']:.1f}",
        )
    console.print(table)
    ours = runs["ours (default_rules)"]
    detail = Table(title="Ours per injected anomaly", title_justify="left")
    for c in ("id", "kind", "impact $", "found", "latency h", "rules"):
        detail.add_column(c)
    for d in ours["labels_detail"]:
        detail.add_row(
            d["anomaly_id"],
            d["kind"],
            f"{d['impact']:,.0f}",
            "yes" if d["found"] else "no",
            "-" if d["latency_h"] is None else f"{d['latency_h']:.0f}",
            d["detected_by"],
        )
    console.print(detail)
    payload = {
        "seed": args.seed,
        "months": args.months,
        "window_days": args.window_days,
        "min_impact": MIN_IMPACT,
        "build_seconds": build_s,
        "runs": runs,
        "targets": {
            "all_big_found_within_2h": ours["found_within_2h_all_big"],
            "false_alerts_per_team_week_below_1": ours["false_alerts_per_team_week"] < 1.0,
        },
    }
    out = write_result("demo_detection", payload, Path(args.output) if args.output else None)
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
