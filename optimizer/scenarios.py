"""What-if scenarios: drivers in YAML applied to a baseline monthly cost forecast and fleet.

A scenario (:class:`ScenarioSpec`, read from YAML with :func:`load_scenario`) names
drivers a capacity planner controls:

* ``growth_pct_per_month``: extra demand growth per team, in percent per month,
  compounding (``"*"`` applies to every team not listed);
* ``new_workloads``: workloads that do not exist yet, with their GPU needs, replicas and
  schedule (start and end month, hours per day, days per week);
* ``spot_share``: share of each workload class's replicas run on Spot;
* ``gpu_sharing``: ``off``, ``mig`` (MIG profiles on MIG-capable GPUs) or ``fractional``
  (MPS / time-slicing on the current GPU model) for the classes in ``sharing_kinds``;
* ``rightsizing``: apply the right-sizing recommendations (a share of the gap);
* ``savings_plan``: a Compute Savings Plan commitment (USD per hour or a coverage of
  today's on-demand compute spend) with its discount.

:func:`run_scenario` turns a :class:`BaselineInputs` (a per-team monthly forecast with
80/95 % intervals, and today's fleet of workloads) and a spec into a
:class:`ScenarioResult`: monthly cost with intervals and the capacity needed by instance
type and purchase option. It is deterministic and side-effect free; the fleet is sized
with :func:`optimizer.fleet.plan`, the same packer ``forecaster plan`` uses.

How the drivers move the cost (the model, stated once):

1. Growth multiplies a team's forecast (every quantile) by ``(1 + g) ** k`` in the k-th
   month of the horizon.
2. Unit-cost drivers (Spot share, GPU sharing, right-sizing) are priced by packing the
   fleet at the horizon's peak demand twice, without and with the drivers. Each plan's
   node cost is attributed to workloads (GPU nodes by GPUs taken, CPU nodes by dominant
   resource share) and summed per team; the ratio scenario / plain is the team's unit
   factor. It applies to the share of the team's spend the fleet explains (its
   *compute fraction*, today's plan cost over the forecast's first month, at most 1);
   storage, network and support spend are left as forecast.
3. New workloads add their attributed plan cost times their duty cycle and the share of
   each month they run. They carry no uncertainty of their own.
4. A Savings Plan commitment ``c`` (USD/h, discount ``d``) covers on-demand compute up to
   ``c / (1 - d)`` per hour: the month's cost falls by ``covered - c`` (which is negative,
   a waste, when usage is below the commitment). It is applied to the total only.

Team intervals are scaled quantile by quantile (all drivers are monotone). The total's
intervals come from the baseline's own total forecast, scaled the same way, so they are
not the (too wide) sum of team quantiles.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.exceptions import ConfigError
from optimizer.catalog import Catalog, load_catalog
from optimizer.fleet import FleetConfig, FleetPlan, Workload, plan

#: Workload classes a scenario can name (the ``kind`` of the utilization frame).
WORKLOAD_KINDS: tuple[str, ...] = ("training", "inference", "pipeline", "notebook", "batch")
#: Quantile columns of every monthly frame, in order.
QUANTILES: tuple[str, ...] = ("cost", "lo_80", "hi_80", "lo_95", "hi_95")
#: Columns of :attr:`BaselineInputs.workloads`.
WORKLOAD_COLUMNS: tuple[str, ...] = (
    "workload_id",
    "team",
    "kind",
    "instance_type",
    "gpu_model",
    "production",
    "replicas",
    "cpu",
    "memory_gib",
    "gpu",
    "gpu_memory_gib",
    "cpu_recommended",
    "memory_recommended_gib",
    "gpu_recommended",
)
#: Columns of the monthly frames (``scenario_monthly`` result).
MONTHLY_COLUMNS: tuple[str, ...] = ("scenario", "month", *QUANTILES)
#: Columns of the capacity frame (``scenario_capacity`` result).
CAPACITY_COLUMNS: tuple[str, ...] = (
    "scenario",
    "instance_type",
    "purchase_option",
    "count",
    "gpus",
    "usd_per_month",
)
HOURS_PER_MONTH = 730.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")

Kind = Literal["training", "inference", "pipeline", "notebook", "batch"]


# -- the spec ----------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewWorkload(_Strict):
    """A workload the scenario adds (per-replica requests, schedule)."""

    name: str
    team: str
    kind: Kind = "training"
    replicas: int = Field(ge=1, le=10_000)
    gpus_per_replica: float = Field(default=0.0, ge=0.0, le=64.0)
    gpu_model: str | None = None
    cpu: float = Field(default=4.0, gt=0.0)
    memory_gib: float = Field(default=16.0, gt=0.0)
    gpu_memory_gib: float = Field(default=0.0, ge=0.0)
    start: str | None = None
    end: str | None = None
    hours_per_day: float = Field(default=24.0, gt=0.0, le=24.0)
    days_per_week: int = Field(default=7, ge=1, le=7)
    production: bool = False

    @field_validator("start", "end", mode="before")
    @classmethod
    def _month_in(cls, v: Any) -> Any:
        # YAML reads 2026-03-01 as a date: keep its month.
        return v.strftime("%Y-%m") if isinstance(v, date) else v

    @field_validator("start", "end")
    @classmethod
    def _month(cls, v: str | None) -> str | None:
        if v is not None and not _MONTH.match(str(v)):
            raise ValueError(f"must be a month written YYYY-MM, got {v!r}")
        return v

    @property
    def duty_cycle(self) -> float:
        """Share of the hours of a month the workload runs."""
        return (self.hours_per_day / 24.0) * (self.days_per_week / 7.0)


class RightsizingSpec(_Strict):
    """Apply right-sizing recommendations: ``share`` of the gap to the recommendation."""

    applied: bool = False
    share: float = Field(default=1.0, ge=0.0, le=1.0)


class SavingsPlanSpec(_Strict):
    """A Compute Savings Plan commitment.

    Give either ``commitment_usd_per_hour`` (what you pay per hour, discounted dollars)
    or ``coverage_pct`` (commit to cover that share of today's on-demand compute spend).
    ``discount_pct`` is the plan's discount off on-demand; 28 % is a typical 1-year
    no-upfront Compute Savings Plan rate (an assumption: put the rate of your own offer).
    """

    commitment_usd_per_hour: float | None = Field(default=None, ge=0.0)
    coverage_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    discount_pct: float = Field(default=28.0, ge=0.0, lt=100.0)
    term: Literal["1yr", "3yr"] = "1yr"

    @model_validator(mode="after")
    def _one_of(self) -> SavingsPlanSpec:
        if (self.commitment_usd_per_hour is None) == (self.coverage_pct is None):
            raise ValueError("give exactly one of commitment_usd_per_hour or coverage_pct")
        return self


def _default_sharing() -> list[Kind]:
    return ["inference", "notebook"]


class ScenarioSpec(_Strict):
    """Drivers of one what-if scenario (see the module docstring for their effect)."""

    name: str = Field(max_length=200)
    description: str = ""
    horizon_months: int | None = Field(default=None, ge=1, le=36)
    growth_pct_per_month: dict[str, float] = Field(default_factory=dict)
    new_workloads: list[NewWorkload] = Field(default_factory=list)
    spot_share: dict[Kind, float] = Field(default_factory=dict)
    gpu_sharing: Literal["off", "mig", "fractional"] = "off"
    sharing_kinds: list[Kind] = Field(default_factory=lambda: _default_sharing())
    rightsizing: RightsizingSpec = Field(default_factory=RightsizingSpec)
    savings_plan: SavingsPlanSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or v == "baseline":
            raise ValueError(
                f"must be letters, digits, '.', '_' or '-' (and not 'baseline'), got {v!r}"
            )
        return v

    @field_validator("gpu_sharing", mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` as False.
        return "off" if v is False else v

    @field_validator("growth_pct_per_month")
    @classmethod
    def _growth(cls, v: dict[str, float]) -> dict[str, float]:
        for team, pct in v.items():
            if not (math.isfinite(pct) and -100.0 < pct <= 100.0):
                raise ValueError(f"growth of team {team!r} must be in (-100, 100] %, got {pct!r}")
        return v

    @field_validator("spot_share")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        for kind, share in v.items():
            if not (math.isfinite(share) and 0.0 <= share <= 1.0):
                raise ValueError(f"spot share of {kind!r} must be in [0, 1], got {share!r}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> ScenarioSpec:
        names = [w.name for w in self.new_workloads]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"new workload names must be unique, repeated: {dup}")
        return self


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys allowed at ``loc`` (the parent of an unknown key)."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fld = getattr(cur, "model_fields", {}).get(part)
        if fld is None:
            break
        ann = fld.annotation
        nxt = None
        for cand in (ann, *getattr(ann, "__args__", ())):
            inner = [cand, *getattr(cand, "__args__", ())]
            for c in inner:
                if isinstance(c, type) and issubclass(c, BaseModel):
                    nxt = c
        if nxt is None:
            break
        cur = nxt
    return sorted(getattr(cur, "model_fields", {}))


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = []
    for e in exc.errors():
        loc = [p for p in e["loc"]]
        path = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(ScenarioSpec, loc[:-1])
            lines.append(f"unknown key {path!r}; allowed keys: {', '.join(allowed)}")
        elif e["type"] in ("literal_error", "enum"):
            expected = e.get("ctx", {}).get("expected", "")
            lines.append(f"key {path!r} must be one of {expected}, got {e.get('input')!r}")
        elif e["type"] == "missing":
            lines.append(f"key {path!r} is required")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"key {path!r}: {msg} (got {e.get('input')!r})")
    return f"{where}: invalid scenario: " + "; ".join(lines)


def parse_scenario(doc: Any, where: str = "scenario") -> ScenarioSpec:
    """Validate a scenario document (the parsed YAML mapping).

    Raises
    ------
    ConfigError
        Naming each bad key with the allowed keys or values.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: a scenario must be a YAML mapping, got {type(doc).__name__}")
    try:
        return ScenarioSpec.model_validate(dict(doc))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, where)) from None


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario YAML file (see :class:`ScenarioSpec`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {p}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_scenario(doc, str(p))


# -- inputs and results ------------------------------------------------------------------------
@dataclass(frozen=True)
class BaselineInputs:
    """What a scenario starts from.

    Attributes
    ----------
    team_monthly : pandas.DataFrame
        ``team, month`` (UTC month start) and ``cost, lo_80, hi_80, lo_95, hi_95`` (USD per
        month): the baseline forecast per team.
    total_monthly : pandas.DataFrame
        ``month`` and the same quantile columns for the whole bill (it may hold spend no
        team carries).
    workloads : pandas.DataFrame
        Today's fleet, :data:`WORKLOAD_COLUMNS`: replicas at a high quantile, per-replica
        requests (vCPU, GiB, GPUs) and recommendations, the GPU model in use.
    spot_share : mapping of str to float
        Today's Spot share of replicas per workload class, in [0, 1] (absent = 0).
    compute_share : mapping of str to float
        Per team, the share of its spend that is compute (instances), in [0, 1]; unit-cost
        drivers move only that part. A team not listed uses today's plan cost over its
        forecast (at most 1).
    on_demand_usd_per_hour : float, optional
        Today's billed on-demand compute spend (USD/h), the base of a Savings Plan
        ``coverage_pct`` (default: today's plan).
    on_demand_share : float
        Today's on-demand share of compute spend (the rest is Spot or committed).
    notes : list of str
        How the baseline was built (what was missing, what was assumed).
    """

    team_monthly: pd.DataFrame
    total_monthly: pd.DataFrame
    workloads: pd.DataFrame
    spot_share: Mapping[str, float] = field(default_factory=dict)
    compute_share: Mapping[str, float] = field(default_factory=dict)
    on_demand_usd_per_hour: float | None = None
    on_demand_share: float = 1.0
    notes: tuple[str, ...] = ()

    @property
    def months(self) -> list[pd.Timestamp]:
        return sorted(pd.to_datetime(self.total_monthly["month"], utc=True).unique())

    @property
    def teams(self) -> list[str]:
        return sorted(str(t) for t in self.team_monthly["team"].unique())


@dataclass(frozen=True)
class ScenarioResult:
    """Output of :func:`run_scenario`.

    Attributes
    ----------
    name : str
    monthly : pandas.DataFrame
        :data:`MONTHLY_COLUMNS`, the whole bill per month (USD) with 80/95 % intervals.
    by_team : pandas.DataFrame
        ``team, month`` and the quantile columns (before any Savings Plan, which is not
        allocated to teams).
    capacity : pandas.DataFrame
        :data:`CAPACITY_COLUMNS`: nodes needed at the horizon's peak demand.
    summary : dict
        JSON-friendly totals (``total_cost``, ``gpus``, ``nodes``, ``spot_share_pct``, ...).
    notes : list of str
        The assumptions and inputs behind the numbers.
    """

    name: str
    monthly: pd.DataFrame
    by_team: pd.DataFrame
    capacity: pd.DataFrame
    summary: dict[str, Any]
    notes: tuple[str, ...] = ()


# -- the engine --------------------------------------------------------------------------------
def _team_key(team: object) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(team).lower()) if isinstance(team, str) else ""


