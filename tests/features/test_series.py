"""Hierarchical series from the store, checked against DuckDB/pandas oracles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, StoreError
from features.readers.focus import read_focus
from features.series import UNTAGGED, hierarchy_from_frame, hierarchy_series, resolve_levels
from features.store import Store
from tests.features.focus_fixtures import focus_row, write_focus_csv

T0 = pd.Timestamp("2025-03-01", tz="UTC")
# team spelling, project, service, hourly cost: ML-Platform and mlplatform are one team.
USAGE = [
    ("nlp", "chatbot", "AmazonEKS", 2.0),
    ("nlp", "chatbot", "AmazonS3", 0.25),
    ("nlp", "llm", "AmazonEKS", 7.5),
    ("ML-Platform", "gateway", "AmazonECS", 1.0),
    ("mlplatform", "gateway", "AmazonECS", 0.5),
    ("ml-platform", None, "AmazonEKS", 0.125),
    (None, None, "AmazonEC2", 3.0),
]


def _iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage_rows(hours: int) -> list[dict[str, Any]]:
    out = []
    i = 0
    for hour in range(hours):
        start = T0 + pd.Timedelta(hours=hour)
        for team, project, service, cost in USAGE:
            tags = {}
            if team is not None:
                tags["Team"] = team
            if project is not None:
                tags["Project"] = project
            # Cost varies by hour so that day sums are not all equal.
            c = cost * (1 + (hour % 5) / 10)
            out.append(
                focus_row(
                    i,
                    ChargePeriodStart=_iso(start),
                    ChargePeriodEnd=_iso(start + pd.Timedelta(hours=1)),
                    EffectiveCost=f"{c:.6f}",
                    BilledCost=f"{c:.6f}",
                    ListCost=f"{c:.6f}",
                    ServiceName=service,
                    ResourceId=f"r-{i}",
                    Tags=json.dumps(tags),
                )
            )
            i += 1
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Three full UTC days and 6 hours of a fourth, plus a monthly fee and a credit."""
    data = _usage_rows(3 * 24 + 6)
    n = len(data)
    # A monthly support fee, untagged: spread over its period (clipped at the data end).
    data.append(
        focus_row(
            n,
            ChargePeriodStart=_iso(T0),
            ChargePeriodEnd=_iso(T0 + pd.Timedelta(days=31)),
            ChargeCategory="Purchase",
            EffectiveCost="300.0",
            BilledCost="300.0",
            ListCost="300.0",
            ServiceName="AWS Support (Business)",
            ResourceId="",
            Tags="",
        )
    )
    # A one-hour credit on day 2 for team nlp.
    data.append(
        focus_row(
            n + 1,
            ChargePeriodStart=_iso(T0 + pd.Timedelta(hours=30)),
            ChargePeriodEnd=_iso(T0 + pd.Timedelta(hours=31)),
            ChargeCategory="Credit",
            EffectiveCost="-5.0",
            BilledCost="-5.0",
            ListCost="0",
            ServiceName="AmazonEKS",
            ResourceId="",
            Tags=json.dumps({"Team": "nlp", "Project": "chatbot"}),
        )
    )
    st = Store(tmp_path / "s.duckdb")
    st.ingest(read_focus(write_focus_csv(tmp_path / "focus.csv", data)))
    return st


def _oracle(store: Store, levels: tuple[str, ...]) -> pd.DataFrame:
    """Hourly-granularity rows summed per UTC day and normalised team (pandas, no spreading)."""
    cf = store.cost_frame()
    # Spellings of one team take the most-spent one (ML-Platform: 1.0/h of 1.625/h).
    cf["team"] = cf["team"].replace({"ml-platform": "ML-Platform", "mlplatform": "ML-Platform"})
    cf["day"] = cf["ds"].dt.tz_convert("UTC").dt.floor("D")
    for d in levels:
        cf[d] = cf[d].fillna(UNTAGGED)
    return cf


def test_levels_and_frequency_are_validated(store: Store) -> None:
    assert resolve_levels(["Team", "app"]) == ("team", "project")
    with pytest.raises(ConfigError, match="levels"):
        resolve_levels(["colour"])
    with pytest.raises(ConfigError, match="repeat"):
        resolve_levels(["team", "Team"])
    with pytest.raises(ConfigError, match="freq"):
        hierarchy_series(store, freq="5min")
    with pytest.raises(ConfigError, match="cost_column"):
        hierarchy_series(store, cost_column="price")


