"""Schemathesis over the published OpenAPI document, against a live uvicorn server.

Every operation gets generated requests (valid and invalid: both generation modes) sent
over real HTTP with a write-scope key; each answer must be no 5xx, a documented status
code, the documented content type, and a body that conforms to the response schema. The
run is bounded (``max_examples`` per operation, no deadline, derandomized so CI repeats
it) and a last test checks that at least 1,000 requests went out.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from serving.app import create_app
from serving.settings import ServingSettings
from tests.integration._serving import uvicorn_thread
from tests.serving.fixtures import scenario_baseline, write_store

pytestmark = pytest.mark.integration

KEY = "schemathesis-admin-key"
SENT = {"requests": 0}
# Not negative_data_rejection: the test adds the key to every request, so a generated
# "request without the required Authorization header" arrives valid and is rightly
# answered 200. Invalid parameters and bodies are still sent (both generation modes) and
# must come back as documented 4xx answers through status_code_conformance.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def make_app(store: Path | None) -> Any:
    return create_app(
        ServingSettings(
            store=store if store is not None else Path("unused.duckdb"),
            api_keys=f"{KEY}:write",
            max_horizon=500,
            max_batch=20,
            reload_interval_s=3600,
            scenario_time_limit_s=0.2,
        ),
        scenario_baseline=scenario_baseline,
    )


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = write_store(tmp_path_factory.mktemp("schemathesis") / "store.duckdb")
    with uvicorn_thread(make_app(store)) as base:
        # The document the server publishes is the one the tests were generated from.
        assert httpx.get(f"{base}/openapi.json").json() == SPEC
        yield base


# The OpenAPI document is generated from the app without starting it (no I/O), so the
# schema exists at collection time; the requests go to the live server of `api_base`.
SPEC = make_app(None).openapi()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    schema = schemathesis.openapi.from_dict(SPEC)


def _call(case: schemathesis.Case, base: str) -> None:
    SENT["requests"] += 1
    case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)


@schema.exclude(path="/v1/scenarios").parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case, api_base: str) -> None:
    _call(case, api_base)


@schema.include(path="/v1/scenarios").parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_scenarios_conform(case: schemathesis.Case, api_base: str) -> None:
    # Fewer examples: each valid scenario packs fleets (bounded by the time limit).
    _call(case, api_base)


def test_at_least_1000_generated_requests() -> None:
    if SENT["requests"] == 0:
        pytest.skip("the generated tests ran in another worker")
    print(f"schemathesis sent {SENT['requests']} requests")
    assert SENT["requests"] >= 1000, SENT


def test_the_fixture_store_path_is_a_file(tmp_path: Path) -> None:
    assert write_store(tmp_path / "s.duckdb").is_file()
