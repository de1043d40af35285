"""Scenarios: strict YAML validation and what each driver does to cost and capacity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError
from optimizer.catalog import load_catalog
from optimizer.fleet import FleetConfig
from optimizer.scenarios import (
    CAPACITY_COLUMNS,
    MONTHLY_COLUMNS,
    QUANTILES,
    WORKLOAD_COLUMNS,
    BaselineInputs,
    baseline_result,
    compare,
    compare_capacity,
    load_scenario,
    parse_scenario,
    run_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()
CFG = FleetConfig(time_limit=0.5)
MONTHS = [pd.Timestamp(f"2026-0{m}-01", tz="UTC") for m in (1, 2, 3)]


# -- builders ---------------------------------------------------------------------------------
def workload(wid: str, team: str, kind: str, **kw: Any) -> dict[str, Any]:
    row = {
        "workload_id": wid,
        "team": team,
        "kind": kind,
        "instance_type": "",
        "gpu_model": "",
        "production": False,
        "replicas": 4,
        "cpu": 2.0,
        "memory_gib": 8.0,
        "gpu": 0.0,
        "gpu_memory_gib": 0.0,
        "cpu_recommended": np.nan,
        "memory_recommended_gib": np.nan,
        "gpu_recommended": np.nan,
    }
    row.update(kw)
    return row


def monthly(level: float, spread: float = 0.1, months: list[pd.Timestamp] = MONTHS) -> dict:
    return {
        "month": months,
        "cost": [level] * len(months),
        "lo_80": [level * (1 - spread)] * len(months),
        "hi_80": [level * (1 + spread)] * len(months),
        "lo_95": [level * (1 - 2 * spread)] * len(months),
        "hi_95": [level * (1 + 2 * spread)] * len(months),
    }


def make_baseline(workloads: list[dict[str, Any]] | None = None, **kw: Any) -> BaselineInputs:
    """Two teams (a: 1000 USD/month, b: 2000) and 500 of spend no team carries."""
    teams = pd.concat(
        [
            pd.DataFrame({"team": "a", **monthly(1000.0)}),
            pd.DataFrame({"team": "b", **monthly(2000.0)}),
        ],
        ignore_index=True,
    )
    total = pd.DataFrame(monthly(3500.0, 0.06))
    wl = workloads if workloads is not None else default_workloads()
    args: dict[str, Any] = {"compute_share": {"a": 1.0, "b": 1.0}, "on_demand_share": 1.0}
    args.update(kw)
    return BaselineInputs(
        team_monthly=teams,
        total_monthly=total,
        workloads=pd.DataFrame(wl, columns=list(WORKLOAD_COLUMNS)),
        **args,
    )


def default_workloads() -> list[dict[str, Any]]:
    return [
        workload(
            "a/train",
            "a",
            "training",
            gpu=1.0,
            gpu_model="A10G",
            cpu=3.0,
            memory_gib=12.0,
            replicas=4,
            gpu_recommended=0.9,
        ),
        workload(
            "b/nb",
            "b",
            "notebook",
            gpu=1.0,
            gpu_model="L4",
            cpu=3.0,
            memory_gib=12.0,
            replicas=6,
            gpu_recommended=0.2,
        ),
        workload(
            "b/etl",
            "b",
            "pipeline",
            cpu=4.0,
            memory_gib=16.0,
            replicas=5,
            cpu_recommended=1.5,
            memory_recommended_gib=6.0,
        ),
    ]


def spec(**kw: Any) -> Any:
    return parse_scenario({"name": "s", **kw})


# -- validation -------------------------------------------------------------------------------
def test_unknown_top_level_key_names_it_and_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_scenario({"name": "x", "grwoth_pct_per_month": {"a": 1}}, "s.yaml")
    msg = str(exc.value)
    assert "s.yaml" in msg and "unknown key 'grwoth_pct_per_month'" in msg
    assert "growth_pct_per_month" in msg and "savings_plan" in msg and "spot_share" in msg


def test_unknown_nested_key_lists_that_level_keys() -> None:
    with pytest.raises(ConfigError) as exc:
        spec(savings_plan={"coverage_pct": 50, "discount": 30})
    msg = str(exc.value)
    assert "unknown key 'savings_plan.discount'" in msg
    assert "allowed keys: commitment_usd_per_hour, coverage_pct, discount_pct, term" in msg
    with pytest.raises(ConfigError, match=r"new_workloads\.0\.gpus'.*gpus_per_replica"):
        spec(new_workloads=[{"name": "n", "team": "a", "replicas": 1, "gpus": 8}])


def test_bad_enum_values_list_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as exc:
        spec(gpu_sharing="time-slicing")
    assert "gpu_sharing" in str(exc.value) and "'off', 'mig' or 'fractional'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        spec(spot_share={"trainig": 0.5})
    msg = str(exc.value)
    assert "spot_share.trainig" in msg and "'training'" in msg and "'inference'" in msg
    with pytest.raises(ConfigError, match=r"savings_plan.term.*'1yr' or '3yr'"):
        spec(savings_plan={"coverage_pct": 10, "term": "5yr"})


def test_values_out_of_range_are_named() -> None:
    with pytest.raises(ConfigError, match=r"spot_share.*must be in \[0, 1\]"):
        spec(spot_share={"training": 1.5})
    with pytest.raises(ConfigError, match=r"growth_pct_per_month.*team 'a'"):
        spec(growth_pct_per_month={"a": -100})
    with pytest.raises(
        ConfigError, match=r"exactly one of commitment_usd_per_hour or coverage_pct"
    ):
        spec(savings_plan={"coverage_pct": 10, "commitment_usd_per_hour": 3})
    with pytest.raises(ConfigError, match=r"new_workloads.0.start.*YYYY-MM"):
        spec(new_workloads=[{"name": "n", "team": "a", "replicas": 1, "start": "March"}])
    with pytest.raises(ConfigError, match=r"key 'name' is required"):
        parse_scenario({"horizon_months": 3})
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_scenario(["name", "x"])


def test_yaml_quirks_and_examples(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        "name: q\ngpu_sharing: off\n"
        "new_workloads:\n  - {name: n, team: a, replicas: 1, start: 2026-02-01}\n"
    )
    s = load_scenario(p)
    assert s.gpu_sharing == "off" and s.new_workloads[0].start == "2026-02"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(p)
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")
    examples = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
    assert {e.name for e in examples} >= {"grow-training-spot.yaml", "mig-rightsize.yaml"}
    for e in examples:
        assert load_scenario(e).name == e.stem


def test_unknown_team_and_gpu_model_are_named_at_run_time() -> None:
    base = make_baseline()
    with pytest.raises(ConfigError, match=r"team 'c'; allowed values: \*, a, b"):
        run_scenario(spec(growth_pct_per_month={"c": 3}), base, config=CFG)
    bad = spec(
        new_workloads=[
            {"name": "n", "team": "a", "replicas": 1, "gpus_per_replica": 1, "gpu_model": "B200"}
        ]
    )
    with pytest.raises(ConfigError, match=r"gpu_model must be one of .*H100-80GB.*got 'B200'"):
        run_scenario(bad, base, config=CFG)


# -- drivers ----------------------------------------------------------------------------------
def _nested(frame: pd.DataFrame) -> None:
    q = frame[list(QUANTILES)].to_numpy()
    lo95, lo80, c, hi80, hi95 = q[:, 3], q[:, 1], q[:, 0], q[:, 2], q[:, 4]
    assert np.all(lo95 <= lo80 + 1e-6) and np.all(lo80 <= c + 1e-6)
    assert np.all(c <= hi80 + 1e-6) and np.all(hi80 <= hi95 + 1e-6)


def test_no_drivers_reproduces_the_baseline() -> None:
    base = make_baseline()
    r = run_scenario(spec(), base, config=CFG)
    b = baseline_result(base, config=CFG)
    assert list(r.monthly.columns) == list(MONTHLY_COLUMNS)
    assert list(r.capacity.columns) == list(CAPACITY_COLUMNS)
    np.testing.assert_allclose(r.monthly[list(QUANTILES)], b.monthly[list(QUANTILES)])
    np.testing.assert_allclose(r.monthly["cost"], 3500.0)
    assert r.summary["gpus"] == b.summary["gpus"] == 4 + 6


def test_growth_compounds_per_team_and_keeps_unallocated_spend() -> None:
    base = make_baseline()
    r = run_scenario(spec(growth_pct_per_month={"a": 10, "*": 1}), base, config=CFG)
    a = r.by_team[r.by_team["team"] == "a"].sort_values("month")
    b = r.by_team[r.by_team["team"] == "b"].sort_values("month")
    k = np.arange(1, 4)
    np.testing.assert_allclose(a["cost"], 1000 * 1.1**k)
    np.testing.assert_allclose(a["hi_95"], 1200 * 1.1**k)
    np.testing.assert_allclose(b["cost"], 2000 * 1.01**k)
    # The 500 no team carries is untouched.
    np.testing.assert_allclose(r.monthly["cost"], 1000 * 1.1**k + 2000 * 1.01**k + 500)
    _nested(r.monthly)
    _nested(r.by_team)
    # Capacity at the horizon's peak: team a's 4 replicas grow by 1.1 ** 3 -> 6.
    assert r.summary["gpus"] == math.ceil(4 * 1.1**3 - 1e-9) + math.ceil(6 * 1.01**3 - 1e-9)


def test_horizon_beyond_the_forecast_repeats_the_last_month_with_wider_bands() -> None:
    r = run_scenario(spec(horizon_months=6), make_baseline(), config=CFG)
    assert len(r.monthly) == 6 and r.monthly["month"].iloc[-1] == pd.Timestamp(
        "2026-06-01", tz="UTC"
    )
    np.testing.assert_allclose(r.monthly["cost"], 3500.0)
    width = (r.monthly["hi_80"] - r.monthly["lo_80"]).to_numpy()
    assert np.all(np.diff(width[2:]) > 0) and width[0] == pytest.approx(width[2])
    assert any("repeat its last month" in n for n in r.notes)


def test_spot_share_splits_replicas_and_lowers_cost() -> None:
    base = make_baseline()
    r = run_scenario(spec(spot_share={"training": 0.75}), base, config=CFG)
    cap = r.capacity
    spot = cap[cap["purchase_option"] == "spot"]
    # 3 of team a's 4 training replicas (1 GPU each) run on Spot; notebooks stay on-demand.
    assert int(spot["gpus"].sum()) >= 3 and set(spot["instance_type"]).issubset(
        {it.name for it in CATALOG if it.gpu_model == "A10G"}
    )
    a = r.by_team[r.by_team["team"] == "a"]["cost"].to_numpy()
    b = r.by_team[r.by_team["team"] == "b"]["cost"].to_numpy()
    assert np.all(a < 1000.0) and np.allclose(b, 2000.0)
    assert r.summary["unit_factor"]["a"] < 1.0 and r.summary["unit_factor"]["b"] == pytest.approx(
        1.0
    )
    assert r.summary["spot_share_pct"] > 0


def test_rightsizing_and_gpu_sharing_shrink_capacity_and_cost() -> None:
    base = make_baseline()
    plain = baseline_result(base, config=CFG)
    rs = run_scenario(spec(rightsizing={"applied": True}), base, config=CFG)
    assert rs.summary["unit_factor"]["b"] < 1.0  # the pipeline's CPU and memory shrink
    assert rs.summary["unit_factor"]["a"] == pytest.approx(1.0)  # no CPU recommendation
    shared = run_scenario(spec(gpu_sharing="fractional"), base, config=CFG)
    # Notebooks using 0.2 GPU share L4s: 6 replicas at 2/8 GPU fit on 2 GPUs.
    assert shared.summary["gpus"] == plain.summary["gpus"] - 6 + 2
    assert shared.summary["unit_factor"]["b"] < 1.0
    mig = run_scenario(spec(gpu_sharing="mig", sharing_kinds=["training"]), base, config=CFG)
    # Training uses 0.9 of a GPU: nothing to share.
    assert mig.summary["gpus"] == plain.summary["gpus"]


def test_new_workload_costs_its_instances_for_the_months_it_runs() -> None:
    base = make_baseline()
    nw = {
        "name": "llm",
        "team": "a",
        "kind": "training",
        "replicas": 2,
        "gpus_per_replica": 8,
        "gpu_model": "H100-80GB",
        "cpu": 150,
        "memory_gib": 1500,
        "start": "2026-02",
        "end": "2026-02",
        "hours_per_day": 12,
        "days_per_week": 7,
    }
    r = run_scenario(spec(new_workloads=[nw]), base, config=CFG)
    p5 = CATALOG.get("p5.48xlarge")
    feb = 2 * p5.on_demand_usd_per_hour * 28 * 24 * 0.5
    np.testing.assert_allclose(r.monthly["cost"], [3500.0, 3500.0 + feb, 3500.0])
    assert r.summary["new_workloads_cost"] == pytest.approx(feb, rel=1e-6)
    a = r.by_team[r.by_team["team"] == "a"]["cost"].to_numpy()
    np.testing.assert_allclose(a, [1000.0, 1000.0 + feb, 1000.0])
    row = r.capacity[r.capacity["instance_type"] == "p5.48xlarge"]
    assert int(row["count"].sum()) == 2 and int(row["gpus"].sum()) == 16
    # A new team appears in the team view.
    r2 = run_scenario(spec(new_workloads=[{**nw, "team": "newteam"}]), base, config=CFG)
    assert "newteam" in set(r2.by_team["team"])


def test_savings_plan_saves_when_used_and_wastes_when_over_committed() -> None:
    base = make_baseline()
    hours = np.array([31, 28, 31]) * 24.0
    u = 3000.0 / hours  # the teams' spend is all on-demand compute; the other 500 is not
    d = 0.28
    c = 2.0
    r = run_scenario(
        spec(savings_plan={"commitment_usd_per_hour": c, "discount_pct": 28}), base, config=CFG
    )
    expect = 3500.0 - (np.minimum(u, c / (1 - d)) - c) * hours
    np.testing.assert_allclose(r.monthly["cost"], expect)
    assert np.all(r.monthly["cost"] < 3500.0)
    over = run_scenario(spec(savings_plan={"commitment_usd_per_hour": 10.0}), base, config=CFG)
    # Usage below the commitment: the compute part costs the commitment, the rest stays.
    np.testing.assert_allclose(over.monthly["cost"], 500.0 + 10.0 * hours)
    _nested(r.monthly)
    _nested(over.monthly)
    cov = run_scenario(
        spec(savings_plan={"coverage_pct": 50}),
        make_baseline(on_demand_usd_per_hour=4.0),
        config=CFG,
    )
    assert cov.summary["savings_plan_usd_per_hour"] == pytest.approx(0.5 * 4.0 * (1 - d))


def test_deterministic_and_side_effect_free() -> None:
    base = make_baseline()
    before = (base.team_monthly.copy(), base.total_monthly.copy(), base.workloads.copy())
    s = spec(
        growth_pct_per_month={"b": 3}, spot_share={"pipeline": 0.5}, rightsizing={"applied": True}
    )
    r1 = run_scenario(s, base, config=CFG)
    r2 = run_scenario(s, base, config=CFG)
    pd.testing.assert_frame_equal(r1.monthly, r2.monthly)
    pd.testing.assert_frame_equal(r1.capacity, r2.capacity)
    pd.testing.assert_frame_equal(base.team_monthly, before[0])
    pd.testing.assert_frame_equal(base.total_monthly, before[1])
    pd.testing.assert_frame_equal(base.workloads, before[2])


def test_compare_side_by_side() -> None:
    base = make_baseline()
    b = baseline_result(base, config=CFG, horizon_months=4)
    g = run_scenario(
        parse_scenario({"name": "grow", "growth_pct_per_month": {"a": 5}}), base, config=CFG
    )
    wide = compare([b, g])
    assert list(wide.columns) == [
        "month",
        "baseline",
        *(f"baseline_{q}" for q in QUANTILES[1:]),
        "grow",
        *(f"grow_{q}" for q in QUANTILES[1:]),
    ]
    assert len(wide) == 4 and wide["grow"].isna().sum() == 1  # grow runs 3 months
    assert (wide["grow"].dropna() > wide["baseline"].iloc[:3]).all()
    cap = compare_capacity([b, g])
    assert {"baseline", "grow", "instance_type", "purchase_option"} <= set(cap.columns)
    assert cap["grow"].sum() >= cap["baseline"].sum()
    with pytest.raises(ConfigError, match="unique"):
        compare([b, b])
