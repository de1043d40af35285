"""Score alerts against labelled anomalies (the demo fleet's ``labels/anomalies.csv``).

Evaluation replays deployment: the rules run once over the whole history with
``since`` at the start of the data, and each alert keeps the time its data was
complete (``detected_at``). An alert *detects* a label when

* it is about the label: its scope names the label's workload or team (an
  untagged label's team is ``"(none)"``), or one of its top root causes names
  the label's team, project or resource, or a resource id containing the
  workload's name; and
* it was detected between the label's start and ``min(end, start + horizon)
  + grace`` (a level shift found weeks later is not a detection).

Precision counts alerts that detect some label; latency is the first
detection minus the label's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecaster.alerts.base import Alert
from models.anomaly.rootcause import MISSING_VALUE

#: Columns a labels frame needs.
LABEL_COLUMNS: tuple[str, ...] = ("anomaly_id", "start", "end", "team", "project", "workload_id")


def read_labels(path: Any) -> pd.DataFrame:
    """Read ``labels/anomalies.csv`` with UTC timestamps and ``"(none)"`` for an empty team."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("start", "end"):
        df[col] = pd.to_datetime(df[col], utc=True)
    df["team"] = df["team"].replace("", MISSING_VALUE)
    if "expected_extra_cost" in df.columns:
        df["expected_extra_cost"] = pd.to_numeric(df["expected_extra_cost"], errors="coerce")
    return df


def _relates(alert: Alert, label: pd.Series, top: int) -> bool:
    scope = alert.scope
    workload = str(label.get("workload_id", ""))
    if workload and scope.get("workload_id") == workload:
        return True
    if "team" in scope and scope["team"] == str(label["team"]):
        return True
    name = workload.rsplit("/", 1)[-1] if workload else ""
    wanted = {
        ("team", str(label["team"])),
        ("project", str(label.get("project", ""))),
    }
    resource = str(label.get("resource_id", "") or "")
    for rc in list(alert.root_causes)[:top]:
        dim, val = str(rc.get("dimension")), str(rc.get("value"))
        if (dim, val) in wanted:
            return True
        if dim == "resource_id" and ((resource and val == resource) or (name and name in val)):
            return True
    return False


@dataclass
class LabelScore:
    """Per-label and per-alert outcomes, and the summary figures.

    Attributes
    ----------
    labels : pandas.DataFrame
        The labels with ``found`` (bool), ``first_detection``, ``latency_h``,
        ``detected_by`` (rule kinds) and ``n_alerts``.
    alerts : pandas.DataFrame
        One row per alert: ``id, rule, severity, detected_at, scope, impact,
        matched`` (the label ids it detects, "" for none).
    """

    labels: pd.DataFrame
    alerts: pd.DataFrame

    def summary(self, *, teams: int, weeks: float, min_impact: float = 0.0) -> dict[str, Any]:
        """Recall, precision, latency and false alerts per team per week.

        ``min_impact`` restricts recall to labels with at least that expected extra cost.
        """
        lab = self.labels
        if min_impact and "expected_extra_cost" in lab.columns:
            lab = lab[lab["expected_extra_cost"] >= min_impact]
        n_alerts = len(self.alerts)
        tp = int((self.alerts["matched"] != "").sum()) if n_alerts else 0
        found = lab[lab["found"]]
        lat = found["latency_h"].to_numpy(dtype=float)
        return {
            "labels": len(lab),
            "found": len(found),
            "recall": round(len(found) / len(lab), 4) if len(lab) else None,
            "alerts": n_alerts,
            "true_alerts": tp,
            "precision": round(tp / n_alerts, 4) if n_alerts else None,
            "false_alerts": n_alerts - tp,
            "false_alerts_per_team_week": round((n_alerts - tp) / (teams * weeks), 4)
            if teams and weeks
            else None,
            "latency_h_median": float(np.median(lat)) if lat.size else None,
            "latency_h_max": float(lat.max()) if lat.size else None,
            "found_within_2h": int((lat <= 2.0).sum()),
        }


def score_alerts(
    alerts: Sequence[Alert],
    labels: pd.DataFrame,
    *,
    horizon: pd.Timedelta = pd.Timedelta(days=2),
    grace: pd.Timedelta = pd.Timedelta(hours=2),
    top_causes: int = 3,
) -> LabelScore:
    """Match alerts to labels (see the module docstring).

    Parameters
    ----------
    alerts : sequence of Alert
    labels : pandas.DataFrame
        :data:`LABEL_COLUMNS` (as from :func:`read_labels`).
    horizon : Timedelta, default 2 days
        Latest detection after a label's start (long or open-ended labels).
    grace : Timedelta, default 2 hours
        Slack after a label's end.
    top_causes : int, default 3
        Root causes of an alert that may name the label.
    """
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"parameter labels misses column(s) {missing}")
    lab = labels.copy()
    matched: dict[str, list[str]] = {a.id: [] for a in alerts}
    found, first, rules, counts = [], [], [], []
    for _, row in lab.iterrows():
        start = pd.Timestamp(row["start"])
        stop = min(pd.Timestamp(row["end"]), start + horizon) + grace
        hits = [a for a in alerts if start < a.detected_at <= stop and _relates(a, row, top_causes)]
        for a in hits:
            matched[a.id].append(str(row["anomaly_id"]))
        found.append(bool(hits))
        t = min((a.detected_at for a in hits), default=None)
        first.append(t)
        rules.append(",".join(sorted({a.rule for a in hits})))
        counts.append(len(hits))
    lab["found"] = found
    lab["first_detection"] = first
    lab["latency_h"] = [
        (t - pd.Timestamp(s)) / pd.Timedelta(hours=1) if t is not None else np.nan
        for t, s in zip(first, lab["start"], strict=True)
    ]
    lab["detected_by"] = rules
    lab["n_alerts"] = counts
    al = pd.DataFrame(
        [
            {
                "id": a.id,
                "rule": a.rule,
                "severity": a.severity,
                "detected_at": a.detected_at,
                "scope": a.scope_label,
                "impact": a.impact,
                "matched": ",".join(matched[a.id]),
                "title": a.title,
            }
            for a in alerts
        ],
        columns=["id", "rule", "severity", "detected_at", "scope", "impact", "matched", "title"],
    )
    return LabelScore(lab, al)
