"""Per-series statistical forecasters on statsmodels: ETS, AutoARIMA and MSTL.

Each series is fitted independently, in worker processes (``n_jobs``). A fit
keeps only a small picklable state per series (the chosen specification and
its parameters); ``predict`` re-filters the series with those parameters and
asks statsmodels for the mean and the model-based prediction intervals.

Constant series (including all zeros) are forecast exactly with zero-width
intervals. A series whose fit fails numerically is forecast with seasonal
naive, with a :class:`UserWarning` naming it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from models._frequency import default_seasonal_periods
from models._panel import SeriesPanel, format_ids
from models._parallel import parallel_map, resolve_n_jobs
from models.base import Bands, BaseForecaster
from models.baselines import seasonal_naive_forecast

__all__ = ["ETS", "MSTL", "AutoARIMA"]

#: Per-series fitted state: ``None`` when the fit failed.
State = dict[str, Any] | None
#: Per-series forecast: mean ``(h,)`` and ``{level: (lo, hi)}``, or ``None`` on failure.
SeriesForecast = tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]] | None


def _is_constant(y: np.ndarray) -> bool:
    return bool(np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())))


def _constant_forecast(value: float, h: int, levels: Sequence[int]) -> SeriesForecast:
    mean = np.full(h, value)
    return mean, {lv: (mean.copy(), mean.copy()) for lv in levels}


# ----------------------------------------------------------------------------- ETS
def _ets_candidates(n: int, m: int, trend: str, damped: str, seasonal: str) -> list[dict[str, Any]]:
    trends: list[tuple[str | None, bool]] = []
    if trend in ("auto", "none"):
        trends.append((None, False))
    if trend in ("auto", "add") and n >= 6:
        if damped in ("auto", "no"):
            trends.append(("add", False))
        if damped in ("auto", "yes") and n >= 8:
            trends.append(("add", True))
    if not trends:
        trends.append((None, False))
    seasons: list[str | None] = []
    seasonal_ok = m > 1 and n >= 2 * m + 2
    if seasonal in ("auto", "none") or not seasonal_ok:
        seasons.append(None)
    if seasonal in ("auto", "add") and seasonal_ok:
        seasons.append("add")
    # Estimating m initial seasonal states is slow for long seasons (hourly: 100x);
    # the heuristic (decomposition) start is used for all candidates then, so that
    # their AICc stay comparable.
    init = "heuristic" if seasonal_ok and m > 12 and n >= 10 else "estimated"
    out = []
    for tr, dp in trends:
        for se in seasons:
            out.append(
                {
                    "error": "add",
                    "trend": tr,
                    "damped_trend": dp,
                    "seasonal": se,
                    "seasonal_periods": m if se else None,
                    "initialization_method": init,
                }
            )
    return out


def _ets_fit_one(y: np.ndarray, m: int, trend: str, damped: str, seasonal: str) -> State:
    """Fit every candidate ETS spec with additive errors and keep the lowest AICc."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    if _is_constant(y):
        return {"kind": "constant", "value": float(y[-1])}
    series = pd.Series(y)
    best: State = None
    best_aicc = math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for spec in _ets_candidates(len(y), m, trend, damped, seasonal):
            try:
                res = ETSModel(series, **spec).fit(disp=False, maxiter=200)
            except Exception:  # statsmodels raises many kinds on degenerate data
                continue
            aicc = float(res.aicc)
            if np.isfinite(aicc) and aicc < best_aicc:
                best_aicc = aicc
                best = {"kind": "ets", "spec": spec, "params": np.asarray(res.params)}
    return best


