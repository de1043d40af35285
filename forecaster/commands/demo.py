"""``forecaster demo`` and ``forecaster run``: the main job.

``demo`` generates the seeded demo fleet (FOCUS + CUR 2.0 exports and utilization
metrics), ingests it through the same readers users run, then runs the pipeline
(:mod:`forecaster.pipeline`): tag governance, backtest + forecast, load forecasts
for scaling, detection with the injected anomalies found and missed, right-sizing
and placement savings, and prints the summary. ``run`` runs the same pipeline on the
user's own store from a YAML config.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from features.exceptions import ForecasterError
from features.store import IngestReport, Store, record_current_store
from forecaster.commands.data import report_table
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json, progress
from forecaster.pipeline import PipelineConfig, PipelineRun, load_config, run_pipeline

_STAGE_TEXT = {
    "governance": "tag governance and showback",
    "forecast": "backtest, train and forecast the cost hierarchy",
    "track": "log to MLflow, register and promote the model",
    "load_forecast": "forecast hourly load per workload (scaling)",
    "detect": "detect anomalies with root causes",
    "optimize": "right-size, pack and price the fleet",
    "scenarios": "run the capacity planner's scenarios",
    "report": "write the report",
}


def _run_with_progress(
    store_path: Path, cfg: PipelineConfig, *, enabled: bool, run_id: str | None = None
) -> PipelineRun:
    settings = get_settings()
    with progress(enabled=enabled) as bar:
        tasks: dict[str, Any] = {}

        def on_stage(name: str, state: str, seconds: float) -> None:
            text = _STAGE_TEXT.get(name, name)
            if state == "start":
                tasks[name] = bar.add_task(text, total=1)
            elif state == "done":
                bar.update(tasks[name], completed=1, description=text)
            else:
                bar.update(tasks[name], completed=1, description=f"[red]{text} (failed)")

        return run_pipeline(
            store_path,
            cfg,
            required_tags=list(settings.required_tags),
            shared_values=list(settings.shared_tag_values),
            run_id=run_id,
            on_stage=on_stage,
            data_dir=settings.data_dir,
        )


def _money(v: Any) -> str:
    return "-" if v is None else f"${float(v):,.0f}"


def print_summary(run: PipelineRun, *, store: Path) -> None:
    """The final table: what each stage found, in an analyst's words."""
    t = Table(title=f"Pipeline run {run.run_id}", title_justify="left")
    t.add_column("stage")
    t.add_column("result")
    t.add_column("s", justify="right")
    for s in run.stages:
        sm = s.summary
        if not s.ok:
            text = f"[red]failed:[/] {s.error}"
        elif "skipped" in sm:
            text = f"skipped: {sm['skipped']}"
        elif s.name == "governance":
            text = (
                f"tag coverage {sm['tag_coverage_pct']:.1f}% of spend; untagged "
                f"{_money(sm['untagged_spend'])}; {sm['teams']} teams in showback"
            )
        elif s.name == "forecast":
            text = sm.get("headline", str(sm))
        elif s.name == "track":
            if "tracking_failed" in sm:
                text = (
                    f"[yellow]tracking failed[/] ({sm['tracking_failed']}); results kept in "
                    f"the store, offline record {sm['offline_record']}"
                )
            else:
                verdict = "champion" if sm["promoted"] else "challenger"
                text = (
                    f"{sm['model_name']} v{sm['version']} is {verdict} ({sm['reason']}); "
                    f"MLflow: {sm['tracking_uri']}"
                )
        elif s.name == "load_forecast":
            text = f"{sm['workloads']} workloads, next {sm['horizon_hours']} h ({sm['model']})"
        elif s.name == "detect":
            text = f"{sm['alerts']} alerts over the last {sm['window_days']} days"
            if "labels" in sm:
                text += (
                    f"; injected anomalies found {sm['found']}/{sm['labels']} "
                    f"(median latency {sm['latency_h_median']} h, "
                    f"{sm['found_within_2h']} within 2 h); "
                    f"{sm['false_alerts_per_team_week']} false alerts per team-week"
                )
        elif s.name == "optimize":
            text = (
                f"{sm['workloads']} workloads: savings {_money(sm['savings_usd_per_month'])}"
                f"/month ({sm['savings_pct']}% of the compute bill "
                f"{_money(sm['deployed_usd_per_month'])}/month); right-sizing alone "
                f"{_money(sm['rightsizing_usd_per_month'])}/month"
            )
        elif s.name == "scenarios":
            text = ", ".join(
                f"{k} {v:+.1f}%" for k, v in sm["vs_baseline_pct"].items() if v is not None
            )
            text = (
                f"{sm['horizon_months']} months vs baseline {_money(sm['cost']['baseline'])}: "
                + (text or "no scenario files")
            )
        elif s.name == "report":
            text = f"{sm['report']} ({sm['bytes'] / 1e6:.1f} MB, opens offline)"
        else:
            text = str(sm)
        t.add_row(s.name, text, f"{s.seconds:.1f}")
    out.print(t)
    _print_labels(run, store)
    err.print(f"Results are in {store} (tables result_*; see docs/results.md).")


