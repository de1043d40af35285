"""Benchmark forecasters: Naive, SeasonalNaive and Drift.

Each is a thin estimator over a pure, vectorised numpy function that takes a
:class:`~models._panel.SeriesPanel` and returns the mean ``(n_series, h)`` and
normal intervals from the method's in-sample one-step residuals (the classic
formulas: naive ``sigma * sqrt(j)``, seasonal naive ``sigma * sqrt(k + 1)``
with ``k`` the number of completed seasons, drift
``sigma * sqrt(j * (1 + j / (T - 1)))``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from models._panel import SeriesPanel, format_ids
from models.base import Bands, BaseForecaster

__all__ = [
    "Drift",
    "Naive",
    "SeasonalNaive",
    "drift_forecast",
    "naive_forecast",
    "seasonal_naive_forecast",
]


def _z(level: int) -> float:
    return float(norm.ppf(0.5 + level / 200.0))


def _segment_rms(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """Root mean square of ``values`` grouped by ``seg`` (0 for empty groups), ``(n,)``."""
    sums = np.bincount(seg, weights=values**2, minlength=n)
    counts = np.bincount(seg, minlength=n)
    return np.sqrt(sums / np.maximum(counts, 1))


def _lagged_residuals(panel: SeriesPanel, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``y_t - y_{t-lag}`` inside every series and the series of each residual."""
    pos = panel.positions
    ok = np.flatnonzero(pos >= lag)
    return panel.y[ok] - panel.y[ok - lag], panel.series_index[ok]


def _bands(mean: np.ndarray, sd: np.ndarray, levels: list[int]) -> Bands:
    return {lv: (mean - _z(lv) * sd, mean + _z(lv) * sd) for lv in levels}


def naive_forecast(panel: SeriesPanel, h: int, levels: list[int]) -> tuple[np.ndarray, Bands]:
    """Repeat the last value.

    Returns
    -------
    mean : numpy.ndarray, shape (n_series, h)
    bands : dict of int to (lo, hi), each shape (n_series, h)
    """
    last = panel.y[panel.indptr[1:] - 1]
    mean = np.repeat(last[:, None], h, axis=1)
    e, seg = _lagged_residuals(panel, 1)
    sigma = _segment_rms(e, seg, panel.n_series)
    sd = sigma[:, None] * np.sqrt(np.arange(1, h + 1))[None, :]
    return mean, _bands(mean, sd, levels)


def seasonal_naive_forecast(
    panel: SeriesPanel, h: int, season_length: int, levels: list[int]
) -> tuple[np.ndarray, Bands]:
    """Repeat the last season; series shorter than ``season_length + 1`` get Naive.

    Returns
    -------
    mean : numpy.ndarray, shape (n_series, h)
    bands : dict of int to (lo, hi), each shape (n_series, h)
    """
    m = max(int(season_length), 1)
    mean, bands = naive_forecast(panel, h, levels)
    ok = panel.lengths > m
    if m == 1 or not ok.any():
        return mean, bands
    j = np.arange(h)
    idx = (panel.indptr[1:] - m)[:, None] + (j % m)[None, :]
    e, seg = _lagged_residuals(panel, m)
    sigma = _segment_rms(e, seg, panel.n_series)
    sd = sigma[:, None] * np.sqrt(j // m + 1.0)[None, :]
    s_mean = panel.y[np.where(ok[:, None], idx, 0)]
    s_bands = _bands(s_mean, sd, levels)
    mean = np.where(ok[:, None], s_mean, mean)
    out = {
        lv: (
            np.where(ok[:, None], s_bands[lv][0], bands[lv][0]),
            np.where(ok[:, None], s_bands[lv][1], bands[lv][1]),
        )
        for lv in levels
    }
    return mean, out


def drift_forecast(panel: SeriesPanel, h: int, levels: list[int]) -> tuple[np.ndarray, Bands]:
    """Extend the line through the first and last values (random walk with drift).

    Series with a single value get Naive.

    Returns
    -------
    mean : numpy.ndarray, shape (n_series, h)
    bands : dict of int to (lo, hi), each shape (n_series, h)
    """
    first = panel.y[panel.indptr[:-1]]
    last = panel.y[panel.indptr[1:] - 1]
    t = panel.lengths.astype(float)
    slope = np.where(t > 1, (last - first) / np.maximum(t - 1, 1), 0.0)
    j = np.arange(1, h + 1, dtype=float)
    mean = last[:, None] + slope[:, None] * j[None, :]
    e, seg = _lagged_residuals(panel, 1)
    sigma = _segment_rms(e - slope[seg], seg, panel.n_series)
    sd = sigma[:, None] * np.sqrt(j[None, :] * (1 + j[None, :] / np.maximum(t - 1, 1)[:, None]))
    return mean, _bands(mean, sd, levels)


class Naive(BaseForecaster):
    """Forecast the last observed value (random walk).

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Unused; kept for a uniform signature.
    """

    name = "naive"

    def __init__(self, *, freq: str | None = None, season_length: int | None = None) -> None:
        self.freq = freq
        self.season_length = season_length

    def _fit(self, panel: SeriesPanel) -> None:
        single = panel.lengths == 1
        if single.any():
            warnings.warn(
                f"Naive: series {format_ids(panel.ids[single])} have a single observation; "
                "their forecast repeats it and their intervals have zero width",
                UserWarning,
                stacklevel=4,
            )
        self._panel = panel

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        return naive_forecast(self._panel, h, levels)


class SeasonalNaive(BaseForecaster):
    """Forecast the value one season earlier.

    Series with no more than ``season_length`` observations fall back to
    :class:`Naive` with a warning.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Seasonal period in steps; default from the frequency.
    """

    name = "seasonal_naive"

    def __init__(self, *, freq: str | None = None, season_length: int | None = None) -> None:
        self.freq = freq
        self.season_length = season_length

    def _min_length(self) -> int:
        return self.season_length_ + 1 if self.season_length_ > 1 else 1

    def _fallback_estimator(self) -> BaseForecaster:
        return Naive(freq=self.freq)

    def _fit(self, panel: SeriesPanel) -> None:
        self._panel = panel

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        return seasonal_naive_forecast(self._panel, h, self.season_length_, levels)


class Drift(BaseForecaster):
    """Random walk with drift: the line through the first and last observations.

    Series with a single observation fall back to :class:`Naive` with a warning.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Unused; kept for a uniform signature.
    """

    name = "drift"

    def __init__(self, *, freq: str | None = None, season_length: int | None = None) -> None:
        self.freq = freq
        self.season_length = season_length

    def _min_length(self) -> int:
        return 2

    def _fallback_estimator(self) -> BaseForecaster:
        return Naive(freq=self.freq)

    def _fit(self, panel: SeriesPanel) -> None:
        self._panel = panel

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        return drift_forecast(self._panel, h, levels)
