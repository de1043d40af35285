"""Delivery against real local receivers: an HTTP server and a moto SNS server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from features.exceptions import ConfigError
from forecaster.alerts.base import Alert
from forecaster.alerts.delivery import (
    Dispatcher,
    RetryPolicy,
    SentLog,
    SnsNotifier,
    WebhookNotifier,
    slack_payload,
)

pytestmark = pytest.mark.integration


def make_alert(i: int = 0, severity: str = "warning") -> Alert:
    return Alert(
        rule="cost_anomaly",
        title=f"Cost anomaly {i} in team=nlp " + "x" * 200,
        severity=severity,  # type: ignore[arg-type]
        scope={"team": "nlp"},
        period_start=f"2025-02-01 {i:02d}:00",
        period_end=f"2025-02-01 {i + 1:02d}:00",
        detected_at=f"2025-02-01 {i + 1:02d}:00",
        impact=123.45,
        owner="nlp-oncall",
        expected=10.0,
        actual=133.45,
        root_causes=(
            {
                "dimension": "resource_id",
                "value": "i-1",
                "expected": 0.0,
                "actual": 123.45,
                "delta": 123.45,
                "share": 1.0,
            },
        ),
    )


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and fails the first ``fail_first``."""

    def __init__(self, fail_first: int = 0, status: int = 500, retry_after: str | None = None):
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_first = fail_first
        self.status = status
        self.retry_after = retry_after
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                receiver.requests += 1
                if receiver.requests <= receiver.fail_first:
                    self.send_response(receiver.status)
                    if receiver.retry_after:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


FAST = RetryPolicy(max_attempts=4, base_delay=0.01, factor=2.0, max_delay=0.05, jitter=0.0)


def test_webhook_retries_then_delivers_once(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.json")
    sleeps = Sleeps()
    with Receiver(fail_first=2) as rx:
        d = Dispatcher([WebhookNotifier(rx.url)], sent_log=log, retry=FAST, sleep=sleeps)
        res = d.dispatch([make_alert(0), make_alert(1)])
        assert [(r.status, r.attempts) for r in res] == [("sent", 3), ("sent", 1)]
        assert sleeps.calls == [0.01, 0.02]  # exponential, bounded
        assert rx.requests == 4 and len(rx.bodies) == 2
        body = rx.bodies[0]
        assert set(body) == {"text", "blocks"} and "[WARNING]" in body["text"]
        assert body["blocks"][0]["type"] == "header"
        assert len(body["blocks"][0]["text"]["text"]) <= 150
        assert "i-1" in json.dumps(body["blocks"])
        # A second run (another Dispatcher, same log): nothing is sent again.
        again = Dispatcher([WebhookNotifier(rx.url)], sent_log=log, retry=FAST, sleep=sleeps)
        assert [r.status for r in again.dispatch([make_alert(0), make_alert(1)])] == [
            "duplicate",
            "duplicate",
        ]
        assert rx.requests == 4
    assert rx.url not in (tmp_path / "sent.json").read_text()  # no secrets in the log


def test_webhook_gives_up_after_max_attempts_and_on_client_errors(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.json")
    sleeps = Sleeps()
    with Receiver(fail_first=10) as rx:
        res = Dispatcher(
            [WebhookNotifier(rx.url)], sent_log=log, retry=FAST, sleep=sleeps
        ).dispatch([make_alert()])
        assert (
            res[0].status == "failed" and res[0].attempts == 4 and "HTTP 500" in str(res[0].error)
        )
        assert sleeps.calls == [0.01, 0.02, 0.04] and rx.requests == 4
    with Receiver(fail_first=10, status=400) as rx:
        res = Dispatcher(
            [WebhookNotifier(rx.url)], sent_log=log, retry=FAST, sleep=sleeps
        ).dispatch([make_alert()])
        assert res[0].status == "failed" and res[0].attempts == 1 and rx.requests == 1
    assert log.entries() == {}  # failures are not recorded: the next run retries


def test_retry_after_is_honoured_but_capped() -> None:
    sleeps = Sleeps()
    with Receiver(fail_first=1, status=429, retry_after="30") as rx:
        res = Dispatcher([WebhookNotifier(rx.url)], retry=FAST, sleep=sleeps).dispatch(
            [make_alert()]
        )
    assert res[0].status == "sent" and sleeps.calls == [0.05]


def test_unreachable_endpoint_fails_fast_and_dry_run_sends_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    res = Dispatcher(
        [WebhookNotifier(f"http://127.0.0.1:{port}/x", timeout=1)], retry=FAST, sleep=sleeps
    ).dispatch([make_alert()])
    assert res[0].status == "failed" and "unreachable" in str(res[0].error)
    assert len(sleeps.calls) == 3
    with Receiver() as rx:
        log = SentLog(tmp_path / "s.json")
        res = Dispatcher([WebhookNotifier(rx.url)], sent_log=log, dry_run=True).dispatch(
            [make_alert(), make_alert()]
        )
        assert [r.status for r in res] == ["dry_run", "duplicate"] and rx.requests == 0
        assert log.entries() == {}
        res = Dispatcher([WebhookNotifier(rx.url)], min_severity="critical").dispatch(
            [make_alert()]
        )
        assert res[0].status == "skipped" and rx.requests == 0


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="url"):
        WebhookNotifier("ftp://x")
    with pytest.raises(ConfigError, match="topic_arn"):
        SnsNotifier("not-an-arn")
    with pytest.raises(ConfigError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    p = slack_payload(make_alert(severity="critical"))
    assert p["text"].startswith("[CRITICAL]")


# -- SNS through a real moto server -------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_sns_publish_reaches_an_sqs_subscriber(
    moto_endpoint: str, aws_env: None, tmp_path: Path
) -> None:
    import boto3

    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="finops-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="finops-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    log = SentLog(tmp_path / "sent.json")
    notifier = SnsNotifier(topic, endpoint_url=moto_endpoint)
    alert = make_alert(3, severity="critical")
    res = Dispatcher([notifier], sent_log=log, retry=FAST).dispatch([alert, alert])
    assert [r.status for r in res] == ["sent", "duplicate"]
    assert Dispatcher([notifier], sent_log=log, retry=FAST).dispatch([alert])[0].status == (
        "duplicate"
    )

    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    bodies = [json.loads(m["Body"]) for m in msgs.get("Messages", [])]
    assert len(bodies) == 1
    envelope = bodies[0]
    assert envelope["TopicArn"] == topic
    assert (
        envelope["Subject"].startswith("[CRITICAL] Cost anomaly 3")
        and len(envelope["Subject"]) <= 100
    )
    payload = json.loads(envelope["Message"])
    assert payload["id"] == alert.id and payload["impact"] == pytest.approx(123.45)
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"


def test_sns_missing_topic_is_a_permanent_failure(moto_endpoint: str, aws_env: None) -> None:
    notifier = SnsNotifier("arn:aws:sns:us-east-1:123456789012:nope", endpoint_url=moto_endpoint)
    res = Dispatcher([notifier], retry=FAST, sleep=Sleeps()).dispatch([make_alert()])
    assert (
        res[0].status == "failed"
        and res[0].attempts == 1
        and "SNS publish failed" in str(res[0].error)
    )
