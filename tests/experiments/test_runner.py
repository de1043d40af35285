"""experiments.runner and experiments.data: definitions, data loaders, per-level metrics, runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.data import load_team_daily
from experiments.runner import (
    CONFIG_DIR,
    level_metrics,
    list_experiments,
    load_config,
    run_experiment,
)
from features.exceptions import ConfigError, StoreError
from models import make_model
from tests.models.builders import make_series


def test_shipped_definitions_are_valid_and_versioned():
    items = {e["name"]: e for e in list_experiments()}
    assert {"demo_team_daily", "demo_team_daily_tuned", "m4_hourly"} <= set(items)
    for item in items.values():
        cfg = load_config(item["name"])
        assert isinstance(cfg["version"], int) and len(cfg["_sha256"]) == 64
    assert load_config("demo_team_daily_tuned")["tune"]["trials"] == 20


_OK = "data: {kind: file}\nmodel: {name: naive}\nbacktest: {horizon: 7}\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "name: bad\nversion: 1\ndata: {kind: file}\nmodel: {name: naive}\n",
            "missing key 'backtest'",
        ),
        (
            "name: bad\nversion: 1\n" + _OK + "extra: 1\n",
            "unknown key 'extra'",
        ),
        (
            "name: other\nversion: 1\n" + _OK,
            "file is bad.yaml",
        ),
        (
            "name: bad\nversion: 1\ndata: {kind: s3}\nmodel: {name: prophet}\n"
            "backtest: {horizon: 0}\n",
            "data.kind.*model.name.*backtest.horizon",
        ),
        (
            "name: bad\nversion: one\n" + _OK,
            "key 'version' must be int",
        ),
        ("name: bad\n  version: [1\n", "line 2: invalid YAML"),
    ],
)
def test_bad_definitions_name_the_file_and_key(tmp_path: Path, text: str, match: str):
    path = _write(tmp_path, "bad", text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="no experiment named 'nope'"):
        load_config("nope", config_dir=CONFIG_DIR)


def test_total_level_metrics_match_a_hand_computed_oracle():
    df = make_series(3, 60)
    cv = make_model("drift").cross_validation(df, h=7, n_windows=2)
    m = level_metrics(cv, df, 7, level_name="team")
    tot = cv.groupby(["cutoff", "ds"])[["y", "yhat"]].sum()
    assert m["total.wape"] == pytest.approx(
        100 * (tot.y - tot.yhat).abs().sum() / tot.y.abs().sum()
    )
    assert (
        m["team.wape"]
        == m["wape"]
        == pytest.approx(100 * (cv.y - cv.yhat).abs().sum() / cv.y.abs().sum())
    )
    assert {"total.coverage_95", "team.msis", "smape"} <= set(m)


def test_run_registers_and_the_guardrail_keeps_an_equal_rerun_as_challenger(tmp_path: Path):
    data = tmp_path / "series.csv"
    make_series(3, 60).to_csv(data, index=False)
    _write(
        tmp_path,
        "unit_exp",
        f"""name: unit_exp
version: 2
description: unit test
data: {{kind: file, path: {data}, level: team}}
model: {{name: seasonal_naive}}
backtest: {{horizon: 7, n_windows: 2, metric: wape, season_length: 7}}
register: {{name: unit-exp, promote: true, margin: 0.0}}
""",
    )
    first = run_experiment("unit_exp", data_dir=tmp_path, config_dir=tmp_path)
    assert not first.tracking_offline
    assert first.registered == {
        "name": "unit-exp",
        "version": "1",
        "run_id": first.registered["run_id"],
        "promoted": True,
        "reason": first.registered["reason"],
    }
    assert {"wape", "team.wape", "total.wape"} <= set(first.metrics)
    assert first.n_series == 3 and first.forecasts is not None and len(first.forecasts) == 21
    second = run_experiment("unit_exp", data_dir=tmp_path, config_dir=tmp_path)
    assert second.metrics["wape"] == pytest.approx(first.metrics["wape"])  # reproducible
    assert second.dataset_digest == first.dataset_digest
    assert second.registered["version"] == "2" and not second.registered["promoted"]
    assert "does not beat" in second.registered["reason"]

    from mlflow.tracking import MlflowClient

    from models.tracking import resolve_tracking_uri

    run = MlflowClient(resolve_tracking_uri(data_dir=tmp_path)).get_run(first.mlflow_run_id)
    assert run.data.tags["experiment.version"] == "2"
    assert run.data.tags["experiment.sha256"] == first.config_sha256


def _store(tmp_path: Path) -> Path:
    from features.store import Store

    path = tmp_path / "forecaster.duckdb"
    hours = pd.date_range("2025-01-01", periods=24 * 30 + 6, freq="h", tz="UTC")  # last day partial
    rows = []
    for i, ts in enumerate(hours):
        rows.append((ts, "ML-Platform" if i % 2 else "ml-platform ", 1.0, "focus"))
        if ts.day % 5:  # recsys spends nothing every fifth day
            rows.append((ts, "recsys", 2.0, "cur"))
    frame = pd.DataFrame(rows, columns=["ds", "team", "effective_cost", "source"])
    with Store(path) as st:
        st.con.register("frame", frame)
        st.con.execute(
            "INSERT INTO cost (ds, team, effective_cost, source) SELECT * FROM frame"
        ).fetchall()
    return path


def test_team_daily_aggregates_normalises_team_names_and_drops_the_partial_day(tmp_path: Path):
    path = _store(tmp_path)
    df = load_team_daily(path, min_days=7)
    assert sorted(df["unique_id"].unique()) == ["ml-platform", "recsys"]
    assert df["ds"].max() == pd.Timestamp("2025-01-30", tz="UTC")  # 31 Jan has 6 hours only
    ml = df[df.unique_id == "ml-platform"]["y"].to_numpy()
    np.testing.assert_allclose(ml, 24.0)
    recsys = df[df.unique_id == "recsys"].set_index("ds")["y"]
    assert recsys[pd.Timestamp("2025-01-05", tz="UTC")] == 0.0  # filled, not missing
    assert recsys[pd.Timestamp("2025-01-06", tz="UTC")] == 48.0
    assert df.attrs["source"] == str(path.resolve())
    only_cur = load_team_daily(path, source="cur", min_days=7)
    assert list(only_cur["unique_id"].unique()) == ["recsys"]
    with pytest.raises(ConfigError, match="source must be one of"):
        load_team_daily(path, source="ce")
    with pytest.raises(StoreError, match="not found"):
        load_team_daily(tmp_path / "missing.duckdb")
