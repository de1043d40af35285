"""The alert value object, the context rules read, and the rule interface.

Every FinOps check (a daily threshold, a budget, a spike, idle GPUs, untagged
spend, a detector flag, a policy) is a small strategy object behind one
interface, :class:`Rule`: ``evaluate(ctx) -> list[Alert]``. Rules are causal
and replayable: a rule emits the alerts of every period that *completed* in
``(ctx.since, ctx.data_end]``, each computed from data up to the end of its
period only. A live run uses a short window (the last day); a replay over
history uses a long one and gets the same alerts a daily job would have sent.

An :class:`Alert` carries a stable ``id`` (a hash of its rule, scope and
period) so that the same finding is recognised across runs: delivery sends it
once, and feedback can suppress it.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, InvalidFrameError
from models.anomaly.rootcause import MISSING_VALUE, aggregate_series, where_mask

Severity = Literal["info", "warning", "critical"]

#: Severities in increasing order.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")

#: Columns the rules read from the cost frame (the canonical names).
COST_COLUMNS_USED: tuple[str, ...] = (
    "ds",
    "ds_end",
    "account",
    "cluster",
    "service",
    "team",
    "project",
    "environment",
    "owner",
    "instance_type",
    "resource_id",
    "usage_type",
    "purchase_option",
    "charge_category",
    "effective_cost",
    "list_cost",
)

#: Charge categories that carry usage (what anomaly and spike rules watch).
USAGE_CATEGORIES: tuple[str, ...] = ("Usage",)
#: Charge categories a tag can be put on (as in :func:`features.tags.tag_coverage`).
TAGGABLE_CATEGORIES: tuple[str, ...] = ("Usage", "Purchase")


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (higher is worse)."""
    try:
        return SEVERITIES.index(severity)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(
            f"parameter severity must be one of {list(SEVERITIES)}, got {severity!r}"
        ) from None


