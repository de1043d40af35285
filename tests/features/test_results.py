"""Result frames in the store: the contract the pipeline, report and serving share."""

from __future__ import annotations

import pandas as pd
import pytest

from features.exceptions import StoreError
from features.store import Store


def _frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["a", "b"],
            "ds": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "yhat": values,
        }
    )


def test_latest_run_wins_and_older_runs_stay_readable(tmp_path):
    with Store(tmp_path / "s.duckdb") as st:
        st.write_result("forecast", _frame([1.0, 2.0]), run_id="r1", meta={"model": "auto"})
        st.write_result("forecast", _frame([3.0, 4.0]), run_id="r2")
        assert st.read_result("forecast")["yhat"].tolist() == [3.0, 4.0]
        assert st.read_result("forecast", "r1")["yhat"].tolist() == [1.0, 2.0]
        assert st.result_info("forecast", "r1")["meta"] == {"model": "auto"}
        assert st.result_names() == ["forecast"]
        st.update_result_meta("forecast", "r1", {"version": "2"})
        assert st.result_info("forecast", "r1")["meta"] == {"model": "auto", "version": "2"}
        assert st.read_result("forecast", "r1")["yhat"].tolist() == [1.0, 2.0]
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        got = st.read_result("forecast")
        assert str(got["ds"].dt.tz) == "UTC"


def test_rewriting_a_run_replaces_it_and_a_new_shape_replaces_the_table():
    st = Store(":memory:")
    st.write_result("forecast", _frame([1.0, 2.0]), run_id="r1")
    st.write_result("forecast", _frame([5.0, 6.0]), run_id="r1")
    assert st.read_result("forecast")["yhat"].tolist() == [5.0, 6.0]
    st.write_result("forecast", _frame([7.0, 8.0]).assign(model="x"), run_id="r2")
    assert list(st.read_result("forecast").columns) == ["unique_id", "ds", "yhat", "model"]


def test_missing_and_bad_names_say_what_to_do():
    st = Store(":memory:")
    with pytest.raises(StoreError, match="no result 'anomalies'"):
        st.read_result("anomalies")
    with pytest.raises(StoreError, match="result name"):
        st.write_result("x; DROP TABLE cost", _frame([1.0, 2.0]), run_id="r")
