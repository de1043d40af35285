"""The API in process (Starlette's TestClient): routes, errors, filters, reload from the store.

tests/integration/test_serving_http.py runs the same app under uvicorn over real HTTP with
a real MLflow registry; these tests pin the contract of each route quickly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.store import Store
from serving.app import create_app
from serving.settings import ServingSettings
from tests.serving.fixtures import Z80, forecast_frame, load_frame, write_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

READ = {"Authorization": "Bearer reader-key-1"}
WRITE = {"Authorization": "Bearer admin-key-1"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store.duckdb")


@pytest.fixture
def client(store: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        store=store,
        api_keys="reader-key-1,admin-key-1:write",
        max_horizon=100,
        max_batch=3,
        reload_interval_s=3600,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_needs_no_key_and_everything_else_does(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    for path in ["/v1/series", "/v1/forecasts/total", "/v1/scaling/llm-serve", "/metrics"]:
        r = client.get(path)
        assert r.status_code == 401 and r.json() == {"detail": "not authenticated"}
        assert r.headers["www-authenticate"] == "Bearer"
        bad = client.get(path, headers={"Authorization": "Bearer nope-nope-nope"})
        assert bad.status_code == 401
        basic = client.get(path, headers={"Authorization": "Basic cmVhZGVyLWtleS0xOg=="})
        assert basic.status_code == 401


def test_read_key_cannot_write(client: TestClient) -> None:
    r = client.post("/v1/reload", headers=READ)
    assert r.status_code == 403 and r.json() == {"detail": "forbidden"}
    assert client.post("/v1/reload", headers=WRITE).json()["outcome"] == "unchanged"


def test_series_filters(client: TestClient) -> None:
    all_ = client.get("/v1/series", headers=READ).json()
    assert all_["total"] == 3
    teams = client.get("/v1/series?hierarchy=team", headers=READ).json()
    assert {i["unique_id"] for i in teams["items"]} == {"team=nlp", "team=vision"}
    nlp = client.get("/v1/series", params={"tag": "team:nlp"}, headers=READ).json()
    assert [i["unique_id"] for i in nlp["items"]] == ["team=nlp"]
    page = client.get("/v1/series?limit=1&offset=1", headers=READ).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    bad = client.get("/v1/series", params={"tag": "no-colon"}, headers=READ)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "tag", 0]


def test_forecast_answer(client: TestClient) -> None:
    doc = client.get("/v1/forecasts/team=nlp?horizon=4", headers=READ).json()
    assert doc["model"] == {
        "name": "demo-team-daily",
        "version": "3",
        "run_id": "abc123",
        "alias": None,
        "source": "store",
        "store_run_id": "run-1",
    }
    assert doc["forecast_time"] == "2024-12-31T00:00:00Z"
    assert doc["yhat"] == [200.0, 201.0, 202.0, 203.0]  # second series: 2 * 100 + day
    lo80 = doc["intervals"][0]
    assert lo80["level"] == 80 and lo80["lo"][0] == pytest.approx(200 - Z80 * 10)
    assert not doc["truncated"]


def test_interpolated_level_lies_between_the_stored_ones(client: TestClient) -> None:
    doc = client.get("/v1/forecasts/total?horizon=1&level=90&level=80", headers=READ).json()
    assert doc["level"] == [80, 90]
    i80, i90 = doc["intervals"]
    assert i90["lo"][0] < i80["lo"][0] < doc["yhat"][0] < i80["hi"][0] < i90["hi"][0]


def test_horizon_beyond_the_stored_one_is_truncated_and_says_so(client: TestClient) -> None:
    doc = client.get("/v1/forecasts/total?horizon=60", headers=READ).json()
    assert doc["horizon"] == 14 and doc["requested_horizon"] == 60 and doc["truncated"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("horizon=0", "horizon"),
        ("horizon=101", "horizon"),
        ("horizon=abc", "horizon"),
        ("level=99", "level"),
        ("level=-5", "level"),
    ],
)
def test_bad_forecast_parameters_are_named(client: TestClient, query: str, param: str) -> None:
    r = client.get(f"/v1/forecasts/total?{query}", headers=READ)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:2] == ["query", param]


def test_unknown_series_is_404_with_the_id(client: TestClient) -> None:
    r = client.get("/v1/forecasts/team=ghost", headers=READ)
    assert r.status_code == 404 and "team=ghost" in r.json()["detail"]


def test_batch(client: TestClient) -> None:
    body = {"unique_ids": ["total", "team=vision"], "horizon": 2}
    doc = client.post("/v1/forecasts/batch", json=body, headers=READ).json()
    assert doc["count"] == 2 and [f["unique_id"] for f in doc["forecasts"]] == body["unique_ids"]
    assert all(f["model"]["version"] == "3" for f in doc["forecasts"])
    missing = client.post(
        "/v1/forecasts/batch", json={"unique_ids": ["total", "ghost"]}, headers=READ
    )
    assert missing.status_code == 404 and "'ghost'" in missing.json()["detail"]
    big = client.post(
        "/v1/forecasts/batch", json={"unique_ids": ["a", "b", "c", "d"]}, headers=READ
    )
    assert big.status_code == 422 and big.json()["detail"][0]["loc"] == ["body", "unique_ids"]
    extra = client.post("/v1/forecasts/batch", json={"unique_ids": ["a"], "x": 1}, headers=READ)
    assert extra.status_code == 422


def test_scaling(client: TestClient) -> None:
    r = client.get("/v1/scaling/llm-serve?horizon=3h&quantile=0.5", headers=READ).json()
    # llm-serve: load = 10 + hour, 4 per replica, min 2, max 20
    assert r["load_forecast"]["values"] == [10.0, 11.0, 12.0]
    assert r["capacity_forecast"]["values"] == [3, 3, 3]
    assert r["capacity_forecast"]["timestamps"] == r["load_forecast"]["timestamps"]
    assert r["interval_seconds"] == 3600 and r["min_replicas"] == 2
    two_days = client.get("/v1/scaling/llm-serve?horizon=2d", headers=READ).json()
    assert two_days["horizon"] == 48 and two_days["quantile"] == 0.9
    floor = client.get("/v1/scaling/llm-serve?horizon=1&min_replicas=7", headers=READ).json()
    assert floor["capacity_forecast"]["values"] == [7]
    hi = client.get("/v1/scaling/llm-serve?horizon=1&quantile=0.975", headers=READ).json()
    assert hi["load_forecast"]["values"][0] > 10.0


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("horizon=48x", "horizon"),
        ("horizon=0h", "horizon"),
        ("horizon=999999", "horizon"),
        ("quantile=0.999", "quantile"),
        ("quantile=x", "quantile"),
        ("min_replicas=-1", "min_replicas"),
    ],
)
def test_bad_scaling_parameters_are_named(client: TestClient, query: str, param: str) -> None:
    r = client.get(f"/v1/scaling/llm-serve?{query}", headers=READ)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["query", param]


def test_unknown_workload(client: TestClient) -> None:
    r = client.get("/v1/scaling/ghost-workload", headers=READ)
    assert r.status_code == 404 and "ghost-workload" in r.json()["detail"]


def test_keda_metric(client: TestClient) -> None:
    k = client.get("/v1/scaling/llm-serve/keda?window=3h&quantile=0.5", headers=READ).json()
    assert k["load"] == 12.0 and k["replicas"] == 3 and k["window_seconds"] == 3 * 3600
    assert k["timestamp"] == "2025-01-01T02:00:00Z"


def test_anomalies(client: TestClient) -> None:
    doc = client.get("/v1/anomalies", headers=READ).json()
    assert doc["total"] == 3 and [a["impact"] for a in doc["items"]] == [812.0, 30.0, 10.0]
    assert doc["items"][2]["expected"] is None  # NaN in the store
    nlp = client.get("/v1/anomalies?team=nlp&min_impact=100", headers=READ).json()
    assert [a["id"] for a in nlp["items"]] == ["1"]
    late = client.get("/v1/anomalies", params={"since": "2024-12-15T00:00:00Z"}, headers=READ)
    assert [a["id"] for a in late.json()["items"]] == ["3"]


def test_recommendations(client: TestClient) -> None:
    doc = client.get("/v1/recommendations", headers=READ).json()
    assert [r["workload_id"] for r in doc["rightsizing"]] == ["llm-serve", "batch-etl"]
    assert doc["rightsizing"][1]["cpu_risk"] is None
    assert doc["savings_usd_per_month"] == 1970.0 and len(doc["placement"]) == 2
    only = client.get("/v1/recommendations?kind=savings&team=vision", headers=READ).json()
    assert only["rightsizing"] == [] and [s["kind"] for s in only["savings"]] == ["mig"]
    bad = client.get("/v1/recommendations?kind=coupons", headers=READ)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["query", "kind"]


def test_metrics_after_traffic(client: TestClient) -> None:
    client.get("/v1/forecasts/total", headers=READ)
    text = client.get("/metrics", headers=READ).text
    labels = 'method="GET",route="/v1/forecasts/{unique_id}",status="200"'
    assert f"forecaster_http_request_duration_seconds_count{{{labels}}} 1.0" in text
    assert "forecaster_forecast_age_seconds" in text
    assert 'forecaster_served_series{kind="forecast"} 3.0' in text
    assert "reader-key-1" not in text


def test_reload_swaps_when_the_store_changes(client: TestClient, store: Path) -> None:
    before = client.get("/v1/forecasts/total?horizon=1", headers=READ).json()
    write_store(store, run_id="run-2", forecast=forecast_frame(base=500.0))
    r = client.post("/v1/reload", headers=WRITE).json()
    assert r["outcome"] == "swapped"
    after = client.get("/v1/forecasts/total?horizon=1", headers=READ).json()
    assert before["yhat"] == [100.0] and after["yhat"] == [500.0]
    assert after["model"]["store_run_id"] == "run-2"


def test_last_good_results_survive_a_vanished_store(client: TestClient, store: Path) -> None:
    store.unlink()
    r = client.post("/v1/reload", headers=WRITE).json()
    assert r["outcome"] == "failed" and r["status"]["store"] == "unreadable"
    assert client.get("/v1/forecasts/total", headers=READ).status_code == 200
    status = client.get("/v1/status", headers=READ).json()
    assert "does not exist" in status["last_error"]


def test_empty_server_is_not_ready_but_answers(tmp_path: Path) -> None:
    settings = ServingSettings(store=tmp_path / "none.duckdb", api_keys="reader-key-1")
    with TestClient(create_app(settings)) as c:
        assert c.get("/readyz").status_code == 503
        assert c.get("/v1/forecasts/total", headers=READ).status_code == 503
        assert c.get("/v1/anomalies", headers=READ).json()["total"] == 0


def test_openapi_documents_the_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/forecasts/{unique_id}"]["get"]["parameters"]
    horizon = next(p for p in params if p["name"] == "horizon")
    assert any(s.get("maximum") == 100 for s in horizon["schema"]["anyOf"])
    assert "ApiKey" in spec["components"]["securitySchemes"]
    assert not math.isnan(0.0)


def test_remembered_answers_still_check_the_key(client: TestClient, store: Path) -> None:
    url = "/v1/scaling/llm-serve?horizon=2h&quantile=0.5"
    first = client.get(url, headers=READ)
    again = client.get(url, headers=READ)  # answered by the hot path
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong-key-000"}).status_code == 401
    assert client.get(url, headers={"Authorization": "Basic reader-key-1"}).status_code == 401
    text = client.get("/metrics", headers=READ).text
    labels = 'method="GET",route="/v1/scaling/{workload_id}",status="200"'
    assert f"forecaster_http_request_duration_seconds_count{{{labels}}} 2.0" in text
    # A new version drops what the old one remembered.
    with Store(store) as st:
        st.write_result("load_forecast", load_frame(horizon=5), run_id="run-2")
    assert client.post("/v1/reload", headers=WRITE).json()["outcome"] == "swapped"
    assert client.get(url, headers=READ).json()["model"]["store_run_id"] == "run-2"


def test_unknown_query_parameter_is_named(client: TestClient) -> None:
    r = client.get("/v1/forecasts/total?horizn=3", headers=READ)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "horizn"]
    assert "horizon" in r.json()["detail"][0]["msg"]
