"""Benchmark: right-size on the first part of a utilization history, replay the rest.

A synthetic fleet (seeded; inference with diurnal/weekly load and autoscaled replicas,
batch jobs with bursts, memory that creeps up, GPU services) provides an hourly
utilization frame. Each policy sizes every workload on the first ``--train`` share of
the history; the remaining hours are replayed:

* **claimed saving**: the policy's ``saving_usd_per_hour`` times the replay hours;
* **realised saving**: per replay hour, ``(request - recommendation) * replicas`` priced
  per vCPU/GiB/GPU, counting nothing in an hour where the recommendation was exceeded
  (throttled or OOM-killed pods go back to their old request);
* **under-provisioned share**: replay workload-hours in which usage exceeded the
  recommendation in any resource.

Targets (issue #4): realised within 10 % of claimed; under-provisioned below 1 %.
The anchor is the VPA / Compute Optimizer policy (CPU P90 + 15 %, memory P99.5 + 20 %).

Usage: ``python benchmarks/rightsizing_replay.py [--weeks 8] [--workloads 40] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def synthetic_history(weeks: int, n_workloads: int, seed: int) -> pd.DataFrame:
    """Hourly utilization frame of a synthetic fleet (values summed over replicas)."""
    rng = np.random.default_rng(seed)
    hours = weeks * 7 * 24
    ds = pd.date_range("2025-01-06", periods=hours, freq="h", tz="UTC")
    t = np.arange(hours)
    hod = t % 24
    dow = (t // 24) % 7
    parts = []
    kinds = ["inference", "inference", "batch", "memory-creep", "gpu-inference"]
    for w in range(n_workloads):
        kind = kinds[w % len(kinds)]
        cpu_req = float(rng.choice([1, 2, 4, 8]))
        mem_req = cpu_req * float(rng.choice([2, 4, 8]))
        level = rng.uniform(0.25, 0.6)
        diurnal = 1 + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * (hod - rng.integers(0, 24)) / 24)
        weekly = np.where(dow >= 5, rng.uniform(0.6, 0.9), 1.0)
        growth = 1 + rng.uniform(0.0, 0.10) * t / hours
        load = diurnal * weekly * growth
        replicas = np.maximum(1, np.round(rng.uniform(2, 10) * load)).astype(int)
        # Per-replica usage: autoscaling keeps it near a target, with noise.
        per_load = load * rng.uniform(2, 10) / replicas
        cpu = cpu_req * level * per_load * rng.lognormal(0, 0.12, hours)
        if kind == "batch":
            bursts = rng.random(hours) < 0.03
            cpu = cpu * np.where(bursts, rng.uniform(1.5, 2.2, hours), 1.0)
        mem = mem_req * rng.uniform(0.3, 0.5) * (1 + 0.05 * rng.standard_normal(hours)).clip(0.8)
        if kind == "memory-creep":
            mem = mem * (1 + 0.15 * t / hours)
        gpu_req = 1.0 if kind == "gpu-inference" else 0.0
        gpu = gpu_req * np.clip(0.25 * per_load * rng.lognormal(0, 0.1, hours), 0, 1)
        gmem = gpu_req * np.full(hours, rng.uniform(8, 14))
        parts.append(
            pd.DataFrame(
                {
                    "ds": ds,
                    "workload_id": f"eks/team{w % 6}/svc{w:02d}",
                    "team": f"team{w % 6}",
                    "kind": kind,
                    "instance_type": "p5.48xlarge" if gpu_req else "m6i.4xlarge",
                    "cpu_used": np.minimum(cpu, cpu_req) * replicas,
                    "cpu_requested": cpu_req * replicas,
                    "memory_used_gib": mem * replicas,
                    "memory_requested_gib": mem_req * replicas,
                    "gpu_used": gpu * replicas,
                    "gpu_requested": gpu_req * replicas,
                    "gpu_memory_used_gib": gmem * replicas,
                    "gpu_memory_total_gib": gpu_req * 80.0 * replicas,
                    "replicas": replicas,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def replay(
    history: pd.DataFrame, recs: pd.DataFrame, cut: pd.Timestamp, catalog: Any
) -> dict[str, float]:
    """Claimed vs realised saving and under-provisioned share over ``ds >= cut``."""
    from optimizer.mig import profiles_for

    units = catalog.unit_prices()
    test = history[history["ds"] >= cut]
    hours = test["ds"].nunique()
    claimed = realised = 0.0
    under = total = 0
    for rec in recs.itertuples(index=False):
        g = test[test["workload_id"] == rec.workload_id]
        reps = g["replicas"].to_numpy(dtype=float)
        cpu = g["cpu_used"].to_numpy() / reps
        mem = g["memory_used_gib"].to_numpy() / reps
        gpu = g["gpu_used"].to_numpy() / reps
        gpu_cap = rec.gpu_recommended
        if str(rec.gpu_recommendation).startswith("mig "):
            it = catalog.get(rec.instance_type)
            name = str(rec.gpu_recommendation)[4:]
            gpu_cap = next(p.compute_fraction for p in profiles_for(it.gpu_model) if p.name == name)
        over = (cpu > rec.cpu_recommended) | (mem > rec.memory_recommended_gib)
        if rec.gpu_request > 0:
            over |= gpu > gpu_cap + 1e-9
        model = catalog.get(rec.instance_type).gpu_model if rec.instance_type else ""
        per_replica = (
            (rec.cpu_request - rec.cpu_recommended) * units.vcpu
            + (rec.memory_request_gib - rec.memory_recommended_gib) * units.memory_gib
            + (rec.gpu_request - rec.gpu_recommended) * units.gpu_price(model)
        )
        claimed += rec.saving_usd_per_hour * hours
        realised += float((per_replica * reps)[~over].sum())
        under += int(over.sum())
        total += len(g)
    return {
        "claimed_usd": claimed,
        "realised_usd": realised,
        "realised_over_claimed": realised / claimed if claimed else float("nan"),
        "under_provisioned_share": under / total if total else float("nan"),
        "replay_hours": float(hours),
    }


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from optimizer.catalog import load_catalog
    from optimizer.rightsizing import rightsize, risk_budgeted, vpa_like

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--workloads", type=int, default=40)
    ap.add_argument("--train", type=float, default=0.5, help="share of history used to size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "rightsizing_replay.json"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    history = synthetic_history(args.weeks, args.workloads, args.seed)
    catalog = load_catalog()
    start = history["ds"].min()
    cut = start + (history["ds"].max() - start) * args.train
    cut = cut.floor("h")
    results = {}
    for name, cfg in (
        ("vpa-anchor (P90+15% / P99.5+20%)", vpa_like()),
        ("ours (risk budget)", risk_budgeted()),
    ):
        recs = rightsize(history, catalog, cfg, end=cut)
        results[name] = {
            **replay(history, recs, cut, catalog),
            "claimed_usd_per_month": float(recs["saving_usd_per_month"].sum()),
            "workloads": len(recs),
        }
    table = Table(title="Right-sizing replay: size on the first part, replay the rest")
    for col in ("policy", "claimed $", "realised $", "realised/claimed", "under-prov. %"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['claimed_usd']:,.0f}",
            f"{r['realised_usd']:,.0f}",
            f"{r['realised_over_claimed']:.3f}",
            f"{100 * r['under_provisioned_share']:.2f}",
        )
    console = Console()
    console.print(table)
    ours = results["ours (risk budget)"]
    targets = {
        "realised_within_10pct_of_claimed": abs(ours["realised_over_claimed"] - 1) <= 0.10,
        "under_provisioned_below_1pct": ours["under_provisioned_share"] < 0.01,
    }
    console.print(f"targets (ours): {targets}")
    payload = {
        "benchmark": "rightsizing_replay",
        "commit": git_commit(),
        "args": vars(args) | {"output": str(args.output)},
        "data": "synthetic fleet (benchmarks/rightsizing_replay.py:synthetic_history)",
        "results": results,
        "targets": targets,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
