"""Online one-step forecasters and robust scales, vectorised over series.

These are the "forecaster" pieces of the residual detectors: each keeps O(1)
(or O(period)) state per series, predicts the next value *before* seeing it, and
then updates. They are deliberately small (exponential smoothing) so that
10,000 series update in milliseconds.
"""

from __future__ import annotations

import numpy as np

from models.anomaly._ring import BoolArray, FloatArray


def _check_alpha(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"parameter {name} must be a number in (0, 1], got {value!r}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"parameter {name} must be in (0, 1], got {value!r}")
    return float(value)


class OnlineSeasonalES:
    """Additive exponential smoothing (level + optional seasonal profile).

    The forecast of the next value is ``level + season[phase]``. After the
    observation, the level moves by ``alpha`` of the deseasonalised error and
    the seasonal slot of that phase by ``gamma`` of the remaining error.

    Parameters
    ----------
    alpha : float, default 0.1
        Level smoothing in (0, 1].
    gamma : float, default 0.1
        Seasonal smoothing in (0, 1]; ignored when ``period`` is 0 or 1.
    period : int, default 0
        Season length in observations (0 or 1: no seasonality).
    """

    def __init__(self, alpha: float = 0.1, gamma: float = 0.1, period: int = 0) -> None:
        self.alpha = alpha
        self.gamma = gamma
        self.period = period

    def reset(self, n_series: int) -> OnlineSeasonalES:
        """Allocate state and return ``self``."""
        self.alpha_ = _check_alpha("alpha", self.alpha)
        self.gamma_ = _check_alpha("gamma", self.gamma)
        if int(self.period) < 0:
            raise ValueError(f"parameter period must be >= 0, got {self.period!r}")
        self.period_ = int(self.period) if int(self.period) > 1 else 0
        self.level_: FloatArray = np.zeros(n_series)
        self.n_: np.ndarray = np.zeros(n_series, dtype=np.int64)
        self.season_: FloatArray = np.zeros((n_series, max(self.period_, 1)))
        return self

    def predict(self) -> FloatArray:
        """Forecast of the next value per series (NaN before the first observation)."""
        pred = self.level_.copy()
        if self.period_:
            pred += self.season_[np.arange(pred.shape[0]), self.n_ % self.period_]
        pred[self.n_ == 0] = np.nan
        return pred

    def update(self, x: FloatArray, mask: BoolArray) -> None:
        """Learn the observations ``x`` where ``mask`` is true."""
        first = mask & (self.n_ == 0)
        rest = mask & (self.n_ > 0)
        self.level_[first] = x[first]
        if self.period_:
            rows = np.arange(x.shape[0])
            phase = self.n_ % self.period_
            s = self.season_[rows, phase]
            err = x - self.level_ - s
            new_level = self.level_ + self.alpha_ * err
            new_s = s + self.gamma_ * (1.0 - self.alpha_) * err
            self.level_ = np.where(rest, new_level, self.level_)
            self.season_[rows[rest], phase[rest]] = new_s[rest]
        else:
            self.level_ = np.where(rest, self.level_ + self.alpha_ * (x - self.level_), self.level_)
        self.n_[mask] += 1


class EWScale:
    """Exponentially weighted mean absolute value: a robust-ish residual scale.

    Parameters
    ----------
    alpha : float, default 0.02
        Smoothing of ``|residual|`` in (0, 1].
    winsor : float, default 6.0
        A residual enters the scale clipped to ``winsor`` times the current
        scale, so one spike cannot inflate it (the robust part).
    """

    def __init__(self, alpha: float = 0.02, winsor: float = 6.0) -> None:
        self.alpha = alpha
        self.winsor = winsor

    def reset(self, n_series: int) -> EWScale:
        """Allocate state and return ``self``."""
        self.alpha_ = _check_alpha("alpha", self.alpha)
        if not float(self.winsor) > 0:
            raise ValueError(f"parameter winsor must be > 0, got {self.winsor!r}")
        self.scale_: FloatArray = np.zeros(n_series)
        self.n_: np.ndarray = np.zeros(n_series, dtype=np.int64)
        return self

    def get(self) -> FloatArray:
        """Current scale per series (NaN before the first residual)."""
        out = self.scale_.copy()
        out[self.n_ == 0] = np.nan
        return out

    def update(self, resid: FloatArray, mask: BoolArray) -> None:
        """Learn ``|resid|`` where ``mask`` is true and the residual is finite."""
        m = mask & np.isfinite(resid)
        a = np.abs(np.where(m, resid, 0.0))
        first = m & (self.n_ == 0)
        rest = m & (self.n_ > 0)
        capped = np.where(self.scale_ > 0, np.minimum(a, self.winsor * self.scale_), a)
        # Early on the average is unbiased (1/n weights), then exponential.
        w = np.maximum(self.alpha_, 1.0 / (self.n_ + 1.0))
        self.scale_ = np.where(first, a, self.scale_)
        self.scale_ = np.where(rest, self.scale_ + w * (capped - self.scale_), self.scale_)
        self.n_[m] += 1
