"""The frame contract of :func:`models.anomaly.detect_series` (engine of ``forecaster detect``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import InvalidFrameError
from models.anomaly import NoveltyDetector, detect_series
from tests.models.anomaly.fixtures import series_frame, synthetic


@pytest.fixture
def frame() -> pd.DataFrame:
    return series_frame(
        {
            "team-a": synthetic(700, seed=1, spikes=[400], shifts=[600]).y,
            "team-b": synthetic(500, seed=2, spikes=[300]).y,
            "team-c": synthetic(120, seed=3).y,
        }
    )


def test_one_row_per_input_row_in_input_order(frame: pd.DataFrame) -> None:
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    out = detect_series(shuffled)
    assert list(out.columns) == ["unique_id", "ds", "y", "score", "is_anomaly"]
    assert len(out) == len(shuffled)
    pd.testing.assert_series_equal(out["unique_id"], shuffled["unique_id"], check_names=False)
    pd.testing.assert_series_equal(out["ds"], shuffled["ds"], check_names=False)
    np.testing.assert_array_equal(out["y"].to_numpy(), shuffled["y"].to_numpy())
    assert out["score"].between(0.0, 1.0).all()
    assert set(out["is_anomaly"].unique()) <= {0, 1}


def test_row_order_does_not_change_results(frame: pd.DataFrame) -> None:
    ordered = detect_series(frame)
    shuffled = frame.sample(frac=1.0, random_state=1)
    again = detect_series(shuffled.reset_index(drop=True))
    again.index = shuffled.index
    pd.testing.assert_frame_equal(again.sort_index(), ordered)


def test_prefix_gives_the_same_rows(frame: pd.DataFrame) -> None:
    # Time-ordered input (as a monitoring system appends it): interleave the series.
    timeline = frame.sort_values(["ds", "unique_id"], kind="stable").reset_index(drop=True)
    full = detect_series(timeline)
    for cut in (1, 150, 900, len(timeline) - 1):
        head = detect_series(timeline.iloc[:cut].reset_index(drop=True))
        pd.testing.assert_frame_equal(head, full.iloc[:cut].reset_index(drop=True))


def test_injected_anomalies_are_flagged(frame: pd.DataFrame) -> None:
    out = detect_series(frame)
    flagged = out[out["is_anomaly"] == 1]
    first = frame.index[frame["unique_id"] == "team-a"][0]
    a = flagged[flagged["unique_id"] == "team-a"].index - first
    assert any(400 <= i <= 403 for i in a) and any(600 <= i <= 603 for i in a)


def test_missing_values_and_duplicates_keep_their_rows(frame: pd.DataFrame) -> None:
    df = frame.copy()
    df.loc[[5, 405], "y"] = np.nan
    dup = df.iloc[[10, 10, 410]]
    df = pd.concat([df, dup], ignore_index=True)
    out = detect_series(df)
    assert len(out) == len(df)
    nan_rows = out[out["y"].isna()]
    assert len(nan_rows) == 2
    assert (nan_rows["score"] == 0).all() and (nan_rows["is_anomaly"] == 0).all()
    tail = out.iloc[-3:][["unique_id", "ds"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(tail, dup[["unique_id", "ds"]].reset_index(drop=True))


def test_threshold_overrides_the_default(frame: pd.DataFrame) -> None:
    default = detect_series(frame)
    strict = detect_series(frame, threshold=0.99)
    loose = detect_series(frame, threshold=0.05)
    assert strict["is_anomaly"].sum() <= default["is_anomaly"].sum() <= loose["is_anomaly"].sum()
    pd.testing.assert_series_equal(strict["score"], default["score"])


def test_custom_column_names_and_detector_objects(frame: pd.DataFrame) -> None:
    df = frame.rename(columns={"unique_id": "team", "ds": "hour", "y": "cost"})
    out = detect_series(df, NoveltyDetector(), id_col="team", time_col="hour", target_col="cost")
    assert list(out.columns) == ["team", "hour", "cost", "score", "is_anomaly"]
    np.testing.assert_array_equal(out["score"], detect_series(frame)["score"])


def test_empty_frame() -> None:
    out = detect_series(pd.DataFrame({"unique_id": [], "ds": [], "y": []}))
    assert list(out.columns) == ["unique_id", "ds", "y", "score", "is_anomaly"] and out.empty


@pytest.mark.parametrize(
    ("mutate", "column", "message"),
    [
        (lambda d: d.drop(columns="y"), "y", "missing required column"),
        (lambda d: d.assign(y=d["y"].astype(str)), "y", "must be numeric"),
        (lambda d: d.assign(y=d["y"].where(d.index != 7, np.inf)), "y", "infinite"),
        (lambda d: d.assign(ds=d["ds"].where(d.index != 3)), "ds", "missing timestamps"),
        (lambda d: d.assign(unique_id=d["unique_id"].where(d.index != 2)), "unique_id", "ids"),
    ],
)
def test_bad_frames_name_the_column_and_rows(
    frame: pd.DataFrame, mutate: object, column: str, message: str
) -> None:
    with pytest.raises(InvalidFrameError, match=message) as info:
        detect_series(mutate(frame))  # type: ignore[operator]
    assert info.value.column == column
