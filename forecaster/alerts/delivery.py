"""Alert delivery: a Slack-compatible webhook and AWS SNS, with retries, de-duplication, dry run.

* :class:`WebhookNotifier` POSTs ``{"text", "blocks"}`` JSON (Slack incoming
  webhooks, Mattermost, Teams workflows, or any HTTP receiver).
* :class:`SnsNotifier` publishes to an SNS topic with boto3 (the ``aws`` extra);
  ``endpoint_url`` points it at a local endpoint (moto, LocalStack).
* :class:`Dispatcher` sends each alert to each destination once: transient
  failures (connection errors, timeouts, HTTP 429/5xx, AWS throttling) are
  retried with bounded exponential backoff; a :class:`SentLog` (a JSON file
  under the data dir) remembers what was delivered, so the same alert id is
  never sent twice to the same destination, across runs. In dry-run mode
  nothing leaves the machine and nothing is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import random
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

from features.exceptions import ConfigError, DeliveryError
from forecaster.alerts.base import Alert, severity_rank

#: boto3 is optional (the ``aws`` extra); SNS delivery needs it.
BOTO3_INSTALLED = importlib.util.find_spec("boto3") is not None

Status = Literal["sent", "duplicate", "dry_run", "failed", "skipped"]

_SEVERITY_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}


# -- retries --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff.

    Attempt ``k`` (1-based) that fails with a retryable error waits
    ``min(max_delay, base_delay * factor**(k-1))``, times ``1 +- jitter``, before
    attempt ``k + 1``; at most ``max_attempts`` attempts in all.

    Parameters
    ----------
    max_attempts : int, default 4
    base_delay : float, default 0.5
        Seconds before the first retry.
    factor : float, default 2.0
    max_delay : float, default 8.0
        Cap of one wait (seconds); a server's ``Retry-After`` is capped too.
    jitter : float, default 0.1
        Relative random spread of each wait, in [0, 1).
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or (self.max_attempts < 1)
        ):
            raise ConfigError(
                f"parameter max_attempts must be an int >= 1, got {self.max_attempts!r}"
            )
        for name in ("base_delay", "max_delay"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"parameter {name} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.factor, int | float) or not self.factor >= 1:
            raise ConfigError(f"parameter factor must be >= 1, got {self.factor!r}")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter < 1:
            raise ConfigError(f"parameter jitter must be in [0, 1), got {self.jitter!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        d = min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))
        if self.jitter and rng is not None:
            d *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return max(0.0, min(d, self.max_delay))


# -- notifiers ------------------------------------------------------------------------------
@runtime_checkable
class Notifier(Protocol):
    """A destination: ``send`` delivers one alert or raises :class:`DeliveryError`."""

    @property
    def destination(self) -> str:
        """Stable id of the destination (no secrets), used by the sent log."""
        ...

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise ``DeliveryError(retryable=...)`` on failure."""
        ...


