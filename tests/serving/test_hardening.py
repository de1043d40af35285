"""Issue 15 (API side): every bad input is a 4xx, bounded, and authentication comes first."""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from serving import auth
from serving.app import create_app, uvicorn_config
from serving.auth import KeyRing
from serving.settings import ServingSettings
from tests.serving.fixtures import scenario_baseline, write_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

READ = {"Authorization": "Bearer reader-key-1"}
WRITE = {"Authorization": "Bearer admin-key-1"}
JSON = {"Content-Type": "application/json"}


def _settings(store: Path, **kw: object) -> ServingSettings:
    base: dict[str, object] = {
        "store": store,
        "api_keys": "reader-key-1,admin-key-1:write",
        "max_horizon": 100,
        "max_batch": 3,
        "reload_interval_s": 3600,
        "max_request_bytes": 64 * 1024,
    }
    base.update(kw)
    return ServingSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = write_store(tmp_path / "store.duckdb")
    app = create_app(_settings(store), scenario_baseline=scenario_baseline)
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_422(client: TestClient, literal: str) -> None:
    body = f'{{"unique_ids": ["total"], "level": [{literal}]}}'
    r = client.post("/v1/forecasts/batch", content=body, headers={**READ, **JSON})
    assert r.status_code == 422 and "finite" in r.text
    body = f'{{"name": "s1", "growth_pct_per_month": {{"nlp": {literal}}}}}'
    r = client.post("/v1/scenarios", content=body, headers={**WRITE, **JSON})
    assert r.status_code == 422 and "finite" in r.text


def test_since_past_the_datetime_range_is_422(client: TestClient) -> None:
    for since in ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9000-01-01"]:
        r = client.get("/v1/anomalies", params={"since": since}, headers=READ)
        assert r.status_code == 422, since
        assert r.json()["detail"][0]["loc"] == ["query", "since"]


def test_unknown_query_parameters_need_a_key_first(client: TestClient) -> None:
    r = client.get("/v1/forecasts/total?horizn=3")
    assert r.status_code == 401 and "horizon" not in r.text
    r = client.get("/v1/forecasts/total?horizn=3", headers={"Authorization": "Bearer wrong-key"})
    assert r.status_code == 401
    assert client.get("/v1/forecasts/total?horizn=3", headers=READ).status_code == 422


def test_failed_keys_are_rate_limited_per_client(client: TestClient) -> None:
    bad = {"Authorization": "Bearer wrong-key-0"}
    codes = [client.get("/v1/series", headers=bad).status_code for _ in range(10)]
    assert codes == [401] * 10
    r = client.get("/v1/series", headers=bad)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert client.get("/v1/series", headers=READ).status_code == 429  # blocked address
    assert client.get("/healthz").status_code == 200


def test_limiter_window_expires() -> None:
    lim = auth.FailedAuthLimiter(max_failures=3, window_s=10)
    for t in (0.0, 1.0, 2.0):
        lim.failed("a", now=t)
    assert lim.retry_after("a", now=3.0) == 7
    assert lim.retry_after("b", now=3.0) is None
    assert lim.retry_after("a", now=10.5) is None


def test_huge_bodies_are_413_and_422_bodies_do_not_echo_inputs(client: TestClient) -> None:
    huge = '{"name": "%s"}' % ("x" * 200_000)
    r = client.post("/v1/scenarios", content=huge, headers={**WRITE, **JSON})
    assert r.status_code == 413 and len(r.content) < 1000
    big = '{"name": "%s"}' % ("x" * 50_000)
    r = client.post("/v1/scenarios", content=big, headers={**WRITE, **JSON})
    assert r.status_code == 422 and len(r.content) < 2000
    ids = '{"unique_ids": ["%s"]}' % ("y" * 50_000)
    r = client.post("/v1/forecasts/batch", content=ids, headers={**READ, **JSON})
    assert r.status_code == 422 and len(r.content) < 2000


def test_lookup_compares_the_presented_digest_with_each_stored_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ring = KeyRing.from_sources("reader-key-1,admin-key-1:write")
    calls: list[tuple[bytes | str, bytes | str]] = []
    real = hmac.compare_digest

    def spy(a: bytes | str, b: bytes | str) -> bool:
        calls.append((a, b))
        return real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert ring.lookup("unknown-key-1") is None
    assert len(calls) == 2 and all(a != b for a, b in calls)
    calls.clear()
    assert ring.lookup("admin-key-1") is not None
    stored = {auth.hash_key(k) for k in ("reader-key-1", "admin-key-1")}
    assert len(calls) == 2 and {str(b, "ascii") for _, b in calls} == stored


def test_uvicorn_limits(tmp_path: Path) -> None:
    s = _settings(tmp_path / "s.duckdb", timeout_keep_alive_s=7, limit_concurrency=50)
    cfg = uvicorn_config(object(), s)
    assert cfg.timeout_keep_alive == 7 and cfg.limit_concurrency == 50
    assert cfg.h11_max_incomplete_event_size == 16 * 1024
    assert cfg.http.__name__ == "HeaderTimeoutH11Protocol"


_NUMS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1e308", "0"])
_TIMES = st.sampled_from(
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00+23:59", "9999-12-31", "2025-01-01Z"]
)


@hsettings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    num=_NUMS,
    since=_TIMES,
    text=st.text(max_size=50),
    pad=st.sampled_from([0, 10, 70_000]),
)
def test_fuzz_no_5xx_and_no_internals(
    client: TestClient, num: str, since: str, text: str, pad: int
) -> None:
    name = text.replace("\\", "").replace('"', "") + "z" * pad
    answers = [
        client.post(
            "/v1/scenarios",
            content=f'{{"name": "{name}", "growth_pct_per_month": {{"nlp": {num}}}}}',
            headers={**WRITE, **JSON},
        ),
        client.post(
            "/v1/forecasts/batch",
            content='{{"unique_ids": ["{}"], "horizon": {}}}'.format(name or "total", num),
            headers={**READ, **JSON},
        ),
        client.get("/v1/anomalies", params={"since": since, "min_impact": num}, headers=READ),
        client.get("/v1/forecasts/total", params={"horizon": num, "x" + text: 1}, headers=READ),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
        assert "Traceback" not in r.text and "/site-packages/" not in r.text
        assert len(r.content) < 20_000
