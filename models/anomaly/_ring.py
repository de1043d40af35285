"""Per-series ring buffers for vectorised streaming state.

Every streaming detector keeps its state as arrays whose first axis is the
series. Series advance independently: a missing observation (NaN) for one
series does not move its buffer, so each row has its own write position and
fill count. All operations are vectorised over series; none loops in Python.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


class RingBuffer:
    """The last ``size`` values of each of ``n_series`` streams.

    Parameters
    ----------
    n_series : int
        Number of independent streams (rows).
    size : int
        Capacity per stream (columns).
    fill : float, default 0.0
        Value of slots that were never written (masked out by :meth:`filled`).
    """

    def __init__(self, n_series: int, size: int, fill: float = 0.0) -> None:
        if size < 1:
            raise ValueError(f"parameter size must be >= 1, got {size}")
        self.size = int(size)
        self.buf: FloatArray = np.full((n_series, self.size), fill, dtype=np.float64)
        self.pos: IntArray = np.zeros(n_series, dtype=np.int64)
        self.count: IntArray = np.zeros(n_series, dtype=np.int64)
        self._rows: IntArray = np.arange(n_series, dtype=np.int64)

    @property
    def n_series(self) -> int:
        """Number of streams."""
        return int(self.buf.shape[0])

    def push(self, values: FloatArray, mask: BoolArray) -> None:
        """Append ``values[i]`` to stream ``i`` wherever ``mask[i]`` is true."""
        rows = self._rows[mask]
        if rows.size == 0:
            return
        self.buf[rows, self.pos[rows]] = values[rows]
        self.pos[rows] = (self.pos[rows] + 1) % self.size
        self.count[rows] += 1

    def n_filled(self) -> IntArray:
        """Number of valid slots per stream, shape ``(n_series,)``."""
        return np.minimum(self.count, self.size)

    def filled(self) -> BoolArray:
        """Mask of written slots, shape ``(n_series, size)`` (buffer order)."""
        return np.arange(self.size)[None, :] < self.n_filled()[:, None]

    def window(self) -> tuple[FloatArray, BoolArray]:
        """All slots in buffer order (no copy) and their validity mask.

        Cheaper than :meth:`recent` when order does not matter (sums, maxima).
        """
        return self.buf, self.filled()

    def lag(self, k: int) -> FloatArray:
        """Value pushed ``k`` steps ago (``k=1``: the latest); NaN where unavailable."""
        if not 1 <= k <= self.size:
            raise ValueError(f"parameter k must be in [1, {self.size}], got {k}")
        out = self.buf[self._rows, (self.pos - k) % self.size].copy()
        out[self.count < k] = np.nan
        return out

    def recent(self, k: int) -> tuple[FloatArray, BoolArray]:
        """The last ``k`` values, newest first, and their validity mask.

        Returns
        -------
        values : ndarray, shape (n_series, k)
        valid : ndarray of bool, shape (n_series, k)
        """
        if not 1 <= k <= self.size:
            raise ValueError(f"parameter k must be in [1, {self.size}], got {k}")
        idx = (self.pos[:, None] - 1 - np.arange(k)[None, :]) % self.size
        vals = self.buf[self._rows[:, None], idx]
        valid = np.arange(k)[None, :] < np.minimum(self.count, k)[:, None]
        return vals, valid


def masked_mean_std(values: FloatArray, valid: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise mean and sample standard deviation over ``valid`` entries.

    Rows with fewer than two valid entries get NaN standard deviation (and NaN
    mean when empty). Two passes, so no catastrophic cancellation.
    """
    n = valid.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, values, 0.0).sum(axis=1) / n
        dev = np.where(valid, values - mean[:, None], 0.0)
        var = (dev * dev).sum(axis=1) / (n - 1.0)
    var[n < 2] = np.nan
    return mean, np.sqrt(var)


def masked_median(values: FloatArray, valid: BoolArray) -> FloatArray:
    """Row-wise median over ``valid`` entries (NaN for rows with none)."""
    x = np.where(valid, values, np.inf)
    x.sort(axis=1)
    n = valid.sum(axis=1)
    rows = np.arange(x.shape[0])
    lo = np.clip((n - 1) // 2, 0, x.shape[1] - 1)
    hi = np.clip(n // 2, 0, x.shape[1] - 1)
    with np.errstate(invalid="ignore"):
        med = 0.5 * (x[rows, lo] + x[rows, hi])
    med[n == 0] = np.nan
    return med
