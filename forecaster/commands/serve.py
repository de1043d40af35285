"""``forecaster serve``: the HTTP API (uvicorn) for scaling controllers, analysts, planners.

Settings come from the environment (``FORECASTER_*``, see :mod:`serving.settings`); the
options here override them. :func:`run_server` is the entry the demo (``forecaster demo
--serve``) calls: it wires the scenario baseline (built from the store by
:func:`forecaster.scenarios_io.baseline_from_store`) that serving cannot import itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forecaster.commands._options import StoreOpt
from forecaster.console import fail

if TYPE_CHECKING:
    from serving.settings import ServingSettings


def store_baseline(store_path: Path) -> Any:
    """The scenario baseline of a store (opened read-only for the time of the read)."""
    from features.store import Store
    from forecaster.scenarios_io import baseline_from_store

    with Store(store_path, read_only=True) as st:
        return baseline_from_store(st)


def run_server(
    settings: ServingSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve the API until interrupted (blocks). ``settings`` default: the environment."""
    from serving.app import serve as serve_app

    serve_app(
        settings,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        scenario_baseline=store_baseline,
    )


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    store: StoreOpt = None,
    model_name: Annotated[
        str | None,
        typer.Option("--model", help="Registered MLflow model to serve (its champion)."),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking/registry URI.")
    ] = None,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            "--reload-interval", min=0.1, help="Seconds between checks for a new champion."
        ),
    ] = None,
    api_keys_file: Annotated[
        Path | None,
        typer.Option("--api-keys-file", help="File of hashed API keys (NAME SCOPES sha256:HEX)."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
) -> None:
    """Serve forecasts, scaling, anomalies, recommendations and scenarios over HTTP.

    API keys: FORECASTER_API_KEYS='key1,key2:write' (read scope unless ':write') and/or
    --api-keys-file. Every route except /healthz and /readyz needs one.
    """
    from pydantic import ValidationError

    from features.exceptions import ConfigError
    from serving.settings import ServingSettings

    overrides: dict[str, Any] = {
        "store": store,
        "model_name": model_name,
        "tracking_uri": tracking_uri,
        "reload_interval_s": reload_interval,
        "api_keys_file": api_keys_file,
    }
    try:
        settings = ServingSettings(**{k: v for k, v in overrides.items() if v is not None})
        run_server(settings, host=host, port=port, log_level=log_level, access_log=access_log)
    except (ConfigError, ValidationError) as exc:
        fail(str(exc))
