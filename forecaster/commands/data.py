"""``forecaster ingest``, ``forecaster tags`` and ``forecaster showback``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from features.exceptions import ForecasterError, IngestError
from features.store import IngestReport, Store
from features.tags import showback as showback_frame
from features.tags import tag_coverage
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.config import Settings, get_settings
from forecaster.console import err, fail, frame_table, out, print_json, progress

ingest_app = typer.Typer(
    help="Ingest billing exports and utilization metrics into the store.", no_args_is_help=True
)

StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail (write nothing) if any row is rejected.")
]


def _settings(store: Path | None) -> Settings:
    try:
        return get_settings(store=store)
    except Exception as exc:  # pydantic ValidationError / ConfigError
        fail(f"invalid settings: {exc}")


def report_table(report: IngestReport) -> Any:
    from rich.table import Table

    t = Table(title=f"Ingest {report.source} (#{report.ingest_id})", title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("files", str(len(report.files)))
    t.add_row("rows read", f"{report.rows_read:,}")
    t.add_row("rows accepted", f"{report.rows_accepted:,}")
    t.add_row("  of which new / replaced", f"{report.rows_new:,} / {report.rows_replaced:,}")
    t.add_row("rows rejected", f"{report.rows_rejected:,}")
    for reason, n in sorted(report.rejections.items()):
        t.add_row(f"  {reason}", f"{n:,}")
    if report.source != "metrics":
        t.add_row("effective cost read", f"${report.effective_cost_read:,.2f}")
        t.add_row("effective cost stored", f"${report.effective_cost_stored:,.2f}")
        t.add_row("effective cost rejected", f"${report.effective_cost_rejected:,.2f}")
    t.add_row("balanced", "yes" if report.balanced else "[red]NO[/]")
    t.add_row("seconds", f"{report.seconds:.2f}")
    return t


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    out.print(report_table(report))
    for w in report.warnings[:10]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    for ex in report.rejected_examples[:5]:
        err.print(
            f"[yellow]rejected:[/] file {ex['file']}, row {ex['row']}, column {ex['column']}: "
            f"{ex['reason']}",
            highlight=False,
        )


def _run_ingest(
    kind: str, path: Path, store: Path | None, as_json: bool, strict: bool, **kwargs: Any
) -> IngestReport:
    settings = _settings(store)
    with progress(enabled=not as_json) as bar:
        task = bar.add_task(f"reading {kind} {path}", total=2)
        try:
            if kind == "focus":
                from features.readers.focus import read_focus

                result: Any = read_focus(path)
            elif kind == "cur":
                from features.readers.cur import read_cur

                result = read_cur(path, **kwargs)
            else:
                from features.readers.metrics import read_utilization

                result = read_utilization(path)
        except IngestError as exc:
            fail(str(exc))
        if strict and result.rejections:
            first = result.rejections[0]
            fail(
                f"{len(result.rejections)} row(s) rejected (--strict); first: file {first.file}, "
                f"row {first.row}, column {first.column}: {first.reason}. Nothing was written."
            )
        bar.update(task, advance=1, description=f"writing {kind} to {settings.store_path}")
        try:
            with Store(settings.store_path) as st:
                report = st.ingest_utilization(result) if kind == "metrics" else st.ingest(result)
        except ForecasterError as exc:
            fail(str(exc))
        bar.update(task, advance=1, description=f"ingested {kind}")
    _print_report(report, as_json)
    return report


@ingest_app.command("focus")
def ingest_focus(
    path: Annotated[Path, typer.Argument(help="FOCUS CSV/parquet file or folder.")],
    store: StoreOpt = None,
    json_: JsonOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Ingest a FOCUS 1.0-1.2 export (CSV or parquet)."""
    _run_ingest("focus", path, store, json_, strict)


