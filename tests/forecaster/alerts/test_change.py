"""CostChange: new spend, spikes and level shifts per workload, in their first hours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError
from forecaster.alerts.base import AlertContext
from forecaster.alerts.engine import load_context
from forecaster.alerts.rules import CostChange
from tests.forecaster.alerts.builders import _rows, cost_frame, inject, store_with


def ctx_of(frame: pd.DataFrame, since: str = "2025-01-20") -> AlertContext:
    return AlertContext(frame, since=since)


def changes(frame: pd.DataFrame, rule: CostChange | None = None, **kw: str) -> list:  # type: ignore[type-arg]
    return (rule or CostChange()).evaluate(ctx_of(frame, **kw))


@pytest.fixture(scope="module")
def steady() -> pd.DataFrame:
    # alpha: 2 x $10/h, beta: 2 x $4/h, 2 % noise, 40 days.
    return cost_frame(days=40, noise=0.02, seed=1)


def test_steady_noisy_spend_raises_nothing(steady: pd.DataFrame) -> None:
    assert changes(steady) == []


def test_new_resource_is_found_two_hours_after_it_starts(steady: pd.DataFrame) -> None:
    frame = inject(steady, "2025-02-01 10:00", 30, 60.0, team="beta", resource="i-new")
    found = changes(frame)
    assert len(found) == 1  # one episode, one alert
    a = found[0]
    assert a.rule == "cost_change" and a.scope["team"] == "beta"
    assert a.period_start == pd.Timestamp("2025-02-01 10:00", tz="UTC")
    assert a.detected_at == pd.Timestamp("2025-02-01 12:00", tz="UTC")
    assert a.impact == pytest.approx(24 * 60.0, rel=0.05)  # projected per day
    assert a.root_causes[0]["value"] == "i-new"
    assert a.owner == "beta"


def test_a_small_level_shift_of_an_always_on_service_is_found(steady: pd.DataFrame) -> None:
    # beta's two resources cost 15 % more from Feb 3 14:00 on: $1.2/h, far below the
    # spike rule's 25 %, but above every value of the last two weeks, hour after hour.
    frame = steady.copy()
    up = (frame["team"] == "beta") & (frame["ds"] >= pd.Timestamp("2025-02-03 14:00", tz="UTC"))
    frame.loc[up, "effective_cost"] *= 1.15
    found = changes(frame)
    assert [a.scope["team"] for a in found] == ["beta"]
    assert found[0].detected_at <= pd.Timestamp("2025-02-03 16:00", tz="UTC")


def test_bursty_series_alert_only_on_a_bigger_job_than_any_before() -> None:
    # A training project: a $50/h job of 10 hours every three days (the level is 0
    # between jobs), then on Feb 10 a job three times as big.
    ds = pd.date_range("2025-01-01", periods=24 * 45, freq="h", tz="UTC")
    cost = np.zeros(len(ds))
    for day in range(0, 45, 3):
        cost[24 * day + 8 : 24 * day + 18] = 50.0
    big = 24 * 40 + 8
    cost[big : big + 10] = 150.0
    frame = _rows(ds, cost, team="gamma", resource="training-nodes")
    found = changes(frame, since="2025-01-25")
    assert [a.period_start for a in found] == [ds[big]]


def test_a_shift_is_not_announced_again_while_it_lasts(steady: pd.DataFrame) -> None:
    frame = steady.copy()
    up = (frame["team"] == "alpha") & (frame["ds"] >= pd.Timestamp("2025-01-25 09:00", tz="UTC"))
    frame.loc[up, "effective_cost"] *= 2.0
    found = changes(frame)
    assert len(found) == 1 and found[0].scope["team"] == "alpha"


def test_alerts_are_causal(steady: pd.DataFrame) -> None:
    # The alerts of a replay that stops early are the replay's alerts up to that point.
    frame = inject(steady, "2025-02-01 10:00", 30, 60.0, team="beta", resource="i-new")
    frame = inject(frame, "2025-02-05 03:00", 30, 40.0, team="alpha", resource="i-late")
    cut = pd.Timestamp("2025-02-03", tz="UTC")
    full = {(a.id, a.detected_at) for a in changes(frame)}
    prefix = {(a.id, a.detected_at) for a in changes(frame[frame["ds"] < cut])}
    assert prefix == {(i, t) for i, t in full if t <= cut}
    assert len(full) == 2 and len(prefix) == 1


def test_the_first_two_weeks_never_alert() -> None:
    frame = cost_frame(days=20, noise=0.02, seed=2)
    frame = inject(frame, "2025-01-05 10:00", 10, 80.0, team="beta", resource="i-early")
    assert changes(frame, since="2025-01-01") == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"persist": 0}, "parameter persist must be an int >= 1"),
        ({"rel": -1.0}, "parameter rel must be >= 0"),
        ({"keys": []}, "parameter keys must be a non-empty list"),
        ({"neighbours": 12}, "parameter neighbours must be <= 11"),
    ],
)
def test_invalid_parameters_name_the_parameter(kw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        CostChange(**kw)


def test_load_context_keys_split_cost_by_workload(tmp_path: object) -> None:
    # Pods of two EKS workloads share a node pool; their split-allocation tags name them.
    frame = cost_frame(days=30, noise=0.02, seed=3)
    frame["tags"] = np.where(
        frame["resource_id"].str.endswith("r1"),
        '{"aws_eks_workload_name":"api","aws_eks_namespace":"web"}',
        '{"aws_ecs_service_name":"embed"}',
    )
    frame.loc[frame["team"] == "alpha", "tags"] = None
    up = (frame["resource_id"] == "beta-r1") & (
        frame["ds"] >= pd.Timestamp("2025-01-25 06:00", tz="UTC")
    )
    frame.loc[up, "effective_cost"] += 40.0
    st = store_with(tmp_path / "s.duckdb", frame)  # type: ignore[operator]
    try:
        ctx = load_context(st, since="2025-01-20")
    finally:
        st.close()
    ids = set(ctx.cost["workload_id"].dropna().astype(str))
    assert ids == {"eks-test/web/api", "eks-test/beta/embed"}
    found = CostChange().evaluate(ctx)
    assert [a.scope.get("workload_id") for a in found] == ["eks-test/web/api"]
    assert found[0].scope["team"] == "beta"


def test_a_frame_without_dimensions_is_watched_as_one_series() -> None:
    ds = pd.date_range("2025-01-01", periods=24 * 30, freq="h", tz="UTC")
    cost = np.full(len(ds), 5.0)
    cost[24 * 25 :] = 50.0
    found = changes(pd.DataFrame({"ds": ds, "effective_cost": cost}))
    assert [(a.scope, a.period_start) for a in found] == [({}, ds[24 * 25])]
    assert found[0].expected == pytest.approx(5.0) and found[0].actual == pytest.approx(50.0)