def _money(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"${v:,.2f}"


def _fmt_value(alert: Alert, v: float | None) -> str:
    # Utilization and share rules carry ratios, not dollars.
    if alert.rule in ("idle_resource", "spot_policy") and v is not None and math.isfinite(v):
        return f"{100 * v:.1f}%"
    return _money(v)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack-compatible message: a ``text`` fallback and Block Kit ``blocks``.

    Respects Slack's limits (header 150 characters, at most 10 fields).
    """
    head = f"[{alert.severity.upper()}] {alert.title}"
    period = f"{alert.period_start:%Y-%m-%d %H:%M} to {alert.period_end:%Y-%m-%d %H:%M} UTC"
    fields = [
        f"*Severity*\n{alert.severity}",
        f"*Owner*\n{alert.owner or 'unassigned'}",
        f"*Scope*\n{alert.scope_label}",
        f"*Period*\n{period}",
        f"*Expected*\n{_fmt_value(alert, alert.expected)}",
        f"*Actual*\n{_fmt_value(alert, alert.actual)}",
        f"*Impact*\n{_money(alert.impact)}",
    ]
    if alert.probability is not None and alert.rule == "budget_forecast":
        fields.append(f"*Probability*\n{alert.probability:.0%}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150], "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in fields[:10]]},
    ]
    if alert.root_causes:
        lines = []
        for rc in alert.root_causes[:5]:
            delta = rc.get("delta")
            sign = "+" if (delta or 0) >= 0 else "-"
            d = f"{sign}{_money(abs(delta))}" if delta is not None else "n/a"
            lines.append(
                f"- `{rc.get('dimension')}` = *{rc.get('value')}*: {d} "
                f"({_money(rc.get('expected'))} expected, {_money(rc.get('actual'))} actual)"
            )
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ("*Root causes*\n" + "\n".join(lines))[:3000]},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{_SEVERITY_EMOJI.get(alert.severity, '')} rule `{alert.rule}` - "
                    f"alert `{alert.id}` - detected {alert.detected_at:%Y-%m-%d %H:%M} UTC - "
                    f"mark as planned: `forecaster feedback {alert.id} --expected`",
                }
            ],
        }
    )
    text = f"{head} | owner {alert.owner or 'unassigned'} | impact {_money(alert.impact)}"
    return {"text": text, "blocks": blocks}


class WebhookNotifier:
    """POST a Slack-compatible JSON message to a webhook URL.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    timeout : float, default 5.0
        Seconds per request.
    headers : mapping of str to str, optional
        Extra headers (e.g. an authorization token).
    payload : callable, optional
        ``alert -> dict``; default :func:`slack_payload`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        payload: Callable[[Alert], dict[str, Any]] = slack_payload,
    ) -> None:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"parameter url must be an http(s) URL, got {url!r}")
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"parameter timeout must be a number > 0, got {timeout!r}")
        self.url = url
        self.timeout = float(timeout)
        self.headers = dict(headers or {})
        self.payload = payload

    @property
    def destination(self) -> str:
        # Webhook URLs embed secrets: the log keeps a digest, not the URL.
        return "webhook:" + hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def send(self, alert: Alert) -> None:
        body = json.dumps(self.payload(alert)).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            retryable = exc.code in (408, 425, 429) or exc.code >= 500
            err = DeliveryError(
                f"webhook answered HTTP {exc.code} {exc.reason}", retryable=retryable
            )
            err.retry_after = _parse_retry_after(retry_after)  # type: ignore[attr-defined]
            raise err from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook unreachable: {reason}", retryable=True) from None


def _parse_retry_after(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


class SnsNotifier:
    """Publish alerts to an AWS SNS topic (boto3).

    The message is the alert as JSON (``Alert.to_dict``); the subject is its
    title (SNS caps it at 100 characters); message attributes carry
    ``severity``, ``rule``, ``owner`` and ``alert_id`` for subscription filter
    policies. boto3's own retries are switched off: :class:`Dispatcher`'s
    backoff is the only one, so attempts stay bounded.

    Parameters
    ----------
    topic_arn : str
        ``arn:aws:sns:REGION:ACCOUNT:NAME``.
    client : boto3 SNS client, optional
        Default: a client for the topic's region (and ``endpoint_url``).
    endpoint_url : str, optional
        A local endpoint (moto server, LocalStack).
    region_name : str, optional
        Default: the region in the ARN.
    """

    def __init__(
        self,
        topic_arn: str,
        *,
        client: Any | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        parts = topic_arn.split(":") if isinstance(topic_arn, str) else []
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
            raise ConfigError(
                "parameter topic_arn must look like arn:aws:sns:REGION:ACCOUNT:NAME, "
                f"got {topic_arn!r}"
            )
        self.topic_arn = topic_arn
        self.region_name = region_name or parts[3] or "us-east-1"
        self.endpoint_url = endpoint_url
        self._client = client

    @property
    def destination(self) -> str:
        return f"sns:{self.topic_arn}"

    @property
    def client(self) -> Any:
        if self._client is None:
            if not BOTO3_INSTALLED:
                raise DeliveryError(
                    "SNS delivery needs boto3: pip install 'forecaster[aws]' (or boto3)"
                )
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "sns",
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                config=Config(
                    retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10
                ),
            )
        return self._client

    def send(self, alert: Alert) -> None:
        subject = " ".join(f"[{alert.severity.upper()}] {alert.title}".split())
        subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:100]
        attrs = {
            "severity": alert.severity,
            "rule": alert.rule,
            "alert_id": alert.id,
            "owner": alert.owner or "unassigned",
        }
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:  # pragma: no cover - boto3 always brings botocore
            raise DeliveryError("SNS delivery needs boto3") from None
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=subject,
                Message=json.dumps(alert.to_dict()),
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()
                },
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
            retryable = status >= 500 or code in (
                "Throttling",
                "ThrottlingException",
                "ThrottledException",
                "TooManyRequestsException",
                "InternalError",
                "InternalFailure",
                "ServiceUnavailable",
                "KMSThrottling",
            )
            raise DeliveryError(
                f"SNS publish failed: {code or status}: {exc}", retryable=retryable
            ) from None
        except BotoCoreError as exc:
            # Connection errors, timeouts, missing credentials (not retryable).
            retryable = not type(exc).__name__.startswith(("NoCredentials", "NoRegion"))
            raise DeliveryError(f"SNS publish failed: {exc}", retryable=retryable) from None


