"""models.tracking: URI resolution, the embedded backend, runs that survive tracking failures."""

from __future__ import annotations

import http.server
import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from models.tracking import (
    TrackingWarning,
    artifact_root,
    git_commit,
    package_versions,
    probe,
    resolve_tracking_uri,
    tracked_run,
)
from tests.integration._mlflow import free_port


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("MLFLOW_TRACKING_URI", "FORECASTER_MLFLOW_TRACKING_URI", "FORECASTER_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    # A server that fails must cost seconds: no client retries in these tests.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return monkeypatch


def test_uri_resolution_order(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    assert (
        resolve_tracking_uri(data_dir=tmp_path)
        == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    )
    clean_env.setenv("FORECASTER_DATA_DIR", str(tmp_path / "dd"))
    assert resolve_tracking_uri().endswith("/dd/mlflow/mlflow.db")
    clean_env.setenv("FORECASTER_MLFLOW_TRACKING_URI", "http://setting:5000")
    assert resolve_tracking_uri() == "http://setting:5000"
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri() == "http://env:5000"
    assert resolve_tracking_uri("sqlite:////x.db") == "sqlite:////x.db"


def test_artifacts_of_the_embedded_backend_sit_next_to_the_database(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert artifact_root(uri) == (tmp_path / "mlflow" / "artifacts").as_uri()
    assert artifact_root("http://127.0.0.1:5000") is None


def test_embedded_run_records_params_metrics_dataset_artifacts_and_provenance(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
):
    from mlflow.tracking import MlflowClient

    df = pd.DataFrame({"unique_id": ["a", "a"], "ds": [1, 2], "y": [1.0, 2.0]})
    with tracked_run("forecast teams", kind="forecast", data_dir=tmp_path) as run:
        run.log_params({"h": 14, "model": {"name": "ets"}})
        run.log_metrics({"wape": 12.0, "team.wape": 9.5, "nan_metric": float("nan")})
        digest = run.log_dataset(df, name="team-daily", source=str(tmp_path / "store.duckdb"))
        run.log_frame(df, "forecast.parquet")
        run.log_dict({"rows": 2}, "summary.json")
    assert not run.offline
    uri = resolve_tracking_uri(data_dir=tmp_path)
    got = MlflowClient(uri).get_run(run.run_id)
    assert got.data.params == {"h": "14", "model.name": "ets"}
    assert got.data.metrics == {"wape": 12.0, "team.wape": 9.5}
    assert got.data.tags["forecaster.kind"] == "forecast"
    assert got.data.tags["pkg.pandas"] == pd.__version__
    assert got.data.tags["git_commit"].split("-")[0] == git_commit().split("-")[0]
    assert got.inputs.dataset_inputs[0].dataset.digest == digest
    stored = sorted(p.name for p in (tmp_path / "mlflow" / "artifacts").rglob("*") if p.is_file())
    assert stored == ["forecast.parquet", "summary.json"]
    assert not (Path.cwd() / "mlruns").exists()


def test_unreachable_server_warns_keeps_a_local_record_and_the_job_finishes(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
):
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with (
        pytest.warns(TrackingWarning, match="MLflow tracking failed .* kept locally"),
        tracked_run("train", tracking_uri=dead, data_dir=tmp_path) as run,
    ):
        run.log_params({"model": "lgbm"})
        run.log_metrics({"wape": 10.0})
        run.log_frame(pd.DataFrame({"yhat": [1.0, 2.0]}), "forecast.parquet")
        result = "forecast made"
    assert time.monotonic() - t0 < 20
    assert result == "forecast made"
    assert run.offline and "cannot reach" in (run.failure or "")
    record = json.loads((run.local_dir / "run.json").read_text())
    assert record["params"]["model"] == "lgbm"
    assert record["metrics"] == {"wape": 10.0}
    assert record["status"] == "FINISHED"
    kept = pd.read_parquet(run.local_dir / "artifacts" / "forecast.parquet")
    assert kept["yhat"].tolist() == [1.0, 2.0]


def test_errors_of_the_job_still_propagate_when_offline(clean_env, tmp_path: Path):
    dead = f"http://127.0.0.1:{free_port()}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        with pytest.raises(KeyError), tracked_run("x", tracking_uri=dead, data_dir=tmp_path) as run:
            raise KeyError("bad input")
    assert json.loads((run.local_dir / "run.json").read_text())["status"] == "FAILED"


class _Flaky(http.server.BaseHTTPRequestHandler):
    """A tracking server that is healthy, then answers 503 to every API call."""

    def do_GET(self) -> None:
        if self.path.startswith("/health"):
            self._send(200, b"OK")
        else:
            self._send(503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}')

    do_POST = do_GET

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_that_fails_after_the_health_check_does_not_break_the_run(
    clean_env, tmp_path: Path, flaky_server: str
):
    assert probe(flaky_server) is None
    with (
        pytest.warns(TrackingWarning, match="tracking failed"),
        tracked_run("detect", kind="detect", tracking_uri=flaky_server, data_dir=tmp_path) as run,
    ):
        run.log_metrics({"alerts": 3})
    assert run.offline
    assert json.loads((run.local_dir / "run.json").read_text())["metrics"] == {"alerts": 3.0}


def test_git_commit_and_package_versions(tmp_path: Path):
    commit = git_commit()
    assert commit is not None and len(commit.split("-")[0]) == 40
    assert git_commit(tmp_path) is None  # not a repository
    versions = package_versions()
    assert versions["pandas"] == pd.__version__
    assert "mlflow" in versions
