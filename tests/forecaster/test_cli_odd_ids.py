"""``forecaster forecast`` and ``detect`` CSV outputs keep ids with commas, quotes and '/'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecaster.cli import app

runner = CliRunner()
ODD_IDS = [
    "team=nlp/project=llm-chat/service=AmazonEKS",
    'a,b "quoted", c',
    "eks-ml-prod/nlp/llm-finetune (gpu)=100%+x é",
]


@pytest.fixture()
def series_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    ds = pd.date_range("2026-01-01", periods=24 * 14, freq="h", tz="UTC")
    frames = []
    for k, uid in enumerate(ODD_IDS):
        y = 10 + k + np.sin(np.arange(len(ds)) * 2 * np.pi / 24) + rng.normal(0, 0.1, len(ds))
        y[-5] += 40.0  # one spike for detect
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    path = tmp_path / "series.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_forecast_csv_keeps_odd_ids(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "forecast.csv"
    res = runner.invoke(
        app,
        [
            "forecast",
            "--input",
            str(series_csv),
            "--horizon",
            "24",
            "--model",
            "seasonal_naive",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    fc = pd.read_csv(out)
    assert sorted(fc["unique_id"].unique()) == sorted(ODD_IDS)
    assert fc.groupby("unique_id").size().eq(24).all()


def test_detect_csv_keeps_odd_ids(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "flags.csv"
    res = runner.invoke(app, ["detect", "--input", str(series_csv), "--output", str(out)])
    assert res.exit_code == 0, res.output
    flags = pd.read_csv(out)
    assert {"unique_id", "ds", "y", "score", "is_anomaly"} <= set(flags)
    assert sorted(flags["unique_id"].unique()) == sorted(ODD_IDS)
    assert flags.groupby("unique_id").size().eq(24 * 14).all()
