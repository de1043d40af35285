"""models.registry and models.pyfunc on the embedded SQLite registry (no server)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, InvalidFrameError, NotFittedError, TrackingError
from models import make_model
from models.pyfunc import example_request, forecast_request
from models.registry import (
    alias_version,
    backtest_status,
    list_models,
    load_model,
    log_forecaster,
    promote_if_better,
    rollback,
    set_champion,
)
from tests.integration._mlflow import free_port
from tests.models.builders import make_series


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One database for the module: creating an MLflow schema costs seconds.
    return f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series(3, 60)


@pytest.fixture(scope="module")
def naive(series: pd.DataFrame):
    return make_model("seasonal_naive").fit(series)


# ------------------------------------------------------------- request frames
def test_request_frame_gives_each_series_its_own_horizon_in_request_order(naive):
    full = naive.predict(5)
    got = forecast_request(naive, pd.DataFrame({"unique_id": ["s2", "s0"], "h": [3, 5]}))
    assert list(got.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert list(got["unique_id"]) == ["s2"] * 3 + ["s0"] * 5
    want = pd.concat([full[full.unique_id == "s2"].head(3), full[full.unique_id == "s0"]])
    np.testing.assert_allclose(got["yhat"], want["yhat"])


def test_extra_levels_are_added_to_80_and_95(naive):
    got = forecast_request(naive, pd.DataFrame({"unique_id": ["s1"], "h": [2], "level": [50.0]}))
    assert [c for c in got.columns if c.startswith("lo_")] == ["lo_50", "lo_80", "lo_95"]
    assert (got["lo_95"] <= got["lo_80"]).all() and (got["lo_80"] <= got["lo_50"]).all()


@pytest.mark.parametrize(
    ("request_frame", "match"),
    [
        (pd.DataFrame({"unique_id": ["s1"]}), r"missing required column\(s\) \['h'\]"),
        (
            pd.DataFrame({"unique_id": ["s1", "x9"], "h": [1, 1]}),
            r"rows \[1\]: unknown series \['x9'\]",
        ),
        (pd.DataFrame({"unique_id": ["s1"], "h": [0]}), "h must be a positive integer, got 0"),
        (pd.DataFrame({"unique_id": ["s1"], "h": [1.5]}), "h must be a positive integer"),
        (
            pd.DataFrame({"unique_id": ["s1"], "h": [2], "level": [100]}),
            "level must be an integer in",
        ),
        (pd.DataFrame({"unique_id": [], "h": []}), "no rows"),
    ],
)
def test_bad_requests_name_the_column_and_rows(naive, request_frame, match):
    with pytest.raises(InvalidFrameError, match=match):
        forecast_request(naive, request_frame)


def test_models_with_regressors_need_their_future_values_in_the_request():
    df = make_series(2, 50)
    df["promo"] = (df["ds"].dt.dayofweek == 4).astype(float)
    model = make_model("lgbm", n_estimators=10, n_jobs=1).fit(df)
    example = example_request(model, h=3)
    assert {"ds", "promo"} <= set(example.columns)
    assert len(forecast_request(model, example)) == 3
    with pytest.raises(
        InvalidFrameError, match=r"exogenous columns \['promo'\].*missing \['ds', 'promo'\]"
    ):
        forecast_request(model, pd.DataFrame({"unique_id": ["s0"], "h": [3]}))


# ------------------------------------------------------------ backtest status
def test_backtest_status(naive, series):
    cv = naive.cross_validation(series, h=5, n_windows=2)
    assert backtest_status(cv, {"wape": 3.0}) == "complete"
    assert backtest_status(None, {"wape": 3.0}) == "complete"
    assert backtest_status(None, {}) == "missing"
    assert backtest_status(cv, {"wape": math.nan}) == "partial"
    holes = cv.copy()
    holes.loc[0, "yhat"] = math.nan
    assert backtest_status(holes, {"wape": 3.0}) == "partial"
    # One series lost a window.
    lost = cv[~((cv["unique_id"] == "s1") & (cv["cutoff"] == cv["cutoff"].min()))]
    assert backtest_status(lost, {"wape": 3.0}) == "partial"


# ---------------------------------------------------------------- registry
def test_lifecycle_on_the_embedded_registry(uri, naive, series):
    name = "unit-team-daily"
    assert list_models(uri) == [] or all(m["name"] != name for m in list_models(uri))
    with pytest.raises(ConfigError, match="no registered model named 'unit-team-daily'"):
        load_model(name, tracking_uri=uri)
    cv = naive.cross_validation(series, h=5, n_windows=2)
    fc = naive.predict(5)
    v1 = log_forecaster(
        naive,
        name=name,
        train_df=series,
        metrics={"wape": 10.0},
        backtest=cv,
        forecasts=fc,
        params={"level": "team"},
        tracking_uri=uri,
    )
    assert (v1.version, v1.aliases) == ("1", ("challenger",))
    assert alias_version(name, tracking_uri=uri) is None
    assert alias_version(name, "challenger", tracking_uri=uri) == "1"
    assert promote_if_better(name, "1", tracking_uri=uri).promoted

    drift = make_model("drift").fit(series)
    v2 = log_forecaster(drift, name=name, train_df=series, metrics={"wape": 9.0}, tracking_uri=uri)
    tie = promote_if_better(name, v2.version, margin=0.2, tracking_uri=uri)
    assert not tie.promoted and "needs < 8" in tie.reason
    forced = set_champion(name, v2.version, tracking_uri=uri)
    assert forced.promoted and alias_version(name, tracking_uri=uri) == "2"

    loaded = load_model(name, tracking_uri=uri)
    assert loaded.version == "2" and loaded.forecasts is None
    assert loaded.forecast_time is not None and loaded.loaded_at >= loaded.forecast_time
    np.testing.assert_allclose(
        loaded.predict(pd.DataFrame({"unique_id": ["s0"], "h": [4]}))["yhat"],
        drift.predict(4)["yhat"].head(4),
    )
    assert isinstance(loaded.estimator, type(drift))

    listing = {m["name"]: m for m in list_models(uri)}[name]
    json.dumps(listing)  # --json prints it
    assert listing["aliases"] == {"champion": "2"}
    assert [v["version"] for v in listing["versions"]] == ["2", "1"]
    assert listing["versions"][1]["metrics"] == {"wape": 10.0}
    assert listing["versions"][0]["backtest_status"] == "complete"
    assert "by hand" in listing["versions"][0]["promotion"]

    assert rollback(name, tracking_uri=uri).version == "1"
    assert load_model(name, tracking_uri=uri).forecasts is not None


def test_guardrail_refuses_missing_nan_and_partial_metrics(uri, naive, series):
    name = "unit-guardrail"
    good = log_forecaster(
        naive, name=name, train_df=series, metrics={"wape": 5.0}, tracking_uri=uri
    )
    assert promote_if_better(name, good.version, tracking_uri=uri).promoted
    no_metric = log_forecaster(
        naive, name=name, train_df=series, metrics={"mase": 0.1}, tracking_uri=uri
    )
    d = promote_if_better(name, no_metric.version, tracking_uri=uri)
    assert not d.promoted and "no backtest metric 'wape'" in d.reason
    nan = log_forecaster(
        naive,
        name=name,
        train_df=series,
        metrics={"wape": 1.0, "total.wape": math.nan},
        tracking_uri=uri,
    )
    d = promote_if_better(name, nan.version, tracking_uri=uri)
    assert not d.promoted and "partial or failed backtest (no value for total.wape)" in d.reason
    assert not set_champion(name, nan.version, tracking_uri=uri).promoted
    assert alias_version(name, tracking_uri=uri) == good.version
    with pytest.raises(ConfigError, match="margin must be in"):
        promote_if_better(name, good.version, margin=1.5, tracking_uri=uri)


def test_unfitted_models_and_dead_registries_fail_clearly(series):
    with pytest.raises(NotFittedError):
        log_forecaster(
            make_model("naive"),
            name="x",
            train_df=series,
            metrics={},
            tracking_uri="sqlite:///:memory:",
        )
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match="model registry unreachable"):
        load_model("x", tracking_uri=dead)
    with pytest.raises(TrackingError):
        list_models(dead)
    assert time.monotonic() - t0 < 15


def test_missing_model_files_give_a_store_error(uri, naive, series, tmp_path: Path):
    from features.exceptions import StoreError

    name = "unit-missing-files"
    ref = log_forecaster(naive, name=name, train_df=series, metrics={"wape": 1.0}, tracking_uri=uri)
    promote_if_better(name, ref.version, tracking_uri=uri)
    root = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    removed = 0
    for mlmodel in root.rglob("MLmodel"):
        if ref.run_id in mlmodel.read_text():
            for pkl in mlmodel.parent.rglob("estimator.pkl"):
                pkl.unlink()
                removed += 1
    assert removed
    with pytest.raises(StoreError, match=f"version {ref.version} \\(champion\\) cannot be loaded"):
        load_model(name, tracking_uri=uri)


def test_detectors_are_logged_registered_and_loaded_as_pyfunc(uri, series):
    from models.anomaly.frame import detect_series, make_detector
    from models.registry import log_detector

    detector = make_detector()
    spiky = series.copy()
    spiky.loc[50, "y"] += 40.0
    ref = log_detector(
        detector,
        name="unit-detector",
        sample_df=spiky,
        metrics={"false_alarms": 0.0},
        tracking_uri=uri,
    )
    assert ref.aliases == ("challenger",)
    loaded = load_model("unit-detector", alias="challenger", tracking_uri=uri)
    got = loaded.model.predict(spiky[["unique_id", "ds", "y"]])
    want = detect_series(spiky, make_detector())
    np.testing.assert_allclose(got["score"], want["score"])
    assert got["is_anomaly"].tolist() == want["is_anomaly"].tolist()
