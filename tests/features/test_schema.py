"""Canonical frames: validation names the column and the offending rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import InvalidFrameError
from features.schema import empty_cost_frame, interval_columns, validate_frame, validate_levels


def _series(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["a"] * n,
            "ds": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
            "y": np.arange(n, dtype=float),
        }
    )


def _forecast() -> pd.DataFrame:
    df = _series(3).rename(columns={"y": "yhat"})
    df["lo_80"], df["hi_80"] = df.yhat - 1, df.yhat + 1
    df["lo_95"], df["hi_95"] = df.yhat - 2, df.yhat + 2
    return df


def test_valid_frames_pass() -> None:
    validate_frame(_series(), "series")
    validate_frame(_forecast(), "forecast")
    validate_frame(empty_cost_frame().assign(charge_category=pd.Series([], dtype=object)), "cost")


def test_naive_timestamps_rejected_with_column() -> None:
    df = _series()
    df["ds"] = df["ds"].dt.tz_localize(None)
    with pytest.raises(InvalidFrameError, match=r"column 'ds'.*timezone-aware"):
        validate_frame(df, "series")


def test_duplicates_name_rows() -> None:
    df = pd.concat([_series(3), _series(3).iloc[[1]]], ignore_index=True)
    with pytest.raises(InvalidFrameError) as info:
        validate_frame(df, "series")
    assert info.value.column == "ds" and info.value.rows == [3]


def test_infinite_target_rejected() -> None:
    df = _series()
    df.loc[2, "y"] = np.inf
    with pytest.raises(InvalidFrameError, match=r"rows \[2\]"):
        validate_frame(df, "series")


def test_custom_column_names() -> None:
    df = _series().rename(columns={"unique_id": "team", "ds": "hour", "y": "cost"})
    validate_frame(df, "series", id_col="team", time_col="hour", target_col="cost")
    with pytest.raises(InvalidFrameError, match="missing required column"):
        validate_frame(df, "series")


def test_forecast_intervals_must_be_nested() -> None:
    df = _forecast()
    df.loc[1, "lo_95"] = df.loc[1, "lo_80"] + 0.5
    with pytest.raises(InvalidFrameError) as info:
        validate_frame(df, "forecast")
    assert info.value.column == "lo_95" and info.value.rows == [1]
    df = _forecast()
    df.loc[0, "hi_80"] = df.loc[0, "yhat"] - 0.1
    with pytest.raises(InvalidFrameError, match="hi_80"):
        validate_frame(df, "forecast")


def test_cost_frame_checks_charge_category_and_allows_negative_costs() -> None:
    df = pd.DataFrame(
        {
            "ds": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True),
            "effective_cost": [10.0, -4.0],
            "billed_cost": [10.0, -4.0],
            "list_cost": [np.nan, np.nan],
            "charge_category": ["Usage", "Credit"],
        }
    )
    validate_frame(df, "cost")
    df.loc[1, "charge_category"] = "Refund"
    with pytest.raises(InvalidFrameError, match="charge_category"):
        validate_frame(df, "cost")


def test_utilization_rejects_negative_usage() -> None:
    df = pd.DataFrame(
        {
            "ds": pd.to_datetime(["2025-01-01"], utc=True),
            "workload_id": ["w"],
            "gpu_used": [-0.1],
        }
    )
    with pytest.raises(InvalidFrameError, match="gpu_used"):
        validate_frame(df, "utilization")


def test_levels_validated_once() -> None:
    assert validate_levels([95, 80, 80]) == [80, 95]
    assert interval_columns([80]) == ["lo_80", "hi_80"]
    for bad in ([0], [100], [80.5], ["80"], [True]):
        with pytest.raises(ValueError, match="parameter level"):
            validate_levels(bad)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="parameter kind"):
        validate_frame(_series(), "weird")  # type: ignore[arg-type]
