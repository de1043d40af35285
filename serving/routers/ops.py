"""Health, readiness, Prometheus metrics, status and forced reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from serving.deps import NoUnknownQuery, ReadKey, WriteKey
from serving.schemas import Health, Ready, ReloadResponse, Status, error_responses
from serving.state import iso_z, jdump

JSON = "application/json"


def ready_doc(request: Request) -> dict[str, Any]:
    snap = request.app.state.holder.snapshot
    loader = request.app.state.loader
    m = snap.model
    ready = snap.ready and (not loader.model_configured or m is not None)
    return {
        "ready": ready,
        "model_name": m.model_name if m else None,
        "model_version": m.model_version if m else None,
        "registry": loader.status.registry,
        "store": loader.status.store,
        "forecast_series": len(snap.series),
        "workloads": len(snap.loads),
    }


def status_doc(request: Request) -> dict[str, Any]:
    snap = request.app.state.holder.snapshot
    st = request.app.state.loader.status
    doc = ready_doc(request)
    ft = None
    if snap.model is not None and snap.model.forecast_time is not None:
        ft = iso_z(snap.model.forecast_time)
    elif snap.series:
        first = next(iter(snap.series.values())).provenance.forecast_time
        ft = iso_z(first) if first is not None else None
    doc.update(
        model=snap.model.as_dict() if snap.model else None,
        loaded_at=iso_z(snap.loaded_at),
        forecast_time=ft,
        last_check=iso_z(st.last_check) if st.last_check else None,
        last_error=st.last_error,
        missing=snap.missing,
        reloads=request.app.state.holder.swaps,
    )
    return doc


def build_router() -> APIRouter:
    r = APIRouter(tags=["operations"], dependencies=[NoUnknownQuery])

    @r.get("/healthz", response_model=Health, summary="Liveness (no key needed)")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @r.get(
        "/readyz",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "Not ready: nothing loaded yet."}},
        summary="Readiness: forecasts (and the champion, when configured) loaded",
    )
    async def readyz(request: Request) -> Response:
        doc = ready_doc(request)
        return Response(
            jdump(doc).encode(), status_code=200 if doc["ready"] else 503, media_type=JSON
        )

    @r.get(
        "/metrics",
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **error_responses(401, 403),
        },
        response_class=Response,
        summary="Prometheus metrics (read scope)",
    )
    async def metrics(request: Request, _: ReadKey) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @r.get(
        "/v1/status",
        response_model=Status,
        responses=error_responses(401, 403),
        summary="What is loaded, from where, and the last reload error",
    )
    async def status(request: Request, _: ReadKey) -> Response:
        return Response(jdump(status_doc(request)).encode(), media_type=JSON)

    @r.post(
        "/v1/reload",
        response_model=ReloadResponse,
        responses=error_responses(401, 403),
        summary="Check the registry and the store now and swap if anything changed (write scope)",
    )
    async def reload(request: Request, _: WriteKey) -> Response:
        outcome = await run_in_threadpool(request.app.state.loader.refresh)
        return Response(
            jdump({"outcome": outcome, "status": status_doc(request)}).encode(), media_type=JSON
        )

    return r
