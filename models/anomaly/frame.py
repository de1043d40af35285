"""Run streaming detectors over long-format frames.

:func:`detect_series` is the function behind ``forecaster detect``: it takes a
series frame (``unique_id, ds, y``), streams every series through a detector in
time order and returns one row per input row, in input order, with ``score``
and ``is_anomaly`` added.

Ordering and causality
    Rows are processed per series in ``(ds, input position)`` order; rows that
    share ``(unique_id, ds)`` are consecutive observations in input order. Rows
    with a missing ``y`` get score 0, are never anomalous and do not touch the
    detector state. A row's result depends only on rows of its series that come
    before it in that order, so running on a prefix of a time-ordered input
    gives the same rows for that prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError
from models.anomaly.base import StreamingDetector
from models.anomaly.detectors import (
    EnsembleDetector,
    ForecastResidualDetector,
    IsolationForestDetector,
    NoveltyDetector,
    RobustSeasonalDetector,
)

#: The detector ``forecaster detect`` runs when none is named.
DEFAULT_DETECTOR = "novelty"

#: Output columns of :func:`detect_series`, in order (before renaming).
OUTPUT_COLUMNS: tuple[str, ...] = ("unique_id", "ds", "y", "score", "is_anomaly")


def _ensemble() -> StreamingDetector:
    return EnsembleDetector(
        [NoveltyDetector(), ForecastResidualDetector(threshold=0.9999), RobustSeasonalDetector()]
    )


#: Registry of named detectors with their default parameters.
DETECTORS: dict[str, Callable[[], StreamingDetector]] = {
    "novelty": NoveltyDetector,
    "residual": ForecastResidualDetector,
    "seasonal": RobustSeasonalDetector,
    "iforest": IsolationForestDetector,
    "ensemble": _ensemble,
}


def make_detector(
    name: str = DEFAULT_DETECTOR, threshold: float | None = None
) -> StreamingDetector:
    """Build a registered detector, optionally with a non-default threshold.

    Parameters
    ----------
    name : str
        One of :data:`DETECTORS`.
    threshold : float, optional
        Alert threshold on the calibrated score, in (0, 1].

    Raises
    ------
    ValueError
        For an unknown name or an invalid threshold.
    """
    if name not in DETECTORS:
        raise ValueError(f"parameter detector must be one of {sorted(DETECTORS)}, got {name!r}")
    det = DETECTORS[name]()
    if threshold is not None:
        det.threshold = threshold
    _ = det.threshold_  # validates
    return det


def series_matrix(
    codes: np.ndarray, order: np.ndarray, y: np.ndarray, n_series: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay out long-format values as a ``(n_series, max_len)`` matrix.

    Parameters
    ----------
    codes : ndarray of int, shape (n_rows,)
        Series index of each row.
    order : ndarray of int, shape (n_rows,)
        Row positions sorted by (series, time).
    y : ndarray of float, shape (n_rows,)
        Values (NaN for missing).
    n_series : int
        Number of series.

    Returns
    -------
    matrix : ndarray, shape (n_series, max_len)
        NaN-padded values, each row in time order.
    row_of : ndarray of int, shape (n_rows,)
        Matrix row of each input row.
    col_of : ndarray of int, shape (n_rows,)
        Matrix column of each input row.
    """
    sorted_codes = codes[order]
    counts = np.bincount(codes, minlength=n_series)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col_sorted = np.arange(order.size) - starts[sorted_codes]
    width = int(counts.max()) if counts.size else 0
    matrix = np.full((n_series, width), np.nan)
    matrix[sorted_codes, col_sorted] = y[order]
    row_of = np.empty(order.size, dtype=np.int64)
    col_of = np.empty(order.size, dtype=np.int64)
    row_of[order] = sorted_codes
    col_of[order] = col_sorted
    return matrix, row_of, col_of


def detect_series(
    df: pd.DataFrame,
    detector: StreamingDetector | str = DEFAULT_DETECTOR,
    *,
    threshold: float | None = None,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> pd.DataFrame:
    """Score every row of a series frame with a streaming detector.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format with ``id_col``, ``time_col`` (sortable timestamps) and a
        numeric ``target_col`` (NaN allowed). Other columns are ignored.
    detector : StreamingDetector or str, default "novelty"
        A detector (it is reset) or a registered name.
    threshold : float, optional
        Overrides the detector's threshold.
    id_col, time_col, target_col : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per input row, in input order, with columns ``id_col, time_col,
        target_col, score, is_anomaly``: ``score`` in [0, 1] (float64),
        ``is_anomaly`` 0/1 (int8).

    Raises
    ------
    InvalidFrameError
        When a column is missing, ``target_col`` is not numeric or holds
        infinities, or ids / timestamps are missing.
    """
    for col in (id_col, time_col, target_col):
        if col not in df.columns:
            raise InvalidFrameError(
                f"missing required column; got columns {list(df.columns)}",
                column=col,
                frame="series",
            )
    ids = df[id_col]
    rows = np.flatnonzero(ids.isna().to_numpy())
    if rows.size:
        raise InvalidFrameError(
            "contains missing ids", column=id_col, rows=rows.tolist(), frame="series"
        )
    ts = df[time_col]
    rows = np.flatnonzero(ts.isna().to_numpy())
    if rows.size:
        raise InvalidFrameError(
            "contains missing timestamps", column=time_col, rows=rows.tolist(), frame="series"
        )
    yser = df[target_col]
    if not pd.api.types.is_numeric_dtype(yser) or pd.api.types.is_bool_dtype(yser):
        raise InvalidFrameError(
            f"must be numeric, got dtype {yser.dtype}", column=target_col, frame="series"
        )
    y = yser.to_numpy(dtype=np.float64, na_value=np.nan)
    rows = np.flatnonzero(np.isinf(y))
    if rows.size:
        raise InvalidFrameError(
            "contains infinite values", column=target_col, rows=rows.tolist(), frame="series"
        )

    det = make_detector(detector, threshold) if isinstance(detector, str) else detector
    if threshold is not None and not isinstance(detector, str):
        det.threshold = threshold
    n = len(df)
    out = pd.DataFrame(
        {id_col: ids.to_numpy(), time_col: ts.to_numpy(), target_col: y},
        index=pd.RangeIndex(n),
    )
    if n == 0:
        out["score"] = np.zeros(0)
        out["is_anomaly"] = np.zeros(0, dtype=np.int8)
        return out
    out[time_col] = ts.reset_index(drop=True)
    codes, _ = pd.factorize(ids, sort=True)
    tkey = pd.Index(ts).argsort(kind="stable")
    tpos = np.empty(n, dtype=np.int64)
    tpos[tkey] = np.arange(n)
    order = np.lexsort((np.arange(n), tpos, codes))
    n_series = int(codes.max()) + 1
    matrix, row_of, col_of = series_matrix(codes, order, y, n_series)
    scores, alerts = det.run(matrix)
    out["score"] = scores[row_of, col_of]
    out["is_anomaly"] = alerts[row_of, col_of].astype(np.int8)
    return out


def detector_names() -> Sequence[str]:
    """Names accepted by :func:`make_detector`, default first."""
    return [DEFAULT_DETECTOR, *sorted(k for k in DETECTORS if k != DEFAULT_DETECTOR)]
