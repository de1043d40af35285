"""GPU utilization from the NVIDIA DCGM exporter into the utilization frame.

Reads a scrape in the Prometheus text exposition format (``curl :9400/metrics``), or a
CSV export of such samples, either long (``timestamp, metric, value`` plus label
columns) or wide (``timestamp``, label columns, one column per ``DCGM_FI_*`` metric).

Metrics used (per GPU, labelled with ``gpu``/``UUID``/``Hostname`` and, in Kubernetes
mode, ``pod``/``namespace`` or ``exported_pod``/``exported_namespace``):

* ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (ratio 0..1), preferred for ``gpu_used`` as it counts
  the fraction of time the graphics engine was busy; else ``DCGM_FI_DEV_GPU_UTIL`` (%) / 100;
* ``DCGM_FI_DEV_FB_USED`` and ``DCGM_FI_DEV_FB_FREE`` (MiB): GPU memory used, and used +
  free as the total.

One row per workload and timestamp: ``k8s/<namespace>/<pod>`` for a GPU assigned to a pod,
``gpu/<Hostname>/<gpu>`` for one that is not; ``gpu_used`` sums the GPUs' busy fractions,
``gpu_requested`` counts the GPUs. Other metrics are ignored and counted in the warnings;
a malformed line or a non-numeric value is rejected with its line number, so
``rows_read == rows accepted + samples rejected``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from features.exceptions import IngestError
from features.readers.base import Rejection
from features.schema import UTILIZATION_FRAME_COLUMNS, UTILIZATION_NUMERIC
from features.store import UtilizationRead

__all__ = ["KNOWN_METRICS", "read_dcgm"]

KNOWN_METRICS = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
)
_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+(?P<ts>-?\d+))?\s*$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass
class _Gpu:
    util: float | None = None
    engine: float | None = None
    fb_used: float | None = None
    fb_free: float | None = None


@dataclass
class _Acc:
    gpus: dict[tuple[datetime, str, str], _Gpu] = field(default_factory=dict)
    meta: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # wid -> kind, host
    rejections: list[Rejection] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)


def _labels(text: str | None, where: str, line: int) -> dict[str, str] | None:
    if not text or not text.strip():
        return {}
    out: dict[str, str] = {}
    pos = 0
    text = text.strip().rstrip(",")
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            return None
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
    return out


def _add(
    acc: _Acc, where: str, line: int, name: str, labels: dict[str, str], raw: str, ts: datetime
) -> None:
    if name not in KNOWN_METRICS:
        acc.unknown[name] += 1
        return
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        acc.rejections.append(Rejection(where, line, name, "invalid_value"))
        return
    pod = labels.get("pod") or labels.get("exported_pod") or ""
    ns = labels.get("namespace") or labels.get("exported_namespace") or ""
    host = labels.get("Hostname") or labels.get("hostname") or labels.get("instance") or ""
    gpu_id = labels.get("UUID") or f"{host}/{labels.get('gpu', '')}"
    if pod:
        wid, kind = f"k8s/{ns or 'default'}/{pod}", "k8s_pod"
    else:
        wid, kind = f"gpu/{host or 'unknown'}/{labels.get('gpu', gpu_id)}", "gpu"
    acc.meta.setdefault(wid, (kind, host or None))
    g = acc.gpus.setdefault((ts, wid, gpu_id), _Gpu())
    if name == "DCGM_FI_DEV_GPU_UTIL":
        g.util = value / 100.0
    elif name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE":
        g.engine = value
    elif name == "DCGM_FI_DEV_FB_USED":
        g.fb_used = value
    else:
        g.fb_free = value


def _ts_ms(text: str, where: str, line: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(text) / 1000.0, UTC)
    except (ValueError, OverflowError):
        return None


def _parse_text(text: str, where: str, default_ts: datetime, acc: _Acc) -> None:
    for n, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        labels = _labels(m.group("labels"), where, n) if m else None
        if m is None or labels is None:
            acc.rejections.append(Rejection(where, n, None, "malformed_line"))
            continue
        ts = default_ts
        if m.group("ts"):
            parsed = _ts_ms(m.group("ts"), where, n)
            if parsed is None:
                acc.rejections.append(Rejection(where, n, "timestamp", "invalid_timestamp"))
                continue
            ts = parsed
        _add(acc, where, n, m.group("name"), labels, m.group("value"), ts)


def _parse_time(text: str) -> datetime | None:
    t = text.strip()
    if not t:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", t):
        v = float(t)
        return datetime.fromtimestamp(v / 1000.0 if v > 1e11 else v, UTC)
    try:
        ts = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _parse_csv(text: str, where: str, default_ts: datetime, acc: _Acc) -> None:
    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    metric_col = "metric" if "metric" in cols else ("__name__" if "__name__" in cols else None)
    wide = [c for c in cols if c.startswith("DCGM_")]
    if metric_col is None and not wide:
        raise IngestError(
            "CSV needs a 'metric' (or '__name__') and 'value' column, or DCGM_FI_* columns",
            path=where,
            column="metric",
        )
    if metric_col is not None and "value" not in cols:
        raise IngestError(
            "CSV has a metric column but no 'value' column", path=where, column="value"
        )
    tcol = next((c for c in ("timestamp", "ts", "time") if c in cols), None)
    label_cols = [c for c in cols if c not in {*wide, metric_col, "value", tcol}]
    for n, row in enumerate(reader, start=2):
        ts = default_ts
        if tcol is not None and (row.get(tcol) or "").strip():
            parsed = _parse_time(row[tcol] or "")
            if parsed is None:
                acc.rejections.append(Rejection(where, n, tcol, "invalid_timestamp"))
                continue
            ts = parsed
        labels = {c: (row.get(c) or "").strip() for c in label_cols if (row.get(c) or "").strip()}
        if metric_col is not None:
            _add(
                acc,
                where,
                n,
                (row.get(metric_col) or "").strip(),
                labels,
                row.get("value") or "",
                ts,
            )
        else:
            for c in wide:
                if (row.get(c) or "").strip():
                    _add(acc, where, n, c, labels, row[c] or "", ts)


def read_dcgm(path: str | Path, *, at: datetime | None = None) -> UtilizationRead:
    """Read a DCGM exporter scrape (text format) or CSV export.

    Parameters
    ----------
    path : str or Path
        The file (``.csv`` is read as CSV, anything else as the text format).
    at : datetime, optional
        Time of samples that carry none (default: the file's modification time), UTC.

    Raises
    ------
    IngestError
        When the file is missing or empty, or a CSV lacks the needed columns.
    """
    p = Path(path)
    if not p.is_file():
        raise IngestError("file not found", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc})", path=str(p)) from None
    if not text.strip():
        raise IngestError("file is empty", path=str(p))
    default_ts = at or datetime.fromtimestamp(p.stat().st_mtime, UTC)
    default_ts = default_ts.replace(microsecond=0)
    acc = _Acc()
    if p.suffix.lower() == ".csv":
        _parse_csv(text, str(p), default_ts, acc)
    else:
        _parse_text(text, str(p), default_ts, acc)
    rows = _rows(acc)
    warnings = []
    if acc.unknown:
        shown = ", ".join(f"{k} ({v})" for k, v in acc.unknown.most_common(8))
        more = f" and {len(acc.unknown) - 8} more" if len(acc.unknown) > 8 else ""
        warnings.append(
            f"ignored {sum(acc.unknown.values())} sample(s) of {len(acc.unknown)} metric(s) "
            f"this reader does not use: {shown}{more}"
        )
    schema = pa.schema(
        [
            ("ds", pa.timestamp("us", tz="UTC")),
            *[(c, pa.string()) for c in UTILIZATION_FRAME_COLUMNS[1:6]],
            *[(c, pa.float64()) for c in UTILIZATION_NUMERIC],
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    return UtilizationRead(
        paths=[str(p)],
        table=table,
        rejections=acc.rejections,
        rows_read=len(rows) + len(acc.rejections),
        warnings=warnings,
    )


def _rows(acc: _Acc) -> list[dict[str, Any]]:
    groups: dict[tuple[datetime, str], list[_Gpu]] = {}
    for (ts, wid, _), g in acc.gpus.items():
        groups.setdefault((ts, wid), []).append(g)
    rows = []
    for (ts, wid), gpus in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row: dict[str, Any] = dict.fromkeys(UTILIZATION_FRAME_COLUMNS)
        for c in UTILIZATION_NUMERIC:
            row[c] = math.nan
        kind, _host = acc.meta[wid]
        busy = [g.engine if g.engine is not None else g.util for g in gpus]
        used = [g.fb_used for g in gpus]
        total = [
            g.fb_used + g.fb_free for g in gpus if g.fb_used is not None and g.fb_free is not None
        ]
        row.update(
            ds=ts,
            workload_id=wid,
            kind=kind,
            gpu_requested=float(len(gpus)),
            gpu_used=math.fsum(b for b in busy if b is not None)
            if any(b is not None for b in busy)
            else math.nan,
            gpu_memory_used_gib=(
                math.fsum(u for u in used if u is not None) / 1024.0
                if any(u is not None for u in used)
                else math.nan
            ),
            gpu_memory_total_gib=math.fsum(total) / 1024.0 if len(total) == len(gpus) else math.nan,
            replicas=1.0,
        )
        rows.append(row)
    return rows
