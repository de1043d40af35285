"""Run alert rules on the store: load the context, evaluate, remember the listing.

The CLI (``forecaster alerts``, ``forecaster policy check``) and the demo
evaluation go through :func:`load_context` and :func:`run_alerts`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.store import Store
from features.tags import create_normalised_view
from forecaster.alerts.base import (
    COST_COLUMNS_USED,
    Alert,
    AlertContext,
    Evaluation,
    KnownEvent,
    Rule,
    evaluate_rules,
)
from forecaster.alerts.feedback import FeedbackStore
from models.anomaly.rootcause import MISSING_VALUE

#: Days of history loaded before ``as_of`` by default: :class:`CostChange`'s 90-day
#: record of past excesses over its 14-day envelope (so that a live run alerts as the
#: replay does), detector warm-up, four-week baselines, the budget projector's 35 days.
DEFAULT_HISTORY_DAYS = 105


@dataclass(frozen=True)
class StatePaths:
    """Files the alerting keeps under ``DATA_DIR/alerts``."""

    root: Path

    @property
    def sent_log(self) -> Path:
        return self.root / "sent.json"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback.json"

    @property
    def last_alerts(self) -> Path:
        return self.root / "last_alerts.json"


#: SQL for the workload a cost row belongs to (``cluster/namespace/name``), from the
#: split cost allocation tags: an EKS pod's workload, an ECS task's service. NULL for
#: rows of no workload (whole nodes, storage, fees). ``contains`` skips the JSON parse
#: for the rows without the tag.
WORKLOAD_ID_SQL = (
    "CASE WHEN contains(tags, 'aws_eks_workload_name') "
    "AND tags->>'$.aws_eks_workload_name' IS NOT NULL "
    "THEN coalesce(cluster, '') || '/' || coalesce(tags->>'$.aws_eks_namespace', team, "
    f"'{MISSING_VALUE}') || '/' || (tags->>'$.aws_eks_workload_name') "
    "WHEN contains(tags, 'aws_ecs_service_name') "
    "AND tags->>'$.aws_ecs_service_name' IS NOT NULL "
    f"THEN coalesce(cluster, '') || '/' || coalesce(team, '{MISSING_VALUE}') || '/' "
    "|| (tags->>'$.aws_ecs_service_name') END"
)


def _arrow_frame(store: Store, sql: str, params: list[Any]) -> pd.DataFrame:
    """Run ``sql`` through Arrow: text columns arrive dictionary-encoded (categoricals).

    Several times faster than ``.df()`` on a year of hourly rows, and the rules want
    categoricals anyway (cheap filters and group-bys).
    """
    import pyarrow as pa

    rel = store.con.sql(sql, params=params)
    table = rel.to_arrow_table() if rel is not None else pa.table({})
    cols = [
        c.dictionary_encode()
        if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
        else c
        for c in table.columns
    ]
    return pa.table(cols, names=table.column_names).to_pandas()


def load_context(
    store: Store,
    *,
    as_of: Any | None = None,
    since: Any | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    owners: Mapping[str, str] | None = None,
    known_events: Sequence[KnownEvent] = (),
    normalise_tags: bool = True,
) -> AlertContext:
    """An :class:`AlertContext` over the store's cost and utilization.

    Parameters
    ----------
    store : Store
    as_of : timestamp-like, optional
        Evaluation time (default: the end of the cost data).
    since : timestamp-like, optional
        Report periods completed after it (default: one day before ``as_of``).
    history_days : int, default 105
        History loaded before ``as_of`` (or before ``since``, when earlier).
    normalise_tags : bool, default True
        Read the ``cost_n`` view (tag value variants merged; see
        :func:`features.tags.create_normalised_view`).
    """
    table = "cost"
    if normalise_tags:
        create_normalised_view(store, shared_values=())
        table = "cost_n"
    if as_of is None:
        last = store.con.execute(f"SELECT max(ds) FROM {table}").fetchall()[0][0]
        if last is None:
            return AlertContext(
                pd.DataFrame({"ds": pd.DatetimeIndex([], tz="UTC"), "effective_cost": []}),
                as_of=pd.Timestamp.now(tz="UTC").floor("h"),
                since=since,
            )
        as_of_ts = pd.Timestamp(last).tz_convert("UTC").floor("h") + pd.Timedelta(hours=1)
    else:
        as_of_ts = pd.Timestamp(as_of)
        as_of_ts = as_of_ts.tz_localize("UTC") if as_of_ts.tzinfo is None else as_of_ts
    since_ts = as_of_ts - pd.Timedelta(days=1) if since is None else pd.Timestamp(since)
    if since_ts.tzinfo is None:
        since_ts = since_ts.tz_localize("UTC")
    start = min(as_of_ts - pd.Timedelta(days=history_days), since_ts)
    cols = ", ".join(COST_COLUMNS_USED)
    # Rows that carry no dollars (split-allocated parent nodes: their cost moved to the
    # pods and tasks) change no alert; skipping them saves a quarter of the rows.
    cost = _arrow_frame(
        store,
        f"SELECT {cols}, {WORKLOAD_ID_SQL} AS workload_id FROM {table} "
        "WHERE ds >= ? AND ds < ? "
        "AND NOT (abs(effective_cost) < 1e-9 AND abs(coalesce(list_cost, 0)) < 1e-9) "
        "ORDER BY ds",
        [start.to_pydatetime(), as_of_ts.to_pydatetime()],
    )
    util = store.query(
        "SELECT ds, workload_id, cluster, team, kind, instance_type, gpu_used, gpu_requested "
        "FROM utilization WHERE ds >= ? AND ds < ? ORDER BY workload_id, ds",
        [start.to_pydatetime(), as_of_ts.to_pydatetime()],
    )
    for df in (cost, util):
        if len(df):
            df["ds"] = pd.to_datetime(df["ds"], utc=True)
    return AlertContext(
        cost,
        util,
        as_of=as_of_ts,
        since=since_ts,
        owners=owners,
        known_events=known_events,
    )


def run_alerts(
    rules: Sequence[Rule],
    ctx: AlertContext,
    *,
    feedback: FeedbackStore | None = None,
) -> Evaluation:
    """Evaluate ``rules`` with feedback applied (suppressions and known events)."""
    if feedback is not None:
        ctx.known_events = [*ctx.known_events, *feedback.known_events()]
    return evaluate_rules(rules, ctx, suppress=feedback)


def write_listing(path: Path, alerts: Sequence[Alert]) -> None:
    """Remember the last listing (so that feedback can name an alert by id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8") or "{}")
            old = loaded.get("alerts", {}) if isinstance(loaded, dict) else {}
        except (OSError, json.JSONDecodeError):
            old = {}
    merged = {**old, **{a.id: a.to_dict() for a in alerts}}
    # Keep the listing small: the latest 2,000 alerts by detection time.
    keep = sorted(merged.values(), key=lambda d: str(d.get("detected_at")))[-2000:]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"alerts": {d["id"]: d for d in keep}}, fh, indent=1)
    os.replace(tmp, path)


def read_listing(path: Path) -> dict[str, dict[str, Any]]:
    """Alerts of previous listings by id (empty when none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    alerts = data.get("alerts", {}) if isinstance(data, dict) else {}
    return alerts if isinstance(alerts, dict) else {}