def _workloads(frame: pd.DataFrame) -> list[dict[str, Any]]:
    missing = [c for c in WORKLOAD_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"baseline workloads frame lacks columns {missing}")
    return [dict(r) for r in frame[list(WORKLOAD_COLUMNS)].to_dict("records")]


def _to_fleet(
    rows: Sequence[Mapping[str, Any]], spot_share: Mapping[str, float]
) -> tuple[list[Workload], dict[str, str]]:
    """Fleet workloads, each split into an on-demand and a Spot part by its class's share.

    Returns the workloads and a map ``fleet name -> workload id``.
    """
    out: list[Workload] = []
    owner: dict[str, str] = {}
    for r in rows:
        reps = int(r["replicas"])
        if reps <= 0:
            continue
        share = float(spot_share.get(str(r["kind"]), 0.0))
        n_spot = math.floor(share * reps + 1e-9)
        models = (str(r["gpu_model"]),) if r.get("gpu_model") else ()
        for option, n in (("od", reps - n_spot), ("spot", n_spot)):
            if n <= 0:
                continue
            name = f"{r['workload_id']}|{option}"
            owner[name] = str(r["workload_id"])
            out.append(
                Workload(
                    name=name,
                    replicas=n,
                    cpu=float(r["cpu"]),
                    memory_gib=float(r["memory_gib"]),
                    gpu=float(r["gpu"]),
                    gpu_memory_gib=float(r["gpu_memory_gib"]),
                    gpu_models=models,
                    spot_tolerant=option == "spot",
                    production=False,
                    team=str(r["team"]),
                    kind=str(r["kind"]),
                )
            )
    return out, owner


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return load_catalog()


