"""A global LightGBM forecaster over all series, with recursive multi-step prediction.

One gradient-boosted model learns from every series at once. Per series the
target is scaled (by default by its mean absolute seasonal difference, the
MASE scale, so that every series weighs the same in the loss) and expressed
relative to an *anchor*, the value one long season earlier (one week for hourly
data): the model learns ``z_t - z_{t-a}`` from lags ``z_{t-k} - z_{t-a}``,
rolling means / standard deviations of the recent values (also relative to the
anchor), the anchor level itself, calendar features (hour, day of week, day of
month, month), optional Fourier terms of each seasonal period, a holiday flag
(``holidays`` package) and the exogenous columns. Working relative to an anchor
keeps the targets small, so the trees' histogram bins resolve them finely, and
carries level shifts over without learning them. Every feature is built with
array shifts and cumulative sums over a right-aligned ``(n_series, time)``
matrix: there is no per-row Python loop.

Forecasts are recursive: one step is predicted for all series at once, fed
back, and the next step's features are computed from the extended matrix.
Forecasts are clipped to a generous band around the recent range (and kept
non-negative for series that never went negative), so that a recursion cannot
run away.

Intervals are split-conformal (:mod:`models._conformal`): a calibration copy of
the model is trained without the last ``conformal_windows * h`` observations
and forecasts ``h`` steps from ``conformal_windows`` rolling origins; its
out-of-sample residuals, scaled per series, give per-horizon quantiles.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from models._conformal import ConformalCalibrator, insample_scale
from models._frequency import default_seasonal_periods, fixed_step, is_sub_daily
from models._panel import SeriesPanel
from models._parallel import resolve_n_jobs
from models.base import Bands, BaseForecaster

__all__ = ["LGBMForecaster"]

# LightGBM's OpenMP threads spin while waiting by default; on a shared or
# CPU-limited machine (containers, CI, other jobs) spinning threads steal each
# other's cores and training ran 5-20x slower on 2 cores. Passive waiting costs
# little on idle cores. Must be set before the OpenMP runtime starts; a value
# chosen by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_NS_PER_DAY = 86_400_000_000_000
_NS_PER_HOUR = 3_600_000_000_000


def _shift_cols(mat: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """``mat[:, cols - k]`` with NaN where ``cols - k < 0``; shape ``(n, len(cols))``."""
    src = cols - k
    out = mat[:, np.maximum(src, 0)]
    if (src < 0).any():
        out = out.copy()
        out[:, src < 0] = np.nan
    return out


def _window_stats(
    mat: np.ndarray, cols: np.ndarray, windows: Sequence[int], with_std: bool
) -> list[np.ndarray]:
    """Rolling mean (and std) of the ``w`` values before each column, NaN-aware.

    Uses prefix sums along time, so the cost does not depend on ``w``.
    Returns a list of ``(n, len(cols))`` arrays: mean per window, then std per
    window when ``with_std``.
    """
    ok = np.isfinite(mat)
    vals = np.where(ok, mat, 0.0)
    zeros = np.zeros((mat.shape[0], 1))
    c1 = np.concatenate([zeros, np.cumsum(vals, axis=1)], axis=1)
    c2 = np.concatenate([zeros, np.cumsum(vals * vals, axis=1)], axis=1)
    cn = np.concatenate([zeros, np.cumsum(ok, axis=1)], axis=1)
    means, stds = [], []
    for w in windows:
        hi = cols  # prefix index: values strictly before column `cols`
        lo = np.maximum(cols - w, 0)
        cnt = cn[:, hi] - cn[:, lo]
        s1 = c1[:, hi] - c1[:, lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), np.nan)
            means.append(mean)
            if with_std:
                s2 = c2[:, hi] - c2[:, lo]
                var = np.where(cnt > 1, s2 / np.maximum(cnt, 1) - mean * mean, np.nan)
                stds.append(np.sqrt(np.maximum(var, 0.0)))
    return means + stds


class LGBMForecaster(BaseForecaster):
    """Global gradient-boosted trees over all series, predicting recursively.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Main seasonal period; default from the frequency.
    lags : sequence of int, optional
        Lags of the scaled target (each taken relative to the anchor).
        Default: ``1..2m`` plus ``3m..7m`` (``m = season_length``) and, for
        sub-daily data, two weeks (``14m``); ``1..12`` without seasonality.
    rolling_windows : sequence of int, optional
        Windows of the rolling mean/std features; default ``(m, 7m)`` for
        sub-daily data, ``(m, 4m)`` otherwise (``m >= 2``), ``(4, 12)`` without
        seasonality.
    rolling_std : bool
        Also add rolling standard deviations.
    seasonal_periods : sequence of int, optional
        Periods of the Fourier terms; default from the frequency
        (hourly: 24 and 168).
    fourier_terms : int
        Sine/cosine pairs per seasonal period (0 disables them).
    calendar : bool
        Add calendar features (hour, day of week, day of month, month...).
    holidays_country : str, optional
        ISO country code for a public-holiday flag (e.g. ``"US"``); daily or
        finer data only.
    scaler : {"seasonal_diff", "level", "none"}
        Per-series target scaling: mean absolute seasonal difference (MASE
        scale), mean absolute value of the last ``scale_window`` observations,
        or none.
    scale_window : int, optional
        Recent observations used by the ``level`` scaler and the clipping band;
        default ``7m`` for sub-daily data (one week), else ``max(m, 7)``.
    anchor_lag : int, optional
        The model predicts ``z_t - z_{t - anchor_lag}``. Default: the longest
        seasonal period up to ``7m`` (hourly: 168; daily: 7; monthly: 12),
        1 without seasonality; 0 predicts the scaled level itself. Series
        shorter than the anchor use the season ``m``, then the last value.
    max_history : int, optional
        Train on at most the last ``max_history`` observations of each series.
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample,
    colsample_bytree, reg_lambda, max_bin : LightGBM parameters.
    objective : {"l2", "l1", "huber"}
        Training loss on the transformed target.
    lgbm_params : dict, optional
        Extra LightGBM parameters (override the above).
    clip : bool
        Clip recursive forecasts to the recent range +- ``clip_margin`` times
        its width, and at 0 for series that were never negative.
    clip_margin : float
        See ``clip``.
    conformal_windows : int
        Rolling origins used for conformal intervals.
    calibration : {"holdout", "insample"}
        ``holdout`` trains a calibration copy without the last windows (one
        more fit, honest residuals); ``insample`` reuses the fitted model
        (cheaper, intervals too narrow).
    n_jobs : int
        LightGBM threads (``-1``: all CPUs).
    seed : int
        Random seed; with a fixed seed results are deterministic.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The fitted model.
    feature_names_ : list of str
        Feature columns, in order.
    """

    name = "lgbm"
    supports_exog = True

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        lags: Sequence[int] | None = None,
        rolling_windows: Sequence[int] | None = None,
        rolling_std: bool = False,
        seasonal_periods: Sequence[int] | None = None,
        fourier_terms: int = 0,
        calendar: bool = True,
        holidays_country: str | None = None,
        scaler: Literal["seasonal_diff", "level", "none"] = "seasonal_diff",
        scale_window: int | None = None,
        anchor_lag: int | None = None,
        max_history: int | None = None,
        n_estimators: int = 150,
        learning_rate: float = 0.08,
        num_leaves: int = 63,
        min_child_samples: int = 20,
        subsample: float = 0.7,
        colsample_bytree: float = 0.5,
        reg_lambda: float = 0.0,
        max_bin: int = 127,
        objective: Literal["l2", "l1", "huber"] = "l1",
        lgbm_params: dict[str, Any] | None = None,
        clip: bool = True,
        clip_margin: float = 0.5,
        conformal_windows: int = 2,
        calibration: Literal["holdout", "insample"] = "holdout",
        n_jobs: int = -1,
        seed: int = 0,
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.lags = lags
        self.rolling_windows = rolling_windows
        self.rolling_std = rolling_std
        self.seasonal_periods = seasonal_periods
        self.fourier_terms = fourier_terms
        self.calendar = calendar
        self.holidays_country = holidays_country
        self.scaler = scaler
        self.scale_window = scale_window
        self.anchor_lag = anchor_lag
        self.max_history = max_history
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.objective = objective
        self.lgbm_params = lgbm_params
        self.clip = clip
        self.clip_margin = clip_margin
        self.conformal_windows = conformal_windows
        self.calibration = calibration
        self.n_jobs = n_jobs
        self.seed = seed

    # ------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        super()._validate_params()
        choices = {
            "scaler": ("level", "seasonal_diff", "none"),
            "objective": ("l2", "l1", "huber"),
            "calibration": ("holdout", "insample"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"parameter {name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        for name in ("n_estimators", "num_leaves", "min_child_samples", "conformal_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"parameter {name} must be a positive integer, got {value!r}")
        for name in ("lags", "rolling_windows", "seasonal_periods"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, str | bytes)
                or not all(isinstance(v, int | np.integer) and v >= 1 for v in value)
            ):
                raise ConfigError(
                    f"parameter {name} must be a sequence of positive integers, got {value!r}"
                )
        if self.anchor_lag is not None and (
            isinstance(self.anchor_lag, bool)
            or not isinstance(self.anchor_lag, int | np.integer)
            or self.anchor_lag < 0
        ):
            raise ConfigError(
                f"parameter anchor_lag must be a non-negative integer, got {self.anchor_lag!r}"
            )
        if not 0 < float(self.learning_rate) <= 1:
            raise ConfigError(
                f"parameter learning_rate must be in (0, 1], got {self.learning_rate!r}"
            )
        resolve_n_jobs(self.n_jobs)

    def _anchor_lags(self) -> tuple[int, ...]:
        """Anchor lag, then the fallbacks for series too short for it (0: no anchor)."""
        m = self.season_length_
        if self.anchor_lag is not None:
            a = int(self.anchor_lag)
        else:
            periods = [p for p in self._cfg["periods"] if 1 < p <= 7 * m]
            a = max(periods) if periods else 1
        if a == 0:
            return (0,)
        return tuple(dict.fromkeys(k for k in (a, m, 1) if 0 < k <= a))

    def _resolved(self) -> dict[str, Any]:
        m = self.season_length_
        sub_daily = is_sub_daily(self.freq_)
        if self.lags is not None:
            lags = sorted({int(k) for k in self.lags})
        elif m > 1:
            lags = list(range(1, 2 * m + 1)) + [k * m for k in range(3, 8)]
            if sub_daily:
                lags.append(14 * m)
        else:
            lags = list(range(1, 13))
        if self.rolling_windows is not None:
            windows = sorted({int(w) for w in self.rolling_windows})
        elif m > 1:
            windows = [m, 7 * m] if sub_daily else [m, 4 * m]
        else:
            windows = [4, 12]
        periods = (
            tuple(int(p) for p in self.seasonal_periods)
            if self.seasonal_periods is not None
            else default_seasonal_periods(self.freq_, m)
        )
        scale_window = (
            int(self.scale_window)
            if self.scale_window is not None
            else (7 * m if sub_daily and m > 1 else max(m, 7))
        )
        return {
            "lags": sorted(set(lags)),
            "windows": windows,
            "periods": periods,
            "scale_window": scale_window,
        }

    def _min_length(self) -> int:
        # Enough to anchor on one season and learn from a few rows.
        return max(self.season_length_ + 3, 5)

    # --------------------------------------------------------------- helpers
    def _scale(self, panel: SeriesPanel) -> np.ndarray:
        """Per-series scale, shape ``(n_series,)``; 1 where it would be 0."""
        if self.scaler == "none":
            return np.ones(panel.n_series)
        if self.scaler == "seasonal_diff":
            s = insample_scale(panel, self.season_length_)
        else:
            tail = panel.matrix(self._cfg["scale_window"])
            s = np.nanmean(np.abs(tail), axis=1)
        s = np.where(np.isfinite(s) & (s > 1e-12), s, 0.0)
        fallback = np.nanmean(np.abs(panel.matrix(None)), axis=1)
        s = np.where(s > 0, s, np.where(fallback > 1e-12, fallback, 1.0))
        return s

    def _anchor(self, z: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Anchor value ``z[:, c - a]`` for each column, with shorter lags where missing."""
        lags = self._anchor_lags()
        if lags == (0,):
            return np.zeros((z.shape[0], len(cols)))
        out = _shift_cols(z, cols, lags[0])
        for k in lags[1:]:
            missing = ~np.isfinite(out)
            if not missing.any():
                break
            out = np.where(missing, _shift_cols(z, cols, k), out)
        return out

    def _timestamps_ns(self, panel: SeriesPanel, rel: np.ndarray) -> np.ndarray:
        """UTC ns timestamps at ``rel`` steps from each series' last observation.

        ``rel`` has shape ``(n_series, k)``; returns the same shape, int64.
        """
        last = panel.last_ds
        step = fixed_step(panel.freq)
        last_ns = np.asarray(last.as_unit("ns").asi8)
        if step is not None:
            return last_ns[:, None] + rel * int(step.value)
        n, k = rel.shape
        flat = panel.shift(last[np.repeat(np.arange(n), k)], rel.reshape(-1))
        return np.asarray(flat.as_unit("ns").asi8).reshape(n, k)

    def _calendar_features(self, ts_ns: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
        """Calendar, Fourier and holiday features for timestamps of any shape."""
        feats: list[np.ndarray] = []
        names: list[str] = []
        step = fixed_step(self.freq_)
        sub_daily = is_sub_daily(self.freq_)
        days = np.floor_divide(ts_ns, _NS_PER_DAY)
        if self.calendar:
            if sub_daily:
                feats.append((ts_ns - days * _NS_PER_DAY) / _NS_PER_HOUR)
                names.append("hour")
            if step is not None and step <= pd.Timedelta(days=1):
                feats.append(((days + 3) % 7).astype(float))  # 1970-01-01 was a Thursday
                names.append("dayofweek")
            if not sub_daily:
                dt = days.astype("datetime64[D]")
                months = dt.astype("datetime64[M]")
                feats.append((dt - months).astype(np.int64).astype(float) + 1)
                names.append("day")
                feats.append((months.astype(np.int64) % 12 + 1).astype(float))
                names.append("month")
        if self.fourier_terms > 0 and step is not None:
            t_idx = np.floor_divide(ts_ns, int(step.value)).astype(float)
            for p in self._cfg["periods"]:
                for k in range(1, int(self.fourier_terms) + 1):
                    ang = 2 * np.pi * k * np.mod(t_idx, p) / p
                    feats += [np.sin(ang), np.cos(ang)]
                    names += [f"sin{p}_{k}", f"cos{p}_{k}"]
        if self.holidays_country and step is not None and step <= pd.Timedelta(days=1):
            feats.append(np.isin(days, self._holiday_days).astype(float))
            names.append("holiday")
        return feats, names

    def _holidays(self, panel: SeriesPanel) -> np.ndarray:
        if not self.holidays_country:
            return np.empty(0, dtype=np.int64)
        import holidays

        first = int(panel.start.min().year)
        last = int(panel.last_ds.max().year) + 2
        try:
            cal = holidays.country_holidays(self.holidays_country, years=range(first, last + 1))
        except NotImplementedError as exc:
            raise ConfigError(
                f"parameter holidays_country must be a country code known to the holidays "
                f"package, got {self.holidays_country!r}"
            ) from exc
        dates = np.array(sorted(cal.keys()), dtype="datetime64[D]")
        return dates.astype(np.int64)

    def _features(
        self,
        z: np.ndarray,
        anchor: np.ndarray,
        cols: np.ndarray,
        ts_ns: np.ndarray,
        exog: list[np.ndarray],
    ) -> np.ndarray:
        """Feature tensor ``(n_series, len(cols), n_features)`` for target columns ``cols``.

        Parameters
        ----------
        z : numpy.ndarray, shape (n_series, width)
            Scaled target, NaN where unknown.
        anchor : numpy.ndarray, shape (n_series, len(cols))
            Anchor of each predicted cell (see :meth:`_anchor`).
        cols : numpy.ndarray of int
            Columns of ``z`` being predicted; features use columns before them.
        ts_ns : numpy.ndarray, shape (n_series, len(cols))
            Timestamps of the predicted cells.
        exog : list of numpy.ndarray, each (n_series, len(cols))
            Exogenous values at the predicted cells.
        """
        cfg = self._cfg
        feats = [_shift_cols(z, cols, k) - anchor for k in cfg["lags"]]
        stats = _window_stats(z, cols, cfg["windows"], self.rolling_std)
        nw = len(cfg["windows"])
        feats += [m - anchor for m in stats[:nw]] + stats[nw:]
        feats.append(anchor)
        cal, _ = self._calendar_features(ts_ns)
        feats += cal
        feats += exog
        return np.stack(feats, axis=-1)

    def _feature_names(self, exog_cols: list[str]) -> list[str]:
        cfg = self._cfg
        names = [f"lag{k}" for k in cfg["lags"]]
        names += [f"mean{w}" for w in cfg["windows"]]
        if self.rolling_std:
            names += [f"std{w}" for w in cfg["windows"]]
        names.append("anchor")
        _, cal = self._calendar_features(np.zeros(1, dtype=np.int64))
        return names + cal + [f"x_{c}" for c in exog_cols]

    def _lgbm_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": {"l2": "regression", "l1": "regression_l1", "huber": "huber"}[
                self.objective
            ],
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_data_in_leaf": int(self.min_child_samples),
            "bagging_fraction": float(self.subsample),
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": float(self.colsample_bytree),
            "lambda_l2": float(self.reg_lambda),
            "max_bin": int(self.max_bin),
            "num_threads": resolve_n_jobs(self.n_jobs),
            "seed": int(self.seed),
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }
        params.update(self.lgbm_params or {})
        return params

    # ---------------------------------------------------------------- fitting
    def _fit(self, panel: SeriesPanel) -> None:
        self._cfg = self._resolved()
        self._holiday_days = self._holidays(panel)
        self._train(panel)
        self._set_data(panel)

    def _train(self, panel: SeriesPanel) -> None:
        import lightgbm as lgb

        x, y, names = self._training_rows(panel)
        self.feature_names_ = names
        dataset = lgb.Dataset(x, y, feature_name=names, free_raw_data=True)
        self.booster_ = lgb.train(
            self._lgbm_params(), dataset, num_boost_round=int(self.n_estimators)
        )
        self.n_train_rows_ = len(y)

    def _training_rows(
        self, panel: SeriesPanel, *, use_exog: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Feature matrix, target and feature names of the training cells of ``panel``.

        Also used per partition by the Dask backend (``use_exog=False`` there).
        """

        width = int(panel.lengths.max())
        if self.max_history is not None:
            width = min(width, int(self.max_history))
        scale = self._scale(panel)
        z = panel.matrix(width) / scale[:, None]
        n = panel.n_series
        cols = np.arange(width)
        anchor = self._anchor(z, cols)
        target = z - anchor
        # Train on cells with a known target and anchor, after the longest lag window
        # (or half the series when it is shorter).
        observed = np.isfinite(target)
        lengths = np.minimum(panel.lengths, width)
        first_col = width - lengths
        warm = max(self._anchor_lags()[0], self.season_length_, max(self._cfg["windows"]))
        enough = cols[None, :] >= (first_col + np.minimum(warm, lengths // 2))[:, None]
        rows_i, rows_j = np.nonzero(observed & enough)
        if len(rows_i) < 10:
            rows_i, rows_j = np.nonzero(observed)
        ts = self._timestamps_ns(panel, (cols - (width - 1))[None, :].repeat(n, axis=0))
        exog_values = list(panel.exog.values()) if use_exog else []
        exog = [panel.matrix(width, values=v) for v in exog_values]
        # Build features block by block of series to bound memory.
        names = self._feature_names(list(panel.exog) if use_exog else [])
        x_parts, y_parts = [], []
        block = max(1, int(4_000_000 // max(width * len(names), 1)))
        for a in range(0, n, block):
            b = min(a + block, n)
            sel = (rows_i >= a) & (rows_i < b)
            if not sel.any():
                continue
            f = self._features(z[a:b], anchor[a:b], cols, ts[a:b], [e[a:b] for e in exog])
            ri, rj = rows_i[sel] - a, rows_j[sel]
            x_parts.append(f[ri, rj].astype(np.float32))
            y_parts.append(target[a:b][ri, rj])
        return np.concatenate(x_parts), np.concatenate(y_parts), names

    def _set_data(self, panel: SeriesPanel) -> None:
        self._panel = panel
        self._calibrators: dict[int, ConformalCalibrator] = {}

    def _update(self, panel: SeriesPanel) -> None:
        self._set_data(panel)

    # ------------------------------------------------------------- predicting
    def _recursive(
        self, panel: SeriesPanel, h: int, future_exog: dict[str, np.ndarray] | None
    ) -> np.ndarray:
        """Point forecasts ``(n_series, h)`` from ``panel`` with the trained booster."""
        cfg = self._cfg
        lookback = max(max(cfg["lags"]), max(cfg["windows"]), self._anchor_lags()[0]) + 1
        width = int(min(panel.lengths.max(), lookback))
        scale = self._scale(panel)
        hist = panel.matrix(width) / scale[:, None]
        n = panel.n_series
        z = np.concatenate([hist, np.full((n, h), np.nan)], axis=1)
        tail_w = min(width, self._cfg["scale_window"])
        recent = hist[:, -tail_w:]
        lo = np.nanmin(recent, axis=1)
        hi = np.nanmax(recent, axis=1)
        span = np.maximum(hi - lo, 1e-9)
        lower = lo - self.clip_margin * span
        upper = hi + self.clip_margin * span
        never_negative = np.nanmin(panel.matrix(None), axis=1) >= 0
        lower = np.where(never_negative, np.maximum(lower, 0.0), lower)
        ts = self._timestamps_ns(panel, np.arange(1, h + 1)[None, :].repeat(n, axis=0))
        exog_names = list(panel.exog)
        for s in range(h):
            c = width + s
            col = np.array([c])
            anchor = self._anchor(z, col)
            ex = [future_exog[k][:, s : s + 1] for k in exog_names] if future_exog else []
            f = self._features(z, anchor, col, ts[:, s : s + 1], ex)[:, 0, :]
            pred = self.booster_.predict(f.astype(np.float32), num_threads=1)
            val = pred + np.nan_to_num(anchor[:, 0])
            if self.clip:
                val = np.clip(val, lower, upper)
            z[:, c] = val
        return z[:, width:] * scale[:, None]

    def _calibrate(self, h: int) -> ConformalCalibrator:
        if h in self._calibrators:
            return self._calibrators[h]
        panel = self._panel
        windows = int(self.conformal_windows)
        drop = windows * h
        ok = panel.lengths - drop >= self._min_length()
        residuals = np.full((panel.n_series, windows, h), np.nan)
        if ok.any():
            sub = panel.take(np.flatnonzero(ok))
            if self.calibration == "holdout":
                model = self.clone()
                model.freq_, model.season_length_ = self.freq_, self.season_length_
                model._cfg = self._cfg
                model._holiday_days = self._holiday_days
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model._train(sub.truncate(drop))
            else:
                model = self
            for w in range(windows):
                cut = (windows - w) * h
                origin = sub.truncate(cut)
                rows = sub.window(cut, h)
                fx = {k: v[rows] for k, v in sub.exog.items()} if sub.exog else None
                fc = model._recursive(origin, h, fx)
                residuals[ok, w, :] = sub.y[rows] - fc
        cal = ConformalCalibrator().fit(residuals, insample_scale(panel, self.season_length_))
        self._calibrators[h] = cal
        return cal

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        mean = self._recursive(self._panel, h, future_exog)
        if not levels:
            return mean, {}
        return mean, self._calibrate(h).bands(mean, levels)
