"""experiments.tuning: rolling-origin scoring, Optuna studies that resume, nested MLflow runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from experiments.tuning import (
    _config_of,
    backtest_config,
    build_model,
    default_config,
    register_best,
    suggest_config,
    tune,
)
from features.exceptions import ConfigError
from models.tracking import TrackingWarning, resolve_tracking_uri
from tests.integration._mlflow import free_port
from tests.models.builders import make_series

FAST = {"h": 7, "n_windows": 2, "seed": 0}


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series(3, 80, noise=2.0)


def test_folds_are_rolling_origins_oldest_first_scored_by_pooled_wape(series):
    bt = backtest_config(series, {"model": "seasonal_naive"}, h=7, n_windows=3)
    cutoffs = sorted(bt.cv["cutoff"].unique())
    last = series["ds"].max()
    assert cutoffs == [last - pd.Timedelta(days=d) for d in (21, 14, 7)]
    assert list(bt.cv["cutoff"].drop_duplicates()) == cutoffs  # oldest fold first
    pooled = 100 * (bt.cv["y"] - bt.cv["yhat"]).abs().sum() / bt.cv["y"].abs().sum()
    assert bt.score == pytest.approx(pooled)
    assert bt.complete and len(bt.fold_scores) == 3


def test_a_fold_hook_can_stop_the_backtest_early(series):
    seen: list[tuple[int, float]] = []

    def stop_after_second(fold: int, score: float) -> bool:
        seen.append((fold, score))
        return fold == 1

    bt = backtest_config(series, {"model": "naive"}, h=7, n_windows=4, on_fold=stop_after_second)
    assert [f for f, _ in seen] == [0, 1]
    assert not bt.complete and len(bt.fold_scores) == 2
    assert bt.cv["cutoff"].nunique() == 2


@pytest.mark.parametrize("study", ["lgbm", "stat"])
def test_sampled_configurations_build_models_and_round_trip(study):
    sampler = optuna.samplers.RandomSampler(seed=3)
    s = optuna.create_study(sampler=sampler)
    for _ in range(6):
        trial = s.ask()
        config = suggest_config(trial, study)
        build_model(config)._validate_params()
        assert _config_of(study, trial.params) == config
        s.tell(trial, 1.0)
    assert (
        build_model(default_config(study)).get_params()
        == build_model(default_config(study)).clone().get_params()
    )
    with pytest.raises(ConfigError, match="study must be one of"):
        default_config("xgb")


def test_study_logs_nested_runs_resumes_and_registers_the_best(series, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    storage = tmp_path / "studies.db"
    seen: list[dict] = []
    first = tune(
        series,
        study="lgbm",
        n_trials=3,
        storage=storage,
        data_dir=tmp_path,
        prune_startup=1,
        callback=seen.append,
        **FAST,
    )
    assert seen[0]["state"] == "DEFAULT"
    assert first.n_trials == 3 and first.n_complete + first.n_pruned == 3
    assert math.isfinite(first.default_score) and first.best_score <= first.default_score
    study = optuna.load_study(study_name=first.study_name, storage=f"sqlite:///{storage}")
    for t in study.trials:
        folds = len(t.intermediate_values)
        assert folds == 2 if t.state.name == "COMPLETE" else folds == 1

    client = MlflowClient(resolve_tracking_uri(data_dir=tmp_path))
    exp = client.get_experiment_by_name("tuning")
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{first.mlflow_run_id}'"
    )
    assert len(children) == 3
    assert {r.data.tags["forecaster.kind"] for r in children} == {"trial"}
    parent = client.get_run(first.mlflow_run_id)
    assert parent.data.metrics["default_wape"] == pytest.approx(first.default_score)
    assert parent.inputs.dataset_inputs

    # Same name, more trials wanted: only the missing ones run.
    again = tune(series, study="lgbm", n_trials=5, storage=storage, data_dir=tmp_path, **FAST)
    assert again.n_trials == 5
    assert (
        len(
            client.search_runs(
                [exp.experiment_id], f"tags.mlflow.parentRunId = '{again.mlflow_run_id}'"
            )
        )
        == 2
    )

    ref, decision = register_best(series, again, name="tuned-demo", data_dir=tmp_path, **FAST)
    assert decision is not None and decision.promoted
    version = client.get_model_version("tuned-demo", ref.version)
    assert float(version.tags["metric.wape"]) == pytest.approx(again.best_score)


def test_a_crashed_trial_is_failed_and_its_parameters_rerun(series, tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    name = "crashy"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    crashed = study.ask()  # the process died here: the trial stays RUNNING
    config = suggest_config(crashed, "lgbm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        result = tune(
            series,
            study="lgbm",
            study_name=name,
            n_trials=1,
            storage=storage,
            tracking_uri=f"http://127.0.0.1:{free_port()}",
            data_dir=tmp_path,
            **FAST,
        )
    states = [t["state"] for t in result.trials]
    assert states == ["FAIL", "COMPLETE"]
    assert _config_of("lgbm", result.trials[1]["params"]) == config


def test_tracking_down_the_study_still_finishes_with_one_warning(series, tmp_path: Path):
    dead = f"http://127.0.0.1:{free_port()}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tune(
            series,
            study="lgbm",
            n_trials=2,
            storage=tmp_path / "s.db",
            tracking_uri=dead,
            data_dir=tmp_path,
            **FAST,
        )
    tracking = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(tracking) == 1
    assert result.tracking_offline and result.n_trials == 2
    offline = tmp_path / "mlflow" / "offline"
    parents = list(offline.iterdir())
    assert len(parents) == 1
    assert sorted(p.name for p in parents[0].iterdir() if p.is_dir()) == ["trial-0", "trial-1"]


def test_bad_arguments(series):
    with pytest.raises(ConfigError, match="n_trials must be a positive integer"):
        tune(series, n_trials=0)
    with pytest.raises(ConfigError, match="study must be one of"):
        tune(series, study="prophet")
    with pytest.raises(ConfigError, match="feature_set must be one of"):
        build_model({"model": "lgbm", "feature_set": "huge"})
    assert np.isfinite(backtest_config(series, {"model": "drift"}, **FAST).score)
