"""Benchmark: ``forecaster pack``'s solver on the Panigrahy vector bin packing instances.

Each instance is a single bin type of unit cost, so the cost is the number of bins. For
every instance we report our bins next to the lower bound (LB), the optimum where known
(OPT = -1 means unknown) and the best of the four heuristic families of the paper that
published the summary (``best_overall``), plus the time per instance.

Targets (issue #4): no instance worse than the paper's best heuristic; total within 1 % of
OPT over the instances where OPT is known; at most 10 s per instance.

Usage::

    python benchmarks/vector_packing.py [--data ../shared/data] [--limit N]
        [--every K] [--classes class6,class7] [--time-limit 9] [--jobs 1]

``--limit N`` keeps the first N instances (in name order) of every class; ``--every K``
keeps every K-th instance of every class (a stratified sample over sizes and dimensions).
The archive is extracted to a cache folder (``--cache``, default ``~/.cache/forecaster/vbp``), never
into the repository. Results go to ``benchmarks/results/vector_packing.json`` with the
git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks._common import git_commit, machine  # noqa: E402


def read_vbp(path: Path) -> tuple[list[int], list[tuple[list[int], int]]]:
    """Parse one instance: capacities, then ``(sizes, demand)`` per item type."""
    values = [int(v) for v in path.read_text().split()]
    d = values[0]
    caps = values[1 : 1 + d]
    k = values[1 + d]
    pos = 2 + d
    items = []
    for _ in range(k):
        items.append((values[pos : pos + d], values[pos + d]))
        pos += d + 1
    return caps, items


def extract(archive: Path, cache: Path) -> Path:
    """Extract the archive once into ``cache``; returns the folder holding ``class*/``."""
    marker = cache / ".extracted"
    if not marker.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
        marker.write_text(archive.name)
    hits = sorted(cache.rglob("class1"))
    if not hits:
        raise SystemExit(f"no class folders found under {cache}")
    return hits[0].parent


def run_one(args: tuple[str, str, float]) -> dict[str, Any]:
    """Solve one instance file (in a worker process)."""
    from optimizer.packing import BinType, Item, solve

    name, path, time_limit = args
    caps, raw = read_vbp(Path(path))
    items = [Item(f"i{j}", tuple(float(v) for v in s), c) for j, (s, c) in enumerate(raw)]
    bins = [BinType("bin", tuple(float(v) for v in caps), 1.0)]
    t0 = time.perf_counter()
    plan = solve(items, bins, time_limit=time_limit)
    seconds = time.perf_counter() - t0
    placed = sum(c for b in plan.bins for _, c in b.items)
    assert placed == sum(c for _, c in raw), f"{name}: not every copy placed"
    return {
        "instance": name,
        "bins": plan.n_bins,
        "our_lb": plan.lower_bound,
        "status": plan.status,
        "method": plan.method,
        "seconds": round(seconds, 3),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals per class and overall, and the target checks."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["cls"] = df["instance"].str.split("_").str[0]
    known = df[df["OPT"] > 0]
    per_class = []
    for cls, g in df.groupby("cls", sort=True):
        k = g[g["OPT"] > 0]
        per_class.append(
            {
                "class": cls,
                "instances": len(g),
                "ours": int(g["bins"].sum()),
                "LB": int(g["LB"].sum()),
                "best_heuristic": int(g["best_overall"].sum()),
                "known_opt": len(k),
                "ours_on_known": int(k["bins"].sum()),
                "OPT": int(k["OPT"].sum()),
                "best_heuristic_on_known": int(k["best_overall"].sum()),
                "worse_than_heuristic": int((g["bins"] > g["best_overall"]).sum()),
                "better_than_heuristic": int((g["bins"] < g["best_overall"]).sum()),
                "max_seconds": float(g["seconds"].max()),
                "mean_seconds": float(g["seconds"].mean()),
            }
        )
    opt_sum = int(known["OPT"].sum())
    totals: dict[str, Any] = {
        "instances": len(df),
        "ours": int(df["bins"].sum()),
        "LB": int(df["LB"].sum()),
        "best_heuristic": int(df["best_overall"].sum()),
        "ours_vs_LB": float(df["bins"].sum() / df["LB"].sum()),
        "best_heuristic_vs_LB": float(df["best_overall"].sum() / df["LB"].sum()),
        "known_opt": len(known),
        "ours_vs_OPT": float(known["bins"].sum() / opt_sum) if opt_sum else None,
        "best_heuristic_vs_OPT": float(known["best_overall"].sum() / opt_sum) if opt_sum else None,
        "worse_than_heuristic": int((df["bins"] > df["best_overall"]).sum()),
        "better_than_heuristic": int((df["bins"] < df["best_overall"]).sum()),
        "at_opt": int((known["bins"] == known["OPT"]).sum()),
        "max_seconds": float(df["seconds"].max()),
        "mean_seconds": float(df["seconds"].mean()),
    }
    totals["targets"] = {
        "no_instance_worse_than_best_heuristic": totals["worse_than_heuristic"] == 0,
        "within_1pct_of_opt": totals["ours_vs_OPT"] is not None and totals["ours_vs_OPT"] <= 1.01,
        "at_most_10s_per_instance": totals["max_seconds"] <= 10.0,
    }
    return {"per_class": per_class, "totals": totals}


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=None, help="first N instances per class")
    ap.add_argument(
        "--every", type=int, default=None, help="stratified sample: every K-th instance per class"
    )
    ap.add_argument("--classes", type=str, default=None, help="comma-separated, e.g. class6,class9")
    ap.add_argument("--time-limit", type=float, default=9.0, help="seconds per instance")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "forecaster" / "vbp")
    ap.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "vector_packing.json"
    )
    args = ap.parse_args(argv)

    vbp = args.data / "vbp"
    summary = pd.read_csv(vbp / "Panigrahy_summary_known.csv", sep="\t")
    root = extract(vbp / "Panigrahy_instances.tar.gz", args.cache)
    summary["cls"] = summary["instance_name"].str.split("_").str[0]
    if args.classes:
        summary = summary[summary["cls"].isin(args.classes.split(","))]
    summary = summary.sort_values("instance_name")
    if args.every:
        summary = summary[summary.groupby("cls", sort=True).cumcount() % args.every == 0]
    if args.limit:
        summary = summary.groupby("cls", sort=True).head(args.limit)
    tasks = [
        (name, str(root / cls / f"{name}.vbp"), args.time_limit)
        for name, cls in zip(summary["instance_name"], summary["cls"], strict=True)
    ]
    console = Console()
    load_at_start = machine()
    console.print(f"{len(tasks)} instances, {args.time_limit:g} s each, {args.jobs} job(s)")
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for i, res in enumerate(pool.map(run_one, tasks, chunksize=1)):
                results.append(res)
                if (i + 1) % 50 == 0:
                    console.print(f"  {i + 1}/{len(tasks)} done, {time.perf_counter() - t0:.0f} s")
    else:
        for i, task in enumerate(tasks):
            results.append(run_one(task))
            if (i + 1) % 50 == 0:
                console.print(f"  {i + 1}/{len(tasks)} done, {time.perf_counter() - t0:.0f} s")
    ref = summary.set_index("instance_name")
    rows = []
    for r in results:
        s = ref.loc[r["instance"]]
        rows.append(
            {**r, "LB": int(s["LB"]), "OPT": int(s["OPT"]), "best_overall": int(s["best_overall"])}
        )
    report = summarise(rows)
    table = Table(title="Vector bin packing (Panigrahy instances): bins, lower is better")
    for col in (
        "class",
        "n",
        "ours",
        "best heur.",
        "LB",
        "ours/OPT",
        "heur./OPT",
        "worse",
        "better",
        "max s",
    ):
        table.add_column(col, justify="right")
    for c in report["per_class"]:
        table.add_row(
            c["class"],
            str(c["instances"]),
            str(c["ours"]),
            str(c["best_heuristic"]),
            str(c["LB"]),
            f"{c['ours_on_known'] / c['OPT']:.4f}" if c["OPT"] else "-",
            f"{c['best_heuristic_on_known'] / c['OPT']:.4f}" if c["OPT"] else "-",
            str(c["worse_than_heuristic"]),
            str(c["better_than_heuristic"]),
            f"{c['max_seconds']:.1f}",
        )
    tot = report["totals"]
    table.add_row(
        "all",
        str(tot["instances"]),
        str(tot["ours"]),
        str(tot["best_heuristic"]),
        str(tot["LB"]),
        f"{tot['ours_vs_OPT']:.4f}" if tot["ours_vs_OPT"] else "-",
        f"{tot['best_heuristic_vs_OPT']:.4f}" if tot["best_heuristic_vs_OPT"] else "-",
        str(tot["worse_than_heuristic"]),
        str(tot["better_than_heuristic"]),
        f"{tot['max_seconds']:.1f}",
    )
    console.print(table)
    console.print(f"targets: {tot['targets']}")
    payload = {
        "benchmark": "vector_packing",
        "commit": git_commit(),
        "time_limit_s": args.time_limit,
        "jobs": args.jobs,
        "cpu_count": os.cpu_count(),
        "machine_at_start": load_at_start,
        "machine_at_end": machine(),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "args": {"limit": args.limit, "every": args.every, "classes": args.classes},
        **report,
        "instances": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