def _print_labels(run: PipelineRun, store: Path) -> None:
    """The injected anomalies, found or missed, when the detect stage scored labels."""
    det = run.stage("detect")
    if det is None or not det.ok or "labels" not in det.summary:
        return
    with Store(store, read_only=True) as st:
        labels = st.read_result("anomaly_labels", run.run_id)
    t = Table(title="Injected anomalies: found and missed", title_justify="left")
    for col in ("id", "kind", "start (UTC)", "team", "workload", "impact", "found", "after"):
        t.add_column(col, justify="right" if col in ("impact", "after") else "left")
    for r in labels.sort_values("start").itertuples():
        found = bool(r.found)
        t.add_row(
            str(r.anomaly_id),
            str(getattr(r, "kind", "")).replace("_", " ").replace("runaway ", ""),
            f"{r.start:%m-%d %H:%M}",
            str(r.team),
            str(r.workload_id).rsplit("/", 1)[-1],
            _money(getattr(r, "expected_extra_cost", None)),
            "[green]found[/]" if found else "[red]missed[/]",
            f"{r.latency_h:.0f} h" if found else "-",
        )
    out.print(t)


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
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Then serve the results over HTTP (Ctrl+C stops)."),
    ] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --serve.")] = 8000,
) -> None:
    """Run the main job on the embedded demo fleet (no AWS account needed)."""
    from features.demo import generate_demo_fleet

    root = out_dir if out_dir is not None else get_settings().data_dir / "demo"
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
                totals = st.totals()
        except ForecasterError as exc:
            fail(str(exc), code=1)
    # The replay covers the whole history so every injected anomaly is scored.
    cfg = PipelineConfig(
        labels=manifest.labels_path,
        model_name="demo-cost-daily",
        detect_window_days=min(31 * months, 3650),
    )
    # Every other command reads the data dir's store; record the demo's as current.
    record_current_store(get_settings().data_dir, store_path)
    run = _run_with_progress(store_path, cfg, enabled=not json_)
    elapsed = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "root": str(root),
        "store": str(store_path),
        "seed": seed,
        "months": months,
        "seconds": round(elapsed, 1),
        "ingest": {k: r.to_dict() for k, r in reports.items()},
        "store_totals": totals,
        "pipeline": run.to_dict(),
    }
    if json_:
        print_json(summary)
        raise typer.Exit(0 if run.ok else 1)
    for r in reports.values():
        out.print(report_table(r))
    print_summary(run, store=store_path)
    out.print(
        f"[bold green]Demo done[/] in {elapsed:.1f}s: {int(totals['rows']):,} cost rows, "
        f"${totals['effective_cost']:,.2f} effective cost. Store: {store_path}"
    )
    if serve:
        _serve_demo(store_path, run, port=port)
    if not run.ok:
        raise typer.Exit(1)


def _serve_demo(store_path: Path, run: PipelineRun, *, port: int) -> None:
    """Serve the demo's results; a fresh API key is printed once (only its hash is kept)."""
    import secrets

    from forecaster.commands.serve import run_server
    from serving.settings import ServingSettings

    key = secrets.token_urlsafe(24)
    track = run.stage("track")
    model = track.summary.get("model_name") if track is not None and track.ok else None
    settings = ServingSettings(
        store=store_path,
        model_name=model,
        api_keys=f"{key}:read+write",  # type: ignore[arg-type]
    )
    err.print(
        f"Serving on http://127.0.0.1:{port} (docs at /docs). API key for this session "
        f"(read+write): [bold]{key}[/]\n"
        f"Try: curl -H 'Authorization: Bearer {key}' "
        f"'http://127.0.0.1:{port}/v1/forecasts/total?horizon=30'"
    )
    run_server(settings, port=port)


def run(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Pipeline YAML (see forecaster.pipeline.PipelineConfig)."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store (default: config's store or setting).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run the pipeline on your own ingested store."""
    try:
        cfg = load_config(config) if config is not None else PipelineConfig()
    except ForecasterError as exc:
        fail(str(exc))
    store_path = store or cfg.store or get_settings().store_path
    if not Path(store_path).exists():
        fail(f"store {store_path} does not exist; run `forecaster ingest ...` first")
    result = _run_with_progress(Path(store_path), cfg, enabled=not json_)
    if json_:
        print_json(result.to_dict())
    else:
        print_summary(result, store=Path(store_path))
    if not result.ok:
        raise typer.Exit(1)
