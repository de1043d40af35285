"""Fleet planning, scenarios, and the ``pack`` / ``rightsize`` / ``plan`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from forecaster.commands import optimize
from optimizer.catalog import load_catalog
from optimizer.fleet import FleetConfig, Scenario, Workload, plan
from optimizer.mig import fit_profiles

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("pack")(optimize.pack)
    app.command("rightsize")(optimize.rightsize)
    app.command("plan")(optimize.plan)
    return app


def workloads() -> list[Workload]:
    return [
        Workload(
            "train", 2, 90, 1000, gpu=8, gpu_models=("H100-80GB",), team="nlp", kind="training"
        ),
        Workload(
            "embed",
            9,
            2,
            8,
            gpu=0.25,
            gpu_memory_gib=15,
            gpu_models=("H100-80GB",),
            production=True,
            spot_tolerant=True,
            team="search",
            kind="inference",
        ),
        Workload(
            "api", 12, 1, 2, production=True, spot_tolerant=True, team="web", kind="inference"
        ),
    ]


def check_fleet(p, wl: list[Workload]) -> None:  # type: ignore[no-untyped-def]
    cat = load_catalog()
    pods: dict[str, int] = {}
    for g in p.groups:
        for b in g.packing.bins:
            it = cat.get(b.bin_type)
            assert b.load[0] <= it.vcpu and b.load[1] <= it.memory_gib and b.load[3] <= it.gpus
            for name, c in b.items:
                base = name.split("#")[0]
                pods[base] = pods.get(base, 0) + (c if "#" not in name else 0)
    assert not p.unplaced


def test_plan_respects_spot_floor_and_models() -> None:
    wl = workloads()
    p = plan(wl, load_catalog(), config=FleetConfig(time_limit=1))
    check_fleet(p, wl)
    a = p.assignment()
    api = a[a["item"] == "api"].groupby("purchase_option")["count"].sum()
    assert api["on_demand"] == 4 and api["spot"] == 8  # 30 % floor of 12, rounded up
    gpu_nodes = p.nodes()
    train_types = set(a[a["item"] == "train"]["instance_type"])
    assert train_types == {"p5.48xlarge"}
    assert p.total_usd_per_hour >= p.lower_bound_usd_per_hour - 1e-9
    assert set(gpu_nodes["purchase_option"]) == {"on_demand", "spot"}


def test_scenarios_are_side_effect_free() -> None:
    wl = workloads()
    frozen = list(wl)
    cfg = FleetConfig(time_limit=1)
    base = plan(wl, load_catalog(), config=cfg)
    grown = plan(wl, load_catalog(), Scenario("grow", growth={"nlp": 1.5}), cfg)
    spot = plan(wl, load_catalog(), Scenario("spot", spot_kinds=("training",)), cfg)
    mig = plan(wl, load_catalog(), Scenario("mig", use_mig=True), cfg)
    assert wl == frozen
    assert grown.total_usd_per_hour > base.total_usd_per_hour
    assert spot.total_usd_per_hour < base.total_usd_per_hour
    assert mig.scenario == "mig" and not mig.unplaced
    # MIG bundles obey NVIDIA's geometry: 2g.20gb -> at most 3 per GPU.
    a = mig.assignment()
    bundles = a[a["item"].str.contains("mig:")]
    assert len(bundles) > 0
    for item in bundles["item"]:
        assert "2g.20gb" in item
    assert fit_profiles("H100-80GB", ["2g.20gb"] * 3) is not None


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_pack_cli_contract(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item,count,cpu,mem\na,3,2,4\nb,2,1,8\n")
    bins = write(
        tmp_path / "bins.csv", "bin_type,cost,cpu,mem,max_count\nsmall,1,2,8,\nbig,1.8,4,16,2\n"
    )
    out = tmp_path / "plan.csv"
    res = runner.invoke(
        make_app(),
        [
            "pack",
            "--items",
            str(items),
            "--bins",
            str(bins),
            "--output",
            str(out),
            "--time-limit",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["bin_id", "bin_type", "item", "count"]
    assert df.groupby("item")["count"].sum().to_dict() == {"a": 3, "b": 2}
    caps = {"small": (2, 8), "big": (4, 16)}
    sizes = {"a": (2, 4), "b": (1, 8)}
    for _, g in df.groupby("bin_id"):
        cap = caps[g["bin_type"].iloc[0]]
        load = np.sum(
            [np.multiply(sizes[i], c) for i, c in zip(g["item"], g["count"], strict=True)], axis=0
        )
        assert np.all(load <= cap)
    assert df.drop_duplicates("bin_id")["bin_type"].value_counts().get("big", 0) <= 2


@pytest.mark.parametrize(
    ("items", "bins", "needle"),
    [
        ("item,count,cpu\na,1,2\n", "bin_type,cost,cpu,mem\nb,1,4,4\n", "items.csv, column 'mem'"),
        ("item,count,cpu,mem\na,1,2,1\n", "bin_type,cost,cpu\nb,1,4\n", "bins.csv, column 'mem'"),
        (
            "item,count,cpu\na,1,-2\n",
            "bin_type,cost,cpu\nb,1,4\n",
            "items.csv, row 2, column 'cpu'",
        ),
        ("item,count,cpu\na,1,2\nz,1,9\n", "bin_type,cost,cpu\nb,1,4\n", "row 3, column 'cpu'"),
        ("item,count,cpu\na,1,nan\n", "bin_type,cost,cpu\nb,1,4\n", "row 2, column 'cpu'"),
        (
            "item,count,cpu\na,1,1\n",
            "bin_type,cost,cpu\nb,NaN,4\n",
            "bins.csv, row 2, column 'cost'",
        ),
        ("item,count,cpu\na,1.5,1\n", "bin_type,cost,cpu\nb,1,4\n", "column 'count'"),
        ("item,cpu\na,1\n", "bin_type,cost,cpu\nb,1,4\n", "column 'count'"),
        ("item,count,cpu\na,1,1\na,1,1\n", "bin_type,cost,cpu\nb,1,4\n", "duplicate name"),
        ("item,count,cpu\na,5,3\n", "bin_type,cost,cpu,max_count\nb,1,4,2\n", "max_count"),
    ],
)
def test_pack_cli_bad_input(tmp_path: Path, items: str, bins: str, needle: str) -> None:
    i = write(tmp_path / "items.csv", items)
    b = write(tmp_path / "bins.csv", bins)
    out = tmp_path / "plan.csv"
    res = runner.invoke(
        make_app(), ["pack", "--items", str(i), "--bins", str(b), "--output", str(out)]
    )
    assert res.exit_code == 2
    assert needle in " ".join(res.output.split()), res.output
    assert not out.exists()


def util_csv(path: Path) -> Path:
    n = 72
    rng = np.random.default_rng(0)
    rows = []
    for wid, kind, req, gpu in (
        ("eks/prod/api", "inference", 4.0, 0.0),
        ("eks/ml/train", "training", 32.0, 8.0),
    ):
        for h in range(n):
            reps = 3
            rows.append(
                {
                    "ds": pd.Timestamp("2025-03-01", tz="UTC") + pd.Timedelta(hours=h),
                    "workload_id": wid,
                    "team": "t",
                    "kind": kind,
                    "instance_type": "p5.48xlarge" if gpu else "m6i.2xlarge",
                    "cpu_used": reps * req * rng.uniform(0.2, 0.5),
                    "cpu_requested": reps * req,
                    "memory_used_gib": reps * 3.0,
                    "memory_requested_gib": reps * 8.0,
                    "gpu_used": reps * gpu * 0.9,
                    "gpu_requested": reps * gpu,
                    "gpu_memory_used_gib": reps * gpu * 60,
                    "gpu_memory_total_gib": reps * gpu * 80,
                    "replicas": reps,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_rightsize_and_plan_cli(tmp_path: Path) -> None:
    path = util_csv(tmp_path / "util.csv")
    app = make_app()
    res = runner.invoke(app, ["rightsize", str(path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["workloads"] == 2 and doc["saving_usd_per_month"] > 0
    res = runner.invoke(
        app, ["rightsize", str(path), "--policy", "risk", "--output", str(tmp_path / "r.csv")]
    )
    assert res.exit_code == 0, res.output
    assert "Right-sizing" in res.output and (tmp_path / "r.csv").exists()
    res = runner.invoke(app, ["plan", str(path), "--json", "--time-limit", "1", "--grow", "t=2"])
    assert res.exit_code == 0, res.output
    plans = json.loads(res.stdout)["plans"]
    assert len(plans) == 2 and plans[1]["total_usd_per_hour"] > plans[0]["total_usd_per_hour"]
    res = runner.invoke(app, ["rightsize", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "file not found" in res.output
