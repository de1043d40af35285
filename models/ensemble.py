"""AutoForecaster: a backtest-weighted ensemble with calibrated conformal intervals.

``fit`` runs a short rolling-origin backtest of every candidate model
(``n_windows`` windows of ``horizon`` steps at the end of each series), scores
each candidate per series by its scaled absolute error, and combines the
candidates per series with inverse-error weights shrunk towards the weights
that are best over all series. The ensemble's own backtest residuals, with
weights cross-fitted on the other windows so that they are out-of-sample,
calibrate split-conformal intervals scaled per series
(:mod:`models._conformal`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from features.exceptions import ConfigError
from models._conformal import ConformalCalibrator, insample_scale
from models._panel import SeriesPanel
from models._parallel import resolve_n_jobs
from models.base import Bands, BaseForecaster

__all__ = ["AutoForecaster", "combine_weights"]


def combine_weights(losses: np.ndarray, method: str, power: float, shrinkage: float) -> np.ndarray:
    """Per-series combination weights from candidate losses.

    Parameters
    ----------
    losses : numpy.ndarray, shape (n_series, n_models)
        Scaled backtest errors (lower is better); NaN where unknown.
    method : {"weighted", "best", "mean"}
        Inverse-error weights ``loss**-power``, one-hot best model, or equal.
    power : float
        Exponent of the inverse-error weights.
    shrinkage : float
        Weight in [0, 1] given to the weights computed from the losses averaged
        over all series (robust to a noisy single-series backtest).

    Returns
    -------
    numpy.ndarray, shape (n_series, n_models)
        Non-negative weights summing to 1 per series.
    """
    n, k = losses.shape
    if method == "mean" or k == 1:
        return np.full((n, k), 1.0 / k)

    def one(loss: np.ndarray) -> np.ndarray:
        loss = np.where(np.isfinite(loss), loss, np.nan)
        if not np.isfinite(loss).any():
            return np.full(k, 1.0 / k)
        best = np.nanmin(loss)
        if method == "best" or best <= 0:
            w = (loss == best).astype(float)
        else:
            w = np.where(np.isfinite(loss), (loss / best) ** (-power), 0.0)
        return w / w.sum()

    global_loss = np.nanmean(np.where(np.isfinite(losses), losses, np.nan), axis=0)
    w_global = one(global_loss)
    out = np.empty((n, k))
    for i in range(n):
        out[i] = (1 - shrinkage) * one(losses[i]) + shrinkage * w_global
    return out / out.sum(axis=1, keepdims=True)


def _names(models: Sequence[BaseForecaster]) -> list[str]:
    """Registry names, made unique with the parameters that differ from the defaults."""
    out = []
    for m in models:
        name = type(m).name
        if name == "lgbm":
            a = m.get_params().get("anchor_lag")
            name += f"_a{a}" if a is not None else ""
            sc = m.get_params().get("scaler")
            name += f"_{sc}" if sc != "seasonal_diff" else ""
        while name in out:
            name += "'"
        out.append(name)
    return out


class AutoForecaster(BaseForecaster):
    """The best configuration: a backtest-weighted ensemble of several models.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias; inferred when not given.
    season_length : int, optional
        Main seasonal period; default from the frequency.
    models : sequence of str or BaseForecaster, optional
        Candidates, by registry name (``"lgbm"``, ``"mstl"``, ``"ets"``,
        ``"arima"``, ``"seasonal_naive"``, ``"naive"``, ``"drift"``) or as
        unfitted estimators. Default: global LightGBM models anchored on the
        longest season and on one season (MASE- and level-scaled), seasonal
        naive and, when the panel holds at most ``stat_budget`` observations,
        MSTL (ETS without seasonality).
    horizon : int, optional
        Steps of every backtest window; default ``2 * season_length`` (at least
        8). Use the horizon you will forecast; intervals beyond it widen like
        ``sqrt(h)``.
    n_windows : int
        Backtest windows per series (at least 2 keeps the intervals honest:
        each window's combination weights come from the other windows).
    combination : {"weighted", "best", "mean"}
        How candidates are combined per series.
    power : float
        Exponent of the inverse-error weights.
    shrinkage : float
        Share in [0, 1] of the all-series weights in each series' weights.
    refit : {"none", "final", "all"}
        When candidates are fitted: ``"all"`` at every backtest cutoff and on
        the full history; ``"final"`` once at the first cutoff (later windows
        only feed them newer data with the same parameters) and again on the
        full history; ``"none"`` only at the first cutoff (cheapest; the final
        models are a little stale).
    stat_budget : int
        Largest number of observations for which per-series statistical
        candidates (MSTL/ETS) join the default ensemble.
    n_jobs : int
        Worker processes / threads for the candidates (``-1``: all CPUs).
    seed : int
        Random seed passed to the candidates.

    Attributes
    ----------
    models_ : list of BaseForecaster
        The fitted candidates.
    model_names_ : list of str
        Their names.
    weights_ : numpy.ndarray, shape (n_series, n_models)
        Combination weights per series.
    backtest_losses_ : numpy.ndarray, shape (n_series, n_models)
        Mean scaled absolute backtest error of every candidate per series.
    backtest_forecasts_ : numpy.ndarray, shape (n_models, n_series, n_windows, horizon)
        Candidate forecasts of the backtest windows (NaN for series too short).
    backtest_actuals_ : numpy.ndarray, shape (n_series, n_windows, horizon)
        The actual values of those windows.
    calibrator_ : ConformalCalibrator
        Interval calibration from the ensemble's backtest residuals.
    """

    name = "auto"
    supports_exog = True

    def __init__(
        self,
        *,
        freq: str | None = None,
        season_length: int | None = None,
        models: Sequence[str | BaseForecaster] | None = None,
        horizon: int | None = None,
        n_windows: int = 5,
        combination: Literal["weighted", "best", "mean"] = "weighted",
        power: float = 4.0,
        shrinkage: float = 0.0,
        refit: Literal["none", "final", "all"] = "final",
        stat_budget: int = 50_000,
        n_jobs: int = -1,
        seed: int = 0,
    ) -> None:
        self.freq = freq
        self.season_length = season_length
        self.models = models
        self.horizon = horizon
        self.n_windows = n_windows
        self.combination = combination
        self.power = power
        self.shrinkage = shrinkage
        self.refit = refit
        self.stat_budget = stat_budget
        self.n_jobs = n_jobs
        self.seed = seed

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.combination not in ("weighted", "best", "mean"):
            raise ConfigError(
                "parameter combination must be one of ('weighted', 'best', 'mean'), "
                f"got {self.combination!r}"
            )
        if (
            isinstance(self.n_windows, bool)
            or not isinstance(self.n_windows, int)
            or (self.n_windows < 1)
        ):
            raise ConfigError(
                f"parameter n_windows must be a positive integer, got {self.n_windows!r}"
            )
        if self.horizon is not None and (
            isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1
        ):
            raise ConfigError(f"parameter horizon must be a positive integer, got {self.horizon!r}")
        if self.refit not in ("none", "final", "all"):
            raise ConfigError(
                f"parameter refit must be one of ('none', 'final', 'all'), got {self.refit!r}"
            )
        if not 0 <= float(self.shrinkage) <= 1:
            raise ConfigError(f"parameter shrinkage must be in [0, 1], got {self.shrinkage!r}")
        resolve_n_jobs(self.n_jobs)
        if self.models is not None:
            if isinstance(self.models, str) or not len(self.models):
                raise ConfigError(
                    f"parameter models must be a non-empty list of names or estimators, "
                    f"got {self.models!r}"
                )
            for m in self.models:
                if isinstance(m, AutoForecaster) or m == "auto":
                    raise ConfigError("parameter models must not contain 'auto' itself")

    def _candidates(self) -> list[BaseForecaster]:
        from models import make_model
        from models.lgbm import LGBMForecaster

        common: dict[str, Any] = {
            "freq": self.freq,
            "season_length": self.season_length_,
            "n_jobs": self.n_jobs,
            "seed": self.seed,
        }
        if self.models is not None:
            return [
                m.clone() if isinstance(m, BaseForecaster) else make_model(m, **common)
                for m in self.models
            ]
        m = self.season_length_
        lgbm = common | {"max_history": max(30 * m, 500)}
        out: list[BaseForecaster] = [
            # Anchored on the longest season (a week for hourly data), MASE-scaled.
            LGBMForecaster(**lgbm),
            # Anchored on one season and level-scaled: different errors to average.
            LGBMForecaster(**lgbm, anchor_lag=max(m, 1), scaler="level"),
        ]
        out.append(make_model("seasonal_naive" if m > 1 else "naive", **common))
        if self._n_obs <= self.stat_budget:
            # Per-series statistical models are affordable on small panels.
            out.append(make_model("mstl" if m > 1 else "ets", **common))
        return out

    def _default_horizon(self) -> int:
        if self.horizon is not None:
            return int(self.horizon)
        return max(2 * self.season_length_, 8)

    def _min_length(self) -> int:
        return 2

    def _fallback_estimator(self) -> BaseForecaster:
        from models.baselines import Naive

        return Naive(freq=self.freq)

    # ---------------------------------------------------------------- fitting
    def _fit(self, panel: SeriesPanel) -> None:
        self._n_obs = len(panel.y)
        candidates = self._candidates()
        self.model_names_ = _names(candidates)
        k = len(candidates)
        n = panel.n_series
        horizon = self._default_horizon()
        windows = int(self.n_windows)
        scale = insample_scale(panel, self.season_length_)
        # A backtest window needs enough history before it for every candidate.
        eligible = panel.lengths - windows * horizon >= max(2 * self.season_length_, 8)
        forecasts = np.full((k, n, windows, horizon), np.nan)
        actuals = np.full((n, windows, horizon), np.nan)
        last_models: list[BaseForecaster] | None = None
        if eligible.any():
            idx = np.flatnonzero(eligible)
            sub = panel.take(idx) if not eligible.all() else panel
            fitted: list[BaseForecaster] = []
            for w in range(windows):
                cut = (windows - w) * horizon
                train = sub.truncate(cut)
                rows = sub.window(cut, horizon)
                actuals[idx, w] = sub.y[rows]
                for ci, cand in enumerate(candidates):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        if w == 0 or self.refit == "all":
                            model = cand.clone()._fit_panel(train)
                            if w == 0:
                                fitted.append(model)
                            else:
                                fitted[ci] = model
                        else:
                            # Same parameters, newer data: only the cheap part reruns.
                            model = fitted[ci]._update_panel(train)
                        fx = {c: v[rows] for c, v in sub.exog.items()} if model.exog_cols_ else None
                        mean, _ = model._predict_arrays(horizon, [], fx)
                    forecasts[ci, idx, w] = mean
            if eligible.all():
                last_models = fitted
        # Scaled absolute error per candidate, series and window.
        denom = np.where(scale > 0, scale, 1.0)
        abs_err = np.abs(forecasts - actuals[None]) / denom[None, :, None, None]
        with warnings.catch_warnings():
            # Series too short for the backtest have all-NaN errors.
            warnings.simplefilter("ignore", RuntimeWarning)
            window_loss = np.nanmean(abs_err, axis=3)  # (k, n, windows)
            losses = np.nanmean(window_loss, axis=2).T  # (n, k)
        self.backtest_losses_ = losses
        self.backtest_forecasts_ = forecasts
        self.backtest_actuals_ = actuals
        self.weights_ = combine_weights(
            losses, self.combination, float(self.power), float(self.shrinkage)
        )
        # Ensemble residuals with weights cross-fitted on the other windows.
        residuals = np.full((n, windows, horizon), np.nan)
        if eligible.any():
            for w in range(windows):
                if windows > 1:
                    others = [v for v in range(windows) if v != w]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        loss_w = np.nanmean(window_loss[:, :, others], axis=2).T
                else:
                    loss_w = losses
                w_w = combine_weights(
                    loss_w, self.combination, float(self.power), float(self.shrinkage)
                )
                ens = np.einsum("nk,knh->nh", w_w, np.nan_to_num(forecasts[:, :, w]))
                residuals[:, w] = actuals[:, w] - ens
            residuals[~eligible] = np.nan
        # Measured on M4 Hourly with an inner split (the 48 points before the
        # validation window): five windows make each series' own residuals a
        # better scale than the in-sample prior; their root mean square tracks
        # the tail a 95 % interval needs better than their mean; a daily profile
        # (square root of the residuals' per-hour RMS ratio) narrows the
        # intervals at quiet hours; scoring each window with the scale of the
        # others keeps coverage honest despite the noisier scale (MSIS 6.90 ->
        # 6.12, coverage 95.4 -> 96.4 %; profile power 0.3: 6.19, 0.7: 6.10,
        # 1: 6.22). With fewer windows the own scale is too noisy to stand
        # without the in-sample prior.
        self.calibrator_ = ConformalCalibrator(
            scale_power=2.0,
            prior_weight=0.0 if windows >= 5 else 0.5,
            season_length=self.season_length_,
            profile_strength=0.5,
            cross_fit=True,
        ).fit(residuals, scale)
        self.horizon_ = horizon
        # Final models: the backtest's, pointed at the full history (or refitted).
        if last_models is not None and self.refit == "none":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.models_ = [m._update_panel(panel) for m in last_models]
        else:
            self.models_ = []
            for cand in candidates:
                model = cand.clone()
                model._fit_panel(panel)
                self.models_.append(model)

    def _update(self, panel: SeriesPanel) -> None:
        self.models_ = [m._update_panel(panel) for m in self.models_]

    # ------------------------------------------------------------- predicting
    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        means = []
        for model in self.models_:
            fx = future_exog if model.exog_cols_ else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m, _ = model._predict_arrays(h, [], fx)
            means.append(m)
        stacked = np.stack(means, axis=1)  # (n, k, h)
        mean = np.einsum("nk,nkh->nh", self.weights_, stacked)
        if not levels:
            return mean, {}
        return mean, self.calibrator_.bands(mean, levels)

    def summary(self) -> dict[str, Any]:
        """Candidates, their mean backtest loss and mean weight."""
        self._check_is_fitted()
        return {
            name: {
                "loss": float(np.nanmean(self.backtest_losses_[:, i])),
                "weight": float(self.weights_[:, i].mean()),
            }
            for i, name in enumerate(self.model_names_)
        }
