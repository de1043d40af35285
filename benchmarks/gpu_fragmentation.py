"""GPU fragmentation benchmark: the FGD (ATC'23) protocol on the Alibaba openb traces.

Follows ``<data>/gpu/fgd_protocol.md``: per seed, the name-sorted pod list is shuffled, cloned up
to 130 % of the cluster's GPU capacity (a numpy generator replaces Go's ``math/rand``), nodes get
a fixed random tie-break rank, and pods are placed one at a time on the 1,213-node GPU cluster.
The metric is the discrete allocation curve: mean GPU allocation ratio over the events whose
arrived GPU request rounds to 100 % (and 130 %) of capacity.

1. **Anchors**: BestFit and FGD on ``default``, several seeds, against the published means
   (pass when within 0.5 points).
2. **Us**: on every openb trace on disk, FirstFit and our policy on the same streams; our
   policy learns its typical pods and demand classes from the trace's original pod list
   (``--profile``, the same information FGD gets); ``--online`` also runs it with no profile
   (learning from the arrivals so far).

Prints a Rich table (ours vs FGD published vs BestFit published vs FirstFit from the same run,
with pods/s) and writes ``benchmarks/results/gpu_fragmentation.json`` with the git commit.

Usage::

    python benchmarks/gpu_fragmentation.py [--data ../shared/data] [--seeds 3]
        [--workloads default,cpu050] [--jobs 4] [--online] [--fgd-all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import git_commit  # noqa: E402
from optimizer.placement import DEFAULT_POLICY, Cluster, PodStream, TypicalPods, simulate  # noqa: E402
from optimizer.placement.protocol import alloc_curve, arrival_stream  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "gpu_fragmentation.json"
NODE_FILE = "openb_node_list_gpu_node.csv"
ANCHOR_WORKLOAD = "default"
ANCHOR_TOLERANCE = 0.5
console = Console(stderr=True)
#: Tables go to stdout, wide enough for log files.
out = Console(width=170)


@lru_cache(maxsize=4)
def _cluster(openb: str) -> Cluster:
    return Cluster.from_frame(pd.read_csv(Path(openb) / NODE_FILE))


@lru_cache(maxsize=4)
def _workload(openb: str, name: str) -> tuple[PodStream, TypicalPods]:
    pods = PodStream.from_frame(pd.read_csv(Path(openb) / f"openb_pod_list_{name}.csv"))
    return pods, TypicalPods.from_stream(pods)


def run_one(openb: str, workload: str, seed: int, policy: str, use_profile: bool) -> dict[str, Any]:
    """One protocol run; returns the curve values at 100 % and 130 % and the throughput."""
    cluster = _cluster(openb)
    pods, typical = _workload(openb, workload)
    rng = np.random.default_rng(seed)
    stream = arrival_stream(pods, cluster.gpu_capacity_milli, cluster.n_nodes, rng)
    res = simulate(
        cluster,
        pods.take(stream.order),
        policy,
        profile=pods if use_profile else None,
        typical=typical if use_profile else None,
        rank=stream.rank,
        rng=rng,
        seed=seed,
    )
    curve = alloc_curve(res.arrived_milli, res.used_milli, cluster.gpu_capacity_milli)
    return {
        "workload": workload,
        "seed": seed,
        "policy": policy,
        "profile": use_profile,
        "alloc_100": float(curve[100]),
        "alloc_130": float(curve[130]),
        "events": res.n_pods,
        "failed": res.n_failed,
        "seconds": round(res.elapsed_s, 3),
        "pods_per_s": round(res.pods_per_second, 1),
    }


def _published(data: Path) -> pd.DataFrame:
    pub = pd.read_csv(data / "gpu" / "fgd_published_gpu_alloc_ratio.csv")
    pub["workload"] = pub["workload"].str.replace("openb_pod_list_", "", regex=False)
    return pub.set_index("workload")


def _signed(diff: float) -> str:
    return f"[{'green' if diff > 0 else 'red'}]{diff:+.2f}[/]"


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--workloads", default="", help="comma list (default: every trace on disk)")
    ap.add_argument("--policy", default=DEFAULT_POLICY, help="our policy (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--online", action="store_true", help="also run ours without a profile")
    ap.add_argument("--fgd-all", action="store_true", help="also run FGD on every trace")
    ap.add_argument("--no-anchors", action="store_true", help="skip the BestFit/FGD anchors")
    ap.add_argument("--output", type=Path, default=RESULT)
    args = ap.parse_args(argv)

    openb = args.data / "gpu" / "openb"
    if not (openb / NODE_FILE).exists():
        console.print(f"[red]error:[/] {openb / NODE_FILE} not found (use --data)")
        return 2
    on_disk = sorted(
        p.stem.replace("openb_pod_list_", "") for p in openb.glob("openb_pod_list_*.csv")
    )
    wanted = [w.strip() for w in args.workloads.split(",") if w.strip()] or on_disk
    missing = [w for w in wanted if w not in on_disk]
    if missing:
        console.print(f"[red]error:[/] workloads not on disk: {missing}; have {on_disk}")
        return 2
    published = _published(args.data)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))

    tasks: list[tuple[str, int, str, bool]] = []
    if not args.no_anchors:
        tasks += [(ANCHOR_WORKLOAD, s, p, True) for p in ("bestfit", "fgd") for s in seeds]
    for w in wanted:
        tasks += [(w, s, "firstfit", False) for s in seeds]
        tasks += [(w, s, args.policy, True) for s in seeds]
        if args.online:
            tasks += [(w, s, args.policy, False) for s in seeds]
        if args.fgd_all and not (w == ANCHOR_WORKLOAD and not args.no_anchors):
            tasks += [(w, s, "fgd", True) for s in seeds]
    console.print(
        f"{len(tasks)} runs ({len(wanted)} workloads x {len(seeds)} seeds), jobs={args.jobs}"
    )
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with console.status("placing...") as status:
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                futures = [pool.submit(run_one, str(openb), *t) for t in tasks]
                for i, f in enumerate(futures, 1):
                    runs.append(f.result())
                    status.update(f"placing... {i}/{len(tasks)} runs")
        else:
            for i, task in enumerate(tasks, 1):
                runs.append(run_one(str(openb), *task))
                status.update(
                    f"placing... {i}/{len(tasks)} runs ({task[0]} {task[2]} seed {task[1]})"
                )
    wall = time.perf_counter() - started
    df = pd.DataFrame(runs)

    def pick(w: str, policy: str, profile: bool, col: str) -> list[float]:
        sel = (df.workload == w) & (df.policy == policy) & (df.profile == profile)
        return df.loc[sel, col].tolist()

    anchors: dict[str, Any] = {}
    if not args.no_anchors:
        anchor_table = Table(title=f"Anchors on {ANCHOR_WORKLOAD} (seeds {seeds[0]}..{seeds[-1]})")
        for col in ("policy", "@100 ours", "@100 published", "diff", "@130 ours", "@130 pub", "ok"):
            anchor_table.add_column(col, justify="left" if col == "policy" else "right")
        for policy, key in (("bestfit", "05-BestFit"), ("fgd", "06-FGD")):
            m100, s100 = _stats(pick(ANCHOR_WORKLOAD, policy, True, "alloc_100"))
            m130, s130 = _stats(pick(ANCHOR_WORKLOAD, policy, True, "alloc_130"))
            p100 = float(published.loc[ANCHOR_WORKLOAD, f"{key}@100%"])
            p130 = float(published.loc[ANCHOR_WORKLOAD, f"{key}@130%"])
            ok = abs(m100 - p100) <= ANCHOR_TOLERANCE
            anchors[policy] = {
                "alloc_100_mean": round(m100, 3), "alloc_100_std": round(s100, 3),
                "alloc_130_mean": round(m130, 3), "alloc_130_std": round(s130, 3),
                "published_100": p100, "published_130": p130, "within_tolerance": ok,
            }  # fmt: skip
            anchor_table.add_row(
                policy, f"{m100:.2f} ± {s100:.2f}", f"{p100:.2f}", f"{m100 - p100:+.2f}",
                f"{m130:.2f} ± {s130:.2f}", f"{p130:.2f}", "yes" if ok else "[red]NO[/]",
            )  # fmt: skip
        out.print(anchor_table)

    table = Table(
        title=f"GPU allocation @100% arrival, ours ({args.policy}) vs anchors, "
        f"seeds {seeds[0]}..{seeds[-1]}"
    )
    cols = ["workload", "ours", "FGD pub", "vs FGD", "BestFit pub", "FirstFit", "vs FF"]
    cols += ["ours no-profile"] if args.online else []
    cols += ["FGD (run)"] if args.fgd_all else []
    cols += ["ours @130", "FGD pub @130", "ours pods/s", "FF pods/s"]
    for col in cols:
        table.add_column(col, justify="left" if col == "workload" else "right")
    summary: dict[str, Any] = {}
    for w in wanted:
        o100, o_sd = _stats(pick(w, args.policy, True, "alloc_100"))
        o130, _ = _stats(pick(w, args.policy, True, "alloc_130"))
        ff100, ff_sd = _stats(pick(w, "firstfit", False, "alloc_100"))
        has_pub = w in published.index
        fgd100 = float(published.loc[w, "06-FGD@100%"]) if has_pub else float("nan")
        fgd130 = float(published.loc[w, "06-FGD@130%"]) if has_pub else float("nan")
        bf100 = float(published.loc[w, "05-BestFit@100%"]) if has_pub else float("nan")
        speed = float(np.mean(pick(w, args.policy, True, "pods_per_s")))
        ff_speed = float(np.mean(pick(w, "firstfit", False, "pods_per_s")))
        row = {
            "ours_100_mean": round(o100, 3), "ours_100_std": round(o_sd, 3),
            "ours_130_mean": round(o130, 3), "fgd_published_100": fgd100,
            "fgd_published_130": fgd130, "bestfit_published_100": bf100,
            "firstfit_100_mean": round(ff100, 3), "firstfit_100_std": round(ff_sd, 3),
            "ours_minus_fgd_published": round(o100 - fgd100, 3),
            "ours_minus_firstfit": round(o100 - ff100, 3),
            "beats_both": bool(o100 > fgd100 and o100 > ff100) if has_pub else None,
            "ours_pods_per_s": round(speed, 1), "firstfit_pods_per_s": round(ff_speed, 1),
        }  # fmt: skip
        cells = [
            w,
            f"{o100:.2f} ± {o_sd:.2f}",
            f"{fgd100:.2f}",
            _signed(o100 - fgd100),
            f"{bf100:.2f}",
            f"{ff100:.2f} ± {ff_sd:.2f}",
            _signed(o100 - ff100),
        ]
        if args.online:
            on100, on_sd = _stats(pick(w, args.policy, False, "alloc_100"))
            row["ours_no_profile_100_mean"] = round(on100, 3)
            row["ours_no_profile_100_std"] = round(on_sd, 3)
            cells.append(f"{on100:.2f} ± {on_sd:.2f}")
        if args.fgd_all:
            f100, f_sd = _stats(pick(w, "fgd", True, "alloc_100"))
            row["fgd_run_100_mean"] = round(f100, 3)
            row["fgd_run_100_std"] = round(f_sd, 3)
            cells.append(f"{f100:.2f} ± {f_sd:.2f}")
        cells += [f"{o130:.2f}", f"{fgd130:.2f}", f"{speed:,.0f}", f"{ff_speed:,.0f}"]
        table.add_row(*cells)
        summary[w] = row
    out.print(table)

    result = {
        "benchmark": "gpu_fragmentation",
        "protocol": "fgd_protocol.md (numpy-seeded streams, tune 1.3, discrete curve @100/@130)",
        "commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "jobs": args.jobs,
        },
        "policy": args.policy,
        "seeds": seeds,
        "wall_seconds": round(wall, 1),
        "anchors": anchors,
        "workloads": summary,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.output} ({wall:.0f} s)")
    beats = [w for w, r in summary.items() if r["beats_both"]]
    console.print(f"ours beats FGD published and FirstFit on {len(beats)}/{len(summary)} traces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
