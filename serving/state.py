"""In-memory serving state: precomputed forecasts and scaling series, swapped atomically.

Hot paths never touch pandas, DuckDB or MLflow. At load time each series becomes a
:class:`ForecastSeries` / :class:`LoadSeries`: a ``(5, H)`` array of the stored quantile
points (``lo_95, lo_80, yhat, hi_80, hi_95`` = quantiles 0.025, 0.1, 0.5, 0.9, 0.975) plus
every timestamp and stored number already rendered as a JSON token. A request slices token
lists and joins them, and the rendered answer is cached in the :class:`Snapshot` it came
from.

A :class:`Snapshot` is immutable once published; :class:`StateHolder` swaps the reference
to a new one in a single assignment, so a request that started on the old snapshot ends on
it and no request ever sees half a reload.

Quantiles between the stored points are interpolated linearly in normal-score space
(``z = Phi^-1(q)``): exact at the five stored points and exact everywhere for a Gaussian
predictive distribution.

>>> import numpy as np
>>> q = np.array([[80.0], [90.0], [100.0], [110.0], [120.0]])
>>> float(interpolate_quantile(q, 0.5)[0]), float(interpolate_quantile(q, 0.9)[0])
(100.0, 110.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import numpy as np

#: Stored quantile points, lowest first, and the forecast columns that hold them.
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
QUANTILE_COLUMNS = ("lo_95", "lo_80", "yhat", "hi_80", "hi_95")
STORED_LEVELS = (80, 95)
MIN_QUANTILE, MAX_QUANTILE = QUANTILES[0], QUANTILES[-1]
_Z = np.array([NormalDist().inv_cdf(q) for q in QUANTILES])


def _z(q: float) -> float:
    return 0.0 if q == 0.5 else NormalDist().inv_cdf(q)


def quantile_position(q: float) -> tuple[int, float]:
    """Segment ``i`` and weight ``w``: quantile ``q`` = ``(1-w) * P[i] + w * P[i+1]``.

    Raises
    ------
    ValueError
        When ``q`` is outside the stored range [0.025, 0.975].
    """
    if not (MIN_QUANTILE <= q <= MAX_QUANTILE):
        raise ValueError(f"quantile must be in [{MIN_QUANTILE}, {MAX_QUANTILE}], got {q}")
    z = _z(q)
    i = int(np.searchsorted(_Z, z, side="right")) - 1
    i = min(max(i, 0), len(_Z) - 2)
    w = (z - _Z[i]) / (_Z[i + 1] - _Z[i])
    return i, float(min(max(w, 0.0), 1.0))


def interpolate_quantile(points: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each column of ``points`` (shape ``(5, H)``, rows as :data:`QUANTILES`)."""
    i, w = quantile_position(q)
    if w == 0.0:
        return points[i]
    if w == 1.0:
        return points[i + 1]
    return (1.0 - w) * points[i] + w * points[i + 1]


def level_bounds(points: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the central ``level`` % interval (``0 < level <= 95``)."""
    a = (1.0 - level / 100.0) / 2.0
    return interpolate_quantile(points, a), interpolate_quantile(points, 1.0 - a)


def num_token(x: float) -> str:
    """JSON token of a float: shortest round-trip repr, ``null`` for NaN/inf."""
    f = float(x)
    return repr(f) if math.isfinite(f) else "null"


def num_tokens(values: np.ndarray) -> list[str]:
    return [num_token(v) for v in values.tolist()]


def iso_z(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an aware (or UTC-naive) timestamp."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jdump(obj: Any) -> str:
    """Compact JSON (no NaN: callers pass ``None`` for missing numbers)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)


@dataclass(frozen=True)
class Provenance:
    """What produced an answer: model name, version, MLflow run, forecast time.

    ``source`` is ``registry`` (champion loaded from MLflow), ``store`` (the pipeline's
    stored result) or ``pyfunc`` (computed on demand by the loaded model).
    """

    model_name: str | None
    model_version: str | None
    run_id: str | None
    alias: str | None
    forecast_time: datetime | None
    source: str
    store_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.model_name,
            "version": self.model_version,
            "run_id": self.run_id,
            "alias": self.alias,
            "source": self.source,
            "store_run_id": self.store_run_id,
        }

    def json_head(self) -> str:
        """``"model":{...},"forecast_time":...`` (no braces), rendered once per snapshot."""
        ft = jdump(iso_z(self.forecast_time)) if self.forecast_time is not None else "null"
        return f'"model":{jdump(self.as_dict())},"forecast_time":{ft}'