#: Packings already solved in this process, by (workloads, catalog, config).
_PACKED: dict[tuple[Any, ...], FleetPlan] = {}
_PACKED_MAX = 512


def _packed(workloads: Sequence[Workload], catalog: Catalog, config: FleetConfig) -> FleetPlan:
    """:func:`optimizer.fleet.plan`, one call per purchase option and GPU class, memoised.

    The packer runs under a time limit, so two calls on the same demand may differ when
    a limit cuts a search short. Packing each class on its own, once, means a driver that
    touches one class (Spot for training, say) leaves every other class's plan exactly as
    in the baseline, and a scenario run twice in a process gives the same numbers.
    """
    parts: dict[tuple[bool, str], list[Workload]] = {}
    for w in workloads:
        klass = "cpu" if w.gpu <= 0 else "gpu:" + "|".join(sorted(w.gpu_models))
        parts.setdefault((w.spot_tolerant, klass), []).append(w)
    groups: list[Any] = []
    total = bound = 0.0
    unplaced: list[tuple[str, int]] = []
    for key in sorted(parts):
        ws = tuple(sorted(parts[key], key=lambda w: w.name))
        memo = (ws, id(catalog), catalog.version, config)
        fp = _PACKED.get(memo)
        if fp is None:
            fp = plan(ws, catalog, config=config)
            if len(_PACKED) >= _PACKED_MAX:
                _PACKED.clear()
            _PACKED[memo] = fp
        groups += list(fp.groups)
        total += fp.total_usd_per_hour
        bound += fp.lower_bound_usd_per_hour
        unplaced += list(fp.unplaced)
    return FleetPlan("scenario", tuple(groups), total, bound, tuple(unplaced))


