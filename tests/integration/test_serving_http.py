"""The serving API over real HTTP: ``forecaster serve`` (uvicorn) with a real MLflow registry.

One module-scoped setup: an ``mlflow server`` process, a model registered with its
forecasts and made champion, a store with the other results, and ``forecaster serve`` as a
subprocess polling the registry every half second. The tests run in file order: answers
and provenance, auth, errors, the model fallback, a hot swap under load with zero failed
requests, then the registry going away while the last good model keeps serving.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.auth import hash_key
from tests.integration._mlflow import MlflowServer
from tests.integration._serving import get, serve_process, wait_for
from tests.serving.fixtures import write_store

pytestmark = pytest.mark.integration

NAME = "serving-it-daily"
READ = "it-reader-key-1"
WRITE = "it-admin-key-1"
FILE_KEY = "it-file-key-123"


def train_frame() -> pd.DataFrame:
    ds = pd.date_range("2024-10-01", periods=60, freq="D", tz="UTC")
    rng = np.random.default_rng(0)
    return pd.concat(
        [
            pd.DataFrame({"unique_id": uid, "ds": ds, "y": lvl + rng.normal(0, 2, len(ds))})
            for uid, lvl in (("team=nlp", 100.0), ("team=vision", 40.0))
        ],
        ignore_index=True,
    )


def register(uri: str, kind: str) -> str:
    from models import make_model
    from models.registry import log_forecaster, set_champion

    train = train_frame()
    model = make_model(kind).fit(train)
    fc = model.predict(7, level=[80, 95])
    ref = log_forecaster(
        model, name=NAME, train_df=train, metrics={"wape": 5.0}, forecasts=fc, tracking_uri=uri
    )
    set_champion(NAME, ref.version, tracking_uri=uri)
    return ref.version


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serving-http")
    mlflow = MlflowServer(root / "mlflow").start()
    try:
        v1 = register(mlflow.uri, "naive")
        store = write_store(root / "store.duckdb")
        keys = root / "keys"
        keys.write_text(f"ci read {hash_key(FILE_KEY)}\n")
        env = {
            "FORECASTER_STORE": str(store),
            "FORECASTER_MODEL_NAME": NAME,
            "FORECASTER_MLFLOW_TRACKING_URI": mlflow.uri,
            "FORECASTER_API_KEYS": f"{READ},{WRITE}:write",
            "FORECASTER_RELOAD_INTERVAL_S": "0.5",
            "FORECASTER_MAX_HORIZON": "60",
        }
        log = root / "serve.log"
        with serve_process(env, log, "--api-keys-file", str(keys), "--log-level", "info") as base:
            wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=120)
            yield {"base": base, "mlflow": mlflow, "v1": v1, "log": log, "store": store}
    finally:
        mlflow.stop()


def test_forecast_carries_the_champion(setup: dict[str, Any]) -> None:
    base = setup["base"]
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["model_name"] == NAME and ready["model_version"] == setup["v1"]
    doc = get(base, "/v1/forecasts/team=nlp?horizon=3", READ).json()
    m = doc["model"]
    assert (m["name"], m["version"], m["source"], m["alias"]) == (
        NAME,
        setup["v1"],
        "registry",
        "champion",
    )
    assert len(m["run_id"]) == 32 and doc["forecast_time"] is not None
    assert len(doc["yhat"]) == 3 and doc["ds"][0] > "2024-11-29"
    series = get(base, "/v1/series", READ).json()
    assert {s["unique_id"] for s in series["items"]} == {"team=nlp", "team=vision"}


def test_scaling_and_insights_come_from_the_store(setup: dict[str, Any]) -> None:
    base = setup["base"]
    s = get(base, "/v1/scaling/llm-serve?horizon=48h&quantile=0.9", READ).json()
    assert s["horizon"] == 48 and min(s["capacity_forecast"]["values"]) >= 2
    k = get(base, "/v1/scaling/llm-serve/keda?window=1h", READ).json()
    assert k["replicas"] == s["capacity_forecast"]["values"][0]
    assert get(base, "/v1/anomalies", READ).json()["total"] == 3


def test_auth_over_http(setup: dict[str, Any]) -> None:
    base = setup["base"]
    assert httpx.get(f"{base}/healthz").status_code == 200
    for key in (None, "wrong-key-123"):
        r = get(base, "/v1/forecasts/team=nlp", key)
        assert r.status_code == 401 and r.json() == {"detail": "not authenticated"}
    assert get(base, "/v1/forecasts/team=nlp", FILE_KEY).status_code == 200  # keys file
    r = httpx.post(f"{base}/v1/reload", headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 403 and r.json() == {"detail": "forbidden"}
    r = httpx.post(f"{base}/v1/reload", headers={"Authorization": f"Bearer {WRITE}"}, timeout=60)
    assert r.status_code == 200


def test_errors_over_http(setup: dict[str, Any]) -> None:
    base = setup["base"]
    r = get(base, "/v1/forecasts/team=ghost", READ)
    assert r.status_code == 404 and "team=ghost" in r.json()["detail"]
    r = get(base, "/v1/forecasts/team=nlp?horizon=61", READ)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "horizon"]
    r = get(base, "/v1/scaling/llm-serve?quantile=2", READ)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "quantile"]


def test_horizon_beyond_the_logged_forecasts_asks_the_model(setup: dict[str, Any]) -> None:
    doc = get(setup["base"], "/v1/forecasts/team=vision?horizon=20", READ).json()
    assert doc["model"]["source"] == "pyfunc" and doc["horizon"] == 20 and not doc["truncated"]


def test_hot_swap_under_load_drops_nothing(setup: dict[str, Any]) -> None:
    base = setup["base"]
    seen: dict[str, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {READ}"}, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.get(f"{base}/v1/forecasts/team=nlp?horizon=7")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:100]}")
                    continue
                v = r.json()["model"]["version"]
                seen[v] = seen.get(v, 0) + 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: sum(seen.values()) > 20, timeout=60)
        v2 = register(setup["mlflow"].uri, "drift")
        wait_for(lambda: seen.get(v2, 0) > 20, timeout=120)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert failures == []
    assert seen.get(setup["v1"], 0) > 0 and seen.get(v2, 0) > 0
    metrics = get(base, "/metrics", READ).text
    assert f'version="{v2}"' in metrics and 'forecaster_reloads_total{outcome="swapped"}' in metrics


def test_registry_down_keeps_the_last_good_model(setup: dict[str, Any]) -> None:
    base = setup["base"]
    before = get(base, "/v1/forecasts/team=nlp", READ).json()["model"]["version"]
    setup["mlflow"].stop()
    wait_for(lambda: get(base, "/v1/status", READ).json()["registry"] == "unreachable", 120)
    r = get(base, "/v1/forecasts/team=nlp", READ)
    assert r.status_code == 200 and r.json()["model"]["version"] == before
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert "forecaster_registry_up 0.0" in get(base, "/metrics", READ).text


def test_keys_never_reach_the_log(setup: dict[str, Any]) -> None:
    text = Path(setup["log"]).read_text(errors="replace")
    assert "Application startup complete" in text
    for key in (READ, WRITE, FILE_KEY, "wrong-key-123"):
        assert key not in text
