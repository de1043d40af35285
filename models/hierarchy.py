"""Hierarchical forecasting: coherent forecasts along a tag hierarchy.

A hierarchy of ``n`` nodes over ``m`` bottom series is described by its summing
matrix ``S`` (``n x m``): every node is a sum of bottom series. Base forecasts
``yhat`` (``n x h``), one per node, are generally incoherent (children do not sum
to their parent); a linear reconciliation ``S P yhat`` makes them coherent. ``P``
(``m x n``) depends on the method:

* ``bottom_up``: ``P = [0 | I]``, the bottom forecasts summed up;
* ``top_down``: the total forecast split by the bottom series' share of the
  total over the last ``h`` observations (proportions of historical averages);
* ``ols``: ``P = (S'S)^-1 S'`` (Hyndman et al. 2011);
* ``wls_struct``: ``W = diag(S 1)`` (each node weighted by its bottom count);
* ``wls_var``: ``W = diag`` of the residual variances;
* ``mint_shrink``: ``W`` is the residual covariance shrunk towards its diagonal
  with the Schäfer-Strimmer (2005) intensity, ``P = (S'W^-1 S)^-1 S'W^-1``
  (Wickramasuriya, Athanasopoulos and Hyndman 2019).

Residuals are out-of-sample: the rolling-origin backtest errors of the base
model (the base contract has no in-sample fitted values, and multi-step
backtest errors are what the reconciled forecast is judged on). Each backtest
window is reconciled with a ``W`` estimated only from the residuals known at its
cutoff (the steps of earlier windows up to it), so the method comparison sees
neither its own errors nor the future; the first window, which has no past
residuals, only provides them (it is not scored). The final forecast uses every
backtest residual.

Intervals: the point forecasts are reconciled, then the intervals are rebuilt
by split-conformal calibration (:class:`models._conformal.ConformalCalibrator`)
on the *reconciled* backtest errors, one calibrator per level of the hierarchy
(scores pooled over the nodes of a level and neighbouring horizon steps, scaled
per node). Interval bounds are therefore calibrated per node but not additive
(quantiles of a sum are not sums of quantiles). The backtest table's coverage
is cross-fitted: each window's intervals come from the other windows' errors.

:class:`HierarchicalForecaster` runs the backtest, compares the methods, keeps
the one with the lowest mean WAPE over the levels (``method="auto"``) and
forecasts; :func:`forecast_hierarchy` is the one-call helper over the store.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.exceptions import ConfigError, InvalidFrameError, NotFittedError
from features.schema import validate_levels
from features.series import HierarchySeries
from models._conformal import ConformalCalibrator, insample_scale
from models._frequency import default_season_length
from models._panel import SeriesPanel, to_panel
from models.base import BaseForecaster, check_horizon, nest_bands

__all__ = [
    "METHODS",
    "HierarchicalForecaster",
    "default_base",
    "forecast_hierarchy",
    "level_metrics",
    "reconcile",
    "reconciliation_matrix",
    "shrink_covariance",
]

#: Reconciliation methods; ``"none"`` keeps the (incoherent) base forecasts.
METHODS: tuple[str, ...] = (
    "bottom_up",
    "top_down",
    "ols",
    "wls_struct",
    "wls_var",
    "mint_shrink",
    "none",
)
#: Methods that need residuals.
_NEEDS_RESIDUALS = ("wls_var", "mint_shrink")
#: Fewest past residual samples per node for a backtest window to be scored.
_MIN_RESIDUALS = 7
#: Candidates compared by ``method="auto"`` (all coherent).
DEFAULT_CANDIDATES: tuple[str, ...] = (
    "bottom_up",
    "top_down",
    "ols",
    "wls_struct",
    "wls_var",
    "mint_shrink",
)


# --------------------------------------------------------------------------- numpy core
def shrink_covariance(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """Residual covariance shrunk towards its diagonal (Schäfer and Strimmer 2005).

    The target keeps the variances and sets the correlations to zero; the
    intensity ``lambda = sum Var(r_ij) / sum r_ij^2`` over the off-diagonal
    correlations of the standardised residuals (clipped to [0, 1]) is the one
    that minimises the expected squared error of the estimate.

    Parameters
    ----------
    residuals : numpy.ndarray, shape (n_samples, n_series)
        Forecast errors, one column per node; NaN-free. Taken as mean-zero (the
        covariance is the second moment, as the MinT ``W`` is an error MSE).

    Returns
    -------
    W : numpy.ndarray, shape (n_series, n_series)
    lam : float
        The shrinkage intensity used.
    """
    x = np.asarray(residuals, dtype=float)
    t, n = x.shape
    if t < 2:
        raise ConfigError(f"shrink_covariance needs at least 2 residual samples, got {t}")
    cov = x.T @ x / t
    var = np.diag(cov).copy()
    sd = np.sqrt(np.where(var > 0, var, 1.0))
    xs = x / sd
    # w_ij,t = xs_ti xs_tj; the sample correlation is their mean and Var of it
    # is estimated from their spread (Schäfer-Strimmer, eq. for the unbiased estimator).
    corr = xs.T @ xs / t
    w2 = (xs**2).T @ (xs**2)  # sum_t xs_ti^2 xs_tj^2
    v = (w2 - t * corr**2) * t / (t - 1) ** 3
    r = corr * t / (t - 1)
    off = ~np.eye(n, dtype=bool)
    const = var <= 0
    off &= ~const[:, None] & ~const[None, :]
    denom = float(np.sum(r[off] ** 2))
    lam = 1.0 if denom <= 0 else float(np.clip(np.sum(v[off]) / denom, 0.0, 1.0))
    w = lam * np.diag(var) + (1.0 - lam) * cov
    return w, lam


def _floor_diag(w: np.ndarray) -> np.ndarray:
    """Keep ``W`` invertible: a node with zero error variance gets a tiny one."""
    d = np.diag(w).copy()
    pos = d[d > 0]
    floor = 1e-6 * float(np.median(pos)) if len(pos) else 1.0
    bump = np.where(d < floor, floor - np.minimum(d, floor), 0.0)
    return w + np.diag(bump)


def _gls_projection(s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``P = (S' W^-1 S)^-1 S' W^-1`` for a symmetric positive (semi)definite ``W``."""
    w = _floor_diag(w)
    # Work on the correlation scale: node variances span orders of magnitude.
    d = np.sqrt(np.diag(w))
    corr = w / d[:, None] / d[None, :]
    sd_ = s / d[:, None]
    try:
        winv_s = np.linalg.solve(corr, sd_)  # (n, m) = R^-1 D^-1 S
    except np.linalg.LinAlgError:
        winv_s = np.linalg.pinv(corr) @ sd_
    a = sd_.T @ winv_s  # S' W^-1 S
    b = winv_s.T / d[None, :]  # S' W^-1
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a) @ b


