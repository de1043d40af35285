"""``/v1/scaling``, ``/v1/keda``, ``/v1/workloads``: load and capacity for scaling controllers.

The contract follows AWS predictive scaling's forecast (``GetPredictiveScalingForecast``):
a load forecast and a capacity forecast on the same timestamps, the capacity never below
the current minimum. Load at quantile ``q`` is interpolated between the stored quantile
points; capacity is ``ceil(load / capacity_per_replica)`` within ``[min, max]``.
Workload ids are addressed as :mod:`serving.ids` describes.
"""

import math
import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from serving.deps import CurrentSnapshot, NoUnknownQuery, ReadKey, invalid, not_ready
from serving.ids import MAX_ID_LENGTH
from serving.schemas import KedaMetric, ScalingResponse, WorkloadList, error_responses
from serving.settings import ServingSettings
from serving.state import MAX_QUANTILE, MIN_QUANTILE, LoadSeries, Snapshot, jdump, num_token

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = r"^[0-9]{1,7}(s|m|h|d|w)?$"
_DURATION = re.compile(DURATION)

WorkloadId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Workload id (see /v1/workloads), percent-encoded; `/` raw or as `%2F`.",
    ),
]
WorkloadIdQuery = Annotated[
    str,
    Query(
        alias="id",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Workload id (see /v1/workloads), form-encoded (a plus as `%2B`).",
    ),
]
ScalingHorizon = Annotated[
    str | None,
    Query(
        pattern=DURATION,
        description="How far ahead: a duration (48h, 2d, 90m) or a count of "
        "intervals; default all precomputed.",
    ),
]
Window = Annotated[
    str, Query(pattern=DURATION, description="Look-ahead window (duration or count).")
]
KEDA_DESCRIPTION = (
    "Peak load and replicas over the next `window`. Point a KEDA "
    "`metrics-api` trigger here with `valueLocation: replicas` and `targetValue: 1`, "
    "or `valueLocation: load` and `targetValue` = the load one replica serves."
)
JSON = "application/json"
Quantile = Annotated[
    float,
    Query(
        ge=MIN_QUANTILE,
        le=MAX_QUANTILE,
        description="Quantile of the load to provision for, in [0.025, 0.975].",
    ),
]
MinReplicas = Annotated[
    int | None,
    Query(ge=0, le=1_000_000, description="The controller's current minimum (a floor)."),
]


def intervals(text: str, step_s: int, param: str) -> int:
    """Intervals of ``step_s`` seconds covering a duration (``48h``) or a bare count (``48``).

    Raises
    ------
    RequestValidationError
        Naming ``param`` when the text is not a duration or covers no interval.
    """
    m = _DURATION.match(text.strip())
    if m is None:
        raise invalid(["query", param], "must be a count or a duration like 48h, 90m, 2d", text)
    unit = m.group(1)
    num = int(text.strip().rstrip("smhdw"))
    n = num if unit is None else math.ceil(num * _UNITS[unit] / step_s)
    if n < 1:
        raise invalid(["query", param], "must cover at least one interval", text)
    return n


def _workload(snap: Snapshot, workload_id: str) -> LoadSeries:
    if not snap.loads and not snap.ready:
        raise not_ready()
    s = snap.loads.get(workload_id)
    if s is None:
        raise HTTPException(status_code=404, detail=f"workload {workload_id!r} not found")
    return s


