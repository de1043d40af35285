"""``forecaster forecast/backtest --level-by``: hierarchical forecasts from a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.readers.focus import read_focus
from features.store import Store
from forecaster.commands.forecast import RECONCILE_METHODS, backtest, forecast, parse_horizon
from models.hierarchy import METHODS
from tests.features.focus_fixtures import focus_row, write_focus_csv

from .builders import make_series

app = typer.Typer()
app.command("forecast")(forecast)
app.command("backtest")(backtest)
runner = CliRunner(env={"COLUMNS": "200"})
CONTRACT = ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
DAYS = 84


def _flat(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve weeks of daily charges: two teams (one spelt two ways), projects, untagged."""
    tmp = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    combos = [
        ("nlp", "chatbot", 40.0),
        ("NLP", "llm", 25.0),  # spelling variant of nlp
        ("vision", "vit", 15.0),
        (None, None, 10.0),
    ]
    rows = []
    for d in range(DAYS):
        start, end = t0 + pd.Timedelta(days=d), t0 + pd.Timedelta(days=d + 1)
        for team, project, level in combos:
            cost = level * (1 + 0.003 * d) * (1.3 if d % 7 < 5 else 0.7) + rng.normal(0, 1)
            tags = {k: v for k, v in (("Team", team), ("Project", project)) if v}
            rows.append(
                focus_row(
                    len(rows),
                    ChargePeriodStart=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ChargePeriodEnd=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    EffectiveCost=f"{cost:.4f}",
                    BilledCost=f"{cost:.4f}",
                    ListCost=f"{cost:.4f}",
                    ResourceId=f"r-{len(rows)}",
                    Tags=json.dumps(tags),
                )
            )
    path = tmp / "forecaster.duckdb"
    with Store(path) as st:
        st.ingest(read_focus(write_focus_csv(tmp / "focus.csv", rows)))
    return path


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_forecast_by_team_writes_the_contract_and_is_coherent(
    store_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fc.csv"
    code, output = _run(
        "forecast", "--level-by", "team", "--horizon", "14d", "--store", str(store_path),
        "--output", str(out), "--n-jobs", "1", "--n-windows", "2",
    )  # fmt: skip
    assert code == 0, output
    fc = pd.read_csv(out)
    assert list(fc.columns) == CONTRACT
    assert sorted(fc["unique_id"].unique()) == [
        "team=(untagged)", "team=nlp", "team=vision", "total",
    ]  # fmt: skip
    assert len(fc) == 4 * 14
    assert fc["ds"].iloc[0] == "2025-03-26T00:00:00Z"  # the day after the last one
    wide = fc.pivot(index="ds", columns="unique_id", values="yhat")
    teams = wide.drop(columns="total").sum(axis=1)
    np.testing.assert_allclose(teams, wide["total"], rtol=1e-9)
    assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()
    assert "reconciliation:" in _flat(output)


def test_deeper_levels_and_a_forced_method(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "fc.csv"
    code, output = _run(
        "forecast", "--level-by", "team", "--level-by", "project", "--horizon", "7",
        "--store", str(store_path), "--output", str(out), "--reconcile", "bottom_up",
        "--model", "seasonal_naive", "--n-jobs", "1",
    )  # fmt: skip
    assert code == 0, output
    fc = pd.read_csv(out)
    ids = set(fc["unique_id"])
    assert {"team=nlp/project=chatbot", "team=nlp/project=llm"} <= ids
    assert "team=(untagged)/project=(untagged)" in ids
    wide = fc.pivot(index="ds", columns="unique_id", values="yhat")
    np.testing.assert_allclose(
        wide["team=nlp"], wide["team=nlp/project=chatbot"] + wide["team=nlp/project=llm"]
    )
    assert "reconciliation: bottom_up" in _flat(output)


def test_backtest_by_team_prints_levels_methods_and_the_anchor(
    store_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt.csv"
    code, output = _run(
        "backtest", "--level-by", "team", "--horizon", "1w", "--n-windows", "2",
        "--store", str(store_path), "--output", str(out), "--n-jobs", "1",
    )  # fmt: skip
    assert code == 0, output
    bt = pd.read_csv(out)
    assert list(bt.columns) == [
        "level", "model", "horizon_days", "wape", "smape", "mase", "bias",
        "coverage_80", "coverage_95", "msis",
    ]  # fmt: skip
    assert set(bt["level"]) == {"total", "team"}
    assert "seasonal_naive/bottom_up" in set(bt["model"])
    assert {"lgbm/mint_shrink", "lgbm/bottom_up", "lgbm/none"} <= set(bt["model"])
    assert "chosen" in _flat(output)


def test_store_mode_errors_name_the_option(store_path: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "o.csv")
    base = ["forecast", "--horizon", "7", "--output", out]
    cases = [
        ([*base], "--input"),
        ([*base, "--level-by", "team", "--input", str(tmp_path / "x.csv")], "not both"),
        ([*base, "--level-by", "team", "--store", str(tmp_path / "none.duckdb")], "does not exist"),
        ([*base, "--level-by", "colour", "--store", str(store_path)], "--level-by"),
        ([*base, "--level-by", "team", "--store", str(store_path), "--reconcile", "x"],
         "--reconcile"),
        (["forecast", "--horizon", "36h", "--output", out, "--level-by", "team",
          "--store", str(store_path)], "whole number"),
        ([*base, "--level-by", "team", "--store", str(store_path), "--model", "magic"],
         "--model"),
    ]  # fmt: skip
    for args, message in cases:
        code, output = _run(*args)
        assert code == 2, (args, output)
        assert message in _flat(output), (args, output)


def test_horizon_parsing() -> None:
    assert parse_horizon("90", None) == 90
    assert parse_horizon("90d", "D") == 90
    assert parse_horizon("48h", "h") == 48
    assert parse_horizon("48H", "D") == 2
    assert parse_horizon("2w", "D") == 14
    assert parse_horizon("3 weeks", "W") == 3
    for bad, freq in (("0", "D"), ("abc", "D"), ("5y", "D"), ("36h", "D"), ("3d", "MS")):
        with pytest.raises(typer.BadParameter):
            parse_horizon(bad, freq)
    assert set(RECONCILE_METHODS) == {"auto", *METHODS}


def test_file_mode_accepts_a_duration(tmp_path: Path) -> None:
    df = make_series(n_series=2, length=60)
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "fc.csv"
    code, output = _run(
        "forecast", "--input", str(path), "--horizon", "1w", "--output", str(out),
        "--model", "seasonal_naive",
    )  # fmt: skip
    assert code == 0, output
    assert len(pd.read_csv(out)) == 2 * 7
