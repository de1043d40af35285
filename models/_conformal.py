"""Split-conformal intervals from rolling-origin residuals, scaled per series.

Given out-of-sample residuals ``e[i, w, j]`` (series ``i``, window ``w``,
horizon step ``j``) a series scale ``s_i`` (the geometric mean of its mean
absolute residual and an in-sample prior: its mean absolute seasonal
difference times the median ratio of the two over all series) turns them into
comparable scores ``|e| / s_i``. For each horizon step the scores of
all series in a neighbourhood of steps holding at least ``min_pool`` values
are pooled, and the finite-sample conformal quantile ``q_j(level)`` gives the
interval ``yhat +- q_j * s_i``. Pooling across series is what makes intervals
usable with a couple of windows; the per-series scale keeps them adaptive.
"""

from __future__ import annotations

import math

import numpy as np

from models._panel import SeriesPanel
from models.base import Bands

__all__ = ["ConformalCalibrator", "insample_scale"]


def insample_scale(panel: SeriesPanel, season_length: int) -> np.ndarray:
    """Mean absolute seasonal (or one-step) difference per series, ``(n_series,)``.

    Series with fewer than ``season_length + 1`` observations use the one-step
    difference; constant series get 0.
    """
    out = np.zeros(panel.n_series)
    pos = panel.positions
    sid = panel.series_index
    for lag in (1, season_length) if season_length > 1 else (1,):
        ok = np.flatnonzero(pos >= lag)
        e = np.abs(panel.y[ok] - panel.y[ok - lag])
        sums = np.bincount(sid[ok], weights=e, minlength=panel.n_series)
        counts = np.bincount(sid[ok], minlength=panel.n_series)
        has = counts > 0
        out[has] = sums[has] / counts[has]
    return out


class ConformalCalibrator:
    """Per-horizon conformal quantiles of per-series scaled absolute residuals.

    Parameters
    ----------
    min_pool : int
        Fewest scores pooled for one horizon step; neighbouring steps are added
        until it is reached.

    Attributes
    ----------
    horizon_ : int
        Number of horizon steps calibrated.
    scale_ : numpy.ndarray, shape (n_series,)
        Scale of each series.
    scores_ : numpy.ndarray, shape (n_scores, horizon_)
        Scaled absolute residuals, NaN where missing.
    """

    def __init__(self, *, min_pool: int = 200) -> None:
        self.min_pool = min_pool

    def fit(
        self,
        residuals: np.ndarray,
        fallback_scale: np.ndarray,
    ) -> ConformalCalibrator:
        """Learn series scales and pooled scores.

        Parameters
        ----------
        residuals : numpy.ndarray, shape (n_series, n_windows, horizon)
            Actual minus forecast; NaN where unavailable (series too short).
        fallback_scale : numpy.ndarray, shape (n_series,)
            A naive scale of each series (see :func:`insample_scale`), used to
            scale series without residuals and as a floor.
        """
        res = np.asarray(residuals, dtype=float)
        n, _, horizon = res.shape
        absres = np.abs(res)
        has = np.isfinite(absres).any(axis=(1, 2))
        own = np.full(n, np.nan)
        if has.any():
            own[has] = np.nanmean(absres[has].reshape(int(has.sum()), -1), axis=1)
        fb = np.asarray(fallback_scale, dtype=float)
        ratio_ok = has & (fb > 0) & np.isfinite(own)
        ratio = float(np.median(own[ratio_ok] / fb[ratio_ok])) if ratio_ok.any() else 1.0
        prior = fb * ratio
        # The own scale comes from a few windows and is noisy; noise in the scale
        # costs coverage, so it is shrunk geometrically towards the in-sample prior.
        blended = np.where(prior > 0, np.sqrt(np.maximum(own, 0) * prior), own)
        scale = np.where(has, blended, prior)
        # Floor: a series that happened to be forecast perfectly still has some noise.
        floor = np.maximum(0.05 * fb * ratio, 1e-12)
        self.scale_ = np.maximum(np.nan_to_num(scale, nan=0.0), floor)
        self.scores_ = (absres / self.scale_[:, None, None]).reshape(-1, horizon)
        self.horizon_ = horizon
        return self

    def quantiles(self, levels: list[int]) -> np.ndarray:
        """Return conformal quantiles of shape ``(len(levels), horizon_)``."""
        scores = self.scores_
        horizon = self.horizon_
        finite = np.isfinite(scores)
        counts = finite.sum(axis=0)
        out = np.zeros((len(levels), horizon))
        if counts.sum() == 0:
            return out
        for j in range(horizon):
            k = 0
            while True:
                lo, hi = max(j - k, 0), min(j + k + 1, horizon)
                if counts[lo:hi].sum() >= self.min_pool or (lo == 0 and hi == horizon):
                    break
                k += 1
            pool = scores[:, lo:hi][finite[:, lo:hi]]
            m = len(pool)
            if m == 0:
                continue
            for li, lv in enumerate(levels):
                q = min(math.ceil((m + 1) * lv / 100) / m, 1.0)
                out[li, j] = float(np.quantile(pool, q, method="higher"))
        return out

    def bands(self, mean: np.ndarray, levels: list[int], rows: np.ndarray | None = None) -> Bands:
        """Intervals ``mean +- q_j * scale_i`` for a forecast of shape ``(n, h)``.

        Steps beyond the calibrated horizon grow like ``sqrt(j / horizon_)``.

        Parameters
        ----------
        mean : numpy.ndarray, shape (n, h)
        levels : list of int
        rows : numpy.ndarray of int, optional
            Which calibrated series the rows of ``mean`` are; default all, in order.
        """
        h = mean.shape[1]
        q = self.quantiles(levels)
        horizon = self.horizon_
        if h <= horizon:
            qh = q[:, :h]
        else:
            extra = q[:, -1:] * np.sqrt(np.arange(horizon + 1, h + 1) / horizon)[None, :]
            qh = np.concatenate([q, extra], axis=1)
        scale = self.scale_ if rows is None else self.scale_[rows]
        out: Bands = {}
        for li, lv in enumerate(levels):
            width = scale[:, None] * qh[li][None, :]
            out[lv] = (mean - width, mean + width)
        return out
