"""Policies as code: a YAML file of budgets, required tags, idle and spot policies.

:func:`load_policy` reads and validates the file (pydantic). Every problem is
reported with the file, the line and the key path, for example::

    policy.yaml, line 12, key budgets[0].monthly: Input should be greater than 0

A :class:`Policy` compiles to alert rules (:meth:`Policy.rules`);
:func:`check_policy` evaluates them against an :class:`AlertContext` and
returns the violations (alerts) with severity and owner. See
``forecaster/alerts/example_policy.yaml`` for every key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.exceptions import ConfigError, PolicyError
from features.tags import required_dimensions
from forecaster.alerts.base import AlertContext, Evaluation, KnownEvent, Rule, evaluate_rules
from forecaster.alerts.budgets import Budget, budget_rules
from forecaster.alerts.rules import (
    CostAnomaly,
    CostChange,
    DailySpendThreshold,
    IdleResources,
    SpendSpike,
    SpotPolicy,
    UntaggedSpend,
)

#: The example shipped with the package.
EXAMPLE_POLICY = Path(__file__).with_name("example_policy.yaml")

SeverityName = Literal["info", "warning", "critical"]

#: Rule kinds that are policies (``forecaster policy check``); the others are detection.
POLICY_KINDS: tuple[str, ...] = (
    "budget_consumed",
    "budget_forecast",
    "untagged_spend",
    "idle_resource",
    "spot_policy",
    "daily_spend",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Scope = dict[str, str | None]


class BudgetSpec(_Strict):
    """``budgets[]``: a monthly budget for a scope of spend."""

    name: str = Field(min_length=1)
    scope: Scope = Field(default_factory=dict)
    monthly: float = Field(gt=0)
    alert_at: list[float] = Field(default_factory=lambda: [0.8, 1.0])
    forecast_probability: float | None = Field(default=0.5, gt=0, le=1)
    owner: str | None = None

    @field_validator("alert_at")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0 < x <= 5:
                raise ValueError(f"each share must be in (0, 5] (0.8 = 80 %), got {x}")
        return v

    def budget(self) -> Budget:
        return Budget(
            name=self.name,
            amount=self.monthly,
            scope={k: v for k, v in self.scope.items() if v is not None},
            thresholds=tuple(self.alert_at),
            forecast_probability=self.forecast_probability,
            owner=self.owner,
        )


class RequiredTagsSpec(_Strict):
    """``required_tags``: tags every usage line must carry, and the untagged share allowed."""

    tags: list[str] = Field(min_length=1)
    max_untagged_share: float = Field(default=0.05, ge=0, lt=1)
    period: Literal["month", "day"] = "month"
    severity: SeverityName = "warning"

    @field_validator("tags")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        try:
            required_dimensions(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v


class IdleSpec(_Strict):
    """``idle``: GPU workloads under a utilization for a duration."""

    gpu_utilization_below: float = Field(default=0.2, gt=0, le=1)
    hours: int | None = Field(default=None, ge=1)
    days: float | None = Field(default=None, gt=0)
    exclude_kinds: list[str] = Field(default_factory=list)
    min_waste: float = Field(default=0.0, ge=0)
    severity: SeverityName = "warning"

    @model_validator(mode="after")
    def _one_duration(self) -> IdleSpec:
        if self.hours is not None and self.days is not None:
            raise ValueError("give either hours or days, not both")
        return self

    @property
    def window_hours(self) -> int:
        if self.hours is not None:
            return self.hours
        return max(1, round(24 * (self.days if self.days is not None else 1.0)))


def _prod() -> Scope:
    return {"environment": "prod"}


class SpotSpec(_Strict):
    """``spot[]``: minimum on-demand share of compute capacity in a scope."""

    scope: Scope = Field(default_factory=lambda: _prod())
    min_on_demand_share: float = Field(ge=0, le=1)
    window_days: int = Field(default=7, ge=1)
    severity: SeverityName = "warning"


class DailySpendSpec(_Strict):
    """``daily_spend[]``: a daily spend ceiling."""

    threshold: float = Field(gt=0)
    by: str | None = None
    scope: Scope = Field(default_factory=dict)
    severity: SeverityName = "warning"


class SpikeSpec(_Strict):
    """``spikes``: period-over-period increases."""

    pct: float = Field(default=50.0, gt=0)
    by: str | None = "team"
    freq: str = "D"
    compare: Literal["previous", "season"] = "season"
    min_impact: float = Field(default=500.0, ge=0)


class AnomalySpec(_Strict):
    """``anomaly``: streaming detection on hourly cost."""

    enabled: bool = True
    by: str | None = "team"
    include_total: bool = True
    min_impact: float = Field(default=5.0, ge=0)


class ChangeSpec(_Strict):
    """``changes``: cost level changes per workload (:class:`CostChange`), within hours."""

    enabled: bool = True
    persist_hours: int = Field(default=2, ge=1, le=48)
    min_daily_impact: float = Field(default=48.0, ge=0)
    rel: float = Field(default=0.25, ge=0)
    history_days: int = Field(default=14, ge=1, le=90)
    sustain_hours: int = Field(default=2, ge=0, le=168)

    def rule(self) -> CostChange:
        return CostChange(
            persist=self.persist_hours,
            min_daily_impact=self.min_daily_impact,
            rel=self.rel,
            history_days=self.history_days,
            sustain_hours=self.sustain_hours,
        )


class KnownEventSpec(_Strict):
    """``known_events[]``: planned activities whose alerts are suppressed."""

    start: datetime | date
    end: datetime | date
    scope: dict[str, str] = Field(default_factory=dict)
    rules: list[str] | None = None
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> KnownEventSpec:
        if _ts(self.end) <= _ts(self.start):
            raise ValueError(f"end must be after start, got start={self.start}, end={self.end}")
        return self

    def event(self) -> KnownEvent:
        return KnownEvent(
            _ts(self.start),
            _ts(self.end),
            dict(self.scope),
            tuple(self.rules) if self.rules is not None else None,
            self.note,
        )


def _ts(v: datetime | date) -> Any:
    import pandas as pd

    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class Policy(_Strict):
    """A validated policy file.

    Attributes mirror the YAML keys; every section is optional.
    """

    version: Literal[1] = 1
    currency: str = "USD"
    owners: dict[str, str] = Field(default_factory=dict)
    budgets: list[BudgetSpec] = Field(default_factory=list)
    required_tags: RequiredTagsSpec | None = None
    idle: IdleSpec | None = None
    spot: list[SpotSpec] = Field(default_factory=list)
    daily_spend: list[DailySpendSpec] = Field(default_factory=list)
    spikes: SpikeSpec | None = None
    anomaly: AnomalySpec | None = None
    changes: ChangeSpec | None = None
    known_events: list[KnownEventSpec] = Field(default_factory=list)

    @field_validator("budgets")
    @classmethod
    def _unique_names(cls, v: list[BudgetSpec]) -> list[BudgetSpec]:
        names = [b.name for b in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"budget names must be unique, got duplicates {dup}")
        return v

    # -- compilation ----------------------------------------------------------------------
    def rules(self, *, detection: bool = True) -> list[Rule]:
        """The rules of this policy; ``detection=False`` keeps only policy rules (no spikes
        or anomaly detection)."""
        out: list[Rule] = list(budget_rules([b.budget() for b in self.budgets]))
        if self.required_tags is not None:
            rt = self.required_tags
            out.append(
                UntaggedSpend(
                    rt.max_untagged_share,
                    required=required_dimensions(rt.tags),
                    period=rt.period,
                    severity=rt.severity,
                )
            )
        if self.idle is not None:
            out.append(
                IdleResources(
                    self.idle.gpu_utilization_below,
                    hours=self.idle.window_hours,
                    exclude_kinds=self.idle.exclude_kinds,
                    min_waste=self.idle.min_waste,
                    severity=self.idle.severity,
                )
            )
        for sp in self.spot:
            out.append(
                SpotPolicy(
                    sp.min_on_demand_share,
                    where=sp.scope,
                    window_days=sp.window_days,
                    severity=sp.severity,
                )
            )
        for ds in self.daily_spend:
            out.append(
                DailySpendThreshold(ds.threshold, by=ds.by, where=ds.scope, severity=ds.severity)
            )
        if detection:
            if self.spikes is not None:
                s = self.spikes
                out.append(
                    SpendSpike(
                        s.pct, by=s.by, freq=s.freq, compare=s.compare, min_impact=s.min_impact
                    )
                )
            if self.anomaly is not None and self.anomaly.enabled:
                a = self.anomaly
                out.append(
                    CostAnomaly(by=a.by, include_total=a.include_total, min_impact=a.min_impact)
                )
            if self.changes is not None and self.changes.enabled:
                out.append(self.changes.rule())
        return out

    @property
    def events(self) -> list[KnownEvent]:
        return [e.event() for e in self.known_events]


def default_rules() -> list[Rule]:
    """Rules run when no policy is given (``forecaster alerts``, the demo's detection).

    * :class:`CostChange`: new spend, spikes and level shifts per workload, within
      two hours of their start;
    * :class:`IdleResources` over two hours (GPUs held but idle: a runaway or hung
      job), notebooks excluded (idle by nature);
    * :class:`UntaggedSpend`: the untagged share of the month, once a month.
    """
    return [
        CostChange(),
        IdleResources(0.1, hours=2, exclude_kinds=("notebook",)),
        UntaggedSpend(0.05),
    ]


# -- loading --------------------------------------------------------------------------------
def _loc_text(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _node_line(root: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at ``loc`` (the deepest one that exists)."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == str(part):
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _is_key_loc(part: Any) -> bool:
    # pydantic appends validator names such as "function-after[...]" to some locations.
    return not (isinstance(part, str) and ("[" in part and "]" in part and "-" in part))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate a policy from YAML text.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        Name used in messages (the file path).

    Raises
    ------
    PolicyError
        Naming ``source``, the line and the key of each problem.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or str(exc)
        col = f", column {mark.column + 1}" if mark is not None else ""
        msg = f"{source}, line {line}{col}: invalid YAML: {what}"
        raise PolicyError(
            msg, path=source, problems=[(line, "", f"invalid YAML: {what}")]
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: invalid YAML: {exc}", path=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise PolicyError(
            f"{source}, line {line}: the policy must be a mapping of sections "
            f"(budgets, required_tags, ...), got {type(data).__name__}",
            path=source,
            problems=[(line, "", "not a mapping")],
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if _is_key_loc(p)]
            line = _node_line(root, loc)
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see example_policy.yaml)"
            elif (
                "input" in err
                and err["type"] != "missing"
                and not isinstance(err["input"], dict | list)
            ):
                msg = f"{msg}, got {err['input']!r}"
            problems.append((line, _loc_text(loc), msg))
        text_lines = [
            f"{source}, line {line if line is not None else '?'}, key {key}: {msg}"
            for line, key, msg in problems
        ]
        raise PolicyError("\n".join(text_lines), path=source, problems=problems) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (see :func:`parse_policy`).

    Raises
    ------
    PolicyError
        When the file is missing, unreadable, not YAML or has invalid values.
    """
    p = Path(path)
    if not p.exists():
        raise PolicyError(f"{p}: policy file not found", path=str(p))
    if p.is_dir():
        raise PolicyError(f"{p}: expected a YAML file, got a folder", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{p}: cannot read policy file ({exc})", path=str(p)) from None
    return parse_policy(text, str(p))


def check_policy(policy: Policy, ctx: AlertContext, *, suppress: Any | None = None) -> Evaluation:
    """Evaluate the policy rules (no detection) against ``ctx``: the violations.

    ``ctx`` gets the policy's owners and known events where it has none.
    """
    if policy.owners and not ctx.owners:
        ctx.owners = dict(policy.owners)
    if policy.known_events and not ctx.known_events:
        ctx.known_events = policy.events
    return evaluate_rules(policy.rules(detection=False), ctx, suppress=suppress)
