"""Calibrators: map raw anomaly scores to comparable probabilities in [0, 1].

A raw score (a z-score of a forecast residual, an isolation depth, ...) means
different things on different series. :class:`TailCalibrator` replaces it with
its probability under the series' *own past* raw scores: the empirical CDF in
the bulk and an extreme-value (exponential on ``log1p``, i.e. Pareto) tail
fitted to the largest past scores beyond it, so that new records get
probabilities above ``1 - 1/n`` that still grow with their margin. The score of
time ``t`` only uses raw scores before ``t``.
"""

from __future__ import annotations

import numpy as np

from models.anomaly._ring import BoolArray, FloatArray


class TailCalibrator:
    """Empirical-CDF calibrator with an extreme-value tail, vectorised over series.

    Parameters
    ----------
    n_bins : int, default 128
        Histogram bins over ``log1p(raw score)`` in ``[0, log_max]``.
    log_max : float, default 24.0
        Upper edge of the histogram in ``log1p`` units (raw scores up to ~2.6e10;
        larger ones fall in the last bin and are handled by the tail).
    tail_k : int, default 16
        Number of largest past scores, kept exactly, that define the tail fit.
    min_count : int, default 30
        Calibrated score is 0 until a series has this many past raw scores.

    Notes
    -----
    Memory is ``n_series * (n_bins + tail_k)`` floats; one step costs
    ``O(n_series * n_bins)`` vectorised operations.
    """

    def __init__(
        self,
        n_bins: int = 128,
        log_max: float = 24.0,
        tail_k: int = 16,
        min_count: int = 30,
    ) -> None:
        self.n_bins = n_bins
        self.log_max = log_max
        self.tail_k = tail_k
        self.min_count = min_count

    def reset(self, n_series: int) -> TailCalibrator:
        """Allocate state for ``n_series`` streams and return ``self``."""
        if int(self.n_bins) < 2:
            raise ValueError(f"parameter n_bins must be >= 2, got {self.n_bins!r}")
        if not float(self.log_max) > 0:
            raise ValueError(f"parameter log_max must be > 0, got {self.log_max!r}")
        if int(self.tail_k) < 2:
            raise ValueError(f"parameter tail_k must be >= 2, got {self.tail_k!r}")
        if int(self.min_count) < int(self.tail_k):
            raise ValueError(
                f"parameter min_count must be >= tail_k ({self.tail_k}), got {self.min_count!r}"
            )
        self.width_ = float(self.log_max) / int(self.n_bins)
        self.hist_: FloatArray = np.zeros((n_series, int(self.n_bins)), dtype=np.float64)
        self.count_: FloatArray = np.zeros(n_series, dtype=np.float64)
        # Largest past log-scores, ascending per row; -inf while fewer than tail_k.
        self.top_: FloatArray = np.full((n_series, int(self.tail_k)), -np.inf, dtype=np.float64)
        return self

    def _bins(self, u: FloatArray) -> tuple[np.ndarray, FloatArray]:
        pos = np.clip(u / self.width_, 0.0, self.n_bins - 1e-9)
        b = pos.astype(np.int64)
        return b, pos - b

    def calibrate(self, raw: FloatArray, mask: BoolArray) -> FloatArray:
        """Calibrate one step of raw scores, then learn them.

        Parameters
        ----------
        raw : ndarray, shape (n_series,)
            Raw scores, larger = more anomalous; negative values count as 0.
        mask : ndarray of bool, shape (n_series,)
            Which series have a raw score at this step (others are left alone).

        Returns
        -------
        ndarray, shape (n_series,)
            Calibrated scores in [0, 1]; 0 where ``mask`` is false or during warm-up.
        """
        mask = mask & np.isfinite(raw)
        u = np.log1p(np.maximum(np.where(mask, raw, 0.0), 0.0))
        b, frac = self._bins(u)
        rows = np.arange(raw.shape[0])
        n = self.count_
        cum = np.cumsum(self.hist_, axis=1)
        below = np.where(b > 0, cum[rows, np.maximum(b - 1, 0)], 0.0)
        le = below + frac * self.hist_[rows, b]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            surv = np.maximum(1.0 - le / n, 0.0)
            k = float(self.tail_k)
            kth = self.top_[:, 0]
            beta = np.maximum(self.top_.mean(axis=1) - kth, 1e-3)
            tail = (k / (n + 1.0)) * np.exp(-(u - kth) / beta)
        surv = np.where(u > kth, tail, surv)
        score = np.clip(1.0 - surv, 0.0, 1.0)
        score[~mask | (n < self.min_count)] = 0.0
        self._learn(u, b, mask)
        return score

    def _learn(self, u: FloatArray, b: np.ndarray, mask: BoolArray) -> None:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        self.hist_[rows, b[rows]] += 1.0
        self.count_[rows] += 1.0
        better = rows[u[rows] > self.top_[rows, 0]]
        if better.size:
            self.top_[better, 0] = u[better]
            self.top_[better] = np.sort(self.top_[better], axis=1)
