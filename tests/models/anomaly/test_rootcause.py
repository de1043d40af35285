"""Root cause: the injected culprit ranks first, with the right dollars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import InvalidFrameError
from models.anomaly.rootcause import (
    CONTRIBUTION_COLUMNS,
    MISSING_VALUE,
    aggregate_series,
    root_cause,
)

START = pd.Timestamp("2025-01-01", tz="UTC")
DIMS = ("team", "project", "service", "instance_type", "resource_id")


def frame(days: int = 35, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Hourly cost: team a (resources a1, a2 at $10/h), team b (b1 at $4/h)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=24 * days, freq="h")
    parts = []
    for team, res, rate in (("a", "a1", 10.0), ("a", "a2", 10.0), ("b", "b1", 4.0)):
        cost = rate * (1 + noise * rng.standard_normal(len(ds)))
        parts.append(
            pd.DataFrame(
                {
                    "ds": ds,
                    "team": team,
                    "project": f"{team}-proj",
                    "service": "AmazonEC2",
                    "instance_type": "m5.xlarge",
                    "resource_id": res,
                    "effective_cost": cost,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def add(df: pd.DataFrame, start: str, hours: int, cost: float, **dims: object) -> pd.DataFrame:
    ds = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=hours, freq="h")
    row = {"service": "AmazonEC2", "instance_type": "p5.48xlarge", **dims}
    extra = pd.DataFrame({"ds": ds, **{k: v for k, v in row.items()}, "effective_cost": cost})
    return pd.concat([df, extra], ignore_index=True)


def test_new_resource_ranks_first_with_exact_dollars() -> None:
    df = add(frame(), "2025-02-01 10:00", 3, 50.0, team="b", project="b-proj", resource_id="x9")
    rep = root_cause(df, "2025-02-01 11:00", dimensions=DIMS)
    assert rep.baseline == "seasonal"
    assert rep.expected == pytest.approx(24.0)
    assert rep.actual == pytest.approx(74.0)
    assert rep.impact == pytest.approx(50.0)
    top = rep.top(1).iloc[0]
    assert (top["dimension"], top["value"]) == ("resource_id", "x9")
    assert top["expected"] == 0.0 and top["actual"] == pytest.approx(50.0)
    assert top["share"] == pytest.approx(1.0) and np.isinf(top["change_pct"])
    assert rep.culprit("team") == {
        "dimension": "team",
        "value": "b",
        "expected": 4.0,
        "actual": 54.0,
        "delta": 50.0,
        "share": 1.0,
        "change_pct": 1250.0,
    }
    # Values that did not move are not listed.
    assert "a" not in set(rep.contributions.loc[rep.contributions["dimension"] == "team", "value"])
    assert list(rep.contributions.columns) == list(CONTRIBUTION_COLUMNS)
    assert rep.contributions["rank"].tolist() == list(range(1, len(rep.contributions) + 1))


def test_increase_of_an_existing_resource_over_a_window_with_noise() -> None:
    df = frame(noise=0.02, seed=3)
    mask = (
        (df["resource_id"] == "a2")
        & (df["ds"] >= "2025-02-03 00:00")
        & (df["ds"] < "2025-02-03 06:00")
    )
    df.loc[mask, "effective_cost"] += 30.0
    rep = root_cause(df, "2025-02-03 00:00", "2025-02-03 06:00", DIMS)
    top = rep.top(1).iloc[0]
    assert (top["dimension"], top["value"]) == ("resource_id", "a2")
    assert top["delta"] == pytest.approx(180.0, rel=0.03)
    assert rep.impact == pytest.approx(180.0, rel=0.05)
    assert rep.culprit("team")["value"] == "a"  # type: ignore[index]


def test_a_drop_is_explained_by_the_value_that_dropped() -> None:
    df = frame()
    df = df[~((df["resource_id"] == "b1") & (df["ds"] >= "2025-02-02") & (df["ds"] < "2025-02-03"))]
    rep = root_cause(df, "2025-02-02", "2025-02-03", DIMS, freq="D")
    assert rep.impact == pytest.approx(-96.0)
    top = rep.top(1).iloc[0]
    assert top["value"] == "b1" and top["delta"] == pytest.approx(-96.0)
    assert top["contribution"] == pytest.approx(96.0) and top["share"] == pytest.approx(1.0)


def test_seasonal_baseline_uses_the_same_hour_of_the_same_weekday() -> None:
    df = frame(days=36)
    # Every Monday 09:00 costs $100 more: expected, not anomalous.
    mondays = (df["ds"].dt.day_of_week == 0) & (df["ds"].dt.hour == 9) & (df["resource_id"] == "a1")
    df.loc[mondays, "effective_cost"] += 100.0
    t = pd.Timestamp("2025-02-03 09:00", tz="UTC")  # a Monday
    assert t.day_of_week == 0
    rep = root_cause(df, t, dimensions=DIMS)
    assert rep.expected == pytest.approx(124.0) and rep.impact == pytest.approx(0.0)
    trailing = root_cause(df, t, dimensions=DIMS, baseline="trailing")
    assert trailing.baseline == "trailing" and trailing.impact > 90


def test_short_history_falls_back_and_no_history_means_all_unexpected() -> None:
    df = frame(days=3)
    rep = root_cause(df, "2025-01-03 05:00", dimensions=DIMS)
    assert rep.baseline == "trailing"
    assert rep.expected == pytest.approx(24.0)
    first = root_cause(df, "2025-01-01 00:00", dimensions=DIMS)
    assert first.baseline == "none"
    assert first.expected == 0.0 and first.impact == pytest.approx(24.0)


def test_mean_statistic_is_additive_per_dimension() -> None:
    df = add(
        frame(noise=0.1, seed=1),
        "2025-02-01 00:00",
        5,
        20.0,
        team="a",
        project="new",
        resource_id="z",
    )
    rep = root_cause(
        df, "2025-02-01 00:00", "2025-02-01 05:00", DIMS, statistic="mean", top_per_dimension=100
    )
    for dim in ("team", "resource_id", "project"):
        total = rep.contributions.loc[rep.contributions["dimension"] == dim, "delta"].sum()
        assert total == pytest.approx(rep.impact, abs=1e-6)


def test_untagged_spend_is_reported_as_none_and_where_selects_it() -> None:
    df = add(frame(), "2025-02-01 10:00", 1, 7.5, team=None, project=None, resource_id="i-untagged")
    rep = root_cause(df, "2025-02-01 10:00", dimensions=DIMS)
    assert rep.culprit("team")["value"] == MISSING_VALUE  # type: ignore[index]
    scoped = root_cause(df, "2025-02-01 10:00", dimensions=DIMS, where={"team": None})
    assert scoped.actual == pytest.approx(7.5) and scoped.expected == 0.0
    only_b = root_cause(df, "2025-02-01 10:00", dimensions=DIMS, where={"team": ["b"]})
    assert only_b.actual == pytest.approx(4.0)
    b_or_none = root_cause(df, "2025-02-01 10:00", dimensions=DIMS, where={"team": ["b", None]})
    assert b_or_none.actual == pytest.approx(11.5)


def test_records_are_json_ready() -> None:
    df = add(frame(), "2025-02-01 10:00", 1, 50.0, team="b", project="b-proj", resource_id="x9")
    d = root_cause(df, "2025-02-01 10:00", dimensions=DIMS).to_dict(3)
    assert d["impact"] == 50.0 and len(d["root_causes"]) == 3
    assert d["root_causes"][0]["change_pct"] is None  # inf -> None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"freq": "bogus"}, ValueError),
        ({"baseline": "magic"}, ValueError),
        ({"cycles": 0}, ValueError),
        ({"season": "5h", "freq": "2h"}, ValueError),
        ({"dimensions": ("nope",)}, InvalidFrameError),
        ({"where": {"nope": "x"}}, InvalidFrameError),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        root_cause(frame(days=2), "2025-01-02", **kwargs)  # type: ignore[arg-type]


def test_bad_frames() -> None:
    df = frame(days=2)
    with pytest.raises(InvalidFrameError, match="ds"):
        root_cause(df.assign(ds=df["ds"].dt.tz_localize(None)), "2025-01-02", dimensions=DIMS)
    with pytest.raises(ValueError, match="end must be after start"):
        root_cause(df, "2025-01-02", "2025-01-01", DIMS)


def test_aggregate_series_zero_fills_every_period() -> None:
    df = frame(days=2)
    df = df[~((df["team"] == "b") & (df["ds"] < "2025-01-01 05:00"))]
    s = aggregate_series(df, by="team")
    assert len(s) == 2 * 48
    b = s[s["unique_id"] == "b"]
    assert b["y"].iloc[:5].tolist() == [0.0] * 5 and b["y"].iloc[5] == 4.0
    assert str(s["ds"].dt.tz) == "UTC"
    total = aggregate_series(df, freq="D")
    assert total["y"].tolist() == pytest.approx([24 * 20 + 19 * 4, 24 * 24])
