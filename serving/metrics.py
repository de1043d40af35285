"""Prometheus metrics of the serving API, in the app's own ``CollectorRegistry``.

* ``forecaster_http_request_duration_seconds`` (histogram; method, route template, status)
* ``forecaster_model_info`` (1 for the served model; name, version, run_id, alias, source)
* ``forecaster_forecast_age_seconds`` (seconds since the served forecasts' forecast time)
* ``forecaster_snapshot_loaded_timestamp_seconds``, ``forecaster_served_series`` (by kind)
* ``forecaster_reloads_total`` (by outcome) and ``forecaster_reload_duration_seconds``
* ``forecaster_registry_up`` (1 when the last registry check answered)

A registry per app (not the process-global default) keeps two apps in one process, as
in the tests, from clashing over metric names.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from serving.loader import Loader
    from serving.state import StateHolder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class ServingMetrics:
    """The metrics of one app; ``render()`` gives the text exposition."""

    def __init__(self, holder: StateHolder) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.holder = holder
        r = self.registry
        self.latency = Histogram(
            "forecaster_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "forecaster_model_info",
            "1 for the model version being served.",
            ["name", "version", "run_id", "alias", "source"],
            registry=r,
        )
        self.forecast_age = Gauge(
            "forecaster_forecast_age_seconds",
            "Seconds since the forecast time of the served forecasts (NaN when unknown).",
            registry=r,
        )
        self.forecast_age.set_function(self._age)
        self.loaded_at = Gauge(
            "forecaster_snapshot_loaded_timestamp_seconds",
            "Unix time the served snapshot was loaded.",
            registry=r,
        )
        self.loaded_at.set_function(lambda: self.holder.snapshot.loaded_at.timestamp())
        self.series = Gauge(
            "forecaster_served_series", "Series served from memory.", ["kind"], registry=r
        )
        self.series.labels("forecast").set_function(lambda: len(self.holder.snapshot.series))
        self.series.labels("load").set_function(lambda: len(self.holder.snapshot.loads))
        self.reloads = Counter(
            "forecaster_reloads_total", "Reload checks by outcome.", ["outcome"], registry=r
        )
        self.reload_seconds = Histogram(
            "forecaster_reload_duration_seconds",
            "Time of one reload check (including loading when something changed).",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.registry_up = Gauge(
            "forecaster_registry_up", "1 when the last model registry check answered.", registry=r
        )
        self._info_labels: tuple[str, ...] | None = None

    def _age(self) -> float:
        age = self.holder.snapshot.forecast_age_s()
        return float("nan") if age is None else age

    def reload(self, outcome: str, seconds: float, loader: Loader) -> None:
        """Record one reload check and publish the served model's labels."""
        self.reloads.labels(outcome).inc()
        self.reload_seconds.observe(seconds)
        up = {"ok": 1.0, "unreachable": 0.0}.get(loader.status.registry, float("nan"))
        self.registry_up.set(up)  # NaN: no registry configured
        m = self.holder.snapshot.model
        labels = (
            (
                m.model_name or "",
                m.model_version or "",
                m.run_id or "",
                m.alias or "",
                m.source,
            )
            if m is not None
            else None
        )
        if labels != self._info_labels:
            self.model_info.clear()
            if labels is not None:
                self.model_info.labels(*labels).set(1.0)
            self._info_labels = labels

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request by its route template.

    Route templates (``/v1/forecasts/{unique_id}``) keep the label set bounded whatever
    ids clients send; unmatched paths share one label.
    """

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # path_format: the template without converters (``{unique_id}``, not ``:path``).
            path = getattr(route, "path_format", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - t0
            )


class HotPathMiddleware:
    """Answer a repeated GET from the snapshot's memory of it, before FastAPI runs.

    Scaling controllers poll the same few URLs every few seconds. The forecast and scaling
    routes remember each 200 answer under its exact path and query string in the current
    snapshot (:meth:`~serving.state.Snapshot.remember`); a later request for the same URL
    with a key holding the ``read`` scope gets those bytes back without routing, parameter
    validation or dependency resolution (several times cheaper per request). Anything
    else, including every request whose key is missing or wrong, goes through FastAPI,
    which answers 401/403/404/422 as usual. A swap publishes a new snapshot with an empty
    memory, so a remembered answer never outlives the version that produced it.
    """

    def __init__(self, app: ASGIApp, holder: StateHolder, keyring: Any) -> None:
        self.app = app
        self.holder = holder
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            hit = self.holder.snapshot.hot.get((scope["path"], scope["query_string"]))
            if hit is not None and self._may_read(scope):
                route, body = hit
                scope["route"] = route  # the metrics label: the route template
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _may_read(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return False
                principal = self.keyring.lookup(token)
                return principal is not None and "read" in principal.scopes
        return False
