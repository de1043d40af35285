"""`forecaster tune`, `forecaster models` and `forecaster experiment` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecaster.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FORECASTER_DATA_DIR", str(tmp_path))
    for var in ("MLFLOW_TRACKING_URI", "FORECASTER_MLFLOW_TRACKING_URI", "FORECASTER_STORE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _store(path: Path) -> Path:
    from features.store import Store

    rng = pd.date_range("2025-01-01", periods=24 * 90, freq="h", tz="UTC")
    frames = []
    for k, team in enumerate(["nlp", "vision", "search"]):
        weekly = 1.0 + 0.3 * (rng.dayofweek < 5)
        frames.append(
            pd.DataFrame(
                {"ds": rng, "team": team, "effective_cost": (k + 1) * weekly, "source": "focus"}
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    with Store(path) as st:
        st.con.register("frame", frame)
        st.con.execute(
            "INSERT INTO cost (ds, team, effective_cost, source) SELECT * FROM frame"
        ).fetchall()
    return path


def test_tune_registers_a_champion_that_models_list_shows(data_dir: Path):
    store = _store(data_dir / "forecaster.duckdb")
    res = runner.invoke(
        app,
        [
            "tune",
            "--store",
            str(store),
            "--trials",
            "2",
            "--horizon",
            "7",
            "--n-windows",
            "2",
            "--register",
            "--name",
            "cli-team-daily",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_trials"] == 2 and out["best_score"] <= out["default_score"]
    assert out["registered"]["promoted"] is True
    assert (data_dir / "optuna" / "studies.db").exists()

    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    team = models["cli-team-daily"]
    assert team["champion"] == "1"
    assert team["versions"][0]["metrics"]["wape"] == pytest.approx(out["best_score"])

    refused = runner.invoke(app, ["models", "promote", "cli-team-daily", "7"])
    assert refused.exit_code == 2 and "has no version '7'" in refused.output
    no_back = runner.invoke(app, ["models", "rollback", "cli-team-daily"])
    assert no_back.exit_code == 2 and "no earlier champion" in no_back.output
    human = runner.invoke(app, ["models", "list"])
    assert human.exit_code == 0 and "cli-team-daily" in human.output


def test_bad_input_exits_2_with_one_clear_line(data_dir: Path):
    res = runner.invoke(app, ["tune", "--store", str(data_dir / "nope.duckdb")])
    assert res.exit_code == 2 and "nope.duckdb not found" in res.output
    res = runner.invoke(app, ["tune", "--study", "prophet"])
    assert res.exit_code == 2 and "must be one of lgbm, stat" in res.output
    res = runner.invoke(app, ["experiment", "run", "does_not_exist"])
    assert res.exit_code == 2 and "no experiment named 'does_not_exist'" in res.output
    res = runner.invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == {"models": []}


def test_experiment_list(data_dir: Path):
    res = runner.invoke(app, ["experiment", "list", "--json"])
    assert res.exit_code == 0
    names = [e["name"] for e in json.loads(res.stdout)["experiments"]]
    assert "demo_team_daily" in names and "m4_hourly" in names


def test_registry_down_exits_1(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.integration._mlflow import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 1 and "unreachable" in res.output
