"""The report: inputs tolerate missing results, the HTML is self-contained, tables export.

Fixture builders (used by the scenario CLI and browser tests too):

* :func:`small_demo_store` generates a two-month demo fleet (30 % scale) once per process
  and ingests it through the real readers;
* :func:`write_pipeline_results` stores every result of docs/results.md computed from that
  store's own data: history and showback (features.tags), a weekly seasonal-naive forecast
  with normal intervals and its backtest, anomalies as the days furthest from a rolling
  median with their top team as root cause, right-sizing (optimizer.rightsizing), savings,
  utilization KPIs, tag coverage, and two scenarios (optimizer.scenarios) beside the baseline.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.store import Store
from forecaster.cli import app
from forecaster.report import collect_report_inputs, export_tables, kpis, render_report
from forecaster.report.inputs import RESULTS
from models import metrics

get_plotlyjs = pytest.importorskip("plotly.offline").get_plotlyjs

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
_CACHE: dict[str, Path] = {}


# -- fixture builders -------------------------------------------------------------------------
def small_demo_store(base: Path) -> Path:
    """A two-month, 30 %-scale demo fleet ingested into a store (built once per process)."""
    if "store" in _CACHE and _CACHE["store"].exists():
        return _CACHE["store"]
    from features.demo import generate_demo_fleet
    from features.readers.cur import read_cur
    from features.readers.focus import read_focus
    from features.readers.metrics import read_utilization

    base.mkdir(parents=True, exist_ok=True)
    m = generate_demo_fleet(base / "exports", seed=3, months=2, scale=0.3)
    path = base / "demo.duckdb"
    with Store(path) as st:
        st.ingest(read_focus(m.focus_path))
        st.ingest(read_cur(m.cur_path))
        st.ingest_utilization(read_utilization(m.metrics_path))
    _CACHE["store"] = path
    return path


def full_demo_store(base: Path) -> Path:
    """:func:`small_demo_store` with every pipeline result written (built once per process).

    Callers read it (read-only); a test that writes makes its own copy.
    """
    if "full" in _CACHE and _CACHE["full"].exists():
        return _CACHE["full"]
    path = copy_store(small_demo_store(base / "src"), base / "full")
    write_pipeline_results(path)
    _CACHE["full"] = path
    return path


def copy_store(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / "forecaster.duckdb"
    shutil.copy(src, dst)
    return dst


def _history(st: Store) -> pd.DataFrame:
    from features.tags import showback

    sb = showback(st, ["team"], period="day")
    # Series ids as features.series names them (``team=nlp``).
    team = sb[sb["team"] != "(unallocated)"].rename(columns={"period": "ds", "total_cost": "y"})
    team = team.assign(unique_id="team=" + team["team"].astype(str))[["unique_id", "ds", "y"]]
    total = sb.groupby("period", as_index=False)["total_cost"].sum()
    total = total.rename(columns={"period": "ds", "total_cost": "y"}).assign(unique_id="total")
    return pd.concat([team.assign(level="team"), total.assign(level="total")], ignore_index=True)[
        ["level", "unique_id", "ds", "y"]
    ]


def _seasonal_naive(hist: pd.DataFrame, horizon: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly seasonal-naive forecast (mean of the last two weeks' same weekday), normal
    intervals from its one-week-ahead errors; and the backtest of the last 14 days."""
    z80, z95 = NormalDist().inv_cdf(0.9), NormalDist().inv_cdf(0.975)
    fc_rows, bt_rows = [], []
    for (level, uid), g in hist.groupby(["level", "unique_id"], sort=True):
        y = g.sort_values("ds").set_index("ds")["y"]
        pred = (y.shift(7) + y.shift(14)) / 2
        err = (y - pred).dropna()
        sd = float(err.tail(28).std()) if len(err) > 2 else float(y.std())
        last = y.index.max()
        for h in range(1, horizon + 1):
            ds = last + pd.Timedelta(days=h)
            base = [y.get(ds - pd.Timedelta(days=7 * k)) for k in range(1, 6)]
            vals = [v for v in base if v is not None][:2] or [float(y.tail(7).mean())]
            yhat = float(np.mean(vals))
            w = sd * np.sqrt(1 + (h - 1) / 7)
            fc_rows.append(
                {
                    "level": level,
                    "unique_id": uid,
                    "ds": ds,
                    "yhat": yhat,
                    "lo_80": max(yhat - z80 * w, 0.0),
                    "hi_80": yhat + z80 * w,
                    "lo_95": max(yhat - z95 * w, 0.0),
                    "hi_95": yhat + z95 * w,
                    "model": "seasonal_naive",
                }
            )
        tail = pred.dropna().tail(14)
        wape = metrics.wape(y.loc[tail.index], tail)
        bt_rows.append({"level": level, "unique_id": uid, "model": "seasonal_naive", "wape": wape})
    bt = pd.DataFrame(bt_rows).groupby(["level", "model"], as_index=False)["wape"].mean()
    for col in ("smape", "mase", "bias", "coverage_80", "coverage_95", "msis"):
        bt[col] = np.nan
    bt["horizon_days"] = 7
    return pd.DataFrame(fc_rows), bt


