"""``forecaster ingest cost-explorer|s3|cloudwatch|dcgm|nvml``: the live sources.

Each command prints the same accounting as the file readers (``--json`` for one JSON
object on stdout; a table and warnings on stderr otherwise) and shows a progress bar
while it reads. AWS commands take ``--endpoint-url`` (moto, LocalStack) and otherwise
follow the standard AWS environment (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, credentials). Errors end in one line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.exceptions import ForecasterError
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.commands.data import _print_report, _settings
from forecaster.console import fail, progress

if TYPE_CHECKING:
    from features.readers.aws._client import AwsOptions
    from features.store import IngestReport

EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send AWS requests there (moto, LocalStack); default: AWS_ENDPOINT_URL or AWS.",
    ),
]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: AWS_DEFAULT_REGION).")
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="Named AWS profile (default: AWS_PROFILE).")
]
AttemptsOpt = Annotated[
    int, typer.Option("--max-attempts", min=1, help="Attempts per AWS request (with backoff).")
]
RetryModeOpt = Annotated[
    str,
    typer.Option("--retry-mode", help="botocore retry mode: standard or adaptive (paces calls)."),
]


def _aws(
    endpoint_url: str | None, region: str | None, profile: str | None, attempts: int, mode: str
) -> AwsOptions:
    from features.readers.aws._client import AwsOptions

    try:
        return AwsOptions(
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            max_attempts=attempts,
            retry_mode=mode,  # type: ignore[arg-type]
        )
    except ForecasterError as exc:
        fail(str(exc))


@contextmanager
def _reading(json_: bool, label: str, total: int | None = None) -> Iterator[tuple[Any, Any]]:
    """A progress bar (hidden with ``--json``) and its task; a ForecasterError inside fails.

    Every live source shows its progress and ends an error in one line the same way.
    """
    with progress(enabled=not json_) as bar:
        task = bar.add_task(label, total=total)
        try:
            yield bar, task
        except ForecasterError as exc:
            fail(str(exc))


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"parameter {name} must be a date YYYY-MM-DD, got {text!r}")


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"parameter {name} must be an ISO timestamp (2025-03-01T00:00:00Z), got {text!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def ingest_cost_explorer_cmd(
    start: Annotated[
        str | None, typer.Option("--start", help="First day (YYYY-MM-DD); default: end - 90 days.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Day after the last (YYYY-MM-DD); default: today.")
    ] = None,
    granularity: Annotated[
        str, typer.Option("--granularity", help="daily or hourly (last 14 days only).")
    ] = "daily",
    dimension: Annotated[
        str, typer.Option("--dimension", help="Anchor group-by: SERVICE, LINKED_ACCOUNT, ...")
    ] = "SERVICE",
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Cost-allocation tag to group by (repeatable; one call each)."),
    ] = None,
    scope: Annotated[
        str, typer.Option("--scope", help="Label of the payer read (one per payer in a store).")
    ] = "default",
    full: Annotated[
        bool, typer.Option("--full", help="Re-read the whole window, not only what is new.")
    ] = False,
    restate_days: Annotated[
        int, typer.Option("--restate-days", min=0, help="Days re-read on incremental runs.")
    ] = 3,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 6,
    retry_mode: RetryModeOpt = "standard",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ingest daily or hourly cost from the Cost Explorer API (incremental)."""
    from features.readers.aws.cost_explorer import CostExplorerQuery, ingest_cost_explorer
    from features.store import Store

    opts = _aws(endpoint_url, region, profile, max_attempts, retry_mode)
    end_day = _day(end, "--end") or datetime.now(UTC).date()
    start_day = _day(start, "--start") or end_day - timedelta(days=90)
    tags = tuple(tag) if tag is not None else ("team", "project")
    try:
        query = CostExplorerQuery(
            start=start_day,
            end=end_day,
            granularity=granularity.upper(),  # type: ignore[arg-type]
            dimension=dimension.upper(),
            tags=tags,
            scope=scope,
        )
    except ForecasterError as exc:
        fail(str(exc))
    settings = _settings(store)
    with _reading(json_, "Cost Explorer: requesting") as (bar, task):

        def on_page(request: int, page: int) -> None:
            bar.update(
                task,
                advance=1,
                description=f"Cost Explorer: request {request + 1}, page {page}",
            )

        with Store(settings.store_path) as st:
            report = ingest_cost_explorer(
                st,
                query,
                options=opts,
                incremental=not full,
                restate_days=restate_days,
                on_page=on_page,
            )
        bar.update(task, description="Cost Explorer: stored", total=1, completed=1)
    _print_report(report, json_)