@dataclass
class ForecastSeries:
    """One precomputed forecast series.

    Attributes
    ----------
    unique_id : str
    hierarchy : str or None
        The stored ``level`` column (``total``, ``team``, ...).
    tags : dict
        Tag filters this series answers to (from ``key=value`` parts of the id).
    freq_seconds : int
        Step between points.
    points : ndarray, shape (5, H)
        Stored quantile points (rows as :data:`QUANTILE_COLUMNS`).
    ds : list of str
        JSON tokens of the timestamps (quoted).
    tokens : dict of str to list of str
        JSON tokens of each stored column.
    """

    unique_id: str
    hierarchy: str | None
    tags: dict[str, str]
    freq_seconds: int
    points: np.ndarray
    ds: list[str]
    tokens: dict[str, list[str]]
    provenance: Provenance

    @property
    def horizon(self) -> int:
        return len(self.ds)

    def render(self, h: int, levels: Sequence[float], requested: int) -> bytes:
        """Rendered answer for the first ``h`` points and the given interval levels."""
        parts = [
            '{"unique_id":',
            jdump(self.unique_id),
            ',"hierarchy":',
            jdump(self.hierarchy),
            ",",
            self.provenance.json_head(),
            f',"freq_seconds":{self.freq_seconds},"horizon":{h},"requested_horizon":{requested}',
            f',"truncated":{"true" if h < requested else "false"}',
            ',"level":[',
            ",".join(_level_token(lv) for lv in levels),
            '],"ds":[',
            ",".join(self.ds[:h]),
            '],"yhat":[',
            ",".join(self.tokens["yhat"][:h]),
            '],"intervals":[',
        ]
        for j, lv in enumerate(levels):
            if j:
                parts.append(",")
            if lv in STORED_LEVELS:
                lo = ",".join(self.tokens[f"lo_{int(lv)}"][:h])
                hi = ",".join(self.tokens[f"hi_{int(lv)}"][:h])
            else:
                lo_a, hi_a = level_bounds(self.points[:, :h], lv)
                lo, hi = ",".join(num_tokens(lo_a)), ",".join(num_tokens(hi_a))
            parts.append(f'{{"level":{_level_token(lv)},"lo":[{lo}],"hi":[{hi}]}}')
        parts.append("]}")
        return "".join(parts).encode()


def _level_token(lv: float) -> str:
    return str(int(lv)) if float(lv).is_integer() else repr(float(lv))


@dataclass
class LoadSeries:
    """One workload's load forecast with its capacity parameters.

    ``capacity_per_replica`` is the load one replica serves at the target utilization;
    ``gpus_per_replica`` is ``None`` when unknown.
    """

    workload_id: str
    metric: str
    freq_seconds: int
    points: np.ndarray
    ds: list[str]
    capacity_per_replica: float | None
    min_replicas: int
    max_replicas: int
    gpus_per_replica: float | None
    provenance: Provenance

    @property
    def horizon(self) -> int:
        return len(self.ds)

    def plan(self, h: int, q: float, min_replicas: int | None) -> dict[str, Any]:
        """Load at quantile ``q`` and capacity per interval for the first ``h`` intervals.

        Capacity follows predictive scaling: ``ceil(load / capacity_per_replica)`` clipped
        to ``[min, max]`` where ``min`` is the larger of the stored minimum and the
        caller's current minimum, and the maximum never falls below that minimum.
        """
        load = np.maximum(interpolate_quantile(self.points[:, :h], q), 0.0)
        lo = max(self.min_replicas, min_replicas or 0)
        hi = max(self.max_replicas, lo)
        if self.capacity_per_replica is not None and self.capacity_per_replica > 0:
            # 1e-9: a load of exactly k replicas' worth must not round up to k + 1.
            raw = np.ceil(np.nan_to_num(load, nan=0.0) / self.capacity_per_replica - 1e-9)
            replicas: list[int] | None = np.clip(raw, lo, hi).astype(np.int64).tolist()
        else:
            replicas = None
        gpus = (
            [r * self.gpus_per_replica for r in replicas]
            if replicas is not None and self.gpus_per_replica is not None
            else None
        )
        return {
            "load": load,
            "replicas": replicas,
            "gpus": gpus,
            "min_replicas": lo,
            "max_replicas": hi,
        }

    def render(self, h: int, q: float, min_replicas: int | None, requested: int) -> bytes:
        p = self.plan(h, q, min_replicas)
        ts = ",".join(self.ds[:h])
        reps = p["replicas"]
        gpus = p["gpus"]
        gpu_json = "null" if gpus is None else "[" + ",".join(num_tokens(np.asarray(gpus))) + "]"
        cap = (
            f'{{"timestamps":[{ts}],"values":[{",".join(map(str, reps))}],"gpus":{gpu_json}}}'
            if reps is not None
            else "null"
        )
        load_json = ",".join(num_tokens(p["load"]))
        return (
            '{"workload_id":'
            + jdump(self.workload_id)
            + ',"metric":'
            + jdump(self.metric)
            + f',"quantile":{num_token(q)},"interval_seconds":{self.freq_seconds}'
            + f',"horizon":{h},"requested_horizon":{requested}'
            + f',"truncated":{"true" if h < requested else "false"},'
            + self.provenance.json_head()
            + f',"capacity_per_replica":{_opt_num(self.capacity_per_replica)}'
            + f',"gpus_per_replica":{_opt_num(self.gpus_per_replica)}'
            + f',"min_replicas":{p["min_replicas"]},"max_replicas":{p["max_replicas"]}'
            + f',"load_forecast":{{"timestamps":[{ts}],"values":[{load_json}]}}'
            + f',"capacity_forecast":{cap}}}'
        ).encode()


