"""Ids holding '/', '=', '(', ')', spaces, '%', '+', unicode, up to 512 characters reach
every route, in the path (raw '/' or '%2F') and in the ``id`` query form (serving.ids).

Starlette's TestClient percent-decodes a path twice, so ids here hold '%' only where it
starts no escape (``100%``); tests/integration/test_serving_ids.py sends ``%25``-encoded
escapes like a literal ``%2F`` in an id to a real uvicorn server.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest

from features.store import Store
from serving.app import create_app
from serving.ids import MAX_ID_LENGTH, forecast_href, keda_href, quote_id, scaling_href
from serving.settings import ServingSettings
from tests.serving.fixtures import (
    anomalies_frame,
    forecast_frame,
    load_frame,
    placement_frame,
    rightsizing_frame,
    savings_frame,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

READ = {"Authorization": "Bearer reader-key-1"}
LONG = ("team=" + "x/" * 300)[: MAX_ID_LENGTH - 1] + "é"  # 512 characters, '/' inside

SERIES = {
    "total": "total",
    "team=nlp/project=llm-chat/service=AmazonEKS": "service",
    "team=(untagged)/project=(untagged)": "project",
    "team=data eng/project=a+b": "project",
    "team=cost 100%/project=50% off": "project",
    "équipe=données/服务=训练 🚀": "project",
    "a//b/": "other",
    "/leading": "other",
    "batch": "other",  # shares its text with POST /v1/forecasts/batch
    LONG: "other",
}
WORKLOADS = {
    "eks-ml-prod/nlp/llm-finetune": {"level": 10.0, "cap": 4.0, "min": 2, "max": 20},
    "svc/keda": {"level": 3.0, "cap": 2.0, "min": 1, "max": 9},  # ends like the KEDA route
    "keda": {"level": 2.0, "cap": 1.0, "min": 1, "max": 9},
    "pool (gpu)=a100 + 100%/ü 2": {"level": 5.0, "cap": 2.5, "min": 1, "max": 8},
    "ecs//double/": {"level": 1.0, "cap": 0.5, "min": 1, "max": 4},
    LONG: {"level": 7.0, "cap": 3.0, "min": 1, "max": 12},
}


def _odd_anomalies() -> pd.DataFrame:
    a = anomalies_frame()
    a.loc[0, "team"] = "data eng/a+b (x)=100%"
    a.loc[0, "service"] = "Amazon EKS/ü"
    return a


def _odd_rightsizing() -> pd.DataFrame:
    r = rightsizing_frame()
    r.loc[0, "workload_id"] = "pool (gpu)=a100 + 100%/ü 2"
    return r


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "store.duckdb"
    with Store(path) as st:
        st.write_result(
            "forecast", forecast_frame(SERIES), run_id="r1", meta={"cutoff": "2024-12-31"}
        )
        st.write_result("load_forecast", load_frame(WORKLOADS), run_id="r1", meta={"freq": "h"})
        st.write_result("anomalies", _odd_anomalies(), run_id="r1")
        st.write_result("rightsizing", _odd_rightsizing(), run_id="r1")
        st.write_result("placement", placement_frame(), run_id="r1")
        st.write_result("savings", savings_frame(), run_id="r1")
    settings = ServingSettings(
        store=path, api_keys="reader-key-1", max_horizon=100, max_batch=20, reload_interval_s=3600
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, (r.request.url, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, Any] = r.json()
    return doc


def test_quote_id_makes_one_segment() -> None:
    assert quote_id("team=nlp/x y+z%") == "team%3Dnlp%2Fx%20y%2Bz%25"
    assert quote_id("ü") == "%C3%BC"
    assert quote_id("..") == "%2E%2E" and quote_id(".") == "%2E" and quote_id("a.b") == "a.b"
    assert forecast_href("a/b") == "/v1/forecasts/a%2Fb"
    assert scaling_href("a/b") == "/v1/scaling/a%2Fb"
    assert keda_href("a/b") == "/v1/scaling/a%2Fb/keda"
    assert scaling_href("a/keda") == "/v1/scaling?id=a%2Fkeda"
    assert keda_href("a/keda") == "/v1/keda?id=a%2Fkeda"
    assert len(LONG) == MAX_ID_LENGTH


def test_every_listed_series_is_reachable_in_every_form(client: TestClient) -> None:
    listing = _ok(client.get("/v1/series", headers=READ))
    assert listing["total"] == len(SERIES)
    assert {i["unique_id"] for i in listing["items"]} == set(SERIES)
    for item in listing["items"]:
        uid = item["unique_id"]
        assert item["href"] == forecast_href(uid)
        by_href = client.get(item["href"] + "?horizon=5", headers=READ)
        doc = _ok(by_href)
        assert doc["unique_id"] == uid and doc["horizon"] == 5
        assert doc["hierarchy"] == SERIES[uid]
        raw_slash = client.get(f"/v1/forecasts/{quote(uid, safe='/')}?horizon=5", headers=READ)
        by_query = client.get("/v1/forecasts", params={"id": uid, "horizon": 5}, headers=READ)
        again = client.get(item["href"] + "?horizon=5", headers=READ)  # the hot path
        assert raw_slash.content == by_query.content == again.content == by_href.content


def test_batch_takes_every_id(client: TestClient) -> None:
    r = client.post("/v1/forecasts/batch", json={"unique_ids": list(SERIES)}, headers=READ)
    doc = _ok(r)
    assert [f["unique_id"] for f in doc["forecasts"]] == list(SERIES)
    one = _ok(client.get(forecast_href("team=data eng/project=a+b"), headers=READ))
    assert doc["forecasts"][3] == one
    # GET on the batch path is the series named "batch", not the batch route.
    assert _ok(client.get("/v1/forecasts/batch", headers=READ))["unique_id"] == "batch"


def test_plus_is_literal_in_a_path_and_a_space_in_a_query(client: TestClient) -> None:
    uid = "team=data eng/project=a+b"
    doc = _ok(client.get("/v1/forecasts/team=data%20eng/project=a+b", headers=READ))
    assert doc["unique_id"] == uid
    doc = _ok(client.get("/v1/forecasts?id=team%3Ddata+eng%2Fproject%3Da%2Bb", headers=READ))
    assert doc["unique_id"] == uid
    r = client.get("/v1/forecasts?id=team%3Ddata+eng%2Fproject%3Da+b", headers=READ)
    assert r.status_code == 404 and "project=a b" in r.json()["detail"]


def test_every_listed_workload_is_reachable_in_every_form(client: TestClient) -> None:
    listing = _ok(client.get("/v1/workloads", headers=READ))
    assert listing["total"] == len(WORKLOADS)
    assert [i["workload_id"] for i in listing["items"]] == sorted(WORKLOADS)
    for item in listing["items"]:
        wid = item["workload_id"]
        assert item["href"] == scaling_href(wid) and item["keda_href"] == keda_href(wid)
        assert item["capacity_per_replica"] == WORKLOADS[wid]["cap"]
        assert item["horizon"] == 72 and item["interval_seconds"] == 3600
        sep = "&" if "?" in item["href"] else "?"
        by_href = client.get(item["href"] + sep + "horizon=24h", headers=READ)
        doc = _ok(by_href)
        assert doc["workload_id"] == wid and doc["horizon"] == 24
        assert min(doc["capacity_forecast"]["values"]) >= WORKLOADS[wid]["min"]
        by_query = client.get("/v1/scaling", params={"id": wid, "horizon": "24h"}, headers=READ)
        assert by_query.content == by_href.content
        keda = client.get(item["keda_href"] + sep + "window=2h", headers=READ)
        k = _ok(keda)
        assert k["workload_id"] == wid and k["window_seconds"] == 7200
        assert k["replicas"] == max(doc["capacity_forecast"]["values"][:2])
        k_query = client.get("/v1/keda", params={"id": wid, "window": "2h"}, headers=READ)
        assert k_query.content == keda.content
        if not wid.endswith("/keda"):  # the path forms, raw '/' and %2F
            raw = client.get(f"/v1/scaling/{quote(wid, safe='/')}?horizon=24h", headers=READ)
            assert raw.content == by_href.content
            raw_k = client.get(f"/v1/scaling/{quote(wid, safe='/')}/keda?window=2h", headers=READ)
            assert raw_k.content == keda.content


def test_workload_listing_filters(client: TestClient) -> None:
    doc = _ok(client.get("/v1/workloads", params={"prefix": "eks-ml-prod/"}, headers=READ))
    assert [i["workload_id"] for i in doc["items"]] == ["eks-ml-prod/nlp/llm-finetune"]
    page = _ok(client.get("/v1/workloads?limit=2&offset=1&metric=gpu", headers=READ))
    assert page["total"] == len(WORKLOADS) and len(page["items"]) == 2
    r = client.get("/v1/workloads?id=x", headers=READ)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "id"]


def test_unknown_and_oversized_ids(client: TestClient) -> None:
    ghost = "team=ghost/project=a b+(c)%"
    for path in (forecast_href(ghost), f"/v1/forecasts?id={quote_id(ghost)}"):
        r = client.get(path, headers=READ)
        assert r.status_code == 404 and repr(ghost) in r.json()["detail"]
    for path in (
        scaling_href(ghost),
        keda_href(ghost),
        f"/v1/scaling?id={quote_id(ghost)}",
        f"/v1/keda?id={quote_id(ghost)}",
    ):
        r = client.get(path, headers=READ)
        assert r.status_code == 404 and repr(ghost) in r.json()["detail"], path
    r = client.post("/v1/forecasts/batch", json={"unique_ids": ["total", ghost]}, headers=READ)
    assert r.status_code == 404 and repr(ghost) in r.json()["detail"]
    too_long = LONG + "x"
    for path, loc in (
        (forecast_href(too_long), ["path", "unique_id"]),
        (f"/v1/forecasts?id={quote_id(too_long)}", ["query", "id"]),
        (scaling_href(too_long), ["path", "workload_id"]),
        (keda_href(too_long), ["path", "workload_id"]),
        (f"/v1/keda?id={quote_id(too_long)}", ["query", "id"]),
    ):
        r = client.get(path, headers=READ)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, path
    for path in ("/v1/forecasts", "/v1/scaling", "/v1/keda"):  # the query form needs its id
        r = client.get(path, headers=READ)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "id"]


def test_insight_filters_take_the_same_ids(client: TestClient) -> None:
    team = "data eng/a+b (x)=100%"
    doc = _ok(client.get("/v1/anomalies", params={"team": team}, headers=READ))
    assert [a["team"] for a in doc["items"]] == [team]
    doc = _ok(client.get("/v1/anomalies", params={"service": "Amazon EKS/ü"}, headers=READ))
    assert doc["total"] == 1
    wid = "pool (gpu)=a100 + 100%/ü 2"
    doc = _ok(client.get("/v1/recommendations", params={"workload_id": wid}, headers=READ))
    assert [x["workload_id"] for x in doc["rightsizing"]] == [wid]
    long_team = _ok(client.get("/v1/anomalies", params={"team": LONG}, headers=READ))
    assert long_team["total"] == 0


def test_openapi_states_the_scheme(client: TestClient) -> None:
    app = client.app
    spec = app.openapi()  # type: ignore[attr-defined]
    assert "Addressing series and workloads" in spec["info"]["description"]
    paths = spec["paths"]
    for p in (
        "/v1/forecasts/{unique_id}",
        "/v1/forecasts",
        "/v1/forecasts/batch",
        "/v1/scaling/{workload_id}",
        "/v1/scaling/{workload_id}/keda",
        "/v1/scaling",
        "/v1/keda",
        "/v1/workloads",
    ):
        assert p in paths, p
    params = {q["name"]: q for q in paths["/v1/forecasts"]["get"]["parameters"]}
    assert params["id"]["in"] == "query" and params["id"]["schema"]["maxLength"] == 512
    item = spec["components"]["schemas"]["SeriesItem"]
    assert "href" in item["required"]
