"""Tag governance and showback, checked against a pandas oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from features.exceptions import ConfigError
from features.readers.focus import read_focus
from features.store import Store
from features.tagkeys import canonical_tag_key, dimension_of
from features.tags import normalisation_map, required_dimensions, showback, tag_coverage
from tests.features.focus_fixtures import focus_row, write_focus_csv


def _tags(**kw: str) -> str:
    return json.dumps(kw)


FULL = {"CostCenter": "CC-1", "Owner": "o@x", "Environment": "prod", "Project": "p"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    data = []
    i = 0

    def add(cost: float, tags: str, month: int = 1, **kw: str) -> None:
        nonlocal i
        ds = f"2025-{month:02d}-01T{i % 24:02d}:00:00Z"
        data.append(
            focus_row(
                i,
                ChargePeriodStart=ds,
                ChargePeriodEnd=ds.replace(":00:00Z", ":59:00Z"),
                EffectiveCost=str(cost),
                BilledCost=str(cost),
                Tags=tags,
                **kw,
            )
        )
        i += 1

    add(100, _tags(Team="ML-Platform", **FULL))
    add(50, _tags(Team="ml_platform", **FULL))
    add(30, _tags(Team="mlplatform", **{**FULL, "Environment": "Production"}))
    add(60, _tags(Team="nlp", **FULL))
    add(20, _tags(Team="nlp", Project="p"))  # missing CostCenter/Owner/Environment
    add(40, _tags(Team="shared", **FULL))  # shared spend
    add(25, "", ServiceName="Amazon Simple Storage Service")  # untagged
    add(-10, "", ChargeCategory="Credit")  # credit: not taggable, excluded from coverage
    add(80, _tags(Team="nlp", **FULL), month=2)
    add(20, "", month=2)
    store = Store(tmp_path / "s.duckdb")
    store.ingest(read_focus(write_focus_csv(tmp_path / "f.csv", data)))
    return store


def test_tag_keys() -> None:
    assert canonical_tag_key("resourceTags/user:CostCenter") == "cost_center"
    assert canonical_tag_key("user_cost_center") == "cost_center"
    assert dimension_of("aws:eks:cluster-name") == "cluster"
    assert dimension_of("Env") == "environment"
    assert dimension_of("Something") is None


def test_required_tags_validated() -> None:
    assert required_dimensions(["CostCenter", "team"]) == ["cost_center", "team"]
    with pytest.raises(ConfigError, match="required_tags"):
        required_dimensions(["Colour"])


def test_value_variants_normalised_to_most_spent_spelling(store: Store) -> None:
    nmap = normalisation_map(store).set_index(["dimension", "raw"])["value"]
    assert nmap[("team", "ML-Platform")] == "ML-Platform"  # the most-spent spelling
    assert nmap[("team", "ml_platform")] == "ML-Platform"
    assert nmap[("team", "mlplatform")] == "ML-Platform"
    assert nmap[("environment", "Production")] == "prod"
    assert nmap[("owner", "o@x")] == "o@x"  # single spellings are kept as written


def test_coverage(store: Store) -> None:
    cov = tag_coverage(store)
    taggable = 100 + 50 + 30 + 60 + 20 + 40 + 25 + 80 + 20
    assert cov.total_spend == pytest.approx(taggable)
    assert cov.fully_tagged_spend == pytest.approx(100 + 50 + 30 + 60 + 40 + 80)
    per = cov.per_tag.set_index("tag")["coverage_pct"]
    assert per["Team"] == pytest.approx(100 * (taggable - 25 - 20) / taggable)
    untagged = cov.untagged_by.set_index("service")["untagged_spend"]
    assert untagged["Amazon Simple Storage Service"] == pytest.approx(25)


def test_showback_matches_pandas_oracle(store: Store) -> None:
    sb = showback(store, ["Team"], period="month")
    # Oracle: direct spend by normalised team, pool spread by |direct| weight, per month.
    raw = store.cost_frame().assign(month=lambda d: d["ds"].dt.strftime("%Y-%m"))
    norm = {
        "ML-Platform": "ML-Platform",
        "ml_platform": "ML-Platform",
        "mlplatform": "ML-Platform",
        "nlp": "nlp",
    }
    raw["t"] = raw["team"].map(norm)
    for month, g in raw.groupby("month"):
        direct = g.dropna(subset=["t"]).groupby("t")["effective_cost"].sum()
        pool = g.loc[g["t"].isna(), "effective_cost"].sum()
        expect = direct + pool * direct.abs() / direct.abs().sum()
        got = sb[sb["period"].dt.strftime("%Y-%m") == month].set_index("team")["total_cost"]
        pd.testing.assert_series_equal(got.sort_index(), expect.sort_index(), check_names=False)
        assert got.sum() == pytest.approx(g["effective_cost"].sum())


def test_showback_without_spread_keeps_unallocated(store: Store) -> None:
    sb = showback(store, ["team"], spread_shared=False)
    un = sb[sb["team"] == "(unallocated)"]
    assert un["total_cost"].sum() == pytest.approx(40 + 25 - 10 + 20)
    assert sb["total_cost"].sum() == pytest.approx(store.totals()["effective_cost"])


def test_showback_by_two_dims_and_bad_args(store: Store) -> None:
    sb = showback(store, ["team", "service"], period="quarter")
    assert {"team", "service"} <= set(sb.columns)
    assert sb["total_cost"].sum() == pytest.approx(store.totals()["effective_cost"])
    with pytest.raises(ConfigError, match="period"):
        showback(store, ["team"], period="fortnight")
    with pytest.raises(ConfigError, match="parameter by"):
        showback(store, ["colour"])
