"""Execution backends: where the per-series work of forecasting and detection runs.

The estimator API never changes: a backend takes the same unfitted model (or
detector) and series frame and returns the same frames. What changes is where
the work runs and how much of the data is held at once:

* :class:`LocalBackend` runs in this process. Given a pandas frame it simply
  calls the model; given a folder of series partitions
  (:class:`SeriesPartitions`) it processes one partition at a time (in
  ``n_jobs`` worker processes) and writes each result partition to parquet, so
  memory is bounded by the largest partition.
* :class:`models.dask_backend.DaskBackend` runs the same partition functions
  on Dask workers (a ``distributed`` cluster, or a ``LocalCluster`` it starts).

A *partition* is a pandas frame holding whole series. Every partition runs the
local code path (:func:`forecast_partition`, :func:`cross_validation_partition`,
:func:`detect_partition`), so models whose forecasts depend on their own series
only (:data:`PER_SERIES_MODELS`) give exactly the same numbers on every backend.
Models that learn across series (LightGBM, the ``auto`` ensemble) see one
partition at a time unless the backend trains them globally: the Dask backend
trains LightGBM with ``lightgbm.dask`` over all partitions.

Results come back as a pandas frame sorted like the local backend's output
(series, then time), or, with ``output=``, as a folder of parquet files, one per
partition, written by the workers and never concatenated in this process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, InvalidFrameError
from features.schema import validate_levels
from models._parallel import parallel_map
from models.base import BaseForecaster, check_horizon

if TYPE_CHECKING:
    from models.anomaly.base import StreamingDetector

__all__ = [
    "BACKENDS",
    "PER_SERIES_MODELS",
    "Backend",
    "LocalBackend",
    "PartitionBackend",
    "SeriesPartitions",
    "cross_validation_partition",
    "detect_partition",
    "forecast_partition",
    "get_backend",
    "hash_partition",
    "partition_parquet",
    "split_frame",
    "write_partitions",
]

#: Backend names accepted by :func:`get_backend` (and the CLI's ``--backend``).
BACKENDS: tuple[str, ...] = ("local", "dask")

#: Registry names of models whose forecast of a series depends on that series only.
PER_SERIES_MODELS: frozenset[str] = frozenset(
    {"naive", "seasonal_naive", "drift", "ets", "arima", "mstl", "vets"}
)

#: Column added to detection partitions to restore the input row order.
ROW_COL = "_row"
#: Default number of series per partition when a pandas frame is split.
SERIES_PER_PARTITION = 2_000
_MARKER = "_series_partitions.json"


# ------------------------------------------------------------------ partitions
def hash_partition(ids: pd.Series | np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition number of every id: a stable hash modulo ``n_partitions``.

    The hash (:func:`pandas.util.hash_pandas_object`) does not depend on the
    process, so every worker and every run assigns a series to the same
    partition.
    """
    if n_partitions < 1:
        raise ConfigError(f"parameter n_partitions must be a positive integer, got {n_partitions}")
    values = pd.Series(np.asarray(ids)).astype(str)
    hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
    return (hashed % np.uint64(n_partitions)).astype(np.int64)