def ingest_s3_cmd(
    uri: Annotated[
        str,
        typer.Argument(help="Export root: s3://bucket/prefix/export (holds data/ and metadata/)."),
    ],
    format_: Annotated[
        str, typer.Option("--format", help="cur, focus or auto (from the data files' columns).")
    ] = "auto",
    billing_period: Annotated[
        list[str] | None,
        typer.Option("--billing-period", help="Only these periods (YYYY-MM); repeatable."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Where downloads go (default: beside the store)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Read every period, changed or not.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 6,
    retry_mode: RetryModeOpt = "standard",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ingest a CUR 2.0 or FOCUS data export straight from S3 (new or changed periods only)."""
    from features.readers.aws.s3_exports import ingest_s3_export
    from features.store import Store

    opts = _aws(endpoint_url, region, profile, max_attempts, retry_mode)
    settings = _settings(store)
    cache = cache_dir or Path(settings.store_path).parent / "s3-cache"
    with _reading(json_, "S3 export: listing") as (bar, task):

        def on_file(done: int, total: int, key: str) -> None:
            bar.update(
                task, total=total, completed=done, description=f"S3: {key.rsplit('/', 1)[-1]}"
            )

        with Store(settings.store_path) as st:
            report = ingest_s3_export(
                st,
                uri,
                fmt=format_,
                cache_dir=cache,
                billing_periods=billing_period or None,
                force=force,
                options=opts,
                on_file=on_file,
            )
        bar.update(task, description="S3 export: stored")
    _print_report(report, json_)


def ingest_cloudwatch_cmd(
    start: Annotated[
        str | None, typer.Option("--start", help="Start (ISO time, UTC); default: end - 1 day.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="End (ISO time, UTC); default: this hour.")
    ] = None,
    period: Annotated[
        int, typer.Option("--period", min=60, help="Seconds per row (multiple of 60).")
    ] = 3600,
    ecs: Annotated[bool, typer.Option("--ecs/--no-ecs", help="Read ECS services.")] = True,
    eks: Annotated[bool, typer.Option("--eks/--no-eks", help="Read EKS pods and nodes.")] = True,
    cluster: Annotated[
        list[str] | None,
        typer.Option("--cluster", help="Only these clusters (repeatable); default: all."),
    ] = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 6,
    retry_mode: RetryModeOpt = "standard",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ingest ECS and EKS utilization (Container Insights) from CloudWatch get_metric_data."""
    from features.readers.aws.cloudwatch import read_cloudwatch
    from features.readers.aws.inventory import discover

    opts = _aws(endpoint_url, region, profile, max_attempts, retry_mode)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    t1 = _when(end, "--end") or now
    t0 = _when(start, "--start") or t1 - timedelta(days=1)
    settings = _settings(store)
    with _reading(json_, "CloudWatch: discovering workloads") as (bar, task):
        inventory = discover(options=opts, ecs=ecs, eks=eks, clusters=cluster or None)

        def on_batch(done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description="CloudWatch: get_metric_data")

        result = read_cloudwatch(inventory, t0, t1, period=period, options=opts, on_batch=on_batch)
        report = _store_util(settings.store_path, result)
        bar.update(task, description="CloudWatch: stored")
    _print_report(report, json_)


def ingest_dcgm_cmd(
    path: Annotated[
        Path, typer.Argument(help="DCGM exporter scrape (Prometheus text) or CSV export.")
    ],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Timestamp of samples without one (default: file mtime)."),
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ingest GPU utilization from the DCGM exporter (text exposition format or CSV)."""
    from features.readers.dcgm import read_dcgm

    settings = _settings(store)
    with _reading(json_, f"DCGM: reading {path}", total=2) as (bar, task):
        result = read_dcgm(path, at=_when(at, "--at"))
        bar.update(task, advance=1, description="DCGM: writing")
        report = _store_util(settings.store_path, result)
        bar.update(task, advance=1, description="DCGM: stored")
    _print_report(report, json_)


def ingest_nvml_cmd(
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between samples.")
    ] = 1.0,
    count: Annotated[int, typer.Option("--count", min=1, help="Number of samples.")] = 5,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", help="Replay a recorded NVML sample (JSON) instead of the GPU."),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Also write the raw readings as JSON here.")
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Sample the local GPUs and MIG devices through NVML into the utilization frame."""
    from features.readers.nvml import RecordedBackend, sample

    settings = _settings(store)
    with _reading(json_, "NVML: sampling", total=count) as (bar, task):
        backend = RecordedBackend.load(replay) if replay is not None else None
        result, raw = sample(
            interval=interval,
            count=count,
            backend=backend,
            sleep=None if replay is None else (lambda s: None),
            on_sample=lambda i: bar.update(task, completed=i),
        )
        if record is not None:
            import json

            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(raw, indent=1) + "\n")
        report = _store_util(settings.store_path, result)
    _print_report(report, json_)


def _store_util(path: Path | str, result: Any) -> IngestReport:
    from features.store import Store

    with Store(path) as st:
        return st.ingest_utilization(result)


def register(ingest_app: typer.Typer) -> None:
    """Add the live sources to ``forecaster ingest``."""
    ingest_app.command("cost-explorer")(ingest_cost_explorer_cmd)
    ingest_app.command("s3")(ingest_s3_cmd)
    ingest_app.command("cloudwatch")(ingest_cloudwatch_cmd)
    ingest_app.command("dcgm")(ingest_dcgm_cmd)
    ingest_app.command("nvml")(ingest_nvml_cmd)
