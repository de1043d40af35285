"""The local backend and the series partitions every backend works on (no Dask needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError
from models import SeasonalNaive, VectorizedETS
from models.anomaly import detect_series, make_detector
from models.backends import (
    Backend,
    LocalBackend,
    SeriesPartitions,
    get_backend,
    hash_partition,
    partition_parquet,
    split_frame,
    write_partitions,
)

from .builders import make_series

H = 14


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series(30, 120, noise=1.0, seed=11)


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _sorted(df: pd.DataFrame, *keys: str) -> pd.DataFrame:
    return df.sort_values(list(keys)).reset_index(drop=True)


def test_hash_partition_is_stable_and_in_range() -> None:
    ids = pd.Series([f"pod-{i}" for i in range(1000)])
    a = hash_partition(ids, 7)
    b = hash_partition(ids.to_numpy(), 7)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 7
    # Roughly balanced: no bucket holds twice its share.
    assert np.bincount(a, minlength=7).max() < 2 * 1000 / 7
    with pytest.raises(ConfigError, match="parameter n_partitions"):
        hash_partition(ids, 0)


def test_split_frame_keeps_every_series_whole(series: pd.DataFrame) -> None:
    parts = split_frame(series, "unique_id", 4)
    seen: set[str] = set()
    for part in parts:
        ids = set(part["unique_id"])
        assert not ids & seen
        seen |= ids
    assert seen == set(series["unique_id"])
    assert sum(len(p) for p in parts) == len(series)


def test_local_backend_on_a_frame_equals_the_model(series: pd.DataFrame) -> None:
    backend = get_backend("local")
    assert isinstance(backend, Backend)
    got = backend.forecast(SeasonalNaive(), series, H)
    expected = SeasonalNaive().fit(series).predict(H)
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_partitioned_folder_gives_the_same_forecast(
    series: pd.DataFrame, tmp_path: Path, n_jobs: int
) -> None:
    parts = write_partitions(series, tmp_path / "in", n_partitions=3)
    assert len(parts.files) == 3
    backend = LocalBackend(n_jobs=n_jobs)
    model = VectorizedETS(horizon=H)
    expected = backend.forecast(model, series, H)
    got = backend.forecast(model, parts, H)
    pd.testing.assert_frame_equal(got, expected)
    # With output= every partition is written by its worker; nothing is returned whole.
    out = backend.forecast(model, parts, H, output=tmp_path / "out")
    assert out == tmp_path / "out"
    assert len(list(out.glob("part-*.parquet"))) == 3
    pd.testing.assert_frame_equal(_sorted(_read(out), "unique_id", "ds"), expected)


def test_partitioned_cross_validation_equals_the_frame(
    series: pd.DataFrame, tmp_path: Path
) -> None:
    parts = write_partitions(series, tmp_path / "in", n_partitions=4)
    backend = LocalBackend()
    model = VectorizedETS(horizon=H)
    expected = backend.cross_validation(model, series, H, n_windows=2)
    got = backend.cross_validation(model, parts, H, n_windows=2)
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == 30 * 2 * H
    direct = model.cross_validation(series, h=H, n_windows=2)
    pd.testing.assert_frame_equal(got, _sorted(direct, "unique_id", "cutoff", "ds"))


def test_partitioned_detection_scores_every_row_as_the_frame(
    series: pd.DataFrame, tmp_path: Path
) -> None:
    parts = write_partitions(series, tmp_path / "in", n_partitions=3)
    det = make_detector("novelty")
    got = LocalBackend().detect(det, parts)
    expected = detect_series(series, make_detector("novelty"))
    pd.testing.assert_frame_equal(
        _sorted(got, "unique_id", "ds"), _sorted(expected, "unique_id", "ds")
    )
    in_order = LocalBackend().detect(det, series)
    pd.testing.assert_frame_equal(in_order, expected)


def test_partition_parquet_regroups_series_split_across_files(
    series: pd.DataFrame, tmp_path: Path
) -> None:
    # An export whose files cut through series (by time, as billing exports do).
    src = tmp_path / "export"
    src.mkdir()
    cut = series["ds"].sort_values().iloc[len(series) // 2]
    series[series["ds"] < cut].to_parquet(src / "a.parquet", index=False)
    series[series["ds"] >= cut].to_parquet(src / "b.parquet", index=False)
    with pytest.raises(ConfigError, match="not a series-partitioned folder"):
        SeriesPartitions.from_folder(src)
    parts = partition_parquet(src, tmp_path / "parts", n_partitions=4, batch_rows=500)
    owner: dict[str, Path] = {}
    for f in parts.files:
        for uid in pd.read_parquet(f)["unique_id"].unique():
            assert owner.setdefault(uid, f) == f
    assert len(owner) == 30
    assert sum(len(pd.read_parquet(f)) for f in parts.files) == len(series)
    model = SeasonalNaive()
    pd.testing.assert_frame_equal(
        LocalBackend().forecast(model, parts, H), LocalBackend().forecast(model, series, H)
    )


def test_write_partitions_refuses_to_mix_with_existing_files(
    series: pd.DataFrame, tmp_path: Path
) -> None:
    write_partitions(series, tmp_path / "p")
    with pytest.raises(ConfigError, match="already holds partition files"):
        write_partitions(series, tmp_path / "p")
    with pytest.raises(ConfigError, match="already holds result files"):
        LocalBackend().forecast(SeasonalNaive(), series, H, output=tmp_path / "p")


def test_get_backend_names_bad_settings() -> None:
    with pytest.raises(ConfigError, match="parameter backend must be one of"):
        get_backend("spark")
    with pytest.raises(ConfigError, match="only used by the dask backend"):
        get_backend("local", "tcp://127.0.0.1:8786")


def test_local_backend_refuses_unknown_data() -> None:
    with pytest.raises(ConfigError, match="parameter data must be"):
        LocalBackend().forecast(SeasonalNaive(), [1, 2, 3], H)


def test_local_path_does_not_import_dask(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd\n"
        "from models.backends import get_backend\n"
        "from models import SeasonalNaive\n"
        "df = pd.DataFrame({'unique_id': 'a', 'ds': pd.date_range('2024-01-01', periods=30),"
        " 'y': range(30)})\n"
        "get_backend('local').forecast(SeasonalNaive(), df, 3)\n"
        "print(any(m == 'dask' or m.startswith('dask.') for m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert res.stdout.strip() == "False"