def _plan(
    rows: Sequence[Mapping[str, Any]],
    spot_share: Mapping[str, float],
    catalog: Catalog,
    config: FleetConfig,
) -> tuple[FleetPlan, dict[str, float]]:
    wl, owner = _to_fleet(rows, spot_share)
    fleet = _packed(wl, catalog, config)
    # Item sizes for the attribution (GPUs per item, CPU and memory per replica).
    global_sizes = {w.name: float(math.ceil(w.gpu - 1e-9)) for w in wl if w.gpu >= 1}
    global_sizes.update({f"{w.name}:cpu": w.cpu for w in wl})
    global_sizes.update({f"{w.name}:mem": w.memory_gib for w in wl})
    cost = _attribute_sized(fleet, catalog, owner, global_sizes)
    return fleet, cost


def _attribute_sized(
    fleet: FleetPlan, catalog: Catalog, owner: Mapping[str, str], sizes: Mapping[str, float]
) -> dict[str, float]:
    cost: dict[str, float] = {}
    for g in fleet.groups:
        gpu_group = g.key.split("/", 1)[1] != "cpu"
        for b in g.packing.bins:
            it = catalog.get(b.bin_type)
            weights: dict[str, float] = {}
            for item, count in b.items:
                base = item.split("#", 1)[0]
                wid = owner.get(base, base)
                if gpu_group:
                    # A fractional bundle takes one (virtual) GPU; a whole-GPU item its count.
                    per = 1.0 if "#" in item else sizes.get(base, 1.0)
                    w = float(count) * max(per, 1.0)
                else:
                    w = float(count) * max(
                        sizes.get(base + ":cpu", 0.0) / max(float(it.vcpu), 1e-9),
                        sizes.get(base + ":mem", 0.0) / max(it.memory_gib, 1e-9),
                    )
                weights[wid] = weights.get(wid, 0.0) + max(w, 1e-12)
            tot = sum(weights.values())
            for wid, w in weights.items():
                cost[wid] = cost.get(wid, 0.0) + b.cost * w / tot
    return cost


def _capacity(name: str, fleet: FleetPlan, catalog: Catalog) -> pd.DataFrame:
    nodes = fleet.nodes()
    if nodes.empty:
        return pd.DataFrame(columns=list(CAPACITY_COLUMNS))
    nodes["gpus"] = [
        catalog.get(t).gpus * int(c)
        for t, c in zip(nodes["instance_type"], nodes["count"], strict=True)
    ]
    nodes["usd_per_month"] = nodes["usd_per_hour"] * HOURS_PER_MONTH
    nodes.insert(0, "scenario", name)
    return nodes[list(CAPACITY_COLUMNS)].reset_index(drop=True)