def split_frame(
    df: pd.DataFrame, id_col: str, n_partitions: int | None = None, *, keep_row: bool = False
) -> list[pd.DataFrame]:
    """Split a frame into partitions of whole series (by id hash); empty ones are dropped.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format frame with ``id_col``.
    id_col : str
        Series id column.
    n_partitions : int, optional
        Default: one per :data:`SERIES_PER_PARTITION` series.
    keep_row : bool
        Add :data:`ROW_COL`, the input row position (detection keeps input order).
    """
    if id_col not in df.columns:
        raise InvalidFrameError(
            f"missing required column; got columns {list(df.columns)}", column=id_col
        )
    if n_partitions is None:
        n_partitions = max(1, -(-int(df[id_col].nunique()) // SERIES_PER_PARTITION))
    frame = df.assign(**{ROW_COL: np.arange(len(df))}) if keep_row else df
    part = hash_partition(frame[id_col], n_partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_partitions + 1))
    out = []
    for i in range(n_partitions):
        rows = order[bounds[i] : bounds[i + 1]]
        if len(rows):
            out.append(frame.iloc[rows].reset_index(drop=True))
    return out


@dataclass(frozen=True)
class SeriesPartitions:
    """A folder of parquet files in which every series lies whole in one file.

    Build one with :func:`write_partitions` (from a pandas frame or an iterable
    of frames), :func:`partition_parquet` (from any parquet file or folder) or
    :meth:`from_folder` (a folder written by either).

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    files : tuple of pathlib.Path
        One file per partition, sorted.
    id_col : str
        Series id column.
    """

    path: Path
    files: tuple[Path, ...]
    id_col: str = "unique_id"

    @classmethod
    def from_folder(cls, path: str | Path) -> SeriesPartitions:
        """Open a folder written by :func:`write_partitions` or :func:`partition_parquet`.

        Raises
        ------
        ConfigError
            When the folder has no partition marker (``_series_partitions.json``):
            its files may split series, so it must be partitioned first
            (:func:`partition_parquet`).
        """
        folder = Path(path)
        marker = folder / _MARKER
        if not marker.is_file():
            raise ConfigError(
                f"parameter data: folder {folder} is not a series-partitioned folder "
                f"(no {_MARKER}); partition it with models.backends.partition_parquet first"
            )
        meta = json.loads(marker.read_text())
        files = tuple(sorted(folder.glob("part-*.parquet")))
        return cls(path=folder, files=files, id_col=str(meta.get("id_col", "unique_id")))


def _mark(folder: Path, id_col: str, n_files: int) -> None:
    (folder / _MARKER).write_text(json.dumps({"id_col": id_col, "partitions": n_files}))


def write_partitions(
    data: pd.DataFrame | Iterator[pd.DataFrame] | Sequence[pd.DataFrame],
    folder: str | Path,
    *,
    id_col: str = "unique_id",
    n_partitions: int | None = None,
) -> SeriesPartitions:
    """Write series to a partitioned parquet folder.

    Parameters
    ----------
    data : pandas.DataFrame or iterable of pandas.DataFrame
        One frame (split by id hash into ``n_partitions``), or frames that each
        already hold whole series (written one file each, as they come, so a
        generator keeps memory bounded).
    folder : str or Path
        Created if missing; must not hold partition files already.
    id_col : str
        Series id column.
    n_partitions : int, optional
        For a single frame; default one per :data:`SERIES_PER_PARTITION` series.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("part-*.parquet")):
        raise ConfigError(f"parameter folder: {out} already holds partition files")
    parts = split_frame(data, id_col, n_partitions) if isinstance(data, pd.DataFrame) else data
    n = 0
    for part in parts:
        if id_col not in part.columns:
            raise InvalidFrameError(
                f"missing required column; got columns {list(part.columns)}", column=id_col
            )
        part.to_parquet(out / f"part-{n:05d}.parquet", index=False)
        n += 1
    _mark(out, id_col, n)
    return SeriesPartitions.from_folder(out)


def partition_parquet(
    source: str | Path,
    folder: str | Path,
    *,
    id_col: str = "unique_id",
    n_partitions: int = 16,
    columns: Sequence[str] | None = None,
    batch_rows: int = 1_000_000,
) -> SeriesPartitions:
    """Partition any parquet file or folder by series, in one bounded-memory pass.

    Record batches are read one at a time and each row is appended to the file
    of its id's hash bucket, so memory is bounded by ``batch_rows`` whatever the
    size of the source.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("part-*.parquet")):
        raise ConfigError(f"parameter folder: {out} already holds partition files")
    dataset = pads.dataset(str(source), format="parquet")
    if id_col not in dataset.schema.names:
        raise InvalidFrameError(
            f"missing required column; got columns {dataset.schema.names}",
            column=id_col,
            frame=str(source),
        )
    writers: dict[int, Any] = {}
    try:
        for batch in dataset.to_batches(
            columns=list(columns) if columns else None, batch_size=batch_rows
        ):
            # Only the ids go through pandas (for the stable hash); rows stay in Arrow.
            bucket = hash_partition(batch.column(id_col).to_pandas(), n_partitions)
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(n_partitions + 1))
            for b in range(n_partitions):
                rows = order[bounds[b] : bounds[b + 1]]
                if not len(rows):
                    continue
                table = pa.Table.from_batches([batch.take(pa.array(rows))])
                if b not in writers:
                    writers[b] = pq.ParquetWriter(out / f"part-{b:05d}.parquet", table.schema)
                writers[b].write_table(table.cast(writers[b].schema))
    finally:
        for w in writers.values():
            w.close()
    _mark(out, id_col, len(writers))
    return SeriesPartitions.from_folder(out)


