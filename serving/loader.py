"""Build serving snapshots from the store and the MLflow registry; reload when they change.

:class:`Loader` owns the one code path that loads: at start and on every poll it asks the
registry which version the alias points at (:func:`models.registry.alias_version`, cheap)
and the store which run wrote each result, and only when one of them moved does it load
the new champion and/or re-read the store, build a complete :class:`~serving.state.Snapshot`
off the event loop and publish it with one swap. A failure anywhere (registry unreachable,
store locked by a writer, a malformed frame) leaves the last good snapshot serving; the
failure is logged, counted in the metrics and shown by ``/readyz``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError, StoreError
from serving.ids import forecast_href, keda_href, scaling_href
from serving.state import (
    QUANTILE_COLUMNS,
    ForecastSeries,
    LoadSeries,
    Provenance,
    Snapshot,
    StateHolder,
    iso_z,
    jdump,
    num_tokens,
)

if TYPE_CHECKING:
    from serving.metrics import ServingMetrics
    from serving.settings import ServingSettings

log = logging.getLogger(__name__)

#: Results the API serves, by store name.
RESULTS = ("forecast", "load_forecast", "anomalies", "rightsizing", "placement", "savings")

# Column kinds of the browse resources (docs/results.md); every listed column is served,
# missing ones as null, so the JSON always matches the published schema.
ANOMALY_FIELDS: dict[str, str] = {
    "id": "str",
    "rule": "str",
    "title": "str",
    "severity": "str",
    "team": "str",
    "service": "str",
    "resource": "str",
    "period_start": "time",
    "period_end": "time",
    "detected_at": "time",
    "expected": "float",
    "actual": "float",
    "impact": "float",
    "score": "float",
    "root_cause": "str",
    "labelled": "str",
}
RIGHTSIZING_FIELDS: dict[str, str] = {
    "workload_id": "str",
    "kind": "str",
    "instance_type": "str",
    "evidence_start": "time",
    "evidence_end": "time",
    "intervals": "int",
    "replicas_mean": "float",
    "cpu_request": "float",
    "cpu_recommended": "float",
    "cpu_risk": "float",
    "memory_request_gib": "float",
    "memory_recommended_gib": "float",
    "memory_risk": "float",
    "gpu_request": "float",
    "gpu_recommended": "float",
    "gpu_recommendation": "str",
    "gpu_risk": "float",
    "risk": "float",
    "current_usd_per_hour": "float",
    "recommended_usd_per_hour": "float",
    "saving_usd_per_hour": "float",
    "saving_usd_per_month": "float",
    "policy": "str",
}
PLACEMENT_FIELDS: dict[str, str] = {
    "policy": "str",
    "pods": "int",
    "placed": "int",
    "gpu_allocation_pct": "float",
    "gpus_used": "float",
    "nodes_used": "int",
    "usd_per_month": "float",
}
SAVINGS_FIELDS: dict[str, str] = {
    "kind": "str",
    "description": "str",
    "usd_per_month": "float",
    "team": "str",
}


# -- frame -> records / series ---------------------------------------------------------------
def _cell(value: Any, kind: str) -> Any:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if kind == "str":
        return str(value)
    if kind == "float":
        f = float(value)
        return f if np.isfinite(f) else None
    if kind == "int":
        f = float(value)
        return round(f) if np.isfinite(f) else None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return iso_z(ts.to_pydatetime())


def records(frame: pd.DataFrame | None, fields: dict[str, str]) -> list[dict[str, Any]]:
    """JSON-safe rows of ``frame`` with exactly ``fields`` (absent columns and NaN -> None)."""
    if frame is None or frame.empty:
        return []
    cols = {name: frame[name].tolist() if name in frame.columns else None for name in fields}
    out = []
    for i in range(len(frame)):
        out.append(
            {
                name: (_cell(values[i], kind) if values is not None else None)
                for (name, kind), values in zip(fields.items(), cols.values(), strict=True)
            }
        )
    return out


_TAG_SPLIT = re.compile(r"[/|;,]")


def series_tags(unique_id: str, hierarchy: str | None) -> dict[str, str]:
    """Tags a series answers to: ``key=value`` parts of its id, else ``{hierarchy: id}``.

    ``team=nlp/project=chat`` gives ``{"team": "nlp", "project": "chat"}``; a series
    ``nlp`` at hierarchy level ``team`` gives ``{"team": "nlp"}``.
    """
    tags: dict[str, str] = {}
    for part in _TAG_SPLIT.split(unique_id):
        k, sep, v = part.partition("=")
        if sep and k.strip():
            tags[k.strip()] = v.strip()
    if not tags and hierarchy and hierarchy != "total":
        tags[hierarchy] = unique_id.rsplit("/", 1)[-1]
    return tags


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    for c in columns:
        if c not in frame.columns:
            raise InvalidFrameError(
                f"result {name!r} has no column {c!r}; got {list(frame.columns)}",
                column=c,
                frame=name,
            )


def _groups(frame: pd.DataFrame, key: str) -> list[tuple[str, pd.DataFrame]]:
    df = frame.sort_values([key, "ds"], kind="stable")
    ids = df[key].astype(str).to_numpy()
    if len(ids) == 0:
        return []
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(ids)]])
    return [(ids[s], df.iloc[s:e]) for s, e in zip(starts, ends, strict=True)]


def _utc(values: pd.Series) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    return idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")


def _freq_seconds(ds: pd.DatetimeIndex, default: int) -> int:
    if len(ds) < 2:
        return default
    # Seconds whatever the index's unit (DuckDB gives microseconds, pandas nanoseconds).
    secs = ds.as_unit("s").asi8
    return max(round(float(np.median(np.diff(secs)))), 1)


def _points(g: pd.DataFrame) -> np.ndarray:
    pts = np.vstack([g[c].to_numpy(dtype=float) for c in QUANTILE_COLUMNS])
    # Rearrangement (sorting each column) makes crossed quantiles monotone again; it is a
    # no-op for the nested intervals the forecasters promise.
    return np.sort(pts, axis=0)


def _ds_tokens(ds: pd.DatetimeIndex) -> list[str]:
    return ['"' + s + '"' for s in ds.strftime("%Y-%m-%dT%H:%M:%SZ")]


def forecast_series(
    frame: pd.DataFrame, provenance: Provenance, *, name: str = "forecast"
) -> dict[str, ForecastSeries]:
    """``unique_id -> ForecastSeries`` of a forecast frame (docs/results.md ``forecast``).

    Raises
    ------
    InvalidFrameError
        Naming the missing column.
    """
    _require(frame, ("unique_id", "ds", *QUANTILE_COLUMNS), name)
    out: dict[str, ForecastSeries] = {}
    for uid, g in _groups(frame, "unique_id"):
        ds = _utc(g["ds"])
        pts = _points(g)
        hierarchy = str(g["level"].iloc[0]) if "level" in g.columns else None
        tokens = {c: num_tokens(pts[i]) for i, c in enumerate(QUANTILE_COLUMNS)}
        out[uid] = ForecastSeries(
            unique_id=uid,
            hierarchy=hierarchy,
            tags=series_tags(uid, hierarchy),
            freq_seconds=_freq_seconds(ds, 86400),
            points=pts,
            ds=_ds_tokens(ds),
            tokens=tokens,
            provenance=provenance,
        )
    return out


def _opt_float(g: pd.DataFrame, col: str) -> float | None:
    if col not in g.columns:
        return None
    v = pd.to_numeric(g[col], errors="coerce").dropna()
    return float(v.iloc[0]) if len(v) and np.isfinite(v.iloc[0]) else None


def load_series(frame: pd.DataFrame, provenance: Provenance) -> dict[str, LoadSeries]:
    """``workload_id -> LoadSeries`` of a ``load_forecast`` frame (docs/results.md)."""
    _require(frame, ("unique_id", "ds", *QUANTILE_COLUMNS), "load_forecast")
    out: dict[str, LoadSeries] = {}
    for uid, g in _groups(frame, "unique_id"):
        ds = _utc(g["ds"])
        cap = _opt_float(g, "capacity_per_replica")
        lo = _opt_float(g, "min_replicas")
        hi = _opt_float(g, "max_replicas")
        lo_i = max(int(lo), 0) if lo is not None else 0
        hi_i = int(hi) if hi is not None else 1_000_000
        out[uid] = LoadSeries(
            workload_id=uid,
            metric=str(g["metric"].iloc[0]) if "metric" in g.columns else "load",
            freq_seconds=_freq_seconds(ds, 3600),
            points=_points(g),
            ds=_ds_tokens(ds),
            capacity_per_replica=cap if cap is not None and cap > 0 else None,
            min_replicas=lo_i,
            max_replicas=max(hi_i, lo_i),
            gpus_per_replica=_opt_float(g, "gpus_per_replica"),
            provenance=provenance,
        )
    return out


def series_item(s: ForecastSeries) -> bytes:
    """The ``/v1/series`` entry of one series, rendered once."""
    return jdump(
        {
            "unique_id": s.unique_id,
            "hierarchy": s.hierarchy,
            "tags": s.tags,
            "horizon": s.horizon,
            "freq_seconds": s.freq_seconds,
            "start": s.ds[0].strip('"') if s.ds else None,
            "href": forecast_href(s.unique_id),
        }
    ).encode()


def workload_item(s: LoadSeries) -> bytes:
    """The ``/v1/workloads`` entry of one workload, rendered once."""
    return jdump(
        {
            "workload_id": s.workload_id,
            "metric": s.metric,
            "interval_seconds": s.freq_seconds,
            "horizon": s.horizon,
            "start": s.ds[0].strip('"') if s.ds else None,
            "capacity_per_replica": s.capacity_per_replica,
            "min_replicas": s.min_replicas,
            "max_replicas": s.max_replicas,
            "href": scaling_href(s.workload_id),
            "keda_href": keda_href(s.workload_id),
        }
    ).encode()


# -- reading the sources ---------------------------------------------------------------------
@dataclass
class StoreData:
    """Result frames read from the store, their infos, and what was missing."""

    key: tuple[Any, ...]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def _store_key(store: Any) -> tuple[Any, ...]:
    key: list[tuple[Any, ...]] = []
    for name in RESULTS:
        try:
            info = store.result_info(name)
            key.append((name, info["run_id"], str(info["created_at"])))
        except StoreError:
            key.append((name, None, None))
    return tuple(key)


def store_key(path: Path) -> tuple[Any, ...]:
    """Which run wrote each served result (cheap; a change means reload)."""
    from features.store import Store

    if not Path(path).exists():
        return ("no-store",)
    with Store(path, read_only=True) as st:
        return _store_key(st)


def read_store(path: Path) -> StoreData:
    """Read every served result; a missing one is recorded, not fatal."""
    from features.store import Store

    if not Path(path).exists():
        return StoreData(
            key=("no-store",),
            missing={n: f"store {path} does not exist" for n in RESULTS},
        )
    with Store(path, read_only=True) as st:
        data = StoreData(key=_store_key(st))
        for name in RESULTS:
            try:
                data.infos[name] = st.result_info(name)
                data.frames[name] = st.read_result(name)
            except StoreError as exc:
                data.missing[name] = str(exc)
    return data


def _when(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def store_provenance(info: dict[str, Any]) -> Provenance:
    """Provenance of a stored result from its ``meta`` (docs/results.md)."""
    meta = info.get("meta") or {}
    return Provenance(
        model_name=_s(meta.get("model_name")),
        model_version=_s(meta.get("model_version")),
        run_id=_s(meta.get("mlflow_run_id")),
        alias=None,
        forecast_time=_when(meta.get("cutoff")) or _when(info.get("created_at")),
        source="store",
        store_run_id=_s(info.get("run_id")),
    )


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def model_provenance(loaded: Any) -> Provenance:
    """Provenance of a :class:`models.registry.LoadedModel`."""
    return Provenance(
        model_name=_s(getattr(loaded, "name", None)),
        model_version=_s(getattr(loaded, "version", None)),
        run_id=_s(getattr(loaded, "run_id", None)),
        alias=_s(getattr(loaded, "alias", None)),
        forecast_time=_when(getattr(loaded, "forecast_time", None)),
        source="registry",
    )


def make_predictor(
    model: Any, provenance: Provenance
) -> Callable[[str, int], ForecastSeries | None]:
    """Wrap a pyfunc (input ``unique_id, h`` -> forecast frame) as a serving predictor."""
    prov = Provenance(
        model_name=provenance.model_name,
        model_version=provenance.model_version,
        run_id=provenance.run_id,
        alias=provenance.alias,
        forecast_time=provenance.forecast_time,
        source="pyfunc",
    )

    def predict(unique_id: str, h: int) -> ForecastSeries | None:
        frame = model.predict(pd.DataFrame({"unique_id": [unique_id], "h": [h]}))
        if frame is None or len(frame) == 0:
            return None
        frame = pd.DataFrame(frame)
        frame = frame[frame["unique_id"].astype(str) == unique_id]
        return forecast_series(frame, prov, name="pyfunc forecast").get(unique_id)

    return predict


def build_snapshot(
    store: StoreData,
    loaded: Any | None,
    *,
    version_key: tuple[Any, ...],
    cache_entries: int = 4096,
) -> Snapshot:
    """A complete snapshot from store results and (optionally) a loaded champion.

    Forecasts come from the champion's logged forecast frame when it has one, else from
    the store's ``forecast`` result; scaling, anomalies and recommendations from the store.
    """
    missing = dict(store.missing)
    model_prov = model_provenance(loaded) if loaded is not None else None
    series: dict[str, ForecastSeries] = {}
    fc_logged = getattr(loaded, "forecasts", None) if loaded is not None else None
    if fc_logged is not None and model_prov is not None and len(fc_logged):
        series = forecast_series(pd.DataFrame(fc_logged), model_prov)
        missing.pop("forecast", None)
    elif "forecast" in store.frames:
        series = forecast_series(
            store.frames["forecast"], store_provenance(store.infos["forecast"])
        )
    loads: dict[str, LoadSeries] = {}
    if "load_forecast" in store.frames:
        loads = load_series(
            store.frames["load_forecast"], store_provenance(store.infos["load_forecast"])
        )
    predictor = None
    if loaded is not None and getattr(loaded, "model", None) is not None and model_prov:
        predictor = make_predictor(loaded.model, model_prov)
    ordered = sorted(series.values(), key=lambda s: s.unique_id)
    return Snapshot(
        version_key=version_key,
        loaded_at=datetime.now(UTC),
        model=model_prov,
        series=series,
        series_items=[(s, series_item(s)) for s in ordered],
        loads=loads,
        load_items=[(w, workload_item(w)) for w in sorted(loads.values(), key=_wid)],
        anomalies=records(store.frames.get("anomalies"), ANOMALY_FIELDS),
        rightsizing=records(store.frames.get("rightsizing"), RIGHTSIZING_FIELDS),
        placement=records(store.frames.get("placement"), PLACEMENT_FIELDS),
        savings=records(store.frames.get("savings"), SAVINGS_FIELDS),
        missing=missing,
        predictor=predictor,
        cache_entries=cache_entries,
    )


def _wid(s: LoadSeries) -> str:
    return s.workload_id


# -- the reloader ----------------------------------------------------------------------------
@dataclass
class LoadStatus:
    """What the last refresh saw (for ``/readyz``)."""

    registry: str = "not configured"  # ok | unreachable | not configured
    store: str = "not read"  # ok | unreadable | not read
    last_error: str | None = None
    last_check: datetime | None = None
    last_swap: datetime | None = None
    failures: int = 0


class Loader:
    """Loads the champion and the store results, and swaps when either changes.

    Parameters
    ----------
    settings : ServingSettings
    holder : StateHolder
        Receives each new snapshot.
    metrics : ServingMetrics, optional
        Counts reloads and publishes the model version.
    registry : module, optional
        Something with ``load_model`` and ``alias_version`` (default: :mod:`models.registry`,
        imported on first use because MLflow takes seconds to import).
    """

    def __init__(
        self,
        settings: ServingSettings,
        holder: StateHolder,
        metrics: ServingMetrics | None = None,
        registry: Any | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self._registry = registry
        self._lock = threading.Lock()
        self._loaded: Any | None = None
        self._store: StoreData | None = None
        self.status = LoadStatus()

    def _reg(self) -> Any:
        if self._registry is None:
            from models import registry

            self._registry = registry
        return self._registry

    def refresh(self, force: bool = False) -> str:
        """Check both sources and swap if anything changed.

        Returns
        -------
        str
            ``swapped``, ``unchanged`` or ``failed`` (the last good snapshot still serves).
        """
        with self._lock:
            t0 = time.perf_counter()
            outcome = self._refresh(force)
            if self.metrics is not None:
                self.metrics.reload(outcome, time.perf_counter() - t0, self)
            return outcome

    def _refresh(self, force: bool) -> str:
        s = self.settings
        self.status.last_check = datetime.now(UTC)
        errors: list[str] = []
        loaded = self._loaded
        if s.model_name:
            try:
                version = self._reg().alias_version(
                    s.model_name, alias=s.model_alias, tracking_uri=s.tracking_uri
                )
                self.status.registry = "ok"
                if version is None:
                    errors.append(f"model {s.model_name!r} has no alias {s.model_alias!r}")
                elif loaded is None or str(loaded.version) != str(version):
                    loaded = self._reg().load_model(
                        s.model_name, alias=s.model_alias, tracking_uri=s.tracking_uri
                    )
            except Exception as exc:  # registry down or model unloadable: keep the last good
                self.status.registry = "unreachable"
                errors.append(f"registry: {type(exc).__name__}: {_first_line(exc)}")
                log.warning("model registry check failed; serving the last good model: %s", exc)
        store = self._store
        try:
            if not Path(s.store_path).exists() and store is not None and store.frames:
                # A store that vanished (moved, being rewritten) is not news worth
                # serving nothing for: keep the last good results.
                raise StoreError(f"store {s.store_path} does not exist")
            key = store_key(s.store_path)
            if store is None or key != store.key or force:
                store = read_store(s.store_path)
            self.status.store = "ok"
        except Exception as exc:  # locked by a writer, corrupt, ...: keep the last good
            self.status.store = "unreadable"
            errors.append(f"store: {type(exc).__name__}: {_first_line(exc)}")
            log.warning("store %s unreadable; serving the last good results: %s", s.store_path, exc)
        if store is None:
            store = StoreData(key=("unread",), missing={n: "store unreadable" for n in RESULTS})
        version_key = (
            str(loaded.version) if loaded is not None else None,
            store.key,
        )
        current = self.holder.snapshot
        if not force and version_key == current.version_key:
            return self._finish(errors, "unchanged")
        try:
            snap = build_snapshot(
                store, loaded, version_key=version_key, cache_entries=s.cache_entries
            )
        except Exception as exc:  # a malformed frame: keep serving the last good snapshot
            errors.append(f"build: {type(exc).__name__}: {_first_line(exc)}")
            log.exception("could not build a serving snapshot; keeping the last good one")
            return self._finish(errors, "failed")
        self.holder.swap(snap)
        self._loaded, self._store = loaded, store
        self.status.last_swap = snap.loaded_at
        log.info(
            "serving model %s version %s; %d forecast series, %d workloads",
            snap.model.model_name if snap.model else None,
            snap.model.model_version if snap.model else None,
            len(snap.series),
            len(snap.loads),
        )
        return self._finish(errors, "swapped")

    def _finish(self, errors: list[str], outcome: str) -> str:
        self.status.last_error = "; ".join(errors) if errors else None
        if errors:
            self.status.failures += 1
            if outcome == "unchanged":
                outcome = "failed"
        return outcome

    @property
    def model_configured(self) -> bool:
        return bool(self.settings.model_name)

    @property
    def model_loaded(self) -> bool:
        return self._loaded is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


__all__ = [
    "Loader",
    "StoreData",
    "build_snapshot",
    "forecast_series",
    "load_series",
    "read_store",
    "records",
    "series_tags",
    "workload_item",
]
