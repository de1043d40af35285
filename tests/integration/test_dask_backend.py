"""The Dask backend on a real ``distributed.LocalCluster`` (2 worker processes).

The module starts one cluster for all tests and closes it at the end. Each test
compares the Dask backend with the local one on the same series: per-series
models must give identical frames; the global LightGBM, trained with
``lightgbm.dask`` (data-parallel trees over the two workers), must stay within
the tolerance stated in :func:`test_lightgbm_trains_globally_within_tolerance`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")

from models import ETS, LGBMForecaster, SeasonalNaive, VectorizedETS
from models.anomaly import make_detector
from models.backends import LocalBackend, get_backend, write_partitions
from models.dask_backend import DaskBackend
from tests.models.builders import make_series

pytestmark = pytest.mark.integration

H = 14


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cl
    finally:
        cl.close()


@pytest.fixture(scope="module")
def dask_backend(cluster: Any) -> Iterator[DaskBackend]:
    from distributed import Client

    client = Client(cluster)
    # Small partitions so that both workers get several of them.
    backend = DaskBackend(client=client, series_per_partition=60)
    try:
        yield backend
    finally:
        backend.close()
        client.close()


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    """300 daily series of different lengths (so partitions differ in width)."""
    rng = np.random.default_rng(3)
    lengths = [int(v) for v in rng.integers(80, 140, 300)]
    return make_series(300, lengths, noise=1.5, seed=3)


def _local() -> LocalBackend:
    return LocalBackend()


@pytest.mark.parametrize(
    "model",
    [VectorizedETS(horizon=H), SeasonalNaive()],
    ids=["vets", "seasonal_naive"],
)
def test_per_series_forecasts_are_identical(
    dask_backend: DaskBackend, series: pd.DataFrame, model: Any
) -> None:
    got = dask_backend.forecast(model, series, H)
    expected = _local().forecast(model, series, H)
    assert isinstance(got, pd.DataFrame)
    assert len(got) == 300 * H
    pd.testing.assert_frame_equal(got, expected)


def test_statsmodels_ets_is_identical(dask_backend: DaskBackend, series: pd.DataFrame) -> None:
    small = series[series["unique_id"].isin(["s0", "s1"])]
    model = ETS(n_jobs=1, trend="none", damped="no")
    pd.testing.assert_frame_equal(
        dask_backend.forecast(model, small, 7), _local().forecast(model, small, 7)
    )


def test_cross_validation_is_identical(dask_backend: DaskBackend, series: pd.DataFrame) -> None:
    model = VectorizedETS(horizon=H)
    got = dask_backend.cross_validation(model, series, H, n_windows=2)
    expected = _local().cross_validation(model, series, H, n_windows=2)
    pd.testing.assert_frame_equal(got, expected)


def test_detection_is_identical_and_in_input_order(
    dask_backend: DaskBackend, series: pd.DataFrame
) -> None:
    shuffled = series.sample(frac=1.0, random_state=0).reset_index(drop=True)
    got = dask_backend.detect(make_detector("novelty"), shuffled)
    expected = _local().detect(make_detector("novelty"), shuffled)
    pd.testing.assert_frame_equal(got, expected)
    assert (got["ds"].to_numpy() == shuffled["ds"].to_numpy()).all()


def test_workers_read_and_write_partition_files(
    dask_backend: DaskBackend, series: pd.DataFrame, tmp_path: Path
) -> None:
    parts = write_partitions(series, tmp_path / "in", n_partitions=5)
    model = VectorizedETS(horizon=H)
    out = dask_backend.forecast(model, parts, H, output=tmp_path / "out")
    assert out == tmp_path / "out"
    files = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(files) == 5
    got = pd.concat([pd.read_parquet(f) for f in files]).sort_values(["unique_id", "ds"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), _local().forecast(model, series, H))


def test_dask_dataframe_input_is_regrouped_by_series(
    dask_backend: DaskBackend, series: pd.DataFrame
) -> None:
    import dask.dataframe as dd

    # Row-wise partitions cut through series; the backend must shuffle them whole.
    ddf = dd.from_pandas(series.sort_values("ds"), npartitions=4, sort=False)
    model = VectorizedETS(horizon=H)
    got = dask_backend.forecast(model, ddf, H)
    expected = _local().forecast(model, series, H)
    assert isinstance(got, pd.DataFrame) and isinstance(expected, pd.DataFrame)
    # Dask turns text columns into Arrow strings; the ids themselves are the same.
    got["unique_id"] = got["unique_id"].astype(expected["unique_id"].dtype)
    pd.testing.assert_frame_equal(got, expected)


def test_lightgbm_trains_globally_within_tolerance(
    dask_backend: DaskBackend, series: pd.DataFrame
) -> None:
    """Tolerance: data-parallel trees over 2 workers split on histograms merged
    across workers, so they are not bit-identical to one machine's trees. We
    require the mean absolute difference of ``yhat`` to be below 2 % of the
    mean ``|yhat|`` and the same accuracy (MAE on a held-out week within 5 %)."""
    model = LGBMForecaster(n_estimators=40, num_leaves=15, n_jobs=1, seed=0)
    last = series.groupby("unique_id")["ds"].transform("max")
    train = series[series["ds"] <= last - pd.Timedelta(days=7)]
    test = series[series["ds"] > last - pd.Timedelta(days=7)]
    got = dask_backend.forecast(model, train, 7)
    expected = _local().forecast(model, train, 7)
    assert isinstance(got, pd.DataFrame) and isinstance(expected, pd.DataFrame)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_series_equal(got["unique_id"], expected["unique_id"])
    diff = float((got["yhat"] - expected["yhat"]).abs().mean())
    assert diff < 0.02 * float(expected["yhat"].abs().mean())
    truth = test.sort_values(["unique_id", "ds"])["y"].to_numpy()
    mae_dask = float(np.abs(got["yhat"].to_numpy() - truth).mean())
    mae_local = float(np.abs(expected["yhat"].to_numpy() - truth).mean())
    assert mae_dask <= 1.05 * mae_local
    assert (got["lo_95"] <= got["lo_80"]).all() and (got["hi_80"] <= got["hi_95"]).all()


def test_get_backend_connects_to_a_running_scheduler(cluster: Any, series: pd.DataFrame) -> None:
    small = series[series["unique_id"].isin(["s5", "s6"])]
    with get_backend("dask", cluster.scheduler_address) as backend:
        assert isinstance(backend, DaskBackend)
        got = backend.forecast(SeasonalNaive(), small, 5)
    pd.testing.assert_frame_equal(got, _local().forecast(SeasonalNaive(), small, 5))
    # Closing the backend closed its client only: the cluster still serves.
    assert cluster.scheduler_info["workers"]


def test_unreachable_scheduler_is_a_clear_error() -> None:
    from features.exceptions import ConfigError

    with pytest.raises(ConfigError, match="cannot reach a Dask scheduler"):
        DaskBackend(scheduler_address="tcp://127.0.0.1:9", timeout="2s")


# ------------------------------------------------------------------------ CLI
def _cli() -> Any:
    import typer

    from forecaster.commands.detect import detect
    from forecaster.commands.forecast import backtest, forecast

    app = typer.Typer()
    app.command("forecast")(forecast)
    app.command("backtest")(backtest)
    app.command("detect")(detect)
    return app


@pytest.fixture(scope="module")
def series_csv(series: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "spend.csv"
    small = series[series["unique_id"].isin([f"s{i}" for i in range(40)])].copy()
    small["ds"] = small["ds"].dt.strftime("%Y-%m-%d")
    small.to_csv(path, index=False)
    return path


def test_cli_forecast_on_the_cluster_writes_the_local_csv(
    cluster: Any, series_csv: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    common = ["forecast", "--input", str(series_csv), "--horizon", "7", "--model", "vets"]
    local = runner.invoke(_cli(), [*common, "--output", str(tmp_path / "local.csv")])
    assert local.exit_code == 0, local.output
    remote = runner.invoke(
        _cli(),
        [
            *common,
            "--output",
            str(tmp_path / "dask.csv"),
            "--backend",
            "dask",
            "--scheduler-address",
            cluster.scheduler_address,
        ],
    )
    assert remote.exit_code == 0, remote.output
    a = pd.read_csv(tmp_path / "local.csv")
    b = pd.read_csv(tmp_path / "dask.csv")
    assert len(a) == 40 * 7
    pd.testing.assert_frame_equal(a, b)


def test_cli_backtest_and_detect_on_the_cluster(
    cluster: Any, series_csv: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    address = ["--backend", "dask", "--scheduler-address", cluster.scheduler_address]
    bt = runner.invoke(
        _cli(),
        [
            "backtest", "--input", str(series_csv), "--horizon", "7", "--model", "vets",
            "--n-windows", "2", "--output", str(tmp_path / "bt.csv"), *address,
        ],
    )  # fmt: skip
    assert bt.exit_code == 0, bt.output
    metrics = pd.read_csv(tmp_path / "bt.csv")
    assert len(metrics) == 41 and metrics["mase"].notna().all()
    for name, extra in (("local", []), ("dask", address)):
        res = runner.invoke(
            _cli(),
            [
                "detect",
                "--input",
                str(series_csv),
                "--output",
                str(tmp_path / f"{name}.csv"),
                *extra,
            ],
        )
        assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "dask.csv")
    )


def test_cli_rejects_an_unknown_backend(series_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(
        _cli(),
        [
            "forecast", "--input", str(series_csv), "--horizon", "7",
            "--output", str(tmp_path / "x.csv"), "--backend", "spark",
        ],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "--backend" in res.output and "spark" in res.output


# ------------------------------------------------------------ FOCUS on dask
def _focus_export(folder: Path, n_pods: int = 12, days: int = 60) -> pd.DataFrame:
    """Hourly FOCUS charges of ``n_pods`` pods, written as two files cut by time."""
    rng = np.random.default_rng(8)
    hours = pd.date_range("2024-03-01", periods=days * 24, freq="h", tz="UTC")
    pods = [f"pod-{i}" for i in range(n_pods)] + [None]
    rows = pd.DataFrame(
        {
            "ResourceId": np.repeat(np.array(pods, dtype=object), len(hours)),
            "ChargePeriodStart": np.tile(hours.strftime("%Y-%m-%dT%H:%M:%SZ"), len(pods)),
            "EffectiveCost": rng.gamma(2.0, 0.5, len(pods) * len(hours)),
            "ServiceName": "Amazon Elastic Kubernetes Service",
        }
    )
    folder.mkdir()
    first = rows["ChargePeriodStart"] < hours[len(hours) // 2].strftime("%Y-%m-%dT%H:%M:%SZ")
    rows[first].to_parquet(folder / "part-a.parquet", index=False)
    rows[~first].to_parquet(folder / "part-b.parquet", index=False)
    return rows


def test_focus_export_read_with_dask_forecasts_like_pandas(
    dask_backend: DaskBackend, tmp_path: Path
) -> None:
    from features.readers.dask_io import MISSING_ID, read_focus_series

    rows = _focus_export(tmp_path / "focus")
    ddf = read_focus_series(tmp_path / "focus")
    got = ddf.compute().sort_values(["unique_id", "ds"]).reset_index(drop=True)
    oracle = (
        rows.assign(
            unique_id=rows["ResourceId"].fillna(MISSING_ID),
            ds=pd.to_datetime(rows["ChargePeriodStart"], utc=True).dt.floor("D"),
        )
        .groupby(["unique_id", "ds"], as_index=False)["EffectiveCost"]
        .sum()
        .rename(columns={"EffectiveCost": "y"})
    )
    assert len(got) == 13 * 60
    np.testing.assert_allclose(got["y"].to_numpy(), oracle["y"].to_numpy(), rtol=1e-12)
    assert (got["unique_id"].astype(str).to_numpy() == oracle["unique_id"].to_numpy()).all()
    assert rows["EffectiveCost"].sum() == pytest.approx(got["y"].sum())
    fc = dask_backend.forecast(VectorizedETS(horizon=7), ddf, 7)
    expected = _local().forecast(VectorizedETS(horizon=7), oracle, 7)
    assert isinstance(fc, pd.DataFrame) and isinstance(expected, pd.DataFrame)
    fc["unique_id"] = fc["unique_id"].astype(expected["unique_id"].dtype)
    pd.testing.assert_frame_equal(fc, expected)


def test_focus_reader_names_a_missing_column(tmp_path: Path) -> None:
    from features.exceptions import IngestError
    from features.readers.dask_io import read_focus_series

    rows = _focus_export(tmp_path / "focus", n_pods=1, days=2)
    assert len(read_focus_series(tmp_path / "focus").compute()) == 2 * 2
    rows.drop(columns="EffectiveCost").to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(IngestError, match="EffectiveCost") as info:
        read_focus_series(tmp_path / "bad.parquet")
    assert info.value.column == "EffectiveCost"
