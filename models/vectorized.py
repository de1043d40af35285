"""A vectorised exponential-smoothing forecaster for very many series.

:class:`VectorizedETS` fits additive Holt-Winters models (ETS(A,N,A) and
ETS(A,Ad,A)) to every series at once: the parameters are chosen per series by
AIC from a fixed grid, and every grid point of every series is filtered in the
same numpy pass over time, so the Python loop runs once per time step, not
once per series. On 2-year daily series it costs a few milliseconds per series
where statsmodels' ETS costs hundreds.

The same pass also produces the model's own rolling-origin backtest: at each
backtest cutoff the parameters are chosen from the errors *before* the cutoff
and the filtered states *at* the cutoff give the window's forecast, so the
backtest is out-of-sample without refitting. Its residuals, normalised by the
model's horizon variance profile, give per-series split-conformal intervals.

Everything is per series (no quantity is pooled across series), so fitting a
panel in parts gives exactly the same forecasts as fitting it whole: the
property the Dask backend relies on (:mod:`models.backends`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from features.exceptions import ConfigError
from models._panel import SeriesPanel
from models.base import Bands, BaseForecaster

__all__ = ["VectorizedETS", "holt_winters_grid"]

#: Series processed together in one block: (grid, block) arrays stay cache-sized.
_BLOCK = 2048


@dataclass(frozen=True)
class _Grid:
    """Parameter grid, each array of shape ``(G, 1)`` (broadcast over series)."""

    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray
    n_params: np.ndarray  # (G,) free parameters for the AIC

    @property
    def size(self) -> int:
        return len(self.n_params)


def holt_winters_grid(
    alphas: Sequence[float],
    gammas: Sequence[float],
    trends: Sequence[tuple[float, float]],
    season_length: int,
) -> _Grid:
    """Build the grid of ``(alpha, beta, gamma, phi)`` candidates.

    Parameters
    ----------
    alphas : sequence of float
        Level smoothing values in (0, 1].
    gammas : sequence of float
        Seasonal smoothing values in [0, 1); combinations with
        ``alpha + gamma > 1`` are dropped. Ignored without seasonality.
    trends : sequence of (beta, phi)
        Damped-trend variants; ``(0, 0)`` is the no-trend model.
    season_length : int
        Seasonal period; 1 disables the seasonal component.
    """
    rows = []
    seasonal = season_length > 1
    for beta, phi in trends:
        for alpha in alphas:
            for gamma in gammas if seasonal else (0.0,):
                if alpha + gamma > 1.0:
                    continue
                trend = phi > 0
                # alpha, level and the m - 1 free seasonal states, plus gamma;
                # beta, phi and the initial slope with a trend.
                k = 2 + (season_length if seasonal else 0) + (3 if trend else 0)
                rows.append((alpha, beta if trend else 0.0, gamma, phi if trend else 0.0, k))
    arr = np.array(rows, dtype=float)
    return _Grid(
        alpha=arr[:, 0:1],
        beta=arr[:, 1:2],
        gamma=arr[:, 2:3],
        phi=arr[:, 3:4],
        n_params=arr[:, 4],
    )


@dataclass
class _Selected:
    """Chosen parameters and filtered states of a block of series at one origin."""

    alpha: np.ndarray  # (n,)
    beta: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray
    level: np.ndarray  # (n,)
    slope: np.ndarray  # (n,)
    season: np.ndarray  # (m, n), season[k] is the state of columns congruent to k mod m
    sigma: np.ndarray  # (n,) in-sample one-step RMSE
    origin: int  # columns < origin were used


def _forecast(sel: _Selected, h: int, m: int) -> np.ndarray:
    """Mean forecast ``(n, h)`` from states after column ``origin - 1``."""
    j = np.arange(1, h + 1, dtype=float)[None, :]
    phi = sel.phi[:, None]
    # phi + phi**2 + ... + phi**j (j when phi == 1, 0 when phi == 0).
    damp = np.where(
        np.abs(1 - phi) < 1e-12, j, phi * (1 - phi**j) / np.where(phi == 1, 1.0, 1 - phi)
    )
    cols = (sel.origin + np.arange(h)) % m
    return sel.level[:, None] + damp * sel.slope[:, None] + sel.season[cols].T


def _growth(sel: _Selected, h: int, m: int) -> np.ndarray:
    """Forecast variance at each step relative to the one-step variance, ``(n, h)``.

    The ETS(A,Ad,A) formula ``1 + sum_{i<j} c_i**2`` with
    ``c_i = alpha + beta * (phi + ... + phi**i) + gamma * [i mod m == 0]``.
    """
    if h == 1:
        return np.ones((len(sel.alpha), 1))
    i = np.arange(1, h, dtype=float)[None, :]
    phi = sel.phi[:, None]
    damp = np.where(
        np.abs(1 - phi) < 1e-12, i, phi * (1 - phi**i) / np.where(phi == 1, 1.0, 1 - phi)
    )
    seasonal = ((np.arange(1, h) % m) == 0)[None, :] if m > 1 else np.zeros((1, h - 1), bool)
    c = sel.alpha[:, None] + sel.beta[:, None] * damp + sel.gamma[:, None] * seasonal
    return np.concatenate([np.ones((len(sel.alpha), 1)), 1 + np.cumsum(c * c, axis=1)], axis=1)


def _filter_block(
    y: np.ndarray,
    first: np.ndarray,
    m: int,
    grid: _Grid,
    origins: Sequence[int],
) -> list[_Selected]:
    """Filter every grid point of a block of series; select by AIC at each origin.

    Parameters
    ----------
    y : numpy.ndarray, shape (n, T)
        Right-aligned series, NaN before each series' first column.
    first : numpy.ndarray of int, shape (n,)
        First observed column of each series.
    m : int
        Seasonal period (1: none).
    grid : _Grid
    origins : sequence of int
        Increasing column counts; at each, the parameters are chosen from the
        one-step errors of the columns before it and the states are kept.

    Returns
    -------
    list of _Selected
        One per origin.
    """
    n, width = y.shape
    rows = np.arange(n)
    # Initial states from the first season (two for the slope, when available).
    season_idx = first[:, None] + np.arange(m)[None, :]
    first_season = y[rows[:, None], np.minimum(season_idx, width - 1)]
    level0 = first_season.mean(axis=1)
    nxt = np.minimum(season_idx + m, width - 1)
    has_two = first + 2 * m <= width
    slope0 = np.where(has_two, (y[rows[:, None], nxt].mean(axis=1) - level0) / m, 0.0)
    g = grid.size
    trend = grid.phi > 0  # (G, 1)
    level = np.broadcast_to(level0, (g, n)).copy()
    slope = np.where(trend, slope0[None, :], 0.0)
    season = np.zeros((m, g, n))
    dev = first_season - level0[:, None]  # (n, m)
    for k in range(m):
        season[(first + k) % m, :, rows] = dev[:, k][:, None]
    sse = np.zeros((g, n))
    count = np.zeros(n)
    start = first + m  # first column whose one-step error is counted
    t0 = int(start.min()) if n else width
    uniform = bool((start == start[0]).all()) if n else True
    out: list[_Selected] = []
    pending = sorted(set(int(o) for o in origins))
    alpha, beta, gamma, phi = grid.alpha, grid.beta, grid.gamma, grid.phi

    def select(origin: int) -> _Selected:
        n_eff = np.maximum(count, 1.0)
        with np.errstate(divide="ignore"):
            aic = n_eff * np.log(np.maximum(sse / n_eff, 1e-300)) + 2 * grid.n_params[:, None]
        best = np.argmin(aic, axis=0)
        return _Selected(
            alpha=alpha[best, 0],
            beta=beta[best, 0],
            gamma=gamma[best, 0],
            phi=phi[best, 0],
            level=level[best, rows].copy(),
            slope=slope[best, rows].copy(),
            season=season[:, best, rows].copy(),
            sigma=np.sqrt(sse[best, rows] / n_eff),
            origin=origin,
        )

    for t in range(t0, width):
        while pending and pending[0] <= t:
            out.append(select(pending.pop(0)))
        k = t % m
        s_old = season[k]
        damped = phi * slope
        fitted = level + damped
        e = y[:, t][None, :] - (fitted + s_old)
        if uniform:
            level = fitted + alpha * e
            slope = damped + beta * e
            season[k] = s_old + gamma * e
            sse += e * e
            count += 1
        else:
            active = (t >= start)[None, :]
            e = np.where(active, e, 0.0)
            level = np.where(active, fitted + alpha * e, level)
            slope = np.where(active, damped + beta * e, slope)
            season[k] = s_old + gamma * e
            sse += e * e
            count += active[0]
    while pending:
        out.append(select(pending.pop(0)))
    return out


def _conformal_quantile(scores: np.ndarray, level: int) -> np.ndarray:
    """Per-row finite-sample conformal quantile of ``scores`` (NaN ignored), ``(n,)``.

    Rows without a score get NaN.
    """
    srt = np.sort(scores, axis=1)  # NaN last
    counts = np.isfinite(srt).sum(axis=1)
    k = np.ceil((counts + 1) * level / 100.0).astype(np.int64) - 1
    k = np.clip(k, 0, np.maximum(counts - 1, 0))
    out = srt[np.arange(len(srt)), k]
    return np.where(counts > 0, out, np.nan)


class VectorizedETS(BaseForecaster):
    """Additive Holt-Winters for very many series, vectorised across series.

    For every series the additive-error models without trend and with a damped
    trend (ETS(A,N,A) and ETS(A,Ad,A); no seasonal part when the season is 1)
    are filtered for every point of a parameter grid in one numpy pass, and
    the one with the lowest AIC is kept. Initial states come from the first
    season(s) of each series.

    Intervals are per-series split-conformal: ``n_windows`` rolling-origin
    windows of ``horizon`` steps at the end of each series are forecast from
    parameters chosen before each cutoff; their absolute errors, divided by
    the square root of the model's variance growth over the horizon, are the
    scores whose conformal quantile ``q`` gives ``yhat +- q * sqrt(growth_j)``.
    Series too short for a window get normal intervals from their one-step
    in-sample error. Nothing is pooled across series, so forecasts do not
    depend on which other series are fitted together.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Seasonal period; default from the frequency.
    horizon : int, optional
        Steps of each calibration window; default the ``h`` of the first
        ``predict`` (calibrating then costs one more pass).
    n_windows : int
        Calibration windows per series.
    alphas, gammas : sequence of float
        Grid of level and seasonal smoothing parameters.
    trends : sequence of (beta, phi)
        Trend variants; ``(0, 0)`` means no trend, otherwise an additive trend
        with smoothing ``beta`` damped by ``phi``.
    calibration : {"conformal", "normal"}
        Per-series conformal intervals, or normal ones from the in-sample
        one-step error and the variance formula.

    Attributes
    ----------
    params_ : dict of str to numpy.ndarray
        Chosen ``alpha, beta, gamma, phi`` per fitted series (main model).
    """

    name = "vets"

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        horizon: int | None = None,
        n_windows: int = 3,
        alphas: Sequence[float] = (0.03, 0.08, 0.15, 0.25, 0.4, 0.6, 0.85),
        gammas: Sequence[float] = (0.0, 0.05, 0.2),
        trends: Sequence[tuple[float, float]] = ((0.0, 0.0), (0.02, 0.9), (0.08, 0.95)),
        calibration: Literal["conformal", "normal"] = "conformal",
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.horizon = horizon
        self.n_windows = n_windows
        self.alphas = alphas
        self.gammas = gammas
        self.trends = trends
        self.calibration = calibration

    # ------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("horizon", "n_windows"):
            value = getattr(self, name)
            if name == "horizon" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"parameter {name} must be a positive integer, got {value!r}")
        for name, lo, hi in (("alphas", 0.0, 1.0), ("gammas", 0.0, 1.0)):
            values = getattr(self, name)
            if (
                isinstance(values, str | bytes)
                or not len(values)
                or not all(isinstance(v, int | float) and lo <= float(v) <= hi for v in values)
            ):
                raise ConfigError(
                    f"parameter {name} must be a non-empty sequence of numbers in "
                    f"[{lo}, {hi}], got {values!r}"
                )
        if (
            isinstance(self.trends, str | bytes)
            or not len(self.trends)
            or not all(
                len(tr) == 2 and 0 <= float(tr[0]) <= 1 and 0 <= float(tr[1]) <= 1
                for tr in self.trends
            )
        ):
            raise ConfigError(
                "parameter trends must be a non-empty sequence of (beta, phi) pairs in [0, 1], "
                f"got {self.trends!r}"
            )
        if self.calibration not in ("conformal", "normal"):
            raise ConfigError(
                "parameter calibration must be one of ('conformal', 'normal'), "
                f"got {self.calibration!r}"
            )

    def _min_length(self) -> int:
        m = self.season_length_
        # One season to initialise and one more of errors to choose the parameters by.
        return 2 * m + 2 if m > 1 else 4

    # ---------------------------------------------------------------- fitting
    def _grid(self) -> _Grid:
        return holt_winters_grid(
            [float(a) for a in self.alphas],
            [float(g) for g in self.gammas],
            [(float(b), float(p)) for b, p in self.trends],
            self.season_length_,
        )

    def _fit(self, panel: SeriesPanel) -> None:
        self._panel = panel
        self._scores: dict[int, np.ndarray] = {}
        horizon = None if self.horizon is None else int(self.horizon)
        self._selected = self._run(panel, horizon)
        self.params_ = {
            "alpha": self._selected.alpha,
            "beta": self._selected.beta,
            "gamma": self._selected.gamma,
            "phi": self._selected.phi,
        }

    def _run(self, panel: SeriesPanel, horizon: int | None) -> _Selected:
        """One filtering pass: the final states and, with ``horizon``, calibration scores."""
        m = self.season_length_
        grid = self._grid()
        width = int(panel.lengths.max())
        y = panel.matrix(width)
        first = width - panel.lengths
        windows = int(self.n_windows) if horizon and self.calibration == "conformal" else 0
        origins = [width - (windows - w) * horizon for w in range(windows)] if horizon else []
        finals: list[_Selected] = []
        scores = np.full((panel.n_series, windows * (horizon or 0)), np.nan)
        for a in range(0, panel.n_series, _BLOCK):
            b = min(a + _BLOCK, panel.n_series)
            yb, fb = y[a:b], first[a:b]
            # A window needs a season to initialise and one of errors before its cutoff.
            valid = [o for o in origins if o > int(fb.min()) + 2 * m]
            sel = _filter_block(yb, fb, m, grid, [*valid, width])
            finals.append(sel[-1])
            for w, origin in enumerate(origins):
                if origin not in valid:
                    continue
                s = sel[valid.index(origin)]
                assert horizon is not None
                fc = _forecast(s, horizon, m)
                err = yb[:, origin : origin + horizon] - fc
                z = np.abs(err) / np.sqrt(_growth(s, horizon, m))
                ok = origin - fb >= 2 * m + 1
                z[~ok] = np.nan
                scores[a:b, w * horizon : (w + 1) * horizon] = z
        if horizon and windows:
            self._scores[horizon] = scores
        return _Selected(
            alpha=np.concatenate([s.alpha for s in finals]),
            beta=np.concatenate([s.beta for s in finals]),
            gamma=np.concatenate([s.gamma for s in finals]),
            phi=np.concatenate([s.phi for s in finals]),
            level=np.concatenate([s.level for s in finals]),
            slope=np.concatenate([s.slope for s in finals]),
            season=np.concatenate([s.season for s in finals], axis=1),
            sigma=np.concatenate([s.sigma for s in finals]),
            origin=width,
        )

    # ------------------------------------------------------------- predicting
    def _calibration_scores(self, h: int) -> np.ndarray:
        if h not in self._scores:
            self._run(self._panel, h)
        return self._scores[h]

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        m = self.season_length_
        sel = self._selected
        mean = _forecast(sel, h, m)
        if not levels:
            return mean, {}
        growth = np.sqrt(_growth(sel, h, m))
        scores = self._calibration_scores(h) if self.calibration == "conformal" else None
        bands: Bands = {}
        for lv in levels:
            z = float(norm.ppf(0.5 + lv / 200.0))
            q = z * sel.sigma
            if scores is not None:
                emp = _conformal_quantile(scores, lv)
                q = np.where(np.isfinite(emp), emp, q)
            width = q[:, None] * growth
            bands[lv] = (mean - width, mean + width)
        return mean, bands
