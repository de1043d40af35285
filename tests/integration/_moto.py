"""A real moto server on 127.0.0.1 for the integration tests, and dummy credentials.

``moto_url`` starts one ``ThreadedMotoServer`` per test module on a free port (port 0:
the OS picks) and stops it at teardown; ``aws_env`` resets its state before each test and
points boto3 at it through ``AWS_ENDPOINT_URL`` with dummy credentials, so production code
runs unchanged (no patching of boto3). Seeding helpers talk to moto's own HTTP API.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Keep any real AWS configuration of the machine out of the tests.
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """Base URL of a moto server running for the whole test module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def dummy_aws_env(monkeypatch: pytest.MonkeyPatch, endpoint_url: str | None) -> None:
    """Dummy credentials and, when given, ``AWS_ENDPOINT_URL`` for every client."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    if endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly reset moto server, dummy credentials and ``AWS_ENDPOINT_URL`` set to it."""
    post(moto_url, "/moto-api/reset", {})
    dummy_aws_env(monkeypatch, moto_url)
    return moto_url


def post(base: str, path: str, body: Any) -> int:
    """POST JSON to moto's own API; returns the HTTP status."""
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


def seed_cost_and_usage(base: str, results: list[dict[str, Any]]) -> None:
    """Queue Cost Explorer answers: moto hands them out in order, one per new request body."""
    status = post(base, "/moto-api/static/ce/cost-and-usage-results", {"results": results})
    assert status == 201, status


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
