"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import InvalidFrameError
from models.metrics import (
    bias,
    coverage,
    evaluate,
    mase,
    msis,
    owa,
    pinball_loss,
    rmsse,
    seasonal_scale,
    smape,
    wape,
)

Y = [1.0, 2.0, 3.0, 4.0]
F = [2.0, 2.0, 2.0, 2.0]
#: Seasonal (m = 3) differences: |10-10|, |16-12|, |12-14| -> mean 2.
TRAIN = [10.0, 12.0, 14.0, 10.0, 16.0, 12.0]


def test_smape() -> None:
    # 200 * [1/3, 0, 1/5, 2/6] / 4
    assert smape(Y, F) == pytest.approx((200 / 3 + 0 + 40 + 200 / 3) / 4)
    assert smape([0.0, 1.0], [0.0, 1.0]) == 0.0  # 0/0 counts as a perfect forecast


def test_seasonal_scale_and_mase() -> None:
    assert seasonal_scale(TRAIN, 3) == pytest.approx(2.0)
    assert mase(Y, F, TRAIN, 3) == pytest.approx(1.0 / 2.0)  # mean|e| = 1
    # Shorter than a season: one-step differences.
    assert seasonal_scale([1.0, 3.0], 7) == pytest.approx(2.0)


def test_wape_and_bias() -> None:
    assert wape(Y, F) == pytest.approx(100 * 4 / 10)
    assert bias(Y, F) == pytest.approx(100 * -2 / 10)


def test_rmsse() -> None:
    # MSE 1.5; one-step squared differences 4, 4, 16, 36, 16 -> 15.2
    assert rmsse(Y, F, TRAIN) == pytest.approx(np.sqrt(1.5 / 15.2))


def test_coverage() -> None:
    assert coverage(Y, [0, 2.5, 2, 5], [2, 3, 4, 6]) == pytest.approx(50.0)


def test_pinball() -> None:
    # y - q = -1 -> 0.1; y - q = 1 -> 0.9
    assert pinball_loss([1.0, 2.0], [2.0, 1.0], 0.9) == pytest.approx(0.5)


def test_msis() -> None:
    # widths 2, 4, 2; penalties 0, 40 * 1, 40 * 1 -> mean 88 / 3, scale 2
    value = msis([1.0, 5.0, 3.0], [0.0, 0.0, 4.0], [2.0, 4.0, 6.0], TRAIN, 3)
    assert value == pytest.approx(88 / 3 / 2)


def test_owa() -> None:
    assert owa(18.383, 2.395) == pytest.approx(1.0)
    assert owa(18.383 / 2, 2.395 / 2) == pytest.approx(0.5)


def _cv() -> tuple[pd.DataFrame, pd.DataFrame]:
    ds_train = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    train = pd.concat(
        [
            pd.DataFrame({"unique_id": "a", "ds": ds_train, "y": TRAIN}),
            pd.DataFrame({"unique_id": "b", "ds": ds_train, "y": [1.0, 2, 3, 4, 5, 6]}),
        ]
    )
    ds = pd.date_range("2024-01-07", periods=4, freq="D", tz="UTC")
    cutoff = pd.Timestamp("2024-01-06", tz="UTC")
    rows = []
    for uid, y, f in (("a", Y, F), ("b", [7.0, 8, 9, 10], [7.0, 8, 9, 12])):
        f = np.asarray(f)
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": uid,
                    "ds": ds,
                    "cutoff": cutoff,
                    "y": y,
                    "yhat": f,
                    "lo_80": f - 1,
                    "hi_80": f + 1,
                    "lo_95": f - 2,
                    "hi_95": f + 2,
                }
            )
        )
    return pd.concat(rows, ignore_index=True), train


def test_evaluate_per_series_and_overall() -> None:
    cv, train = _cv()
    table = evaluate(cv, train, season_length=3)
    assert list(table["unique_id"]) == ["a", "b", "ALL"]
    a = table.iloc[0]
    assert a["n"] == 4
    assert a["smape"] == pytest.approx(smape(Y, F))
    assert a["mase"] == pytest.approx(mase(Y, F, TRAIN, 3))
    assert a["wape"] == pytest.approx(40.0)
    assert a["rmsse"] == pytest.approx(rmsse(Y, F, TRAIN))
    assert a["coverage_95"] == pytest.approx(coverage(Y, np.array(F) - 2, np.array(F) + 2))
    assert a["msis"] == pytest.approx(msis(Y, np.array(F) - 2, np.array(F) + 2, TRAIN, 3))
    total = table.iloc[-1]
    assert total["n"] == 8
    assert total["smape"] == pytest.approx(table["smape"].iloc[:2].mean())
    assert total["mase"] == pytest.approx(table["mase"].iloc[:2].mean())
    # WAPE pools the points: (4 + 2) / (10 + 34)
    assert total["wape"] == pytest.approx(100 * 6 / 44)
    assert total["owa"] == pytest.approx(owa(total["smape"], total["mase"]))
    assert np.isnan(a["owa"])


def test_evaluate_uses_only_history_up_to_each_cutoff() -> None:
    cv, train = _cv()
    later = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2024-01-07", periods=4, tz="UTC"), "y": Y}
    )
    full = pd.concat([train, later], ignore_index=True)
    a_only = evaluate(cv, train, 3).iloc[0]
    a_full = evaluate(cv, full, 3).iloc[0]
    assert a_full["mase"] == pytest.approx(a_only["mase"])


def test_evaluate_names_missing_columns() -> None:
    cv, train = _cv()
    with pytest.raises(InvalidFrameError, match="hi_95"):
        evaluate(cv.drop(columns="hi_95"), train, 3)
