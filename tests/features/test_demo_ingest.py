"""The demo fleet through the real readers: what the generator wrote is what the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.demo import DemoManifest, generate_demo_fleet
from features.readers.cur import read_cur
from features.readers.focus import read_focus
from features.readers.metrics import read_utilization
from features.store import Store
from features.tags import showback, tag_coverage


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate_demo_fleet(tmp_path_factory.mktemp("demo"), seed=11, months=1)


@pytest.fixture(scope="module")
def store(fleet: DemoManifest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("store") / "s.duckdb")
    st.ingest(read_focus(fleet.focus_path))
    st.ingest(read_cur(fleet.cur_path))
    st.ingest_utilization(read_utilization(fleet.metrics_path))
    return st


def test_every_row_accepted_and_totals_match_to_the_cent(fleet: DemoManifest, store: Store) -> None:
    log = store.ingest_log()
    assert list(log["source"]) == ["focus", "cur", "metrics"]
    totals = store.totals()
    assert round(totals["focus.effective_cost"], 2) == round(fleet.effective_cost["focus"], 2)
    assert round(totals["cur.effective_cost"], 2) == round(fleet.effective_cost["cur"], 2)
    assert totals["focus.rows"] == fleet.rows["focus"]
    n_util = store.query("SELECT count(*) AS n FROM utilization")["n"].item()
    assert n_util == fleet.rows["metrics"]
    assert store.query("SELECT count(*) AS n FROM rejections")["n"].item() == 0


def test_ingest_twice_equals_once(fleet: DemoManifest, tmp_path: Path) -> None:
    st = Store(tmp_path / "twice.duckdb")
    st.ingest(read_cur(fleet.cur_path))
    st.ingest(read_focus(fleet.focus_path))
    once = st.totals()
    second_cur = st.ingest(read_cur(fleet.cur_path))
    second_focus = st.ingest(read_focus(fleet.focus_path))
    twice = st.totals()
    assert second_cur.rows_new == 0 and second_focus.rows_new == 0
    assert once["rows"] == twice["rows"]
    assert round(once["effective_cost"], 2) == round(twice["effective_cost"], 2)


def test_split_allocation_puts_pod_costs_on_teams(store: Store) -> None:
    pods = store.query(
        "SELECT count(*) AS n, count(DISTINCT team) AS teams FROM cost "
        "WHERE source = 'cur' AND resource_id LIKE 'arn:aws:%:pod/%' OR resource_id LIKE "
        "'arn:aws:ecs:%:task/%'"
    )
    assert pods["n"].item() > 0 and pods["teams"].item() >= 3
    clusters = set(
        store.query("SELECT DISTINCT cluster FROM cost WHERE cluster IS NOT NULL")["cluster"]
    )
    assert {"eks-ml-prod", "ecs-inference-prod", "eks-research", "ecs-pipelines"} <= clusters


def test_governance_on_demo(store: Store) -> None:
    cov = tag_coverage(store)
    assert 75.0 < cov.fully_tagged_pct < 97.0  # the demo leaves ~8% of spend untagged
    sb = showback(store, ["team"])
    assert sb["total_cost"].sum() == pytest.approx(store.totals()["effective_cost"], abs=0.01)
    assert {"ml-platform", "search", "recsys", "vision", "nlp", "data-eng"} <= set(sb["team"])
