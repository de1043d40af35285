"""Which store and MLflow URI the settings pick (issue 14: one store, one variable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.store import default_store_path, record_current_store
from forecaster.config import Settings
from serving.settings import ServingSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in (
        "FORECASTER_STORE",
        "MLFLOW_TRACKING_URI",
        "FORECASTER_MLFLOW_TRACKING_URI",
        "FORECASTER_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FORECASTER_DATA_DIR", str(tmp_path))
    return tmp_path


def test_fresh_data_dir_uses_forecaster_duckdb(clean_env: Path) -> None:
    assert Settings().store_path == clean_env / "forecaster.duckdb"
    assert ServingSettings().store_path == clean_env / "forecaster.duckdb"


def test_demo_store_is_current_until_the_default_exists(clean_env: Path) -> None:
    demo = clean_env / "demo" / "forecaster.duckdb"
    demo.parent.mkdir()
    demo.write_bytes(b"")
    record_current_store(clean_env, demo)
    assert Settings().store_path == demo.resolve()
    assert ServingSettings().store_path == demo.resolve()
    (clean_env / "forecaster.duckdb").write_bytes(b"")
    assert default_store_path(clean_env) == clean_env / "forecaster.duckdb"


def test_a_recorded_store_that_is_gone_falls_back(clean_env: Path) -> None:
    record_current_store(clean_env, clean_env / "gone.duckdb")
    assert Settings().store_path == clean_env / "forecaster.duckdb"


def test_forecaster_store_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = clean_env / "demo.duckdb"
    demo.write_bytes(b"")
    record_current_store(clean_env, demo)
    monkeypatch.setenv("FORECASTER_STORE", str(clean_env / "mine.duckdb"))
    assert Settings().store_path == clean_env / "mine.duckdb"
    assert ServingSettings().store_path == clean_env / "mine.duckdb"


def test_one_mlflow_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECASTER_TRACKING_URI", "http://old:5000")  # no longer read
    assert ServingSettings().tracking_uri is None
    monkeypatch.setenv("FORECASTER_MLFLOW_TRACKING_URI", "http://setting:5000")
    assert ServingSettings().tracking_uri == "http://setting:5000"
    assert Settings().mlflow_tracking_uri == "http://setting:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert ServingSettings().tracking_uri == "http://env:5000"
