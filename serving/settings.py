"""Serving settings: one fail-fast object read from the environment (``FORECASTER_*``).

Serving sits below the application shell, so it keeps its own settings rather than
importing :mod:`forecaster.config`; the store fields use the same variable names
(``FORECASTER_DATA_DIR``, ``FORECASTER_STORE``) so one environment configures both.

>>> ServingSettings(api_keys="k1,k2:write").store_path.name
'forecaster.duckdb'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Settings of the serving API.

    Every field can be set from the environment with the ``FORECASTER_`` prefix, e.g.
    ``FORECASTER_API_KEYS='s3cret-reader,s3cret-admin:write'`` or
    ``FORECASTER_MODEL_NAME=cost-forecaster``.

    Attributes
    ----------
    api_keys : SecretStr, optional
        Comma-separated API keys. Each entry is ``KEY`` (read scope) or ``KEY:SCOPES``
        with scopes joined by ``+`` (``read``, ``write``; ``write`` implies ``read``).
        Keys are hashed (SHA-256) as soon as they are parsed and never logged.
    api_keys_file : Path, optional
        A keys file: one ``NAME SCOPES sha256:HEX`` line per key (see
        :func:`serving.auth.hash_key`); ``#`` starts a comment.
    data_dir, store : Path
        The DuckDB store holding the pipeline's results (``store`` wins when set).
    model_name : str, optional
        Registered MLflow model whose ``model_alias`` version is served; ``None`` serves
        the store's precomputed results only.
    model_alias : str
        Registry alias to follow (``champion``).
    tracking_uri : str, optional
        MLflow tracking/registry URI (default: MLflow's own resolution).
    reload_interval_s : float
        Seconds between checks of the registry alias and the store for a new version.
    max_horizon : int
        Largest horizon (in steps of the series' frequency) a request may ask for.
    max_batch : int
        Largest number of series in one batch request.
    max_request_bytes : int
        Largest request body; a larger one is answered 413 before it is parsed.
    auth_max_failures, auth_failure_window_s : int, float
        A client address with this many failed authentications within the window gets
        429 with ``Retry-After`` instead of 401 until the oldest failure expires.
    timeout_keep_alive_s, limit_concurrency, max_header_bytes
        uvicorn limits (see :func:`serving.app.serve`).
    """

    model_config = SettingsConfigDict(env_prefix="FORECASTER_", extra="ignore")

    api_keys: Annotated[SecretStr | None, NoDecode] = Field(
        default=None, description="Comma-separated API keys (KEY or KEY:read+write)."
    )
    api_keys_file: Path | None = Field(default=None, description="File of hashed API keys.")
    data_dir: Path = Field(default=Path(".forecaster"), description="Where the store lives.")
    store: Path | None = Field(default=None, description="DuckDB store file.")
    model_name: str | None = Field(default=None, description="Registered MLflow model.")
    model_alias: str = Field(default="champion", description="Registry alias to serve.")
    tracking_uri: str | None = Field(
        default=None,
        # One variable for the whole app: MLflow's own wins, then the documented setting.
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "FORECASTER_MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI (MLFLOW_TRACKING_URI, else "
        "FORECASTER_MLFLOW_TRACKING_URI).",
    )
    reload_interval_s: float = Field(default=30.0, gt=0, description="Reload poll period.")
    max_horizon: int = Field(default=720, ge=1, le=100_000, description="Max steps per request.")
    max_batch: int = Field(default=100, ge=1, le=10_000, description="Max series per batch.")
    cache_entries: int = Field(
        default=4096, ge=0, description="Rendered answers kept per loaded version."
    )
    public_docs: bool = Field(
        default=True, description="Serve /openapi.json and /docs without a key."
    )
    scenario_time_limit_s: float = Field(
        default=5.0, gt=0, le=120, description="Packing time limit of one what-if."
    )

    max_request_bytes: int = Field(
        default=1 << 20, ge=1024, le=1 << 30, description="Largest request body (else 413)."
    )
    auth_max_failures: int = Field(
        default=10,
        ge=0,
        description="Failed authentications per client address within auth_failure_window_s "
        "before it gets 429 (0: no limit).",
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, le=86_400, description="Window of auth_max_failures."
    )
    timeout_keep_alive_s: float = Field(
        default=5.0, gt=0, le=300, description="uvicorn: close idle keep-alive connections."
    )
    limit_concurrency: int | None = Field(
        default=1000, ge=1, description="uvicorn: connections+tasks at once before 503."
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1 << 20,
        description="uvicorn (h11): largest incomplete request head (headers) buffered.",
    )

    @field_validator("model_name", "tracking_uri", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def store_path(self) -> Path:
        """The store file: ``store`` when set, else ``data_dir/forecaster.duckdb`` (or the
        store recorded by ``forecaster demo``, see :func:`features.store.default_store_path`)."""
        from features.store import default_store_path

        return self.store if self.store is not None else default_store_path(self.data_dir)