def _extend(frame: pd.DataFrame, months: list[pd.Timestamp], keys: Sequence[str]) -> pd.DataFrame:
    """Cut or extend a monthly frame to ``months``; extra months repeat the last level and
    widen the intervals like a random walk (half-widths times sqrt(h / h_last))."""
    parts = []
    groups = frame.groupby(list(keys), sort=True) if keys else [((), frame)]
    for _, g in groups:
        g = g.sort_values("month")
        g = g[g["month"].isin(months)]
        have = list(g["month"])
        if not have:
            continue
        last = g.iloc[-1]
        n = len(have)
        extra = []
        for j, m in enumerate([m for m in months if m > have[-1]], start=1):
            f = math.sqrt((n + j) / n)
            row = {c: last[c] for c in keys}
            row["month"] = m
            c = float(last["cost"])
            for q in QUANTILES[1:]:
                # Spend is not negative: a widened lower bound stops at zero.
                row[q] = max(c + (float(last[q]) - c) * f, min(float(last[q]), 0.0))
            row["cost"] = c
            extra.append(row)
        parts.append(pd.concat([g, pd.DataFrame(extra)], ignore_index=True) if extra else g)
    out = pd.concat(parts, ignore_index=True) if parts else frame.iloc[0:0]
    return out.reset_index(drop=True)


def _month_index(months: Sequence[pd.Timestamp], value: str | None, default: int) -> int:
    if value is None:
        return default
    ts = pd.Timestamp(f"{value}-01", tz="UTC")
    return int(sum(1 for m in months if m < ts))


def _sp_saving(od: np.ndarray, hours: np.ndarray, commit: float, d: float) -> np.ndarray:
    """USD saved per month by a commitment of ``commit`` USD/h covering on-demand ``od``."""
    per_hour = od / hours
    covered = np.minimum(per_hour, commit / (1.0 - d)) if d < 1 else per_hour
    return (covered - commit) * hours


def _check_teams(spec: ScenarioSpec, baseline: BaselineInputs) -> None:
    known = baseline.teams
    for team in spec.growth_pct_per_month:
        if team != "*" and team not in known:
            raise ConfigError(
                f"scenario {spec.name}: key growth_pct_per_month names team {team!r}; "
                f"allowed values: {', '.join(['*', *known])}"
            )


def _new_rows(spec: ScenarioSpec, catalog: Catalog) -> list[dict[str, Any]]:
    models = sorted({it.gpu_model for it in catalog if it.is_gpu})
    rows = []
    for w in spec.new_workloads:
        if w.gpu_model is not None and w.gpu_model not in models:
            raise ConfigError(
                f"scenario {spec.name}: new_workloads[{w.name}].gpu_model must be one of "
                f"{', '.join(models)}, got {w.gpu_model!r}"
            )
        rows.append(
            {
                "workload_id": f"new:{w.name}",
                "team": w.team,
                "kind": w.kind,
                "instance_type": "",
                "gpu_model": w.gpu_model or "",
                "production": w.production,
                "replicas": w.replicas,
                "cpu": w.cpu,
                "memory_gib": w.memory_gib,
                "gpu": w.gpus_per_replica,
                "gpu_memory_gib": w.gpu_memory_gib,
                "cpu_recommended": w.cpu,
                "memory_recommended_gib": w.memory_gib,
                "gpu_recommended": w.gpus_per_replica,
            }
        )
    return rows


def _apply_unit_drivers(
    rows: Sequence[Mapping[str, Any]], spec: ScenarioSpec
) -> list[dict[str, Any]]:
    out = []
    rs = spec.rightsizing
    for r0 in rows:
        r = dict(r0)
        if rs.applied and not str(r["workload_id"]).startswith("new:"):
            for req, rec in (("cpu", "cpu_recommended"), ("memory_gib", "memory_recommended_gib")):
                if pd.notna(r[rec]) and float(r[rec]) > 0:
                    r[req] = float(r[req]) - rs.share * (float(r[req]) - float(r[rec]))
        if (
            spec.gpu_sharing != "off"
            and r["kind"] in spec.sharing_kinds
            and math.isclose(float(r["gpu"]), 1.0)
            and pd.notna(r["gpu_recommended"])
            and 0 < float(r["gpu_recommended"]) < 1
        ):
            # A share the packer can place: eighths for time-slicing; MIG picks its profile.
            # The GPU model stays: MIG profiles where it supports MIG, time-slicing elsewhere
            # (moving a small share onto a bigger MIG-capable GPU rarely pays).
            r["gpu"] = max(math.ceil(float(r["gpu_recommended"]) * 8 - 1e-9) / 8.0, 0.125)
        out.append(r)
    return out


def _scaled_rows(
    rows: Sequence[Mapping[str, Any]], factor: Mapping[str, float]
) -> list[dict[str, Any]]:
    out = []
    for r0 in rows:
        r = dict(r0)
        f = factor.get(_team_key(r["team"]), factor.get("*", 1.0))
        r["replicas"] = math.ceil(int(r["replicas"]) * f - 1e-9)
        out.append(r)
    return out


