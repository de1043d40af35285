"""CUR 2.0 and FOCUS data exports read straight from S3, new or changed periods only.

An AWS Data Export lives under one root::

    s3://bucket/prefix/export/data/BILLING_PERIOD=2025-03/export-00001.snappy.parquet
    s3://bucket/prefix/export/metadata/BILLING_PERIOD=2025-03/export-Manifest.json

AWS rewrites a period's manifest each time it delivers the period again, so the manifest's
key and ETag fingerprint the period. A run lists the manifests, keeps per period the
newest, compares its fingerprint with what the store recorded (``live_state``), downloads
the manifest and exactly the data files it lists for the periods that are new or changed
into a local cache (mirroring the S3 layout), and reads them with the file readers
(:func:`~features.readers.cur.read_cur`, :func:`~features.readers.focus.read_focus`).
A re-delivered period replaces what the store held for it. File names in the accounting
and in rejections are the S3 URIs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from features.exceptions import ConfigError, IngestError
from features.readers.aws._client import AwsOptions, aws_errors, error_code, make_client
from features.readers.aws._state import read_state, write_state
from features.readers.base import COST_ARROW_SCHEMA, ReadResult, Rejection
from features.store import IngestReport, Store

__all__ = ["PeriodPlan", "ingest_s3_export", "parse_s3_uri", "plan_export"]

STATE_SOURCE = "s3_export"
_PERIOD_DIR = re.compile(r"(?:^|/)BILLING_PERIOD=(\d{4}-\d{2})(?:/|$)")
_PERIOD_ARG = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/export`` -> ``("bucket", "prefix/export")`` (no trailing slash)."""
    m = re.match(r"^s3://([^/]+)/?(.*)$", uri.strip())
    if not m or not m.group(1):
        raise ConfigError(f"parameter uri must look like s3://bucket/prefix/export, got {uri!r}")
    return m.group(1), m.group(2).strip("/")


@dataclass(frozen=True)
class PeriodPlan:
    """The manifest chosen for one billing period of an export."""

    period: str
    manifest_key: str
    etag: str
    others: tuple[str, ...]  # older manifests of the same period, ignored