# -- sent log -------------------------------------------------------------------------------
class SentLog:
    """What was delivered where: a JSON file, written atomically under a lock.

    Parameters
    ----------
    path : str or Path
        The JSON file (created on first record), e.g. ``DATA_DIR/alerts/sent.json``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a+") as fh:
            try:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX: best effort
                pass
            yield

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"file {self.path}: sent log is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"file {self.path}: sent log must be a JSON object")
        return data

    def _write(self, data: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    @staticmethod
    def _key(destination: str, alert_id: str) -> str:
        return f"{destination}|{alert_id}"

    def was_sent(self, destination: str, alert_id: str) -> bool:
        """True when ``alert_id`` was delivered to ``destination``."""
        return self._key(destination, alert_id) in self._read()

    def record(self, destination: str, alert: Alert, attempts: int) -> None:
        """Remember a delivery."""
        with self._locked():
            data = self._read()
            data[self._key(destination, alert.id)] = {
                "sent_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "attempts": attempts,
                "rule": alert.rule,
                "title": alert.title,
            }
            self._write(data)

    def entries(self) -> dict[str, Any]:
        """All records, ``"destination|alert_id" -> {sent_at, attempts, rule, title}``."""
        return self._read()


# -- dispatch -------------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    """Outcome of one alert at one destination."""

    alert_id: str
    destination: str
    status: Status
    attempts: int = 0
    error: str | None = None
    waited_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "destination": self.destination,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "waited_s": round(self.waited_s, 3),
        }


@dataclass
class Dispatcher:
    """Send alerts to destinations once, with retries.

    Parameters
    ----------
    notifiers : sequence of Notifier
    sent_log : SentLog, optional
        Without it, de-duplication only holds within one call.
    retry : RetryPolicy
    dry_run : bool, default False
        Report what would be sent; send and record nothing.
    min_severity : {"info", "warning", "critical"}, default "info"
        Alerts below it are skipped.
    sleep : callable, default time.sleep
        Injected for tests.
    seed : int, optional
        Seed of the backoff jitter.
    """

    notifiers: Sequence[Notifier]
    sent_log: SentLog | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dry_run: bool = False
    min_severity: str = "info"
    sleep: Callable[[float], None] = time.sleep
    seed: int | None = None

    def __post_init__(self) -> None:
        severity_rank(self.min_severity)
        self._rng = random.Random(self.seed)

    def dispatch(self, alerts: Sequence[Alert]) -> list[DeliveryResult]:
        """Deliver every alert to every destination; one result per pair."""
        results: list[DeliveryResult] = []
        seen: set[tuple[str, str]] = set()
        floor = severity_rank(self.min_severity)
        for alert in alerts:
            for n in self.notifiers:
                dest = n.destination
                if (dest, alert.id) in seen or (
                    self.sent_log is not None and self.sent_log.was_sent(dest, alert.id)
                ):
                    results.append(DeliveryResult(alert.id, dest, "duplicate"))
                    continue
                seen.add((dest, alert.id))
                if severity_rank(alert.severity) < floor:
                    results.append(DeliveryResult(alert.id, dest, "skipped"))
                    continue
                if self.dry_run:
                    results.append(DeliveryResult(alert.id, dest, "dry_run"))
                    continue
                results.append(self._send(n, alert))
        return results

    def _send(self, n: Notifier, alert: Alert) -> DeliveryResult:
        waited = 0.0
        last: DeliveryError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                n.send(alert)
            except DeliveryError as exc:
                last = exc
                if not exc.retryable or attempt == self.retry.max_attempts:
                    break
                delay = self.retry.delay(attempt, self._rng)
                hint = getattr(exc, "retry_after", None)
                if hint is not None:
                    delay = min(max(delay, float(hint)), self.retry.max_delay)
                self.sleep(delay)
                waited += delay
                continue
            if self.sent_log is not None:
                self.sent_log.record(n.destination, alert, attempt)
            return DeliveryResult(alert.id, n.destination, "sent", attempt, None, waited)
        return DeliveryResult(
            alert.id, n.destination, "failed", attempt, str(last) if last else None, waited
        )
