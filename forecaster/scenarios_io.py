"""Build a scenario baseline (:class:`optimizer.scenarios.BaselineInputs`) from a store.

The optimizer never reads the store or the pipeline's results itself (layering); this
module does, and hands it plain frames:

* the per-team and total **monthly forecast** with 80/95 % intervals, from the ``forecast``
  result (daily, reconciled) plus the ``history`` result for the days of the first month
  already observed. Without a ``forecast`` result a naive baseline (the last 28 days'
  mean with normal intervals) is used and a note says so;
* today's **fleet** from the ``utilization`` table (last ``window_days``): replicas at the
  90th percentile, per-replica requests, and recommendations (the ``rightsizing`` result
  when stored, else p95 usage plus headroom);
* today's **Spot share** of the Spot-eligible workload classes, from the billed spend.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, StoreError
from features.store import Store
from models.aggregate import ar1_phi, sum_forecast
from optimizer.catalog import Catalog, load_catalog
from optimizer.scenarios import QUANTILES, WORKLOAD_COLUMNS, BaselineInputs, ScenarioResult

#: Workload classes that may run on Spot today (interruptible work).
SPOT_ELIGIBLE_KINDS: tuple[str, ...] = ("training", "pipeline", "batch")


def team_of(unique_id: object) -> str:
    """The team name in a team-level series id (``nlp``, ``team=nlp``, ``total/nlp``)."""
    return str(unique_id).rsplit("/", 1)[-1].split("=", 1)[-1]


def monthly_from_daily(
    forecast: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    min_days: int = 7,
    phi: float | None = None,
) -> pd.DataFrame:
    """Monthly sums of a daily forecast, completed with the observed days of each month.

    Parameters
    ----------
    forecast : pandas.DataFrame
        ``unique_id, ds, yhat, lo_80, hi_80, lo_95, hi_95`` (daily, UTC).
    history : pandas.DataFrame, optional
        ``unique_id, ds, y``: actuals added to the months the forecast starts in.
    min_days : int
        A month with fewer forecast days is dropped (unless it is the only one).
    phi : float, optional
        Dependence of the days' errors (see :func:`sum_forecast`); default: estimated
        per series from ``history`` with :func:`ar1_phi` (0.5 without history).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, month, cost, lo_80, hi_80, lo_95, hi_95``. A month the forecast
        covers only in part is scaled to the whole month.
    """
    fc = forecast.copy()
    fc["ds"] = pd.to_datetime(fc["ds"], utc=True)
    fc["month"] = (
        fc["ds"].dt.tz_localize(None).dt.to_period("M").dt.to_timestamp().dt.tz_localize("UTC")
    )
    rows = []
    phis: dict[object, float] = {}
    for uid in fc["unique_id"].unique():
        if phi is not None:
            phis[uid] = phi
        elif history is not None and not history.empty:
            h = history[history["unique_id"] == uid].sort_values("ds")
            phis[uid] = ar1_phi(h["y"].tail(120))
        else:
            phis[uid] = 0.5
    for (uid, month), g in fc.groupby(["unique_id", "month"], sort=True):
        days = int(g["ds"].dt.normalize().nunique())
        in_month = pd.Timestamp(month).days_in_month
        actual = 0.0
        actual_days = 0
        if history is not None and not history.empty:
            h = history[(history["unique_id"] == uid)]
            hds = pd.to_datetime(h["ds"], utc=True)
            sel = (hds >= month) & (hds < g["ds"].min())
            actual = float(h.loc[sel.to_numpy(), "y"].sum())
            actual_days = int(hds[sel].dt.normalize().nunique())
        rest = max(in_month - actual_days, 0)
        scale = rest / days if days else 0.0
        row: dict[str, Any] = {"unique_id": uid, "month": month, "_days": days}
        summed = sum_forecast(g, phis[uid])
        for q in QUANTILES:
            row[q] = actual + summed[q] * scale
        rows.append(row)
    out = pd.DataFrame(rows, columns=["unique_id", "month", "_days", *QUANTILES])
    if out["month"].nunique() > 1:
        out = out[out["_days"] >= min_days]
    return out.drop(columns="_days").reset_index(drop=True)


def _naive_monthly(daily: pd.DataFrame, months: int) -> pd.DataFrame:
    """Flat forecast: the last 28 days' mean, normal intervals growing like a random walk."""
    rows = []
    z80, z95 = NormalDist().inv_cdf(0.9), NormalDist().inv_cdf(0.975)
    for uid, g in daily.groupby("unique_id", sort=True):
        g = g.sort_values("ds")
        last = pd.Timestamp(g["ds"].max())
        mean = float(g["y"].tail(28).mean())
        sd = float(g["y"].tail(56).std(ddof=1)) if len(g) > 2 else abs(mean) * 0.2
        sd = sd if math.isfinite(sd) else abs(mean) * 0.2
        start = (last.tz_localize(None).to_period("M") + 1).to_timestamp().tz_localize("UTC")
        for k in range(months):
            m = start + pd.DateOffset(months=k)
            n = m.days_in_month
            c = mean * n
            w = sd * math.sqrt(n) * math.sqrt(k + 1)
            rows.append(
                {
                    "unique_id": uid,
                    "month": m,
                    "cost": c,
                    "lo_80": max(c - z80 * w, 0.0),
                    "hi_80": c + z80 * w,
                    "lo_95": max(c - z95 * w, 0.0),
                    "hi_95": c + z95 * w,
                }
            )
    return pd.DataFrame(rows, columns=["unique_id", "month", *QUANTILES])