def _utc(ts: Any, name: str) -> pd.Timestamp:
    try:
        out = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"parameter {name} must be a timestamp, got {ts!r}") from exc
    if out is pd.NaT:
        raise ConfigError(f"parameter {name} must be a timestamp, got {ts!r}")
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _json_value(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return v


@dataclass(frozen=True)
class Alert:
    """One finding, ready to deliver.

    Attributes
    ----------
    rule : str
        The rule kind (``"daily_spend"``, ``"budget_consumed"``, ...).
    title : str
        One line for humans.
    severity : {"info", "warning", "critical"}
    scope : mapping of str to str
        The aggregate the finding is about (``{"team": "nlp"}``; empty = all spend).
    period_start, period_end : pandas.Timestamp
        The period ``[start, end)`` that triggered it (UTC).
    detected_at : pandas.Timestamp
        When the data that triggered it was complete (at the earliest).
    owner : str, optional
        Who should act (a team, an e-mail, a channel).
    expected, actual : float, optional
        Expected and observed amount (currency units, or a ratio for utilization rules).
    impact : float
        Dollars at stake (overspend, projected overrun, idle cost), >= 0 when known.
    probability : float, optional
        Probability attached to a forecast-based finding.
    evidence : mapping
        Rule-specific figures (JSON-ready).
    root_causes : tuple of mapping
        Ranked contributions (see :func:`models.anomaly.rootcause.root_cause`).
    key_extra : str
        Extra text in the de-duplication key (e.g. a budget threshold).
    id : str
        Stable hash of ``rule``, ``scope``, the period and ``key_extra``
        (16 hex digits): the same finding has the same id on every run.
    pattern : str
        Hash of ``rule`` and ``scope`` only: the recurring pattern, for
        suppression of a planned activity.
    """

    rule: str
    title: str
    severity: Severity
    scope: Mapping[str, str]
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    detected_at: pd.Timestamp
    impact: float
    owner: str | None = None
    expected: float | None = None
    actual: float | None = None
    probability: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    root_causes: tuple[Mapping[str, Any], ...] = ()
    key_extra: str = ""
    id: str = field(init=False)
    pattern: str = field(init=False)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        scope = {str(k): str(v) for k, v in sorted(self.scope.items())}
        object.__setattr__(self, "scope", scope)
        for name in ("period_start", "period_end", "detected_at"):
            object.__setattr__(self, name, _utc(getattr(self, name), name))
        object.__setattr__(self, "id", _digest(self.key))
        object.__setattr__(self, "pattern", _digest(self.pattern_key))

    @property
    def key(self) -> str:
        """The text hashed into :attr:`id`."""
        return json.dumps(
            [
                self.rule,
                self.scope,
                self.period_start.isoformat(),
                self.period_end.isoformat(),
                self.key_extra,
            ],
            sort_keys=True,
        )

    @property
    def pattern_key(self) -> str:
        """The text hashed into :attr:`pattern`."""
        return json.dumps([self.rule, self.scope, self.key_extra], sort_keys=True)

    @property
    def scope_label(self) -> str:
        """``team=nlp, project=chat`` (``all spend`` when empty)."""
        return ", ".join(f"{k}={v}" for k, v in self.scope.items()) or "all spend"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO 8601 strings)."""
        return {
            "id": self.id,
            "pattern": self.pattern,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "owner": self.owner,
            "scope": dict(self.scope),
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "detected_at": self.detected_at.isoformat(),
            "expected": _json_value(self.expected),
            "actual": _json_value(self.actual),
            "impact": _json_value(self.impact),
            "probability": _json_value(self.probability),
            "evidence": _json_value(dict(self.evidence)),
            "root_causes": _json_value([dict(r) for r in self.root_causes]),
            "key_extra": self.key_extra,
        }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KnownEvent:
    """A planned activity: alerts it explains are suppressed.

    Parameters
    ----------
    start, end : timestamp-like
        The event ``[start, end)``.
    scope : mapping of str to str
        Dimension values the event concerns (``{"team": "nlp"}``); empty = all.
        An alert matches when each item equals the alert's scope value for that
        dimension, or (when the alert is not scoped by it) the value of one of
        its root causes with at least half of the impact.
    rules : tuple of str, optional
        Rules it applies to (default: all).
    note : str
        Why (shown in reports).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    scope: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[str, ...] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "start"))
        object.__setattr__(self, "end", _utc(self.end, "end"))
        if self.end <= self.start:
            raise ConfigError(
                f"parameter end must be after start, got start={self.start}, end={self.end}"
            )
        object.__setattr__(self, "scope", {str(k): str(v) for k, v in self.scope.items()})

    def matches(self, alert: Alert) -> bool:
        """True when the event overlaps the alert's period and its scope explains it."""
        if self.rules is not None and alert.rule not in self.rules:
            return False
        if not (self.start < alert.period_end and alert.period_start < self.end):
            return False
        for dim, val in self.scope.items():
            if dim in alert.scope:
                if alert.scope[dim] != val:
                    return False
                continue
            explained = any(
                rc.get("dimension") == dim
                and str(rc.get("value")) == val
                and (rc.get("share") is None or float(rc.get("share") or 0.0) >= 0.5)
                for rc in alert.root_causes
            )
            if not explained:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "scope": dict(self.scope),
            "rules": list(self.rules) if self.rules is not None else None,
            "note": self.note,
        }


