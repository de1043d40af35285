"""Adversarial inputs: every problem is handled or named (series, column, fix)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, InvalidFrameError
from features.schema import validate_frame
from models import ETS, AutoForecaster, LGBMForecaster, Naive, SeasonalNaive
from models._panel import to_panel

from .builders import future_frame, make_series


def _lgbm() -> LGBMForecaster:
    return LGBMForecaster(n_estimators=20, num_leaves=8, min_child_samples=5, n_jobs=1)


def test_gaps_are_filled_on_the_grid_with_a_warning() -> None:
    df = make_series(n_series=2, length=40)
    s1_january = (df["unique_id"] == "s1") & (df["ds"].dt.month == 1)
    holes = df[s1_january & df["ds"].dt.day.isin([5, 6, 20])].index
    with pytest.warns(UserWarning, match=r"\['s1'\] have gaps.*3 missing"):
        panel = to_panel(df.drop(index=holes))
    assert list(panel.lengths) == [40, 40]
    with pytest.warns(UserWarning, match="gaps"):
        fc = SeasonalNaive().fit(df.drop(index=holes)).predict(5)
    validate_frame(fc, "forecast")


def test_duplicates_raise_naming_the_series() -> None:
    df = make_series(n_series=2, length=20)
    dup = pd.concat([df, df[df["unique_id"] == "s1"].head(1)], ignore_index=True)
    with pytest.raises(InvalidFrameError, match=r"duplicated .* series \['s1'\]"):
        SeasonalNaive().fit(dup)


@pytest.mark.parametrize("model", [SeasonalNaive, lambda: ETS(n_jobs=1), _lgbm])
def test_constant_series(model: type) -> None:
    df = make_series(n_series=2, length=40)
    df.loc[df["unique_id"] == "s0", "y"] = 7.5
    fc = model().fit(df).predict(6)
    s0 = fc[fc["unique_id"] == "s0"]
    np.testing.assert_allclose(s0["yhat"], 7.5, atol=1e-6)
    validate_frame(fc, "forecast")


@pytest.mark.parametrize("model", [SeasonalNaive, lambda: ETS(n_jobs=1), _lgbm])
def test_all_zero_series(model: type) -> None:
    df = make_series(n_series=2, length=40)
    df.loc[df["unique_id"] == "s1", "y"] = 0.0
    fc = model().fit(df).predict(6)
    s1 = fc[fc["unique_id"] == "s1"]
    np.testing.assert_allclose(s1[["yhat", "lo_95", "hi_95"]].to_numpy(), 0.0, atol=1e-6)


def test_negative_values_are_valid_credits() -> None:
    df = make_series(n_series=2, length=60, level=-30.0)
    fc = _lgbm().fit(df).predict(7)
    assert (fc["yhat"] < 0).all()  # not clipped at zero: these series were negative
    validate_frame(fc, "forecast")


def test_never_negative_series_are_not_forecast_below_zero() -> None:
    df = make_series(n_series=1, length=60, level=1.0, trend=-0.02, noise=0.3)
    df["y"] = df["y"].clip(lower=0)
    fc = ETS(n_jobs=1).fit(df).predict(60)
    assert (fc[["yhat", "lo_80", "lo_95"]] >= 0).all().all()


def test_single_point_falls_back_to_naive_with_a_warning() -> None:
    df = pd.concat(
        [
            make_series(n_series=1, length=40),
            pd.DataFrame(
                {"unique_id": ["one"], "ds": [pd.Timestamp("2024-01-05", tz="UTC")], "y": [3.0]}
            ),
        ],
        ignore_index=True,
    )
    with pytest.warns(UserWarning, match="one") as record:
        fc = ETS(n_jobs=1).fit(df).predict(3)
    assert any("Naive" in str(w.message) for w in record)
    one = fc[fc["unique_id"] == "one"]
    np.testing.assert_allclose(one["yhat"], 3.0)
    assert list(one["ds"]) == list(pd.date_range("2024-01-06", periods=3, tz="UTC"))


def test_nans_are_interpolated_with_a_warning() -> None:
    df = make_series(n_series=2, length=30)
    df.loc[[3, 4, 35], "y"] = np.nan
    with pytest.warns(UserWarning, match=r"\['s0', 's1'\] have 3 missing values"):
        panel = to_panel(df)
    assert np.isfinite(panel.y).all()
    s0 = panel.values(0)
    assert s0[3] == pytest.approx(s0[2] + (s0[5] - s0[2]) / 3)


def test_all_missing_series_is_named() -> None:
    df = make_series(n_series=2, length=10)
    df.loc[df["unique_id"] == "s1", "y"] = np.nan
    with (
        warnings.catch_warnings(),
        pytest.raises(InvalidFrameError, match=r"\['s1'\] have no non-missing values"),
    ):
        warnings.simplefilter("ignore")
        to_panel(df)


def test_unsorted_rows_give_the_same_forecast() -> None:
    df = make_series(n_series=3, length=40)
    shuffled = df.sample(frac=1.0, random_state=1)
    a = SeasonalNaive().fit(df).predict(5)
    b = SeasonalNaive().fit(shuffled).predict(5)
    pd.testing.assert_frame_equal(a, b)


def test_mixed_frequencies_raise_naming_the_series() -> None:
    daily = make_series(n_series=2, length=30)
    hourly = make_series(n_series=1, length=30, freq="h").assign(unique_id="hourly")
    with pytest.raises(InvalidFrameError, match=r"mixed frequencies.*\['hourly'\]"):
        SeasonalNaive().fit(pd.concat([daily, hourly], ignore_index=True))


def test_off_grid_timestamps_with_explicit_freq_are_named() -> None:
    df = make_series(n_series=2, length=10, freq="12h")
    with pytest.raises(InvalidFrameError, match=r"\['s0', 's1'\] have timestamps off the 'D'"):
        SeasonalNaive(freq="D").fit(df)


def test_too_short_for_lgbm_falls_back_naming_the_series() -> None:
    df = pd.concat(
        [make_series(n_series=2, length=60), make_series(n_series=1, length=6, seed=2)
         .assign(unique_id="short")],
        ignore_index=True,
    )  # fmt: skip
    with pytest.warns(UserWarning) as record:
        fc = _lgbm().fit(df).predict(4)
    messages = [str(w.message) for w in record]
    assert any(
        m.startswith("LGBMForecaster: series ['short']") and "SeasonalNaive" in m for m in messages
    )
    # ... which itself hands the 6-point series to Naive (fewer than 8 observations).
    assert any(m.startswith("SeasonalNaive: series ['short']") for m in messages)
    assert len(fc) == 12


def test_missing_column_is_named() -> None:
    df = make_series(n_series=1, length=10).rename(columns={"y": "cost"})
    with pytest.raises(InvalidFrameError, match=r"column 'y'.*missing required"):
        Naive().fit(df)
    fc = Naive().fit(df, target_col="cost").predict(2)
    assert len(fc) == 2


def test_custom_column_names_are_kept() -> None:
    df = make_series(n_series=2, length=20).rename(
        columns={"unique_id": "team", "ds": "day", "y": "cost"}
    )
    fc = SeasonalNaive().fit(df, id_col="team", time_col="day", target_col="cost").predict(3)
    assert list(fc.columns[:3]) == ["team", "day", "yhat"]


def test_unparseable_timestamps_name_column_and_rows() -> None:
    df = make_series(n_series=1, length=5, tz=None)
    df["ds"] = df["ds"].astype(str)
    df.loc[2, "ds"] = "not a date"
    with pytest.raises(InvalidFrameError, match=r"column 'ds', rows \[2\]: cannot parse"):
        Naive().fit(df)


def test_non_numeric_target_names_the_series() -> None:
    df = make_series(n_series=2, length=5)
    df["y"] = df["y"].astype(object)
    df.loc[7, "y"] = "twelve"
    with pytest.raises(InvalidFrameError, match=r"'twelve' in series \['s1'\]"):
        Naive().fit(df)


def test_infinite_target_names_the_series() -> None:
    df = make_series(n_series=2, length=5)
    df.loc[1, "y"] = np.inf
    with pytest.raises(InvalidFrameError, match=r"infinite values in series \['s0'\]"):
        Naive().fit(df)


def test_naive_and_other_timezones_become_utc() -> None:
    naive = make_series(n_series=1, length=20, tz=None)
    fc = SeasonalNaive().fit(naive).predict(2)
    assert str(fc["ds"].dt.tz) == "UTC"
    assert fc["ds"].iloc[0] == pd.Timestamp("2024-01-21", tz="UTC")
    paris = make_series(n_series=1, length=30, freq="h", tz="Europe/Paris")
    fc = SeasonalNaive().fit(paris).predict(1)
    assert fc["ds"].iloc[0] == paris["ds"].iloc[-1].tz_convert("UTC") + pd.Timedelta(hours=1)


def test_monthly_and_weekly_calendars() -> None:
    monthly = make_series(n_series=2, length=40, freq="MS", season_length=12)
    model = SeasonalNaive().fit(monthly)
    assert model.season_length_ == 12
    fc = model.predict(3)
    assert list(fc["ds"].iloc[:3].dt.strftime("%Y-%m-%d")) == ["2027-05-01", "2027-06-01",
                                                                  "2027-07-01"]  # fmt: skip
    weekly = make_series(n_series=1, length=120, freq="W", season_length=52)
    assert SeasonalNaive().fit(weekly).season_length_ == 52
    # Monthly with gaps everywhere is still recognised as monthly.
    gappy = monthly.drop(index=monthly.index[5::7])
    with pytest.warns(UserWarning, match="gaps"):
        assert str(SeasonalNaive().fit(gappy).freq_.freqstr) == "MS"


def test_single_timestamps_everywhere_need_freq() -> None:
    df = pd.DataFrame(
        {"unique_id": ["a", "b"], "ds": pd.to_datetime(["2024-01-01"] * 2, utc=True), "y": [1, 2]}
    )
    with pytest.raises(ConfigError, match="parameter freq must be given"):
        Naive().fit(df)
    with pytest.warns(UserWarning, match="single observation"):
        assert len(Naive(freq="D").fit(df).predict(2)) == 4


def test_exogenous_columns_need_future_values() -> None:
    df = make_series(n_series=2, length=60)
    df["promo"] = (df["ds"].dt.day_of_week == 0).astype(float)
    df.loc[df["promo"] == 1, "y"] += 10
    model = _lgbm().fit(df)
    assert model.exog_cols_ == ["promo"]
    with pytest.raises(InvalidFrameError, match="pass X_df"):
        model.predict(7)
    future = future_frame(df, 7)
    future["promo"] = (future["ds"].dt.day_of_week == 0).astype(float)
    with pytest.raises(InvalidFrameError, match=r"column 'promo'.*series \['s1'\]"):
        model.predict(7, X_df=future[future["unique_id"] == "s0"])
    fc = model.predict(7, X_df=future)
    monday = fc["ds"].dt.day_of_week == 0
    other = fc.groupby("unique_id")["yhat"].transform(lambda s: s.median())
    assert (fc.loc[monday, "yhat"] > other[monday] + 4).all()


def test_non_numeric_exogenous_column_is_named() -> None:
    df = make_series(n_series=1, length=30).assign(team="ml")
    with pytest.raises(InvalidFrameError, match=r"column 'team'.*exogenous column must be numeric"):
        _lgbm().fit(df)
    SeasonalNaive().fit(df)  # models without exogenous support ignore other columns


def test_bad_parameters_are_named() -> None:
    df = make_series(n_series=1, length=30)
    with pytest.raises(ConfigError, match="parameter season_length"):
        Naive(season_length=0).fit(df)
    with pytest.raises(ConfigError, match="parameter freq"):
        Naive(freq="fortnightly").fit(df)
    with pytest.raises(ConfigError, match="parameter objective"):
        LGBMForecaster(objective="mape").fit(df)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="parameter n_jobs"):
        ETS(n_jobs=0).fit(df)
    with pytest.raises(ConfigError, match="parameter combination"):
        AutoForecaster(combination="vote").fit(df)  # type: ignore[arg-type]
