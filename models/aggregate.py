"""Statistics of aggregated forecasts: the total of a daily forecast over a window.

One answer to "what will these days cost, with which interval": the pipeline's headline,
the report, the scenario baseline and the API all call :func:`forecast_total` (or
:func:`sum_forecast` on frames they have already cut), so they agree to the cent.

The days' errors are summed as an AR(1) process whose coefficient is the series' own
lag-1 autocorrelation (:func:`ar1_phi`), between the independent case (``phi = 0``)
and the lockstep case (``phi = 1``, the sum of the daily bounds, an upper limit).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

__all__ = ["TOTAL_COLUMNS", "ar1_phi", "forecast_total", "sum_forecast"]

#: Keys of a total: the ``yhat`` sum as ``cost`` and the bounds of the sum.
TOTAL_COLUMNS: tuple[str, ...] = ("cost", "lo_80", "hi_80", "lo_95", "hi_95")


def ar1_phi(y: pd.Series | np.ndarray, default: float = 0.5) -> float:
    """Lag-1 autocorrelation of a daily series' deviations from its weekly mean, in [0, 0.95].

    The dependence assumed between the days of a forecast when their intervals are summed
    (``default`` when there are fewer than 21 points).
    """
    s = pd.Series(np.asarray(y, dtype=float)).dropna()
    if len(s) < 21:
        return default
    r = (s - s.rolling(7, center=True, min_periods=4).mean()).dropna()
    if len(r) < 14 or float(r.std()) == 0.0:
        return default
    phi = float(r.autocorr(1))
    return float(np.clip(phi, 0.0, 0.95)) if np.isfinite(phi) else default


def sum_forecast(days: pd.DataFrame, phi: float = 0.5) -> dict[str, float]:
    """Sum of a daily forecast over its days, with 80/95 % intervals of the sum.

    Days' errors are taken as AR(1) with coefficient ``phi`` (0: independent, 1: the
    days move together): each day's interval half-width becomes a standard deviation
    (``width / z``) and the sum's is ``sqrt(s' R s)`` with ``R[i, j] = phi ** |i - j|``,
    separately above and below the mean. The sum's interval is never wider than the
    sum of the days' bounds (the ``phi = 1`` case).

    Returns
    -------
    dict
        ``cost, lo_80, hi_80, lo_95, hi_95`` (the ``yhat`` sum as ``cost``).
    """
    d = days.sort_values("ds") if "ds" in days else days
    yhat = d["yhat"].to_numpy(dtype=float)
    n = len(yhat)
    idx = np.arange(n)
    corr = float(np.clip(phi, 0.0, 1.0)) ** np.abs(idx[:, None] - idx[None, :])
    total = float(yhat.sum())
    out = {"cost": total}
    for level in (80, 95):
        z = NormalDist().inv_cdf(0.5 + level / 200)
        lo = d[f"lo_{level}"].to_numpy(dtype=float)
        hi = d[f"hi_{level}"].to_numpy(dtype=float)
        up = np.maximum(hi - yhat, 0.0) / z
        dn = np.maximum(yhat - lo, 0.0) / z
        out[f"hi_{level}"] = min(total + z * math.sqrt(float(up @ corr @ up)), float(hi.sum()))
        out[f"lo_{level}"] = max(total - z * math.sqrt(float(dn @ corr @ dn)), float(lo.sum()))
    return out


def forecast_total(
    forecast: pd.DataFrame,
    history_y: pd.Series | np.ndarray | None = None,
    *,
    days: int = 30,
) -> dict[str, float] | None:
    """Total of the first ``days`` days of one series' daily forecast, with 80/95 % intervals.

    Parameters
    ----------
    forecast : DataFrame
        One series' forecast frame (``ds, yhat, lo_80, hi_80, lo_95, hi_95``), daily.
    history_y : Series or ndarray, optional
        The series' observed daily values, oldest first; the last 120 give the dependence
        of the days' errors (:func:`ar1_phi`; 0.5 without history).
    days : int, default 30
        Window length from the first forecast day.

    Returns
    -------
    dict or None
        ``cost, lo_80, hi_80, lo_95, hi_95``; None for an empty forecast.
    """
    if forecast is None or forecast.empty:
        return None
    f = forecast.sort_values("ds")
    f = f[f["ds"] < f["ds"].min() + pd.Timedelta(days=days)]
    phi = 0.5
    if history_y is not None:
        phi = ar1_phi(pd.Series(np.asarray(history_y, dtype=float)).tail(120))
    return sum_forecast(f, phi)
