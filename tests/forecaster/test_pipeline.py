"""The main job's stages on a small generated demo fleet: results stored, figures consistent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.demo import DemoManifest, generate_demo_fleet
from features.exceptions import ConfigError
from features.readers.cur import read_cur
from features.readers.focus import read_focus
from features.readers.metrics import read_utilization
from features.store import Store
from forecaster.pipeline import ALL_STAGES, PipelineConfig, load_config, run_pipeline

TAGS = ["Environment", "Team", "Project", "CostCenter", "Owner"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoManifest, Path]:
    root = tmp_path_factory.mktemp("pipe")
    manifest = generate_demo_fleet(root / "exports", seed=5, months=2)
    path = root / "forecaster.duckdb"
    with Store(path) as st:
        st.ingest(read_focus(manifest.focus_path))
        st.ingest(read_cur(manifest.cur_path))
        st.ingest_utilization(read_utilization(manifest.metrics_path))
    return manifest, path


@pytest.fixture(scope="module")
def run(fleet: tuple[DemoManifest, Path]):
    manifest, path = fleet
    cfg = PipelineConfig(
        labels=manifest.labels_path,
        stages=list(ALL_STAGES),
        scenario_months=2,
        model_name="pipeline-test",
        tracking_uri=f"sqlite:///{path.parent / 'mlflow.db'}",
        detect_window_days=45,
        horizon_days=14,
        backtest_windows=1,
    )
    seen: list[tuple[str, str]] = []
    result = run_pipeline(
        path,
        cfg,
        required_tags=TAGS,
        shared_values=["shared"],
        run_id="test-run",
        on_stage=lambda name, state, _s: seen.append((name, state)),
    )
    return result, seen, path


def test_every_stage_runs_and_reports(run) -> None:
    result, seen, _ = run
    assert result.ok, result.to_dict()
    names = [s.name for s in result.stages]
    assert tuple(names) == ALL_STAGES
    assert seen[0] == ("governance", "start") and ("optimize", "done") in seen


def test_results_follow_the_contract(run) -> None:
    _, _, path = run
    with Store(path, read_only=True) as st:
        assert st.result_info("showback")["run_id"] == "test-run"
        lf = st.read_result("load_forecast")
        assert {"unique_id", "ds", "yhat", "lo_80", "hi_95", "capacity_per_replica"} <= set(lf)
        assert (lf["lo_95"] <= lf["lo_80"]).all() and (lf["hi_80"] <= lf["hi_95"]).all()
        assert (lf["lo_95"] >= 0).all()
        assert lf.groupby("unique_id").size().eq(48).all()
        an = st.read_result("anomalies")
        assert set(an["labelled"]) <= {"found", "false_alarm"}
        cov = st.read_result("tag_coverage")
        assert cov["coverage_pct"].between(0, 100).all()


def test_forecasts_are_coherent_and_cover_the_hierarchy(run) -> None:
    result, _, path = run
    with Store(path, read_only=True) as st:
        fc = st.read_result("forecast")
        hist = st.read_result("history")
        bt = st.read_result("backtest")
    assert set(fc["level"]) == {"total", "team", "project", "service"}
    assert set(fc["unique_id"]) == set(hist["unique_id"])
    total = fc[fc["level"] == "total"].set_index("ds")["yhat"]
    teams = fc[fc["level"] == "team"].groupby("ds")["yhat"].sum()
    assert (total - teams).abs().max() < 1e-6 * max(total.abs().max(), 1.0)
    assert {"wape", "coverage_80"} <= set(bt.columns)
    s = result.stage("forecast").summary
    assert s["next_30_days"]["lo_80"] <= s["next_30_days"]["yhat"] <= s["next_30_days"]["hi_80"]


def test_the_forecaster_is_registered_and_champion(run) -> None:
    from models.registry import list_models

    result, _, path = run
    track = result.stage("track").summary
    assert track["promoted"] and track["version"] == "1"
    models = {m["name"]: m for m in list_models(f"sqlite:///{path.parent / 'mlflow.db'}")}
    assert "pipeline-test" in models
    with Store(path, read_only=True) as st:
        meta = st.result_info("forecast")["meta"]
    assert meta["model_version"] == "1" and meta["mlflow_run_id"] == track["mlflow_run_id"]


def test_savings_waterfall_is_consistent(run) -> None:
    _, _, path = run
    with Store(path, read_only=True) as st:
        savings = st.read_result("savings")
        info = st.result_info("savings")["meta"]
        placement = st.read_result("placement")
    assert (savings["usd_per_month"] >= 0).all()
    assert list(savings["kind"]) == ["placement", "rightsizing", "spot", "mig"]
    base, final = info["baseline_usd_per_month"], info["final_usd_per_month"]
    assert base - savings["usd_per_month"].sum() == pytest.approx(final)
    assert final == pytest.approx(placement["usd_per_month"].min())
    # Every plan places every pod.
    assert (placement["placed"] == placement["pods"]).all()


def test_scenarios_and_report_are_written(run) -> None:
    result, _, path = run
    with Store(path, read_only=True) as st:
        monthly = st.read_result("scenario_monthly")
        kpis = st.read_result("utilization_kpis")
    assert {"baseline", "grow-training-spot", "mig-rightsize"} <= set(monthly["scenario"])
    assert kpis["spot_share_eligible_pct"].dropna().between(0, 100).all()
    html = Path(result.stage("report").summary["report"])
    text = html.read_text()
    assert html.exists() and "plotly" in text.lower() and "<script src=" not in text


def test_showback_sums_to_the_store_total(run) -> None:
    _, _, path = run
    with Store(path, read_only=True) as st:
        sb = st.read_result("showback")
        total = st.totals()["effective_cost"]
    assert sb["total_cost"].sum() == pytest.approx(total, abs=0.01)
    assert isinstance(sb["month"].iloc[0], pd.Timestamp)


def test_a_failing_stage_does_not_lose_the_others(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    Store(path).close()
    result = run_pipeline(
        path, PipelineConfig(stages=["detect", "optimize"]), required_tags=TAGS, shared_values=[]
    )
    assert [s.summary.get("skipped", "") != "" for s in result.stages] == [True, True]


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("horizon_dayz: 30\nstages: [forecast, dance]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    msg = str(exc.value)
    assert "horizon_dayz" in msg and "allowed" in msg and "stages.1" in msg


def test_next_30_days_is_one_answer(run) -> None:
    """The headline, the report and the scenario baseline give the same total and interval."""
    from forecaster.report import collect_report_inputs
    from forecaster.report.inputs import next_30_days
    from models.aggregate import forecast_total

    result, _, path = run
    head = result.stage("forecast").summary["next_30_days"]
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
        fc = st.read_result("forecast")
        hist = st.read_result("history")
    rep = next_30_days(inputs, "total", "total")
    assert rep is not None
    assert head["yhat"] == pytest.approx(rep["cost"], abs=0.01)
    for k in ("lo_80", "hi_80", "lo_95", "hi_95"):
        assert head[k] == pytest.approx(rep[k], abs=0.01), k
    direct = forecast_total(
        fc[fc["level"] == "total"], hist[hist["level"] == "total"].sort_values("ds")["y"]
    )
    assert direct is not None and direct["hi_80"] == pytest.approx(rep["hi_80"], abs=0.01)
    # The interval of a sum is never wider than the sum of the daily bounds.
    days = fc[fc["level"] == "total"].sort_values("ds").head(30)
    assert rep["hi_80"] <= float(days["hi_80"].sum()) + 1e-6