def _list(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with aws_errors(f"s3.list_objects_v2 s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += page.get("Contents", [])
    return out


def plan_export(
    client: Any, bucket: str, prefix: str, periods: Sequence[str] | None = None
) -> list[PeriodPlan]:
    """One :class:`PeriodPlan` per billing period that has a manifest (newest wins).

    Raises
    ------
    IngestError
        When the export has no manifests at all, or none for the periods asked.
    """
    root = f"{prefix}/" if prefix else ""
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in _list(client, bucket, f"{root}metadata/"):
        key = str(obj["Key"])
        m = _PERIOD_DIR.search(key[len(root) :])
        if m and key.endswith("Manifest.json"):
            found.setdefault(m.group(1), []).append(obj)
    if not found:
        raise IngestError(
            "no manifests (metadata/BILLING_PERIOD=YYYY-MM/*Manifest.json) under this export",
            path=f"s3://{bucket}/{root}",
        )
    wanted = set(periods) if periods else None
    if wanted is not None and not wanted & set(found):
        raise IngestError(
            f"no manifest for billing periods {sorted(wanted)}; the export has {sorted(found)}",
            path=f"s3://{bucket}/{root}",
        )
    plans = []
    for period, objs in sorted(found.items()):
        if wanted is not None and period not in wanted:
            continue
        objs = sorted(objs, key=lambda o: (o["LastModified"], o["Key"]))
        newest = objs[-1]
        plans.append(
            PeriodPlan(
                period=period,
                manifest_key=str(newest["Key"]),
                etag=str(newest.get("ETag", "")).strip('"'),
                others=tuple(str(o["Key"]) for o in objs[:-1]),
            )
        )
    return plans


def _data_keys(doc: Any, manifest_uri: str, bucket: str) -> list[tuple[str, str]]:
    """``(bucket, key)`` of each data file a manifest lists."""
    if not isinstance(doc, dict) or not isinstance(doc.get("dataFiles"), list):
        raise IngestError(
            "manifest must be a JSON object with a 'dataFiles' list",
            path=manifest_uri,
            column="dataFiles",
        )
    out = []
    for entry in doc["dataFiles"]:
        name = entry.get("key", entry.get("path")) if isinstance(entry, dict) else entry
        if not isinstance(name, str) or not name:
            raise IngestError(
                f"dataFiles entries must be S3 URIs or keys, got {entry!r}",
                path=manifest_uri,
                column="dataFiles",
            )
        if name.startswith("s3://"):
            b, k = parse_s3_uri(name)
            out.append((b, k))
        else:
            out.append((bucket, name.lstrip("/")))
    if not out:
        raise IngestError("the manifest lists no data files", path=manifest_uri, column="dataFiles")
    return out


@dataclass(frozen=True)
class _Inspected:
    plan: PeriodPlan
    manifest_uri: str
    body: bytes
    keys: list[tuple[str, str]]
    fingerprint: str


def _inspect(client: Any, bucket: str, plan: PeriodPlan) -> _Inspected:
    """Read a period's manifest and HEAD every data file it lists."""
    import botocore.exceptions as bce

    manifest_uri = f"s3://{bucket}/{plan.manifest_key}"
    with aws_errors(f"s3.get_object {manifest_uri}"):
        body = client.get_object(Bucket=bucket, Key=plan.manifest_key)["Body"].read()
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise IngestError(f"manifest is not valid JSON ({exc})", path=manifest_uri) from None
    keys = _data_keys(doc, manifest_uri, bucket)
    parts = [plan.manifest_key, plan.etag]
    for b, key in keys:
        with aws_errors(f"s3.head_object s3://{b}/{key}"):
            try:
                head = client.head_object(Bucket=b, Key=key)
            except bce.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    raise IngestError(
                        f"manifest lists data file s3://{b}/{key}, which does not exist "
                        "(the export is being rewritten, or was deleted); nothing was stored",
                        path=manifest_uri,
                        column="dataFiles",
                    ) from None
                raise
        parts += [f"s3://{b}/{key}", str(head.get("ETag", "")).strip('"')]
    fingerprint = hashlib.sha1("\n".join(parts).encode()).hexdigest()
    return _Inspected(plan, manifest_uri, body, keys, fingerprint)


def _local_name(key: str, root: str, period: str) -> str:
    """Path of a data file under the local export root (S3 layout kept)."""
    if root and key.startswith(root):
        return key[len(root) :]
    return f"data/BILLING_PERIOD={period}/{key.rsplit('/', 1)[-1]}"


def _download(client: Any, bucket: str, key: str, dest: Path, manifest_uri: str | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    import botocore.exceptions as bce

    try:
        with aws_errors(f"s3.get_object s3://{bucket}/{key}"):
            try:
                client.download_file(bucket, key, str(dest))
            except bce.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound") and manifest_uri:
                    raise IngestError(
                        f"manifest lists data file s3://{bucket}/{key}, which does not exist "
                        "(the export is being rewritten, or was deleted); nothing was stored",
                        path=manifest_uri,
                        column="dataFiles",
                    ) from None
                raise
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _detect(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several kinds for non-parquet bytes
        raise IngestError(f"not a readable parquet file ({exc})", path=str(path)) from None
    if {"identity_line_item_id", "line_item_usage_start_date", "line_item_unblended_cost"} & names:
        return "cur"
    if {"BilledCost", "ChargePeriodStart", "EffectiveCost"} & names:
        return "focus"
    raise IngestError(
        "cannot tell CUR 2.0 from FOCUS by the columns; pass --format cur or --format focus",
        path=str(path),
    )


def _merge(results: list[ReadResult], source: str) -> ReadResult:
    if not results:
        return ReadResult(source=source, paths=[], table=COST_ARROW_SCHEMA.empty_table())
    return ReadResult(
        source=source,
        paths=[p for r in results for p in r.paths],
        table=pa.concat_tables([r.table for r in results]),
        rejections=[x for r in results for x in r.rejections],
        rows_read=sum(r.rows_read for r in results),
        effective_cost_read=math.fsum(r.effective_cost_read for r in results),
        warnings=[w for r in results for w in r.warnings],
        replace_prefixes=[p for r in results for p in r.replace_prefixes],
    )


def _to_uris(result: ReadResult, uris: dict[str, str]) -> ReadResult:
    def uri(path: str) -> str:
        return uris.get(str(Path(path).resolve()), path)

    result.paths = [uri(p) for p in result.paths]
    result.rejections = [
        Rejection(uri(r.file), r.row, r.column, r.reason, r.effective_cost)
        for r in result.rejections
    ]
    return result


def _focus_period(local_dir: Path, prefix_id: str) -> ReadResult:
    from features.readers.focus import read_focus

    res = read_focus(local_dir)
    # FOCUS line ids are content hashes; prefixing them with the export and period lets a
    # re-delivered period replace the old one as a whole, as CUR periods do.
    ids = pc.binary_join_element_wise(prefix_id, res.table.column("line_id"), "")
    res.table = res.table.set_column(
        res.table.schema.get_field_index("line_id"), "line_id", ids.cast(pa.string())
    )
    res.replace_prefixes = [prefix_id]
    return res


def ingest_s3_export(
    store: Store,
    uri: str,
    *,
    fmt: str = "auto",
    cache_dir: str | Path,
    billing_periods: Sequence[str] | None = None,
    force: bool = False,
    options: AwsOptions | None = None,
    client: Any = None,
    on_file: Callable[[int, int, str], None] | None = None,
) -> IngestReport:
    """Ingest the new or changed billing periods of a CUR 2.0 or FOCUS export on S3.

    Parameters
    ----------
    store : Store
        Where rows and the per-period fingerprints go.
    uri : str
        Export root ``s3://bucket/prefix/export`` (holding ``data/`` and ``metadata/``).
    fmt : {"auto", "cur", "focus"}
        Export format; ``auto`` tells them apart by the first data file's columns.
    cache_dir : str or Path
        Local folder for the downloads (the S3 layout is mirrored below
        ``<cache_dir>/<bucket>/<prefix>``); a changed period's old files are removed first.
    billing_periods : sequence of str, optional
        Only these periods (``YYYY-MM``).
    force : bool
        Read the periods even when their manifest did not change.
    options, client
        AWS endpoint/profile/retries, or a ready S3 client.
    on_file : callable, optional
        ``on_file(done, total, key)`` after each download (progress bars).

    Returns
    -------
    IngestReport
        The accounting of the rows read; its warnings say which periods were read and
        which were up to date.

    Raises
    ------
    IngestError
        No manifest, a manifest that is not JSON or names a missing object, unreadable
        data files; nothing is stored then.
    """
    if fmt not in ("auto", "cur", "focus"):
        raise ConfigError(f"parameter fmt must be auto, cur or focus, got {fmt!r}")
    for p in billing_periods or ():
        if not _PERIOD_ARG.match(p):
            raise ConfigError(f"parameter billing_periods must hold YYYY-MM strings, got {p!r}")
    bucket, prefix = parse_s3_uri(uri)
    root = f"{prefix}/" if prefix else ""
    export_uri = f"s3://{bucket}/{prefix}".rstrip("/")
    s3 = client if client is not None else make_client("s3", options)
    plans = plan_export(s3, bucket, prefix, billing_periods)
    state = read_state(store, STATE_SOURCE)
    local_root = Path(cache_dir) / bucket / prefix
    # Fetch every manifest and look at every object it lists first, so that a bad manifest
    # or a missing object stops the run before anything is downloaded or stored. The
    # fingerprint covers the manifest and the data files' ETags: a period counts as
    # changed when either changed.
    inspected = [_inspect(s3, bucket, plan) for plan in plans]
    todo = [
        item
        for item in inspected
        if force or state.get(f"{export_uri}/{item.plan.period}", ("",))[0] != item.fingerprint
    ]
    warnings = [
        f"billing period {i.plan.period}: {len(i.plan.others)} older manifest(s) ignored, read "
        f"{i.manifest_uri}"
        for i in todo
        if i.plan.others
    ]
    fresh = sorted(i.plan.period for i in inspected if i not in todo)
    if fresh:
        warnings.append(f"up to date, not read again: {', '.join(fresh)}")
    jobs: list[tuple[PeriodPlan, str, list[tuple[str, str]]]] = []
    for item in todo:
        plan = item.plan
        jobs.append((plan, item.manifest_uri, item.keys))
        # A changed period's previous download must not be read again.
        for sub in ("data", "metadata"):
            shutil.rmtree(local_root / sub / f"BILLING_PERIOD={plan.period}", ignore_errors=True)
        dest = local_root / _local_name(plan.manifest_key, root, plan.period)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(item.body)
    fingerprints = {i.plan.period: i.fingerprint for i in todo}
    total = sum(len(keys) for _, _, keys in jobs)
    done = 0
    uris: dict[str, str] = {}
    per_period: dict[str, list[Path]] = {}
    for plan, manifest_uri, keys in jobs:
        for b, key in keys:
            dest = local_root / _local_name(key, root, plan.period)
            _download(s3, b, key, dest, manifest_uri)
            uris[str(dest.resolve())] = f"s3://{b}/{key}"
            per_period.setdefault(plan.period, []).append(dest)
            done += 1
            if on_file is not None:
                on_file(done, total, key)
    kind = fmt
    if kind == "auto":
        first = next((files[0] for files in per_period.values() if files), None)
        previous = [
            str(d["format"])
            for _, d in state.values()
            if d.get("export") == export_uri and d.get("format")
        ]
        kind = _detect(first) if first is not None else (previous[0] if previous else "cur")
    if kind == "cur":
        from features.readers.cur import read_cur

        result = (
            read_cur(local_root, billing_periods=sorted(per_period))
            if per_period
            else _merge([], "cur")
        )
    else:
        result = _merge(
            [
                _focus_period(
                    local_root / "data" / f"BILLING_PERIOD={period}",
                    f"s3/{bucket}/{prefix}/{period}/",
                )
                for period in sorted(per_period)
            ],
            "focus",
        )
    result = _to_uris(result, uris)
    result.warnings = warnings + result.warnings
    report = store.ingest(result)
    write_state(
        store,
        STATE_SOURCE,
        {
            f"{export_uri}/{plan.period}": (
                fingerprints[plan.period],
                {
                    "export": export_uri,
                    "format": kind,
                    "manifest": f"s3://{bucket}/{plan.manifest_key}",
                    "etag": plan.etag,
                    "files": len(keys),
                },
            )
            for plan, _, keys in jobs
        },
    )
    return report
