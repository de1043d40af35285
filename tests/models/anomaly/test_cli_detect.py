"""The ``forecaster detect`` contract, through Typer's CliRunner on an app built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from forecaster.commands.detect import detect
from tests.models.anomaly.fixtures import series_frame, synthetic

OUTPUT = ["unique_id", "ds", "y", "score", "is_anomaly"]
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("detect")(detect)

    @app.callback()
    def main() -> None:
        """Test app (two levels, like the real CLI)."""

    return app


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(_app(), ["detect", *args])
    return res.exit_code, res.output


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    df = series_frame(
        {
            "svc-1": synthetic(600, seed=1, spikes=[450]).y,
            "svc-2": synthetic(400, seed=2, shifts=[300]).y,
        }
    )
    df = df.sort_values(["ds", "unique_id"], kind="stable")  # as a monitor appends rows
    df["ds"] = df["ds"].dt.strftime("%Y-%m-%d %H:%M:%S")
    df.loc[df.index[20], "y"] = np.nan
    path = tmp_path / "series.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_contract(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "flags.csv"
    code, output = _run("--input", str(series_csv), "--output", str(out))
    assert code == 0, output
    src = pd.read_csv(series_csv)
    got = pd.read_csv(out)
    assert list(got.columns) == OUTPUT
    assert len(got) == len(src)
    assert got["unique_id"].tolist() == src["unique_id"].tolist()
    assert got["ds"].tolist() == src["ds"].tolist()  # written as read
    np.testing.assert_array_equal(got["y"].to_numpy(), src["y"].to_numpy())
    assert got["score"].between(0, 1).all()
    assert set(got["is_anomaly"]) <= {0, 1}
    missing = got[src["y"].isna()]
    assert (missing["score"] == 0).all() and (missing["is_anomaly"] == 0).all()
    spike_row = src.index[(src["unique_id"] == "svc-1")][450]
    assert got.loc[spike_row, "is_anomaly"] == 1


def test_prefix_of_the_input_gives_the_same_rows(series_csv: Path, tmp_path: Path) -> None:
    full_out, head_out = tmp_path / "full.csv", tmp_path / "head.csv"
    head = tmp_path / "head_in.csv"
    lines = series_csv.read_text().splitlines(keepends=True)
    head.write_text("".join(lines[: 1 + 777]))
    assert _run("--input", str(series_csv), "--output", str(full_out))[0] == 0
    assert _run("--input", str(head), "--output", str(head_out))[0] == 0
    full, part = pd.read_csv(full_out), pd.read_csv(head_out)
    pd.testing.assert_frame_equal(part, full.iloc[:777])


def test_parquet_input_and_options(series_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(series_csv).rename(columns={"unique_id": "svc", "ds": "ts", "y": "cost"})
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    src = tmp_path / "series.parquet"
    df.to_parquet(src)
    out = tmp_path / "flags.csv"
    args = ["--input", str(src), "--output", str(out), "--id-col", "svc", "--time-col", "ts"]
    code, output = _run(*args, "--target-col", "cost", "--detector", "residual")
    assert code == 0, output
    got = pd.read_csv(out)
    assert list(got.columns) == OUTPUT and len(got) == len(df)
    strict = tmp_path / "strict.csv"
    code, _ = _run(*args, "--target-col", "cost", "--output", str(strict), "--threshold", "1.0")
    assert code == 0
    assert pd.read_csv(strict)["is_anomaly"].sum() <= got["is_anomaly"].sum()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("unique_id,ds,y\na,2024-01-01 00:00,1\na,2024-01-01 01:00,abc\n", ["row 3", "'y'", "abc"]),
        ("unique_id,ds,y\na,2024-01-01 00:00,1\na,yesterday,2\n", ["row 3", "'ds'", "yesterday"]),
        ("unique_id,ds,y\na,2024-01-01 00:00,1\n,2024-01-01 01:00,2\n", ["row 3", "'unique_id'"]),
        ("unique_id,ds,y\na,2024-01-01 00:00,inf\n", ["row 2", "'y'", "finite"]),
        ("unique_id,ds,value\na,2024-01-01 00:00,1\n", ["column 'y'", "missing required column"]),
    ],
)
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, content: str, expected: list[str]
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    code, output = _run("--input", str(src), "--output", str(out))
    assert code == 2
    flat = " ".join(output.split())
    assert "bad.csv" in flat
    for part in expected:
        assert part in flat
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--detector", "magic"], "parameter detector must be one of"),
        (["--threshold", "1.5"], "parameter threshold must be in (0, 1]"),
    ],
)
def test_bad_options_exit_2(
    series_csv: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    code, output = _run("--input", str(series_csv), "--output", str(tmp_path / "o.csv"), *args)
    assert code == 2
    assert expected in " ".join(output.split())


def test_missing_and_unsupported_files_exit_2(tmp_path: Path) -> None:
    code, output = _run("--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv"))
    assert code == 2 and "file not found" in output
    txt = tmp_path / "series.txt"
    txt.write_text("unique_id,ds,y\n")
    code, output = _run("--input", str(txt), "--output", str(tmp_path / "o.csv"))
    assert code == 2 and ".csv or .parquet" in output