def _on_demand_usd_per_hour(fleet: FleetPlan) -> float:
    nodes = fleet.nodes()
    return float(nodes.loc[nodes["purchase_option"] == "on_demand", "usd_per_hour"].sum())


def _od_share(fleet: FleetPlan) -> float:
    t = fleet.total_usd_per_hour
    return _on_demand_usd_per_hour(fleet) / t if t > 0 else 0.0


def _od_ratio(scenario: FleetPlan, plain: FleetPlan) -> float:
    """How much the on-demand share of the fleet changes under the drivers."""
    before = _od_share(plain)
    return _od_share(scenario) / before if before > 0 else 1.0


def _today_on_demand(baseline: BaselineInputs, fleet0: FleetPlan) -> float:
    """Today's on-demand compute spend (USD/h): billed when known, else today's plan."""
    if baseline.on_demand_usd_per_hour is not None:
        return float(baseline.on_demand_usd_per_hour)
    return _on_demand_usd_per_hour(fleet0)


def _hours(months: Sequence[pd.Timestamp]) -> np.ndarray:
    return np.array([pd.Timestamp(m).days_in_month * 24.0 for m in months])


def _summary(
    name: str, monthly: pd.DataFrame, capacity: pd.DataFrame, extra: Mapping[str, Any]
) -> dict[str, Any]:
    spot = float(capacity.loc[capacity["purchase_option"] == "spot", "usd_per_month"].sum())
    fleet = float(capacity["usd_per_month"].sum())
    return {
        "scenario": name,
        "months": len(monthly),
        "first_month": str(pd.Timestamp(monthly["month"].min()).date()) if len(monthly) else None,
        "total_cost": round(float(monthly["cost"].sum()), 2),
        "total_lo_80": round(float(monthly["lo_80"].sum()), 2),
        "total_hi_80": round(float(monthly["hi_80"].sum()), 2),
        "last_month_cost": round(float(monthly["cost"].iloc[-1]), 2) if len(monthly) else 0.0,
        "nodes": int(capacity["count"].sum()),
        "gpus": int(capacity["gpus"].sum()),
        "fleet_usd_per_month": round(fleet, 2),
        "spot_share_pct": round(100.0 * spot / fleet, 1) if fleet > 0 else 0.0,
        **extra,
    }


def _horizon(baseline: BaselineInputs, horizon: int | None) -> list[pd.Timestamp]:
    have = baseline.months
    if not have:
        raise ConfigError("baseline has no months: the forecast is empty")
    n = horizon or len(have)
    start = have[0]
    return [start + pd.DateOffset(months=k) for k in range(n)]


def _extension_note(baseline: BaselineInputs, months: Sequence[pd.Timestamp]) -> tuple[str, ...]:
    have = len(baseline.months)
    if len(months) <= have:
        return ()
    return (
        f"the forecast covers {have} month(s); the {len(months) - have} after it repeat its "
        "last month with intervals widening like a random walk",
    )


def _norm_monthly(frame: pd.DataFrame) -> pd.DataFrame:
    df = frame.copy()
    df["month"] = pd.to_datetime(df["month"], utc=True)
    return df


def baseline_result(
    baseline: BaselineInputs,
    *,
    catalog: Catalog | None = None,
    config: FleetConfig | None = None,
    horizon_months: int | None = None,
) -> ScenarioResult:
    """The baseline as a scenario (name ``baseline``): its forecast and today's fleet."""
    catalog = catalog if catalog is not None else _default_catalog()
    config = config if config is not None else FleetConfig(time_limit=1.0)
    months = _horizon(baseline, horizon_months)
    total = _extend(_norm_monthly(baseline.total_monthly), months, ())
    teams = _extend(_norm_monthly(baseline.team_monthly), months, ("team",))
    fleet, _ = _plan(_workloads(baseline.workloads), baseline.spot_share, catalog, config)
    cap = _capacity("baseline", fleet, catalog)
    monthly = total.assign(scenario="baseline")[list(MONTHLY_COLUMNS)]
    notes = (
        *baseline.notes,
        *_extension_note(baseline, months),
        "baseline: the forecast as it is; capacity = today's fleet packed as is",
    )
    summary = _summary("baseline", monthly, cap, {"unplaced": [list(u) for u in fleet.unplaced]})
    return ScenarioResult("baseline", monthly, teams, cap, summary, notes)