@ingest_app.command("cur")
def ingest_cur(
    path: Annotated[
        Path, typer.Argument(help="CUR 2.0 export folder (data/ + metadata/) or parquet file.")
    ],
    billing_period: Annotated[
        list[str] | None,
        typer.Option("--billing-period", help="Only these periods (YYYY-MM); repeatable."),
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Ingest an AWS CUR 2.0 export, with split cost allocation for ECS tasks and EKS pods."""
    _run_ingest("cur", path, store, json_, strict, billing_periods=billing_period or None)


@ingest_app.command("metrics")
def ingest_metrics(
    path: Annotated[Path, typer.Argument(help="Utilization CSV/parquet file or folder.")],
    store: StoreOpt = None,
    json_: JsonOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Ingest utilization metrics (the canonical utilization frame)."""
    _run_ingest("metrics", path, store, json_, strict)


def _open_store(store: Path | None) -> Store:
    settings = _settings(store)
    try:
        return Store(settings.store_path, read_only=True)
    except ForecasterError as exc:
        fail(str(exc))


def tags(
    store: StoreOpt = None,
    required: Annotated[
        list[str] | None,
        typer.Option("--required", help="Required tag (repeatable); default from settings."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Tag coverage of spend, untagged spend by service/account, and normalised tag values."""
    settings = _settings(store)
    req = required or settings.required_tags
    with _open_store(store) as st:
        try:
            cov = tag_coverage(st, req)
        except ForecasterError as exc:
            fail(str(exc))
    print_coverage(cov, as_json=json_)


def print_coverage(cov: Any, *, as_json: bool = False) -> None:
    if as_json:
        print_json(
            {
                "required_tags": cov.required_tags,
                "total_spend": cov.total_spend,
                "fully_tagged_spend": cov.fully_tagged_spend,
                "fully_tagged_pct": cov.fully_tagged_pct,
                "untagged_spend": cov.untagged_spend,
                "per_tag": cov.per_tag.to_dict(orient="records"),
                "untagged_by": cov.untagged_by.to_dict(orient="records"),
                "variants": cov.variants.to_dict(orient="records"),
            }
        )
        return
    out.print(
        f"[bold]Tag coverage:[/] {cov.fully_tagged_pct:.1f}% of ${cov.total_spend:,.2f} carries "
        f"all of {', '.join(cov.required_tags)} (untagged ${cov.untagged_spend:,.2f}; target 100%)"
    )
    out.print(
        frame_table(
            cov.per_tag, "Coverage per required tag", money=("tagged_spend",), pct=("coverage_pct",)
        )
    )
    out.print(
        frame_table(
            cov.untagged_by,
            "Untagged spend by service and account",
            money=("untagged_spend",),
            pct=("share_pct",),
            max_rows=10,
        )
    )
    if not cov.variants.empty:
        out.print(frame_table(cov.variants, "Tag values normalised", money=("spend",), max_rows=15))


def showback(
    by: Annotated[
        list[str],
        typer.Option(
            "--by",
            help="Dimension(s) to group by: team, project, environment, cost_center, owner, cluster, service, account, ...",
        ),
    ] = ["team"],  # noqa: B006
    period: Annotated[
        str, typer.Option("--period", help="day, week, month, quarter or year.")
    ] = "month",
    no_spread: Annotated[
        bool,
        typer.Option(
            "--no-spread",
            help="Report shared/untagged spend as (unallocated) instead of spreading it.",
        ),
    ] = False,
    cost: Annotated[
        str, typer.Option("--cost", help="effective_cost (amortized), billed_cost or list_cost.")
    ] = "effective_cost",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the table as CSV (or .md for Markdown).")
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Showback/chargeback: cost per tag value and period, shared spend spread proportionally."""
    settings = _settings(store)
    with _open_store(store) as st:
        try:
            df = showback_frame(
                st,
                by,
                period=period,
                spread_shared=not no_spread,
                shared_values=settings.shared_tag_values,
                cost_column=cost,
            )
        except ForecasterError as exc:
            fail(str(exc))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".md":
            output.write_text(
                df.to_markdown(index=False) if _has_tabulate() else df.to_csv(index=False)
            )
        else:
            df.to_csv(output, index=False)
        err.print(f"wrote {len(df)} rows to {output}")
    if json_:
        print_json(df.assign(period=df["period"].astype(str)).to_dict(orient="records"))
        return
    print_showback(df, [str(c) for c in df.columns[1:-4]])


def print_showback(df: Any, dims: list[str]) -> None:
    import pandas as pd

    latest = df["period"].max()
    tot = df.groupby(dims, as_index=False)[["direct_cost", "shared_cost", "total_cost"]].sum()
    grand = tot["total_cost"].sum()
    tot["share_pct"] = 100 * tot["total_cost"] / grand if grand else 0.0
    tot = tot.sort_values("total_cost", ascending=False)
    first = pd.Timestamp(df["period"].min()).strftime("%Y-%m-%d")
    last = pd.Timestamp(latest).strftime("%Y-%m-%d")
    out.print(
        frame_table(
            tot,
            f"Showback by {', '.join(dims)}, {first} to {last} (all periods)",
            money=("direct_cost", "shared_cost", "total_cost"),
            pct=("share_pct",),
        )
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