def reconciliation_matrix(
    S: np.ndarray | sp.spmatrix,
    method: str,
    *,
    residuals: np.ndarray | None = None,
    history: np.ndarray | None = None,
    proportion_window: int | None = None,
) -> np.ndarray:
    """The matrix ``P`` (``m x n``) of a reconciliation method: ``ytilde = S P yhat``.

    Parameters
    ----------
    S : array or sparse matrix, shape (n, m)
        Summing matrix; the rows of the bottom series form an identity block.
    method : str
        One of :data:`METHODS` except ``"none"``.
    residuals : numpy.ndarray, shape (n_samples, n), optional
        Out-of-sample errors of the base forecasts (``wls_var``, ``mint_shrink``).
    history : numpy.ndarray, shape (n, T), optional
        Node histories (``top_down``: the proportions come from the bottom rows).
    proportion_window : int, optional
        Trailing observations for the ``top_down`` proportions (default all).

    Returns
    -------
    numpy.ndarray, shape (m, n)
    """
    s = _dense(S)
    n, m = s.shape
    bottom_rows = _bottom_rows(s)
    if method == "bottom_up":
        p = np.zeros((m, n))
        p[np.arange(m), bottom_rows] = 1.0
        return p
    if method == "top_down":
        if history is None:
            raise ConfigError("top_down reconciliation needs the node histories (history=...)")
        hist = np.asarray(history, dtype=float)
        if proportion_window is not None:
            hist = hist[:, -int(proportion_window) :]
        bottom = hist[bottom_rows].sum(axis=1)
        total = bottom.sum()
        props = bottom / total if total != 0 else np.full(m, 1.0 / m)
        top = int(np.argmax(s.sum(axis=1)))
        p = np.zeros((m, n))
        p[:, top] = props
        return p
    if method == "ols":
        return _gls_projection(s, np.eye(n))
    if method == "wls_struct":
        return _gls_projection(s, np.diag(s.sum(axis=1)))
    if method in _NEEDS_RESIDUALS:
        if residuals is None:
            raise ConfigError(f"{method} reconciliation needs residuals (residuals=...)")
        res = np.asarray(residuals, dtype=float)
        if res.ndim != 2 or res.shape[1] != n:
            raise ConfigError(
                f"parameter residuals must have shape (n_samples, {n}), got {res.shape}"
            )
        res = res[np.isfinite(res).all(axis=1)]
        if method == "wls_var":
            if len(res) < 1:
                raise ConfigError("wls_var reconciliation needs at least one residual sample")
            return _gls_projection(s, np.diag(np.mean(res**2, axis=0)))
        w, _ = shrink_covariance(res)
        return _gls_projection(s, w)
    raise ConfigError(f"parameter method must be one of {list(METHODS)}, got {method!r}")


def _dense(S: np.ndarray | sp.spmatrix) -> np.ndarray:
    if sp.issparse(S):
        return np.asarray(S.toarray(), dtype=float)  # type: ignore[union-attr]
    return np.asarray(S, dtype=float)


def _bottom_rows(s: np.ndarray) -> np.ndarray:
    """Row of ``S`` of each bottom series (a row with a single 1 in that column)."""
    single = (s != 0).sum(axis=1) == 1
    rows = np.full(s.shape[1], -1)
    for i in np.flatnonzero(single):
        j = int(np.flatnonzero(s[i])[0])
        if rows[j] < 0:
            rows[j] = i
    if (rows < 0).any():
        raise ConfigError("parameter S must contain an identity row for every bottom series")
    return rows


