"""Every id the API lists answers over real HTTP (uvicorn on 127.0.0.1), on a real demo store.

A short demo fleet (two months, 30 % scale) goes through the pipeline's ``forecast`` and
``load_forecast`` stages, so the ids are the ones production sees
(``team=nlp/project=llm-chat/service=AmazonEKS``, ``team=(untagged)``,
``eks-ml-prod/nlp/llm-finetune``); one extra series holds a literal ``%2F``, ``%25``,
``+``, a space and unicode (escapes that Starlette's TestClient would decode twice). Each
listed series is fetched by its ``href``, by raw ``/`` and by ``?id=``; each workload
through the scaling and KEDA routes; the served numbers are the store's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from features.store import Store
from serving.app import create_app
from serving.settings import ServingSettings
from tests.integration._serving import uvicorn_thread

pytestmark = pytest.mark.integration

KEY = "ids-reader-key-1"
ODD = "team=odd %2F%25 a+b/project=é (x)=100%"


def _demo_store(root: Path) -> Path:
    from features.demo import generate_demo_fleet
    from features.readers.cur import read_cur
    from features.readers.focus import read_focus
    from features.readers.metrics import read_utilization
    from forecaster.pipeline import PipelineConfig, run_pipeline

    m = generate_demo_fleet(root / "exports", seed=3, months=2, scale=0.3)
    path = root / "demo.duckdb"
    with Store(path) as st:
        st.ingest(read_focus(m.focus_path))
        st.ingest(read_cur(m.cur_path))
        st.ingest_utilization(read_utilization(m.metrics_path))
    cfg = PipelineConfig(
        stages=["forecast", "load_forecast"],
        horizon_days=14,
        backtest_windows=1,
        model="naive",
        reconcile="bottom_up",
        load_horizon_hours=24,
    )
    run = run_pipeline(path, cfg, required_tags=[], shared_values=[], run_id="ids-run")
    assert run.ok, run.to_dict()
    with Store(path) as st:
        fc = st.read_result("forecast")
        info = st.result_info("forecast")
        extra = fc[fc["unique_id"] == "total"].assign(unique_id=ODD, level="other")
        st.write_result(
            "forecast",
            pd.concat([fc, extra], ignore_index=True),
            run_id="ids-run",
            meta=info.get("meta") or {},
        )
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = _demo_store(tmp_path_factory.mktemp("serving-ids"))
    with Store(path, read_only=True) as st:
        fc, load = st.read_result("forecast"), st.read_result("load_forecast")
    settings = ServingSettings(
        store=path, api_keys=KEY, max_horizon=500, max_batch=100, reload_interval_s=3600
    )
    with (
        uvicorn_thread(create_app(settings)) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ) as client,
    ):
        yield {"client": client, "forecast": fc, "load": load}


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, (str(r.request.url), r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, Any] = r.json()
    return doc


def _close(served: list[float | None], stored: list[float]) -> bool:
    return len(served) == len(stored) and all(
        s is not None and math.isclose(s, t, rel_tol=1e-12, abs_tol=1e-9)
        for s, t in zip(served, stored, strict=True)
    )


def test_every_series_answers_with_the_stored_forecast(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    fc: pd.DataFrame = served["forecast"]
    listing = _ok(c.get("/v1/series", params={"limit": 10_000}))
    ids = {i["unique_id"] for i in listing["items"]}
    assert ids == set(fc["unique_id"].astype(str)) and ODD in ids
    assert any("/" in i and "(" in i for i in ids)  # the demo's nested, untagged ids
    for item in listing["items"]:
        uid = item["unique_id"]
        doc = _ok(c.get(item["href"]))
        g = fc[fc["unique_id"] == uid].sort_values("ds")
        assert doc["unique_id"] == uid and doc["horizon"] == len(g) == item["horizon"]
        assert doc["ds"][0] == item["start"]
        assert _close(doc["yhat"], g["yhat"].tolist()), uid
        by_level = {iv["level"]: iv for iv in doc["intervals"]}
        assert _close(by_level[80]["lo"], g["lo_80"].tolist())
        assert _close(by_level[95]["hi"], g["hi_95"].tolist())
        raw = c.get(f"/v1/forecasts/{quote(uid, safe='/')}")
        by_query = c.get("/v1/forecasts", params={"id": uid})
        assert raw.content == by_query.content == c.get(item["href"]).content
    batch = c.post("/v1/forecasts/batch", json={"unique_ids": sorted(ids)[:100]})
    assert _ok(batch)["count"] == min(len(ids), 100)


def test_every_workload_answers_scaling_and_keda(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    load: pd.DataFrame = served["load"]
    listing = _ok(c.get("/v1/workloads"))
    ids = [i["workload_id"] for i in listing["items"]]
    assert sorted(ids) == sorted(set(load["unique_id"].astype(str)))
    assert any(i.count("/") == 2 for i in ids)  # cluster/team/workload
    for item in listing["items"]:
        wid = item["workload_id"]
        g = load[load["unique_id"] == wid].sort_values("ds")
        doc = _ok(c.get(item["href"], params={"quantile": 0.5}))
        assert doc["workload_id"] == wid and doc["horizon"] == len(g)
        assert _close(doc["load_forecast"]["values"], g["yhat"].tolist()), wid
        cap = float(g["capacity_per_replica"].iloc[0])
        lo, hi = int(g["min_replicas"].iloc[0]), int(g["max_replicas"].iloc[0])
        want = [min(max(math.ceil(y / cap - 1e-9), max(lo, 0)), max(hi, lo)) for y in g["yhat"]]
        assert doc["capacity_forecast"]["values"] == want, wid
        same = c.get("/v1/scaling", params={"id": wid, "quantile": 0.5})
        raw = c.get(f"/v1/scaling/{quote(wid, safe='/')}", params={"quantile": 0.5})
        assert same.content == raw.content == c.get(item["href"], params={"quantile": 0.5}).content
        k = _ok(c.get(item["keda_href"], params={"window": "3h", "quantile": 0.5}))
        assert k["workload_id"] == wid and k["window_seconds"] == 3 * 3600
        assert math.isclose(k["load"], float(g["yhat"].iloc[:3].max()), abs_tol=1e-9)
        assert k["replicas"] == max(want[:3])
        k_query = c.get("/v1/keda", params={"id": wid, "window": "3h", "quantile": 0.5})
        k_raw = c.get(f"/v1/scaling/{quote(wid, safe='/')}/keda?window=3h&quantile=0.5")
        assert k_query.json() == k_raw.json() == k


def test_unknown_ids_name_themselves_over_http(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    ghost = "team=ghost/project=%2F +x"
    for path in (
        f"/v1/forecasts/{quote(ghost, safe='')}",
        f"/v1/scaling/{quote(ghost, safe='')}",
        f"/v1/scaling/{quote(ghost, safe='')}/keda",
    ):
        r = c.get(path)
        assert r.status_code == 404 and repr(ghost) in r.json()["detail"], path
