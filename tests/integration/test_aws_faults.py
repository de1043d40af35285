"""Faults of the AWS API, played by a small local HTTP server in the AWS JSON wire format.

moto always answers; real Cost Explorer throttles, fails with 5xx, and refuses expired
session tokens. The stub below answers each ``POST`` with the next scripted answer
(status, ``__type`` error body or a result page), as ``ce.<region>.amazonaws.com`` does for
``application/x-amz-json-1.1``, and records what it was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from features.exceptions import ConfigError, IngestError
from features.readers.aws._client import AwsOptions
from features.readers.aws.cost_explorer import CostExplorerQuery, ingest_cost_explorer
from features.store import Store
from forecaster.cli import app
from tests.integration._moto import dummy_aws_env

runner = CliRunner()


class StubAws:
    """Scripted answers; the last one repeats when the script runs out."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(
                    {"target": self.headers.get("X-Amz-Target"), "body": json.loads(body or b"{}")}
                )
                status, doc = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", f"req-{len(stub.requests)}")
                if "__type" in doc:
                    self.send_header("x-amzn-ErrorType", doc["__type"])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubAws:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubAws]:
    dummy_aws_env(monkeypatch, None)
    with StubAws() as s:
        yield s


def error(kind: str, message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"__type": kind, "message": message}


def page(day: str, amount: float, token: str | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": day, "End": day[:8] + f"{int(day[8:]) + 1:02d}"},
                "Total": {},
                "Groups": [
                    {
                        "Keys": ["AWS Lambda", "team$search"],
                        "Metrics": {
                            "AmortizedCost": {"Amount": str(amount), "Unit": "USD"},
                            "UnblendedCost": {"Amount": str(amount), "Unit": "USD"},
                            "UsageQuantity": {"Amount": "1", "Unit": "N/A"},
                        },
                    }
                ],
                "Estimated": False,
            }
        ],
        "DimensionValueAttributes": [],
    }
    if token:
        body["NextPageToken"] = token
    return 200, body


QUERY = CostExplorerQuery(date(2025, 1, 1), date(2025, 1, 3), tags=("team",))


def _ingest(stub: StubAws, store: Path, attempts: int = 3) -> Any:
    with Store(store) as st:
        return ingest_cost_explorer(
            st, QUERY, options=AwsOptions(endpoint_url=stub.url, max_attempts=attempts)
        )


def _stored_rows(store: Path) -> int:
    with Store(store, read_only=True) as st:
        return int(st.totals()["rows"])


def test_throttling_is_retried_with_backoff_then_succeeds(stub: StubAws, tmp_path: Path) -> None:
    stub.script = [
        error("ThrottlingException", "Rate exceeded"),
        error("ThrottlingException", "Rate exceeded"),
        page("2025-01-01", 5.25),
    ]
    rep = _ingest(stub, tmp_path / "s.duckdb", attempts=4)
    assert rep.effective_cost_stored == pytest.approx(5.25)
    assert len(stub.requests) == 3
    assert {r["target"] for r in stub.requests} == {"AWSInsightsIndexService.GetCostAndUsage"}
    assert stub.requests[0]["body"] == stub.requests[2]["body"]  # the same request again


def test_throttling_that_does_not_stop_is_a_clear_error(stub: StubAws, tmp_path: Path) -> None:
    stub.script = [error("ThrottlingException", "Rate exceeded")]
    store = tmp_path / "s.duckdb"
    res = runner.invoke(
        app,
        [
            "ingest",
            "cost-explorer",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-03",
            "--tag",
            "team",
            "--endpoint-url",
            stub.url,
            "--max-attempts",
            "3",
            "--store",
            str(store),
        ],
    )
    assert res.exit_code == 2
    assert "kept throttling" in res.output and "after 3 attempt(s)" in res.output
    assert "Traceback" not in res.output
    assert len(stub.requests) == 3
    assert _stored_rows(store) == 0


def test_server_errors_are_retried_then_reported(stub: StubAws, tmp_path: Path) -> None:
    stub.script = [error("InternalServerException", "We encountered an internal error", 500)]
    with pytest.raises(IngestError, match=r"HTTP 500 .*after 3 attempt\(s\)"):
        _ingest(stub, tmp_path / "s.duckdb")
    assert len(stub.requests) == 3


def test_expired_credentials_give_a_clear_message_without_retrying(
    stub: StubAws, tmp_path: Path
) -> None:
    stub.script = [
        error("ExpiredTokenException", "The security token included in the request is expired")
    ]
    with pytest.raises(ConfigError, match="expired or invalid: refresh them"):
        _ingest(stub, tmp_path / "s.duckdb")
    assert len(stub.requests) == 1
    res = runner.invoke(
        app,
        [
            "ingest",
            "cost-explorer",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-03",
            "--endpoint-url",
            stub.url,
            "--store",
            str(tmp_path / "t.duckdb"),
        ],
    )
    assert res.exit_code == 2 and "ExpiredTokenException" in res.output
    assert "Traceback" not in res.output


def test_a_page_missing_mid_way_stores_nothing(stub: StubAws, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    stub.script = [page("2025-01-01", 1.0)]
    _ingest(stub, store)  # something stored before
    before = _stored_rows(store)
    stub.requests.clear()
    stub.script = [
        page("2025-01-01", 2.0, token="page-2"),
        error("ServiceUnavailableException", "Service unavailable", 503),
    ]
    with Store(store) as st, pytest.raises(IngestError, match="page 2"):
        ingest_cost_explorer(
            st, QUERY, options=AwsOptions(endpoint_url=stub.url, max_attempts=2), incremental=False
        )
    assert stub.requests[1]["body"]["NextPageToken"] == "page-2"
    with Store(store, read_only=True) as st:
        assert int(st.totals()["rows"]) == before
        assert st.query("SELECT sum(effective_cost) FROM cost").iloc[0, 0] == pytest.approx(1.0)


def test_no_credentials_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dummy_aws_env(monkeypatch, None)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    with StubAws() as s:
        s.script = [page("2025-01-01", 1.0)]
        with pytest.raises(ConfigError, match="no usable AWS credentials"):
            _ingest(s, tmp_path / "s.duckdb")
        assert s.requests == []
