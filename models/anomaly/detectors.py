"""Streaming anomaly detectors.

Each detector is a :class:`~models.anomaly.base.StreamingDetector`: causal,
vectorised over series, O(1) or O(window) numpy work per step.

* :class:`NoveltyDetector` (the default, ``"novelty"``): multi-scale record
  breaking, confirmed by a local surprise. Best on NAB.
* :class:`ForecastResidualDetector` (``"residual"``): each value against the
  one-step forecast of an online exponential-smoothing model, residual over a
  robust scale, calibrated by :class:`~models.anomaly.calibration.TailCalibrator`.
* :class:`RobustSeasonalDetector` (``"seasonal"``): rolling median / MAD
  z-score, seasonal when a season is detected (causally) from the series.
* :class:`IsolationForestDetector` (``"iforest"``): multivariate, scikit-learn
  IsolationForest refitted on a trailing window.
* :class:`EnsembleDetector` (``"ensemble"``): OR of members, each at its own
  threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.anomaly._ring import (
    BoolArray,
    FloatArray,
    RingBuffer,
    masked_mean_std,
    masked_median,
)
from models.anomaly.base import StreamingDetector
from models.anomaly.calibration import TailCalibrator
from models.anomaly.online import EWScale, OnlineSeasonalES

_LN2 = float(np.log(2.0))


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"parameter {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"parameter {name} must be a finite number {bound}, got {value!r}")
    return float(value)


def evidence_to_score(evidence: FloatArray) -> FloatArray:
    """Map evidence ``e >= 0`` to ``1 - 2**-e`` in [0, 1): ``e = 1`` gives 0.5."""
    return -np.expm1(-_LN2 * np.maximum(evidence, 0.0))


class _Extremes:
    """Running max / min of a feature per series, and the exceedance of a new value."""

    def __init__(self, n_series: int) -> None:
        self.hi = np.full(n_series, -np.inf)
        self.lo = np.full(n_series, np.inf)
        self.n = np.zeros(n_series, dtype=np.int64)

    def exceedance(self, f: FloatArray, valid: BoolArray, min_history: int) -> FloatArray:
        """Distance of ``f`` beyond the past range, in units of the range (0 inside)."""
        span = self.hi - self.lo
        tol = 1e-9 * np.maximum(np.abs(self.hi), np.abs(self.lo)) + 1e-12
        with np.errstate(invalid="ignore", over="ignore"):
            up = (f - self.hi) / (span + tol)
            down = (self.lo - f) / (span + tol)
        out = np.maximum(np.maximum(up, down), 0.0)
        out[~valid | (self.n < min_history)] = 0.0
        return np.nan_to_num(out, nan=0.0)

    def learn(self, f: FloatArray, valid: BoolArray) -> None:
        self.hi = np.where(valid, np.maximum(self.hi, f), self.hi)
        self.lo = np.where(valid, np.minimum(self.lo, f), self.lo)
        self.n[valid] += 1


class NoveltyDetector(StreamingDetector):
    """Multi-scale record breaking, confirmed by a local surprise.

    A value is anomalous when some view of the series leaves the range that view
    has had over the series' whole past, and the value is also far from the
    last day's behaviour. The views are the value itself (spikes, level
    shifts to new levels), its one-step forecast residual against an EWMA level
    (abrupt changes) and its short rolling mean (sustained shifts), each in both
    directions.

    For view ``j`` with past range ``[lo_j, hi_j]`` the exceedance is
    ``ex_j = max(f_j - hi_j, lo_j - f_j, 0) / (hi_j - lo_j)``. A record only
    counts beyond a margin that shrinks with the history length ``n`` (a short
    history under-estimates the range): ``m(n) = margin + early_margin / n``.
    The local surprise is ``z = |y - mean| / std`` over the previous
    ``local_window`` values, maximised over the last ``lookback`` steps. The
    evidence is ``e = min(max_j ex_j / m(n), z_max / local_z)`` and the score
    ``1 - 2**-e``: 0.5 exactly when both conditions hold with no room to spare.

    Parameters
    ----------
    alpha : float, default 0.3
        Smoothing of the EWMA level whose one-step residual is a view.
    mean_window : int, default 24
        Length (observations) of the rolling-mean view.
    local_window : int, default 288
        Observations (before the current one) defining local behaviour.
    local_z : float, default 3.0
        Local z-score needed for the confirmation.
    lookback : int, default 24
        Observations over which the local z-score is maximised (a level shift
        is confirmed by the jump that started it).
    margin : float, default 0.01
        Asymptotic record margin, as a fraction of the past range.
    early_margin : float, default 6.0
        Extra margin ``early_margin / n`` while the history is short.
    min_history : int, default 50
        Values of a view needed before its records count.
    threshold : float, optional
        Alert threshold on the score (default 0.5).
    cooldown : int, default 200
        Observations of quiet time per series after an alert (one incident,
        one alert).
    escalation : float, optional, default 1.5
        During a cooldown, alert again when the score exceeds ``escalation``
        times the score of the last alert (a much worse incident; ``None``:
        never).
    season : int, default 288
        Season length in observations (288 = one day of 5-minute data; 24 for
        hourly data; 0 turns the seasonal gate off). A *rise* (a record of the
        value or of its one-step jump upwards) only counts when the value is
        above everything seen at the same time (``+- season_width``) in the
        last ``season_cycles`` seasons by ``season_margin`` of the past range,
        scaled like the record margin: a daily batch job's spike that creeps
        past its old record is not news. Drops and sustained shifts (the
        rolling-mean view) are never gated.
    season_width : int, default 6
    season_margin : float, default 0.05
    season_cycles : int, default 3

    Notes
    -----
    Windows are in observations, not wall time. The defaults were set on
    5-minute data (24 = 2 h, 288 = 1 day, 200 ~ 17 h). State per series:
    ``mean_window + local_window + lookback + season_cycles * season + O(1)``
    floats.
    """

    default_threshold = 0.5
    name = "novelty"

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        mean_window: int = 24,
        local_window: int = 288,
        local_z: float = 3.0,
        lookback: int = 24,
        margin: float = 0.01,
        early_margin: float = 6.0,
        min_history: int = 50,
        threshold: float | None = None,
        cooldown: int = 200,
        escalation: float | None = 1.5,
        season: int = 288,
        season_width: int = 6,
        season_margin: float = 0.05,
        season_cycles: int = 3,
    ) -> None:
        super().__init__(threshold=threshold, cooldown=cooldown, escalation=escalation)
        self.season = season
        self.season_width = season_width
        self.season_margin = season_margin
        self.season_cycles = season_cycles
        self.alpha = alpha
        self.mean_window = mean_window
        self.local_window = local_window
        self.local_z = local_z
        self.lookback = lookback
        self.margin = margin
        self.early_margin = early_margin
        self.min_history = min_history

    def _reset(self, n_series: int) -> None:
        self.level_ = OnlineSeasonalES(alpha=self.alpha).reset(n_series)
        self.mean_ring_ = RingBuffer(n_series, _positive_int("mean_window", self.mean_window))
        self.local_ring_ = RingBuffer(n_series, _positive_int("local_window", self.local_window, 2))
        self.z_ring_ = RingBuffer(n_series, _positive_int("lookback", self.lookback))
        self.local_z_ = _positive_float("local_z", self.local_z)
        self.margin_ = _positive_float("margin", self.margin, allow_zero=True)
        self.early_margin_ = _positive_float("early_margin", self.early_margin, allow_zero=True)
        if self.margin_ == 0 and self.early_margin_ == 0:
            raise ValueError("parameters margin and early_margin must not both be 0")
        self.min_history_ = _positive_int("min_history", self.min_history)
        self.views_ = [_Extremes(n_series) for _ in range(3)]
        self.n_ = np.zeros(n_series, dtype=np.int64)
        self.season_ = _positive_int("season", self.season, 0)
        self.season_width_ = _positive_int("season_width", self.season_width, 0)
        self.season_cycles_ = _positive_int("season_cycles", self.season_cycles)
        self.season_margin_ = _positive_float("season_margin", self.season_margin)
        if self.season_ and self.season_width_ >= self.season_:
            raise ValueError(
                f"parameter season_width must be < season ({self.season_}), "
                f"got {self.season_width!r}"
            )
        if self.season_:
            self.season_ring_ = RingBuffer(
                n_series, self.season_cycles_ * self.season_ + self.season_width_ + 1
            )

    def evidence(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        """Evidence ``e`` of one step (learns the step); see the class docstring."""
        # Views of the new value.
        pred = self.level_.predict()
        resid = x - pred
        resid_ok = mask & np.isfinite(pred)
        self.mean_ring_.push(x, mask)
        mean_ok = mask & (self.mean_ring_.count >= self.mean_ring_.size)
        rolling = self.mean_ring_.buf.sum(axis=1) / self.mean_ring_.size  # unfilled slots are 0
        views = ((x, mask), (resid, resid_ok), (rolling, mean_ok))

        n = np.maximum(self.n_, 1).astype(np.float64)
        need = self.margin_ + self.early_margin_ / n
        ex = np.zeros(x.shape[0])
        season_ex = self._seasonal_exceedance(x, self.views_[0]) if self.season_ else None
        for j, (ext, (f, ok)) in enumerate(zip(self.views_, views, strict=True)):
            ex_j = ext.exceedance(f, ok, self.min_history_)
            if j < 2 and season_ex is not None:
                # A rise no higher than the same time in recent seasons (a daily job's
                # spike) is expected: a new record of the value or of the jump is not
                # enough. Drops and sustained shifts (the rolling mean) are not gated.
                rising = f > ext.hi
                gate = season_ex / self.season_margin_ * need
                ex_j = np.where(rising, np.minimum(ex_j, gate), ex_j)
            ex = np.maximum(ex, ex_j)
            ext.learn(f, ok)
        if season_ex is not None:
            self.season_ring_.push(x, mask)

        # Local surprise against the previous local_window values.
        lv, lvalid = self.local_ring_.window()
        mu, sd = masked_mean_std(lv, lvalid)
        mean_abs = np.where(lvalid, np.abs(lv), 0.0).sum(axis=1) / np.maximum(lvalid.sum(1), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(x - mu) / (sd + 1e-9 * (mean_abs + 1e-12))
        z[~np.isfinite(z) | (lvalid.sum(axis=1) < 10)] = 0.0
        self.z_ring_.push(z, mask)
        zmax = self.z_ring_.buf.max(axis=1)  # z >= 0 and unfilled slots are 0

        self.local_ring_.push(x, mask)
        self.level_.update(x, mask)
        self.n_[mask] += 1
        e = np.minimum(ex / need, zmax / self.local_z_)
        e[~mask] = 0.0
        return e

    def _seasonal_exceedance(self, x: FloatArray, values: _Extremes) -> FloatArray:
        """Height of ``x`` above the values of the same time one season ago (+- width),
        in units of the past range of the values; inf without a season of history."""
        p, w = self.season_, self.season_width_
        ring = self.season_ring_
        lags = np.concatenate(
            [np.arange(c * p - w, c * p + w + 1) for c in range(1, self.season_cycles_ + 1)]
        )
        idx = (ring.pos[:, None] - lags[None, :]) % ring.size
        hi = ring.buf[ring._rows[:, None], idx].max(axis=1)
        span = values.hi - values.lo
        tol = 1e-9 * np.maximum(np.abs(values.hi), np.abs(values.lo)) + 1e-12
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.maximum(x - hi, 0.0) / (span + tol)
        out = np.nan_to_num(out, nan=0.0)
        out[ring.count < p + w] = np.inf  # one season is enough to start gating
        return out

    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        return evidence_to_score(self.evidence(x, mask))


class ForecastResidualDetector(StreamingDetector):
    """Forecast-interval residual detector.

    Each value is scored against the one-step forecast made *before* it by an
    online additive exponential-smoothing model (level, plus a seasonal profile
    when ``period > 1``). The raw score is ``|y - yhat| / scale`` where
    ``scale`` is an exponentially weighted, winsorised mean absolute residual
    (so the forecast interval is ``yhat +/- q * scale``), and the
    :class:`TailCalibrator` maps it to a probability against the series' own
    past residuals.

    Parameters
    ----------
    alpha : float, default 0.1
        Level smoothing.
    gamma : float, default 0.1
        Seasonal smoothing.
    period : int, default 0
        Season length in observations (0: none).
    scale_alpha : float, default 0.02
        Smoothing of the residual scale.
    threshold : float, optional
        Alert threshold on the calibrated score (default 0.999).
    cooldown : int, default 0
        Observations of quiet time after an alert.
    """

    default_threshold = 0.999
    name = "residual"

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        gamma: float = 0.1,
        period: int = 0,
        scale_alpha: float = 0.02,
        threshold: float | None = None,
        cooldown: int = 0,
    ) -> None:
        super().__init__(threshold=threshold, cooldown=cooldown)
        self.alpha = alpha
        self.gamma = gamma
        self.period = period
        self.scale_alpha = scale_alpha

    def _reset(self, n_series: int) -> None:
        self.forecaster_ = OnlineSeasonalES(self.alpha, self.gamma, self.period).reset(n_series)
        self.scale_ = EWScale(self.scale_alpha).reset(n_series)
        self.calibrator_ = TailCalibrator().reset(n_series)

    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        pred = self.forecaster_.predict()
        resid = x - pred
        scale = self.scale_.get()
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.abs(resid) / (scale + 1e-9 * (np.abs(pred) + 1e-12))
        ok = mask & np.isfinite(raw)
        score = self.calibrator_.calibrate(np.where(ok, raw, 0.0), ok)
        self.scale_.update(resid, mask & np.isfinite(pred))
        self.forecaster_.update(x, mask)
        return score


class RobustSeasonalDetector(StreamingDetector):
    """Robust seasonal residual z-score (rolling median / MAD).

    The expected value is the median of the same phase over the last
    ``cycles`` seasons when the series is seasonal, else the median of the last
    ``window`` values. The raw score is the residual over ``1.4826 * MAD`` of the
    last ``window`` residuals (the mean absolute residual when the MAD is 0, as
    on sparse series), calibrated by :class:`TailCalibrator`.

    The season is detected from the data, causally and in O(1) per step: for
    each candidate period ``P`` the detector keeps an exponentially weighted
    autocorrelation of the deviations from a running mean at lag ``P``; the
    series is seasonal with the best candidate whose autocorrelation reaches
    ``min_acf`` once at least two seasons have been seen.

    Parameters
    ----------
    periods : sequence of int, default (24, 168, 288)
        Candidate season lengths in observations (hourly day and week, 5-minute day).
    cycles : int, default 4
        Past seasons whose same-phase values form the seasonal median.
    window : int, default 48
        Values for the non-seasonal median and the residual MAD.
    min_acf : float, default 0.3
        Autocorrelation needed to call a series seasonal.
    memory : int, optional
        Half-life (observations) of the autocorrelation estimates (default: four
        times the longest candidate period).
    threshold : float, optional
        Alert threshold on the calibrated score (default 0.999).
    cooldown : int, default 0
        Observations of quiet time after an alert.
    """

    default_threshold = 0.999
    name = "seasonal"

    def __init__(
        self,
        *,
        periods: Sequence[int] = (24, 168, 288),
        cycles: int = 4,
        window: int = 48,
        min_acf: float = 0.3,
        memory: int | None = None,
        threshold: float | None = None,
        cooldown: int = 0,
    ) -> None:
        super().__init__(threshold=threshold, cooldown=cooldown)
        self.periods = periods
        self.cycles = cycles
        self.window = window
        self.min_acf = min_acf
        self.memory = memory

    def _reset(self, n_series: int) -> None:
        periods = tuple(_positive_int("periods", p, 2) for p in self.periods)
        if not periods:
            raise ValueError("parameter periods must contain at least one period >= 2, got ()")
        self.periods_ = periods
        self.cycles_ = _positive_int("cycles", self.cycles)
        self.window_ = _positive_int("window", self.window, 3)
        if not -1.0 < float(self.min_acf) < 1.0:
            raise ValueError(f"parameter min_acf must be in (-1, 1), got {self.min_acf!r}")
        memory = 4 * max(periods) if self.memory is None else self.memory
        self.decay_ = 0.5 ** (1.0 / _positive_int("memory", memory))
        size = max(max(periods) * self.cycles_, self.window_)
        self.values_ = RingBuffer(n_series, size)
        self.devs_ = RingBuffer(n_series, max(periods))
        self.resid_ = RingBuffer(n_series, self.window_)
        self.mean_ = np.zeros(n_series)
        self.var_ = np.zeros(n_series)
        self.cov_ = np.zeros((len(periods), n_series))
        self.period_ = np.zeros(n_series, dtype=np.int64)
        self.calibrator_ = TailCalibrator().reset(n_series)

    def _learn_season(self, x: FloatArray, mask: BoolArray) -> None:
        """Update the lagged autocorrelations with ``x`` and re-pick the period."""
        n = self.values_.count
        w = np.maximum(1.0 - self.decay_, 1.0 / (n + 1.0))  # unbiased start, then exponential
        dev = np.where(mask, x - self.mean_, 0.0)
        self.var_ = np.where(mask, self.var_ + w * (dev * dev - self.var_), self.var_)
        best = np.full(x.shape[0], float(self.min_acf))
        period = np.zeros(x.shape[0], dtype=np.int64)
        for j, p in enumerate(self.periods_):
            lagged = self.devs_.lag(p)
            ok = mask & np.isfinite(lagged)
            prod = dev * np.where(ok, lagged, 0.0)
            self.cov_[j] = np.where(ok, self.cov_[j] + w * (prod - self.cov_[j]), self.cov_[j])
            with np.errstate(invalid="ignore", divide="ignore"):
                acf = self.cov_[j] / self.var_
            better = (n >= 2 * p) & np.isfinite(acf) & (acf >= best)
            best[better], period[better] = acf[better], p
        self.period_ = period
        self.devs_.push(dev, mask)
        self.mean_ = np.where(mask, self.mean_ + w * (x - self.mean_), self.mean_)

    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        rows = np.arange(x.shape[0])
        recent, rvalid = self.values_.recent(self.window_)
        expected = masked_median(recent, rvalid)
        seasonal = self.period_ > 0
        if seasonal.any():
            lags = self.period_[seasonal, None] * np.arange(1, self.cycles_ + 1)[None, :]
            cnt = self.values_.count[seasonal, None]
            idx = (self.values_.pos[seasonal, None] - lags) % self.values_.size
            same = self.values_.buf[rows[seasonal, None], idx]
            smed = masked_median(same, lags <= cnt)
            expected[seasonal] = np.where(np.isfinite(smed), smed, expected[seasonal])
        resid = x - expected
        rv, rok = self.resid_.window()
        absr = np.abs(rv)
        mad = 1.4826 * masked_median(absr, rok)
        # MAD is 0 on sparse or quantised series (mostly-zero disk writes): fall
        # back to the mean absolute residual (1.2533 = sqrt(pi/2), same Gaussian scale).
        mean_abs = 1.2533 * np.where(rok, absr, 0.0).sum(axis=1) / np.maximum(rok.sum(axis=1), 1)
        scale = np.where(mad > 0, mad, mean_abs)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.abs(resid) / (scale + 1e-9 * (np.abs(expected) + 1e-12))
        ok = mask & np.isfinite(raw) & (rok.sum(axis=1) >= 5)
        score = self.calibrator_.calibrate(np.where(ok, raw, 0.0), ok)
        self.resid_.push(resid, mask & np.isfinite(resid))
        self._learn_season(x, mask)
        self.values_.push(x, mask)
        return score


def _relations(x: FloatArray, center: FloatArray, spread: FloatArray) -> FloatArray:
    """Standardised metrics plus their pairwise differences, shape ``(n, d + d(d-1)/2)``.

    Axis-parallel isolation trees see a metric leaving its range but not two
    metrics that stop moving together (CPU idle while memory grows); the
    pairwise differences of standardised metrics make such breaks isolable.
    """
    z = (x - center) / spread
    d = z.shape[1]
    pairs = [z[:, i] - z[:, j] for i in range(d) for j in range(i + 1, d)]
    return np.column_stack([z, *pairs]) if pairs else z


class IsolationForestDetector(StreamingDetector):
    """Multivariate detector: scikit-learn IsolationForest on a trailing window.

    Every ``refit_every`` steps, one forest per series is fitted on that
    series' last ``window`` feature vectors (standardised, plus the pairwise
    differences of the standardised metrics so that broken relations between
    metrics are isolable); each new vector is scored by the forest fitted
    *before* it, and the isolation score is calibrated against the series' own
    past scores. Inputs may be multivariate (``(n_series, d)`` per
    step, e.g. cpu, memory and GPU utilisation of a workload) or univariate, in
    which case the features are the value and its first ``embed - 1``
    differences.

    Parameters
    ----------
    window : int, default 576
        Trailing vectors used to fit.
    refit_every : int, default 288
        Steps between refits.
    min_samples : int, default 64
        Vectors needed before the first fit.
    n_estimators : int, default 50
        Trees per forest.
    embed : int, default 3
        Univariate inputs only: the value plus ``embed - 1`` lagged differences.
    random_state : int, default 0
        Seed of the forests (results are deterministic).
    threshold : float, optional
        Alert threshold on the calibrated score (default 0.999).
    cooldown : int, default 0
        Observations of quiet time after an alert.

    Notes
    -----
    Refits dominate the cost (one sklearn fit per series per ``refit_every``
    steps); use it for tens to hundreds of workloads, not 10,000 series.
    """

    default_threshold = 0.999
    name = "iforest"

    def __init__(
        self,
        *,
        window: int = 576,
        refit_every: int = 288,
        min_samples: int = 64,
        n_estimators: int = 50,
        embed: int = 3,
        random_state: int = 0,
        threshold: float | None = None,
        cooldown: int = 0,
    ) -> None:
        super().__init__(threshold=threshold, cooldown=cooldown)
        self.window = window
        self.refit_every = refit_every
        self.min_samples = min_samples
        self.n_estimators = n_estimators
        self.embed = embed
        self.random_state = random_state

    def _reset(self, n_series: int) -> None:
        self.window_ = _positive_int("window", self.window, 8)
        self.refit_every_ = _positive_int("refit_every", self.refit_every)
        self.min_samples_ = _positive_int("min_samples", self.min_samples, 8)
        self.embed_ = _positive_int("embed", self.embed)
        _positive_int("n_estimators", self.n_estimators)
        self.models_: list[Any] = [None] * n_series
        self.buf_: FloatArray | None = None
        self.pos_ = np.zeros(n_series, dtype=np.int64)
        self.count_ = np.zeros(n_series, dtype=np.int64)
        self.hist_ = RingBuffer(n_series, self.embed_)
        self.steps_ = 0
        self.calibrator_ = TailCalibrator(log_max=4.0).reset(n_series)

    def score_step(self, values: Any) -> tuple[FloatArray, BoolArray]:
        """Score one step of ``(n_series,)`` values or ``(n_series, d)`` vectors."""
        from features.exceptions import NotFittedError

        if not hasattr(self, "n_series_"):
            raise NotFittedError(
                f"{type(self).__name__} has no state yet; call reset(n_series) before update()"
            )
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1 and v.shape[0] == self.n_series_:
            v = self._embed(v)
        if v.ndim != 2 or v.shape[0] != self.n_series_:
            raise ValueError(
                f"parameter values must have shape ({self.n_series_},) or ({self.n_series_}, d), "
                f"got {np.shape(values)}"
            )
        mask: BoolArray = np.asarray(np.isfinite(v).all(axis=1), dtype=bool)
        scores = np.clip(self._score_vectors(np.where(mask[:, None], v, 0.0), mask), 0.0, 1.0)
        scores[~mask] = 0.0
        return scores, mask

    def _embed(self, x: FloatArray) -> FloatArray:
        ok = np.isfinite(x)
        feats = [np.where(ok, x, np.nan)]
        for k in range(1, self.embed_):
            feats.append(x - self.hist_.lag(k))
        self.hist_.push(np.where(ok, x, 0.0), ok)
        return np.stack(feats, axis=1)

    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:  # pragma: no cover
        return self._score_vectors(x[:, None], mask)

    def _score_vectors(self, v: FloatArray, mask: BoolArray) -> FloatArray:
        from sklearn.ensemble import IsolationForest

        n, d = v.shape
        if self.buf_ is None:
            self.buf_ = np.zeros((n, self.window_, d))
        if self.buf_.shape[2] != d:
            raise ValueError(f"parameter values must keep {self.buf_.shape[2]} features, got {d}")
        if self.steps_ % self.refit_every_ == 0:
            for i in np.flatnonzero(self.count_ >= self.min_samples_):
                m = int(min(self.count_[i], self.window_))
                data = self.buf_[i, :m]
                forest = IsolationForest(
                    n_estimators=int(self.n_estimators),
                    max_samples=min(256, m),
                    random_state=int(self.random_state),
                )
                center = np.median(data, axis=0)
                spread = np.std(data, axis=0)
                spread = np.where(spread > 0, spread, 1.0)
                self.models_[i] = (center, spread, forest.fit(_relations(data, center, spread)))
        self.steps_ += 1
        raw = np.zeros(n)
        ok = mask.copy()
        for i in np.flatnonzero(mask):
            model = self.models_[i]
            if model is None:
                ok[i] = False
                continue
            center, spread, forest = model
            feats = _relations(v[i : i + 1], center, spread)
            s = float(-forest.score_samples(feats)[0])  # in (0, 1), 0.5 = average depth
            raw[i] = -1.0 / np.log2(min(max(s, 1e-12), 1 - 1e-12))
        score = self.calibrator_.calibrate(raw, ok)
        rows = np.flatnonzero(mask)
        self.buf_[rows, self.pos_[rows]] = v[rows]
        self.pos_[rows] = (self.pos_[rows] + 1) % self.window_
        self.count_[rows] += 1
        return score


def _align(score: FloatArray, threshold: float) -> FloatArray:
    """Piecewise-linear map sending ``threshold`` to 0.5 (0 -> 0, 1 -> 1)."""
    if threshold >= 1.0:
        return 0.5 * score
    return np.where(
        score < threshold,
        0.5 * score / threshold,
        0.5 + 0.5 * (score - threshold) / (1.0 - threshold),
    )


class EnsembleDetector(StreamingDetector):
    """Combine detectors, each judged at its own threshold.

    Member scores are first aligned so that each member's threshold maps to 0.5
    (piecewise linear, 0 and 1 fixed); the ensemble score is their maximum
    (``combine="max"``: alert when any member would) or mean (``"mean"``).

    Parameters
    ----------
    detectors : sequence of StreamingDetector
        The members (univariate).
    combine : {"max", "mean"}, default "max"
        How aligned member scores are combined.
    threshold : float, optional
        Alert threshold on the combined score (default 0.5).
    cooldown : int, default 200
        Observations of quiet time after an alert.
    escalation : float, optional, default 1.0
        During a cooldown, alert again when the score exceeds ``escalation``
        times the score of the last alert.
    """

    default_threshold = 0.5
    name = "ensemble"

    def __init__(
        self,
        detectors: Sequence[StreamingDetector] = (),
        *,
        combine: str = "max",
        threshold: float | None = None,
        cooldown: int = 200,
        escalation: float | None = 1.0,
    ) -> None:
        super().__init__(threshold=threshold, cooldown=cooldown, escalation=escalation)
        self.detectors = detectors
        self.combine = combine

    def _reset(self, n_series: int) -> None:
        if not self.detectors:
            raise ValueError("parameter detectors must contain at least one detector, got none")
        if self.combine not in ("max", "mean"):
            raise ValueError(f"parameter combine must be 'max' or 'mean', got {self.combine!r}")
        for d in self.detectors:
            if not isinstance(d, StreamingDetector):
                raise ValueError(
                    f"parameter detectors must hold StreamingDetector objects, got {d!r}"
                )
            d.reset(n_series)

    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        parts = []
        for d in self.detectors:
            s, _ = d.score_step(np.where(mask, x, np.nan))
            parts.append(_align(s, d.threshold_))
        stack = np.stack(parts)
        return stack.max(axis=0) if self.combine == "max" else stack.mean(axis=0)
