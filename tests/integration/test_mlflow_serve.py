"""``mlflow models serve`` answers a prediction request for a registered forecaster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pandas as pd
import pytest

from models import make_model
from models.registry import log_forecaster, promote_if_better
from tests.integration._mlflow import (
    MlflowServer,
    _mlflow_exe,
    free_port,
    shared_server,
    stop_process,
    wait_http,
)
from tests.models.builders import make_series

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    # One server process for the whole session (its start costs seconds).
    return shared_server(tmp_path_factory.mktemp("mlflow-server"))


def test_mlflow_models_serve_answers_a_request_frame(server: MlflowServer, tmp_path):
    df = make_series(3, 60)
    model = make_model("drift").fit(df)
    fc = model.predict(5)
    cv = model.cross_validation(df, h=5, n_windows=2)
    name = "it-serve-team-daily"
    ref = log_forecaster(
        model,
        name=name,
        train_df=df,
        metrics={"wape": 7.0},
        backtest=cv,
        forecasts=fc,
        tracking_uri=server.uri,
    )
    assert promote_if_better(name, ref.version, tracking_uri=server.uri).promoted

    port = free_port()
    log = tmp_path / "serve.log"
    # The scoring server runs `uvicorn` from PATH: put the venv's bin first.
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        *_mlflow_exe(),
        "models",
        "serve",
        "-m",
        f"models:/{name}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 120, proc=proc, log=log)
        body = {
            "dataframe_split": {
                "columns": ["unique_id", "h", "level"],
                "data": [["s1", 3, 90], ["s0", 2, None]],
            }
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
            answer = pd.DataFrame(json.loads(resp.read())["predictions"])

        bad = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(
                {"dataframe_split": {"columns": ["unique_id", "h"], "data": [["nope", 2]]}}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=60)
        assert "unknown series ['nope']" in err.value.read().decode()
    finally:
        stop_process(proc)

    assert list(answer["unique_id"]) == ["s1"] * 3 + ["s0"] * 2
    assert {"yhat", "lo_80", "hi_80", "lo_90", "hi_90", "lo_95", "hi_95"} <= set(answer.columns)
    want = fc.set_index(["unique_id", "ds"])["yhat"]
    got = answer.assign(ds=pd.to_datetime(answer["ds"], utc=True)).set_index(["unique_id", "ds"])
    assert got["yhat"].to_numpy() == pytest.approx(want.loc[got.index].to_numpy())
    assert (got["lo_95"] <= got["lo_90"]).all() and (got["lo_90"] <= got["lo_80"]).all()