def test_totals_equal_store_total_and_partial_day_is_reported(store: Store) -> None:
    hs = hierarchy_series(store, ("team", "project", "service"))
    store_total = store.totals()["effective_cost"]
    # The fourth day (6 hours) is incomplete: dropped and said so.
    assert list(hs.ds.strftime("%Y-%m-%d")) == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert hs.info["partial_bucket"] == pd.Timestamp("2025-03-04", tz="UTC")
    assert any("incomplete" in note for note in hs.notes)
    partial = store.query(
        "SELECT sum(effective_cost) FROM cost WHERE ds >= TIMESTAMPTZ '2025-03-04 00:00:00+00' "
        "AND ds_end - ds <= INTERVAL 1 DAY"
    ).iloc[0, 0]
    assert hs.info["dropped_partial"] == pytest.approx(partial, abs=1e-6)
    # Nothing else is lost: series + dropped = store.
    assert hs.values[0].sum() + hs.info["dropped_partial"] == pytest.approx(store_total, abs=1e-6)
    assert hs.info["store_total"] == pytest.approx(store_total, abs=1e-9)


def test_bottom_series_match_sql_oracle_and_untagged_is_a_node(store: Store) -> None:
    levels = ("team", "project", "service")
    hs = hierarchy_series(store, levels, spread=False)
    cf = _oracle(store, levels)
    complete = cf[cf["day"] < pd.Timestamp("2025-03-04", tz="UTC")]
    want = complete.groupby([*levels, "day"])["effective_cost"].sum()
    frame = hs.frame()
    bottom = frame[frame["level"] == "service"].merge(
        hs.nodes[["unique_id", *levels]], on="unique_id"
    )
    got = bottom.set_index([*levels, "ds"])["y"]
    got.index = got.index.set_names([*levels, "day"])
    joined = pd.concat([want.rename("want"), got.rename("got")], axis=1).fillna(0.0)
    np.testing.assert_allclose(joined["got"], joined["want"], atol=1e-6)
    ids = set(hs.ids)
    assert "team=(untagged)" in ids
    assert "team=(untagged)/project=(untagged)/service=AmazonEC2" in ids
    assert "team=ML-Platform/project=(untagged)" in ids
    # Spelling variants are one team (normalised tag values).
    teams = sorted(hs.nodes.loc[hs.nodes["level"] == "team", "team"])
    assert teams == ["(untagged)", "ML-Platform", "nlp"]


