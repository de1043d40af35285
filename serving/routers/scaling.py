"""``/v1/scaling``: predicted load and capacity per interval for scaling controllers.

The contract follows AWS predictive scaling's forecast (``GetPredictiveScalingForecast``):
a load forecast and a capacity forecast on the same timestamps, the capacity never below
the current minimum. Load at quantile ``q`` is interpolated between the stored quantile
points; capacity is ``ceil(load / capacity_per_replica)`` within ``[min, max]``.
"""

import math
import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from serving.deps import CurrentSnapshot, NoUnknownQuery, ReadKey, invalid, not_ready
from serving.schemas import KedaMetric, ScalingResponse, error_responses
from serving.settings import ServingSettings
from serving.state import MAX_QUANTILE, MIN_QUANTILE, LoadSeries, Snapshot, jdump, num_token

JSON = "application/json"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = r"^[0-9]{1,7}(s|m|h|d|w)?$"
_DURATION = re.compile(DURATION)

WorkloadId = Annotated[str, Path(min_length=1, max_length=512, description="Workload id.")]
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

    @r.get(
        "/scaling/{workload_id}",
        response_model=ScalingResponse,
        responses=error_responses(401, 403, 404, 503),
        summary="Load and capacity forecast of a workload (predictive scaling)",
    )
    async def scaling(
        request: Request,
        workload_id: WorkloadId,
        snap: CurrentSnapshot,
        _: ReadKey,
        horizon: Annotated[
            str | None,
            Query(
                pattern=DURATION,
                description="How far ahead: a duration (48h, 2d, 90m) or a count of "
                "intervals; default all precomputed.",
            ),
        ] = None,
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
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

    @r.get(
        "/scaling/{workload_id}/keda",
        response_model=KedaMetric,
        responses=error_responses(401, 403, 404, 503),
        summary="One value to scale on (KEDA metrics-api scaler)",
        description="Peak load and replicas over the next `window`. Point a KEDA "
        "`metrics-api` trigger here with `valueLocation: replicas` and `targetValue: 1`, "
        "or `valueLocation: load` and `targetValue` = the load one replica serves.",
    )
    async def keda(
        request: Request,
        workload_id: WorkloadId,
        snap: CurrentSnapshot,
        _: ReadKey,
        window: Annotated[
            str, Query(pattern=DURATION, description="Look-ahead window (duration or count).")
        ] = "1h",
        quantile: Quantile = 0.9,
        min_replicas: MinReplicas = None,
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

    return r
