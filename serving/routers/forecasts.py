"""``/v1/series`` and ``/v1/forecasts``: browse series, read one forecast or a batch.

No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
handlers, and the limits (``Horizon``...) are local to :func:`build_router`.
"""

import functools
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from serving.deps import CurrentSnapshot, NoUnknownQuery, ReadKey, invalid, not_ready
from serving.ids import MAX_ID_LENGTH
from serving.schemas import (
    BatchForecastResponse,
    ForecastResponse,
    SeriesList,
    batch_request_model,
    error_responses,
)
from serving.settings import ServingSettings
from serving.state import STORED_LEVELS, ForecastSeries, Snapshot

log = logging.getLogger(__name__)

JSON = "application/json"
UniqueId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Series id (see /v1/series), percent-encoded; `/` raw or as `%2F`.",
    ),
]
UniqueIdQuery = Annotated[
    str,
    Query(
        alias="id",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Series id (see /v1/series), form-encoded (a plus as `%2B`).",
    ),
]
Level = Annotated[
    list[Annotated[float, Field(gt=0, le=95)]] | None,
    Query(
        max_length=4,
        description="Central interval levels in percent, (0, 95]; repeat for several. "
        "80 and 95 are stored, others are interpolated in normal-score space.",
    ),
]


def _levels(level: list[float] | None) -> tuple[float, ...]:
    if not level:
        return STORED_LEVELS
    return tuple(sorted({float(x) for x in level}))


async def resolve(
    snap: Snapshot, unique_id: str, horizon: int | None
) -> tuple[ForecastSeries, int] | None:
    """The series to answer from and the horizon asked; the model fills what is not stored.

    Ids or horizons the snapshot does not hold are asked of the champion's pyfunc (off the
    event loop; cached in the snapshot). ``None`` when neither knows the id.
    """
    s = snap.series.get(unique_id)
    if s is not None and (horizon is None or horizon <= s.horizon or snap.predictor is None):
        return s, horizon or s.horizon
    if snap.predictor is None:
        return None
    want = horizon or (s.horizon if s is not None else 1)
    key = (unique_id, want)
    computed = snap.computed.get(key)
    if computed is None:
        try:
            computed = await run_in_threadpool(snap.predictor, unique_id, want)
        except Exception as exc:  # an id unknown to the model, or the model failing
            log.info("model could not forecast %r (h=%d): %s", unique_id, want, exc)
            computed = None
        if computed is not None:
            if len(snap.computed) >= 256:
                snap.computed.pop(next(iter(snap.computed)), None)
            snap.computed[key] = computed
    if computed is None:
        return (s, want) if s is not None else None
    return computed, want


def not_found(unique_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"series {unique_id!r} not found")