def run_scenario(
    spec: ScenarioSpec,
    baseline: BaselineInputs,
    *,
    catalog: Catalog | None = None,
    config: FleetConfig | None = None,
) -> ScenarioResult:
    """Apply a scenario's drivers to the baseline.

    Parameters
    ----------
    spec : ScenarioSpec
        The drivers (from :func:`load_scenario`).
    baseline : BaselineInputs
        Forecast and fleet to start from (``forecaster.scenarios_io.baseline_from_store``
        builds it from a store).
    catalog : Catalog, optional
        Instance types and prices (default: the packaged catalog).
    config : FleetConfig, optional
        Packer settings (default: one second per packing).

    Returns
    -------
    ScenarioResult
        Monthly cost with 80/95 % intervals and capacity by instance type.

    Raises
    ------
    ConfigError
        When the spec names a team or GPU model the baseline or catalog does not know.
    """
    catalog = catalog if catalog is not None else _default_catalog()
    config = config if config is not None else FleetConfig(time_limit=1.0)
    if spec.gpu_sharing == "mig":
        config = FleetConfig(**{**config.__dict__, "use_mig": True})
    _check_teams(spec, baseline)
    months = _horizon(baseline, spec.horizon_months)
    h = len(months)
    hours = _hours(months)
    total = _extend(_norm_monthly(baseline.total_monthly), months, ())
    teams = _extend(_norm_monthly(baseline.team_monthly), months, ("team",))
    if len(total) != h:
        raise ConfigError("baseline total forecast does not cover the scenario's months")
    rows = _workloads(baseline.workloads)
    new = _new_rows(spec, catalog)

    growth: dict[str, float] = {
        (_team_key(t) if t != "*" else "*"): 1.0 + pct / 100.0
        for t, pct in spec.growth_pct_per_month.items()
    }
    peak = {k: g**h for k, g in growth.items()}
    share: dict[str, float] = {**baseline.spot_share}
    share.update({str(k): v for k, v in spec.spot_share.items()})

    # Today's fleet (compute fraction), and the horizon's peak without and with the drivers.
    fleet0, cost0 = _plan(rows, baseline.spot_share, catalog, config)
    peak_rows = _scaled_rows(rows, peak)
    fleet_p, cost_p = _plan(peak_rows, baseline.spot_share, catalog, config)
    fleet_s, cost_s = _plan([*_apply_unit_drivers(peak_rows, spec), *new], share, catalog, config)
    team_of = {str(r["workload_id"]): _team_key(r["team"]) for r in [*rows, *new]}

    def per_team(cost: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for wid, c in cost.items():
            if not wid.startswith("new:"):
                out[team_of.get(wid, "")] = out.get(team_of.get(wid, ""), 0.0) + c
        return out

    t0, tp, ts = per_team(cost0), per_team(cost_p), per_team(cost_s)

    parts = []
    unit_factor: dict[str, float] = {}
    compute = np.zeros(h)  # the part of the teams' cost the fleet explains, per month
    for team, g in teams.groupby("team", sort=True):
        key = _team_key(team)
        g = g.sort_values("month").reset_index(drop=True)
        k = np.arange(1, len(g) + 1, dtype=float)
        grow = growth.get(key, growth.get("*", 1.0)) ** k
        first = float(g["cost"].iloc[0])
        if team in baseline.compute_share:
            cf = min(max(float(baseline.compute_share[team]), 0.0), 1.0)
        else:
            cf = min(t0.get(key, 0.0) * HOURS_PER_MONTH / first, 1.0) if first > 0 else 0.0
        uf = ts.get(key, 0.0) / tp[key] if tp.get(key, 0.0) > 0 else 1.0
        unit_factor[str(team)] = uf
        mult = grow * (1.0 - cf + cf * uf)
        out = g.copy()
        for q in QUANTILES:
            out[q] = g[q].to_numpy(dtype=float) * mult
        compute += np.resize(g["cost"].to_numpy(dtype=float) * grow * cf * uf, h)
        parts.append(out)
    by_team = pd.concat(parts, ignore_index=True) if parts else teams.copy()

    # New workloads: attributed plan cost x duty cycle x share of each month they run.
    new_cost = np.zeros(h)
    new_by_team: dict[str, np.ndarray] = {}
    for w in spec.new_workloads:
        start = _month_index(months, w.start, 0)
        end = _month_index(months, w.end, h - 1) if w.end is not None else h - 1
        active = np.zeros(h)
        active[start : end + 1] = 1.0
        per_month = cost_s.get(f"new:{w.name}", 0.0) * hours * w.duty_cycle * active
        new_cost += per_month
        new_by_team[w.team] = new_by_team.get(w.team, np.zeros(h)) + per_month
    for team, add in new_by_team.items():
        sel = by_team["team"] == team
        if sel.any():
            for q in QUANTILES:
                by_team.loc[sel, q] = by_team.loc[sel, q].to_numpy(dtype=float) + add
        else:
            added = pd.DataFrame({"team": team, "month": months})
            for q in QUANTILES:
                added[q] = add
            by_team = pd.concat([by_team, added], ignore_index=True)

    # The total: the baseline total's quantiles times the teams' change, plus new workloads.
    base_team = teams.groupby("month", sort=True)["cost"].sum().reindex(months).to_numpy()
    scen_team = (
        by_team.groupby("month", sort=True)["cost"].sum().reindex(months).to_numpy() - new_cost
    )
    tot = total.sort_values("month").reset_index(drop=True)
    rest = np.maximum(tot["cost"].to_numpy(dtype=float) - base_team, 0.0)
    ratio = np.where(base_team + rest > 0, (scen_team + rest) / (base_team + rest), 1.0)
    monthly = tot.copy()
    for q in QUANTILES:
        monthly[q] = tot[q].to_numpy(dtype=float) * ratio + new_cost

    # Savings Plan on the on-demand compute part of each quantile.
    extra: dict[str, Any] = {}
    sp_saving = np.zeros(h)
    if spec.savings_plan is not None:
        sp = spec.savings_plan
        d = sp.discount_pct / 100.0
        commit = (
            float(sp.commitment_usd_per_hour)
            if sp.commitment_usd_per_hour is not None
            else float(sp.coverage_pct or 0.0)
            / 100.0
            * _today_on_demand(baseline, fleet0)
            * (1 - d)
        )
        # Today's on-demand share of compute, moved as the packings' on-demand share moves.
        od_frac = min(max(baseline.on_demand_share * _od_ratio(fleet_s, fleet_p), 0.0), 1.0)
        cost_now = monthly["cost"].to_numpy(dtype=float)
        compute_share = np.where(cost_now > 0, (compute + new_cost) / cost_now, 0.0)
        compute_share = np.clip(compute_share, 0.0, 1.0)
        for q in QUANTILES:
            od = monthly[q].to_numpy(dtype=float) * compute_share * od_frac
            s = _sp_saving(od, hours, commit, d)
            monthly[q] = monthly[q].to_numpy(dtype=float) - s
            if q == "cost":
                sp_saving = s
        extra["savings_plan_usd_per_hour"] = round(commit, 4)
    monthly["scenario"] = spec.name
    monthly = monthly[list(MONTHLY_COLUMNS)]
    cap = _capacity(spec.name, fleet_s, catalog)
    extra.update(
        {
            "new_workloads_cost": round(float(new_cost.sum()), 2),
            "savings_plan_saving": round(float(sp_saving.sum()), 2),
            "unit_factor": {t: round(v, 4) for t, v in sorted(unit_factor.items())},
            "unplaced": [list(u) for u in fleet_s.unplaced],
        }
    )
    notes = (
        *baseline.notes,
        *_extension_note(baseline, months),
        f"{spec.name}: growth compounds monthly; Spot, sharing and right-sizing priced by "
        f"packing the peak fleet ({len(peak_rows)} workloads + {len(new)} new) with and "
        "without them",
    )
    return ScenarioResult(
        spec.name,
        monthly,
        by_team.sort_values(["team", "month"]).reset_index(drop=True),
        cap,
        _summary(spec.name, monthly, cap, extra),
        notes,
    )


def compare(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """Monthly cost of several scenarios side by side.

    Returns
    -------
    pandas.DataFrame
        One row per month (the union of the scenarios' months); for each scenario ``n`` the
        columns ``n, n_lo_80, n_hi_80, n_lo_95, n_hi_95`` (USD; NaN where a scenario does
        not reach that month).
    """
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ConfigError(f"scenario names must be unique to compare them, got {names}")
    wide: pd.DataFrame | None = None
    for r in results:
        part = r.monthly[["month", *QUANTILES]].rename(
            columns={q: (r.name if q == "cost" else f"{r.name}_{q}") for q in QUANTILES}
        )
        wide = part if wide is None else wide.merge(part, on="month", how="outer")
    if wide is None:
        return pd.DataFrame(columns=["month"])
    return wide.sort_values("month").reset_index(drop=True)


def compare_capacity(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """Nodes per instance type and purchase option, one column per scenario.

    Returns
    -------
    pandas.DataFrame
        ``instance_type, purchase_option, gpus_per_node`` and one count column per
        scenario (0 where it needs none), then a ``gpus:<scenario>`` column each.
    """
    cap = pd.concat([r.capacity for r in results], ignore_index=True)
    if cap.empty:
        return pd.DataFrame(columns=["instance_type", "purchase_option"])
    cap["gpus_per_node"] = (
        (cap["gpus"] / cap["count"].where(cap["count"] > 0)).fillna(0).astype(int)
    )
    counts = cap.pivot_table(
        index=["instance_type", "purchase_option", "gpus_per_node"],
        columns="scenario",
        values="count",
        aggfunc="sum",
        fill_value=0,
    )
    order = [r.name for r in results]
    counts = counts.reindex(columns=order, fill_value=0).reset_index()
    counts.columns.name = None
    return counts.sort_values(
        ["gpus_per_node", "instance_type", "purchase_option"], ascending=[False, True, True]
    ).reset_index(drop=True)