def _daily_from_cost(store: Store) -> pd.DataFrame:
    """Daily spend per team (``unique_id = team``) and ``total`` from the raw cost table."""
    from features.tags import showback

    sb = showback(store, ["team"], period="day")
    team = sb.rename(columns={"period": "ds", "team": "unique_id", "total_cost": "y"})[
        ["unique_id", "ds", "y"]
    ].assign(level="team")
    total = sb.groupby("period", as_index=False)["total_cost"].sum()
    total = total.rename(columns={"period": "ds", "total_cost": "y"}).assign(
        unique_id="total", level="total"
    )
    return pd.concat([team, total], ignore_index=True)


def _fleet(store: Store, catalog: Catalog, window_days: int) -> pd.DataFrame:
    """Today's workloads (:data:`optimizer.scenarios.WORKLOAD_COLUMNS`)."""
    df = store.query(
        """
        WITH w AS (SELECT * FROM utilization
                   WHERE ds > (SELECT max(ds) FROM utilization) - to_days(CAST(? AS INTEGER))
                     AND replicas > 0)
        SELECT workload_id,
               coalesce(mode(team), '') AS team,
               coalesce(mode(kind), '') AS kind,
               coalesce(mode(instance_type), '') AS instance_type,
               quantile_cont(replicas, 0.9) AS replicas,
               sum(cpu_requested) / sum(replicas) AS cpu,
               sum(memory_requested_gib) / sum(replicas) AS memory_gib,
               sum(gpu_requested) / sum(replicas) AS gpu,
               quantile_cont(gpu_memory_used_gib / replicas, 0.95) AS gpu_memory_gib,
               quantile_cont(cpu_used / replicas, 0.95) * 1.15 AS cpu_recommended,
               quantile_cont(memory_used_gib / replicas, 0.95) * 1.2 AS memory_recommended_gib,
               quantile_cont(gpu_used / replicas, 0.95) AS gpu_recommended
        FROM w GROUP BY workload_id ORDER BY workload_id
        """,
        [int(window_days)],
    )
    if df.empty:
        return pd.DataFrame(columns=list(WORKLOAD_COLUMNS))
    df["replicas"] = np.ceil(df["replicas"].astype(float) - 1e-9).astype(int)
    df["gpu"] = df["gpu"].astype(float).round(3)
    df["gpu_model"] = [
        catalog.get(t).gpu_model if t in catalog else "" for t in df["instance_type"]
    ]
    df["production"] = df["workload_id"].str.contains("prod")
    try:
        rs = store.read_result("rightsizing")
    except StoreError:
        rs = None
    if rs is not None and not rs.empty:
        rec = rs.drop_duplicates("workload_id").set_index("workload_id")
        for col in ("cpu_recommended", "memory_recommended_gib", "gpu_recommended"):
            if col in rec:
                got = pd.to_numeric(df["workload_id"].map(rec[col]), errors="coerce")
                df[col] = got.where(got.notna(), df[col])
    return df[list(WORKLOAD_COLUMNS)]


