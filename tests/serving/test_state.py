"""Quantile interpolation, capacity and rendering of the in-memory state."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.loader import forecast_series, load_series, series_tags
from serving.state import (
    QUANTILES,
    Provenance,
    interpolate_quantile,
    level_bounds,
    quantile_position,
)
from tests.serving.fixtures import forecast_frame, load_frame

PROV = Provenance("m", "1", "run", None, None, "store")


def gaussian_points(mu: float, sd: float, h: int = 3) -> np.ndarray:
    return np.array([[mu + NormalDist().inv_cdf(q) * sd] * h for q in QUANTILES])


def test_stored_quantiles_come_back_exactly() -> None:
    pts = np.arange(5, dtype=float).reshape(5, 1) * 10
    for i, q in enumerate(QUANTILES):
        assert interpolate_quantile(pts, q)[0] == pytest.approx(10 * i)


@pytest.mark.parametrize("q", [0.03, 0.2, 0.5, 0.7, 0.9, 0.95, 0.975])
def test_interpolation_is_exact_for_a_gaussian(q: float) -> None:
    # Linear in normal-score space is exact when the forecast is Gaussian.
    pts = gaussian_points(100.0, 7.0)
    assert interpolate_quantile(pts, q)[0] == pytest.approx(100 + NormalDist().inv_cdf(q) * 7)


@pytest.mark.parametrize("q", [0.0, 0.01, 0.98, 1.0, math.nan])
def test_quantile_outside_the_stored_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="quantile must be in"):
        quantile_position(q)


@given(
    st.floats(0.025, 0.975),
    st.floats(0.025, 0.975),
    st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5),
)
def test_interpolated_quantiles_are_monotone(q1: float, q2: float, raw: list[float]) -> None:
    pts = np.sort(np.array(raw)).reshape(5, 1)
    a, b = sorted((q1, q2))
    assert interpolate_quantile(pts, a)[0] <= interpolate_quantile(pts, b)[0] + 1e-6


def test_level_80_is_the_stored_interval() -> None:
    pts = gaussian_points(0.0, 1.0)
    lo, hi = level_bounds(pts, 80)
    assert lo[0] == pytest.approx(pts[1, 0]) and hi[0] == pytest.approx(pts[3, 0])


def test_crossed_quantiles_are_rearranged() -> None:
    fc = forecast_frame({"a": "total"}, horizon=2)
    fc.loc[0, "lo_95"] = fc.loc[0, "hi_95"] + 5  # crossed on the first day
    s = forecast_series(fc, PROV)["a"]
    assert np.all(np.diff(s.points, axis=0) >= 0)


def test_forecast_render_is_valid_json_with_the_stored_numbers() -> None:
    fc = forecast_frame({"team=nlp": "team"}, horizon=5)
    s = forecast_series(fc, PROV)["team=nlp"]
    doc = json.loads(s.render(3, (80, 95), 7))
    assert doc["yhat"] == [100.0, 101.0, 102.0]
    assert doc["horizon"] == 3 and doc["requested_horizon"] == 7 and doc["truncated"]
    assert doc["intervals"][0]["lo"] == pytest.approx(fc["lo_80"].iloc[:3].tolist())
    assert doc["ds"][0] == "2025-01-01T00:00:00Z"
    assert s.freq_seconds == 86400


def test_missing_values_render_as_null() -> None:
    fc = forecast_frame({"a": "total"}, horizon=2)
    fc.loc[1, ["yhat", "lo_80", "hi_80", "lo_95", "hi_95"]] = np.nan
    doc = json.loads(forecast_series(fc, PROV)["a"].render(2, (80,), 2))
    assert doc["yhat"][1] is None


def frame_one(level: float, cap: float, lo: int, hi: int, sd: float = 0.0) -> pd.DataFrame:
    return load_frame({"w": {"level": level, "cap": cap, "min": lo, "max": hi}}, horizon=3, sd=sd)


def test_capacity_is_ceil_of_load_over_capacity_per_replica() -> None:
    s = load_series(frame_one(level=7.0, cap=2.0, lo=0, hi=100), PROV)["w"]
    p = s.plan(3, 0.5, None)
    # load 7, 8, 9 -> 4, 4, 5 replicas; exactly 8 must not round up to 5.
    assert p["replicas"] == [4, 4, 5]
    assert s.freq_seconds == 3600


def test_capacity_never_below_the_minimum_nor_above_the_maximum() -> None:
    s = load_series(frame_one(level=0.0, cap=1.0, lo=3, hi=4), PROV)["w"]
    assert s.plan(3, 0.5, None)["replicas"] == [3, 3, 3]  # load 0, 1, 2 -> floor 3
    assert s.plan(3, 0.5, 5)["replicas"] == [5, 5, 5]  # the caller's minimum wins
    high = load_series(frame_one(level=50.0, cap=1.0, lo=1, hi=4), PROV)["w"]
    assert high.plan(3, 0.5, None)["replicas"] == [4, 4, 4]


def test_higher_quantile_never_provisions_less() -> None:
    s = load_series(frame_one(level=10.0, cap=1.5, lo=0, hi=1000, sd=3.0), PROV)["w"]
    r50, r90 = s.plan(3, 0.5, None)["replicas"], s.plan(3, 0.9, None)["replicas"]
    assert all(b >= a for a, b in zip(r50, r90, strict=True)) and r90 != r50


def test_negative_load_quantiles_are_floored_at_zero() -> None:
    s = load_series(frame_one(level=0.0, cap=1.0, lo=0, hi=10, sd=5.0), PROV)["w"]
    assert (s.plan(3, 0.025, None)["load"] >= 0).all()


def test_tags_from_ids() -> None:
    assert series_tags("team=nlp/project=chat", "project") == {"team": "nlp", "project": "chat"}
    assert series_tags("nlp", "team") == {"team": "nlp"}
    assert series_tags("total", "total") == {}
