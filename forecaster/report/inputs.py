"""Everything the report shows, read from the store once: :func:`collect_report_inputs`.

Each pipeline result (docs/results.md) is optional. A missing one leaves its section with
a notice naming the result and the command that writes it. Where the raw ``cost`` and
``utilization`` tables can stand in (history, showback, tag coverage, utilization), the
report computes the figure from them and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.exceptions import ForecasterError, StoreError
from features.store import Store

#: Results the report reads, and the command that writes each.
RESULTS: dict[str, str] = {
    "history": "`forecaster run` (or `forecaster demo`)",
    "forecast": "`forecaster run` (or `forecaster demo`)",
    "backtest": "`forecaster run` (or `forecaster backtest`)",
    "anomalies": "`forecaster run` (or `forecaster detect`)",
    "rightsizing": "`forecaster run` (or `forecaster rightsize`)",
    "savings": "`forecaster run` (or `forecaster demo`)",
    "placement": "`forecaster run` (or `forecaster place`)",
    "utilization_kpis": "`forecaster run` (or `forecaster demo`)",
    "showback": "`forecaster run` (or `forecaster demo`)",
    "tag_coverage": "`forecaster run` (or `forecaster demo`)",
    "scenario_monthly": "`forecaster scenario compare A.yaml B.yaml --save`",
    "scenario_capacity": "`forecaster scenario compare A.yaml B.yaml --save`",
}


@dataclass(frozen=True)
class KpiTargets:
    """FinOps roadmap targets the KPIs are measured against (percent).

    ``cost_reduction_pct`` has no default target: the report shows the potential found
    without judging it unless one is given.
    """

    cpu_util_pct: float = 70.0
    memory_util_pct: float = 80.0
    gpu_util_pct: float = 90.0
    spot_share_eligible_pct: float = 60.0
    tag_coverage_pct: float = 100.0
    forecast_accuracy_pct: float = 85.0
    cost_reduction_pct: float | None = None


@dataclass(frozen=True)
class Kpi:
    """One KPI against its target; ``value`` is None when it cannot be computed."""

    key: str
    label: str
    value: float | None
    target: float | None
    source: str
    missing: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target - 1e-9

    def as_row(self) -> dict[str, Any]:
        return {
            "kpi": self.label,
            "value_pct": None if self.value is None else round(self.value, 1),
            "target_pct": self.target,
            "met": {True: "yes", False: "no", None: ""}[self.met],
            "source": self.source if self.value is not None else self.missing,
        }


@dataclass
class ReportInputs:
    """What :func:`forecaster.report.render_report` draws.

    Attributes
    ----------
    results : dict of str to DataFrame
        Stored results found (docs/results.md), or their stand-ins from raw tables.
    meta : dict of str to dict
        ``meta`` of each stored result.
    missing : dict of str to str
        Result name -> why it is absent and which command produces it.
    derived : dict of str to str
        Result name -> how it was computed from raw tables instead.
    untagged : DataFrame, optional
        ``service, account, untagged_spend, share_pct`` (spend missing a required tag).
    untagged_spend, tagged_total : float
    required_tags : list of str
    data : dict
        ``cost_rows``, ``first_day``, ``last_day``, ``days`` of the cost table.
    warnings : list of str
        Data problems the reader should know (one day of data, no tags, ...).
    """

    store_path: str
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)
    untagged: pd.DataFrame | None = None
    untagged_spend: float = 0.0
    tagged_total: float = 0.0
    required_tags: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    targets: KpiTargets = field(default_factory=KpiTargets)
    generated_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))

    def get(self, name: str) -> pd.DataFrame | None:
        """A result frame, or None when missing or empty."""
        df = self.results.get(name)
        return df if df is not None and not df.empty else None

    def why_missing(self, *names: str) -> str:
        """One sentence per missing name (empty when all are present)."""
        parts = []
        for n in names:
            if self.get(n) is None:
                parts.append(self.missing.get(n) or f"no `{n}` result; run {RESULTS.get(n, '')}")
        return " ".join(parts)


def _read(store: Store, inputs: ReportInputs, name: str) -> None:
    try:
        df = store.read_result(name)
        inputs.meta[name] = store.result_info(name)["meta"]
    except StoreError:
        inputs.missing[name] = f"No `{name}` result in the store; {RESULTS[name]} writes it."
        return
    if df.empty:
        inputs.missing[name] = f"The `{name}` result is empty; {RESULTS[name]} writes it."
        return
    for col in ("ds", "month", "period_start", "period_end", "detected_at"):
        if col in df:
            df[col] = pd.to_datetime(df[col], utc=True)
    inputs.results[name] = df


def _cost_facts(store: Store) -> dict[str, Any]:
    row = store.query(
        "SELECT count(*) AS n, min(ds) AS first, max(ds) AS last, "
        "count(DISTINCT CAST(ds AS DATE)) AS days, coalesce(sum(effective_cost), 0) AS spend "
        "FROM cost"
    ).iloc[0]
    return {
        "cost_rows": int(row["n"]),
        "first_day": None if pd.isna(row["first"]) else pd.Timestamp(row["first"]),
        "last_day": None if pd.isna(row["last"]) else pd.Timestamp(row["last"]),
        "days": int(row["days"]),
        "spend": float(row["spend"]),
    }


def _history_from_cost(store: Store) -> pd.DataFrame:
    df = store.query(
        "SELECT date_trunc('day', ds) AS ds, sum(effective_cost) AS y FROM cost GROUP BY 1 "
        "ORDER BY 1"
    )
    df["ds"] = pd.to_datetime(df["ds"], utc=True)
    return df.assign(level="total", unique_id="total")[["level", "unique_id", "ds", "y"]]


def _utilization_from_raw(store: Store) -> pd.DataFrame:
    """Per-team request-weighted utilization of the last 28 days (percent).

    The same figures as the pipeline's ``utilization_kpis`` (:func:`forecaster.stages.
    utilization_kpis`), per team only: the fleet value stays the mean over teams.
    """
    from forecaster.stages import utilization_kpis

    util = store.utilization_frame()
    util["ds"] = pd.to_datetime(util["ds"], utc=True)
    window = util[util["ds"] > util["ds"].max() - pd.Timedelta(days=28)]
    kpis = utilization_kpis(window, spot_kinds=())
    return kpis[kpis["team"] != "(all)"].reset_index(drop=True)


def collect_report_inputs(
    store: Store,
    *,
    required_tags: Sequence[str] | None = None,
    shared_values: Sequence[str] | None = None,
    targets: KpiTargets | None = None,
) -> ReportInputs:
    """Read every result the report needs; tolerate any of them missing.

    Parameters
    ----------
    store : Store
        The store (read-only is enough).
    required_tags : sequence of str, optional
        Tags spend must carry (default: the settings' ``required_tags``).
    shared_values : sequence of str, optional
        Tag values treated as shared spend in showback (default: the settings').
    targets : KpiTargets, optional

    Returns
    -------
    ReportInputs
    """
    from features.tags import DEFAULT_REQUIRED_TAGS, showback, tag_coverage

    inputs = ReportInputs(store_path=str(store.path), targets=targets or KpiTargets())
    inputs.required_tags = list(required_tags or DEFAULT_REQUIRED_TAGS)
    for name in RESULTS:
        _read(store, inputs, name)
    inputs.data = _cost_facts(store)
    has_cost = inputs.data["cost_rows"] > 0
    if not has_cost:
        inputs.warnings.append(
            "The store holds no cost data: ingest billing exports first "
            "(`forecaster ingest focus|cur PATH`, or `forecaster demo`)."
        )
    elif inputs.data["days"] < 2:
        inputs.warnings.append(
            f"Only {inputs.data['days']} day of cost data: trends, forecasts and anomalies "
            "need history (at least a few weeks); figures below describe that single day."
        )
    if has_cost:
        if "history" not in inputs.results:
            inputs.results["history"] = _history_from_cost(store)
            inputs.derived["history"] = "daily total spend summed from the cost table"
        try:
            cov = tag_coverage(store, inputs.required_tags)
            inputs.untagged = cov.untagged_by
            inputs.untagged_spend = cov.untagged_spend
            inputs.tagged_total = cov.total_spend
            if "tag_coverage" not in inputs.results:
                per = cov.per_tag.rename(columns={"tagged_spend": "covered_spend"})
                per["total_spend"] = cov.total_spend
                inputs.results["tag_coverage"] = per[
                    ["tag", "covered_spend", "total_spend", "coverage_pct"]
                ]
                inputs.meta["tag_coverage"] = {"fully_tagged_pct": cov.fully_tagged_pct}
                inputs.derived["tag_coverage"] = "computed from the cost table"
            if cov.total_spend > 0 and cov.fully_tagged_spend <= 0:
                inputs.warnings.append(
                    "No spend carries all required tags ("
                    + ", ".join(inputs.required_tags)
                    + "): showback by team is all unallocated and per-team views are empty; "
                    "tag resources or map tags with `forecaster tags`."
                )
        except ForecasterError as exc:
            inputs.warnings.append(f"Tag coverage could not be computed: {exc}")
        if "showback" not in inputs.results:
            try:
                sb = showback(store, ["team"], period="month", **_shared(shared_values))
                sb = sb.rename(
                    columns={
                        "period": "month",
                        "direct_cost": "effective_cost",
                    }
                )[["team", "month", "effective_cost", "shared_cost", "total_cost"]]
                inputs.results["showback"] = sb
                inputs.derived["showback"] = "computed from the cost table (tags normalised)"
            except ForecasterError as exc:
                inputs.warnings.append(f"Showback could not be computed: {exc}")
    if "utilization_kpis" not in inputs.results:
        n = store.query("SELECT count(*) AS n FROM utilization")["n"].iloc[0]
        if n:
            inputs.results["utilization_kpis"] = _utilization_from_raw(store)
            inputs.derived["utilization_kpis"] = (
                "request-weighted utilization of the last 28 days from the utilization table "
                "(Spot share needs the `utilization_kpis` result)"
            )
    for name in list(inputs.derived):
        inputs.missing.pop(name, None)
    return inputs


def _shared(values: Sequence[str] | None) -> dict[str, Any]:
    return {} if values is None else {"shared_values": list(values)}


# -- figures derived from the inputs ----------------------------------------------------------
def monthly_spend(inputs: ReportInputs) -> float | None:
    """Spend of the last 30 days of the total history, per month (30.4 days)."""
    hist = inputs.get("history")
    if hist is None:
        return None
    tot = hist[hist["level"] == "total"] if "level" in hist else hist
    if tot.empty:
        return None
    last = tot["ds"].max()
    recent = tot[tot["ds"] > last - pd.Timedelta(days=30)]
    days = max(recent["ds"].dt.normalize().nunique(), 1)
    return float(recent["y"].sum()) / days * 30.4


def series_of(df: pd.DataFrame | None, level: str, name: str) -> pd.DataFrame | None:
    """Rows of one series: ``level`` and its name (``nlp`` matches ``team=nlp``)."""
    from forecaster.scenarios_io import team_of

    if df is None:
        return None
    lv = df["level"] if "level" in df else pd.Series(level, index=df.index)
    ids = df["unique_id"].astype(str)
    names = ids.map(team_of) if level == "team" else ids
    return df[(lv == level).to_numpy() & (names == name).to_numpy()]


def team_names(forecast: pd.DataFrame | None) -> list[str]:
    """Team names of the team-level series of a forecast (``team=nlp`` -> ``nlp``)."""
    from forecaster.scenarios_io import team_of

    if forecast is None or "level" not in forecast:
        return []
    return sorted({team_of(u) for u in forecast.loc[forecast["level"] == "team", "unique_id"]})


def next_30_days(inputs: ReportInputs, level: str, unique_id: str) -> dict[str, float] | None:
    """Forecast sum of the first 30 days of one series with 80/95 % intervals of the sum.

    The one rule of :func:`models.aggregate.forecast_total` (the pipeline's headline uses
    it too): days' errors summed as AR(1) with the series' own history autocorrelation.
    """
    from models.aggregate import forecast_total

    fc = inputs.get("forecast")
    if fc is None:
        return None
    f = series_of(fc, level, unique_id)
    if f is None or f.empty:
        return None
    hist = inputs.get("history")
    y = None
    if hist is not None:
        h = series_of(hist, level, unique_id)
        if h is not None and not h.empty:
            y = h.sort_values("ds")["y"]
    return forecast_total(f, y)


def _fleet_pct(df: pd.DataFrame, col: str) -> float | None:
    if col not in df:
        return None
    total = df[df["team"].astype(str).str.lower().isin(["total", "all", "(all)", "fleet"])]
    src = total if not total.empty else df
    vals = pd.to_numeric(src[col], errors="coerce").dropna()
    return float(vals.mean()) if len(vals) else None


def forecast_accuracy(inputs: ReportInputs) -> float | None:
    """100 - WAPE (%) of the best model at the total level (else any level)."""
    bt = inputs.get("backtest")
    if bt is None or "wape" not in bt:
        return None
    sub = bt[bt["level"] == "total"] if "level" in bt and (bt["level"] == "total").any() else bt
    per_model = sub.groupby("model")["wape"].mean().dropna()
    if per_model.empty:
        return None
    # WAPE in percent, as models.metrics.wape computes it.
    return max(100.0 - float(per_model.min()), 0.0)


def kpis(inputs: ReportInputs) -> list[Kpi]:
    """The roadmap KPIs against their targets (value None where it cannot be computed)."""
    t = inputs.targets
    out: list[Kpi] = []
    sav = inputs.get("savings")
    spend = monthly_spend(inputs)
    if sav is not None and spend:
        val: float | None = 100.0 * float(sav["usd_per_month"].sum()) / spend
    else:
        val = None
    out.append(
        Kpi(
            "cost_reduction_pct",
            "Cost reduction potential",
            val,
            t.cost_reduction_pct,
            "savings identified / last 30 days' spend",
            inputs.why_missing("savings") or "no spend history",
        )
    )
    util = inputs.get("utilization_kpis")
    src = "utilization_kpis" + (" (derived)" if "utilization_kpis" in inputs.derived else "")
    miss = inputs.why_missing("utilization_kpis") or "no utilization data"
    for key, label, target in (
        ("cpu_util_pct", "Average CPU utilization", t.cpu_util_pct),
        ("memory_util_pct", "Average memory utilization", t.memory_util_pct),
        ("gpu_util_pct", "GPU utilization", t.gpu_util_pct),
        ("spot_share_eligible_pct", "Spot share of eligible workloads", t.spot_share_eligible_pct),
    ):
        v = _fleet_pct(util, key) if util is not None else None
        why = miss if util is None else f"`utilization_kpis` has no {key} values"
        out.append(Kpi(key, label, v, target, src, why if v is None else ""))
    tc = inputs.get("tag_coverage")
    cov = inputs.meta.get("tag_coverage", {}).get("fully_tagged_pct")
    if cov is None and tc is not None:
        cov = float(tc["coverage_pct"].min())
    out.append(
        Kpi(
            "tag_coverage_pct",
            "Tag coverage (spend with every required tag)",
            None if cov is None else float(cov),
            t.tag_coverage_pct,
            "tag_coverage",
            inputs.why_missing("tag_coverage") or "no cost data",
        )
    )
    out.append(
        Kpi(
            "forecast_accuracy_pct",
            "Forecast accuracy (100 - WAPE)",
            forecast_accuracy(inputs),
            t.forecast_accuracy_pct,
            "backtest, best model at the total level",
            inputs.why_missing("backtest"),
        )
    )
    return out


def _team_names(inputs: ReportInputs) -> list[str]:
    names: set[str] = set()
    fc = inputs.get("forecast")
    if fc is not None:
        names |= set(team_names(fc))
    sb = inputs.get("showback")
    if sb is not None:
        names |= {str(t) for t in sb["team"].dropna() if str(t) != "(unallocated)"}
    return sorted(names)


def scorecards(inputs: ReportInputs) -> pd.DataFrame:
    """One row per team: spend, forecast, utilization, anomalies, savings."""
    teams = _team_names(inputs)
    rows = []
    sb = inputs.get("showback")
    fc = inputs.get("forecast")
    util = inputs.get("utilization_kpis")
    an = inputs.get("anomalies")
    sav = inputs.get("savings")
    last_month = sb["month"].max() if sb is not None else None
    for team in teams:
        row: dict[str, Any] = {"team": team}
        if sb is not None:
            cur = sb[(sb["team"] == team) & (sb["month"] == last_month)]
            row["last_month_cost"] = float(cur["total_cost"].sum())
        if fc is not None:
            s30 = next_30_days(inputs, "team", team)
            row["next_30d_forecast"] = None if s30 is None else s30["cost"]
            row["next_30d_hi_80"] = None if s30 is None else s30["hi_80"]
        if util is not None:
            u = util[util["team"].astype(str) == team]
            for col in ("cpu_util_pct", "memory_util_pct", "gpu_util_pct"):
                if col in u and not u.empty and pd.notna(u[col].iloc[0]):
                    row[col] = float(u[col].iloc[0])
        if an is not None:
            a = an[an["team"].astype(str) == team]
            row["anomalies"] = len(a)
            row["anomaly_impact"] = float(a["impact"].sum()) if len(a) else 0.0
        if sav is not None:
            s = sav[sav["team"].astype(str) == team]
            row["savings_per_month"] = float(s["usd_per_month"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def report_tables(inputs: ReportInputs) -> dict[str, pd.DataFrame]:
    """The report's tables, by file stem (also the Markdown/CSV export)."""
    tables: dict[str, pd.DataFrame] = {}
    tables["kpis"] = pd.DataFrame([k.as_row() for k in kpis(inputs)])
    sb = inputs.get("showback")
    if sb is not None:
        piv = sb.assign(month=sb["month"].dt.strftime("%Y-%m")).pivot_table(
            index="team", columns="month", values="total_cost", aggfunc="sum", fill_value=0.0
        )
        piv = piv[sorted(piv.columns)[-6:]]
        piv["total"] = piv.sum(axis=1)
        tables["showback"] = piv.sort_values("total", ascending=False).reset_index()
    if inputs.untagged is not None:
        tables["untagged_spend"] = inputs.untagged.head(25).reset_index(drop=True)
    an = inputs.get("anomalies")
    if an is not None:
        cols = [
            c
            for c in ("period_start", "severity", "team", "title", "impact", "root_cause")
            if c in an
        ]
        tables["top_anomalies"] = (
            an.sort_values("impact", ascending=False)[cols].head(15).reset_index(drop=True)
        )
    rs = inputs.get("rightsizing")
    if rs is not None:
        cols = [
            c
            for c in (
                "workload_id",
                "kind",
                "instance_type",
                "cpu_request",
                "cpu_recommended",
                "memory_request_gib",
                "memory_recommended_gib",
                "gpu_recommendation",
                "risk",
                "saving_usd_per_month",
            )
            if c in rs
        ]
        tables["top_rightsizing"] = (
            rs.sort_values("saving_usd_per_month", ascending=False)[cols]
            .head(15)
            .reset_index(drop=True)
        )
    sav = inputs.get("savings")
    if sav is not None:
        tables["savings"] = (
            sav.groupby("kind", as_index=False)["usd_per_month"]
            .sum()
            .sort_values("usd_per_month", ascending=False)
            .reset_index(drop=True)
        )
    sc = scorecards(inputs)
    if not sc.empty:
        tables["scorecards"] = sc
    sm = inputs.get("scenario_monthly")
    if sm is not None:
        tot = sm.groupby("scenario", sort=False)[["cost", "lo_80", "hi_80"]].sum().reset_index()
        base = tot.loc[tot["scenario"] == "baseline", "cost"]
        if len(base):
            tot["vs_baseline"] = tot["cost"] - float(base.iloc[0])
        cap = inputs.get("scenario_capacity")
        if cap is not None:
            g = cap.groupby("scenario")[["count", "gpus"]].sum()
            tot["nodes"] = tot["scenario"].map(g["count"]).fillna(0).astype(int)
            tot["gpus"] = tot["scenario"].map(g["gpus"]).fillna(0).astype(int)
        tables["scenarios"] = tot
    return tables
