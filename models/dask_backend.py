"""The Dask backend: the same partition functions, run on ``distributed`` workers.

Dask is an optional dependency (the ``dask`` and ``dev`` extras); this module
is the one place that knows whether it is installed (:data:`DASK_INSTALLED`)
and imports it only when a :class:`DaskBackend` is built, so the local path
never loads it.

Data reach the workers in three ways, all as partitions of whole series:

* a pandas frame is split by id hash on the client and each partition is
  scattered to a worker (the frame was in memory already);
* a :class:`~models.backends.SeriesPartitions` folder is read by the workers
  file by file (the client never loads it);
* a dask DataFrame is shuffled on the id column (whole series per partition)
  and its partitions computed on the workers.

Each partition runs :func:`~models.backends.forecast_partition` (or the
cross-validation / detection one): the local code path, hence identical
forecasts for per-series models. Results are gathered only when the caller
asks for a pandas frame; with ``output=`` every worker writes its own parquet
file.

The global LightGBM (:class:`~models.lgbm.LGBMForecaster`) is trained once
over all partitions with ``lightgbm.dask.DaskLGBMRegressor``: features are
built on the workers, partition by partition, exactly as the local model
builds them; only the boosters travel through the client. Its conformal
intervals come from a hold-out booster trained the same way, with the
per-horizon quantiles pooled within each partition (thousands of series),
where the local model pools over all series: one reason, with the
data-parallel trees, why its figures match the local ones within a tolerance
rather than exactly.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from models.backends import (
    ROW_COL,
    SERIES_PER_PARTITION,
    PartitionBackend,
    SeriesData,
    SeriesPartitions,
    _fit_forecast,
    split_frame,
)
from models.base import BaseForecaster
from models.lgbm import LGBMForecaster

__all__ = ["DASK_INSTALLED", "DaskBackend"]

#: Whether ``dask.dataframe`` and ``distributed`` can be imported (checked without importing).
DASK_INSTALLED: bool = all(
    importlib.util.find_spec(name) is not None for name in ("dask", "distributed")
)


def _require_dask() -> None:
    if not DASK_INSTALLED:
        raise ConfigError(
            "parameter backend 'dask' needs dask and distributed; install the extra: "
            "pip install 'forecaster[dask]'"
        )


def _worker_environ() -> dict[str, Any]:
    """Environment of the worker processes of the LocalCluster this backend starts.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_``; setting it freezes glibc's
    mmap threshold at 128 KiB, so every temporary numpy array above that is
    mapped and unmapped again: the vectorised models (thousands of ~1 MiB
    temporaries per partition) ran 2-3x slower on the workers than in a plain
    process. A 64 MiB mmap threshold restores heap reuse for them (measured:
    10k series, 42.6 s -> 13.9 s). A value the user configured is kept.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.setdefault("MALLOC_MMAP_THRESHOLD_", 64 * 2**20)
    return environ