def _ets_forecast_one(y: np.ndarray, state: State, h: int, levels: Sequence[int]) -> SeriesForecast:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    if state is None:
        return None
    if state["kind"] == "constant":
        return _constant_forecast(state["value"], h, levels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = ETSModel(pd.Series(y), **state["spec"]).smooth(state["params"])
            pred = res.get_prediction(start=len(y), end=len(y) + h - 1)
            mean = np.asarray(pred.predicted_mean, dtype=float)
            bands = {}
            for lv in levels:
                sf = pred.summary_frame(alpha=1 - lv / 100)
                bands[lv] = (
                    sf["pi_lower"].to_numpy(dtype=float),
                    sf["pi_upper"].to_numpy(dtype=float),
                )
        except Exception:
            return None
    if not np.isfinite(mean).all():
        return None
    return mean, bands


# --------------------------------------------------------------------------- ARIMA
def _ndiffs(y: np.ndarray, max_d: int) -> int:
    """Number of first differences until KPSS does not reject stationarity (5 %)."""
    from statsmodels.tsa.stattools import kpss

    d = 0
    x = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while d < max_d and len(x) > 10 and not _is_constant(x):
            try:
                pvalue = kpss(x, regression="c", nlags="auto")[1]
            except Exception:
                break
            if pvalue >= 0.05:
                break
            x = np.diff(x)
            d += 1
    return d


def _seasonal_strength(y: np.ndarray, m: int) -> float:
    """STL seasonal strength ``max(0, 1 - var(remainder) / var(season + remainder))``."""
    from statsmodels.tsa.seasonal import STL

    if m < 2 or len(y) < 2 * m + 1 or _is_constant(y):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = STL(y, period=m, robust=False).fit()
        except Exception:
            return 0.0
    resid = np.asarray(res.resid)
    denom = float(np.var(np.asarray(res.seasonal) + resid))
    return 0.0 if denom <= 0 else max(0.0, 1.0 - float(np.var(resid)) / denom)


def _sarimax(
    y: np.ndarray,
    x: np.ndarray | None,
    order: tuple[int, int, int],
    sorder: tuple[int, ...],
    trend: str,
) -> Any:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    return SARIMAX(
        y,
        exog=x if x is not None and x.shape[1] else None,
        order=order,
        seasonal_order=sorder,
        trend=trend,
        enforce_stationarity=True,
        enforce_invertibility=True,
    )


def _fourier(start: int, n: int, period: int, k: int) -> np.ndarray:
    """Sine/cosine pairs ``1..k`` of ``period`` at positions ``start..start+n-1``, ``(n, 2k)``."""
    t = np.arange(start, start + n, dtype=float)[:, None]
    j = np.arange(1, k + 1, dtype=float)[None, :]
    ang = 2 * np.pi * t * j / period
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def _with_fourier(
    x: np.ndarray | None, start: int, n: int, state: dict[str, Any]
) -> np.ndarray | None:
    four = state.get("fourier")
    if not four:
        return x
    f = _fourier(start, n, four[0], four[1])
    return f if x is None or x.shape[1] == 0 else np.concatenate([x, f], axis=1)


def _arima_fit_one(
    y: np.ndarray,
    x: np.ndarray | None,
    m: int,
    max_p: int,
    max_q: int,
    max_d: int,
    seasonal: bool,
    max_iter: int,
    max_seasonal_order_period: int = 12,
    fourier_terms: int = 3,
) -> State:
    """Small stepwise (Hyndman-Khandakar style) search over SARIMA orders by AICc.

    Seasonal periods above ``max_seasonal_order_period`` (hourly data, say) are
    modelled with ``fourier_terms`` Fourier pairs as regressors instead of
    seasonal ARIMA terms (dynamic harmonic regression), which is far faster.
    """
    if _is_constant(y) and (x is None or x.shape[1] == 0):
        return {"kind": "constant", "value": float(y[-1])}
    n = len(y)
    fourier: tuple[int, int] | None = None
    if seasonal and m > max_seasonal_order_period and n >= 2 * m:
        k = max(1, min(fourier_terms, m // 2))
        if _seasonal_strength(y, m) > 0.3:
            fourier = (m, k)
            x = _with_fourier(x, 0, n, {"fourier": fourier})
    d = _ndiffs(y, max_d)
    use_season = seasonal and 1 < m <= max_seasonal_order_period and n >= 3 * m + 5
    big_d = 1 if use_season and _seasonal_strength(y, m) > 0.64 else 0
    trend = "c" if d + big_d == 0 else ("t" if d + big_d == 1 else "n")
    cache: dict[tuple[int, int, int, int], tuple[float, Any]] = {}

    def score(p: int, q: int, sp: int, sq: int) -> float:
        key = (p, q, sp, sq)
        if key in cache:
            return cache[key][0]
        if not (0 <= p <= max_p and 0 <= q <= max_q and 0 <= sp <= 1 and 0 <= sq <= 1):
            return math.inf
        if not use_season and (sp or sq):
            return math.inf
        sorder = (sp, big_d, sq, m) if use_season else (0, 0, 0, 0)
        k = p + q + sp + sq + (1 if trend != "n" else 0) + 1
        if n - d - big_d * m <= k + 2:
            return math.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = _sarimax(y, x, (p, d, q), sorder, trend).fit(disp=False, maxiter=50)
                aicc = float(res.aicc)
            except Exception:
                aicc, res = math.inf, None
        if not np.isfinite(aicc):
            aicc = math.inf
        cache[key] = (aicc, res)
        return aicc

    starts = [(2, 2, 1, 1), (0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1)]
    best = min(starts, key=lambda k: score(*k))
    best_aicc = score(*best)
    for _ in range(max_iter):
        p, q, sp, sq = best
        neighbours = [
            (p + dp, q + dq, sp + dsp, sq + dsq)
            for dp, dq, dsp, dsq in [
                (1, 0, 0, 0), (-1, 0, 0, 0), (0, 1, 0, 0), (0, -1, 0, 0),
                (1, 1, 0, 0), (-1, -1, 0, 0), (0, 0, 1, 0), (0, 0, -1, 0),
                (0, 0, 0, 1), (0, 0, 0, -1),
            ]
        ]  # fmt: skip
        cand = min(neighbours, key=lambda k: score(*k))
        if score(*cand) >= best_aicc:
            break
        best, best_aicc = cand, score(*cand)
    if not np.isfinite(best_aicc):
        return None
    p, q, sp, sq = best
    res = cache[best][1]
    return {
        "kind": "arima",
        "order": (p, d, q),
        "seasonal_order": (sp, big_d, sq, m) if use_season else (0, 0, 0, 0),
        "trend": trend,
        "params": np.asarray(res.params),
        "fourier": fourier,
    }


def _arima_forecast_one(
    y: np.ndarray,
    x: np.ndarray | None,
    xf: np.ndarray | None,
    state: State,
    h: int,
    levels: Sequence[int],
) -> SeriesForecast:
    if state is None:
        return None
    if state["kind"] == "constant":
        return _constant_forecast(state["value"], h, levels)
    x = _with_fourier(x, 0, len(y), state)
    xf = _with_fourier(xf, len(y), h, state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = _sarimax(y, x, state["order"], state["seasonal_order"], state["trend"]).smooth(
                state["params"]
            )
            fc = res.get_forecast(steps=h, exog=xf if xf is not None and xf.shape[1] else None)
            mean = np.asarray(fc.predicted_mean, dtype=float)
            bands = {}
            for lv in levels:
                ci = np.asarray(fc.conf_int(alpha=1 - lv / 100), dtype=float)
                bands[lv] = (ci[:, 0], ci[:, 1])
        except Exception:
            return None
    if not np.isfinite(mean).all():
        return None
    return mean, bands


# ---------------------------------------------------------------------------- MSTL
def _odd(x: float) -> int:
    k = math.ceil(x)
    return k if k % 2 else k + 1


def _stl_kwargs_fast(periods: Sequence[int]) -> list[dict[str, int]]:
    """R-style LOESS jumps (``ceil(window / 10)``) for each STL of MSTL, i = 0, 1..."""
    out = []
    for i, p in enumerate(periods):
        sw = 7 + 4 * i
        tw = _odd(1.5 * p / (1 - 1.5 / sw))
        lw = _odd(p + 1)
        out.append(
            {
                "seasonal_jump": math.ceil(sw / 10),
                "trend_jump": math.ceil(tw / 10),
                "low_pass_jump": math.ceil(lw / 10),
            }
        )
    return out


def _mstl_fit_one(
    y: np.ndarray,
    periods: Sequence[int],
    trend_model: str,
    fast: bool,
    max_history: int | None,
    inner: State = None,
) -> State:
    """Decompose with statsmodels MSTL, then fit ETS/ARIMA on the adjusted series.

    With ``inner`` (a previous MSTL state) only the decomposition is redone and
    the adjusted-series model keeps its specification and parameters.
    """
    from statsmodels.tsa.seasonal import MSTL as _SMMSTL

    if max_history is not None and len(y) > max_history:
        y = y[-max_history:]
    if _is_constant(y):
        return {"kind": "constant", "value": float(y[-1])}
    usable = sorted(p for p in periods if p > 1 and len(y) > 2 * p)
    cycles: list[np.ndarray] = []
    adjusted = y
    if usable:
        stl_kwargs: dict[str, Any] = {}
        if fast:
            # MSTL passes one stl_kwargs to every period; use the jumps of the shortest.
            stl_kwargs = _stl_kwargs_fast(usable)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = _SMMSTL(y, periods=usable, stl_kwargs=stl_kwargs).fit()
            except Exception:
                return None
        seasonal = np.asarray(res.seasonal, dtype=float).reshape(len(y), -1)
        adjusted = y - seasonal.sum(axis=1)
        cycles = [seasonal[-p:, j].copy() for j, p in enumerate(usable)]
    if inner is not None and inner["kind"] == "mstl" and inner["periods"] == usable:
        inner = inner["inner"]
    elif trend_model == "ets":
        inner = _ets_fit_one(adjusted, 1, "auto", "auto", "none")
    else:
        inner = _arima_fit_one(adjusted, None, 1, 2, 2, 2, False, 6)
    if inner is None:
        return None
    return {
        "kind": "mstl",
        "periods": usable,
        "cycles": cycles,
        "adjusted": adjusted,
        "trend_model": trend_model,
        "inner": inner,
    }


def _mstl_refresh_one(
    item: tuple[np.ndarray, State],
    periods: Sequence[int],
    trend_model: str,
    fast: bool,
    max_history: int | None,
) -> State:
    """Decompose newer data again but keep the adjusted-series model's parameters."""
    y, state = item
    fresh = _mstl_fit_one(y, periods, trend_model, fast, max_history, inner=state)
    return fresh


def _mstl_forecast_one(state: State, h: int, levels: Sequence[int]) -> SeriesForecast:
    if state is None:
        return None
    if state["kind"] == "constant":
        return _constant_forecast(state["value"], h, levels)
    adjusted = state["adjusted"]
    if state["trend_model"] == "ets":
        inner = _ets_forecast_one(adjusted, state["inner"], h, levels)
    else:
        inner = _arima_forecast_one(adjusted, None, None, state["inner"], h, levels)
    if inner is None:
        return None
    season = np.zeros(h)
    for cyc in state["cycles"]:
        p = len(cyc)
        season += cyc[np.arange(h) % p]
    mean, bands = inner
    return mean + season, {lv: (lo + season, hi + season) for lv, (lo, hi) in bands.items()}


# ------------------------------------------------------------------ estimators
def _fit_item(item: tuple[Any, ...], kind: str, params: dict[str, Any]) -> State:
    if kind == "ets":
        return _ets_fit_one(item[0], **params)
    if kind == "arima":
        return _arima_fit_one(item[0], item[1], **params)
    return _mstl_fit_one(item[0], **params)


def _forecast_item(
    item: tuple[Any, ...], kind: str, h: int, levels: Sequence[int]
) -> SeriesForecast:
    if kind == "ets":
        y, state = item
        return _ets_forecast_one(y, state, h, levels)
    if kind == "arima":
        y, x, xf, state = item
        return _arima_forecast_one(y, x, xf, state, h, levels)
    return _mstl_forecast_one(item[0], h, levels)


class _PerSeries(BaseForecaster):
    """Shared machinery: parallel per-series fit/forecast with seasonal-naive rescue."""

    _kind: str = ""
    n_jobs: int

    def _fit_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _items(self, panel: SeriesPanel) -> list[tuple[Any, ...]]:
        return [(panel.values(i),) for i in range(panel.n_series)]

    def _fit(self, panel: SeriesPanel) -> None:
        resolve_n_jobs(self.n_jobs)
        self._panel = panel
        states = parallel_map(
            _fit_item,
            self._items(panel),
            self.n_jobs,
            self._kind,
            self._fit_params(),
        )
        self.states_ = states
        failed = [i for i, s in enumerate(states) if s is None]
        if failed:
            warnings.warn(
                f"{type(self).__name__}: fitting failed for series "
                f"{format_ids(panel.ids[failed])}; forecasting them with SeasonalNaive",
                UserWarning,
                stacklevel=4,
            )

    def _update(self, panel: SeriesPanel) -> None:
        """Keep each series' specification and parameters; refit constant/failed ones."""
        redo = [
            i
            for i, s in enumerate(self.states_)
            if s is None or (s["kind"] == "constant" and not _is_constant(panel.values(i)))
        ]
        self._panel = panel
        if redo:
            items = self._items(panel)
            fresh = parallel_map(
                _fit_item,
                [items[i] for i in redo],
                self.n_jobs,
                self._kind,
                self._fit_params(),
            )
            for i, st in zip(redo, fresh, strict=True):
                self.states_[i] = st

    def _forecast_items(self, future_exog: dict[str, np.ndarray] | None) -> list[tuple[Any, ...]]:
        return [(self._panel.values(i), s) for i, s in enumerate(self.states_)]

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        n = self._panel.n_series
        results = parallel_map(
            _forecast_item,
            self._forecast_items(future_exog),
            self.n_jobs,
            self._kind,
            h,
            levels,
            min_items_per_job=32,
        )
        mean = np.empty((n, h))
        bands: Bands = {lv: (np.empty((n, h)), np.empty((n, h))) for lv in levels}
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            sm, sb = seasonal_naive_forecast(
                self._panel.take(missing), h, self.season_length_, levels
            )
        for i, r in enumerate(results):
            if r is None:
                j = missing.index(i)
                mean[i] = sm[j]
                for lv in levels:
                    bands[lv][0][i], bands[lv][1][i] = sb[lv][0][j], sb[lv][1][j]
            else:
                mean[i] = r[0]
                for lv in levels:
                    bands[lv][0][i], bands[lv][1][i] = r[1][lv]
        return mean, bands


_TREND = ("auto", "none", "add")
_DAMPED = ("auto", "yes", "no")
_SEASONAL = ("auto", "none", "add")


class ETS(_PerSeries):
    """Exponential smoothing (statsmodels ``ETSModel``) with automatic model selection.

    For every series the additive-error models with trend none / additive /
    additive damped and seasonality none / additive are fitted and the one
    with the lowest AICc is kept. Intervals are the model's analytical
    prediction intervals.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Seasonal period; default from the frequency. Seasonal models are only
        tried on series with at least ``2 * season_length + 2`` observations.
    trend : {"auto", "none", "add"}
        Trend component, or ``"auto"`` to select by AICc.
    damped : {"auto", "yes", "no"}
        Whether an additive trend is damped.
    seasonal : {"auto", "none", "add"}
        Seasonal component.
    n_jobs : int
        Worker processes for the per-series fits (``-1``: all CPUs).
    """

    name = "ets"
    _kind = "ets"

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        trend: Literal["auto", "none", "add"] = "auto",
        damped: Literal["auto", "yes", "no"] = "auto",
        seasonal: Literal["auto", "none", "add"] = "auto",
        n_jobs: int = 1,
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.trend = trend
        self.damped = damped
        self.seasonal = seasonal
        self.n_jobs = n_jobs

    def _validate_params(self) -> None:
        super()._validate_params()
        for name, value, allowed in (
            ("trend", self.trend, _TREND),
            ("damped", self.damped, _DAMPED),
            ("seasonal", self.seasonal, _SEASONAL),
        ):
            if value not in allowed:
                raise ConfigError(f"parameter {name} must be one of {allowed}, got {value!r}")

    def _min_length(self) -> int:
        return 5

    def _fit_params(self) -> dict[str, Any]:
        return {
            "m": self.season_length_,
            "trend": self.trend,
            "damped": self.damped,
            "seasonal": self.seasonal,
        }


class AutoARIMA(_PerSeries):
    """ARIMA with a small automatic order search (statsmodels ``SARIMAX``).

    Per series: the number of differences ``d`` by repeated KPSS tests, one
    seasonal difference when the STL seasonal strength exceeds 0.64, then a
    stepwise search over ``p, q <= max_p, max_q`` and seasonal ``P, Q <= 1``
    by AICc (a constant when undifferenced, a drift with one difference).
    Exogenous columns enter as regressors with ARIMA errors; their future
    values must be passed to ``predict``.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Seasonal period; default from the frequency.
    max_p, max_q : int
        Largest non-seasonal AR and MA orders.
    max_d : int
        Largest number of first differences.
    seasonal : bool
        Whether seasonal terms are considered (series of at least
        ``3 * season_length + 5`` observations).
    max_iter : int
        Largest number of stepwise moves.
    n_jobs : int
        Worker processes for the per-series fits (``-1``: all CPUs).
    """

    name = "arima"
    _kind = "arima"
    supports_exog = True

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        max_p: int = 3,
        max_q: int = 3,
        max_d: int = 2,
        seasonal: bool = True,
        max_iter: int = 8,
        n_jobs: int = 1,
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.seasonal = seasonal
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("max_p", "max_q", "max_d", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"parameter {name} must be a non-negative integer, got {value!r}")

    def _min_length(self) -> int:
        return 8

    def _fit_params(self) -> dict[str, Any]:
        return {
            "m": self.season_length_,
            "max_p": self.max_p,
            "max_q": self.max_q,
            "max_d": self.max_d,
            "seasonal": self.seasonal,
            "max_iter": self.max_iter,
        }

    def _items(self, panel: SeriesPanel) -> list[tuple[Any, ...]]:
        x = bool(panel.exog)
        return [
            (panel.values(i), panel.exog_values(i) if x else None) for i in range(panel.n_series)
        ]

    def _forecast_items(self, future_exog: dict[str, np.ndarray] | None) -> list[tuple[Any, ...]]:
        p = self._panel
        x = bool(p.exog)
        items = []
        for i, s in enumerate(self.states_):
            xf = (
                np.column_stack([future_exog[c][i] for c in p.exog])
                if x and future_exog is not None
                else None
            )
            items.append((p.values(i), p.exog_values(i) if x else None, xf, s))
        return items


class MSTL(_PerSeries):
    """Multiple seasonal-trend decomposition (statsmodels ``MSTL``) plus ETS or ARIMA.

    Each series is decomposed into one seasonal component per period (periods
    that fit twice in the series) and a seasonally adjusted remainder; the
    adjusted series is forecast by a non-seasonal ETS (AICc over trend
    none/additive/damped) or ARIMA, and each seasonal component by repeating
    its last cycle. Intervals are those of the adjusted-series model.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Main seasonal period; default from the frequency.
    seasonal_periods : sequence of int, optional
        All periods; default ``(24, 168)`` for hourly data, ``(7, 365)`` for
        daily data, else ``(season_length,)``.
    trend_model : {"ets", "arima"}
        Model of the seasonally adjusted series.
    fast : bool
        Use R-style LOESS jumps in STL (about 5x faster, nearly identical).
    max_history : int, optional
        Use only the last ``max_history`` observations of each series.
    n_jobs : int
        Worker processes for the per-series fits (``-1``: all CPUs).
    """

    name = "mstl"
    _kind = "mstl"

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        seasonal_periods: Sequence[int] | None = None,
        trend_model: Literal["ets", "arima"] = "ets",
        fast: bool = True,
        max_history: int | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.seasonal_periods = seasonal_periods
        self.trend_model = trend_model
        self.fast = fast
        self.max_history = max_history
        self.n_jobs = n_jobs

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.trend_model not in ("ets", "arima"):
            raise ConfigError(
                f"parameter trend_model must be one of ('ets', 'arima'), got {self.trend_model!r}"
            )
        if self.seasonal_periods is not None and (
            isinstance(self.seasonal_periods, str | bytes)
            or not all(isinstance(p, int) and p >= 1 for p in self.seasonal_periods)
        ):
            raise ConfigError(
                "parameter seasonal_periods must be a sequence of positive integers, "
                f"got {self.seasonal_periods!r}"
            )
        if self.max_history is not None and (
            not isinstance(self.max_history, int) or self.max_history < 5
        ):
            raise ConfigError(
                f"parameter max_history must be an integer >= 5, got {self.max_history!r}"
            )

    def _periods(self) -> tuple[int, ...]:
        if self.seasonal_periods is not None:
            return tuple(int(p) for p in self.seasonal_periods)
        return default_seasonal_periods(self.freq_, self.season_length_)

    def _min_length(self) -> int:
        periods = [p for p in self._periods() if p > 1]
        return 2 * min(periods) if periods else 5

    def _fit_params(self) -> dict[str, Any]:
        return {
            "periods": self._periods(),
            "trend_model": self.trend_model,
            "fast": self.fast,
            "max_history": self.max_history,
        }

    def _update(self, panel: SeriesPanel) -> None:
        """Decompose the newer data again; keep the adjusted-series models."""
        self._panel = panel
        items = [(panel.values(i), s) for i, s in enumerate(self.states_)]
        self.states_ = parallel_map(
            _mstl_refresh_one, items, self.n_jobs, *self._fit_params().values()
        )

    def _forecast_items(self, future_exog: dict[str, np.ndarray] | None) -> list[tuple[Any, ...]]:
        return [(s,) for s in self.states_]
