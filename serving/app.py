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
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from serving.auth import FailedAuthLimiter, KeyRing
from serving.ids import ADDRESSING
from serving.loader import Loader
from serving.metrics import (
    HotPathMiddleware,
    MetricsMiddleware,
    Receive,
    Scope,
    Send,
    ServingMetrics,
)
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


#: Longest string (characters) of a 422 error's ``input`` and ``msg`` echoed to the client.
ECHO_CHARS = 200


def _echo(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of a rejected value for a 422 body.

    Non-finite floats become their names (``"NaN"``), long strings are cut, and large or
    deep containers are summarised, so an error never fails to serialise (a 500) nor
    echoes a huge input back.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value).replace("inf", "Infinity")
    if isinstance(value, str):
        return value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + "...(truncated)"
    if isinstance(value, dict | list | tuple):
        if depth >= 3 or len(value) > 20:
            return f"<{type(value).__name__} of {len(value)} items>"
        if isinstance(value, dict):
            return {str(k)[:ECHO_CHARS]: _echo(v, depth + 1) for k, v in value.items()}
        return [_echo(v, depth + 1) for v in value]
    return _echo(str(value), depth)


def _error_detail(err: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loc": [x if isinstance(x, int) else _echo(str(x)) for x in err.get("loc", ())],
        "msg": _echo(str(err.get("msg", ""))),
        "type": str(err.get("type", "value_error")),
    }
    if "input" in err:
        out["input"] = _echo(err["input"])
    if isinstance(err.get("ctx"), dict):
        out["ctx"] = _echo(err["ctx"])
    return out


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    f = float(text)
    if not math.isfinite(f):  # 1e999
        raise _NonFinite(text[:ECHO_CHARS])
    return f


class BodyGuardMiddleware:
    """Bound request bodies (413 beyond ``max_bytes``) and refuse JSON bodies holding
    ``NaN``, ``Infinity`` or numbers that overflow to infinity (422), before routing.

    Python's JSON parser accepts those literals, but they are not JSON and no route can use
    them. The body is read here in full (it is bounded) and replayed to the app.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and b"json" in headers.get(b"content-type", b"").lower():
            try:
                json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
            except _NonFinite as exc:
                detail = [
                    {
                        "loc": ["body"],
                        "msg": "numbers must be finite: NaN and Infinity are not valid JSON",
                        "type": "value_error",
                        "input": str(exc),
                    }
                ]
                await JSONResponse({"detail": detail}, status_code=422)(scope, receive, send)
                return
            except ValueError:
                pass  # not JSON (or not UTF-8): FastAPI answers it

        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


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
    app.state.auth_limiter = FailedAuthLimiter(
        settings.auth_max_failures, settings.auth_failure_window_s
    )
    app.state.holder = holder
    app.state.loader = loader
    app.state.metrics = metrics
    app.include_router(ops.build_router())
    app.include_router(forecasts.build_router(settings))
    app.include_router(scaling.build_router(settings))
    app.include_router(insights.build_router())
    app.include_router(scenarios.build_router(settings, scenario_baseline))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler fails (500) on a NaN input and echoes inputs whole.
        errors = [_error_detail(e) for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Log the failure with its route, never the headers (they carry the API key).
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # Added last = outermost: metrics time the hot path too.
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(HotPathMiddleware, holder=holder, keyring=keyring)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def header_timeout_protocol(timeout_s: float) -> type:
    """uvicorn's h11 protocol with a deadline on reading each request head.

    uvicorn's ``timeout_keep_alive`` only closes connections idle *between* requests, and
    its timer stops at the first byte received, so a client trickling a request head
    (slowloris) could hold a connection for ever. This closes a connection whose request
    head (line and headers) is not complete ``timeout_s`` seconds after the connection
    opened or after the previous response finished.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _armed_cycle: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._head_timer = self.loop.call_later(timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.cycle is self._armed_cycle and not self.transport.is_closing():
                self.transport.close()  # no complete request head in time

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._armed_cycle:
                self._disarm()  # a new request head was parsed

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.cycle is not None:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutH11Protocol


def uvicorn_config(
    app: Any,
    settings: ServingSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> Any:
    """The uvicorn configuration of :func:`serve`, with the connection limits:

    * request heads must arrive within ``timeout_keep_alive_s`` (at least 5 s; see
      :func:`header_timeout_protocol`) and idle keep-alive connections close after
      ``timeout_keep_alive_s``;
    * a request head larger than ``max_header_bytes`` is refused (h11, 400);
    * beyond ``limit_concurrency`` connections and tasks at once, uvicorn answers 503;
    * bodies beyond ``max_request_bytes`` get 413 (:class:`BodyGuardMiddleware`).
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
        http=header_timeout_protocol(max(5.0, settings.timeout_keep_alive_s)),
        timeout_keep_alive=max(1, math.ceil(settings.timeout_keep_alive_s)),
        limit_concurrency=settings.limit_concurrency,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


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
    thousands of requests per second. Keys never reach any log either way. Connection
    limits: see :func:`uvicorn_config`.
    """
    import uvicorn

    settings = settings if settings is not None else ServingSettings()
    app = create_app(settings, scenario_baseline=scenario_baseline)
    config = uvicorn_config(
        app, settings, host=host, port=port, log_level=log_level, access_log=access_log
    )
    uvicorn.Server(config).run()