def _anomalies(st: Store, hist: pd.DataFrame, n: int = 4) -> pd.DataFrame:
    tot = hist[hist["level"] == "total"].sort_values("ds").set_index("ds")["y"]
    med = tot.rolling(7, min_periods=3, center=True).median()
    dev = (tot - med).dropna()
    rows = []
    for i, (ds, d) in enumerate(dev.abs().sort_values(ascending=False).head(n).items()):
        top = st.query(
            "SELECT team, service, sum(effective_cost) AS c FROM cost WHERE date_trunc('day', ds)"
            " = ? GROUP BY ALL ORDER BY c DESC LIMIT 1",
            [ds],
        ).iloc[0]
        rows.append(
            {
                "id": f"a{i}",
                "rule": "daily_spike",
                "title": f"Daily spend off by ${d:,.0f}",
                "severity": "high" if i == 0 else "medium",
                "team": top["team"] or "",
                "service": top["service"] or "",
                "resource": "",
                "period_start": ds,
                "period_end": ds + pd.Timedelta(days=1),
                "detected_at": ds + pd.Timedelta(days=1),
                "expected": float(med[ds]),
                "actual": float(tot[ds]),
                "impact": float(d),
                "score": float(d / max(dev.abs().median(), 1e-9)),
                "root_cause": f"team={top['team']} / service={top['service']}: ${top['c']:,.0f}",
                "labelled": "",
            }
        )
    return pd.DataFrame(rows)