def test_aggregates_match_sql_group_by_and_children_sum_to_parents(store: Store) -> None:
    hs = hierarchy_series(store, ("team", "project"), spread=False)
    frame = hs.frame()
    # Oracle: DuckDB sums per normalised team and UTC day.
    sql = store.query(
        "SELECT CASE WHEN lower(regexp_replace(team, '[^A-Za-z0-9]', '', 'g')) = 'mlplatform' "
        "THEN 'ML-Platform' ELSE coalesce(team, '(untagged)') END AS team, "
        "date_trunc('day', ds AT TIME ZONE 'UTC') AS day, sum(effective_cost) AS y "
        "FROM cost WHERE ds < TIMESTAMPTZ '2025-03-04 00:00:00+00' GROUP BY ALL"
    )
    teams = frame[frame["level"] == "team"].merge(hs.nodes[["unique_id", "team"]], on="unique_id")
    got = teams.assign(day=teams["ds"].dt.tz_convert(None)).set_index(["team", "day"])["y"]
    want = sql.set_index(["team", "day"])["y"]
    np.testing.assert_allclose(got.sort_index(), want.sort_index().reindex(got.sort_index().index))
    # S sums the bottom into every node; each node equals the sum of its children.
    bottom = hs.values[hs.bottom_mask]
    np.testing.assert_allclose(hs.S @ bottom, hs.values, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(hs.S.toarray()[hs.bottom_mask], np.eye(bottom.shape[0]))
    by_parent = frame.merge(hs.nodes[["unique_id", "parent"]], on="unique_id")
    sums = by_parent.dropna(subset=["parent"]).groupby(["parent", "ds"])["y"].sum()
    parents = frame.set_index(["unique_id", "ds"])["y"].loc[sums.index]
    np.testing.assert_allclose(sums.to_numpy(), parents.to_numpy(), atol=1e-9)


def test_long_charges_are_spread_over_their_period(store: Store) -> None:
    spread = hierarchy_series(store, ("team",))
    lumped = hierarchy_series(store, ("team",), spread=False)
    untagged = spread.ids.tolist().index("team=(untagged)")
    # The monthly fee runs past the data end: spread evenly over the three complete days
    # (its period is clipped at the end of the last complete day, so nothing is lost).
    diff_spread = spread.values[untagged] - lumped.values[untagged]
    np.testing.assert_allclose(diff_spread, [-200.0, 100.0, 100.0], atol=1e-9)
    assert spread.values[0].sum() == pytest.approx(lumped.values[0].sum(), abs=1e-9)


def test_utc_buckets_whatever_the_session_time_zone(store: Store, tmp_path: Path) -> None:
    before = hierarchy_series(store, ("team",))
    store.con.execute("SET TimeZone = 'America/New_York'").fetchall()
    after = hierarchy_series(store, ("team",))
    assert list(after.ds) == list(before.ds)
    np.testing.assert_allclose(after.values, before.values)
    assert str(after.ds.tz) == "UTC"
    # A charge stamped 23:30 New York time on 2025-03-01 is 04:30 UTC on 2025-03-02.
    st2 = Store(tmp_path / "tz.duckdb")
    rows = [
        focus_row(
            k,
            ChargePeriodStart=_iso(
                pd.Timestamp("2025-03-01 00:00", tz="UTC") + pd.Timedelta(hours=k)
            ),
            ChargePeriodEnd=_iso(
                pd.Timestamp("2025-03-01 01:00", tz="UTC") + pd.Timedelta(hours=k)
            ),
            EffectiveCost="1.0",
            BilledCost="1.0",
        )
        for k in range(48)
    ]
    rows.append(
        focus_row(
            48,
            ChargePeriodStart="2025-03-01T23:30:00-05:00",
            ChargePeriodEnd="2025-03-02T00:00:00-05:00",
            EffectiveCost="100.0",
            BilledCost="100.0",
        )
    )
    st2.ingest(read_focus(write_focus_csv(tmp_path / "tz.csv", rows)))
    hs = hierarchy_series(st2, ("team",))
    np.testing.assert_allclose(hs.values[0], [24.0, 124.0])


def test_window_accounting_and_hourly_grid(store: Store) -> None:
    hs = hierarchy_series(store, ("team",), start="2025-03-02", end="2025-03-03")
    assert list(hs.ds) == [pd.Timestamp("2025-03-02", tz="UTC")]
    full = hierarchy_series(store, ("team",))
    assert hs.values[0, 0] == pytest.approx(full.values[0, 1])
    assert hs.info["outside_window"] == pytest.approx(full.values[0, [0, 2]].sum())
    hourly = hierarchy_series(store, ("team",), freq="h")
    # Hourly data ending on the hour: no partial bucket, 78 hours.
    assert len(hourly.ds) == 78
    assert hourly.info["partial_bucket"] is None
    assert hourly.values[0].sum() == pytest.approx(store.totals()["effective_cost"], abs=1e-6)
    with pytest.raises(StoreError, match="window"):
        hierarchy_series(store, ("team",), start="2026-01-01")


def test_empty_store_is_an_error(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as st, pytest.raises(StoreError, match="no cost rows"):
        hierarchy_series(st)


def test_hierarchy_from_frame_and_truncate() -> None:
    ds = pd.date_range("2025-01-01", periods=4, freq="D", tz="UTC")
    df = pd.DataFrame(
        {
            "ds": np.repeat(ds, 3),
            "team": ["a", "a", None] * 4,
            "project": ["x", "y", None] * 4,
            "y": np.arange(12, dtype=float),
        }
    )
    hs = hierarchy_from_frame(df, ["team", "project"])
    assert hs.ids.tolist() == [
        "total",
        "team=(untagged)",
        "team=a",
        "team=(untagged)/project=(untagged)",
        "team=a/project=x",
        "team=a/project=y",
    ]
    np.testing.assert_allclose(hs.values[0], [3.0, 12.0, 21.0, 30.0])
    assert hs.tags["team"].tolist() == ["team=(untagged)", "team=a"]
    short = hs.truncate(1)
    assert len(short.ds) == 3 and short.values.shape == (6, 3)
    assert hs.bottom()["unique_id"].nunique() == 3