def _spot_share(
    store: Store, fleet: pd.DataFrame, catalog: Catalog, window_days: int
) -> dict[str, float]:
    """Today's Spot share per eligible class: the fleet's Spot share of compute spend,
    carried by the eligible classes in proportion to their (list-price) cost."""
    got = store.query(
        "SELECT purchase_option, sum(effective_cost) AS c FROM cost WHERE charge_category = "
        "'Usage' AND purchase_option IN ('spot', 'on_demand', 'committed') AND ds > "
        "(SELECT max(ds) FROM cost) - to_days(CAST(? AS INTEGER)) GROUP BY 1",
        [int(window_days)],
    )
    total = float(got["c"].sum())
    spot = float(got.loc[got["purchase_option"] == "spot", "c"].sum())
    if total <= 0 or fleet.empty:
        return {}

    def cost(r: pd.Series) -> float:
        if r["instance_type"] not in catalog:
            return 0.0
        it = catalog.get(str(r["instance_type"]))
        per_node = max(
            float(r["gpu"]) / it.gpus if it.gpus else 0.0, float(r["cpu"]) / max(it.vcpu, 1)
        )
        return it.on_demand_usd_per_hour * per_node * float(r["replicas"])

    w = fleet.apply(cost, axis=1)
    eligible = float(w[fleet["kind"].isin(SPOT_ELIGIBLE_KINDS)].sum())
    fleet_cost = float(w.sum())
    if eligible <= 0 or fleet_cost <= 0:
        return {}
    share = min(spot / total * fleet_cost / eligible, 1.0)
    return {k: round(share, 3) for k in SPOT_ELIGIBLE_KINDS}


def _billing(store: Store, window_days: int) -> tuple[dict[str, float], float | None, float]:
    """Per team compute share of spend; on-demand compute USD/h and share of compute."""
    from features.tags import create_normalised_view

    create_normalised_view(store, shared_values=())
    win = "ds > (SELECT max(ds) FROM cost) - to_days(CAST(? AS INTEGER))"
    teams = store.query(
        "SELECT team, sum(effective_cost) FILTER (WHERE instance_type IS NOT NULL AND "
        "charge_category = 'Usage') AS compute, sum(effective_cost) AS total FROM cost_n "
        f"WHERE {win} AND team IS NOT NULL GROUP BY 1",
        [int(window_days)],
    )
    share = {
        str(r.team): float(np.clip((r.compute or 0.0) / r.total, 0.0, 1.0))
        for r in teams.itertuples()
        if r.total and r.total > 0
    }
    po = store.query(
        "SELECT purchase_option, sum(effective_cost) AS c, "
        "(epoch(max(ds)) - epoch(min(ds))) / 3600 + 1 AS hours FROM cost "
        f"WHERE {win} AND instance_type IS NOT NULL AND charge_category = 'Usage' GROUP BY 1",
        [int(window_days)],
    )
    compute = float(po["c"].sum())
    if compute <= 0:
        return share, None, 1.0
    od = float(po.loc[po["purchase_option"] == "on_demand", "c"].sum())
    hours = float(po["hours"].max())
    return share, od / hours, od / compute


