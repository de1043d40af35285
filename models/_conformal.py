"""Split-conformal intervals from rolling-origin residuals, scaled per series.

Given out-of-sample residuals ``e[i, w, j]`` (series ``i``, window ``w``,
horizon step ``j``) a series scale ``s_i`` turns them into comparable scores
``|e| / s_i``. The scale is the power mean of the series' absolute residuals
(``scale_power`` 1: mean absolute residual; 2: root mean square, which weighs
the large errors that decide a 95 % interval), shrunk geometrically towards an
in-sample prior (its mean absolute seasonal difference times the median ratio
of the two over all series) with weight ``prior_weight``. Optionally the scale
also follows a per-series seasonal profile (``profile_strength``): hourly
series are often much noisier in the day than at night, so the root mean
square residual at each phase of the season (relative to the forecast origin)
multiplies the scale, raised to ``profile_strength``. For each horizon step the scores of
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
    scale_power : float
        Exponent ``p`` of the power mean ``mean(|e|**p)**(1/p)`` giving each
        series' own scale (1: mean absolute residual, 2: root mean square).
    prior_weight : float
        Weight in [0, 1] of the in-sample prior in the geometric blend with the
        series' own scale (0: own scale only; worth more with few windows).
    season_length : int
        Period of the seasonal profile of the scale (1: none).
    profile_strength : float
        Exponent of the seasonal profile (0: no profile, 1: the full profile).
        Phases are counted from the forecast origin, assuming the residual
        windows are contiguous and end at the last observation (window ``w``
        of ``W`` starts ``(W - w) * horizon`` steps before it).
    cross_fit : bool
        Score each window with the scale and profile learnt from the other
        windows (leave one window out), so that the conformal quantiles also
        cover the estimation noise of a per-series scale. The final scale still
        uses every window.

    Attributes
    ----------
    horizon_ : int
        Number of horizon steps calibrated.
    scale_ : numpy.ndarray, shape (n_series,)
        Scale of each series.
    profile_ : numpy.ndarray, shape (n_series, season_length)
        Multiplier of the scale per seasonal phase (ones without a profile).
    scores_ : numpy.ndarray, shape (n_scores, horizon_)
        Scaled absolute residuals, NaN where missing.
    """

    def __init__(
        self,
        *,
        min_pool: int = 200,
        scale_power: float = 1.0,
        prior_weight: float = 0.5,
        season_length: int = 1,
        profile_strength: float = 0.0,
        cross_fit: bool = False,
    ) -> None:
        self.min_pool = min_pool
        self.scale_power = scale_power
        self.prior_weight = prior_weight
        self.season_length = season_length
        self.profile_strength = profile_strength
        self.cross_fit = cross_fit

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
        _, windows, horizon = res.shape
        absres = np.abs(res)
        fb = np.asarray(fallback_scale, dtype=float)
        cuts = (windows - np.arange(windows)) * horizon
        self.horizon_ = horizon
        self.scale_, self.profile_ = self._scale_profile(absres, fb, cuts)
        if self.cross_fit and windows >= 2:
            # Each window scored with a scale learnt from the other windows: the
            # quantiles then also account for the noise in the scale itself.
            parts = []
            for w in range(windows):
                others = np.arange(windows) != w
                scale, profile = self._scale_profile(absres[:, others], fb, cuts[others])
                parts.append(absres[:, w] / self._width(scale, profile, horizon, cuts[w]))
            self.scores_ = np.concatenate(parts)
        else:
            self.scores_ = np.concatenate(
                [
                    absres[:, w] / self._width(self.scale_, self.profile_, horizon, cuts[w])
                    for w in range(windows)
                ]
            )
        return self

    @staticmethod
    def _width(scale: np.ndarray, profile: np.ndarray, horizon: int, cut: int) -> np.ndarray:
        """Scale of each series and step of a window starting ``cut`` steps before the end."""
        m = profile.shape[1]
        return np.maximum(scale[:, None] * profile[:, (np.arange(horizon) - cut) % m], 1e-12)

    def _scale_profile(
        self, absres: np.ndarray, fb: np.ndarray, cuts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Series scales ``(n,)`` and seasonal profiles ``(n, m)`` from absolute residuals."""
        n = absres.shape[0]
        has = np.isfinite(absres).any(axis=(1, 2))
        p = float(self.scale_power)
        own = np.full(n, np.nan)
        if has.any():
            flat = absres[has].reshape(int(has.sum()), -1)
            own[has] = np.nanmean(flat**p, axis=1) ** (1 / p)
        ratio_ok = has & (fb > 0) & np.isfinite(own)
        ratio = float(np.median(own[ratio_ok] / fb[ratio_ok])) if ratio_ok.any() else 1.0
        prior = fb * ratio
        # The own scale comes from a few windows and is noisy; noise in the scale
        # costs coverage, so it is shrunk geometrically towards the in-sample prior.
        a = float(self.prior_weight)
        with np.errstate(divide="ignore", invalid="ignore"):
            blended = np.where(prior > 0, np.maximum(own, 0) ** (1 - a) * prior**a, own)
        scale = np.where(has, blended, prior)
        # Floor: a series that happened to be forecast perfectly still has some noise.
        floor = np.maximum(0.05 * fb * ratio, 1e-12)
        scale = np.maximum(np.nan_to_num(scale, nan=0.0), floor)
        m = max(int(self.season_length), 1)
        profile = np.ones((n, m))
        if m > 1 and float(self.profile_strength) > 0 and has.any():
            profile = self._profile(absres, m, cuts) ** float(self.profile_strength)
        return scale, profile

    @staticmethod
    def _profile(absres: np.ndarray, m: int, cuts: np.ndarray) -> np.ndarray:
        """Root mean square residual per seasonal phase over its mean, ``(n, m)``.

        The phase of step ``j`` of a window starting ``cuts[w]`` steps before
        the end is that of forecast step ``j - cuts[w]``, so it lines up with
        the forecast's steps.
        Neighbouring phases are averaged (a few windows make each phase noisy),
        and the profile is kept within [0.2, 5] so no step gets a zero width.
        """
        n, _, horizon = absres.shape
        phase = (np.arange(horizon)[None, :] - np.asarray(cuts)[:, None]) % m
        sq = np.where(np.isfinite(absres), absres**2, 0.0)
        cnt = np.isfinite(absres).astype(float)
        flat_phase = phase.reshape(-1)
        s2 = np.zeros((n, m))
        c = np.zeros((n, m))
        for ph in range(m):
            sel = flat_phase == ph
            s2[:, ph] = sq.reshape(n, -1)[:, sel].sum(axis=1)
            c[:, ph] = cnt.reshape(n, -1)[:, sel].sum(axis=1)
        s2 = np.roll(s2, 1, axis=1) + s2 + np.roll(s2, -1, axis=1)
        c = np.roll(c, 1, axis=1) + c + np.roll(c, -1, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rms = np.sqrt(s2 / c)
            prof = rms / np.nanmean(rms, axis=1, keepdims=True)
        return np.clip(np.nan_to_num(prof, nan=1.0, posinf=1.0), 0.2, 5.0)

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
        # Calibrators pickled before profiles existed have none: a flat profile.
        full = getattr(self, "profile_", np.ones((len(self.scale_), 1)))
        profile = full if rows is None else full[rows]
        steps = scale[:, None] * profile[:, np.arange(h) % profile.shape[1]]
        out: Bands = {}
        for li, lv in enumerate(levels):
            width = steps * qh[li][None, :]
            out[lv] = (mean - width, mean + width)
        return out
