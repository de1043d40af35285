"""Model-specific behaviour: exact baselines, vectorised features, conformal calibration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from models import MSTL, AutoARIMA, AutoForecaster, Drift, LGBMForecaster, SeasonalNaive
from models._conformal import ConformalCalibrator
from models._frequency import as_offset, default_season_length, default_seasonal_periods
from models._panel import to_panel
from models.ensemble import combine_weights
from models.lgbm import _shift_cols, _window_stats

from .builders import future_frame, make_series


def test_seasonal_naive_and_drift_values() -> None:
    df = make_series(n_series=1, length=21)
    y = df["y"].to_numpy()
    fc = SeasonalNaive().fit(df).predict(10)
    np.testing.assert_allclose(fc["yhat"], np.r_[y[-7:], y[-7:-4]])
    fc = Drift().fit(df).predict(3)
    slope = (y[-1] - y[0]) / 20
    np.testing.assert_allclose(fc["yhat"], y[-1] + slope * np.arange(1, 4))
    # Wider intervals further out.
    width = (fc["hi_95"] - fc["lo_95"]).to_numpy()
    assert (np.diff(width) > 0).all()


@pytest.mark.parametrize(
    ("freq", "m", "periods"),
    [("h", 24, (24, 168)), ("D", 7, (7, 365)), ("W", 52, (52,)), ("MS", 12, (12,)),
     ("ME", 12, (12,)), ("15min", 96, (96, 672)), ("QS", 4, (4,)), ("YS", 1, ())],
)  # fmt: skip
def test_default_seasonality(freq: str, m: int, periods: tuple[int, ...]) -> None:
    off = as_offset(freq)
    assert default_season_length(off) == m
    assert default_seasonal_periods(off, m) == periods


def test_vectorised_features_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 30))
    z[0, :5] = np.nan  # a shorter series, NaN-padded on the left
    cols = np.arange(30)
    lag3 = _shift_cols(z, cols, 3)
    mean, std = _window_stats(z, cols, [4], with_std=True)
    for i in range(3):
        for c in range(30):
            expect = z[i, c - 3] if c >= 3 else np.nan
            np.testing.assert_equal(lag3[i, c], expect)
            window = z[i, max(c - 4, 0) : c]
            window = window[np.isfinite(window)]
            if len(window) == 0:
                assert np.isnan(mean[i, c])
            else:
                assert mean[i, c] == pytest.approx(window.mean())
                if len(window) > 1:
                    assert std[i, c] == pytest.approx(window.std(), abs=1e-7)


def test_lgbm_calendar_and_holiday_features() -> None:
    df = make_series(n_series=2, length=200, start="2024-03-01")
    model = LGBMForecaster(
        n_estimators=10, num_leaves=4, holidays_country="US", fourier_terms=2, n_jobs=1
    ).fit(df)
    names = model.feature_names_
    for feature in ("dayofweek", "day", "month", "holiday", "sin7_1", "cos365_2", "anchor"):
        assert feature in names
    july4 = np.datetime64("2024-07-04", "D").astype(np.int64)
    assert july4 in set(model._holiday_days)
    assert model.n_train_rows_ > 200


def test_lgbm_learns_a_shared_pattern_across_series() -> None:
    df = make_series(n_series=6, length=120, noise=0.1)
    fc = LGBMForecaster(n_jobs=1).fit(df).predict(14)
    truth = make_series(n_series=6, length=134, noise=0.0)
    truth = truth.groupby("unique_id").tail(14).reset_index(drop=True)
    err = np.abs(fc["yhat"].to_numpy() - truth["y"].to_numpy())
    assert err.mean() < 0.6  # noise sd 0.1, seasonal amplitude 3


def test_conformal_calibrator_covers_iid_noise() -> None:
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.5, 5, size=200)
    resid = rng.normal(size=(200, 2, 12)) * scale[:, None, None]
    cal = ConformalCalibrator().fit(resid, fallback_scale=scale)
    bands = cal.bands(np.zeros((200, 12)), [80, 95])
    new = rng.normal(size=(200, 12)) * scale[:, None]
    for lv in (80, 95):
        lo, hi = bands[lv]
        covered = ((new >= lo) & (new <= hi)).mean() * 100
        assert abs(covered - lv) < 4
    # Beyond the calibrated horizon the intervals keep widening.
    long = cal.bands(np.zeros((200, 20)), [95])[95]
    assert (long[1][:, -1] > long[1][:, 11]).all()


def test_conformal_profile_follows_the_noisy_phases() -> None:
    # Noise sd 3 at phases 0-5 of a 12-step season, 0.5 elsewhere; windows of 10
    # steps (not a multiple of the season) so the phases must be counted from the
    # forecast origin to line up.
    rng = np.random.default_rng(2)
    m, windows, horizon, n = 12, 6, 10, 300
    cuts = (windows - np.arange(windows)) * horizon

    def sd_at(steps: np.ndarray) -> np.ndarray:
        return np.where(steps % m < 6, 3.0, 0.5)

    sd = np.stack([sd_at(np.arange(horizon) - c) for c in cuts])  # (windows, horizon)
    resid = rng.normal(size=(n, windows, horizon)) * sd[None]
    scale = np.ones(n)
    flat = ConformalCalibrator(scale_power=2.0, prior_weight=0.0).fit(resid, scale)
    prof = ConformalCalibrator(
        scale_power=2.0, prior_weight=0.0, season_length=m, profile_strength=1.0, cross_fit=True
    ).fit(resid, scale)
    new = rng.normal(size=(n, horizon)) * sd_at(np.arange(horizon))[None]
    loud = sd_at(np.arange(horizon)) > 1
    widths = {}
    for name, cal in (("flat", flat), ("profile", prof)):
        lo, hi = cal.bands(np.zeros((n, horizon)), [95])[95]
        covered = (new >= lo) & (new <= hi)
        widths[name] = hi - lo
        if name == "profile":
            # Calibrated at the loud and at the quiet phases alike.
            assert abs(covered[:, loud].mean() * 100 - 95) < 3
            assert abs(covered[:, ~loud].mean() * 100 - 95) < 3
    # The profile narrows the quiet phases and widens the loud ones.
    assert widths["profile"][:, ~loud].mean() < 0.6 * widths["flat"][:, ~loud].mean()
    assert widths["profile"][:, loud].mean() > widths["flat"][:, loud].mean()
    # A subset of rows gets the same bands as the full panel.
    part = prof.bands(np.zeros((2, horizon)), [95], rows=np.array([5, 7]))[95]
    np.testing.assert_allclose(part[1], prof.bands(np.zeros((n, horizon)), [95])[95][1][[5, 7]])


def test_conformal_cross_fit_covers_despite_a_noisy_scale() -> None:
    # Two short windows per series: the own scale is noisy, and scoring with it
    # in-sample under-covers; scoring each window with the other's scale does not.
    rng = np.random.default_rng(3)
    n, horizon = 400, 6
    true = rng.uniform(0.5, 5, size=n)
    resid = rng.normal(size=(n, 2, horizon)) * true[:, None, None]
    new = rng.normal(size=(n, horizon)) * true[:, None]
    cover = {}
    for cross in (False, True):
        cal = ConformalCalibrator(scale_power=2.0, prior_weight=0.0, cross_fit=cross)
        lo, hi = cal.fit(resid, np.ones(n)).bands(np.zeros((n, horizon)), [95])[95]
        cover[cross] = ((new >= lo) & (new <= hi)).mean() * 100
    assert cover[False] < 93
    assert cover[True] >= 94


def test_combine_weights() -> None:
    losses = np.array([[1.0, 2.0], [3.0, 1.0], [np.nan, np.nan]])
    w = combine_weights(losses, "weighted", power=2, shrinkage=0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert w[0, 0] == pytest.approx(0.8) and w[1, 1] == pytest.approx(0.9)
    np.testing.assert_allclose(w[2], 0.5)
    best = combine_weights(losses, "best", power=1, shrinkage=0.0)
    np.testing.assert_allclose(best[:2], [[1, 0], [0, 1]])
    shrunk = combine_weights(losses, "best", power=1, shrinkage=1.0)
    assert np.allclose(shrunk, shrunk[0])


def test_auto_default_ensemble_and_calibrated_intervals() -> None:
    df = make_series(n_series=12, length=120, noise=1.0, seed=4)
    model = AutoForecaster(n_jobs=1, horizon=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = model.cross_validation(df, h=7, n_windows=2)
    covered = ((cv["y"] >= cv["lo_95"]) & (cv["y"] <= cv["hi_95"])).mean() * 100
    assert 85 <= covered <= 100
    fitted = AutoForecaster(n_jobs=1, horizon=7).fit(df)
    summary = fitted.summary()
    assert set(summary) == {"lgbm", "lgbm_a7_level", "seasonal_naive", "mstl"}
    np.testing.assert_allclose(fitted.weights_.sum(axis=1), 1.0)
    assert fitted.backtest_forecasts_.shape == (4, 12, 5, 7)


def test_arima_with_exogenous_and_fourier_seasonality() -> None:
    df = make_series(n_series=1, length=60)
    df["promo"] = (np.arange(60) % 10 == 0).astype(float)
    df.loc[df["promo"] == 1, "y"] += 8
    model = AutoARIMA(max_p=1, max_q=1, max_iter=2, n_jobs=1).fit(df)
    future = future_frame(df, 10)
    future["promo"] = (np.arange(60, 70) % 10 == 0).astype(float)
    fc = model.predict(10, X_df=future)
    assert fc["yhat"].iloc[0] > fc["yhat"].iloc[1:].max()
    hourly = make_series(n_series=1, length=24 * 8, freq="h", season_length=24)
    state = AutoARIMA(max_p=1, max_q=1, max_iter=1, n_jobs=1).fit(hourly).states_[0]
    assert state["fourier"] == (24, 3) and state["seasonal_order"] == (0, 0, 0, 0)


def test_mstl_update_keeps_the_trend_model() -> None:
    df = make_series(n_series=2, length=60)
    model = MSTL(n_jobs=1).fit(df.groupby("unique_id").head(50))
    before = [s["inner"] for s in model.states_]
    model._update_panel(to_panel(df))
    after = [s["inner"] for s in model.states_]
    for a, b in zip(before, after, strict=True):
        assert a["spec"] == b["spec"]
        np.testing.assert_array_equal(a["params"], b["params"])
    assert [len(s["adjusted"]) for s in model.states_] == [60, 60]
    assert len(model.predict(5)) == 10


def test_mstl_on_exactly_two_years_of_daily_data() -> None:
    # statsmodels drops a period unless the series is longer than two of it; a 730-day
    # series must not keep the yearly period (it used to crash with an IndexError).
    import numpy as np
    import pandas as pd

    from models import MSTL

    ds = pd.date_range("2023-01-01", periods=730, freq="D", tz="UTC")
    t = np.arange(730)
    y = 100 + 10 * np.sin(2 * np.pi * t / 7) + 5 * np.sin(2 * np.pi * t / 365.25)
    df = pd.DataFrame({"unique_id": "a", "ds": ds, "y": y})
    fc = MSTL(n_jobs=1, seasonal_periods=[7, 365]).fit(df).predict(14)
    assert len(fc) == 14 and np.isfinite(fc["yhat"]).all()