def build_router(settings: ServingSettings) -> APIRouter:
    """Routes with this server's horizon and batch limits in their schemas."""
    r = APIRouter(prefix="/v1", tags=["forecasts"], dependencies=[NoUnknownQuery])
    max_h = settings.max_horizon
    Horizon = Annotated[
        int | None,
        Query(ge=1, le=max_h, description=f"Steps ahead (default: all precomputed; <= {max_h})."),
    ]
    BatchRequest: Any = batch_request_model(settings.max_batch, max_h)

    @r.get(
        "/series",
        response_model=SeriesList,
        responses=error_responses(401, 403),
        summary="List the series with forecasts",
    )
    async def list_series(
        snap: CurrentSnapshot,
        _: ReadKey,
        hierarchy: Annotated[
            str | None, Query(max_length=64, description="Hierarchy level, e.g. team.")
        ] = None,
        tag: Annotated[
            list[Annotated[str, Field(pattern=r"^[^:]{1,64}:.{0,256}$")]] | None,
            Query(
                max_length=16,
                description="Tag filter KEY:VALUE (e.g. team:nlp); repeat to AND several.",
            ),
        ] = None,
        prefix: Annotated[str | None, Query(max_length=512, description="Id prefix.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        wanted = [t.split(":", 1) for t in tag or []]
        items = [
            body
            for s, body in snap.series_items
            if (hierarchy is None or s.hierarchy == hierarchy)
            and (prefix is None or s.unique_id.startswith(prefix))
            and all(s.tags.get(k) == v for k, v in wanted)
        ]
        page = items[offset : offset + limit]
        body = (
            f'{{"total":{len(items)},"offset":{offset},"limit":{limit},"items":['.encode()
            + b",".join(page)
            + b"]}"
        )
        return Response(body, media_type=JSON)

    async def forecast(
        request: Request,
        unique_id: str,
        snap: Snapshot,
        horizon: int | None,
        level: list[float] | None,
    ) -> Response:
        if not snap.ready and snap.predictor is None:
            raise not_ready()
        levels = _levels(level)
        found = await resolve(snap, unique_id, horizon)
        if found is None:
            raise not_found(unique_id)
        s, want = found
        h = min(want, s.horizon)
        body = snap.cached(
            ("f", s.provenance.source, unique_id, h, want, levels),
            lambda: s.render(h, levels, want),
        )
        if s.provenance.source != "pyfunc":
            snap.remember(request.scope, request.scope.get("route"), body)
        return Response(body, media_type=JSON)

    # ``:path``: an id may hold ``/`` (raw, or ``%2F`` which the server decodes to ``/``).
    # POST /forecasts/batch is a different method, so this route never swallows it.
    @r.get(
        "/forecasts/{unique_id:path}",
        response_model=ForecastResponse,
        responses=error_responses(401, 403, 404, 503),
        summary="Forecast of one series",
        description="The id in the path, percent-encoded (see the addressing scheme above).",
    )
    async def get_forecast(
        request: Request,
        unique_id: UniqueId,
        snap: CurrentSnapshot,
        _: ReadKey,
        horizon: Horizon = None,
        level: Level = None,
    ) -> Response:
        return await forecast(request, unique_id, snap, horizon, level)

    @r.get(
        "/forecasts",
        response_model=ForecastResponse,
        responses=error_responses(401, 403, 404, 503),
        summary="Forecast of one series (id as a query parameter)",
        description="Same answer as `/v1/forecasts/{unique_id}`, the id in `?id=`.",
    )
    async def get_forecast_by_query(
        request: Request,
        unique_id: UniqueIdQuery,
        snap: CurrentSnapshot,
        _: ReadKey,
        horizon: Horizon = None,
        level: Level = None,
    ) -> Response:
        return await forecast(request, unique_id, snap, horizon, level)

    @r.post(
        "/forecasts/batch",
        response_model=BatchForecastResponse,
        responses=error_responses(400, 401, 403, 404, 503),
        summary="Forecasts of several series (read scope)",
    )
    async def batch_forecasts(
        snap: CurrentSnapshot, _: ReadKey, request: Annotated[BatchRequest, Body()]
    ) -> Response:
        if not snap.ready and snap.predictor is None:
            raise not_ready()
        ids: list[str] = list(dict.fromkeys(request.unique_ids))
        if len(ids) > settings.max_batch:  # the schema bounds it too; belt and braces
            raise invalid(["body", "unique_ids"], f"at most {settings.max_batch} series per batch")
        levels = _levels(request.level)
        parts: list[bytes] = []
        missing: list[str] = []
        for uid in ids:
            found = await resolve(snap, uid, request.horizon)
            if found is None:
                missing.append(uid)
                continue
            s, want = found
            h = min(want, s.horizon)
            parts.append(
                snap.cached(
                    ("f", s.provenance.source, uid, h, want, levels),
                    functools.partial(s.render, h, levels, want),
                )
            )
        if missing:
            shown = ", ".join(repr(m) for m in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise HTTPException(status_code=404, detail=f"series not found: {shown}{more}")
        body = f'{{"count":{len(parts)},"forecasts":['.encode() + b",".join(parts) + b"]}"
        return Response(body, media_type=JSON)

    return r