def _opt_num(x: float | None) -> str:
    return "null" if x is None else num_token(x)


#: ``(unique_id, horizon, levels) -> ForecastSeries`` computed by the loaded model.
Predictor = Callable[[str, int], "ForecastSeries | None"]


@dataclass
class Snapshot:
    """Everything one loaded version serves. Published once, then only read.

    The ``cache`` of rendered answers and ``computed`` series (from the model, for ids or
    horizons not precomputed) belong to the snapshot, so a swap drops them with it.
    """

    version_key: tuple[Any, ...]
    loaded_at: datetime
    model: Provenance | None
    series: dict[str, ForecastSeries]
    series_items: list[tuple[ForecastSeries, bytes]]
    loads: dict[str, LoadSeries]
    anomalies: list[dict[str, Any]]
    rightsizing: list[dict[str, Any]]
    placement: list[dict[str, Any]]
    savings: list[dict[str, Any]]
    missing: dict[str, str] = field(default_factory=dict)
    load_items: list[tuple[LoadSeries, bytes]] = field(default_factory=list)
    predictor: Predictor | None = None
    cache_entries: int = 4096
    cache: dict[Any, bytes] = field(default_factory=dict)
    hot: dict[tuple[str, bytes], tuple[Any, bytes]] = field(default_factory=dict)
    computed: dict[tuple[str, int], ForecastSeries] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return bool(self.series) or bool(self.loads)

    def cached(self, key: Any, make: Callable[[], bytes]) -> bytes:
        """Rendered answer for ``key``: from the cache, else ``make()`` and keep it."""
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        body = make()
        if self.cache_entries > 0:
            if len(self.cache) >= self.cache_entries:
                # FIFO eviction: one pop per insert keeps the cost O(1); controllers
                # poll a small, stable set of keys, which stay hot.
                self.cache.pop(next(iter(self.cache)), None)
            self.cache[key] = body
        return body

    def remember(self, scope: Any, route: Any, body: bytes) -> None:
        """Keep a 200 answer under its exact path and query for :class:`HotPathMiddleware`."""
        if self.cache_entries <= 0:
            return
        if len(self.hot) >= self.cache_entries:
            self.hot.pop(next(iter(self.hot)), None)
        self.hot[(scope["path"], scope["query_string"])] = (route, body)

    def forecast_age_s(self, now: datetime | None = None) -> float | None:
        """Seconds since the forecast time of the served forecasts (``None`` if unknown)."""
        times = [s.provenance.forecast_time for s in self.series.values()][:1]
        if self.model is not None and self.model.forecast_time is not None:
            times = [self.model.forecast_time]
        if not times or times[0] is None:
            return None
        t = times[0]
        now = now or datetime.now(UTC)
        return (now - t).total_seconds()


def empty_snapshot(missing: str = "not loaded yet") -> Snapshot:
    """A snapshot that serves nothing (before the first successful load)."""
    return Snapshot(
        version_key=(),
        loaded_at=datetime.now(UTC),
        model=None,
        series={},
        series_items=[],
        loads={},
        anomalies=[],
        rightsizing=[],
        placement=[],
        savings=[],
        missing={"forecast": missing, "load_forecast": missing},
    )


class StateHolder:
    """Holds the published :class:`Snapshot`; ``swap`` is one reference assignment."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._snapshot = snapshot if snapshot is not None else empty_snapshot()
        self.swaps = 0

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot:
        """Publish ``snapshot``; return the one it replaced."""
        old, self._snapshot = self._snapshot, snapshot
        self.swaps += 1
        return old