class AlertContext:
    """What rules read: cost (and utilization) up to ``as_of``, and the window to report.

    Parameters
    ----------
    cost : pandas.DataFrame
        Cost frame (canonical column names; at least ``ds`` and
        ``effective_cost``, plus the dimensions the rules use). Tag values
        should already be normalised (``Store``: read the ``cost_n`` view).
    utilization : pandas.DataFrame, optional
        Utilization frame (``ds, workload_id, gpu_used, gpu_requested``, ...).
    as_of : timestamp-like, optional
        Evaluation time: rows at or after it are ignored (default: the end of
        the data).
    since : timestamp-like, optional
        Report alerts of periods that completed after ``since`` (default: one
        day before ``as_of``). Use the start of the data to replay history.
    owners : mapping of str to str, optional
        Team -> owner (e-mail, channel); unmapped teams own their alerts.
    known_events : sequence of KnownEvent
        Planned activities; their alerts are suppressed by :func:`evaluate_rules`.
    freq : str, default "h"
        Period of the cost data (hourly billing).
    currency : str, default "USD"
    """

    def __init__(
        self,
        cost: pd.DataFrame,
        utilization: pd.DataFrame | None = None,
        *,
        as_of: Any | None = None,
        since: Any | None = None,
        owners: Mapping[str, str] | None = None,
        known_events: Sequence[KnownEvent] = (),
        freq: str = "h",
        currency: str = "USD",
    ) -> None:
        for col in ("ds", "effective_cost"):
            if col not in cost.columns:
                raise InvalidFrameError(
                    f"missing required column; got columns {list(cost.columns)}",
                    column=col,
                    frame="cost",
                )
        if not isinstance(cost["ds"].dtype, pd.DatetimeTZDtype):
            raise InvalidFrameError(
                f"must be a timezone-aware UTC timestamp, got dtype {cost['ds'].dtype}",
                column="ds",
                frame="cost",
            )
        self.step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        self.freq = freq
        last = cost["ds"].max() if len(cost) else None
        if as_of is None:
            if last is None:
                raise ConfigError("parameter as_of is required when the cost frame is empty")
            as_of = pd.Timestamp(last).floor(self.step) + self.step
        self.as_of = _utc(as_of, "as_of")
        cost = cost[cost["ds"] < self.as_of]
        if not cost["ds"].is_monotonic_increasing:
            cost = cost.sort_values("ds", kind="stable")
        cost = cost.reset_index(drop=True)
        # Categorical dimensions: filters, slices and group-bys stay cheap on large frames.
        for col in cost.columns:
            dtype = cost[col].dtype
            if (
                col != "ds"
                and not isinstance(dtype, pd.CategoricalDtype)
                and (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))
            ):
                cost[col] = cost[col].astype("category")
        self.cost = cost
        if utilization is not None and len(utilization):
            utilization = utilization[utilization["ds"] < self.as_of]
        self.utilization = utilization
        self.since = (
            _utc(since, "since") if since is not None else self.as_of - pd.Timedelta(days=1)
        )
        if len(self.cost):
            self.data_start = pd.Timestamp(self.cost["ds"].min()).floor(self.step)
            self.data_end = min(
                self.as_of, pd.Timestamp(self.cost["ds"].max()).floor(self.step) + self.step
            )
        else:
            self.data_start = self.data_end = self.as_of
        self.owners = dict(owners or {})
        self.known_events = list(known_events)
        self.currency = currency
        self._cache: dict[Any, pd.DataFrame] = {}
        self._frames: dict[Any, pd.DataFrame] = {}

    # -- helpers for rules --------------------------------------------------------------
    def owner_of(
        self, scope: Mapping[str, str], root_causes: Iterable[Mapping[str, Any]] = ()
    ) -> str | None:
        """Owner of an alert: the mapped owner of its team (scope, else top root cause)."""
        team = scope.get("team")
        if team is None:
            for rc in root_causes:
                if rc.get("dimension") == "team":
                    team = str(rc.get("value"))
                    break
        if team is None or team == MISSING_VALUE:
            return self.owners.get(MISSING_VALUE) or self.owners.get("*")
        return self.owners.get(team, team)

    def in_window(self, period_end: pd.Timestamp) -> bool:
        """True when a period ending at ``period_end`` is reported by this evaluation."""
        return bool(self.since < period_end <= self.data_end)

    def frame(
        self,
        where: Mapping[str, Any] | None = None,
        charge_categories: Sequence[str] | None = None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Cost rows in ``where`` (missing values as ``None``/``"(none)"``), categories and time.

        Filtered frames are cached; ``[start, end)`` slices the time-sorted rows.
        """
        key = (
            tuple(sorted((k, str(v)) for k, v in (where or {}).items())),
            tuple(charge_categories) if charge_categories is not None else None,
        )
        df = self._frames.get(key)
        if df is None:
            df = self.cost
            if charge_categories is not None and "charge_category" in df.columns:
                df = df[df["charge_category"].isin(list(charge_categories))]
            if where:
                df = df[where_mask(df, where)]
            self._frames[key] = df
        if start is None and end is None:
            return df
        ds = df["ds"]
        i0 = 0 if start is None else int(ds.searchsorted(start, side="left"))
        i1 = len(df) if end is None else int(ds.searchsorted(end, side="left"))
        return df.iloc[i0:i1]

    def series(
        self,
        freq: str = "D",
        by: str | None = None,
        where: Mapping[str, Any] | None = None,
        charge_categories: Sequence[str] | None = None,
        cost_col: str = "effective_cost",
    ) -> pd.DataFrame:
        """Zero-filled cost series ``unique_id, ds, y`` over the data range (cached).

        Periods are aligned to ``freq``; the last period may be incomplete
        (check ``ds + freq <= data_end``).
        """
        key = (
            freq,
            by,
            tuple(sorted((k, str(v)) for k, v in (where or {}).items())),
            tuple(charge_categories) if charge_categories is not None else None,
            cost_col,
        )
        if key not in self._cache:
            step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
            df = self.frame(where, charge_categories)
            if by is not None and by not in df.columns:
                raise InvalidFrameError(
                    f"cannot group by a missing column; got columns {list(df.columns)}",
                    column=by,
                    frame="cost",
                )
            start = self.data_start.floor(step)
            end = self.data_end.ceil(step) if self.data_end > start else start + step
            self._cache[key] = aggregate_series(
                df, freq=freq, by=by, start=start, end=end, cost_col=cost_col
            )
        return self._cache[key]

    def complete_periods(self, freq: str) -> pd.DatetimeIndex:
        """Starts of the periods of ``freq`` that completed inside the report window.

        A period counts when it started at or after the first data period and
        ``since < start + freq <= data_end``.
        """
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        start = self.data_start.floor(step)
        if start != self.data_start:  # a period that began before the data is incomplete
            start += step
        idx = pd.date_range(start, self.data_end - step, freq=step)
        return idx[(idx + step) > self.since]


class Rule(ABC):
    """A FinOps check: evaluated on a context, it returns alerts.

    Subclasses store their parameters in ``__init__`` (validated there, so a
    bad policy fails when it is loaded) and implement :meth:`evaluate`.
    """

    #: Rule kind, used in alert ids and by known events.
    kind: str = "rule"

    @abstractmethod
    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        """Alerts of the periods that completed in ``(ctx.since, ctx.data_end]``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Worst first: severity, then impact, then time."""
    return sorted(
        alerts,
        key=lambda a: (
            -severity_rank(a.severity),
            -(a.impact if math.isfinite(a.impact) else 0.0),
            a.detected_at,
            a.id,
        ),
    )


@dataclass
class Evaluation:
    """What :func:`evaluate_rules` found.

    Attributes
    ----------
    alerts : list of Alert
        Alerts to act on, worst first, one per id.
    suppressed : list of tuple (Alert, str)
        Alerts suppressed, with the reason (a known event, analyst feedback).
    errors : list of str
        Rules that failed (the others still ran), as ``"rule: message"``.
    """

    alerts: list[Alert]
    suppressed: list[tuple[Alert, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def evaluate_rules(
    rules: Sequence[Rule],
    ctx: AlertContext,
    *,
    suppress: Any | None = None,
    fail_fast: bool = False,
) -> Evaluation:
    """Evaluate every rule, de-duplicate by id, apply known events and feedback.

    Parameters
    ----------
    rules : sequence of Rule
    ctx : AlertContext
    suppress : object with ``reason(alert) -> str | None``, optional
        Analyst feedback (:class:`forecaster.alerts.feedback.FeedbackStore`).
    fail_fast : bool, default False
        Re-raise a rule's error instead of recording it.
    """
    seen: dict[str, Alert] = {}
    errors: list[str] = []
    for rule in rules:
        try:
            found = rule.evaluate(ctx)
        except (ConfigError, InvalidFrameError, ValueError, KeyError) as exc:
            if fail_fast:
                raise
            errors.append(f"{rule.kind}: {exc}")
            continue
        for a in found:
            prev = seen.get(a.id)
            if prev is None or a.detected_at < prev.detected_at:
                seen[a.id] = a
    kept: list[Alert] = []
    suppressed: list[tuple[Alert, str]] = []
    for a in sort_alerts(seen.values()):
        reason = None
        for ev in ctx.known_events:
            if ev.matches(a):
                reason = f"known event: {ev.note or ev.start.isoformat()}"
                break
        if reason is None and suppress is not None:
            reason = suppress.reason(a)
        if reason is None:
            kept.append(a)
        else:
            suppressed.append((a, reason))
    return Evaluation(kept, suppressed, errors)
