"""One contract test suite, run over every registered forecaster.

Each model is built small (few trees, small searches) so that the whole suite
stays fast; the contract does not depend on the size.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, InvalidFrameError, NotFittedError
from features.schema import FORECAST_FRAME_COLUMNS, validate_frame
from models import (
    ETS,
    MODELS,
    MSTL,
    AutoARIMA,
    AutoForecaster,
    BaseForecaster,
    Drift,
    LGBMForecaster,
    Naive,
    SeasonalNaive,
    VectorizedETS,
)

from .builders import make_series


def _small_lgbm() -> LGBMForecaster:
    return LGBMForecaster(n_estimators=20, num_leaves=8, min_child_samples=5, n_jobs=1, seed=0)


FACTORIES: dict[str, Callable[[], BaseForecaster]] = {
    "naive": Naive,
    "seasonal_naive": SeasonalNaive,
    "drift": Drift,
    "ets": lambda: ETS(n_jobs=1),
    "arima": lambda: AutoARIMA(max_p=1, max_q=1, seasonal=False, max_iter=2, n_jobs=1),
    "mstl": lambda: MSTL(n_jobs=1),
    "lgbm": _small_lgbm,
    "vets": lambda: VectorizedETS(horizon=7),
    "auto": lambda: AutoForecaster(
        models=[_small_lgbm(), "seasonal_naive"], horizon=7, n_jobs=1, seed=0
    ),
}
NAMES = sorted(FACTORIES)
H = 7


def test_every_registered_model_is_covered() -> None:
    assert set(FACTORIES) == set(MODELS)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_series(n_series=2, length=[70, 63])


@pytest.fixture(scope="module")
def fitted(train: pd.DataFrame) -> dict[str, tuple[BaseForecaster, pd.DataFrame]]:
    out = {}
    for name in NAMES:
        model = FACTORIES[name]().fit(train)
        out[name] = (model, model.predict(H))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_init_only_stores_keyword_params(name: str) -> None:
    model = FACTORIES[name]()
    sig = inspect.signature(type(model).__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert set(model.get_params()) == {p.name for p in params}
    assert not [a for a in vars(model) if a.endswith("_") and not a.startswith("_")]
    clone = model.clone()
    assert type(clone) is type(model) and clone is not model
    assert repr(model).startswith(type(model).__name__)


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_names_the_fix(name: str) -> None:
    with pytest.raises(NotFittedError, match=r"fit\(df\)"):
        FACTORIES[name]().predict(3)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_with_learned_state(name: str, train: pd.DataFrame) -> None:
    model = FACTORIES[name]()
    assert model.fit(train) is model
    assert model.season_length_ == 7
    assert str(model.freq_.freqstr) == "D"
    assert list(model.ids_) == ["s0", "s1"]


@pytest.mark.parametrize("name", NAMES)
def test_forecast_frame_contract(
    name: str, fitted: dict[str, tuple[BaseForecaster, pd.DataFrame]], train: pd.DataFrame
) -> None:
    _, fc = fitted[name]
    assert list(fc.columns) == list(FORECAST_FRAME_COLUMNS)
    assert len(fc) == 2 * H
    validate_frame(fc, "forecast")
    assert str(fc["ds"].dt.tz) == "UTC"
    for uid, g in fc.groupby("unique_id"):
        last = train.loc[train["unique_id"] == uid, "ds"].max()
        expected = pd.date_range(last, periods=H + 1, freq="D")[1:]
        assert list(g["ds"]) == list(expected)
    assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["lo_80"] <= fc["yhat"]).all()
    assert (fc["yhat"] <= fc["hi_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()
    assert np.isfinite(fc[list(FORECAST_FRAME_COLUMNS[2:])].to_numpy()).all()


@pytest.mark.parametrize("name", NAMES)
def test_forecast_is_sane(
    name: str, fitted: dict[str, tuple[BaseForecaster, pd.DataFrame]]
) -> None:
    # The series live around 20-30; a forecast far outside means a broken model.
    _, fc = fitted[name]
    assert fc["yhat"].between(0, 60).all()
    assert (fc["hi_95"] - fc["lo_95"]).mean() > 0


@pytest.mark.parametrize("name", NAMES)
def test_other_levels_and_point_only(
    name: str, fitted: dict[str, tuple[BaseForecaster, pd.DataFrame]]
) -> None:
    model, _ = fitted[name]
    fc = model.predict(3, level=[90, 50])
    assert list(fc.columns) == ["unique_id", "ds", "yhat", "lo_50", "hi_50", "lo_90", "hi_90"]
    point = model.predict(3, level=())
    assert list(point.columns) == ["unique_id", "ds", "yhat"]
    with pytest.raises(ValueError, match="level"):
        model.predict(3, level=[120])
    with pytest.raises(ConfigError, match="parameter h"):
        model.predict(0)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_with_a_seed(
    name: str, fitted: dict[str, tuple[BaseForecaster, pd.DataFrame]], train: pd.DataFrame
) -> None:
    _, first = fitted[name]
    again = FACTORIES[name]().fit(train).predict(H)
    pd.testing.assert_frame_equal(first, again)


@pytest.mark.parametrize("name", NAMES)
def test_too_short_series_fall_back_with_a_warning(name: str, train: pd.DataFrame) -> None:
    # Naive and Drift need one and two observations; the others more than four.
    length = 1 if name in ("naive", "drift") else 4
    short = make_series(n_series=1, length=length, seed=3).assign(unique_id="tiny")
    df = pd.concat([train, short], ignore_index=True)
    model = FACTORIES[name]()
    with pytest.warns(UserWarning, match="tiny"):
        fc = model.fit(df).predict(H)
    if name not in ("naive", "auto"):  # auto hands short series to its candidates
        assert "tiny" in list(model.fallback_ids_)
    tiny = fc[fc["unique_id"] == "tiny"]
    assert len(tiny) == H and np.isfinite(tiny["yhat"]).all()
    validate_frame(fc, "forecast")


@pytest.mark.parametrize("name", NAMES)
def test_cross_validation_adds_cutoff_and_actuals(name: str, train: pd.DataFrame) -> None:
    model = FACTORIES[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = model.cross_validation(train, h=5, n_windows=2, step=3)
    assert list(cv.columns) == [
        "unique_id", "ds", "cutoff", "y", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"
    ]  # fmt: skip
    assert len(cv) == 2 * 2 * 5
    assert (cv["ds"] > cv["cutoff"]).all()
    actual = train.set_index(["unique_id", "ds"])["y"]
    looked_up = actual.loc[list(zip(cv["unique_id"], cv["ds"], strict=True))].to_numpy()
    np.testing.assert_allclose(cv["y"].to_numpy(), looked_up)
    cutoffs = sorted(cv.loc[cv["unique_id"] == "s0", "cutoff"].unique())
    assert len(cutoffs) == 2 and (cutoffs[1] - cutoffs[0]) == pd.Timedelta(days=3)
    assert not hasattr(model, "is_fitted_")  # the estimator itself stays unfitted


def test_cross_validation_names_series_too_short_for_the_windows(train: pd.DataFrame) -> None:
    with pytest.raises(InvalidFrameError, match=r"\['s1'\] are too short"):
        SeasonalNaive().cross_validation(train, h=32, n_windows=2)