def reconcile(
    S: np.ndarray | sp.spmatrix,
    yhat: np.ndarray,
    method: str,
    *,
    residuals: np.ndarray | None = None,
    history: np.ndarray | None = None,
    nonnegative: np.ndarray | None = None,
) -> np.ndarray:
    """Coherent forecasts ``S P yhat`` (``n x h``) from base forecasts ``yhat`` (``n x h``).

    ``nonnegative`` (boolean, one per bottom series) clips those bottom forecasts
    at zero before summing them up, which keeps the result coherent.
    """
    yhat = np.asarray(yhat, dtype=float)
    if method == "none":
        return yhat.copy()
    s = _dense(S)
    p = reconciliation_matrix(s, method, residuals=residuals, history=history)
    bottom = p @ yhat
    if nonnegative is not None:
        bottom = np.where(np.asarray(nonnegative)[:, None], np.maximum(bottom, 0.0), bottom)
    return s @ bottom


# --------------------------------------------------------------------------- estimator
def default_base(*, freq: str | None = None, n_jobs: int = -1, seed: int = 0) -> BaseForecaster:
    """The default base model of daily cost: global LightGBM with the Huber loss.

    Daily cost of ML teams is bursty (training jobs): the L1 loss forecasts the
    median day and under-forecasts monthly spend; Huber keeps most of L1's
    robustness to one-off spikes while tracking the mean (see
    ``benchmarks/fleet_daily.py``). One global fit covers every node.
    """
    from models.lgbm import LGBMForecaster

    return LGBMForecaster(freq=freq, objective="huber", n_jobs=n_jobs, seed=seed)


def _check_method(method: str, allowed: Sequence[str], name: str = "method") -> str:
    if method not in allowed:
        raise ConfigError(f"parameter {name} must be one of {list(allowed)}, got {method!r}")
    return method


