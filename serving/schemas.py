"""Request and response schemas of the serving API (one family per resource).

Hot-path answers are rendered from precomputed JSON tokens (see :mod:`serving.state`)
rather than through these models, so the models here are the published contract: the
OpenAPI document is generated from them and the schemathesis suite checks every rendered
answer against it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class ErrorResponse(BaseModel):
    """A plain error: 401, 403, 404, 503."""

    detail: str = Field(description="What went wrong, without internals.")


class ModelRef(BaseModel):
    """Which model produced an answer."""

    name: str | None = Field(description="Registered model name (or the pipeline's model).")
    version: str | None = Field(description="Registry version.")
    run_id: str | None = Field(description="MLflow run that logged the version.")
    alias: str | None = Field(description="Registry alias followed (``champion``).")
    source: Literal["registry", "store", "pyfunc"] = Field(
        description="registry: champion's logged forecasts; store: pipeline results; "
        "pyfunc: computed on demand by the champion."
    )
    store_run_id: str | None = Field(default=None, description="Pipeline run in the store.")


class Provenanced(BaseModel):
    model: ModelRef
    forecast_time: datetime | None = Field(description="Forecast origin (cutoff), UTC.")


# -- series and forecasts --------------------------------------------------------------------
class SeriesItem(BaseModel):
    unique_id: str
    hierarchy: str | None = Field(description="Hierarchy level: total, team, project, service.")
    tags: dict[str, str] = Field(description="Tags the series answers to (``tag`` filter).")
    horizon: int = Field(description="Precomputed steps.")
    freq_seconds: int
    start: datetime | None = Field(description="First forecast timestamp.")
    href: str = Field(
        description="Its forecast, percent-encoded and relative to the server's base URL "
        "(``/v1/forecasts/team%3Dnlp%2Fproject%3Dchat``)."
    )


class SeriesList(BaseModel):
    total: int = Field(description="Series matching the filters (before paging).")
    offset: int
    limit: int
    items: list[SeriesItem]


class Interval(BaseModel):
    level: float = Field(description="Central interval level in percent.")
    lo: list[float | None]
    hi: list[float | None]


class ForecastResponse(Provenanced):
    """A forecast in columns: ``ds[i], yhat[i]`` and each interval's ``lo[i], hi[i]``."""

    unique_id: str
    hierarchy: str | None
    freq_seconds: int = Field(description="Step between points.")
    horizon: int = Field(description="Points returned.")
    requested_horizon: int
    truncated: bool = Field(description="Fewer points than requested were available.")
    level: list[float]
    ds: list[datetime]
    yhat: list[float | None] = Field(description="Median forecast.")
    intervals: list[Interval]


class BatchForecastResponse(BaseModel):
    count: int
    forecasts: list[ForecastResponse]


