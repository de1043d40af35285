"""Settings: one fail-fast object read from the environment (``FORECASTER_*``).

>>> Settings().store_path.name
'forecaster.duckdb'
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.store import default_store_path
from features.tags import DEFAULT_REQUIRED_TAGS, required_dimensions


class Settings(BaseSettings):
    """Application settings.

    Every field can be set from the environment with the ``FORECASTER_`` prefix,
    e.g. ``FORECASTER_DATA_DIR=/var/lib/forecaster`` or
    ``FORECASTER_REQUIRED_TAGS='["Team","Owner"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="FORECASTER_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".forecaster"), description="Where the store and runs live."
    )
    store: Path | None = Field(
        default=None,
        description=(
            "DuckDB store file; default data_dir/forecaster.duckdb, or the store recorded "
            "in data_dir/current_store (by `forecaster demo`) while that file is absent."
        ),
    )
    required_tags: list[str] = Field(default_factory=lambda: list(DEFAULT_REQUIRED_TAGS))
    shared_tag_values: list[str] = Field(
        default_factory=lambda: ["shared", "platform-shared", "common"]
    )
    currency: str = "USD"
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description=(
            "MLflow tracking/registry URI; MLFLOW_TRACKING_URI wins when set; default: an "
            "embedded SQLite backend under data_dir/mlflow (see models.tracking)."
        ),
    )

    @field_validator("required_tags")
    @classmethod
    def _known_tags(cls, v: list[str]) -> list[str]:
        required_dimensions(v)  # raises ConfigError naming the bad tag
        return v

    @property
    def store_path(self) -> Path:
        """``store`` when set, else :func:`features.store.default_store_path`."""
        return self.store if self.store is not None else default_store_path(self.data_dir)


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides applied."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]
