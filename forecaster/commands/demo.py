"""``forecaster demo``: the main job on the embedded demo fleet.

Generate the seeded demo fleet (FOCUS + CUR 2.0 exports and utilization
metrics), ingest them through the same readers users run, then report tag
coverage and showback. Later stages (backtest, forecast, detect, optimize,
report) extend this job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from features.exceptions import ForecasterError
from features.store import IngestReport, Store
from features.tags import showback as showback_frame
from features.tags import tag_coverage
from forecaster.commands.data import print_coverage, print_showback, report_table
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json, progress


def demo(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where the demo exports and store go (default: FORECASTER_DATA_DIR/demo)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the demo fleet.")] = 7,
    months: Annotated[
        int, typer.Option("--months", min=1, max=36, help="Months of hourly history.")
    ] = 12,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Run the main job on the embedded demo fleet (no AWS account needed)."""
    from features.demo import generate_demo_fleet

    settings = get_settings()
    root = out_dir if out_dir is not None else settings.data_dir / "demo"
    store_path = root / "forecaster.duckdb"
    t0 = time.perf_counter()
    reports: dict[str, IngestReport] = {}
    with progress(enabled=not json_) as bar:
        gen = bar.add_task("generating demo fleet", total=1.0)

        def on_progress(msg: str, frac: float) -> None:
            bar.update(gen, completed=min(max(frac, 0.0), 1.0), description=f"generating: {msg}")

        manifest = generate_demo_fleet(
            root / "exports", seed=seed, months=months, progress=on_progress
        )
        bar.update(gen, completed=1.0, description="generated demo fleet")
        if store_path.exists():
            store_path.unlink()  # the demo always starts from a clean store
        ing = bar.add_task("ingesting", total=3)
        try:
            from features.readers.cur import read_cur
            from features.readers.focus import read_focus
            from features.readers.metrics import read_utilization

            with Store(store_path) as st:
                bar.update(ing, description="ingesting FOCUS export")
                reports["focus"] = st.ingest(read_focus(manifest.focus_path))
                bar.update(ing, advance=1, description="ingesting CUR 2.0 export")
                reports["cur"] = st.ingest(read_cur(manifest.cur_path))
                bar.update(ing, advance=1, description="ingesting utilization metrics")
                reports["metrics"] = st.ingest_utilization(read_utilization(manifest.metrics_path))
                bar.update(ing, advance=1, description="ingested")
                tg = bar.add_task("tag governance and showback", total=1)
                cov = tag_coverage(st, settings.required_tags)
                sb = showback_frame(
                    st, ["team"], period="month", shared_values=settings.shared_tag_values
                )
                totals = st.totals()
                bar.update(tg, advance=1)
        except ForecasterError as exc:
            fail(str(exc), code=1)
    elapsed = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "root": str(root),
        "store": str(store_path),
        "seed": seed,
        "months": months,
        "seconds": round(elapsed, 1),
        "ingest": {k: r.to_dict() for k, r in reports.items()},
        "store_totals": totals,
        "tag_coverage_pct": cov.fully_tagged_pct,
        "untagged_spend": cov.untagged_spend,
    }
    if json_:
        print_json(summary)
        return
    for r in reports.values():
        out.print(report_table(r))
    print_coverage(cov)
    print_showback(sb, ["team"])
    out.print(
        f"[bold green]Demo done[/] in {elapsed:.1f}s: {int(totals['rows']):,} cost rows, "
        f"${totals['effective_cost']:,.2f} effective cost, tag coverage "
        f"{cov.fully_tagged_pct:.1f}%. Store: {store_path}"
    )
    err.print(f"Try: forecaster showback --by project --store {store_path}")
