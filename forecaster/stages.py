"""The pipeline stages over an ingested store: governance, optimisation, load, detection.

Each stage reads the store, computes with the lower layers (``features``, ``models``,
``optimizer``), writes its result frames with :meth:`features.store.Store.write_result`
(names and columns in ``docs/results.md``) and returns a small JSON-ready summary for the
main job's final table. Stages never print; the caller shows progress.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.exceptions import ForecasterError
from features.store import Store
from features.tags import showback as showback_frame
from features.tags import tag_coverage

#: Target utilization a replica is sized for when turning a load forecast into replicas
#: (AWS predictive scaling and HPA targets are typically 50-80 %).
TARGET_UTILIZATION = {"gpu": 0.8, "cpu": 0.7}


# -- governance ------------------------------------------------------------------------------
def governance(
    st: Store,
    *,
    run_id: str,
    required_tags: Sequence[str],
    shared_values: Sequence[str],
) -> dict[str, Any]:
    """Tag coverage, untagged spend and monthly showback per team."""
    cov = tag_coverage(st, required_tags)
    per = cov.per_tag.rename(columns={"tagged_spend": "covered_spend"})
    per["total_spend"] = cov.total_spend
    st.write_result(
        "tag_coverage",
        per[["tag", "covered_spend", "total_spend", "coverage_pct"]],
        run_id=run_id,
        meta={"fully_tagged_pct": cov.fully_tagged_pct, "untagged_spend": cov.untagged_spend},
    )
    st.write_result("untagged", cov.untagged_by, run_id=run_id)
    sb = showback_frame(st, ["team"], period="month", shared_values=shared_values)
    sb = sb.rename(columns={"period": "month", "direct_cost": "effective_cost"})
    sb["team"] = sb["team"].fillna("(unallocated)").astype(str)
    st.write_result(
        "showback",
        sb[["team", "month", "effective_cost", "shared_cost", "total_cost"]],
        run_id=run_id,
    )
    return {
        "tag_coverage_pct": round(cov.fully_tagged_pct, 2),
        "untagged_spend": round(cov.untagged_spend, 2),
        "teams": int(sb["team"].nunique()),
    }


# -- cost forecasts along the tag hierarchy ----------------------------------------------------
def forecast(
    st: Store,
    *,
    run_id: str,
    levels: Sequence[str],
    horizon_days: int,
    model: str,
    reconcile: str,
    n_windows: int,
) -> tuple[dict[str, Any], Any]:
    """Backtest, train and forecast daily cost for every node of the hierarchy.

    Returns the summary and the :class:`models.hierarchy.HierarchyForecast` (for tracking).
    The headline is the next 30 days of total spend with the interval of the sum from
    :func:`models.aggregate.forecast_total`, the same rule as the report and the API.
    """
    from features.series import hierarchy_series
    from models.hierarchy import fit_forecast_hierarchy

    hs = hierarchy_series(st, tuple(levels), "D")
    res = fit_forecast_hierarchy(
        hs, tuple(levels), horizon=horizon_days, method=reconcile, model=model, n_windows=n_windows
    )
    fc, bt = res.forecast, res.backtest
    meta = dict(fc.attrs.get("meta", {}))
    st.write_result("history", hs.frame(with_level=True), run_id=run_id)
    st.write_result("forecast", fc, run_id=run_id, meta=meta)
    st.write_result("backtest", bt, run_id=run_id, meta=dict(bt.attrs.get("meta", {})))
    from models.aggregate import forecast_total

    total = fc[fc["level"] == "total"]
    hist = hs.frame(with_level=True)
    hist_total = hist[hist["unique_id"].isin(total["unique_id"].unique())].sort_values("ds")
    summed = forecast_total(total, hist_total["y"]) or dict.fromkeys(
        ("cost", "lo_80", "hi_80", "lo_95", "hi_95"), 0.0
    )
    month = {"yhat": summed["cost"], **{k: v for k, v in summed.items() if k != "cost"}}
    chosen = str(fc["model"].iloc[0]) if len(fc) else model
    team_rows = bt[(bt["level"] == "team") & (bt["model"] == chosen)]
    team_wape = float(team_rows["wape"].iloc[0]) if len(team_rows) else None
    summary = {
        "series": len(hs.ids),
        "horizon_days": horizon_days,
        "model": chosen,
        "reconciliation": meta.get("reconciliation"),
        "next_30_days": {k: round(v, 2) for k, v in month.items()},
        "team_wape_pct": None if team_wape is None else round(team_wape, 2),
        "headline": (
            f"next 30 days ${month['yhat']:,.0f} (80%: ${month['lo_80']:,.0f}-"
            f"${month['hi_80']:,.0f}); {len(hs.ids)} series, {chosen}"
            + (f", team backtest WAPE {team_wape:.1f}%" if team_wape is not None else "")
        ),
    }
    return summary, res


def track(
    st: Store,
    *,
    run_id: str,
    fitted: Any,
    stage_summaries: dict[str, dict[str, Any]],
    model_name: str,
    metric: str = "wape",
    margin: float = 0.0,
    tracking_uri: str | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Log the run to MLflow, register the forecaster and promote it if it beats the champion.

    The registered pyfunc is the hierarchy's fitted base model (global over every node);
    the reconciled forecasts it was published with are logged beside it and are what
    serving answers from. The guardrail metric is the team-level backtest WAPE of the
    chosen configuration (lower is better). Tracking failures never fail the run: the
    summary says what happened and the results stay in the store.
    """
    from features.exceptions import TrackingError
    from models.registry import log_forecaster, promote_if_better
    from models.tracking import resolve_tracking_uri, tracked_run

    fc, bt, est = fitted.forecast, fitted.backtest, fitted.estimator
    chosen = str(fc["model"].iloc[0])
    mine = bt[bt["model"] == chosen]
    metrics: dict[str, float] = {}
    for row in mine.itertuples():
        for m in ("wape", "smape", "mase", "bias", "coverage_80", "coverage_95", "msis"):
            value = float(getattr(row, m))
            # An undefined secondary metric (MASE of an all-zero node) is left out rather
            # than logged as NaN, which the registry reads as a partial backtest.
            if math.isfinite(value):
                metrics[f"{m}.{row.level}"] = value
    team = mine[mine["level"] == "team"]
    if len(team):
        metrics[metric] = float(team[metric].iloc[0])
    uri = resolve_tracking_uri(tracking_uri, data_dir=data_dir)
    # The frame the forecast stage stored as ``history``, without reading it back.
    history = est.hierarchy_.frame(with_level=False)
    history.attrs["source"] = f"{st.path}#result_history/{run_id}"
    params = {
        "pipeline_run_id": run_id,
        "levels": ",".join(est.hierarchy_.levels),
        "horizon_days": int(est.horizon_),
        "base_model": est.base_name,
        "reconciliation": est.method_,
        "n_windows": int(est.n_windows),
    }
    with tracked_run(
        f"pipeline {run_id}", kind="train", tracking_uri=uri, data_dir=data_dir, params=params
    ) as tr:
        for name, sm in stage_summaries.items():
            flat = {
                f"{name}.{k}": v
                for k, v in sm.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            tr.log_metrics(flat)
        tr.log_frame(bt, "backtest.csv")
        try:
            ref = log_forecaster(
                est.base_model_,
                name=model_name,
                train_df=history,
                metrics=metrics,
                backtest=bt,
                forecasts=fc,
                params=params,
                tracking_uri=uri,
            )
            decision = promote_if_better(
                model_name, ref.version, metric=metric, margin=margin, tracking_uri=uri
            )
        except TrackingError as exc:
            # The forecasts are in the store already; only the registry step is lost.
            return {
                "tracking_uri": uri,
                "model_name": model_name,
                "tracking_failed": str(exc),
                "offline_record": str(tr.local_dir),
            }
        tr.set_tags({"forecaster.promotion": decision.reason})
    st.update_result_meta(
        "forecast", run_id, {"model_version": ref.version, "mlflow_run_id": ref.run_id}
    )
    return {
        "tracking_uri": uri,
        "model_name": model_name,
        "version": ref.version,
        "mlflow_run_id": ref.run_id,
        "promoted": decision.promoted,
        "reason": decision.reason,
        metric: metrics.get(metric),
        "offline": tr.offline,
    }


# -- right-sizing and placement ----------------------------------------------------------------
def _recommended_workloads(workloads: list[Any], recs: pd.DataFrame) -> list[Any]:
    """Workloads with their per-replica requests replaced by the right-sizing recommendation."""
    by_id = recs.set_index("workload_id")
    out = []
    for w in workloads:
        if w.name not in by_id.index:
            out.append(w)
            continue
        r = by_id.loc[w.name]
        gpu = float(r["gpu_recommended"]) if w.gpu > 0 else 0.0
        # A whole-GPU request stays whole when the recommendation rounds to the same count;
        # a fractional recommendation becomes a share (MIG or time-slicing when enabled).
        out.append(
            replace(
                w,
                cpu=max(float(r["cpu_recommended"]), 0.05),
                memory_gib=max(float(r["memory_recommended_gib"]), 0.0625),
                gpu=gpu if gpu < 1 else float(math.ceil(gpu - 1e-9)),
            )
        )
    return out


def _deployed_usd_per_month(workloads: list[Any], util: pd.DataFrame, catalog: Any) -> float:
    """On-demand cost of the capacity as deployed: each replica on a node of its current type.

    Uses the same replica counts as the plans (the chosen quantile), so the waterfall
    compares capacity with capacity.
    """
    types = util.groupby("workload_id")["instance_type"].agg(
        lambda s: s.mode().iloc[0] if s.notna().any() else None
    )
    usd = 0.0
    for w in workloads:
        itype = types.get(w.name)
        if itype is None:
            continue
        try:
            price = catalog.get(str(itype)).on_demand_usd_per_hour
        except ForecasterError:  # a type missing from the catalog contributes nothing
            continue
        usd += w.replicas * float(price) * 730.0
    return usd


def _compute_bill_per_month(st: Store, end: pd.Timestamp, days: int = 30) -> float:
    """Effective cost of instance usage over the last ``days`` days, per 730 hours."""
    start = end - pd.Timedelta(days=days)
    row = st.con.execute(
        "SELECT coalesce(sum(effective_cost), 0) FROM cost WHERE instance_type IS NOT NULL "
        "AND charge_category = 'Usage' AND ds >= ? AND ds < ?",
        [start.to_pydatetime(), end.to_pydatetime()],
    ).fetchall()
    return float(row[0][0]) * 730.0 / (days * 24.0)


def optimize(st: Store, *, run_id: str, evidence_days: int = 28) -> dict[str, Any]:
    """Right-size every workload and plan the fleet four ways for the savings waterfall.

    The waterfall is on an on-demand-equivalent basis, per month (730 h):

    ``as deployed`` (replicas on their current instance types) -> ``packed`` (the same
    requests bin-packed onto the cheapest fitting types) -> ``right-sized`` (recommended
    requests) -> ``spot`` (spot-tolerant kinds on Spot, 30 % on-demand floor for
    production) -> ``MIG / sharing`` (fractional GPU requests on MIG slices).
    """
    from optimizer.catalog import load_catalog
    from optimizer.fleet import FleetConfig, Scenario, plan, workloads_from_frame
    from optimizer.rightsizing import rightsize, risk_budgeted

    util = st.utilization_frame()
    if util.empty:
        return {"skipped": "no utilization data (run `forecaster ingest metrics ...`)"}
    util["ds"] = pd.to_datetime(util["ds"], utc=True)
    end = util["ds"].max() + pd.Timedelta(hours=1)
    start = end - pd.Timedelta(days=evidence_days)
    catalog = load_catalog()
    recs = rightsize(util, catalog, risk_budgeted(), start=start, end=end)
    st.write_result(
        "rightsizing",
        recs,
        run_id=run_id,
        meta={"policy": "risk-budgeted", "evidence_days": evidence_days},
    )
    window = util[util["ds"] >= start]
    current = workloads_from_frame(window, quantile=0.9)
    sized = _recommended_workloads(current, recs)
    base_cfg = FleetConfig(on_demand_floor=1.0, time_limit=1.0, use_mig=False)
    plans = {
        "packed": plan(current, catalog, config=base_cfg),
        "right-sized": plan(sized, catalog, config=base_cfg),
        "spot": plan(
            sized,
            catalog,
            scenario=Scenario("spot", on_demand_floor=0.3),
            config=base_cfg,
        ),
        "mig": plan(
            sized,
            catalog,
            scenario=Scenario("mig", on_demand_floor=0.3, use_mig=True),
            config=base_cfg,
        ),
    }
    deployed = _deployed_usd_per_month(current, window, catalog)
    rows = [
        {
            "policy": "as-deployed",
            "pods": int(sum(w.replicas for w in current)),
            "placed": int(sum(w.replicas for w in current)),
            "gpus_requested": float(sum(w.replicas * w.gpu for w in current)),
            "nodes_used": int(sum(w.replicas for w in current)),
            "usd_per_month": deployed,
        }
    ]
    for name, p in plans.items():
        nodes = p.nodes()
        wl = sized if name != "packed" else current
        rows.append(
            {
                "policy": name,
                "pods": int(sum(w.replicas for w in wl)),
                "placed": int(sum(w.replicas for w in wl)) - sum(n for _, n in p.unplaced),
                "gpus_requested": float(sum(w.replicas * w.gpu for w in wl)),
                "nodes_used": int(nodes["count"].sum()) if len(nodes) else 0,
                "usd_per_month": p.total_usd_per_hour * 730.0,
            }
        )
    placement = pd.DataFrame(rows).rename(columns={"usd_per_month": "capacity_usd_per_month"})
    # Plans price peak capacity (replicas at the 90th percentile while running) on demand;
    # the bill pays for what ran, at the prices actually paid. The waterfall therefore
    # applies each plan's relative change to the last 30 days' compute bill.
    bill = _compute_bill_per_month(st, end)
    scale = bill / deployed if deployed > 0 else 0.0
    placement["usd_per_month"] = placement["capacity_usd_per_month"] * scale
    st.write_result(
        "placement",
        placement,
        run_id=run_id,
        meta={
            "basis": "capacity plans (on-demand, p90 replicas) scaled to the compute bill",
            "compute_bill_usd_per_month": bill,
        },
    )
    usd = dict(zip(placement["policy"], placement["usd_per_month"], strict=True))
    deployed = usd["as-deployed"]
    steps = [
        ("placement", "packed", "bin-pack current requests onto the cheapest fitting types"),
        ("rightsizing", "right-sized", "requests from risk-budgeted usage quantiles"),
        ("spot", "spot", "spot-tolerant kinds on Spot (30% on-demand floor for production)"),
        ("mig", "mig", "fractional GPU requests on MIG slices"),
    ]
    # Each step applies only when it lowers the cost reached so far, so the waterfall
    # always ends at the cheapest plan and every bar is a real, non-negative saving.
    current_usd = deployed
    lines = []
    for kind, policy, text in steps:
        saving = max(current_usd - usd[policy], 0.0)
        if saving > 0:
            current_usd = usd[policy]
        else:
            text += " (not applied: it would not lower the cost)"
        lines.append({"kind": kind, "description": text, "usd_per_month": saving, "team": ""})
    savings = pd.DataFrame(lines)
    st.write_result(
        "savings",
        savings,
        run_id=run_id,
        meta={"baseline_usd_per_month": deployed, "final_usd_per_month": current_usd},
    )
    kpis = utilization_kpis(window, spot_kinds=("training", "pipeline"))
    kpis = kpis.drop(columns="spot_share_eligible_pct").merge(
        spot_share(st, start, end), on="team", how="left"
    )
    st.write_result("utilization_kpis", kpis, run_id=run_id)
    total = float(savings["usd_per_month"].sum())
    return {
        "workloads": len(recs),
        "rightsizing_usd_per_month": round(float(recs["saving_usd_per_month"].sum()), 2),
        "deployed_usd_per_month": round(deployed, 2),
        "optimized_usd_per_month": round(current_usd, 2),
        "savings_usd_per_month": round(total, 2),
        "savings_pct": round(100.0 * total / deployed, 1) if deployed else None,
    }


def utilization_kpis(util: pd.DataFrame, *, spot_kinds: Sequence[str]) -> pd.DataFrame:
    """Average CPU, memory and GPU utilization per team (used / requested, request-weighted).

    ``spot_share_eligible_pct`` is left empty here: the utilization frame does not say
    which replicas ran on Spot; :func:`spot_share` reads it from the cost data.
    """
    df = util.copy()
    df["team"] = df["team"].fillna("(untagged)").astype(str)

    def ratio(g: pd.DataFrame, used: str, req: str) -> float:
        r = float(g[req].sum()) if req in g else 0.0
        return 100.0 * float(g[used].sum()) / r if r > 0 else float("nan")

    rows = []
    for team, g in [*df.groupby("team", sort=True), ("(all)", df)]:
        rows.append(
            {
                "team": team,
                "cpu_util_pct": ratio(g, "cpu_used", "cpu_requested"),
                "memory_util_pct": ratio(g, "memory_used_gib", "memory_requested_gib"),
                "gpu_util_pct": ratio(g, "gpu_used", "gpu_requested"),
                "spot_eligible_workloads": int(
                    g.loc[g["kind"].isin(list(spot_kinds)), "workload_id"].nunique()
                ),
                "spot_share_eligible_pct": float("nan"),
            }
        )
    return pd.DataFrame(rows)


def spot_share(st: Store, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Spot share of the instance spend that could run on Spot, per team and ``(all)``.

    Eligible spend is instance usage bought on demand or on Spot; spend covered by a
    Savings Plan or reservation (``Committed``) is already discounted and left out.
    """
    q = (
        "SELECT coalesce(team, '(untagged)') AS team, "
        "sum(effective_cost) FILTER (WHERE pricing_category = 'Dynamic') AS spot, "
        "sum(effective_cost) AS eligible FROM cost_n WHERE instance_type IS NOT NULL "
        "AND charge_category = 'Usage' AND pricing_category IN ('Standard', 'Dynamic') "
        "AND ds >= ? AND ds < ? GROUP BY ALL"
    )
    from features.tags import create_normalised_view

    create_normalised_view(st, shared_values=())
    df = st.query(q, [start.to_pydatetime(), end.to_pydatetime()]).fillna(0.0)
    allrow = pd.DataFrame(
        {"team": ["(all)"], "spot": [df["spot"].sum()], "eligible": [df["eligible"].sum()]}
    )
    df = pd.concat([df, allrow], ignore_index=True)
    df["spot_share_eligible_pct"] = np.where(
        df["eligible"] > 0, 100.0 * df["spot"] / df["eligible"].where(df["eligible"] > 0), np.nan
    )
    return df[["team", "spot_share_eligible_pct"]]


# -- load forecasts for scaling -------------------------------------------------------------
def load_forecast(
    st: Store,
    *,
    run_id: str,
    horizon_hours: int = 48,
    history_days: int = 56,
    model: str = "lgbm",
) -> dict[str, Any]:
    """Hourly load per workload for the next ``horizon_hours`` (what scaling controllers poll).

    Load is GPUs in use for GPU workloads and vCPUs in use otherwise; one replica serves
    its per-replica request times :data:`TARGET_UTILIZATION`.
    """
    from models import make_model

    util = st.utilization_frame()
    if util.empty:
        return {"skipped": "no utilization data"}
    util["ds"] = pd.to_datetime(util["ds"], utc=True)
    end = util["ds"].max() + pd.Timedelta(hours=1)
    util = util[util["ds"] >= end - pd.Timedelta(days=history_days)]
    rows = []
    meta_rows = []
    for wid, g in util.groupby("workload_id", sort=True):
        gpu = float(g["gpu_requested"].sum()) > 0
        metric = "gpu" if gpu else "cpu"
        used = g["gpu_used" if gpu else "cpu_used"].to_numpy(dtype=float)
        req = g["gpu_requested" if gpu else "cpu_requested"].to_numpy(dtype=float)
        reps = g["replicas"].to_numpy(dtype=float)
        live = reps > 0
        per_replica = float(np.median(req[live] / reps[live])) if live.any() else 1.0
        rows.append(pd.DataFrame({"unique_id": str(wid), "ds": g["ds"], "y": used}))
        meta_rows.append(
            {
                "unique_id": str(wid),
                "metric": metric,
                "capacity_per_replica": per_replica * TARGET_UTILIZATION[metric],
                "min_replicas": int(max(np.min(reps[-168:]), 1)) if len(reps) else 1,
                "max_replicas": int(max(2 * np.max(reps), 1)) if len(reps) else 1,
            }
        )
    hist = pd.concat(rows, ignore_index=True)
    # The metrics have no row for hours a workload ran no replica: its load was zero then.
    grid = pd.date_range(hist["ds"].min(), end - pd.Timedelta(hours=1), freq="h")
    wide = hist.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="sum")
    wide = wide.reindex(grid).fillna(0.0)
    wide.index.name = "ds"
    hist = wide.reset_index().melt(id_vars="ds", var_name="unique_id", value_name="y")
    hist = hist[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"], ignore_index=True)
    meta = pd.DataFrame(meta_rows)
    fitted = make_model(model, freq="h", season_length=24).fit(hist)
    fc = fitted.predict(horizon_hours, level=(80, 95))
    # Load cannot be negative.
    for col in ("yhat", "lo_80", "hi_80", "lo_95", "hi_95"):
        fc[col] = fc[col].clip(lower=0.0)
    fc = fc.merge(meta, on="unique_id", how="left")
    st.write_result(
        "load_history", hist.merge(meta[["unique_id", "metric"]], on="unique_id"), run_id=run_id
    )
    st.write_result(
        "load_forecast",
        fc,
        run_id=run_id,
        meta={"freq": "h", "cutoff": str(end), "model_name": model, "horizon": horizon_hours},
    )
    return {"workloads": int(meta.shape[0]), "horizon_hours": horizon_hours, "model": model}


# -- detection ---------------------------------------------------------------------------------
def detect(
    st: Store,
    *,
    run_id: str,
    window_days: int = 90,
    labels_path: Path | None = None,
) -> dict[str, Any]:
    """Replay the default alert rules over the last ``window_days`` as deployment would.

    Each alert keeps the time its data was complete, so the replay gives detection
    latency. With ``labels_path`` (the demo fleet's injected anomalies), every label in
    the window is marked found or missed and every alert true or false.
    """
    from forecaster.alerts.base import evaluate_rules
    from forecaster.alerts.engine import load_context
    from forecaster.alerts.evaluation import read_labels, score_alerts
    from forecaster.alerts.policies import default_rules

    last = st.con.execute("SELECT max(ds) FROM cost").fetchall()[0][0]
    if last is None:
        return {"skipped": "no cost data"}
    as_of = pd.Timestamp(last).tz_convert("UTC").floor("h") + pd.Timedelta(hours=1)
    since = as_of - pd.Timedelta(days=window_days)
    ctx = load_context(st, as_of=as_of, since=since, history_days=window_days + 70)
    ev = evaluate_rules(default_rules(), ctx)
    alerts = list(ev.alerts)
    matched: dict[str, str] = {}
    summary: dict[str, Any] = {"alerts": len(alerts), "window_days": window_days}
    if labels_path is not None and Path(labels_path).exists():
        labels = read_labels(labels_path)
        labels = labels[(labels["start"] >= since) & (labels["start"] < as_of)]
        scored = score_alerts(alerts, labels)
        matched = dict(zip(scored.alerts["id"], scored.alerts["matched"], strict=True))
        teams = int(ctx.cost["team"].nunique()) if "team" in ctx.cost else 1
        s = scored.summary(teams=max(teams, 1), weeks=window_days / 7.0, min_impact=100.0)
        summary.update(s)
        lab = scored.labels.copy()
        keep = [
            c
            for c in (
                "anomaly_id",
                "kind",
                "start",
                "end",
                "team",
                "project",
                "workload_id",
                "expected_extra_cost",
                "found",
                "first_detection",
                "latency_h",
                "detected_by",
            )
            if c in lab.columns
        ]
        st.write_result("anomaly_labels", lab[keep], run_id=run_id)
    st.write_result(
        "anomalies",
        anomalies_frame(alerts, matched if labels_path is not None else None),
        run_id=run_id,
        meta={"since": str(since), "as_of": str(as_of)},
    )
    return summary


def anomalies_frame(alerts: Sequence[Any], matched: dict[str, str] | None) -> pd.DataFrame:
    """The ``anomalies`` result frame (``docs/results.md``) from alerts."""
    rows = []
    for a in alerts:
        causes = list(a.root_causes)[:3]
        text = " / ".join(
            f"{c.get('dimension')}={c.get('value')}"
            + (f": {float(c['delta']):+,.0f}" if c.get("delta") is not None else "")
            for c in causes
        )
        scope = dict(a.scope)
        resource = next(
            (str(c.get("value")) for c in causes if c.get("dimension") == "resource_id"), ""
        )
        label = ""
        if matched is not None:
            label = "found" if matched.get(a.id) else "false_alarm"
        rows.append(
            {
                "id": a.id,
                "rule": a.rule,
                "title": a.title,
                "severity": a.severity,
                "team": scope.get("team", ""),
                "service": scope.get("service", ""),
                "resource": resource,
                "period_start": a.period_start,
                "period_end": a.period_end,
                "detected_at": a.detected_at,
                "expected": a.expected,
                "actual": a.actual,
                "impact": a.impact,
                "score": a.probability if a.probability is not None else np.nan,
                "root_cause": text,
                "labelled": label,
            }
        )
    cols = [
        "id",
        "rule",
        "title",
        "severity",
        "team",
        "service",
        "resource",
        "period_start",
        "period_end",
        "detected_at",
        "expected",
        "actual",
        "impact",
        "score",
        "root_cause",
        "labelled",
    ]
    return pd.DataFrame(rows, columns=cols)


# -- scenarios and report ---------------------------------------------------------------------
def scenarios(
    st: Store, *, run_id: str, paths: Sequence[Path], horizon_months: int = 6
) -> dict[str, Any]:
    """Run the capacity planner's scenario files beside the baseline and store them."""
    from forecaster.scenarios_io import baseline_from_store, save_results
    from optimizer.scenarios import baseline_result, load_scenario, run_scenario

    specs = [load_scenario(p) for p in paths]
    base = baseline_from_store(st)
    results = [baseline_result(base, horizon_months=horizon_months)]
    results += [run_scenario(spec, base) for spec in specs]
    save_results(st, results, run_id=run_id)
    totals = {r.name: float(r.monthly["cost"].sum()) for r in results}
    base_total = totals["baseline"]
    return {
        "scenarios": [r.name for r in results],
        "horizon_months": horizon_months,
        "cost": {k: round(v, 2) for k, v in totals.items()},
        "vs_baseline_pct": {
            k: round(100.0 * (v - base_total) / base_total, 1) if base_total else None
            for k, v in totals.items()
            if k != "baseline"
        },
    }


def report(
    st: Store,
    *,
    path: Path,
    required_tags: Sequence[str],
    shared_values: Sequence[str],
    tables_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the self-contained HTML report (and the Markdown/CSV tables when asked)."""
    from forecaster.report import collect_report_inputs, export_tables, render_report

    inputs = collect_report_inputs(st, required_tags=required_tags, shared_values=shared_values)
    out = render_report(inputs, path)
    summary: dict[str, Any] = {"report": str(out), "bytes": out.stat().st_size}
    if tables_dir is not None:
        export_tables(inputs, tables_dir)
        summary["tables"] = str(tables_dir)
    return summary
