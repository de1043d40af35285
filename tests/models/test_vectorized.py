"""VectorizedETS: a scalar oracle, partition invariance, accuracy and calibration."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError
from features.schema import validate_frame
from models import SeasonalNaive, VectorizedETS, make_model
from models.metrics import evaluate

from .builders import make_series


def _fleet(n: int, length: int, seed: int = 0) -> pd.DataFrame:
    """Random-walk levels with weekly seasons, slopes and noise (like daily spend)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    level = rng.lognormal(3, 0.5, n)[:, None]
    walk = np.cumsum(rng.normal(0, 0.01, (n, length)), axis=1)
    season = rng.uniform(0, 0.3, (n, 1)) * np.sin(2 * np.pi * t / 7)[None, :]
    slope = 0.001 * rng.normal(0, 1, (n, 1)) * t[None, :]
    y = level * (1 + walk + season + slope) + level * 0.05 * rng.normal(size=(n, length))
    ds = pd.date_range("2024-01-01", periods=length, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"r{i:04d}" for i in range(n)], length),
            "ds": np.tile(ds, n),
            "y": y.ravel(),
        }
    )


def _holt_winters(y: np.ndarray, m: int, alpha: float, gamma: float, h: int) -> np.ndarray:
    """Textbook additive Holt-Winters without trend, one series, plain Python."""
    level = float(np.mean(y[:m]))
    season = [float(v) - level for v in y[:m]]
    for t in range(m, len(y)):
        s = season[t % m]
        e = y[t] - (level + s)
        level = level + alpha * e
        season[t % m] = s + gamma * e
    return np.array([level + season[(len(y) + j) % m] for j in range(h)])


def test_one_grid_point_matches_the_textbook_recursion() -> None:
    df = make_series(3, 50, noise=1.0, seed=4)
    model = VectorizedETS(alphas=(0.3,), gammas=(0.1,), trends=((0.0, 0.0),), horizon=7)
    fc = model.fit(df).predict(10, level=())
    for uid, g in df.groupby("unique_id"):
        expected = _holt_winters(g["y"].to_numpy(), 7, 0.3, 0.1, 10)
        got = fc.loc[fc["unique_id"] == uid, "yhat"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_noise_free_seasonal_series_is_continued_exactly() -> None:
    t = np.arange(84)
    y = 50 + 5 * np.sin(2 * np.pi * t / 7)
    df = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=84, freq="D"), "y": y}
    )
    fc = VectorizedETS(horizon=7).fit(df).predict(14)
    expected = 50 + 5 * np.sin(2 * np.pi * np.arange(84, 98) / 7)
    np.testing.assert_allclose(fc["yhat"].to_numpy(), expected, atol=1e-8)
    # A perfect fit leaves no error to widen the intervals with.
    np.testing.assert_allclose(fc["hi_95"] - fc["lo_95"], 0.0, atol=1e-6)


def test_forecasts_do_not_depend_on_the_other_series() -> None:
    df = _fleet(40, 150, seed=1)
    whole = VectorizedETS(horizon=14).fit(df).predict(14)
    ids = df["unique_id"].unique()
    parts = [
        VectorizedETS(horizon=14).fit(df[df["unique_id"].isin(chunk)]).predict(14)
        for chunk in (ids[:7], ids[7:30], ids[30:])
    ]
    joined = pd.concat(parts).sort_values(["unique_id", "ds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, joined)


def test_series_of_different_lengths_match_their_separate_fits() -> None:
    df = make_series(4, [40, 90, 60, 120], noise=1.0, seed=2)
    together = VectorizedETS(horizon=7).fit(df).predict(7)
    for uid, g in df.groupby("unique_id"):
        alone = VectorizedETS(horizon=7).fit(g).predict(7).reset_index(drop=True)
        got = together[together["unique_id"] == uid].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone)


def test_output_follows_the_forecast_contract() -> None:
    df = _fleet(5, 120)
    fc = VectorizedETS().fit(df).predict(21, level=(50, 80, 95))
    validate_frame(fc, "forecast", levels=[50, 80, 95])
    assert len(fc) == 5 * 21
    assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["lo_80"] <= fc["lo_50"]).all()
    assert (fc["hi_50"] <= fc["hi_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()


def test_more_accurate_than_seasonal_naive_with_calibrated_intervals() -> None:
    df = _fleet(300, 400, seed=3)
    h = 28
    cv = VectorizedETS(horizon=h).cross_validation(df, h=h, n_windows=1)
    base = SeasonalNaive().cross_validation(df, h=h, n_windows=1)
    ours = evaluate(cv, df, 7, [80, 95]).set_index("unique_id").loc["ALL"]
    naive = evaluate(base, df, 7, [80, 95]).set_index("unique_id").loc["ALL"]
    assert ours["mase"] < 0.95 * naive["mase"]
    # Per-series conformal intervals from 3 windows: close to nominal, not exact.
    assert 70 <= ours["coverage_80"] <= 90
    assert 88 <= ours["coverage_95"] <= 99


def test_short_series_fall_back_to_seasonal_naive_with_a_warning() -> None:
    df = make_series(2, [10, 80], seed=5)
    with pytest.warns(UserWarning, match="fewer than 16 observations"):
        model = VectorizedETS().fit(df)
    assert list(model.fallback_ids_) == ["s0"]
    assert len(model.predict(7)) == 14


def test_predict_calibrates_for_a_new_horizon_without_refitting() -> None:
    df = _fleet(20, 200, seed=6)
    model = VectorizedETS(horizon=7).fit(df)
    params = {k: v.copy() for k, v in model.params_.items()}
    fc30 = model.predict(30)
    assert len(fc30) == 20 * 30
    for k, v in model.params_.items():
        np.testing.assert_array_equal(v, params[k])
    # Same as a model calibrated for 30 steps from the start.
    pd.testing.assert_frame_equal(fc30, VectorizedETS(horizon=30).fit(df).predict(30))


def test_normal_calibration_gives_symmetric_growing_intervals() -> None:
    df = _fleet(10, 150, seed=7)
    fc = VectorizedETS(calibration="normal").fit(df).predict(14, level=(80,))
    width = (fc["hi_80"] - fc["lo_80"]).to_numpy().reshape(10, 14)
    assert (np.diff(width, axis=1) >= -1e-9).all()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"horizon": 0}, "horizon"),
        ({"n_windows": -1}, "n_windows"),
        ({"alphas": ()}, "alphas"),
        ({"gammas": (1.5,)}, "gammas"),
        ({"trends": ((0.1,),)}, "trends"),
        ({"calibration": "bootstrap"}, "calibration"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, object], name: str) -> None:
    df = make_series(2, 40)
    with pytest.raises(ConfigError, match=f"parameter {name}"):
        VectorizedETS(**params).fit(df)  # type: ignore[arg-type]


def test_registered_for_the_cli() -> None:
    model = make_model("vets", horizon=14, n_jobs=4, seed=1)
    assert isinstance(model, VectorizedETS)
    assert model.horizon == 14


def test_constant_series_give_exact_forecasts() -> None:
    df = pd.DataFrame(
        {
            "unique_id": "flat",
            "ds": pd.date_range("2024-01-01", periods=60, freq="D"),
            "y": 3.0,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fc = VectorizedETS().fit(df).predict(5)
    np.testing.assert_allclose(fc[["yhat", "lo_95", "hi_95"]].to_numpy(), 3.0)
