"""The ``forecast`` and ``backtest`` commands through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from forecaster.commands.forecast import backtest, forecast

from .builders import make_series

app = typer.Typer()
app.command("forecast")(forecast)
app.command("backtest")(backtest)
runner = CliRunner(env={"COLUMNS": "200"})


def _flat(output: str) -> str:
    """The output on one line, without Rich's box drawing."""
    return " ".join(output.replace("│", " ").split())


@pytest.fixture()
def series_csv(tmp_path: Path) -> Path:
    df = make_series(n_series=3, length=60, tz=None)
    df["unique_id"] = df["unique_id"].map({"s0": "ml", "s1": "data", "s2": "web"})
    df["ds"] = df["ds"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "spend.csv"
    df.to_csv(path, index=False)
    return path


def test_forecast_defaults_write_the_contract(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "fc.csv"
    result = runner.invoke(
        app,
        ["forecast", "--input", str(series_csv), "--horizon", "7", "--output", str(out),
         "--n-jobs", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert len(fc) == 21
    assert sorted(fc["unique_id"].unique()) == ["data", "ml", "web"]
    assert fc["ds"].iloc[0] == "2024-03-01T00:00:00Z"
    assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()


def test_forecast_options(tmp_path: Path) -> None:
    df = make_series(n_series=2, length=50).rename(columns={"unique_id": "team", "y": "cost"})
    path = tmp_path / "spend.parquet"
    df.to_parquet(path)
    out = tmp_path / "fc.csv"
    result = runner.invoke(
        app,
        ["forecast", "--input", str(path), "--horizon", "3", "--output", str(out),
         "--model", "seasonal_naive", "--level", "50", "--level", "90", "--id-col", "team",
         "--target-col", "cost", "--freq", "D", "--season-length", "7"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["unique_id", "ds", "yhat", "lo_50", "hi_50", "lo_90", "hi_90"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda df: df.drop(columns="y"), "missing column(s) ['y']"),
        (lambda df: pd.concat([df, df.tail(1)]), "duplicated"),
        (lambda df: df.assign(ds=df["ds"].where(df.index != 3, "soon")), "cannot parse"),
        (lambda df: df.assign(y=df["y"].astype(str).where(df.index != 4, "n/a?")), "numeric"),
    ],
)
def test_bad_input_exits_2_naming_file_and_problem(
    tmp_path: Path, edit: object, message: str
) -> None:
    df = make_series(n_series=2, length=30, tz=None)
    path = tmp_path / "bad.csv"
    edit(df).to_csv(path, index=False)  # type: ignore[operator]
    result = runner.invoke(
        app,
        ["forecast", "--input", str(path), "--horizon", "3", "--output", str(tmp_path / "o.csv")],
    )
    assert result.exit_code == 2
    flat = _flat(result.output)
    assert "bad.csv" in flat and message in flat


def test_bad_options_exit_2(series_csv: Path, tmp_path: Path) -> None:
    base = ["forecast", "--input", str(series_csv), "--horizon", "3"]
    out = ["--output", str(tmp_path / "o.csv")]
    cases = [
        ([*base, *out, "--model", "prophet"], "--model"),
        ([*base, *out, "--level", "100"], "--level"),
        ([*base, *out, "--freq", "fortnight"], "--freq"),
        ([*base, "--output", str(tmp_path / "nowhere" / "o.csv")], "does not exist"),
        (["forecast", "--input", str(tmp_path / "missing.csv"), "--horizon", "3", *out],
         "file not found"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert message in _flat(result.output)


def test_backtest_prints_and_writes_metrics(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.csv"
    result = runner.invoke(
        app,
        ["backtest", "--input", str(series_csv), "--horizon", "7", "--n-windows", "2",
         "--model", "seasonal_naive", "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mase" in result.output and "ALL" in result.output
    table = pd.read_csv(out)
    assert list(table["unique_id"]) == ["data", "ml", "web", "ALL"]
    assert {"smape", "mase", "coverage_95", "msis", "owa"} <= set(table.columns)