class HierarchicalForecaster:
    """Coherent forecasts of every node of a hierarchy, with the method chosen by backtest.

    Parameters
    ----------
    base : str or BaseForecaster
        Base model of every node: a registry name (``"lgbm"``, ``"ets"``,
        ``"auto"``, ``"seasonal_naive"``...) or an unfitted estimator. The default
        global LightGBM model forecasts all nodes in one fit.
    method : str
        ``"auto"`` (lowest mean WAPE over the levels in the backtest) or one of
        :data:`METHODS`.
    candidates : sequence of str
        Methods compared when ``method="auto"`` (default: every coherent one).
    horizon : int, optional
        Steps of every backtest window; default ``2 * season_length``. Use the
        horizon you will forecast (shorter histories shorten it, see
        ``backtest_horizon_``).
    n_windows : int
        Rolling-origin backtest windows; the first only provides residuals for
        the covariance of the later ones (at least 2; more windows give a
        steadier method choice).
    step : int, optional
        Steps between backtest cutoffs; default ``ceil(horizon / n_windows)``.
    nonnegative : bool
        Clip reconciled bottom forecasts at zero for bottom series that were never
        negative, then sum up (coherent).
    n_jobs, seed : int
        Passed to the base model.

    Attributes
    ----------
    method_ : str
        The method used by ``predict``.
    backtest_ : pandas.DataFrame
        One row per level and method: ``level, method, n, wape, smape, mase, bias,
        coverage_80, coverage_95, msis`` (coverage cross-fitted over the windows),
        plus a row ``level == "mean"`` (mean over the levels) per method. Includes
        ``none`` (base forecasts, not coherent) for reference.
    backtest_horizon_ : int
        Steps of the backtest windows (``horizon``, shortened for short histories).
    methods_ : list of str
        Methods evaluated (and usable in ``predict(method=...)``).
    notes_ : list of str
        What was adjusted and why (shortened backtest).
    backtest_forecasts_ : dict of str to numpy.ndarray
        Reconciled forecasts of the scored backtest windows per method, shape
        ``(n_nodes, n_scored, h)``.
    backtest_actuals_ : numpy.ndarray, shape (n_nodes, n_scored, h)
    scored_windows_ : list of int
        Backtest windows that were scored (those with past residuals).
    cutoffs_ : pandas.DatetimeIndex
        Cutoffs of the scored windows (last timestamp used for fitting).
    base_model_ : BaseForecaster
        The base model fitted on the full history.
    """

    def __init__(
        self,
        *,
        base: str | BaseForecaster | None = None,
        method: str = "auto",
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        horizon: int | None = None,
        n_windows: int = 3,
        step: int | None = None,
        nonnegative: bool = True,
        n_jobs: int = -1,
        seed: int = 0,
    ) -> None:
        self.base = base
        self.method = method
        self.candidates = candidates
        self.horizon = horizon
        self.n_windows = n_windows
        self.step = step
        self.nonnegative = nonnegative
        self.n_jobs = n_jobs
        self.seed = seed

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "base",
                "method",
                "candidates",
                "horizon",
                "n_windows",
                "step",
                "nonnegative",
                "n_jobs",
                "seed",
            )
        }

    def clone(self, **overrides: Any) -> HierarchicalForecaster:
        params = self.get_params()
        params.update(overrides)
        if isinstance(params["base"], BaseForecaster):
            params["base"] = params["base"].clone()
        return type(self)(**params)

    def __repr__(self) -> str:
        return f"HierarchicalForecaster(base={self.base_name}, method={self.method!r})"

    @property
    def base_name(self) -> str:
        if self.base is None:
            return "lgbm"
        return self.base if isinstance(self.base, str) else type(self.base).name

    # ------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        _check_method(self.method, ("auto", *METHODS))
        if isinstance(self.candidates, str) or not len(self.candidates):
            raise ConfigError(
                f"parameter candidates must be a non-empty list of methods, got {self.candidates!r}"
            )
        for c in self.candidates:
            _check_method(c, [m for m in METHODS if m != "none"], "candidates")
        for name in ("n_windows",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"parameter {name} must be a positive integer, got {v!r}")
        for name in ("horizon", "step"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"parameter {name} must be a positive integer, got {v!r}")
        if self.base is not None and not isinstance(self.base, str | BaseForecaster):
            raise ConfigError(
                f"parameter base must be a model name or a BaseForecaster, got {self.base!r}"
            )

    def _make_base(self, freq: str, horizon: int) -> BaseForecaster:
        if isinstance(self.base, BaseForecaster):
            return self.base.clone()
        if self.base is None:
            return default_base(freq=freq, n_jobs=self.n_jobs, seed=self.seed)
        from models import make_model

        return make_model(self.base, freq=freq, horizon=horizon, n_jobs=self.n_jobs, seed=self.seed)

    def _check_is_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                "This HierarchicalForecaster instance is not fitted yet; call "
                "fit(hierarchy) with a HierarchySeries before predict()"
            )

    # --------------------------------------------------------------- fitting
    def fit(self, hierarchy: HierarchySeries) -> Self:
        """Backtest the base model, compare the methods and fit on the full history.

        Parameters
        ----------
        hierarchy : HierarchySeries
            From :func:`features.series.hierarchy_series` or
            :func:`features.series.hierarchy_from_frame`.

        Returns
        -------
        self
        """
        self._validate_params()
        if not isinstance(hierarchy, HierarchySeries):
            raise InvalidFrameError(
                f"expected a HierarchySeries, got {type(hierarchy).__name__}", frame="hierarchy"
            )
        hs = hierarchy
        self.hierarchy_ = hs
        self.S_ = hs.S.toarray()
        n, t = hs.values.shape
        panel, perm = self._panel(hs)
        self.season_length_ = default_season_length(panel.freq)
        m = self.season_length_
        horizon = int(self.horizon) if self.horizon is not None else max(2 * m, 8)
        windows = int(self.n_windows)
        step = int(self.step) if self.step is not None else max(1, math.ceil(horizon / windows))
        # Each backtest fit needs some history: four seasons, at least four weeks of days.
        min_train = max(4 * m, 28) if m > 1 else 12
        h_bt = min(horizon, t - min_train - (windows - 1) * step)
        if h_bt < 1:
            raise InvalidFrameError(
                f"the hierarchy has {t} time steps; a backtest of {windows} windows "
                f"{step} steps apart needs more than {min_train + (windows - 1) * step}",
                frame="hierarchy",
            )
        self.notes_: list[str] = []
        if h_bt < horizon:
            self.notes_.append(
                f"history of {t} steps: backtest windows shortened to {h_bt} steps "
                f"(asked {horizon}); intervals beyond it widen like sqrt(h)"
            )
        self.horizon_, self.backtest_horizon_, self.step_ = horizon, h_bt, step
        bottom = hs.bottom_mask
        self.nonneg_bottom_ = _never_negative(hs.values[bottom]) if self.nonnegative else None
        self.nonneg_nodes_ = _never_negative(hs.values)

        # Rolling-origin backtest of the base model (point forecasts only).
        base_bt = np.full((n, windows, h_bt), np.nan)
        actual = np.full((n, windows, h_bt), np.nan)
        cut_pos = []
        for w in range(windows):
            drop = h_bt + (windows - 1 - w) * step
            train = panel.truncate(drop)
            model = self._make_base(hs.freq, h_bt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model._fit_panel(train)
                mean, _ = model._predict_arrays(h_bt, [], None)
            base_bt[:, w] = mean[perm]
            actual[:, w] = hs.values[:, t - drop : t - drop + h_bt]
            cut_pos.append(t - drop - 1)
        resid_base = actual - base_bt  # (n, W, h)
        drops = [t - 1 - c for c in cut_pos]

        def past(w: int) -> np.ndarray:
            """Base residuals known at cutoff ``w``: steps of earlier windows up to it."""
            parts = [resid_base[:, v, : min(h_bt, drops[v] - drops[w])] for v in range(w)]
            return np.concatenate(parts, axis=1) if parts else np.empty((n, 0))

        # A window is scored when enough residuals precede it to estimate W; the
        # residuals of later windows would leak the future into the comparison.
        scored = [w for w in range(windows) if past(w).shape[1] >= _MIN_RESIDUALS]
        if not scored:
            scored = list(range(windows))
            self.notes_.append(
                f"too few backtest windows to estimate the residual covariance from the past "
                f"only ({windows} windows {step} steps apart); each window used the others"
            )
        self.scored_windows_ = scored

        methods = list(dict.fromkeys([*self.candidates, "none"]))
        if self.method not in ("auto", *methods):
            methods.append(self.method)
        self.methods_ = methods
        rec: dict[str, np.ndarray] = {}
        for meth in methods:
            out = np.empty((n, len(scored), h_bt))
            for k, w in enumerate(scored):
                known = past(w)
                if known.shape[1] < _MIN_RESIDUALS:
                    known = resid_base[:, [v for v in range(windows) if v != w] or [w]]
                    known = known.reshape(n, -1)
                out[:, k] = self._reconcile(
                    meth,
                    base_bt[:, w],
                    known,
                    hs.values[:, : cut_pos[w] + 1],
                    h_bt,
                    nonneg=_never_negative(hs.values[bottom, : cut_pos[w] + 1])
                    if self.nonnegative
                    else None,
                )
            rec[meth] = out
        actual = actual[:, scored]
        cut_pos = [cut_pos[w] for w in scored]
        self.cutoffs_ = hs.ds[cut_pos]
        self.backtest_actuals_ = actual
        self.backtest_forecasts_ = rec

        # Intervals per method and level: conformal on the reconciled errors.
        level_names = hs.level_names
        self._node_level = hs.node_levels
        scale = insample_scale(panel, m)[perm]
        self._scale = scale
        self.calibrators_: dict[str, dict[str, ConformalCalibrator]] = {}
        for meth in methods:
            res = actual - rec[meth]
            self.calibrators_[meth] = {
                lv: ConformalCalibrator(min_pool=_min_pool(res[hs.node_levels == lv])).fit(
                    res[hs.node_levels == lv], scale[hs.node_levels == lv]
                )
                for lv in level_names
            }
        self.backtest_ = self._score(hs, rec, actual, cut_pos)
        if self.method == "auto":
            table = self.backtest_
            mean_rows = table[(table["level"] == "mean") & table["method"].isin(self.candidates)]
            best = mean_rows.sort_values(["wape", "method"]).iloc[0]["method"]
            self.method_ = str(best)
        else:
            self.method_ = self.method

        # Final base model on the full history.
        self.base_model_ = self._make_base(hs.freq, horizon)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.base_model_._fit_panel(panel)
        self._perm = perm
        # Every backtest residual precedes the final cutoff: all of them estimate W.
        self._residuals = resid_base.reshape(n, -1)
        self.is_fitted_ = True
        return self

    @staticmethod
    def _panel(hs: HierarchySeries) -> tuple[SeriesPanel, np.ndarray]:
        """The node series as a panel and the permutation panel order -> node order."""
        panel = to_panel(hs.frame(with_level=False), freq=hs.freq, use_exog=False)
        pos = {uid: i for i, uid in enumerate(panel.ids)}
        perm = np.array([pos[uid] for uid in hs.ids], dtype=np.int64)
        return panel, perm

    def _reconcile(
        self,
        method: str,
        yhat: np.ndarray,
        residuals: np.ndarray,
        history: np.ndarray,
        h: int,
        nonneg: np.ndarray | None,
    ) -> np.ndarray:
        if method == "none":
            return yhat.copy()
        # residuals: (n_nodes, n_samples); reconciliation_matrix wants samples first.
        res2d = residuals.T if method in _NEEDS_RESIDUALS else None
        p = reconciliation_matrix(
            self.S_, method, residuals=res2d, history=history, proportion_window=h
        )
        bottom = p @ yhat
        if nonneg is not None:
            bottom = np.where(nonneg[:, None], np.maximum(bottom, 0.0), bottom)
        return self.S_ @ bottom

    # -------------------------------------------------------------- scoring
    def _score(
        self,
        hs: HierarchySeries,
        rec: dict[str, np.ndarray],
        actual: np.ndarray,
        cut_pos: list[int],
    ) -> pd.DataFrame:
        """Backtest metrics per method and level, intervals cross-fitted over windows."""
        n, windows, _ = actual.shape
        m = self.season_length_
        levels = [80, 95]
        # MASE scale of every node at every cutoff (seasonal naive in-sample error).
        scales = np.empty((n, windows))
        for w, c in enumerate(cut_pos):
            y = hs.values[:, : c + 1]
            lag = m if y.shape[1] > m else 1
            scales[:, w] = np.mean(np.abs(y[:, lag:] - y[:, :-lag]), axis=1)
        rows: list[dict[str, Any]] = []
        for meth, fc in rec.items():
            res = actual - fc
            bands: dict[int, tuple[np.ndarray, np.ndarray]] = {
                lv: (np.empty_like(fc), np.empty_like(fc)) for lv in levels
            }
            for lvl in hs.level_names:
                sel = hs.node_levels == lvl
                for w in range(windows):
                    others = [v for v in range(windows) if v != w] or [w]
                    cal = ConformalCalibrator(min_pool=_min_pool(res[sel][:, others])).fit(
                        res[sel][:, others], self._scale[sel]
                    )
                    b = cal.bands(fc[sel, w], levels)
                    b = self._clip_bands(fc[sel, w], b, self.nonneg_nodes_[sel], levels)
                    for lv in levels:
                        bands[lv][0][sel, w] = b[lv][0]
                        bands[lv][1][sel, w] = b[lv][1]
            per_level = []
            for lvl in hs.level_names:
                sel = hs.node_levels == lvl
                r = level_metrics(
                    actual[sel],
                    fc[sel],
                    {lv: (bands[lv][0][sel], bands[lv][1][sel]) for lv in levels},
                    scales[sel],
                )
                per_level.append(r)
                rows.append({"level": lvl, "method": meth, "n": int(sel.sum()), **r})
            mean = {k: float(np.nanmean([r[k] for r in per_level])) for k in per_level[0]}
            rows.append({"level": "mean", "method": meth, "n": int(n), **mean})
        cols = ["level", "method", "n", "wape", "smape", "mase", "bias"]
        cols += [f"coverage_{lv}" for lv in levels] + ["msis"]
        return pd.DataFrame(rows)[cols]

    @staticmethod
    def _clip_bands(
        mean: np.ndarray,
        bands: dict[int, tuple[np.ndarray, np.ndarray]],
        nonneg: np.ndarray,
        levels: list[int],
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        rows = nonneg[:, None]
        out = {
            lv: (np.where(rows, np.maximum(lo, 0.0), lo), np.where(rows, np.maximum(hi, 0.0), hi))
            for lv, (lo, hi) in bands.items()
        }
        return nest_bands(mean, out, levels)

    # ------------------------------------------------------------ predicting
    def predict(
        self, h: int | None = None, level: Sequence[int] = (80, 95), method: str | None = None
    ) -> pd.DataFrame:
        """Coherent forecasts of every node for the next ``h`` steps.

        Parameters
        ----------
        h : int, optional
            Steps ahead; default the ``horizon`` the model was fitted for.
        level : sequence of int
            Interval levels in (0, 100).
        method : str, optional
            Reconciliation method (default ``method_``); any of ``methods_``.

        Returns
        -------
        pandas.DataFrame
            ``unique_id, ds, yhat, lo_L, hi_L...`` in hierarchy order. ``yhat``
            sums exactly over children (up to float rounding) unless ``method="none"``.
        """
        self._check_is_fitted()
        h = self.horizon_ if h is None else check_horizon(h)
        levels = validate_levels(level)
        meth = self.method_ if method is None else _check_method(method, self.methods_)
        mean, bands = self._predict_arrays(h, levels, meth)
        hs = self.hierarchy_
        n = len(hs.ids)
        last = hs.ds[-1]
        future = pd.date_range(last, periods=h + 1, freq=hs.freq)[1:]
        data: dict[str, Any] = {
            "unique_id": np.repeat(hs.ids, h),
            "ds": np.tile(future.tz_convert(None).to_numpy(), n),
            "yhat": mean.reshape(-1),
        }
        for lv in levels:
            data[f"lo_{lv}"] = bands[lv][0].reshape(-1)
            data[f"hi_{lv}"] = bands[lv][1].reshape(-1)
        out = pd.DataFrame(data)
        out["ds"] = pd.DatetimeIndex(out["ds"]).tz_localize("UTC")
        return out

    def _predict_arrays(
        self, h: int, levels: list[int], method: str
    ) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        hs = self.hierarchy_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base, _ = self.base_model_._predict_arrays(h, [], None)
        base = base[self._perm]
        mean = self._reconcile(
            method,
            base,
            self._residuals,
            hs.values,
            h,
            self.nonneg_bottom_,
        )
        bands: dict[int, tuple[np.ndarray, np.ndarray]] = {
            lv: (np.empty_like(mean), np.empty_like(mean)) for lv in levels
        }
        if levels:
            for lvl, cal in self.calibrators_[method].items():
                sel = hs.node_levels == lvl
                b = self._clip_bands(
                    mean[sel], cal.bands(mean[sel], levels), self.nonneg_nodes_[sel], levels
                )
                for lv in levels:
                    bands[lv][0][sel] = b[lv][0]
                    bands[lv][1][sel] = b[lv][1]
        return mean, bands

    # ------------------------------------------------------- cross-validation
    def cross_validation(
        self,
        hierarchy: HierarchySeries,
        h: int,
        n_windows: int = 1,
        step: int | None = None,
        level: Sequence[int] = (80, 95),
        methods: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Rolling-origin evaluation of the whole procedure (method choice included).

        At each cutoff a fresh copy is fitted on the history up to it (its own
        inner backtest, method choice and calibration) and forecasts ``h`` steps.

        Parameters
        ----------
        hierarchy : HierarchySeries
        h, n_windows, step : int
            Horizon, number of outer windows, steps between cutoffs (default ``h``).
        level : sequence of int
        methods : sequence of str, optional
            Forecast with each of these methods (rows tagged by a ``method``
            column); default only the method each fit chose (``method`` says which).

        Returns
        -------
        pandas.DataFrame
            ``level, unique_id, ds, cutoff, y, yhat, lo_L, hi_L..., method``.
        """
        h = check_horizon(h)
        step = h if step is None else int(step)
        if step < 1 or n_windows < 1:
            raise ConfigError(
                f"parameters n_windows and step must be positive, got {n_windows!r}, {step!r}"
            )
        t = len(hierarchy.ds)
        frames = []
        for w in range(n_windows):
            drop = h + (n_windows - 1 - w) * step
            if drop >= t:
                raise InvalidFrameError(
                    f"the hierarchy has {t} steps, too few for {n_windows} windows of {h} "
                    f"steps {step} apart",
                    frame="hierarchy",
                )
            train = hierarchy.truncate(drop)
            model = self.clone(horizon=self.horizon or h).fit(train)
            which = list(methods) if methods is not None else [model.method_]
            for meth in which:
                fc = model.predict(h, level=level, method=meth)
                fc.insert(0, "level", np.repeat(hierarchy.node_levels, h))
                fc.insert(3, "cutoff", train.ds[-1])
                fc.insert(4, "y", hierarchy.values[:, t - drop : t - drop + h].reshape(-1))
                fc["method"] = meth
                fc["chosen"] = meth == model.method_
                frames.append(fc)
        return pd.concat(frames, ignore_index=True)


def _never_negative(values: np.ndarray) -> np.ndarray:
    """Whether each row was never negative, shape ``(n_rows,)``."""
    return np.asarray((values >= 0).all(axis=1), dtype=bool)


def _min_pool(res: np.ndarray) -> int:
    """Pool size of a level's calibrator: a tenth of its scores, between 50 and 200."""
    finite = int(np.isfinite(res).sum()) if res.size else 0
    return int(min(200, max(50, finite // 10)))


def level_metrics(
    y: np.ndarray,
    f: np.ndarray,
    bands: dict[int, tuple[np.ndarray, np.ndarray]],
    scales: np.ndarray,
) -> dict[str, float]:
    """Level metrics over nodes x windows x steps (``scales``: nodes x windows).

    WAPE, bias and coverage pool every point; sMAPE, MASE and MSIS are means of
    per-node values (nodes with a zero MASE scale are left out of those).
    """
    with warnings.catch_warnings():
        # A node with a zero scale in every window has an all-NaN MASE row.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _level_metrics(y, f, bands, scales)


def _level_metrics(
    y: np.ndarray,
    f: np.ndarray,
    bands: dict[int, tuple[np.ndarray, np.ndarray]],
    scales: np.ndarray,
) -> dict[str, float]:
    err = f - y
    absy = float(np.sum(np.abs(y)))
    denom = np.abs(y) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        sm = np.where(denom > 0, 200.0 * np.abs(err) / denom, 0.0)
        ok = scales > 0
        ase = np.where(ok[:, :, None], np.abs(err) / scales[:, :, None], np.nan)
    node_mase = np.nanmean(ase.reshape(len(y), -1), axis=1) if np.isfinite(ase).any() else None
    out: dict[str, float] = {
        "wape": 100.0 * float(np.sum(np.abs(err))) / absy if absy > 0 else float("nan"),
        "smape": float(np.mean(sm.reshape(len(y), -1).mean(axis=1))),
        "mase": float(np.nanmean(node_mase)) if node_mase is not None else float("nan"),
        "bias": 100.0 * float(np.sum(err)) / absy if absy > 0 else float("nan"),
    }
    for lv, (lo, hi) in bands.items():
        out[f"coverage_{lv}"] = 100.0 * float(np.mean((y >= lo) & (y <= hi)))
    if 95 in bands:
        lo, hi = bands[95]
        a = 0.05
        score = (hi - lo) + (2 / a) * (lo - y) * (y < lo) + (2 / a) * (y - hi) * (y > hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(ok[:, :, None], score / scales[:, :, None], np.nan)
        out["msis"] = (
            float(np.nanmean(np.nanmean(s.reshape(len(y), -1), axis=1)))
            if np.isfinite(s).any()
            else float("nan")
        )
    return out


# --------------------------------------------------------------------------- one call
@dataclass(frozen=True)
class HierarchyForecast:
    """Result of :func:`fit_forecast_hierarchy`: the frames and the fitted estimator."""

    forecast: pd.DataFrame
    backtest: pd.DataFrame
    estimator: HierarchicalForecaster


def forecast_hierarchy(store: Any, *args: Any, **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(forecast, backtest)`` of :func:`fit_forecast_hierarchy` (same parameters)."""
    res = fit_forecast_hierarchy(store, *args, **kwargs)
    return res.forecast, res.backtest


def fit_forecast_hierarchy(
    store: Any,
    levels: Sequence[str] = ("team", "project", "service"),
    horizon: int = 90,
    freq: str = "D",
    method: str = "auto",
    model: str | BaseForecaster = "auto",
    n_windows: int = 3,
    *,
    level: Sequence[int] = (80, 95),
    anchor: bool = True,
    step: int | None = None,
    n_jobs: int = -1,
    seed: int = 0,
) -> HierarchyForecast:
    """Coherent forecasts of every node of the tag hierarchy, from the store, in one call.

    Parameters
    ----------
    store : Store or HierarchySeries
        The store (its cost is aggregated with :func:`features.series.hierarchy_series`)
        or an already built hierarchy.
    levels : sequence of str
        Dimensions from the top down.
    horizon : int
        Steps ahead (days with ``freq="D"``).
    freq : str
        Bucket size (``"D"``, ``"h"``, ``"W"``, ``"MS"``).
    method : str
        ``"auto"`` or one of :data:`METHODS` (``"none"``: base forecasts).
    model : str or BaseForecaster
        Base model; ``"auto"`` is :func:`default_base` (global LightGBM, Huber
        loss), one fit for all nodes: fast and the most accurate of those we
        measured on daily cost (``benchmarks/fleet_daily.py``). Other registry
        names (``"lgbm"``, ``"ets"``, ``"seasonal_naive"``...) are accepted.
    n_windows : int
        Backtest windows (method choice, MinT covariance, interval calibration).
    level : sequence of int
        Interval levels.
    anchor : bool
        Also backtest the seasonal-naive anchor (bottom-up; seasonal naive is
        coherent by itself) and add its rows to the backtest table.
    step : int, optional
        Steps between backtest cutoffs (default ``ceil(horizon / n_windows)``).
    n_jobs, seed : int
        Threads of the base model and its random seed.

    Returns
    -------
    HierarchyForecast
        With the fitted estimator and these two frames:
    forecast : pandas.DataFrame
        ``level, unique_id, ds, yhat, lo_80, hi_80, lo_95, hi_95, model`` in
        hierarchy order; ``attrs["meta"]`` holds ``horizon_days, cutoff,
        model_name, reconciliation, backtest_horizon, notes``.
    backtest : pandas.DataFrame
        ``level, model, horizon_days, wape, smape, mase, bias, coverage_80,
        coverage_95, msis`` per level and candidate; ``model`` is
        ``"<base>/<method>"`` (``<base>/none``: the incoherent base forecasts).
        ``attrs["meta"]["chosen"]`` names the method used.
    """
    from features.series import hierarchy_series

    hs = store if isinstance(store, HierarchySeries) else hierarchy_series(store, levels, freq)
    base: str | BaseForecaster | None = None if model == "auto" else model
    est = HierarchicalForecaster(
        base=base,
        method=method,
        horizon=horizon,
        n_windows=n_windows,
        step=step,
        n_jobs=n_jobs,
        seed=seed,
    ).fit(hs)
    name = est.base_name
    fc = est.predict(horizon, level=level)
    fc.insert(0, "level", np.repeat(hs.node_levels, horizon))
    fc["model"] = f"{name}/{est.method_}"
    tables = [_backtest_rows(est, name)]
    if anchor and name != "seasonal_naive":
        sn = HierarchicalForecaster(
            base="seasonal_naive",
            method="bottom_up",
            candidates=("bottom_up",),
            horizon=horizon,
            n_windows=n_windows,
            step=step,
        ).fit(hs)
        tables.append(_backtest_rows(sn, "seasonal_naive", only=("bottom_up",)))
    bt = pd.concat(tables, ignore_index=True)
    fc.attrs["meta"] = {
        "horizon_days": _horizon_days(horizon, hs.freq),
        "cutoff": str(hs.ds[-1]),
        "model_name": name,
        "reconciliation": est.method_,
        "backtest_horizon": est.backtest_horizon_,
        "notes": [*hs.notes, *est.notes_],
    }
    bt.attrs["meta"] = {
        "chosen": f"{name}/{est.method_}",
        "cutoffs": [str(c) for c in est.cutoffs_],
    }
    return HierarchyForecast(fc, bt, est)


def _horizon_days(h: int, freq: str) -> float:
    per_day = {"h": 1 / 24, "D": 1.0, "W-MON": 7.0, "MS": 30.4375}
    return float(h * per_day.get(freq, 1.0))


def _backtest_rows(
    est: HierarchicalForecaster, base: str, only: Sequence[str] | None = None
) -> pd.DataFrame:
    t = est.backtest_
    t = t[t["level"] != "mean"]
    if only is not None:
        t = t[t["method"].isin(only)]
    out = pd.DataFrame(
        {
            "level": t["level"].to_numpy(),
            "model": [f"{base}/{m}" for m in t["method"]],
            "horizon_days": _horizon_days(est.backtest_horizon_, est.hierarchy_.freq),
        }
    )
    for c in ("wape", "smape", "mase", "bias", "coverage_80", "coverage_95", "msis"):
        out[c] = t[c].to_numpy(dtype=float)
    return out
