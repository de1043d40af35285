"""The main job: from an ingested store to forecasts, anomalies, savings, scenarios and a report.

``forecaster demo`` runs it after generating and ingesting the demo fleet;
``forecaster run --config pipeline.yaml`` runs it on the user's own store. Stages run in
order, each timed and shown as one progress line; a stage that fails is reported (with
its error) and the later stages that do not need it still run, so one bad input never
loses the rest of the run.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.exceptions import ConfigError, ForecasterError
from features.store import Store
from forecaster import stages

StageName = Literal[
    "governance",
    "forecast",
    "track",
    "load_forecast",
    "detect",
    "optimize",
    "scenarios",
    "report",
]
#: The stages in the order they run.
ALL_STAGES: tuple[StageName, ...] = get_args(StageName)

#: The example scenarios shipped with the project (used when a config names none).
EXAMPLE_SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def example_scenarios() -> list[Path]:
    return sorted(EXAMPLE_SCENARIOS.glob("*.yaml")) if EXAMPLE_SCENARIOS.is_dir() else []


class PipelineConfig(BaseModel):
    """What the main job does (``forecaster run --config pipeline.yaml``).

    Every key is optional; the defaults are the demo's settings.
    """

    model_config = ConfigDict(extra="forbid")

    store: Path | None = Field(
        default=None, description="DuckDB store (default: FORECASTER_STORE)."
    )
    stages: list[StageName] = Field(default_factory=lambda: list(ALL_STAGES))
    levels: list[str] = Field(default_factory=lambda: ["team", "project", "service"])
    horizon_days: int = Field(default=90, ge=1, le=730)
    model: str = "auto"
    reconcile: str = "auto"
    backtest_windows: int = Field(default=3, ge=1, le=24)
    load_horizon_hours: int = Field(default=48, ge=1, le=24 * 14)
    detect_window_days: int = Field(default=90, ge=1, le=3650)
    labels: Path | None = Field(
        default=None, description="Labelled anomalies CSV (demo: injected)."
    )
    rightsizing_evidence_days: int = Field(default=28, ge=1, le=365)
    scenarios: list[Path] | None = Field(
        default=None, description="Scenario YAML files (default: the shipped examples)."
    )
    scenario_months: int = Field(default=6, ge=1, le=36)
    report: Path | None = Field(
        default=None, description="Report HTML (default: next to the store)."
    )
    tables_dir: Path | None = Field(
        default=None, description="Also write report.md and CSV tables."
    )
    model_name: str | None = Field(
        default=None, description="Registered model name (default: cost-daily-<levels>)."
    )
    tracking_uri: str | None = Field(
        default=None, description="MLflow URI (default: MLFLOW_TRACKING_URI or the embedded one)."
    )
    promotion_margin: float = Field(default=0.0, ge=0.0, description="Guardrail margin (WAPE).")


def load_config(path: Path) -> PipelineConfig:
    """Read a pipeline YAML; errors name the key and what is allowed."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read pipeline config: {exc}") from exc
    if not isinstance(doc, dict):
        kind = type(doc).__name__
        raise ConfigError(f"{path}: a pipeline config is a mapping of keys, got {kind}")
    try:
        return PipelineConfig.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = f"unknown key; allowed: {', '.join(PipelineConfig.model_fields)}"
            lines.append(f"{path}: {key}: {msg}")
        raise ConfigError("\n".join(lines)) from None


@dataclass
class StageResult:
    name: str
    seconds: float
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class PipelineRun:
    run_id: str
    store: str
    stages: list[StageResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.store,
            "ok": self.ok,
            "stages": {
                s.name: {"ok": s.ok, "seconds": round(s.seconds, 2), **s.summary}
                | ({"error": s.error} if s.error else {})
                for s in self.stages
            },
        }


#: Callback ``(stage name, "start" | "done" | "failed", seconds)`` for progress display.
OnStage = Callable[[str, str, float], None]


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_pipeline(
    store_path: Path,
    config: PipelineConfig,
    *,
    required_tags: list[str],
    shared_values: list[str],
    run_id: str | None = None,
    on_stage: OnStage | None = None,
    data_dir: Path | None = None,
) -> PipelineRun:
    """Run the configured stages on the store; return what each did."""
    run = PipelineRun(run_id or new_run_id(), str(store_path))
    notify = on_stage or (lambda *_: None)
    fitted: dict[str, Any] = {}

    def forecast_stage(st: Store) -> dict[str, Any]:
        summary, fitted["forecast"] = stages.forecast(
            st,
            run_id=run.run_id,
            levels=config.levels,
            horizon_days=config.horizon_days,
            model=config.model,
            reconcile=config.reconcile,
            n_windows=config.backtest_windows,
        )
        return summary

    def track_stage(st: Store) -> dict[str, Any]:
        if "forecast" not in fitted:
            return {"skipped": "no forecast to track (the forecast stage did not run)"}
        return stages.track(
            st,
            run_id=run.run_id,
            fitted=fitted["forecast"],
            stage_summaries={s.name: s.summary for s in run.stages if s.ok},
            model_name=config.model_name or f"cost-daily-{'-'.join(config.levels)}",
            margin=config.promotion_margin,
            tracking_uri=config.tracking_uri,
            data_dir=data_dir,
        )

    with Store(store_path) as st:
        plan: dict[str, Callable[[], dict[str, Any]]] = {
            "governance": lambda: stages.governance(
                st, run_id=run.run_id, required_tags=required_tags, shared_values=shared_values
            ),
            "forecast": lambda: forecast_stage(st),
            "track": lambda: track_stage(st),
            "load_forecast": lambda: stages.load_forecast(
                st, run_id=run.run_id, horizon_hours=config.load_horizon_hours
            ),
            "detect": lambda: stages.detect(
                st,
                run_id=run.run_id,
                window_days=config.detect_window_days,
                labels_path=config.labels,
            ),
            "optimize": lambda: stages.optimize(
                st, run_id=run.run_id, evidence_days=config.rightsizing_evidence_days
            ),
            "scenarios": lambda: stages.scenarios(
                st,
                run_id=run.run_id,
                paths=config.scenarios if config.scenarios is not None else example_scenarios(),
                horizon_months=config.scenario_months,
            ),
            "report": lambda: stages.report(
                st,
                path=config.report or Path(store_path).with_name("report.html"),
                required_tags=required_tags,
                shared_values=shared_values,
                tables_dir=config.tables_dir,
            ),
        }
        for name in ALL_STAGES:
            if name not in config.stages or name not in plan:
                continue
            notify(name, "start", 0.0)
            t0 = time.perf_counter()
            try:
                summary = plan[name]()
                res = StageResult(name, time.perf_counter() - t0, True, summary)
            except (ForecasterError, ValueError, KeyError) as exc:
                res = StageResult(name, time.perf_counter() - t0, False, error=str(exc))
            except Exception as exc:
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                res = StageResult(name, time.perf_counter() - t0, False, error=tb)
            run.stages.append(res)
            notify(name, "done" if res.ok else "failed", res.seconds)
    return run
