"""Analyst feedback: an alert was expected (planned activity) or a real problem.

Feedback is stored in a JSON file under the data dir (``alerts/feedback.json``)
and used three ways:

* **Suppression by id**: an alert marked expected is not raised again (same id:
  same rule, scope and period). The latest feedback on an id wins, so marking
  it "not expected" later lifts the suppression.
* **Suppressed pattern**: with ``pattern=True`` every alert of the same rule and
  scope (any period) is suppressed, optionally ``until`` a date: a recurring
  planned job.
* **Known events**: an expected alert whose period and scope are known becomes a
  :class:`~forecaster.alerts.base.KnownEvent` for the detection rules (anomaly,
  spike, daily threshold): other alerts it explains are suppressed too, and the
  streaming detector skips those hours instead of learning them as normal.

Feedback marked "not expected" is kept as a confirmed label for evaluation.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.exceptions import ConfigError
from forecaster.alerts.base import Alert, KnownEvent

#: Rules whose alerts a known event from feedback explains (not budgets or policies).
DETECTION_RULES: tuple[str, ...] = ("cost_change", "cost_anomaly", "spend_spike", "daily_spend")


@dataclass(frozen=True)
class Feedback:
    """One analyst verdict on an alert.

    Attributes
    ----------
    alert_id : str
    expected : bool
        True: planned activity (suppress); False: a real anomaly (a label).
    note : str
    at : str
        ISO 8601 time of the verdict.
    by : str, optional
        Who gave it.
    pattern : str, optional
        The alert's pattern hash (rule + scope), when the alert was known.
    suppress_pattern : bool
        Suppress every alert of that pattern, not only this id.
    until : str, optional
        ISO 8601 end of a pattern suppression.
    rule, scope, period_start, period_end : optional
        The alert's identity, when known (used to build known events).
    """

    alert_id: str
    expected: bool
    note: str = ""
    at: str = ""
    by: str | None = None
    pattern: str | None = None
    suppress_pattern: bool = False
    until: str | None = None
    rule: str | None = None
    scope: dict[str, str] = field(default_factory=dict)
    period_start: str | None = None
    period_end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ts(v: Any, name: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"parameter {name} must be a timestamp, got {v!r}") from exc
    if t is pd.NaT:
        raise ConfigError(f"parameter {name} must be a timestamp, got {v!r}")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class FeedbackStore:
    """Analyst feedback in a JSON file.

    Parameters
    ----------
    path : str or Path
        The JSON file, e.g. ``DATA_DIR/alerts/feedback.json`` (created on first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- storage ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as fh:
            try:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX: best effort
                pass
            yield

    def records(self) -> list[Feedback]:
        """Every verdict, oldest first."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"file {self.path}: feedback is not valid JSON ({exc})") from None
        items = data.get("feedback", []) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"file {self.path}: expected an object with a 'feedback' list")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(Feedback(**item))
            except TypeError as exc:
                raise ConfigError(f"file {self.path}: feedback[{i}] is malformed ({exc})") from None
        return out

    def _write(self, records: list[Feedback]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"feedback": [r.to_dict() for r in records]}, fh, indent=1)
        os.replace(tmp, self.path)

    def add(
        self,
        alert_id: str,
        expected: bool,
        note: str = "",
        *,
        alert: Alert | Mapping[str, Any] | None = None,
        pattern: bool = False,
        until: Any | None = None,
        by: str | None = None,
    ) -> Feedback:
        """Record a verdict on ``alert_id``.

        Parameters
        ----------
        alert_id : str
            The alert's id (16 hex digits).
        expected : bool
            True for planned activity (suppress), False for a real anomaly.
        note : str
        alert : Alert or its ``to_dict()``, optional
            The alert itself: its scope and period make a known event, its
            pattern allows ``pattern=True``.
        pattern : bool
            Suppress every alert with the same rule and scope.
        until : timestamp-like, optional
            End of the pattern suppression.
        by : str, optional
        """
        if not isinstance(alert_id, str) or not alert_id.strip():
            raise ConfigError(f"parameter alert_id must be a non-empty string, got {alert_id!r}")
        info: dict[str, Any] = {}
        if isinstance(alert, Alert):
            info = alert.to_dict()
        elif isinstance(alert, Mapping):
            info = dict(alert)
        if info and info.get("id") not in (None, alert_id):
            raise ConfigError(f"parameter alert is alert {info.get('id')!r}, not {alert_id!r}")
        if pattern and not info.get("pattern"):
            raise ConfigError(
                "a pattern suppression needs the alert itself (its rule and scope); "
                f"alert {alert_id} is not among the last alerts listed"
            )
        fb = Feedback(
            alert_id=alert_id.strip(),
            expected=bool(expected),
            note=note,
            at=pd.Timestamp.now(tz="UTC").isoformat(),
            by=by,
            pattern=info.get("pattern"),
            suppress_pattern=bool(pattern),
            until=_ts(until, "until").isoformat() if until is not None else None,
            rule=info.get("rule"),
            scope=dict(info.get("scope") or {}),
            period_start=info.get("period_start"),
            period_end=info.get("period_end"),
        )
        with self._locked():
            recs = self.records()
            recs.append(fb)
            self._write(recs)
        return fb

    # -- use ----------------------------------------------------------------------------
    def latest(self, alert_id: str) -> Feedback | None:
        """The latest verdict on ``alert_id``."""
        found = None
        for r in self.records():
            if r.alert_id == alert_id:
                found = r
        return found

    def reason(self, alert: Alert) -> str | None:
        """Why ``alert`` is suppressed by feedback, or None (see the module docstring)."""
        by_id: Feedback | None = None
        by_pattern: Feedback | None = None
        for r in self.records():
            if r.alert_id == alert.id:
                by_id = r
            if r.suppress_pattern and r.pattern == alert.pattern:
                by_pattern = r
        if by_id is not None:
            return f"analyst: expected ({by_id.note or 'planned'})" if by_id.expected else None
        if (
            by_pattern is not None
            and by_pattern.expected
            and (by_pattern.until is None or alert.period_start < _ts(by_pattern.until, "until"))
        ):
            return f"analyst: expected pattern ({by_pattern.note or 'planned'})"
        return None

    def known_events(self) -> list[KnownEvent]:
        """Expected alerts with a known period, as known events for the detection rules."""
        latest: dict[str, Feedback] = {}
        for r in self.records():
            latest[r.alert_id] = r
        out = []
        for r in latest.values():
            if not r.expected or r.period_start is None or r.period_end is None:
                continue
            if r.rule is not None and r.rule not in DETECTION_RULES:
                continue
            scope = {k: v for k, v in r.scope.items() if k != "workload_id"}
            out.append(
                KnownEvent(
                    _ts(r.period_start, "period_start"),
                    _ts(r.period_end, "period_end"),
                    scope,
                    DETECTION_RULES,
                    r.note or f"feedback on {r.alert_id}",
                )
            )
        return out

    def labels(self) -> pd.DataFrame:
        """Verdicts as a frame (``alert_id, expected, rule, period_start, ...``), latest per id."""
        latest: dict[str, Feedback] = {}
        for r in self.records():
            latest[r.alert_id] = r
        return pd.DataFrame([r.to_dict() for r in latest.values()])