class DaskBackend(PartitionBackend):
    """Run forecasting, backtesting and detection on a Dask cluster.

    Parameters
    ----------
    scheduler_address : str, optional
        ``tcp://host:port`` of a running scheduler. Workers must see the same
        files as the client for :class:`~models.backends.SeriesPartitions`
        and ``output=`` folders (a shared or object-store path). Start its
        workers with ``MALLOC_MMAP_THRESHOLD_=67108864`` in their environment
        (see :func:`_worker_environ`).
    client : distributed.Client, optional
        An existing client (not closed by :meth:`close`).
    n_workers, threads_per_worker : int
        Size of the ``LocalCluster`` started when neither an address nor a
        client is given (closed by :meth:`close`).
    series_per_partition : int
        Series per partition when a pandas frame is split.
    timeout : str
        How long to wait for the scheduler at ``scheduler_address``.

    Attributes
    ----------
    client : distributed.Client
    """

    name = "dask"

    def __init__(
        self,
        *,
        scheduler_address: str | None = None,
        client: Any = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        series_per_partition: int = SERIES_PER_PARTITION,
        timeout: str = "20s",
    ) -> None:
        _require_dask()
        from distributed import Client, LocalCluster

        self.scheduler_address = scheduler_address
        self.series_per_partition = int(series_per_partition)
        self._cluster: Any = None
        self._own_client = client is None
        if client is not None:
            if scheduler_address:
                raise ConfigError("parameters client and scheduler_address are exclusive")
            self.client = client
        elif scheduler_address:
            try:
                self.client = Client(scheduler_address, timeout=timeout)
            except OSError as exc:
                raise ConfigError(
                    f"parameter scheduler_address: cannot reach a Dask scheduler at "
                    f"{scheduler_address!r} ({exc})"
                ) from None
        else:
            import dask

            with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
                self._cluster = LocalCluster(
                    n_workers=int(n_workers),
                    threads_per_worker=int(threads_per_worker),
                    processes=True,
                    dashboard_address=None,
                )
            self.client = Client(self._cluster)

    def __repr__(self) -> str:
        where = self.scheduler_address or ("LocalCluster" if self._cluster else "client")
        return f"DaskBackend({where})"

    def close(self) -> None:
        """Close the client and the cluster this backend started."""
        if self._own_client and self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        self.client = None

    # ------------------------------------------------------------ partitions
    def partitions(self, data: SeriesData, id_col: str, *, keep_row: bool = False) -> list[Any]:
        """References to partitions of whole series: futures or parquet paths."""
        if isinstance(data, SeriesPartitions):
            return [str(f) for f in data.files]
        if isinstance(data, pd.DataFrame):
            n = max(1, -(-int(data[id_col].nunique()) // self.series_per_partition))
            # At least one partition per worker thread, so every core works.
            n = max(n, self._threads())
            parts = split_frame(data, id_col, n, keep_row=keep_row)
            return list(self.client.scatter(parts))
        if type(data).__module__.startswith("dask"):
            # Whole series per partition: shuffle on the id unless it is the index already.
            ddf = data.shuffle(on=id_col) if id_col in data.columns else data
            return list(self.client.compute(ddf.to_delayed()))
        raise ConfigError(
            "parameter data must be a pandas DataFrame, SeriesPartitions or a dask DataFrame, "
            f"got {type(data).__name__}"
        )

    def _threads(self) -> int:
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))

    def _map(
        self,
        func: Callable[..., pd.DataFrame | int],
        refs: Sequence[Any],
        args: tuple[Any, ...],
        output: Path | None,
    ) -> list[Any]:
        return _client_map(self.client, func, refs, args, output)

    def _map_forecast(
        self,
        model: BaseForecaster,
        refs: Sequence[Any],
        args: tuple[Any, ...],
        output: Path | None,
    ) -> list[Any]:
        # LightGBM trains once over every partition (lightgbm.dask); other models
        # are fitted partition by partition.
        if type(model).name == "lgbm":
            _, h, levels, id_col, time_col, target_col = args
            return forecast_lgbm(
                self.client, model, refs, h, levels, id_col, time_col, target_col, output
            )
        return super()._map_forecast(model, refs, args, output)

    def _input_order(self, result: pd.DataFrame) -> pd.DataFrame:
        # A pandas input was split with its row positions: give its rows back in input order.
        if ROW_COL in result.columns:
            result = result.sort_values(ROW_COL, kind="stable").drop(columns=ROW_COL)
            result = result.reset_index(drop=True)
        return result


def _client_map(
    client: Any,
    func: Callable[..., pd.DataFrame | int],
    refs: Sequence[Any],
    args: tuple[Any, ...],
    output: Path | None,
) -> list[Any]:
    """Run ``func(ref, *args, output, index)`` on the workers and gather the results."""
    futures = client.map(
        _call,
        refs,
        range(len(refs)),
        fn=func,
        args=args,
        output=None if output is None else str(output),
        pure=False,
    )
    return list(client.gather(futures))


def _call(
    ref: Any,
    index: int,
    *,
    fn: Callable[..., pd.DataFrame | int],
    args: tuple[Any, ...],
    output: str | None,
) -> pd.DataFrame | int:
    with warnings.catch_warnings():
        # Warnings raised on workers are not seen by the caller; keep the logs quiet.
        warnings.simplefilter("ignore")
        return fn(ref, *args, output, index)


# ------------------------------------------------------------- global LightGBM
class PretrainedLGBM(LGBMForecaster):
    """``LGBMForecaster`` that installs boosters trained elsewhere instead of training.

    Fitting it on a partition runs the local ``fit``/``predict`` code (fallback
    for short series, recursive forecasts, conformal calibration) with the
    booster trained over every partition by ``lightgbm.dask`` and, for its
    calibration copy, the hold-out booster.
    """

    _boosters: dict[str, Any]
    _role: str = "full"

    def fresh(self) -> PretrainedLGBM:
        """An unfitted copy that installs the full booster (what a partition fits)."""
        est = type(self)(**self.get_params())
        est._boosters = self._boosters
        return est

    def clone(self, **overrides: Any) -> Self:
        copy = super().clone(**overrides)
        copy._boosters = self._boosters
        # LGBMForecaster clones itself only for its conformal calibration copy.
        copy._role = "holdout"
        return copy

    def _train(self, panel: Any) -> None:
        self.booster_ = self._boosters[self._role]
        self.feature_names_ = self._feature_names(list(panel.exog))
        self.n_train_rows_ = -1


