"""``forecaster report``: the FinOps report as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from features.exceptions import ForecasterError
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json


def report(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="HTML file to write (self-contained, opens offline)."),
    ] = Path("report.html"),
    store: StoreOpt = None,
    tables_dir: Annotated[
        Path | None,
        typer.Option("--tables-dir", help="Also write report.md and one CSV per table here."),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="Title of the report.")] = (
        "FinOps forecast report"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Write the report: KPIs vs targets, forecasts, anomalies, showback, savings, scenarios."""
    from features.store import Store
    from forecaster.report import collect_report_inputs, export_tables, render_report

    try:
        settings = get_settings(store=store)
    except Exception as exc:  # pydantic ValidationError / ConfigError
        fail(f"invalid settings: {exc}")
    if output.suffix.lower() not in (".html", ".htm"):
        fail(f"parameter --output must be an .html file, got {str(output)!r}")
    try:
        with Store(settings.store_path, read_only=True) as st:
            inputs = collect_report_inputs(
                st,
                required_tags=settings.required_tags,
                shared_values=settings.shared_tag_values,
            )
    except ForecasterError as exc:
        fail(str(exc))
    path = render_report(inputs, output, title=title)
    tables = export_tables(inputs, tables_dir) if tables_dir is not None else []
    if as_json:
        print_json(
            {
                "output": str(path),
                "bytes": path.stat().st_size,
                "tables": [str(p) for p in tables],
                "missing": inputs.missing,
                "derived": inputs.derived,
                "warnings": inputs.warnings,
            }
        )
        return
    for w in inputs.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    for m in inputs.missing.values():
        err.print(f"[dim]missing: {m}[/]", highlight=False, soft_wrap=True)
    out.print(f"[bold green]Report written[/] to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if tables:
        out.print(f"Tables: {len(tables) - 1} CSV files and report.md in {tables_dir}")
