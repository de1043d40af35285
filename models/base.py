"""The estimator contract every forecaster follows.

A forecaster is a scikit-learn style estimator over long-format series frames
(the Nixtla contract):

* ``__init__`` takes keyword-only parameters and only stores them;
* ``fit(df, *, id_col="unique_id", time_col="ds", target_col="y")`` learns
  from a series frame and returns ``self``; learned state lives in ``*_``
  attributes;
* ``predict(h, X_df=None, level=(80, 95))`` returns a forecast frame with
  exactly ``unique_id, ds, yhat`` and one nested ``lo_L, hi_L`` pair per level;
* ``cross_validation(df, h, n_windows, step=None, level=(80, 95))`` returns the
  forecast frame of rolling-origin windows plus ``cutoff`` and ``y``.

Subclasses implement three small hooks over a :class:`~models._panel.SeriesPanel`
(``_fit``, ``_predict`` and optionally ``_min_length``); the base class does the
validation, the per-series fallback for series that are too short, the
assembly and validation of the output frame.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, InvalidFrameError, NotFittedError
from features.schema import validate_frame, validate_levels
from models._frequency import as_offset, default_season_length
from models._panel import SeriesPanel, format_ids, normalize_timestamps, to_panel

#: ``{level: (lo, hi)}`` with arrays of shape ``(n_series, h)``.
Bands = dict[int, tuple[np.ndarray, np.ndarray]]

__all__ = [
    "Bands",
    "BaseForecaster",
    "SeriesPanel",
    "check_horizon",
    "to_panel",
]


def check_horizon(h: object) -> int:
    """Return ``h`` as a positive int or raise :class:`ConfigError`."""
    if isinstance(h, bool) or not isinstance(h, int | np.integer) or int(h) < 1:
        raise ConfigError(f"parameter h must be a positive integer, got {h!r}")
    return int(h)


def nest_bands(mean: np.ndarray, bands: Bands, levels: Sequence[int]) -> Bands:
    """Make intervals nested around ``mean``: ``lo_95 <= lo_80 <= yhat <= hi_80 <= hi_95``.

    Parameters
    ----------
    mean : numpy.ndarray, shape (n_series, h)
    bands : dict of int to (lo, hi), each shape (n_series, h)
    levels : sequence of int
        Levels in increasing order.
    """
    out: Bands = {}
    inner_lo, inner_hi = mean, mean
    for level in sorted(levels):
        lo, hi = bands[level]
        lo = np.minimum(np.where(np.isfinite(lo), lo, inner_lo), inner_lo)
        hi = np.maximum(np.where(np.isfinite(hi), hi, inner_hi), inner_hi)
        out[level] = (lo, hi)
        inner_lo, inner_hi = lo, hi
    return out


class BaseForecaster:
    """Base class of every forecaster.

    Parameters
    ----------
    freq : str, optional
        Pandas frequency alias of the series (``'h'``, ``'D'``, ``'W'``,
        ``'MS'``...); inferred per frame when not given.
    season_length : int, optional
        Main seasonal period in steps; default from the frequency
        (``h`` -> 24, ``D`` -> 7, ``W`` -> 52, ``MS``/``ME`` -> 12).

    Attributes
    ----------
    freq_ : pandas.DateOffset
        The frequency used.
    season_length_ : int
        The seasonal period used.
    ids_ : numpy.ndarray, shape (n_series,)
        Series seen in ``fit``, sorted.
    exog_cols_ : list of str
        Exogenous columns used (future values must be given to ``predict``).
    fallback_ : BaseForecaster or None
        Model used for the series too short for this one (see ``fallback_ids_``).
    fallback_ids_ : numpy.ndarray
        Series forecast by ``fallback_``.
    """

    #: Whether the model uses exogenous columns.
    supports_exog: ClassVar[bool] = False
    #: Short name used by the CLI and the registry.
    name: ClassVar[str] = "base"

    def __init__(self, *, freq: str | None = None, season_length: int | None = None) -> None:
        self.freq = freq
        self.season_length = season_length

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Return the constructor parameters as a dict (scikit-learn convention)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters and return ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"parameter {key} is not a parameter of {type(self).__name__}; "
                    f"valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def clone(self, **overrides: Any) -> Self:
        """Return an unfitted copy with the same parameters (and ``overrides``)."""
        params = self.get_params()
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        init = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k in init and init[k].default is not v and init[k].default != v
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------ hooks
    def _validate_params(self) -> None:
        """Check constructor parameters; raise :class:`ConfigError` naming the bad one."""
        if self.season_length is not None and (
            isinstance(self.season_length, bool)
            or not isinstance(self.season_length, int | np.integer)
            or self.season_length < 1
        ):
            raise ConfigError(
                f"parameter season_length must be a positive integer, got {self.season_length!r}"
            )
        if self.freq is not None:
            as_offset(self.freq)

    def _min_length(self) -> int:
        """Fewest observations a series needs for this model (shorter ones fall back)."""
        return 1

    def _fit(self, panel: SeriesPanel) -> None:
        raise NotImplementedError

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        """Forecast the series given to ``_fit``.

        Returns the mean of shape ``(n_series, h)`` and ``{level: (lo, hi)}``.
        ``future_exog`` maps each exogenous column to an array ``(n_series, h)``.
        """
        raise NotImplementedError

    def _fallback_estimator(self) -> BaseForecaster:
        from models.baselines import SeasonalNaive

        return SeasonalNaive(freq=self.freq, season_length=self.season_length_)

    # --------------------------------------------------------------- fitting
    def fit(
        self,
        df: pd.DataFrame,
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> Self:
        """Fit the model on a long-format series frame.

        Parameters
        ----------
        df : pandas.DataFrame
            Columns ``id_col, time_col, target_col`` (one row per series and
            timestamp) plus optional numeric exogenous columns. ``time_col``
            may be naive (taken as UTC) or timezone-aware.
        id_col, time_col, target_col : str
            Column names.

        Returns
        -------
        self
        """
        self._validate_params()
        panel = to_panel(
            df,
            id_col=id_col,
            time_col=time_col,
            target_col=target_col,
            freq=self.freq,
            use_exog=self.supports_exog,
        )
        self._fit_panel(panel, id_col=id_col, time_col=time_col, target_col=target_col)
        return self

    def _fit_panel(
        self,
        panel: SeriesPanel,
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> Self:
        self._validate_params()
        self.freq_ = panel.freq
        self.season_length_ = int(
            self.season_length
            if self.season_length is not None
            else default_season_length(panel.freq)
        )
        self.id_col_, self.time_col_, self.target_col_ = id_col, time_col, target_col
        self.ids_ = panel.ids
        self.exog_cols_ = list(panel.exog) if self.supports_exog else []
        self.panel_ = panel
        min_len = self._min_length()
        short = panel.lengths < min_len
        self.fallback_: BaseForecaster | None = None
        self.fallback_ids_ = panel.ids[short]
        self._main_idx = np.flatnonzero(~short)
        self._fallback_idx = np.flatnonzero(short)
        if short.any():
            fallback = self._fallback_estimator()
            warnings.warn(
                f"{type(self).__name__}: series {format_ids(panel.ids[short])} have fewer than "
                f"{min_len} observations; forecasting them with {type(fallback).__name__}",
                UserWarning,
                stacklevel=3,
            )
            fallback._fit_panel(panel.take(self._fallback_idx))
            self.fallback_ = fallback
        if len(self._main_idx):
            self._fit(panel.take(self._main_idx) if short.any() else panel)
        self.is_fitted_ = True
        return self

    def _update(self, panel: SeriesPanel) -> None:
        """Forecast from newer data of the same series, keeping learned parameters.

        The default refits; models whose parameters do not depend on the last
        few observations override it to skip the expensive part.
        """
        self._fit(panel)

    def _update_panel(self, panel: SeriesPanel) -> Self:
        """Point a fitted model at ``panel`` (the same series, possibly longer)."""
        self._check_is_fitted()
        short = panel.lengths < self._min_length()
        same = (
            panel.n_series == len(self.ids_)
            and bool((panel.ids == self.ids_).all())
            and np.array_equal(np.flatnonzero(short), self._fallback_idx)
            and list(panel.exog) == list(self.panel_.exog)
        )
        if not same:
            return self._fit_panel(
                panel, id_col=self.id_col_, time_col=self.time_col_, target_col=self.target_col_
            )
        self.panel_ = panel
        if self.fallback_ is not None:
            self.fallback_._update_panel(panel.take(self._fallback_idx))
        if len(self._main_idx):
            self._update(panel.take(self._main_idx) if len(self._fallback_idx) else panel)
        return self

    def _check_is_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call "
                f"fit(df) with a series frame before predict()"
            )

    # ------------------------------------------------------------- predicting
    def _future_exog(self, X_df: pd.DataFrame | None, h: int) -> dict[str, np.ndarray] | None:
        """Align future exogenous values to ``(n_series, h)`` arrays, or raise naming gaps."""
        if not self.exog_cols_:
            return None
        if X_df is None:
            raise InvalidFrameError(
                f"{type(self).__name__} was fitted with exogenous columns {self.exog_cols_}; "
                f"pass X_df with their future values for the next {h} steps of every series",
                frame="future exogenous",
            )
        id_col, time_col = self.id_col_, self.time_col_
        need = [id_col, time_col, *self.exog_cols_]
        missing = [c for c in need if c not in X_df.columns]
        if missing:
            raise InvalidFrameError(
                f"missing required column(s) {missing}; got columns {list(X_df.columns)}",
                column=missing[0],
                frame="future exogenous",
            )
        future = self.panel_.future_ds(h)
        want = pd.DataFrame(
            {
                "_id": np.repeat(self.panel_.ids, h),
                "_ds": future,
            }
        )
        given = pd.DataFrame(
            {
                "_id": X_df[id_col].to_numpy(),
                "_ds": normalize_timestamps(X_df[time_col], column=time_col).dt.as_unit("ns"),
            }
        )
        for c in self.exog_cols_:
            given[c] = pd.to_numeric(X_df[c], errors="coerce").to_numpy(dtype=float)
        given = given.drop_duplicates(["_id", "_ds"], keep="last")
        want["_ds"] = want["_ds"].dt.as_unit("ns")
        merged = want.merge(given, on=["_id", "_ds"], how="left")
        out: dict[str, np.ndarray] = {}
        for c in self.exog_cols_:
            vals = merged[c].to_numpy(dtype=float)
            bad = np.isnan(vals)
            if bad.any():
                bad_ids = pd.unique(merged["_id"].to_numpy()[bad])
                first = merged["_ds"].iloc[int(np.flatnonzero(bad)[0])]
                raise InvalidFrameError(
                    f"future values missing for series {format_ids(bad_ids)} "
                    f"(e.g. at {first}); X_df must cover the next {h} steps of every series",
                    column=c,
                    frame="future exogenous",
                )
            out[c] = vals.reshape(self.panel_.n_series, h)
        return out

    def _predict_arrays(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        """Forecast every fitted series: main model plus fallback, merged in series order."""
        n = len(self.ids_)
        mean = np.empty((n, h))
        bands: Bands = {lv: (np.empty((n, h)), np.empty((n, h))) for lv in levels}
        parts: list[tuple[np.ndarray, BaseForecaster | None]] = [
            (self._main_idx, None),
            (self._fallback_idx, self.fallback_),
        ]
        for idx, model in parts:
            if not len(idx):
                continue
            fx = None if future_exog is None else {k: v[idx] for k, v in future_exog.items()}
            if model is None:
                m, b = self._predict(h, levels, fx)
            else:
                m, b = model._predict_arrays(h, levels, None)
            mean[idx] = m
            for lv in levels:
                bands[lv][0][idx] = b[lv][0]
                bands[lv][1][idx] = b[lv][1]
        bad = ~np.isfinite(mean).all(axis=1)
        if bad.any():
            # A numerical failure must not leak NaN into a forecast frame.
            from models.baselines import naive_forecast

            warnings.warn(
                f"{type(self).__name__}: non-finite forecasts for series "
                f"{format_ids(self.ids_[bad])}; using Naive for them",
                UserWarning,
                stacklevel=3,
            )
            rows = np.flatnonzero(bad)
            m, b = naive_forecast(self.panel_.take(rows), h, levels)
            mean[rows] = m
            for lv in levels:
                bands[lv][0][rows] = b[lv][0]
                bands[lv][1][rows] = b[lv][1]
        # A series that was never negative (usage, spend without credits) is not
        # forecast below zero: clipping can only reduce its error.
        nonneg = self._nonnegative()
        if nonneg.any():
            rows = nonneg[:, None]
            mean = np.where(rows, np.maximum(mean, 0.0), mean)
            bands = {
                lv: (
                    np.where(rows, np.maximum(lo, 0.0), lo),
                    np.where(rows, np.maximum(hi, 0.0), hi),
                )
                for lv, (lo, hi) in bands.items()
            }
        return mean, nest_bands(mean, bands, levels)

    def _nonnegative(self) -> np.ndarray:
        """Whether each fitted series has no negative value, shape ``(n_series,)``."""
        panel = self.panel_
        neg = np.bincount(panel.series_index, weights=panel.y < 0, minlength=panel.n_series)
        return neg == 0

    def predict(
        self,
        h: int,
        X_df: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
    ) -> pd.DataFrame:
        """Forecast the next ``h`` steps of every series seen in ``fit``.

        Parameters
        ----------
        h : int
            Forecast horizon in steps of the frequency.
        X_df : pandas.DataFrame, optional
            Future values of the exogenous columns: ``id_col, time_col`` and
            every exogenous column, for the next ``h`` steps of every series.
            Required when the model was fitted with exogenous columns.
        level : sequence of int
            Interval levels in (0, 100); ``()`` for point forecasts only.

        Returns
        -------
        pandas.DataFrame
            ``n_series * h`` rows with columns ``id_col, time_col, yhat`` then
            ``lo_L, hi_L`` for each level in increasing order (default
            ``unique_id, ds, yhat, lo_80, hi_80, lo_95, hi_95``). Intervals are
            nested.
        """
        self._check_is_fitted()
        h = check_horizon(h)
        levels = validate_levels(level)
        future_exog = self._future_exog(X_df, h)
        mean, bands = self._predict_arrays(h, levels, future_exog)
        return self._frame(self.panel_, h, mean, bands, levels)

    def _frame(
        self, panel: SeriesPanel, h: int, mean: np.ndarray, bands: Bands, levels: list[int]
    ) -> pd.DataFrame:
        data: dict[str, Any] = {
            self.id_col_: np.repeat(panel.ids, h),
            self.time_col_: panel.future_ds(h),
            "yhat": mean.reshape(-1),
        }
        for lv in levels:
            data[f"lo_{lv}"] = bands[lv][0].reshape(-1)
            data[f"hi_{lv}"] = bands[lv][1].reshape(-1)
        out = pd.DataFrame(data)
        validate_frame(out, "forecast", id_col=self.id_col_, time_col=self.time_col_, levels=levels)
        return out

    def forecast(
        self,
        df: pd.DataFrame,
        h: int,
        X_df: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame:
        """``fit(df)`` then ``predict(h, X_df, level)`` in one call."""
        return self.fit(df, id_col=id_col, time_col=time_col, target_col=target_col).predict(
            h, X_df=X_df, level=level
        )

    # ------------------------------------------------------ cross-validation
    def cross_validation(
        self,
        df: pd.DataFrame,
        h: int,
        n_windows: int = 1,
        step: int | None = None,
        level: Sequence[int] = (80, 95),
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
    ) -> pd.DataFrame:
        """Rolling-origin evaluation: refit at each cutoff and forecast ``h`` steps.

        The last window ends at each series' last observation; earlier windows
        start ``step`` steps apart. Each window refits a fresh copy of the model
        on the data up to its cutoff (exogenous columns of the window are used as
        known future values).

        Parameters
        ----------
        df : pandas.DataFrame
            Series frame, as for :meth:`fit`.
        h : int
            Horizon of every window.
        n_windows : int
            Number of windows per series.
        step : int, optional
            Steps between consecutive cutoffs; default ``h``.
        level : sequence of int
            Interval levels.
        id_col, time_col, target_col : str
            Column names.

        Returns
        -------
        pandas.DataFrame
            ``n_series * n_windows * h`` rows: ``id_col, time_col, cutoff, y,
            yhat, lo_L, hi_L...`` where ``cutoff`` is the last timestamp used for
            fitting and ``y`` the actual value.

        Raises
        ------
        InvalidFrameError
            When a series is too short for the requested windows (it is named).
        """
        self._validate_params()
        h = check_horizon(h)
        if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
            raise ConfigError(f"parameter n_windows must be a positive integer, got {n_windows!r}")
        step = h if step is None else step
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ConfigError(f"parameter step must be a positive integer, got {step!r}")
        levels = validate_levels(level)
        panel = to_panel(
            df,
            id_col=id_col,
            time_col=time_col,
            target_col=target_col,
            freq=self.freq,
            use_exog=self.supports_exog,
        )
        frames = [
            self._cv_window(panel, h, n_windows, step, w, levels, id_col, time_col, target_col)
            for w in range(n_windows)
        ]
        return pd.concat(frames, ignore_index=True)

    def _cv_window(
        self,
        panel: SeriesPanel,
        h: int,
        n_windows: int,
        step: int,
        w: int,
        levels: list[int],
        id_col: str,
        time_col: str,
        target_col: str,
    ) -> pd.DataFrame:
        drop = h + (n_windows - 1 - w) * step
        too_short = panel.lengths <= drop
        if too_short.any():
            raise InvalidFrameError(
                f"series {format_ids(panel.ids[too_short])} are too short for cross_validation "
                f"with h={h}, n_windows={n_windows}, step={step}: each needs more than "
                f"{h + (n_windows - 1) * step} observations",
                column=target_col,
                frame="series",
            )
        train = panel.truncate(drop)
        model = self.clone()
        model._fit_panel(train, id_col=id_col, time_col=time_col, target_col=target_col)
        rows = panel.window(drop, h)
        future_exog = {k: v[rows] for k, v in panel.exog.items()} if model.exog_cols_ else None
        mean, bands = model._predict_arrays(h, levels, future_exog)
        out = model._frame(train, h, mean, bands, levels)
        out.insert(2, "cutoff", np.repeat(train.last_ds, h))
        out.insert(3, "y", panel.y[rows].reshape(-1))
        return out