def batch_request_model(max_batch: int, max_horizon: int) -> type[BaseModel]:
    """The batch request body with this server's limits in its schema."""
    fields: dict[str, Any] = {
        "unique_ids": (
            Annotated[
                list[Annotated[str, Field(min_length=1, max_length=512)]],
                Field(min_length=1, max_length=max_batch, description="Series ids."),
            ],
            ...,
        ),
        "horizon": (
            Annotated[int | None, Field(ge=1, le=max_horizon, description="Steps ahead.")],
            None,
        ),
        "level": (
            Annotated[
                list[Annotated[float, Field(gt=0, le=95)]] | None,
                Field(max_length=4, description="Interval levels in percent (0, 95]."),
            ],
            None,
        ),
    }
    model: type[BaseModel] = create_model(
        "BatchForecastRequest", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


# -- scaling ---------------------------------------------------------------------------------
class LoadForecast(BaseModel):
    timestamps: list[datetime]
    values: list[float | None] = Field(description="Load at the requested quantile (>= 0).")


class CapacityForecast(BaseModel):
    timestamps: list[datetime]
    values: list[int] = Field(description="Replicas to provision, within [min, max].")
    gpus: list[float | None] | None = Field(description="GPUs (replicas x GPUs per replica).")


class ScalingResponse(Provenanced):
    """Predictive scaling forecast: the load and the capacity for each interval."""

    workload_id: str
    metric: str = Field(description="gpu or cpu: what the load measures.")
    quantile: float
    interval_seconds: int
    horizon: int
    requested_horizon: int
    truncated: bool
    capacity_per_replica: float | None = Field(description="Load one replica serves.")
    gpus_per_replica: float | None
    min_replicas: int = Field(description="Floor applied (stored or caller's, the larger).")
    max_replicas: int
    load_forecast: LoadForecast
    capacity_forecast: CapacityForecast | None = Field(
        description="Null when the workload has no capacity per replica."
    )


class WorkloadItem(BaseModel):
    workload_id: str
    metric: str = Field(description="gpu or cpu: what the load measures.")
    interval_seconds: int
    horizon: int = Field(description="Precomputed intervals.")
    start: datetime | None = Field(description="First forecast interval.")
    capacity_per_replica: float | None
    min_replicas: int
    max_replicas: int
    href: str = Field(description="Its scaling forecast, percent-encoded, relative URL.")
    keda_href: str = Field(description="Its KEDA metric, percent-encoded, relative URL.")


class WorkloadList(BaseModel):
    total: int = Field(description="Workloads matching the filters (before paging).")
    offset: int
    limit: int
    items: list[WorkloadItem]


class KedaMetric(Provenanced):
    """KEDA metrics-api form: one value to scale on (``valueLocation: replicas``)."""

    workload_id: str
    metric: str
    quantile: float
    window_seconds: int
    timestamp: datetime | None = Field(description="Interval of the peak within the window.")
    load: float | None = Field(description="Peak load over the window.")
    replicas: int | None = Field(description="Replicas for the peak (target value 1).")
    gpus: float | None


# -- anomalies and recommendations -----------------------------------------------------------
class Anomaly(BaseModel):
    id: str | None
    rule: str | None
    title: str | None
    severity: str | None
    team: str | None
    service: str | None
    resource: str | None
    period_start: datetime | None
    period_end: datetime | None
    detected_at: datetime | None
    expected: float | None
    actual: float | None
    impact: float | None = Field(description="USD at stake.")
    score: float | None
    root_cause: str | None
    labelled: str | None


class AnomalyList(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[Anomaly]


class Rightsizing(BaseModel):
    workload_id: str | None
    kind: str | None
    instance_type: str | None
    evidence_start: datetime | None
    evidence_end: datetime | None
    intervals: int | None
    replicas_mean: float | None
    cpu_request: float | None
    cpu_recommended: float | None
    cpu_risk: float | None
    memory_request_gib: float | None
    memory_recommended_gib: float | None
    memory_risk: float | None
    gpu_request: float | None
    gpu_recommended: float | None
    gpu_recommendation: str | None
    gpu_risk: float | None
    risk: float | None
    current_usd_per_hour: float | None
    recommended_usd_per_hour: float | None
    saving_usd_per_hour: float | None
    saving_usd_per_month: float | None
    policy: str | None


class Placement(BaseModel):
    policy: str | None
    pods: int | None
    placed: int | None
    gpu_allocation_pct: float | None
    gpus_used: float | None
    nodes_used: int | None
    usd_per_month: float | None


class Saving(BaseModel):
    kind: str | None
    description: str | None
    usd_per_month: float | None
    team: str | None


class Recommendations(BaseModel):
    savings_usd_per_month: float = Field(description="Sum of the listed savings lines.")
    rightsizing: list[Rightsizing]
    placement: list[Placement]
    savings: list[Saving]


# -- health, status, admin -------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    model_name: str | None
    model_version: str | None
    registry: str = Field(description="ok, unreachable or not configured.")
    store: str
    forecast_series: int
    workloads: int


class Status(Ready):
    model: ModelRef | None
    loaded_at: datetime
    forecast_time: datetime | None
    last_check: datetime | None
    last_error: str | None
    missing: dict[str, str]
    reloads: int


class ReloadResponse(BaseModel):
    outcome: Literal["swapped", "unchanged", "failed"]
    status: Status


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes."""
    text = {
        400: "The body is not valid JSON.",
        401: "Missing or unknown API key.",
        403: "The key lacks the scope.",
        404: "Unknown series or workload.",
        503: "Nothing loaded yet.",
    }
    return {c: {"model": ErrorResponse, "description": text.get(c, "Error")} for c in codes}


# -- scenarios -------------------------------------------------------------------------------
class MonthlyCost(BaseModel):
    month: datetime
    cost: float | None = Field(description="USD per month (median).")
    lo_80: float | None
    hi_80: float | None
    lo_95: float | None
    hi_95: float | None


class TeamMonthlyCost(MonthlyCost):
    team: str


class CapacityLine(BaseModel):
    instance_type: str
    purchase_option: str
    count: int
    gpus: int
    usd_per_month: float | None


class ScenarioResponse(BaseModel):
    """A what-if next to its baseline: monthly cost with intervals and the capacity."""

    name: str
    summary: dict[str, Any]
    monthly: list[MonthlyCost]
    by_team: list[TeamMonthlyCost]
    capacity: list[CapacityLine]
    baseline_summary: dict[str, Any]
    baseline_monthly: list[MonthlyCost]
    baseline_capacity: list[CapacityLine]
    notes: list[str]
