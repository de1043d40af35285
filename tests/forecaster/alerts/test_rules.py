"""Each rule fires when it should and stays quiet when it should not."""

from __future__ import annotations

import pandas as pd
import pytest

from features.exceptions import ConfigError
from forecaster.alerts.base import Alert, AlertContext, KnownEvent, evaluate_rules
from forecaster.alerts.rules import (
    CostAnomaly,
    DailySpendThreshold,
    IdleResources,
    SpendSpike,
    SpotPolicy,
    UntaggedSpend,
)
from tests.forecaster.alerts.builders import cost_frame, inject, utilization_frame

# Daily spend of cost_frame(): 2 x 24 x (10 + 4) = $672.
DAILY = 672.0


def ctx_of(frame: pd.DataFrame, *, since: str = "2025-01-01", **kw: object) -> AlertContext:
    return AlertContext(frame, since=since, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return cost_frame(days=35, noise=0.02, seed=1)


@pytest.fixture(scope="module")
def spiky(base: pd.DataFrame) -> pd.DataFrame:
    # Feb 1 10:00-13:00: a new $60/h resource in team beta (an extra $180 that day).
    return inject(base, "2025-02-01 10:00", 3, 60.0, team="beta", resource="i-new")


# -- daily threshold ------------------------------------------------------------------------
def test_daily_threshold_fires_on_the_day_above(spiky: pd.DataFrame) -> None:
    alerts = DailySpendThreshold(DAILY + 100).evaluate(ctx_of(spiky))
    assert [a.period_start for a in alerts] == [pd.Timestamp("2025-02-01", tz="UTC")]
    a = alerts[0]
    assert a.rule == "daily_spend" and a.severity == "warning"
    assert a.actual == pytest.approx(DAILY + 180, rel=0.01)
    assert a.impact == pytest.approx(80, abs=8)
    assert a.expected == pytest.approx(DAILY, rel=0.02)
    assert a.root_causes[0]["value"] == "i-new"


def test_daily_threshold_quiet_below_and_per_team(spiky: pd.DataFrame) -> None:
    assert DailySpendThreshold(DAILY + 400).evaluate(ctx_of(spiky)) == []
    per_team = DailySpendThreshold(300.0, by="team").evaluate(ctx_of(spiky))
    assert {a.scope["team"] for a in per_team} == {"alpha", "beta"}
    beta = [a for a in per_team if a.scope["team"] == "beta"]
    assert len(beta) == 1 and beta[0].owner == "beta"
    with pytest.raises(ConfigError, match="threshold"):
        DailySpendThreshold(-1)


# -- spikes ---------------------------------------------------------------------------------
def test_spike_over_50_pct_fires_once_for_the_team(spiky: pd.DataFrame) -> None:
    alerts = SpendSpike(50, min_impact=100).evaluate(ctx_of(spiky))
    assert len(alerts) == 1
    a = alerts[0]
    assert a.scope == {"team": "beta"} and a.period_start == pd.Timestamp("2025-02-01", tz="UTC")
    assert a.impact == pytest.approx(180, rel=0.1)
    assert a.evidence["pct_change"] == pytest.approx(94, abs=8)
    assert a.root_causes[0]["value"] == "i-new"


def test_spike_below_pct_or_impact_does_not_fire(spiky: pd.DataFrame) -> None:
    assert SpendSpike(150, min_impact=50).evaluate(ctx_of(spiky)) == []
    assert SpendSpike(50, min_impact=500).evaluate(ctx_of(spiky)) == []


def test_same_weekday_comparison_ignores_the_weekly_pattern() -> None:
    df = cost_frame(days=35, weekend_factor=0.4)
    daily = SpendSpike(50, min_impact=50, compare="previous").evaluate(ctx_of(df))
    assert daily and all(a.period_start.day_of_week == 0 for a in daily)  # Mondays
    assert SpendSpike(50, min_impact=50, compare="season").evaluate(ctx_of(df)) == []
    with pytest.raises(ConfigError, match="compare"):
        SpendSpike(compare="yesterday")  # type: ignore[arg-type]


# -- idle resources -------------------------------------------------------------------------
def test_idle_gpus_fire_once_per_streak_with_dollars() -> None:
    u = utilization_frame({"train/idle": (0.05, 8), "train/busy": (0.85, 8)}, hours=72)
    frame = cost_frame(days=3)
    rule = IdleResources(0.2, hours=24, prices={"p4d.24xlarge": 2.0})
    alerts = rule.evaluate(ctx_of(frame, utilization=u))
    assert [a.scope["workload_id"] for a in alerts] == ["train/idle"]
    a = alerts[0]
    assert a.detected_at == pd.Timestamp("2025-01-02 00:00", tz="UTC")
    assert a.period_start == pd.Timestamp("2025-01-01 00:00", tz="UTC")
    # The streak so far: 72 hours x 8 GPUs x 95 % idle x $2.
    assert a.evidence["idle_gpu_hours"] == pytest.approx(72 * 8 * 0.95)
    assert a.impact == pytest.approx(72 * 8 * 0.95 * 2.0)
    # Same streak, later evaluation: same id.
    later = rule.evaluate(ctx_of(frame, utilization=u, since="2025-01-03"))
    assert [x.id for x in later] == [a.id]


def test_idle_not_long_enough_excluded_kinds_and_gaps() -> None:
    u = utilization_frame({"nb/1": (0.05, 1)}, hours=20, kind="notebook")
    frame = cost_frame(days=3)
    assert IdleResources(hours=24, prices={}).evaluate(ctx_of(frame, utilization=u)) == []
    u = utilization_frame({"nb/1": (0.05, 1)}, hours=48, kind="notebook")
    assert (
        IdleResources(hours=24, exclude_kinds=["notebook"]).evaluate(ctx_of(frame, utilization=u))
        == []
    )
    # Two 20-hour idle runs 30 hours apart never make a 24-hour window.
    first = utilization_frame({"w": (0.05, 1)}, hours=20)
    second = first.assign(ds=first["ds"] + pd.Timedelta(hours=50))
    u = pd.concat([first, second], ignore_index=True)
    assert IdleResources(hours=24, prices={}).evaluate(ctx_of(frame, utilization=u)) == []


# -- untagged and spot ----------------------------------------------------------------------
def test_untagged_share_above_and_below() -> None:
    df = cost_frame(days=10)
    df = inject(df, "2025-01-05 00:00", 24, 3.0, team=None, resource="i-untagged")
    # Month to date on Jan 5: 72 / (5 x 672 + 72) = 2.1 %.
    assert UntaggedSpend(0.05).evaluate(ctx_of(df)) == []
    alerts = UntaggedSpend(0.01).evaluate(ctx_of(df))
    assert len(alerts) == 1  # one per month
    a = alerts[0]
    assert a.detected_at == pd.Timestamp("2025-01-06", tz="UTC")
    assert a.evidence["untagged_share"] == pytest.approx(72 / (5 * DAILY + 72))
    assert a.root_causes[0]["value"] == "i-untagged"
    assert a.owner is None
    assert (
        UntaggedSpend(0.01).evaluate(ctx_of(df, owners={"(none)": "finops"}))[0].owner == "finops"
    )


def test_spot_policy_on_demand_share() -> None:
    df = cost_frame(days=10, rates={"alpha": 10.0})
    spot = inject(
        df,
        "2025-01-01",
        240,
        50.0,
        team="alpha",
        resource="s1",
        purchase_option="spot",
        list_cost=None,
    )
    alerts = SpotPolicy(0.3, where={"environment": "prod"}).evaluate(ctx_of(spot))
    assert len(alerts) == 1
    assert alerts[0].actual == pytest.approx(20 / 70)
    assert SpotPolicy(0.25).evaluate(ctx_of(spot)) == []
    assert SpotPolicy(0.3, where={"environment": "dev"}).evaluate(ctx_of(spot)) == []


# -- cost anomaly (streaming detector) ------------------------------------------------------
def test_cost_anomaly_flags_the_new_resource_and_explains_it(spiky: pd.DataFrame) -> None:
    alerts = CostAnomaly().evaluate(ctx_of(spiky))
    assert alerts, "the $60/h resource must be flagged"
    first = min(alerts, key=lambda a: a.detected_at)
    assert first.detected_at == pd.Timestamp("2025-02-01 11:00", tz="UTC")
    assert first.root_causes[0]["dimension"] == "resource_id"
    assert first.root_causes[0]["value"] == "i-new"
    assert first.impact == pytest.approx(60, rel=0.05)
    assert {a.scope.get("team", "total") for a in alerts} <= {"beta", "total"}


def test_cost_anomaly_quiet_on_normal_data(base: pd.DataFrame) -> None:
    assert CostAnomaly().evaluate(ctx_of(base)) == []


def test_cost_anomaly_is_causal_replay_equals_live(spiky: pd.DataFrame) -> None:
    replay = {a.id: a for a in CostAnomaly().evaluate(ctx_of(spiky))}
    live = CostAnomaly().evaluate(
        AlertContext(spiky, as_of="2025-02-01 12:00", since="2025-02-01 10:00")
    )
    assert live and all(a.id in replay for a in live)
    for a in live:
        assert a.impact == pytest.approx(replay[a.id].impact)


# -- alert ids and suppression --------------------------------------------------------------
def test_ids_are_stable_and_known_events_suppress(spiky: pd.DataFrame) -> None:
    rules = [SpendSpike(50, min_impact=100), CostAnomaly()]
    ev = evaluate_rules(rules, ctx_of(spiky))
    again = evaluate_rules(rules, ctx_of(spiky.copy()))
    assert [a.id for a in ev.alerts] == [a.id for a in again.alerts]
    assert len({a.id for a in ev.alerts}) == len(ev.alerts)
    event = KnownEvent("2025-02-01 09:00", "2025-02-01 14:00", {"team": "beta"}, note="load test")
    quiet = evaluate_rules(rules, ctx_of(spiky, known_events=[event]))
    assert quiet.alerts == [] or all(
        a.scope.get("team") not in (None, "beta") for a in quiet.alerts
    )
    assert quiet.suppressed and all("load test" in why for _, why in quiet.suppressed)


def test_alert_value_object() -> None:
    kw = {
        "rule": "x",
        "title": "t",
        "severity": "warning",
        "scope": {"team": "a"},
        "period_start": "2025-01-01",
        "period_end": "2025-01-02",
        "detected_at": "2025-01-02",
        "impact": 1.0,
    }
    a, b = Alert(**kw), Alert(**{**kw, "impact": 2.0, "title": "other"})  # type: ignore[arg-type]
    assert a.id == b.id and len(a.id) == 16 and a.pattern == b.pattern
    c = Alert(**{**kw, "period_start": "2025-01-03", "period_end": "2025-01-04"})  # type: ignore[arg-type]
    assert c.id != a.id and c.pattern == a.pattern
    assert a.to_dict()["period_start"] == "2025-01-01T00:00:00+00:00"
    with pytest.raises(ConfigError, match="severity"):
        Alert(**{**kw, "severity": "urgent"})  # type: ignore[arg-type]