def baseline_from_store(
    store: Store,
    *,
    catalog: Catalog | None = None,
    window_days: int = 28,
    naive_months: int = 3,
) -> BaselineInputs:
    """The scenario baseline: monthly forecast per team and total, today's fleet.

    Parameters
    ----------
    store : Store
        A store with ingested ``cost`` (and ideally ``utilization``, ``forecast`` and
        ``history`` results).
    catalog : Catalog, optional
    window_days : int
        Days of utilization and billing that describe today's fleet.
    naive_months : int
        Months of the naive baseline used when no ``forecast`` result is stored.

    Raises
    ------
    StoreError
        When the store has no cost data at all.
    """
    if window_days < 1:
        raise ConfigError(f"parameter window_days must be >= 1, got {window_days!r}")
    catalog = catalog if catalog is not None else load_catalog()
    notes: list[str] = []
    try:
        fc = store.read_result("forecast")
        info = store.result_info("forecast")
        model = info["meta"].get("model_name") or (
            str(fc["model"].iloc[0]) if "model" in fc and len(fc) else "?"
        )
        notes.append(f"baseline: stored forecast of run {info['run_id']} (model {model})")
    except StoreError:
        fc = None
    try:
        hist: pd.DataFrame | None = store.read_result("history")
    except StoreError:
        hist = None
    if fc is not None and not fc.empty:
        team_fc = fc[fc["level"] == "team"]
        tot_fc = fc[fc["level"] == "total"]
        team_h = hist[hist["level"] == "team"] if hist is not None else None
        tot_h = hist[hist["level"] == "total"] if hist is not None else None
        team_m = monthly_from_daily(team_fc, team_h)
        if tot_fc.empty:
            tot_m = team_m.groupby("month", as_index=False)[list(QUANTILES)].sum()
            notes.append("baseline: no total-level forecast; total = sum of team quantiles")
        else:
            tot_m = monthly_from_daily(tot_fc, tot_h).drop(columns="unique_id")
    else:
        daily = hist if hist is not None and not hist.empty else None
        if daily is None:
            n = store.query("SELECT count(*) AS n FROM cost")["n"].iloc[0]
            if not n:
                raise StoreError(f"store {store.path} has no cost data; run `forecaster ingest`")
            daily = _daily_from_cost(store)
        nm = _naive_monthly(daily[daily["level"].isin(["team", "total"])], naive_months)
        lvl = daily.drop_duplicates("unique_id").set_index("unique_id")["level"]
        team_m = nm[nm["unique_id"].map(lvl) == "team"]
        tot_m = nm[nm["unique_id"].map(lvl) == "total"].drop(columns="unique_id")
        notes.append(
            "baseline: no `forecast` result in the store (run `forecaster run` or the demo "
            "pipeline); a naive flat forecast of the last 28 days is used"
        )
    team_m = team_m.assign(team=[team_of(u) for u in team_m["unique_id"]])
    team_m = team_m[["team", "month", *QUANTILES]].reset_index(drop=True)
    fleet = _fleet(store, catalog, window_days)
    if fleet.empty:
        notes.append("baseline: no utilization data; capacity and unit-cost drivers are empty")
    spot = _spot_share(store, fleet, catalog, window_days)
    compute_share, od_per_hour, od_share = _billing(store, window_days)
    return BaselineInputs(
        team_monthly=team_m,
        total_monthly=tot_m[["month", *QUANTILES]].reset_index(drop=True),
        workloads=fleet,
        spot_share=spot,
        compute_share=compute_share,
        on_demand_usd_per_hour=od_per_hour,
        on_demand_share=od_share,
        notes=tuple(notes),
    )


def save_results(store: Store, results: Sequence[ScenarioResult], run_id: str | None = None) -> str:
    """Store ``scenario_monthly`` and ``scenario_capacity`` (docs/results.md); return the run id.

    ``results`` usually starts with :func:`optimizer.scenarios.baseline_result`, so the
    report shows the baseline beside the scenarios. ``meta`` holds each one's summary.
    """
    rid = run_id or f"scenario-{uuid.uuid4().hex[:8]}"
    monthly = pd.concat([r.monthly for r in results], ignore_index=True)
    capacity = pd.concat([r.capacity for r in results], ignore_index=True)
    meta = {"scenarios": [r.name for r in results], "summaries": [r.summary for r in results]}
    store.write_result("scenario_monthly", monthly, run_id=rid, meta=meta)
    store.write_result("scenario_capacity", capacity, run_id=rid, meta=meta)
    return rid
