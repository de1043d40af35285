"""Cost Explorer ingestion against a real moto server.

moto hands out seeded ``get_cost_and_usage`` answers in order, one per request body it
has not seen before (a repeated body gets the same answer again). The tests therefore
build the answers for the exact requests production makes, in its order, from
:func:`build_requests`, pages and tokens included.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from features.readers.aws.cost_explorer import (
    METRICS,
    CostExplorerQuery,
    build_requests,
    ingest_cost_explorer,
)
from features.store import Store
from forecaster.cli import app
from tests.integration._moto import aws_env, moto_url, seed_cost_and_usage  # noqa: F401

runner = CliRunner()
SERVICES = ("Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service", "AWS Lambda")
TEAMS = ("ml-research", "platform", "search", None)  # None: untagged
PROJECTS = ("llm", "ranking", None)

Truth = dict[tuple[date, str, str | None, str | None], float]


def make_truth(start: date, days: int, seed: int = 7) -> Truth:
    """Cost per day, service, team and project, with team and project independent
    inside each day and service (what the proportional merge recovers exactly)."""
    rng = random.Random(seed)
    truth: Truth = {}
    for d in range(days):
        day = start + timedelta(days=d)
        for svc in SERVICES:
            total = rng.uniform(50, 500)
            tw = [rng.random() for _ in TEAMS]
            pw = [rng.random() for _ in PROJECTS]
            for t, a in zip(TEAMS, tw, strict=True):
                for p, b in zip(PROJECTS, pw, strict=True):
                    truth[(day, svc, t, p)] = total * a / sum(tw) * b / sum(pw)
    return truth


def _money(v: float) -> dict[str, str]:
    return {"Amount": f"{v:.10f}", "Unit": "USD"}


def marginal_results(truth: Truth, tag: str, start: date, end: date) -> list[dict[str, Any]]:
    """ResultsByTime of a request grouped by SERVICE and ``tag``, one entry per day."""
    idx = 2 if tag == "team" else 3
    sums: dict[tuple[date, str, str | None], float] = defaultdict(float)
    for key, v in truth.items():
        if start <= key[0] < end:
            sums[(key[0], key[1], key[idx])] += v
    out = []
    day = start
    while day < end:
        groups = [
            {
                "Keys": [svc, f"{tag}${val or ''}"],
                "Metrics": {
                    "AmortizedCost": _money(v),
                    "UnblendedCost": _money(v * 1.05),
                    "UsageQuantity": {"Amount": f"{v * 3:.6f}", "Unit": "N/A"},
                },
            }
            for (d, svc, val), v in sorted(sums.items(), key=lambda kv: str(kv[0]))
            if d == day
        ]
        out.append(
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": groups,
                "Estimated": day >= end - timedelta(days=2),
            }
        )
        day += timedelta(days=1)
    return out


def paged_answers(
    query: CostExplorerQuery, truth: Truth, days_per_page: int = 30
) -> list[dict[str, Any]]:
    """Seeded answers in the order production asks: each request, each of its pages."""
    answers = []
    for i, req in enumerate(build_requests(query)):
        tag = req["GroupBy"][1]["Key"]
        results = marginal_results(truth, tag, query.start, query.end)
        pages = [results[k : k + days_per_page] for k in range(0, len(results), days_per_page)]
        for n, chunk in enumerate(pages):
            body: dict[str, Any] = {
                "GroupDefinitions": req["GroupBy"],
                "ResultsByTime": chunk,
                "DimensionValueAttributes": [],
            }
            if n + 1 < len(pages):
                body["NextPageToken"] = f"req{i}-page{n + 2}"
            answers.append(body)
    return answers


def stored(store_path: Path) -> dict[str, Any]:
    with Store(store_path, read_only=True) as st:
        df = st.cost_frame("source = 'cost_explorer'")
    return {
        "total": float(df["effective_cost"].sum()),
        "billed": float(df["billed_cost"].sum()),
        "team": df.groupby(df["team"].fillna("(none)"))["effective_cost"].sum().to_dict(),
        "project": df.groupby(df["project"].fillna("(none)"))["effective_cost"].sum().to_dict(),
        "service": df.groupby("service")["effective_cost"].sum().to_dict(),
        "rows": len(df),
        "days": df["ds"].dt.date.nunique(),
    }


def by(truth: Truth, idx: int) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for key, v in truth.items():
        out[key[idx] or "(none)"] += v
    return dict(out)


def test_requests_follow_the_two_group_by_limit() -> None:
    q = CostExplorerQuery(date(2025, 1, 1), date(2025, 4, 1), tags=("team", "project", "env"))
    reqs = build_requests(q)
    assert len(reqs) == 3
    assert all(len(r["GroupBy"]) == 2 for r in reqs)
    assert [r["GroupBy"][1]["Key"] for r in reqs] == ["team", "project", "env"]
    assert all(r["GroupBy"][0] == {"Type": "DIMENSION", "Key": "SERVICE"} for r in reqs)
    assert reqs[0]["Metrics"] == list(METRICS)
    hourly = build_requests(CostExplorerQuery(date(2025, 1, 1), date(2025, 1, 3), "HOURLY"))
    assert hourly[0]["TimePeriod"] == {
        "Start": "2025-01-01T00:00:00Z",
        "End": "2025-01-03T00:00:00Z",
    }


def test_cli_90_days_stores_exactly_the_seeded_totals(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    start, end = date(2025, 1, 1), date(2025, 4, 1)  # 90 days
    truth = make_truth(start, 90)
    query = CostExplorerQuery(start, end)
    answers = paged_answers(query, truth)
    assert len(answers) == 6  # 2 requests x 3 pages
    seed_cost_and_usage(aws_env, answers)
    store = tmp_path / "s.duckdb"
    args = [
        "ingest",
        "cost-explorer",
        "--start",
        "2025-01-01",
        "--end",
        "2025-04-01",
        "--endpoint-url",
        aws_env,
        "--store",
        str(store),
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["balanced"] is True and rep["rows_rejected"] == 0
    got = stored(store)
    seeded_total = math.fsum(truth.values())
    assert round(got["total"], 2) == round(seeded_total, 2)
    assert round(rep["effective_cost_stored"], 2) == round(seeded_total, 2)
    assert round(got["billed"], 2) == round(seeded_total * 1.05, 2)
    assert got["days"] == 90
    # Both tags' totals and the services' are AWS's, to the cent.
    for name, idx in (("service", 1), ("team", 2), ("project", 3)):
        want = by(truth, idx)
        assert set(got[name]) == set(want)
        for k, v in want.items():
            assert round(got[name][k], 2) == round(v, 2), (name, k)
    # Team and project are independent inside a day and service here, so the merge
    # recovers the joint cost of each cell too.
    with Store(store, read_only=True) as st:
        cell = st.query(
            "SELECT sum(effective_cost) FROM cost WHERE team = 'search' AND project = 'llm' "
            "AND service = 'AWS Lambda' AND ds = TIMESTAMPTZ '2025-02-10 00:00:00+00'"
        ).iloc[0, 0]
    assert cell == pytest.approx(truth[(date(2025, 2, 10), "AWS Lambda", "search", "llm")])

    # Incremental: the same window again asks for the last 3 days only (new request
    # bodies, so moto hands out the next seeded answers), and totals do not move.
    again = CostExplorerQuery(date(2025, 3, 29), end)
    seed_cost_and_usage(aws_env, paged_answers(again, truth))
    res2 = runner.invoke(app, args)
    assert res2.exit_code == 0, res2.output
    rep2 = json.loads(res2.stdout)
    assert rep2["files"][0].startswith("ce:2025-03-29..2025-04-01")
    assert rep2["rows_new"] == 0 and rep2["rows_replaced"] == rep2["rows_accepted"] > 0
    assert "reading 2025-03-29..2025-04-01" in rep2["warnings"][0]
    assert round(stored(store)["total"], 2) == round(seeded_total, 2)


def test_restated_days_replace_what_was_stored(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    start, end = date(2025, 5, 1), date(2025, 5, 11)
    truth = make_truth(start, 10, seed=3)
    q = CostExplorerQuery(start, end, tags=("team",))
    seed_cost_and_usage(aws_env, paged_answers(q, truth, days_per_page=4))
    with Store(tmp_path / "s.duckdb") as st:
        first = ingest_cost_explorer(st, q)
        assert first.balanced and first.rows_rejected == 0
        # AWS restates May 9 (cost doubles) and one group of May 10 disappears; May 11 is new.
        restated = dict(truth)
        for key in list(restated):
            if key[0] == date(2025, 5, 9):
                restated[key] *= 2
            if key[0] == date(2025, 5, 10) and key[1] == "AWS Lambda":
                del restated[key]
        restated.update({(date(2025, 5, 11), *k[1:]): v for k, v in truth.items() if k[0] == start})
        q2 = CostExplorerQuery(start, date(2025, 5, 12), tags=("team",))
        seed_cost_and_usage(
            aws_env,
            paged_answers(CostExplorerQuery(date(2025, 5, 8), q2.end, tags=("team",)), restated),
        )
        second = ingest_cost_explorer(st, q2)
        assert second.files[0].startswith("ce:2025-05-08..2025-05-12")
        total = st.query("SELECT sum(effective_cost) FROM cost").iloc[0, 0]
        lambda_may10 = st.query(
            "SELECT count(*) FROM cost WHERE service = 'AWS Lambda' "
            "AND ds = TIMESTAMPTZ '2025-05-10 00:00:00+00'"
        ).iloc[0, 0]
    assert round(total, 2) == round(math.fsum(restated.values()), 2)
    assert lambda_may10 == 0


def test_single_tag_and_untagged_groups(aws_env: str, tmp_path: Path) -> None:  # noqa: F811
    start = date(2025, 6, 1)
    truth = make_truth(start, 3, seed=11)
    q = CostExplorerQuery(start, date(2025, 6, 4), tags=("team",))
    seed_cost_and_usage(aws_env, paged_answers(q, truth))
    with Store(tmp_path / "s.duckdb") as st:
        rep = ingest_cost_explorer(st, q, incremental=False)
        df = st.cost_frame()
    assert rep.rows_accepted == len(df) == 3 * len(SERVICES) * len(TEAMS)
    untagged = df[df["team"].isna()]
    assert len(untagged) == 3 * len(SERVICES)
    assert set(untagged["tags"]) == {"{}"}
    assert set(df.loc[df["team"].notna(), "tags"].map(lambda t: tuple(json.loads(t)))) == {
        ("team",)
    }
    assert df["extras"].map(lambda e: json.loads(e)["estimated"]).sum() == 2 * len(SERVICES) * len(
        TEAMS
    )