def build_router(settings: ServingSettings) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["scaling"], dependencies=[NoUnknownQuery])
    max_h = settings.max_horizon

    def bounded(n: int, param: str, text: str) -> int:
        if n > max_h:
            raise invalid(["query", param], f"must be at most {max_h} intervals, got {n}", text)
        return n

    def scaling_answer(
        request: Request,
        snap: Snapshot,
        workload_id: str,
        horizon: str | None,
        quantile: float,
        min_replicas: int | None,
    ) -> Response:
        s = _workload(snap, workload_id)
        want = (
            bounded(intervals(horizon, s.freq_seconds, "horizon"), "horizon", horizon)
            if horizon
            else s.horizon
        )
        h = min(want, s.horizon)
        body = snap.cached(
            ("s", workload_id, h, want, quantile, min_replicas),
            lambda: s.render(h, quantile, min_replicas, want),
        )
        snap.remember(request.scope, request.scope.get("route"), body)
        return Response(body, media_type=JSON)

    def keda_answer(
        request: Request,
        snap: Snapshot,
        workload_id: str,
        window: str,
        quantile: float,
        min_replicas: int | None,
    ) -> Response:
        s = _workload(snap, workload_id)
        n = bounded(intervals(window, s.freq_seconds, "window"), "window", window)

        def render() -> bytes:
            h = min(n, s.horizon)
            p = s.plan(h, quantile, min_replicas)
            load = p["load"]
            if h == 0 or len(load) == 0:
                peak, ts, reps, gpus = None, None, None, None
            else:
                i = int(load.argmax())
                peak, ts = float(load[i]), s.ds[i].strip('"')
                reps = int(max(p["replicas"])) if p["replicas"] is not None else None
                gpus = float(max(p["gpus"])) if p["gpus"] is not None else None
            return (
                "{"
                + f'"workload_id":{jdump(s.workload_id)},"metric":{jdump(s.metric)}'
                + f',"quantile":{num_token(quantile)},"window_seconds":{n * s.freq_seconds}'
                + f',"timestamp":{jdump(ts)},"load":{"null" if peak is None else num_token(peak)}'
                + f',"replicas":{jdump(reps)},"gpus":{"null" if gpus is None else num_token(gpus)},'
                + s.provenance.json_head()
                + "}"
            ).encode()

        body = snap.cached(("k", workload_id, n, quantile, min_replicas), render)
        snap.remember(request.scope, request.scope.get("route"), body)
        return Response(body, media_type=JSON)

    @r.get(
        "/workloads",
        response_model=WorkloadList,
        responses=error_responses(401, 403),
        summary="List the workloads with load forecasts",
    )
    async def list_workloads(
        snap: CurrentSnapshot,
        _: ReadKey,
        prefix: Annotated[
            str | None, Query(max_length=MAX_ID_LENGTH, description="Id prefix.")
        ] = None,
        metric: Annotated[str | None, Query(max_length=64, description="gpu or cpu.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        items = [
            body
            for w, body in snap.load_items
            if (prefix is None or w.workload_id.startswith(prefix))
            and (metric is None or w.metric == metric)
        ]
        page = items[offset : offset + limit]
        body = (
            f'{{"total":{len(items)},"offset":{offset},"limit":{limit},"items":['.encode()
            + b",".join(page)
            + b"]}"
        )
        return Response(body, media_type=JSON)

    # The KEDA route comes first: ``{workload_id:path}`` alone would swallow ``.../keda``.
    @r.get(
        "/scaling/{workload_id:path}/keda",
        response_model=KedaMetric,
        responses=error_responses(401, 403, 404, 503),
        summary="One value to scale on (KEDA metrics-api scaler)",
        description=KEDA_DESCRIPTION + " The id is percent-encoded in the path; an id "
        "ending in `/keda` is reached through `/v1/keda?id=`.",
    )
    async def keda(
        request: Request,
        workload_id: WorkloadId,
        snap: CurrentSnapshot,
        _: ReadKey,
        window: Window = "1h",
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
    ) -> Response:
        return keda_answer(request, snap, workload_id, window, quantile, min_replicas)

    @r.get(
        "/scaling/{workload_id:path}",
        response_model=ScalingResponse,
        responses=error_responses(401, 403, 404, 503),
        summary="Load and capacity forecast of a workload (predictive scaling)",
        description="The id is percent-encoded in the path (`/` raw or as `%2F`); an id "
        "ending in `/keda` is reached through `/v1/scaling?id=`.",
    )
    async def scaling(
        request: Request,
        workload_id: WorkloadId,
        snap: CurrentSnapshot,
        _: ReadKey,
        horizon: ScalingHorizon = None,
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
    ) -> Response:
        return scaling_answer(request, snap, workload_id, horizon, quantile, min_replicas)

    @r.get(
        "/scaling",
        response_model=ScalingResponse,
        responses=error_responses(401, 403, 404, 503),
        summary="Load and capacity forecast of a workload (id as a query parameter)",
        description="Same answer as `/v1/scaling/{workload_id}`, the id in `?id=`.",
    )
    async def scaling_by_query(
        request: Request,
        workload_id: WorkloadIdQuery,
        snap: CurrentSnapshot,
        _: ReadKey,
        horizon: ScalingHorizon = None,
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
    ) -> Response:
        return scaling_answer(request, snap, workload_id, horizon, quantile, min_replicas)

    @r.get(
        "/keda",
        response_model=KedaMetric,
        responses=error_responses(401, 403, 404, 503),
        summary="One value to scale on (KEDA metrics-api scaler; id as a query parameter)",
        description=KEDA_DESCRIPTION + " Same answer as `/v1/scaling/{workload_id}/keda`, "
        "the id in `?id=`.",
    )
    async def keda_by_query(
        request: Request,
        workload_id: WorkloadIdQuery,
        snap: CurrentSnapshot,
        _: ReadKey,
        window: Window = "1h",
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
    ) -> Response:
        return keda_answer(request, snap, workload_id, window, quantile, min_replicas)

    return r
