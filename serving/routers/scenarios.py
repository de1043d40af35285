"""``POST /v1/scenarios``: a capacity planner's what-if, next to its baseline.

The body is a scenario document (:class:`optimizer.scenarios.ScenarioSpec`, the same keys
as the YAML files ``forecaster scenario`` reads). The baseline (monthly forecast per team
and today's fleet) is built from the store by a provider the application hands to
:func:`serving.app.create_app` (``forecaster.scenarios_io.baseline_from_store`` in
``forecaster serve``: serving sits below the application shell and cannot import it),
once per loaded snapshot, and reused by every scenario until the next reload.

Scenarios pack fleets (CPU-heavy), so they need the ``write`` scope and run one at a time
in a worker thread; forecasts keep answering from the event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from features.exceptions import ConfigError, ForecasterError
from optimizer.scenarios import ScenarioSpec
from serving.deps import NoUnknownQuery, WriteKey, invalid
from serving.schemas import ScenarioResponse, error_responses
from serving.settings import ServingSettings
from serving.state import iso_z, jdump

log = logging.getLogger(__name__)

#: Builds the scenario baseline (:class:`optimizer.scenarios.BaselineInputs`) from a store.
BaselineProvider = Callable[[Path], Any]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _monthly(frame: pd.DataFrame, team: bool = False) -> list[dict[str, Any]]:
    out = []
    for r in frame.to_dict("records"):
        row: dict[str, Any] = {
            "month": iso_z(pd.Timestamp(r["month"]).to_pydatetime()),
            **{q: _num(r.get(q)) for q in ("cost", "lo_80", "hi_80", "lo_95", "hi_95")},
        }
        if team:
            row["team"] = str(r["team"])
        out.append(row)
    return out


def _capacity(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "instance_type": str(r["instance_type"]),
            "purchase_option": str(r["purchase_option"]),
            "count": int(r["count"]),
            "gpus": int(r["gpus"]),
            "usd_per_month": _num(r["usd_per_month"]),
        }
        for r in frame.to_dict("records")
    ]


def _clean(obj: Any) -> Any:
    """JSON-safe summary values (numpy scalars, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


class ScenarioRunner:
    """Baseline per snapshot (built once) and one scenario at a time."""

    def __init__(self, settings: ServingSettings, provider: BaselineProvider | None) -> None:
        self.settings = settings
        self.provider = provider
        self._lock = threading.Lock()
        self._baseline: tuple[Any, Any, Any] | None = None  # (version_key, inputs, result)

    def _baseline_for(self, version_key: Any) -> tuple[Any, Any]:
        from optimizer.fleet import FleetConfig
        from optimizer.scenarios import baseline_result

        if self._baseline is None or self._baseline[0] != version_key:
            assert self.provider is not None
            inputs = self.provider(self.settings.store_path)
            result = baseline_result(
                inputs, config=FleetConfig(time_limit=self.settings.scenario_time_limit_s)
            )
            self._baseline = (version_key, inputs, result)
        return self._baseline[1], self._baseline[2]

    def run(self, spec: ScenarioSpec, version_key: Any) -> bytes:
        from optimizer.fleet import FleetConfig
        from optimizer.scenarios import run_scenario

        with self._lock:
            inputs, base = self._baseline_for(version_key)
            res = run_scenario(
                spec, inputs, config=FleetConfig(time_limit=self.settings.scenario_time_limit_s)
            )
        doc = {
            "name": res.name,
            "summary": _clean(res.summary),
            "monthly": _monthly(res.monthly),
            "by_team": _monthly(res.by_team, team=True),
            "capacity": _capacity(res.capacity),
            "baseline_summary": _clean(base.summary),
            "baseline_monthly": _monthly(base.monthly),
            "baseline_capacity": _capacity(base.capacity),
            "notes": [str(n) for n in res.notes],
        }
        return jdump(doc).encode()


def build_router(settings: ServingSettings, provider: BaselineProvider | None) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["scenarios"], dependencies=[NoUnknownQuery])
    runner = ScenarioRunner(settings, provider)

    @r.post(
        "/scenarios",
        response_model=ScenarioResponse,
        responses=error_responses(400, 401, 403, 503),
        summary="Run a what-if scenario (write scope)",
    )
    async def run(request: Request, spec: ScenarioSpec, _: WriteKey) -> Response:
        if provider is None:
            raise HTTPException(status_code=503, detail="scenarios are not enabled on this server")
        key = request.app.state.holder.snapshot.version_key
        try:
            body = await asyncio.wait_for(
                run_in_threadpool(runner.run, spec, key),
                timeout=max(30.0, 12 * settings.scenario_time_limit_s),
            )
        except ConfigError as exc:
            # A team or GPU model the baseline does not know: the body is at fault.
            raise invalid(["body"], str(exc)) from None
        except TimeoutError:
            raise HTTPException(
                status_code=503, detail="the scenario did not finish in time; try again"
            ) from None
        except ForecasterError as exc:
            log.warning("scenario baseline unavailable: %s", exc)
            raise HTTPException(
                status_code=503, detail="no baseline for scenarios: run the pipeline first"
            ) from None
        return Response(body, media_type="application/json")

    return r
