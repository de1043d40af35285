"""The ``forecaster place`` contract, through a small Typer app built here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from forecaster.commands.place import place
from optimizer.placement import DEFAULT_POLICY
from tests.optimizer.placement.builders import (
    node,
    nodes_frame,
    pod,
    pods_frame,
    synthetic_cluster,
    synthetic_pods,
    write_csv,
)
from tests.optimizer.placement.test_properties import check_invariants

app = typer.Typer()
app.command("place")(place)


@app.callback()
def _main() -> None:
    """Test app."""


runner = CliRunner()


def _run(tmp: Path, nodes: pd.DataFrame, pods: pd.DataFrame, *extra: str):
    n = write_csv(tmp / "nodes.csv", nodes)
    p = write_csv(tmp / "pods.csv", pods)
    out = tmp / "out" / "placement.csv"
    res = runner.invoke(
        app, ["place", "--nodes", str(n), "--pods", str(p), "--output", str(out), *extra]
    )
    return res, out


def _read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def test_writes_one_row_per_pod_with_exact_columns(tmp_path: Path) -> None:
    nodes = nodes_frame([node("g", 16_000, 16_384, 2, "T4"), node("c", 8_000, 8_192, 0, "")])
    pods = pods_frame(
        [
            pod("cpu", 2_000, 1_000),
            pod("two", 1_000, 1_000, 2, 1000),
            pod("none", 1_000, 1_000, 1, 100),  # both GPUs are taken
            pod("big", 10**7, 1_000),
        ]
    )
    pods["qos"] = "LS"  # extra columns are ignored
    res, out = _run(tmp_path, nodes, pods)
    assert res.exit_code == 0, res.output
    text = out.read_text().splitlines()
    assert text[0] == "name,node,gpus"
    got = _read(out)
    assert got["name"].tolist() == ["cpu", "two", "none", "big"]
    assert got["node"].tolist()[1:] == ["g", "", ""]
    assert got["gpus"].tolist() == ["", "0|1", "", ""]
    check_invariants(nodes, pods, got)


def test_default_policy_is_ours_and_profile_is_accepted(tmp_path: Path) -> None:
    nodes, pods = synthetic_cluster(12, seed=1), synthetic_pods(150, seed=2)
    profile = write_csv(tmp_path / "history.csv", synthetic_pods(200, seed=3))
    res, out = _run(tmp_path, nodes, pods, "--profile", str(profile))
    assert res.exit_code == 0, res.output
    assert DEFAULT_POLICY in res.output
    check_invariants(nodes, pods, _read(out))
    # the contract holds for a prefix too
    res2, out2 = _run(tmp_path, nodes, pods.iloc[:60], "--profile", str(profile))
    assert res2.exit_code == 0
    pd.testing.assert_frame_equal(_read(out2), _read(out).iloc[:60])


def test_gpu_spec_column_may_be_absent(tmp_path: Path) -> None:
    pods = synthetic_pods(40, seed=5).drop(columns=["gpu_spec"])
    res, out = _run(tmp_path, synthetic_cluster(6, seed=5), pods, "--policy", "fgd")
    assert res.exit_code == 0, res.output
    assert len(_read(out)) == 40


def test_nan_in_csv_names_file_row_and_column(tmp_path: Path) -> None:
    pods = pods_frame([pod("a", 1_000), pod("b", 1_000)]).astype(object)
    pods.loc[1, "memory_mib"] = float("nan")
    res, out = _run(tmp_path, synthetic_cluster(3), pods)
    assert res.exit_code == 2
    assert "pods.csv" in res.output and "row 3" in res.output and "memory_mib" in res.output
    assert not out.exists()


def test_bad_nodes_file_and_policy_exit_2(tmp_path: Path) -> None:
    nodes = nodes_frame([node("a", 1_000, 1_000, 2, "")])
    res, _ = _run(tmp_path, nodes, pods_frame([pod("p", 1)]))
    assert res.exit_code == 2 and "nodes.csv" in res.output and "model" in res.output
    res, _ = _run(tmp_path, synthetic_cluster(2), pods_frame([pod("p", 1)]), "--policy", "nope")
    assert res.exit_code == 2 and "--policy" in res.output


@pytest.mark.parametrize("policy", ["firstfit", "bestfit", "random"])
def test_every_policy_name_runs(tmp_path: Path, policy: str) -> None:
    res, out = _run(
        tmp_path, synthetic_cluster(5), synthetic_pods(30), "--policy", policy, "--seed", "3"
    )
    assert res.exit_code == 0, res.output
    assert len(_read(out)) == 30