def write_pipeline_results(
    path: Path, *, run_id: str = "fixture", scenarios: bool = True
) -> dict[str, int]:
    """Store every report input computed from the store's own data; return rows per result."""
    from features.tags import showback, tag_coverage
    from forecaster.scenarios_io import baseline_from_store, save_results
    from optimizer.fleet import FleetConfig
    from optimizer.rightsizing import rightsize
    from optimizer.scenarios import baseline_result, load_scenario, run_scenario

    out: dict[str, int] = {}
    with Store(path) as st:

        def put(name: str, df: pd.DataFrame, meta: dict | None = None) -> None:
            st.write_result(name, df, run_id=run_id, meta=meta)
            out[name] = len(df)

        hist = _history(st)
        put("history", hist)
        fc, bt = _seasonal_naive(hist)
        put("forecast", fc, {"horizon_days": 30, "model_name": "seasonal_naive"})
        put("backtest", bt)
        put("anomalies", _anomalies(st, hist))
        util = st.utilization_frame()
        rs = rightsize(util)
        put("rightsizing", rs)
        team_of = util.drop_duplicates("workload_id").set_index("workload_id")["team"]
        sav = pd.DataFrame(
            {
                "kind": "rightsizing",
                "description": "right-size " + rs["workload_id"],
                "usd_per_month": rs["saving_usd_per_month"].clip(lower=0),
                "team": rs["workload_id"].map(team_of).fillna(""),
            }
        )
        od = st.query(
            "SELECT sum(effective_cost) AS c FROM cost WHERE purchase_option = 'on_demand' AND "
            "instance_type IS NOT NULL AND ds > (SELECT max(ds) FROM cost) - INTERVAL 30 DAY"
        )["c"].iloc[0]
        sav = pd.concat(
            [
                sav,
                pd.DataFrame(
                    [
                        {
                            "kind": "commitment",
                            "description": "60 % Compute Savings Plan at 28 %",
                            "usd_per_month": float(od) * 0.6 * 0.28,
                            "team": "",
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
        put("savings", sav[sav["usd_per_month"] > 0])
        put(
            "placement",
            pd.DataFrame(
                {
                    "policy": ["first-fit", "fgd-pressure"],
                    "pods": [500, 500],
                    "placed": [471, 492],
                    "gpu_allocation_pct": [88.1, 93.4],
                    "gpus_used": [410, 396],
                    "nodes_used": [60, 57],
                    "usd_per_month": [612000.0, 585000.0],
                }
            ),
        )
        uk = st.query(
            "SELECT coalesce(team, '') AS team, "
            "100 * sum(cpu_used) / nullif(sum(cpu_requested), 0) AS cpu_util_pct, "
            "100 * sum(memory_used_gib) / nullif(sum(memory_requested_gib), 0) AS memory_util_pct,"
            " 100 * sum(gpu_used) / nullif(sum(gpu_requested), 0) AS gpu_util_pct, "
            "100 * avg(CASE WHEN kind = 'training' THEN 0.35 ELSE 0.2 END) "
            "AS spot_share_eligible_pct FROM utilization GROUP BY 1 ORDER BY 1"
        )
        put("utilization_kpis", uk)
        sb = showback(st, ["team"], period="month").rename(
            columns={"period": "month", "direct_cost": "effective_cost"}
        )
        put("showback", sb[["team", "month", "effective_cost", "shared_cost", "total_cost"]])
        cov = tag_coverage(st)
        per = cov.per_tag.rename(columns={"tagged_spend": "covered_spend"}).assign(
            total_spend=cov.total_spend
        )[["tag", "covered_spend", "total_spend", "coverage_pct"]]
        put("tag_coverage", per, {"fully_tagged_pct": cov.fully_tagged_pct})
        if scenarios:
            base = baseline_from_store(st)
            cfg = FleetConfig(time_limit=0.2)
            specs = [
                load_scenario(SCENARIOS / f)
                for f in ("grow-training-spot.yaml", "mig-rightsize.yaml")
            ]
            results = [baseline_result(base, config=cfg, horizon_months=6)]
            results += [run_scenario(s, base, config=cfg) for s in specs]
            save_results(st, results, run_id=run_id)
            out["scenario_monthly"] = sum(len(r.monthly) for r in results)
    return out


@pytest.fixture(scope="module")
def demo_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_demo_store(tmp_path_factory.getbasetemp() / "r8demo" / "src")


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_demo_store(tmp_path_factory.getbasetemp() / "r8demo")


# -- tests ------------------------------------------------------------------------------------
def _charts(html: str) -> list[str]:
    return re.findall(r'<div class="chart" data-chart="([^"]+)"', html)


def test_full_report_has_every_section_and_chart(full_store: Path, tmp_path: Path) -> None:
    with Store(full_store, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert inputs.missing == {}
    assert inputs.derived == {}
    out = render_report(inputs, tmp_path / "r.html")
    html = out.read_text()
    charts = _charts(html)
    teams = sorted(
        {
            u.split("=", 1)[1]
            for u in inputs.results["forecast"].query("level == 'team'")["unique_id"]
        }
    )
    expected = {
        "kpis",
        "fan-total",
        "anomalies",
        "showback",
        "tag-coverage",
        "savings",
        "scenario-cost",
        "scenario-capacity",
        *(f"fan-team-{t}" for t in teams),
    }
    assert set(charts) == expected and len(charts) == len(expected)
    assert 'class="missing"' not in html
    # plotly.js once, inline, no network.
    assert (
        html.count("* plotly.js v") == 1 and html.count('<script type="text/javascript">/**') == 1
    )
    assert not re.search(r"<script[^>]+src=", html)
    page = html.replace(get_plotlyjs(), "")
    assert "cdn.plot.ly" not in page and "https://" not in page
    for section in (
        "summary",
        "kpis",
        "forecasts",
        "anomalies",
        "showback",
        "savings",
        "scorecards",
        "scenarios",
    ):
        assert f'<section id="{section}">' in html
    for team in teams:
        assert html.count(f'data-team="{team}"') == 1  # one card per team, by its name
    assert 'data-team="team=' not in html
    # Root causes travel into the hover text of the anomaly timeline.
    first_cause = inputs.results["anomalies"]["root_cause"].iloc[0]
    assert json.dumps(first_cause)[1:-1].split(":")[0] in html


def test_kpis_against_targets(full_store: Path) -> None:
    with Store(full_store, read_only=True) as st:
        inputs = collect_report_inputs(st)
    ks = {k.key: k for k in kpis(inputs)}
    assert set(ks) == {
        "cost_reduction_pct",
        "cpu_util_pct",
        "memory_util_pct",
        "gpu_util_pct",
        "spot_share_eligible_pct",
        "tag_coverage_pct",
        "forecast_accuracy_pct",
    }
    assert [ks[k].target for k in ("cpu_util_pct", "memory_util_pct", "gpu_util_pct")] == [
        70,
        80,
        90,
    ]
    assert ks["spot_share_eligible_pct"].target == 60 and ks["tag_coverage_pct"].target == 100
    assert ks["forecast_accuracy_pct"].target == 85
    # Values agree with the stored results they come from.
    bt = inputs.results["backtest"]
    wape = float(bt.loc[bt["level"] == "total", "wape"].min())
    assert ks["forecast_accuracy_pct"].value == pytest.approx(100 - wape)  # WAPE in percent
    fully = inputs.meta["tag_coverage"]["fully_tagged_pct"]
    assert ks["tag_coverage_pct"].value == pytest.approx(fully)
    assert ks["tag_coverage_pct"].met is (fully >= 100)
    sav = inputs.results["savings"]["usd_per_month"].sum()
    hist = inputs.results["history"].query("level == 'total'")
    recent = hist[hist["ds"] > hist["ds"].max() - pd.Timedelta(days=30)]
    spend = recent["y"].sum() / recent["ds"].nunique() * 30.4
    assert ks["cost_reduction_pct"].value == pytest.approx(100 * sav / spend)


def test_export_tables_markdown_and_csv(full_store: Path, tmp_path: Path) -> None:
    with Store(full_store, read_only=True) as st:
        inputs = collect_report_inputs(st)
    files = export_tables(inputs, tmp_path / "tables")
    names = {p.name for p in files}
    assert {
        "report.md",
        "showback.csv",
        "untagged_spend.csv",
        "top_anomalies.csv",
        "top_rightsizing.csv",
        "kpis.csv",
        "scorecards.csv",
        "scenarios.csv",
    } <= names
    sb = pd.read_csv(tmp_path / "tables" / "showback.csv")
    stored = inputs.results["showback"]
    months = sorted(stored["month"].dt.strftime("%Y-%m").unique())[-6:]
    assert sb["total"].sum() == pytest.approx(
        stored[stored["month"].dt.strftime("%Y-%m").isin(months)]["total_cost"].sum()
    )
    md = (tmp_path / "tables" / "report.md").read_text()
    assert "## Untagged spend by service and account" in md and "| service |" in md
    unt = pd.read_csv(tmp_path / "tables" / "untagged_spend.csv")
    assert unt["untagged_spend"].sum() == pytest.approx(
        min(inputs.untagged_spend, inputs.untagged["untagged_spend"].head(25).sum()), rel=1e-6
    )
    sc = pd.read_csv(tmp_path / "tables" / "scenarios.csv")
    assert list(sc["scenario"]) == ["baseline", "grow-training-spot", "mig-rightsize"]


def test_missing_results_are_named_with_their_command(demo_src: Path, tmp_path: Path) -> None:
    path = copy_store(demo_src, tmp_path)
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
    # Raw tables stand in where they can; the rest is named with the command that writes it.
    assert set(inputs.derived) == {"history", "showback", "tag_coverage", "utilization_kpis"}
    assert set(inputs.missing) == set(RESULTS) - set(inputs.derived)
    html = render_report(inputs, tmp_path / "r.html").read_text()
    for name in ("forecast", "anomalies", "savings", "scenario_monthly"):
        assert f'data-missing="{name}"' in html
    assert "forecaster scenario compare A.yaml B.yaml --save" in html
    assert "forecaster detect" in html
    assert set(_charts(html)) == {"kpis", "fan-total", "showback", "tag-coverage"}


def _store_with_cost(tmp_path: Path, demo_src: Path, where: str, strip_tags: bool) -> Path:
    """A copy of the demo store keeping only ``where`` rows, optionally without any tag."""
    path = copy_store(demo_src, tmp_path)
    with Store(path) as st:
        st.con.execute(f"DELETE FROM cost WHERE NOT ({where})").fetchall()
        st.con.execute("DELETE FROM utilization").fetchall()
        if strip_tags:
            st.con.execute(
                "UPDATE cost SET team = NULL, project = NULL, environment = NULL, "
                "cost_center = NULL, owner = NULL, tags = NULL"
            ).fetchall()
    return path


def test_report_without_tags_says_so(demo_src: Path, tmp_path: Path) -> None:
    path = _store_with_cost(tmp_path, demo_src, "TRUE", strip_tags=True)
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert any("No spend carries all required tags" in w for w in inputs.warnings)
    assert inputs.untagged_spend == pytest.approx(inputs.tagged_total)
    html = render_report(inputs, tmp_path / "r.html").read_text()
    assert "No spend carries all required tags" in html
    assert 'data-missing="scorecards"' in html
    k = {k.key: k for k in kpis(inputs)}
    assert k["tag_coverage_pct"].value == pytest.approx(0.0) and k["tag_coverage_pct"].met is False


def test_report_on_one_day_of_data(demo_src: Path, tmp_path: Path) -> None:
    path = _store_with_cost(
        tmp_path, demo_src, "ds < (SELECT min(ds) FROM cost) + INTERVAL 1 DAY", strip_tags=False
    )
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert inputs.data["days"] == 1
    assert any("Only 1 day of cost data" in w for w in inputs.warnings)
    html = render_report(inputs, tmp_path / "r.html").read_text()
    assert "Only 1 day of cost data" in html
    assert "fan-total" in _charts(html)


def test_report_on_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    Store(path).close()
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert any("no cost data" in w for w in inputs.warnings)
    html = render_report(inputs, tmp_path / "r.html").read_text()
    assert _charts(html) == ["kpis"]


def test_report_cli(full_store: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--store",
            str(full_store),
            "--output",
            str(tmp_path / "out" / "r.html"),
            "--tables-dir",
            str(tmp_path / "t"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert Path(got["output"]).is_file() and got["missing"] == {}
    assert any(p.endswith("report.md") for p in got["tables"])
    bad = CliRunner().invoke(app, ["report", "--store", str(full_store), "--output", "r.pdf"])
    assert bad.exit_code == 2 and "--output must be an .html file" in bad.output
