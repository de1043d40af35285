"""Analyst feedback suppresses expected alerts and feeds known events to the rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.exceptions import ConfigError
from forecaster.alerts.base import AlertContext, evaluate_rules
from forecaster.alerts.engine import run_alerts
from forecaster.alerts.feedback import FeedbackStore
from forecaster.alerts.rules import CostAnomaly, SpendSpike
from tests.forecaster.alerts.builders import cost_frame, inject


@pytest.fixture(scope="module")
def spiky() -> pd.DataFrame:
    df = cost_frame(days=35, noise=0.02, seed=1)
    return inject(df, "2025-02-01 10:00", 3, 60.0, team="beta", resource="i-new")


RULES = [SpendSpike(50, min_impact=100)]


def ctx(frame: pd.DataFrame) -> AlertContext:
    return AlertContext(frame, since="2025-01-01")


def test_expected_alert_is_suppressed_next_time_and_can_be_lifted(
    spiky: pd.DataFrame, tmp_path: Path
) -> None:
    fb = FeedbackStore(tmp_path / "feedback.json")
    first = evaluate_rules(RULES, ctx(spiky), suppress=fb)
    assert len(first.alerts) == 1
    alert = first.alerts[0]
    fb.add(alert.id, True, "planned backfill", alert=alert, by="ana")
    second = evaluate_rules(RULES, ctx(spiky), suppress=fb)
    assert second.alerts == [] and second.suppressed[0][0].id == alert.id
    assert "planned backfill" in second.suppressed[0][1]
    fb.add(alert.id, False, "actually a bug")
    assert [a.id for a in evaluate_rules(RULES, ctx(spiky), suppress=fb).alerts] == [alert.id]
    labels = fb.labels()
    assert labels.loc[0, "expected"] == False  # noqa: E712 - latest verdict wins
    assert FeedbackStore(tmp_path / "feedback.json").latest(alert.id).note == "actually a bug"  # type: ignore[union-attr]


def test_pattern_suppression_until_a_date(spiky: pd.DataFrame, tmp_path: Path) -> None:
    df = inject(spiky, "2025-02-04 10:00", 3, 60.0, team="beta", resource="i-new")
    fb = FeedbackStore(tmp_path / "fb.json")
    alerts = evaluate_rules(RULES, ctx(df), suppress=fb).alerts
    assert len(alerts) == 2
    first = min(alerts, key=lambda a: a.period_start)
    fb.add(first.id, True, "weekly job", alert=first, pattern=True, until="2025-02-03")
    left = evaluate_rules(RULES, ctx(df), suppress=fb).alerts
    assert [a.period_start for a in left] == [pd.Timestamp("2025-02-04", tz="UTC")]
    with pytest.raises(ConfigError, match="pattern"):
        fb.add("abcdef0123456789", True, pattern=True)


def test_feedback_becomes_a_known_event_for_detection(spiky: pd.DataFrame, tmp_path: Path) -> None:
    fb = FeedbackStore(tmp_path / "fb.json")
    spike = evaluate_rules(RULES, ctx(spiky)).alerts[0]
    fb.add(spike.id, True, "load test", alert=spike)
    events = fb.known_events()
    assert len(events) == 1 and events[0].scope == {"team": "beta"}
    # The anomaly detector's alerts in that day for team beta are explained as well.
    plain = evaluate_rules([CostAnomaly(include_total=False)], ctx(spiky)).alerts
    assert plain
    ev = run_alerts([CostAnomaly(include_total=False)], ctx(spiky), feedback=fb)
    assert ev.alerts == []


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "fb.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match=r"fb\.json"):
        FeedbackStore(p).records()
    with pytest.raises(ConfigError, match="alert_id"):
        FeedbackStore(tmp_path / "ok.json").add("", True)
