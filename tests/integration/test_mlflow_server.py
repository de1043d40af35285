"""Tracking and registry through a real ``mlflow server`` process on 127.0.0.1."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from features.exceptions import ConfigError, StoreError
from models import make_model
from models.registry import (
    alias_version,
    list_models,
    load_model,
    log_forecaster,
    promote_if_better,
    rollback,
)
from models.tracking import tracked_run
from tests.integration._mlflow import MlflowServer, shared_server
from tests.models.builders import make_series

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    # One server process for the whole session (its start costs seconds).
    return shared_server(tmp_path_factory.mktemp("mlflow-server"))


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, object, pd.DataFrame, pd.DataFrame]:
    df = make_series(3, 60)
    model = make_model("seasonal_naive").fit(df)
    return df, model, model.predict(7), model.cross_validation(df, h=7, n_windows=2)


def _log(server: MlflowServer, name: str, fitted: tuple, wape: float, **kw: object):
    df, model, fc, cv = fitted
    return log_forecaster(
        model,
        name=name,
        train_df=df,
        metrics={"wape": wape, "wape.team": wape + 1},
        backtest=kw.get("backtest", cv),
        forecasts=fc,
        tracking_uri=server.uri,
    )


def test_tracked_run_logs_params_metrics_dataset_and_provenance(server: MlflowServer):
    from mlflow.tracking import MlflowClient

    df = make_series(2, 30)
    df.attrs["source"] = "/data/demo/forecaster.duckdb"
    with tracked_run("backtest demo", kind="backtest", tracking_uri=server.uri) as run:
        run.log_params({"model": "ets", "window": {"h": 7}})
        run.log_metrics({"wape": 11.5, "wape.team": 9.0, "broken": float("nan")})
        digest = run.log_dataset(df, name="team-daily", source=df.attrs["source"])
        run.log_frame(pd.DataFrame({"level": ["team"], "wape": [9.0]}), "backtest.parquet")
    assert not run.offline, run.failure
    client = MlflowClient(server.uri)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["window.h"] == "7"
    assert got.data.metrics == {"wape": 11.5, "wape.team": 9.0}
    assert got.data.tags["forecaster.kind"] == "backtest"
    assert "pkg.pandas" in got.data.tags
    inputs = got.inputs.dataset_inputs
    assert [d.dataset.name for d in inputs] == ["team-daily"]
    assert inputs[0].dataset.digest == digest
    assert "forecaster.duckdb" in inputs[0].dataset.source
    names = [a.path for a in client.list_artifacts(run.run_id)]
    assert names == ["backtest.parquet"]


def test_body_error_marks_run_failed_and_propagates(server: MlflowServer):
    from mlflow.tracking import MlflowClient

    with (
        pytest.raises(ZeroDivisionError),
        tracked_run("boom", tracking_uri=server.uri) as run,
    ):
        1 / 0  # noqa: B018
    assert MlflowClient(server.uri).get_run(run.run_id).info.status == "FAILED"


def test_register_promote_guardrail_rollback_and_load(server: MlflowServer, fitted):
    name = "it-demo-team-daily"
    v1 = _log(server, name, fitted, 10.0)
    assert v1.aliases == ("challenger",)
    first = promote_if_better(name, v1.version, tracking_uri=server.uri)
    assert first.promoted and "first champion" in first.reason
    assert alias_version(name, tracking_uri=server.uri) == v1.version

    # Worse than the champion: stays challenger, the reason is recorded.
    v2 = _log(server, name, fitted, 12.0)
    worse = promote_if_better(name, v2.version, tracking_uri=server.uri)
    assert not worse.promoted
    assert (worse.challenger, worse.champion) == (12.0, 10.0)
    assert "does not beat" in worse.reason
    assert alias_version(name, "challenger", tracking_uri=server.uri) == v2.version

    # Better than the champion by more than the margin (margins are unit-tested).
    v3 = _log(server, name, fitted, 9.5)
    assert promote_if_better(name, v3.version, margin=0.04, tracking_uri=server.uri).promoted
    assert alias_version(name, tracking_uri=server.uri) == v3.version

    listing = {m["name"]: m for m in list_models(server.uri)}[name]
    assert listing["champion"] == v3.version
    by_version = {v["version"]: v for v in listing["versions"]}
    assert by_version[v2.version]["metrics"] == {"wape": 12.0, "wape.team": 13.0}
    assert by_version[v2.version]["promotion"].startswith("kept as challenger")
    assert by_version[v3.version]["aliases"] == ["champion"]

    loaded = load_model(name, tracking_uri=server.uri)
    assert (loaded.version, loaded.alias, loaded.run_id) == (v3.version, "champion", v3.run_id)
    fc = fitted[2]
    pd.testing.assert_frame_equal(loaded.forecasts, fc)
    answer = loaded.model.predict(pd.DataFrame({"unique_id": ["s2", "s0"], "h": [3, 1]}))
    assert list(answer["unique_id"]) == ["s2", "s2", "s2", "s0"]
    assert list(answer.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
    expected = fc[fc["unique_id"] == "s2"].head(3)["yhat"].to_numpy()
    assert answer["yhat"].head(3).to_numpy() == pytest.approx(expected)

    # MLflow's own loader resolves the alias through the server too.
    import mlflow.pyfunc

    direct = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert len(direct.predict(pd.DataFrame({"unique_id": ["s1"], "h": [7]}))) == 7

    back = rollback(name, tracking_uri=server.uri)
    assert back.version == v1.version and "champion" in back.aliases
    with pytest.raises(ConfigError, match="no earlier champion"):
        rollback(name, tracking_uri=server.uri)


def test_partial_backtest_is_never_promoted(server: MlflowServer, fitted):
    name = "it-partial"
    cv = fitted[3].copy()
    cv.loc[cv.index[:3], "yhat"] = math.nan  # some windows failed
    ref = _log(server, name, fitted, 1.0, backtest=cv)
    decision = promote_if_better(name, ref.version, tracking_uri=server.uri)
    assert not decision.promoted
    assert "partial" in decision.reason
    assert alias_version(name, tracking_uri=server.uri) is None
    with pytest.raises(ConfigError, match="no version of model 'it-partial' has alias 'champion'"):
        load_model(name, tracking_uri=server.uri)


def test_missing_and_corrupt_versions_give_clear_errors(server: MlflowServer, fitted):
    with pytest.raises(ConfigError, match="no registered model named 'it-nothing'"):
        load_model("it-nothing", tracking_uri=server.uri)
    name = "it-corrupt"
    ref = _log(server, name, fitted, 5.0)
    with pytest.raises(ConfigError, match="has no version '99'"):
        promote_if_better(name, "99", tracking_uri=server.uri)
    assert promote_if_better(name, ref.version, tracking_uri=server.uri).promoted
    # Damage the stored model: its pickled estimator is truncated on disk.
    pickles = [p for p in Path(server.artifacts).rglob("estimator.pkl") if _belongs(p, ref.run_id)]
    assert pickles, "the estimator artifact was not stored under the server's artifact root"
    for p in pickles:
        p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(StoreError, match=f"model 'it-corrupt' version {ref.version}"):
        load_model(name, tracking_uri=server.uri)


def _belongs(path: Path, run_id: str) -> bool:
    # MLflow 3 stores logged models under <experiment>/models/<model_id>/artifacts;
    # the MLmodel file next to the estimator names the run.
    mlmodel = path.parent.parent / "MLmodel"
    return mlmodel.exists() and run_id in mlmodel.read_text()