#: What a backend accepts as series data.
SeriesData = Any  # pandas.DataFrame | SeriesPartitions | dask.dataframe.DataFrame


def load_partition(ref: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A partition given as a frame, or read from its parquet file."""
    if isinstance(ref, pd.DataFrame):
        return ref
    return pd.read_parquet(ref)


# ------------------------------------------------------- partition functions
def _normalise_forecast(
    out: pd.DataFrame, id_col: str, time_col: str, ids: pd.Series | None
) -> pd.DataFrame:
    # Every partition writes the same schema (ns UTC timestamps, ids as in the input).
    out[time_col] = out[time_col].dt.tz_convert("UTC").dt.as_unit("ns")
    if ids is not None and len(out):
        out[id_col] = out[id_col].astype(ids.dtype)
    return out


def _empty_forecast(
    id_col: str, time_col: str, levels: Sequence[int], extra: Sequence[str] = ()
) -> pd.DataFrame:
    cols: dict[str, Any] = {
        id_col: pd.Series([], dtype=object),
        time_col: pd.Series([], dtype="datetime64[ns, UTC]"),
    }
    for c in extra:
        cols[c] = pd.Series([], dtype="datetime64[ns, UTC]" if c == "cutoff" else float)
    cols["yhat"] = pd.Series([], dtype=float)
    for lv in levels:
        cols[f"lo_{lv}"] = pd.Series([], dtype=float)
        cols[f"hi_{lv}"] = pd.Series([], dtype=float)
    return pd.DataFrame(cols)


def _finish(out: pd.DataFrame, output: str | Path | None, index: int) -> pd.DataFrame | int:
    """Return the partition's result, or write it to ``output`` and return its row count."""
    if output is None:
        return out
    Path(output).mkdir(parents=True, exist_ok=True)
    out.to_parquet(Path(output) / f"part-{index:05d}.parquet", index=False)
    return len(out)


def forecast_partition(
    ref: pd.DataFrame | str | Path,
    model: BaseForecaster,
    h: int,
    levels: Sequence[int],
    id_col: str,
    time_col: str,
    target_col: str,
    output: str | Path | None = None,
    index: int = 0,
) -> pd.DataFrame | int:
    """Fit a fresh copy of ``model`` on one partition and forecast ``h`` steps.

    The same function runs in this process (local backend) and on Dask workers.
    """
    return _fit_forecast(ref, model.clone, h, levels, id_col, time_col, target_col, output, index)


def _fit_forecast(
    ref: pd.DataFrame | str | Path,
    new_model: Callable[[], BaseForecaster],
    h: int,
    levels: Sequence[int],
    id_col: str,
    time_col: str,
    target_col: str,
    output: str | Path | None = None,
    index: int = 0,
) -> pd.DataFrame | int:
    """Fit ``new_model()`` on one partition and forecast ``h`` steps.

    :func:`forecast_partition` passes ``model.clone``; the Dask LightGBM passes a
    factory of estimators that install boosters trained over every partition.
    """
    part = load_partition(ref)
    if len(part) == 0:
        return _finish(_empty_forecast(id_col, time_col, levels), output, index)
    est = new_model()
    est.fit(part, id_col=id_col, time_col=time_col, target_col=target_col)
    out = est.predict(h, level=levels)
    return _finish(_normalise_forecast(out, id_col, time_col, part[id_col]), output, index)


def cross_validation_partition(
    ref: pd.DataFrame | str | Path,
    model: BaseForecaster,
    h: int,
    n_windows: int,
    step: int | None,
    levels: Sequence[int],
    id_col: str,
    time_col: str,
    target_col: str,
    output: str | Path | None = None,
    index: int = 0,
) -> pd.DataFrame | int:
    """Rolling-origin cross-validation of a fresh copy of ``model`` on one partition."""
    part = load_partition(ref)
    if len(part) == 0:
        empty = _empty_forecast(id_col, time_col, levels, extra=("cutoff", "y"))
        return _finish(empty, output, index)
    out = model.clone().cross_validation(
        part,
        h=h,
        n_windows=n_windows,
        step=step,
        level=levels,
        id_col=id_col,
        time_col=time_col,
        target_col=target_col,
    )
    out["cutoff"] = out["cutoff"].dt.tz_convert("UTC").dt.as_unit("ns")
    return _finish(_normalise_forecast(out, id_col, time_col, part[id_col]), output, index)


def detect_partition(
    ref: pd.DataFrame | str | Path,
    detector: StreamingDetector,
    threshold: float | None,
    id_col: str,
    time_col: str,
    target_col: str,
    output: str | Path | None = None,
    index: int = 0,
) -> pd.DataFrame | int:
    """Score one partition with a fresh copy of ``detector`` (detectors are per series).

    A :data:`ROW_COL` column in the partition is carried to the result.
    """
    import copy

    from models.anomaly import detect_series

    part = load_partition(ref)
    det = copy.deepcopy(detector)
    out = detect_series(
        part, det, threshold=threshold, id_col=id_col, time_col=time_col, target_col=target_col
    )
    if ROW_COL in part.columns:
        out[ROW_COL] = part[ROW_COL].to_numpy()
    return _finish(out, output, index)


def sort_like_local(
    out: pd.DataFrame, id_col: str, time_col: str, extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Order a concatenated result as the local models do: series, (cutoff,) time."""
    keys = [id_col, *extra, time_col]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------- backends
@runtime_checkable
class Backend(Protocol):
    """Where forecasting, backtesting and detection run; the results do not depend on it."""

    name: str

    def forecast(
        self,
        model: BaseForecaster,
        data: SeriesData,
        h: int,
        *,
        level: Sequence[int] = (80, 95),
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Fit ``model`` and forecast ``h`` steps of every series of ``data``."""
        ...

    def cross_validation(
        self,
        model: BaseForecaster,
        data: SeriesData,
        h: int,
        n_windows: int = 1,
        step: int | None = None,
        *,
        level: Sequence[int] = (80, 95),
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Rolling-origin backtest of ``model`` on every series of ``data``."""
        ...

    def detect(
        self,
        detector: StreamingDetector,
        data: SeriesData,
        *,
        threshold: float | None = None,
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Score every row of ``data`` (input order) with ``detector``."""
        ...

    def close(self) -> None:
        """Release what the backend started (a cluster, a client)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _check_output(output: str | Path | None) -> Path | None:
    if output is None:
        return None
    out = Path(output)
    if out.exists() and any(out.glob("part-*.parquet")):
        raise ConfigError(f"parameter output: {out} already holds result files")
    out.mkdir(parents=True, exist_ok=True)
    return out


class PartitionBackend:
    """What every backend shares: checks, partition functions, and how results are gathered.

    A subclass says where partitions run: :meth:`partitions` turns the data into
    references a worker can load (frames, futures or parquet paths) and
    :meth:`_map` runs a partition function over them. :meth:`_in_process`
    names the data it gives to the model whole, in this process, instead.
    """

    name: str

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release what the backend started (a cluster, a client)."""

    # --------------------------------------------------------------- hooks
    def partitions(self, data: SeriesData, id_col: str, *, keep_row: bool = False) -> list[Any]:
        """References to partitions of whole series."""
        raise NotImplementedError

    def _map(
        self,
        func: Callable[..., pd.DataFrame | int],
        refs: Sequence[Any],
        args: tuple[Any, ...],
        output: Path | None,
    ) -> list[Any]:
        """``func(ref, *args, output, index)`` for every partition reference."""
        raise NotImplementedError

    def _in_process(self, data: SeriesData) -> pd.DataFrame | None:
        """The frame to run whole in this process, or None to run ``data`` by partitions."""
        return None

    def _map_forecast(
        self,
        model: BaseForecaster,
        refs: Sequence[Any],
        args: tuple[Any, ...],
        output: Path | None,
    ) -> list[Any]:
        return self._map(forecast_partition, refs, args, output)

    def _input_order(self, result: pd.DataFrame) -> pd.DataFrame:
        """Detections gathered from partitions, in the order the caller expects."""
        return result

    # ----------------------------------------------------------------- API
    def forecast(
        self,
        model: BaseForecaster,
        data: SeriesData,
        h: int,
        *,
        level: Sequence[int] = (80, 95),
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Fit ``model`` and forecast ``h`` steps of every series (see :class:`Backend`)."""
        h = check_horizon(h)
        levels = validate_levels(level)
        out = _check_output(output)
        args = (model, h, levels, id_col, time_col, target_col)
        frame = self._in_process(data)
        if frame is not None:
            return _write_whole(_frame(forecast_partition(frame, *args)), out)
        parts = self._map_forecast(model, self.partitions(data, id_col), args, out)
        return _collect(parts, out, id_col, time_col)

    def cross_validation(
        self,
        model: BaseForecaster,
        data: SeriesData,
        h: int,
        n_windows: int = 1,
        step: int | None = None,
        *,
        level: Sequence[int] = (80, 95),
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Rolling-origin backtest, partition by partition (see :class:`Backend`)."""
        h = check_horizon(h)
        levels = validate_levels(level)
        out = _check_output(output)
        args = (model, h, n_windows, step, levels, id_col, time_col, target_col)
        frame = self._in_process(data)
        if frame is not None:
            result = _frame(cross_validation_partition(frame, *args))
            return _write_whole(sort_like_local(result, id_col, time_col, ("cutoff",)), out)
        parts = self._map(cross_validation_partition, self.partitions(data, id_col), args, out)
        return _collect(parts, out, id_col, time_col, extra=("cutoff",))

    def detect(
        self,
        detector: StreamingDetector,
        data: SeriesData,
        *,
        threshold: float | None = None,
        output: str | Path | None = None,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame | Path:
        """Score every row with ``detector`` (see :class:`Backend`)."""
        out = _check_output(output)
        args = (detector, threshold, id_col, time_col, target_col)
        frame = self._in_process(data)
        if frame is not None:
            return _write_whole(_frame(detect_partition(frame, *args)), out)
        refs = self.partitions(data, id_col, keep_row=isinstance(data, pd.DataFrame))
        parts = self._map(detect_partition, refs, args, out)
        if out is not None:
            return out
        frames = [p for p in parts if isinstance(p, pd.DataFrame)]
        return self._input_order(pd.concat(frames, ignore_index=True))


class LocalBackend(PartitionBackend):
    """Run in this process (and, for partitioned data, in ``n_jobs`` worker processes).

    Parameters
    ----------
    n_jobs : int
        Worker processes over partitions of a :class:`SeriesPartitions` folder
        (``-1``: all CPUs). A pandas frame is given to the model whole: its
        own ``n_jobs`` decides its parallelism.
    """

    name = "local"

    def __init__(self, *, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def __repr__(self) -> str:
        return f"LocalBackend(n_jobs={self.n_jobs})"

    def partitions(self, data: SeriesData, id_col: str, *, keep_row: bool = False) -> list[Any]:
        """The partition files of a :class:`SeriesPartitions` folder."""
        return list(data.files)

    def _in_process(self, data: SeriesData) -> pd.DataFrame | None:
        return None if isinstance(data, SeriesPartitions) else _as_pandas(data)

    def _map(
        self,
        func: Callable[..., pd.DataFrame | int],
        refs: Sequence[Any],
        args: tuple[Any, ...],
        output: Path | None,
    ) -> list[Any]:
        items = [(f, i) for i, f in enumerate(refs)]
        return parallel_map(_call_item, items, self.n_jobs, func, args, output, min_items_per_job=1)


def _frame(result: pd.DataFrame | int) -> pd.DataFrame:
    # A partition function returns a frame when it was given no output folder.
    assert isinstance(result, pd.DataFrame)
    return result


def _call_item(
    item: tuple[Path, int],
    func: Callable[..., pd.DataFrame | int],
    args: tuple[Any, ...],
    output: Path | None,
) -> pd.DataFrame | int:
    path, index = item
    return func(path, *args, output, index)


def _as_pandas(data: SeriesData) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if type(data).__module__.startswith("dask"):
        raise ConfigError(
            "parameter data: the local backend takes a pandas frame or SeriesPartitions, "
            "got a dask DataFrame; use backend='dask' (or .compute() a small one)"
        )
    raise ConfigError(
        f"parameter data must be a pandas DataFrame or SeriesPartitions, got {type(data).__name__}"
    )


def _write_whole(result: pd.DataFrame, out: Path | None) -> pd.DataFrame | Path:
    if out is None:
        return result
    result.to_parquet(out / "part-00000.parquet", index=False)
    return out


def _collect(
    parts: Sequence[pd.DataFrame | int],
    out: Path | None,
    id_col: str,
    time_col: str,
    extra: Sequence[str] = (),
) -> pd.DataFrame | Path:
    if out is not None:
        return out
    frames = [p for p in parts if isinstance(p, pd.DataFrame) and len(p)]
    if not frames:
        frames = [p for p in parts if isinstance(p, pd.DataFrame)][:1]
    return sort_like_local(pd.concat(frames, ignore_index=True), id_col, time_col, extra)


def get_backend(
    name: str = "local",
    scheduler_address: str | None = None,
    *,
    n_jobs: int = 1,
    n_workers: int = 2,
    threads_per_worker: int = 1,
) -> Backend:
    """Build a backend by name (the CLI's ``--backend`` and ``--scheduler-address``).

    Parameters
    ----------
    name : {"local", "dask"}
        Backend name.
    scheduler_address : str, optional
        ``tcp://host:port`` of a running Dask scheduler. Without it the Dask
        backend starts a ``LocalCluster`` of ``n_workers`` processes with
        ``threads_per_worker`` threads and closes it in :meth:`Backend.close`.
    n_jobs : int
        Worker processes of the local backend over partitioned data.

    Raises
    ------
    ConfigError
        For an unknown name, an address given to the local backend, or the Dask
        backend without dask installed.
    """
    if name not in BACKENDS:
        raise ConfigError(f"parameter backend must be one of {list(BACKENDS)}, got {name!r}")
    if name == "local":
        if scheduler_address:
            raise ConfigError(
                "parameter scheduler_address is only used by the dask backend; "
                f"got {scheduler_address!r} with backend 'local'"
            )
        return LocalBackend(n_jobs=n_jobs)
    from models.dask_backend import DaskBackend

    return DaskBackend(
        scheduler_address=scheduler_address,
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
    )
