"""The serving app: ``create_app(settings)`` and ``serve(settings, host, port)``.

Startup loads the champion (when ``model_name`` is set) and the store's results before the
first request is accepted; a background task then checks both every
``reload_interval_s`` seconds and swaps the in-memory snapshot when either changed (see
:mod:`serving.loader`). Every answer is rendered from memory, so a slow or unreachable
registry or a locked store never blocks a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from serving.auth import KeyRing
from serving.ids import ADDRESSING
from serving.loader import Loader
from serving.metrics import HotPathMiddleware, MetricsMiddleware, ServingMetrics
from serving.routers.scenarios import BaselineProvider
from serving.settings import ServingSettings
from serving.state import StateHolder

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
DESCRIPTION = """Forecasts, predictive scaling, anomalies, recommendations and what-if
scenarios of the forecaster FinOps engine.

Every route except `/healthz` and `/readyz` needs an API key as a bearer token
(`Authorization: Bearer <key>`): `read` for GET routes and the forecast batch, `write`
for reloads and scenarios."""
DESCRIPTION += "\n" + ADDRESSING  # how ids are addressed (serving.ids)


async def _poll(loader: Loader, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await run_in_threadpool(loader.refresh)
        except Exception:  # the loop must outlive any one failure
            log.exception("reload check failed")


def create_app(
    settings: ServingSettings | None = None,
    *,
    registry: Any | None = None,
    scenario_baseline: BaselineProvider | None = None,
) -> FastAPI:
    """Build the FastAPI app.

    Parameters
    ----------
    settings : ServingSettings, optional
        Default: read from the environment (``FORECASTER_*``).
    registry : module-like, optional
        Provides ``load_model`` and ``alias_version``; default :mod:`models.registry`.
    scenario_baseline : callable, optional
        ``store_path -> BaselineInputs`` for ``POST /v1/scenarios`` (the application
        passes ``forecaster.scenarios_io.baseline_from_store``); without it the route
        answers 503.

    Raises
    ------
    ConfigError
        When the API keys (environment or file) are malformed.
    """
    from serving.routers import forecasts, insights, ops, scaling, scenarios

    settings = settings if settings is not None else ServingSettings()
    keyring = KeyRing.from_sources(
        settings.api_keys.get_secret_value() if settings.api_keys is not None else None,
        settings.api_keys_file,
    )
    if not len(keyring):
        log.warning("no API keys configured: every route but /healthz and /readyz answers 401")
    holder = StateHolder()
    metrics = ServingMetrics(holder)
    loader = Loader(settings, holder, metrics, registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(loader.refresh)
        task = asyncio.create_task(_poll(loader, settings.reload_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="forecaster serving API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.public_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.public_docs else None,
    )
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.holder = holder
    app.state.loader = loader
    app.state.metrics = metrics
    app.include_router(ops.build_router())
    app.include_router(forecasts.build_router(settings))
    app.include_router(scaling.build_router(settings))
    app.include_router(insights.build_router())
    app.include_router(scenarios.build_router(settings, scenario_baseline))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Log the failure with its route, never the headers (they carry the API key).
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # Added last = outermost: metrics time the hot path too.
    app.add_middleware(HotPathMiddleware, holder=holder, keyring=keyring)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def serve(
    settings: ServingSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
    scenario_baseline: BaselineProvider | None = None,
) -> None:
    """Run the API with uvicorn until interrupted (one process; blocks).

    The access log is off by default: it costs a fair share of the per-request time at
    thousands of requests per second. Keys never reach any log either way.
    """
    import uvicorn

    app = create_app(settings, scenario_baseline=scenario_baseline)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