def _lgbm_state(model: BaseForecaster, panel: Any) -> Any:
    """A copy of ``model`` with the resolved configuration of ``panel`` (no training)."""
    from models._frequency import default_season_length

    est: Any = model.clone()
    est._validate_params()
    est.freq_ = panel.freq
    est.season_length_ = int(
        est.season_length if est.season_length is not None else default_season_length(panel.freq)
    )
    est._cfg = est._resolved()
    est._holiday_days = est._holidays(panel)
    return est


def _lgbm_xy(
    ref: Any,
    model: BaseForecaster,
    drop: int,
    id_col: str,
    time_col: str,
    target_col: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of one partition, built as ``LGBMForecaster._train`` builds them.

    ``drop > 0`` builds the hold-out training set of the conformal calibration
    (series long enough, without their last ``drop`` observations).
    """
    from models._panel import to_panel
    from models.backends import load_partition

    part = load_partition(ref)
    names_len = 0
    if len(part) == 0:
        return np.empty((0, names_len), np.float32), np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel = to_panel(
            part, id_col=id_col, time_col=time_col, target_col=target_col, freq=model.freq
        )
    est = _lgbm_state(model, panel)
    names = est._feature_names([])
    min_len = est._min_length()
    keep = panel.lengths >= min_len
    if drop:
        keep &= panel.lengths - drop >= min_len
    if not keep.any():
        return np.empty((0, len(names)), np.float32), np.empty(0)
    panel = panel.take(np.flatnonzero(keep))
    if drop:
        panel = panel.truncate(drop)
    x, y, _ = est._training_rows(panel, use_exog=False)
    return x, y


def _train_dask(
    client: Any, model: BaseForecaster, refs: Sequence[Any], drop: int, cols: tuple[str, str, str]
) -> Any:
    """Train one booster over every partition with ``lightgbm.dask``."""
    import dask
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    xy = client.map(
        _lgbm_xy,
        refs,
        model=model,
        drop=drop,
        id_col=cols[0],
        time_col=cols[1],
        target_col=cols[2],
        pure=False,
    )
    shapes = client.gather(client.map(lambda r: r[0].shape, xy, pure=False))
    xs, ys = [], []
    for fut, shape in zip(xy, shapes, strict=True):
        if shape[0] == 0:
            continue
        item = dask.delayed(fut)
        xs.append(da.from_delayed(item[0], shape=shape, dtype=np.float32))
        ys.append(da.from_delayed(item[1], shape=(shape[0],), dtype=np.float64))
    if not xs:
        raise ConfigError("parameter data: no series is long enough to train LightGBM")
    x = da.concatenate(xs)
    y = da.concatenate(ys)
    params = dict(model._lgbm_params())  # type: ignore[attr-defined]
    rounds = int(params.pop("num_iterations", model.get_params()["n_estimators"]))
    # One LightGBM thread per Dask worker thread: the workers are the parallelism.
    params["num_threads"] = 1
    reg = DaskLGBMRegressor(client=client, n_estimators=rounds, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(x, y)
    booster = reg.to_local().booster_
    del xy
    return booster


def forecast_lgbm(
    client: Any,
    model: BaseForecaster,
    refs: Sequence[Any],
    h: int,
    levels: list[int],
    id_col: str,
    time_col: str,
    target_col: str,
    output: Path | None,
) -> list[Any]:
    """Global LightGBM on Dask: one booster over all partitions, forecasts per partition.

    The booster (and the hold-out booster of the conformal calibration, when
    intervals are asked for) is trained with ``lightgbm.dask`` on features
    built on the workers; each partition then runs the local ``fit``/``predict``
    code with those boosters. Conformal quantiles are pooled within each
    partition (thousands of series each), not across partitions.
    """
    cols = (id_col, time_col, target_col)
    boosters = {"full": _train_dask(client, model, refs, 0, cols)}
    if levels:
        drop = int(model.get_params()["conformal_windows"]) * h
        boosters["holdout"] = _train_dask(client, model, refs, drop, cols)
    pretrained = PretrainedLGBM(**model.get_params())
    pretrained._boosters = boosters
    args = (pretrained.fresh, h, levels, id_col, time_col, target_col)
    return _client_map(client, _fit_forecast, refs, args, output)
